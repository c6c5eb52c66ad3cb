//! The end-of-run summary: throughput, mean temperature and, for NVE, the energy drift from a
//! least-squares line through the total energy per atom at every thermo step.

use crate::thermo::ThermoSample;
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RunSummary {
    pub steps: u64,
    pub wall_s: f64,
    pub atom_steps_per_s: f64,
    pub ns_per_day: f64,
    pub mean_temperature_k: f64,
    /// eV per atom per ps; absent for thermostatted runs or fewer than three thermo samples.
    pub energy_drift_ev_per_atom_per_ps: Option<f64>,
    /// What the drift is of ("NVE energy", "Nosé-Hoover conserved energy", ...).
    pub conserved_name: &'static str,
    /// Standard error of the drift slope.
    pub energy_drift_error_ev_per_atom_per_ps: Option<f64>,
    pub final_potential_energy_ev: f64,
    pub final_total_energy_ev: f64,
    pub n_atoms: usize,
    pub timestep_fs: f64,
    pub neighbor_builds: u64,
    pub threads: usize,
    /// "cpu (N thread(s), f64)" or "gpu: <adapter> (...)".
    pub platform: String,
    pub time_force_s: f64,
    /// The potential's stages within the force time (ML: graph, clustering, forward, backward).
    pub force_stages_s: Vec<(String, f64)>,
    /// What the potential reported about the run (e.g. how often hard clustering regrouped).
    pub potential_notes: Vec<String>,
    pub time_neighbor_s: f64,
    pub time_integrate_s: f64,
    /// GPU runs: wall time of the step kernels.
    pub time_gpu_s: f64,
    /// GPU runs with --gpu-profile: GPU time per kernel family, s (timestamp queries).
    pub gpu_kernel_s: std::collections::BTreeMap<String, f64>,
    /// The same runs: dispatches per kernel family.
    pub gpu_kernel_calls: std::collections::BTreeMap<String, u64>,
    pub time_output_s: f64,
    /// A committee of learned models: its force deviation over the thermo rows.
    pub committee: Option<CommitteeSummary>,
}

/// How far a committee's members disagreed over a run's thermo rows (eV/Å).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CommitteeSummary {
    pub rows: u64,
    /// The largest per-atom deviation of any row.
    pub max_deviation: f64,
    /// The rows' largest per-atom deviations, averaged over rows.
    pub mean_max_deviation: f64,
    /// `[potential] uncertainty.warn` and the rows above it.
    pub warn: f64,
    pub rows_above_warning: u64,
    /// Frames written for labelling, and where.
    pub frames_saved: Option<(u64, std::path::PathBuf)>,
}

impl CommitteeSummary {
    /// The rows, largest deviation and mean of the rows' largest, from each row's largest
    /// per-atom deviation (eV/Å); the rest left at their defaults.
    pub fn of_row_maxima(maxima: &[f64]) -> CommitteeSummary {
        CommitteeSummary {
            rows: maxima.len() as u64,
            max_deviation: maxima.iter().copied().fold(0.0, f64::max),
            mean_max_deviation: maxima.iter().sum::<f64>() / maxima.len().max(1) as f64,
            ..Default::default()
        }
    }
}

/// Slope and its standard error of the least-squares line y = a + b x.
pub fn linear_fit(x: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let n = x.len();
    if n < 3 || y.len() != n {
        return None;
    }
    let nf = n as f64;
    let mx = x.iter().sum::<f64>() / nf;
    let my = y.iter().sum::<f64>() / nf;
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let residual: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (b - intercept - slope * a).powi(2))
        .sum();
    let error = (residual / (nf - 2.0) / sxx).sqrt();
    Some((slope, error))
}

/// Drift of the total energy per atom (eV/atom/ps) over the samples.
pub fn energy_drift(samples: &[ThermoSample], n_atoms: usize) -> Option<(f64, f64)> {
    let t: Vec<f64> = samples.iter().map(|s| s.time_ps).collect();
    let e: Vec<f64> = samples
        .iter()
        .map(|s| s.conserved_energy() / n_atoms as f64)
        .collect();
    linear_fit(&t, &e)
}

impl RunSummary {
    pub fn print(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Run summary: {} steps of {} atoms in {:.3} s: {:.4e} atom-steps/s, {:.4} ns/day, {} neighbour builds, on {}\n",
            self.steps, self.n_atoms, self.wall_s, self.atom_steps_per_s, self.ns_per_day, self.neighbor_builds, self.platform
        ));
        s.push_str(&format!(
            "  mean temperature {:.4} K; final potential energy {:.10} eV\n",
            self.mean_temperature_k, self.final_potential_energy_ev
        ));
        if let (Some(d), Some(e)) = (
            self.energy_drift_ev_per_atom_per_ps,
            self.energy_drift_error_ev_per_atom_per_ps,
        ) {
            s.push_str(&format!("  {} drift {d:.4e} ± {e:.1e} eV/atom/ps (linear fit over the thermo steps)\n", self.conserved_name));
        }
        if let Some(c) = &self.committee {
            s.push_str(&format!(
                "  committee force deviation over {} thermo rows: max {:.4} eV/Å, mean of the rows' max {:.4} eV/Å; {} row(s) above {} eV/Å",
                c.rows, c.max_deviation, c.mean_max_deviation, c.rows_above_warning, c.warn
            ));
            if let Some((n, path)) = &c.frames_saved {
                s.push_str(&format!("; {n} frame(s) saved to {}", path.display()));
            }
            s.push('\n');
        }
        // The parts can add up to more than the step loop's wall time (output before the first
        // step and after the last is timed too): shares are of whichever is larger.
        let parts = self.time_force_s + self.time_neighbor_s + self.time_integrate_s + self.time_gpu_s + self.time_output_s;
        let total = self.wall_s.max(parts).max(1e-12);
        let other = (self.wall_s - parts).max(0.0);
        s.push_str("  time split:");
        for (name, t) in [
            ("force", self.time_force_s),
            ("neighbour", self.time_neighbor_s),
            ("integrate", self.time_integrate_s),
            ("gpu steps", self.time_gpu_s),
            ("output", self.time_output_s),
            ("other", other),
        ] {
            s.push_str(&format!(" {name} {t:.3} s ({:.1}%),", 100.0 * t / total));
        }
        s.pop();
        if !self.force_stages_s.is_empty() {
            let stages: f64 = self.force_stages_s.iter().map(|(_, t)| t).sum();
            let force = self.time_force_s.max(stages).max(1e-12);
            s.push_str("\n  force split:");
            for (name, t) in &self.force_stages_s {
                s.push_str(&format!(" {name} {t:.3} s ({:.1}%),", 100.0 * t / force));
            }
            s.pop();
        }
        for note in &self.potential_notes {
            s.push_str(&format!("\n  {note}"));
        }
        if !self.gpu_kernel_s.is_empty() {
            s.push_str(&format!("\n  {}", kernel_split(&dispatches_title("GPU kernels", &self.gpu_kernel_calls, self.steps), &self.gpu_kernel_s)));
        }
        s
    }
}

/// "title, n dispatches a step" (each a kernel launch and, mostly, a barrier: what a small
/// system's step costs on a GPU), or the title alone without counts.
pub fn dispatches_title(title: &str, calls: &std::collections::BTreeMap<String, u64>, steps: u64) -> String {
    let total: u64 = calls.values().sum();
    if total == 0 || steps == 0 {
        return title.to_string();
    }
    format!("{title}, {:.1} dispatches a step", total as f64 / steps as f64)
}

/// "title (total s): kernel t s (x%), ..." from GPU seconds per kernel, largest first.
pub fn kernel_split(title: &str, kernels: &std::collections::BTreeMap<String, f64>) -> String {
    let total: f64 = kernels.values().sum::<f64>().max(1e-12);
    let mut sorted: Vec<(&String, &f64)> = kernels.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(a.1));
    let parts: Vec<String> = sorted.iter().map(|(name, t)| format!("{name} {t:.3} s ({:.1}%)", 100.0 * *t / total)).collect();
    format!("{title} ({total:.3} s): {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::linear_fit;

    #[test]
    fn time_shares_never_exceed_the_whole() {
        // A short run: outputs before and after the loop take longer than the loop itself.
        let summary = super::RunSummary {
            wall_s: 0.01,
            time_force_s: 0.004,
            time_output_s: 0.05,
            force_stages_s: vec![("forward".into(), 0.003), ("backward".into(), 0.002)],
            ..Default::default()
        };
        let text = summary.print();
        for share in text.split('(').skip(1).filter_map(|t| t.split_once("%)")).map(|(v, _)| v) {
            let value: f64 = share.parse().unwrap();
            assert!((0.0..=100.0).contains(&value), "{share}% in\n{text}");
        }
    }

    #[test]
    fn fit_recovers_a_line() {
        let x: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
        let y: Vec<f64> = x.iter().map(|v| 2.0 - 0.5 * v).collect();
        let (slope, err) = linear_fit(&x, &y).unwrap();
        assert!((slope + 0.5).abs() < 1e-12 && err < 1e-10);
        assert!(linear_fit(&x[..2], &y[..2]).is_none());
    }
}
