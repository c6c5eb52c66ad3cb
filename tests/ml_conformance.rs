//! One conformance suite for every implementation of the model (`mdrun::ml::implementation`):
//! burn in f64 (training's code, the reference), the CPU fast path and the GPU kernels, each for
//! every backbone x MCGM setting (SchNet and PaiNN; alone, with hard MCGM, with soft MCGM, with
//! per-block cutoffs). Per implementation it checks, against burn f64 on the same input:
//!
//! - every block's outputs (`mdrun::ml::layer`: the features after the interaction, PaiNN's
//!   vector features, the features after MCGM), so that a disagreement is named by the first
//!   block where it appears;
//! - the energy, the forces and the virial;
//!
//! and, against its own energy, the forces by central differences.
//!
//! The structures are a periodic H/C/N/O gas and the acetamide molecule (four elements: hard
//! MCGM's level 2 is K-means of four element means) in a 20 Å periodic box, at f32-exact
//! positions so that the f32 paths read the very input the reference reads.

mod common;

use mdrun::cell::Cell;
use mdrun::gpu::DenseTiles;
use mdrun::ml::dataset::{Structure, read_extxyz};
use mdrun::ml::implementation::{BurnModel, CpuInference, Evaluation, ModelImplementation, Precision};
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::Ctx;

/// What agreement each precision must reach. Layers and forces are compared as the largest
/// difference over the largest reference value; energies per atom.
struct Tolerances {
    /// Every block's outputs.
    layer: f64,
    /// eV per atom.
    energy: f64,
    forces: f64,
    virial: f64,
    /// Central-difference step (Å) and the allowed gap between the forces and the differences
    /// of the implementation's own energy.
    step: f64,
    finite_difference: f64,
}

fn tolerances(precision: Precision) -> Tolerances {
    match precision {
        // Another f64 implementation differs by summation order only. O(h²) truncation at
        // 1e-4 Å (measured: 1.2e-7 at most).
        Precision::F64 => Tolerances { layer: 1e-12, energy: 1e-12, forces: 1e-12, virial: 1e-12, step: 1e-4, finite_difference: 1e-6 },
        // f32 rounding (~1e-7 per operation) and tabulated filters (cubic Hermite on a fine
        // grid), compounded over three blocks: measured on the CPU fast path and on lavapipe,
        // layers 8e-7, energies 1e-7 eV/atom, forces 8e-6, virials 8e-6 at most; allowed about
        // ten times that. The differences of f32 energies need a larger step (2e-3 Å) to rise
        // above their rounding, which then dominates (measured: 2.0e-3 at most).
        Precision::F32 => Tolerances { layer: 1e-5, energy: 1e-6, forces: 5e-5, virial: 5e-5, step: 2e-3, finite_difference: 4e-3 },
    }
}

fn data(name: &str) -> Vec<Structure> {
    read_extxyz(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("potentials/data").join(name)).unwrap()
}

fn f32_exact(mut s: Structure) -> Structure {
    for x in &mut s.positions {
        *x = x.map(|v| v as f32 as f64);
    }
    s
}

/// A periodic H/C/N/O gas of 48 atoms.
fn gas() -> Structure {
    let mut system = common::random_system(48, Cell::orthorhombic(12.0, 12.5, 13.0).unwrap(), &["H", "C", "N", "O"], 1.1, 7);
    system.wrap_positions();
    let numbers = system.types.iter().map(|&t| [1, 6, 7, 8][t as usize]).collect();
    f32_exact(Structure { numbers, positions: system.positions, cell: system.cell, energy: 0.0, forces: vec![], kind: "gas".into(), charge: 0.0, virial: None })
}

/// Acetamide (C2H5NO) in a 20 Å periodic box: its images are beyond the cutoff.
fn acetamide() -> Structure {
    let mut s = data("acetamide.extxyz").swap_remove(17);
    let centre: [f64; 3] = [0, 1, 2].map(|k| s.positions.iter().map(|p| p[k]).sum::<f64>() / s.positions.len() as f64);
    for p in &mut s.positions {
        *p = [0, 1, 2].map(|k| p[k] - centre[k] + 10.0);
    }
    s.cell = Cell::orthorhombic(20.0, 20.0, 20.0).unwrap();
    f32_exact(s)
}

/// The displaced copies for central differences: (atom, axis) pairs, + then -.
const PROBES: [(usize, usize); 4] = [(0, 0), (2, 1), (5, 2), (8, 0)];

fn displaced(s: &Structure, h: f64) -> Vec<Structure> {
    let mut out = Vec::new();
    for (atom, k) in PROBES {
        for sign in [1.0, -1.0] {
            let mut d = s.clone();
            d.positions[atom][k] += sign * h;
            out.push(d);
        }
    }
    out
}

fn model(config: ModelConfig) -> Model {
    let normalization = Normalization { reference_energies: vec![-13.6, -1030.0, -1480.0, -2040.0], energy_scale: 1.3, ..Default::default() };
    Model::new(config, normalization, 5, &Ctx::cpu_inference(true))
}

fn largest(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |m, x| m.max(x.abs()))
}

/// Largest |a - b| over largest |b|.
fn relative(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    largest(a.iter().zip(b).map(|(x, y)| x - y)) / largest(b.iter().copied()).max(1e-300)
}

/// Compares one structure's evaluation with the reference's; returns the report line, or the
/// first disagreement.
fn compare(got: &Evaluation, reference: &Evaluation, tol: &Tolerances) -> Result<String, String> {
    let names = |e: &Evaluation| e.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
    if names(got) != names(reference) {
        return Err(format!("layers {:?}, the reference has {:?}", names(got), names(reference)));
    }
    let mut worst_layer = (0.0, String::new());
    for (g, r) in got.layers.iter().zip(&reference.layers) {
        let err = relative(&g.values, &r.values);
        if !(err <= tol.layer) {
            return Err(format!("first disagreement at layer \"{}\": {err:.1e} of its largest value (allowed {:.0e})", g.name, tol.layer));
        }
        if err >= worst_layer.0 {
            worst_layer = (err, g.name.clone());
        }
    }
    let atoms = got.forces.len() as f64;
    let e_err = (got.energy - reference.energy).abs() / atoms;
    let flat = |f: &[[f64; 3]]| f.iter().flatten().copied().collect::<Vec<f64>>();
    let f_err = relative(&flat(&got.forces), &flat(&reference.forces));
    let w_err = relative(&got.virial, &reference.virial);
    if !(e_err <= tol.energy) {
        return Err(format!("every layer agrees, but the energy differs by {e_err:.1e} eV/atom (allowed {:.0e}): the readout", tol.energy));
    }
    if !(f_err <= tol.forces) {
        return Err(format!("the energy agrees, but the forces differ by {f_err:.1e} of the largest (allowed {:.0e}): the backward pass", tol.forces));
    }
    if !(w_err <= tol.virial) {
        return Err(format!("the forces agree, but the virial differs by {w_err:.1e} of the largest (allowed {:.0e})", tol.virial));
    }
    Ok(format!("layers {:.1e} (worst: {}), energy {e_err:.1e} eV/atom, forces {f_err:.1e}, virial {w_err:.1e}", worst_layer.0, worst_layer.1))
}

/// Forces at the probes against central differences of the implementation's own energies.
fn finite_differences(base: &Evaluation, moved: &[Evaluation], h: f64) -> f64 {
    let scale = largest(base.forces.iter().flatten().copied());
    let mut worst = 0.0f64;
    for (p, &(atom, k)) in PROBES.iter().enumerate() {
        let numeric = -(moved[2 * p].energy - moved[2 * p + 1].energy) / (2.0 * h);
        worst = worst.max((numeric - base.forces[atom][k]).abs() / scale);
    }
    worst
}

/// The suite over every setting for the implementation `make` builds from a model.
/// `covers`: which of the long-range settings (learned charges, the distance-aware MCGM) the
/// implementation evaluates (the GPU kernels: charges only, as they run periodic cells only).
fn conformance(covers: fn(&ModelConfig) -> bool, make: impl Fn(&Model) -> Box<dyn ModelImplementation>) {
    let mut failures = Vec::new();
    let mut settings = common::backbone_settings(&[1, 6, 7, 8]);
    settings.extend(common::long_range_settings(&[1, 6, 7, 8]).into_iter().filter(|(_, config)| covers(config)));
    for (setting, config) in settings {
        let config_is_distance_aware = config.mcgm.as_ref().is_some_and(|m| m.is_distance_aware());
        let model = model(config);
        let mut implementation = make(&model);
        let tol = tolerances(implementation.precision());
        let (mut gas, mut molecule) = (gas(), acetamide());
        // A distance-aware MCGM takes open structures: the same atoms, without their images.
        if config_is_distance_aware {
            for s in [&mut gas, &mut molecule] {
                s.cell = Cell::new(*s.cell.vectors(), [false; 3]).unwrap();
            }
        }
        let mut structures = vec![gas, molecule.clone()];
        structures.extend(displaced(&molecule, tol.step));
        let got = implementation.evaluate(&structures).unwrap_or_else(|e| panic!("{}, {setting}: {e}", implementation.name()));
        let reference = BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }.evaluate(&structures[..2]).unwrap();
        for (k, what) in ["gas", "acetamide"].iter().enumerate() {
            match compare(&got[k], &reference[k], &tol) {
                Ok(line) => println!("{}, {setting}, {what}: {line}", implementation.name()),
                Err(e) => failures.push(format!("{}, {setting}, {what}: {e}", implementation.name())),
            }
        }
        // Hard MCGM's energy is continuous only while no K-means label flips; these probes
        // (up to 2e-3 Å) move the element means far less than the gap between them.
        let fd = finite_differences(&got[1], &got[2..], tol.step);
        println!("{}, {setting}: forces vs central differences of its energy: {fd:.1e} of max |F|", implementation.name());
        if !(fd <= tol.finite_difference) {
            failures.push(format!("{}, {setting}: forces differ from the differences of its energy by {fd:.1e} (allowed {:.0e})", implementation.name(), tol.finite_difference));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn burn_f64_reference_conforms() {
    conformance(|_| true, |model| Box::new(BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }));
}

#[test]
fn cpu_fast_path_conforms() {
    conformance(|_| true, |model| Box::new(CpuInference::new(model).unwrap()));
}

#[test]
fn gpu_kernels_conform() {
    if common::gpu().is_none() {
        return;
    }
    conformance(|config| config.gpu_unsupported_part().is_none(), |model| Box::new(mdrun::gpu::GpuKernels::new(model).unwrap().expect("an adapter")));
}

#[test]
fn gpu_kernels_conform_with_either_dense_tiling() {
    // The dense layers in workgroup-memory tiles (what real GPUs get) and in register tiles
    // (what lavapipe gets): the whole suite with the other one than this adapter's.
    let Some(ctx) = common::gpu() else { return };
    let other = match ctx.dense_tiles {
        DenseTiles::Registers => DenseTiles::Workgroup,
        DenseTiles::Workgroup => DenseTiles::Registers,
    };
    println!("dense layers in {other:?} tiles");
    conformance(
        |config| config.gpu_unsupported_part().is_none(),
        move |model| {
            let mut gpu = mdrun::gpu::GpuKernels::new(model).unwrap().expect("an adapter");
            gpu.dense_tiles = Some(other);
            Box::new(gpu)
        },
    );
}


#[test]
fn gpu_kernels_conform_at_odd_sizes() {
    // The dense layers run in tiles of 4 rows by 4 outputs (shaders/ml.wgsl): a lone atom fills
    // one row of four and has no neighbours, 5 and 9 atoms leave partial tiles, an atom 9 Å from
    // the rest of its structure takes no messages, and the charge head's last layer has one
    // output (three of its tile's four are outside). The smallest F the kernels take (8; the
    // readout's F/2 = 4). Each against burn f64.
    // In workgroup tiles (32 rows by 32 outputs from slices of 16 inputs; narrower layers keep
    // register tiles), F = 40 leaves a partial tile across and a partial slice of inputs.
    if common::gpu().is_none() {
        return;
    }
    let mut lone = acetamide();
    lone.numbers.truncate(1);
    lone.positions.truncate(1);
    lone.kind = "a lone atom".into();
    let mut apart = acetamide();
    apart.numbers.truncate(4);
    apart.positions.truncate(4);
    apart.numbers.push(8);
    apart.positions.push([apart.positions[0][0] + 9.0, apart.positions[0][1], apart.positions[0][2]]);
    apart.kind = "four atoms and one apart".into();
    let structures = vec![lone, apart, acetamide()];
    let charges = Some(mdrun::ml::model::LongRange { charge_width: 1.0, charge_embedding: true, equilibration: false });
    let cases = [("schnet", None), ("painn", None), ("schnet", charges.clone()), ("painn", charges)];
    let tilings = [(DenseTiles::Registers, 8), (DenseTiles::Workgroup, 8), (DenseTiles::Workgroup, 40)];
    for ((setting, long_range), (tiles, features)) in cases.iter().flat_map(|c| tilings.iter().map(move |t| (c, t))) {
        let config = ModelConfig { features: *features, long_range: long_range.clone(), ..common::small_config(setting, None) };
        let setting = format!("{setting}{}, F = {features}, {tiles:?} tiles", if long_range.is_some() { " + charges" } else { "" });
        let model = model(config);
        let mut gpu = mdrun::gpu::GpuKernels::new(&model).unwrap().expect("an adapter");
        gpu.dense_tiles = Some(*tiles);
        let tol = tolerances(gpu.precision());
        let got = gpu.evaluate(&structures).unwrap();
        let reference = BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }.evaluate(&structures).unwrap();
        for ((g, r), s) in got.iter().zip(&reference).zip(&structures) {
            let line = compare(g, r, &tol).unwrap_or_else(|e| panic!("{setting}, {}: {e}", s.kind));
            println!("{}, {setting}, {} ({} atoms): {line}", gpu.name(), s.kind, s.numbers.len());
        }
    }
}

#[test]
fn gpu_mesh_ewald_conforms() {
    // The GPU's particle-mesh Ewald (shaders/pme.wgsl), forced on these small cells where the
    // sum over k-vectors would be taken: the gas and acetamide in its 20 Å box share one grid
    // (each with its own influence function), against burn f64's plain Ewald; and its forces
    // against central differences of its own energy (the mesh's forces are the exact gradient
    // of the mesh's energy).
    if common::gpu().is_none() {
        return;
    }
    let charges = Some(mdrun::ml::model::LongRange { charge_width: 1.0, charge_embedding: true, equilibration: false });
    for setting in ["schnet", "painn"] {
        let model = model(ModelConfig { long_range: charges.clone(), ..common::small_config(setting, None) });
        let mut gpu = mdrun::gpu::GpuKernels::new(&model).unwrap().expect("an adapter");
        gpu.ewald_mesh = Some(true);
        let tol = tolerances(gpu.precision());
        let molecule = acetamide();
        let mut structures = vec![gas(), molecule.clone()];
        structures.extend(displaced(&molecule, tol.step));
        let got = gpu.evaluate(&structures).unwrap();
        let reference = BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }.evaluate(&structures[..2]).unwrap();
        for (k, what) in ["gas", "acetamide"].iter().enumerate() {
            let line = compare(&got[k], &reference[k], &tol).unwrap_or_else(|e| panic!("{setting} + charges on the mesh, {what}: {e}"));
            println!("{}, {setting} + charges on the mesh, {what}: {line}", gpu.name());
        }
        let fd = finite_differences(&got[1], &got[2..], tol.step);
        println!("{}, {setting} + charges on the mesh: forces vs central differences of its energy: {fd:.1e} of max |F|", gpu.name());
        assert!(fd <= tol.finite_difference, "{setting} + charges on the mesh: forces differ from the differences of its energy by {fd:.1e}");
    }
}
