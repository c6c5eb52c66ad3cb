//! Dense layers in f32 for inference: row-major matrices, products by `matrixmultiply` (runtime
//! AVX2/FMA), rows split over the rayon pool, and the activations with their derivatives.

use rayon::prelude::*;

/// y = x W + b with W [inputs, outputs] row-major (as the model file stores it).
#[derive(Clone, Debug)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub w: Vec<f32>,
    pub b: Option<Vec<f32>>,
}

/// Rows per parallel task: large enough that the product, not the scheduling, dominates.
const ROWS_PER_TASK: usize = 64;

impl Linear {
    pub fn new(inputs: usize, outputs: usize, w: Vec<f64>, b: Option<Vec<f64>>) -> Linear {
        assert_eq!(w.len(), inputs * outputs);
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        Linear { inputs, outputs, w: to32(w), b: b.map(to32) }
    }

    /// out = x W + b for `rows` rows of x.
    pub fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let rows = x.len() / self.inputs;
        out.clear();
        out.resize(rows * self.outputs, 0.0);
        if let Some(b) = &self.b {
            out.par_chunks_mut(self.outputs).for_each(|row| row.copy_from_slice(b));
        }
        // W as [inputs, outputs]: row stride outputs, column stride 1.
        gemm(x, self.inputs, &self.w, self.outputs as isize, 1, self.outputs, out, 1.0);
    }

    /// out (+)= g W^T: the gradient with respect to the input, from the one to the output.
    pub fn backward(&self, g: &[f32], out: &mut Vec<f32>, accumulate: bool) {
        let rows = g.len() / self.outputs;
        if !accumulate {
            out.clear();
            out.resize(rows * self.inputs, 0.0);
        }
        // Accumulating into a longer `out` adds to its leading rows.
        assert!(out.len() >= rows * self.inputs);
        // W^T as [outputs, inputs]: element (p, q) is W[q, p] at q * outputs + p.
        gemm(g, self.outputs, &self.w, 1, self.outputs as isize, self.inputs, &mut out[..rows * self.inputs], 1.0);
    }
}

/// c += alpha a b for a [rows, k] row-major and b [k, n] with the given strides, c [rows, n].
#[allow(clippy::too_many_arguments)]
fn gemm(a: &[f32], k: usize, b: &[f32], rsb: isize, csb: isize, n: usize, c: &mut [f32], alpha: f32) {
    let rows = a.len() / k;
    assert_eq!(c.len(), rows * n);
    let threads = rayon::current_num_threads();
    let chunk = rows.div_ceil(threads).max(ROWS_PER_TASK);
    c.par_chunks_mut(chunk * n)
        .zip(a.par_chunks(chunk * k))
        .for_each(|(c, a)| {
            let m = a.len() / k;
            // SAFETY: the slices hold m x k, k x n (by the strides, checked by the callers'
            // shapes) and m x n elements; matrixmultiply reads and writes only inside them.
            unsafe {
                matrixmultiply::sgemm(
                    m, k, n, alpha,
                    a.as_ptr(), k as isize, 1,
                    b.as_ptr(), rsb, csb,
                    1.0,
                    c.as_mut_ptr(), n as isize, 1,
                );
            }
        });
}

/// Shifted softplus ssp(x) = ln(1 + e^x) - ln 2 and its derivative sigmoid(x), sharing one
/// exponential, without overflow for large |x|.
#[inline]
pub fn ssp_and_slope(x: f32) -> (f32, f32) {
    let e = (-x.abs()).exp();
    // ln(1 + e) with e in (0, 1]: ln is several times cheaper than ln_1p, and its absolute
    // error for tiny e (~1e-7) is far below the values' own f32 rounding.
    let value = x.max(0.0) + (1.0 + e).ln() - std::f32::consts::LN_2;
    let slope = if x >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (value, slope)
}

/// f64 versions, for the filter tables (built once, exactly).
pub fn ssp64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p() - std::f64::consts::LN_2
}

pub fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
