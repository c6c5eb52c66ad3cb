//! A run that has clearly failed stops, saves the last good state and says why (`[run]
//! max_temperature`, `[run] max_energy_drift`): argon packed at random far above liquid density
//! explodes to thousands of kelvin within 20 steps; argon stepped at 55 fs no longer conserves
//! its energy. Both platforms where a GPU exists.

mod common;

use common::{on, platforms, random_system, scratch};
use mdrun::cell::Cell;
use mdrun::plan::{Plan, Platform};
use mdrun::run::RunError;
use std::path::Path;

/// 400 argon atoms at random in a 21 Å box, none closer than 2.4 Å (0.7 sigma): 1.5 times the
/// liquid's density, at rest; its potential energy turns into about 6,000 K within 20 steps.
fn write_dense_argon(dir: &Path) {
    let system = random_system(400, Cell::orthorhombic(21.0, 21.0, 21.0).unwrap(), &["Ar"], 2.4, 3);
    let mut text = format!("{}\nProperties=species:S:1:pos:R:3 Lattice=\"21 0 0 0 21 0 0 0 21\" pbc=\"T T T\"\n", system.len());
    for p in &system.positions {
        text += &format!("Ar {:.8} {:.8} {:.8}\n", p[0], p[1], p[2]);
    }
    std::fs::write(dir.join("argon.xyz"), text).unwrap();
}

fn argon_toml(structure: &str, timestep_fs: f64, steps: u64, run_extra: &str) -> String {
    format!(
        r#"
[structure]
file = "{structure}"
[potential]
type = "lj"
cutoff = "8.5 A"
shift = true
[potential.species.Ar]
epsilon = "0.0103408 eV"
sigma = "3.4 A"
[integrator]
type = "verlet"
timestep = "{timestep_fs} fs"
[run]
steps = {steps}
{run_extra}
[neighbor]
skin = "1.0 A"
[output]
thermo = 10
log = "thermo.log"
checkpoint = "run.chk"
"#
    )
}

fn plan_of(dir: &Path, toml: &str) -> Plan {
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    Plan::from_file(&dir.join("system.toml"), None).unwrap_or_else(|e| panic!("{e}"))
}

fn label(platform: Platform) -> &'static str {
    if platform == Platform::Gpu { "gpu" } else { "cpu" }
}

#[test]
fn an_exploding_run_stops_at_the_first_thermo_step_above_ten_times_the_reference_and_saves_the_state_before() {
    for platform in platforms() {
        let dir = scratch(&format!("guard-hot-{}", label(platform)));
        write_dense_argon(&dir);
        let plan = plan_of(&dir, &argon_toml("argon.xyz", 2.0, 2000, ""));
        let error = mdrun::run::run(&plan, &on(platform)).expect_err("the explosion must stop the run");
        let RunError::Failed { ref reason, saved_step, saved_temperature, ref saved } = error else {
            panic!("{platform:?}: expected a failed run, got: {error}");
        };
        let text = error.to_string();
        assert!(reason.contains("[run] max_temperature") && reason.contains("3.0000e3 K") && reason.contains("starts at 0.0 K"), "{platform:?}: {text}");
        // The thermo log has the row that failed, then says why the run stopped.
        let log = std::fs::read_to_string(dir.join("thermo.log")).unwrap();
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        let last = rows.last().unwrap();
        assert!(last[2] > 3000.0 && (last[0] as u64) < 200, "{platform:?}: stopped at step {} at {} K", last[0], last[2]);
        assert!(log.contains("# run stopped: step"), "{log}");
        // The saved state is the previous thermo step's, below the limit, and a restart
        // continues from it (here with the check off: the explosion goes on, now allowed).
        assert_eq!(saved_step + 10, last[0] as u64, "{platform:?}");
        assert!(saved_temperature < 3000.0, "{platform:?}: {saved_temperature}");
        let chk = mdrun::io::checkpoint::Checkpoint::read(saved).unwrap();
        assert_eq!(chk.step, saved_step);
        let off = plan_of(&dir, &argon_toml("argon.xyz", 2.0, 2000, "max_temperature = \"off\""));
        mdrun::run::run(&off, &mdrun::run::RunOptions { restart: Some(saved.clone()), steps: Some(saved_step + 50), ..on(platform) })
            .unwrap_or_else(|e| panic!("{platform:?}: {e}"));
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        assert_eq!(rows.last().unwrap()[0] as u64, saved_step + 50, "{platform:?}");
        assert!(rows.iter().any(|r| r[2] > 3000.0), "{platform:?}");
    }
}

#[test]
fn nve_that_no_longer_conserves_energy_stops_past_max_energy_drift_and_a_good_timestep_runs_on() {
    let argon = concat!(env!("CARGO_MANIFEST_DIR"), "/systems/argon/argon.extxyz");
    for platform in platforms() {
        let dir = scratch(&format!("guard-drift-{}", label(platform)));
        // 864 argon atoms at 94 K: at 55 fs (a tenth of the period of a neighbour's rattle)
        // Verlet gains about 1e-3 eV per atom in 50 steps, then blows apart.
        let bad = plan_of(&dir, &argon_toml(argon, 55.0, 2000, "max_energy_drift = \"2e-4 eV\""));
        let error = mdrun::run::run(&bad, &on(platform)).expect_err("the drift must stop the run");
        let RunError::Failed { ref reason, .. } = error else {
            panic!("{platform:?}: expected a failed run, got: {error}");
        };
        assert!(reason.contains("NVE energy moved by") && reason.contains("[run] max_energy_drift"), "{platform:?}: {reason}");
        // The default limit lets the same run at 5 fs through, and so does 55 fs with the
        // check off until the forces blow up (the blow-up check stays on).
        let good = plan_of(&dir, &argon_toml(argon, 5.0, 200, ""));
        mdrun::run::run(&good, &on(platform)).unwrap_or_else(|e| panic!("{platform:?}: {e}"));
        let off = plan_of(&dir, &argon_toml(argon, 55.0, 2000, "max_energy_drift = \"off\""));
        match mdrun::run::run(&off, &on(platform)) {
            Err(RunError::BlowUp { .. }) | Ok(_) => {}
            Err(e) => panic!("{platform:?}: with the check off: {e}"),
        }
    }
}

#[test]
fn the_limits_refuse_what_is_not_a_positive_quantity_or_off_naming_the_key() {
    let dir = scratch("guard-keys");
    write_dense_argon(&dir);
    for (value, expected) in [
        ("max_temperature = \"-5 K\"", "[run] max_temperature"),
        ("max_temperature = \"5 eV\"", "a temperature"),
        ("max_energy_drift = \"of\"", "[run] max_energy_drift"),
        ("max_energy_drift = 0", "must be positive"),
    ] {
        std::fs::write(dir.join("system.toml"), argon_toml("argon.xyz", 2.0, 2000, value)).unwrap();
        let error = Plan::from_file(&dir.join("system.toml"), None).expect_err(value).to_string();
        assert!(error.contains(expected) && error.contains("system.toml"), "{value}: {error}");
    }
}

/// The quickstart's 8 waters squeezed into 0.8 of their box, tiled 2x2x2 (wide enough for the
/// GPU's list): O-H bonds at 0.78 Å and O-O contacts at 1.9 Å, closer than the model's
/// training data ever came, at every step.
fn squeezed_water_toml(dir: &Path, steps: u64, run_extra: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systems/quickstart/water8.extxyz")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!("24\nLattice=\"{0} 0 0 0 {0} 0 0 0 {0}\" pbc=\"T T T\" Properties=species:S:1:pos:R:3\n", 6.21 * 0.8);
    for line in &lines[2..26] {
        let f: Vec<&str> = line.split_whitespace().collect();
        let r: Vec<f64> = f[1..4].iter().map(|x| x.parse::<f64>().unwrap() * 0.8).collect();
        out += &format!("{} {} {} {}\n", f[0], r[0], r[1], r[2]);
    }
    std::fs::write(dir.join("squeezed.extxyz"), out).unwrap();
    format!(
        r#"
[structure]
file = "squeezed.extxyz"
repeat = [2, 2, 2]
[potential]
type = "ml"
model = "{}/potentials/water-schnet"
[integrator]
type = "langevin"
timestep = "0.5 fs"
temperature = "300 K"
damping = "0.1 ps"
seed = 3
[run]
steps = {steps}
max_temperature = "off"
{run_extra}
[output]
thermo = 5
log = "thermo.log"
checkpoint = "run.chk"
"#,
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_learned_potential_outside_its_training_data_row_after_row_stops_the_run() {
    let dir = scratch("guard-outside");
    for platform in platforms() {
        let plan = plan_of(&dir, &squeezed_water_toml(&dir, 100, "max_outside_rows = 3"));
        let error = mdrun::run::run(&plan, &on(platform)).expect_err("three rows outside must stop the run");
        let RunError::Failed { ref reason, saved_step, .. } = error else { panic!("{platform:?}: expected a failed run, got: {error}") };
        assert!(reason.starts_with("step 15:") && reason.contains("each of the last 3 thermo intervals") && reason.contains("max_outside_rows"), "{platform:?}: {reason}");
        assert_eq!(saved_step, 10, "{platform:?}");
    }
    // The default (10 rows) lets 6 such rows through; "off" any number.
    let plan = plan_of(&dir, &squeezed_water_toml(&dir, 30, ""));
    mdrun::run::run(&plan, &on(Platform::Cpu)).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan_of(&dir, &squeezed_water_toml(&dir, 60, "max_outside_rows = \"off\""));
    mdrun::run::run(&plan, &on(Platform::Cpu)).unwrap_or_else(|e| panic!("{e}"));
    for (value, expected) in [("max_outside_rows = 0", "at least 1"), ("max_outside_rows = 2.5", "whole count"), ("max_outside_rows = \"of\"", "[run] max_outside_rows")] {
        std::fs::write(dir.join("system.toml"), squeezed_water_toml(&dir, 30, value)).unwrap();
        let error = Plan::from_file(&dir.join("system.toml"), None).expect_err(value).to_string();
        assert!(error.contains(expected), "{value}: {error}");
    }
}
