//! One PaiNN block for inference, on f32 rows: the message (filters from the block's table), the
//! update, and their transposes for the forces, the same maths as `crate::ml::model`'s
//! `painn_forward` / `painn_backward`.
//!
//! Layouts: scalar features q [N, F]; vector features μ atom-major [N, 3, F], which read as
//! [3N, F] rows go through the dense layers U and V unchanged; φ [N, 3F].
//!
//! As for SchNet, every per-atom sum is a gather over the atom's own full-list row. Edge a←b
//! has its twin b←a at the same distance with the opposite direction (r̂' = -r̂), so the
//! transpose of the messages into b is a sum over a's own row, and each edge computes the
//! derivative of both messages of its pair with respect to the pair vector r = x_b - x_a.

use super::dense::Linear;
use super::table::{FilterTable, Place, lanes, lanes_mut};
use super::Graph;
use crate::neighbor::split_rows;
use rayon::prelude::*;

/// The block's dense layers (its filter is the block's table, 3F wide).
pub struct PainnWeights {
    /// φ = phi2(SiLU(phi1(q))), [N, 3F]
    pub phi1: Linear,
    pub phi2: Linear,
    /// U = μ V_U, V = μ V_V (no bias)
    pub vec_u: Linear,
    pub vec_v: Linear,
    /// (s1, s2, s3) = upd2(SiLU(upd1([q, |V|])))
    pub upd1: Linear,
    pub upd2: Linear,
}

/// Forward values the block's backward pass needs.
pub struct PainnCache {
    /// φ [N, 3F] and SiLU' at phi1's output [N, F].
    phi: Vec<f32>,
    phi_slope: Vec<f32>,
    /// The block's input μ [N, 3, F] (the messages read μ_b).
    mu_in: Vec<f32>,
    /// U, V [N, 3, F]; |V|, <U, V> [N, F].
    u: Vec<f32>,
    v: Vec<f32>,
    norm_v: Vec<f32>,
    dot: Vec<f32>,
    /// SiLU' at upd1's output [N, F]; (s1, s2, s3) [N, 3F].
    upd_slope: Vec<f32>,
    s: Vec<f32>,
}

/// SiLU(x) = x σ(x) and its derivative σ(x) (1 + x (1 - σ(x))).
#[inline]
fn silu_and_slope(x: f32) -> (f32, f32) {
    let s = 1.0 / (1.0 + (-x).exp());
    (x * s, s * (1.0 + x * (1.0 - s)))
}

/// h = SiLU(a), and a replaced by SiLU'(a).
fn silu_in_place(a: &mut [f32]) -> Vec<f32> {
    let mut h = vec![0.0f32; a.len()];
    a.par_chunks_mut(4096).zip(h.par_chunks_mut(4096)).for_each(|(a, h)| {
        for (a, h) in a.iter_mut().zip(h) {
            (*h, *a) = silu_and_slope(*a);
        }
    });
    h
}

/// r̂ of edge e, in f32.
#[inline]
fn direction(graph: &Graph, e: usize) -> [f32; 3] {
    let (r, d) = (graph.vector[e], graph.distance[e]);
    [(r[0] / d) as f32, (r[1] / d) as f32, (r[2] / d) as f32]
}

impl PainnWeights {
    /// The block on (q, μ), in place, for the leading `out_rows` rows (those whose outputs are
    /// needed), which read the leading `in_rows` (`Graph::rows_within`); returns what the
    /// backward pass needs.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, table: &FilterTable, places: &[Place], graph: &Graph, q: &mut Vec<f32>, mu: &mut Vec<f32>, out_rows: usize, in_rows: usize) -> PainnCache {
        let f = self.phi1.inputs;
        let mut phi_slope = Vec::new();
        self.phi1.forward(&q[..in_rows * f], &mut phi_slope);
        let phi_h = silu_in_place(&mut phi_slope);
        let mut phi = Vec::new();
        self.phi2.forward(&phi_h, &mut phi);
        // Message: q_a += Σ φ_b^a W^a, μ_a += Σ (φ_b^b W^b) r̂ + (φ_b^c W^c) μ_b.
        let mu_in = mu[..in_rows * 3 * f].to_vec();
        q[..out_rows * f].par_chunks_mut(f).zip(mu[..out_rows * 3 * f].par_chunks_mut(3 * f)).enumerate().with_min_len(16).for_each(|(a, (qa, mua))| {
            for e in graph.start[a]..graph.start[a + 1] {
                let b = graph.neighbor[e] as usize;
                let edge = Edge { table: table.hermite(&places[e]), rh: direction(graph, e) };
                message(&edge, &phi[b * 3 * f..][..3 * f], &mu_in[b * 3 * f..][..3 * f], qa, mua);
            }
        });
        // Update: U, V from μ; (s1, s2, s3) = MLP([q, |V|]); μ += s2 U; q += s1 + s3 <U, V>.
        let (mut u, mut v) = (Vec::new(), Vec::new());
        self.vec_u.forward(&mu[..out_rows * 3 * f], &mut u);
        self.vec_v.forward(&mu[..out_rows * 3 * f], &mut v);
        let n = out_rows;
        let (mut norm_v, mut dot) = (vec![0.0f32; n * f], vec![0.0f32; n * f]);
        let mut joined = vec![0.0f32; n * 2 * f];
        joined.par_chunks_mut(2 * f).zip(norm_v.par_chunks_mut(f)).zip(dot.par_chunks_mut(f)).enumerate().with_min_len(64).for_each(|(i, ((h, nv), dt))| {
            let (ui, vi) = (&u[i * 3 * f..][..3 * f], &v[i * 3 * f..][..3 * f]);
            h[..f].copy_from_slice(&q[i * f..(i + 1) * f]);
            for o in 0..f {
                let (v0, v1, v2) = (vi[o], vi[f + o], vi[2 * f + o]);
                nv[o] = (v0 * v0 + v1 * v1 + v2 * v2 + 1e-8).sqrt();
                dt[o] = ui[o] * v0 + ui[f + o] * v1 + ui[2 * f + o] * v2;
                h[f + o] = nv[o];
            }
        });
        let mut upd_slope = Vec::new();
        self.upd1.forward(&joined, &mut upd_slope);
        let upd_h = silu_in_place(&mut upd_slope);
        let mut s = Vec::new();
        self.upd2.forward(&upd_h, &mut s);
        q[..n * f].par_chunks_mut(f).zip(mu[..n * 3 * f].par_chunks_mut(3 * f)).enumerate().with_min_len(64).for_each(|(i, (qi, mui))| {
            let (si, ui, dt) = (&s[i * 3 * f..][..3 * f], &u[i * 3 * f..][..3 * f], &dot[i * f..][..f]);
            for o in 0..f {
                qi[o] += si[o] + si[2 * f + o] * dt[o];
                for k in 0..3 {
                    mui[k * f + o] += si[f + o] * ui[k * f + o];
                }
            }
        });
        PainnCache { phi, phi_slope, mu_in, u, v, norm_v, dot, upd_slope, s }
    }

    /// The transpose of the block: (dL/dq, dL/dμ) after it in, before it out; each edge's
    /// dL/dr of its pair (r = x_neighbour - x_atom) added to `pair`.
    /// Rows past those the forward pass updated have no gradient from this block's outputs.
    pub fn backward(&self, table: &FilterTable, places: &[Place], graph: &Graph, c: &PainnCache, g_q: &mut Vec<f32>, g_mu: &mut Vec<f32>, pair: &mut [[f64; 3]]) {
        let f = self.phi1.inputs;
        // The rows the block updated, and the rows whose φ and μ its messages read.
        let n = c.u.len() / (3 * f);
        let in_rows = c.phi.len() / (3 * f);
        // Update.
        let mut g_s = vec![0.0f32; n * 3 * f];
        g_s.par_chunks_mut(3 * f).enumerate().with_min_len(64).for_each(|(i, gs)| {
            let (gq, gm, ui, dt) = (&g_q[i * f..][..f], &g_mu[i * 3 * f..][..3 * f], &c.u[i * 3 * f..][..3 * f], &c.dot[i * f..][..f]);
            for o in 0..f {
                gs[o] = gq[o];
                gs[f + o] = gm[o] * ui[o] + gm[f + o] * ui[f + o] + gm[2 * f + o] * ui[2 * f + o];
                gs[2 * f + o] = gq[o] * dt[o];
            }
        });
        let mut g_upd = Vec::new();
        self.upd2.backward(&g_s, &mut g_upd, false);
        g_upd.iter_mut().zip(&c.upd_slope).for_each(|(g, s)| *g *= s);
        let mut g_joined = Vec::new();
        self.upd1.backward(&g_upd, &mut g_joined, false);
        let (mut g_u, mut g_v) = (vec![0.0f32; n * 3 * f], vec![0.0f32; n * 3 * f]);
        g_q[..n * f].par_chunks_mut(f).zip(g_u.par_chunks_mut(3 * f)).zip(g_v.par_chunks_mut(3 * f)).enumerate().with_min_len(64).for_each(|(i, ((gq, gu), gv))| {
            let (gm, gh) = (&g_mu[i * 3 * f..][..3 * f], &g_joined[i * 2 * f..][..2 * f]);
            let (ui, vi, s) = (&c.u[i * 3 * f..][..3 * f], &c.v[i * 3 * f..][..3 * f], &c.s[i * 3 * f..][..3 * f]);
            for o in 0..f {
                let g_dot = gq[o] * s[2 * f + o];
                let g_norm = gh[f + o] / c.norm_v[i * f + o];
                for k in 0..3 {
                    let x = k * f + o;
                    gu[x] = gm[x] * s[f + o] + g_dot * vi[x];
                    gv[x] = g_dot * ui[x] + g_norm * vi[x];
                }
                gq[o] += gh[o];
            }
        });
        self.vec_u.backward(&g_u, g_mu, true);
        self.vec_v.backward(&g_v, g_mu, true);
        // Message: g_q and g_mu are now dL/dq, dL/dμ after the messages.
        let (g_q_msg, g_mu_msg): (&[f32], &[f32]) = (g_q, g_mu);
        let mut g_phi = vec![0.0f32; in_rows * 3 * f];
        let mut g_mu_in = g_mu_msg.to_vec();
        let rows = split_rows(pair, &graph.start);
        g_phi.par_chunks_mut(3 * f).zip(g_mu_in.par_chunks_mut(3 * f)).zip(rows).enumerate().with_min_len(16).for_each(|(a, ((g_phi_a, g_mu_a_out), pair_rows))| {
            let atom = |i: usize| AtomRows { phi: &c.phi[i * 3 * f..][..3 * f], mu: &c.mu_in[i * 3 * f..][..3 * f], g_q: &g_q_msg[i * f..][..f], g_mu: &g_mu_msg[i * 3 * f..][..3 * f] };
            let rows_a = atom(a);
            for (slot, e) in (graph.start[a]..graph.start[a + 1]).enumerate() {
                // Past the updated rows no row took a message: an edge between two such rows
                // (or to a row whose φ was not needed) carries nothing back.
                let b = graph.neighbor[e] as usize;
                if b >= in_rows || (a >= n && b >= n) {
                    continue;
                }
                let edge = Edge { table: table.hermite(&places[e]), rh: direction(graph, e) };
                let (g_d, g_dir) = message_backward(&edge, rows_a, atom(graph.neighbor[e] as usize), g_phi_a, g_mu_a_out);
                // dL/dr = dL/dd r̂ + (dL/dr̂ - r̂ (dL/dr̂ . r̂)) / d.
                let d = graph.distance[e];
                let rh = edge.rh.map(|v| v as f64);
                let g_dir = g_dir.map(|v| v as f64);
                let along = g_dir[0] * rh[0] + g_dir[1] * rh[1] + g_dir[2] * rh[2];
                for k in 0..3 {
                    pair_rows[slot][k] += g_d as f64 * rh[k] + (g_dir[k] - rh[k] * along) / d;
                }
            }
        });
        // φ = phi2(SiLU(phi1(q))).
        let mut g_h = Vec::new();
        self.phi2.backward(&g_phi, &mut g_h, false);
        g_h.iter_mut().zip(&c.phi_slope).for_each(|(g, s)| *g *= s);
        let mut g_q_in = g_q_msg.to_vec();
        self.phi1.backward(&g_h, &mut g_q_in, true);
        *g_q = g_q_in;
        *g_mu = g_mu_in;
    }
}

/// One edge a←b: the table rows and Hermite weights at its distance, and r̂ (from a to b).
#[derive(Clone, Copy)]
struct Edge<'a> {
    table: (&'a [f32], [f32; 4], [f32; 4]),
    rh: [f32; 3],
}

/// An atom's rows the message backward reads: φ, the block's input μ, and dL/dq, dL/dμ after
/// the messages.
#[derive(Clone, Copy)]
struct AtomRows<'a> {
    phi: &'a [f32],
    mu: &'a [f32],
    g_q: &'a [f32],
    g_mu: &'a [f32],
}

/// W (or dW/dd with the slope weights) of eight lanes from `base` of a table 3F wide.
#[inline(always)]
fn interpolate(rows: &[f32], c: [f32; 4], width: usize, base: usize) -> [f32; 8] {
    let (v0, hd0, v1, hd1) = (lanes(rows, base), lanes(rows, width + base), lanes(rows, 2 * width + base), lanes(rows, 3 * width + base));
    let mut out = [0.0f32; 8];
    for l in 0..8 {
        out[l] = c[0] * v0[l] + c[1] * hd0[l] + c[2] * v1[l] + c[3] * hd1[l];
    }
    out
}

/// The message of one edge a←b into (q_a, μ_a), eight features at a time.
#[inline(always)]
fn message_lanes(edge: &Edge, phi_b: &[f32], mu_b: &[f32], qa: &mut [f32], mua: &mut [f32]) {
    let f = qa.len();
    let (rows, c, _) = edge.table;
    let width = 3 * f;
    assert!(f % 8 == 0 && rows.len() >= 4 * width && phi_b.len() >= width && mu_b.len() >= width && mua.len() >= width);
    for base in (0..f).step_by(8) {
        let (wa, wb, wc) = (interpolate(rows, c, width, base), interpolate(rows, c, width, f + base), interpolate(rows, c, width, 2 * f + base));
        let (pa, pb, pc) = (lanes(phi_b, base), lanes(phi_b, f + base), lanes(phi_b, 2 * f + base));
        let q = lanes_mut(qa, base);
        for l in 0..8 {
            q[l] += pa[l] * wa[l];
        }
        for k in 0..3 {
            let m = lanes(mu_b, k * f + base);
            let out = lanes_mut(mua, k * f + base);
            for l in 0..8 {
                out[l] += pb[l] * wb[l] * edge.rh[k] + pc[l] * wc[l] * m[l];
            }
        }
    }
}

/// The backward pass of edge a←b and of its twin b←a, eight features at a time: the twin's
/// transposes into dL/dφ_a and dL/dμ_a; returns the pair's dL/dd (both messages, with respect to
/// the pair vector's length) and dL/dr̂ (own message minus twin's, whose direction is -r̂).
#[inline(always)]
fn message_backward_lanes(edge: &Edge, a: AtomRows, b: AtomRows, g_phi_a: &mut [f32], g_mu_a: &mut [f32]) -> (f32, [f32; 3]) {
    let f = a.g_q.len();
    let (rows, c, s) = edge.table;
    let width = 3 * f;
    let rh = edge.rh;
    assert!(f % 8 == 0 && rows.len() >= 4 * width && g_phi_a.len() >= width && g_mu_a.len() >= width);
    let (mut g_d, mut g_dir) = ([0.0f32; 8], [[0.0f32; 8]; 3]);
    // One third of the 3F lanes at a time, few rows live at once (more spill to the stack and
    // the loop stops being vector code).
    for base in (0..f).step_by(8) {
        let (x, y, z) = (base, f + base, 2 * f + base);
        let (gm_a, gm_b) = ([lanes(a.g_mu, x), lanes(a.g_mu, y), lanes(a.g_mu, z)], [lanes(b.g_mu, x), lanes(b.g_mu, y), lanes(b.g_mu, z)]);
        // Scalar part: dL/da = g_q of the receiving atom.
        let (w, dw) = (interpolate(rows, c, width, x), interpolate(rows, s, width, x));
        let (gq_a, gq_b, pa, pb) = (lanes(a.g_q, base), lanes(b.g_q, base), lanes(a.phi, x), lanes(b.phi, x));
        let gp = lanes_mut(g_phi_a, x);
        for l in 0..8 {
            g_d[l] += (gq_a[l] * pb[l] + gq_b[l] * pa[l]) * dw[l];
            gp[l] += gq_b[l] * w[l];
        }
        // Direction part: dL/db = g_μ . r̂ for the own message, g_μ . (-r̂) for the twin.
        let (w, dw) = (interpolate(rows, c, width, y), interpolate(rows, s, width, y));
        let (pa, pb) = (lanes(a.phi, y), lanes(b.phi, y));
        let gp = lanes_mut(g_phi_a, y);
        let (mut b_own, mut b_twin) = ([0.0f32; 8], [0.0f32; 8]);
        for l in 0..8 {
            let gb_own = gm_a[0][l] * rh[0] + gm_a[1][l] * rh[1] + gm_a[2][l] * rh[2];
            // The twin's is g_μ_b . (-r̂): subtracted.
            let gb_twin_neg = gm_b[0][l] * rh[0] + gm_b[1][l] * rh[1] + gm_b[2][l] * rh[2];
            g_d[l] += (gb_own * pb[l] - gb_twin_neg * pa[l]) * dw[l];
            gp[l] -= gb_twin_neg * w[l];
            b_own[l] = pb[l] * w[l];
            b_twin[l] = pa[l] * w[l];
        }
        for k in 0..3 {
            let (ga, gb, acc) = (gm_a[k], gm_b[k], &mut g_dir[k]);
            for l in 0..8 {
                acc[l] += ga[l] * b_own[l] - gb[l] * b_twin[l];
            }
        }
        // Vector part: dL/dc = g_μ . μ of the sending atom; the twin's c read μ_a.
        let (w, dw) = (interpolate(rows, c, width, z), interpolate(rows, s, width, z));
        let (pa, pb) = (lanes(a.phi, z), lanes(b.phi, z));
        let (mu_a, mu_b) = ([lanes(a.mu, x), lanes(a.mu, y), lanes(a.mu, z)], [lanes(b.mu, x), lanes(b.mu, y), lanes(b.mu, z)]);
        let gp = lanes_mut(g_phi_a, z);
        let mut c_twin = [0.0f32; 8];
        for l in 0..8 {
            let gc_own = gm_a[0][l] * mu_b[0][l] + gm_a[1][l] * mu_b[1][l] + gm_a[2][l] * mu_b[2][l];
            let gc_twin = gm_b[0][l] * mu_a[0][l] + gm_b[1][l] * mu_a[1][l] + gm_b[2][l] * mu_a[2][l];
            g_d[l] += (gc_own * pb[l] + gc_twin * pa[l]) * dw[l];
            gp[l] += gc_twin * w[l];
            c_twin[l] = pa[l] * w[l];
        }
        for (k, at) in [x, y, z].into_iter().enumerate() {
            let out = lanes_mut(g_mu_a, at);
            for l in 0..8 {
                out[l] += gm_b[k][l] * c_twin[l];
            }
        }
    }
    (g_d.iter().sum(), [g_dir[0].iter().sum(), g_dir[1].iter().sum(), g_dir[2].iter().sum()])
}

/// The lane kernels compiled for AVX2 where the CPU has it (as `table`'s).
#[inline]
fn message(edge: &Edge, phi_b: &[f32], mu_b: &[f32], qa: &mut [f32], mua: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2::message(edge, phi_b, mu_b, qa, mua) };
    }
    message_lanes(edge, phi_b, mu_b, qa, mua)
}

#[inline]
fn message_backward(edge: &Edge, a: AtomRows, b: AtomRows, g_phi_a: &mut [f32], g_mu_a: &mut [f32]) -> (f32, [f32; 3]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2::message_backward(edge, a, b, g_phi_a, g_mu_a) };
    }
    message_backward_lanes(edge, a, b, g_phi_a, g_mu_a)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The edge kernels in AVX2 intrinsics on raw row pointers. Written with slices and
    //! eight-lane arrays (the portable `*_lanes` above) the compiler kept a dozen row pointers
    //! and bounds on the stack and spent half of the kernel reloading them; these do the same
    //! operations in the same order, so both give the same bits.
    use super::{AtomRows, Edge};
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Σ_j k_j row_j over the four table rows `width` apart from `p`: the Hermite value (or
    /// slope) of eight lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hermite(p: *const f32, width: usize, k: &[__m256; 4]) -> __m256 {
        // SAFETY (all loads here and below): the callers assert the rows' lengths.
        unsafe {
            let mut out = _mm256_mul_ps(k[0], _mm256_loadu_ps(p));
            out = _mm256_add_ps(out, _mm256_mul_ps(k[1], _mm256_loadu_ps(p.add(width))));
            out = _mm256_add_ps(out, _mm256_mul_ps(k[2], _mm256_loadu_ps(p.add(2 * width))));
            _mm256_add_ps(out, _mm256_mul_ps(k[3], _mm256_loadu_ps(p.add(3 * width))))
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn weights(c: [f32; 4]) -> [__m256; 4] {
        c.map(|v| _mm256_set1_ps(v))
    }

    /// a·b over the three components, each `f` apart ((a0 b0 + a1 b1) + a2 b2).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot3(a: &[__m256; 3], b: &[__m256; 3]) -> __m256 {
        _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(a[0], b[0]), _mm256_mul_ps(a[1], b[1])), _mm256_mul_ps(a[2], b[2]))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load3(p: *const f32, f: usize) -> [__m256; 3] {
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(f)), _mm256_loadu_ps(p.add(2 * f))] }
    }

    /// Horizontal sum in lane order, as `[f32; 8]::iter().sum()`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lane_sum(v: __m256) -> f32 {
        let mut out = [0.0f32; 8];
        // SAFETY: out has eight lanes.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        out.iter().sum()
    }

    /// The kernels for the common widths with F a constant, so that every row offset is an
    /// immediate and a handful of base pointers stay in registers (with F read at run time the
    /// compiler keeps a pointer per row and offset, ~40, and spills them); other widths run the
    /// portable kernels, compiled for AVX2 here.
    #[target_feature(enable = "avx2")]
    pub fn message(edge: &Edge, phi_b: &[f32], mu_b: &[f32], qa: &mut [f32], mua: &mut [f32]) {
        match qa.len() {
            64 => message_of::<64>(edge, phi_b, mu_b, qa, mua),
            128 => message_of::<128>(edge, phi_b, mu_b, qa, mua),
            _ => super::message_lanes(edge, phi_b, mu_b, qa, mua),
        }
    }

    #[target_feature(enable = "avx2")]
    pub fn message_backward(edge: &Edge, a: AtomRows, b: AtomRows, g_phi_a: &mut [f32], g_mu_a: &mut [f32]) -> (f32, [f32; 3]) {
        match a.g_q.len() {
            64 => message_backward_of::<64>(edge, a, b, g_phi_a, g_mu_a),
            128 => message_backward_of::<128>(edge, a, b, g_phi_a, g_mu_a),
            _ => super::message_backward_lanes(edge, a, b, g_phi_a, g_mu_a),
        }
    }

    /// F features (64 or 128).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn message_of<const F: usize>(edge: &Edge, phi_b: &[f32], mu_b: &[f32], qa: &mut [f32], mua: &mut [f32]) {
        let f = F;
        assert_eq!(qa.len(), f);
        let (rows, c, _) = edge.table;
        let width = 3 * f;
        assert!(f % 8 == 0 && rows.len() >= 4 * width && phi_b.len() >= width && mu_b.len() >= width && mua.len() >= width);
        let (t, pb_, mb, q, m) = (rows.as_ptr(), phi_b.as_ptr(), mu_b.as_ptr(), qa.as_mut_ptr(), mua.as_mut_ptr());
        let c = weights(c);
        let rh = edge.rh.map(|v| _mm256_set1_ps(v));
        for base in (0..f).step_by(8) {
            // SAFETY: every offset is below 3F, which the assert covers.
            unsafe {
                let (x, y, z) = (base, f + base, 2 * f + base);
                let (wa, wb, wc) = (hermite(t.add(x), width, &c), hermite(t.add(y), width, &c), hermite(t.add(z), width, &c));
                let qo = q.add(base);
                _mm256_storeu_ps(qo, _mm256_add_ps(_mm256_loadu_ps(qo), _mm256_mul_ps(_mm256_loadu_ps(pb_.add(x)), wa)));
                let b = _mm256_mul_ps(_mm256_loadu_ps(pb_.add(y)), wb);
                let cc = _mm256_mul_ps(_mm256_loadu_ps(pb_.add(z)), wc);
                for (k, at) in [x, y, z].into_iter().enumerate() {
                    let out = m.add(at);
                    let add = _mm256_add_ps(_mm256_mul_ps(b, rh[k]), _mm256_mul_ps(cc, _mm256_loadu_ps(mb.add(at))));
                    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), add));
                }
            }
        }
    }

    /// The widest F with its own code: W and dW/dd of one edge, 3F lanes each, fit a buffer of
    /// 2 x 48 vectors (3 KB, in L1).
    const WIDEST: usize = 128;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn message_backward_of<const F: usize>(edge: &Edge, a: AtomRows, b: AtomRows, g_phi_a: &mut [f32], g_mu_a: &mut [f32]) -> (f32, [f32; 3]) {
        let f = F;
        assert!(f <= WIDEST && a.g_q.len() == f);
        let (rows, c, s) = edge.table;
        let width = 3 * f;
        assert!(f % 8 == 0 && rows.len() >= 4 * width && g_phi_a.len() >= width && g_mu_a.len() >= width);
        assert!(b.g_q.len() >= f && [a.phi, a.mu, a.g_mu, b.phi, b.mu, b.g_mu].iter().all(|r| r.len() >= width));
        // First W and dW/dd of all 3F lanes: with the eight Hermite weights live through the
        // main loop below as well, its 16 vector registers were not enough and it spilled.
        // (Left uninitialised: zeroing them cost more than the spills.)
        let (mut w_all, mut dw_all) = ([MaybeUninit::<__m256>::uninit(); 3 * WIDEST / 8], [MaybeUninit::<__m256>::uninit(); 3 * WIDEST / 8]);
        {
            let t = rows.as_ptr();
            let (c, s) = (weights(c), weights(s));
            for (v, lane) in (0..width).step_by(8).enumerate() {
                // SAFETY: lane + 3 width < 4 width, which the assert covers.
                unsafe {
                    w_all[v].write(hermite(t.add(lane), width, &c));
                    dw_all[v].write(hermite(t.add(lane), width, &s));
                }
            }
        }
        // SAFETY: the loop above wrote the first 3F / 8 vectors, the only ones read.
        let w_at = |v: usize| unsafe { w_all[v].assume_init() };
        let dw_at = |v: usize| unsafe { dw_all[v].assume_init() };
        let rh = edge.rh.map(|v| _mm256_set1_ps(v));
        let (gp, gm) = (g_phi_a.as_mut_ptr(), g_mu_a.as_mut_ptr());
        let (mut g_d, mut g_dir) = (_mm256_setzero_ps(), [_mm256_setzero_ps(); 3]);
        for (v, base) in (0..f).step_by(8).enumerate() {
            // SAFETY: every offset is below 3F (F for g_q), which the asserts cover.
            unsafe {
                let (x, y, z) = (base, f + base, 2 * f + base);
                let gm_a = load3(a.g_mu.as_ptr().add(base), f);
                let gm_b = load3(b.g_mu.as_ptr().add(base), f);
                // Scalar part: dL/da = g_q of the receiving atom.
                let (w, dw) = (w_at(v), dw_at(v));
                let (gq_a, gq_b) = (_mm256_loadu_ps(a.g_q.as_ptr().add(base)), _mm256_loadu_ps(b.g_q.as_ptr().add(base)));
                let (pa, pb) = (_mm256_loadu_ps(a.phi.as_ptr().add(x)), _mm256_loadu_ps(b.phi.as_ptr().add(x)));
                let both = _mm256_add_ps(_mm256_mul_ps(gq_a, pb), _mm256_mul_ps(gq_b, pa));
                g_d = _mm256_add_ps(g_d, _mm256_mul_ps(both, dw));
                _mm256_storeu_ps(gp.add(x), _mm256_add_ps(_mm256_loadu_ps(gp.add(x)), _mm256_mul_ps(gq_b, w)));
                // Direction part: dL/db = g_μ . r̂ for the own message, g_μ . (-r̂) for the twin
                // (subtracted: a - x y has the bits of a + (-x) y).
                let (w, dw) = (w_at(f / 8 + v), dw_at(f / 8 + v));
                let (pa, pb) = (_mm256_loadu_ps(a.phi.as_ptr().add(y)), _mm256_loadu_ps(b.phi.as_ptr().add(y)));
                let gb_own = dot3(&gm_a, &rh);
                let gb_twin_neg = dot3(&gm_b, &rh);
                let both = _mm256_sub_ps(_mm256_mul_ps(gb_own, pb), _mm256_mul_ps(gb_twin_neg, pa));
                g_d = _mm256_add_ps(g_d, _mm256_mul_ps(both, dw));
                _mm256_storeu_ps(gp.add(y), _mm256_sub_ps(_mm256_loadu_ps(gp.add(y)), _mm256_mul_ps(gb_twin_neg, w)));
                let (b_own, b_twin) = (_mm256_mul_ps(pb, w), _mm256_mul_ps(pa, w));
                for k in 0..3 {
                    g_dir[k] = _mm256_add_ps(g_dir[k], _mm256_sub_ps(_mm256_mul_ps(gm_a[k], b_own), _mm256_mul_ps(gm_b[k], b_twin)));
                }
                // Vector part: dL/dc = g_μ . μ of the sending atom; the twin's c read μ_a.
                let (w, dw) = (w_at(f / 4 + v), dw_at(f / 4 + v));
                let (pa, pb) = (_mm256_loadu_ps(a.phi.as_ptr().add(z)), _mm256_loadu_ps(b.phi.as_ptr().add(z)));
                let gc_own = dot3(&gm_a, &load3(b.mu.as_ptr().add(base), f));
                let gc_twin = dot3(&gm_b, &load3(a.mu.as_ptr().add(base), f));
                let both = _mm256_add_ps(_mm256_mul_ps(gc_own, pb), _mm256_mul_ps(gc_twin, pa));
                g_d = _mm256_add_ps(g_d, _mm256_mul_ps(both, dw));
                _mm256_storeu_ps(gp.add(z), _mm256_add_ps(_mm256_loadu_ps(gp.add(z)), _mm256_mul_ps(gc_twin, w)));
                let c_twin = _mm256_mul_ps(pa, w);
                for (k, at) in [x, y, z].into_iter().enumerate() {
                    let out = gm.add(at);
                    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), _mm256_mul_ps(gm_b[k], c_twin)));
                }
            }
        }
        (lane_sum(g_d), [lane_sum(g_dir[0]), lane_sum(g_dir[1]), lane_sum(g_dir[2])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in [-1, 1) from a counter-based generator (the same every run).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| crate::rng::philox4x32([i as u32, seed, 0, 0], [3, 5])[0] as f32 / 2147483648.0 - 1.0).collect()
    }

    /// The AVX2 kernels do the portable kernels' operations in the same order: same bits, at the
    /// widths with their own code (64, 128) and at another (16, the portable code compiled for
    /// AVX2 against the same code compiled without it).
    #[test]
    fn avx2_edge_kernels_equal_the_portable_ones() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            for f in [16, 64, 128] {
                let width = 3 * f;
                let rows = values(4 * width, 1);
                let edge = Edge { table: (&rows, [0.3, -0.2, 0.7, 0.1], [-1.1, 0.4, 1.3, -0.6]), rh: [0.48, -0.6, 0.64] };
                let (phi_a, mu_a, phi_b, mu_b) = (values(width, 2), values(width, 3), values(width, 4), values(width, 5));
                let (g_q_a, g_mu_a, g_q_b, g_mu_b) = (values(f, 6), values(width, 7), values(f, 8), values(width, 9));
                let a = AtomRows { phi: &phi_a, mu: &mu_a, g_q: &g_q_a, g_mu: &g_mu_a };
                let b = AtomRows { phi: &phi_b, mu: &mu_b, g_q: &g_q_b, g_mu: &g_mu_b };
                let (mut q1, mut m1) = (values(f, 10), values(width, 11));
                let (mut q2, mut m2) = (q1.clone(), m1.clone());
                message_lanes(&edge, &phi_b, &mu_b, &mut q1, &mut m1);
                // SAFETY: the CPU has AVX2, checked above.
                unsafe { avx2::message(&edge, &phi_b, &mu_b, &mut q2, &mut m2) };
                assert!(q1.iter().zip(&q2).chain(m1.iter().zip(&m2)).all(|(x, y)| x.to_bits() == y.to_bits()), "message, F = {f}");
                let (mut gp1, mut gm1) = (values(width, 12), values(width, 13));
                let (mut gp2, mut gm2) = (gp1.clone(), gm1.clone());
                let (d1, dir1) = message_backward_lanes(&edge, a, b, &mut gp1, &mut gm1);
                // SAFETY: as above.
                let (d2, dir2) = unsafe { avx2::message_backward(&edge, a, b, &mut gp2, &mut gm2) };
                assert_eq!((d1.to_bits(), dir1.map(f32::to_bits)), (d2.to_bits(), dir2.map(f32::to_bits)), "dL/dr, F = {f}");
                assert!(gp1.iter().zip(&gp2).chain(gm1.iter().zip(&gm2)).all(|(x, y)| x.to_bits() == y.to_bits()), "transposes, F = {f}");
                assert!(d1 != 0.0 && gp1.iter().any(|v| *v != 0.0));
            }
        }
    }
}
