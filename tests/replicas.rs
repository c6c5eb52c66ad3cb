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

/// Runs `model` on `structure` as 3 replicas batched and as the same replicas one by one on
/// `platform`, and requires the same thermo rows, final states and potential notes.
fn batched_equals_alone(platform: &str, model: &str, structure: &Path, steps: usize) {
    let dir = common::scratch(&format!("replicas-{platform}-{model}"));
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 11\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = 5\n[run]\nsteps = {steps}\nreplicas = 3\nplatform = \"{platform}\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
        structure.display(),
        repo(&format!("potentials/{model}")).display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let options = RunOptions { threads: Some(2), quiet: true, ..Default::default() };
    let batched = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("batched"))).unwrap();
    assert_eq!(batched.replicas, 3);
    let summaries = run_replicas(&batched, &options).unwrap();
    assert_eq!(summaries.len(), 3);
    if platform == "gpu" {
        assert!(summaries.iter().all(|s| s.platform.contains("in one batch")), "{:?}", summaries[0].platform);
    }
    let alone = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("alone"))).unwrap();
    let alone_summaries: Vec<_> = (0..3).map(|k| run(&alone.replica(k), &options).unwrap()).collect();
    for (k, (a, b)) in summaries.iter().zip(&alone_summaries).enumerate() {
        assert_eq!(a.potential_notes, b.potential_notes, "{platform} {model} replica {k}: batched and alone report differently");
        assert_eq!(a.neighbor_builds, b.neighbor_builds, "{platform} {model} replica {k}: list builds differ");
    }
    if model.starts_with("acetamide") {
        let counts: Vec<&String> = summaries.iter().flat_map(|s| &s.potential_notes).collect();
        println!("{platform} {model}: {counts:?}");
        assert!(counts.len() == 3 && counts.iter().any(|c| !c.contains(" at 0 of ")), "{model}: {counts:?}");
    }
    let mut finals = Vec::new();
    for k in 0..3 {
        let sub = format!("replica-{k}");
        let (a, b) = (dir.join("batched").join(&sub), dir.join("alone").join(&sub));
        let (rows_a, rows_b) = (data_rows(&a.join("thermo.log")), data_rows(&b.join("thermo.log")));
        assert_eq!(rows_a.len(), steps / 10 + 2, "{model} replica {k}: {rows_a:?}");
        assert_eq!(rows_a, rows_b, "{platform} {model} replica {k}: batched and alone differ");
        let (ca, cb) = (Checkpoint::read(&a.join("final.chk")).unwrap(), Checkpoint::read(&b.join("final.chk")).unwrap());
        assert_eq!(ca.step, steps as u64);
        assert!(ca.system.positions == cb.system.positions && ca.system.velocities == cb.system.velocities, "{platform} {model} replica {k}: final states differ");
        finals.push(rows_a.last().unwrap().clone());
    }
    // Different seeds: different replicas.
    assert!(finals[0] != finals[1] && finals[1] != finals[2], "{model}: replicas are copies of each other: {finals:?}");
    println!("{platform} {model}: 3 replicas x {steps} steps, batched = one by one (thermo rows, final states, list builds and regrouping counts bit for bit)");
}

/// Acetamide (four elements: its hard model regroups them as the atoms move) in a 20 Å box,
/// which the GPU platform needs; its images are 16 Å apart, beyond the 5 Å cutoff.
fn boxed_acetamide(dir: &Path) -> std::path::PathBuf {
    let xyz = std::fs::read_to_string(repo("systems/acetamide/acetamide.xyz")).unwrap();
    let mut lines: Vec<&str> = xyz.lines().collect();
    lines[1] = "Lattice=\"20 0 0 0 20 0 0 0 20\" pbc=\"T T T\" Properties=species:S:1:pos:R:3";
    let boxed = dir.join("acetamide-box.extxyz");
    std::fs::write(&boxed, lines.join("\n") + "\n").unwrap();
    boxed
}

#[test]
fn batched_replicas_equal_the_replicas_run_one_by_one() {
    // Acetamide's hard model regroups its four elements as the atoms move: each replica must
    // report its own regroupings, as when run alone.
    let water = repo("systems/quickstart/water8.extxyz");
    for model in ["water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        batched_equals_alone("cpu", model, &water, 60);
    }
    batched_equals_alone("cpu", "acetamide-schnet-mcgm-hard", &repo("systems/acetamide/acetamide.xyz"), 300);
}

#[test]
fn batched_replicas_on_the_gpu_equal_the_replicas_run_one_by_one_on_the_gpu() {
    let Some(_) = common::gpu() else { return };
    // Every dispatch covers the three replicas; each must still evolve as it does alone (its
    // own list rebuilds, Langevin noise, clusters, sums and regroupings).
    let water = repo("systems/quickstart/water8.extxyz");
    for model in ["water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        batched_equals_alone("gpu", model, &water, 60);
    }
    let boxed = boxed_acetamide(&common::scratch("replicas-gpu-acetamide"));
    batched_equals_alone("gpu", "acetamide-schnet-mcgm-hard", &boxed, 300);
}

#[test]
fn a_replica_count_of_zero_is_refused() {
    let dir = common::scratch("replicas-zero");
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.5 fs\"\n[run]\nsteps = 2\nreplicas = 0\n",
        repo("systems/quickstart/water8.extxyz").display(),
        repo("potentials/water-schnet").display()
    );
    std::fs::write(dir.join("bad.toml"), &toml).unwrap();
    let e = Plan::from_file(&dir.join("bad.toml"), None).unwrap_err().to_string();
    assert!(e.contains(":11: [run] replicas: must be a count from 1 to 4096"), "{e}");
    // A count that would start a million threads is refused the same way.
    std::fs::write(dir.join("bad.toml"), toml.replace("replicas = 0", "replicas = 1000000")).unwrap();
    let e = Plan::from_file(&dir.join("bad.toml"), None).unwrap_err().to_string();
    assert!(e.contains(":11: [run] replicas: must be a count from 1 to 4096"), "{e}");
}

#[test]
fn replica_frames_give_each_replica_its_own_structure_as_if_run_alone() {
    frames_batched_equal_frames_alone("cpu");
}

#[test]
fn replica_frames_on_the_gpu_give_each_replica_its_own_structure_as_if_run_alone() {
    let Some(_) = common::gpu() else { return };
    frames_batched_equal_frames_alone("gpu");
}

fn frames_batched_equal_frames_alone(platform: &str) {
    // Three conformations of the water box (frames 10, 11, 12 of the training data), batched,
    // against each frame run alone with the replica's seeds.
    let dir = common::scratch(&format!("replica-frames-{platform}"));
    let toml = |frame: usize, replicas: usize, seed_shift: u64| {
        format!(
            "[structure]\nfile = \"{}\"\nframe = {frame}\n{}[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = {}\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = {}\n[run]\nsteps = 40\nreplicas = {replicas}\nplatform = \"{platform}\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
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
        assert_eq!(batched, single, "{platform}: replica {k} (frame {}) differs from the frame run alone", 10 + k);
    }
    // A frame the file does not have is named.
    let short = toml(265, 5, 0);
    std::fs::write(dir.join("short.toml"), short).unwrap();
    let e = Plan::from_file(&dir.join("short.toml"), None).unwrap_err().to_string();
    assert!(e.contains("[structure] file") && e.contains("replica 2 of replica_frames"), "{e}");
}

#[test]
fn on_the_gpu_a_replica_that_blows_up_saves_its_last_good_state_and_the_others_go_on() {
    let Some(_) = common::gpu() else { return };
    // The hot LJ lattice collapses in its first ten steps; with max_force 120 eV/Å that trips
    // two of the four replicas (each has its own velocities) and not the others (on lavapipe:
    // last good steps 10 and 10, two finish). Each replica's fate must be its fate alone, and
    // the blown-up ones must not stop the others.
    let toml = common::lj_liquid(4, 300, r#"type = "verlet""#).replace("steps = 300", "steps = 300\nmax_force = \"MAXF eV/A\"\nreplicas = 4\nplatform = \"gpu\"").replace("MAXF", "120");
    let dir = common::scratch("replicas-gpu-blowup");
    std::fs::write(dir.join("system.toml"), &toml).unwrap();
    let options = RunOptions { threads: Some(2), quiet: true, ..Default::default() };
    let batched = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("batched"))).unwrap();
    let outcome = run_replicas(&batched, &options);
    let alone = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("alone"))).unwrap();
    let mut fates = Vec::new();
    for k in 0..4 {
        let in_batch = |path: &Path| batched.replica(k).checkpoint.parent().unwrap().join(path.file_name().unwrap());
        let (mine, theirs) = match run(&alone.replica(k), &options) {
            Ok(_) => {
                fates.push("finished".to_string());
                (in_batch(&alone.replica(k).checkpoint), alone.replica(k).checkpoint.clone())
            }
            Err(mdrun::run::RunError::BlowUp { saved_step, saved, .. }) => {
                fates.push(format!("blew up, last good step {saved_step}"));
                (in_batch(&saved), saved)
            }
            Err(e) => panic!("replica {k} alone: {e}"),
        };
        let (a, b) = (Checkpoint::read(&mine).unwrap_or_else(|e| panic!("replica {k}: {e}")), Checkpoint::read(&theirs).unwrap());
        assert_eq!(a.step, b.step, "replica {k}: saved at another step in the batch");
        assert!(a.system.positions == b.system.positions && a.system.velocities == b.system.velocities, "replica {k}: saved states differ");
    }
    println!("replicas on the GPU: {fates:?}");
    assert!(fates.iter().any(|f| f == "finished") && fates.iter().any(|f| f != "finished"), "want some replicas to blow up and some to finish: {fates:?}");
    assert!(outcome.is_err(), "a replica blew up: the batch run reports it");
}

/// 60 steps of 2 replicas in one go, and 30 + 30 with `--restart` of the batch: every
/// replica's thermo rows and final state must be the same, bit for bit.
fn restart_continues_every_replica_exactly(platform: &str) {
    let dir = common::scratch(&format!("replicas-restart-{platform}"));
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 4\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = 8\n[run]\nsteps = 60\nreplicas = 2\nplatform = \"{platform}\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
        repo("systems/quickstart/water8.extxyz").display(),
        repo("potentials/water-schnet-mcgm-soft").display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let options = RunOptions { threads: Some(2), quiet: true, ..Default::default() };
    let whole = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("whole"))).unwrap();
    run_replicas(&whole, &options).unwrap();
    let split = Plan::from_file(&dir.join("system.toml"), Some(&dir.join("split"))).unwrap();
    run_replicas(&split, &RunOptions { steps: Some(30), ..options.clone() }).unwrap();
    run_replicas(&split, &RunOptions { restart: Some(split.checkpoint.clone()), ..options.clone() }).unwrap();
    for k in 0..2 {
        let sub = format!("replica-{k}");
        let (a, b) = (dir.join("whole").join(&sub), dir.join("split").join(&sub));
        assert_eq!(data_rows(&a.join("thermo.log")), data_rows(&b.join("thermo.log")), "{platform} replica {k}: the restarted rows differ");
        let (ca, cb) = (Checkpoint::read(&a.join("final.chk")).unwrap(), Checkpoint::read(&b.join("final.chk")).unwrap());
        assert_eq!((ca.step, cb.step), (60, 60));
        assert!(ca.system.positions == cb.system.positions && ca.system.velocities == cb.system.velocities, "{platform} replica {k}: final states differ");
    }
    // A replica whose checkpoint is missing is named.
    std::fs::remove_file(dir.join("split/replica-1/final.chk")).unwrap();
    let e = run_replicas(&split, &RunOptions { restart: Some(split.checkpoint.clone()), ..options }).unwrap_err().to_string();
    assert!(e.contains("replica-1/final.chk"), "{e}");
    println!("{platform}: 2 replicas, 30 + 30 steps with --restart = 60 steps, bit for bit");
}

#[test]
fn a_restart_continues_every_replica_of_a_batch_exactly() {
    restart_continues_every_replica_exactly("cpu");
}

#[test]
fn a_restart_continues_every_replica_of_a_gpu_batch_exactly() {
    let Some(_) = common::gpu() else { return };
    restart_continues_every_replica_exactly("gpu");
}

#[test]
fn ctrl_c_stops_every_replica_of_a_gpu_batch_at_one_step_and_the_batch_restarts() {
    let Some(_) = common::gpu() else { return };
    // The replicas read Ctrl-C at the same block, so their checkpoints share a step and
    // `--restart` continues the batch.
    let dir = common::scratch("replicas-gpu-interrupt");
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 4\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"300 K\"\ndamping = \"0.1 ps\"\nseed = 8\n[run]\nsteps = 100000\nreplicas = 3\nplatform = \"gpu\"\n[output]\nthermo = 10\nlog = \"out/thermo.log\"\ncheckpoint = \"out/final.chk\"\n",
        repo("systems/quickstart/water8.extxyz").display(),
        repo("potentials/water-schnet-mcgm-soft").display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let mdrun = env!("CARGO_BIN_EXE_mdrun");
    let child = std::process::Command::new(mdrun).arg(dir.join("system.toml")).arg("--quiet").stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Wait for a few thermo rows of replica 0, then interrupt.
    let log = dir.join("out/replica-0/thermo.log");
    let start = std::time::Instant::now();
    while !log.exists() || data_rows(&log).len() < 3 {
        assert!(start.elapsed().as_secs() < 300, "no thermo rows after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("interrupted at step"), "{stderr}");
    let steps: Vec<u64> = (0..3).map(|k| Checkpoint::read(&dir.join(format!("out/replica-{k}/final.chk"))).unwrap().step).collect();
    assert!(steps[0] > 0 && steps.iter().all(|&s| s == steps[0]), "the replicas stopped at different steps: {steps:?}");
    let until = steps[0] + 20;
    let out = std::process::Command::new(mdrun)
        .arg(dir.join("system.toml"))
        .args(["--quiet", "--restart", dir.join("out/final.chk").to_str().unwrap(), "--steps", &until.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for k in 0..3 {
        assert_eq!(Checkpoint::read(&dir.join(format!("out/replica-{k}/final.chk"))).unwrap().step, until);
    }
    println!("Ctrl-C: all 3 replicas saved at step {}; --restart continued them to {until}", steps[0]);
}

#[test]
fn gpu_profile_of_a_batch_times_the_batch_kernels() {
    let Some(ctx) = common::gpu() else { return };
    let dir = common::scratch("replicas-gpu-profile");
    let toml = format!(
        "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 4\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.5 fs\"\n[run]\nsteps = 20\nreplicas = 2\nplatform = \"gpu\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
        repo("systems/quickstart/water8.extxyz").display(),
        repo("potentials/water-schnet-mcgm-soft").display()
    );
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let plan = Plan::from_file(&dir.join("system.toml"), None).unwrap();
    let options = RunOptions { quiet: true, gpu_profile: true, ..Default::default() };
    let summaries = run_replicas(&plan, &options).unwrap();
    if !ctx.timestamps {
        eprintln!("this adapter has no timestamp queries inside passes: no split to check");
        return;
    }
    // One split for the whole batch, in replica 0's summary: the model's stages (soft MCGM
    // clusters too) and the MD kernels, their sum within the run's wall time.
    let kernels = &summaries[0].gpu_kernel_s;
    assert!(summaries[1].gpu_kernel_s.is_empty());
    // The model's kernels are named by stage and kernel ("ml: forward / ml_dense").
    for name in ["ml: forward / ml_dense", "ml: forward / ml_message", "ml: clustering / ml_pool", "ml: backward / ml_message_backward", "integrate"] {
        assert!(kernels.get(name).is_some_and(|&t| t > 0.0), "no {name} in {:?}", kernels.keys().collect::<Vec<_>>());
    }
    let total: f64 = kernels.values().sum();
    assert!(kernels.values().all(|&t| t >= 0.0) && total > 0.0 && total < summaries[0].wall_s, "{total} s of kernels in {} s", summaries[0].wall_s);
    // Every kernel timed was counted, at least once a step.
    let calls = &summaries[0].gpu_kernel_calls;
    assert!(calls.keys().eq(kernels.keys()) && calls.values().all(|&n| n > 0), "{calls:?}");
    assert!(calls["integrate"] >= summaries[0].steps, "{calls:?}");
    println!("batch of 2: {}", mdrun::summary::kernel_split(&mdrun::summary::dispatches_title("GPU kernels", calls, summaries[0].steps), kernels));
}
