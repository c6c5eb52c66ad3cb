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
    // And the printed table is LAMMPS's, character for character.
    let fixture = std::fs::read_to_string(repo("tests/fixtures/lammps_in_lj.txt")).unwrap();
    let lammps_lines: Vec<&str> = fixture.lines().filter(|l| !l.starts_with('#')).collect();
    let style = mdrun::deck::thermo_out::ThermoStyle::default();
    for (row, line) in deck.rows.iter().zip(&lammps_lines) {
        assert_eq!(style.row(&row.values, 0.0).unwrap(), *line);
    }
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

/// Morse with two species (every pair given, one with its own cutoff, shifted), types from
/// `set type/fraction`, groups by type and velocities per group (loop geom, scale, loop all
/// with rot): LAMMPS's table to its last digits.
#[test]
fn morse_deck_with_set_type_fraction_and_group_velocities_matches_lammps() {
    let deck = run_deck("tests/decks/in.morse", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_morse.txt", 1e-12, 1e-10);
    println!("morse: worst deviation {worst:.2e}");
}

/// A disturbed crystal: `displace_atoms random` (LAMMPS's per-atom Park-Miller draw) on all
/// atoms and `displace_atoms move` on a region's group, some atoms through periodic faces:
/// LAMMPS's table to its last digits (fmax and fnorm show every atom's force).
#[test]
fn displace_atoms_random_and_move_on_a_group_match_lammps() {
    let deck = run_deck("tests/decks/in.displace", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_displace.txt", 1e-12, 1e-9);
    println!("displace: worst deviation {worst:.2e}");
}

/// The Morse deck on the GPU platform (its snippet in the shared pair kernel), without fmax and
/// fnorm (not kept on the GPU): LAMMPS's table to f32 precision. The pressure is the widest
/// column: a small sum of large virial terms of both signs, each rounded in f32 (measured
/// 2.7e-5 of its scale at step 0 on lavapipe).
#[test]
fn morse_deck_on_the_gpu_platform_follows_lammps() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("deck-morse-gpu");
    let text = std::fs::read_to_string(repo("tests/decks/in.morse")).unwrap().replace(" fmax fnorm", "");
    std::fs::write(dir.join("in.morse"), text).unwrap();
    let options = DeckOptions { log: None, screen: false, echo: Echo::None, platform: mdrun::plan::Platform::Gpu, ..DeckOptions::default() };
    let mut d = Deck::new(options).unwrap();
    d.run_file(&dir.join("in.morse")).unwrap_or_else(|e| panic!("{e}"));
    // LAMMPS's rows without their last two columns.
    let fixture: String = std::fs::read_to_string(repo("tests/fixtures/lammps_morse.txt"))
        .unwrap()
        .lines()
        .map(|l| if l.starts_with('#') { l.to_string() } else { l.split_whitespace().take(10).collect::<Vec<_>>().join(" ") })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("lammps_morse_10.txt"), fixture).unwrap();
    let worst = compare(&d, dir.join("lammps_morse_10.txt").to_str().unwrap(), 5e-5, 1e-4);
    println!("morse on the GPU: worst deviation {worst:.2e}");
}

/// Nosé-Hoover chains (fix nvt): a temperature ramp with the default chain, then a second run
/// with tchain 5, tloop 3 and drag; ecouple and econserve are LAMMPS's to the last digits.
#[test]
fn nose_hoover_nvt_deck_matches_lammps() {
    let deck = run_deck("tests/decks/in.nvt", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_nvt.txt", 1e-12, 1e-10);
    println!("nvt: worst deviation {worst:.2e}");
}

/// The MTK barostat (fix npt iso with a pressure ramp, aniso with couple xy, mtk no and pchain
/// 2, fix nph aniso, fix nph on x and z at different pressures): volume, box lengths, density,
/// enthalpy, pressure tensor, ecouple and econserve follow LAMMPS's over 360 steps.
#[test]
fn mtk_npt_and_nph_deck_matches_lammps() {
    let deck = run_deck("tests/decks/in.npt", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_npt.txt", 1e-12, 1e-10);
    println!("npt: worst deviation {worst:.2e}");
}

/// fix npt with its own pressure per axis (x, y ramps, z fixed), a temperature ramp, tloop and
/// ploop, in metal units (bar, ps, K).
#[test]
fn npt_per_axis_metal_deck_matches_lammps() {
    let deck = run_deck("tests/decks/in.npt-metal", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_npt_metal.txt", 1e-12, 1e-10);
    println!("npt metal: worst deviation {worst:.2e}");
}

/// `minimize` with min_style cg (quadratic line search, to an energy tolerance), sd (to its
/// iteration limit) and cg with the backtracking line search and dmax 0.2 from overlapping atoms
/// in metal units (to "linesearch alpha is zero" after 179 iterations), and FIRE 2.0 (its
/// velocities show in ke) to a force tolerance after 238: every thermo row, and the iterations,
/// evaluations and stopping criterion LAMMPS reports. Near convergence the
/// forces are 1e-8 of their starting scale, so the last rows agree to 1e-9 of the column's
/// scale (the rounding of the force sums), not 1e-10.
#[test]
fn minimize_cg_sd_and_fire_decks_match_lammps() {
    let deck = run_deck("tests/decks/in.minimize", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_minimize.txt", 1e-12, 1e-9);
    println!("minimize: worst deviation {worst:.2e}");
    let steps: Vec<f64> = deck.rows.iter().map(|r| r.values[0]).collect();
    // The four minimisations end where LAMMPS's do (22, 22 + 40, 179 and 238 iterations).
    for end in [22.0, 62.0, 179.0, 238.0] {
        assert!(steps.contains(&end), "no row at step {end}: {steps:?}");
    }
}

/// fix press/berendsen (iso with a pressure ramp over fix nve, aniso with a modulus over fix
/// nvt): the box follows LAMMPS's.
#[test]
fn press_berendsen_deck_matches_lammps() {
    let deck = run_deck("tests/decks/in.berendsen", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_berendsen.txt", 1e-12, 1e-10);
    println!("press/berendsen: worst deviation {worst:.2e}");
}

/// The thermostat and barostat fixes refuse what LAMMPS refuses, and what would silently do
/// something else: each error names the fix and what was expected.
#[test]
fn thermostat_and_barostat_fixes_refuse_bad_input() {
    let base = "units lj\nlattice fcc 0.8442\nregion box block 0 4 0 4 0 4\ncreate_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\npair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0\nvelocity all create 1.0 1\n";
    let cases: &[(&str, &[&str])] = &[
        ("boundary p p f\n", &["fix 1 all npt temp 1 1 0.5 iso 1 1 1", "not periodic along z"]),
        ("", &["fix 1 all npt temp 1 1 0.5 tri 1 1 1", "triclinic"]),
        ("", &["fix 1 all nvt temp 1 1 0.5\nfix 2 all nve", "both act on all atoms as a time integrator"]),
        ("", &["fix 1 all nvt temp 1 1 0.5\nfix 2 all temp/csvr 1 1 0.5 3", "both act on all atoms as a thermostat"]),
        ("", &["fix 1 all nvt temp 1 1 0.001\nrun 10", "shorter than the timestep"]),
        ("", &["fix 1 all npt temp 1 1 0.5 iso 1 1 0.001\nrun 10", "shorter than the timestep"]),
        ("", &["fix 1 all nvt temp 1 1", "needs start, stop and damping"]),
        ("", &["fix 1 all npt temp 1 1 0.5", "iso, aniso or x/y/z pressures"]),
        ("", &["fix 1 all nph temp 1 1 0.5 iso 1 1 1", "temp belongs to fix nvt or fix npt"]),
        ("", &["fix 1 all npt temp 1 1 0.5 x 1 1 1 y 2 2 1 couple xy", "both need the same pressure settings"]),
        ("", &["fix 1 all nvt temp 1 1 0.5 tchain 0", "tchain must be at least 1"]),
        ("", &["fix 1 all temp/csvr 1 1 0.5 7\nrun 10", "add fix nve"]),
        ("", &["fix 1 all npt temp 1 1 0.5 iso 1 1 1\nfix 2 all press/berendsen iso 1 1 1", "both act on all atoms as a barostat"]),
        ("boundary p f p\n", &["fix 1 all press/berendsen aniso 1 1 1", "not periodic along y"]),
    ];
    for (before, [fix, expected]) in cases.iter().map(|(b, c)| (b, [c[0], c[1]])) {
        let dir = common::scratch("deck-ensemble-errors");
        let text = format!("{before}{base}{fix}\n");
        std::fs::write(dir.join("in.bad"), &text).unwrap();
        let options = DeckOptions { log: None, screen: false, echo: Echo::None, threads: Some(1), ..DeckOptions::default() };
        let mut d = Deck::new(options).unwrap();
        let err = d.run_file(&dir.join("in.bad")).expect_err(&text);
        assert!(err.message.contains(expected), "{fix}: {}", err.message);
    }
}

#[test]
fn units_real_deck_with_scheduled_rebuilds_and_two_runs_matches_lammps() {
    let deck = run_deck("tests/decks/in.units-real", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_units_real.txt", 1e-12, 1e-10);
    println!("real: worst deviation {worst:.2e}");
}

/// `mdrun convert`'s TOML, run as system.toml, gives the deck's first run: same trajectory, in
/// mdrun's units.
#[test]
fn converted_toml_runs_the_same_as_the_deck() {
    for (deck_file, per_atom, runs) in [("tests/decks/in.units-real", false, 2), ("tests/decks/in.units-lj", true, 3), ("tests/decks/in.morse", false, 1)] {
        let dir = common::scratch(&format!("convert-{}", deck_file.rsplit('.').next().unwrap()));
        let (toml, notes) = mdrun::deck::convert(&repo(deck_file), Vec::new(), Some(&dir.join("start.chk"))).unwrap();
        assert!(notes.iter().any(|n| n.contains("start.chk")), "{notes:?}");
        assert_eq!(notes.iter().any(|n| n.contains("only the first run")), runs > 1, "{notes:?}");
        let plan = common::plan_in(&dir, &toml);
        let options = mdrun::run::RunOptions { quiet: true, threads: Some(2), platform: Some(mdrun::plan::Platform::Cpu), ..Default::default() };
        let summary = mdrun::run::run(&plan, &options).unwrap();

        let deck = run_deck(deck_file, Vec::new());
        let u = deck.world.units;
        let n = plan.system.len() as f64;
        let norm = if per_atom { n } else { 1.0 };
        // The deck's rows of its first run, in mdrun's units.
        // (The second run starts with a row at the step the first ended on.)
        let ends = deck.rows.iter().position(|r| r.values[0] == plan.steps as f64).unwrap();
        let first_run: Vec<&mdrun::deck::interp::ThermoRow> = deck.rows[..=ends].iter().collect();
        let col = |r: &mdrun::deck::interp::ThermoRow, k: &str| r.values[r.keys.iter().position(|x| x == k).unwrap()];
        let last = first_run.last().unwrap();
        let pe = col(last, "pe") * norm * u.energy;
        let etot = col(last, "etotal") * norm * u.energy;
        assert!((summary.final_potential_energy_ev - pe).abs() <= 1e-10 * pe.abs(), "{deck_file}: PE {} vs deck {pe}", summary.final_potential_energy_ev);
        assert!((summary.final_total_energy_ev - etot).abs() <= 1e-10 * etot.abs(), "{deck_file}: E {} vs deck {etot}", summary.final_total_energy_ev);
        // Every row of the log, to its printed digits (temperature 6 decimals, energies 10).
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        assert_eq!(rows.len(), first_run.len());
        for (mine, theirs) in rows.iter().zip(&first_run) {
            assert_eq!(mine[0], theirs.values[0]);
            let t = col(theirs, "temp") * u.temperature;
            assert!((mine[2] - t).abs() < 2e-6 * t.max(1.0), "{deck_file}: T {} vs {t}", mine[2]);
            let p = col(theirs, "press") * u.pressure;
            assert!((mine[6] - p).abs() < 1e-6 * p.abs().max(1.0), "{deck_file}: P {} vs {p}", mine[6]);
            let e = col(theirs, "pe") * norm * u.energy;
            assert!((mine[3] - e).abs() < 1e-9 * e.abs().max(1.0), "{deck_file}: PE {} vs {e}", mine[3]);
        }
    }
}

fn deck_error(name: &str, text: &str) -> String {
    let dir = common::scratch(&format!("err-{name}"));
    let path = dir.join("in.bad");
    std::fs::write(&path, text).unwrap();
    let mut d = Deck::new(DeckOptions { log: None, screen: false, echo: Echo::None, ..DeckOptions::default() }).unwrap();
    match d.run_file(&path) {
        Ok(()) => panic!("{name}: the deck ran"),
        Err(e) => e.to_string(),
    }
}

const SETUP: &str = "units lj\nlattice fcc 0.8442\nregion box block 0 3 0 3 0 3\ncreate_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\n";
/// Eight lines: two types, half the atoms made type 2.
const TWO: &str = "units lj\nlattice fcc 0.8442\nregion box block 0 3 0 3 0 3\ncreate_box 2 box\ncreate_atoms 1 box\nmass 1 1.0\nmass 2 1.0\nset type 1 type/fraction 2 0.5 99\n";

/// Every unsupported command and every malformed line stops the deck with its file, line and
/// command, and what mdrun supports instead.
#[test]
fn unsupported_commands_and_malformed_lines_name_their_line() {
    let cases: &[(&str, String, usize, &str)] = &[
        ("compute", format!("{SETUP}compute 1 all pe/atom\n"), 7, "not supported by mdrun"),
        ("unknown", "units lj\nfrobnicate 3\n".into(), 2, "unknown command 'frobnicate'"),
        ("units", "units si\n".into(), 1, "mdrun supports lj, metal, real"),
        ("pair style", format!("{SETUP}pair_style lj/cut/coul/long 2.5\n"), 7, "mdrun supports lj/cut Rc, morse Rc"),
        ("bad number", format!("{SETUP}pair_style lj/cut 2.5\npair_coeff 1 1 one 1.0\n"), 8, "epsilon: expected a number, got 'one'"),
        ("bad type", format!("{SETUP}pair_style lj/cut 2.5\npair_coeff 1 3 1.0 1.0\n"), 8, "outside 1..1"),
        ("fix nvt/sllod", format!("{SETUP}fix 1 all nvt/sllod temp 1 1 0.1\n"), 7, "fix style 'nvt/sllod' is not supported"),
        ("min_style quickmin", format!("{SETUP}min_style quickmin\n"), 7, "mdrun supports cg, sd and fire"),
        ("minimize arguments", format!("{SETUP}minimize 1e-4 1e-6 100\n"), 7, "expected: minimize etol ftol maxiter maxeval"),
        ("undefined group", format!("{SETUP}velocity mobile create 1.0 1\n"), 7, "no group 'mobile'"),
        ("fix on a group", format!("{SETUP}group one type 1\nfix 1 one nve\n"), 8, "group all only"),
        ("set mass", format!("{SETUP}set type 1 mass 2.0\n"), 7, "Cannot set attribute mass for atom style atomic"),
        ("set fraction", format!("{SETUP}set type 1 type/fraction 1 1.5 7\n"), 7, "fraction must be within 0..1"),
        ("set type", format!("{SETUP}set group all type 2\n"), 7, "outside 1..1"),
        ("morse unset pair", format!("{TWO}pair_style morse 3.0\npair_coeff 1 1 1 2 1.1\npair_coeff 2 2 1 2 1.1\nfix 1 all nve\nrun 1\n"), 13, "types 1 2 are not set (pair_coeff): pair_style morse does not mix"),
        ("morse arguments", format!("{TWO}pair_style morse 3.0\npair_coeff 1 1 1 2\n"), 10, "expected pair_coeff I J d0 alpha r0 [cutoff]"),
        ("morse alpha", format!("{TWO}pair_style morse 3.0\npair_coeff 1 1 1 -2 1.1\n"), 10, "alpha must be positive"),
        ("undefined variable", "variable a equal 1\nprint \"${b}\"\n".into(), 2, "variable 'b' is not defined"),
        ("divide by zero", "variable a equal 1/0\nprint \"$a\"\n".into(), 2, "divide by 0"),
        ("unbalanced quote", "print \"abc\n".into(), 1, "unbalanced"),
        ("missing label", "jump SELF nowhere\n".into(), 1, "label 'nowhere' not found"),
        ("no box", "units lj\nmass 1 1.0\n".into(), 2, "after the box"),
        ("run without pair", format!("{SETUP}fix 1 all nve\nrun 10\n"), 8, "no pair style"),
        ("langevin without nve", format!("{SETUP}pair_style lj/cut 2.5\npair_coeff * * 1 1\nfix 2 all langevin 1 1 0.1 5\nrun 10\n"), 10, "add fix nve"),
        ("recursion", "variable a equal v_a+1\nprint \"$a\"\n".into(), 2, "refers to itself"),
        ("continued line", "units lj\nlattice sc 1.0\nregion box block 0 1 &\n  0 1 0 x\n".into(), 3, "got 'x'"),
        ("bad velocity seed", format!("{SETUP}velocity all create 1.0 -5\n"), 7, "positive 32-bit"),
        ("thermo keyword", "thermo_style custom step temp c_mytemp\n".into(), 1, "not supported"),
        ("lost atoms", "units metal\nboundary p p f\nlattice sc 3.0\nregion b block 0 3 0 3 0 3\ncreate_box 1 b\ncreate_atoms 1 box\nmass 1 40\nvelocity all set 0 0 50 units box\npair_style lj/cut 5\npair_coeff 1 1 0.01 3.0\nfix 1 all nve\nthermo 10\nrun 100\n".into(), 13, "Lost atoms"),
    ];
    for (name, text, line, expect) in cases {
        let msg = deck_error(&name.replace(' ', "-"), text);
        assert!(msg.contains(&format!("in.bad:{line}: ")), "{name}: expected line {line} in: {msg}");
        assert!(msg.contains(expect), "{name}: expected '{expect}' in: {msg}");
    }
}

/// The command line is LAMMPS's: -in, -var (index variables that the deck's own index
/// definition does not override), -log, -echo, -screen.
#[test]
fn lammps_command_line_with_var_log_and_echo() {
    let dir = common::scratch("deck-cli");
    let deck = dir.join("in.loop");
    std::fs::write(
        &deck,
        "variable n index 5\nvariable i loop 3\nlabel top\nprint \"n=${n} i=$i sq=$(v_i*v_i)\"\nnext i\njump SELF top\nprint \"after the loop\"\n",
    )
    .unwrap();
    let log = dir.join("log.deck");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .args(["-in", deck.to_str().unwrap(), "-var", "n", "7", "-log", log.to_str().unwrap(), "-echo", "screen"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&out.stdout);
    for i in 1..=3 {
        assert!(screen.contains(&format!("n=7 i={i} sq={}", i * i)), "{screen}");
    }
    assert!(screen.contains("after the loop") && !screen.contains("i=4"));
    assert!(screen.contains("variable i loop 3"), "-echo screen echoes the input: {screen}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("n=7 i=3 sq=9"));

    let quiet = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", deck.to_str().unwrap(), "-log", "none", "-screen", "none"]).output().unwrap();
    assert!(quiet.status.success() && quiet.stdout.is_empty());
    let screen_file = dir.join("screen.txt");
    let to_file = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", deck.to_str().unwrap(), "-log", "none", "-screen", screen_file.to_str().unwrap()]).output().unwrap();
    assert!(to_file.status.success() && to_file.stdout.is_empty());
    let written = std::fs::read_to_string(&screen_file).unwrap();
    assert!(written.contains("n=5 i=3 sq=9") && written.contains("Total wall time"), "{written}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", "/nonexistent/in.x", "-log", "none"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot read the input script"));
}

/// Frames of a LAMMPS text dump: (step, column names, rows of numbers).
fn dump_frames(text: &str) -> Vec<(u64, Vec<String>, Vec<Vec<f64>>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        assert_eq!(lines[i], "ITEM: TIMESTEP");
        let step = lines[i + 1].trim().parse().unwrap();
        let n: usize = lines[i + 3].trim().parse().unwrap();
        let cols: Vec<String> = lines[i + 8].split_whitespace().skip(2).map(str::to_string).collect();
        let rows = lines[i + 9..i + 9 + n].iter().map(|l| l.split_whitespace().map(|w| w.parse().unwrap()).collect()).collect();
        frames.push((step, cols, rows));
        i += 9 + n;
    }
    frames
}

/// dump custom and dump atom write what LAMMPS writes for the same deck (6 significant digits,
/// so agreement to 1e-5 of each column's scale); dump xyz and a chemfiles PDB hold the frames.
#[test]
fn dumps_match_lammps_and_chemfiles_formats_are_written() {
    let dir = common::scratch("deck-dumps");
    let base = dir.join("mdrun").display().to_string();
    run_deck("tests/decks/in.dump", vec![("out".into(), vec![base.clone()])]);
    for kind in ["custom", "atom"] {
        let mine = dump_frames(&std::fs::read_to_string(format!("{base}.{kind}")).unwrap());
        let theirs = dump_frames(&std::fs::read_to_string(repo(&format!("tests/fixtures/lammps_dump.{kind}"))).unwrap());
        assert_eq!(mine.len(), theirs.len(), "{kind}: frames");
        // Each column's scale over the whole dump (the forces start at zero by symmetry).
        let ncol = theirs[0].1.len();
        let scales: Vec<f64> = (0..ncol).map(|c| theirs.iter().flat_map(|f| &f.2).map(|r| r[c].abs()).fold(1e-30, f64::max)).collect();
        for (m, t) in mine.iter().zip(&theirs) {
            assert_eq!((m.0, &m.1), (t.0, &t.1), "{kind}: step and columns");
            for c in 0..t.1.len() {
                let scale = scales[c];
                for (rm, rt) in m.2.iter().zip(&t.2) {
                    assert!((rm[c] - rt[c]).abs() <= 1e-5 * scale, "{kind} step {} column {}: mdrun {} vs LAMMPS {}", t.0, t.1[c], rm[c], rt[c]);
                }
            }
        }
    }
    let custom = std::fs::read_to_string(format!("{base}.custom")).unwrap();
    assert_eq!(custom.matches("ITEM: TIMESTEP").count(), 5);

    // dump xyz and any chemfiles format (here PDB), with element names.
    let deck = dir.join("in.formats");
    std::fs::write(
        &deck,
        format!(
            "{}dump x all xyz 10 {d}/t.xyz\ndump p all chemfiles 20 {d}/t.pdb\ndump_modify p element Ar\nrun 40\n",
            std::fs::read_to_string(repo("tests/decks/in.dump")).unwrap().lines().take_while(|l| !l.starts_with("dump")).collect::<Vec<_>>().join("\n") + "\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut d = Deck::new(DeckOptions { log: None, screen: false, echo: Echo::None, ..DeckOptions::default() }).unwrap();
    d.run_file(&deck).unwrap();
    let xyz = std::fs::read_to_string(dir.join("t.xyz")).unwrap();
    assert_eq!(xyz.matches("Atoms. Timestep:").count(), 5);
    let pdb = mdrun::io::structure::read(&dir.join("t.pdb"), "", 2).unwrap();
    assert_eq!(pdb.positions.len(), 32);
    assert!(pdb.names.iter().all(|n| n == "Ar"));
    // The PDB's last frame (step 40) is the LAMMPS dump's last frame, to PDB's 3 decimals.
    let last = &dump_frames(&std::fs::read_to_string(repo("tests/fixtures/lammps_dump.custom")).unwrap())[4];
    for (i, row) in last.2.iter().enumerate() {
        for k in 0..3 {
            let l = 10.52;
            let diff = (pdb.positions[i][k] - row[2 + k]).rem_euclid(l);
            assert!(diff.min(l - diff) < 2e-3, "atom {} axis {k}: pdb {} vs LAMMPS {}", i + 1, pdb.positions[i][k], row[2 + k]);
        }
    }
}

#[test]
fn setup_deck_every_lattice_regions_fixed_boundary_and_velocity_options_match_lammps() {
    let deck = run_deck("tests/decks/in.setup", Vec::new());
    let worst = compare(&deck, "tests/fixtures/lammps_setup.txt", 1e-12, 1e-10);
    println!("setup: worst deviation {worst:.2e}");
}

/// write_restart / read_restart: a deck continued from the restart file gives the rows of the
/// uninterrupted deck, bit for bit (both rebuild their lists at the start of each run).
#[test]
fn read_restart_continues_the_run_bit_for_bit() {
    // NVE, and fix npt, whose chains, cell velocity and box the restart carries to the fix
    // defined again after read_restart (as LAMMPS's restart files do).
    for fix in ["fix 1 all nve", "fix 1 all npt temp 1.5 1.5 0.5 iso 2.0 2.0 2.0"] {
        let dir = common::scratch("deck-restart");
        let restart = dir.join("state.restart").display().to_string();
        let setup = format!("units lj\nlattice fcc 0.9\nregion b block 0 4 0 4 0 4\ncreate_box 1 b\ncreate_atoms 1 box\nmass 1 1.0\nvelocity all create 1.5 99 loop geom\npair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0\npair_modify shift yes\nneigh_modify every 2 check yes\n{fix}\nthermo 10\nthermo_style custom step temp pe etotal press vol econserve\n");
        let whole = dir.join("in.whole");
        std::fs::write(&whole, format!("{setup}run 30\nwrite_restart {restart}\nrun 30\n")).unwrap();
        let continued = dir.join("in.continued");
        std::fs::write(&continued, format!("read_restart {restart}\n{fix}\nthermo 10\nthermo_style custom step temp pe etotal press vol econserve\nrun 30\n")).unwrap();
        let options = || DeckOptions { log: None, screen: false, echo: Echo::None, threads: Some(2), ..DeckOptions::default() };
        let mut a = Deck::new(options()).unwrap();
        a.run_file(&whole).unwrap();
        let mut b = Deck::new(options()).unwrap();
        b.run_file(&continued).unwrap();
        let tail: Vec<_> = a.rows[a.rows.len() - b.rows.len()..].iter().map(|r| r.values.clone()).collect();
        let mine: Vec<_> = b.rows.iter().map(|r| r.values.clone()).collect();
        assert_eq!(mine[0][0], 30.0);
        assert_eq!(tail, mine, "{fix}: the continued run differs from the uninterrupted one");
    }
}

/// pair_style ml (here by its older name, mcgm) in a deck: the shipped water model on water read from a data file (types
/// named by pair_coeff * * O H) gives the energy the same model gives the same structure in a
/// system.toml, and the deck's NVE run conserves energy.
#[test]
fn pair_style_mcgm_runs_the_shipped_model_from_a_deck() {
    let dir = common::scratch("deck-mcgm");
    let water = mdrun::io::structure::read(&repo("systems/quickstart/water8.extxyz"), "XYZ", 0).unwrap();
    let cell = water.cell.unwrap();
    let mut data = format!("water\n\n{} atoms\n2 atom types\n\n0 {:?} xlo xhi\n0 {:?} ylo yhi\n0 {:?} zlo zhi\n\nMasses\n\n1 15.999\n2 1.008\n\nAtoms # atomic\n\n", water.names.len(), cell[0][0], cell[1][1], cell[2][2]);
    for (i, (n, x)) in water.names.iter().zip(&water.positions).enumerate() {
        data.push_str(&format!("{} {} {:?} {:?} {:?}\n", i + 1, if n == "O" { 1 } else { 2 }, x[0], x[1], x[2]));
    }
    std::fs::write(dir.join("water.data"), data).unwrap();
    let model = repo("potentials/water-schnet-mcgm-soft");
    let deck = dir.join("in.water");
    std::fs::write(
        &deck,
        format!(
            "units metal\nread_data {}\npair_style mcgm {}\npair_coeff * * O H\nvelocity all create 300 4242 loop geom\nneighbor 1.0 bin\nfix 1 all nve\ntimestep 0.0005\nthermo 20\nthermo_style custom step temp pe etotal\nrun 200\n",
            dir.join("water.data").display(),
            model.display()
        ),
    )
    .unwrap();
    let mut d = Deck::new(DeckOptions { log: None, screen: false, echo: Echo::None, threads: Some(2), ..DeckOptions::default() }).unwrap();
    d.run_file(&deck).unwrap_or_else(|e| panic!("{e}"));

    let toml = format!(
        "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"zero\"\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = 0.0005\n[run]\nsteps = 0\nplatform = \"cpu\"\n",
        repo("systems/quickstart/water8.extxyz").display(),
        model.display()
    );
    let plan = common::plan_in(&dir, &toml);
    let summary = mdrun::run::run(&plan, &mdrun::run::RunOptions { quiet: true, ..Default::default() }).unwrap();
    let pe0 = d.rows[0].values[2];
    assert!((pe0 - summary.final_potential_energy_ev).abs() < 1e-9 * pe0.abs(), "deck {pe0} vs toml {}", summary.final_potential_energy_ev);
    let e: Vec<f64> = d.rows.iter().map(|r| r.values[3]).collect();
    let spread = e.iter().cloned().fold(f64::MIN, f64::max) - e.iter().cloned().fold(f64::MAX, f64::min);
    let ke = d.rows[0].values[1] * 1.5 * 23.0 * mdrun::units::BOLTZ;
    assert!(spread < 0.01 * ke, "NVE total energy wanders by {spread} eV (kinetic {ke} eV)");
}

/// `-sf gpu`: the same deck on the GPU platform (f32 forces, float-float positions) follows
/// LAMMPS's table to f32 precision, amplified by the chaotic dynamics over 150 steps.
#[test]
fn units_lj_deck_on_the_gpu_platform_follows_lammps() {
    if common::gpu().is_none() {
        return;
    }
    let options = DeckOptions { log: None, screen: false, echo: Echo::None, platform: mdrun::plan::Platform::Gpu, ..DeckOptions::default() };
    let mut d = Deck::new(options).unwrap();
    d.run_file(&repo("tests/decks/in.units-lj")).unwrap_or_else(|e| panic!("{e}"));
    let worst = compare(&d, "tests/fixtures/lammps_units_lj.txt", 1e-5, 1e-4);
    println!("lj on the GPU: worst deviation {worst:.2e}");
}

/// The example deck (systems/argon-deck/in.argon) runs with the binary as documented: a loop of
/// Langevin stages, then NVE that holds its total energy; log.lammps, a dump and a data file.
#[test]
fn example_deck_runs_through_the_binary() {
    let dir = common::scratch("deck-example");
    std::fs::copy(repo("systems/argon-deck/in.argon"), dir.join("in.argon")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", "in.argon", "-var", "T", "80", "120"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("stage at 80 K done") && screen.contains("stage at 120 K done") && !screen.contains("stage at 60"));
    let log = std::fs::read_to_string(dir.join("log.lammps")).unwrap();
    let last = tables(&log).pop().unwrap();
    let etot: Vec<f64> = last.1.iter().map(|r| r[3]).collect();
    let spread = etot.iter().cloned().fold(f64::MIN, f64::max) - etot.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 2e-3 * etot[0].abs(), "NVE total energy spread {spread} eV");
    assert_eq!(std::fs::read_to_string(dir.join("argon.xyz")).unwrap().matches("Timestep").count(), 5);
    assert!(std::fs::read_to_string(dir.join("argon.data")).unwrap().contains("500 atoms"));
}

/// include, jump to another file, if/elif/else, loop variables with pad, string and format
/// variables, immediate formulas with formats, print to a file.
#[test]
fn script_language_include_jump_if_and_formats() {
    let dir = common::scratch("deck-script");
    std::fs::write(dir.join("settings.in"), "variable base string run\nvariable scale equal 2.5\n").unwrap();
    std::fs::write(dir.join("second.in"), "print \"in second: ${base}\" append out.txt\nif \"${scale} > 2\" then \"print 'big' append out.txt\" else \"print 'small' append out.txt\"\n").unwrap();
    std::fs::write(
        dir.join("in.main"),
        "include settings.in\n\
         variable i loop 8 10 pad\n\
         label again\n\
         variable f format scale %.3f\n\
         if \"$i == 8\" then \"print 'first ${base}$i' file out.txt\" elif \"$i == 9\" \"print 'second $i $f' append out.txt\" else \"print 'third $(v_i*v_scale:%06.2f)' append out.txt\"\n\
         next i\n\
         jump SELF again\n\
         variable x equal \"(1+2) * -2^2 / 3\"\n\
         print \"x = ${x} and $(sqrt(2):%.4f)\" append out.txt\n\
         jump second.in\n\
         print \"never printed\" append out.txt\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", "in.main", "-log", "none", "-screen", "none"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.join("out.txt")).unwrap();
    assert_eq!(text, "first run08\nsecond 09 2.500\nthird 025.00\nx = 4 and 1.4142\nin second: run\nbig\n");
}

/// Inputs the fuzzer found, replayed sandboxed as the fuzz target runs them: each ends quickly
/// in Ok or an error (a dense box with a long neighbour reach once took minutes).
#[test]
fn fuzzer_findings_end_quickly() {
    for seed in ["regression-dense-long-reach", "regression-many-long-runs", "regression-printf-multibyte"] {
        let bytes = std::fs::read(repo(&format!("fuzz/seeds/deck/{seed}"))).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let sandbox = mdrun::deck::interp::Sandbox { max_commands: 500, max_atoms: 300, max_steps: 50, max_cutoff: 10.0 };
        let options = DeckOptions { log: None, screen: false, echo: Echo::None, threads: Some(1), sandbox: Some(sandbox), ..DeckOptions::default() };
        let start = std::time::Instant::now();
        let _ = Deck::new(options).unwrap().run_text(Path::new("fuzz.in"), &text);
        assert!(start.elapsed().as_secs_f64() < 5.0, "{seed} took {:?}", start.elapsed());
    }
}
