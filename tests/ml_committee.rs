//! Committees of learned models (`mdrun train --committee N`): the first member drives the
//! dynamics, the others are evaluated on the same graph at the thermo rows, and their force
//! deviation goes into the thermo table, the warnings, the uncertain frames and the failure
//! checks (`[potential] uncertainty`).

mod common;

use common::{plan_in, scratch, thermo_rows};
use mdrun::potential::mcgm::MlPotential;
use mdrun::potential::{ForceOutput, Potential};
use mdrun::run::RunError;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A committee folder in `dir` whose members are copies of the shipped `models`.
fn committee_of(dir: &Path, models: &[&str]) -> PathBuf {
    let folder = dir.join("committee");
    let mut names = Vec::new();
    for (k, model) in models.iter().enumerate() {
        let member = format!("member-{}", k + 1);
        std::fs::create_dir_all(folder.join(&member)).unwrap();
        for file in ["model.json", "model.safetensors"] {
            std::fs::copy(Path::new(ROOT).join("potentials").join(model).join(file), folder.join(&member).join(file)).unwrap();
        }
        names.push(member);
    }
    mdrun::ml::file::save_committee(&folder, &names, serde_json::json!({})).unwrap();
    folder
}

/// The quickstart's 8 waters under `model`, Langevin at 300 K, thermo every 10 steps.
fn water_toml(model: &Path, steps: u64, extra_potential: &str) -> String {
    format!(
        r#"
[structure]
file = "{ROOT}/systems/quickstart/water8.extxyz"
[velocities]
source = "maxwell-boltzmann"
temperature = "300 K"
seed = 5
[potential]
type = "ml"
model = "{}"
{extra_potential}
[integrator]
type = "langevin"
timestep = "0.5 fs"
temperature = "300 K"
damping = "0.1 ps"
seed = 3
[run]
steps = {steps}
[output]
thermo = 10
log = "thermo.log"
checkpoint = "run.chk"
"#,
        model.display()
    )
}

fn forces_of(potential: &mut MlPotential, system: &mdrun::system::System) -> ForceOutput {
    common::evaluate(system, potential, 1.0)
}

#[test]
fn the_deviation_is_the_spread_of_the_members_forces_and_the_first_member_drives() {
    let dir = scratch("committee-spread");
    let folder = committee_of(&dir, &["water-schnet", "water-painn", "water-schnet-mcgm-soft"]);
    let plan = plan_in(&dir, &water_toml(&folder, 10, ""));
    let names: Vec<String> = plan.system.species.iter().map(|s| s.name.clone()).collect();
    let mut committee = MlPotential::load(&folder, &names).unwrap();
    assert_eq!(committee.committee_size(), 3);
    let together = forces_of(&mut committee, &plan.system);
    let deviation = committee.force_deviation().expect("a committee evaluated with the energy reports its deviation");
    let alone: Vec<ForceOutput> = ["water-schnet", "water-painn", "water-schnet-mcgm-soft"]
        .iter()
        .map(|m| forces_of(&mut MlPotential::load(&Path::new(ROOT).join("potentials").join(m), &names).unwrap(), &plan.system))
        .collect();
    // The committee's forces and energy are its first member's, bit for bit.
    assert_eq!(together.forces, alone[0].forces);
    assert_eq!(together.energy, alone[0].energy);
    // Its deviation is that of the members evaluated one by one; worked out by hand for the
    // worst atom: sqrt(mean over members of |F_k - mean F|^2).
    let expected = mdrun::potential::committee::force_deviation(&[&alone[0].forces, &alone[1].forces, &alone[2].forces]);
    assert!((deviation.max - expected.max).abs() < 1e-9 && (deviation.mean - expected.mean).abs() < 1e-9 && deviation.atom == expected.atom, "{deviation:?} vs {expected:?}");
    let i = deviation.atom;
    let mean: Vec<f64> = (0..3).map(|a| alone.iter().map(|o| o.forces[i][a]).sum::<f64>() / 3.0).collect();
    let by_hand = (alone.iter().map(|o| (0..3).map(|a| (o.forces[i][a] - mean[a]).powi(2)).sum::<f64>()).sum::<f64>() / 3.0).sqrt();
    assert!((deviation.max - by_hand).abs() < 1e-9, "{} vs {by_hand}", deviation.max);
    // Three models trained apart disagree by tens of meV/Å at least on a 500 K snapshot.
    assert!(deviation.max > 0.02 && deviation.mean > 0.0 && deviation.mean < deviation.max, "{deviation:?}");
}

#[test]
fn identical_members_report_zero_in_every_thermo_row() {
    let dir = scratch("committee-identical");
    let folder = committee_of(&dir, &["water-schnet", "water-schnet", "water-schnet"]);
    let plan = plan_in(&dir, &water_toml(&folder, 40, ""));
    let summary = mdrun::run::run(&plan, &common::on(mdrun::plan::Platform::Cpu)).unwrap();
    let log = std::fs::read_to_string(dir.join("thermo.log")).unwrap();
    assert!(log.contains("FDevMax(eV/A)") && log.contains("FDevMean(eV/A)"), "{log}");
    let rows = thermo_rows(&dir.join("thermo.log"));
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_eq!((row.len(), row[9], row[10]), (11, 0.0, 0.0), "{row:?}");
    }
    let c = summary.committee.expect("a committee run sums up its deviation");
    assert_eq!((c.rows, c.max_deviation, c.rows_above_warning), (5, 0.0, 0));
}

#[test]
fn frames_past_save_are_written_for_labelling_and_a_run_past_stop_fails_with_its_last_good_state() {
    let dir = scratch("committee-thresholds");
    let folder = committee_of(&dir, &["water-schnet", "water-painn"]);
    let save = r#"uncertainty = { warn = "1e-4 eV/A", save = "1e-4 eV/A", frames = "uncertain.extxyz" }"#;
    let plan = plan_in(&dir, &water_toml(&folder, 40, save));
    let summary = mdrun::run::run(&plan, &common::on(mdrun::plan::Platform::Cpu)).unwrap();
    let c = summary.committee.unwrap();
    assert_eq!((c.rows_above_warning, c.frames_saved.as_ref().map(|f| f.0)), (4, Some(4)), "{c:?}");
    // Every thermo row after the first is a frame, with the deviation of its row.
    let frames = std::fs::read_to_string(dir.join("uncertain.extxyz")).unwrap();
    let rows = thermo_rows(&dir.join("thermo.log"));
    let comments: Vec<&str> = frames.lines().filter(|l| l.contains("Lattice=")).collect();
    assert_eq!(comments.len(), 4, "{frames}");
    for (comment, row) in comments.iter().zip(&rows[1..]) {
        let value = |key: &str| comment.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap().parse::<f64>().unwrap();
        assert_eq!(value("step"), row[0]);
        assert!((value("mdrun_force_deviation_max") - row[9]).abs() < 1e-6, "{comment} vs {row:?}");
    }
    assert_eq!(frames.lines().count(), 4 * 26);
    // The same run with a stop level below the deviation stops at its first checked row, with
    // the state before saved.
    // Its in-run analysis of the steps before the stop is written all the same.
    let stop = r#"uncertainty = { stop = "1e-4 eV/A" }"#;
    let analysis = "[analysis]\ninterval = 2\nrdf = true\npairs = [\"O-H\"]\nrmax = \"3 A\"\nout = \"analysis\"\n";
    let plan = plan_in(&dir, &(water_toml(&folder, 40, stop) + analysis));
    let error = mdrun::run::run(&plan, &common::on(mdrun::plan::Platform::Cpu)).expect_err("past stop the run fails");
    let RunError::Failed { reason, saved_step, saved, .. } = error else { panic!("expected a failed run: {error}") };
    assert!(reason.contains("uncertainty.stop") && reason.contains("step 10"), "{reason}");
    assert_eq!(saved_step, 0);
    assert_eq!(mdrun::io::checkpoint::Checkpoint::read(&saved).unwrap().step, 0);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("analysis/summary.json")).unwrap()).unwrap();
    let peak = summary["rdf"]["O-H"]["first_peak_a"].as_f64().unwrap();
    assert!((0.9..1.05).contains(&peak), "the O-H bond peak of the steps before the stop: {peak} Å");
}

#[test]
fn uncertainty_settings_that_make_no_sense_are_refused_naming_the_key() {
    let dir = scratch("committee-keys");
    let folder = committee_of(&dir, &["water-schnet", "water-painn"]);
    let single = Path::new(ROOT).join("potentials/water-schnet");
    for (model, extra, expected) in [
        (&single, r#"uncertainty = { warn = "0.1 eV/A" }"#, "needs a committee"),
        (&folder, r#"uncertainty = { save = "0.1 eV/A" }"#, "needs frames"),
        (&folder, r#"uncertainty = { save = "2 eV/A", stop = "1 eV/A", frames = "f.extxyz" }"#, "expected save below stop"),
        (&folder, r#"uncertainty = { warn = "-1 eV/A" }"#, "uncertainty.warn"),
        (&folder, r#"uncertainty = { stop = "1 K" }"#, "a force"),
        (&folder, r#"uncertainty = { wrn = "1 eV/A" }"#, "wrn"),
    ] {
        std::fs::write(dir.join("system.toml"), water_toml(model, 10, extra)).unwrap();
        let error = mdrun::plan::Plan::from_file(&dir.join("system.toml"), None).expect_err(extra).to_string();
        assert!(error.contains(expected) && error.contains("system.toml"), "{extra}: {error}");
    }
    // A card that points outside its folder, or members that cannot share one graph.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("committee.json"), r#"{"format": "mdrun-committee", "members": ["../committee/member-1"]}"#).unwrap();
    let error = MlPotential::load(&bad, &["O".into(), "H".into()]).err().unwrap();
    assert!(error.contains("committee.json") && error.contains("inside"), "{error}");
    let mixed = committee_of(&scratch("committee-mixed"), &["water-schnet", "acetamide-schnet"]);
    let error = MlPotential::load(&mixed, &["O".into(), "H".into()]).err().unwrap();
    assert!(error.contains("must share"), "{error}");
}

/// A scratch folder holding `water30.extxyz`: 30 frames of the water data, enough for
/// one-epoch members.
fn scratch_with_water30(name: &str) -> PathBuf {
    let dir = scratch(name);
    let text = std::fs::read_to_string(Path::new(ROOT).join("potentials/data/water.extxyz")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(dir.join("water30.extxyz"), lines[..30 * 26].join("\n") + "\n").unwrap();
    dir
}

/// `mdrun train --train water30.extxyz ARGS` in `dir`: whether it succeeded, and what it printed.
fn train_in(dir: &Path, args: &[&str]) -> (bool, String) {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["train", "--train", "water30.extxyz"]).args(args).current_dir(dir).output().unwrap();
    (run.status.success(), String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr))
}

#[test]
fn train_committee_writes_members_from_different_seeds_that_load_as_one_potential() {
    let dir = scratch_with_water30("committee-train");
    let (ok, out) = train_in(&dir, &["--out", "comm", "--committee", "2", "--features", "8", "--blocks", "1", "--epochs", "1"]);
    assert!(ok, "{out}");
    let a = std::fs::read(dir.join("comm/member-1/model.safetensors")).unwrap();
    let b = std::fs::read(dir.join("comm/member-2/model.safetensors")).unwrap();
    assert_ne!(a, b, "two seeds, two models");
    let card: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("comm/member-2/model.json")).unwrap()).unwrap();
    assert_eq!(card["training"]["options"]["seed"], 2);
    // The members train side by side (one per core); each is still exactly the model its seed
    // gives when trained alone (on the same split: here a given validation file).
    for args in [["--out", "pair", "--committee", "2"], ["--out", "alone", "--seed", "2"]] {
        let (ok, out) = train_in(&dir, &[&args[..], &["--valid", "water30.extxyz", "--features", "8", "--blocks", "1", "--epochs", "1"]].concat());
        assert!(ok, "{out}");
    }
    assert!(
        std::fs::read(dir.join("alone/model.safetensors")).unwrap() == std::fs::read(dir.join("pair/member-2/model.safetensors")).unwrap(),
        "member 2 differs from the same seed trained alone"
    );
    let committee = MlPotential::load(&dir.join("comm"), &["O".into(), "H".into()]).unwrap();
    assert_eq!(committee.committee_size(), 2);
    // Where one model is expected (mdrun eval), the folder stands for its first member.
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["eval", "comm", "water30.extxyz", "--json"]).current_dir(&dir).output().unwrap();
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
}

#[test]
fn init_continues_training_from_the_starting_models() {
    let dir = scratch_with_water30("committee-init");
    let train = |args: &[&str]| train_in(&dir, args);
    let card = |folder: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(dir.join(folder).join("model.json")).unwrap()).unwrap() };
    let (ok, out) = train(&["--out", "start", "--committee", "2", "--features", "8", "--blocks", "1", "--epochs", "3"]);
    assert!(ok, "{out}");
    // With a vanishing step the first epoch validates each member exactly where its starting
    // member ended (the same split, the same weights), far from a fresh model's first epoch.
    let (ok, out) = train(&["--out", "tuned", "--init", "start", "--committee", "2", "--epochs", "1", "--learning-rate", "1e-12"]);
    assert!(ok, "{out}");
    for member in ["member-1", "member-2"] {
        let before = card(&format!("start/{member}"));
        let after = card(&format!("tuned/{member}"));
        let best = before["training"]["best_epoch"].as_u64().unwrap() as usize;
        let ended = before["training"]["history"][best - 1]["valid_loss"].as_f64().unwrap();
        let began = after["training"]["history"][0]["valid_loss"].as_f64().unwrap();
        assert!((began - ended).abs() <= 1e-6 * ended, "{member}: fine-tuning began at {began}, its start ended at {ended}");
        let fresh = before["training"]["history"][0]["valid_loss"].as_f64().unwrap();
        assert!(fresh > 1.5 * ended, "{member}: a fresh model's first epoch ({fresh}) is no worse than the trained one ({ended}): the test proves nothing");
        assert_eq!(after["config"], before["config"], "the architecture is the starting model's");
        assert_eq!(after["training"]["init"], "start");
        assert_eq!(after["normalization"]["reference_energies"], before["normalization"]["reference_energies"]);
    }
    // The starting models bring their architecture; a committee starts from a committee of its size.
    for (args, expected) in [
        (&["--out", "bad", "--init", "start", "--committee", "2", "--features", "16"][..], "--features with --init"),
        (&["--out", "bad", "--init", "start"][..], "give --committee 2"),
        (&["--out", "bad", "--init", "start/member-1", "--committee", "2"][..], "one model cannot start a committee of 2"),
    ] {
        let (ok, out) = train(args);
        assert!(!ok && out.contains(expected), "{args:?}: {out}");
    }
}
