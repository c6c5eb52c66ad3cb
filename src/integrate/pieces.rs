//! The pieces integrators are made of, in Leimkuhler & Matthews' letters, each with its CPU
//! update and its line of the GPU kernel (the GPU compiles one kernel per sequence of pieces,
//! so a splitting costs one dispatch however many pieces it has):
//!
//! - `B(h)`, [`Piece::Kick`]: v += h dt F / m
//! - `A(h)`, [`Piece::Drift`]: x += h dt v
//! - `O`, [`Piece::Friction`]: v = c1 v + c2 σ(m) g, the exact Ornstein-Uhlenbeck step over dt
//!   (c1 = e^{-dt/τ}, c2 = √(1 - c1²), σ(m) = √(kT/m), g ~ N(0, 1) from the counter-based
//!   generator keyed by (seed, step, atom), so the noise of a step needs no stored state).
//!
//! Every piece acts on one atom at a time: on the CPU a sequence of pieces is one pass over the
//! atoms per piece, on the GPU one kernel in which each atom goes through the pieces in order.

use crate::cell::Vec3;
use crate::rng::{normals4, stream};
use crate::system::System;
use crate::units::{BOLTZ, FTM2V, MVV2E};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Piece {
    /// B(h): v += h dt F / m.
    Kick(f64),
    /// A(h): x += h dt v.
    Drift(f64),
    /// O: the Langevin thermostat's exact friction and noise over the whole timestep.
    Friction(Friction),
}

/// The constants of the O piece.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Friction {
    /// K
    pub temperature: f64,
    /// Velocity relaxation time, ps.
    pub damping: f64,
    pub seed: u64,
    /// Remove the net momentum the noise gives each step.
    pub zero: bool,
}

impl Friction {
    /// (c1, c2) for timestep `dt`.
    pub fn constants(&self, dt: f64) -> (f64, f64) {
        let c1 = (-dt / self.damping).exp();
        (c1, (1.0 - c1 * c1).sqrt())
    }
}

/// Below this many atoms the per-atom loops stay on one thread.
const PARALLEL_THRESHOLD: usize = 16_384;

/// Applies `pieces` in order to every atom of `system`, with `forces` for the kicks; `step` is
/// the step the pieces lead to (it keys the noise).
pub fn apply(pieces: &[Piece], system: &mut System, forces: &[Vec3], dt: f64, step: u64) {
    let masses: Vec<f64> = system.species.iter().map(|s| s.mass).collect();
    let System { positions, velocities, types, .. } = system;
    // O with `zero`: each atom gives back an equal share of the noise's net momentum.
    let mut share = [0.0; 3];
    for piece in pieces {
        if let Piece::Friction(o) = piece
            && o.zero
            && !types.is_empty()
        {
            let (_, c2) = o.constants(dt);
            let mut p = [0.0; 3];
            for (i, &t) in types.iter().enumerate() {
                let m = masses[t as usize];
                let g = normals4(o.seed, step, i as u32, stream::LANGEVIN);
                for k in 0..3 {
                    p[k] += m * c2 * sigma_of(o, m) * g[k];
                }
            }
            share = p.map(|x| x / types.len() as f64);
        }
    }
    // Per chunk of atoms (in parallel for large systems), one pass per piece: each pass is a
    // short loop the compiler vectorises over atoms still in cache (a single pass that matched
    // on the piece for every atom cost 2.4x the time on the LJ benchmark; a parallel pass over
    // all atoms per piece, 20 % more at two threads). An atom's arithmetic is the same either
    // way.
    let run_chunk = |first: usize, x: &mut [Vec3], v: &mut [Vec3], t: &[u32]| {
        for piece in pieces {
            match *piece {
                Piece::Kick(h) => {
                    for (k, (v, &t)) in v.iter_mut().zip(t).enumerate() {
                        let a = FTM2V / masses[t as usize];
                        let f = &forces[first + k];
                        for d in 0..3 {
                            v[d] += h * dt * f[d] * a;
                        }
                    }
                }
                Piece::Drift(h) => {
                    for (x, v) in x.iter_mut().zip(v.iter()) {
                        for d in 0..3 {
                            x[d] += h * dt * v[d];
                        }
                    }
                }
                Piece::Friction(o) => {
                    let (c1, c2) = o.constants(dt);
                    for (k, (v, &t)) in v.iter_mut().zip(t).enumerate() {
                        let m = masses[t as usize];
                        let sigma = sigma_of(&o, m);
                        let g = normals4(o.seed, step, (first + k) as u32, stream::LANGEVIN);
                        for d in 0..3 {
                            v[d] = c1 * v[d] + c2 * sigma * g[d] - share[d] / m;
                        }
                    }
                }
            }
        }
    };
    if positions.len() < PARALLEL_THRESHOLD {
        run_chunk(0, positions, velocities, types);
    } else {
        positions
            .par_chunks_mut(CHUNK)
            .zip(velocities.par_chunks_mut(CHUNK))
            .zip(types.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, ((x, v), t))| run_chunk(c * CHUNK, x, v, t));
    }
}

/// Atoms per parallel chunk of the integrator's passes.
const CHUNK: usize = 4096;

/// σ(m) = √(kT / m) in Å/ps.
fn sigma_of(o: &Friction, m: f64) -> f64 {
    (BOLTZ * o.temperature / (m * MVV2E)).sqrt()
}

/// The body of a GPU kernel that applies `pieces` to atom `i` (shaders/integrate.wgsl provides
/// `accel`, `drift`, `normals4` and the parameters: `P.c1`, `P.c2` and the per-type σ of the O
/// piece). The velocity lives in `v` from the first piece to the last.
pub fn wgsl_body(pieces: &[Piece]) -> String {
    let mut body = String::from("    var v = vel[i].xyz;\n");
    if pieces.iter().any(|p| matches!(p, Piece::Friction(_))) {
        // The noise of step n+1 is keyed on n+1, as on the CPU.
        body.push_str(
            "    var lo = atomicLoad(&status[ST_STEP_LO]) + 1u;\n    var hi = atomicLoad(&status[ST_STEP_HI]);\n    if (lo == 0u) { hi += 1u; }\n    let sigma = P.types[atom_type(pos[i])].y;\n",
        );
    }
    let fraction = |h: f64| if h == 1.0 { String::new() } else { format!("{h:?} * ") };
    for piece in pieces {
        match piece {
            Piece::Kick(h) => body.push_str(&format!("    v = v + {}P.dt * accel(i);\n", fraction(*h))),
            Piece::Drift(h) => body.push_str(&format!("    drift(i, {}P.dt * v);\n", fraction(*h))),
            Piece::Friction(_) => body.push_str(
                "    let g = normals4(lo, hi, st, i - structures[st].atoms.x);\n    v = P.c1 * v + (P.c2 * sigma) * g.xyz;\n",
            ),
        }
    }
    body.push_str("    vel[i] = vec4<f32>(v, 0.0);\n");
    body
}
