//! The model's explicit forces equal burn's autodiff forces and central finite differences, for
//! SchNet with and without MCGM, molecules and periodic cells; the virial equals minus the
//! strain derivative of the energy.

mod common;

use mdrun::cell::Cell;
use mdrun::ml::dataset::Structure;
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::mcgm::{Assign, McgmConfig};
use mdrun::ml::model::Model;
use mdrun::ml::tensor::{Ctx, to_vec};

fn structure(cell: Cell, n: usize, seed: u32) -> Structure {
    common::labelled_structure(cell, n, &[("C", 6), ("H", 1), ("O", 8), ("N", 7)], seed)
}

fn model(mcgm: Option<McgmConfig>, ctx: &Ctx) -> Model {
    backbone_model("schnet", mcgm, ctx)
}

fn backbone_model(backbone: &str, mcgm: Option<McgmConfig>, ctx: &Ctx) -> Model {
    common::small_model(backbone, mcgm, 3, ctx)
}

fn energy(model: &Model, st: &Structure, ctx: &Ctx) -> f64 {
    let batch = Batch::new(&[st], model.config.cutoff, |z| model.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, ctx);
    to_vec(model.predict(&batch, &graph, ctx).unwrap().energy)[0]
}

fn check(label: &str, model: &Model, st: &Structure, ctx: &Ctx) {
    let batch = Batch::new(&[st], model.config.cutoff, |z| model.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, ctx);
    let explicit = to_vec(model.predict(&batch, &graph, ctx).unwrap().forces);

    // Autodiff through the energy alone.
    let positions = graph.positions.clone().require_grad();
    let e = model
        .energy_from_edges(&batch, &graph, graph.edge_vectors(&positions), ctx)
        .unwrap()
        .sum();
    let grads = e.backward();
    let autodiff: Vec<f64> = to_vec(positions.grad(&grads).expect("position gradient"))
        .iter()
        .map(|g| -g)
        .collect();

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
    println!(
        "{label}: {} atoms, {} edges; explicit vs autodiff {worst_auto:.1e}, vs finite differences {worst_fd:.1e} (of max |F| = {scale:.3} eV/Å)",
        st.numbers.len(),
        batch.n_edges()
    );
    assert!(
        worst_auto < 1e-10,
        "{label}: explicit forces differ from autodiff by {worst_auto:.2e}"
    );
    assert!(
        worst_fd < 1e-6,
        "{label}: explicit forces differ from finite differences by {worst_fd:.2e}"
    );
}

#[test]
fn explicit_forces_equal_autodiff_and_finite_differences() {
    let ctx = Ctx::cpu(true);
    let molecule = structure(
        Cell::new(
            [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]],
            [false; 3],
        )
        .unwrap(),
        14,
        1,
    );
    let crystal = structure(
        Cell::new(
            [[6.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.5, 7.0]],
            [true; 3],
        )
        .unwrap(),
        16,
        2,
    );
    let mut per_block = model(None, &ctx);
    per_block.config.block_cutoffs = vec![2.5, 4.0];
    let per_block = Model::new(
        per_block.config.clone(),
        per_block.normalization.clone(),
        3,
        &ctx,
    );
    check(
        "SchNet, cutoffs 2.5 then 4 Å (seed 003), molecule",
        &per_block,
        &structure(
            Cell::new(
                [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]],
                [false; 3],
            )
            .unwrap(),
            14,
            1,
        ),
        &ctx,
    );
    check(
        "SchNet, cutoffs 2.5 then 4 Å (seed 003), crystal",
        &per_block,
        &structure(
            Cell::new(
                [[6.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.5, 7.0]],
                [true; 3],
            )
            .unwrap(),
            16,
            2,
        ),
        &ctx,
    );
    for (name, mcgm) in [
        ("PaiNN", None),
        (
            "PaiNN + MCGM hard",
            Some(McgmConfig {
                levels: 3,
                ratio: 2,
                assign: Assign::Hard,
                clusters: 4,
                distance_widths: Vec::new(),
            }),
        ),
        (
            "PaiNN + MCGM soft",
            Some(McgmConfig {
                levels: 2,
                ratio: 2,
                assign: Assign::Soft,
                clusters: 3,
                distance_widths: Vec::new(),
            }),
        ),
    ] {
        let m = backbone_model("painn", mcgm, &ctx);
        check(&format!("{name}, molecule"), &m, &molecule, &ctx);
        check(
            &format!("{name}, triclinic crystal with images"),
            &m,
            &crystal,
            &ctx,
        );
    }
    for (name, mcgm) in [
        ("SchNet", None),
        (
            "SchNet + MCGM hard (3 levels, r = 2)",
            Some(McgmConfig {
                levels: 3,
                ratio: 2,
                assign: Assign::Hard,
                clusters: 4,
                distance_widths: Vec::new(),
            }),
        ),
        (
            "SchNet + MCGM soft (elements + 3 centroids)",
            Some(McgmConfig {
                levels: 2,
                ratio: 2,
                assign: Assign::Soft,
                clusters: 3,
                distance_widths: Vec::new(),
            }),
        ),
    ] {
        let m = model(mcgm, &ctx);
        check(&format!("{name}, molecule"), &m, &molecule, &ctx);
        check(
            &format!("{name}, triclinic crystal with images"),
            &m,
            &crystal,
            &ctx,
        );
    }
}

#[test]
fn virial_is_minus_the_strain_derivative() {
    let ctx = Ctx::cpu(true);
    let crystal = structure(
        Cell::new(
            [[6.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.5, 7.0]],
            [true; 3],
        )
        .unwrap(),
        16,
        2,
    );
    for m in [
        model(Some(McgmConfig::default()), &ctx),
        backbone_model(
            "painn",
            Some(McgmConfig {
                levels: 2,
                ratio: 2,
                assign: Assign::Soft,
                clusters: 3,
                distance_widths: Vec::new(),
            }),
            &ctx,
        ),
    ] {
        println!("{}:", m.config.backbone);
        let batch = Batch::new(&[&crystal], m.config.cutoff, |z| m.species_index(z)).unwrap();
        let graph = GraphTensors::new(&batch, &ctx);
        let virial = to_vec(m.predict(&batch, &graph, &ctx).unwrap().virial);
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
                println!(
                    "W[{a}][{b}] = {:.8} vs -dE/de = {numeric:.8}",
                    virial[3 * a + b]
                );
                assert!(
                    (numeric - virial[3 * a + b]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "virial[{a}][{b}]"
                );
            }
        }
    }
}

/// Energy along a smooth path of positions: with hard K-means labels it jumps where a label
/// flips; with soft memberships it stays smooth.
#[test]
fn soft_assignment_is_smooth_where_hard_labels_flip() {
    let ctx = Ctx::cpu(true);
    let cell = Cell::new(
        [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]],
        [false; 3],
    )
    .unwrap();
    // Four elements: level 1 has 4 clusters, level 2 splits them in 2 by K-means. Between two
    // unrelated geometries the level-2 labels differ, so they flip somewhere on the way.
    let (a, b) = (structure(cell.clone(), 16, 7), structure(cell, 16, 8));
    let path = |m: &Model, t: f64| {
        let mut s = a.clone();
        for (r, (ra, rb)) in s
            .positions
            .iter_mut()
            .zip(a.positions.iter().zip(&b.positions))
        {
            *r = [0, 1, 2].map(|k| (1.0 - t) * ra[k] + t * rb[k]);
        }
        energy(m, &s, &ctx)
    };
    let steps = 1000;
    // Largest second difference relative to the median one: O(1) for a smooth curve, huge where
    // the curve jumps.
    let roughness = |m: &Model| {
        let e: Vec<f64> = (0..=steps)
            .map(|k| path(m, k as f64 / steps as f64))
            .collect();
        let mut d2: Vec<f64> = (1..steps)
            .map(|k| (e[k + 1] - 2.0 * e[k] + e[k - 1]).abs())
            .collect();
        let max = d2.iter().copied().fold(0.0, f64::max);
        d2.sort_by(f64::total_cmp);
        max / d2[d2.len() / 2]
    };
    // One embedding for every element: the element clusters then differ by geometry alone,
    // and K-means on them reacts to the path (with distinct embeddings the partition of the
    // element clusters hardly ever changes, which is worth knowing about the paper's scheme).
    let same_embedding = |m: Model| {
        let mut values = m.params.values.clone();
        let dims = values[0].dims();
        values[0] = ctx.matrix(
            &(0..dims[0] * dims[1])
                .map(|k| 0.3 * ((k % dims[1]) as f64 - 7.5) / 8.0)
                .collect::<Vec<_>>(),
            dims[0],
            dims[1],
        );
        m.with_params(values)
    };
    let hard = same_embedding(model(
        Some(McgmConfig {
            levels: 3,
            ratio: 2,
            assign: Assign::Hard,
            clusters: 4,
            distance_widths: Vec::new(),
        }),
        &ctx,
    ));
    let soft = same_embedding(model(
        Some(McgmConfig {
            levels: 2,
            ratio: 2,
            assign: Assign::Soft,
            clusters: 3,
            distance_widths: Vec::new(),
        }),
        &ctx,
    ));
    let plain = same_embedding(model(None, &ctx));
    let (r_hard, r_soft, r_plain) = (roughness(&hard), roughness(&soft), roughness(&plain));
    println!(
        "largest / median second difference of E along the path: hard {r_hard:.1}, soft {r_soft:.1}, no MCGM {r_plain:.1}"
    );
    assert!(
        r_soft < 10.0 * r_plain.max(10.0),
        "soft MCGM energy is rougher than the backbone's: {r_soft} vs {r_plain}"
    );
    assert!(
        r_hard > 20.0 * r_soft && r_hard > 50.0,
        "expected the hard labels to flip along this path ({r_hard} vs soft {r_soft})"
    );
}
