//! Several structures in one GPU simulation (`GpuSimulation::new_batch`): every dispatch works
//! on all of them, and each must evolve bit for bit as it does alone: its own cell and bins,
//! its own list rebuilds, its own Langevin noise, its own thermo sums; one that blows up is
//! saved and frozen while the others go on.
//!
//! Skipped without a GPU adapter unless MDRUN_REQUIRE_GPU is set (CI sets it).

mod common;

use common::{gpu, lj_mixed, random_system};
use mdrun::cell::Cell;
use mdrun::gpu::{GpuContext, GpuPotential, GpuSimulation};
use mdrun::integrate::Integrator;
use mdrun::potential::lj::LennardJones;
use mdrun::gpu::GpuError;
use mdrun::system::System;

fn lj() -> GpuPotential {
    GpuPotential::Pair(LennardJones::new(2, lj_mixed(&[(0.0104, 3.4), (0.0070, 3.0)], 7.0), true, false).spec().clone())
}

fn langevin(seed: u64) -> Integrator {
    Integrator::Langevin { temperature: 2000.0, damping: 0.05, seed, zero: false }
}

/// Three unlike structures: sizes, cells (one triclinic, one with two bins along x) and seeds.
fn structures() -> Vec<(System, Integrator)> {
    let tri = Cell::new([[21.0, 0.0, 0.0], [4.0, 20.0, 0.0], [-3.0, 2.5, 22.0]], [true; 3]).unwrap();
    vec![
        (random_system(260, Cell::orthorhombic(23.0, 24.0, 22.5).unwrap(), &["Ar", "Ne"], 2.9, 11), langevin(1)),
        (random_system(200, tri, &["Ar", "Ne"], 2.9, 12), langevin(2)),
        (random_system(40, Cell::orthorhombic(16.5, 8.2, 8.4).unwrap(), &["Ar", "Ne"], 2.7, 13), langevin(3)),
    ]
}

/// Thermo rows (as printed) after each block, the final state and the list builds.
struct Trace {
    rows: Vec<String>,
    positions: Vec<[f64; 3]>,
    velocities: Vec<[f64; 3]>,
    images: Vec<[i32; 3]>,
    builds: u64,
}

const BLOCKS: [u64; 5] = [1, 40, 7, 90, 62];

fn trace_of(sim: &mut GpuSimulation, k: usize, rows: Vec<String>) -> Trace {
    let builds = sim.builds_of(k);
    let s = sim.system_of(k).unwrap();
    Trace { rows, positions: s.positions.clone(), velocities: s.velocities.clone(), images: s.images.clone(), builds }
}

fn assert_same(label: &str, a: &Trace, b: &Trace) {
    assert_eq!(a.rows, b.rows, "{label}: thermo rows differ");
    assert!(a.positions == b.positions, "{label}: positions differ");
    assert!(a.velocities == b.velocities, "{label}: velocities differ");
    assert!(a.images == b.images, "{label}: images differ");
    assert_eq!(a.builds, b.builds, "{label}: list builds differ");
}

fn context() -> GpuContext {
    GpuContext::open(false).unwrap().unwrap()
}

#[test]
fn each_structure_of_a_batch_evolves_bit_for_bit_as_it_does_alone() {
    let Some(_) = gpu() else { return };
    // Hot (2000 K) with a 0.4 Å skin: every structure rebuilds its list many times, each on
    // its own schedule.
    let (dt, skin) = (0.002, 0.4);
    let mut batch = GpuSimulation::new_batch(context(), structures(), lj(), dt, skin, 1e4, 0, None).unwrap();
    assert_eq!(batch.structures(), 3);
    let mut rows = vec![Vec::new(); 3];
    for &b in &BLOCKS {
        assert!(batch.advance_batch(b, true).unwrap().is_empty());
        for (k, r) in rows.iter_mut().enumerate() {
            r.push(batch.thermo_of(k).line());
        }
    }
    let batched: Vec<Trace> = (0..3).map(|k| trace_of(&mut batch, k, rows[k].clone())).collect();
    let builds: Vec<u64> = batched.iter().map(|t| t.builds).collect();
    for (k, (system, integrator)) in structures().into_iter().enumerate() {
        let mut alone = GpuSimulation::new(context(), system, lj(), integrator, dt, skin, 1e4, 0, None).unwrap();
        let mut r = Vec::new();
        for &b in &BLOCKS {
            alone.advance(b, true).unwrap();
            r.push(alone.thermo().line());
        }
        assert_same(&format!("structure {k}"), &batched[k], &trace_of(&mut alone, 0, r));
    }
    println!("3 structures x {} steps: batched = alone bit for bit; list builds {builds:?}", BLOCKS.iter().sum::<u64>());
    assert!(builds.iter().all(|&b| b > 5), "too few rebuilds to test their schedule: {builds:?}");
    assert!(builds[0] != builds[1] || builds[1] != builds[2], "every structure rebuilt alike: {builds:?}");
}

#[test]
fn a_structure_that_blows_up_is_saved_and_frozen_while_the_others_go_on() {
    let Some(_) = gpu() else { return };
    // In structure 1, atom 0 and its nearest neighbour fly at each other; with max_force
    // 12 eV/Å (they meet at 2.2 Å, 17 eV/Å) it blows up a few steps into the first block. The others must not notice.
    let mut set = structures();
    {
        let s = &mut set[1].0;
        let toward = |j: usize| {
            let d = [0, 1, 2].map(|k| s.positions[j][k] - s.positions[0][k]);
            s.cell.cartesian(s.cell.fractional(d).map(|x| x - x.round()))
        };
        let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let j = (1..s.len()).min_by(|&a, &b| norm(toward(a)).total_cmp(&norm(toward(b)))).unwrap();
        let d = toward(j);
        let u = d.map(|x| x / norm(d));
        s.velocities[0] = u.map(|x| 100.0 * x);
        s.velocities[j] = u.map(|x| -100.0 * x);
    }
    let (dt, skin, max_force) = (0.002, 0.4, 12.0);
    let mut alone = GpuSimulation::new(context(), set[1].0.clone(), lj(), set[1].1.clone(), dt, skin, max_force, 0, None).unwrap();
    let alone_error = match alone.advance(100, true) {
        Err(GpuError::BlowUp(b)) => b,
        other => panic!("structure 1 alone should blow up, got {other:?}"),
    };
    let alone_saved = alone.last_good_checkpoint().unwrap();

    let mut batch = GpuSimulation::new_batch(context(), set.clone(), lj(), dt, skin, max_force, 0, None).unwrap();
    let failed = batch.advance_batch(100, true).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (k, GpuError::BlowUp(b)) = &failed[0] else { panic!("{failed:?}") };
    assert_eq!(*k, 1);
    assert_eq!((b.step, &b.atoms), (alone_error.step, &alone_error.atoms), "the batch names another blow-up than the structure alone");
    assert!(batch.is_frozen(1) && !batch.is_frozen(0) && !batch.is_frozen(2));
    let saved = batch.last_good_checkpoint_of(1).unwrap();
    assert_eq!(saved.step, alone_saved.step);
    assert!(saved.system.positions == alone_saved.system.positions && saved.system.velocities == alone_saved.system.velocities, "saved states differ");
    // Frozen: it stays at its last good state while the others run on.
    assert!(batch.advance_batch(50, true).unwrap().is_empty());
    assert!(batch.system_of(1).unwrap().positions == alone_saved.system.positions);
    for k in [0, 2] {
        let mut single = GpuSimulation::new(context(), set[k].0.clone(), lj(), set[k].1.clone(), dt, skin, max_force, 0, None).unwrap();
        single.advance(100, true).unwrap();
        single.advance(50, true).unwrap();
        let (row_a, row_b) = (batch.thermo_of(k).line(), single.thermo().line());
        let a = trace_of(&mut batch, k, vec![row_a]);
        let b = trace_of(&mut single, 0, vec![row_b]);
        assert_same(&format!("structure {k} beside the frozen one"), &a, &b);
    }
    println!("structure 1 blew up at step {} ({}); saved at step {}; structures 0 and 2 ran 150 steps as alone", b.step, alone_error.atoms[0].0, saved.step);
}


#[test]
fn structures_that_cannot_share_a_batch_are_refused_with_the_reason() {
    let Some(_) = gpu() else { return };
    let mut set = structures();
    set[2].0 = random_system(40, Cell::orthorhombic(16.5, 8.2, 8.4).unwrap(), &["Ar"], 2.7, 13);
    let e = GpuSimulation::new_batch(context(), set, lj(), 0.002, 0.4, 1e4, 0, None).err().expect("other species must be refused").to_string();
    assert!(e.contains("structure 2 has other species than structure 0"), "{e}");
    let mut set = structures();
    set[1].1 = Integrator::VelocityVerlet;
    let e = GpuSimulation::new_batch(context(), set, lj(), 0.002, 0.4, 1e4, 0, None).err().expect("another integrator must be refused").to_string();
    assert!(e.contains("structure 1 has another integrator"), "{e}");
    let mut set = structures();
    set[1].0 = random_system(10, Cell::orthorhombic(7.0, 20.0, 20.0).unwrap(), &["Ar", "Ne"], 2.7, 14);
    let e = GpuSimulation::new_batch(context(), set, lj(), 0.002, 0.4, 1e4, 0, None).err().expect("a narrow cell must be refused").to_string();
    assert!(e.contains("structure 1: the cell is narrower"), "{e}");
    // The per-structure sums run a workgroup a structure along one grid axis (65,535).
    let one = structures()[2].clone();
    let e = GpuSimulation::new_batch(context(), vec![one; 65536], lj(), 0.002, 0.4, 1e4, 0, None).err().expect("65,536 structures must be refused").to_string();
    assert!(e.contains("a GPU batch holds up to 65535 structures (this batch: 65536)"), "{e}");
}

#[test]
fn a_structure_unusable_from_the_start_is_frozen_there_and_reported_by_the_first_advance() {
    let Some(_) = gpu() else { return };
    // Structure 2 starts with two atoms 1.2 Å apart (|F| ~ 1e4 eV/Å and more): alone that is
    // an error at setup; in a batch it is frozen at step 0 and the others run.
    let mut set = structures();
    {
        let s = &mut set[2].0;
        let x = s.positions[0];
        s.positions[1] = [x[0] + 1.2, x[1], x[2]];
    }
    let (dt, skin, max_force) = (0.002, 0.4, 5e3);
    let alone = GpuSimulation::new(context(), set[2].0.clone(), lj(), set[2].1.clone(), dt, skin, max_force, 0, None);
    let Err(GpuError::BlowUp(alone_error)) = alone else { panic!("structure 2 alone should fail at setup") };
    let mut batch = GpuSimulation::new_batch(context(), set.clone(), lj(), dt, skin, max_force, 0, None).unwrap();
    assert!(batch.is_frozen(2));
    let failed = batch.advance_batch(30, true).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (k, GpuError::BlowUp(b)) = &failed[0] else { panic!("{failed:?}") };
    assert_eq!((*k, &b.atoms), (2, &alone_error.atoms));
    let saved = batch.last_good_checkpoint_of(2).unwrap();
    assert_eq!(saved.step, 0);
    for k in [0, 1] {
        let mut single = GpuSimulation::new(context(), set[k].0.clone(), lj(), set[k].1.clone(), dt, skin, max_force, 0, None).unwrap();
        single.advance(30, true).unwrap();
        let (row_a, row_b) = (batch.thermo_of(k).line(), single.thermo().line());
        let a = trace_of(&mut batch, k, vec![row_a]);
        let b = trace_of(&mut single, 0, vec![row_b]);
        assert_same(&format!("structure {k} beside one frozen at the start"), &a, &b);
    }
}
