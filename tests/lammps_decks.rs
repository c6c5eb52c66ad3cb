//! LAMMPS input decks run by mdrun (`mdrun -in`) give LAMMPS's thermo tables. The reference
//! tables were written by the real LAMMPS (benches/lammps/make_fixtures.sh) and are kept as
//! fixtures, so these tests do not need LAMMPS.
//!
//! Tolerance: the decks print 15 significant digits. At step 0 mdrun agrees with LAMMPS to
//! 1e-12 of each column's scale (units are converted through mdrun's metal units, which costs a
//! few ulps); over 100-150 steps the trajectories stay within 1e-10 (measured: <= 3e-13): the
//! only differences are the order of floating-point sums, which the chaotic dynamics amplify
//! by about e^(λt) ~ 10-100 over these runs. Any error in the physics, the units, the
//! velocity generator or the rebuild schedule shows at 1e-4 or above.

mod common;

use mdrun::deck::{Deck, DeckOptions, Echo};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// (keys, rows) of each thermo table of a LAMMPS screen output or fixture.
fn tables(text: &str) -> Vec<(Vec<String>, Vec<Vec<f64>>)> {
    let mut out: Vec<(Vec<String>, Vec<Vec<f64>>)> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"Step") {
            out.push((words.iter().map(|s| s.to_string()).collect(), Vec::new()));
        } else if line.starts_with('#') || words.is_empty() {
            continue;
        } else if out.is_empty() {
            // A fixture of rows only (the older in.lj one): one table without titles.
            out.push((vec![String::new(); words.len()], Vec::new()));
        }
        if let Some(t) = out.last_mut()
            && words.len() == t.0.len()
            && let Ok(row) = words.iter().map(|w| w.parse::<f64>()).collect::<Result<Vec<_>, _>>()
        {
            t.1.push(row);
        }
    }
    out
}

fn run_deck(deck: &str, vars: Vec<(String, Vec<String>)>) -> Deck {
    let options = DeckOptions { vars, log: None, screen: false, echo: Echo::None, threads: Some(2), ..DeckOptions::default() };
    let mut d = Deck::new(options).unwrap();
    d.run_file(&repo(deck)).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// Compares mdrun's rows with LAMMPS's: row by row, each column within `tol` of the column's
/// largest magnitude (so columns that pass through zero, like Pxy, are judged on their scale).
fn compare(deck: &Deck, fixture: &str, tol0: f64, tol: f64) -> f64 {
    let reference = tables(&std::fs::read_to_string(repo(fixture)).unwrap());
    let lammps_rows: Vec<&Vec<f64>> = reference.iter().flat_map(|t| &t.1).collect();
    assert!(!lammps_rows.is_empty(), "{fixture} has no rows");
    assert_eq!(deck.rows.len(), lammps_rows.len(), "number of thermo rows");
    let ncol = lammps_rows[0].len();
    let scale: Vec<f64> = (0..ncol).map(|c| lammps_rows.iter().map(|r| r[c].abs()).fold(1e-300, f64::max)).collect();
    let mut worst: f64 = 0.0;
    for (k, (mine, theirs)) in deck.rows.iter().zip(&lammps_rows).enumerate() {
        assert_eq!(mine.values.len(), theirs.len());
        for c in 0..ncol {
            let err = (mine.values[c] - theirs[c]).abs() / scale[c];
            let limit = if k == 0 { tol0 } else { tol };
            assert!(err <= limit, "{fixture}: row {k} (step {}), column {} ({}): mdrun {} vs LAMMPS {} (error {err:.2e} of the column's scale)", theirs[0], c, mine.keys[c], mine.values[c], theirs[c]);
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn lammps_bench_deck_in_lj_matches_lammps() {
    let deck = run_deck("benches/lammps/in.lj", Vec::new());
    // The fixture has LAMMPS's default 8 digits: agreement to the last printed digit.
    let worst = compare(&deck, "tests/fixtures/lammps_in_lj.txt", 1e-7, 1e-7);
    println!("in.lj: worst deviation {worst:.2e}");
    assert_eq!(deck.rows.last().unwrap().values[0], 100.0);
}

#[test]
fn units_lj_deck_with_mixing_tail_gaussian_velocities_and_loops_matches_lammps() {
    let deck = run_deck("tests/decks/in.units-lj", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_units_lj.txt", 1e-12, 1e-10);
    println!("lj: worst deviation {worst:.2e}");
}

#[test]
fn units_metal_deck_with_data_file_round_trip_matches_lammps() {
    let dir = common::scratch("deck-metal");
    let data = dir.join("units.data").display().to_string();
    let deck = run_deck("tests/decks/in.units-metal", vec![("data".into(), vec![data.clone()])]);
    // fmax and fnorm start at round-off (1e-16 of forces that cancel by symmetry): judged on
    // their column's scale like every other column.
    let worst = compare(&deck, "tests/fixtures/lammps_units_metal.txt", 1e-12, 1e-10);
    println!("metal: worst deviation {worst:.2e}");
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(text.contains("256 atoms") && text.contains("Velocities"));
}

#[test]
fn units_real_deck_with_scheduled_rebuilds_and_two_runs_matches_lammps() {
    let deck = run_deck("tests/decks/in.units-real", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_units_real.txt", 1e-12, 1e-10);
    println!("real: worst deviation {worst:.2e}");
}
