//! The model's explicit forces equal burn's autodiff forces and central finite differences, for
//! SchNet with and without MCGM, molecules and periodic cells; the virial equals minus the
//! strain derivative of the energy.

mod common;

use mdrun::cell::Cell;
use mdrun::ml::dataset::Structure;
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::mcgm::{Assign, McgmConfig};
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::{Ctx, to_vec};

fn structure(cell: Cell, n: usize, seed: u32) -> Structure {
    let s = common::random_system(n, cell.clone(), &["C", "H", "O", "N"], 1.0, seed);
    let numbers = s.types.iter().map(|&t| [6, 1, 8, 7][t as usize]).collect();
    Structure { numbers, positions: s.positions, cell, energy: 0.0, forces: vec![], kind: "test".into() }
}

fn model(mcgm: Option<McgmConfig>, ctx: &Ctx) -> Model {
    let config = ModelConfig { backbone: "schnet".into(), features: 16, blocks: 2, n_rbf: 10, cutoff: 4.0, species: vec![1, 6, 7, 8], mcgm };
    let normalization = Normalization { reference_energies: vec![-0.5, 0.25, -0.1, 0.3], energy_scale: 0.7 };
    Model::new(config, normalization, 3, ctx)
}

fn energy(model: &Model, st: &Structure, ctx: &Ctx) -> f64 {
    let batch = Batch::new(&[st], model.config.cutoff, |z| model.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, ctx);
    to_vec(model.predict(&batch, &graph, ctx).energy)[0]
}

fn check(label: &str, model: &Model, st: &Structure, ctx: &Ctx) {
    let batch = Batch::new(&[st], model.config.cutoff, |z| model.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, ctx);
    let explicit = to_vec(model.predict(&batch, &graph, ctx).forces);

    // Autodiff through the energy alone.
    let positions = graph.positions.clone().require_grad();
    let e = model.energy_from_edges(&batch, &graph, graph.edge_vectors(&positions), ctx).sum();
    let grads = e.backward();
    let autodiff: Vec<f64> = to_vec(positions.grad(&grads).expect("position gradient")).iter().map(|g| -g).collect();

    // Central differences on the wrapped positions the batch used.
    let h = 1e-4;
    let mut wrapped = st.clone();
    wrapped.positions = batch.positions.clone();
    let scale = explicit.iter().fold(0.0f64, |m, f| m.max(f.abs()));
    let (mut worst_auto, mut worst_fd): (f64, f64) = (0.0, 0.0);
    for i in 0..st.numbers.len() {
        for k in 0..3 {
            let mut plus = wrapped.clone();
            plus.positions[i][k] += h;
            let mut minus = wrapped.clone();
            minus.positions[i][k] -= h;
            let numeric = -(energy(model, &plus, ctx) - energy(model, &minus, ctx)) / (2.0 * h);
            worst_fd = worst_fd.max((numeric - explicit[3 * i + k]).abs() / scale);
            worst_auto = worst_auto.max((autodiff[3 * i + k] - explicit[3 * i + k]).abs() / scale);
        }
    }
    println!("{label}: {} atoms, {} edges; explicit vs autodiff {worst_auto:.1e}, vs finite differences {worst_fd:.1e} (of max |F| = {scale:.3} eV/Å)", st.numbers.len(), batch.n_edges());
    assert!(worst_auto < 1e-10, "{label}: explicit forces differ from autodiff by {worst_auto:.2e}");
    assert!(worst_fd < 1e-6, "{label}: explicit forces differ from finite differences by {worst_fd:.2e}");
}

#[test]
fn explicit_forces_equal_autodiff_and_finite_differences() {
    let ctx = Ctx::cpu(true);
    let molecule = structure(Cell::new([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]], [false; 3]).unwrap(), 14, 1);
    let crystal = structure(Cell::new([[6.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.5, 7.0]], [true; 3]).unwrap(), 16, 2);
    for (name, mcgm) in [
        ("SchNet", None),
        ("SchNet + MCGM hard (3 levels, r = 2)", Some(McgmConfig { levels: 3, ratio: 2, assign: Assign::Hard })),
    ] {
        let m = model(mcgm, &ctx);
        check(&format!("{name}, molecule"), &m, &molecule, &ctx);
        check(&format!("{name}, triclinic crystal with images"), &m, &crystal, &ctx);
    }
}

#[test]
fn virial_is_minus_the_strain_derivative() {
    let ctx = Ctx::cpu(true);
    let crystal = structure(Cell::new([[6.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.5, 7.0]], [true; 3]).unwrap(), 16, 2);
    let m = model(Some(McgmConfig::default()), &ctx);
    let batch = Batch::new(&[&crystal], m.config.cutoff, |z| m.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, &ctx);
    let virial = to_vec(m.predict(&batch, &graph, &ctx).virial);
    let h = 1e-5;
    for a in 0..3 {
        for b in 0..3 {
            let strained = |e: f64| {
                let mut s = crystal.clone();
                s.positions = batch.positions.clone();
                let deform = |r: [f64; 3]| {
                    let mut x = r;
                    x[a] += e * r[b];
                    x
                };
                s.positions = s.positions.iter().map(|&r| deform(r)).collect();
                s.cell = Cell::new(s.cell.vectors().map(deform), [true; 3]).unwrap();
                energy(&m, &s, &ctx)
            };
            let numeric = -(strained(h) - strained(-h)) / (2.0 * h);
            println!("W[{a}][{b}] = {:.8} vs -dE/de = {numeric:.8}", virial[3 * a + b]);
            assert!((numeric - virial[3 * a + b]).abs() < 1e-6 * (1.0 + numeric.abs()), "virial[{a}][{b}]");
        }
    }
}
