//! Integrators: each is a splitting, a sequence of pieces ([`pieces`]: kick B, drift A,
//! friction O) before the force evaluation and a sequence after it, plus the state it carries
//! from step to step into checkpoints ([`IntegratorState`]).
//!
//! - Velocity Verlet (NVE): B(½) A(1) | forces | B(½).
//! - Langevin BAOAB (NVT, Leimkuhler & Matthews 2013): B(½) A(½) O A(½) | forces | B(½).
//!   Configurational averages are accurate to second order in the timestep, better than other
//!   splittings at the same cost. The noise of atom i at step n is drawn from the counter-based
//!   generator keyed by (seed, n, i), so a restart needs only the seed and the step.
//! - Nosé-Hoover chains and the MTK barostat (NVT, NPT, NPH; [`nose_hoover`]), as LAMMPS's
//!   fix nh: chain and cell half steps around B(½) A(1) | forces | B(½).
//! - CSVR (NVT, [`csvr`]): velocity Verlet, then the kinetic energy resampled once per step.
//! - Stochastic cell rescaling ([`c_rescale`]): any thermostatted integrator with the cell,
//!   positions and velocities rescaled at the start of each step.
//!
//! The per-atom pieces run in one loop over the atoms on the CPU ([`pieces::apply`]); the GPU
//! compiles one kernel per sequence ([`pieces::wgsl_body`]). The global steps (a chain's
//! velocity scaling from the kinetic energy, the cell's motion) run on the CPU only: the GPU
//! platform refuses those integrators ([`Integrator::gpu_unsupported`]).
//!
//! # Adding an integrator
//! A variant here with its pieces in [`Integrator::splitting`], or its own
//! [`Integrator::before_forces`] and [`Integrator::after_forces`] around them, its name, and
//! what it keeps in checkpoints ([`Integrator::state`], [`Integrator::restore`],
//! [`Integrator::resume_note`]). The checkpoint format does not change: it stores the state as
//! named values (floats as their bits). An integrator that needs the virial every step says so
//! ([`Integrator::wants_virial`]); one that moves the cell gets the neighbour list to follow it.
//! Pieces compose freely; here two half drifts make one free flight:
//!
//! ```
//! use mdrun::cell::Cell;
//! use mdrun::integrate::pieces::{apply, Piece};
//! use mdrun::system::{Species, System};
//!
//! let cell = Cell::new([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]], [true; 3]).unwrap();
//! let mut s = System {
//!     species: vec![Species { name: "Ar".into(), mass: 39.948 }],
//!     types: vec![0],
//!     positions: vec![[1.0, 1.0, 1.0]],
//!     velocities: vec![[2.0, 0.0, 0.0]],
//!     images: vec![[0; 3]],
//!     cell,
//! };
//! // No force: B changes nothing, the A's move the atom by v dt = 2 Å/ps x 0.01 ps.
//! apply(&[Piece::Drift(0.5), Piece::Kick(1.0), Piece::Drift(0.5)], &mut s, &[[0.0; 3]], 0.01, 1);
//! assert!((s.positions[0][0] - 1.02).abs() < 1e-12);
//! assert_eq!(s.velocities[0], [2.0, 0.0, 0.0]);
//! ```

pub mod berendsen;
pub mod c_rescale;
pub mod csvr;
pub mod nose_hoover;
pub mod pieces;

use crate::cell::Vec3;
use crate::system::System;
use pieces::{Friction, Piece};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far step `step` is through a run's ramp of targets from its first step to its last
/// (LAMMPS's `delta` of `fix nh`, `temp/csvr`, `press/berendsen`): 0 at the start, 1 at the end.
pub(crate) fn ramp_fraction((begin, end): (u64, u64), step: u64) -> f64 {
    if step == begin || end <= begin { 0.0 } else { (step as f64 - begin as f64) / (end - begin) as f64 }
}

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
    /// Nosé-Hoover chains with or without the MTK barostat (NVT, NPT, NPH), as LAMMPS's fix nh.
    NoseHoover(Box<nose_hoover::NoseHoover>),
    /// Velocity Verlet with the Bussi-Donadio-Parrinello velocity rescaling (CSVR).
    Csvr(csvr::Csvr),
    /// A thermostatted integrator with stochastic cell rescaling at constant pressure.
    CRescale(Box<Integrator>, c_rescale::CRescale),
    /// Any integrator with the Berendsen barostat at the end of each step (LAMMPS's fix
    /// press/berendsen).
    Berendsen(Box<Integrator>, berendsen::Berendsen),
}

/// The pieces of one step: those before the force evaluation and those after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Splitting {
    pub before: Vec<Piece>,
    pub after: Vec<Piece>,
}

/// What an integrator carries from step to step besides positions and velocities, as named
/// values: a checkpoint stores it whatever the integrator (Langevin: its seed; a Nosé-Hoover
/// chain: its thermostat positions and velocities). Floats are stored as their bits
/// (`f64::to_bits`), so that a restart continues from exactly the same numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegratorState {
    /// The integrator that wrote it ("verlet", "langevin").
    pub kind: String,
    pub values: BTreeMap<String, serde_json::Value>,
}

impl Integrator {
    pub fn name(&self) -> String {
        match self {
            Integrator::VelocityVerlet => "velocity Verlet (NVE)".to_string(),
            Integrator::Langevin { temperature, damping, .. } => {
                format!("Langevin BAOAB (NVT, {temperature} K, damping {} fs)", damping * 1e3)
            }
            Integrator::NoseHoover(nh) => nh.name(),
            Integrator::Csvr(c) => c.name(),
            Integrator::CRescale(inner, b) => format!("{} + {}", inner.name(), b.name()),
            Integrator::Berendsen(inner, b) => format!("{} + {}", inner.name(), b.name()),
        }
    }

    /// The integrator's pieces (the per-atom part of the step; Nosé-Hoover and CSVR add global
    /// scalings around them).
    pub fn splitting(&self) -> Splitting {
        let before = match *self {
            Integrator::VelocityVerlet | Integrator::NoseHoover(_) | Integrator::Csvr(_) => vec![Piece::Kick(0.5), Piece::Drift(1.0)],
            Integrator::CRescale(ref inner, _) | Integrator::Berendsen(ref inner, _) => return inner.splitting(),
            Integrator::Langevin { temperature, damping, seed, zero } => vec![
                Piece::Kick(0.5),
                Piece::Drift(0.5),
                Piece::Friction(Friction { temperature, damping, seed, zero }),
                Piece::Drift(0.5),
            ],
        };
        Splitting { before, after: vec![Piece::Kick(0.5)] }
    }

    /// The random-number seed, for integrators that draw noise.
    pub fn seed(&self) -> Option<u64> {
        match self {
            Integrator::VelocityVerlet | Integrator::NoseHoover(_) => None,
            Integrator::Langevin { seed, .. } => Some(*seed),
            Integrator::Csvr(c) => Some(c.seed),
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.seed(),
        }
    }

    /// Moves every noise seed by `k` (replica k of a plan draws its own noise).
    pub fn offset_seeds(&mut self, k: u64) {
        match self {
            Integrator::Langevin { seed, .. } => *seed += k,
            Integrator::Csvr(c) => c.seed += k,
            Integrator::CRescale(inner, barostat) => {
                inner.offset_seeds(k);
                barostat.seed += k;
            }
            Integrator::Berendsen(inner, _) => inner.offset_seeds(k),
            Integrator::VelocityVerlet | Integrator::NoseHoover(_) => {}
        }
    }

    /// Equal but for the Langevin seed (replicas of one plan).
    pub fn same_but_seed(&self, other: &Integrator) -> bool {
        let unseeded = |i: &Integrator| match i {
            Integrator::Langevin { temperature, damping, zero, .. } => Integrator::Langevin { temperature: *temperature, damping: *damping, seed: 0, zero: *zero },
            Integrator::Csvr(c) => Integrator::Csvr(csvr::Csvr::new(c.start, c.stop, c.period, 0, c.ramp)),
            other => other.clone(),
        };
        match (self, other) {
            (Integrator::NoseHoover(a), Integrator::NoseHoover(b)) => a.same_settings(b),
            _ => unseeded(self) == unseeded(other),
        }
    }

    /// Why the GPU platform cannot run this integrator, if it cannot: its kernels apply
    /// per-atom pieces only; the global scalings of Nosé-Hoover and CSVR (reductions of the
    /// kinetic energy, the cell's motion) are not on the device yet.
    pub fn gpu_unsupported(&self) -> Option<String> {
        match self {
            Integrator::NoseHoover(nh) => Some(format!("Nosé-Hoover {} runs on the CPU only (the GPU kernels integrate NVE and Langevin)", nh.ensemble())),
            Integrator::CRescale(..) => Some("stochastic cell rescaling runs on the CPU only (the GPU kernels keep the cell fixed)".into()),
            Integrator::Berendsen(..) => Some("the Berendsen barostat runs on the CPU only (the GPU kernels keep the cell fixed)".into()),
            Integrator::Csvr(_) => Some("CSVR runs on the CPU only (the GPU kernels integrate NVE and Langevin)".into()),
            _ => None,
        }
    }

    /// Whether every step needs the virial (a barostat).
    pub fn wants_virial(&self) -> bool {
        matches!(self, Integrator::NoseHoover(nh) if nh.wants_virial()) || matches!(self, Integrator::CRescale(..) | Integrator::Berendsen(..))
    }

    /// Energy exchanged with the thermostat and barostat reservoirs so far, eV: LAMMPS's
    /// `ecouple`, which makes `pe + ke + ecouple` (`econserve`) conserved.
    pub fn coupling_energy(&self, system: &System) -> f64 {
        match self {
            Integrator::NoseHoover(nh) => nh.coupling_energy(system),
            Integrator::Csvr(c) => c.coupling_energy(),
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.coupling_energy(system),
            _ => 0.0,
        }
    }

    /// Prepares the step's global state at the start of a run (LAMMPS's fix `setup`): the
    /// chain masses and forces from the current temperature and `virial`.
    pub fn setup(&mut self, system: &System, virial: &[[f64; 3]; 3], step: u64) {
        match self {
            Integrator::NoseHoover(nh) => nh.setup(system, virial, step),
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.setup(system, virial, step),
            _ => {}
        }
    }

    /// Takes up a checkpoint's state (Nosé-Hoover chains and cell, CSVR's reservoir energy).
    pub fn restore(&mut self, saved: &IntegratorState) -> Result<(), String> {
        match self {
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.restore(saved),
            Integrator::NoseHoover(nh) if saved.kind == "nose-hoover" => nh.restore(&saved.values, true),
            Integrator::Csvr(c) if saved.kind == "csvr" => c.restore(&saved.values),
            Integrator::NoseHoover(_) | Integrator::Csvr(_) => Err(format!(
                "was written by a '{}' run; this run's {} cannot continue its state (start it from a structure instead)",
                saved.kind,
                self.name()
            )),
            _ => Ok(()),
        }
    }

    pub fn is_nve(&self) -> bool {
        matches!(self, Integrator::VelocityVerlet)
    }

    /// Whether the run conserves an energy whose drift measures the integration's quality: NVE's
    /// total energy, Nosé-Hoover's extended energy (with constant targets), CSVR's effective
    /// energy (the total plus what the thermostat took).
    pub fn has_conserved_energy(&self) -> bool {
        match self {
            Integrator::VelocityVerlet => true,
            Integrator::NoseHoover(nh) => nh.thermostat.as_ref().is_none_or(|t| t.start == t.stop) && nh.barostat.as_ref().is_none_or(|b| b.start == b.stop),
            Integrator::Csvr(c) => c.start == c.stop,
            Integrator::Langevin { .. } | Integrator::CRescale(..) | Integrator::Berendsen(..) => false,
        }
    }

    /// The highest temperature a thermostat is asked to reach over the run (K); None without
    /// a thermostat.
    pub fn highest_target_temperature(&self) -> Option<f64> {
        match self {
            Integrator::VelocityVerlet => None,
            Integrator::Langevin { temperature, .. } => Some(*temperature),
            Integrator::NoseHoover(nh) => nh.thermostat.as_ref().map(|t| t.start.max(t.stop)),
            Integrator::Csvr(c) => Some(c.start.max(c.stop)),
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.highest_target_temperature(),
        }
    }

    /// What the summary calls the conserved quantity.
    pub fn conserved_name(&self) -> &'static str {
        match self {
            Integrator::VelocityVerlet => "NVE energy",
            Integrator::NoseHoover(_) => "Nosé-Hoover conserved energy",
            Integrator::Csvr(_) => "CSVR effective energy",
            Integrator::Langevin { .. } | Integrator::CRescale(..) | Integrator::Berendsen(..) => "energy",
        }
    }

    /// The state a checkpoint keeps.
    pub fn state(&self) -> IntegratorState {
        match self {
            Integrator::VelocityVerlet => IntegratorState { kind: "verlet".into(), values: BTreeMap::new() },
            Integrator::Langevin { seed, .. } => IntegratorState { kind: "langevin".into(), values: BTreeMap::from([("seed".to_string(), (*seed).into())]) },
            Integrator::NoseHoover(nh) => IntegratorState { kind: "nose-hoover".into(), values: nh.state() },
            Integrator::Csvr(c) => IntegratorState { kind: "csvr".into(), values: c.state() },
            // The cell rescaling keeps no state of its own (its noise is keyed by the step).
            Integrator::CRescale(inner, _) | Integrator::Berendsen(inner, _) => inner.state(),
        }
    }

    /// Continuing from a checkpoint's `saved` state: a note when this integrator does not
    /// continue it exactly (a Langevin run restarted with another seed draws other noise).
    pub fn resume_note(&self, saved: &IntegratorState) -> Option<String> {
        let saved_seed = saved.values.get("seed").and_then(|s| s.as_u64());
        match (saved_seed, self.seed()) {
            (Some(was), now) if Some(was) != now => Some(format!(
                "was written with Langevin seed {was}, this run uses {now:?}: the noise from here on differs from an uninterrupted run"
            )),
            _ => None,
        }
    }

    /// Takes the state from step `step` to the positions of step `step + 1` (`virial`: of the
    /// current positions, for a barostat).
    pub fn before_forces(&mut self, system: &mut System, forces: &[Vec3], virial: &[[f64; 3]; 3], dt: f64, step: u64) {
        match self {
            Integrator::CRescale(inner, barostat) => {
                barostat.apply(system, virial, dt, step + 1);
                inner.before_forces(system, forces, virial, dt, step);
            }
            Integrator::Berendsen(inner, _) => inner.before_forces(system, forces, virial, dt, step),
            Integrator::NoseHoover(nh) => nh.before_forces(system, forces, virial, dt, step + 1),
            _ => pieces::apply(&self.splitting().before, system, forces, dt, step + 1),
        }
    }

    /// Finishes the step `step` (the new one) with the forces and virial at the new positions.
    pub fn after_forces(&mut self, system: &mut System, forces: &[Vec3], virial: &[[f64; 3]; 3], dt: f64, step: u64) {
        match self {
            Integrator::CRescale(inner, _) => inner.after_forces(system, forces, virial, dt, step),
            Integrator::Berendsen(inner, barostat) => {
                inner.after_forces(system, forces, virial, dt, step);
                barostat.apply(system, virial, dt, step);
            }
            Integrator::NoseHoover(nh) => nh.after_forces(system, forces, virial, dt),
            Integrator::Csvr(c) => {
                pieces::apply(&[Piece::Kick(0.5)], system, forces, dt, 0);
                c.rescale(system, dt, step);
            }
            // The after pieces draw no noise: the step number does not matter.
            _ => pieces::apply(&self.splitting().after, system, forces, dt, 0),
        }
    }
}
