//! The Berendsen barostat as LAMMPS's `fix press/berendsen`: at the end of each step the box
//! and the atoms (fractional coordinates kept) scale by μ_k = (1 - dt/τ_P (P₀ - P_k)/B)^(1/3)
//! along each barostatted axis, B being a guess of the bulk modulus. It relaxes the pressure
//! quickly but samples no ensemble; any thermostat (or none) integrates the atoms.

use super::nose_hoover::Couple;
use crate::cell::Vec3;
use crate::system::System;
use crate::units::NKTV2P;

#[derive(Clone, Debug, PartialEq)]
pub struct Berendsen {
    /// Which axes scale.
    pub axes: [bool; 3],
    /// bar, per axis.
    pub start: [f64; 3],
    pub stop: [f64; 3],
    /// ps, per axis.
    pub period: [f64; 3],
    pub couple: Couple,
    /// bar (LAMMPS `modulus`, default 10 in the deck's pressure unit).
    pub modulus: f64,
    /// The steps the targets ramp over.
    pub ramp: (u64, u64),
}

impl Berendsen {
    pub fn name(&self) -> String {
        format!("Berendsen barostat ({:.2} bar, damping {:.4} fs)", self.start.iter().zip(self.axes).find(|(_, a)| *a).map_or(0.0, |(p, _)| *p), self.period.iter().cloned().fold(0.0, f64::max) * 1e3)
    }

    /// Scales the box at the end of step `step` (`virial` of the current positions).
    pub fn apply(&self, system: &mut System, virial: &[[f64; 3]; 3], dt: f64, step: u64) {
        let volume = system.cell.volume();
        let k = system.kinetic_tensor();
        let tensor: [f64; 3] = [0, 1, 2].map(|d| (k[d][d] + virial[d][d]) / volume * NKTV2P);
        let p = match self.couple {
            // LAMMPS's scalar pressure, summed before dividing.
            Couple::Xyz => [(k[0][0] + k[1][1] + k[2][2] + virial[0][0] + virial[1][1] + virial[2][2]) / (3.0 * volume) * NKTV2P; 3],
            other => other.pressures(tensor),
        };
        let (begin, end) = self.ramp;
        let delta = if step == begin || end <= begin { 0.0 } else { (step - begin) as f64 / (end - begin) as f64 };
        let mut vectors = *system.cell.vectors();
        let mut mu = [1.0; 3];
        for d in 0..3 {
            if self.axes[d] {
                let target = self.start[d] + delta * (self.stop[d] - self.start[d]);
                mu[d] = (1.0 - dt / self.period[d] * (target - p[d]) / self.modulus).powf(1.0 / 3.0);
                vectors[d] = vectors[d].map(|x| x * mu[d]);
            }
        }
        let old = system.cell.clone();
        let Some(cell) = super::nose_hoover::scaled_cell(system, vectors) else { return };
        let map: [Vec3; 3] = [0, 1, 2].map(|k| {
            let mut e = [0.0; 3];
            e[k] = 1.0;
            cell.cartesian(old.fractional(e))
        });
        for x in &mut system.positions {
            *x = [0, 1, 2].map(|d| map[0][d] * x[0] + map[1][d] * x[1] + map[2][d] * x[2]);
        }
        system.cell = cell;
    }
}
