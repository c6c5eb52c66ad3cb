//! The CPU fast path's learned charges (the model is `crate::ml::model::charges`): the charge
//! head in f32; the projection to each structure's total charge, or charge equilibration by
//! conjugate gradients (`crate::ml::equilibration`), and the Coulomb sum in f64
//! (`crate::ml::electrostatics`, the same code the burn model's kernel comes from).

use super::Graph;
use super::dense::{Linear, ssp_and_slope};
use crate::cell::Vec3;
use crate::ml::electrostatics::{Coulomb, Memory};
use crate::ml::equilibration::{self, WarmStart};

pub struct ChargeWeights {
    pub layer1: Linear,
    pub layer2: Linear,
    pub coulomb: Coulomb,
    /// Per species: the hardness J (eV/e²) where the charges are equilibrated
    /// (`crate::ml::equilibration`); None: the head's charges, projected to the total.
    pub hardness: Option<Vec<f64>>,
    /// Per structure of the batch: the Ewald splitting and real-space pairs of the last
    /// evaluation, reused while the cell stays (MD).
    pub memory: Vec<Memory>,
    /// Per structure of the batch: the charges equilibration starts from (MD, `carry_charges`);
    /// None: every solve starts cold.
    pub warm: Option<Vec<WarmStart>>,
}

/// What the charges add to an evaluation.
pub struct ChargeTerms {
    /// Per structure, eV.
    pub energy: Vec<f64>,
    /// Forces at fixed charges, eV/Å.
    pub forces: Vec<Vec3>,
    /// Per structure, row-major, eV.
    pub virial: Vec<[f64; 9]>,
    /// The charges, e.
    pub charges: Vec<f64>,
    /// Conjugate-gradient iterations of charge equilibration, all structures together.
    pub iterations: usize,
}

impl ChargeWeights {
    /// MD: each equilibration starts from the charges of the evaluations before
    /// (`WarmStart`); nothing changes for charges that are not equilibrated.
    pub fn carry_charges(&mut self) {
        if self.hardness.is_some() && self.warm.is_none() {
            self.warm = Some(Vec::new());
        }
    }

    /// What the carried charges' last solves started from, structure after structure
    /// (`WarmStart::saved`); empty when nothing is carried.
    pub fn carried(&self) -> Vec<f64> {
        self.warm.iter().flatten().flat_map(WarmStart::saved).collect()
    }

    /// Takes `carried`'s values back (a restart, before its first evaluation).
    pub fn restore_carried(&mut self, values: &[f64]) -> Result<(), String> {
        let Some(warm) = self.warm.as_mut() else {
            return if values.is_empty() { Ok(()) } else { Err(format!("the model carries nothing from step to step (its charges are not equilibrated), but {} values were saved for it", values.len())) };
        };
        warm.clear();
        let mut at = 0;
        while at < values.len() {
            let mut w = WarmStart::default();
            at += w.restore(&values[at..])?;
            warm.push(w);
        }
        Ok(())
    }

    /// The charges of the final features `x` and their Coulomb terms; adds dE/dx to `g_x`.
    pub fn evaluate(&mut self, graph: &Graph, x: &[f32], g_x: &mut Vec<f32>) -> Result<ChargeTerms, String> {
        let n = graph.n_atoms();
        let mut a = Vec::new();
        self.layer1.forward(x, &mut a);
        let mut h = vec![0.0f32; a.len()];
        for (a, h) in a.iter_mut().zip(h.iter_mut()) {
            (*h, *a) = ssp_and_slope(*a);
        }
        let mut raw = Vec::new();
        self.layer2.forward(&h, &mut raw);
        let mut terms = ChargeTerms {
            energy: vec![0.0; graph.n_structures],
            forces: vec![[0.0; 3]; n],
            virial: vec![[0.0; 9]; graph.n_structures],
            charges: vec![0.0; n],
            iterations: 0,
        };
        let mut g_raw = vec![0.0f32; n];
        self.memory.resize_with(graph.n_structures, Memory::default);
        // Atoms of a structure are contiguous in a graph.
        let mut start = 0;
        for (s, count) in graph.counts().into_iter().enumerate() {
            let atoms = start..start + count;
            let (positions, cell) = (&graph.positions[atoms.clone()], &graph.cells[s]);
            let (q, own_energy) = match &self.hardness {
                Some(hardness) => {
                    // χ = J_self raw (as the model's), J per species; the charges by Qeq.
                    let self_hardness = equilibration::self_hardness(self.coulomb.width);
                    let chi: Vec<f64> = atoms.clone().map(|i| self_hardness * raw[i] as f64).collect();
                    let j: Vec<f64> = atoms.clone().map(|i| hardness[graph.species[i]]).collect();
                    let (coulomb, memory) = (&self.coulomb, &mut self.memory[s]);
                    let warm = self.warm.as_mut().map(|w| {
                        w.resize_with(graph.n_structures, WarmStart::default);
                        &mut w[s]
                    });
                    let start = warm.as_ref().and_then(|w| w.guess(count));
                    let (q, iterations) = equilibration::equilibrate(&chi, &j, graph.charges[s], start.as_deref(), |p| coulomb.potential_with(memory, positions, cell, p))?;
                    if let Some(w) = warm {
                        w.record(&q);
                    }
                    terms.iterations += iterations;
                    // dE/d raw_i = J_self q_i (the envelope theorem).
                    for (k, i) in atoms.clone().enumerate() {
                        g_raw[i] = (self_hardness * q[k]) as f32;
                    }
                    let own = (0..count).map(|k| chi[k] * q[k] + 0.5 * j[k] * q[k] * q[k]).sum::<f64>();
                    (q, own)
                }
                None => {
                    let excess = (graph.charges[s] - atoms.clone().map(|i| raw[i] as f64).sum::<f64>()) / count as f64;
                    (atoms.clone().map(|i| raw[i] as f64 + excess).collect::<Vec<f64>>(), 0.0)
                }
            };
            let field = self.coulomb.field_with(&mut self.memory[s], positions, cell, &q)?;
            if self.hardness.is_none() {
                // Through the projection: dE/dq̃ = dE/dq - its mean over the structure.
                let mean = field.potential.iter().sum::<f64>() / count as f64;
                for (k, i) in atoms.clone().enumerate() {
                    g_raw[i] = (field.potential[k] - mean) as f32;
                }
            }
            for (k, i) in atoms.clone().enumerate() {
                terms.forces[i] = field.forces[k];
                terms.charges[i] = q[k];
            }
            terms.energy[s] = field.energy + own_energy;
            terms.virial[s] = field.virial;
            start += count;
        }
        // Back through the head: dE/dx = ((dE/dq̃ W_q2^T) ⊙ ssp'(a)) W_q1^T.
        let mut g_h = Vec::new();
        self.layer2.backward(&g_raw, &mut g_h, false);
        g_h.iter_mut().zip(&a).for_each(|(g, s)| *g *= s);
        self.layer1.backward(&g_h, g_x, true);
        Ok(terms)
    }
}
