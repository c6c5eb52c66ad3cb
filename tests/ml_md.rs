//! MD with the shipped machine-learned potential: the example runs, conserves energy in NVE,
//! and a structure with an element the model never saw is refused at the model line.

mod common;

use mdrun::plan::Plan;
use mdrun::run::{RunOptions, run};
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn nve_with_the_shipped_model_conserves_energy() {
    let out = std::env::temp_dir().join(format!("mdrun-ml-md-{}", std::process::id()));
    let plan = Plan::from_file(&repo("systems/chain/system.toml"), Some(&out)).unwrap();
    let summary = run(
        &plan,
        &RunOptions {
            steps: Some(1000),
            threads: Some(1),
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rows = common::thermo_rows(&out.join("out/thermo.log"));
    let energies: Vec<f64> = rows.iter().map(|r| r[5]).collect();
    let kinetic: Vec<f64> = rows.iter().map(|r| r[4]).collect();
    let e0 = energies[0];
    let max_dev = energies.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max);
    let mean_ke = kinetic.iter().sum::<f64>() / kinetic.len() as f64;
    let drift = summary.energy_drift_ev_per_atom_per_ps.unwrap();
    println!(
        "13-atom C10H3+, 1000 steps of 0.25 fs: total energy within {max_dev:.2e} eV of the start (mean kinetic energy {mean_ke:.3} eV), drift {drift:.2e} eV/atom/ps"
    );
    // Velocity Verlet at 0.25 fs on C-H vibrations keeps the total energy within a small
    // fraction of the kinetic energy; a wrong force (not -dE/dx) would drift by far more.
    assert!(
        max_dev < 0.01 * mean_ke,
        "total energy wanders by {max_dev} eV against a kinetic energy of {mean_ke} eV"
    );
    assert!(drift.abs() < 1e-3, "drift {drift} eV/atom/ps");
}

#[test]
fn an_element_the_model_never_saw_is_refused() {
    let dir = std::env::temp_dir().join(format!("mdrun-ml-species-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("nh3.xyz"),
        "4\n\nN 0 0 0\nH 1 0 0\nH 0 1 0\nH 0 0 1\n",
    )
    .unwrap();
    let model = repo("potentials/chain-schnet-mcgm");
    let toml = format!(
        "[structure]\nfile = \"nh3.xyz\"\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.5 fs\"\n[run]\nsteps = 1\n",
        model.display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let err = Plan::from_file(&dir.join("system.toml"), None)
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(
        err.contains("system.toml:5")
            && err.contains("[potential] model")
            && err.contains("knows H, C")
            && err.contains("'N'"),
        "{err}"
    );
}

#[test]
fn atoms_closer_than_the_training_data_draw_a_warning_with_their_ids() {
    let dir = std::env::temp_dir().join(format!("mdrun-ml-close-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The chain's first hydrogen pushed to 0.55 Å from its carbon (xTB data: C-H >= ~0.9 Å).
    let xyz = std::fs::read_to_string(repo("systems/chain/c10h3.xyz")).unwrap();
    let mut lines: Vec<String> = xyz.lines().map(String::from).collect();
    let atom = |l: &str| -> Vec<f64> { l.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect() };
    let (h, c) = (atom(&lines[2]), atom(&lines[3]));
    let d: f64 = h.iter().zip(&c).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let moved: Vec<f64> = (0..3).map(|k| c[k] + (h[k] - c[k]) * 0.55 / d).collect();
    lines[2] = format!("H {} {} {}", moved[0], moved[1], moved[2]);
    std::fs::write(dir.join("close.xyz"), lines.join("\n") + "\n").unwrap();
    let toml = format!(
        "[structure]\nfile = \"close.xyz\"\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.1 fs\"\n[run]\nsteps = 2\n",
        repo("potentials/chain-schnet-mcgm").display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).arg(dir.join("system.toml")).arg("-q").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: outside the model's training data: atoms 1 and 2 at 0.550 Å"), "{stderr}");
}

#[test]
fn nve_drift_of_the_backbones_and_of_mcgm_soft_and_hard() {
    // 24 atoms, 1 ps each: 4000 steps of 0.25 fs. The PaiNN model's surface is stiffer where
    // these runs go (they heat to ~500 K): at 0.25 fs velocity Verlet loses 1.1e-4 eV/atom/ps
    // with it, at 0.125 fs 2e-6 to 2e-5 depending on the trajectory, so it runs at 0.125 fs
    // (the error scales with dt²; the forces are the exact gradient either way).
    let mut results = Vec::new();
    for (model, steps, dt) in [("water-schnet", 4000, 0.25), ("water-schnet-mcgm-soft", 4000, 0.25), ("water-schnet-mcgm-hard", 4000, 0.25), ("water-painn", 8000, 0.125)] {
        let run = common::WaterNve::run(env!("CARGO_BIN_EXE_mdrun"), model, None, steps, dt, None);
        let ((max_dev, mean_ke), drift) = (run.deviation_and_kinetic(), run.drift);
        let regrouped = run.stdout.lines().find(|l| l.contains("regrouped")).map(|l| l.trim().to_string());
        println!(
            "{model} (dt {dt} fs): drift {drift:+.2e} eV/atom/ps, largest |E - E0| {max_dev:.2e} eV (mean kinetic energy {mean_ke:.3} eV){}",
            regrouped.as_ref().map(|l| format!("; {l}")).unwrap_or_default()
        );
        results.push((model, drift, max_dev, mean_ke, regrouped));
    }
    for (model, drift, max_dev, mean_ke, regrouped) in &results {
        // Velocity Verlet at 0.25 fs keeps a smooth potential's energy within a small fraction
        // of the kinetic energy with no systematic drift; f32 forces add only noise.
        assert!(*max_dev < 0.02 * mean_ke, "{model}: energy wanders by {max_dev} eV against {mean_ke} eV kinetic");
        assert!(drift.abs() < 5e-5, "{model}: drift {drift} eV/atom/ps");
        if model.ends_with("hard") {
            // Water has two elements: level 1 makes two clusters (H, O) and every level above
            // max(1, 2 / 2) = 1, so the hard hierarchy cannot regroup and the energy stays smooth.
            // With 2r or more elements K-means would regroup and the energy would jump.
            assert_eq!(regrouped.as_deref(), Some("MCGM hard clustering regrouped the atoms at 0 of 4001 evaluations (each is a jump in the energy)"));
        }
    }
}
