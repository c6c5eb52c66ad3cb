//! The filters tabulated per block. SchNet's filter network W(d) = (ssp(g(d) W1 + b1) W2 + b2)
//! f_c(d) and PaiNN's W(d) = (g(d) W + b) f_c(d) depend on the distance alone, so instead of
//! matrix products per edge and block (almost all of a SchNet step), W is read from a table: cubic Hermite pieces on a uniform
//! grid with the exact value and derivative at every node (computed in f64 from the weights).
//! Forces use the derivative of the same piecewise cubic, so they are the exact gradient of the
//! tabulated energy and NVE conserves it. The interpolation error is h⁴/384 max|W''''|; with
//! h = 0.01 Å and Gaussians of width rc/(n_rbf - 1) ≈ 0.26 Å it is below f32 rounding.

use super::dense::{sigmoid64, ssp64};

/// Grid spacing the table aims for, Å.
const SPACING: f64 = 0.01;

pub struct FilterTable {
    pub features: usize,
    pub inv_h: f64,
    pub nodes: usize,
    /// Per node: F values, then F derivatives times h.
    pub data: Vec<f32>,
}

/// The filter network of one block, in f64 (weights [in, out] row-major).
pub struct FilterNetwork<'a> {
    pub n_rbf: usize,
    pub features: usize,
    /// The block's cutoff: it spaces the Gaussians (as the model's radial basis does) and is
    /// where f_c reaches zero.
    pub cutoff: f64,
    pub w1: &'a [f64],
    pub b1: &'a [f64],
    pub w2: &'a [f64],
    pub b2: &'a [f64],
}

impl FilterNetwork<'_> {
    /// W(d) and dW/dd, exactly.
    pub fn evaluate(&self, d: f64) -> (Vec<f64>, Vec<f64>) {
        let (g, dg) = gaussians(self.n_rbf, self.cutoff, d);
        let (a1, da1) = affine(&g, &dg, self.w1, self.b1);
        let s: Vec<f64> = a1.iter().map(|&a| ssp64(a)).collect();
        let ds: Vec<f64> = a1.iter().zip(&da1).map(|(&a, &da)| sigmoid64(a) * da).collect();
        let (filter, dfilter) = affine(&s, &ds, self.w2, self.b2);
        times_cutoff(filter, dfilter, self.cutoff, d)
    }
}

/// PaiNN's filter of one block, in f64: W(d) = (g(d) W + b) f_c(d), 3F wide (weights [in, out]).
pub struct LinearFilter<'a> {
    pub n_rbf: usize,
    pub width: usize,
    pub cutoff: f64,
    pub w: &'a [f64],
    pub b: &'a [f64],
}

impl LinearFilter<'_> {
    /// W(d) and dW/dd, exactly.
    pub fn evaluate(&self, d: f64) -> (Vec<f64>, Vec<f64>) {
        let (g, dg) = gaussians(self.n_rbf, self.cutoff, d);
        let (lin, dlin) = affine(&g, &dg, self.w, self.b);
        times_cutoff(lin, dlin, self.cutoff, d)
    }
}

/// y = b + x W and its derivative dy = dx W along a path x(d) (W [in, out] row-major).
fn affine(x: &[f64], dx: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let outputs = b.len();
    let (mut y, mut dy) = (b.to_vec(), vec![0.0; outputs]);
    for (i, (&xi, &dxi)) in x.iter().zip(dx).enumerate() {
        for o in 0..outputs {
            y[o] += xi * w[i * outputs + o];
            dy[o] += dxi * w[i * outputs + o];
        }
    }
    (y, dy)
}

/// (v f_c(d), d/dd of it) from v(d) and dv/dd.
fn times_cutoff(v: Vec<f64>, dv: Vec<f64>, rc: f64, d: f64) -> (Vec<f64>, Vec<f64>) {
    let (fc, dfc) = cosine_cutoff(rc, d);
    let dw = v.iter().zip(&dv).map(|(v, dv)| dv * fc + v * dfc).collect();
    (v.iter().map(|v| v * fc).collect(), dw)
}

/// The model's radial basis: k Gaussians spaced rc / (k - 1) apart with that width, and their
/// derivatives, at distance d.
fn gaussians(k: usize, rc: f64, d: f64) -> (Vec<f64>, Vec<f64>) {
    let width = rc / (k - 1) as f64;
    let g: Vec<f64> = (0..k).map(|i| (-0.5 * (d - i as f64 * width).powi(2) / (width * width)).exp()).collect();
    let dg = (0..k).map(|i| -g[i] * (d - i as f64 * width) / (width * width)).collect();
    (g, dg)
}

/// f_c(d) = (cos(π d / rc) + 1) / 2 inside the cutoff, 0 outside, and its derivative.
fn cosine_cutoff(rc: f64, d: f64) -> (f64, f64) {
    if d < rc {
        let phase = std::f64::consts::PI * d / rc;
        (0.5 * (phase.cos() + 1.0), -0.5 * std::f64::consts::PI / rc * phase.sin())
    } else {
        (0.0, 0.0)
    }
}

impl FilterTable {
    /// Tabulates `net` on [0, reach] (reach: the graph's cutoff).
    pub fn new(net: &FilterNetwork, reach: f64) -> FilterTable {
        FilterTable::tabulate(net.features, reach, |d| net.evaluate(d))
    }

    /// Tabulates any filter of `width` lanes, given exactly (value and derivative) by
    /// `evaluate`, on [0, reach]. The grid depends on the reach alone, so every block of a
    /// model shares it.
    pub fn tabulate(width: usize, reach: f64, evaluate: impl Fn(f64) -> (Vec<f64>, Vec<f64>)) -> FilterTable {
        let f = width;
        let intervals = (reach / SPACING).ceil().max(1.0) as usize;
        let h = reach / intervals as f64;
        // One spare node past the reach so that d = reach - ε has a right-hand node.
        let nodes = intervals + 2;
        let mut data = vec![0.0f32; nodes * 2 * f];
        for k in 0..nodes {
            let (w, dw) = evaluate(k as f64 * h);
            let row = &mut data[k * 2 * f..(k + 1) * 2 * f];
            for o in 0..f {
                row[o] = w[o] as f32;
                row[f + o] = (dw[o] * h) as f32;
            }
        }
        FilterTable { features: f, inv_h: 1.0 / h, nodes, data }
    }

    /// Where distance d falls on the grid: its interval and Hermite weights. Every block's
    /// table has the same grid, so an edge's place is computed once per evaluation.
    #[inline]
    pub fn place(&self, d: f64) -> Place {
        let s = d * self.inv_h;
        let k = (s as usize).min(self.nodes - 2);
        let t = s - k as f64;
        let (t2, t3) = (t * t, t * t * t);
        let value = [2.0 * t3 - 3.0 * t2 + 1.0, t3 - 2.0 * t2 + t, -2.0 * t3 + 3.0 * t2, t3 - t2];
        let slope = [(6.0 * t2 - 6.0 * t), (3.0 * t2 - 4.0 * t + 1.0), (-6.0 * t2 + 6.0 * t), (3.0 * t2 - 2.0 * t)];
        Place { node: k as u32, value: value.map(|v| v as f32), slope: slope.map(|v| (v * self.inv_h) as f32) }
    }

    /// True when `other` has the same grid (so places computed with one serve both).
    pub fn same_grid(&self, other: &FilterTable) -> bool {
        self.inv_h == other.inv_h && self.nodes == other.nodes
    }

    #[inline]
    fn rows(&self, place: &Place) -> &[f32] {
        let (k, f) = (place.node as usize, self.features);
        &self.data[k * 2 * f..(k + 2) * 2 * f]
    }

    fn locate(&self, d: f64) -> (&[f32], [f32; 4], [f32; 4]) {
        let place = self.place(d);
        (self.rows(&place), place.value, place.slope)
    }

    /// W(d) into `w` (tests and diagnostics; the MD kernels below fuse it with their use).
    pub fn value(&self, d: f64, w: &mut [f32]) {
        let f = self.features;
        let (rows, c, _) = self.locate(d);
        for o in 0..f {
            w[o] = c[0] * rows[o] + c[1] * rows[f + o] + c[2] * rows[2 * f + o] + c[3] * rows[3 * f + o];
        }
    }

    /// W(d) into `w` and dW/dd into `dw`.
    pub fn value_and_slope(&self, d: f64, w: &mut [f32], dw: &mut [f32]) {
        let f = self.features;
        let (rows, c, s) = self.locate(d);
        for o in 0..f {
            let (v0, hd0, v1, hd1) = (rows[o], rows[f + o], rows[2 * f + o], rows[3 * f + o]);
            w[o] = c[0] * v0 + c[1] * hd0 + c[2] * v1 + c[3] * hd1;
            dw[o] = s[0] * v0 + s[1] * hd0 + s[2] * v1 + s[3] * hd1;
        }
    }

    /// The four table rows around an edge's place (value and h·slope at the left and right
    /// nodes, each `features` wide) and the Hermite weights for W and for dW/dd.
    #[inline]
    pub fn hermite(&self, place: &Place) -> (&[f32], [f32; 4], [f32; 4]) {
        (self.rows(place), place.value, place.slope)
    }

    /// m += y ⊙ W(d): one edge of the message sum.
    #[inline]
    pub fn accumulate_message(&self, place: &Place, y: &[f32], m: &mut [f32]) {
        let (rows, c) = (self.rows(place), place.value);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2::message(rows, c, y, m) };
        }
        message(rows, c, y, m)
    }

    /// One edge i←j of the backward pass, seen from atom i: g_y_i += g_m_j ⊙ W(d) (the twin
    /// edge j←i's share of dL/dy_i); returns dL/dd of the edge itself, Σ_f g_m_i y_j W'(d),
    /// plus that of its twin, Σ_f g_m_j y_i W'(d): the pair's whole dL/dd.
    #[inline]
    pub fn accumulate_backward(&self, place: &Place, edge: EdgeRows, g_y: &mut [f32]) -> f32 {
        let (rows, c, s) = (self.rows(place), place.value, place.slope);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2::backward(rows, c, s, edge, g_y) };
        }
        backward(rows, c, s, edge, g_y)
    }
}

/// Eight consecutive lanes of a row, as a fixed-size array (one bounds check per eight, and
/// loops of constant length the compiler turns into vector instructions).
#[inline(always)]
pub(crate) fn lanes(x: &[f32], base: usize) -> &[f32; 8] {
    x[base..base + 8].try_into().expect("eight lanes")
}

#[inline(always)]
pub(crate) fn lanes_mut(x: &mut [f32], base: usize) -> &mut [f32; 8] {
    (&mut x[base..base + 8]).try_into().expect("eight lanes")
}

#[inline(always)]
fn message(rows: &[f32], c: [f32; 4], y: &[f32], m: &mut [f32]) {
    let f = m.len();
    assert!(f % 8 == 0 && rows.len() >= 4 * f && y.len() >= f);
    for base in (0..f).step_by(8) {
        let (v0, hd0, v1, hd1) = (lanes(rows, base), lanes(rows, f + base), lanes(rows, 2 * f + base), lanes(rows, 3 * f + base));
        let yb = lanes(y, base);
        let mb = lanes_mut(m, base);
        for l in 0..8 {
            mb[l] += yb[l] * (c[0] * v0[l] + c[1] * hd0[l] + c[2] * v1[l] + c[3] * hd1[l]);
        }
    }
}

/// An edge's interval on the grid and its Hermite weights for the value and for d/dd.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    node: u32,
    value: [f32; 4],
    slope: [f32; 4],
}

/// The per-atom rows one edge i←j of the backward pass reads.
#[derive(Clone, Copy)]
pub struct EdgeRows<'a> {
    pub g_m_i: &'a [f32],
    pub g_m_j: &'a [f32],
    pub y_i: &'a [f32],
    pub y_j: &'a [f32],
}

#[inline(always)]
fn backward(rows: &[f32], c: [f32; 4], s: [f32; 4], e: EdgeRows, g_y: &mut [f32]) -> f32 {
    let f = g_y.len();
    assert!(f % 8 == 0 && rows.len() >= 4 * f);
    // One partial sum per lane, so the reduction stays in a vector register.
    let mut slope = [0.0f32; 8];
    for base in (0..f).step_by(8) {
        let (v0, hd0, v1, hd1) = (lanes(rows, base), lanes(rows, f + base), lanes(rows, 2 * f + base), lanes(rows, 3 * f + base));
        let (gi, gj, yi, yj) = (lanes(e.g_m_i, base), lanes(e.g_m_j, base), lanes(e.y_i, base), lanes(e.y_j, base));
        let gy = lanes_mut(g_y, base);
        for l in 0..8 {
            let w = c[0] * v0[l] + c[1] * hd0[l] + c[2] * v1[l] + c[3] * hd1[l];
            let dw = s[0] * v0[l] + s[1] * hd0[l] + s[2] * v1[l] + s[3] * hd1[l];
            gy[l] += gj[l] * w;
            slope[l] += (gi[l] * yj[l] + gj[l] * yi[l]) * dw;
        }
    }
    slope.iter().sum()
}

/// The same kernels compiled for AVX2 (eight f32 lanes instead of SSE's four), used where the
/// CPU has it (std checks once and caches the answer).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2")]
    pub fn message(rows: &[f32], c: [f32; 4], y: &[f32], m: &mut [f32]) {
        super::message(rows, c, y, m)
    }

    #[target_feature(enable = "avx2")]
    pub fn backward(rows: &[f32], c: [f32; 4], s: [f32; 4], e: super::EdgeRows, g_y: &mut [f32]) -> f32 {
        super::backward(rows, c, s, e, g_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_network_and_its_derivative() {
        let (k, f) = (12, 8);
        let weights = |n: usize, seed: u32| -> Vec<f64> {
            (0..n).map(|i| (crate::rng::philox4x32([i as u32, seed, 0, 0], [7, 9])[0] as f64 / 4294967296.0 - 0.5) * 1.5).collect()
        };
        let (w1, b1, w2, b2) = (weights(k * f, 1), weights(f, 2), weights(f * f, 3), weights(f, 4));
        let net = FilterNetwork { n_rbf: k, features: f, cutoff: 4.0, w1: &w1, b1: &b1, w2: &w2, b2: &b2 };
        let table = FilterTable::new(&net, 5.0);
        let scale = (0..500).map(|i| net.evaluate(i as f64 * 0.01).0.iter().fold(0.0f64, |m, v| m.max(v.abs()))).fold(0.0, f64::max);
        let (mut w, mut dw) = (vec![0.0f32; f], vec![0.0f32; f]);
        let (mut worst_w, mut worst_dw) = (0.0f64, 0.0f64);
        for i in 0..4999 {
            let d = 0.0003 + i as f64 * 0.001;
            let (exact, dexact) = net.evaluate(d);
            table.value_and_slope(d, &mut w, &mut dw);
            for o in 0..f {
                worst_w = worst_w.max((w[o] as f64 - exact[o]).abs() / scale);
                worst_dw = worst_dw.max((dw[o] as f64 - dexact[o]).abs() / scale);
            }
        }
        // f32 storage bounds the value error near 1e-7; the slope loses a factor ~1/h more.
        assert!(worst_w < 1e-6, "value error {worst_w:e}");
        assert!(worst_dw < 1e-4, "slope error {worst_dw:e}");
        // Past the block's cutoff the filter is zero.
        table.value(4.5, &mut w);
        assert!(w.iter().all(|v| v.abs() < 1e-6));
    }
}
