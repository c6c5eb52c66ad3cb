//! Replicas stepped together (`[run] replicas`) share one evaluation of the model per step: each
//! replica's run loop hands its graph to a `SharedInference` and waits; when every replica still
//! running has handed one in, the last to arrive evaluates them all as one batch (structures in
//! replica order, MCGM never mixing them) on the shared thread pool and hands each its energies,
//! forces and virial. Each replica keeps its own cell, integrator, thermostat and outputs.
//!
//! A structure's result does not depend on the batch it is in (per-atom gathers, per-structure
//! sums, the same K-means seed for every structure), so a batched run gives the same bytes as
//! the replicas run one by one.

use crate::ml::inference::{Graph, Inference, Output, StageTimes};
use std::sync::{Arc, Condvar, Mutex};

pub struct SharedInference {
    state: Mutex<State>,
    ready: Condvar,
    pool: rayon::ThreadPool,
}

struct State {
    inference: Inference,
    /// Replicas still running.
    present: Vec<bool>,
    submitted: Vec<Option<Graph>>,
    results: Vec<Option<Output>>,
    batches: u64,
    /// The slots of the last batch, in order (its structures' places).
    last_slots: Vec<usize>,
    /// Hard MCGM: per replica, the evaluations at which its clustering regrouped.
    regroupings: Vec<u64>,
}

/// One replica's handle on the shared evaluation.
#[derive(Clone)]
pub struct BatchSlot {
    pub shared: Arc<SharedInference>,
    pub slot: usize,
}

impl std::fmt::Debug for BatchSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchSlot({})", self.slot)
    }
}

impl SharedInference {
    pub fn new(mut inference: Inference, replicas: usize, threads: usize) -> Result<Arc<SharedInference>, String> {
        // A structure's place in the batch changes as replicas finish, so no charges are
        // carried from one evaluation to the next (each replica's result stays its own).
        if let Some(charges) = inference.charges.as_mut() {
            charges.warm = None;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())?;
        Ok(Arc::new(SharedInference {
            state: Mutex::new(State {
                inference,
                present: vec![true; replicas],
                submitted: (0..replicas).map(|_| None).collect(),
                results: (0..replicas).map(|_| None).collect(),
                batches: 0,
                last_slots: Vec::new(),
                regroupings: vec![0; replicas],
            }),
            ready: Condvar::new(),
            pool,
        }))
    }

    /// Replica `slot`'s energies, forces and virial for `graph`, evaluated with the others'.
    pub fn evaluate(&self, slot: usize, graph: Graph) -> Output {
        let mut state = self.state.lock().unwrap();
        state.submitted[slot] = Some(graph);
        loop {
            if let Some(out) = state.results[slot].take() {
                return out;
            }
            let waiting = state.submitted.iter().filter(|g| g.is_some()).count();
            let running = state.present.iter().filter(|&&p| p).count();
            if waiting == running {
                self.evaluate_batch(&mut state);
                self.ready.notify_all();
                continue;
            }
            state = self.ready.wait(state).unwrap();
        }
    }

    fn evaluate_batch(&self, state: &mut State) {
        let slots: Vec<usize> = (0..state.submitted.len()).filter(|&k| state.submitted[k].is_some()).collect();
        let graphs: Vec<Graph> = slots.iter().map(|&k| state.submitted[k].take().unwrap()).collect();
        let counts: Vec<usize> = graphs.iter().map(|g| g.n_atoms()).collect();
        let batch = Graph::concat(&graphs);
        // A replica left: the structures moved up in the batch, and the partitions kept for
        // regrouping counts no longer belong to them.
        if slots != state.last_slots {
            state.inference.forget_partitions();
        }
        let inference = &mut state.inference;
        let out = self.pool.install(|| inference.evaluate(&batch)).unwrap_or_else(|e| Output::not_a_number(&batch, e));
        let mut first = 0;
        for (s, (&slot, &n)) in slots.iter().zip(&counts).enumerate() {
            let regrouped = out.regrouped.get(s).copied().unwrap_or(false);
            state.regroupings[slot] += regrouped as u64;
            state.results[slot] = Some(Output { energy: vec![out.energy[s]], forces: out.forces[first..first + n].to_vec(), virial: vec![out.virial[s]], regrouped: vec![regrouped], layers: Vec::new(), atom_energies: out.atom_energies[first..first + n].to_vec(), atom_virials: out.atom_virials[first..first + n].to_vec(), failure: out.failure.clone() });
            first += n;
        }
        state.last_slots = slots;
        state.batches += 1;
    }

    /// Replica `slot` has stopped (finished or failed): the others no longer wait for it.
    pub fn leave(&self, slot: usize) {
        let mut state = self.state.lock().unwrap();
        if state.present[slot] {
            state.present[slot] = false;
            state.submitted[slot] = None;
            self.ready.notify_all();
        }
    }

    /// The shared evaluation's time split (all replicas) and the batches evaluated.
    pub fn times(&self) -> (StageTimes, u64) {
        let state = self.state.lock().unwrap();
        (state.inference.times, state.batches)
    }

    /// Hard MCGM: the evaluations at which replica `slot`'s clustering regrouped its atoms.
    pub fn regroupings(&self, slot: usize) -> u64 {
        self.state.lock().unwrap().regroupings[slot]
    }
}
