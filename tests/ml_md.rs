//! MD with the shipped machine-learned potential: the example runs, conserves energy in NVE,
//! and a structure with an element the model never saw is refused at the model line.

mod common;

use mdrun::plan::{Plan, Platform};
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
fn atoms_closer_than_the_training_data_draw_a_warning_with_their_ids_then_one_summary_per_thermo_row() {
    // The first water's first hydrogen pushed to 0.6 Å from its oxygen (xTB data: O-H >= ~0.9
    // Å), in the periodic 8-water box that both platforms run.
    let xyz = std::fs::read_to_string(repo("systems/quickstart/water8.extxyz")).unwrap();
    let mut lines: Vec<String> = xyz.lines().map(String::from).collect();
    let atom = |l: &str| -> Vec<f64> { l.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect() };
    let (o, h) = (atom(&lines[2]), atom(&lines[3]));
    let d: f64 = h.iter().zip(&o).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let moved: Vec<f64> = (0..3).map(|k| o[k] + (h[k] - o[k]) * 0.6 / d).collect();
    lines[3] = format!("H {} {} {}", moved[0], moved[1], moved[2]);
    for platform in common::platforms() {
        let dir = common::scratch(&format!("ml-close-{platform:?}"));
        std::fs::write(dir.join("close.extxyz"), lines.join("\n") + "\n").unwrap();
        let toml = format!(
            "[structure]\nfile = \"close.extxyz\"\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.1 fs\"\n[run]\nsteps = 40\nplatform = \"{}\"\n[output]\nthermo = 10\n",
            repo("potentials/water-schnet-mcgm-soft").display(),
            format!("{platform:?}").to_lowercase()
        );
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).arg(dir.join("system.toml")).arg("-q").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{platform:?}: {stderr}");
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("warning: outside the model's training data: atoms 1 and 2 at 0.600 Å (H-O never closer than"), "{platform:?}: {stderr}");
        // Rate-limited: after the first, at most one line per thermo row (4 rows after the
        // first), each summing up the evaluations since the row before, with an example pair.
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: outside the model's training data")).collect();
        assert!(warnings.len() >= 2 && warnings.len() <= 5, "{platform:?}: {stderr}");
        assert!(warnings[1..].iter().all(|l| l.contains("since the last thermo row, e.g. atom")), "{platform:?}: {stderr}");
    }
}

#[test]
fn nve_drift_of_the_backbones_and_of_mcgm_soft_and_hard() {
    // 24 atoms, 1 ps each: 4000 steps of 0.25 fs. The PaiNN model's surface is stiffer where
    // these runs go (they heat to ~500 K): at 0.25 fs velocity Verlet loses 1.1e-4 eV/atom/ps
    // with it, at 0.125 fs 2e-6 to 2e-5 depending on the trajectory, so it runs at 0.125 fs
    // (the error scales with dt²; the forces are the exact gradient either way).
    let mut results = Vec::new();
    for (model, steps, dt) in [("water-schnet", 4000, 0.25), ("water-schnet-mcgm-soft", 4000, 0.25), ("water-schnet-mcgm-hard", 4000, 0.25), ("water-painn", 8000, 0.125)] {
        let run = common::ModelNve::water(env!("CARGO_BIN_EXE_mdrun"), model, None, steps, dt, None);
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

#[test]
fn hard_clustering_breaks_energy_conservation_where_soft_and_the_bare_backbone_keep_it() {
    // Acetamide (CH3CONH2) has four elements: hard level 2 is K-means of the four element means
    // into two clusters, redone from the embeddings at every step. When its partition changes the
    // energy jumps (labels are piecewise constant in the positions, so the forces miss the jump);
    // soft memberships are smooth, so the forces are the exact gradient. Same molecule, same
    // velocities, models trained alike (potentials/acetamide-*), 1 ps of NVE at 0.25 fs.
    let mut results = Vec::new();
    for model in ["acetamide-schnet", "acetamide-schnet-mcgm-soft", "acetamide-schnet-mcgm-hard"] {
        let run = common::ModelNve::run(env!("CARGO_BIN_EXE_mdrun"), "systems/acetamide/acetamide.xyz", model, None, 4000, 0.25, None);
        let ((max_dev, mean_ke), drift) = (run.deviation_and_kinetic(), run.drift);
        let regroupings: Option<u64> = run.stdout.lines().find_map(|l| l.trim().strip_prefix("MCGM hard clustering regrouped the atoms at ")?.split(' ').next()?.parse().ok());
        println!("{model}: drift {drift:+.2e} eV/atom/ps, largest |E - E0| {max_dev:.2e} eV (mean kinetic energy {mean_ke:.3} eV), hard regroupings {regroupings:?}");
        // The run says so before it starts, for the hard model only.
        let caution = "caution: with these 4 elements the model's hard K-means (4 -> 2 clusters) can regroup";
        assert_eq!(run.stderr.contains(caution), model.ends_with("hard"), "{model}: {}", run.stderr);
        results.push((model, drift, max_dev, mean_ke, regroupings));
    }
    let (smooth, hard) = results.split_at(2);
    for (model, drift, max_dev, mean_ke, regroupings) in smooth {
        assert!(*max_dev < 0.02 * mean_ke, "{model}: energy wanders by {max_dev} eV against {mean_ke} eV kinetic");
        assert!(drift.abs() < 2e-5, "{model}: drift {drift} eV/atom/ps");
        assert_eq!(*regroupings, None, "{model}: no hard levels, nothing to regroup");
    }
    let (model, drift, max_dev, _, regroupings) = hard[0];
    let smooth_dev = smooth.iter().map(|r| r.2).fold(0.0, f64::max);
    let smooth_drift = smooth.iter().map(|r| r.1.abs()).fold(0.0, f64::max);
    assert!(regroupings.is_some_and(|n| n >= 20), "{model}: K-means regrouped {regroupings:?} times");
    assert!(max_dev > 5.0 * smooth_dev, "{model}: |E - E0| up to {max_dev:.2e} eV, the smooth models' {smooth_dev:.2e}");
    assert!(drift.abs() > 10.0 * smooth_drift, "{model}: drift {drift:.2e}, the smooth models' {smooth_drift:.2e}");
}

#[test]
fn a_restarted_ml_run_reproduces_the_straight_run_bit_for_bit() {
    // Langevin (the noise stream is part of the checkpoint), 24 atoms, a restart part way
    // against the straight run, for each backbone and MCGM setting shipped for water: the graph,
    // the cluster hierarchy and the f32 sums must not depend on when the neighbour list was last
    // built. lavapipe runs the model's kernels on two CPU cores (~0.08 s a step): the GPU
    // platform runs the two hardest settings (hard MCGM, PaiNN's vectors) over fewer steps, with
    // a thin skin so that the list is rebuilt within them.
    for platform in common::platforms() {
        let (models, steps, first): (&[&str], u64, u64) = match platform {
            Platform::Gpu => (&["water-schnet-mcgm-hard", "water-painn"], 100, 43),
            _ => (&["water-schnet", "water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"], 400, 170),
        };
        for model in models {
            let label = format!("{platform:?} {model}");
            let toml = format!(
                "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 1\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.25 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = 3\n[neighbor]\nskin = \"0.1 A\"\n[run]\nsteps = {steps}\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
                repo("systems/quickstart/water8.extxyz").display(),
                repo(&format!("potentials/{model}")).display()
            );
            let (whole, split) = (common::scratch(&format!("ml-restart-whole-{platform:?}-{model}")), common::scratch(&format!("ml-restart-split-{platform:?}-{model}")));
            let options = RunOptions { quiet: true, threads: Some(2), platform: Some(platform), ..Default::default() };
            let straight = run(&common::plan_in(&whole, &toml), &options).unwrap();
            let plan = common::plan_in(&split, &toml);
            run(&plan, &RunOptions { steps: Some(first), ..options.clone() }).unwrap();
            let half = split.join("half.chk");
            std::fs::rename(split.join("final.chk"), &half).unwrap();
            let second = run(&plan, &RunOptions { restart: Some(half), ..options.clone() }).unwrap();
            assert_eq!(second.steps, steps - first);
            assert!(straight.neighbor_builds > 1, "{label}: the list was never rebuilt ({})", straight.neighbor_builds);
            let (a, b) = (std::fs::read(whole.join("final.chk")).unwrap(), std::fs::read(split.join("final.chk")).unwrap());
            assert!(a == b, "{label}: the restarted run's final state differs from the straight run's");
            // The first part reported its last step, which the straight run may not have.
            let rows = |dir: &Path| common::thermo_rows(&dir.join("thermo.log")).into_iter().filter(|r| r[0] != first as f64).collect::<Vec<_>>();
            let (la, lb) = (rows(&whole), rows(&split));
            assert_eq!(la, lb, "{label}: thermo logs differ");
            println!("{label}: {first} + {} steps restarted = {steps} straight, bit for bit ({} neighbour builds straight)", steps - first, straight.neighbor_builds);
        }
    }
}

#[test]
fn langevin_with_the_ml_potential_gives_hydrogen_and_oxygen_the_target_temperature() {
    // Equipartition under the learned forces: in NVT every degree of freedom gets kT/2 whatever
    // its mass, so the 16 hydrogens and the 8 oxygens of the water box must both sit at the
    // thermostat's temperature. A force that is not -dE/dx, or a thermostat that mishandles the
    // mass, heats one species against the other.
    use mdrun::potential::Want;
    use mdrun::simulation::Simulation;
    use mdrun::units::{BOLTZ, MVV2E};
    let dir = common::scratch("ml-langevin");
    let target = 300.0;
    let plan = common::plan_in(
        &dir,
        &format!(
            "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"{target} K\"\nseed = 2\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.25 fs\"\ntemperature = \"{target} K\"\ndamping = \"0.05 ps\"\nseed = 7\n[run]\nsteps = 0\nthreads = 1\n",
            repo("systems/quickstart/water8.extxyz").display(),
            repo("potentials/water-schnet-mcgm-soft").display()
        ),
    );
    let potential = plan.potential.instantiate(&plan.system).unwrap();
    let mut sim = Simulation::new(plan.system.clone(), potential, plan.integrator.clone(), plan.timestep, plan.skin, plan.max_force, 0, None).unwrap();
    for _ in 0..2000 {
        sim.advance(Want::FORCES).unwrap();
    }
    // Mean kinetic energy per atom of each species over 10 ps, as a temperature (3/2 kT).
    let (mut sum, mut count) = (std::collections::BTreeMap::<String, f64>::new(), std::collections::BTreeMap::<String, f64>::new());
    for step in 1..=40_000 {
        sim.advance(Want::FORCES).unwrap();
        if step % 20 == 0 {
            let s = &sim.system;
            for (i, v) in s.velocities.iter().enumerate() {
                let ke = 0.5 * s.mass(i) * MVV2E * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
                *sum.entry(s.species_name(i).to_string()).or_default() += ke;
                *count.entry(s.species_name(i).to_string()).or_default() += 1.0;
            }
        }
    }
    let temperature = |name: &str| sum[name] / count[name] / (1.5 * BOLTZ);
    let (t_h, t_o) = (temperature("H"), temperature("O"));
    println!("water, SchNet + MCGM soft, Langevin at {target} K for 10 ps: T(H) = {t_h:.1} K, T(O) = {t_o:.1} K");
    // About 200 independent samples (damping 0.05 ps): the standard error is about 1.5 % for
    // the hydrogens and 2 % for the oxygens.
    assert!((t_h / target - 1.0).abs() < 0.06, "T(H) = {t_h} K against {target} K");
    assert!((t_o / target - 1.0).abs() < 0.08, "T(O) = {t_o} K against {target} K");
    assert!((t_h / t_o - 1.0).abs() < 0.08, "T(H) = {t_h} K, T(O) = {t_o} K: not equipartitioned");
}
