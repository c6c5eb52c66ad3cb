//! One simulation: system + potential + integrator + neighbour list, and the step:
//! integrate → (rebuild neighbours if an atom moved more than skin/2) → forces → integrate.
//!
//! Every force evaluation is checked: a non-finite force, or one above `max_force`, stops the
//! step with a [`BlowUp`] that names the atoms, and the state at the start of that step is kept
//! so the caller can save it.

pub use crate::blowup::BlowUp;
use crate::cell::Vec3;
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::neighbor::{NeighborError, NeighborList};
use crate::potential::{ForceOutput, Potential, Want};
use crate::system::System;
use crate::thermo::ThermoSample;
use std::time::{Duration, Instant};

/// Closer than this, two atoms are taken to sit on top of each other (a broken input).
pub const OVERLAP_DISTANCE: f64 = 0.1;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SimulationError {
    #[error(
        "atoms {i} ({name_i}) and {j} ({name_j}) are {distance:.4} Å apart (closer than {OVERLAP_DISTANCE} Å): atoms on top of each other"
    )]
    Overlap {
        i: usize,
        j: usize,
        name_i: String,
        name_j: String,
        distance: f64,
    },
    #[error(transparent)]
    Neighbor(#[from] NeighborError),
    #[error("{0}")]
    BlowUp(BlowUp),
    #[error(transparent)]
    Gpu(crate::gpu::GpuError),
}

/// The GPU reports its blow-ups as its own errors (it knows nothing of this module); they are
/// blow-ups like the CPU's.
impl From<crate::gpu::GpuError> for SimulationError {
    fn from(e: crate::gpu::GpuError) -> SimulationError {
        match e {
            crate::gpu::GpuError::BlowUp(b) => SimulationError::BlowUp(b),
            other => SimulationError::Gpu(other),
        }
    }
}

/// Wall time spent in each part of the step.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    pub force: Duration,
    pub neighbor: Duration,
    pub integrate: Duration,
}

/// When the neighbour list is rebuilt (LAMMPS `neigh_modify every N delay D check yes|no`):
/// at steps at least `delay` after the last build that are multiples of `every` since it, and
/// with `check`, only if an atom has moved more than half the skin. The default (1, 0, yes)
/// rebuilds exactly when needed; `check no` reproduces LAMMPS decks that rebuild on a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildPolicy {
    pub every: u64,
    pub delay: u64,
    pub check: bool,
}

impl Default for RebuildPolicy {
    fn default() -> Self {
        RebuildPolicy { every: 1, delay: 0, check: true }
    }
}

/// The state at the start of the last step, kept to be saved if the step blows up.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    step: u64,
    positions: Vec<Vec3>,
    velocities: Vec<Vec3>,
    images: Vec<[i32; 3]>,
    cell: Option<crate::cell::Cell>,
}

pub struct Simulation {
    pub system: System,
    pub potential: Box<dyn Potential>,
    pub integrator: Integrator,
    pub list: NeighborList,
    pub forces: ForceOutput,
    /// ps
    pub timestep: f64,
    pub step: u64,
    /// eV/Å
    pub max_force: f64,
    pub timers: Timers,
    pub rebuild: RebuildPolicy,
    /// Steps since the list was last built.
    since_build: u64,
    last_good: Snapshot,
}

impl Simulation {
    /// Sets up neighbours and the first forces. With `reference` (from a checkpoint) the list is
    /// rebuilt from those positions, exactly as it was, instead of from the current ones.
    pub fn new(
        mut system: System,
        potential: Box<dyn Potential>,
        integrator: Integrator,
        timestep: f64,
        skin: f64,
        max_force: f64,
        step: u64,
        reference: Option<crate::neighbor::ListReference>,
    ) -> Result<Simulation, SimulationError> {
        let mut list = NeighborList::new(potential.list_kind(), potential.cutoff(), skin);
        match reference {
            Some(crate::neighbor::ListReference { positions, cell: None }) => list.build(&positions, &system.cell)?,
            Some(crate::neighbor::ListReference { positions, cell: Some(cell) }) => {
                list.build(&positions, &cell)?;
                list.follow_cell(&system.cell);
            }
            None => {
                system.wrap_positions();
                list.build(&system.positions, &system.cell)?;
            }
        }
        let mut sim = Simulation {
            system,
            potential,
            integrator,
            list,
            forces: ForceOutput::default(),
            timestep,
            step,
            max_force,
            timers: Timers::default(),
            rebuild: RebuildPolicy::default(),
            since_build: 0,
            last_good: Snapshot::default(),
        };
        sim.check_overlaps()?;
        sim.compute(Want::ALL).map_err(SimulationError::BlowUp)?;
        sim.integrator.setup(&sim.system, &sim.forces.virial, step);
        Ok(sim)
    }

    fn check_overlaps(&self) -> Result<(), SimulationError> {
        // The list in force reaches far enough unless the potential's cutoff plus skin is
        // shorter than the overlap distance itself; then look with a list of that reach.
        let closest = if self.list.cutoff() + self.list.skin() >= OVERLAP_DISTANCE {
            self.list.closest_pair(&self.system.positions)
        } else {
            let mut wrapped = self.system.clone();
            wrapped.wrap_positions();
            let mut probe = NeighborList::new(self.list.kind(), OVERLAP_DISTANCE, 0.0);
            probe.build(&wrapped.positions, &wrapped.cell)?;
            probe.closest_pair(&wrapped.positions)
        };
        match closest {
            Some((i, j, r)) if r < OVERLAP_DISTANCE => Err(self.overlap(i, j, r)),
            _ => Ok(()),
        }
    }

    fn overlap(&self, i: usize, j: usize, distance: f64) -> SimulationError {
        let (i, j) = (i.min(j), i.max(j));
        SimulationError::Overlap {
            i: i + 1,
            j: j + 1,
            name_i: self.system.species_name(i).to_string(),
            name_j: self.system.species_name(j).to_string(),
            distance,
        }
    }

    /// Evaluates forces at the current positions and checks them.
    fn compute(&mut self, want: Want) -> Result<(), BlowUp> {
        let t = Instant::now();
        self.potential
            .compute(&self.system, &self.list, want, &mut self.forces);
        self.timers.force += t.elapsed();
        self.check_forces(want)
    }

    fn check_forces(&self, want: Want) -> Result<(), BlowUp> {
        let limit_sq = self.max_force * self.max_force;
        let bad = |f: &Vec3| !(f[0] * f[0] + f[1] * f[1] + f[2] * f[2] <= limit_sq);
        let energy_bad = want.energy && !self.forces.energy.is_finite();
        if !energy_bad && !self.forces.forces.iter().any(bad) {
            return Ok(());
        }
        let mut atoms: Vec<(usize, String, f64)> = self
            .forces
            .forces
            .iter()
            .enumerate()
            .filter(|(_, f)| bad(f))
            .map(|(i, f)| {
                let mag = (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt();
                (i + 1, self.system.species_name(i).to_string(), mag)
            })
            .collect();
        // Non-finite first, then largest.
        atoms.sort_by(|a, b| b.2.is_nan().cmp(&a.2.is_nan()).then(b.2.total_cmp(&a.2)));
        atoms.truncate(5);
        let closest = self
            .list
            .closest_pair(&self.system.positions)
            .map(|(i, j, r)| (i + 1, j + 1, r));
        Err(BlowUp {
            step: self.step,
            atoms,
            limit: self.max_force,
            closest,
            reason: self.potential.failure(),
        })
    }

    /// Advances one step. `want` says whether the new step needs energy and virial (thermo).
    pub fn advance(&mut self, want: Want) -> Result<(), SimulationError> {
        self.last_good.step = self.step;
        self.last_good.positions.clone_from(&self.system.positions);
        self.last_good
            .velocities
            .clone_from(&self.system.velocities);
        self.last_good.images.clone_from(&self.system.images);
        self.last_good.cell = Some(self.system.cell.clone());
        let want = if self.integrator.wants_virial() { Want { virial: true, ..want } } else { want };

        let t = Instant::now();
        self.integrator.before_forces(
            &mut self.system,
            &self.forces.forces,
            &self.forces.virial,
            self.timestep,
            self.step,
        );
        self.step += 1;
        if self.integrator.wants_virial() {
            self.list.follow_cell(&self.system.cell);
        }
        let t_neigh = Instant::now();
        self.timers.integrate += t_neigh - t;
        self.since_build += 1;
        let RebuildPolicy { every, delay, check } = self.rebuild;
        let scheduled = self.since_build >= delay && self.since_build % every.max(1) == 0;
        if scheduled && (!check || self.list.needs_rebuild(&self.system.positions)) {
            self.system.wrap_positions();
            self.list.build(&self.system.positions, &self.system.cell)?;
            self.since_build = 0;
        }
        self.timers.neighbor += t_neigh.elapsed();
        self.compute(want).map_err(SimulationError::BlowUp)?;
        let t = Instant::now();
        self.integrator
            .after_forces(&mut self.system, &self.forces.forces, &self.forces.virial, self.timestep, self.step);
        self.timers.integrate += t.elapsed();
        Ok(())
    }

    /// Energy, forces and virial at the current positions (a minimiser's evaluation): the list
    /// is rebuilt when atoms have moved half the skin, and the atoms that rebuild wrapped into
    /// the cell are returned with the vector they were moved by (subtracted).
    pub fn evaluate_moved(&mut self) -> Result<Option<Vec<(usize, Vec3)>>, SimulationError> {
        let mut moved = None;
        if self.list.needs_rebuild(&self.system.positions) {
            let before = self.system.images.clone();
            self.system.wrap_positions();
            self.list.build(&self.system.positions, &self.system.cell)?;
            moved = Some(
                before
                    .iter()
                    .zip(&self.system.images)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| (i, self.system.cell.shift_vector([b[0] - a[0], b[1] - a[1], b[2] - a[2]])))
                    .collect(),
            );
        }
        self.compute(Want::ALL).map_err(SimulationError::BlowUp)?;
        Ok(moved)
    }

    /// Moves to the cell with `vectors`, the atoms keeping their fractional coordinates (a
    /// relaxation's cell step), with a fresh list and forces. Vectors that make no cell leave
    /// non-finite positions, which the list build reports.
    pub fn rescale_cell(&mut self, vectors: [Vec3; 3]) -> Result<(), SimulationError> {
        self.system.move_to_cell(vectors);
        self.system.wrap_positions();
        self.list.build(&self.system.positions, &self.system.cell)?;
        self.compute(Want::ALL).map_err(SimulationError::BlowUp)
    }

    /// Thermo quantities of the current step (forces must have been computed with `Want::ALL`).
    pub fn thermo(&self) -> ThermoSample {
        let mut sample = ThermoSample::new(self.step, self.step as f64 * self.timestep, &self.system, self.forces.energy, self.forces.virial);
        sample.coupling_energy = self.integrator.coupling_energy(&self.system);
        sample.force_deviation = self.potential.force_deviation();
        sample
    }

    /// The current state, with the neighbour list's reference so a restart is bit-identical.
    pub fn checkpoint(&self, threads: usize) -> Checkpoint {
        Checkpoint {
            step: self.step,
            system: self.system.clone(),
            reference: Some(self.list.reference().to_vec()),
            reference_cell: self.list.list_reference(&self.system.cell).cell.map(|c| *c.vectors()),
            threads,
            integrator: self.integrator.state(),
            potential: self.potential.carried_state(),
        }
    }

    /// The state at the start of the last step (after a blow-up: the last good state).
    pub fn last_good_checkpoint(&self, threads: usize) -> Checkpoint {
        let mut system = self.system.clone();
        system.positions.clone_from(&self.last_good.positions);
        system.velocities.clone_from(&self.last_good.velocities);
        system.images.clone_from(&self.last_good.images);
        if let Some(cell) = &self.last_good.cell {
            system.cell = cell.clone();
        }
        Checkpoint {
            step: self.last_good.step,
            system,
            reference: None,
            reference_cell: None,
            threads,
            integrator: self.integrator.state(),
            // What the potential carried into the step before is gone: a restart from here
            // starts its charges cold (correct, not bit-identical to a run that never failed).
            potential: Vec::new(),
        }
    }
}
