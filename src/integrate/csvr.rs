//! Canonical sampling through velocity rescaling (Bussi, Donadio & Parrinello, J. Chem. Phys.
//! 126, 014101 (2007)), as LAMMPS's `fix temp/csvr`: once per step, after the second kick, the
//! kinetic energy K is replaced by a draw from the exact solution of
//! dK = (K̄ - K) dt/τ + 2 √(K K̄ / N_f) dW/√τ, and the velocities are scaled by √(K'/K).
//! The draws come from mdrun's counter-based generator keyed by (seed, step), so a restart
//! needs only the seed, the step and the energy given to the reservoir so far.

use crate::rng::{stream, uniforms2_normals2};
use crate::system::System;
use crate::units::BOLTZ;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Csvr {
    /// K
    pub start: f64,
    /// K
    pub stop: f64,
    /// Relaxation time τ, ps.
    pub period: f64,
    pub seed: u64,
    /// The steps the target ramps over.
    pub ramp: (u64, u64),
    /// Energy taken from the atoms so far, eV (LAMMPS's `ecouple` of fix temp/csvr).
    reservoir: f64,
}

impl Csvr {
    pub fn new(start: f64, stop: f64, period: f64, seed: u64, ramp: (u64, u64)) -> Csvr {
        Csvr { start, stop, period, seed, ramp, reservoir: 0.0 }
    }

    pub fn name(&self) -> String {
        format!("velocity Verlet + CSVR (NVT, {:.2} K, damping {:.4} fs)", self.start, self.period * 1e3)
    }

    fn target(&self, step: u64) -> f64 {
        self.start + super::ramp_fraction(self.ramp, step) * (self.stop - self.start)
    }

    /// Rescales the velocities at the end of step `step`.
    pub fn rescale(&mut self, system: &mut System, dt: f64, step: u64) {
        let dof = system.degrees_of_freedom();
        let ke = system.kinetic_energy();
        if ke <= 0.0 || dof < 1.0 {
            return;
        }
        let target = 0.5 * dof * BOLTZ * self.target(step);
        let c = (-dt / self.period).exp();
        let mut draw = Draws { seed: self.seed, step, index: 0, spare: Vec::new() };
        let r1 = draw.normal();
        let r2 = draw.chi_square(dof - 1.0);
        let new = ke + (1.0 - c) * (target * (r2 + r1 * r1) / dof - ke) + 2.0 * r1 * (target / dof * ke * (1.0 - c) * c).sqrt();
        let lambda = (new.max(0.0) / ke).sqrt();
        for v in &mut system.velocities {
            for d in v.iter_mut() {
                *d *= lambda;
            }
        }
        self.reservoir += ke - ke * lambda * lambda;
    }

    pub fn coupling_energy(&self) -> f64 {
        self.reservoir
    }

    pub fn state(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::from([("seed".to_string(), self.seed.into()), ("reservoir".to_string(), self.reservoir.to_bits().into())])
    }

    pub fn restore(&mut self, values: &BTreeMap<String, serde_json::Value>) -> Result<(), String> {
        self.reservoir = values.get("reservoir").and_then(|v| v.as_u64()).map(f64::from_bits).ok_or("the CSVR state has no 'reservoir'")?;
        Ok(())
    }
}

/// The random numbers of one step: normals and gamma variates from a counter that advances per
/// try, so the sequence is a pure function of (seed, step).
struct Draws {
    seed: u64,
    step: u64,
    index: u32,
    spare: Vec<f64>,
}

impl Draws {
    fn next(&mut self) -> ([f64; 2], [f64; 2]) {
        self.index += 1;
        uniforms2_normals2(self.seed, self.step, self.index, stream::CSVR)
    }

    fn normal(&mut self) -> f64 {
        if let Some(x) = self.spare.pop() {
            return x;
        }
        let (_, n) = self.next();
        self.spare.push(n[1]);
        n[0]
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000), shape >= 1.
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let (u, n) = self.next();
            for (x, u) in [(n[0], u[0]), (n[1], u[1])] {
                let v = 1.0 + c * x;
                if v <= 0.0 {
                    continue;
                }
                let v = v * v * v;
                if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                    return d * v;
                }
            }
        }
    }

    /// A sum of `n` squared standard normals (χ² with n degrees of freedom), drawn as
    /// 2 Gamma(n/2) rather than n normals.
    fn chi_square(&mut self, n: f64) -> f64 {
        let n = n.round();
        if n <= 0.0 {
            0.0
        } else if n < 2.0 {
            let x = self.normal();
            x * x
        } else {
            2.0 * self.gamma(0.5 * n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// χ² draws have mean n and variance 2n.
    #[test]
    fn chi_square_draws_have_the_right_moments() {
        for n in [1.0, 2.0, 7.0, 299.0] {
            let (mut s1, mut s2) = (0.0, 0.0);
            let m = 40_000;
            for step in 0..m {
                let x = Draws { seed: 5, step, index: 0, spare: Vec::new() }.chi_square(n);
                s1 += x;
                s2 += x * x;
            }
            let mean = s1 / m as f64;
            let var = s2 / m as f64 - mean * mean;
            assert!((mean - n).abs() < 4.0 * (2.0 * n / m as f64).sqrt(), "n {n}: mean {mean}");
            assert!((var / (2.0 * n) - 1.0).abs() < 0.06, "n {n}: variance {var}");
        }
    }
}
