//! The GPU platform: `GpuSimulation` (the whole step in WGSL kernels) as an [`Engine`].

use super::{Engine, EngineError, NO_TIMESTAMPS, TimeSplit, gpu_potential};
use crate::gpu::{GpuContext, GpuError, GpuSimulation};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::Plan;
use crate::simulation::SimulationError;
use crate::system::System;
use crate::thermo::ThermoSample;


pub(super) fn start(ctx: GpuContext, plan: &Plan, system: System, step: u64, reference: Option<crate::neighbor::ListReference>) -> Result<Box<dyn Engine>, EngineError> {
    let potential = gpu_potential(plan, &system).map_err(EngineError::Potential)?;
    let sim = GpuSimulation::new(ctx, system, potential, plan.integrator.clone(), plan.timestep, plan.skin, plan.max_force, step, reference.map(|r| r.positions))
        .map_err(|e| EngineError::Simulation(e.into()))?;
    Ok(Box::new(sim))
}

impl Engine for GpuSimulation {
    fn describe(&self, _threads: usize) -> String {
        format!("gpu: {} (f32 forces, float-float positions, fixed-point sums)", self.adapter())
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
        self.potential.name()
    }

    fn potential_cautions(&self) -> Vec<String> {
        self.potential.cautions()
    }

    fn take_outside_data_summary(&mut self) -> Vec<String> {
        GpuSimulation::take_outside_data_summary(self, None)
    }

    fn outside_data_streak(&mut self) -> u64 {
        GpuSimulation::outside_data_streak(self, 0)
    }

    fn integrator(&self) -> &Integrator {
        &self.integrator
    }

    fn is_gpu(&self) -> bool {
        true
    }

    fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
        Ok(GpuSimulation::advance(self, steps, observe)?)
    }

    fn thermo(&self) -> ThermoSample {
        GpuSimulation::thermo(self)
    }

    fn system(&mut self) -> Result<&System, GpuError> {
        GpuSimulation::system(self)
    }

    fn checkpoint(&mut self, _threads: usize) -> Result<Checkpoint, GpuError> {
        GpuSimulation::checkpoint(self)
    }

    fn last_good_checkpoint(&mut self, _threads: usize) -> Result<Checkpoint, GpuError> {
        GpuSimulation::last_good_checkpoint(self)
    }

    fn builds(&self) -> u64 {
        GpuSimulation::builds(self)
    }

    fn time_split(&self) -> TimeSplit {
        TimeSplit { gpu: self.gpu_time, notes: self.notes(), ..Default::default() }
    }

    fn enable_profiling(&mut self) -> Result<(), String> {
        if GpuSimulation::enable_profiling(self) { Ok(()) } else { Err(NO_TIMESTAMPS.into()) }
    }

    fn kernel_times(&self) -> std::collections::BTreeMap<String, f64> {
        GpuSimulation::kernel_times(self)
    }

    fn kernel_calls(&self) -> std::collections::BTreeMap<String, u64> {
        GpuSimulation::kernel_calls(self)
    }
}
