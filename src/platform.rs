//! One simulation on the platform it runs on: the CPU (`Simulation`, f64, rayon threads) or the
//! GPU (`GpuSimulation`, WGSL kernels through wgpu). The run loop talks to this and nothing
//! else, so both platforms share observers, checkpoints and the summary.

use crate::gpu::{GpuContext, GpuError, GpuPotential, GpuSimulation, GpuSlot};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::{Plan, Platform, PotentialSpec};
use crate::potential::Want;
use crate::potential::batch::BatchSlot;
use crate::simulation::{Simulation, SimulationError};
use crate::system::System;
use crate::thermo::ThermoSample;
use std::time::Duration;

pub enum Engine {
    Cpu(Simulation),
    Gpu(Box<GpuSimulation>),
    /// One replica of a batch on the GPU (`[run] replicas` with platform gpu).
    GpuReplica(Box<GpuReplica>),
}

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

/// The potential as the GPU kernels take it.
pub fn gpu_potential(plan: &Plan, system: &System) -> Result<GpuPotential, String> {
    Ok(match &plan.potential {
        PotentialSpec::Pair(pair) => GpuPotential::Pair(pair.clone()),
        PotentialSpec::Mcgm { model } => {
            let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
            let model = crate::potential::mcgm::MlPotential::load(model, &names).and_then(|p| p.into_gpu())?;
            GpuPotential::Ml(Box::new(model))
        }
    })
}

/// Time spent per part of the step; on the GPU only the total is known.
#[derive(Clone, Debug, Default)]
pub struct TimeSplit {
    pub force: Duration,
    pub neighbor: Duration,
    pub integrate: Duration,
    pub gpu: Duration,
    /// The potential's own stages within `force` (ML: graph, clustering, forward, backward).
    pub force_stages: Vec<(&'static str, f64)>,
    /// The potential's end-of-run notes.
    pub notes: Vec<String>,
}

/// Where the plan will run: Ok(None) is the CPU, Ok(Some(ctx)) a GPU. `notice` receives the
/// one-line reason when `auto` falls back to the CPU.
pub fn choose(
    plan: &Plan,
    platform: Platform,
    system: &System,
    notice: &mut dyn FnMut(&str),
) -> Result<Option<GpuContext>, String> {
    // Why the GPU cannot run this plan, if it cannot. Asked only when a GPU is in question: with
    // a model it loads the model, which the CPU would not need to do twice.
    let unsupported = || -> Option<String> {
        let reason = match &plan.potential {
            PotentialSpec::Mcgm { model } => {
                let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
                match crate::potential::mcgm::MlPotential::load(model, &names).and_then(|p| p.into_gpu()) {
                    Ok(m) => crate::gpu::md::unsupported_reason(system, m.inference.cutoff + plan.skin)
                        .or_else(|| crate::gpu::ml::unsupported_reason(&m.inference, system.len())),
                    Err(e) => Some(e),
                }
            }
            PotentialSpec::Pair(pair) => match pair.style.gpu {
                Err(why) => Some(format!("pair style {}: {why}", pair.style.lammps)),
                Ok(_) => crate::gpu::md::unsupported_reason(system, pair.max_cutoff() + plan.skin),
            },
        };
        reason
            .or_else(|| {
                matches!(plan.integrator, crate::integrate::Integrator::Langevin { zero: true, .. })
                    .then(|| "Langevin with zero = true (net noise removed) runs on the CPU".to_string())
            })
            .or_else(|| {
                (plan.rebuild != crate::simulation::RebuildPolicy::default()).then(|| {
                    "the GPU rebuilds its neighbour list when an atom has moved half the skin; [neighbor] every/delay/check schedules run on the CPU".to_string()
                })
            })
    };
    match platform {
        Platform::Cpu => Ok(None),
        Platform::Gpu => {
            if let Some(reason) = unsupported() {
                return Err(format!("platform \"gpu\": {reason}; use platform = \"cpu\""));
            }
            match GpuContext::open(false) {
                Ok(Some(ctx)) => Ok(Some(ctx)),
                Ok(None) => Err(format!("platform \"gpu\": {}", GpuError::NoAdapter)),
                Err(e) => Err(format!("platform \"gpu\": {e}")),
            }
        }
        Platform::Auto => match GpuContext::open(true) {
            Ok(Some(ctx)) => match unsupported() {
                Some(reason) => {
                    notice(&format!("platform auto: running on the CPU ({reason})"));
                    Ok(None)
                }
                None => Ok(Some(ctx)),
            },
            Ok(None) => {
                let seen = crate::gpu::list_adapters();
                let what = match seen.first() {
                    Some(a) => format!("only the software adapter {}", a.name),
                    None => "no GPU adapter".to_string(),
                };
                notice(&format!(
                    "platform auto: wgpu sees {what}; running on the CPU (platform = \"gpu\" forces the GPU)"
                ));
                Ok(None)
            }
            Err(e) => {
                notice(&format!("platform auto: the GPU failed to start ({e}); running on the CPU"));
                Ok(None)
            }
        },
    }
}

impl Engine {
    /// Sets up the simulation on the chosen platform.
    pub fn start(
        gpu: Option<GpuContext>,
        plan: &Plan,
        system: System,
        step: u64,
        reference: Option<Vec<crate::cell::Vec3>>,
        batch: Option<BatchSlot>,
    ) -> Result<Engine, EngineError> {
        match gpu {
            None => {
                let potential = match (&plan.potential, batch) {
                    (PotentialSpec::Mcgm { model }, Some(batch)) => {
                        let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
                        let ml = crate::potential::mcgm::MlPotential::load(model, &names).map_err(EngineError::Potential)?;
                        Box::new(ml.in_batch(batch))
                    }
                    _ => plan.potential.instantiate(&system.species).map_err(EngineError::Potential)?,
                };
                Simulation::new(
                    system,
                    potential,
                    plan.integrator.clone(),
                    plan.timestep,
                    plan.skin,
                    plan.max_force,
                    step,
                    reference,
                )
                .map(|mut sim| {
                    sim.rebuild = plan.rebuild;
                    Engine::Cpu(sim)
                })
                .map_err(EngineError::Simulation)
            }
            Some(ctx) => {
                let potential = gpu_potential(plan, &system).map_err(EngineError::Potential)?;
                GpuSimulation::new(
                    ctx,
                    system,
                    potential,
                    plan.integrator.clone(),
                    plan.timestep,
                    plan.skin,
                    plan.max_force,
                    step,
                    reference,
                )
                .map(|g| Engine::Gpu(Box::new(g)))
                .map_err(EngineError::Simulation)
            }
        }
    }

    /// Replica `slot.slot` of a GPU batch (set up by `crate::run::run_replicas`).
    pub fn gpu_replica(slot: GpuSlot, plan: &Plan) -> Engine {
        let (step, potential_name, cautions, adapter, replicas, system) = slot.batch.with(|sim| {
            let system = sim.system_of(slot.slot).cloned().unwrap_or_else(|_| plan.system.clone());
            (sim.step, sim.potential.name(), sim.potential.cautions(), sim.adapter(), sim.structures(), system)
        });
        Engine::GpuReplica(Box::new(GpuReplica { slot, integrator: plan.integrator.clone(), timestep: plan.timestep, step, potential_name, cautions, adapter, replicas, system }))
    }

    /// "cpu (4 threads)" or "gpu: <adapter>".
    pub fn describe(&self, threads: usize) -> String {
        match self {
            Engine::Cpu(_) => format!("cpu ({threads} thread(s), f64)"),
            Engine::Gpu(g) => format!("gpu: {} (f32 forces, float-float positions, fixed-point sums)", g.adapter()),
            Engine::GpuReplica(r) => format!(
                "gpu: {} (f32 forces, float-float positions, fixed-point sums; replica {} of {} in one batch)",
                r.adapter, r.slot.slot, r.replicas
            ),
        }
    }

    /// Thread count recorded in checkpoints; 0 stands for the GPU.
    pub fn checkpoint_threads(&self, threads: usize) -> usize {
        match self {
            Engine::Cpu(_) => threads,
            Engine::Gpu(_) | Engine::GpuReplica(_) => 0,
        }
    }

    pub fn step(&self) -> u64 {
        match self {
            Engine::Cpu(s) => s.step,
            Engine::Gpu(g) => g.step,
            Engine::GpuReplica(r) => r.step,
        }
    }

    pub fn timestep(&self) -> f64 {
        match self {
            Engine::Cpu(s) => s.timestep,
            Engine::Gpu(g) => g.timestep,
            Engine::GpuReplica(r) => r.timestep,
        }
    }

    pub fn potential_name(&self) -> String {
        match self {
            Engine::Cpu(s) => s.potential.name(),
            Engine::Gpu(g) => g.potential.name(),
            Engine::GpuReplica(r) => r.potential_name.clone(),
        }
    }

    /// The potential's cautions, printed before the run.
    pub fn potential_cautions(&self) -> Vec<String> {
        match self {
            Engine::Cpu(s) => s.potential.cautions(),
            Engine::Gpu(g) => g.potential.cautions(),
            Engine::GpuReplica(r) => r.cautions.clone(),
        }
    }

    pub fn integrator(&self) -> &Integrator {
        match self {
            Engine::Cpu(s) => &s.integrator,
            Engine::Gpu(g) => &g.integrator,
            Engine::GpuReplica(r) => &r.integrator,
        }
    }

    /// Steps the GPU may run between two looks at its status (the CPU looks every step).
    pub fn is_gpu(&self) -> bool {
        matches!(self, Engine::Gpu(_) | Engine::GpuReplica(_))
    }

    /// Whether the run should stop for Ctrl-C now (`flag`); the replicas of a GPU batch all
    /// take the batch's reading at the last block, so that they stop after the same step.
    pub fn interrupted(&self, flag: &std::sync::atomic::AtomicBool) -> bool {
        match self {
            Engine::GpuReplica(r) => r.slot.batch.interrupted(),
            _ => flag.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Replicas of a GPU batch size their blocks alike: the batch's suggestion.
    pub fn shared_block_cap(&self) -> Option<u64> {
        match self {
            Engine::GpuReplica(r) => Some(r.slot.batch.block_cap()),
            _ => None,
        }
    }

    /// Advances `steps` steps; with `observe` the last one gets energy and virial (thermo).
    pub fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
        match self {
            Engine::Cpu(s) => {
                for k in 0..steps {
                    let want = if observe && k + 1 == steps { Want::ALL } else { Want::FORCES };
                    s.advance(want)?;
                }
                Ok(())
            }
            Engine::Gpu(g) => g.advance(steps, observe),
            Engine::GpuReplica(r) => {
                r.slot.batch.advance(r.slot.slot, steps, observe)?;
                r.step = r.slot.batch.with(|sim| sim.step);
                Ok(())
            }
        }
    }

    pub fn thermo(&self) -> ThermoSample {
        match self {
            Engine::Cpu(s) => s.thermo(),
            Engine::Gpu(g) => g.thermo(),
            Engine::GpuReplica(r) => r.slot.batch.with(|sim| sim.thermo_of(r.slot.slot)),
        }
    }

    /// The current state (on the GPU: read back now).
    pub fn system(&mut self) -> Result<&System, GpuError> {
        match self {
            Engine::Cpu(s) => Ok(&s.system),
            Engine::Gpu(g) => g.system(),
            Engine::GpuReplica(r) => {
                let k = r.slot.slot;
                r.system = r.slot.batch.with(|sim| sim.system_of(k).cloned())?;
                Ok(&r.system)
            }
        }
    }

    pub fn checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> {
        match self {
            Engine::Cpu(s) => Ok(s.checkpoint(threads)),
            Engine::Gpu(g) => g.checkpoint(),
            Engine::GpuReplica(r) => r.slot.batch.with(|sim| sim.checkpoint_of(r.slot.slot)),
        }
    }

    pub fn last_good_checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> {
        match self {
            Engine::Cpu(s) => Ok(s.last_good_checkpoint(threads)),
            Engine::Gpu(g) => g.last_good_checkpoint(),
            Engine::GpuReplica(r) => r.slot.batch.with(|sim| sim.last_good_checkpoint_of(r.slot.slot)),
        }
    }

    pub fn builds(&self) -> u64 {
        match self {
            Engine::Cpu(s) => s.list.builds(),
            Engine::Gpu(g) => g.builds(),
            Engine::GpuReplica(r) => r.slot.batch.with(|sim| sim.builds_of(r.slot.slot)),
        }
    }

    pub fn time_split(&self) -> TimeSplit {
        match self {
            Engine::Cpu(s) => TimeSplit {
                force: s.timers.force,
                neighbor: s.timers.neighbor,
                integrate: s.timers.integrate,
                gpu: Duration::ZERO,
                force_stages: s.potential.stage_times(),
                notes: s.potential.notes(),
            },
            Engine::Gpu(g) => TimeSplit {
                gpu: g.gpu_time,
                notes: g.notes(),
                ..Default::default()
            },
            // The GPU time is the whole batch's.
            Engine::GpuReplica(r) => r.slot.batch.with(|sim| TimeSplit {
                gpu: sim.gpu_time,
                notes: sim.notes_of(r.slot.slot),
                ..Default::default()
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Potential(String),
    #[error(transparent)]
    Simulation(SimulationError),
}
