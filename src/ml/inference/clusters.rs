//! MCGM for inference, on f32 rows: the hard hierarchy (elements, then K-means levels, built
//! from the current embeddings at every evaluation exactly as `crate::ml::mcgm` builds it) and
//! the soft level (`crate::ml::soft`), each with the transpose of its update for the forces.

use super::dense::Linear;
use crate::cell::Vec3;
use crate::ml::mcgm::{McgmConfig, Pooling, cluster_labels};

/// One level of the hard hierarchy.
pub struct Level {
    pub n_clusters: usize,
    /// For each member of the level below (atoms for the first level), its cluster here.
    pub member_of: Vec<usize>,
    /// Members per cluster.
    pub members: Vec<f32>,
    /// For each atom, its cluster at this level.
    pub atom_cluster: Vec<usize>,
}

/// Aggregation A_l (with bias) and dissemination U_l of each hard level.
pub struct HardWeights {
    pub aggregate: Vec<Linear>,
    pub disseminate: Vec<Linear>,
}

/// Builds the hierarchy of every structure from the features x [N, F] (the training code's
/// labels, `crate::ml::mcgm::cluster_labels`, so they agree with the reference), pooling the
/// owned atoms of `pooling`.
pub fn hierarchy(config: &McgmConfig, structure: &[usize], species: &[usize], n_species: usize, n_structures: usize, x: &[f32], f: usize, pooling: &mut Pooling) -> Vec<Level> {
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    cluster_labels(config, structure, species, n_species, n_structures, &x64, f, pooling)
        .into_iter()
        .map(|l| Level { n_clusters: l.structure_of.len(), member_of: l.member_of, members: l.members.iter().map(|&m| m.max(1.0) as f32).collect(), atom_cluster: l.atom_cluster })
        .collect()
}

/// Sum of rows of `data` ([rows, f]) per group.
fn sum_rows(data: &[f32], f: usize, group: &[usize], groups: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; groups * f];
    // `data` may hold the leading rows only (the rest read as zero).
    for (src, &g) in data.chunks(f).zip(group) {
        let dst = &mut sum[g * f..(g + 1) * f];
        for k in 0..f {
            dst[k] += src[k];
        }
    }
    sum
}

/// `sum_rows` over every row, added up over the whole system: the transpose of a
/// dissemination, read by the owned atoms and the ghosts alike.
fn sum_rows_everywhere(data: &[f32], f: usize, group: &[usize], groups: usize, pooling: &mut Pooling) -> Vec<f32> {
    let mut sum = sum_rows(data, f, group, groups);
    pooling.add_up(&mut [&mut sum]);
    sum
}

impl HardWeights {
    /// Adds Δx_i = Σ_l (c_l U_l)[cluster_l(i)] into `delta`, c_l = mean_l(c_{l-1}) A_l + a_l.
    /// Level 1 pools the owned atoms of `pooling`; the levels above pool clusters, which every
    /// part of a decomposed system holds alike.
    pub fn forward(&self, levels: &[Level], x: &[f32], f: usize, delta: &mut [f32], pooling: &mut Pooling) {
        let (mut c, mut out) = (Vec::new(), Vec::new());
        for (l, level) in levels.iter().enumerate() {
            let mut pooled = if l == 0 { pooling.sum_rows(x, f, &level.member_of, level.n_clusters) } else { sum_rows(&c, f, &level.member_of, level.n_clusters) };
            for (k, row) in pooled.chunks_mut(f).enumerate() {
                row.iter_mut().for_each(|v| *v /= level.members[k]);
            }
            self.aggregate[l].forward(&pooled, &mut c);
            self.disseminate[l].forward(&c, &mut out);
            for (i, d) in delta.chunks_mut(f).enumerate() {
                let row = &out[level.atom_cluster[i] * f..][..f];
                d.iter_mut().zip(row).for_each(|(d, v)| *d += v);
            }
        }
    }

    /// Adds the transpose of `forward`'s linear map applied to g = dL/dΔx into `g_x`.
    pub fn backward(&self, levels: &[Level], g: &[f32], f: usize, g_x: &mut [f32], pooling: &mut Pooling) {
        let mut g_c: Vec<Vec<f32>> = levels
            .iter()
            .enumerate()
            .map(|(l, level)| {
                let mut out = Vec::new();
                self.disseminate[l].backward(&sum_rows_everywhere(g, f, &level.atom_cluster, level.n_clusters, pooling), &mut out, false);
                out
            })
            .collect();
        let mut g_pooled = Vec::new();
        for l in (0..levels.len()).rev() {
            self.aggregate[l].backward(&g_c[l], &mut g_pooled, false);
            let level = &levels[l];
            for (k, row) in g_pooled.chunks_mut(f).enumerate() {
                row.iter_mut().for_each(|v| *v /= level.members[k]);
            }
            // Level 1 pooled the owned atoms only.
            let (target, pooled): (&mut [f32], usize) = if l == 0 { (&mut *g_x, pooling.owned) } else { (&mut g_c[l - 1], level.member_of.len()) };
            for (m, row) in target.chunks_mut(f).enumerate().take(pooled) {
                let src = &g_pooled[level.member_of[m] * f..][..f];
                row.iter_mut().zip(src).for_each(|(t, v)| *t += v);
            }
        }
    }
}

/// The soft level: K learned centroids, softmax memberships, soft mean-pool and dissemination.
pub struct SoftWeights {
    pub query: Linear,
    /// [K, F]
    pub centroids: Vec<f32>,
    pub aggregate: Linear,
    pub disseminate: Linear,
    /// A distance-aware level's messages between centroids.
    pub distance: Option<DistanceWeights>,
}

/// The centroids' messages (`crate::ml::soft`): M_k = Σ_{l≠k} (φ(|R_k - R_l|) W_φ) ⊙ (P_l A_m).
pub struct DistanceWeights {
    /// A_m
    pub message: Linear,
    /// W_φ [B, F]
    pub filter: Vec<f32>,
    /// s_b, Å
    pub widths: Vec<f64>,
}

/// What the soft level's backward pass needs from its forward pass.
#[derive(Default)]
pub struct SoftCache {
    z: Vec<f32>,
    /// [N, K]
    w: Vec<f32>,
    /// [S, K, F] pooled P, [S, K] weight sums, [S, K, F] V.
    pooled: Vec<f32>,
    sums: Vec<f32>,
    v: Vec<f32>,
    /// Distance-aware: centroids R [S, K, 3], messages sent P A_m [S, K, F], and per structure
    /// and pair k < l (in order) φ [B] and the filter φ W_φ [F].
    centroids: Vec<f64>,
    sent: Vec<f32>,
    phi: Vec<f64>,
    filters: Vec<f32>,
}

/// The pairs k < l of K centroids, in the order the caches keep them.
fn centroid_pairs(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).flat_map(move |a| (a + 1..k).map(move |b| (a, b)))
}

impl DistanceWeights {
    /// Adds the centroids' messages into `base` (P A + a, [S, K, F]); fills the cache's
    /// centroid fields. `numerators`: Σ_i w_ik r_i [S, K, 3], added up over the whole system.
    fn forward(&self, numerators: &[f64], sums: &[f32], pooled: &[f32], f: usize, k: usize, base: &mut [f32], cache: &mut SoftCache) {
        cache.centroids = numerators.iter().enumerate().map(|(j, &v)| v / sums[j / 3] as f64).collect();
        self.message.forward(pooled, &mut cache.sent);
        let (b, n_structures) = (self.widths.len(), sums.len() / k);
        for s in 0..n_structures {
            for (a, c) in centroid_pairs(k) {
                let (ra, rc) = (&cache.centroids[(s * k + a) * 3..][..3], &cache.centroids[(s * k + c) * 3..][..3]);
                let d2: f64 = (0..3).map(|x| (ra[x] - rc[x]).powi(2)).sum();
                let phi: Vec<f64> = self.widths.iter().map(|w| 1.0 / (d2 + w * w).sqrt()).collect();
                let mut filter = vec![0.0f32; f];
                for (p, row) in phi.iter().zip(self.filter.chunks(f)) {
                    filter.iter_mut().zip(row).for_each(|(t, w)| *t += *p as f32 * w);
                }
                for (to, from) in [(a, c), (c, a)] {
                    let sent = &cache.sent[(s * k + from) * f..][..f];
                    base[(s * k + to) * f..][..f].iter_mut().zip(sent.iter().zip(&filter)).for_each(|(t, (y, w))| *t += y * w);
                }
                debug_assert_eq!(phi.len(), b);
                cache.phi.extend(phi);
                cache.filters.extend(filter);
            }
        }
    }

    /// From g_base = dL/d(P A + a + M) [S, K, F]: adds dL/dP into `g_p` and returns dL/dR
    /// [S, K, 3].
    fn backward(&self, cache: &SoftCache, g_base: &[f32], f: usize, k: usize, g_p: &mut Vec<f32>) -> Vec<f64> {
        let (b, n_structures) = (self.widths.len(), cache.sums.len() / k);
        let mut g_sent = vec![0.0f32; n_structures * k * f];
        let mut g_r = vec![0.0f64; n_structures * k * 3];
        for s in 0..n_structures {
            for (p, (a, c)) in centroid_pairs(k).enumerate() {
                let pair = s * (k * (k - 1) / 2) + p;
                let (phi, filter) = (&cache.phi[pair * b..][..b], &cache.filters[pair * f..][..f]);
                let mut g_filter = vec![0.0f32; f];
                for (to, from) in [(a, c), (c, a)] {
                    let g_to = &g_base[(s * k + to) * f..][..f];
                    let sent = &cache.sent[(s * k + from) * f..][..f];
                    g_sent[(s * k + from) * f..][..f].iter_mut().zip(g_to.iter().zip(filter)).for_each(|(t, (g, w))| *t += g * w);
                    g_filter.iter_mut().zip(g_to.iter().zip(sent)).for_each(|(t, (g, y))| *t += g * y);
                }
                // dφ_b/d(D²) = -φ_b³/2, d(D²)/dR_a = 2 (R_a - R_c).
                let g_d2: f64 = phi.iter().zip(self.filter.chunks(f)).map(|(p, row)| {
                    let g_phi: f64 = row.iter().zip(&g_filter).map(|(w, g)| (*w as f64) * (*g as f64)).sum();
                    -0.5 * g_phi * p * p * p
                }).sum();
                for x in 0..3 {
                    let along = 2.0 * g_d2 * (cache.centroids[(s * k + a) * 3 + x] - cache.centroids[(s * k + c) * 3 + x]);
                    g_r[(s * k + a) * 3 + x] += along;
                    g_r[(s * k + c) * 3 + x] -= along;
                }
            }
        }
        self.message.backward(&g_sent, g_p, true);
        g_r
    }
}

impl SoftWeights {
    pub fn k(&self) -> usize {
        self.centroids.len() / self.query.outputs
    }

    /// Adds Δx_i = Σ_k w_ik V_{s(i)k} into `delta`; returns the cache for the backward pass.
    /// The memberships' sums and the pooled rows are over the owned atoms of `pooling`, added
    /// up over the whole system; every atom (ghosts too) reads the result.
    /// Distance-aware, the centroids are the memberships' means of `positions` (owned atoms).
    pub fn forward(&self, structure: &[usize], n_structures: usize, x: &[f32], positions: &[Vec3], f: usize, delta: &mut [f32], pooling: &mut Pooling) -> SoftCache {
        let (k, n) = (self.k(), structure.len());
        let tau = f as f32;
        let mut z = Vec::new();
        self.query.forward(x, &mut z);
        let mut w = vec![0.0f32; n * k];
        for i in 0..n {
            let zi = &z[i * f..(i + 1) * f];
            let logits = &mut w[i * k..(i + 1) * k];
            for (c, l) in logits.iter_mut().enumerate() {
                let mu = &self.centroids[c * f..(c + 1) * f];
                *l = -zi.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / tau;
            }
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut total = 0.0;
            for l in logits.iter_mut() {
                *l = (*l - max).exp();
                total += *l;
            }
            logits.iter_mut().for_each(|l| *l /= total);
        }
        let mut pooled = vec![0.0f32; n_structures * k * f];
        let mut sums = vec![0.0f32; n_structures * k];
        for i in 0..pooling.owned {
            let s = structure[i];
            for c in 0..k {
                let wik = w[i * k + c];
                sums[s * k + c] += wik;
                let p = &mut pooled[(s * k + c) * f..][..f];
                p.iter_mut().zip(&x[i * f..(i + 1) * f]).for_each(|(p, x)| *p += wik * x);
            }
        }
        pooling.add_up(&mut [&mut sums, &mut pooled]);
        for (p, sum) in pooled.chunks_mut(f).zip(&sums) {
            p.iter_mut().for_each(|v| *v /= sum);
        }
        let mut cache = SoftCache::default();
        let (mut a, mut v) = (Vec::new(), Vec::new());
        self.aggregate.forward(&pooled, &mut a);
        if let Some(distance) = &self.distance {
            // Σ_i w_ik r_i in f64 (positions need more digits than features).
            let mut numerators = vec![0.0f64; n_structures * k * 3];
            for i in 0..pooling.owned {
                for c in 0..k {
                    let wik = w[i * k + c] as f64;
                    let t = &mut numerators[(structure[i] * k + c) * 3..][..3];
                    (0..3).for_each(|x| t[x] += wik * positions[i][x]);
                }
            }
            (pooling.reduce)(&mut numerators);
            distance.forward(&numerators, &sums, &pooled, f, k, &mut a, &mut cache);
        }
        self.disseminate.forward(&a, &mut v);
        for i in 0..n {
            let s = structure[i];
            let d = &mut delta[i * f..(i + 1) * f];
            for c in 0..k {
                let wik = w[i * k + c];
                d.iter_mut().zip(&v[(s * k + c) * f..][..f]).for_each(|(d, v)| *d += wik * v);
            }
        }
        SoftCache { z, w, pooled, sums, v, ..cache }
    }

    /// Adds dL/dx into `g_x` from g = dL/dΔx: the exact vector-Jacobian product, including the
    /// memberships' dependence on x; distance-aware, also dL/dr of the owned atoms (through
    /// the centroids) into `g_positions`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(&self, cache: &SoftCache, structure: &[usize], n_structures: usize, x: &[f32], positions: &[Vec3], g: &[f32], f: usize, g_x: &mut [f32], g_positions: &mut [[f64; 3]], pooling: &mut Pooling) {
        let (k, n) = (self.k(), structure.len());
        let tau = f as f32;
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f32>();
        // To V: g_V[s, c] = Σ_{i∈s} w_ic g_i; to the weights: g_w[i, c] = g_i · V[s(i), c].
        let mut g_v = vec![0.0f32; n_structures * k * f];
        let mut g_w = vec![0.0f32; n * k];
        for i in 0..n {
            let (s, gi) = (structure[i], &g[i * f..(i + 1) * f]);
            for c in 0..k {
                let wic = cache.w[i * k + c];
                g_v[(s * k + c) * f..][..f].iter_mut().zip(gi).for_each(|(t, g)| *t += wic * g);
                g_w[i * k + c] = dot(gi, &cache.v[(s * k + c) * f..][..f]);
            }
        }
        // Every atom read V: its gradient is added up over the whole system.
        pooling.add_up(&mut [&mut g_v]);
        // V = (P A + a) U, so g_P = g_V U^T A^T; P = num / sum.
        let (mut g_a, mut g_p) = (Vec::new(), Vec::new());
        self.disseminate.backward(&g_v, &mut g_a, false);
        self.aggregate.backward(&g_a, &mut g_p, false);
        let g_centroids = self.distance.as_ref().map(|d| d.backward(cache, &g_a, f, k, &mut g_p));
        let g_sum: Vec<f32> = (0..n_structures * k)
            .map(|sc| -dot(&g_p[sc * f..][..f], &cache.pooled[sc * f..][..f]) / cache.sums[sc])
            .collect();
        g_p.chunks_mut(f).zip(&cache.sums).for_each(|(row, sum)| row.iter_mut().for_each(|v| *v /= sum));
        // Only the owned atoms were pooled.
        for i in 0..pooling.owned {
            let s = structure[i];
            let xi = &x[i * f..(i + 1) * f];
            for c in 0..k {
                let g_num = &g_p[(s * k + c) * f..][..f];
                let wic = cache.w[i * k + c];
                g_x[i * f..(i + 1) * f].iter_mut().zip(g_num).for_each(|(t, g)| *t += wic * g);
                g_w[i * k + c] += dot(xi, g_num) + g_sum[s * k + c];
                // R_c = Σ w_ic r_i / W_c: to r_i, and to w_ic through (r_i - R_c) / W_c.
                if let Some(g_r) = &g_centroids {
                    let (g_rc, r_c) = (&g_r[(s * k + c) * 3..][..3], &cache.centroids[(s * k + c) * 3..][..3]);
                    let sum = cache.sums[s * k + c] as f64;
                    let mut along = 0.0;
                    for a in 0..3 {
                        g_positions[i][a] += wic as f64 * g_rc[a] / sum;
                        along += (positions[i][a] - r_c[a]) * g_rc[a] / sum;
                    }
                    g_w[i * k + c] += along as f32;
                }
            }
        }
        // Softmax, then a_ic = -|z_i - μ_c|²/τ: g_z_i = -(2/τ) Σ_c g_a_ic (z_i - μ_c).
        let mut g_z = vec![0.0f32; n * f];
        for i in 0..n {
            let (w, gw) = (&cache.w[i * k..(i + 1) * k], &g_w[i * k..(i + 1) * k]);
            let mean = dot(w, gw);
            let zi = &cache.z[i * f..(i + 1) * f];
            let gz = &mut g_z[i * f..(i + 1) * f];
            for c in 0..k {
                let g_a = w[c] * (gw[c] - mean) * (-2.0 / tau);
                let mu = &self.centroids[c * f..(c + 1) * f];
                gz.iter_mut().zip(zi.iter().zip(mu)).for_each(|(t, (z, m))| *t += g_a * (z - m));
            }
        }
        let mut through_query = Vec::new();
        self.query.backward(&g_z, &mut through_query, false);
        g_x.iter_mut().zip(&through_query).for_each(|(t, v)| *t += v);
    }
}
