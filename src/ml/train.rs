//! Training on energies, forces and, where the data has them, stresses: loss
//! `w_E · mean((ΔE/N)²) + w_F · mean(ΔF²) + w_S · mean((ΔW/N)²)` over each batch (W the virial,
//! its mean over the structures with a stress label),
//! gradients by burn's autodiff through the explicit forces, AdamW, learning rate halved when the
//! validation loss stops improving, early stopping, and the best parameters kept. Seeded: the
//! same data, options and seed give the same model.

use super::dataset::Structure;
use crate::cell::Vec3;
use super::graph::{Batch, GraphTensors};
use super::model::{Model, ModelConfig, Normalization};
use super::tensor::{Ctx, to_vec};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub energy_weight: f64,
    pub force_weight: f64,
    /// The weight of the per-atom virial error (structures with a `stress=`/`virial=` label;
    /// model files from before it have none, which is 0).
    #[serde(default)]
    pub stress_weight: f64,
    /// Epochs without improvement of the validation loss before stopping.
    pub patience: usize,
    pub seed: u64,
    /// Train in f64 (default f32; the GPU computes in f32).
    pub f64: bool,
    /// "cpu" or "gpu".
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_device() -> String {
    "cpu".into()
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 100,
            batch_size: 8,
            learning_rate: 2e-3,
            weight_decay: 0.0,
            // Per-atom energy errors (meV) are ~10x smaller than force errors (meV/Å): weigh
            // their squares so that both terms count.
            energy_weight: 100.0,
            force_weight: 1.0,
            // A virial per atom is an energy per atom, but its errors run several times the
            // energy's: a light weight, which pulls the pressure in without taking over from
            // the forces (raise it where the density matters).
            stress_weight: 1.0,
            patience: 20,
            seed: 1,
            f64: false,
            device: default_device(),
        }
    }
}

/// Errors of a model on a dataset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n_structures: usize,
    pub energy_mae_ev_per_atom: f64,
    pub energy_mae_ev: f64,
    pub energy_rmse_ev: f64,
    pub force_mae_ev_per_a: f64,
    pub force_rmse_ev_per_a: f64,
    /// Over the structures with a stress label (None: no structure had one): the stress
    /// components' mean absolute error, GPa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress_mae_gpa: Option<f64>,
    /// How many structures had a stress label (None: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_stress: Option<usize>,
}

/// A model's prediction of one structure.
#[derive(Clone, Debug)]
pub struct Predicted {
    /// eV
    pub energy: f64,
    /// eV/Å
    pub forces: Vec<Vec3>,
    /// W = -dE/dε, eV, row-major 3x3 (as `Structure::virial`)
    pub virial: [f64; 9],
}

/// One row of the training table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub valid: Metrics,
    pub learning_rate: f64,
    pub seconds: f64,
}

pub struct Trained {
    pub model: Model,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub structures_per_second: f64,
    /// Why the training stopped before its last epoch or early stop, if it did: a signal, or a
    /// validation loss that was no longer finite (the best epoch before it is kept).
    pub stopped: Option<String>,
}

/// Per-species reference energies by least squares on the training energies.
pub fn fit_reference_energies(species: &[u32], data: &[Structure]) -> Vec<f64> {
    let k = species.len();
    let mut a = nalgebra::DMatrix::<f64>::zeros(data.len(), k);
    let mut b = nalgebra::DVector::<f64>::zeros(data.len());
    for (row, s) in data.iter().enumerate() {
        for &z in &s.numbers {
            let col = species
                .iter()
                .position(|&x| x == z)
                .expect("species listed");
            a[(row, col)] += 1.0;
        }
        b[row] = s.energy;
    }
    // Minimum-norm least squares: compositions that never vary independently share the energy.
    let svd = a.svd(true, true);
    let x = svd.solve(&b, 1e-9).expect("SVD solves");
    x.iter().copied().collect()
}

/// The shortest distance per element pair in `data` (pairs within `cutoff`).
pub fn shortest_pair_distances(data: &[Structure], cutoff: f64) -> std::collections::BTreeMap<String, f64> {
    let mut best = std::collections::BTreeMap::new();
    for s in data {
        if let Ok(batch) = Batch::new(&[s], cutoff, |z| Some(z as usize)) {
            for e in 0..batch.n_edges() {
                let key = crate::ml::model::pair_key(batch.species[batch.src[e]] as u32, batch.species[batch.dst[e]] as u32);
                let d = batch.edge_length(e);
                let entry = best.entry(key).or_insert(f64::INFINITY);
                *entry = d.min(*entry);
            }
        }
    }
    best
}

/// The atomic numbers present in `data`, sorted.
pub fn species_of(data: &[Structure]) -> Vec<u32> {
    let mut z: Vec<u32> = data
        .iter()
        .flat_map(|s| s.numbers.iter().copied())
        .collect();
    z.sort_unstable();
    z.dedup();
    z
}

/// Trains a new model of `config` (its `species` are filled in from the data).
pub fn train(config: ModelConfig, train_set: &[Structure], valid_set: &[Structure], options: &TrainOptions, report: impl FnMut(&EpochRecord)) -> Result<Trained, String> {
    train_from(None, config, train_set, valid_set, options, report)
}

/// Trains `start` further on new data (fine-tuning): its architecture, elements, reference
/// energies and energy scale stay (its weights were fitted against them); the shortest pair
/// distances it warns below widen to the new data's.
pub fn fine_tune(start: &Model, train_set: &[Structure], valid_set: &[Structure], options: &TrainOptions, report: impl FnMut(&EpochRecord)) -> Result<Trained, String> {
    train_from(Some(start), start.config.clone(), train_set, valid_set, options, report)
}

fn train_from(
    start: Option<&Model>,
    mut config: ModelConfig,
    train_set: &[Structure],
    valid_set: &[Structure],
    options: &TrainOptions,
    mut report: impl FnMut(&EpochRecord),
) -> Result<Trained, String> {
    if train_set.is_empty() || valid_set.is_empty() {
        return Err("training and validation sets must both hold structures".into());
    }
    let ctx = Ctx::named(&options.device, options.f64)?;
    match start {
        None => config.species = species_of(train_set),
        Some(_) => {
            if let Some(z) = species_of(train_set).into_iter().find(|z| !config.species.contains(z)) {
                return Err(format!("the training set has element Z = {z}, which the starting model (--init) does not know"));
            }
        }
    }
    for s in valid_set {
        if let Some(&z) = s.numbers.iter().find(|z| !config.species.contains(z)) {
            return Err(format!(
                "the validation set has element Z = {z}, which the training set lacks"
            ));
        }
    }
    let pair_min_distances = shortest_pair_distances(train_set, config.cutoff);
    let mut model = match start {
        None => {
            let normalization = normalization_of(&config.species, train_set, pair_min_distances);
            Model::new(config, normalization, options.seed, &ctx)
        }
        Some(start) => continued(start, pair_min_distances, &ctx),
    };

    let mut adam = Adam::new(
        &model.params.values,
        options.learning_rate,
        options.weight_decay,
    );
    let mut best = (f64::INFINITY, model.params.values.clone(), 0usize);
    let mut history = Vec::new();
    let mut since_best = 0;
    let mut stopped = None;
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let started = Instant::now();
    let mut seen = 0usize;
    for epoch in 1..=options.epochs {
        let t0 = Instant::now();
        shuffle(&mut order, options.seed, epoch as u64);
        let mut total = 0.0;
        for chunk in order.chunks(options.batch_size) {
            let structures: Vec<&Structure> = chunk.iter().map(|&i| &train_set[i]).collect();
            let batch = Batch::new(&structures, model.config.cutoff, |z| model.species_index(z))?;
            let graph = GraphTensors::new(&batch, &ctx);
            let loss = loss(&model, &batch, &graph, &structures, options, &ctx)?;
            total += to_vec(loss.clone().detach())[0] * chunk.len() as f64;
            let grads = loss.backward();
            model.params.values = adam.step(&model.params.values, &grads);
            seen += chunk.len();
        }
        let (valid_loss, valid) = evaluate(&model, valid_set, options, &ctx)?;
        if valid_loss < best.0 {
            best = (valid_loss, model.params.values.clone(), epoch);
            since_best = 0;
        } else {
            since_best += 1;
            // Halve the step when the validation loss has stalled for a while.
            if since_best % (options.patience / 2).max(1) == 0 {
                adam.learning_rate *= 0.5;
            }
        }
        let record = EpochRecord {
            epoch,
            train_loss: total / train_set.len() as f64,
            valid_loss,
            valid,
            learning_rate: adam.learning_rate,
            seconds: t0.elapsed().as_secs_f64(),
        };
        report(&record);
        history.push(record);
        if !valid_loss.is_finite() {
            if best.2 == 0 {
                return Err(format!("the training diverged at epoch {epoch} (validation loss {valid_loss}) before any epoch was usable: nothing to save; lower --learning-rate or check the data"));
            }
            stopped = Some(format!("the training diverged at epoch {epoch} (validation loss {valid_loss})"));
            break;
        }
        if crate::signals::requested() {
            stopped = Some(format!("interrupted after epoch {epoch}"));
            break;
        }
        if since_best >= options.patience {
            break;
        }
    }
    let structures_per_second = seen as f64 / started.elapsed().as_secs_f64();
    let model = model.with_params(best.1.into_iter().map(|p| p.detach()).collect());
    Ok(Trained {
        model,
        history,
        best_epoch: best.2,
        structures_per_second,
        stopped,
    })
}

/// A new model's normalization from its training data: per-species reference energies, the
/// forces' RMS as the energy scale, and the shortest distances per pair (`pair_min_distances`).
fn normalization_of(species: &[u32], train_set: &[Structure], pair_min_distances: BTreeMap<String, f64>) -> Normalization {
    let n_force = train_set.iter().map(|s| s.forces.len() * 3).sum::<usize>().max(1);
    let force_rms = (train_set.iter().flat_map(|s| s.forces.iter().flatten()).map(|f| f * f).sum::<f64>() / n_force as f64).sqrt();
    Normalization {
        reference_energies: fit_reference_energies(species, train_set),
        energy_scale: if force_rms > 0.0 { force_rms } else { 1.0 },
        // The shortest of all pairs (0: none within the cutoff, unknown).
        training_min_distance: pair_min_distances.values().copied().reduce(f64::min).unwrap_or(0.0),
        pair_min_distances,
    }
}

/// `start` as the first state of a training on `ctx`: its normalization, with the shortest
/// pair distances of the new data (`data_pairs`) joined to its own.
fn continued(start: &Model, data_pairs: BTreeMap<String, f64>, ctx: &Ctx) -> Model {
    let mut normalization = start.normalization.clone();
    let data_min = data_pairs.values().copied().reduce(f64::min).unwrap_or(0.0);
    for (pair, d) in data_pairs {
        let shortest = normalization.pair_min_distances.entry(pair).or_insert(d);
        *shortest = shortest.min(d);
    }
    normalization.training_min_distance = match (normalization.training_min_distance, data_min) {
        (a, b) if a > 0.0 && b > 0.0 => a.min(b),
        (a, b) => a.max(b),
    };
    let values = start.params.values.iter().map(|v| {
        let dims = v.dims();
        let value = ctx.matrix(&to_vec(v.clone().detach()), dims[0], dims[1]);
        if ctx.device.is_autodiff() { value.require_grad() } else { value }
    });
    let mut model = start.with_params(values.collect());
    model.normalization = normalization;
    model
}

fn loss(
    model: &Model,
    batch: &Batch,
    graph: &GraphTensors,
    structures: &[&Structure],
    options: &TrainOptions,
    ctx: &Ctx,
) -> Result<Tensor<2>, String> {
    let pred = model.predict(batch, graph, ctx)?;
    let energies: Vec<f64> = structures.iter().map(|s| s.energy).collect();
    let inv_counts: Vec<f64> = batch.counts.iter().map(|&c| 1.0 / c as f64).collect();
    let target_e = ctx.matrix(&energies, energies.len(), 1);
    let per_atom = (pred.energy - target_e) * ctx.matrix(&inv_counts, inv_counts.len(), 1);
    let forces: Vec<f64> = structures
        .iter()
        .flat_map(|s| s.forces.iter().flatten().copied())
        .collect();
    let df = pred.forces - ctx.matrix(&forces, batch.n_atoms, 3);
    let e_term = (per_atom.clone() * per_atom)
        .mean()
        .mul_scalar(options.energy_weight);
    let f_term = (df.clone() * df).mean().mul_scalar(options.force_weight);
    let loss = e_term + f_term;
    // Virials per atom, over the structures that have them (the others masked out).
    let labelled = structures.iter().filter(|s| s.virial.is_some()).count();
    if labelled == 0 || options.stress_weight == 0.0 {
        return Ok(loss.reshape([1, 1]));
    }
    let mut target = Vec::with_capacity(9 * structures.len());
    let mut mask = Vec::with_capacity(9 * structures.len());
    for (s, &n) in structures.iter().zip(&batch.counts) {
        let w = s.virial.unwrap_or([0.0; 9]);
        target.extend(w.map(|x| x / n as f64));
        mask.extend([if s.virial.is_some() { 1.0 / n as f64 } else { 0.0 }; 9]);
    }
    let dw = pred.virial * ctx.matrix(&mask, structures.len(), 9) - ctx.matrix(&target, structures.len(), 9);
    let w_term = (dw.clone() * dw).sum().mul_scalar(options.stress_weight / (9 * labelled) as f64);
    Ok((loss + w_term).reshape([1, 1]))
}

/// Validation loss and metrics (parameters detached: no graph is recorded).
fn evaluate(
    model: &Model,
    data: &[Structure],
    options: &TrainOptions,
    ctx: &Ctx,
) -> Result<(f64, Metrics), String> {
    let detached = model.with_params(
        model
            .params
            .values
            .iter()
            .map(|p| p.clone().detach())
            .collect(),
    );
    let (predictions, metrics) = predict_all(&detached, data, options.batch_size.max(16), ctx)?;
    let mut loss = 0.0;
    let labelled = data.iter().filter(|s| s.virial.is_some()).count().max(1) as f64;
    for (s, p) in data.iter().zip(&predictions) {
        let n = s.numbers.len() as f64;
        let de = (p.energy - s.energy) / n;
        let df: f64 = p.forces
            .iter()
            .flatten()
            .zip(s.forces.iter().flatten())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            / (3 * s.numbers.len()) as f64;
        loss += options.energy_weight * de * de + options.force_weight * df;
        if let Some(w) = s.virial {
            let dw: f64 = w.iter().zip(&p.virial).map(|(a, b)| ((a - b) / n).powi(2)).sum::<f64>() / 9.0;
            loss += options.stress_weight * dw * data.len() as f64 / labelled;
        }
    }
    Ok((loss / data.len() as f64, metrics))
}

/// The prediction of every structure, and the metrics against their labels.
pub fn predict_all(
    model: &Model,
    data: &[Structure],
    batch_size: usize,
    ctx: &Ctx,
) -> Result<(Vec<Predicted>, Metrics), String> {
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(batch_size.max(1)) {
        let structures: Vec<&Structure> = chunk.iter().collect();
        let batch = Batch::new(&structures, model.config.cutoff, |z| model.species_index(z))?;
        let graph = GraphTensors::new(&batch, ctx);
        let pred = model.predict(&batch, &graph, ctx)?;
        let energies = to_vec(pred.energy.detach());
        let forces = to_vec(pred.forces.detach());
        let virials = to_vec(pred.virial.detach());
        let mut at = 0;
        for (s, st) in structures.iter().enumerate() {
            let n = st.numbers.len();
            let f = (0..n)
                .map(|i| {
                    [
                        forces[3 * (at + i)],
                        forces[3 * (at + i) + 1],
                        forces[3 * (at + i) + 2],
                    ]
                })
                .collect();
            let virial = std::array::from_fn(|k| virials[9 * s + k]);
            out.push(Predicted { energy: energies[s], forces: f, virial });
            at += n;
        }
    }
    let metrics = metrics(data, &out);
    Ok((out, metrics))
}

pub fn metrics(data: &[Structure], predictions: &[Predicted]) -> Metrics {
    let mut m = Metrics {
        n_structures: data.len(),
        ..Default::default()
    };
    let mut n_force = 0usize;
    let (mut stress_error, mut n_stress) = (0.0, 0usize);
    for (s, p) in data.iter().zip(predictions) {
        let (e, f) = (p.energy, &p.forces);
        let de = e - s.energy;
        m.energy_mae_ev += de.abs();
        m.energy_rmse_ev += de * de;
        m.energy_mae_ev_per_atom += de.abs() / s.numbers.len() as f64;
        for (a, b) in f.iter().flatten().zip(s.forces.iter().flatten()) {
            m.force_mae_ev_per_a += (a - b).abs();
            m.force_rmse_ev_per_a += (a - b) * (a - b);
            n_force += 1;
        }
        if let Some(w) = s.virial {
            // σ = -W/V
            stress_error += w.iter().zip(&p.virial).map(|(a, b)| (a - b).abs()).sum::<f64>() / (9.0 * s.cell.volume()) * crate::units::NKTV2P * 1e-4; // eV/Å³ to bar to GPa
            n_stress += 1;
        }
    }
    if n_stress > 0 {
        m.stress_mae_gpa = Some(stress_error / n_stress as f64);
        m.n_stress = Some(n_stress);
    }
    let n = data.len().max(1) as f64;
    m.energy_mae_ev /= n;
    m.energy_mae_ev_per_atom /= n;
    m.energy_rmse_ev = (m.energy_rmse_ev / n).sqrt();
    m.force_mae_ev_per_a /= n_force.max(1) as f64;
    m.force_rmse_ev_per_a = (m.force_rmse_ev_per_a / n_force.max(1) as f64).sqrt();
    m
}

/// Metrics per structure type (`config_type=`), plus "all".
pub fn metrics_by_kind(
    data: &[Structure],
    predictions: &[Predicted],
) -> BTreeMap<String, Metrics> {
    let mut kinds: BTreeMap<String, (Vec<Structure>, Vec<Predicted>)> = BTreeMap::new();
    for (s, p) in data.iter().zip(predictions) {
        let entry = kinds.entry(s.kind.clone()).or_default();
        entry.0.push(s.clone());
        entry.1.push(p.clone());
    }
    let mut out: BTreeMap<String, Metrics> = kinds
        .into_iter()
        .map(|(k, (d, p))| (k, metrics(&d, &p)))
        .collect();
    out.insert("all".into(), metrics(data, predictions));
    out
}

/// Fisher-Yates with the counter-based generator: the order depends only on (seed, epoch).
fn shuffle(order: &mut [usize], seed: u64, epoch: u64) {
    for i in (1..order.len()).rev() {
        let w = crate::rng::philox4x32(
            [i as u32, epoch as u32, SHUFFLE_STREAM, 0],
            [seed as u32, (seed >> 32) as u32],
        );
        let j = (w[0] as usize) % (i + 1);
        order.swap(i, j);
    }
}

const SHUFFLE_STREAM: u32 = 0x5348_5546;

/// AdamW on plain tensors: the moments live outside autodiff, and each step returns fresh
/// leaf parameters.
struct Adam {
    learning_rate: f64,
    weight_decay: f64,
    m: Vec<Tensor<2>>,
    v: Vec<Tensor<2>>,
    t: i32,
}

impl Adam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(params: &[Tensor<2>], learning_rate: f64, weight_decay: f64) -> Adam {
        let zeros = || {
            params
                .iter()
                .map(|p| p.clone().inner().zeros_like())
                .collect()
        };
        Adam {
            learning_rate,
            weight_decay,
            m: zeros(),
            v: zeros(),
            t: 0,
        }
    }

    fn step(&mut self, params: &[Tensor<2>], grads: &burn::tensor::Gradients) -> Vec<Tensor<2>> {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        params
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let value = p.clone().inner();
                let Some(g) = p.grad(grads) else {
                    return value.autodiff().require_grad();
                };
                self.m[k] = self.m[k].clone().mul_scalar(Self::BETA1)
                    + g.clone().mul_scalar(1.0 - Self::BETA1);
                self.v[k] = self.v[k].clone().mul_scalar(Self::BETA2)
                    + (g.clone() * g).mul_scalar(1.0 - Self::BETA2);
                let update = self.m[k].clone().div_scalar(c1)
                    / (self.v[k]
                        .clone()
                        .div_scalar(c2)
                        .sqrt()
                        .add_scalar(Self::EPS));
                let decayed = value
                    .clone()
                    .mul_scalar(1.0 - self.learning_rate * self.weight_decay);
                (decayed - update.mul_scalar(self.learning_rate))
                    .autodiff()
                    .require_grad()
            })
            .collect()
    }
}
