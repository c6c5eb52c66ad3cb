//! `mdrun learn` end to end on a system whose reference is cheap: argon under Lennard-Jones
//! (`mdrun label` is the "reference calculation"). The initial data is a cold crystal (20 K);
//! the target is the crystal at 80 K, a hole in that data. The loop must find the hole (the
//! committee's deviation above `candidate`, frames the model gets wrong), label it, and end
//! with a model that describes the 80 K crystal, checked on fresh 80 K frames it never saw.

mod common;

use common::scratch;
use std::path::Path;
use std::process::Command;

const MDRUN: &str = env!("CARGO_BIN_EXE_mdrun");

/// Argon fcc 2x2x2 under Lennard-Jones (4.5 Å, shifted), Langevin at `temperature`.
fn argon(temperature: &str, seed: u32, steps: u64, trajectory: &str) -> String {
    format!(
        r#"
[structure]
lattice = "fcc"
lattice_constant = "5.26 A"
repeat = [2, 2, 2]
element = "Ar"
[velocities]
source = "maxwell-boltzmann"
temperature = "{temperature}"
seed = {seed}
[potential]
type = "lj"
cutoff = "4.5 A"
shift = true
[potential.species.Ar]
epsilon = "0.0104 eV"
sigma = "3.4 A"
[integrator]
type = "langevin"
timestep = "5 fs"
temperature = "{temperature}"
damping = "0.5 ps"
seed = {seed}
[run]
steps = {steps}
[output]
thermo = 20
log = "md-{seed}/thermo.log"
checkpoint = "md-{seed}/final.chk"
{trajectory}
"#
    )
}

fn mdrun(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(MDRUN).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mdrun {args:?}: {text}");
    text
}

/// Labelled frames of an MD run of `toml` (every 50 steps).
fn labelled_frames(dir: &Path, name: &str, temperature: &str, seed: u32) {
    let trajectory = format!("[[output.trajectory]]\npath = \"{name}.xyz\"\ninterval = 50");
    std::fs::write(dir.join(format!("{name}.toml")), argon(temperature, seed, 2000, &trajectory)).unwrap();
    mdrun(dir, &["-q", &format!("{name}.toml")]);
    mdrun(dir, &["label", "reference.toml", &format!("{name}.xyz"), &format!("{name}.extxyz")]);
}

fn force_mae(dir: &Path, model: &str, data: &str) -> f64 {
    let json = mdrun(dir, &["eval", model, data, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json[json.find('{').unwrap()..]).unwrap();
    json["force_mae_ev_per_a"].as_f64().unwrap()
}

#[test]
fn the_loop_finds_a_hole_in_its_data_labels_it_and_ends_with_a_model_that_fills_it() {
    let dir = scratch("learn-argon");
    std::fs::write(dir.join("reference.toml"), argon("20 K", 1, 0, "")).unwrap();
    labelled_frames(&dir, "cold", "20 K", 1);
    labelled_frames(&dir, "hot-check", "80 K", 9);
    std::fs::write(dir.join("md.toml"), argon("80 K", 2, 1000, "")).unwrap();
    let learn = format!(
        r#"
data = "cold.extxyz"
out = "learn"
label = "{MDRUN} label reference.toml {{input}} {{output}}"
rounds = 4
committee = 3
frames_per_round = 10
candidate = "0.015 eV/A"
stop = "0.5 eV/A"
[train]
features = 16
blocks = 1
cutoff = 4.5
epochs = 150
patience = 40
energy_weight = 10
batch_size = 8
[[system]]
input = "md.toml"
"#
    );
    std::fs::write(dir.join("learn.toml"), learn).unwrap();
    let text = mdrun(&dir, &["learn", "learn.toml"]);
    let records: Vec<serde_json::Value> = (1..=4)
        .map_while(|k| std::fs::read_to_string(dir.join(format!("learn/round-{k}/round.json"))).ok())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect();
    // Round 1 finds the hole: the committee is unsure, and rightly: its first member is far
    // worse on the frames it picked than on its own validation frames.
    let first = &records[0];
    let labelled = first["labelled"].as_u64().unwrap();
    let their_error = first["labelled_force_mae"].as_f64().unwrap();
    let valid_error = first["valid_force_mae"].as_f64().unwrap();
    assert!(labelled > 0 && first["systems"][0]["max_deviation"].as_f64().unwrap() >= 0.015, "{text}");
    assert!(their_error > 5.0 * valid_error, "the picked frames: {their_error} eV/Å, validation {valid_error} eV/Å\n{text}");
    // The loop ends by finding nothing more to label.
    let last = records.last().unwrap();
    assert!(records.len() >= 2 && last["labelled"] == 0 && text.contains("converged in round"), "{text}");
    assert!(last["systems"][0]["max_deviation"].as_f64().unwrap() < 0.015);
    // And the hole is filled: on fresh 80 K frames the final committee's first member is
    // several times better than round 1's.
    let round = last["round"].as_u64().unwrap();
    let before = force_mae(&dir, "learn/round-1/model", "hot-check.extxyz");
    let after = force_mae(&dir, &format!("learn/round-{round}/model"), "hot-check.extxyz");
    assert!(after < 0.4 * before, "80 K frames: round 1 {before} eV/Å, round {round} {after} eV/Å");
    let table = std::fs::read_to_string(dir.join("learn/rounds.tsv")).unwrap();
    assert_eq!(table.lines().count(), records.len() + 1, "{table}");

    // Run again: every round is on disk, so nothing is trained or run again.
    let model = dir.join("learn/round-1/model/member-1/model.safetensors");
    let written = std::fs::metadata(&model).unwrap().modified().unwrap();
    let again = mdrun(&dir, &["learn", "learn.toml"]);
    assert!(again.contains(&format!("converged in round {round}")) && !again.contains("epoch"), "{again}");
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), written);
}

#[test]
fn a_failing_labeller_and_bad_settings_are_reported_with_what_to_fix() {
    let dir = scratch("learn-bad");
    std::fs::write(dir.join("reference.toml"), argon("20 K", 1, 0, "")).unwrap();
    labelled_frames(&dir, "cold", "20 K", 1);
    std::fs::write(dir.join("md.toml"), argon("300 K", 2, 200, "")).unwrap();
    // `keys` are the top-level keys besides data and out.
    let learn_toml = |keys: &str| format!("data = \"cold.extxyz\"\nout = \"learn\"\n{keys}\n[train]\nfeatures = 8\nblocks = 1\ncutoff = 4.5\nepochs = 2\n[[system]]\ninput = \"md.toml\"\n");
    let label = "label = \"x {input} {output}\"";
    for (keys, expected) in [
        ("label = \"true {input}\"".to_string(), "must contain {input} and {output}"),
        (format!("{label}\ncandidate = \"0.1 eV/A\"\nstop = \"0.01 eV/A\""), "is not below stop"),
        (format!("{label}\ncandidate = \"1 K\""), "a force"),
        (format!("{label}\nrounds = 0"), "rounds"),
        (format!("{label}\nroundz = 2"), "roundz"),
        (format!("{label}\ncommittee = 1"), "at least 2 members"),
    ] {
        std::fs::write(dir.join("learn.toml"), learn_toml(&keys)).unwrap();
        let out = Command::new(MDRUN).args(["learn", "learn.toml"]).current_dir(&dir).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expected) && err.contains("learn.toml"), "{expected}: {err}");
    }
    // A labeller that fails: the error names the round, the command and its last words.
    let failing = "label = \"echo no reference here >&2; exit 3 # {input} {output}\"\nrounds = 1\ncommittee = 2\ncandidate = \"0.001 eV/A\"";
    std::fs::write(dir.join("learn.toml"), learn_toml(failing)).unwrap();
    let out = Command::new(MDRUN).args(["learn", "learn.toml"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("round 1") && err.contains("exit status: 3") && err.contains("no reference here"), "{err}");
}

/// Stress labels: `mdrun label` writes the reference's stress (ASE's sign) and `mdrun train`
/// fits it. Argon at three densities (compressed to stretched) is the data, two densities
/// between them, never seen, the check:
/// - a model trained on energies and forces alone already predicts the labels' stresses (a
///   Lennard-Jones fluid's pressure follows from them): so the labels have the sign and units of
///   the model's virial, -dE/dε (tests/ml_forces.rs proves that by finite differences);
/// - a model trained on the stresses alone (no energy, no force) learns them: the loss term
///   and its gradient through the virial work.
#[test]
fn stresses_are_labelled_with_their_sign_and_learned() {
    let dir = scratch("learn-stress");
    std::fs::write(dir.join("reference.toml"), argon("40 K", 1, 0, "")).unwrap();
    let frames = |name: &str, lattice: &str, seed: u32| {
        let trajectory = format!("[[output.trajectory]]\npath = \"{name}.xyz\"\ninterval = 50");
        let toml = argon("40 K", seed, 1000, &trajectory).replace("5.26 A", lattice);
        std::fs::write(dir.join(format!("{name}.toml")), toml).unwrap();
        mdrun(&dir, &["-q", &format!("{name}.toml")]);
        mdrun(&dir, &["label", "reference.toml", &format!("{name}.xyz"), &format!("{name}.extxyz")]);
        std::fs::read_to_string(dir.join(format!("{name}.extxyz"))).unwrap()
    };
    let train: String = [("a", "5.05 A", 1), ("b", "5.26 A", 2), ("c", "5.5 A", 3)].iter().map(|(n, l, s)| frames(n, l, *s)).collect();
    let valid: String = [("d", "5.15 A", 4), ("e", "5.38 A", 5)].iter().map(|(n, l, s)| frames(n, l, *s)).collect();
    std::fs::write(dir.join("train.extxyz"), &train).unwrap();
    std::fs::write(dir.join("valid.extxyz"), &valid).unwrap();

    // The labels' pressures, -tr σ / 3 (GPa), spread over the densities.
    let pressures: Vec<f64> = valid
        .lines()
        .filter_map(|l| l.split("stress=\"").nth(1))
        .map(|s| {
            let v: Vec<f64> = s.split('"').next().unwrap().split_whitespace().map(|w| w.parse().unwrap()).collect();
            -(v[0] + v[4] + v[8]) / 3.0 * 160.2176634
        })
        .collect();
    assert_eq!(pressures.len(), 42, "every periodic frame (21 a run) carries a stress");
    let mean = pressures.iter().sum::<f64>() / pressures.len() as f64;
    let spread = (pressures.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / pressures.len() as f64).sqrt();
    assert!(spread > 0.1, "the densities give pressures {pressures:?} GPa");

    let stress_mae = |name: &str, weights: &[&str]| {
        let mut args = vec!["train", "--train", "train.extxyz", "--valid", "valid.extxyz", "--out", name, "--features", "16", "--blocks", "1", "--cutoff", "4.5", "--epochs", "60", "--seed", "3"];
        args.extend(weights);
        let text = mdrun(&dir, &args);
        let json = mdrun(&dir, &["eval", name, "valid.extxyz", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&json[json.find('{').unwrap()..]).unwrap();
        (json["stress_mae_gpa"].as_f64().unwrap(), text)
    };
    let (from_energies, _) = stress_mae("energies-forces", &["--energy-weight", "10", "--stress-weight", "0"]);
    assert!(from_energies < 0.05 * spread, "trained on energies and forces: stress MAE {from_energies} GPa; the labels' pressures spread {spread} GPa about {mean} GPa");
    let (from_stresses, text) = stress_mae("stresses", &["--energy-weight", "0", "--force-weight", "0", "--stress-weight", "10"]);
    assert!(text.contains("S MAE GPa"), "{text}");
    assert!(from_stresses < 0.1 * spread, "trained on stresses alone: stress MAE {from_stresses} GPa; the labels' pressures spread {spread} GPa\n{text}");
}
