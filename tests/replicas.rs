//! `[run] replicas = N`: N copies stepped together, the model evaluated for all of them in one
//! batch per step, each with its own seeds, thermostat and outputs, give the very same
//! trajectories as the same replicas run one by one.

mod common;

use mdrun::io::checkpoint::Checkpoint;
use mdrun::plan::Plan;
use mdrun::run::{RunOptions, run, run_replicas};
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn data_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.starts_with('#')).map(String::from).collect()
}

#[test]
fn batched_replicas_equal_the_replicas_run_one_by_one() {
    // Acetamide's hard model regroups its four elements as the atoms move: each replica must
    // report its own regroupings, as when run alone.
    let water = "systems/quickstart/water8.extxyz";
    for (model, structure, steps) in [("water-schnet-mcgm-soft", water, 60), ("water-schnet-mcgm-hard", water, 60), ("water-painn", water, 60), ("acetamide-schnet-mcgm-hard", "systems/acetamide/acetamide.xyz", 300)] {
        let dir = common::scratch(&format!("replicas-{model}"));
        let toml = format!(
            "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 11\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = 5\n[run]\nsteps = {steps}\nreplicas = 3\nplatform = \"cpu\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
            repo(structure).display(),
            repo(&format!("potentials/{model}")).display()
        );
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        let options = RunOptions { threads: Some(2), quiet: true, ..Default::default() };
        let batched = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("batched"))).unwrap();
        assert_eq!(batched.replicas, 3);
        let summaries = run_replicas(&batched, &options).unwrap();
        assert_eq!(summaries.len(), 3);
        let alone = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("alone"))).unwrap();
        let alone_summaries: Vec<_> = (0..3).map(|k| run(&alone.replica(k), &options).unwrap()).collect();
        for (k, (a, b)) in summaries.iter().zip(&alone_summaries).enumerate() {
            assert_eq!(a.potential_notes, b.potential_notes, "{model} replica {k}: batched and alone report differently");
        }
        if model.starts_with("acetamide") {
            let counts: Vec<&String> = summaries.iter().flat_map(|s| &s.potential_notes).collect();
            println!("{model}: {counts:?}");
            assert!(counts.len() == 3 && counts.iter().any(|c| !c.contains(" at 0 of ")), "{model}: {counts:?}");
        }
        let mut finals = Vec::new();
        for k in 0..3 {
            let sub = format!("replica-{k}");
            let (a, b) = (dir.join("batched").join(&sub), dir.join("alone").join(&sub));
            let (rows_a, rows_b) = (data_rows(&a.join("thermo.log")), data_rows(&b.join("thermo.log")));
            assert_eq!(rows_a.len(), steps / 10 + 2, "{model} replica {k}: {rows_a:?}");
            assert_eq!(rows_a, rows_b, "{model} replica {k}: batched and alone differ");
            let (ca, cb) = (Checkpoint::read(&a.join("final.chk")).unwrap(), Checkpoint::read(&b.join("final.chk")).unwrap());
            assert_eq!(ca.step, steps as u64);
            assert!(ca.system.positions == cb.system.positions && ca.system.velocities == cb.system.velocities, "{model} replica {k}: final states differ");
            finals.push(rows_a.last().unwrap().clone());
        }
        // Different seeds: different replicas.
        assert!(finals[0] != finals[1] && finals[1] != finals[2], "{model}: replicas are copies of each other: {finals:?}");
        println!("{model}: 3 replicas x {steps} steps, batched = one by one (thermo rows, final states and regrouping counts bit for bit)");
    }
}

#[test]
fn replicas_on_the_gpu_platform_are_refused_with_the_reason() {
    let dir = common::scratch("replicas-gpu");
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.5 fs\"\n[run]\nsteps = 2\nreplicas = 2\nplatform = \"gpu\"\n",
        repo("systems/quickstart/water8.extxyz").display(),
        repo("potentials/water-schnet").display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let plan = Plan::from_file(&dir.join("system.toml"), None).unwrap();
    let e = run_replicas(&plan, &RunOptions { quiet: true, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("[run] replicas run on the CPU"), "{e}");
    std::fs::write(dir.join("bad.toml"), std::fs::read_to_string(dir.join("system.toml")).unwrap().replace("replicas = 2", "replicas = 0")).unwrap();
    let e = Plan::from_file(&dir.join("bad.toml"), None).unwrap_err().to_string();
    assert!(e.contains(":11: [run] replicas: must be a positive count"), "{e}");
}

#[test]
fn replica_frames_give_each_replica_its_own_structure_as_if_run_alone() {
    // Three conformations of the water box (frames 10, 11, 12 of the training data), batched,
    // against each frame run alone with the replica's seeds.
    let dir = common::scratch("replica-frames");
    let toml = |frame: usize, replicas: usize, seed_shift: u64| {
        format!(
            "[structure]\nfile = \"{}\"\nframe = {frame}\n{}[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = {}\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = {}\n[run]\nsteps = 40\nreplicas = {replicas}\nplatform = \"cpu\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
            repo("potentials/data/water.extxyz").display(),
            if replicas > 1 { "replica_frames = true\n" } else { "" },
            3 + seed_shift,
            repo("potentials/water-schnet-mcgm-soft").display(),
            9 + seed_shift
        )
    };
    std::fs::write(dir.join("batched.toml"), toml(10, 3, 0)).unwrap();
    let options = RunOptions { threads: Some(2), quiet: true, ..Default::default() };
    let plan = Plan::from_file(&dir.join("batched.toml"), Some(&dir.join("batched"))).unwrap();
    assert_eq!(plan.replica_systems.len(), 2);
    run_replicas(&plan, &options).unwrap();
    for k in 0..3 {
        std::fs::write(dir.join(format!("alone{k}.toml")), toml(10 + k, 1, k as u64)).unwrap();
        let alone = Plan::from_file(&dir.join(format!("alone{k}.toml")), Some(&dir.join(format!("alone{k}")))).unwrap();
        run(&alone, &options).unwrap();
        let batched = data_rows(&dir.join(format!("batched/replica-{k}/thermo.log")));
        let single = data_rows(&dir.join(format!("alone{k}/thermo.log")));
        assert_eq!(batched, single, "replica {k} (frame {}) differs from the frame run alone", 10 + k);
    }
    // A frame the file does not have is named.
    let short = toml(265, 5, 0);
    std::fs::write(dir.join("short.toml"), short).unwrap();
    let e = Plan::from_file(&dir.join("short.toml"), None).unwrap_err().to_string();
    assert!(e.contains("[structure] file") && e.contains("replica 2 of replica_frames"), "{e}");
}
