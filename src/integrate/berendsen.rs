//! The Berendsen barostat as LAMMPS's `fix press/berendsen`: at the end of each step the box
//! and the atoms (fractional coordinates kept) scale by μ_k = (1 - dt/τ_P (P₀ - P_k)/B)^(1/3)
//! along each barostatted axis, B being a guess of the bulk modulus. It relaxes the pressure
//! quickly but samples no ensemble; any thermostat (or none) integrates the atoms.

use super::nose_hoover::{Couple, pressures};
use crate::system::System;

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
        let (scalar, tensor) = pressures(system, virial);
        let p = if self.couple == Couple::Xyz { [scalar; 3] } else { self.couple.pressures(tensor) };
        let delta = super::ramp_fraction(self.ramp, step);
        let mut vectors = *system.cell.vectors();
        for d in 0..3 {
            if self.axes[d] {
                let target = self.start[d] + delta * (self.stop[d] - self.start[d]);
                let mu = (1.0 - dt / self.period[d] * (target - p[d]) / self.modulus).powf(1.0 / 3.0);
                vectors[d] = vectors[d].map(|x| x * mu);
            }
        }
        system.move_to_cell(vectors);
    }
}
