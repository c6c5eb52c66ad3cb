//! The CPU platform: `Simulation` (f64, rayon threads) as an [`Engine`].

use super::{Engine, EngineError, TimeSplit};
use crate::gpu::GpuError;
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::{Plan, PotentialSpec};
use crate::potential::Want;
use crate::potential::batch::BatchSlot;
use crate::simulation::{Simulation, SimulationError};
use crate::system::System;
use crate::thermo::ThermoSample;
use std::time::Duration;

/// The CPU simulation of `plan` from `system` at `step` (a replica's potential evaluated in
/// its batch when `batch` is given); `carried`: the potential's state from a checkpoint.
pub(super) fn start(plan: &Plan, system: System, step: u64, reference: Option<crate::neighbor::ListReference>, carried: &[f64], batch: Option<BatchSlot>) -> Result<Box<dyn Engine>, EngineError> {
    let mut potential = match (&plan.potential, batch) {
        (PotentialSpec::Ml { model, charge, ewald, .. }, Some(batch)) => {
            let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
            let ml = crate::potential::mcgm::MlPotential::load(model, &names)
                .and_then(|p| p.with_ewald(*ewald))
                .and_then(|p| p.for_system(&system.cell, *charge))
                .map_err(EngineError::Potential)?
                .describe_charges_for(&system.positions, &system.cell);
            Box::new(ml.in_batch(batch))
        }
        _ => plan.potential.instantiate(&system).map_err(EngineError::Potential)?,
    };
    potential.restore_carried_state(carried).map_err(EngineError::Potential)?;
    let mut sim = Simulation::new(system, potential, plan.integrator.clone(), plan.timestep, plan.skin, plan.max_force, step, reference)
        .map_err(EngineError::Simulation)?;
    sim.rebuild = plan.rebuild;
    Ok(Box::new(sim))
}

impl Engine for Simulation {
    fn describe(&self, threads: usize) -> String {
        format!("cpu ({threads} thread(s), f64)")
    }

    fn checkpoint_threads(&self, threads: usize) -> usize {
        threads
    }

    fn step(&self) -> u64 {
        self.step
    }

    fn timestep(&self) -> f64 {
        self.timestep
    }

    fn potential_name(&self) -> String {
        self.potential.name()
    }

    fn potential_cautions(&self) -> Vec<String> {
        self.potential.cautions()
    }

    fn take_outside_data_summary(&mut self) -> Vec<String> {
        self.potential.take_outside_data_summary().into_iter().collect()
    }

    fn outside_data_streak(&mut self) -> u64 {
        self.potential.outside_data_streak()
    }

    fn integrator(&self) -> &Integrator {
        &self.integrator
    }

    fn is_gpu(&self) -> bool {
        false
    }

    fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
        for k in 0..steps {
            let want = if observe && k + 1 == steps { Want::ALL } else { Want::FORCES };
            Simulation::advance(self, want)?;
        }
        Ok(())
    }

    fn thermo(&self) -> ThermoSample {
        Simulation::thermo(self)
    }

    fn system(&mut self) -> Result<&System, GpuError> {
        Ok(&self.system)
    }

    fn checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> {
        Ok(Simulation::checkpoint(self, threads))
    }

    fn last_good_checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> {
        Ok(Simulation::last_good_checkpoint(self, threads))
    }

    fn builds(&self) -> u64 {
        self.list.builds()
    }

    fn time_split(&self) -> TimeSplit {
        TimeSplit {
            force: self.timers.force,
            neighbor: self.timers.neighbor,
            integrate: self.timers.integrate,
            gpu: Duration::ZERO,
            force_stages: self.potential.stage_times(),
            notes: self.potential.notes(),
        }
    }

    fn forces(&self) -> Option<&[crate::cell::Vec3]> {
        Some(&self.forces.forces)
    }
}
