//! The fast inference path's graph: built from MD's neighbour list it equals the trainer's batch
//! graph. (Its agreement with the burn reference, layer by layer, and its forces against finite
//! differences are in tests/ml_conformance.rs.)

mod common;

use mdrun::ml::dataset::{Structure, read_extxyz};
use mdrun::ml::graph::Batch;
use mdrun::ml::inference::{Graph, Inference};
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::Ctx;
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
    let from_list = Graph::from_neighbor_list(&list, &wrapped, species, 5.0, &s.cell, 0.0);
    let from_batch = Graph::from_batch(&batch);
    assert_eq!(from_list.neighbor.len(), from_batch.neighbor.len());
    let (a, b) = (fast.evaluate(&from_list).unwrap(), fast.evaluate(&from_batch).unwrap());
    assert!((a.energy[0] - b.energy[0]).abs() < 1e-9 * a.energy[0].abs(), "{} vs {}", a.energy[0], b.energy[0]);
    let worst = a.forces.iter().flatten().zip(b.forces.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "forces differ by {worst}");
}
