//! Potentials: what turns positions into energy, forces and virial.
//!
//! To add one, implement [`Potential`]: say how far it reaches ([`Potential::cutoff`]), which
//! neighbour list it wants, and fill a [`ForceOutput`] from the system and that list. Energy and
//! virial are only asked for on steps that report them ([`Want`]), so a potential may skip that
//! work otherwise. The engine checks the output (finite, not absurd) and integrates it.
//!
//! ```
//! use mdrun::potential::{ForceOutput, Potential, Want};
//! use mdrun::neighbor::{ListKind, NeighborList};
//! use mdrun::system::System;
//!
//! /// A harmonic tether of every atom to the origin: E = ½ k |r|².
//! struct Tether { k: f64 }
//!
//! impl Potential for Tether {
//!     fn name(&self) -> String { "tether".into() }
//!     fn cutoff(&self) -> f64 { 0.0 }
//!     fn list_kind(&self) -> ListKind { ListKind::Half }
//!     fn compute(&mut self, system: &System, _list: &NeighborList, want: Want, out: &mut ForceOutput) {
//!         out.clear(system.len());
//!         for (f, r) in out.forces.iter_mut().zip(&system.positions) {
//!             *f = r.map(|x| -self.k * x);
//!             if want.energy { out.energy += 0.5 * self.k * (r[0]*r[0] + r[1]*r[1] + r[2]*r[2]); }
//!         }
//!     }
//! }
//! ```

pub mod batch;
pub mod committee;
pub mod lj;
pub mod mcgm;
pub mod morse;
pub mod pair;
pub mod styles;

use crate::cell::Vec3;
use crate::neighbor::{ListKind, NeighborList};
use crate::system::System;

/// What a force evaluation must produce besides forces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub energy: bool,
    pub virial: bool,
}

impl Want {
    pub const FORCES: Want = Want {
        energy: false,
        virial: false,
    };
    pub const ALL: Want = Want {
        energy: true,
        virial: true,
    };
}

/// The result of one force evaluation.
#[derive(Clone, Debug, Default)]
pub struct ForceOutput {
    /// eV/Å, per atom.
    pub forces: Vec<Vec3>,
    /// Potential energy, eV (when asked for).
    pub energy: f64,
    /// Virial tensor W_ab = Σ_pairs r_ij,a f_ij,b (eV), as LAMMPS accumulates it; the pressure
    /// tensor is (Σ m v_a v_b + W_ab) / V (when asked for).
    pub virial: [[f64; 3]; 3],
}

impl ForceOutput {
    /// Zeroes everything for `n` atoms, keeping the allocation.
    pub fn clear(&mut self, n: usize) {
        self.forces.clear();
        self.forces.resize(n, [0.0; 3]);
        self.energy = 0.0;
        self.virial = [[0.0; 3]; 3];
    }
}

pub trait Potential: Send {
    /// A short description for logs ("lj/cut 8.5 Å").
    fn name(&self) -> String;
    /// The longest distance at which two atoms interact, Å.
    fn cutoff(&self) -> f64;
    /// Which neighbour list the potential reads.
    fn list_kind(&self) -> ListKind;
    /// Evaluates forces (always) and energy and virial (when `want` says so) into `out`.
    fn compute(&mut self, system: &System, list: &NeighborList, want: Want, out: &mut ForceOutput);
    /// Where the force time went, for potentials with distinct stages (the ML potential's
    /// graph, clustering, forward and backward passes): (stage, seconds) so far.
    fn stage_times(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Facts about the run the potential wants reported at its end (one line each).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Cautions the potential wants printed before the run starts (one line each).
    fn cautions(&self) -> Vec<String> {
        Vec::new()
    }
    /// A learned potential: one line summing up the evaluations since the last call that had
    /// pairs closer than its training data (printed after each thermo row).
    fn take_outside_data_summary(&mut self) -> Option<String> {
        None
    }
    /// Thermo rows in a row (up to the last summary) whose interval had pairs outside the
    /// training data.
    fn outside_data_streak(&self) -> u64 {
        0
    }
    /// A committee of learned models: how far its members' forces disagreed at the last
    /// evaluation that computed the energy (None otherwise, and for any other potential).
    fn force_deviation(&self) -> Option<committee::ForceDeviation> {
        None
    }
    /// What the potential carries from one evaluation to the next that its results depend on
    /// (a learned potential's equilibrated charges, where the next solve starts), as it stood
    /// before the last evaluation: checkpoints save it, so that a restart, whose first
    /// evaluation repeats the checkpoint step's, gives the same bits. Empty: nothing.
    fn carried_state(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Takes `carried_state`'s values back, before the first evaluation of a restart.
    fn restore_carried_state(&mut self, values: &[f64]) -> Result<(), String> {
        match values.is_empty() {
            true => Ok(()),
            false => Err(format!("{} carries nothing from step to step, but the checkpoint saved {} values for it", self.name(), values.len())),
        }
    }
    /// Why the last evaluation gave no forces (NaN everywhere), when the potential knows: it
    /// could not evaluate that configuration (a blow-up report gives the reason).
    fn failure(&self) -> Option<String> {
        None
    }
}
