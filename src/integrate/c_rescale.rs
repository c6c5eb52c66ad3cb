//! Stochastic cell rescaling (Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020); GROMACS's
//! C-rescale): a first-order barostat whose noise makes it sample the isothermal-isobaric
//! ensemble. Once per step, before the step's first kick, the log-volume ε = ln V moves by
//!
//!   dε = -(β_T / τ_p) (P₀ - P - kT/V) dt + √(2 kT β_T dt / (V τ_p)) g,   g ~ N(0, 1),
//!
//! (P: the instantaneous pressure, kinetic and virial) and the cell, the positions (keeping
//! their fractional coordinates) and the velocities (inversely) scale by μ = exp(dε/3), with
//! any thermostat for the temperature. The noise comes from mdrun's counter-based generator
//! keyed by (seed, step), so a restart needs only the seed.

use crate::rng::{normals4, stream};
use crate::system::System;
use crate::units::{BOLTZ, NKTV2P};

#[derive(Clone, Debug, PartialEq)]
pub struct CRescale {
    /// bar
    pub pressure: f64,
    /// Relaxation time τ_p, ps.
    pub period: f64,
    /// Isothermal compressibility β_T, 1/bar (sets the coupling strength, not the ensemble).
    pub compressibility: f64,
    /// The thermostat's temperature, K (the kT of the noise).
    pub temperature: f64,
    pub seed: u64,
}

impl CRescale {
    pub fn name(&self) -> String {
        format!("stochastic cell rescaling (iso {:.2} bar, damping {:.4} fs)", self.pressure, self.period * 1e3)
    }

    /// Rescales the system at the start of step `step` (`virial` of the current positions).
    pub fn apply(&self, system: &mut System, virial: &[[f64; 3]; 3], dt: f64, step: u64) {
        let volume = system.cell.volume();
        let (pressure, _) = super::nose_hoover::pressures(system, virial);
        let kt_over_v = BOLTZ * self.temperature / volume * NKTV2P;
        let g = normals4(self.seed, step, 0, stream::C_RESCALE)[0];
        let beta = self.compressibility;
        let d_eps = -beta / self.period * (self.pressure - pressure - kt_over_v) * dt + (2.0 * kt_over_v * beta * dt / self.period).sqrt() * g;
        let mu = (d_eps / 3.0).exp();
        if system.move_to_cell(system.cell.vectors().map(|v| v.map(|x| x * mu))) {
            for v in &mut system.velocities {
                *v = v.map(|c| c / mu);
            }
        }
    }
}
