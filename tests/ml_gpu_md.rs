//! MD with the machine-learned potential on the GPU (shaders/ml.wgsl inside the resident step):
//! the forces follow moving atoms, the trajectory follows the CPU's, energy is conserved, hard
//! clustering regroups as on the CPU; a buffer past the adapter's binding limit is refused up
//! front. (The kernels' per-layer agreement with burn and the CPU fast path is
//! tests/ml_conformance.rs.)

mod common;

use common::{gpu, random_system};
use mdrun::cell::Cell;
use mdrun::gpu::{DenseTiles, GpuContext, GpuPotential, GpuSimulation};
use mdrun::integrate::Integrator;
use mdrun::ml::dataset::Structure;
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::inference::Inference;
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::{Ctx, to_vec};
use mdrun::potential::mcgm::{GpuModel, TrainingRange};
use mdrun::system::System;

/// Four elements: hard level 2 is K-means of four element means into two clusters.
fn settings() -> Vec<(&'static str, ModelConfig)> {
    common::backbone_settings(&[1, 6, 7, 8])
}

/// A periodic H/C/N/O gas at f32-exact positions (the GPU kernels read f32 positions).
fn gas(n: usize, seed: u32) -> System {
    gas_in(n, Cell::orthorhombic(12.0, 12.5, 13.0).unwrap(), seed)
}

/// The same in `cell`.
fn gas_in(n: usize, cell: Cell, seed: u32) -> System {
    let mut s = random_system(n, cell, &["H", "C", "N", "O"], 1.1, seed);
    s.wrap_positions();
    for x in &mut s.positions {
        *x = x.map(|v| v as f32 as f64);
    }
    s
}

fn structure(system: &System) -> Structure {
    let numbers = system.types.iter().map(|&t| [1, 6, 7, 8][t as usize]).collect();
    Structure { numbers, positions: system.positions.clone(), cell: system.cell.clone(), energy: 0.0, forces: vec![], kind: "test".into(), charge: 0.0, virial: None }
}

fn max_abs(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(0.0, |m, x| m.max(x.abs()))
}

fn on_gpu(ctx: GpuContext, model: &Model, system: System, integrator: Integrator, timestep: f64) -> GpuSimulation {
    on_gpu_with(ctx, model, system, integrator, timestep, false)
}

/// The test model as the GPU's potential, its filter tables in f16 if `half_tables`.
fn ml_potential(model: &Model, half_tables: bool) -> GpuPotential {
    GpuPotential::Ml(Box::new(GpuModel {
        inference: Inference::new(model).unwrap(),
        species_of_type: vec![0, 1, 2, 3],
        description: "test model".into(),
        cautions: Vec::new(),
        range: TrainingRange::unlimited(4),
        total_charge: 0.0,
        half_tables,
    }))
}

/// `on_gpu`, with the filter tables in f16 if `half_tables`.
fn on_gpu_with(ctx: GpuContext, model: &Model, system: System, integrator: Integrator, timestep: f64, half_tables: bool) -> GpuSimulation {
    let potential = ml_potential(model, half_tables);
    GpuSimulation::new(ctx, system, potential, integrator, timestep, 0.5, 1e4, 0, None).unwrap()
}

fn test_model(config: ModelConfig, ctx: &Ctx) -> Model {
    let normalization = Normalization { reference_energies: vec![-13.6, -1030.0, -1480.0, -2040.0], energy_scale: 1.3, training_min_distance: 0.0, ..Default::default() };
    Model::new(config, normalization, 5, ctx)
}

/// The largest difference between the simulation's forces and the reference's at its
/// positions, relative to the largest reference force.
fn force_error(sim: &mut GpuSimulation, model: &Model, ctx: &Ctx) -> f64 {
    let s = structure(&sim.system().unwrap().clone());
    let batch = Batch::new(&[&s], 5.0, |z| model.species_index(z)).unwrap();
    let reference = model.predict(&batch, &GraphTensors::new(&batch, ctx), ctx).unwrap();
    let f_ref = to_vec(reference.forces);
    let forces = sim.forces().unwrap();
    max_abs(forces.iter().flatten().zip(&f_ref).map(|(a, b)| a - b)) / max_abs(f_ref.iter().copied())
}

#[test]
fn gpu_kernels_follow_moving_atoms() {
    // The kernels' agreement with burn and the CPU, layer by layer, is tests/ml_conformance.rs.
    // Here the atoms move: after some steps the list, the graph and the hierarchy are rebuilt on
    // the GPU, and the forces still agree with the reference at the new positions.
    let Some(_) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    for (name, config) in settings() {
        let model = test_model(config, &ctx);
        let mut sim = on_gpu(GpuContext::open(false).unwrap().unwrap(), &model, gas(160, 7), Integrator::VelocityVerlet, 0.0005);
        sim.advance(10, true).unwrap();
        let f_err = force_error(&mut sim, &model, &ctx);
        println!("{name}: after 10 steps, forces {f_err:.1e} of max |F|");
        assert!(f_err < 1e-4, "{name}: after 10 steps, forces differ by {f_err:e}");
    }
}

#[test]
fn the_model_follows_the_neighbour_list_when_its_capacity_grows() {
    // 160 atoms packed into one corner of a mostly empty 40 Å box: the list's first capacity,
    // sized from the mean density, holds a tenth of their neighbours, so it grows before the
    // first forces, and the model's edge buffer (ml_edges: the pairs inside the cutoff, placed
    // once per evaluation) must grow with it. The forces still agree with the reference.
    let Some(_) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    for (name, config) in settings() {
        let model = test_model(config, &ctx);
        let mut clump = random_system(160, Cell::orthorhombic(10.0, 10.0, 10.0).unwrap(), &["H", "C", "N", "O"], 1.1, 11);
        clump.cell = Cell::orthorhombic(40.0, 40.0, 40.0).unwrap();
        for x in &mut clump.positions {
            *x = x.map(|v| (v + 15.0) as f32 as f64);
        }
        let mut sim = on_gpu(GpuContext::open(false).unwrap().unwrap(), &model, clump, Integrator::VelocityVerlet, 0.0005);
        assert!(sim.capacity_grows > 0, "{name}: the first capacity held the clump: the test does not test growth");
        let f_err = force_error(&mut sim, &model, &ctx);
        println!("{name}: capacity grew {} time(s) to {}; forces {f_err:.1e} of max |F|", sim.capacity_grows, sim.capacity());
        assert!(f_err < 1e-4, "{name}: after the list grew, forces differ by {f_err:e}");
    }
}

#[test]
fn mcgm_pools_a_structure_of_more_chunks_than_a_reduction_has_threads() {
    // MCGM pools the atoms in chunks of 64 (ml_pool), then adds a structure's chunks with a few
    // threads a column and a tree (ml_pool_finish). 4,220 atoms make 66 chunks, the last one
    // partial: eight threads a column, adding eight or nine chunks each. The forces with hard
    // and soft MCGM agree with the reference, as they do for the 160-atom gas (three chunks).
    // Had each thread added only its first chunk, they would part by 1.5e-3 of the largest;
    // f32 keeps them within 1e-5. (The pooling is the backbone's features either way: SchNet's
    // are enough here.)
    let Some(_) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    let big = gas_in(4220, Cell::orthorhombic(35.0, 35.5, 36.5).unwrap(), 5);
    for (name, config) in settings().into_iter().filter(|(name, _)| name.starts_with("schnet + MCGM")) {
        let model = test_model(config, &ctx);
        let mut sim = on_gpu(GpuContext::open(false).unwrap().unwrap(), &model, big.clone(), Integrator::VelocityVerlet, 0.0005);
        let f_err = force_error(&mut sim, &model, &ctx);
        println!("{name}, 4,220 atoms: forces {f_err:.1e} of max |F|");
        assert!(f_err < 2e-5, "{name}: 4,220 atoms, forces differ by {f_err:e}");
    }
}

#[test]
fn f16_filter_tables_keep_the_forces_within_their_rounding() {
    // The same gas with every table read in f32 and in f16 (`gpu_tables = "f16"`, on a grid of
    // every eighth node): f16 keeps 11 bits, so its forces part from the reference by about 2e-3
    // of the largest force, far more than f32's few 1e-6 (which shows the f16 tables are the
    // ones read) and less than a trained model's own error.
    let Some(_) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    for (name, config) in settings() {
        let model = test_model(config, &ctx);
        let error = |half| force_error(&mut on_gpu_with(GpuContext::open(false).unwrap().unwrap(), &model, gas(160, 7), Integrator::VelocityVerlet, 0.0005, half), &model, &ctx);
        let (full, half) = (error(false), error(true));
        println!("{name}: forces against the reference, f32 tables {full:.1e}, f16 tables {half:.1e} of max |F|");
        assert!(full < 1e-5 && half > 10.0 * full && half < 5e-3, "{name}: f32 tables {full:e}, f16 {half:e}");
    }
}

#[test]
fn f16_filter_tables_conserve_energy_as_the_f32_ones_do() {
    // The forces are the exact gradient of the energy of the f16 tables' piecewise cubic, so NVE
    // conserves that energy as well as it does the f32 one: 24 atoms of water, 200 steps of
    // 0.25 fs on the GPU with each table format.
    let Some(_) = gpu() else { return };
    for model in ["water-schnet", "water-painn"] {
        let run = |lines| common::ModelNve::run_with(env!("CARGO_BIN_EXE_mdrun"), "systems/quickstart/water8.extxyz", model, Some("gpu"), 200, 0.25, Some("1.0 A"), lines);
        let (full, half) = (run(""), run("gpu_tables = \"f16\"\n"));
        assert!(half.stdout.contains("tabulated filters in f16") && !full.stdout.contains("in f16"), "{model}: the run header does not say which tables");
        let (full_dev, mean_ke) = full.deviation_and_kinetic();
        let (half_dev, _) = half.deviation_and_kinetic();
        // The first row is the same positions with the other tables: the f16 tables' energy error.
        let pe_gap = (half.rows[0][3] - full.rows[0][3]).abs();
        println!(
            "{model}: potential energy at step 0, f16 - f32 tables {pe_gap:.2e} eV (24 atoms); largest |E - E0| f32 {full_dev:.2e}, f16 {half_dev:.2e} eV; drift f32 {:+.2e}, f16 {:+.2e} eV/atom/ps",
            full.drift, half.drift
        );
        assert!(pe_gap > 0.0 && pe_gap < 24.0 * 1e-3, "{model}: f16 tables move the energy by {pe_gap} eV");
        // (The two runs part after a few steps, so over 50 fs their fitted drifts, which the
        // energy's fluctuation dominates, differ: the largest excursion is the measure.)
        assert!(half_dev < 0.005 * mean_ke && half_dev < 3.0 * full_dev.max(1e-4), "{model}: f16 energy wanders by {half_dev} eV (f32 {full_dev} eV)");
    }
}

#[test]
fn gpu_tables_takes_f32_or_f16_and_only_with_a_model() {
    let dir = common::scratch("gpu-tables-refusals");
    let refuse = |toml: String| {
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        mdrun::plan::Plan::from_file(&dir.join("system.toml"), None).unwrap_err().to_string()
    };
    let water = repo("systems/quickstart/water8.extxyz");
    let model = |tables: &str| format!("[structure]\nfile = \"{}\"\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\ngpu_tables = \"{tables}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 1\n", water.display(), repo("potentials/water-schnet").display());
    let unknown = refuse(model("bf16"));
    println!("{unknown}");
    assert!(unknown.contains("system.toml:6: ") && unknown.contains("[potential] gpu_tables") && unknown.contains("unknown precision 'bf16'; expected \"f32\""), "{unknown}");
    let pair = refuse(format!("[structure]\nfile = \"{}\"\n[potential]\ntype = \"lj\"\ncutoff = \"5 A\"\ngpu_tables = \"f16\"\nspecies.H = {{ epsilon = \"0.01 eV\", sigma = \"1 A\" }}\nspecies.O = {{ epsilon = \"0.01 eV\", sigma = \"3 A\" }}\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.25 fs\"\n[run]\nsteps = 1\n", water.display()));
    println!("{pair}");
    assert!(pair.contains("[potential] gpu_tables") && pair.contains("only used with type = \"ml\""), "{pair}");
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn gpu_md_with_the_shipped_models_follows_the_cpu_and_conserves_energy() {
    let Some(_) = gpu() else { return };
    // 24 atoms, 400 steps of 0.25 fs = 0.1 ps (lavapipe runs the model's kernels on the CPU's
    // two cores, about 0.08 s per step here).
    for model in ["water-schnet", "water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        let run = |platform| common::ModelNve::water(env!("CARGO_BIN_EXE_mdrun"), model, Some(platform), 400, 0.25, Some("1.0 A"));
        let (gpu, cpu) = (run("gpu"), run("cpu"));
        let (max_dev, mean_ke) = gpu.deviation_and_kinetic();
        let (gpu_rows, gpu_drift, cpu_rows, cpu_drift) = (gpu.rows, gpu.drift, cpu.rows, cpu.drift);
        // The same deterministic trajectory, f32 on the GPU against f32/f64 on the CPU.
        let pe_gap = gpu_rows.iter().zip(&cpu_rows).map(|(g, c)| (g[3] - c[3]).abs()).fold(0.0, f64::max);
        let t_gap = gpu_rows.iter().zip(&cpu_rows).map(|(g, c)| (g[2] - c[2]).abs()).fold(0.0, f64::max);
        println!(
            "{model}: GPU NVE drift {gpu_drift:+.2e} eV/atom/ps (CPU {cpu_drift:+.2e}), largest |E - E0| {max_dev:.2e} eV (mean kinetic {mean_ke:.3} eV); GPU vs CPU over 0.1 ps: potential energy within {pe_gap:.1e} eV, temperature within {t_gap:.1e} K"
        );
        assert_eq!(gpu_rows.len(), cpu_rows.len());
        // Over 0.1 ps the fitted drift is dominated by the energy's fluctuation (the CPU's, on the
        // same trajectory, is the same number); the GPU must not add to it.
        assert!(max_dev < 0.005 * mean_ke, "{model}: GPU energy wanders by {max_dev} eV against {mean_ke} eV kinetic");
        assert!((gpu_drift - cpu_drift).abs() < 2e-5, "{model}: GPU drift {gpu_drift} eV/atom/ps against the CPU's {cpu_drift}");
        assert!(pe_gap < 1e-3 && t_gap < 0.1, "{model}: GPU and CPU trajectories part: {pe_gap} eV, {t_gap} K");
    }
}

#[test]
fn hard_clustering_regroups_on_the_gpu_as_on_the_cpu_and_breaks_energy_conservation() {
    let Some(_) = gpu() else { return };
    // The acetamide molecule (four elements: hard level 2 is K-means of the element means into
    // two clusters) in a 20 Å periodic box, which the GPU platform needs; its images are 16 Å
    // apart, beyond the 5 Å cutoff. 400 steps of 0.25 fs on each platform.
    let xyz = std::fs::read_to_string(repo("systems/acetamide/acetamide.xyz")).unwrap();
    let mut lines: Vec<&str> = xyz.lines().collect();
    lines[1] = "Lattice=\"20 0 0 0 20 0 0 0 20\" pbc=\"T T T\" Properties=species:S:1:pos:R:3";
    let dir = common::scratch("gpu-acetamide");
    let boxed = dir.join("acetamide-box.extxyz");
    std::fs::write(&boxed, lines.join("\n") + "\n").unwrap();
    let run = |model: &str, platform: &str| common::ModelNve::run(env!("CARGO_BIN_EXE_mdrun"), boxed.to_str().unwrap(), model, Some(platform), 400, 0.25, None);
    let regroupings = |run: &common::ModelNve| -> Option<u64> {
        run.stdout.lines().find_map(|l| l.trim().strip_prefix("MCGM hard clustering regrouped the atoms at ")?.split(' ').next()?.parse().ok())
    };
    let (hard_gpu, hard_cpu) = (run("acetamide-schnet-mcgm-hard", "gpu"), run("acetamide-schnet-mcgm-hard", "cpu"));
    let soft_gpu = run("acetamide-schnet-mcgm-soft", "gpu");
    let (n_gpu, n_cpu) = (regroupings(&hard_gpu).expect("the GPU run counts regroupings"), regroupings(&hard_cpu).unwrap());
    let (hard_dev, _) = hard_gpu.deviation_and_kinetic();
    let (soft_dev, mean_ke) = soft_gpu.deviation_and_kinetic();
    println!(
        "acetamide, 400 steps: hard regroupings GPU {n_gpu}, CPU {n_cpu}; GPU drift hard {:+.2e} (CPU {:+.2e}), soft {:+.2e} eV/atom/ps; GPU largest |E - E0| hard {hard_dev:.2e}, soft {soft_dev:.2e} eV (mean kinetic {mean_ke:.3} eV)",
        hard_gpu.drift, hard_cpu.drift, soft_gpu.drift
    );
    // The GPU's K-means (f32) makes the CPU's (f64) decisions on the same trajectory; a near tie
    // may fall the other way.
    assert!(n_gpu >= 10 && n_gpu.abs_diff(n_cpu) <= 2, "regroupings: GPU {n_gpu}, CPU {n_cpu}");
    assert_eq!(regroupings(&soft_gpu), None);
    assert!(hard_dev > 5.0 * soft_dev, "GPU: hard wanders {hard_dev:.2e} eV, soft {soft_dev:.2e} eV");
    assert!(soft_dev < 0.01 * mean_ke, "GPU soft: {soft_dev} eV against {mean_ke} eV kinetic");
}

#[test]
fn buffers_past_the_adapters_binding_limit_are_refused_with_the_reason() {
    // The adapter's binding limit lowered to 2 MiB: for 6,859 atoms the simulation's own buffers
    // fit (the neighbour list splits over its bindings), as do the model's weights and filter
    // tables (~1 MiB) and its [N, F] features; PaiNN's [N, 3F] ones (2.5 MiB) do not, and the
    // model is refused before any is allocated.
    let Some(_) = gpu() else { return };
    let (name, config) = settings().into_iter().find(|(name, _)| *name == "painn").expect("a PaiNN setting");
    let model = Model::new(config, Normalization { reference_energies: vec![0.0; 4], ..Default::default() }, 5, &Ctx::cpu_inference(true));
    let mut ctx = GpuContext::open(false).unwrap().unwrap();
    ctx.adapter.max_binding = 2 << 20;
    let potential = ml_potential(&model, false);
    // A simple cubic lattice of 19³ atoms 2.2 Å apart, the four elements in turn.
    let mut system = random_system(4, Cell::orthorhombic(41.8, 41.8, 41.8).unwrap(), &["H", "C", "N", "O"], 1.1, 3);
    let sites: Vec<[f64; 3]> = (0..19 * 19 * 19).map(|k| [k % 19, (k / 19) % 19, k / 361].map(|c| 2.2 * c as f64 + 0.1)).collect();
    system.types = (0..sites.len()).map(|k| (k % 4) as u32).collect();
    system.velocities = vec![[0.0; 3]; sites.len()];
    system.images = vec![[0; 3]; sites.len()];
    system.positions = sites;
    let err = GpuSimulation::new(ctx, system, potential, Integrator::VelocityVerlet, 0.0005, 0.5, 1e4, 0, None).err().expect("refused").to_string();
    println!("{name}: {err}");
    assert!(err.contains("6859 atoms need a model's PaiNN phi buffer of 2.5 MiB, more than") && err.contains("binds at once (2.0 MiB)"), "{err}");
}

#[test]
fn an_mcgm_batch_of_more_chunks_than_a_grid_axis_holds_is_refused() {
    // MCGM dispatches a workgroup per pooling chunk (64 atoms, at least one a structure) along
    // one grid axis, which holds 65,535. A batch of as many structures (the most a batch holds),
    // one of them of 65 atoms, needs 65,536 and is refused with the reason before the model's
    // buffers are allocated; the plain SchNet of the same batch runs.
    let Some(_) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    // Hydrogen alone: an MCGM batch shares the hierarchy's shape, so every structure has the
    // same elements.
    let hydrogen = |n: usize, seed: u32| {
        let mut s = gas(n, seed);
        s.types.fill(0);
        (s, Integrator::VelocityVerlet)
    };
    let mut batch = vec![hydrogen(65, 3)];
    batch.extend((1..65535).map(|_| hydrogen(1, 4)));
    for (name, config) in settings().into_iter().filter(|(name, _)| *name == "schnet" || name.starts_with("schnet + MCGM hard")) {
        let model = test_model(config, &ctx);
        let potential = ml_potential(&model, false);
        let built = GpuSimulation::new_batch(GpuContext::open(false).unwrap().unwrap(), batch.clone(), potential, 0.0005, 0.5, 1e4, 0, None);
        match (name, built) {
            ("schnet", Ok(mut sim)) => {
                sim.advance(1, true).unwrap();
            }
            ("schnet", Err(err)) => panic!("{name}: a batch of 65,535 structures refused: {err}"),
            (_, Ok(_)) => panic!("{name}: a batch of 65,536 chunks was accepted"),
            (_, Err(err)) => {
                let err = err.to_string();
                println!("{name}: {err}");
                assert!(err.contains("pools up to 65,535 chunks of 64 atoms") && err.contains("this batch: 65536, from 65535 structures"), "{err}");
            }
        }
    }
}

#[test]
fn both_dense_tilings_step_to_the_same_bits() {
    // The dense layers in register tiles (ml_dense) and in workgroup-memory tiles
    // (ml_dense_tiled) sum each output over its inputs in the same order. On lavapipe, 20 steps
    // of the 160-atom gas reach the same bytes with every backbone setting (F = 32: every
    // F-wide layer takes the workgroup tiles); a GPU's compiler may contract the two kernels'
    // products differently, so there they agree within f32 rounding.
    let Some(probe) = gpu() else { return };
    let ctx = Ctx::cpu_inference(true);
    for (name, config) in settings() {
        let model = test_model(config, &ctx);
        let trajectory = |tiles: DenseTiles| {
            let mut gpu = GpuContext::open(false).unwrap().unwrap();
            gpu.dense_tiles = tiles;
            let mut sim = on_gpu(gpu, &model, gas(160, 7), Integrator::VelocityVerlet, 0.0005);
            sim.advance(20, true).unwrap();
            let s = sim.system().unwrap().clone();
            (s.positions, s.velocities)
        };
        let (registers, workgroup) = (trajectory(DenseTiles::Registers), trajectory(DenseTiles::Workgroup));
        if probe.adapter.hardware {
            let dx = max_abs(registers.0.iter().flatten().zip(workgroup.0.iter().flatten()).map(|(a, b)| a - b));
            println!("{name}: positions after 20 steps differ by {dx:.1e} Å");
            assert!(dx < 1e-5, "{name}: the tilings part by {dx:e} Å");
        } else {
            assert!(registers == workgroup, "{name}: the tilings reach other bits");
        }
    }
}
