//! The model's symmetries, MCGM's cluster hierarchy, training, and model files.

mod common;

use mdrun::cell::Cell;
use mdrun::ml::dataset::{Structure, read_extxyz};
use mdrun::ml::file;
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::mcgm::{Assign, Hierarchy, McgmConfig};
use mdrun::ml::model::{Model, ModelConfig};
use mdrun::ml::tensor::{Ctx, to_vec};
use mdrun::ml::train::{TrainOptions, predict_all, train};
use std::path::Path;

fn molecule(n: usize, seed: u32) -> Structure {
    let cell = Cell::new([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]], [false; 3]).unwrap();
    common::labelled_structure(cell, n, &[("C", 6), ("H", 1), ("O", 8), ("N", 7), ("H", 1)], seed)
}

fn model(mcgm: Option<McgmConfig>, ctx: &Ctx) -> Model {
    backbone_model("schnet", mcgm, ctx)
}

fn backbone_model(backbone: &str, mcgm: Option<McgmConfig>, ctx: &Ctx) -> Model {
    common::small_model(backbone, mcgm, 5, ctx)
}

fn predict(m: &Model, structures: &[&Structure], ctx: &Ctx) -> (Vec<f64>, Vec<f64>) {
    let batch = Batch::new(structures, m.config.cutoff, |z| m.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, ctx);
    let p = m.predict(&batch, &graph, ctx).unwrap();
    (to_vec(p.energy), to_vec(p.forces))
}

fn rotation(a: f64, b: f64, c: f64) -> [[f64; 3]; 3] {
    let (sa, ca, sb, cb, sc, cc) = (a.sin(), a.cos(), b.sin(), b.cos(), c.sin(), c.cos());
    [
        [ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
        [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
        [-sb, cb * sc, cb * cc],
    ]
}

fn apply(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

#[test]
fn energy_is_invariant_and_forces_equivariant() {
    let ctx = Ctx::cpu(true);
    let cases = [
        ("schnet", None),
        (
            "schnet",
            Some(McgmConfig {
                levels: 3,
                ratio: 2,
                assign: Assign::Hard,
                clusters: 4,
                distance_widths: Vec::new(),
            }),
        ),
        (
            "schnet",
            Some(McgmConfig {
                levels: 2,
                ratio: 2,
                assign: Assign::Soft,
                clusters: 3,
                distance_widths: Vec::new(),
            }),
        ),
        ("painn", None),
        (
            "painn",
            Some(McgmConfig {
                levels: 2,
                ratio: 2,
                assign: Assign::Soft,
                clusters: 3,
                distance_widths: Vec::new(),
            }),
        ),
    ];
    for (backbone, mcgm) in cases {
        let m = backbone_model(backbone, mcgm.clone(), &ctx);
        let st = molecule(15, 3);
        let (e0, f0) = predict(&m, &[&st], &ctx);

        // Rotation and translation.
        let rot = rotation(0.7, -1.1, 2.3);
        let mut moved = st.clone();
        moved.positions = st
            .positions
            .iter()
            .map(|&r| apply(&rot, r))
            .map(|r| [r[0] + 3.3, r[1] - 1.2, r[2] + 0.4])
            .collect();
        let (e1, f1) = predict(&m, &[&moved], &ctx);
        assert!(
            (e1[0] - e0[0]).abs() < 1e-10,
            "rotation changed the energy: {} vs {}",
            e1[0],
            e0[0]
        );
        for i in 0..st.numbers.len() {
            let expected = apply(&rot, [f0[3 * i], f0[3 * i + 1], f0[3 * i + 2]]);
            for k in 0..3 {
                assert!(
                    (f1[3 * i + k] - expected[k]).abs() < 1e-10,
                    "forces do not rotate with the molecule"
                );
            }
        }

        // Permutation of atoms.
        let perm: Vec<usize> = (0..st.numbers.len()).rev().collect();
        let mut permuted = st.clone();
        permuted.numbers = perm.iter().map(|&i| st.numbers[i]).collect();
        permuted.positions = perm.iter().map(|&i| st.positions[i]).collect();
        let (e2, f2) = predict(&m, &[&permuted], &ctx);
        assert!(
            (e2[0] - e0[0]).abs() < 1e-10,
            "atom order changed the energy"
        );
        for (new, &old) in perm.iter().enumerate() {
            for k in 0..3 {
                assert!((f2[3 * new + k] - f0[3 * old + k]).abs() < 1e-10);
            }
        }

        // Batches: a structure's energy does not depend on its company or its place.
        let other = molecule(11, 8);
        let (eb, _) = predict(&m, &[&other, &st], &ctx);
        let (ec, _) = predict(&m, &[&st, &other], &ctx);
        let (eo, _) = predict(&m, &[&other], &ctx);
        assert!(
            (eb[1] - e0[0]).abs() < 1e-10 && (ec[0] - e0[0]).abs() < 1e-10,
            "batch company changed the energy"
        );
        assert!((eb[0] - eo[0]).abs() < 1e-10 && (ec[1] - eo[0]).abs() < 1e-10);
        println!(
            "{backbone}, MCGM {:?}: invariant under rotation, translation, atom and batch permutation",
            mcgm.map(|m| m.assign)
        );
    }
}

#[test]
fn hard_clusters_stay_within_structures_and_follow_the_level_sizes() {
    let ctx = Ctx::cpu(true);
    let m = model(None, &ctx);
    let structures: Vec<Structure> = (0..4)
        .map(|s| molecule(10 + 3 * s as usize, 20 + s))
        .collect();
    let refs: Vec<&Structure> = structures.iter().collect();
    let batch = Batch::new(&refs, 4.0, |z| m.species_index(z)).unwrap();
    let x = ctx.matrix(
        &(0..batch.n_atoms * 6)
            .map(|k| ((k * 7919) % 101) as f64 / 50.0 - 1.0)
            .collect::<Vec<_>>(),
        batch.n_atoms,
        6,
    );
    let config = McgmConfig {
        levels: 4,
        ratio: 2,
        assign: Assign::Hard,
        clusters: 4,
        distance_widths: Vec::new(),
    };
    let h = Hierarchy::build(&config, &batch, &x, &ctx);
    assert_eq!(h.levels.len(), 4);
    // Level 1: one cluster per element present in each structure.
    for s in 0..batch.n_structures {
        let elements: std::collections::BTreeSet<usize> = (0..batch.n_atoms)
            .filter(|&a| batch.structure[a] == s)
            .map(|a| batch.species[a])
            .collect();
        let level1 = h.levels[0]
            .structure_host
            .iter()
            .filter(|&&t| t == s)
            .count();
        assert_eq!(level1, elements.len());
    }
    for (l, level) in h.levels.iter().enumerate().skip(1) {
        let below = &h.levels[l - 1];
        for s in 0..batch.n_structures {
            let n_below = below.structure_host.iter().filter(|&&t| t == s).count();
            let n_here = level.structure_host.iter().filter(|&&t| t == s).count();
            assert_eq!(
                n_here,
                (n_below / config.ratio).max(1),
                "level {} of structure {s}",
                l + 1
            );
        }
        // Every member's cluster belongs to the member's own structure.
        for (member, &cluster) in level.member_of_host.iter().enumerate() {
            assert_eq!(
                level.structure_host[cluster], below.structure_host[member],
                "a cluster spans two structures"
            );
        }
    }
}

fn chain_data() -> Vec<Structure> {
    read_extxyz(&Path::new(env!("CARGO_MANIFEST_DIR")).join("potentials/data/chain.extxyz"))
        .unwrap()
}

#[test]
fn training_reduces_the_validation_error_and_the_model_file_round_trips() {
    let data = chain_data();
    let train_set: Vec<Structure> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, s)| s.clone())
        .step_by(4)
        .collect();
    let valid_set: Vec<Structure> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 == 0)
        .map(|(_, s)| s.clone())
        .collect();
    let config = ModelConfig {
        backbone: "schnet".into(),
        features: 32,
        blocks: 2,
        n_rbf: 16,
        cutoff: 4.0,
        block_cutoffs: vec![],
        species: vec![],
        mcgm: Some(McgmConfig::default()),
        long_range: None,
    };
    let options = TrainOptions {
        epochs: 25,
        batch_size: 8,
        seed: 3,
        ..Default::default()
    };
    let mut first = None;
    let trained = train(config, &train_set, &valid_set, &options, |r| {
        first.get_or_insert(r.valid.clone());
        println!(
            "epoch {:>3}: valid E MAE {:.2} meV/atom, F MAE {:.1} meV/Å",
            r.epoch,
            r.valid.energy_mae_ev_per_atom * 1e3,
            r.valid.force_mae_ev_per_a * 1e3
        );
    })
    .unwrap();
    let first = first.unwrap();
    let best = trained
        .history
        .iter()
        .map(|r| r.valid_loss)
        .fold(f64::INFINITY, f64::min);
    let initial = trained.history[0].valid_loss;
    println!(
        "validation loss {initial:.3e} after one epoch -> {best:.3e}; force MAE {:.1} -> best {:.1} meV/Å",
        first.force_mae_ev_per_a * 1e3,
        trained
            .history
            .iter()
            .map(|r| r.valid.force_mae_ev_per_a)
            .fold(f64::INFINITY, f64::min)
            * 1e3
    );
    assert!(
        best < initial / 4.0,
        "training did not reduce the validation loss by 4x: {initial} -> {best}"
    );

    // Parameter names are unique and name the tensor they stand beside.
    let names: std::collections::BTreeSet<&String> = trained.model.params.names.iter().collect();
    assert_eq!(
        names.len(),
        trained.model.params.names.len(),
        "duplicate parameter names"
    );
    assert_eq!(trained.model.params.names[0], "embedding");
    assert_eq!(
        trained.model.params.values[0].dims(),
        [trained.model.config.species.len(), 32]
    );

    // The file reproduces the model's predictions.
    let dir = std::env::temp_dir().join(format!("mdrun-model-{}", std::process::id()));
    file::save(&trained.model, &dir, serde_json::json!({"test": true})).unwrap();
    let ctx = Ctx::cpu(true);
    let (loaded, card) = file::load(&dir, &ctx).unwrap();
    assert_eq!(card.config, trained.model.config);
    let train_ctx = Ctx::cpu(false);
    let (a, _) = predict_all(&trained.model, &valid_set[..5], 5, &train_ctx).unwrap();
    let (b, _) = predict_all(&loaded, &valid_set[..5], 5, &ctx).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.energy - y.energy).abs() < 1e-3 * x.energy.abs().max(1.0),
            "energy {} vs {} after reload",
            x.energy,
            y.energy
        );
    }
    // Either file, or the folder, names the model; a foreign file is refused clearly.
    assert!(file::load(&dir.join("model.safetensors"), &ctx).is_ok());
    assert!(file::load(&dir.join("model.json"), &ctx).is_ok());
    let mut card_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    card_json["format_version"] = serde_json::json!(99);
    std::fs::write(dir.join("model.json"), card_json.to_string()).unwrap();
    let err = file::load(&dir, &ctx)
        .err()
        .expect("version 99 is refused")
        .to_string();
    assert!(err.contains("format version 99"), "{err}");
    card_json["format_version"] = serde_json::json!(1);
    card_json["config"]["features"] = serde_json::json!(48);
    std::fs::write(dir.join("model.json"), card_json.to_string()).unwrap();
    let err = file::load(&dir, &ctx)
        .err()
        .expect("mismatched architecture is refused")
        .to_string();
    assert!(err.contains("shape"), "{err}");
}

#[test]
fn training_is_reproducible_for_a_seed() {
    let data = chain_data();
    let train_set: Vec<Structure> = data.iter().step_by(15).cloned().collect();
    let valid_set: Vec<Structure> = data.iter().skip(3).step_by(60).cloned().collect();
    let config = ModelConfig { backbone: "schnet".into(), features: 16, blocks: 2, n_rbf: 10, cutoff: 4.0, block_cutoffs: vec![], species: vec![], mcgm: Some(McgmConfig::default()), long_range: None };
    let options = TrainOptions { epochs: 2, seed: 11, ..Default::default() };
    let weights = || {
        let t = train(config.clone(), &train_set, &valid_set, &options, |_| {}).unwrap();
        t.model.params.values.iter().flat_map(|v| to_vec(v.clone())).collect::<Vec<f64>>()
    };
    assert!(weights() == weights(), "the same seed gave different weights");
}
