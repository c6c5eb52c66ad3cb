//! The thermo time series as one figure (`thermo.png`): stacked panels of temperature,
//! potential energy, total and conserved energy, pressure, volume when it moves, and a
//! committee's force deviation, against time; a reference run's columns of the same names
//! (another mdrun log, a LAMMPS log) dashed over them.

use super::plot::{Panel, Series};
use super::reference::column;
use super::stats::ThermoTable;
use std::path::Path;

/// (panel's y label, the columns it shows).
const PANELS: [(&str, &[&str]); 6] = [
    ("T (K)", &["Temp(K)"]),
    ("E_pot (eV)", &["PotEng(eV)"]),
    ("E (eV)", &["TotEng(eV)", "Conserved(eV)"]),
    ("P (bar)", &["Press(bar)"]),
    ("V (Å³)", &["Volume(A3)"]),
    ("force deviation (eV/Å)", &["FDevMax(eV/A)", "FDevMean(eV/A)"]),
];

/// Time of each row, ps: the table's Time column, else its steps times `ps_per_step`.
fn times(table: &ThermoTable, ps_per_step: Option<f64>) -> Option<Vec<f64>> {
    if let Some(t) = table.columns.iter().position(|c| c.starts_with("Time")) {
        return Some(table.rows.iter().map(|r| r[t]).collect());
    }
    let (s, dt) = (table.columns.iter().position(|c| c == "Step")?, ps_per_step?);
    Some(table.rows.iter().map(|r| r[s] * dt).collect())
}

/// Draws `table`'s time series (with `reference`'s, dashed) into `path`; false when the table
/// has no time to draw against.
pub fn draw(path: &Path, table: &ThermoTable, reference: Option<(&ThermoTable, &str)>) -> std::io::Result<bool> {
    let Some(t) = times(table, None) else { return Ok(false) };
    let step = table.columns.iter().position(|c| c == "Step");
    // ps per step, for a reference that counts steps only.
    let ps_per_step = step.and_then(|s| {
        let (a, b) = (table.rows.first()?, table.rows.last()?);
        (b[s] > a[s]).then(|| (t[t.len() - 1] - t[0]) / (b[s] - a[s]))
    });
    let reference_times = reference.and_then(|(r, _)| times(r, ps_per_step));
    let mut panels = Vec::new();
    for (label, names) in PANELS {
        let mut series: Vec<Series> = Vec::new();
        let mut references = Vec::new();
        for name in names {
            let Some(c) = table.columns.iter().position(|c| c == name) else { continue };
            let y: Vec<f64> = table.rows.iter().map(|r| r[c]).collect();
            // A conserved energy equal to the total (NVE) or a volume that never moves adds nothing.
            let flat = y.iter().all(|v| *v == y[0]);
            let same_as_before = series.iter().any(|s| s.2 == y);
            if (*name == "Volume(A3)" && flat) || same_as_before {
                continue;
            }
            let short = name.split('(').next().unwrap_or(name).to_string();
            if let (Some((r, origin)), Some(rt)) = (reference, &reference_times)
                && let Some(rc) = column(r, name)
            {
                references.push((series.len(), (format!("{short} ({origin})"), rt.clone(), r.rows.iter().map(|row| row[rc]).collect())));
            }
            series.push((short, t.clone(), y));
        }
        if !series.is_empty() {
            panels.push(Panel { y_label: label.to_string(), series, references });
        }
    }
    if panels.is_empty() {
        return Ok(false);
    }
    super::plot::draw_panels(path, "thermo time series", "t (ps)", &panels)?;
    Ok(true)
}
