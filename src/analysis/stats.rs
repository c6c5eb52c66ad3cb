//! Statistics of a thermo log (mdrun's, or any whitespace table whose first non-comment line
//! names the columns): mean, standard deviation, the standard error of the mean by block
//! averaging (Flyvbjerg & Petersen 1989), the correlation time that follows from it, and the NVE
//! energy drift per atom per picosecond with its fit error.

use crate::summary::linear_fit;
use serde::Serialize;
use std::path::Path;

pub struct ThermoTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    /// From mdrun's preamble ("# 864 atoms: ..."), when present.
    pub n_atoms: Option<usize>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ColumnStats {
    pub mean: f64,
    pub std: f64,
    /// Standard error of the mean, from the plateau of block averaging.
    pub sem: f64,
    /// Integrated correlation time, ps: (g - 1) / 2 · Δt with g = n sem² / var.
    pub correlation_time_ps: f64,
    pub samples: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Drift {
    pub ev_per_atom_per_ps: f64,
    pub error: f64,
}

pub fn read_table(path: &Path) -> Result<ThermoTable, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut n_atoms = None;
    // (step, line) of the last row, when the first column is Step: steps must increase.
    let mut last_step: Option<(f64, usize)> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if n_atoms.is_none() {
                let mut words = comment.split_whitespace();
                if let (Some(n), Some(w)) = (words.next(), words.next()) {
                    if w.starts_with("atoms") {
                        n_atoms = n.parse().ok();
                    }
                }
            }
            continue;
        }
        match &columns {
            None => columns = Some(line.split_whitespace().map(str::to_string).collect()),
            Some(names) => {
                let values: Result<Vec<f64>, _> = line.split_whitespace().map(str::parse::<f64>).collect();
                match values {
                    Ok(v) if v.len() == names.len() => {
                        // NaN or infinity would turn every statistic of its column into NaN.
                        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                            return Err(format!("{}:{}: {} is {}, not a finite number", path.display(), number + 1, names[k], v[k]));
                        }
                        if names[0] == "Step" {
                            if let Some((previous, at)) = last_step.filter(|(p, _)| v[0] <= *p) {
                                // Refused, as `mdrun analyze` refuses a trajectory whose times
                                // repeat: counting rows twice would bias every statistic.
                                return Err(format!(
                                    "{}:{}: step {} does not come after step {previous} (line {at}): the rows repeat, as in the log of a run continued from an earlier checkpoint by an mdrun that did not cut the log back; delete the earlier copy of the repeated steps",
                                    path.display(),
                                    number + 1,
                                    v[0]
                                ));
                            }
                            last_step = Some((v[0], number + 1));
                        }
                        rows.push(v)
                    }
                    // A repeated header (a restart appends one) is skipped.
                    _ if line.split_whitespace().next() == names.first().map(|s| s.as_str()) => {}
                    _ => {
                        return Err(format!(
                            "{}:{}: expected {} numbers ({}), found '{line}'",
                            path.display(),
                            number + 1,
                            names.len(),
                            names.join(" ")
                        ));
                    }
                }
            }
        }
    }
    let columns = columns.ok_or_else(|| format!("{}: no header line naming the columns", path.display()))?;
    if rows.is_empty() {
        return Err(format!("{}: no rows", path.display()));
    }
    Ok(ThermoTable { columns, rows, n_atoms })
}

/// Standard error of the mean of correlated samples: block averages of growing size, the largest
/// estimate while at least 8 blocks remain (the plateau, conservatively).
pub fn block_sem(x: &[f64]) -> f64 {
    let mut data = x.to_vec();
    let mut best = 0.0f64;
    while data.len() >= 8 {
        let n = data.len() as f64;
        let mean = data.iter().sum::<f64>() / n;
        let var = data.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        best = best.max((var / n).sqrt());
        data = data.chunks_exact(2).map(|p| 0.5 * (p[0] + p[1])).collect();
    }
    best
}

pub fn column_stats(x: &[f64], dt: f64) -> ColumnStats {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 { x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    let sem = if x.len() >= 8 { block_sem(x) } else { (var / n).sqrt() };
    let g = if var > 0.0 { n * sem * sem / var } else { 1.0 };
    ColumnStats {
        mean,
        std: var.sqrt(),
        sem,
        correlation_time_ps: ((g - 1.0) / 2.0 * dt).max(0.0),
        samples: x.len(),
    }
}

/// Slope of TotEng / N against time (eV/atom/ps) and its standard error.
pub fn drift(table: &ThermoTable, n_atoms: usize) -> Result<Drift, String> {
    let col = |name: &str| table.columns.iter().position(|c| c.starts_with(name));
    let (Some(t), Some(e)) = (col("Time"), col("TotEng")) else {
        return Err("the drift needs Time and TotEng columns".into());
    };
    let x: Vec<f64> = table.rows.iter().map(|r| r[t]).collect();
    let y: Vec<f64> = table.rows.iter().map(|r| r[e] / n_atoms as f64).collect();
    let (slope, error) = linear_fit(&x, &y).ok_or("the drift needs at least three rows")?;
    Ok(Drift { ev_per_atom_per_ps: slope, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_averaging_sees_correlation() {
        // AR(1) with correlation 0.9: the naive error underestimates by sqrt((1+a)/(1-a)) = 4.4.
        let mut x = Vec::new();
        let mut v = 0.0f64;
        let mut state = 12345u64;
        for _ in 0..65536 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            v = 0.9 * v + u;
            x.push(v);
        }
        let s = column_stats(&x, 1.0);
        let naive = s.std / (x.len() as f64).sqrt();
        let ratio = s.sem / naive;
        assert!(ratio > 3.5 && ratio < 5.0, "sem / naive = {ratio}");
        // g = (1+a)/(1-a) = 19: tau = 9 steps.
        assert!(s.correlation_time_ps > 6.0 && s.correlation_time_ps < 11.0, "tau {}", s.correlation_time_ps);
    }
}
