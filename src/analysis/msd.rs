//! Mean-squared displacement over all time origins, per species, by the FFT method
//! (Calandrini et al. 2011): MSD(m) = S1(m) - 2 S2(m) with S2 the position autocorrelation, in
//! O(n log n) per atom and coordinate. The diffusion coefficient comes from a least-squares line
//! through MSD = 6 D t + c over a window of lag times.

use super::fft::{FftPlan, Workspace, autocorrelation_sums_3, autocorrelation_sums_in, padded_length};
use super::series::Series;
use crate::summary::linear_fit;
use rayon::prelude::*;

pub struct MsdResult {
    /// Lag times, ps.
    pub t: Vec<f64>,
    /// (species, MSD in Å² per lag); "" = all selected atoms.
    pub curves: Vec<(String, Vec<f64>)>,
    /// (species, D in Å²/ps, standard error of the fit), over `fit_window`.
    pub diffusion: Vec<(String, f64, f64)>,
    /// Lag-time window of the fit, ps.
    pub fit_window: (f64, f64),
}

/// Σ over x, y, z of the MSD of each coordinate, for every lag.
pub fn msd_of_traces(x: &[f64], y: &[f64], z: &[f64]) -> Vec<f64> {
    msd_from_sums(x, y, z, &autocorrelation_sums_3(x, y, z))
}

/// MSD(m) = S1(m) - 2 S2(m) / (n - m) from the autocorrelation sums S2.
fn msd_from_sums(x: &[f64], y: &[f64], z: &[f64], s2: &[f64]) -> Vec<f64> {
    let n = x.len();
    let sq: Vec<f64> = (0..n).map(|k| x[k] * x[k] + y[k] * y[k] + z[k] * z[k]).collect();
    let mut q = 2.0 * sq.iter().sum::<f64>();
    let mut out = vec![0.0; n];
    for m in 0..n {
        if m > 0 {
            q -= sq[m - 1] + sq[n - m];
        }
        out[m] = (q - 2.0 * s2[m]) / (n - m) as f64;
    }
    out
}

/// `fit` is the window as fractions of the longest lag (default 0.1 to 0.5).
pub fn compute(series: &Series, dt: f64, fit: (f64, f64)) -> MsdResult {
    let n = series.frames();
    let atoms = series.atoms.len();
    // Blocks of atoms in parallel; atoms two at a time through the transforms.
    let plan = FftPlan::new(padded_length(n));
    let blocks: Vec<std::ops::Range<usize>> = (0..atoms).step_by(64).map(|s| s..(s + 64).min(atoms)).collect();
    let per_atom: Vec<Vec<f64>> = blocks
        .into_par_iter()
        .flat_map_iter(|range| {
            let traces = series.traces(range, false);
            let mut work = Workspace::default();
            let mut out = Vec::with_capacity(traces.len());
            for pair in traces.chunks(2) {
                let [x, y, z] = &pair[0];
                let second = pair.get(1).map(|[u, v, w]| [&u[..], &v[..], &w[..]]);
                let (s_a, s_b) = autocorrelation_sums_in(&plan, &mut work, [x, y, z], second);
                out.push(msd_from_sums(x, y, z, &s_a));
                if let (Some([u, v, w]), Some(s_b)) = (pair.get(1), s_b) {
                    out.push(msd_from_sums(u, v, w, &s_b));
                }
            }
            out
        })
        .collect();
    let mut kinds: Vec<String> = series.species.clone();
    kinds.sort();
    kinds.dedup();
    let mut groups = vec![String::new()];
    if kinds.len() > 1 {
        groups.extend(kinds);
    } else {
        groups = kinds;
    }
    let t: Vec<f64> = (0..n).map(|m| m as f64 * dt).collect();
    let (lo, hi) = (((n - 1) as f64 * fit.0).round() as usize, ((n - 1) as f64 * fit.1).round() as usize);
    let mut curves = Vec::new();
    let mut diffusion = Vec::new();
    for group in groups {
        let members: Vec<usize> = (0..atoms).filter(|&k| group.is_empty() || series.species[k] == group).collect();
        let curve: Vec<f64> = (0..n)
            .map(|m| members.iter().map(|&k| per_atom[k][m]).sum::<f64>() / members.len() as f64)
            .collect();
        if hi > lo + 2 {
            if let Some((slope, err)) = linear_fit(&t[lo..=hi], &curve[lo..=hi]) {
                diffusion.push((group.clone(), slope / 6.0, err / 6.0));
            }
        }
        curves.push((group, curve));
    }
    MsdResult { t: t.clone(), curves, diffusion, fit_window: (t[lo.min(n - 1)], t[hi.min(n - 1)]) }
}

#[cfg(test)]
mod tests {
    use super::msd_of_traces;

    #[test]
    fn fft_msd_equals_the_direct_average() {
        let trace = |s: usize| -> Vec<f64> { (0..50).map(|i| (((i + s) * 37) % 11) as f64 * 0.3 + i as f64 * 0.05).collect() };
        let (x, y, z) = (trace(0), trace(3), trace(7));
        let fast = msd_of_traces(&x, &y, &z);
        for m in 0..x.len() {
            let direct: f64 = (0..x.len() - m)
                .map(|k| (x[k + m] - x[k]).powi(2) + (y[k + m] - y[k]).powi(2) + (z[k + m] - z[k]).powi(2))
                .sum::<f64>()
                / (x.len() - m) as f64;
            assert!((fast[m] - direct).abs() < 1e-9 * direct.max(1.0), "lag {m}");
        }
    }
}
