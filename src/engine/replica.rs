//! One replica of a batch on the GPU (`[run] replicas` with platform gpu) as an [`Engine`]:
//! its own run loop and outputs, its steps taken by the shared `GpuSimulation` for all.

use super::{Engine, TimeSplit};
use crate::gpu::{GpuError, GpuSlot};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::Plan;
use crate::simulation::SimulationError;
use crate::system::System;
use crate::thermo::ThermoSample;

/// A replica's view of the shared GPU batch, with what the run loop asks for often.
pub struct GpuReplica {
    slot: GpuSlot,
    integrator: Integrator,
    timestep: f64,
    step: u64,
    potential_name: String,
    cautions: Vec<String>,
    adapter: String,
    replicas: usize,
    /// The replica as of the last read-back.
    system: System,
}

/// Replica `slot.slot` of a GPU batch (set up by `crate::run::run_replicas`).
pub fn gpu_replica(slot: GpuSlot, plan: &Plan) -> Box<dyn Engine> {
    let (step, potential_name, cautions, adapter, replicas, system) = slot.batch.with(|sim| {
        let system = sim.system_of(slot.slot).cloned().unwrap_or_else(|_| plan.system.clone());
        (sim.step, sim.potential.name(), sim.potential.cautions(), sim.adapter(), sim.structures(), system)
    });
    Box::new(GpuReplica { slot, integrator: plan.integrator.clone(), timestep: plan.timestep, step, potential_name, cautions, adapter, replicas, system })
}

impl Engine for GpuReplica {
    fn describe(&self, _threads: usize) -> String {
        format!(
            "gpu: {} (f32 forces, float-float positions, fixed-point sums; replica {} of {} in one batch)",
            self.adapter, self.slot.slot, self.replicas
        )
    }

    fn checkpoint_threads(&self, _threads: usize) -> usize {
        0
    }

    fn step(&self) -> u64 {
        self.step
    }

    fn timestep(&self) -> f64 {
        self.timestep
    }

    fn potential_name(&self) -> String {
        self.potential_name.clone()
    }

    fn potential_cautions(&self) -> Vec<String> {
        self.cautions.clone()
    }

    fn take_outside_data_summary(&mut self) -> Vec<String> {
        let k = self.slot.slot;
        self.slot.batch.with(|sim| sim.take_outside_data_summary(Some(k)))
    }

    fn outside_data_streak(&mut self) -> u64 {
        let k = self.slot.slot;
        self.slot.batch.with(|sim| crate::gpu::GpuSimulation::outside_data_streak(sim, k))
    }

    fn integrator(&self) -> &Integrator {
        &self.integrator
    }

    fn is_gpu(&self) -> bool {
        true
    }

    /// The replicas of a GPU batch all take the batch's reading at the last block, so that
    /// they stop after the same step.
    fn interrupted(&self, _flag: &std::sync::atomic::AtomicBool) -> bool {
        self.slot.batch.interrupted()
    }

    /// Replicas of a GPU batch size their blocks alike: the batch's suggestion.
    fn shared_block_cap(&self) -> Option<u64> {
        Some(self.slot.batch.block_cap())
    }

    fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
        self.slot.batch.advance(self.slot.slot, steps, observe)?;
        self.step = self.slot.batch.with(|sim| sim.step);
        Ok(())
    }

    fn thermo(&self) -> ThermoSample {
        self.slot.batch.with(|sim| sim.thermo_of(self.slot.slot))
    }

    fn system(&mut self) -> Result<&System, GpuError> {
        let k = self.slot.slot;
        self.system = self.slot.batch.with(|sim| sim.system_of(k).cloned())?;
        Ok(&self.system)
    }

    fn checkpoint(&mut self, _threads: usize) -> Result<Checkpoint, GpuError> {
        self.slot.batch.with(|sim| sim.checkpoint_of(self.slot.slot))
    }

    fn last_good_checkpoint(&mut self, _threads: usize) -> Result<Checkpoint, GpuError> {
        self.slot.batch.with(|sim| sim.last_good_checkpoint_of(self.slot.slot))
    }

    fn builds(&self) -> u64 {
        self.slot.batch.with(|sim| sim.builds_of(self.slot.slot))
    }

    /// The GPU time is the whole batch's.
    fn time_split(&self) -> TimeSplit {
        self.slot.batch.with(|sim| TimeSplit { gpu: sim.gpu_time, notes: sim.notes_of(self.slot.slot), ..Default::default() })
    }

    /// The batch is profiled as a whole (`run_replicas_on_the_gpu`).
    fn enable_profiling(&mut self) -> Result<(), String> {
        Ok(())
    }
}
