//! Every registered pair style on every platform, through one test body (HOOMD's `device`
//! fixture, OpenMM's test file included per platform): a style added to
//! `mdrun::potential::styles::STYLES` is run here without new test code, once its test
//! parameters are given below (the test fails, naming the style, until they are).
//!
//! Per style and platform, a two-species fcc crystal at 600 K through `system.toml`:
//! - NVE conserves energy (velocity Verlet, shifted pairs);
//! - a run stopped at step 30 and restarted gives the uninterrupted run's log, bit for bit;
//! - the GPU platform's first thermo row is the f64 CPU reference's to f32 precision;
//! - forces are the gradient of the platform's own energy (central differences; the CPU to
//!   1e-6 of the largest force, measured 5e-9; the GPU's f32 energies to 2e-3, measured 4e-4).

mod common;

use mdrun::potential::pair::PairStyle;
use mdrun::potential::styles::STYLES;
use mdrun::run::{RunOptions, run};
use std::path::Path;

/// A style's test system: per-species parameters (in the style's order), the unlike pair's,
/// the cutoff, the fcc lattice constant, the two masses and a timestep (fs) that resolves the
/// fastest vibration.
struct Case {
    like: [&'static [f64]; 2],
    unlike: &'static [f64],
    cutoff: f64,
    lattice: f64,
    masses: [f64; 2],
    dt_fs: f64,
}

fn case(style: &PairStyle) -> Case {
    match style.lammps {
        // Argon and krypton.
        "lj/cut" => Case { like: [&[0.0104, 3.4], &[0.0140, 3.65]], unlike: &[0.0121, 3.52], cutoff: 8.5, lattice: 5.3, masses: [39.948, 83.798], dt_fs: 2.0 },
        // Copper and nickel (Girifalco and Weizer's Morse parameters).
        "morse" => Case { like: [&[0.3429, 1.3588, 2.866], &[0.4205, 1.4199, 2.780]], unlike: &[0.38, 1.39, 2.82], cutoff: 7.5, lattice: 3.6, masses: [63.546, 58.6934], dt_fs: 1.0 },
        other => panic!("pair style {other} has no test parameters: add a Case for it in tests/pair_styles.rs"),
    }
}

/// 5 x 5 x 5 fcc cells (500 atoms), about one atom in three of species B, written as extended
/// XYZ in `dir`.
fn write_crystal(dir: &Path, a: f64) {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let n = 5;
    let mut lines = Vec::new();
    let mut k = 0u32;
    for i in 0..n {
        for j in 0..n {
            for l in 0..n {
                for b in basis {
                    k += 1;
                    let species = if k.wrapping_mul(2654435761) % 3 == 0 { "B" } else { "A" };
                    let x = [(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (l as f64 + b[2]) * a];
                    lines.push(format!("{species} {} {} {}", x[0], x[1], x[2]));
                }
            }
        }
    }
    let l = n as f64 * a;
    let text = format!("{}\nLattice=\"{l} 0 0 0 {l} 0 0 0 {l}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n{}\n", lines.len(), lines.join("\n"));
    std::fs::write(dir.join("crystal.extxyz"), text).unwrap();
}

fn toml(style: &PairStyle, c: &Case, steps: u64) -> String {
    let params = |values: &[f64]| style.params.iter().zip(values).map(|(p, v)| format!("{} = {v:?}\n", p.name)).collect::<String>();
    format!(
        "[structure]\nfile = \"crystal.extxyz\"\n[masses]\nA = {}\nB = {}\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"600 K\"\nseed = 11\n\
         [potential]\ntype = \"{}\"\ncutoff = {}\nshift = true\n[potential.species.A]\n{}[potential.species.B]\n{}[[potential.pair]]\nspecies = [\"A\", \"B\"]\n{}\
         [integrator]\ntype = \"verlet\"\ntimestep = \"{} fs\"\n[run]\nsteps = {steps}\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
        c.masses[0], c.masses[1], style.toml_names[0], c.cutoff, params(c.like[0]), params(c.like[1]), params(c.unlike), c.dt_fs
    )
}

#[test]
fn every_pair_style_on_every_platform() {
    for style in STYLES {
        let c = case(style);
        let mut first_rows = Vec::new();
        for platform in common::platforms() {
            let label = format!("{} on {platform:?}", style.lammps);
            let options = RunOptions { quiet: true, threads: Some(1), platform: Some(platform), ..Default::default() };

            // NVE, 200 steps.
            let whole = common::scratch(&format!("pairs-{}-{platform:?}-whole", style.toml_names[0]));
            write_crystal(&whole, c.lattice);
            let plan = common::plan_in(&whole, &toml(style, &c, 200));
            run(&plan, &options).unwrap_or_else(|e| panic!("{label}: {e}"));
            let rows = common::thermo_rows(&whole.join("thermo.log"));
            assert_eq!(rows.len(), 21, "{label}: thermo rows");
            // Columns: step, time, T, PE, KE, E, P.
            let ke0 = rows[0][4];
            let e: Vec<f64> = rows.iter().map(|r| r[5]).collect();
            let wander = e.iter().map(|x| (x - e[0]).abs()).fold(0.0, f64::max);
            println!("{label}: E wanders {wander:.2e} eV over 200 steps (KE {ke0:.3} eV, T {:.0} -> {:.0} K)", rows[0][2], rows[20][2]);
            assert!(rows[20][2] > 150.0 && rows[20][2] < 600.0, "{label}: the crystal should share its kinetic energy with its potential energy");
            assert!(wander < 2e-3 * ke0, "{label}: NVE energy wanders by {wander} eV, {:.1e} of the kinetic energy", wander / ke0);
            first_rows.push(rows[0].clone());

            // 30 steps, then a restart to 200: the same log.
            let split = common::scratch(&format!("pairs-{}-{platform:?}-split", style.toml_names[0]));
            write_crystal(&split, c.lattice);
            let plan = common::plan_in(&split, &toml(style, &c, 200));
            run(&plan, &RunOptions { steps: Some(30), ..options.clone() }).unwrap();
            std::fs::rename(split.join("final.chk"), split.join("at30.chk")).unwrap();
            run(&plan, &RunOptions { restart: Some(split.join("at30.chk")), ..options.clone() }).unwrap();
            let restarted = common::thermo_rows(&split.join("thermo.log"));
            assert_eq!(restarted, rows, "{label}: 30 steps + a restart to 200 differ from 200 steps");
        }
        // The GPU's first row (f32 forces, fixed-point sums) against the CPU's f64.
        if let [cpu, gpu] = first_rows.as_slice() {
            for (k, name) in [(3, "PE"), (6, "P")] {
                let scale = cpu[k].abs().max(if name == "P" { 100.0 } else { 1.0 });
                let err = (cpu[k] - gpu[k]).abs() / scale;
                println!("{}: GPU {name} {} vs CPU {} ({err:.1e})", style.lammps, gpu[k], cpu[k]);
                assert!(err < 1e-4, "{}: GPU {name} {} vs CPU {}", style.lammps, gpu[k], cpu[k]);
            }
        }
    }
}

/// The potential energy and forces of `system` on one platform, at step 0.
fn energy_and_forces(plan: &mdrun::plan::Plan, system: &mdrun::system::System, platform: mdrun::plan::Platform) -> (f64, Vec<[f64; 3]>) {
    match platform {
        mdrun::plan::Platform::Gpu => {
            let ctx = mdrun::gpu::GpuContext::open(false).unwrap().expect("an adapter");
            let potential = mdrun::engine::gpu_potential(plan, system).unwrap();
            let sim = mdrun::gpu::GpuSimulation::new(ctx, system.clone(), potential, plan.integrator.clone(), plan.timestep, plan.skin, plan.max_force, 0, None).unwrap();
            (sim.energy_virial().0, sim.forces().unwrap())
        }
        _ => {
            let potential = plan.potential.instantiate(&system).unwrap();
            let sim = mdrun::simulation::Simulation::new(system.clone(), potential, plan.integrator.clone(), plan.timestep, plan.skin, plan.max_force, 0, None).unwrap();
            (sim.thermo().potential_energy, sim.forces.forces.clone())
        }
    }
}

#[test]
fn forces_are_the_energy_gradient_of_every_style_on_every_platform() {
    // The crystal of each style's case with every atom moved at random by up to 0.15 Å (so that
    // forces are not zero by symmetry); forces at four atoms against central differences of the
    // platform's own energy. f32 energies (the GPU's per-atom values, summed exactly in fixed
    // point) need a larger step, and their rounding then sets the agreement.
    for style in STYLES {
        let c = case(style);
        let dir = common::scratch(&format!("pair-fd-{}", style.lammps.replace('/', "-")));
        write_crystal(&dir, c.lattice);
        let plan = common::plan_in(&dir, &toml(style, &c, 0));
        let mut rng = common::Uniform::new(3);
        let mut system = plan.system.clone();
        for x in &mut system.positions {
            for v in x.iter_mut() {
                *v = ((*v + 0.15 * (2.0 * rng.next() - 1.0)) as f32) as f64;
            }
        }
        for platform in common::platforms() {
            let (h, allowed) = if platform == mdrun::plan::Platform::Gpu { (2e-3, 2e-3) } else { (1e-4, 1e-6) };
            let (_, forces) = energy_and_forces(&plan, &system, platform);
            let scale = forces.iter().flatten().fold(0.0f64, |m, f| m.max(f.abs()));
            let mut worst = 0.0f64;
            for (atom, k) in [(0, 0), (7, 1), (123, 2), (401, 0)] {
                let mut moved = system.clone();
                moved.positions[atom][k] += h;
                let plus = energy_and_forces(&plan, &moved, platform).0;
                moved.positions[atom][k] -= 2.0 * h;
                let minus = energy_and_forces(&plan, &moved, platform).0;
                worst = worst.max((-(plus - minus) / (2.0 * h) - forces[atom][k]).abs() / scale);
            }
            println!("{} on {platform:?}: forces vs central differences of the energy (h = {h} Å): {worst:.1e} of max |F| = {scale:.3} eV/Å", style.lammps);
            assert!(worst < allowed, "{} on {platform:?}: {worst:e}", style.lammps);
        }
    }
}
