//! Nosé-Hoover chains (NVT) and the Martyna-Tobias-Klein barostat (NPT, NPH), integrated as
//! LAMMPS's `fix nvt/npt/nph` integrates them (Shinoda, Shiga & Mikami 2004; Tuckerman et al.
//! 2006), so that a deck's thermo table matches LAMMPS's:
//!
//! - before the forces: barostat chain ½, thermostat chain ½ (velocities scaled), cell
//!   velocity ½ (from the pressure at the current positions), barostat velocity scaling ¼,
//!   kick ½, cell ½, drift 1, cell ½;
//! - after the forces: kick ½, barostat velocity scaling ¼, cell velocity ½, thermostat chain ½,
//!   barostat chain ½.
//!
//! Each chain half step is `loops` Trotter sub-steps, each a sweep down the chain and back up
//! (LAMMPS's `tloop`/`ploop`; no Suzuki-Yoshida weights, as LAMMPS). Targets ramp linearly from
//! start to stop over the run. The conserved quantity adds the chains' and the barostat's
//! energies ([`NoseHoover::coupling_energy`]).
//!
//! All in mdrun's metal units: K, ps, bar, eV, Å.

use super::pieces::{self, Piece};
use crate::cell::Vec3;
use crate::system::System;
use crate::units::{BOLTZ, MVV2E, NKTV2P};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// A Nosé-Hoover chain's settings (`temp Tstart Tstop Tdamp`, `tchain`, `tloop`).
#[derive(Clone, Debug, PartialEq)]
pub struct ChainSettings {
    /// K
    pub start: f64,
    /// K
    pub stop: f64,
    /// Damping time, ps.
    pub period: f64,
    /// Thermostats in the chain (LAMMPS `tchain`/`pchain`, default 3).
    pub length: usize,
    /// Trotter sub-steps per half step (LAMMPS `tloop`/`ploop`, default 1).
    pub loops: usize,
}

/// Which pressure components drive which cell lengths (LAMMPS `couple`): `Xyz` averages all
/// three (`iso` sets it, and with it a scalar pressure), the pairs average two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Couple {
    None,
    Xyz,
    Xy,
    Yz,
    Xz,
}

impl Couple {
    /// Reads LAMMPS's `couple` value.
    pub fn parse(value: Option<&str>) -> Result<Couple, String> {
        match value {
            Some("xyz") => Ok(Couple::Xyz),
            Some("xy") => Ok(Couple::Xy),
            Some("yz") => Ok(Couple::Yz),
            Some("xz") => Ok(Couple::Xz),
            Some("none") => Ok(Couple::None),
            other => Err(format!("couple expects xyz, xy, yz, xz or none (got {other:?})")),
        }
    }

    /// The pressure each axis is driven by, from the diagonal pressure `tensor` (bar):
    /// coupled axes share their mean.
    pub fn pressures(self, tensor: [f64; 3]) -> [f64; 3] {
        let mean = |a: usize, b: usize| 0.5 * (tensor[a] + tensor[b]);
        match self {
            Couple::Xyz => [(tensor[0] + tensor[1] + tensor[2]) / 3.0; 3],
            Couple::Xy => [mean(0, 1), mean(0, 1), tensor[2]],
            Couple::Yz => [tensor[0], mean(1, 2), mean(1, 2)],
            Couple::Xz => [mean(0, 2), tensor[1], mean(0, 2)],
            Couple::None => tensor,
        }
    }
}

/// The MTK barostat's settings (`iso|aniso|x|y|z Pstart Pstop Pdamp`, `couple`, `pchain`,
/// `ploop`, `mtk`).
#[derive(Clone, Debug, PartialEq)]
pub struct BarostatSettings {
    /// Which axes are barostatted.
    pub axes: [bool; 3],
    /// bar, per axis.
    pub start: [f64; 3],
    /// bar, per axis.
    pub stop: [f64; 3],
    /// ps, per axis.
    pub period: [f64; 3],
    pub couple: Couple,
    /// Barostat thermostat chain length (0: none).
    pub chain: usize,
    pub loops: usize,
    /// The MTK correction terms (LAMMPS `mtk yes`, the default).
    pub mtk: bool,
}

impl BarostatSettings {
    /// Isotropic (LAMMPS `iso P0 P1 Pdamp`): one pressure drives all three lengths.
    pub fn iso(start: f64, stop: f64, period: f64) -> BarostatSettings {
        BarostatSettings { axes: [true; 3], start: [start; 3], stop: [stop; 3], period: [period; 3], couple: Couple::Xyz, chain: 3, loops: 1, mtk: true }
    }

    /// Anisotropic (LAMMPS `aniso`): each length follows its own diagonal pressure.
    pub fn aniso(start: f64, stop: f64, period: f64) -> BarostatSettings {
        BarostatSettings { couple: Couple::None, ..BarostatSettings::iso(start, stop, period) }
    }

    /// A scalar pressure (LAMMPS pstyle ISO) rather than three.
    fn is_iso(&self) -> bool {
        self.couple == Couple::Xyz
    }
}

/// The chain and barostat variables that carry from step to step.
#[derive(Clone, Debug, Default, PartialEq)]
struct Chain {
    eta: Vec<f64>,
    /// One longer than `eta`: a last, always zero, velocity closes the chain.
    eta_dot: Vec<f64>,
    eta_dotdot: Vec<f64>,
    mass: Vec<f64>,
}

impl Chain {
    fn new(length: usize) -> Chain {
        Chain { eta: vec![0.0; length], eta_dot: vec![0.0; length + 1], eta_dotdot: vec![0.0; length], mass: vec![0.0; length] }
    }

    fn len(&self) -> usize {
        self.eta.len()
    }

    /// Forces on the chain's upper links from the links below.
    fn upper_forces(&mut self, kt: f64) {
        for k in 1..self.len() {
            self.eta_dotdot[k] = (self.mass[k - 1] * self.eta_dot[k - 1] * self.eta_dot[k - 1] - kt) / self.mass[k];
        }
    }

    /// The sweep down the chain to its first link, which it updates with `drive`.
    fn sweep_down(&mut self, dt4: f64, dt8: f64, drag: f64) -> f64 {
        let n = self.len();
        for k in (1..n).rev() {
            let expfac = (-dt8 * self.eta_dot[k + 1]).exp();
            self.eta_dot[k] *= expfac;
            self.eta_dot[k] += self.eta_dotdot[k] * dt4;
            self.eta_dot[k] *= drag;
            self.eta_dot[k] *= expfac;
        }
        let expfac = (-dt8 * self.eta_dot[1]).exp();
        self.eta_dot[0] *= expfac;
        self.eta_dot[0] += self.eta_dotdot[0] * dt4;
        self.eta_dot[0] *= drag;
        self.eta_dot[0] *= expfac;
        expfac
    }

    /// The sweep back up, after the first link's force was renewed (`expfac` from the way down).
    fn sweep_up(&mut self, expfac: f64, dt4: f64, dt8: f64, kt: f64) {
        self.eta_dot[0] *= expfac;
        self.eta_dot[0] += self.eta_dotdot[0] * dt4;
        self.eta_dot[0] *= expfac;
        for k in 1..self.len() {
            let expfac = (-dt8 * self.eta_dot[k + 1]).exp();
            self.eta_dot[k] *= expfac;
            self.eta_dotdot[k] = (self.mass[k - 1] * self.eta_dot[k - 1] * self.eta_dot[k - 1] - kt) / self.mass[k];
            self.eta_dot[k] += self.eta_dotdot[k] * dt4;
            self.eta_dot[k] *= expfac;
        }
    }

    /// Σ ½ Q η̇² + `first_kt` η₀ + kT Σ_{k>0} η_k.
    fn energy(&self, first_kt: f64, kt: f64) -> f64 {
        let mut e = first_kt * self.eta[0] + 0.5 * self.mass[0] * self.eta_dot[0] * self.eta_dot[0];
        for k in 1..self.len() {
            e += kt * self.eta[k] + 0.5 * self.mass[k] * self.eta_dot[k] * self.eta_dot[k];
        }
        e
    }
}

/// Nosé-Hoover NVT, NPT or NPH: a thermostat, a barostat or both.
#[derive(Clone, Debug, PartialEq)]
pub struct NoseHoover {
    pub thermostat: Option<ChainSettings>,
    pub barostat: Option<BarostatSettings>,
    /// LAMMPS `drag`: damps the chain and cell velocities (0: none).
    pub drag: f64,
    /// The steps the targets ramp over (LAMMPS: the run's first and last step).
    pub ramp: (u64, u64),
    /// The reference temperature of NPH when the atoms are at rest (LAMMPS: 1 in lj units,
    /// else 300 K), K.
    pub rest_temperature: f64,
    chain: Chain,
    barostat_chain: Chain,
    /// Cell strain rates (1/ps) and their book-keeping integrals.
    omega: [f64; 3],
    omega_dot: [f64; 3],
    omega_mass: [f64; 3],
    /// Volume, cell lengths and temperature the barostat refers to (set at the first setup).
    vol0: f64,
    l0: [f64; 3],
    t0: f64,
    /// Masses and the current temperature restored from a checkpoint: kept at setup so a restart
    /// continues bit for bit (the chain tracks T by its own scaling, which differs from a fresh
    /// sum over the atoms in the last bits).
    exact_restart: bool,
    // Per-step quantities.
    t_target: f64,
    t_current: f64,
    dof: f64,
    p_target: [f64; 3],
    p_hydro: f64,
    p_current: [f64; 3],
    mtk_term2: f64,
}

impl NoseHoover {
    pub fn new(thermostat: Option<ChainSettings>, barostat: Option<BarostatSettings>, drag: f64, ramp: (u64, u64), rest_temperature: f64) -> NoseHoover {
        let chain = Chain::new(thermostat.as_ref().map_or(0, |t| t.length));
        let barostat_chain = Chain::new(barostat.as_ref().map_or(0, |b| b.chain));
        NoseHoover {
            thermostat,
            barostat,
            drag,
            ramp,
            rest_temperature,
            chain,
            barostat_chain,
            omega: [0.0; 3],
            omega_dot: [0.0; 3],
            omega_mass: [0.0; 3],
            vol0: 0.0,
            l0: [0.0; 3],
            t0: 0.0,
            exact_restart: false,
            t_target: 0.0,
            t_current: 0.0,
            dof: 0.0,
            p_target: [0.0; 3],
            p_hydro: 0.0,
            p_current: [0.0; 3],
            mtk_term2: 0.0,
        }
    }

    /// "NVT", "NPT" or "NPH".
    pub fn ensemble(&self) -> &'static str {
        match (&self.thermostat, &self.barostat) {
            (Some(_), Some(_)) => "NPT",
            (None, Some(_)) => "NPH",
            _ => "NVT",
        }
    }

    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.thermostat {
            parts.push(format!("{:.2} K, damping {:.4} fs, chain {}", t.start, t.period * 1e3, t.length));
        }
        if let Some(b) = &self.barostat {
            let p = b.start.iter().zip(b.axes).find(|(_, on)| *on).map_or(0.0, |(p, _)| *p);
            let period = b.period.iter().zip(b.axes).filter(|(_, on)| *on).map(|(p, _)| *p).fold(0.0, f64::max);
            parts.push(format!("{} {p:.2} bar, damping {:.4} fs", if b.is_iso() { "iso" } else { "aniso" }, period * 1e3));
        }
        format!("Nosé-Hoover {} ({})", self.ensemble(), parts.join("; "))
    }

    /// Whether each step needs the virial (the barostat's pressure).
    pub fn wants_virial(&self) -> bool {
        self.barostat.is_some()
    }

    /// Ramp fraction at `step`.
    fn delta(&self, step: u64) -> f64 {
        super::ramp_fraction(self.ramp, step)
    }

    fn frequency_max(&self) -> f64 {
        self.barostat.as_ref().map_or(0.0, |b| (0..3).filter(|&k| b.axes[k]).map(|k| 1.0 / b.period[k]).fold(0.0, f64::max))
    }

    fn set_temperature_target(&mut self, step: u64) {
        if let Some(t) = &self.thermostat {
            self.t_target = t.start + self.delta(step) * (t.stop - t.start);
        }
    }

    fn set_pressure_target(&mut self, step: u64) {
        let Some(b) = &self.barostat else { return };
        let delta = self.delta(step);
        let mut hydro = 0.0;
        let mut n = 0.0;
        for k in 0..3 {
            if b.axes[k] {
                self.p_target[k] = b.start[k] + delta * (b.stop[k] - b.start[k]);
                hydro += self.p_target[k];
                n += 1.0;
            }
        }
        self.p_hydro = hydro / n;
    }

    /// LAMMPS's `setup`: targets, masses and the chain forces from the state at the run's start
    /// (`virial` of the current positions).
    pub fn setup(&mut self, system: &System, virial: &[[f64; 3]; 3], step: u64) {
        self.dof = system.degrees_of_freedom();
        let t_now = temperature(system, self.dof);
        if self.thermostat.is_some() {
            self.set_temperature_target(step);
        } else if self.barostat.is_some() {
            if self.t0 == 0.0 {
                self.t0 = if t_now == 0.0 { self.rest_temperature } else { t_now };
            }
            self.t_target = self.t0;
        }
        if self.barostat.is_some() && self.vol0 == 0.0 {
            self.vol0 = system.cell.volume();
            self.l0 = system.cell.lengths();
        }
        self.set_pressure_target(step);
        if !self.exact_restart {
            self.t_current = t_now;
        }
        if self.barostat.is_some() {
            self.measure_pressure(system, virial);
        }
        if let Some(t) = &self.thermostat {
            let freq = 1.0 / t.period;
            self.chain.mass[0] = self.dof * BOLTZ * self.t_target / (freq * freq);
            for k in 1..self.chain.len() {
                self.chain.mass[k] = BOLTZ * self.t_target / (freq * freq);
            }
            self.chain.upper_forces(BOLTZ * self.t_target);
        }
        if let Some(b) = self.barostat.clone() {
            let kt = BOLTZ * self.t_target;
            // W = (N + 1) kT / ω² (LAMMPS since 2014; Martyna et al. take N_f + d).
            let nkt = (system.len() as f64 + 1.0) * kt;
            let fmax = self.frequency_max();
            if !self.exact_restart || self.omega_mass.iter().all(|&m| m == 0.0) {
                for k in 0..3 {
                    if b.axes[k] {
                        self.omega_mass[k] = nkt * b.period[k] * b.period[k];
                    }
                }
                for k in 0..self.barostat_chain.len() {
                    self.barostat_chain.mass[k] = kt / (fmax * fmax);
                }
            }
            self.barostat_chain.upper_forces(kt);
        }
    }

    /// The first half of the step, up to the new positions (`virial` of the current ones).
    pub fn before_forces(&mut self, system: &mut System, forces: &[Vec3], virial: &[[f64; 3]; 3], dt: f64, new_step: u64) {
        if self.barostat.is_some() && self.barostat_chain.len() > 0 {
            self.barostat_chain_half(dt);
        }
        if self.thermostat.is_some() {
            self.set_temperature_target(new_step);
            self.thermostat_half(system, dt);
        }
        if self.barostat.is_some() {
            self.measure_pressure(system, virial);
            self.set_pressure_target(new_step);
            self.cell_velocity_half(system, dt);
            self.scale_velocities_for_cell(system, dt);
        }
        pieces::apply(&[Piece::Kick(0.5)], system, forces, dt, new_step);
        if self.barostat.is_some() {
            self.remap(system, 0.5 * dt);
        }
        pieces::apply(&[Piece::Drift(1.0)], system, forces, dt, new_step);
        if self.barostat.is_some() {
            self.remap(system, 0.5 * dt);
        }
    }

    /// The second half, with the forces and virial at the new positions.
    pub fn after_forces(&mut self, system: &mut System, forces: &[Vec3], virial: &[[f64; 3]; 3], dt: f64) {
        pieces::apply(&[Piece::Kick(0.5)], system, forces, dt, 0);
        if self.barostat.is_some() {
            self.scale_velocities_for_cell(system, dt);
        }
        self.t_current = temperature(system, self.dof);
        if self.barostat.is_some() {
            self.measure_pressure(system, virial);
            self.cell_velocity_half(system, dt);
        }
        if self.thermostat.is_some() {
            self.thermostat_half(system, dt);
        }
        if self.barostat.is_some() && self.barostat_chain.len() > 0 {
            self.barostat_chain_half(dt);
        }
    }

    /// Half a step of the thermostat chain; scales the velocities.
    fn thermostat_half(&mut self, system: &mut System, dt: f64) {
        let t = self.thermostat.as_ref().expect("thermostat");
        let freq = 1.0 / t.period;
        let loops = t.loops.max(1);
        let ncfac = 1.0 / loops as f64;
        let drag = 1.0 - dt * freq * self.drag / loops as f64;
        let kt = BOLTZ * self.t_target;
        let ke_target = self.dof * kt;
        // Masses follow the target temperature, so the chain keeps its frequency.
        self.chain.mass[0] = self.dof * kt / (freq * freq);
        for k in 1..self.chain.len() {
            self.chain.mass[k] = kt / (freq * freq);
        }
        let mut ke = self.dof * BOLTZ * self.t_current;
        self.chain.eta_dotdot[0] = if self.chain.mass[0] > 0.0 { (ke - ke_target) / self.chain.mass[0] } else { 0.0 };
        let (dt4, dt8, dthalf) = (0.25 * dt * ncfac, 0.125 * dt * ncfac, 0.5 * dt * ncfac);
        for _ in 0..loops {
            let expfac = self.chain.sweep_down(dt4, dt8, drag);
            let factor = (-dthalf * self.chain.eta_dot[0]).exp();
            scale_velocities(system, [factor; 3], 1);
            self.t_current *= factor * factor;
            ke = self.dof * BOLTZ * self.t_current;
            self.chain.eta_dotdot[0] = if self.chain.mass[0] > 0.0 { (ke - ke_target) / self.chain.mass[0] } else { 0.0 };
            for k in 0..self.chain.len() {
                self.chain.eta[k] += dthalf * self.chain.eta_dot[k];
            }
            self.chain.sweep_up(expfac, dt4, dt8, kt);
        }
    }

    /// Half a step of the barostat's own thermostat chain; scales the cell velocities.
    fn barostat_chain_half(&mut self, dt: f64) {
        let b = self.barostat.as_ref().expect("barostat");
        let loops = b.loops.max(1);
        let ncfac = 1.0 / loops as f64;
        let drag = 1.0 - dt * self.frequency_max() * self.drag / loops as f64;
        let kt = BOLTZ * self.t_target;
        let axes = b.axes;
        // The first link's target: kT per cell degree of freedom, one for an isotropic cell.
        let first_kt = if b.is_iso() { kt } else { axes.iter().filter(|&&a| a).count() as f64 * kt };
        let kinetic = |s: &Self| (0..3).filter(|&k| axes[k]).map(|k| s.omega_mass[k] * s.omega_dot[k] * s.omega_dot[k]).sum::<f64>();
        self.barostat_chain.eta_dotdot[0] = (kinetic(self) - first_kt) / self.barostat_chain.mass[0];
        let (dt4, dt8, dthalf) = (0.25 * dt * ncfac, 0.125 * dt * ncfac, 0.5 * dt * ncfac);
        for _ in 0..loops {
            let expfac = self.barostat_chain.sweep_down(dt4, dt8, drag);
            for k in 0..self.barostat_chain.len() {
                self.barostat_chain.eta[k] += dthalf * self.barostat_chain.eta_dot[k];
            }
            let factor = (-dthalf * self.barostat_chain.eta_dot[0]).exp();
            for k in 0..3 {
                if axes[k] {
                    self.omega_dot[k] *= factor;
                }
            }
            self.barostat_chain.eta_dotdot[0] = (kinetic(self) - first_kt) / self.barostat_chain.mass[0];
            self.barostat_chain.sweep_up(expfac, dt4, dt8, kt);
        }
    }

    /// The current pressure the barostat acts on, coupled as asked (bar).
    fn measure_pressure(&mut self, system: &System, virial: &[[f64; 3]; 3]) {
        let b = self.barostat.as_ref().expect("barostat");
        let (scalar, tensor) = pressures(system, virial);
        self.p_current = if b.is_iso() { [scalar; 3] } else { b.couple.pressures(tensor) };
    }

    /// Half a step of the cell velocities (LAMMPS `nh_omega_dot`).
    fn cell_velocity_half(&mut self, system: &System, dt: f64) {
        let b = self.barostat.as_ref().expect("barostat");
        let volume = system.cell.volume();
        let n = system.len() as f64;
        let pdim = b.axes.iter().filter(|&&a| a).count() as f64;
        let drag = 1.0 - dt * self.frequency_max() * self.drag / b.loops.max(1) as f64;
        let mut term1 = 0.0;
        if b.mtk {
            term1 = if b.is_iso() {
                self.dof * BOLTZ * self.t_current
            } else {
                let k = kinetic_diagonal(system);
                (0..3).filter(|&d| b.axes[d]).map(|d| k[d]).sum()
            };
            term1 /= pdim * n;
        }
        let deviatoric = self.deviatoric_stress();
        for k in 0..3 {
            if b.axes[k] {
                let f = (self.p_current[k] - self.p_hydro) * volume / (self.omega_mass[k] * NKTV2P) + term1 / self.omega_mass[k]
                    - deviatoric[k] * (system.cell.lengths()[k].powi(2)) / (self.omega_mass[k] * NKTV2P);
                self.omega_dot[k] += f * 0.5 * dt;
                self.omega_dot[k] *= drag;
            }
        }
        self.mtk_term2 = if b.mtk { (0..3).filter(|&k| b.axes[k]).map(|k| self.omega_dot[k]).sum::<f64>() / (pdim * n) } else { 0.0 };
    }

    /// The target stress beyond the hydrostatic pressure, per axis, in the reference cell's
    /// frame: σ_k = V₀ (P_k - P_hydro) / L₀_k² (bar/Å). Zero unless the axes have different
    /// targets or some axis has none (LAMMPS's `x`/`y`/`z` keywords); the cell is then driven
    /// by σ_k L_k² and its strain energy ½ Σ σ_k L_k² enters the conserved quantity.
    fn deviatoric_stress(&self) -> [f64; 3] {
        let Some(b) = &self.barostat else { return [0.0; 3] };
        // An axis without a barostat counts with a zero target, as in LAMMPS.
        [0, 1, 2].map(|k| {
            let target = if b.axes[k] { self.p_target[k] } else { 0.0 };
            if target != self.p_hydro { self.vol0 * (target - self.p_hydro) / (self.l0[k] * self.l0[k]) } else { 0.0 }
        })
    }

    /// The velocity scaling that goes with the cell's motion (a quarter step on each side).
    fn scale_velocities_for_cell(&self, system: &mut System, dt: f64) {
        let factor: [f64; 3] = [0, 1, 2].map(|k| (-0.25 * dt * (self.omega_dot[k] + self.mtk_term2)).exp());
        // Twice, as LAMMPS (the tilt terms of a triclinic barostat would go between).
        scale_velocities(system, factor, 2);
    }

    /// Moves the cell by `h` of its strain rate: each barostatted cell vector scales by
    /// exp(h ω̇), and the atoms keep their fractional coordinates.
    fn remap(&mut self, system: &mut System, h: f64) {
        let b = self.barostat.as_ref().expect("barostat");
        for k in 0..3 {
            self.omega[k] += h * self.omega_dot[k];
        }
        let mut vectors = *system.cell.vectors();
        for k in 0..3 {
            if b.axes[k] {
                let s = (h * self.omega_dot[k]).exp();
                vectors[k] = vectors[k].map(|x| x * s);
            }
        }
        system.move_to_cell(vectors);
    }

    /// Energy of the chains and the barostat, the work that makes `pe + ke + ecouple`
    /// conserved (LAMMPS's `ecouple` of fix nh), eV.
    pub fn coupling_energy(&self, system: &System) -> f64 {
        let kt = BOLTZ * self.t_target;
        let mut e = 0.0;
        if self.thermostat.is_some() && self.chain.len() > 0 {
            e += self.chain.energy(self.dof * kt, kt);
        }
        if let Some(b) = &self.barostat {
            let volume = system.cell.volume();
            let pdim = b.axes.iter().filter(|&&a| a).count() as f64;
            for k in 0..3 {
                if b.axes[k] {
                    e += 0.5 * self.omega_dot[k] * self.omega_dot[k] * self.omega_mass[k] + self.p_hydro * (volume - self.vol0) / (pdim * NKTV2P);
                }
            }
            let sigma = self.deviatoric_stress();
            let lengths = system.cell.lengths();
            e += (0..3).map(|k| 0.5 * sigma[k] * lengths[k] * lengths[k]).sum::<f64>() / NKTV2P;
            // The barostat chain's first link thermostats every barostatted cell degree of freedom.
            if self.barostat_chain.len() > 0 {
                e += self.barostat_chain.energy(pdim * kt, kt);
            }
        }
        e
    }

    /// The variables a checkpoint keeps, as bits.
    pub fn state(&self) -> BTreeMap<String, serde_json::Value> {
        let bits = |v: &[f64]| serde_json::Value::from(v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>());
        let mut m = BTreeMap::new();
        m.insert("eta".into(), bits(&self.chain.eta));
        m.insert("eta_dot".into(), bits(&self.chain.eta_dot));
        m.insert("etap".into(), bits(&self.barostat_chain.eta));
        m.insert("etap_dot".into(), bits(&self.barostat_chain.eta_dot));
        m.insert("etap_mass".into(), bits(&self.barostat_chain.mass));
        m.insert("omega".into(), bits(&self.omega));
        m.insert("omega_dot".into(), bits(&self.omega_dot));
        m.insert("omega_mass".into(), bits(&self.omega_mass));
        m.insert("vol0".into(), bits(&[self.vol0]));
        m.insert("l0".into(), bits(&self.l0));
        m.insert("t0".into(), bits(&[self.t0]));
        m.insert("t_current".into(), bits(&[self.t_current]));
        m
    }

    /// Takes up the variables of `state` (from [`NoseHoover::state`]). With `keep_masses` (a
    /// checkpoint) the barostat masses are kept too, so the restart is bit-identical; without
    /// (a deck's next run) they are set anew from the run's start, as LAMMPS's setup does.
    pub fn restore(&mut self, values: &BTreeMap<String, serde_json::Value>, keep_masses: bool) -> Result<(), String> {
        let read = |key: &str, len: usize| -> Result<Vec<f64>, String> {
            let v = values.get(key).and_then(|v| v.as_array()).ok_or_else(|| format!("the Nosé-Hoover state has no '{key}'"))?;
            let x: Vec<f64> = v.iter().map(|b| b.as_u64().map(f64::from_bits)).collect::<Option<_>>().ok_or_else(|| format!("the Nosé-Hoover '{key}' is not a list of numbers"))?;
            if x.len() != len {
                return Err(format!("the Nosé-Hoover '{key}' has {} values; this run's chain needs {len} (tchain/pchain changed?)", x.len()));
            }
            Ok(x)
        };
        self.chain.eta = read("eta", self.chain.len())?;
        self.chain.eta_dot = read("eta_dot", self.chain.len() + 1)?;
        self.barostat_chain.eta = read("etap", self.barostat_chain.len())?;
        self.barostat_chain.eta_dot = read("etap_dot", self.barostat_chain.len() + 1)?;
        let masses = read("etap_mass", self.barostat_chain.len())?;
        let three = |key: &str| -> Result<[f64; 3], String> { read(key, 3).map(|v| [v[0], v[1], v[2]]) };
        self.omega = three("omega")?;
        self.omega_dot = three("omega_dot")?;
        let omega_mass = three("omega_mass")?;
        self.vol0 = read("vol0", 1)?[0];
        self.l0 = three("l0")?;
        self.t0 = read("t0", 1)?[0];
        if keep_masses {
            self.t_current = read("t_current", 1)?[0];
            if self.barostat.is_some() && omega_mass.iter().any(|&m| m > 0.0) {
                self.omega_mass = omega_mass;
                self.barostat_chain.mass = masses;
            }
            self.exact_restart = true;
        }
        Ok(())
    }

    /// The same settings (state aside).
    pub fn same_settings(&self, other: &NoseHoover) -> bool {
        self.thermostat == other.thermostat && self.barostat == other.barostat && self.drag == other.drag && self.ramp == other.ramp
    }
}

/// Above this many atoms the per-atom passes run in parallel, over fixed chunks (so sums come
/// out the same for any thread count).
const PARALLEL: usize = 16_384;
const CHUNK: usize = 4096;

/// The instantaneous pressure (bar), as LAMMPS's compute pressure gives it: the scalar (the
/// trace summed before dividing; its last bits differ from the mean of the three) and the
/// diagonal, kinetic and virial (`virial` of the current positions).
pub(crate) fn pressures(system: &System, virial: &[[f64; 3]; 3]) -> (f64, [f64; 3]) {
    let volume = system.cell.volume();
    let k = kinetic_diagonal(system);
    let scalar = (k[0] + k[1] + k[2] + virial[0][0] + virial[1][1] + virial[2][2]) / (3.0 * volume) * NKTV2P;
    (scalar, [0, 1, 2].map(|d| (k[d] + virial[d][d]) / volume * NKTV2P))
}

/// Σ m v_k² per axis, eV (the diagonal of the kinetic tensor, as LAMMPS's compute temp sums it).
fn kinetic_diagonal(system: &System) -> [f64; 3] {
    let masses: Vec<f64> = system.species.iter().map(|s| s.mass).collect();
    let part = |(v, t): (&[Vec3], &[u32])| {
        let mut k = [0.0; 3];
        for (v, &t) in v.iter().zip(t) {
            let m = masses[t as usize];
            for d in 0..3 {
                k[d] += m * v[d] * v[d];
            }
        }
        k
    };
    let k = if system.len() >= PARALLEL {
        let parts: Vec<[f64; 3]> = system.velocities.par_chunks(CHUNK).zip(system.types.par_chunks(CHUNK)).map(part).collect();
        parts.iter().fold([0.0; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]])
    } else {
        part((&system.velocities, &system.types))
    };
    k.map(|x| x * MVV2E)
}

/// The kinetic temperature with `dof` degrees of freedom, K.
fn temperature(system: &System, dof: f64) -> f64 {
    let k = kinetic_diagonal(system);
    (k[0] + k[1] + k[2]) / (dof * BOLTZ)
}

/// v_k *= factor_k, `times` times over (each a rounding, as LAMMPS applies them).
fn scale_velocities(system: &mut System, factor: [f64; 3], times: usize) {
    let scale = |v: &mut Vec3| {
        for _ in 0..times {
            for k in 0..3 {
                v[k] *= factor[k];
            }
        }
    };
    if system.len() >= PARALLEL {
        system.velocities.par_chunks_mut(CHUNK).for_each(|c| c.iter_mut().for_each(scale));
    } else {
        system.velocities.iter_mut().for_each(scale);
    }
}
