//! Dynamics: NVE energy conservation against LAMMPS on the same system and timestep, Langevin
//! equipartition and the Maxwell-Boltzmann distribution, and restarts that reproduce an
//! uninterrupted run bit for bit.

mod common;

use mdrun::potential::Want;
use mdrun::run::{RunOptions, run};
use mdrun::simulation::Simulation;
use mdrun::units::{BOLTZ, MVV2E};
use common::{conservation, lj_liquid, plan_in, scratch};
use std::path::Path;

#[test]
fn nve_conserves_energy_as_well_as_lammps() {
    let dir = scratch("nve");
    let plan = plan_in(&dir, &lj_liquid(5, 10_000, r#"type = "verlet""#));
    let summary = run(
        &plan,
        &RunOptions {
            quiet: true,
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let ours: Vec<f64> = common::thermo_rows(&dir.join("thermo.log"))
        .iter()
        .map(|r| r[5])
        .collect();
    assert_eq!(ours.len(), 101);

    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lammps_nve_drift.txt"),
    )
    .unwrap();
    let lammps: Vec<f64> = fixture
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lammps.len(), 101);

    let (our_end, our_max) = conservation(&ours);
    let (lmp_end, lmp_max) = conservation(&lammps);
    println!(
        "mdrun : relative energy change over 10,000 steps {our_end:+.3e}, largest deviation {our_max:.3e}"
    );
    println!(
        "LAMMPS: relative energy change over 10,000 steps {lmp_end:+.3e}, largest deviation {lmp_max:.3e}"
    );
    println!(
        "mdrun drift {:.3e} eV/atom/ps",
        summary.energy_drift_ev_per_atom_per_ps.unwrap()
    );
    // Velocity Verlet conserves a shadow energy: E fluctuates in a band whose width is set by
    // the timestep and does not grow. Same system, same timestep: our band may differ from
    // LAMMPS's by chance (other initial velocities), not by a factor of more than 2, and the
    // net change over the run must stay inside the band LAMMPS shows.
    assert!(
        our_max < 2.0 * lmp_max,
        "largest deviation {our_max:.3e} vs LAMMPS {lmp_max:.3e}"
    );
    assert!(
        our_end.abs() < lmp_max,
        "net change {our_end:.3e} beyond LAMMPS's fluctuation band {lmp_max:.3e}"
    );
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
    let potential = plan.potential.instantiate(&plan.system.species).unwrap();
    let mut sim = Simulation::new(
        plan.system.clone(),
        potential,
        plan.integrator.clone(),
        plan.timestep,
        plan.skin,
        plan.max_force,
        0,
        None,
    )
    .unwrap();
    for _ in 0..1000 {
        sim.advance(Want::FORCES).unwrap();
    }
    let n = sim.system.len() as f64;
    let mut kinetic = Vec::new();
    let mut scaled = Vec::new();
    for step in 1..=20_000 {
        sim.advance(Want::FORCES).unwrap();
        if step % 10 == 0 {
            kinetic.push(sim.system.kinetic_energy());
        }
        if step % 200 == 0 {
            for (i, v) in sim.system.velocities.iter().enumerate() {
                let sigma = (BOLTZ * target / (sim.system.mass(i) * MVV2E)).sqrt();
                scaled.extend(v.iter().map(|x| x / sigma));
            }
        }
    }
    // Equipartition: <KE> = 3N/2 kT (the thermostat acts on all 3N degrees of freedom).
    let mean_ke = kinetic.iter().sum::<f64>() / kinetic.len() as f64;
    let t_kin = 2.0 * mean_ke / (3.0 * n * BOLTZ);
    // Block averages give the statistical error of the mean.
    let blocks: Vec<f64> = kinetic
        .chunks(100)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let bm = blocks.iter().sum::<f64>() / blocks.len() as f64;
    let err = (blocks.iter().map(|b| (b - bm).powi(2)).sum::<f64>()
        / (blocks.len() * (blocks.len() - 1)) as f64)
        .sqrt();
    let t_err = 2.0 * err / (3.0 * n * BOLTZ);
    println!("mean kinetic temperature {t_kin:.3} ± {t_err:.3} K (target {target} K)");
    assert!(
        (t_kin - target).abs() < 0.02 * target,
        "mean temperature {t_kin} K not within 2% of {target} K"
    );
    assert!(
        (t_kin - target).abs() < 5.0 * t_err + 0.002 * target,
        "mean temperature {t_kin} ± {t_err} K is biased"
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
        "KS statistic {d:.5} over {} velocity components (critical value {critical:.5} at alpha = 0.001)",
        scaled.len()
    );
    assert!(
        d < critical,
        "velocities are not Maxwell-Boltzmann: KS D = {d} > {critical}"
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
fn restart_reproduces_an_uninterrupted_run_bit_for_bit() {
    for (label, integrator) in [
        ("nve", r#"type = "verlet""#),
        (
            "langevin",
            "type = \"langevin\"\ntemperature = \"10000 K\"\ndamping = \"0.5 fs\"\nseed = 5",
        ),
    ] {
        let whole = scratch(&format!("restart-whole-{label}"));
        let split = scratch(&format!("restart-split-{label}"));
        let options = RunOptions {
            quiet: true,
            threads: Some(2),
            ..Default::default()
        };
        let toml = lj_liquid(4, 400, integrator);
        run(&plan_in(&whole, &toml), &options).unwrap();
        let plan = plan_in(&split, &toml);
        let first = run(
            &plan,
            &RunOptions {
                steps: Some(170),
                ..options.clone()
            },
        )
        .unwrap();
        assert!(first.neighbor_builds > 1);
        let half = split.join("half.chk");
        std::fs::rename(split.join("checkpoint.chk"), &half).unwrap();
        let second = run(
            &plan,
            &RunOptions {
                restart: Some(half),
                ..options.clone()
            },
        )
        .unwrap();
        assert_eq!(second.steps, 230);
        let a = std::fs::read(whole.join("checkpoint.chk")).unwrap();
        let b = std::fs::read(split.join("checkpoint.chk")).unwrap();
        assert!(
            a == b,
            "{label}: the restarted run's final state differs from the uninterrupted run's"
        );
        // The logs agree row for row too (the restart appends to the log; the first part
        // reported its last step, 170, which the straight run did not).
        let la = common::thermo_rows(&whole.join("thermo.log"));
        let lb: Vec<Vec<f64>> = common::thermo_rows(&split.join("thermo.log"))
            .into_iter()
            .filter(|r| r[0] != 170.0)
            .collect();
        assert_eq!(la, lb, "{label}: thermo logs differ");
        println!(
            "{label}: 170 + 230 steps restarted = 400 steps straight, bit for bit ({} bytes of state)",
            a.len()
        );
    }
}
