//! Dynamics, written once and run on every platform of the machine (the CPU, and the GPU where
//! wgpu finds an adapter: lavapipe in CI): NVE energy conservation against LAMMPS on the same
//! system and timestep, Langevin equipartition and the Maxwell-Boltzmann distribution, and runs
//! that repeat and restart bit for bit.

mod common;

use common::{conservation, lj_liquid, on, plan_in, platforms, scratch};
use mdrun::plan::Platform;
use mdrun::run::{RunOptions, run};
use mdrun::units::{BOLTZ, MVV2E};
use std::path::Path;

#[test]
fn nve_conserves_energy_as_well_as_lammps() {
    let fixture = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lammps_nve_drift.txt")).unwrap();
    let lammps: Vec<f64> = fixture.lines().filter(|l| !l.starts_with('#')).map(|l| l.split_whitespace().nth(4).unwrap().parse().unwrap()).collect();
    assert_eq!(lammps.len(), 101);
    let (lmp_end, lmp_max) = conservation(&lammps);
    println!("LAMMPS: relative energy change over 10,000 steps {lmp_end:+.3e}, largest deviation {lmp_max:.3e}");
    for platform in platforms() {
        let dir = scratch(&format!("nve-{platform:?}"));
        let summary = run(&plan_in(&dir, &lj_liquid(5, 10_000, r#"type = "verlet""#)), &on(platform)).unwrap();
        let ours: Vec<f64> = common::thermo_rows(&dir.join("thermo.log")).iter().map(|r| r[5]).collect();
        assert_eq!(ours.len(), 101);
        let (our_end, our_max) = conservation(&ours);
        println!(
            "mdrun {platform:?}: relative energy change {our_end:+.3e}, largest deviation {our_max:.3e}, drift {:.3e} eV/atom/ps",
            summary.energy_drift_ev_per_atom_per_ps.unwrap()
        );
        // Velocity Verlet conserves a shadow energy: E fluctuates in a band whose width is set by
        // the timestep and does not grow. Same system, same timestep: our band may differ from
        // LAMMPS's by chance (other initial velocities), not by a factor of more than 2. The net
        // change must stay inside LAMMPS's band; on the GPU, f32 forces add a random walk to the
        // shadow energy (float-float positions keep it from growing further): twice the band.
        let net = if platform == Platform::Gpu { 2.0 } else { 1.0 };
        assert!(our_max < 2.0 * lmp_max, "{platform:?}: largest deviation {our_max:.3e} vs LAMMPS {lmp_max:.3e}");
        assert!(our_end.abs() < net * lmp_max, "{platform:?}: net change {our_end:.3e} beyond {net} x LAMMPS's band {lmp_max:.3e}");
    }
}

#[test]
fn langevin_gives_the_target_temperature_and_maxwell_boltzmann_velocities() {
    // Liquid argon near 100 K (epsilon/kB = 119.8 K, sigma = 3.405 Å, 500 atoms).
    let dir = scratch("langevin");
    let target = 100.0;
    let plan = plan_in(
        &dir,
        &format!(
            r#"
[structure]
lattice = "fcc"
lattice_constant = "5.72 A"
repeat = [5, 5, 5]
element = "Ar"
[velocities]
source = "maxwell-boltzmann"
temperature = "{target} K"
seed = 1
[potential]
type = "lj"
cutoff = "8.5 A"
shift = true
[potential.species.Ar]
epsilon = "0.010323 eV"
sigma = "3.405 A"
[integrator]
type = "langevin"
timestep = "5 fs"
temperature = "{target} K"
damping = "0.1 ps"
seed = 2024
[run]
steps = 0
"#
        ),
    );
    for platform in platforms() {
        let gpu = mdrun::engine::choose(&plan, platform, &plan.system, &mut |_| {}).unwrap();
        let mut engine = mdrun::engine::start(gpu, &plan, plan.system.clone(), 0, None, &[], None).unwrap();
        assert_eq!(engine.is_gpu(), platform == Platform::Gpu);
        engine.advance(1000, false).unwrap();
        let n = plan.system.len() as f64;
        let mut kinetic = Vec::new();
        let mut scaled = Vec::new();
        // 8,000 steps: the kinetic energy every 10 (the damping time is 20), the velocities
        // every 100 (80 nearly independent snapshots of 1,500 components).
        for block in 1..=800 {
            engine.advance(10, true).unwrap();
            kinetic.push(engine.thermo().kinetic_energy);
            if block % 10 == 0 {
                let system = engine.system().unwrap();
                for (i, v) in system.velocities.iter().enumerate() {
                    let sigma = (BOLTZ * target / (system.mass(i) * MVV2E)).sqrt();
                    scaled.extend(v.iter().map(|x| x / sigma));
                }
            }
        }
        equipartition_and_maxwell_boltzmann(&format!("{platform:?}"), target, n, &kinetic, scaled);
    }
}

/// The mean kinetic temperature against the target, and the velocity components against the
/// Maxwell-Boltzmann distribution.
fn equipartition_and_maxwell_boltzmann(label: &str, target: f64, n: f64, kinetic: &[f64], mut scaled: Vec<f64>) {
    // Equipartition: <KE> = 3N/2 kT (the thermostat acts on all 3N degrees of freedom).
    let mean_ke = kinetic.iter().sum::<f64>() / kinetic.len() as f64;
    let t_kin = 2.0 * mean_ke / (3.0 * n * BOLTZ);
    // Block averages give the statistical error of the mean.
    let blocks: Vec<f64> = kinetic
        .chunks(50)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let bm = blocks.iter().sum::<f64>() / blocks.len() as f64;
    let err = (blocks.iter().map(|b| (b - bm).powi(2)).sum::<f64>()
        / (blocks.len() * (blocks.len() - 1)) as f64)
        .sqrt();
    let t_err = 2.0 * err / (3.0 * n * BOLTZ);
    println!("{label}: mean kinetic temperature {t_kin:.3} ± {t_err:.3} K (target {target} K)");
    assert!(
        (t_kin - target).abs() < 0.02 * target,
        "{label}: mean temperature {t_kin} K not within 2% of {target} K"
    );
    assert!(
        (t_kin - target).abs() < 5.0 * t_err + 0.002 * target,
        "{label}: mean temperature {t_kin} ± {t_err} K is biased"
    );

    // Kolmogorov-Smirnov: scaled velocity components against the standard normal.
    scaled.sort_by(f64::total_cmp);
    let m = scaled.len() as f64;
    let d = scaled
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            let cdf = normal_cdf(x);
            (cdf - k as f64 / m)
                .abs()
                .max(((k + 1) as f64 / m - cdf).abs())
        })
        .fold(0.0, f64::max);
    let critical = 1.949 / m.sqrt(); // alpha = 0.001
    println!(
        "{label}: KS statistic {d:.5} over {} velocity components (critical value {critical:.5} at alpha = 0.001)",
        scaled.len()
    );
    assert!(
        d < critical,
        "{label}: velocities are not Maxwell-Boltzmann: KS D = {d} > {critical}"
    );
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// erf to 1.2e-7 (Numerical Recipes' erfc Chebyshev fit).
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398
                                + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

#[test]
fn runs_repeat_and_restart_bit_for_bit() {
    let langevin = "type = \"langevin\"\ntemperature = \"10000 K\"\ndamping = \"0.5 fs\"\nseed = 5";
    for platform in platforms() {
        for (label, integrator) in [("nve", r#"type = "verlet""#), ("langevin", langevin)] {
            let toml = format!("{}[[output.trajectory]]\npath = \"traj.xyz\"\ninterval = 40\nvelocities = true\n", lj_liquid(4, 400, integrator));
            let label = format!("{platform:?} {label}");
            let outputs = |dir: &Path| {
                (std::fs::read(dir.join("checkpoint.chk")).unwrap(), common::thermo_rows(&dir.join("thermo.log")), std::fs::read_to_string(dir.join("traj.xyz")).unwrap())
            };
            // Two straight runs of the same input: the same bytes.
            let mut straight = Vec::new();
            for k in 0..2 {
                let dir = scratch(&format!("repeat-{platform:?}-{label}-{k}"));
                run(&plan_in(&dir, &toml), &on(platform)).unwrap();
                straight.push(outputs(&dir));
            }
            assert!(straight[0] == straight[1], "{label}: two runs of the same input differ");
            // Frames at steps 0, 40, ..., 400 (the trajectory interval, not the thermo one).
            assert_eq!(straight[0].2.lines().filter(|l| l.contains("Lattice=")).count(), 11);

            // 170 steps, then a restart from the checkpoint for the other 230.
            let split = scratch(&format!("restart-split-{platform:?}-{label}"));
            let plan = plan_in(&split, &toml);
            let first = run(&plan, &RunOptions { steps: Some(170), ..on(platform) }).unwrap();
            assert!(first.neighbor_builds > 1, "{label}: the first part should rebuild the list");
            let half = split.join("half.chk");
            std::fs::rename(split.join("checkpoint.chk"), &half).unwrap();
            let second = run(&plan, &RunOptions { restart: Some(half), ..on(platform) }).unwrap();
            assert_eq!(second.steps, 230);
            let (chk, rows, trajectory) = outputs(&split);
            assert!(chk == straight[0].0, "{label}: the restarted run's final state differs from the uninterrupted run's");
            // The restart appends to the log; the first part reported its last step, 170,
            // which the straight run did not.
            let rows: Vec<Vec<f64>> = rows.into_iter().filter(|r| r[0] != 170.0).collect();
            assert_eq!(rows, straight[0].1, "{label}: thermo logs differ");
            assert_eq!(trajectory, straight[0].2, "{label}: trajectories differ");
            println!("{label}: two straight runs and 170 + 230 steps restarted end in the same {} bytes of state", chk.len());
        }
    }
}
