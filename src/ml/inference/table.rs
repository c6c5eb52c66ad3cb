//! SchNet's filter network tabulated per block. The filter W(d) = (ssp(g(d) W1 + b1) W2 + b2)
//! f_c(d) depends on the distance alone, so instead of two matrix products per edge and block
//! (almost all of a SchNet step), it is read from a table: cubic Hermite pieces on a uniform
//! grid with the exact value and derivative at every node (computed in f64 from the weights).
//! Forces use the derivative of the same piecewise cubic, so they are the exact gradient of the
//! tabulated energy and NVE conserves it. The interpolation error is h⁴/384 max|W''''|; with
//! h = 0.01 Å and Gaussians of width rc/(n_rbf - 1) ≈ 0.26 Å it is below f32 rounding.

use super::dense::{sigmoid64, ssp64};

/// Grid spacing the table aims for, Å.
const SPACING: f64 = 0.01;

pub struct FilterTable {
    pub features: usize,
    inv_h: f64,
    nodes: usize,
    /// Per node: F values, then F derivatives times h.
    data: Vec<f32>,
}

/// The filter network of one block, in f64 (weights [in, out] row-major).
pub struct FilterNetwork<'a> {
    pub n_rbf: usize,
    pub features: usize,
    /// The basis' cutoff (the model's), which sets the Gaussian centres and width.
    pub basis_cutoff: f64,
    /// The block's cutoff, where f_c reaches zero.
    pub cutoff: f64,
    pub w1: &'a [f64],
    pub b1: &'a [f64],
    pub w2: &'a [f64],
    pub b2: &'a [f64],
}

impl FilterNetwork<'_> {
    /// W(d) and dW/dd, exactly.
    pub fn evaluate(&self, d: f64) -> (Vec<f64>, Vec<f64>) {
        let (k, f) = (self.n_rbf, self.features);
        let width = self.basis_cutoff / (k - 1) as f64;
        let mut g = vec![0.0; k];
        let mut dg = vec![0.0; k];
        for i in 0..k {
            let diff = d - i as f64 * width;
            g[i] = (-0.5 * diff * diff / (width * width)).exp();
            dg[i] = -g[i] * diff / (width * width);
        }
        let mut a1 = self.b1.to_vec();
        let mut da1 = vec![0.0; f];
        for i in 0..k {
            for o in 0..f {
                a1[o] += g[i] * self.w1[i * f + o];
                da1[o] += dg[i] * self.w1[i * f + o];
            }
        }
        let s: Vec<f64> = a1.iter().map(|&a| ssp64(a)).collect();
        let ds: Vec<f64> = a1.iter().zip(&da1).map(|(&a, &da)| sigmoid64(a) * da).collect();
        let mut filter = self.b2.to_vec();
        let mut dfilter = vec![0.0; f];
        for i in 0..f {
            for o in 0..f {
                filter[o] += s[i] * self.w2[i * f + o];
                dfilter[o] += ds[i] * self.w2[i * f + o];
            }
        }
        let (fc, dfc) = if d < self.cutoff {
            let phase = std::f64::consts::PI * d / self.cutoff;
            (0.5 * (phase.cos() + 1.0), -0.5 * std::f64::consts::PI / self.cutoff * phase.sin())
        } else {
            (0.0, 0.0)
        };
        let w = filter.iter().map(|v| v * fc).collect();
        let dw = filter.iter().zip(&dfilter).map(|(v, dv)| dv * fc + v * dfc).collect();
        (w, dw)
    }
}

impl FilterTable {
    /// Tabulates `net` on [0, reach] (reach: the graph's cutoff).
    pub fn new(net: &FilterNetwork, reach: f64) -> FilterTable {
        let f = net.features;
        let intervals = (reach / SPACING).ceil().max(1.0) as usize;
        let h = reach / intervals as f64;
        // One spare node past the reach so that d = reach - ε has a right-hand node.
        let nodes = intervals + 2;
        let mut data = vec![0.0f32; nodes * 2 * f];
        for k in 0..nodes {
            let (w, dw) = net.evaluate(k as f64 * h);
            let row = &mut data[k * 2 * f..(k + 1) * 2 * f];
            for o in 0..f {
                row[o] = w[o] as f32;
                row[f + o] = (dw[o] * h) as f32;
            }
        }
        FilterTable { features: f, inv_h: 1.0 / h, nodes, data }
    }

    /// The interval and the Hermite weights at distance d: (node rows, weights for value,
    /// weights for the derivative with respect to d).
    #[inline]
    fn locate(&self, d: f64) -> (&[f32], [f32; 4], [f32; 4]) {
        let s = d * self.inv_h;
        let k = (s as usize).min(self.nodes - 2);
        let t = s - k as f64;
        let (t2, t3) = (t * t, t * t * t);
        let value = [2.0 * t3 - 3.0 * t2 + 1.0, t3 - 2.0 * t2 + t, -2.0 * t3 + 3.0 * t2, t3 - t2];
        let slope = [(6.0 * t2 - 6.0 * t), (3.0 * t2 - 4.0 * t + 1.0), (-6.0 * t2 + 6.0 * t), (3.0 * t2 - 2.0 * t)];
        let f = self.features;
        (
            &self.data[k * 2 * f..(k + 2) * 2 * f],
            value.map(|v| v as f32),
            slope.map(|v| (v * self.inv_h) as f32),
        )
    }

    /// W(d) into `w`.
    #[inline]
    pub fn value(&self, d: f64, w: &mut [f32]) {
        let f = self.features;
        let (rows, c, _) = self.locate(d);
        let (v0, rest) = rows.split_at(f);
        let (hd0, rest) = rest.split_at(f);
        let (v1, hd1) = rest.split_at(f);
        for o in 0..f {
            w[o] = c[0] * v0[o] + c[1] * hd0[o] + c[2] * v1[o] + c[3] * hd1[o];
        }
    }

    /// W(d) into `w` and dW/dd into `dw`.
    #[inline]
    pub fn value_and_slope(&self, d: f64, w: &mut [f32], dw: &mut [f32]) {
        let f = self.features;
        let (rows, c, s) = self.locate(d);
        let (v0, rest) = rows.split_at(f);
        let (hd0, rest) = rest.split_at(f);
        let (v1, hd1) = rest.split_at(f);
        for o in 0..f {
            w[o] = c[0] * v0[o] + c[1] * hd0[o] + c[2] * v1[o] + c[3] * hd1[o];
            dw[o] = s[0] * v0[o] + s[1] * hd0[o] + s[2] * v1[o] + s[3] * hd1[o];
        }
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
        let net = FilterNetwork { n_rbf: k, features: f, basis_cutoff: 5.0, cutoff: 4.0, w1: &w1, b1: &b1, w2: &w2, b2: &b2 };
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
