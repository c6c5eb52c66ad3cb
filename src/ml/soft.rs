//! MCGM's smooth assignment (`assign = "soft"`): above the element level, each atom belongs to
//! K learned centroids with softmax weights, so the energy is a smooth function of the
//! positions and the forces are its exact gradient (methods.md §2, "the problem for MD").
//!
//! Per structure s and centroid k, with z_i = x_i W_q and τ = F:
//! ```text
//! w_ik  = softmax_k(-|z_i - μ_k|² / τ)
//! P_sk  = Σ_{i∈s} w_ik x_i / Σ_{i∈s} w_ik        soft mean-pool
//! V_sk  = (P_sk A + a) U
//! Δx_i  = Σ_k w_ik V_{s(i)k}                      soft dissemination
//! ```
//! The backward pass below is this map's exact vector-Jacobian product, including the
//! dependence of the weights on the features.

use super::tensor::{accumulate, Ctx, scatter_add};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

/// Parameter indices of one soft level.
#[derive(Clone, Copy, Debug)]
pub struct SoftParams {
    pub query: usize,
    pub centroids: usize,
    pub aggregate_w: usize,
    pub aggregate_b: usize,
    pub disseminate: usize,
}

/// What the backward pass needs from the forward pass.
pub struct SoftCache {
    x: Tensor<2>,
    z: Tensor<2>,
    /// [N, K]
    w: Tensor<2>,
    /// Per centroid: pooled P_k [S, F], weight sums [S, 1], V_k [S, F].
    pooled: Vec<Tensor<2>>,
    weight_sums: Vec<Tensor<2>>,
    v: Vec<Tensor<2>>,
}

pub struct Soft<'a> {
    pub params: &'a [Tensor<2>],
    pub indices: SoftParams,
    pub structure: &'a Tensor<1, Int>,
    pub n_structures: usize,
    pub ctx: &'a Ctx,
}

impl Soft<'_> {
    fn p(&self, i: usize) -> Tensor<2> {
        self.params[i].clone()
    }

    fn k(&self) -> usize {
        self.params[self.indices.centroids].dims()[0]
    }

    fn tau(&self) -> f64 {
        self.params[self.indices.query].dims()[1] as f64
    }

    /// Δx for features x [N, F], and the cache for the backward pass.
    pub fn forward(&self, x: Tensor<2>) -> (Tensor<2>, SoftCache) {
        let z = x.clone().matmul(self.p(self.indices.query));
        let w = softmax(self.logits(&z), 1);
        let (mut pooled, mut weight_sums, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let mut delta: Option<Tensor<2>> = None;
        for k in 0..self.k() {
            let wk = w.clone().narrow(1, k, 1);
            let sum = scatter_add(wk.clone(), self.structure, self.n_structures, self.ctx);
            let p = scatter_add(
                wk.clone() * x.clone(),
                self.structure,
                self.n_structures,
                self.ctx,
            ) / sum.clone();
            let vk = (p.clone().matmul(self.p(self.indices.aggregate_w))
                + self.p(self.indices.aggregate_b))
            .matmul(self.p(self.indices.disseminate));
            let back = wk * vk.clone().select(0, self.structure.clone());
            accumulate(&mut delta, back);
            pooled.push(p);
            weight_sums.push(sum);
            v.push(vk);
        }
        (
            delta.expect("K >= 1"),
            SoftCache {
                x,
                z,
                w,
                pooled,
                weight_sums,
                v,
            },
        )
    }

    /// -|z_i - μ_k|² / τ, [N, K].
    fn logits(&self, z: &Tensor<2>) -> Tensor<2> {
        let mu = self.p(self.indices.centroids); // [K, F]
        let z2 = (z.clone() * z.clone()).sum_dim(1); // [N, 1]
        let mu2 = (mu.clone() * mu.clone()).sum_dim(1).transpose(); // [1, K]
        let cross = z.clone().matmul(mu.transpose()); // [N, K]
        (z2 + mu2 - cross.mul_scalar(2.0)).mul_scalar(-1.0 / self.tau())
    }

    /// dL/dx from g = dL/dΔx.
    pub fn backward(&self, cache: &SoftCache, g: Tensor<2>) -> Tensor<2> {
        let s = self.structure;
        let ns = self.n_structures;
        let mut g_x: Option<Tensor<2>> = None;
        let mut g_w_columns = Vec::with_capacity(self.k());
        for k in 0..self.k() {
            let wk = cache.w.clone().narrow(1, k, 1);
            let vk_atoms = cache.v[k].clone().select(0, s.clone());
            // Δx_i = w_ik V_k[s_i]: to V_k and to w_ik.
            let g_v = scatter_add(wk.clone() * g.clone(), s, ns, self.ctx);
            let mut g_wk = (g.clone() * vk_atoms).sum_dim(1);
            // V = (P A + a) U.
            let g_p = g_v
                .matmul(self.p(self.indices.disseminate).transpose())
                .matmul(self.p(self.indices.aggregate_w).transpose());
            // P = num / sum: num_i-part and sum-part.
            let g_num = g_p.clone() / cache.weight_sums[k].clone();
            let g_sum =
                (g_p * cache.pooled[k].clone()).sum_dim(1).neg() / cache.weight_sums[k].clone(); // [S, 1]
            let g_num_atoms = g_num.select(0, s.clone());
            let from_pool = wk * g_num_atoms.clone();
            g_wk = g_wk + (cache.x.clone() * g_num_atoms).sum_dim(1) + g_sum.select(0, s.clone());
            accumulate(&mut g_x, from_pool);
            g_w_columns.push(g_wk);
        }
        // Softmax: dL/da_ik = w_ik (dL/dw_ik - Σ_k' w_ik' dL/dw_ik').
        let g_w = Tensor::cat(g_w_columns, 1);
        let g_a = cache.w.clone() * (g_w.clone() - (cache.w.clone() * g_w).sum_dim(1));
        // a_ik = -|z_i - μ_k|²/τ: dL/dz_i = -(2/τ) Σ_k dL/da_ik (z_i - μ_k).
        let mu = self.p(self.indices.centroids);
        let g_z = (cache.z.clone() * g_a.clone().sum_dim(1) - g_a.matmul(mu))
            .mul_scalar(-2.0 / self.tau());
        g_x.expect("K >= 1") + g_z.matmul(self.p(self.indices.query).transpose())
    }
}
