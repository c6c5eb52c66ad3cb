//! The README's examples run end to end through the real binary, and the LAMMPS benchmark
//! system starts where LAMMPS starts.

mod common;

use mdrun::plan::Plan;
use mdrun::run::{RunOptions, run};
use mdrun::units::NKTV2P;
use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_quickstart_runs_water_with_the_shipped_model_and_analyses_it() {
    let out = std::env::temp_dir().join(format!("mdrun-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .arg(repo("systems/quickstart/system.toml"))
        .args(["--steps", "1000", "--output-dir"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "mdrun failed:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("force split: graph"), "no time split:\n{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("out/analysis/summary.json")).unwrap()).unwrap();
    // The molecules stay whole: the O-H g(r) peaks at the covalent bond (GFN2-xTB: ~0.98 Å)
    // with two hydrogens per oxygen.
    let oh = &summary["rdf"]["O-H"];
    let peak = oh["first_peak_a"].as_f64().unwrap();
    let coordination = oh["coordination"].as_f64().unwrap();
    println!("quickstart, 0.5 ps: O-H peak at {peak:.3} Å, {coordination:.3} H per O");
    assert!((0.93..1.03).contains(&peak), "O-H peak at {peak} Å");
    assert!((coordination - 2.0).abs() < 0.05, "{coordination} H per O");
    assert!(summary["diffusion_a2_per_ps"]["O"]["value"].as_f64().unwrap() > 0.0);
    let rows = common::thermo_rows(&out.join("out/thermo.log"));
    let t = rows.iter().skip(1).map(|r| r[2]).sum::<f64>() / (rows.len() - 1) as f64;
    assert!((200.0..450.0).contains(&t), "Langevin at 300 K gave {t} K");
}

#[test]
fn the_main_example_runs_end_to_end() {
    let out = std::env::temp_dir().join(format!("mdrun-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let summary = out.join("summary.json");
    let status = Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .arg(repo("systems/argon/system.toml"))
        .args(["--steps", "1000", "--threads", "2", "--output-dir"])
        .arg(&out)
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "mdrun failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("Step") && stdout.contains("TotEng(eV)"),
        "no thermo table:\n{stdout}"
    );
    assert!(
        stdout.contains("Run summary: 1000 steps of 864 atoms"),
        "{stdout}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    for key in [
        "steps",
        "wall_s",
        "atom_steps_per_s",
        "ns_per_day",
        "mean_temperature_k",
        "energy_drift_ev_per_atom_per_ps",
        "final_potential_energy_ev",
    ] {
        assert!(json.get(key).is_some(), "summary lacks {key}");
    }
    assert_eq!(json["steps"], 1000);
    let t = json["mean_temperature_k"].as_f64().unwrap();
    assert!((80.0..110.0).contains(&t), "liquid argon at {t} K?");
    let drift = json["energy_drift_ev_per_atom_per_ps"].as_f64().unwrap();
    assert!(drift.abs() < 1e-5, "NVE drift {drift} eV/atom/ps");

    // Thermo log with every thermo step, a trajectory with every frame, a final checkpoint.
    let log = std::fs::read_to_string(out.join("out/thermo.log")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| !l.starts_with('#') && !l.trim_start().starts_with("Step"))
            .count(),
        3,
        "{log}"
    );
    let traj = mdrun::io::structure::read(&out.join("out/trajectory.xyz"), "", 0).unwrap();
    assert_eq!(traj.positions.len(), 864);
    let checkpoint = mdrun::io::checkpoint::Checkpoint::read(&out.join("out/final.chk")).unwrap();
    assert_eq!(checkpoint.step, 1000);
}

#[test]
fn the_lammps_benchmark_system_starts_where_lammps_starts() {
    // LAMMPS's step-0 row for bench/in.lj, recorded by benches/lammps/make_fixtures.sh.
    let fixture = std::fs::read_to_string(repo("tests/fixtures/lammps_in_lj.txt")).unwrap();
    let row = common::row_at_step(&fixture, "0");
    let (temp, epair, etotal, press) = (row[1], row[2], row[4], row[5]);

    let plan = Plan::from_file(
        &repo("systems/lj-bench/system.toml"),
        Some(&std::env::temp_dir().join(format!("mdrun-ljb-{}", std::process::id()))),
    )
    .unwrap();
    assert_eq!(plan.system.len(), 32_000);
    let summary = run(
        &plan,
        &RunOptions {
            steps: Some(0),
            quiet: true,
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let n = 32_000.0;
    let kb = mdrun::units::BOLTZ;
    // sigma = 1 Å and epsilon = 1 eV: reduced energies are eV per atom, reduced pressure eV/Å³.
    let ours_epair = summary.final_potential_energy_ev / n;
    let ours_etotal = summary.final_total_energy_ev / n;
    let ours_temp = summary.mean_temperature_k * kb;
    let rel = |a: f64, b: f64| ((a - b) / b).abs();
    println!(
        "E_pair {ours_epair:.8} vs LAMMPS {epair}; TotEng {ours_etotal:.8} vs {etotal}; T* {ours_temp:.8} vs {temp}"
    );
    assert!(rel(ours_epair, epair) < 1e-7, "E_pair");
    assert!(rel(ours_etotal, etotal) < 1e-7, "TotEng");
    assert!(rel(ours_temp, temp) < 1e-7, "temperature");

    let log = std::fs::read_to_string(plan.log).unwrap();
    let row0 = common::row_at_step(&log, "0");
    let ours_press = row0[6] / NKTV2P;
    println!("Press {ours_press:.8} vs LAMMPS {press}");
    assert!(
        rel(ours_press, press) < 1e-6,
        "pressure {ours_press} vs {press}"
    );
}

#[test]
fn every_example_runs_its_first_steps() {
    // Each systems/*/system.toml reads (structure files, models, every key) and runs 20 steps:
    // an example that no longer matches the code or the shipped models fails here.
    let mut examples: Vec<_> = std::fs::read_dir(repo("systems")).unwrap().map(|e| e.unwrap().path().join("system.toml")).filter(|p| p.exists()).collect();
    examples.sort();
    assert!(examples.len() >= 5, "{examples:?}");
    for path in examples {
        let out = std::env::temp_dir().join(format!("mdrun-example-{}-{}", std::process::id(), path.parent().unwrap().file_name().unwrap().to_string_lossy()));
        let plan = Plan::from_file(&path, Some(&out)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let summary = run(&plan, &RunOptions { steps: Some(20), threads: Some(1), quiet: true, platform: Some(mdrun::plan::Platform::Cpu), ..Default::default() })
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(summary.steps, 20, "{}", path.display());
        assert!(summary.final_potential_energy_ev.is_finite(), "{}", path.display());
        println!("{}: {} atoms, 20 steps in {:.3} s", path.display(), plan.system.len(), summary.wall_s);
    }
}
