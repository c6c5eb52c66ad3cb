//! Integrators, as pairs of plain functions around the force evaluation: `before_forces`
//! advances the state to the positions where the next forces are needed, `after_forces`
//! finishes the step with those forces.
//!
//! - Velocity Verlet (NVE): kick ½, drift, [forces], kick ½.
//! - Langevin BAOAB (NVT, Leimkuhler & Matthews 2013): kick ½, drift ½, Ornstein-Uhlenbeck
//!   (exact friction + noise), drift ½, [forces], kick ½. Configurational averages are accurate
//!   to second order in the timestep, better than other splittings at the same cost. The noise
//!   of atom i at step n is drawn from the counter-based generator keyed by (seed, n, i), so a
//!   restart needs only the seed and the step.
//!
//! To add an integrator, add a variant and its two halves here; the step loop calls nothing else.

use crate::cell::Vec3;
use crate::rng::{normals4, stream};
use crate::system::System;
use crate::units::{BOLTZ, FTM2V, MVV2E};
use rayon::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub enum Integrator {
    VelocityVerlet,
    Langevin {
        /// K
        temperature: f64,
        /// Velocity relaxation time, ps (LAMMPS `fix langevin ... damp`).
        damping: f64,
        seed: u64,
        /// Remove the net momentum the noise gives each step (LAMMPS `fix langevin ... zero
        /// yes`), so the centre of mass does not diffuse.
        zero: bool,
    },
}

/// Below this many atoms the per-atom loops stay on one thread.
const PARALLEL_THRESHOLD: usize = 16_384;

impl Integrator {
    pub fn name(&self) -> String {
        match self {
            Integrator::VelocityVerlet => "velocity Verlet (NVE)".to_string(),
            Integrator::Langevin {
                temperature,
                damping,
                ..
            } => {
                format!(
                    "Langevin BAOAB (NVT, {temperature} K, damping {} fs)",
                    damping * 1e3
                )
            }
        }
    }

    /// The random-number seed, for integrators that draw noise.
    pub fn seed(&self) -> Option<u64> {
        match self {
            Integrator::VelocityVerlet => None,
            Integrator::Langevin { seed, .. } => Some(*seed),
        }
    }

    /// Equal but for the Langevin seed (replicas of one plan).
    pub fn same_but_seed(&self, other: &Integrator) -> bool {
        let unseeded = |i: &Integrator| match i {
            Integrator::Langevin { temperature, damping, zero, .. } => Integrator::Langevin { temperature: *temperature, damping: *damping, seed: 0, zero: *zero },
            Integrator::VelocityVerlet => Integrator::VelocityVerlet,
        };
        unseeded(self) == unseeded(other)
    }

    pub fn is_nve(&self) -> bool {
        matches!(self, Integrator::VelocityVerlet)
    }

    /// Takes the state from step `step` to the positions of step `step + 1`.
    pub fn before_forces(&self, system: &mut System, forces: &[Vec3], dt: f64, step: u64) {
        let masses = species_masses(system);
        let System {
            positions,
            velocities,
            types,
            ..
        } = system;
        match *self {
            Integrator::VelocityVerlet => {
                for_each_atom(positions, velocities, types, |_, x, v, t| {
                    let a = FTM2V / masses[t as usize];
                    let f = &forces_at(forces, x.0);
                    for k in 0..3 {
                        v[k] += 0.5 * dt * f[k] * a;
                        x.1[k] += dt * v[k];
                    }
                })
            }
            Integrator::Langevin {
                temperature,
                damping,
                seed,
                zero,
            } => {
                let c1 = (-dt / damping).exp();
                let c2 = (1.0 - c1 * c1).sqrt();
                let sigma_of = |m: f64| (BOLTZ * temperature / (m * MVV2E)).sqrt();
                // With `zero`, each atom gives back an equal share of the noise's net momentum.
                let mut share = [0.0; 3];
                if zero && !types.is_empty() {
                    let mut p = [0.0; 3];
                    for (i, &t) in types.iter().enumerate() {
                        let m = masses[t as usize];
                        let g = normals4(seed, step + 1, i as u32, stream::LANGEVIN);
                        for k in 0..3 {
                            p[k] += m * c2 * sigma_of(m) * g[k];
                        }
                    }
                    share = p.map(|x| x / types.len() as f64);
                }
                for_each_atom(positions, velocities, types, |i, x, v, t| {
                    let m = masses[t as usize];
                    let a = FTM2V / m;
                    let sigma = sigma_of(m);
                    let f = &forces_at(forces, x.0);
                    let g = normals4(seed, step + 1, i as u32, stream::LANGEVIN);
                    for k in 0..3 {
                        v[k] += 0.5 * dt * f[k] * a;
                        x.1[k] += 0.5 * dt * v[k];
                        v[k] = c1 * v[k] + c2 * sigma * g[k] - share[k] / m;
                        x.1[k] += 0.5 * dt * v[k];
                    }
                })
            }
        }
    }

    /// Finishes the step with the forces at the new positions.
    pub fn after_forces(&self, system: &mut System, forces: &[Vec3], dt: f64) {
        let masses = species_masses(system);
        let System {
            positions,
            velocities,
            types,
            ..
        } = system;
        // Both integrators end with the same half kick.
        for_each_atom(positions, velocities, types, |_, x, v, t| {
            let a = FTM2V / masses[t as usize];
            let f = &forces_at(forces, x.0);
            for k in 0..3 {
                v[k] += 0.5 * dt * f[k] * a;
            }
        });
    }
}

fn species_masses(system: &System) -> Vec<f64> {
    system.species.iter().map(|s| s.mass).collect()
}

#[inline]
fn forces_at(forces: &[Vec3], i: usize) -> Vec3 {
    forces[i]
}

/// Runs `body(i, (i, &mut x_i), &mut v_i, type_i)` over all atoms, in parallel for large systems.
/// Each atom's update depends only on its own data, so the result is the same either way.
fn for_each_atom<F>(positions: &mut [Vec3], velocities: &mut [Vec3], types: &[u32], body: F)
where
    F: Fn(usize, (usize, &mut Vec3), &mut Vec3, u32) + Sync,
{
    if positions.len() < PARALLEL_THRESHOLD {
        for (i, ((x, v), &t)) in positions
            .iter_mut()
            .zip(velocities.iter_mut())
            .zip(types)
            .enumerate()
        {
            body(i, (i, x), v, t);
        }
    } else {
        positions
            .par_iter_mut()
            .zip(velocities.par_iter_mut())
            .zip(types.par_iter())
            .enumerate()
            .for_each(|(i, ((x, v), &t))| body(i, (i, x), v, t));
    }
}
