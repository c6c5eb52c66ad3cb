//! The CPU fast path's learned charges (the model is `crate::ml::model::charges`): the charge
//! head in f32, the projection to each structure's total charge and the Coulomb sum in f64
//! (`crate::ml::electrostatics`, the same code the burn model's kernel comes from).

use super::Graph;
use super::dense::{Linear, ssp_and_slope};
use crate::cell::Vec3;
use crate::ml::electrostatics::{Coulomb, Memory};

pub struct ChargeWeights {
    pub layer1: Linear,
    pub layer2: Linear,
    pub coulomb: Coulomb,
    /// Per structure of the batch: the Ewald splitting and real-space pairs of the last
    /// evaluation, reused while the cell stays (MD).
    pub memory: Vec<Memory>,
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
}

impl ChargeWeights {
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
        };
        let mut g_raw = vec![0.0f32; n];
        self.memory.resize_with(graph.n_structures, Memory::default);
        // Atoms of a structure are contiguous in a graph.
        let mut start = 0;
        for (s, count) in graph.counts().into_iter().enumerate() {
            let atoms = start..start + count;
            let excess = (graph.charges[s] - atoms.clone().map(|i| raw[i] as f64).sum::<f64>()) / count as f64;
            let q: Vec<f64> = atoms.clone().map(|i| raw[i] as f64 + excess).collect();
            let field = self.coulomb.field_with(&mut self.memory[s], &graph.positions[atoms.clone()], &graph.cells[s], &q)?;
            let mean = field.potential.iter().sum::<f64>() / count as f64;
            for (k, i) in atoms.clone().enumerate() {
                g_raw[i] = (field.potential[k] - mean) as f32;
                terms.forces[i] = field.forces[k];
                terms.charges[i] = q[k];
            }
            terms.energy[s] = field.energy;
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
