//! The autocorrelation sums that MSD and VACF over all time origins need, in O(n log n)
//! instead of O(n²), on rustfft (measured 2.6-3.8x faster than the radix-2 FFT written here
//! before it: BENCHMARKS.md).
//!
//! The sums for two atoms (six real traces) take four complex transforms: three forward ones,
//! each carrying two real traces as real and imaginary part, and one inverse carrying both
//! atoms' power spectra (real and even, so their transforms are real and come back as the real
//! and imaginary parts).

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Forward and inverse transforms of one length (any; the analysis pads to a power of two),
/// shared by the threads that use it.
pub struct FftPlan {
    n: usize,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl FftPlan {
    pub fn new(n: usize) -> FftPlan {
        let mut planner = FftPlanner::new();
        FftPlan { n, forward: planner.plan_fft_forward(n), inverse: planner.plan_fft_inverse(n) }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn scratch_len(&self) -> usize {
        self.forward.get_inplace_scratch_len().max(self.inverse.get_inplace_scratch_len())
    }
}

/// The transform length for autocorrelations of n samples (zero padding to 2n avoids wrap-around).
pub fn padded_length(n: usize) -> usize {
    (2 * n).next_power_of_two()
}

/// Σ over the three traces of each atom of the autocorrelation sums
/// A(m) = Σ_{k=0}^{n-1-m} x_k x_{k+m} (sums, not means, over time origins), for one atom or two
/// (`b`), with the plan of `padded_length(n)`.
pub fn autocorrelation_sums(plan: &FftPlan, a: [&[f64]; 3], b: Option<[&[f64]; 3]>) -> (Vec<f64>, Option<Vec<f64>>) {
    autocorrelation_sums_in(plan, &mut Workspace::default(), a, b)
}

/// Buffers reused from one call to the next (a thread's atoms share one).
#[derive(Default)]
pub struct Workspace {
    spectra: [Vec<Complex<f64>>; 3],
    power: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

/// `autocorrelation_sums` with the buffers of `work`.
pub fn autocorrelation_sums_in(plan: &FftPlan, work: &mut Workspace, a: [&[f64]; 3], b: Option<[&[f64]; 3]>) -> (Vec<f64>, Option<Vec<f64>>) {
    let n = a[0].len();
    let size = plan.len();
    work.scratch.resize(plan.scratch_len(), Complex::default());
    let zero: Vec<f64> = Vec::new();
    let b_or = |d: usize| b.map_or(&zero[..], |b| b[d]);
    // Three transforms, two real traces each: (x1, y1), (z1, x2), (y2, z2).
    let pairs: [(&[f64], &[f64]); 3] = [(a[0], a[1]), (a[2], b_or(0)), (b_or(1), b_or(2))];
    for ((u, v), z) in pairs.iter().zip(work.spectra.iter_mut()).take(if b.is_some() { 3 } else { 2 }) {
        z.clear();
        z.resize(size, Complex::default());
        for (k, c) in z.iter_mut().enumerate() {
            *c = Complex::new(u.get(k).copied().unwrap_or(0.0), v.get(k).copied().unwrap_or(0.0));
        }
        plan.forward.process_with_scratch(z, &mut work.scratch);
    }
    let spectra = &work.spectra;
    // Z = FFT(u + i v): U_k = (Z_k + conj Z_{-k}) / 2, V_k = (Z_k - conj Z_{-k}) / 2i, so
    // |U_k|² + |V_k|² = (|Z_k|² + |Z_{-k}|²) / 2 and |U_k|² = |Z_k + conj Z_{-k}|² / 4.
    let power = &mut work.power;
    power.clear();
    power.resize(size, Complex::default());
    for (k, p) in power.iter_mut().enumerate() {
        let m = (size - k) % size;
        let (s0, s1) = (&spectra[0], &spectra[1]);
        let both = 0.5 * (s0[k].norm_sqr() + s0[m].norm_sqr());
        // The middle transform: u = z1 (atom a), v = x2 (atom b).
        let sum = s1[k] + s1[m].conj();
        let difference = s1[k] - s1[m].conj();
        p.re = both + 0.25 * sum.norm_sqr();
        if b.is_some() {
            let s2 = &spectra[2];
            p.im = 0.25 * difference.norm_sqr() + 0.5 * (s2[k].norm_sqr() + s2[m].norm_sqr());
        }
    }
    plan.inverse.process_with_scratch(power, &mut work.scratch);
    let scale = 1.0 / size as f64;
    let first = power[..n].iter().map(|v| v.re * scale).collect();
    let second = b.map(|_| power[..n].iter().map(|v| v.im * scale).collect());
    (first, second)
}

/// One atom's sums (a convenience for tests and small inputs).
pub fn autocorrelation_sums_3(x: &[f64], y: &[f64], z: &[f64]) -> Vec<f64> {
    if x.is_empty() {
        return Vec::new();
    }
    autocorrelation_sums(&FftPlan::new(padded_length(x.len())), [x, y, z], None).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(x: &[f64], y: &[f64], z: &[f64], m: usize) -> f64 {
        (0..x.len() - m).map(|k| x[k] * x[k + m] + y[k] * y[k + m] + z[k] * z[k + m]).sum()
    }

    #[test]
    fn one_and_two_atoms_at_once_equal_the_direct_sums() {
        let t = |s: usize| -> Vec<f64> { (0..29).map(|i| (((i + s) * 7919) % 31) as f64 - 15.0 + 0.1 * i as f64).collect() };
        let (x, y, z) = (t(1), t(5), t(9));
        let (u, v, w) = (t(2), t(13), t(21));
        let joint = autocorrelation_sums_3(&x, &y, &z);
        let plan = FftPlan::new(padded_length(x.len()));
        let (first, second) = autocorrelation_sums(&plan, [&x, &y, &z], Some([&u, &v, &w]));
        let second = second.unwrap();
        for m in 0..x.len() {
            let (d1, d2) = (direct(&x, &y, &z, m), direct(&u, &v, &w, m));
            assert!((joint[m] - d1).abs() < 1e-8 * d1.abs().max(1.0), "lag {m}: {} vs {d1}", joint[m]);
            assert!((first[m] - d1).abs() < 1e-8 * d1.abs().max(1.0), "pair, first atom, lag {m}");
            assert!((second[m] - d2).abs() < 1e-8 * d2.abs().max(1.0), "pair, second atom, lag {m}: {} vs {d2}", second[m]);
        }
    }
}
