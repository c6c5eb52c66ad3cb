//! The fast inference path (f32, tabulated filters, explicit backward gathered per atom) agrees
//! with the burn reference (f64) on energies, forces and virials, for SchNet and PaiNN alone and
//! with MCGM hard and soft, on molecules and on a periodic box; and its forces are the gradient of
//! its own energy (finite differences in f64 positions).

mod common;

use mdrun::ml::dataset::{Structure, read_extxyz};
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::inference::{Graph, Inference};
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::{Ctx, to_vec};
use std::path::Path;

fn data(name: &str) -> Vec<Structure> {
    read_extxyz(&Path::new(env!("CARGO_MANIFEST_DIR")).join("potentials/data").join(name)).unwrap()
}

/// H, C, N, O: in acetamide (four elements) hard level 2 is K-means of the element means into
/// two clusters; in the chain and the water (two) it is one cluster.
fn settings() -> Vec<(&'static str, ModelConfig)> {
    common::backbone_settings(&[1, 6, 7, 8])
}

#[test]
fn fast_inference_agrees_with_the_burn_reference() {
    let ctx = Ctx::cpu_inference(true);
    let chain = data("chain.extxyz");
    let water = data("water.extxyz");
    let acetamide = data("acetamide.extxyz");
    let structures: Vec<&Structure> = vec![&chain[3], &acetamide[17], &chain[350], &water[10], &acetamide[430], &water[120]];
    for (name, config) in settings() {
        let normalization = Normalization { reference_energies: vec![-13.6, -1030.0, -1480.0, -2040.0], energy_scale: 1.3, training_min_distance: 0.0, ..Default::default() };
        let model = Model::new(config, normalization, 11, &ctx);
        let batch = Batch::new(&structures, 5.0, |z| model.species_index(z)).unwrap();
        let reference = model.predict(&batch, &GraphTensors::new(&batch, &ctx), &ctx);
        let mut fast = Inference::new(&model).unwrap();
        let out = fast.evaluate(&Graph::from_batch(&batch));
        let (e_ref, f_ref, w_ref) = (to_vec(reference.energy), to_vec(reference.forces), to_vec(reference.virial));
        // Energies carry ~1e3 eV of reference energies (exact in f64 on both paths): compare the
        // difference per atom.
        let e_err = (0..structures.len())
            .map(|s| (out.energy[s] - e_ref[s]).abs() / batch.counts[s] as f64)
            .fold(0.0, f64::max);
        let f_scale = f_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let f_err = out.forces.iter().flatten().zip(&f_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / f_scale;
        let w_scale = w_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let w_err = out.virial.iter().flatten().zip(&w_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / w_scale;
        println!("{name}: energy {e_err:.1e} eV/atom, forces {f_err:.1e} of max |F| = {f_scale:.2} eV/Å, virial {w_err:.1e} of max |W|");
        assert!(e_err < 2e-5, "{name}: energy differs by {e_err:e} eV/atom");
        assert!(f_err < 2e-4, "{name}: forces differ by {f_err:e} of the largest");
        assert!(w_err < 2e-4, "{name}: virial differs by {w_err:e} of the largest");
    }
}

#[test]
fn fast_forces_are_the_gradient_of_the_fast_energy() {
    let ctx = Ctx::cpu_inference(true);
    let water = data("water.extxyz");
    for (name, config) in settings().into_iter().filter(|(n, _)| !n.contains("hard")) {
        let normalization = Normalization { reference_energies: vec![0.0; 4], energy_scale: 1.0, training_min_distance: 0.0, ..Default::default() };
        let model = Model::new(config, normalization, 5, &ctx);
        let mut fast = Inference::new(&model).unwrap();
        let mut structure = water[40].clone();
        let energy = |s: &Structure, fast: &mut Inference| {
            let b = Batch::new(&[s], 5.0, |z| model.species_index(z)).unwrap();
            fast.evaluate(&Graph::from_batch(&b))
        };
        let out = energy(&structure, &mut fast);
        let f_scale = out.forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        // f32 energies carry ~1e-7 relative noise: a 2e-3 Å central difference keeps that below
        // the O(h²) truncation error.
        let h = 2e-3;
        let mut worst = 0.0f64;
        for atom in [0, 5, 13] {
            for k in 0..3 {
                let x0 = structure.positions[atom][k];
                structure.positions[atom][k] = x0 + h;
                let plus = energy(&structure, &mut fast).energy[0];
                structure.positions[atom][k] = x0 - h;
                let minus = energy(&structure, &mut fast).energy[0];
                structure.positions[atom][k] = x0;
                let numeric = -(plus - minus) / (2.0 * h);
                worst = worst.max((numeric - out.forces[atom][k]).abs() / f_scale);
            }
        }
        println!("{name}: forces vs central differences of the energy: {worst:.1e} of max |F| = {f_scale:.2} eV/Å");
        assert!(worst < 2e-3, "{name}: {worst:e}");
    }
}

#[test]
fn the_md_graph_from_the_neighbour_list_equals_the_batch_graph() {
    // MD builds the graph straight from its full list (cutoff + skin), the trainer from a batch.
    use mdrun::neighbor::{ListKind, NeighborList};
    let ctx = Ctx::cpu_inference(true);
    let water = data("water.extxyz");
    let s = &water[77];
    let (_, config) = settings().remove(2);
    let normalization = Normalization { reference_energies: vec![-13.6, -1030.0, -1480.0, -2040.0], energy_scale: 1.3, training_min_distance: 0.0, ..Default::default() };
    let model = Model::new(config, normalization, 3, &ctx);
    let mut fast = Inference::new(&model).unwrap();
    let batch = Batch::new(&[s], 5.0, |z| model.species_index(z)).unwrap();
    let wrapped: Vec<[f64; 3]> = s.positions.iter().map(|&r| s.cell.wrap(r).0).collect();
    let mut list = NeighborList::new(ListKind::Full, 5.0, 1.0);
    list.build(&wrapped, &s.cell).unwrap();
    let species = s.numbers.iter().map(|&z| model.species_index(z).unwrap()).collect();
    let from_list = Graph::from_neighbor_list(&list, &wrapped, species, 5.0);
    let from_batch = Graph::from_batch(&batch);
    assert_eq!(from_list.neighbor.len(), from_batch.neighbor.len());
    let (a, b) = (fast.evaluate(&from_list), fast.evaluate(&from_batch));
    assert!((a.energy[0] - b.energy[0]).abs() < 1e-9 * a.energy[0].abs(), "{} vs {}", a.energy[0], b.energy[0]);
    let worst = a.forces.iter().flatten().zip(b.forces.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "forces differ by {worst}");
}
