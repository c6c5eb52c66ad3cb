//! Bad input gets an error that names the file, the line or key, and what was expected; a run
//! that blows up stops with the step and the atoms, after saving its last good state.

use mdrun::io::checkpoint::Checkpoint;
use mdrun::plan::Plan;
use mdrun::run::{RunOptions, run};
use std::path::{Path, PathBuf};

const GOOD: &str = r#"[structure]
file = "two.xyz"

[potential]
type = "lj"
cutoff = "8.5 A"
[potential.species.Ar]
epsilon = "0.0103 eV"
sigma = "3.405 A"

[integrator]
type = "verlet"
timestep = "2 fs"

[run]
steps = 10
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdrun-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("two.xyz"), "2\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 1 1 1\nAr 4.5 1 1\n").unwrap();
    dir
}

/// The plan's error for `toml` (written as system.toml in a fresh folder).
fn plan_error(name: &str, toml: &str) -> (String, PathBuf) {
    let dir = scratch(name);
    let path = dir.join("system.toml");
    std::fs::write(&path, toml).unwrap();
    match Plan::from_file(&path, None) {
        Ok(_) => panic!("{name}: the input was accepted"),
        Err(e) => (e.to_string(), path),
    }
}

fn assert_mentions(name: &str, message: &str, parts: &[&str]) {
    println!("{name}: {message}");
    for part in parts {
        assert!(
            message.contains(part),
            "{name}: the message does not mention {part:?}:\n{message}"
        );
    }
}

#[test]
fn the_good_input_is_accepted() {
    let dir = scratch("good");
    std::fs::write(dir.join("system.toml"), GOOD).unwrap();
    let plan = Plan::from_file(&dir.join("system.toml"), None).unwrap();
    assert_eq!(plan.system.len(), 2);
    assert_eq!(plan.timestep, 0.002);
}

#[test]
fn malformed_toml_names_the_line() {
    let (msg, path) = plan_error("malformed", &GOOD.replace("[integrator]", "[integrator"));
    assert_mentions("malformed", &msg, &[&path.display().to_string(), ":11"]);
}

#[test]
fn unknown_keys_are_errors() {
    let (msg, _) = plan_error("unknown", &GOOD.replace("timestep = ", "tmestep = "));
    assert_mentions(
        "unknown key",
        &msg,
        &["system.toml:13", "unknown field `tmestep`", "timestep"],
    );
    let (msg, _) = plan_error("unknown-table", &format!("{GOOD}\n[thermostat]\nt = 1\n"));
    assert_mentions(
        "unknown table",
        &msg,
        &["system.toml:18", "unknown field `thermostat`"],
    );
}

#[test]
fn missing_or_unreadable_structure_files_are_named() {
    let (msg, _) = plan_error("missing", &GOOD.replace("two.xyz", "nowhere.xyz"));
    assert_mentions(
        "missing file",
        &msg,
        &[
            "system.toml:2",
            "[structure] file",
            "nowhere.xyz",
            "No such file",
        ],
    );
    let dir = scratch("garbage");
    std::fs::write(dir.join("garbage.xyz"), "this is not\nan xyz file\n").unwrap();
    std::fs::write(
        dir.join("system.toml"),
        GOOD.replace("two.xyz", "garbage.xyz"),
    )
    .unwrap();
    let msg = Plan::from_file(&dir.join("system.toml"), None)
        .unwrap_err()
        .to_string();
    assert_mentions(
        "garbage file",
        &msg,
        &[
            "[structure] file",
            "garbage.xyz",
            "chemfiles could not read it",
        ],
    );
}

#[test]
fn unknown_elements_ask_for_a_mass() {
    let dir = scratch("element");
    std::fs::write(dir.join("two.xyz"), "2\n\nAr 1 1 1\nQq 4.5 1 1\n").unwrap();
    std::fs::write(dir.join("system.toml"), GOOD).unwrap();
    let msg = Plan::from_file(&dir.join("system.toml"), None)
        .unwrap_err()
        .to_string();
    assert_mentions(
        "unknown element",
        &msg,
        &["[masses]", "atom 2", "'Qq'", "not an element symbol"],
    );
}

#[test]
fn values_are_checked_with_their_key_and_line() {
    let cases: [(&str, String, &[&str]); 8] = [
        (
            "unknown platform",
            GOOD.replace("steps = 10", "steps = 10\nplatform = \"tpu\""),
            &[
                "system.toml:17",
                "[run] platform",
                "unknown platform 'tpu'",
                "\"gpu\"",
            ],
        ),
        (
            "zero timestep",
            GOOD.replace("\"2 fs\"", "\"0 fs\""),
            &[
                "system.toml:13",
                "[integrator] timestep",
                "must be positive",
            ],
        ),
        (
            "negative timestep",
            GOOD.replace("\"2 fs\"", "-1.0"),
            &[
                "system.toml:13",
                "[integrator] timestep",
                "must be positive",
            ],
        ),
        (
            "wrong dimension",
            GOOD.replace("\"2 fs\"", "\"2 A\""),
            &[
                "[integrator] timestep",
                "'A' is a length, but a time was expected",
            ],
        ),
        (
            "unknown unit",
            GOOD.replace("\"8.5 A\"", "\"8.5 furlongs\""),
            &[
                "system.toml:6",
                "[potential] cutoff",
                "unknown unit 'furlongs'",
            ],
        ),
        (
            "langevin without seed",
            GOOD.replace(
                "type = \"verlet\"",
                "type = \"langevin\"\ntemperature = \"300 K\"\ndamping = \"1 ps\"",
            ),
            &["[integrator] seed", "required for type = \"langevin\""],
        ),
        (
            "unknown integrator",
            GOOD.replace("\"verlet\"", "\"leapfrog\""),
            &[
                "system.toml:12",
                "unknown integrator 'leapfrog'",
                "\"langevin\"",
            ],
        ),
        (
            "missing LJ parameters",
            GOOD.replace("[potential.species.Ar]", "[potential.species.Kr]"),
            &[
                "[potential]",
                "no Lennard-Jones parameters for the pair Ar-Ar",
            ],
        ),
    ];
    for (name, toml, parts) in cases {
        let (msg, _) = plan_error(name, &toml);
        assert_mentions(name, &msg, parts);
    }
    let (msg, _) = plan_error(
        "tail on open boundaries",
        &GOOD
            .replace("file = \"two.xyz\"", "file = \"two.xyz\"\npbc = false")
            .replace("cutoff = \"8.5 A\"", "cutoff = \"8.5 A\"\ntail = true"),
    );
    assert_mentions(
        "tail on open boundaries",
        &msg,
        &["[potential] tail", "periodic on all three axes"],
    );
}

fn run_error(name: &str, xyz: &str, toml: &str) -> (String, PathBuf) {
    let dir = scratch(name);
    std::fs::write(dir.join("two.xyz"), xyz).unwrap();
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let plan = Plan::from_file(&dir.join("system.toml"), None).unwrap();
    let err = run(
        &plan,
        &RunOptions {
            quiet: true,
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap_err();
    (err.to_string(), dir)
}

#[test]
fn atoms_on_top_of_each_other_are_refused() {
    let (msg, _) = run_error(
        "overlap",
        "3\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 1 1 1\nAr 5 5 5\nAr 1.00001 1 1\n",
        GOOD,
    );
    assert_mentions(
        "overlap",
        &msg,
        &[
            "two.xyz",
            "atoms 1 (Ar) and 3 (Ar)",
            "0.0000 Å apart",
            "on top of each other",
        ],
    );
}

#[test]
fn a_cutoff_spanning_too_many_images_is_refused() {
    let (msg, _) = run_error(
        "images",
        "1\nLattice=\"0.5 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 0.1 1 1\n",
        GOOD,
    );
    assert_mentions(
        "cutoff vs cell",
        &msg,
        &[
            "two.xyz",
            "spans",
            "periodic images",
            "axis 0",
            "reduce the cutoff",
        ],
    );
}

#[test]
fn a_blow_up_stops_with_the_atoms_and_saves_the_last_good_state() {
    // Two argon atoms flying at each other at 50 km/s: a huge force within a few steps.
    let xyz = "2\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3:velo:R:3\nAr 1 1 1 500 0 0\nAr 7 1 1 -500 0 0\n";
    let toml = GOOD
        .replace("steps = 10", "steps = 1000")
        .replace("\"2 fs\"", "\"0.5 fs\"")
        .replace("[output]", "")
        + "\n[output]\ncheckpoint = \"out/state.chk\"\n";
    let (msg, dir) = run_error("blowup", xyz, &toml);
    assert_mentions(
        "blow-up",
        &msg,
        &[
            "unusable forces",
            "atom 1 (Ar",
            "atom 2 (Ar",
            "[run] max_force",
            "closest pair: atoms 1 and 2",
            "last good state",
            "state.last-good.chk",
        ],
    );
    let step: u64 = msg
        .split("step ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let saved = Checkpoint::read(&Path::new(&dir).join("out/state.last-good.chk")).unwrap();
    assert_eq!(
        saved.step,
        step - 1,
        "the saved state is the step before the blow-up"
    );
    assert!(
        saved
            .system
            .positions
            .iter()
            .flatten()
            .all(|x| x.is_finite())
    );
    assert!(
        !dir.join("out/state.chk").exists(),
        "no final checkpoint is presented for a failed run"
    );
}

#[test]
fn a_bad_analysis_table_is_named() {
    let (msg, _) = plan_error("analysis-nothing", &format!("{GOOD}\n[analysis]\ninterval = 10\n"));
    assert_mentions("analysis asks for nothing", &msg, &["system.toml:18", "[analysis]", "rdf, msd and/or vacf"]);
    let (msg, _) = plan_error("analysis-species", &format!("{GOOD}\n[analysis]\ninterval = 10\nrdf = true\npairs = [\"Ar-Kr\"]\n"));
    assert_mentions("analysis species", &msg, &["[analysis]", "species 'Kr' is not in the system (it has Ar)"]);
    let (msg, _) = plan_error("analysis-pair", &format!("{GOOD}\n[analysis]\ninterval = 10\nrdf = true\npairs = [\"ArAr\"]\n"));
    assert_mentions("analysis pair", &msg, &["system.toml:21", "[analysis] pairs", "joined by '-'"]);
    let (msg, _) = plan_error("analysis-interval", &format!("{GOOD}\n[analysis]\ninterval = 0\nmsd = true\n"));
    assert_mentions("analysis interval", &msg, &["system.toml:19", "[analysis] interval"]);
}

/// `[potential] type = "morse"`: parameters with units (alpha an inverse length), no mixing, a
/// [[potential.pair]] for each unlike pair; each mistake is named by its key and line.
#[test]
fn morse_in_system_toml_takes_its_own_keys() {
    const MORSE: &str = r#"[structure]
file = "alloy.xyz"

[potential]
type = "morse"
cutoff = "7 A"
shift = true
[potential.species.Cu]
d0 = "0.3429 eV"
alpha = "13.588 1/nm"
r0 = "2.866 A"
[potential.species.Ni]
d0 = 0.4205
alpha = 1.4199
r0 = 2.78
[[potential.pair]]
species = ["Ni", "Cu"]
d0 = 0.38
alpha = "1.39 1/A"
r0 = 2.82
cutoff = "6.5 A"

[integrator]
type = "verlet"
timestep = "2 fs"

[run]
steps = 10
"#;
    let write = |name: &str, toml: &str| {
        let dir = scratch(name);
        std::fs::write(dir.join("alloy.xyz"), "2\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nCu 1 1 1\nNi 3.5 1 1\n").unwrap();
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        Plan::from_file(&dir.join("system.toml"), None)
    };
    let plan = write("morse-good", MORSE).unwrap();
    let mdrun::plan::PotentialSpec::Pair(spec) = &plan.potential else { panic!("not a pair potential") };
    assert_eq!(spec.style.lammps, "morse");
    assert!(spec.shift && !spec.tail);
    let cu = spec.pair(0, 0);
    assert!((cu.values[1] - 1.3588).abs() < 1e-12 && cu.cutoff == 7.0, "{cu:?}");
    assert_eq!(spec.pair(0, 1), spec.pair(1, 0));
    assert_eq!(spec.pair(0, 1).values[..3], [0.38, 1.39, 2.82]);
    assert_eq!(spec.pair(0, 1).cutoff, 6.5);

    let cases: Vec<(&str, String, &[&str])> = vec![
        ("alpha as a length", MORSE.replace("\"13.588 1/nm\"", "\"1.3 A\""), &["system.toml:10", "[potential.species.Cu] alpha", "'A' is a length, but an inverse length was expected"]),
        ("no unlike pair", MORSE.replace("[[potential.pair]]\nspecies = [\"Ni\", \"Cu\"]\nd0 = 0.38\nalpha = \"1.39 1/A\"\nr0 = 2.82\ncutoff = \"6.5 A\"\n", ""), &["[potential]", "no Morse parameters for the pair Cu-Ni", "morse has no mixing rule", "[[potential.pair]]"]),
        ("mixing", MORSE.replace("shift = true", "shift = true\nmixing = \"geometric\""), &["system.toml:8", "[potential] mixing", "morse has no mixing rule"]),
        ("LJ key", MORSE.replace("d0 = 0.4205", "epsilon = 0.4205"), &["[potential.species.Ni] epsilon", "unknown key for morse; expected d0, alpha, r0, cutoff"]),
        ("missing r0", MORSE.replace("r0 = 2.82\n", ""), &["[[potential.pair]] Ni-Cu r0", "missing"]),
        ("negative alpha", MORSE.replace("alpha = 1.4199", "alpha = -1.4199"), &["system.toml:14", "[potential.species.Ni] alpha", "must be positive"]),
        ("tail", MORSE.replace("shift = true", "shift = true\ntail = true"), &["[potential] tail", "morse has no tail correction"]),
        ("unknown type", MORSE.replace("type = \"morse\"", "type = \"buck\""), &["[potential] type", "unknown potential 'buck'", "\"morse\""]),
    ];
    for (name, toml, parts) in cases {
        let msg = write(&name.replace(' ', "-"), &toml).map(|_| ()).expect_err(name).to_string();
        assert_mentions(name, &msg, parts);
    }
}
