//! Reference data drawn beside mdrun's own: a thermo table from another run or engine (an mdrun
//! thermo log, or a LAMMPS log.lammps, whose thermo blocks start at a `Step ...` header and end
//! at the first line that is not numbers), and a curve of two columns (g(r) from experiment or
//! another code: r in Å, g; `#` comments and a header line skipped; commas or spaces).

use super::stats::ThermoTable;
use std::path::Path;

/// The thermo rows of `path`: every block under a `Step ...` header with the first block's
/// columns (a LAMMPS log with several runs gives them all).
pub fn read_thermo(path: &Path) -> Result<ThermoTable, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
    let mut columns: Option<Vec<String>> = None;
    let mut in_block = false;
    let mut rows = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"Step") {
            let names: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            in_block = columns.as_ref().is_none_or(|c| *c == names);
            columns.get_or_insert(names);
            continue;
        }
        let Some(names) = columns.as_ref().filter(|_| in_block) else { continue };
        match words.iter().map(|w| w.parse::<f64>()).collect::<Result<Vec<f64>, _>>() {
            Ok(v) if v.len() == names.len() && v.iter().all(|x| x.is_finite()) => rows.push(v),
            _ if line.trim_start().starts_with('#') => {}
            _ => in_block = false,
        }
    }
    match columns {
        Some(columns) if !rows.is_empty() => Ok(ThermoTable { columns, rows, n_atoms: None }),
        _ => Err(format!("{}: no thermo rows (a header line starting with Step, then rows of numbers)", path.display())),
    }
}

/// The (x, y) columns of a two-column table.
pub fn read_curve(path: &Path) -> Result<(Vec<f64>, Vec<f64>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(|c: char| c == ',' || c.is_whitespace()).filter(|f| !f.is_empty()).collect();
        match fields.iter().take(2).map(|f| f.parse::<f64>()).collect::<Result<Vec<f64>, _>>() {
            Ok(v) if v.len() == 2 && v.iter().all(|a| a.is_finite()) => {
                x.push(v[0]);
                y.push(v[1]);
            }
            // A header line before the numbers.
            _ if x.is_empty() => {}
            _ => return Err(format!("{}:{}: expected two numbers (r and g), found '{line}'", path.display(), number + 1)),
        }
    }
    if x.len() < 2 {
        return Err(format!("{}: fewer than two rows of two numbers", path.display()));
    }
    Ok((x, y))
}

/// A legend's name for a reference file: its folder and name ("ref/thermo.log"), enough to
/// tell two logs called thermo.log apart without a long path.
pub fn short_name(path: &Path) -> String {
    let parts: Vec<String> = path.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The column of `table` that `name` ("Temp(K)") stands for: the same name, or the same up to
/// its unit in parentheses (LAMMPS writes "Temp").
pub fn column(table: &ThermoTable, name: &str) -> Option<usize> {
    let bare = |n: &str| n.split('(').next().unwrap_or(n).to_string();
    table.columns.iter().position(|c| c == name).or_else(|| table.columns.iter().position(|c| bare(c) == bare(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lammps_log_gives_its_thermo_blocks_and_a_curve_skips_its_header() {
        let dir = std::env::temp_dir().join(format!("mdrun-reference-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.lammps");
        std::fs::write(&log, "LAMMPS (29 Aug 2024)\nunits metal\nStep Temp PotEng\n0 300 -5.0\n10 290 -4.9\nLoop time of 0.1 on 1 procs\nStep Temp PotEng\n20 280 -4.8\nLoop time\n").unwrap();
        let table = read_thermo(&log).unwrap();
        assert_eq!((table.columns.len(), table.rows.len(), table.rows[2][1]), (3, 3, 280.0));
        assert_eq!(column(&table, "Temp(K)"), Some(1));
        let curve = dir.join("g.csv");
        std::fs::write(&curve, "# O-O\nr,g\n2.5, 0.1\n2.8, 3.0\n").unwrap();
        assert_eq!(read_curve(&curve).unwrap(), (vec![2.5, 2.8], vec![0.1, 3.0]));
        std::fs::write(&curve, "2.5 0.1\n2.8 x\n").unwrap();
        assert!(read_curve(&curve).unwrap_err().contains(":2:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
