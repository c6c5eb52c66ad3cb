//! The GPU platform against the CPU: forces, energy and virial of random systems, the
//! neighbour list as a set of pairs (including one that overflows its first capacity),
//! trajectories, blow-ups, and what the GPU refuses. (Energy conservation, Langevin
//! statistics and bit-identical repeats and restarts run on every platform in tests/md.rs.)
//!
//! These run on whatever adapter wgpu finds (lavapipe in CI). Without any adapter they are
//! skipped with a loud message, unless MDRUN_REQUIRE_GPU is set (CI sets it): then they fail.

mod common;

use common::{evaluate, gpu, lj_mixed, random_system};
use mdrun::cell::{Cell, Vec3};
use mdrun::gpu::{GpuContext, GpuPotential, GpuSimulation};
use mdrun::integrate::Integrator;
use mdrun::neighbor::{ListKind, NeighborList};
use mdrun::potential::lj::LennardJones;
use mdrun::system::System;
use std::collections::BTreeSet;

/// Positions rounded to f32, so CPU and GPU start from the same numbers.
fn f32_positions(mut s: System) -> System {
    s.wrap_positions();
    for x in &mut s.positions {
        *x = x.map(|v| v as f32 as f64);
    }
    s
}

fn two_species_lj(cutoff: f64) -> LennardJones {
    LennardJones::new(2, lj_mixed(&[(0.0104, 3.4), (0.0070, 3.0)], cutoff), true, false)
}

fn systems() -> Vec<(&'static str, System)> {
    let tri = Cell::new(
        [[22.0, 0.0, 0.0], [4.0, 21.0, 0.0], [-3.0, 2.5, 23.0]],
        [true; 3],
    )
    .unwrap();
    vec![
        ("orthorhombic", random_system(300, Cell::orthorhombic(24.0, 26.0, 25.0).unwrap(), &["Ar", "Ne"], 2.8, 1)),
        ("triclinic", random_system(300, tri, &["Ar", "Ne"], 2.8, 2)),
        // 10.5 Å across with cutoff + skin = 9.5 Å: one bin per axis, partners in 27 images.
        ("one bin per axis", random_system(25, Cell::orthorhombic(10.5, 10.6, 10.7).unwrap(), &["Ar", "Ne"], 2.6, 3)),
        // Two bins per axis along x.
        ("two bins along x", random_system(45, Cell::orthorhombic(19.5, 11.0, 10.0).unwrap(), &["Ar", "Ne"], 2.6, 4)),
    ]
}

fn max_norm(v: &[Vec3]) -> f64 {
    v.iter().map(|f| (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt()).fold(0.0, f64::max)
}

#[test]
fn forces_energy_and_virial_match_the_cpu() {
    let Some(_) = gpu() else { return };
    for (name, system) in systems() {
        let system = f32_positions(system);
        let mut lj = two_species_lj(8.5);
        let cpu = evaluate(&system, &mut lj, 1.0);
        let ctx = GpuContext::open(false).unwrap().unwrap();
        let sim = GpuSimulation::new(ctx, system.clone(), GpuPotential::Pair(two_species_lj(8.5).spec().clone()), Integrator::VelocityVerlet, 0.002, 1.0, 1e4, 0, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let forces = sim.forces().unwrap();
        let scale = max_norm(&cpu.forces);
        let worst = forces
            .iter()
            .zip(&cpu.forces)
            .map(|(g, c)| ((g[0] - c[0]).powi(2) + (g[1] - c[1]).powi(2) + (g[2] - c[2]).powi(2)).sqrt())
            .fold(0.0, f64::max)
            / scale;
        let (energy, virial) = sim.energy_virial();
        let de = (energy - cpu.energy).abs() / cpu.energy.abs();
        let vscale = (0..3).map(|k| cpu.virial[k][k].abs()).fold(0.0, f64::max);
        let dw = (0..3)
            .flat_map(|a| (0..3).map(move |b| (a, b)))
            .map(|(a, b)| (virial[a][b] - cpu.virial[a][b]).abs())
            .fold(0.0, f64::max)
            / vscale;
        eprintln!("{name}: force error {worst:.2e} of the largest force, energy {de:.2e}, virial {dw:.2e} (relative)");
        assert!(worst < 1e-5, "{name}: forces differ by {worst:e}");
        assert!(de < 1e-5, "{name}: energy {energy} vs {}", cpu.energy);
        assert!(dw < 1e-5, "{name}: virial {virial:?} vs {:?}", cpu.virial);
    }
}

type Pair = (usize, usize, [i32; 3]);

fn cpu_pairs(system: &System, reach: f64) -> BTreeSet<Pair> {
    let mut list = NeighborList::new(ListKind::Full, reach, 0.0);
    list.build(&system.positions, &system.cell).unwrap();
    let shifts = list.shift_vectors().to_vec();
    let cell = &system.cell;
    let mut out = BTreeSet::new();
    for r in 0..list.n_atoms() {
        let i = list.row_atom(r);
        for &j in list.plain(r) {
            out.insert((i, j as usize, [0, 0, 0]));
        }
        let (js, codes) = list.shifted(r);
        for (&j, &c) in js.iter().zip(codes) {
            let s = cell.fractional(shifts[c as usize]);
            out.insert((i, j as usize, s.map(|x| x.round() as i32)));
        }
    }
    out
}

/// Pairs within 1e-4 Å of the reach can fall either side in f32; leave them out.
fn away_from_edge(system: &System, reach: f64, pairs: &BTreeSet<Pair>) -> BTreeSet<Pair> {
    pairs
        .iter()
        .filter(|(i, j, n)| {
            let s = system.cell.shift_vector(*n);
            let (a, b) = (system.positions[*i], system.positions[*j]);
            let d = ((0..3).map(|k| (b[k] + s[k] - a[k]).powi(2)).sum::<f64>()).sqrt();
            (d - reach).abs() > 1e-4
        })
        .cloned()
        .collect()
}

fn check_lists_agree(name: &str, system: System, cutoff: f64, skin: f64) -> GpuSimulation {
    let system = f32_positions(system);
    let reach = cutoff + skin;
    let ctx = GpuContext::open(false).unwrap().unwrap();
    let sim = GpuSimulation::new(ctx, system.clone(), GpuPotential::Pair(two_species_lj(cutoff).spec().clone()), Integrator::VelocityVerlet, 0.002, skin, 1e30, 0, None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let gpu_list = sim.neighbor_pairs().unwrap();
    let gpu_set: BTreeSet<Pair> = gpu_list.iter().cloned().collect();
    assert_eq!(gpu_set.len(), gpu_list.len(), "{name}: a pair is listed twice");
    let cpu = cpu_pairs(&system, reach);
    let (g, c) = (away_from_edge(&system, reach, &gpu_set), away_from_edge(&system, reach, &cpu));
    assert_eq!(g.difference(&c).count() + c.difference(&g).count(), 0, "{name}: GPU-only {:?}, CPU-only {:?}",
        g.difference(&c).take(5).collect::<Vec<_>>(), c.difference(&g).take(5).collect::<Vec<_>>());
    eprintln!("{name}: {} pairs, same on GPU and CPU", gpu_set.len());
    sim
}

#[test]
fn neighbour_list_equals_the_cpu_list() {
    let Some(_) = gpu() else { return };
    for (name, system) in systems() {
        check_lists_agree(name, system, 8.5, 1.0);
    }
}

#[test]
fn a_dense_clump_overflows_the_first_capacity_and_the_list_grows() {
    let Some(_) = gpu() else { return };
    // 600 atoms packed into one corner of a mostly empty box: the capacity sized from the mean
    // density is far too small for them.
    let mut system = random_system(600, Cell::orthorhombic(9.0, 9.0, 9.0).unwrap(), &["Ar", "Ne"], 0.8, 5);
    system.cell = Cell::orthorhombic(40.0, 40.0, 40.0).unwrap();
    let sim = check_lists_agree("dense clump", system, 4.0, 0.5);
    assert!(sim.capacity_grows > 0, "the first capacity held the clump: the test does not test growth");
    eprintln!("dense clump: capacity grew {} time(s) to {}", sim.capacity_grows, sim.capacity());
}

// ---- Dynamics through the run loop -------------------------------------------------------

use common::{lj_liquid, on, plan_in, scratch};
use mdrun::plan::Platform;
use mdrun::run::{RunError, run};

/// Unwrapped positions after `steps` steps of the plan on one platform.
fn positions_after(toml: &str, label: &str, platform: Platform, steps: u64) -> Vec<Vec3> {
    let dir = scratch(label);
    let plan = plan_in(&dir, toml);
    let gpu = mdrun::engine::choose(&plan, platform, &plan.system, &mut |_| {}).unwrap();
    let mut engine = mdrun::engine::start(gpu, &plan, plan.system.clone(), 0, None, &[], None).unwrap();
    engine.advance(steps, true).unwrap();
    engine.system().unwrap().unwrapped_positions()
}

#[test]
fn the_first_100_steps_follow_the_cpu_trajectory() {
    let Some(_) = gpu() else { return };
    for (label, integrator) in [
        ("nve", r#"type = "verlet""#),
        ("langevin", "type = \"langevin\"\ntemperature = \"10000 K\"\ndamping = \"5 fs\"\nseed = 5"),
    ] {
        let toml = lj_liquid(5, 100, integrator);
        let mut worst = Vec::new();
        for steps in [10, 100] {
            let cpu = positions_after(&toml, &format!("traj-cpu-{label}"), Platform::Cpu, steps);
            let gpu = positions_after(&toml, &format!("traj-gpu-{label}"), Platform::Gpu, steps);
            let d = cpu
                .iter()
                .zip(&gpu)
                .map(|(a, b)| ((0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>()).sqrt())
                .fold(0.0, f64::max);
            println!("{label}: largest position difference after {steps} steps: {d:.3e} sigma");
            worst.push(d);
        }
        // The two start from the same state and draw the same Langevin noise (Philox keyed on
        // seed, step and atom); they part only through rounding. f32 forces carry a relative
        // error of ~1e-6 (see the force test), which displaces an atom by ~1e-6 a dt^2 per
        // step, ~1e-9 sigma here; the LJ liquid amplifies differences by e^(lambda t) with
        // lambda ~ 5 / tau, i.e. ~e^2.5 over 100 steps of 0.005 tau, and the
        // f32 rounding of the start (1e-7 sigma) dominates. 1e-4 sigma is a bound with room;
        // a wrong force, list or noise shows up as 1e-2 or more within 10 steps.
        assert!(worst[0] < 1e-5, "{label}: {:.3e} sigma apart after 10 steps", worst[0]);
        assert!(worst[1] < 1e-4, "{label}: {:.3e} sigma apart after 100 steps", worst[1]);
    }
}

#[test]
fn a_blow_up_on_the_gpu_stops_at_the_same_step_as_on_the_cpu_and_saves_the_last_good_state() {
    let Some(_) = gpu() else { return };
    // The lattice starts with zero forces; they grow as it melts. A low max_force trips early.
    let toml = lj_liquid(4, 200, r#"type = "verlet""#).replace("steps = 200", "steps = 200\nmax_force = \"40 eV/A\"");
    let mut stops = Vec::new();
    for (label, platform) in [("cpu", Platform::Cpu), ("gpu", Platform::Gpu)] {
        let dir = scratch(&format!("gpu-blowup-{label}"));
        match run(&plan_in(&dir, &toml), &on(platform)) {
            Err(RunError::BlowUp { saved_step, saved, source }) => {
                let chk = mdrun::io::checkpoint::Checkpoint::read(&saved).unwrap();
                assert_eq!(chk.step, saved_step);
                println!("{label}: {source}; last good step {saved_step}");
                stops.push((saved_step, chk.system.positions));
            }
            other => panic!("{label}: expected a blow-up, got {other:?}"),
        }
    }
    assert_eq!(stops[0].0, stops[1].0, "CPU and GPU stop at different steps");
    let d = stops[0].1.iter().zip(&stops[1].1).map(|(a, b)| (0..3).map(|k| (a[k] - b[k]).abs()).fold(0.0, f64::max)).fold(0.0, f64::max);
    assert!(d < 1e-4, "the saved states differ by {d:e}");
}

#[test]
fn positions_keep_displacements_below_the_f32_resolution() {
    let Some(ctx) = gpu() else { return };
    // One atom moving 1e-7 Å per step at x = 10.3 Å, where f32 steps are 9.5e-7 Å apart: in
    // plain f32 it would never move. Its partner sits 15 Å away, beyond the cutoff.
    let mut system = random_system(2, Cell::orthorhombic(30.0, 30.0, 30.0).unwrap(), &["Ar"], 1.0, 7);
    system.positions = vec![[10.3, 10.3, 10.3], [25.3, 25.3, 25.3]];
    system.velocities = vec![[1e-4, 0.0, 0.0], [0.0, 0.0, 0.0]];
    let lj = LennardJones::new(1, lj_mixed(&[(0.0104, 3.4)], 8.5), false, false);
    let mut sim = GpuSimulation::new(ctx, system, GpuPotential::Pair(lj.spec().clone()), Integrator::VelocityVerlet, 0.001, 1.0, 1e4, 0, None).unwrap();
    sim.advance(2000, false).unwrap();
    let x = sim.system().unwrap().positions[0][0];
    let expected = 10.3 + 2000.0 * (0.001f32 * 1e-4f32) as f64;
    println!("after 2000 steps of 1e-7 Å: x = {x:.12} Å, expected {expected:.12} Å");
    assert!((x - expected).abs() < 1e-9, "x = {x}, expected {expected}");
}

#[test]
fn without_any_adapter_auto_falls_back_to_the_cpu_and_gpu_says_what_to_install() {
    // WGPU_BACKEND=metal on Linux (or vulkan on macOS) leaves wgpu with no adapter at all.
    let backend = if cfg!(target_os = "macos") { "vulkan" } else { "metal" };
    let dir = scratch("no-adapter");
    std::fs::write(dir.join("system.toml"), lj_liquid(3, 10, r#"type = "verlet""#)).unwrap();
    let mdrun = |platform: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mdrun"))
            .arg(dir.join("system.toml"))
            .args(["--platform", platform])
            .env("WGPU_BACKEND", backend)
            .output()
            .unwrap()
    };
    let auto = mdrun("auto");
    let err = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "auto without a GPU should run on the CPU: {err}");
    assert!(err.contains("platform auto") && err.contains("running on the CPU"), "no notice: {err}");
    let forced = mdrun("gpu");
    let err = String::from_utf8_lossy(&forced.stderr);
    assert!(!forced.status.success());
    assert!(err.contains("[run] platform") && err.contains("mesa-vulkan-drivers"), "unhelpful error: {err}");
    println!("auto: {}", String::from_utf8_lossy(&auto.stderr).lines().find(|l| l.contains("platform auto")).unwrap());
    println!("gpu : {}", err.trim());
}

#[test]
fn systems_the_gpu_cannot_run_are_refused_with_the_reason() {
    let dir = scratch("gpu-unsupported");
    // A 2x2x2 fcc cell is 3.36 sigma across; cutoff + skin = 3.8 sigma needs a second image.
    let toml = lj_liquid(2, 10, r#"type = "verlet""#).replace("cutoff = 2.5", "cutoff = 3.5");
    let plan = plan_in(&dir, &toml);
    let err = run(&plan, &on(Platform::Gpu)).unwrap_err().to_string();
    assert!(err.contains("[run] platform") && err.contains("narrower"), "{err}");
    println!("{err}");
}

#[test]
fn an_unknown_dense_tiling_is_refused_naming_the_variable() {
    // MDRUN_GPU_DENSE chooses the model's dense tiles (registers or workgroup); anything else
    // stops the run with the variable and the choices, and never runs the other tiling silently.
    if gpu().is_none() {
        return;
    }
    let dir = scratch("dense-tiles");
    std::fs::write(dir.join("system.toml"), lj_liquid(3, 10, r#"type = "verlet""#)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .arg(dir.join("system.toml"))
        .args(["--platform", "gpu"])
        .env("MDRUN_GPU_DENSE", "shared")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "MDRUN_GPU_DENSE=shared was accepted: {err}");
    assert!(err.contains("MDRUN_GPU_DENSE is `shared`; expected `registers` or `workgroup`"), "{err}");
    println!("{}", err.trim());
}
