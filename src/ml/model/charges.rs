//! Learned charges (issue 19): a charge head on the final (MCGM-refined) features, projected to
//! the structure's total charge, and their Coulomb energy (`crate::ml::electrostatics`).
//!
//! ```text
//! q̃_i = ssp(x_i W_q1 + b_q1) W_q2 + b_q2
//! q_i = q̃_i + (Q_s − Σ_{j∈s} q̃_j) / n_s          charges sum to Q_s exactly
//! E_es = Σ_{pairs i≤j of s} q_i q_j K_ij            K: Ewald or direct, from the geometry alone
//! ```
//! The projection is the least-squares change of the raw charges that meets the constraint
//! (charge equilibration with equal hardness everywhere); it is linear, so the energy stays
//! smooth. K depends on positions and cell only, so it is computed once per batch on the host
//! (with ∂K/∂x and -∂K/∂ε) and E_es is bilinear in q: the forces and the virial at fixed charges
//! are tensor operations on q, and the charges' own dependence on positions enters the explicit
//! backward pass as dE/dx_final, like the energy readout's. Everything stays differentiable by
//! the parameters, so a force loss trains the charges.
//!
//! With `equilibration` the head's output is an electronegativity instead, and the charges
//! minimise Qeq's energy (`crate::ml::equilibration`) with the Coulomb coupling K.
//! ```text
//! χ_i = J_self raw_i,   J_i = J_self + softplus(h_Z),   E = E_es + Σ_i (χ_i q_i + ½ J_i q_i²)
//! ```

use super::{Dense, Model};
use crate::ml::electrostatics::Coulomb;
use crate::ml::pair_kernel::PairKernel;
use crate::ml::graph::Batch;
use crate::ml::equilibration;
use crate::ml::tensor::{Ctx, scatter_add, ssp, ssp_derivative, to_vec};
use burn::tensor::activation::softplus;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// The long-range part of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongRange {
    /// Å: width σ of each learned charge's Gaussian (the Coulomb kernel is erf(r/(√2σ))/r).
    pub charge_width: f64,
    /// The structure's charge per atom, Q/n, enters every atom's first features through a
    /// learned vector per species (a simplified form of SpookyNet's charge embedding): without
    /// it the features, and so the local energy, cannot tell a charged structure from a neutral
    /// one; the charges alone only shift by Q/n.
    #[serde(default)]
    pub charge_embedding: bool,
    /// The charges by charge equilibration (`crate::ml::equilibration`): the head gives
    /// electronegativities, each species a learned hardness, and the charges minimise their
    /// energy with the Coulomb coupling (charge transfer); false: the head's charges, projected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub equilibration: bool,
}

impl LongRange {
    pub fn coulomb(&self) -> Coulomb {
        Coulomb { width: self.charge_width, mesh: None }
    }

    pub fn describe(&self) -> String {
        let embedding = if self.charge_embedding { ", total charge embedded" } else { "" };
        let kind = if self.equilibration { "learned charges by charge equilibration (Qeq)" } else { "learned charges" };
        format!("{kind} (σ = {} Å, Ewald where periodic{embedding})", self.charge_width)
    }
}

/// The charge head's two dense layers.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChargeHead {
    pub layer1: Dense,
    pub layer2: Dense,
    /// [species, 1]: h of each species' hardness J = self_hardness(σ) + softplus(h), where the
    /// charges are equilibrated.
    pub hardness: Option<usize>,
}

/// A batch's Coulomb pair kernels as tensors (pairs of all structures, numbered in the batch).
struct PairTensors {
    first: Tensor<1, Int>,
    second: Tensor<1, Int>,
    structure: Tensor<1, Int>,
    /// [P, 1]
    kernel: Tensor<2>,
    /// [P, 3]
    gradient: Tensor<2>,
    /// [P, 9]
    strain: Tensor<2>,
    /// Per structure, its Coulomb matrix M (E = ½ qᵀMq), where the charges are equilibrated.
    matrices: Vec<Vec<f64>>,
}

impl PairTensors {
    /// `with_matrices`: also each structure's Coulomb matrix (charge equilibration).
    fn new(batch: &Batch, coulomb: Coulomb, with_matrices: bool, ctx: &Ctx) -> Result<PairTensors, String> {
        let mut all = PairKernel::default();
        let mut structure = Vec::new();
        let mut matrices = Vec::new();
        let mut start = 0;
        for (s, &n) in batch.counts.iter().enumerate() {
            let k = coulomb.pair_kernel(&batch.positions[start..start + n], &batch.cells[s])?;
            if with_matrices {
                matrices.push(k.coulomb_matrix(n));
            }
            all.first.extend(k.first.iter().map(|i| i + start));
            all.second.extend(k.second.iter().map(|j| j + start));
            structure.extend(std::iter::repeat_n(s, k.kernel.len()));
            all.kernel.extend(k.kernel);
            all.gradient.extend(k.gradient);
            all.strain.extend(k.strain);
            start += n;
        }
        let p = all.kernel.len();
        Ok(PairTensors {
            first: ctx.indices(&all.first),
            second: ctx.indices(&all.second),
            structure: ctx.indices(&structure),
            kernel: ctx.matrix(&all.kernel, p, 1),
            gradient: ctx.matrix(&all.gradient.concat(), p, 3),
            strain: ctx.matrix(&all.strain.concat(), p, 9),
            matrices,
        })
    }
}

/// What the charges add to a prediction.
pub(super) struct ChargeTerms {
    /// [S, 1]
    pub energy: Tensor<2>,
    /// dE_es/dx_final [N, F], for the backward pass.
    pub g_x: Tensor<2>,
    /// Forces at fixed charges [N, 3].
    pub forces: Tensor<2>,
    /// [S, 9]
    pub virial: Tensor<2>,
    /// The charges q [N, 1].
    pub charges: Tensor<2>,
}

impl Model {
    /// The first features' shift by the structure's charge per atom, (Q/n) c[species], [N, F].
    pub(super) fn total_charge_features(&self, index: usize, batch: &Batch, graph_species: &Tensor<1, Int>, structure: &Tensor<1, Int>, ctx: &Ctx) -> Tensor<2> {
        let per_atom: Vec<f64> = batch.charges.iter().zip(&batch.counts).map(|(q, &n)| q / n as f64).collect();
        let q = ctx.matrix(&per_atom, batch.n_structures, 1).select(0, structure.clone());
        self.p(index).select(0, graph_species.clone()) * q
    }

    /// The charges of the final features x and everything their Coulomb energy adds.
    pub(super) fn charge_terms(&self, head: ChargeHead, x: Tensor<2>, batch: &Batch, species: &Tensor<1, Int>, structure: &Tensor<1, Int>, ctx: &Ctx) -> Result<ChargeTerms, String> {
        let long_range = self.config.long_range.as_ref().expect("a charge head comes with long_range");
        let pairs = PairTensors::new(batch, long_range.coulomb(), head.hardness.is_some(), ctx)?;
        let (n, s) = (batch.n_atoms, batch.n_structures);
        let a = self.dense(head.layer1, x);
        let raw = self.dense(head.layer2, ssp(a.clone()));
        // The charges and, equilibrated, their own energy (χ q + ½ J q²) and dE/d(raw head
        // output) = J_self q (the envelope theorem: the Coulomb part's dE/dq is λ, whose change
        // the neutral dq does not see).
        let (q, equilibrated) = match head.hardness {
            Some(index) => {
                let self_hardness = equilibration::self_hardness(long_range.charge_width);
                let chi = raw.mul_scalar(self_hardness);
                let j = softplus(self.p(index).select(0, species.clone()), 1.0).add_scalar(self_hardness);
                let q = self.equilibrated_charges(&pairs, batch, chi.clone(), j.clone(), ctx)?;
                let own = chi * q.clone() + (j * q.clone() * q.clone()).mul_scalar(0.5);
                (q.clone(), Some((scatter_add(own, structure, s, ctx), q.mul_scalar(self_hardness))))
            }
            None => {
                // q = q̃ + (Q - Σ q̃)/n per structure.
                let total = ctx.matrix(&batch.charges, s, 1);
                let excess = (total - scatter_add(raw.clone(), structure, s, ctx)) * inverse_counts(batch, ctx);
                (raw + excess.select(0, structure.clone()), None)
            }
        };
        let (qa, qb) = (q.clone().select(0, pairs.first.clone()), q.clone().select(0, pairs.second.clone()));
        let product = qa.clone() * qb.clone();
        let mut energy = scatter_add(product.clone() * pairs.kernel.clone(), &pairs.structure, s, ctx);
        let g_raw = match equilibrated {
            Some((own, g)) => {
                energy = energy + own;
                g
            }
            None => {
                // dE/dq_i = Σ_j K_ij q_j (the diagonal's ½ counted from both ends), and through
                // the projection dE/dq̃ = dE/dq - mean over the structure.
                let g_q = scatter_add(pairs.kernel.clone() * qb, &pairs.first, n, ctx) + scatter_add(pairs.kernel.clone() * qa, &pairs.second, n, ctx);
                let mean = scatter_add(g_q.clone(), structure, s, ctx) * inverse_counts(batch, ctx);
                g_q - mean.select(0, structure.clone())
            }
        };
        let g_x = self.dense_back(head.layer1, self.dense_back(head.layer2, g_raw) * ssp_derivative(a));
        let pull = pairs.gradient.clone() * product.clone();
        let forces = scatter_add(pull.clone(), &pairs.first, n, ctx) - scatter_add(pull, &pairs.second, n, ctx);
        let virial = scatter_add(pairs.strain * product, &pairs.structure, s, ctx);
        Ok(ChargeTerms { energy, g_x, forces, virial, charges: q })
    }

    /// Qeq's charges for electronegativities `chi` and hardnesses `j` [N, 1], solved on the
    /// host in f64 (q0, response P per structure) and returned as q0 − P (Δχ + q0 ⊙ ΔJ), where
    /// Δ is a tensor minus its detached value: the value is q0 and the first derivative in the
    /// parameters is the solution's, which is all the forces (the envelope theorem) and their
    /// training gradient need.
    fn equilibrated_charges(&self, pairs: &PairTensors, batch: &Batch, chi: Tensor<2>, j: Tensor<2>, ctx: &Ctx) -> Result<Tensor<2>, String> {
        let (chi_host, j_host) = (to_vec(chi.clone().detach()), to_vec(j.clone().detach()));
        let mut q0 = vec![0.0; batch.n_atoms];
        let (mut first, mut second, mut response) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = 0;
        for (s, (&count, coulomb)) in batch.counts.iter().zip(&pairs.matrices).enumerate() {
            let atoms = start..start + count;
            // A = diag(J) + M.
            let mut matrix = coulomb.clone();
            (0..count).for_each(|i| matrix[i * count + i] += j_host[start + i]);
            let solution = equilibration::solve_dense(&matrix, &chi_host[atoms.clone()], batch.charges[s]).map_err(|e| format!("structure {s}: {e}"))?;
            q0[atoms.clone()].copy_from_slice(&solution.charges);
            for i in 0..count {
                for k in 0..count {
                    first.push(start + i);
                    second.push(start + k);
                    response.push(solution.response[i * count + k]);
                }
            }
            start += count;
        }
        let q0 = ctx.matrix(&q0, batch.n_atoms, 1);
        let change = (chi.clone() - chi.detach()) + q0.clone() * (j.clone() - j.detach());
        let weights = ctx.matrix(&response, response.len(), 1);
        let shift = scatter_add(change.select(0, ctx.indices(&second)) * weights, &ctx.indices(&first), batch.n_atoms, ctx);
        Ok(q0 - shift)
    }
}

/// 1/n_s per structure [S, 1].
fn inverse_counts(batch: &Batch, ctx: &Ctx) -> Tensor<2> {
    ctx.matrix(&batch.counts.iter().map(|&c| 1.0 / c as f64).collect::<Vec<_>>(), batch.n_structures, 1)
}
