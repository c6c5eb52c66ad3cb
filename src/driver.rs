//! The one step loop of every run: `system.toml` runs (`crate::run`) and deck `run` commands
//! (`crate::deck`) both hand an [`Engine`] and their [`Observer`]s to [`drive`]. The loop
//! advances the engine in blocks that end where some observer wants to look (one step at a time
//! on the CPU; on the GPU as many as take about half a second), asks for energies only where an
//! observer needs them, and stops on a blow-up or a signal.
//!
//! # Adding an observer
//! An observer says when it next wants to look ([`Observer::next_step`]), whether that look
//! needs the energy and virial ([`Observer::needs_energy`]), and looks ([`Observer::observe`],
//! called after every block: it checks itself whether the step is one of its own). A run lists
//! its observers in the order they must act at a shared step (frames are on disk before the
//! checkpoint that counts on them).
//!
//! ```
//! use mdrun::driver::Observer;
//! use mdrun::engine::Engine;
//!
//! /// Collects the kinetic energy every `every` steps.
//! struct KineticEnergy { every: u64, values: Vec<f64> }
//!
//! impl Observer<String> for KineticEnergy {
//!     fn next_step(&self, now: u64) -> Option<u64> {
//!         Some((now / self.every + 1) * self.every)
//!     }
//!     fn needs_energy(&self, step: u64) -> bool {
//!         step % self.every == 0
//!     }
//!     fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), String> {
//!         if step % self.every == 0 {
//!             self.values.push(engine.thermo().kinetic_energy);
//!         }
//!         Ok(())
//!     }
//! }
//! # let _ = KineticEnergy { every: 10, values: Vec::new() };
//! ```

use crate::engine::Engine;
use crate::simulation::SimulationError;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Something that looks at the state as a run goes: the thermo table and log, trajectories,
/// checkpoints, in-run analysis, progress, deck thermo rows and dumps. `E` is the error type of
/// the run it serves.
pub trait Observer<E> {
    /// The first step after `now` at which it wants to look; None: none.
    fn next_step(&self, now: u64) -> Option<u64>;
    /// Whether its look at `step` needs that step's energy and virial (thermo sums).
    fn needs_energy(&self, step: u64) -> bool {
        let _ = step;
        false
    }
    /// Called after every block, at the block's last step.
    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), E>;
}

/// Why `drive` stopped before the last step.
#[derive(Debug)]
pub enum Stop<E> {
    /// An observer failed.
    Observer(E),
    /// The engine failed. A blow-up (`SimulationError::BlowUp`, or a neighbour-list failure)
    /// leaves the last good state in the engine (`Engine::last_good_checkpoint`).
    Engine(SimulationError),
    /// A signal asked to stop, after this step.
    Interrupted(u64),
}

impl<E> From<E> for Stop<E> {
    fn from(e: E) -> Stop<E> {
        Stop::Observer(e)
    }
}

/// How `drive` runs.
pub struct Drive<'a> {
    /// The run ends at this step.
    pub last_step: u64,
    /// False where nothing integrates (a deck without fix nve): the atoms stay, the steps only
    /// count, and the observers see the engine's state at each of theirs.
    pub moving: bool,
    /// Stop after the current block when this is set (`crate::signals`).
    pub interrupt: Option<&'a AtomicBool>,
}

/// Runs `engine` from `first_step` (the engine's own step where the atoms move) to
/// `drive.last_step`, with `observers` looking after every block, in order. Returns the time
/// the observers took.
pub fn drive<E>(engine: &mut dyn Engine, first_step: u64, drive: &Drive, observers: &mut [&mut dyn Observer<E>]) -> Result<Duration, Stop<E>> {
    let mut step = first_step;
    let mut observing = Duration::ZERO;
    // GPU blocks are sized to take about half a second (adapted after every block).
    let mut block_cap: u64 = 20;
    while step < drive.last_step {
        let next_look = observers.iter().filter_map(|o| o.next_step(step)).fold(drive.last_step, u64::min);
        let block = if !drive.moving {
            next_look - step
        } else if engine.is_gpu() {
            (next_look - step).min(engine.shared_block_cap().unwrap_or(block_cap))
        } else {
            1
        };
        let next = step + block;
        if drive.moving {
            let needs_energy = next == drive.last_step || observers.iter().any(|o| o.needs_energy(next));
            let started = Instant::now();
            engine.advance(block, needs_energy).map_err(Stop::Engine)?;
            block_cap = crate::gpu::shared::block_steps(started.elapsed().as_secs_f64() / block as f64);
            step = engine.step();
        } else {
            step = next;
        }
        let started = Instant::now();
        for observer in observers.iter_mut() {
            observer.observe(engine, step)?;
        }
        observing += started.elapsed();
        if drive.interrupt.is_some_and(|flag| engine.interrupted(flag)) {
            return Err(Stop::Interrupted(step));
        }
    }
    Ok(observing)
}

/// The first multiple of `interval` after `step`.
pub fn next_multiple(step: u64, interval: u64) -> u64 {
    (step / interval + 1) * interval
}
