//! MD with a long-range model (issue 19), on the CPU fast path: energy conservation no worse
//! than the local model's on the same systems (open and periodic, where Ewald runs every step),
//! a restart bit for bit, the total charge from system.toml and from a deck's data file, and
//! the clear refusals (a charged system with a local model, a slab cell). On the GPU platform:
//! the same energies and forces, the same NVE run, and a restart bit for bit.

mod common;

use mdrun::ml::dataset::Structure;
use mdrun::ml::implementation::{BurnModel, ModelImplementation};
use mdrun::ml::tensor::Ctx;
use mdrun::plan::{Plan, Platform};
use mdrun::run::{RunOptions, run};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The ion pair of systems/ionpair/ionpair.extxyz with the anion moved `extra` Å further from
/// the cation along their axis, as XYZ text; with a `box` (Å), a cubic periodic cell.
fn separated_pair(extra: f64, cell: Option<f64>) -> String {
    let text = std::fs::read_to_string(repo("systems/ionpair/ionpair.extxyz")).unwrap();
    let atoms: Vec<(String, [f64; 3])> = text
        .lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), [1, 2, 3].map(|k| f[k].parse::<f64>().unwrap()))
        })
        .collect();
    // Atoms 0-4: NH4+ (N first); 5-8: HCOO- (C first).
    let (n, c) = (atoms[0].1, atoms[5].1);
    let d = ((c[0] - n[0]).powi(2) + (c[1] - n[1]).powi(2) + (c[2] - n[2]).powi(2)).sqrt();
    let axis = [0, 1, 2].map(|k| (c[k] - n[k]) / d);
    let centre = cell.map_or(0.0, |l| l / 2.0);
    let mut out = format!("{}\n", atoms.len());
    out += &match cell {
        Some(l) => format!("Lattice=\"{l} 0 0 0 {l} 0 0 0 {l}\" pbc=\"T T T\"\n"),
        None => "\n".to_string(),
    };
    for (i, (symbol, r)) in atoms.iter().enumerate() {
        let shift = if i >= 5 { extra } else { 0.0 };
        let x = [0, 1, 2].map(|k| r[k] + shift * axis[k] + centre);
        out += &format!("{symbol} {} {} {}\n", x[0], x[1], x[2]);
    }
    out
}

/// The nitrogen-carbon distance in frame `frame` of an XYZ trajectory of the pair.
fn nitrogen_carbon(path: &Path, frame: usize) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = |i: usize| -> [f64; 3] {
        let f: Vec<f64> = lines[frame * 11 + 2 + i].split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
        [f[0], f[1], f[2]]
    };
    let (n, c) = (at(0), at(5));
    ((c[0] - n[0]).powi(2) + (c[1] - n[1]).powi(2) + (c[2] - n[2]).powi(2)).sqrt()
}

#[test]
fn nve_with_long_range_drifts_no_more_than_the_local_model() {
    // The same SchNet trained on the ion-pair curves without and with charges. The pair starts
    // 8 Å apart (past the 5 Å cutoff) at 50 K and falls together for 0.2 ps (800 steps of
    // 0.25 fs) under the charges' attraction, staying inside the training range (3.5-10 Å);
    // the local model has no force between the ions there. Open (direct sum) and in a 20 Å
    // periodic box (Ewald at every step). Open, the distance-aware MCGM too (its centroids
    // take open structures only). The charges by charge equilibration too: their forces hold
    // only at the minimum (the envelope theorem), so a loose solve would show here as drift.
    let dir = common::scratch("lr-nve");
    let open = ["ionpair-schnet", "ionpair-schnet-charges", "ionpair-schnet-distance", "ionpair-schnet-qeq"];
    let periodic = ["ionpair-schnet", "ionpair-schnet-charges", "ionpair-schnet-qeq"];
    for (what, cell, models) in [("open", None, &open[..]), ("periodic 20 Å box", Some(20.0), &periodic[..])] {
        let mut drifts = Vec::new();
        for model in models {
            std::fs::write(dir.join("pair.xyz"), separated_pair(4.0, cell)).unwrap();
            let toml = format!(
                "[structure]\nfile = \"pair.xyz\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"50 K\"\nseed = 4\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 800\nplatform = \"cpu\"\n[output]\nthermo = 20\nlog = \"thermo.log\"\n[[output.trajectory]]\npath = \"pair-out.xyz\"\ninterval = 800\nwrap = false\n",
                repo(&format!("potentials/{model}")).display()
            );
            let summary = run(&common::plan_in(&dir, &toml), &RunOptions { quiet: true, threads: Some(1), ..Default::default() }).unwrap();
            let rows = common::thermo_rows(&dir.join("thermo.log"));
            let e0 = rows[0][5];
            let max_dev = rows.iter().map(|r| (r[5] - e0).abs()).fold(0.0, f64::max);
            let (ke0, ke1) = (rows[0][4], rows.last().unwrap()[4]);
            let drift = summary.energy_drift_ev_per_atom_per_ps.unwrap();
            let gap = |frame: usize| nitrogen_carbon(&dir.join("pair-out.xyz"), frame);
            let (d0, d1) = (gap(0), gap(1));
            println!("{what}, {model}: N-C {d0:.2} -> {d1:.2} Å, kinetic energy {ke0:.4} -> {ke1:.4} eV, largest |E - E0| {max_dev:.2e} eV, drift {drift:+.2e} eV/atom/ps");
            assert!(max_dev < 0.02 * ke1.max(ke0), "{what}, {model}: energy wanders by {max_dev} eV");
            drifts.push((drift.abs(), d0 - d1));
        }
        // With long range the ions pull each other in from beyond the cutoff; the local model
        // sees nothing between them there (its ions drift apart or stay, by their velocities).
        for (model, long_range) in models.iter().zip(&drifts).skip(1) {
            assert!(long_range.1 > 0.3 + drifts[0].1, "{what}: the ions closed in by {:.2} Å with {model}, {:.2} Å without", long_range.1, drifts[0].1);
            // f32 forces leave a noise floor of about 1e-5 eV/atom/ps in runs this short.
            assert!(long_range.0 <= 2.0 * drifts[0].0 + 1e-5, "{what}: drift with {model} {:.2e}, local {:.2e}", long_range.0, drifts[0].0);
        }
    }
}

#[test]
fn an_open_cluster_on_the_free_space_mesh_conserves_energy_as_the_direct_sum_does() {
    // Eight ion pairs 16 Å apart (72 atoms, open): past the model's 5 Å cutoff and the mesh's
    // 10 Å real-space cutoff, the pairs feel each other only through the mesh. 200 NVE steps of
    // 0.25 fs from 20 K with the charges summed on the free-space mesh and directly over all
    // pairs: the same energies within the mesh's error, the same conservation; the run's
    // header names each method.
    let dir = common::scratch("lr-open-mesh");
    let pair = separated_pair(1.0, None);
    let atoms: Vec<&str> = pair.lines().skip(2).filter(|l| !l.trim().is_empty()).collect();
    let mut xyz = format!("{}\n\n", 8 * atoms.len());
    for k in 0..8 {
        let offset = [k & 1, (k >> 1) & 1, k >> 2].map(|b| 16.0 * b as f64);
        for line in &atoms {
            let f: Vec<&str> = line.split_whitespace().collect();
            let r = [1, 2, 3].map(|c| f[c].parse::<f64>().unwrap() + offset[c - 1]);
            xyz += &format!("{} {} {} {}\n", f[0], r[0], r[1], r[2]);
        }
    }
    std::fs::write(dir.join("pairs.xyz"), xyz).unwrap();
    let mut runs = Vec::new();
    for (method, words) in [("mesh", "charges summed by a particle-mesh sum in free space on a "), ("sum", "charges summed by the direct sum over all pairs (open cell)")] {
        let toml = format!(
            "[structure]\nfile = \"pairs.xyz\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"20 K\"\nseed = 5\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\newald = \"{method}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 200\nplatform = \"cpu\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\n",
            repo("potentials/ionpair-schnet-charges").display()
        );
        let plan = common::plan_in(&dir, &toml);
        let name = plan.potential.instantiate(&plan.system).unwrap().name();
        assert!(name.contains(words), "{method}: {name}");
        run(&plan, &RunOptions { quiet: true, threads: Some(2), ..Default::default() }).unwrap();
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        let e0 = rows[0][5];
        let wander = rows.iter().map(|r| (r[5] - e0).abs()).fold(0.0, f64::max);
        println!("{method}: E0 {e0:.6} eV, largest |E - E0| {wander:.2e} eV over {} rows; {name}", rows.len());
        runs.push((rows[0][3], wander, rows.last().unwrap()[4]));
    }
    let ((mesh_pe, mesh_wander, ke), (sum_pe, sum_wander, _)) = (runs[0], runs[1]);
    assert!((mesh_pe - sum_pe).abs() < 2e-5 * sum_pe.abs(), "first potential energies: mesh {mesh_pe}, sum {sum_pe}");
    assert!(mesh_wander < 0.02 * ke && mesh_wander <= 2.0 * sum_wander + 1e-4, "|E - E0| up to {mesh_wander} on the mesh, {sum_wander} by the sum");
}

#[test]
fn a_restarted_long_range_run_reproduces_the_straight_run_bit_for_bit() {
    // Langevin, 64 ion pairs (576 atoms: PME and the kept real-space pairs) and one pair
    // alone in its box (plain Ewald), with learned charges; one open pair with the
    // distance-aware MCGM; 576 atoms as an open cluster on the free-space mesh (its grid
    // follows the atoms); restarted part way against the straight run. The restart rebuilds
    // the real-space pairs where the straight run still uses older ones. The model knows
    // isolated pairs: the lattice heats past the failure check's 3,000 K (`[run]
    // max_temperature`) and stays closer than its training data (`[run] max_outside_rows`),
    // checks this test of determinism turns off.
    let dir = common::scratch("lr-restart-structure");
    std::fs::write(dir.join("pair.extxyz"), separated_pair(0.0, Some(10.0))).unwrap();
    std::fs::write(dir.join("pair.xyz"), separated_pair(0.0, None)).unwrap();
    let lattice = repo("systems/ionpair/ion-lattice.extxyz");
    let cases = [
        ("repeat = [4, 4, 4]", dir.join("pair.extxyz"), "ionpair-schnet-charges", ""),
        ("", dir.join("pair.extxyz"), "ionpair-schnet-charges", ""),
        ("", dir.join("pair.xyz"), "ionpair-schnet-distance", ""),
        // Charge equilibration by conjugate gradients, restarted from scratch at every step.
        ("repeat = [2, 2, 2]", dir.join("pair.extxyz"), "ionpair-schnet-qeq", ""),
        // 64 cells of the lattice as an open cluster, its charges on the free-space mesh; 100
        // steps (its surface collapses, H on H, past step 110: the model never saw one).
        ("repeat = [4, 4, 4]\npbc = [false, false, false]", lattice, "ionpair-schnet-charges", "ewald = \"mesh\"\n"),
    ];
    for (repeat, file, model, method) in cases {
        let toml = format!(
            "[structure]\nfile = \"{}\"\n{repeat}\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"100 K\"\nseed = 1\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"100 K\"\ndamping = \"0.1 ps\"\nseed = 3\n[neighbor]\nskin = \"0.1 A\"\n[run]\nsteps = 200\nplatform = \"cpu\"\nmax_temperature = \"off\"\nmax_outside_rows = \"off\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
            file.display(),
            repo(&format!("potentials/{model}")).display()
        )
        .replace("[potential]\n", &format!("[potential]\n{method}"))
        .replace("steps = 200", if method.is_empty() { "steps = 200" } else { "steps = 100" });
        let (whole, split) = (common::scratch("lr-restart-whole"), common::scratch("lr-restart-split"));
        let options = RunOptions { quiet: true, threads: Some(2), ..Default::default() };
        let straight = run(&common::plan_in(&whole, &toml), &options).unwrap();
        let plan = common::plan_in(&split, &toml);
        run(&plan, &RunOptions { steps: Some(87), ..options.clone() }).unwrap();
        let half = split.join("half.chk");
        std::fs::rename(split.join("final.chk"), &half).unwrap();
        run(&plan, &RunOptions { restart: Some(half), ..options.clone() }).unwrap();
        assert!(straight.neighbor_builds > 1, "the list was never rebuilt");
        let (a, b) = (std::fs::read(whole.join("final.chk")).unwrap(), std::fs::read(split.join("final.chk")).unwrap());
        assert!(a == b, "repeat {repeat}, {model}: the restarted run's final state differs from the straight run's");
        println!("{model}, {} atoms{}: 87 + {} steps restarted = {} straight, bit for bit ({} neighbour builds)", plan.system.len(), if method.is_empty() { "" } else { ", open, mesh" }, straight.steps - 87, straight.steps, straight.neighbor_builds);
    }
}

/// The total conjugate-gradient iterations of a Qeq potential so far, from its run note.
fn equilibration_iterations(potential: &dyn mdrun::potential::Potential) -> f64 {
    let note = potential.notes().into_iter().find(|n| n.starts_with("charge equilibration:")).expect("a Qeq model notes its iterations");
    let words: Vec<&str> = note.split_whitespace().collect();
    let per: f64 = words[2].parse().unwrap();
    let evaluations: f64 = words[words.len() - 2].parse().unwrap();
    // The note gives the mean to 0.1.
    (per * evaluations).round()
}

#[test]
fn charge_equilibration_starts_from_the_charges_before_and_a_restart_takes_them_back() {
    // The lattice cell repeated 3 x 3 x 2 (162 atoms, Ewald), moved along a straight line in
    // small steps as MD moves it. Cold, the solve takes tens of iterations; at the same
    // positions again it takes none; along the line, started from the charges extrapolated
    // from the two evaluations before, far fewer than cold, and it lands where a cold solve
    // does. A fresh potential given the carried state (what a checkpoint saves) repeats the
    // last evaluation bit for bit, as a restart's first evaluation must.
    let dir = common::scratch("lr-warm-start");
    let toml = ion_toml("", "ionpair-schnet-qeq", "").replace("[potential]", "repeat = [3, 3, 2]
[potential]");
    let plan = common::plan_in(&dir, &toml);
    let mut system = plan.system.clone();
    let mut warm = plan.potential.instantiate(&system).unwrap();
    let first = common::evaluate(&system, warm.as_mut(), 1.0);
    let cold_iterations = equilibration_iterations(warm.as_ref());
    let again = common::evaluate(&system, warm.as_mut(), 1.0);
    assert_eq!(equilibration_iterations(warm.as_ref()), cold_iterations, "the same positions again took iterations");
    assert!((again.energy - first.energy).abs() < 1e-9 * first.energy.abs(), "{} vs {}", again.energy, first.energy);
    // Up to 0.005 Å a step, as an MD step of 0.25 fs moves hydrogen at 300 K.
    let direction: Vec<[f64; 3]> = (0..system.len()).map(|i| [0.0025 * ((i * 7 % 5) as f64 - 2.0), 0.002 * ((i * 3 % 4) as f64 - 1.5), 0.004 * ((i % 3) as f64 - 1.0)]).collect();
    let mut carried = Vec::new();
    let mut warm_iterations = Vec::new();
    let mut last = first;
    for _ in 0..5 {
        for (r, d) in system.positions.iter_mut().zip(&direction) {
            (0..3).for_each(|k| r[k] += d[k]);
        }
        let before = equilibration_iterations(warm.as_ref());
        last = common::evaluate(&system, warm.as_mut(), 1.0);
        warm_iterations.push(equilibration_iterations(warm.as_ref()) - before);
        // As a checkpoint after this step would save it.
        carried = warm.carried_state();
    }
    // The same positions solved cold.
    let mut cold = plan.potential.instantiate(&system).unwrap();
    let reference = common::evaluate(&system, cold.as_mut(), 1.0);
    let cold_here = equilibration_iterations(cold.as_ref());
    println!("cold: {cold_iterations} iterations (here {cold_here}); warm along the line: {warm_iterations:?}");
    assert!(cold_here >= 20.0, "the cold solve took {cold_here} iterations: nothing to save");
    // Three solutions behind (the last two steps), the extrapolated start is within O(step³).
    for &n in &warm_iterations[3..] {
        assert!(n <= 0.75 * cold_here, "warm solves took {warm_iterations:?} iterations, cold {cold_here}");
    }
    let largest = reference.forces.iter().flatten().fold(0.0f64, |m, f| m.max(f.abs()));
    let gap = last.forces.iter().flatten().zip(reference.forces.iter().flatten()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(gap < 1e-5 * largest && (last.energy - reference.energy).abs() < 1e-8 * reference.energy.abs(), "warm and cold solutions differ: forces by {gap:.2e} of {largest:.2e}, energies {} vs {}", last.energy, reference.energy);
    // The carried state (what the last evaluation started from) makes a fresh potential repeat it.
    assert!(!carried.is_empty(), "a Qeq potential in MD carries its charges");
    let mut restarted = plan.potential.instantiate(&system).unwrap();
    restarted.restore_carried_state(&carried).unwrap();
    let repeated = common::evaluate(&system, restarted.as_mut(), 1.0);
    let bits = |o: &mdrun::potential::ForceOutput| (o.energy.to_bits(), o.forces.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>());
    assert!(bits(&repeated) == bits(&last), "the restored potential's evaluation differs from the one it repeats");
    // A model without equilibrated charges carries nothing and refuses a state.
    let mut local = common::plan_in(&dir, &ion_toml("", "ionpair-schnet-charges", "")).potential.instantiate(&plan.system).unwrap();
    assert!(local.carried_state().is_empty());
    let err = local.restore_carried_state(&carried).unwrap_err();
    assert!(err.contains("carries nothing"), "{err}");
}

/// The potential energy of `toml`'s system at its first step, from the plan's own potential.
fn first_energy(plan: &Plan) -> f64 {
    let mut potential = plan.potential.instantiate(&plan.system).unwrap();
    common::evaluate(&plan.system, potential.as_mut(), 1.0).energy
}

fn ion_toml(charge_line: &str, model: &str, pbc: &str) -> String {
    format!(
        "[structure]\nfile = \"{}\"\n{charge_line}{pbc}[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 1\n",
        repo("systems/ionpair/ion-lattice.extxyz").display(),
        repo(&format!("potentials/{model}")).display()
    )
}

#[test]
fn the_total_charge_reaches_the_model_from_system_toml() {
    // MD's energy of the lattice cell with charge 0 and +1 equals the burn model's for the
    // structure labelled so; the two differ (the charges, and their Coulomb energy, change).
    let dir = common::scratch("lr-total-charge");
    let model = mdrun::ml::file::load(&repo("potentials/ionpair-schnet-charges"), &Ctx::cpu_inference(true)).unwrap().0;
    let mut energies = Vec::new();
    for charge in [0.0, 1.0] {
        let plan = common::plan_in(&dir, &ion_toml(&format!("charge = {charge}\n"), "ionpair-schnet-charges", ""));
        let md = first_energy(&plan);
        let s = &plan.system;
        let numbers = s.types.iter().map(|&t| mdrun::elements::atomic_number(&s.species[t as usize].name).unwrap()).collect();
        let mut structure = Structure { numbers, positions: s.positions.clone(), cell: s.cell.clone(), energy: 0.0, forces: vec![], kind: "ions".into(), charge: 0.0, virial: None };
        structure.charge = charge;
        let reference = BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }.evaluate(&[structure]).unwrap()[0].energy;
        println!("charge {charge}: MD {md:.6} eV, burn reference {reference:.6} eV");
        assert!((md - reference).abs() < 1e-5 * plan.system.len() as f64, "charge {charge}: {md} vs {reference}");
        energies.push(md);
    }
    assert!((energies[1] - energies[0]).abs() > 1e-3, "the total charge changed nothing: {energies:?}");
}

#[test]
fn the_ewald_method_reaches_both_platforms_and_the_run_header() {
    // `[potential] ewald` picks the CPU's reciprocal sum too: the 9-atom lattice cell (plain
    // Ewald by default, under 500 atoms) by the sum over k and by the mesh agree within the
    // mesh's error, and differ (the key took effect). The potential's description, which the
    // run's header prints, says which method sums the charges, on each platform.
    let dir = common::scratch("lr-ewald-cpu");
    let plan_with = |method: &str| common::plan_in(&dir, &ion_toml("", "ionpair-schnet-charges", "").replace("[potential]\n", &format!("[potential]\newald = \"{method}\"\n")));
    let mut energies = Vec::new();
    for (method, words) in [("auto", "Ewald over"), ("sum", "Ewald over"), ("mesh", "particle-mesh Ewald on a")] {
        let plan = plan_with(method);
        let name = plan.potential.instantiate(&plan.system).unwrap().name();
        println!("{method}: {name}");
        assert!(name.contains(&format!("charges summed by {words}")), "{method}: {name}");
        energies.push(first_energy(&plan));
        let gpu = match mdrun::engine::gpu_potential(&plan, &plan.system).unwrap() {
            mdrun::gpu::GpuPotential::Ml(model) => model.description,
            _ => unreachable!("a learned model"),
        };
        println!("{method} on the GPU: {gpu}");
        let expected = if method == "mesh" { "particle-mesh Ewald on the GPU, a " } else { "Ewald on the GPU over about" };
        assert!(gpu.contains(expected), "{method}: {gpu}");
    }
    let (auto, sum, mesh) = (energies[0], energies[1], energies[2]);
    println!("auto {auto:.9} eV, sum {sum:.9} eV, mesh {mesh:.9} eV");
    assert!(auto == sum, "auto {auto} is not the sum {sum} for 9 atoms");
    assert!(mesh != sum && (mesh - sum).abs() < 1e-4, "mesh {mesh} against sum {sum}");
}

#[test]
fn charged_systems_slabs_and_impossible_grids_are_refused_with_the_reason() {
    let dir = common::scratch("lr-refusals");
    let refuse = |toml: &str| {
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        Plan::from_file(&dir.join("system.toml"), None).unwrap_err().to_string()
    };
    let local = refuse(&ion_toml("charge = 1\n", "ionpair-schnet", ""));
    println!("{local}");
    assert!(local.contains("[structure] charge") && local.contains("needs a long-range model"), "{local}");
    let slab = refuse(&ion_toml("", "ionpair-schnet-charges", "pbc = [true, true, false]\n"));
    println!("{slab}");
    assert!(slab.contains("[potential] model") && slab.contains("periodic along all three axes or along none"), "{slab}");
    let periodic = refuse(&ion_toml("", "ionpair-schnet-distance", ""));
    println!("{periodic}");
    assert!(periodic.contains("[potential] model") && periodic.contains("takes open structures only"), "{periodic}");
    // The GPU's particle-mesh Ewald runs each grid line in one workgroup: a cell 490 Å long
    // needs more points along it than that takes, and is refused there (before any adapter is
    // opened), with the reason.
    let plan = common::plan_in(&dir, &ion_toml("", "ionpair-schnet-charges", "repeat = [60, 6, 6]\n"));
    let err = run(&plan, &RunOptions { quiet: true, platform: Some(Platform::Gpu), ..Default::default() }).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("platform \"gpu\"") && err.contains("up to 1024 grid points along a cell vector; this cell needs 1458 x"), "{err}");
    // Charge equilibration runs on the CPU only: the GPU platform refuses it, saying so.
    let plan = common::plan_in(&dir, &ion_toml("", "ionpair-schnet-qeq", ""));
    let err = run(&plan, &RunOptions { quiet: true, platform: Some(Platform::Gpu), ..Default::default() }).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("charge equilibration") && err.contains("--platform cpu"), "{err}");
    // The method is checked where it is written.
    let toml = ion_toml("", "ionpair-schnet-charges", "").replace("[potential]\n", "[potential]\newald = \"pppm\"\n");
    let unknown = refuse(&toml);
    println!("{unknown}");
    assert!(unknown.contains("[potential] ewald") && unknown.contains("unknown method 'pppm'"), "{unknown}");
    let local = refuse(&ion_toml("", "ionpair-schnet", "").replace("[potential]\n", "[potential]\newald = \"mesh\"\n"));
    println!("{local}");
    assert!(local.contains("[potential] ewald") && local.contains("this model has no charges"), "{local}");
    // An open pair 20 km apart on the free-space mesh would need a grid of about 10^14 points:
    // the run stops at its first step with the reason (not "non-finite forces").
    std::fs::write(dir.join("far.xyz"), separated_pair(2e5, None)).unwrap();
    let toml = format!(
        "[structure]\nfile = \"far.xyz\"\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\newald = \"mesh\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 1\nplatform = \"cpu\"\n",
        repo("potentials/ionpair-schnet-charges").display()
    );
    let err = run(&common::plan_in(&dir, &toml), &RunOptions { quiet: true, ..Default::default() }).unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("the potential could not evaluate the forces") && err.contains("grid points") && err.contains("ewald = \"sum\""), "{err}");
}

#[test]
fn learned_charges_run_on_the_gpu_as_on_the_cpu() {
    if common::gpu().is_none() {
        return;
    }
    // The GPU kernels' energy and forces of the ion pair in a 12 Å box, neutral and +1 (the
    // projection to the total charge, the charge embedding and Ewald's background term), against
    // the burn model in f64: by the sum over k-vectors and by particle-mesh Ewald.
    let model = mdrun::ml::file::load(&repo("potentials/ionpair-schnet-charges"), &Ctx::cpu_inference(true)).unwrap().0;
    let dir = common::scratch("lr-gpu");
    let text = separated_pair(0.0, Some(12.0));
    let atoms: Vec<(u32, [f64; 3])> = text
        .lines()
        .skip(2)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (mdrun::elements::atomic_number(f[0]).unwrap(), [1, 2, 3].map(|k| f[k].parse::<f64>().unwrap() as f32 as f64))
        })
        .collect();
    let pair = Structure {
        numbers: atoms.iter().map(|a| a.0).collect(),
        positions: atoms.iter().map(|a| a.1).collect(),
        cell: mdrun::cell::Cell::orthorhombic(12.0, 12.0, 12.0).unwrap(),
        energy: 0.0,
        forces: vec![],
        kind: "ions".into(),
        charge: 0.0,
        virial: None,
    };
    let mut gpu = mdrun::gpu::GpuKernels::new(&model).unwrap().expect("an adapter");
    for (method, mesh) in [("the sum over k", false), ("the mesh", true)] {
        gpu.ewald_mesh = Some(mesh);
        let mut energies = Vec::new();
        for charge in [0.0, 1.0] {
            let structure = Structure { charge, ..pair.clone() };
            let got = gpu.evaluate(std::slice::from_ref(&structure)).unwrap().remove(0);
            let reference = BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }.evaluate(&[structure]).unwrap().remove(0);
            let scale = reference.forces.iter().flatten().fold(0.0f64, |m, f| m.max(f.abs()));
            let forces = got.forces.iter().flatten().zip(reference.forces.iter().flatten()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale;
            println!("{method}, charge {charge}: GPU {:.6} eV, burn f64 {:.6} eV; forces within {forces:.1e} of the largest", got.energy, reference.energy);
            assert!((got.energy - reference.energy).abs() < 1e-5 * 9.0, "{method}, charge {charge}: {} vs {}", got.energy, reference.energy);
            assert!(forces < 5e-5, "{method}, charge {charge}: forces differ by {forces:.1e}");
            energies.push(got.energy);
        }
        assert!((energies[1] - energies[0]).abs() > 1e-3, "{method}: the total charge changed nothing on the GPU: {energies:?}");
    }
    // NVE of the pair falling together from 8 Å in a 20 Å box (as the CPU test above), on both
    // platforms, the GPU with either method: the GPU conserves energy as the CPU does and the
    // ions close in alike.
    std::fs::write(dir.join("pair.xyz"), separated_pair(4.0, Some(20.0))).unwrap();
    let mut closing = Vec::new();
    for (platform, ewald) in [("cpu", "auto"), ("gpu", "sum"), ("gpu", "mesh")] {
        let toml = format!(
            "[structure]\nfile = \"pair.xyz\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"50 K\"\nseed = 4\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\newald = \"{ewald}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 800\nplatform = \"{platform}\"\n[output]\nthermo = 20\nlog = \"thermo.log\"\n[[output.trajectory]]\npath = \"pair-out.xyz\"\ninterval = 800\nwrap = false\n",
            repo("potentials/ionpair-schnet-charges").display()
        );
        let summary = run(&common::plan_in(&dir, &toml), &RunOptions { quiet: true, threads: Some(1), ..Default::default() }).unwrap();
        let rows = common::thermo_rows(&dir.join("thermo.log"));
        let e0 = rows[0][5];
        let max_dev = rows.iter().map(|r| (r[5] - e0).abs()).fold(0.0, f64::max);
        let ke = rows.iter().map(|r| r[4]).fold(0.0, f64::max);
        let (d0, d1) = (nitrogen_carbon(&dir.join("pair-out.xyz"), 0), nitrogen_carbon(&dir.join("pair-out.xyz"), 1));
        println!("{platform} ({ewald}): N-C {d0:.3} -> {d1:.3} Å, largest |E - E0| {max_dev:.2e} eV (largest kinetic energy {ke:.4} eV), drift {:+.2e} eV/atom/ps", summary.energy_drift_ev_per_atom_per_ps.unwrap());
        assert!(max_dev < 0.02 * ke, "{platform}: energy wanders by {max_dev} eV");
        closing.push(d0 - d1);
    }
    for gpu in &closing[1..] {
        assert!(closing[0] > 0.3 && (gpu - closing[0]).abs() < 0.02 * closing[0], "the ions closed in by {:.3} Å on the CPU, {gpu:.3} Å on the GPU", closing[0]);
    }
    // Langevin on the GPU (the pair 8 Å apart in its 20 Å box), restarted part way: the same
    // bytes as the straight run, with either method (the mesh's atomics add integers; its
    // run is shorter, the mesh costing ten times the sum in this small box on lavapipe).
    for (ewald, steps, split_at) in [("sum", 200, 87), ("mesh", 80, 37)] {
        let toml = format!(
            "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"100 K\"\nseed = 1\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\newald = \"{ewald}\"\n[integrator]\ntype = \"langevin\"\ntimestep = \"0.5 fs\"\ntemperature = \"100 K\"\ndamping = \"0.1 ps\"\nseed = 3\n[run]\nsteps = {steps}\nplatform = \"gpu\"\n[output]\nthermo = 10\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
            dir.join("pair.xyz").display(),
            repo("potentials/ionpair-schnet-charges").display()
        );
        let (whole, split) = (common::scratch(&format!("lr-gpu-whole-{ewald}")), common::scratch(&format!("lr-gpu-split-{ewald}")));
        let options = RunOptions { quiet: true, ..Default::default() };
        run(&common::plan_in(&whole, &toml), &options).unwrap();
        let plan = common::plan_in(&split, &toml);
        run(&plan, &RunOptions { steps: Some(split_at), ..options.clone() }).unwrap();
        std::fs::rename(split.join("final.chk"), split.join("half.chk")).unwrap();
        run(&plan, &RunOptions { restart: Some(split.join("half.chk")), ..options.clone() }).unwrap();
        let (a, b) = (std::fs::read(whole.join("final.chk")).unwrap(), std::fs::read(split.join("final.chk")).unwrap());
        assert!(a == b, "{ewald}: the GPU run restarted at step {split_at} differs from the straight run");
    }
}

#[test]
fn a_deck_takes_the_total_charge_from_its_atoms() {
    // The lattice cell as a LAMMPS data file (atom_style charge) whose charges sum to +1, run
    // 0 under pair_style ml: the deck's energy is the system.toml run's with charge = 1.
    let dir = common::scratch("lr-deck");
    let plan = common::plan_in(&dir, &ion_toml("charge = 1\n", "ionpair-schnet-charges", ""));
    let expected = first_energy(&plan);
    let s = &plan.system;
    let v = s.cell.vectors();
    let names: Vec<String> = s.species.iter().map(|sp| sp.name.clone()).collect();
    let mut data = format!("ions\n\n{} atoms\n{} atom types\n\n0 {} xlo xhi\n0 {} ylo yhi\n0 {} zlo zhi\n\nMasses\n\n", s.len(), names.len(), v[0][0], v[1][1], v[2][2]);
    for (t, sp) in s.species.iter().enumerate() {
        data += &format!("{} {}\n", t + 1, sp.mass);
    }
    data += "\nAtoms # charge\n\n";
    for (i, r) in s.positions.iter().enumerate() {
        // +1 spread over the first two atoms: only the total reaches the model.
        let q = if i < 2 { 0.5 } else { 0.0 };
        data += &format!("{} {} {q} {} {} {}\n", i + 1, s.types[i] + 1, r[0], r[1], r[2]);
    }
    std::fs::write(dir.join("ions.data"), data).unwrap();
    let deck = format!(
        "units metal\natom_style charge\nboundary p p p\nread_data ions.data\npair_style ml {}\npair_coeff * * {}\nthermo_style custom step pe\nthermo_modify format float %.10f\nrun 0\n",
        repo("potentials/ionpair-schnet-charges").display(),
        names.join(" ")
    );
    std::fs::write(dir.join("in.ions"), deck).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).current_dir(&dir).args(["-in", "in.ions"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let pe: f64 = stdout.lines().skip_while(|l| !l.trim_start().starts_with("Step")).nth(1).and_then(|l| l.split_whitespace().nth(1)).and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("{stdout}"));
    println!("deck pe {pe:.8} eV, system.toml with charge = 1: {expected:.8} eV");
    assert!((pe - expected).abs() < 1e-6, "{pe} vs {expected}");
}
