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
//! Distance-aware (`distance_widths` s_b set, methods.md §2 "Distances beyond the cutoff"):
//! each centroid also has a position, and the centroids of a structure exchange messages
//! filtered by their distance, so two groups that no edge joins know how far apart they are:
//! ```text
//! R_sk  = Σ_{i∈s} w_ik r_i / Σ_{i∈s} w_ik          soft centroid position (smooth in r)
//! φ_b(D) = (D² + s_b²)^(-1/2)                        Coulomb-like tails, smooth at D = 0
//! M_sk  = Σ_{l≠k} (φ(|R_sk - R_sl|) W_φ) ⊙ (P_sl A_m)
//! V_sk  = (P_sk A + a + M_sk) U
//! ```
//! A centroid is a weighted mean of positions, which a periodic cell does not define (an atom
//! crossing the boundary would move it by a cell length): distance-aware levels take open
//! structures only.
//!
//! The backward pass below is this map's exact vector-Jacobian product, including the
//! dependence of the weights on the features, and (distance-aware) the direct gradient with
//! respect to the positions, which the caller adds to the forces and the virial.

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
    pub distance: Option<DistanceParams>,
}

/// Parameter indices of a distance-aware level's messages.
#[derive(Clone, Copy, Debug)]
pub struct DistanceParams {
    /// A_m [F, F]: what a cluster sends.
    pub message: usize,
    /// W_φ [B, F]: the distance filter on the basis φ_b.
    pub filter: usize,
}

/// The distance basis φ_b(D) = (D² + s_b²)^(-1/2) of squared distances `d2` [S, 1], [S, B].
fn basis(d2: Tensor<2>, widths: &[f64], ctx: &Ctx) -> Tensor<2> {
    let squares: Vec<f64> = widths.iter().map(|s| s * s).collect();
    (d2 + ctx.matrix(&squares, 1, widths.len())).sqrt().recip()
}

/// Per centroid pair (k, l), k < l: R_k - R_l [S, 3], φ [S, B] and the filter φ W_φ [S, F].
struct Pair {
    k: usize,
    l: usize,
    diff: Tensor<2>,
    phi: Tensor<2>,
    filter: Tensor<2>,
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
    /// Distance-aware: positions R_k [S, 3], messages sent P_k A_m [S, F], and the pairs.
    centroids: Vec<Tensor<2>>,
    sent: Vec<Tensor<2>>,
    pairs: Vec<Pair>,
}

pub struct Soft<'a> {
    pub params: &'a [Tensor<2>],
    pub indices: SoftParams,
    pub structure: &'a Tensor<1, Int>,
    pub n_structures: usize,
    /// [N, 3], Å (read where the level is distance-aware).
    pub positions: &'a Tensor<2>,
    /// s_b, Å (empty: not distance-aware).
    pub widths: &'a [f64],
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
        let (s, ns, ctx) = (self.structure, self.n_structures, self.ctx);
        let z = x.clone().matmul(self.p(self.indices.query));
        let w = softmax(self.logits(&z), 1);
        let (mut pooled, mut weight_sums, mut base) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..self.k() {
            let wk = w.clone().narrow(1, k, 1);
            let sum = scatter_add(wk.clone(), s, ns, ctx);
            let p = scatter_add(wk * x.clone(), s, ns, ctx) / sum.clone();
            base.push(p.clone().matmul(self.p(self.indices.aggregate_w)) + self.p(self.indices.aggregate_b));
            pooled.push(p);
            weight_sums.push(sum);
        }
        let (mut centroids, mut sent, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(d) = self.indices.distance {
            for k in 0..self.k() {
                let wk = w.clone().narrow(1, k, 1);
                centroids.push(scatter_add(wk * self.positions.clone(), s, ns, ctx) / weight_sums[k].clone());
                sent.push(pooled[k].clone().matmul(self.p(d.message)));
            }
            for k in 0..self.k() {
                for l in k + 1..self.k() {
                    let diff = centroids[k].clone() - centroids[l].clone();
                    let phi = basis((diff.clone() * diff.clone()).sum_dim(1), self.widths, ctx);
                    let filter = phi.clone().matmul(self.p(d.filter));
                    base[k] = base[k].clone() + filter.clone() * sent[l].clone();
                    base[l] = base[l].clone() + filter.clone() * sent[k].clone();
                    pairs.push(Pair { k, l, diff, phi, filter });
                }
            }
        }
        let mut delta: Option<Tensor<2>> = None;
        let mut v = Vec::new();
        for (k, b) in base.into_iter().enumerate() {
            let vk = b.matmul(self.p(self.indices.disseminate));
            accumulate(&mut delta, w.clone().narrow(1, k, 1) * vk.clone().select(0, s.clone()));
            v.push(vk);
        }
        let cache = SoftCache { x, z, w, pooled, weight_sums, v, centroids, sent, pairs };
        (delta.expect("K >= 1"), cache)
    }

    /// -|z_i - μ_k|² / τ, [N, K].
    fn logits(&self, z: &Tensor<2>) -> Tensor<2> {
        let mu = self.p(self.indices.centroids); // [K, F]
        let z2 = (z.clone() * z.clone()).sum_dim(1); // [N, 1]
        let mu2 = (mu.clone() * mu.clone()).sum_dim(1).transpose(); // [1, K]
        let cross = z.clone().matmul(mu.transpose()); // [N, K]
        (z2 + mu2 - cross.mul_scalar(2.0)).mul_scalar(-1.0 / self.tau())
    }

    /// dL/dx from g = dL/dΔx, and (distance-aware) dL/dr [N, 3] through the centroids.
    pub fn backward(&self, cache: &SoftCache, g: Tensor<2>) -> (Tensor<2>, Option<Tensor<2>>) {
        let s = self.structure;
        let ns = self.n_structures;
        let k_count = self.k();
        // Δx_i = Σ_k w_ik V_k[s_i]: to V_k (then to V's input, P_k A + a + M_k) and to w_ik.
        let mut g_w_columns = Vec::with_capacity(k_count);
        let mut g_base = Vec::with_capacity(k_count);
        for k in 0..k_count {
            let wk = cache.w.clone().narrow(1, k, 1);
            let g_v = scatter_add(wk * g.clone(), s, ns, self.ctx);
            g_base.push(g_v.matmul(self.p(self.indices.disseminate).transpose()));
            g_w_columns.push((g.clone() * cache.v[k].clone().select(0, s.clone())).sum_dim(1));
        }
        let mut g_p: Vec<Tensor<2>> = g_base.iter().map(|gb| gb.clone().matmul(self.p(self.indices.aggregate_w).transpose())).collect();
        let mut g_positions = None;
        if let Some(d) = self.indices.distance {
            // M_k += f_kl ⊙ y_l and M_l += f_kl ⊙ y_k, f_kl = φ(|R_k - R_l|) W_φ, y = P A_m.
            let mut g_sent: Vec<Option<Tensor<2>>> = vec![None; k_count];
            let mut g_centroids: Vec<Option<Tensor<2>>> = vec![None; k_count];
            for pair in &cache.pairs {
                let (k, l) = (pair.k, pair.l);
                accumulate(&mut g_sent[l], g_base[k].clone() * pair.filter.clone());
                accumulate(&mut g_sent[k], g_base[l].clone() * pair.filter.clone());
                let g_filter = g_base[k].clone() * cache.sent[l].clone() + g_base[l].clone() * cache.sent[k].clone();
                let g_phi = g_filter.matmul(self.p(d.filter).transpose());
                // dφ/d(D²) = -φ³/2, and d(D²)/dR_k = 2 (R_k - R_l).
                let phi = pair.phi.clone();
                let g_d2 = (g_phi * phi.clone() * phi.clone() * phi).sum_dim(1).mul_scalar(-0.5);
                let g_rk = pair.diff.clone() * g_d2.mul_scalar(2.0);
                accumulate(&mut g_centroids[l], g_rk.clone().neg());
                accumulate(&mut g_centroids[k], g_rk);
            }
            let mut g_r: Option<Tensor<2>> = None;
            for k in 0..k_count {
                if let Some(gy) = g_sent[k].take() {
                    g_p[k] = g_p[k].clone() + gy.matmul(self.p(d.message).transpose());
                }
                // R_k = Σ w_ik r_i / W_k: to r_i, w_ik (r_i - R_k) / W_k.
                let Some(g_rk) = g_centroids[k].take() else { continue };
                let per_weight = (g_rk.clone() / cache.weight_sums[k].clone()).select(0, s.clone());
                let wk = cache.w.clone().narrow(1, k, 1);
                accumulate(&mut g_r, wk * per_weight.clone());
                let offset = self.positions.clone() - cache.centroids[k].clone().select(0, s.clone());
                g_w_columns[k] = g_w_columns[k].clone() + (offset * per_weight).sum_dim(1);
            }
            g_positions = g_r;
        }
        let mut g_x: Option<Tensor<2>> = None;
        for k in 0..k_count {
            let wk = cache.w.clone().narrow(1, k, 1);
            // P = num / sum: num_i-part and sum-part.
            let g_num = g_p[k].clone() / cache.weight_sums[k].clone();
            let g_sum = (g_p[k].clone() * cache.pooled[k].clone()).sum_dim(1).neg() / cache.weight_sums[k].clone(); // [S, 1]
            let g_num_atoms = g_num.select(0, s.clone());
            g_w_columns[k] = g_w_columns[k].clone() + (cache.x.clone() * g_num_atoms.clone()).sum_dim(1) + g_sum.select(0, s.clone());
            accumulate(&mut g_x, wk * g_num_atoms);
        }
        // Softmax: dL/da_ik = w_ik (dL/dw_ik - Σ_k' w_ik' dL/dw_ik').
        let g_w = Tensor::cat(g_w_columns, 1);
        let g_a = cache.w.clone() * (g_w.clone() - (cache.w.clone() * g_w).sum_dim(1));
        // a_ik = -|z_i - μ_k|²/τ: dL/dz_i = -(2/τ) Σ_k dL/da_ik (z_i - μ_k).
        let mu = self.p(self.indices.centroids);
        let g_z = (cache.z.clone() * g_a.clone().sum_dim(1) - g_a.matmul(mu)).mul_scalar(-2.0 / self.tau());
        (g_x.expect("K >= 1") + g_z.matmul(self.p(self.indices.query).transpose()), g_positions)
    }
}
