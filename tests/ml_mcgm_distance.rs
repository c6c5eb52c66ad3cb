//! The distance-aware MCGM (issue 19, item 2): the soft level's centroids exchange messages
//! filtered by their distance, so two groups that no edge joins know how far apart they are.
//! - The energy of two fragments beyond the receptive field changes with their separation
//!   (the plain soft level's does not, to the last digits).
//! - Forces and virial are derivatives of the energy (central differences), SchNet and PaiNN.
//! - Rotation, translation, permutation and batch composition leave it unchanged.
//! - The CPU fast path agrees with burn.
//! - Periodic structures are refused, naming the flag (training names the file and structure
//!   before it starts); so are the GPU kernels.

mod common;

use mdrun::cell::Cell;
use mdrun::ml::dataset::Structure;
use mdrun::ml::implementation::{BurnModel, CpuInference, Evaluation, ModelImplementation};
use mdrun::ml::mcgm::{Assign, DISTANCE_WIDTHS, McgmConfig};
use mdrun::ml::model::Model;
use mdrun::ml::tensor::Ctx;

fn soft(distance_aware: bool) -> McgmConfig {
    McgmConfig { levels: 2, ratio: 2, assign: Assign::Soft, clusters: 3, distance_widths: if distance_aware { DISTANCE_WIDTHS.to_vec() } else { Vec::new() } }
}

fn model(backbone: &str, distance_aware: bool) -> Model {
    common::small_model(backbone, Some(soft(distance_aware)), 11, &Ctx::cpu_inference(true))
}

fn burn(model: &Model) -> BurnModel {
    BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }
}

fn open() -> Cell {
    Cell::new([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]], [false; 3]).unwrap()
}

fn molecule(seed: u32) -> Structure {
    common::labelled_structure(open(), 10, &[("C", 6), ("H", 1), ("O", 8), ("N", 7)], seed)
}

/// Two molecules (an H/C pair and an O/N pair of 4 atoms each), the second moved `gap` Å
/// along x: farther apart than the small model's receptive field (2 blocks x 4 Å) for gap > 8.
fn two_fragments(gap: f64) -> Structure {
    let a = common::labelled_structure(Cell::new([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]], [false; 3]).unwrap(), 4, &[("C", 6), ("H", 1)], 3);
    let b = common::labelled_structure(Cell::new([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]], [false; 3]).unwrap(), 4, &[("O", 8), ("N", 7)], 8);
    let mut s = a.clone();
    s.numbers.extend(&b.numbers);
    s.positions.extend(b.positions.iter().map(|r| [r[0] + 4.0 + gap, r[1], r[2]]));
    s.cell = Cell::new([[40.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]], [false; 3]).unwrap();
    s
}

fn energy(model: &Model, s: &Structure) -> f64 {
    burn(model).evaluate(std::slice::from_ref(s)).unwrap()[0].energy
}

fn largest_gap(a: &[[f64; 3]], b: &[[f64; 3]]) -> f64 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn fragments_beyond_the_graph_feel_their_distance() {
    for backbone in ["schnet", "painn"] {
        let (plain, aware) = (model(backbone, false), model(backbone, true));
        let gaps = [10.0, 14.0, 20.0];
        let plain_energies: Vec<f64> = gaps.iter().map(|&g| energy(&plain, &two_fragments(g))).collect();
        let aware_energies: Vec<f64> = gaps.iter().map(|&g| energy(&aware, &two_fragments(g))).collect();
        println!("{backbone}: plain soft {plain_energies:?}, distance-aware {aware_energies:?}");
        // The plain level pools features only: no edge joins the fragments, so their
        // separation is invisible.
        assert!(plain_energies.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-10), "{plain_energies:?}");
        assert!(aware_energies.windows(2).all(|w| (w[0] - w[1]).abs() > 1e-5), "{aware_energies:?}");
        // And the force pulling them together or apart is the gradient of that energy: the
        // x-forces on each fragment add up to minus the other's.
        let e = burn(&aware).evaluate(&[two_fragments(14.0)]).unwrap().remove(0);
        let on_b: f64 = e.forces[4..].iter().map(|f| f[0]).sum();
        let (h, s) = (1e-4, |g: f64| energy(&aware, &two_fragments(g)));
        let numeric = -(s(14.0 + h) - s(14.0 - h)) / (2.0 * h);
        println!("{backbone}: force on the far fragment {on_b:.6e}, central difference {numeric:.6e}");
        assert!(on_b.abs() > 1e-6 && (on_b - numeric).abs() < 1e-7 * (1.0 + numeric.abs()), "{on_b} vs {numeric}");
    }
}

#[test]
fn forces_and_virial_are_derivatives_of_the_energy() {
    for backbone in ["schnet", "painn"] {
        let m = model(backbone, true);
        for (what, s) in [("molecule", molecule(4)), ("two fragments 12 Å apart", two_fragments(12.0))] {
            let base = burn(&m).evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
            // PaiNN's truncation error at h = 1e-4 is ~1e-6 of the largest force, with or
            // without the distances; at 1e-5 it is far below the tolerance.
            let h = 1e-5;
            let worst = common::worst_force_error(&s, &base.forces, &[0, 3, 6], h, |t| energy(&m, t));
            // W = -dE/dε: an open structure strained about the origin (the energy is
            // translation invariant, so the origin does not matter).
            let w_scale = base.virial.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let mut worst_virial: f64 = 0.0;
            for (a, b) in [(0, 0), (1, 2), (2, 0), (1, 1)] {
                let strained = |e: f64| {
                    let mut t = s.clone();
                    t.positions = s.positions.iter().map(|&r| { let mut out = r; out[a] += e * r[b]; out }).collect();
                    energy(&m, &t)
                };
                worst_virial = worst_virial.max((-(strained(h) - strained(-h)) / (2.0 * h) - base.virial[3 * a + b]).abs() / w_scale);
            }
            println!("{backbone}, {what}: forces {worst:.1e}, virial {worst_virial:.1e} off the central differences");
            assert!(worst < 1e-7 && worst_virial < 1e-7, "{backbone}, {what}: forces {worst:.1e}, virial {worst_virial:.1e}");
        }
    }
}

#[test]
fn the_energy_is_invariant_and_independent_of_its_batch() {
    let m = model("painn", true);
    let s = two_fragments(11.0);
    let base = burn(&m).evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
    let (c, sn) = (40f64.to_radians().cos(), 40f64.to_radians().sin());
    let mut moved = s.clone();
    moved.positions = s.positions.iter().map(|r| [c * r[0] - sn * r[1] + 3.7, sn * r[0] + c * r[1] - 1.3, r[2] + 0.4]).collect();
    let rotated = burn(&m).evaluate(&[moved]).unwrap().remove(0);
    let turned: Vec<[f64; 3]> = base.forces.iter().map(|f| [c * f[0] - sn * f[1], sn * f[0] + c * f[1], f[2]]).collect();
    assert!((rotated.energy - base.energy).abs() < 1e-10, "rotation: {} vs {}", rotated.energy, base.energy);
    assert!(largest_gap(&turned, &rotated.forces) < 1e-9);
    let mut reversed = s.clone();
    reversed.numbers.reverse();
    reversed.positions.reverse();
    let permuted = burn(&m).evaluate(&[reversed]).unwrap().remove(0);
    let back: Vec<[f64; 3]> = permuted.forces.iter().rev().copied().collect();
    assert!((permuted.energy - base.energy).abs() < 1e-10 && largest_gap(&back, &base.forces) < 1e-9);
    let together = burn(&m).evaluate(&[molecule(9), s.clone()]).unwrap();
    assert!((together[1].energy - base.energy).abs() < 1e-10 && largest_gap(&together[1].forces, &base.forces) < 1e-10);
}

fn compare(what: &str, reference: &Evaluation, fast: &Evaluation) {
    let n = reference.forces.len() as f64;
    let scale = reference.forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let forces = largest_gap(&reference.forces, &fast.forces) / scale;
    let w_scale = reference.virial.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let virial = reference.virial.iter().zip(&fast.virial).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / w_scale;
    let energy = (reference.energy - fast.energy).abs() / n;
    println!("{what}: energy {energy:.1e} eV/atom, forces {forces:.1e}, virial {virial:.1e}");
    assert!(energy < 1e-6 && forces < 5e-5 && virial < 5e-5, "{what}");
}

#[test]
fn the_cpu_fast_path_agrees_with_burn() {
    for backbone in ["schnet", "painn"] {
        let m = model(backbone, true);
        let structures = [molecule(4), two_fragments(13.0)];
        let reference = burn(&m).evaluate(&structures).unwrap();
        let fast = CpuInference::new(&m).unwrap().evaluate(&structures).unwrap();
        for (k, (r, f)) in reference.iter().zip(&fast).enumerate() {
            compare(&format!("{backbone}, structure {k}"), r, f);
        }
    }
}

#[test]
fn periodic_structures_and_the_gpu_are_refused_with_the_reason() {
    let m = model("schnet", true);
    let mut periodic = molecule(4);
    periodic.cell = Cell::new(*periodic.cell.vectors(), [true, true, false]).unwrap();
    let burn_error = burn(&m).evaluate(std::slice::from_ref(&periodic)).unwrap_err();
    let cpu_error = CpuInference::new(&m).unwrap().evaluate(std::slice::from_ref(&periodic)).unwrap_err();
    for e in [&burn_error, &cpu_error] {
        assert!(e.contains("--mcgm-distance") && e.contains("open structures") && e.contains("--long-range charges"), "{e}");
    }
    let gpu = mdrun::gpu::GpuKernels::new(&m).err().expect("the GPU kernels refuse");
    assert!(gpu.contains("distance-aware MCGM"), "{gpu}");
}

#[test]
fn training_refuses_periodic_data_and_a_hard_level_up_front() {
    let water = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("potentials/data/water.extxyz");
    let out = common::scratch("distance-train");
    let train = |mcgm: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun"))
            .args(["train", "--train"])
            .arg(&water)
            .args(["--mcgm", mcgm, "--mcgm-distance", "--epochs", "1", "--out"])
            .arg(out.join("model"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let periodic = train("soft");
    assert!(periodic.contains("water.extxyz: structure 1 is periodic") && periodic.contains("open structures only"), "{periodic}");
    let hard = train("hard");
    assert!(hard.contains("--mcgm-distance needs --mcgm soft"), "{hard}");
    assert!(!out.join("model/model.json").exists(), "no model is written");
}
