//! Velocity autocorrelation C(t) = ⟨v(0)·v(t)⟩ over atoms and all time origins (FFT), and the
//! vibrational density of states: the cosine transform of C(t), Hann-windowed, normalised to
//! unit area over frequency.

use super::fft::{FftPlan, Workspace, autocorrelation_sums_in, padded_length};
use super::series::Series;
use rayon::prelude::*;

pub struct VacfResult {
    /// ps
    pub t: Vec<f64>,
    /// Å²/ps²
    pub c: Vec<f64>,
    /// THz (1/ps)
    pub frequency: Vec<f64>,
    /// 1/THz, ∫ dos dν = 1
    pub dos: Vec<f64>,
}

pub fn compute(series: &Series, dt: f64) -> VacfResult {
    let n = series.frames();
    let atoms = series.atoms.len();
    let plan = FftPlan::new(padded_length(n));
    let blocks: Vec<std::ops::Range<usize>> = (0..atoms).step_by(64).map(|s| s..(s + 64).min(atoms)).collect();
    let sums: Vec<f64> = blocks
        .into_par_iter()
        .map(|range| {
            let mut total = vec![0.0; n];
            let mut work = Workspace::default();
            for pair in series.traces(range, true).chunks(2) {
                let [x, y, z] = &pair[0];
                let second = pair.get(1).map(|[u, v, w]| [&u[..], &v[..], &w[..]]);
                let (s_a, s_b) = autocorrelation_sums_in(&plan, &mut work, [x, y, z], second);
                for s in std::iter::once(s_a).chain(s_b) {
                    total.iter_mut().zip(s).for_each(|(t, v)| *t += v);
                }
            }
            total
        })
        .reduce(|| vec![0.0; n], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect());
    let c: Vec<f64> = (0..n).map(|m| sums[m] / (atoms as f64 * (n - m) as f64)).collect();
    let t: Vec<f64> = (0..n).map(|m| m as f64 * dt).collect();
    // Use lags up to half the run (later ones average few origins), Hann-windowed.
    let lags = (n / 2).max(1);
    let window: Vec<f64> = (0..lags)
        .map(|m| 0.5 * (1.0 + (std::f64::consts::PI * m as f64 / lags as f64).cos()))
        .collect();
    let nyquist = 0.5 / dt;
    let points = lags;
    let frequency: Vec<f64> = (0..points).map(|k| nyquist * k as f64 / points as f64).collect();
    let mut dos: Vec<f64> = frequency
        .par_iter()
        .map(|&nu| {
            let mut s = c[0] * window[0];
            for m in 1..lags {
                s += 2.0 * window[m] * c[m] * (2.0 * std::f64::consts::PI * nu * m as f64 * dt).cos();
            }
            (s * dt).max(0.0)
        })
        .collect();
    let dnu = if points > 1 { frequency[1] - frequency[0] } else { 1.0 };
    let area: f64 = dos.iter().sum::<f64>() * dnu;
    if area > 0.0 {
        dos.iter_mut().for_each(|d| *d /= area);
    }
    VacfResult { t, c, frequency, dos }
}
