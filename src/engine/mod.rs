//! One simulation on the platform it runs on, behind [`Engine`]: the CPU (`Simulation`, f64,
//! rayon threads; `cpu.rs`), the GPU (`GpuSimulation`, WGSL kernels through wgpu; `gpu.rs`) or
//! one replica of a GPU batch (`replica.rs`). The run loops (`system.toml` runs and decks) talk
//! to this trait and nothing else, so every platform shares observers, checkpoints and the
//! summary.
//!
//! # Adding a platform
//! Implement [`Engine`] for the platform's simulation in a module here: advance a block of
//! steps (energy and virial at its last when observed), report thermo, hand back the state and
//! checkpoints, say how it describes itself. Then teach [`choose`] when to pick it and
//! [`start`] how to set it up; nothing in the run loop (`crate::driver`) changes. The suites
//! written once per platform (tests/md.rs, tests/pair_styles.rs) then run on it through
//! `Platform`. Here a platform that runs another one and records the blocks it is asked for,
//! driven to step 30 with nothing observing (so the CPU goes one step at a time):
//!
//! ```
//! use mdrun::driver::{drive, Drive, Observer};
//! use mdrun::engine::{Engine, TimeSplit};
//! use mdrun::gpu::GpuError;
//! use mdrun::integrate::Integrator;
//! use mdrun::io::checkpoint::Checkpoint;
//! use mdrun::simulation::SimulationError;
//! use mdrun::system::System;
//! use mdrun::thermo::ThermoSample;
//!
//! struct Recording { inner: Box<dyn Engine>, blocks: Vec<u64> }
//!
//! impl Engine for Recording {
//!     fn describe(&self, threads: usize) -> String { format!("recording {}", self.inner.describe(threads)) }
//!     fn checkpoint_threads(&self, threads: usize) -> usize { self.inner.checkpoint_threads(threads) }
//!     fn step(&self) -> u64 { self.inner.step() }
//!     fn timestep(&self) -> f64 { self.inner.timestep() }
//!     fn potential_name(&self) -> String { self.inner.potential_name() }
//!     fn potential_cautions(&self) -> Vec<String> { self.inner.potential_cautions() }
//!     fn integrator(&self) -> &Integrator { self.inner.integrator() }
//!     fn is_gpu(&self) -> bool { self.inner.is_gpu() }
//!     fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
//!         self.blocks.push(steps);
//!         self.inner.advance(steps, observe)
//!     }
//!     fn thermo(&self) -> ThermoSample { self.inner.thermo() }
//!     fn system(&mut self) -> Result<&System, GpuError> { self.inner.system() }
//!     fn checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> { self.inner.checkpoint(threads) }
//!     fn last_good_checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError> { self.inner.last_good_checkpoint(threads) }
//!     fn builds(&self) -> u64 { self.inner.builds() }
//!     fn time_split(&self) -> TimeSplit { self.inner.time_split() }
//! }
//!
//! let toml = r#"
//! [structure]
//! lattice = "fcc"
//! lattice_constant = "5.26 A"
//! repeat = [2, 2, 2]
//! element = "Ar"
//! [potential]
//! type = "lj"
//! cutoff = "4.5 A"
//! [potential.species.Ar]
//! epsilon = "0.0104 eV"
//! sigma = "3.4 A"
//! [integrator]
//! type = "verlet"
//! timestep = "2 fs"
//! [run]
//! steps = 30
//! "#;
//! let plan = mdrun::plan::Plan::from_str(toml, std::path::Path::new("system.toml"), None).unwrap();
//! let cpu = mdrun::engine::start(None, &plan, plan.system.clone(), 0, None, &[], None).unwrap();
//! let mut engine = Recording { inner: cpu, blocks: Vec::new() };
//! let settings = Drive { last_step: 30, moving: true, interrupt: None };
//! let none: &mut [&mut dyn Observer<String>] = &mut [];
//! drive(&mut engine, 0, &settings, none).unwrap();
//! assert_eq!((engine.step(), engine.blocks.len()), (30, 30));
//! ```

mod cpu;
mod gpu;
mod replica;

pub use replica::gpu_replica;

use crate::gpu::{GpuContext, GpuError, GpuPotential};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::{Plan, Platform, PotentialSpec};
use crate::potential::batch::BatchSlot;
use crate::simulation::SimulationError;
use crate::system::System;
use crate::thermo::ThermoSample;
use std::time::Duration;

/// The potential as the GPU kernels take it.
pub fn gpu_potential(plan: &Plan, system: &System) -> Result<GpuPotential, String> {
    Ok(match &plan.potential {
        PotentialSpec::Pair(pair) => GpuPotential::Pair(pair.clone()),
        PotentialSpec::Ml { model, charge, ewald, half_tables, .. } => GpuPotential::Ml(Box::new(gpu_model(model, *charge, *ewald, *half_tables, system)?)),
    })
}

/// The model at `path` for the GPU kernels, for `system` of total charge `charge` (e), its
/// charges summed as `ewald` says (`Coulomb::mesh`), its filter tables in f16 if `half_tables`.
fn gpu_model(path: &std::path::Path, charge: f64, ewald: Option<bool>, half_tables: bool, system: &System) -> Result<crate::potential::mcgm::GpuModel, String> {
    let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
    let mut model = crate::potential::mcgm::MlPotential::load(path, &names)?.with_ewald(ewald)?.with_total_charge(charge)?.into_gpu()?;
    if half_tables {
        model.half_tables = true;
        model.description = model.description.replace("tabulated filters", "tabulated filters in f16");
    }
    if let Some(method) = crate::gpu::ml::describe_charges(&model.inference, system.len(), &system.cell) {
        model.description = format!("{}; charges summed by {method}", model.description);
    }
    Ok(model)
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
            PotentialSpec::Ml { model, charge, ewald, half_tables, .. } => match gpu_model(model, *charge, *ewald, *half_tables, system) {
                Ok(m) => crate::gpu::md::unsupported_reason(system, m.inference.cutoff + plan.skin)
                    .or_else(|| crate::gpu::ml::unsupported_reason(&m.inference, system.len(), &system.cell)),
                Err(e) => Some(e),
            },
            PotentialSpec::Pair(pair) => match pair.style.gpu {
                Err(why) => Some(format!("pair style {}: {why}", pair.style.lammps)),
                Ok(_) => crate::gpu::md::unsupported_reason(system, pair.max_cutoff() + plan.skin),
            },
        };
        reason
            .or_else(|| plan.integrator.gpu_unsupported())
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

/// Why `--gpu-profile` has nothing to show on an adapter.
pub const NO_TIMESTAMPS: &str = "this adapter has no timestamp queries inside compute passes; no kernel split";

/// One simulation on one platform, as the run loops see it.
pub trait Engine: Send {
    /// "cpu (4 threads)" or "gpu: <adapter>".
    fn describe(&self, threads: usize) -> String;
    /// Thread count recorded in checkpoints; 0 stands for the GPU.
    fn checkpoint_threads(&self, threads: usize) -> usize;
    fn step(&self) -> u64;
    fn timestep(&self) -> f64;
    fn potential_name(&self) -> String;
    /// The potential's cautions, printed before the run.
    fn potential_cautions(&self) -> Vec<String>;
    /// Lines summing up, since the last call, the steps a learned potential spent with pairs
    /// closer than its training data (`TrainingRange`); printed after each thermo row.
    fn take_outside_data_summary(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Thermo rows in a row, up to the last summary, whose interval had such pairs.
    fn outside_data_streak(&mut self) -> u64 {
        0
    }
    fn integrator(&self) -> &Integrator;
    /// Steps the GPU may run between two looks at its status (the CPU looks every step).
    fn is_gpu(&self) -> bool;
    /// Whether the run should stop for Ctrl-C now (`flag`).
    fn interrupted(&self, flag: &std::sync::atomic::AtomicBool) -> bool {
        flag.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Steps per block when the platform shares its blocks with others (a GPU batch).
    fn shared_block_cap(&self) -> Option<u64> {
        None
    }
    /// Advances `steps` steps; with `observe` the last one gets energy and virial (thermo).
    fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError>;
    fn thermo(&self) -> ThermoSample;
    /// The current state (on the GPU: read back now).
    fn system(&mut self) -> Result<&System, GpuError>;
    fn checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError>;
    fn last_good_checkpoint(&mut self, threads: usize) -> Result<Checkpoint, GpuError>;
    /// Neighbour-list builds so far.
    fn builds(&self) -> u64;
    fn time_split(&self) -> TimeSplit;
    /// The last forces, where the platform keeps them on the host (the CPU).
    fn forces(&self) -> Option<&[crate::cell::Vec3]> {
        None
    }
    /// `--gpu-profile`: starts timing kernels, or says why it cannot.
    fn enable_profiling(&mut self) -> Result<(), String> {
        Err("the run is on the CPU; nothing to profile".into())
    }
    /// GPU time per kernel so far (with profiling).
    fn kernel_times(&self) -> std::collections::BTreeMap<String, f64> {
        Default::default()
    }
    /// Dispatches per kernel so far (with profiling).
    fn kernel_calls(&self) -> std::collections::BTreeMap<String, u64> {
        Default::default()
    }
}

/// Sets up the simulation on the chosen platform: the GPU given `gpu`, else the CPU.
pub fn start(
    gpu: Option<GpuContext>,
    plan: &Plan,
    system: System,
    step: u64,
    reference: Option<crate::neighbor::ListReference>,
    carried: &[f64],
    batch: Option<BatchSlot>,
) -> Result<Box<dyn Engine>, EngineError> {
    match gpu {
        None => cpu::start(plan, system, step, reference, carried, batch),
        Some(_) if !carried.is_empty() => Err(EngineError::Potential("the checkpoint carries the potential's state from a CPU run (equilibrated charges), which the GPU platform does not run; restart it with --platform cpu".into())),
        Some(ctx) => gpu::start(ctx, plan, system, step, reference),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Potential(String),
    #[error(transparent)]
    Simulation(SimulationError),
}
