//! One GPU batch shared by the replica threads of a `[run] replicas` run on the GPU. Each
//! thread drives its replica's run loop and outputs (thermo, trajectories, checkpoints); they
//! meet at every block of steps, and the last to arrive runs the block for all of them in one
//! `GpuSimulation` (every dispatch covers every replica). A replica that blows up gets its
//! error (its last good state is kept) and leaves; the others go on.

use super::context::GpuError;
use super::md::GpuSimulation;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

pub struct SharedGpuBatch {
    state: Mutex<BatchState>,
    turn: Condvar,
}

struct BatchState {
    sim: GpuSimulation,
    /// Replicas still in the run.
    active: Vec<bool>,
    /// Requests (steps, observe) of the meeting under way.
    requests: Vec<Option<(u64, bool)>>,
    results: Vec<Option<Result<(), GpuError>>>,
    /// Meetings held.
    meetings: u64,
    /// Steps per block that take about half a second, from the last block (every replica's
    /// run loop sizes its next block with this, so that they ask for the same).
    block_cap: u64,
    /// Set by Ctrl-C; looked at once per block, so that every replica stops after the same one.
    interrupt: &'static AtomicBool,
    /// The interrupt as it was when the last block ran.
    interrupted: bool,
}

/// One replica's handle on the batch.
#[derive(Clone)]
pub struct GpuSlot {
    pub batch: Arc<SharedGpuBatch>,
    pub slot: usize,
}

impl std::fmt::Debug for GpuSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuSlot({})", self.slot)
    }
}

impl SharedGpuBatch {
    pub fn new(sim: GpuSimulation, interrupt: &'static AtomicBool) -> Arc<SharedGpuBatch> {
        let n = sim.structures();
        Arc::new(SharedGpuBatch {
            state: Mutex::new(BatchState {
                sim,
                active: vec![true; n],
                requests: vec![None; n],
                results: (0..n).map(|_| None).collect(),
                meetings: 0,
                block_cap: 20,
                interrupt,
                interrupted: false,
            }),
            turn: Condvar::new(),
        })
    }

    /// Runs `f` on the batch (to read a replica's state between blocks).
    pub fn with<R>(&self, f: impl FnOnce(&mut GpuSimulation) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).sim)
    }

    /// Advances replica `slot` (with all the others) `steps` steps; returns when the block has
    /// run.
    pub fn advance(&self, slot: usize, steps: u64, observe: bool) -> Result<(), GpuError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests[slot] = Some((steps, observe));
        let meeting = state.meetings;
        if state.everyone_waiting() {
            state.run_block();
            self.turn.notify_all();
        } else {
            while state.meetings == meeting {
                state = self.turn.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        state.results[slot].take().unwrap_or(Ok(()))
    }

    /// Replica `slot` is done (finished, failed or interrupted): the others stop waiting for it.
    pub fn leave(&self, slot: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.active[slot] = false;
        state.requests[slot] = None;
        if state.active.iter().any(|&a| a) && state.everyone_waiting() {
            state.run_block();
            self.turn.notify_all();
        }
    }

    /// Whether Ctrl-C had come when the last block ran: every replica stops after that block
    /// (their checkpoints are then at one step, and `--restart` continues the batch).
    pub fn interrupted(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).interrupted
    }

    /// Steps per block the run loops should ask for next.
    pub fn block_cap(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).block_cap
    }
}

impl BatchState {
    fn everyone_waiting(&self) -> bool {
        self.active.iter().zip(&self.requests).all(|(&a, r)| !a || r.is_some())
    }

    /// Runs the block every active replica asked for and hands out the results.
    fn run_block(&mut self) {
        let asked: Vec<(usize, (u64, bool))> = (0..self.active.len()).filter(|&k| self.active[k]).filter_map(|k| self.requests[k].map(|r| (k, r))).collect();
        let (steps, observe) = asked[0].1;
        let outcome = if asked.iter().any(|&(_, r)| r != (steps, observe)) {
            // The replicas of one plan share their output steps; this would be a bug.
            Err(format!("the replicas asked for different blocks of steps: {asked:?}"))
        } else {
            let t = Instant::now();
            let result = self.sim.advance_batch(steps, observe).map_err(|e| e.to_string());
            self.block_cap = block_steps(t.elapsed().as_secs_f64() / steps.max(1) as f64);
            result
        };
        for &(k, _) in &asked {
            self.results[k] = Some(match &outcome {
                Ok(_) => Ok(()),
                Err(message) => Err(GpuError::Other { what: "running the replicas' batch".into(), message: message.clone() }),
            });
        }
        if let Ok(failed) = outcome {
            for (k, error) in failed {
                self.results[k] = Some(Err(error));
            }
        }
        for r in &mut self.requests {
            *r = None;
        }
        self.interrupted = self.interrupt.load(Ordering::SeqCst);
        self.meetings += 1;
    }
}

/// GPU steps per block that take about half a second at `per_step` seconds a step.
pub fn block_steps(per_step: f64) -> u64 {
    ((0.5 / per_step.max(1e-9)) as u64).clamp(1, 1000)
}
