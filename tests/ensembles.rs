//! Thermostats and barostats in system.toml runs, judged by statistical mechanics: Nosé-Hoover
//! conserves its extended energy as well as NVE conserves energy; Nosé-Hoover and CSVR give
//! the canonical kinetic-energy distribution (a Gamma distribution; NVE's narrower one fails
//! the same test); the MTK barostat gives the Lennard-Jones fluid the density and the
//! compressibility of the Johnson-Zollweg-Gubbins equation of state; and every new integrator
//! restarts bit for bit. (LAMMPS's own thermo tables for fix nvt/npt/nph are in
//! tests/lammps_decks.rs.)

mod common;

use common::{conservation, lj_liquid, plan_in, scratch};
use mdrun::plan::Platform;
use mdrun::run::{RunOptions, run};
use mdrun::units::{BOLTZ, NKTV2P};

fn cpu() -> RunOptions {
    RunOptions { quiet: true, threads: Some(2), platform: Some(Platform::Cpu), ..Default::default() }
}

/// T* = 1.44 of the LAMMPS bench liquid in mdrun's units (epsilon = 1 eV): K.
const T_BENCH: f64 = 16710.4872117;

/// The LAMMPS bench liquid from its lattice at T* = 1.44, 10,000 steps: after the first 2,000
/// (the melt, where the thermostat works hardest), the extended energy stays within 5 x NVE's
/// band, with no drift beyond it. The Trotter-split chain adds its own O(dt²) wobble: LAMMPS's
/// fix nvt (tdamp 0.5) on the same deck wanders 3.5 x NVE's band (2.8e-4 vs 8.1e-5 of E,
/// measured), and mdrun's Nosé-Hoover steps are LAMMPS's to 1e-12 (tests/lammps_decks.rs). A
/// conserved quantity that missed any of the chain's energy would wander by what the
/// thermostat exchanged, > 20 x more.
#[test]
fn nose_hoover_conserves_its_extended_energy_as_well_as_nve_conserves_energy() {
    let nh = format!("type = \"nose-hoover\"\ntemperature = \"{T_BENCH} K\"\ndamping = \"5.09 fs\"");
    let mut bands = Vec::new();
    for (label, integrator) in [("nve", "type = \"verlet\"".to_string()), ("nose-hoover", nh)] {
        let dir = scratch(&format!("conserve-{label}"));
        let summary = run(&plan_in(&dir, &lj_liquid(5, 10_000, &integrator)), &cpu()).unwrap();
        // Column 8: total energy + what the thermostat exchanged (NVE: the total energy).
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        let conserved: Vec<f64> = rows.iter().skip(20).map(|r| r[8]).collect();
        let (end, max) = conservation(&conserved);
        println!("{label}: conserved quantity changes {end:+.3e} (largest deviation {max:.3e}); drift {:.3e} eV/atom/ps", summary.energy_drift_ev_per_atom_per_ps.unwrap());
        bands.push(max);
        if label == "nose-hoover" {
            // The thermostat works: the total energy itself is not conserved, it wanders by far more.
            let total: Vec<f64> = rows.iter().skip(20).map(|r| r[5]).collect();
            assert!(conservation(&total).1 > 20.0 * max, "the thermostat exchanged almost nothing");
        }
    }
    assert!(bands[1] < 5.0 * bands[0], "Nosé-Hoover's conserved quantity wanders {:.3e}, NVE's energy {:.3e}", bands[1], bands[0]);
}

/// The kinetic energy K of N_f degrees of freedom at temperature T is Gamma(N_f/2, kT)
/// distributed in the canonical ensemble. Tested through the Wilson-Hilferty transform
/// z = ((K/(a kT))^(1/3) - (1 - 1/(9a))) / √(1/(9a)), a = N_f/2, which is N(0, 1) to
/// O(1/a): mean, variance and the Kolmogorov-Smirnov distance of z over samples far enough
/// apart to be nearly independent. NVE's kinetic energy fluctuates less (by a factor
/// 1 - 3Nk/(2C_V)) and must fail the variance test: the test can tell.
#[test]
fn nose_hoover_and_csvr_sample_the_canonical_kinetic_energy() {
    let t = 1.2 / BOLTZ;
    let integrators = [
        ("nose-hoover", format!("type = \"nose-hoover\"\ntemperature = \"{t} K\"\ndamping = \"3 fs\"")),
        ("csvr", format!("type = \"csvr\"\ntemperature = \"{t} K\"\ndamping = \"3 fs\"\nseed = 11")),
        ("nve", "type = \"verlet\"".to_string()),
    ];
    for (label, integrator) in integrators {
        let dir = scratch(&format!("canonical-{label}"));
        // 108 atoms (N_f = 321), 60,000 steps, a sample every 100 (~ 5 fs, a few thermostat times).
        let toml = lj_liquid(3, 60_000, &integrator).replace("temperature = \"16710.4872117 K\"", &format!("temperature = \"{t} K\"")).replace("thermo = 100", "thermo = 100");
        run(&plan_in(&dir, &toml), &cpu()).unwrap();
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        let n = rows[0].len();
        assert_eq!(n, 9);
        let dof = 3.0 * 108.0 - 3.0;
        let a = dof / 2.0;
        let kt = BOLTZ * t;
        // Skip the first 20 samples (equilibration from the lattice).
        let z: Vec<f64> = rows[20..].iter().map(|r| ((r[4] / (a * kt)).cbrt() - (1.0 - 1.0 / (9.0 * a))) / (1.0 / (9.0 * a)).sqrt()).collect();
        let m = z.len() as f64;
        let mean = z.iter().sum::<f64>() / m;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - 1.0);
        let mut sorted = z.clone();
        sorted.sort_by(f64::total_cmp);
        let ks = sorted.iter().enumerate().map(|(i, &x)| {
            let cdf = 0.5 * (1.0 + libm::erf(x / 2f64.sqrt()));
            (cdf - i as f64 / m).abs().max((cdf - (i + 1) as f64 / m).abs())
        }).fold(0.0, f64::max);
        println!("{label}: {} samples of K: z mean {mean:+.3}, variance {var:.3}, KS distance {ks:.3}", z.len());
        if label == "nve" {
            assert!(var < 0.7, "NVE's kinetic energy fluctuates like a canonical one (variance {var:.3}): the test cannot tell");
        } else {
            // ~580 samples, correlated over a few: mean within ~4 standard errors, the variance
            // within 25 %, the KS distance below its 0.1 % critical value for ~290 independent ones.
            assert!(mean.abs() < 0.25, "{label}: mean of z {mean:.3} (the temperature is off)");
            assert!((var - 1.0).abs() < 0.25, "{label}: variance of z {var:.3} (the fluctuations are not canonical)");
            assert!(ks < 0.11, "{label}: Kolmogorov-Smirnov distance {ks:.3} from the Gamma distribution");
        }
    }
}

/// P*(ρ*, T*) of the Lennard-Jones fluid by Johnson, Zollweg & Gubbins, Mol. Phys. 78, 591
/// (1993): the modified Benedict-Webb-Rubin form with their 32 parameters and γ = 3. (Its
/// critical point comes out at T* = 1.313, as they report.)
fn jzg_pressure(rho: f64, t: f64) -> f64 {
    const X: [f64; 33] = [
        0.0, 0.8623085097507421, 2.976218765822098, -8.402230115796038, 0.1054136629203555, -0.8564583828174598, 1.582759470107601, 0.7639421948305453,
        1.753173414312048, 2.798291772190376e3, -4.8394220260857657e-2, 0.9963265197721935, -3.698000291272493e1, 2.084012299434647e1, 8.305402124717285e1,
        -9.574799715203068e2, -1.477746229234994e2, 6.398607852471505e1, 1.603993673294834e1, 6.805916615864377e1, -2.791293578795945e3, -6.245128304568454,
        -8.116836104958410e3, 1.488735559561229e1, -1.059346754655084e4, -1.131607632802822e2, -8.867771540418822e3, -3.986982844450543e1,
        -4.689270299917261e3, 2.593535277438717e2, -2.694523589434903e3, -7.218487631550215e2, 1.721802063863269e2,
    ];
    let x = &X;
    let a = [
        x[1] * t + x[2] * t.sqrt() + x[3] + x[4] / t + x[5] / (t * t),
        x[6] * t + x[7] + x[8] / t + x[9] / (t * t),
        x[10] * t + x[11] + x[12] / t,
        x[13],
        x[14] / t + x[15] / (t * t),
        x[16] / t,
        x[17] / t + x[18] / (t * t),
        x[19] / (t * t),
    ];
    let b = [
        x[20] / t.powi(2) + x[21] / t.powi(3),
        x[22] / t.powi(2) + x[23] / t.powi(4),
        x[24] / t.powi(2) + x[25] / t.powi(3),
        x[26] / t.powi(2) + x[27] / t.powi(4),
        x[28] / t.powi(2) + x[29] / t.powi(3),
        x[30] / t.powi(2) + x[31] / t.powi(3) + x[32] / t.powi(4),
    ];
    let f = (-3.0 * rho * rho).exp();
    rho * t + (0..8).map(|i| a[i] * rho.powi(i as i32 + 2)).sum::<f64>() + f * (0..6).map(|i| b[i] * rho.powi(2 * i as i32 + 3)).sum::<f64>()
}

/// The density at which the EOS gives pressure `p` at `t` (bisection on the liquid branch).
fn jzg_density(p: f64, t: f64) -> f64 {
    let (mut lo, mut hi) = (0.4, 1.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if jzg_pressure(mid, t) < p { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// The LJ fluid at T* = 1.5, P* = 1.6 (ρ* ≈ 0.70 by JZG), 500 atoms, LJ cut at 3σ with the
/// tail correction (JZG describe the full potential), under the MTK barostat (Nosé-Hoover) and
/// under stochastic cell rescaling (with CSVR). Each mean density agrees with the EOS within its
/// statistical error (block averages) plus 1 % (the EOS's own accuracy and the cutoff), and the
/// two barostats agree with each other; the volume fluctuations give the isothermal
/// compressibility κ_T = ⟨δV²⟩/(kT⟨V⟩) of the EOS, 1/(ρ ∂P/∂ρ), within three block standard
/// errors plus 10 % (a fluctuation estimate is noisy: over 150,000 steps c-rescale gave
/// 0.139 ± 0.017 and 0.122 ± 0.019 at τ_p = 50 and 200 fs, JZG 0.120; the blocks must be
/// precise enough, σ < 30 %, for the test to mean something).
#[test]
fn npt_gives_the_lj_fluid_the_jzg_density_and_compressibility_with_mtk_and_c_rescale() {
    let (t_star, p_star) = (1.5, 1.6);
    let rho_eos = jzg_density(p_star, t_star);
    let kappa_eos = 1.0 / (rho_eos * (jzg_pressure(rho_eos * 1.001, t_star) - jzg_pressure(rho_eos * 0.999, t_star)) / (0.002 * rho_eos));
    let t = t_star / BOLTZ;
    let p = p_star * NKTV2P;
    // κ_T of the fluid in 1/bar, for c-rescale's coupling strength (it sets the relaxation
    // rate, not the ensemble).
    let kappa_bar = kappa_eos / NKTV2P;
    let barostats = [
        ("mtk", format!("type = \"nose-hoover\"\ntemperature = \"{t} K\"\ndamping = \"5 fs\""), format!("type = \"mtk\"\npressure = \"{p} bar\"\ndamping = \"50 fs\"")),
        ("c-rescale", format!("type = \"csvr\"\ntemperature = \"{t} K\"\ndamping = \"5 fs\"\nseed = 4"), format!("type = \"c-rescale\"\npressure = \"{p} bar\"\ndamping = \"50 fs\"\ncompressibility = {kappa_bar:e}\nseed = 5")),
    ];
    let mut densities = Vec::new();
    for (label, integrator, barostat) in barostats {
        let dir = scratch(&format!("npt-jzg-{label}"));
        let toml = format!(
            r#"
[structure]
lattice = "fcc"
density = 0.70
repeat = [5, 5, 5]
element = "LJ"
[masses]
LJ = 1.0
[velocities]
source = "maxwell-boltzmann"
temperature = "{t} K"
seed = 3
[potential]
type = "lj"
cutoff = 3.0
tail = true
[potential.species.LJ]
epsilon = 1.0
sigma = 1.0
[integrator]
{integrator}
timestep = "0.0509 fs"
[barostat]
{barostat}
[run]
steps = 40000
[neighbor]
skin = 0.3
[output]
thermo = 50
"#
        );
        run(&plan_in(&dir, &toml), &cpu()).unwrap();
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        // Discard the first 5,000 steps; 8 blocks for the error of the mean.
        let volumes: Vec<f64> = rows.iter().filter(|r| r[0] >= 5000.0).map(|r| r[7]).collect();
        let n = volumes.len();
        let mean_v = volumes.iter().sum::<f64>() / n as f64;
        let var_v = volumes.iter().map(|v| (v - mean_v).powi(2)).sum::<f64>() / (n - 1) as f64;
        let blocks: Vec<f64> = volumes.chunks(n / 8).filter(|c| c.len() == n / 8).map(|c| 500.0 / (c.iter().sum::<f64>() / c.len() as f64)).collect();
        let rho = 500.0 / mean_v;
        let rho_err = (blocks.iter().map(|b| (b - rho).powi(2)).sum::<f64>() / (blocks.len() * (blocks.len() - 1)) as f64).sqrt();
        let kappa = var_v / (t_star * mean_v);
        let kappa_blocks: Vec<f64> = volumes
            .chunks(n / 8)
            .filter(|c| c.len() == n / 8)
            .map(|c| {
                let m = c.iter().sum::<f64>() / c.len() as f64;
                c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (c.len() - 1) as f64 / (t_star * m)
            })
            .collect();
        let kb = kappa_blocks.len() as f64;
        let kappa_mean = kappa_blocks.iter().sum::<f64>() / kb;
        let kappa_err = (kappa_blocks.iter().map(|k| (k - kappa_mean).powi(2)).sum::<f64>() / (kb * (kb - 1.0))).sqrt();
        println!("{label}: NPT T* {t_star} P* {p_star}: density {rho:.4} ± {rho_err:.4} vs JZG {rho_eos:.4}; compressibility {kappa:.4} ± {kappa_err:.4} vs JZG {kappa_eos:.4}");
        assert!((rho - rho_eos).abs() < 3.0 * rho_err + 0.01 * rho_eos, "{label}: density {rho:.4} ± {rho_err:.4}, JZG {rho_eos:.4}");
        assert!(kappa_err < 0.3 * kappa_eos, "{label}: the compressibility's block error {kappa_err:.4} is too large to test");
        assert!((kappa - kappa_eos).abs() < 3.0 * kappa_err + 0.1 * kappa_eos, "{label}: compressibility {kappa:.4} ± {kappa_err:.4}, JZG {kappa_eos:.4}");
        let mean_p = rows.iter().filter(|r| r[0] >= 5000.0).map(|r| r[6]).sum::<f64>() / n as f64 / NKTV2P;
        assert!((mean_p - p_star).abs() < 0.1 * p_star, "{label}: mean pressure {mean_p:.3} vs target {p_star}");
        densities.push((rho, rho_err));
    }
    let ((a, ea), (b, eb)) = (densities[0], densities[1]);
    assert!((a - b).abs() < 3.0 * (ea * ea + eb * eb).sqrt() + 0.002, "MTK {a:.4} ± {ea:.4} and c-rescale {b:.4} ± {eb:.4} disagree");
}

/// Nosé-Hoover NVT and NPT, CSVR, and Langevin with stochastic cell rescaling: 170 steps, a
/// checkpoint, 230 more give the very bytes of 400 straight steps (chain and cell variables,
/// the CSVR reservoir and the cell itself are in the checkpoint).
#[test]
fn nose_hoover_npt_and_csvr_restart_bit_for_bit() {
    let t = T_BENCH;
    let integrators = [
        ("nvt", format!("type = \"nose-hoover\"\ntemperature = \"{t} K\"\ndamping = \"2 fs\"\nchain = 4\nloops = 2")),
        ("npt", format!("type = \"nose-hoover\"\ntemperature = \"{t} K\"\ndamping = \"2 fs\"")),
        ("csvr", format!("type = \"csvr\"\ntemperature = \"{t} K\"\ndamping = \"2 fs\"\nseed = 9")),
        ("c-rescale", format!("type = \"langevin\"\ntemperature = \"{t} K\"\ndamping = \"2 fs\"\nseed = 9")),
    ];
    for (label, integrator) in integrators {
        let mut toml = lj_liquid(4, 400, &integrator);
        if label == "npt" {
            toml.push_str("[barostat]\ntype = \"mtk\"\npressure = \"3e6 bar\"\ndamping = \"20 fs\"\ncoupling = \"aniso\"\n");
        }
        if label == "c-rescale" {
            toml.push_str("[barostat]\ntype = \"c-rescale\"\npressure = \"3e6 bar\"\ndamping = \"5 fs\"\ncompressibility = 1e-7\nseed = 2\n");
        }
        let straight = scratch(&format!("ensemble-straight-{label}"));
        run(&plan_in(&straight, &toml), &cpu()).unwrap();
        let split = scratch(&format!("ensemble-split-{label}"));
        let plan = plan_in(&split, &toml);
        run(&plan, &RunOptions { steps: Some(170), ..cpu() }).unwrap();
        let half = split.join("half.chk");
        std::fs::rename(split.join("checkpoint.chk"), &half).unwrap();
        run(&plan, &RunOptions { restart: Some(half), ..cpu() }).unwrap();
        let a = std::fs::read(straight.join("checkpoint.chk")).unwrap();
        let b = std::fs::read(split.join("checkpoint.chk")).unwrap();
        assert!(a == b, "{label}: the restarted run's final state differs from the uninterrupted run's");
        let rows = |d: &std::path::Path| common::thermo_rows(&d.join("thermo.log")).into_iter().filter(|r| r[0] != 170.0).collect::<Vec<_>>();
        assert_eq!(rows(&split), rows(&straight), "{label}: thermo logs differ");
        if label == "npt" || label == "c-rescale" {
            let v: Vec<f64> = rows(&straight).iter().map(|r| r[7]).collect();
            assert!(v.iter().any(|x| (x - v[0]).abs() > 1e-3 * v[0]), "the cell should move under the barostat");
        }
        println!("{label}: 170 + 230 steps restarted end in the same {} bytes as 400 straight", a.len());
    }
}

/// The GPU platform says why it cannot run these integrators, rather than running them on the
/// CPU behind the user's back.
#[test]
fn gpu_platform_refuses_nose_hoover_and_csvr_with_the_reason() {
    for integrator in ["type = \"nose-hoover\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"", "type = \"csvr\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"\nseed = 1"] {
        let dir = scratch("ensemble-gpu");
        let plan = plan_in(&dir, &lj_liquid(3, 10, integrator));
        let err = run(&plan, &RunOptions { platform: Some(Platform::Gpu), ..cpu() }).unwrap_err().to_string();
        assert!(err.contains("runs on the CPU only") && err.contains("platform = \"cpu\""), "{err}");
    }
}

/// Bad settings name their key and line.
#[test]
fn bad_thermostat_and_barostat_settings_name_the_key() {
    let dir = scratch("ensemble-bad");
    let cases = [
        ("type = \"nose-hoover\"\ntemperature = \"100 K\"\ndamping = \"0.01 fs\"", "", "[integrator] damping", "shorter than the timestep"),
        ("type = \"nose-hoover\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"\nseed = 3", "", "[integrator] seed", "not used by type = \"nose-hoover\""),
        ("type = \"langevin\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"\nseed = 3", "\n[barostat]\ntype = \"mtk\"\npressure = \"1 bar\"\ndamping = \"100 fs\"", "[barostat] type", "runs with [integrator] type = \"nose-hoover\""),
        ("type = \"nose-hoover\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"", "\n[barostat]\ntype = \"mtk\"\npressure = \"1 bar\"\ndamping = \"100 fs\"\ncoupling = \"tri\"", "[barostat] coupling", "not supported yet"),
        ("type = \"nose-hoover\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"", "\n[barostat]\ntype = \"berendsen\"\npressure = \"1 bar\"\ndamping = \"100 fs\"", "[barostat] type", "unknown barostat"),
        ("type = \"verlet\"", "\n[barostat]\ntype = \"c-rescale\"\npressure = \"1 bar\"\ndamping = \"100 fs\"\ncompressibility = 4.5e-5\nseed = 1", "[barostat] type", "needs a thermostat"),
        ("type = \"csvr\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"\nseed = 1", "\n[barostat]\ntype = \"c-rescale\"\npressure = \"1 bar\"\ndamping = \"100 fs\"\nseed = 1", "[barostat] compressibility", "required"),
        ("type = \"csvr\"\ntemperature = \"100 K\"\ndamping = \"5 fs\"", "", "[integrator] seed", "required"),
    ];
    for (integrator, barostat, key, what) in cases {
        let toml = format!("{}{barostat}\n", lj_liquid(3, 10, integrator));
        std::fs::write(dir.join("system.toml"), &toml).unwrap();
        let err = mdrun::plan::Plan::from_file(&dir.join("system.toml"), None).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(what), "{key}: {err}");
        assert!(err.contains("system.toml:"), "the file and line: {err}");
    }
}
