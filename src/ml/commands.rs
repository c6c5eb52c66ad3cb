//! `mdrun train` and `mdrun eval`: the user-facing training and evaluation flows.

use super::dataset::{Structure, read_extxyz};
use super::file;
use super::mcgm::{Assign, McgmConfig};
use super::model::{LongRange, ModelConfig};
use super::tensor::Ctx;
use super::train::{EpochRecord, Metrics, Predicted, TrainOptions, metrics_by_kind, predict_all, train};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `mdrun train` takes, from train.toml and/or flags (flags win). Every key is
/// optional except the training data and the output folder.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Training data (extended XYZ with energy= and forces).
    #[arg(long = "train", value_name = "EXTXYZ")]
    pub train: Option<PathBuf>,
    /// Validation data (default: a seeded 10 % of the training file).
    #[arg(long, value_name = "EXTXYZ")]
    pub valid: Option<PathBuf>,
    /// Where to write model.safetensors and model.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// schnet or painn.
    #[arg(long)]
    pub backbone: Option<String>,
    /// off, hard or soft.
    #[arg(long)]
    pub mcgm: Option<String>,
    /// MCGM levels (level 1 = elements).
    #[arg(long)]
    pub levels: Option<usize>,
    /// MCGM reduction ratio between levels.
    #[arg(long)]
    pub ratio: Option<usize>,
    /// Learned centroids of the soft level (--mcgm soft).
    #[arg(long)]
    pub clusters: Option<usize>,
    /// The soft centroids also exchange messages filtered by their distance (--mcgm soft; open
    /// structures only): two groups farther apart than the graph reaches see their distance.
    #[arg(long)]
    #[serde(default)]
    pub mcgm_distance: bool,
    /// off (default), charges or qeq: learned charges, summed to each structure's total charge
    /// (`charge=`), with their Coulomb energy (Ewald in periodic cells); qeq: the charges by
    /// charge equilibration from learned electronegativities and hardnesses.
    #[arg(long)]
    pub long_range: Option<String>,
    /// Å: the Gaussian width of the learned charges (--long-range charges or qeq; default 1).
    #[arg(long)]
    pub charge_width: Option<f64>,
    #[arg(long)]
    pub features: Option<usize>,
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Radial basis functions.
    #[arg(long)]
    pub rbf: Option<usize>,
    /// Cutoff, Å.
    #[arg(long)]
    pub cutoff: Option<f64>,
    /// One cutoff per block (Å), comma-separated, e.g. 3,7 (seed 003); the largest sets the graph.
    #[arg(long, value_delimiter = ',')]
    pub block_cutoffs: Option<Vec<f64>>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub learning_rate: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub energy_weight: Option<f64>,
    #[arg(long)]
    pub force_weight: Option<f64>,
    /// Weight of the per-atom virial error, on the structures whose data has `stress=` or
    /// `virial=` (default 1; 0: stresses ignored). Fit them for a pressure, and an NPT density,
    /// that follow the reference.
    #[arg(long)]
    pub stress_weight: Option<f64>,
    /// Epochs without validation improvement before stopping.
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train in f64 instead of f32 (CPU only).
    #[arg(long)]
    #[serde(default)]
    pub f64: bool,
    /// cpu (default) or gpu (wgpu: Vulkan, Metal, DX12).
    #[arg(long)]
    pub device: Option<String>,
    /// Train a committee of N models (seeds seed, seed+1, ...; the same data and split) into
    /// --out/member-1 ... member-N with committee.json: MD with it reports how far the members'
    /// forces disagree. On the CPU the members train side by side, one per core.
    #[arg(long, value_name = "N")]
    pub committee: Option<usize>,
    /// Start from this trained model's weights instead of random ones (fine-tuning on new data):
    /// its architecture, elements and reference energies are kept, so the architecture flags
    /// are refused. With --committee N: a committee of N members, member K starting member K.
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
}

impl TrainSettings {
    /// `self` with every unset key taken from `file`.
    fn or(self, file: TrainSettings) -> TrainSettings {
        TrainSettings {
            train: self.train.or(file.train),
            valid: self.valid.or(file.valid),
            out: self.out.or(file.out),
            backbone: self.backbone.or(file.backbone),
            mcgm: self.mcgm.or(file.mcgm),
            levels: self.levels.or(file.levels),
            ratio: self.ratio.or(file.ratio),
            clusters: self.clusters.or(file.clusters),
            mcgm_distance: self.mcgm_distance || file.mcgm_distance,
            long_range: self.long_range.or(file.long_range),
            charge_width: self.charge_width.or(file.charge_width),
            features: self.features.or(file.features),
            blocks: self.blocks.or(file.blocks),
            rbf: self.rbf.or(file.rbf),
            cutoff: self.cutoff.or(file.cutoff),
            block_cutoffs: self.block_cutoffs.or(file.block_cutoffs),
            epochs: self.epochs.or(file.epochs),
            batch_size: self.batch_size.or(file.batch_size),
            learning_rate: self.learning_rate.or(file.learning_rate),
            weight_decay: self.weight_decay.or(file.weight_decay),
            energy_weight: self.energy_weight.or(file.energy_weight),
            force_weight: self.force_weight.or(file.force_weight),
            stress_weight: self.stress_weight.or(file.stress_weight),
            patience: self.patience.or(file.patience),
            seed: self.seed.or(file.seed),
            f64: self.f64 || file.f64,
            device: self.device.or(file.device),
            committee: self.committee.or(file.committee),
            init: self.init.or(file.init),
        }
    }
}

/// The structures with the model's energies and forces beside their labels, as extended XYZ.
fn predictions_extxyz(structures: &[Structure], predictions: &[Predicted]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (s, p) in structures.iter().zip(predictions) {
        let (energy, forces) = (p.energy, &p.forces);
        let _ = writeln!(out, "{}", s.numbers.len());
        if s.cell.any_periodic() {
            let v = s.cell.vectors();
            let pbc = s.cell.pbc().map(|p| if p { "T" } else { "F" });
            let _ = write!(out, "Lattice=\"{}\" pbc=\"{}\" ", v.iter().flatten().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" "), pbc.join(" "));
        }
        if let Some(w) = s.virial {
            let words = |w: &[f64; 9]| w.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(" ");
            let _ = write!(out, "virial=\"{}\" mdrun_virial=\"{}\" ", words(&w), words(&p.virial));
        }
        let _ = writeln!(out, "energy={:?} mdrun_energy={energy:?} config_type={} charge={:?} Properties=species:S:1:pos:R:3:forces:R:3:mdrun_forces:R:3", s.energy, s.kind, s.charge);
        for ((z, r), (f, p)) in s.numbers.iter().zip(&s.positions).zip(s.forces.iter().zip(forces)) {
            let symbol = crate::elements::symbol(*z).unwrap_or("X");
            let _ = writeln!(out, "{symbol} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}", r[0], r[1], r[2], f[0], f[1], f[2], p[0], p[1], p[2]);
        }
    }
    out
}

/// A distance-aware MCGM trains on open structures only: names the first periodic one.
fn open_structures_only(path: &Path, structures: &[Structure]) -> anyhow::Result<()> {
    for (k, s) in structures.iter().enumerate() {
        if let Err(e) = crate::ml::model::open_for_centroids(&s.cell) {
            bail!("{}: structure {} is periodic (pbc={:?}): {e}", path.display(), k + 1, s.cell.pbc());
        }
    }
    Ok(())
}

/// Runs `mdrun train`.
pub fn train_command(config_file: Option<&Path>, flags: TrainSettings) -> anyhow::Result<()> {
    let (settings, base) = match config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: TrainSettings = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
            // Paths in the file are relative to the file.
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let file = TrainSettings {
                train: file.train.map(|p| dir.join(p)),
                valid: file.valid.map(|p| dir.join(p)),
                out: file.out.map(|p| dir.join(p)),
                ..file
            };
            (flags.or(file), Some(path.to_path_buf()))
        }
        None => (flags, None),
    };
    let Some(train_path) = settings.train.clone() else {
        bail!("no training data: give --train data.extxyz (or train = \"...\" in train.toml)")
    };
    let Some(out) = settings.out.clone() else {
        bail!("no output folder: give --out DIR")
    };
    // The model is written after all the training: a bad --out must stop us before it.
    let inputs: Vec<(String, PathBuf)> = [("training data", Some(&train_path)), ("validation data", settings.valid.as_ref())]
        .into_iter()
        .filter_map(|(k, p)| Some((k.to_string(), p?.clone())))
        .collect();
    crate::outputs::check(&[crate::outputs::Output::folder("--out", &out)], &inputs).map_err(|e| anyhow::anyhow!(e))?;
    for (name, value) in [("--batch-size", settings.batch_size), ("--epochs", settings.epochs), ("--committee", settings.committee)] {
        if value == Some(0) {
            bail!("{name} 0: expected a positive count");
        }
    }
    for (name, value) in [("--learning-rate", settings.learning_rate), ("--energy-weight", settings.energy_weight), ("--force-weight", settings.force_weight), ("--stress-weight", settings.stress_weight), ("--weight-decay", settings.weight_decay)] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            bail!("{name} {v}: expected a finite number, 0 or more");
        }
    }
    if settings.learning_rate == Some(0.0) {
        bail!("--learning-rate 0: nothing would be learned; expected a positive number");
    }
    let defaults = TrainOptions::default();
    let options = TrainOptions {
        epochs: settings.epochs.unwrap_or(defaults.epochs),
        batch_size: settings.batch_size.unwrap_or(defaults.batch_size).max(1),
        learning_rate: settings.learning_rate.unwrap_or(defaults.learning_rate),
        weight_decay: settings.weight_decay.unwrap_or(defaults.weight_decay),
        energy_weight: settings.energy_weight.unwrap_or(defaults.energy_weight),
        force_weight: settings.force_weight.unwrap_or(defaults.force_weight),
        stress_weight: settings.stress_weight.unwrap_or(defaults.stress_weight),
        patience: settings.patience.unwrap_or(defaults.patience),
        seed: settings.seed.unwrap_or(defaults.seed),
        f64: settings.f64,
        device: settings.device.clone().unwrap_or(defaults.device),
    };
    // Fine-tuning: the models to start from, one per member; they bring their architecture.
    let starts = match &settings.init {
        Some(path) => {
            let architecture = [
                ("--backbone", settings.backbone.is_some()),
                ("--mcgm", settings.mcgm.is_some()),
                ("--levels", settings.levels.is_some()),
                ("--ratio", settings.ratio.is_some()),
                ("--clusters", settings.clusters.is_some()),
                ("--mcgm-distance", settings.mcgm_distance),
                ("--long-range", settings.long_range.is_some()),
                ("--charge-width", settings.charge_width.is_some()),
                ("--features", settings.features.is_some()),
                ("--blocks", settings.blocks.is_some()),
                ("--rbf", settings.rbf.is_some()),
                ("--cutoff", settings.cutoff.is_some()),
                ("--block-cutoffs", settings.block_cutoffs.is_some()),
            ];
            if let Some((flag, _)) = architecture.iter().find(|(_, given)| *given) {
                bail!("{flag} with --init {}: the architecture is the starting model's", path.display());
            }
            Some(starting_models(path, settings.committee.unwrap_or(1))?)
        }
        None => None,
    };
    let backbone = settings.backbone.clone().unwrap_or_else(|| "schnet".into());
    if !matches!(backbone.as_str(), "schnet" | "painn") {
        bail!("--backbone {backbone}: expected schnet or painn");
    }
    let mcgm = match settings.mcgm.as_deref().unwrap_or("off") {
        "off" => None,
        "hard" => Some(Assign::Hard),
        "soft" => Some(Assign::Soft),
        other => bail!("--mcgm {other}: expected off, hard or soft"),
    }
    .map(|assign| McgmConfig {
        levels: settings.levels.unwrap_or(3).max(1),
        ratio: settings.ratio.unwrap_or(2).max(1),
        assign,
        clusters: settings.clusters.unwrap_or(4).max(1),
        distance_widths: if settings.mcgm_distance { crate::ml::mcgm::DISTANCE_WIDTHS.to_vec() } else { Vec::new() },
    });
    if settings.mcgm_distance && mcgm.as_ref().map(|m| m.assign) != Some(Assign::Soft) {
        bail!("--mcgm-distance needs --mcgm soft: the distances are between the soft level's centroids");
    }
    let long_range = match settings.long_range.as_deref().unwrap_or("off") {
        "off" => None,
        "charges" => Some(LongRange { charge_width: settings.charge_width.unwrap_or(1.0), charge_embedding: true, equilibration: false }),
        "qeq" => Some(LongRange { charge_width: settings.charge_width.unwrap_or(1.0), charge_embedding: true, equilibration: true }),
        other => bail!("--long-range {other}: expected off, charges or qeq"),
    };
    if let Some(w) = settings.charge_width.filter(|w| !(w.is_finite() && *w >= 0.0 && *w <= 10.0)) {
        bail!("--charge-width {w}: expected a width of 0 to 10 Å");
    }
    if long_range.as_ref().is_some_and(|l| l.equilibration && l.charge_width <= 0.0) {
        bail!("--long-range qeq with --charge-width 0: charge equilibration needs Gaussian charges (a point charge's own energy, its least hardness, is infinite); give a width above 0");
    }
    let block_cutoffs = settings.block_cutoffs.clone().unwrap_or_default();
    let blocks = settings.blocks.unwrap_or(if block_cutoffs.is_empty() {
        3
    } else {
        block_cutoffs.len()
    });
    if !block_cutoffs.is_empty() && block_cutoffs.len() != blocks {
        bail!(
            "--block-cutoffs gives {} cutoffs for {blocks} blocks",
            block_cutoffs.len()
        );
    }
    if block_cutoffs.iter().any(|&c| !(c > 0.0)) {
        bail!("--block-cutoffs must all be positive");
    }
    let config = ModelConfig {
        backbone,
        features: settings.features.unwrap_or(64),
        blocks,
        n_rbf: settings.rbf.unwrap_or(20),
        cutoff: block_cutoffs.iter().copied().fold(
            settings
                .cutoff
                .unwrap_or(if block_cutoffs.is_empty() { 5.0 } else { 0.0 }),
            f64::max,
        ),
        block_cutoffs,
        species: Vec::new(),
        mcgm,
        long_range,
    };
    if config.features < 2 || config.blocks == 0 || config.n_rbf < 2 || !(config.cutoff > 0.0) {
        bail!(
            "features must be at least 2, blocks at least 1, rbf at least 2 and the cutoff positive"
        );
    }

    let config = match &starts {
        Some(models) => models[0].config.clone(),
        None => config,
    };
    let all = read_extxyz(&train_path)?;
    if config.is_distance_aware() {
        open_structures_only(&train_path, &all)?;
    }
    let (train_set, valid_set) = match &settings.valid {
        Some(v) => {
            let valid = read_extxyz(v)?;
            if config.is_distance_aware() {
                open_structures_only(v, &valid)?;
            }
            (all, valid)
        }
        None => split(all, options.seed),
    };
    println!(
        "training {} on {} structures, validating on {} ({}); {} features, {} blocks, cutoff {} Å, MCGM {}, long range {}",
        config.backbone,
        train_set.len(),
        valid_set.len(),
        settings
            .valid
            .as_ref()
            .map_or("10 % split of the training file".to_string(), |v| v
                .display()
                .to_string()),
        config.features,
        config.blocks,
        config.cutoff,
        config.mcgm.as_ref().map_or("off".to_string(), |m| m.describe()),
        config.long_range.as_ref().map_or("off".to_string(), |l| l.describe())
    );
    let provenance = serde_json::json!({
        "mdrun_version": env!("CARGO_PKG_VERSION"),
        "train_data": train_path.display().to_string(),
        "valid_data": settings.valid.as_ref().map(|v| v.display().to_string()),
        "settings_file": base.map(|b| b.display().to_string()),
        "n_train": train_set.len(),
        "n_valid": valid_set.len(),
        "init": settings.init.as_ref().map(|p| p.display().to_string()),
    });
    let members = settings.committee.unwrap_or(1);
    let start = |k: usize| starts.as_ref().map(|models| &models[k]);
    if members == 1 {
        return train_member(config, start(0), &train_set, &valid_set, &options, &out, provenance, "");
    }
    // Training one model on the CPU keeps one core busy (the backend's kernels are serial at
    // these sizes), so the members train side by side, as many at once as there are cores
    // (twice the throughput of one after the other on two cores). A GPU takes them in turn.
    let cores = if options.device == "gpu" { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    let names: Vec<String> = (1..=members).map(|k| format!("member-{k}")).collect();
    for wave in (0..members).collect::<Vec<_>>().chunks(cores) {
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let jobs: Vec<_> = wave
                .iter()
                .map(|&k| {
                    let seed = options.seed.wrapping_add(k as u64);
                    let member_out = out.join(&names[k]);
                    println!("committee member {} of {members} (seed {seed}) -> {}", k + 1, member_out.display());
                    let member_options = TrainOptions { seed, ..options.clone() };
                    let (config, provenance, train_set, valid_set) = (config.clone(), provenance.clone(), &train_set, &valid_set);
                    let prefix = if wave.len() > 1 { format!("[member {}] ", k + 1) } else { String::new() };
                    let start = start(k);
                    scope.spawn(move || train_member(config, start, train_set, valid_set, &member_options, &member_out, provenance, &prefix))
                })
                .collect();
            // Every member of the wave finishes (an interrupt stops them all after their
            // epoch) before the first error is reported.
            let results: Vec<anyhow::Result<()>> = jobs.into_iter().map(|j| j.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a committee member's training panicked")))).collect();
            results.into_iter().collect()
        })?;
    }
    file::save_committee(&out, &names, provenance)?;
    println!("wrote the committee of {members} models: {}", out.join(file::COMMITTEE_CARD).display());
    Ok(())
}

/// Trains one model and writes it to `out` with its card (`provenance` plus how it trained).
/// `prefix` starts each printed line (members trained side by side print at once).
/// `start`: the model it continues (--init), if any.
#[allow(clippy::too_many_arguments)]
fn train_member(config: ModelConfig, start: Option<&super::model::Model>, train_set: &[Structure], valid_set: &[Structure], options: &TrainOptions, out: &Path, provenance: serde_json::Value, prefix: &str) -> anyhow::Result<()> {
    // The stress column where the validation data has stresses to compare with.
    let stress = options.stress_weight > 0.0 && valid_set.iter().any(|s| s.virial.is_some());
    println!(
        "{prefix}{:>6} {:>12} {:>12} {:>16} {:>14}{} {:>10} {:>8}",
        "epoch", "train loss", "valid loss", "E MAE meV/atom", "F MAE meV/Å",
        if stress { format!(" {:>10}", "S MAE GPa") } else { String::new() },
        "lr", "s"
    );
    let started = std::time::Instant::now();
    let report = |r: &EpochRecord| {
        println!(
            "{prefix}{:>6} {:>12.5e} {:>12.5e} {:>16.3} {:>14.2}{} {:>10.2e} {:>8.2}",
            r.epoch,
            r.train_loss,
            r.valid_loss,
            r.valid.energy_mae_ev_per_atom * 1e3,
            r.valid.force_mae_ev_per_a * 1e3,
            match r.valid.stress_mae_gpa.filter(|_| stress) {
                Some(s) => format!(" {s:>10.4}"),
                None => String::new(),
            },
            r.learning_rate,
            r.seconds
        )
    };
    // A signal stops the training after the current epoch; the best model so far is written.
    crate::signals::install();
    let trained = match start {
        Some(start) => super::train::fine_tune(start, train_set, valid_set, options, report),
        None => train(config, train_set, valid_set, options, report),
    }
    .map_err(|e| anyhow::anyhow!("training failed: {e}"))?;
    let ctx = Ctx::cpu(true);
    let model = reload(&trained.model, &ctx)?;
    let (predictions, _) =
        predict_all(&model, &valid_set, 32, &ctx).map_err(|e| anyhow::anyhow!(e))?;
    let by_kind = metrics_by_kind(&valid_set, &predictions);
    let mut training = provenance;
    training.as_object_mut().expect("an object").extend(serde_json::json!({
        "options": options,
        "epochs_run": trained.history.len(),
        "best_epoch": trained.best_epoch,
        "wall_s": started.elapsed().as_secs_f64(),
        "structures_per_second": trained.structures_per_second,
        "valid_metrics": by_kind,
        "history": trained.history,
    }).as_object().expect("an object").clone());
    file::save(&model, out, training)?;
    print!("{}", metrics_table(&by_kind, prefix));
    println!(
        "{prefix}best epoch {} of {}; {:.1} structures/s; wrote {} and {}",
        trained.best_epoch,
        trained.history.len(),
        trained.structures_per_second,
        out.join("model.safetensors").display(),
        out.join("model.json").display()
    );
    match trained.stopped {
        Some(why) if crate::signals::requested() => Err(crate::signals::Interrupted(format!(
            "{why}: the best model so far (epoch {}) was written to {}",
            trained.best_epoch,
            out.display()
        ))
        .into()),
        Some(why) => {
            eprintln!("{prefix}note: {why}; the model of the best epoch before it ({}) was written", trained.best_epoch);
            Ok(())
        }
        None => Ok(()),
    }
}

/// The models `--init PATH` names: PATH's model, or its committee's members, one per member to
/// train (`members`).
fn starting_models(path: &Path, members: usize) -> anyhow::Result<Vec<super::model::Model>> {
    let ctx = Ctx::cpu(true);
    let paths = file::committee_members(path)?.unwrap_or_else(|| vec![path.to_path_buf()]);
    if paths.len() != members {
        if paths.len() == 1 {
            bail!("--init {}: one model cannot start a committee of {members} (its members would start alike and disagree too little); give a committee of {members}", path.display());
        }
        bail!("--init {} is a committee of {} models: give --committee {} (member K starts member K), or name one member's folder", path.display(), paths.len(), paths.len());
    }
    paths.iter().map(|p| Ok(file::load(p, &ctx)?.0)).collect()
}

/// The trained model's parameters in a fresh f64 context.
fn reload(model: &super::model::Model, ctx: &Ctx) -> anyhow::Result<super::model::Model> {
    let values = model.params.values.iter().map(|v| {
        let dims = v.dims();
        ctx.matrix(&super::tensor::to_vec(v.clone().detach()), dims[0], dims[1])
    });
    let template =
        super::model::Model::new(model.config.clone(), model.normalization.clone(), 0, ctx);
    Ok(template.with_params(values.collect()))
}

/// A seeded 90/10 split.
fn split(all: Vec<Structure>, seed: u64) -> (Vec<Structure>, Vec<Structure>) {
    let n_valid = (all.len() / 10).max(1).min(all.len().saturating_sub(1));
    let mut order: Vec<usize> = (0..all.len()).collect();
    for i in (1..order.len()).rev() {
        let w = crate::rng::philox4x32([i as u32, 0, 0x5e7, 0], [seed as u32, (seed >> 32) as u32]);
        order.swap(i, w[0] as usize % (i + 1));
    }
    let valid_ids: std::collections::BTreeSet<usize> = order[..n_valid].iter().copied().collect();
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for (i, s) in all.into_iter().enumerate() {
        if valid_ids.contains(&i) {
            valid.push(s)
        } else {
            train.push(s)
        }
    }
    (train, valid)
}

/// The errors per structure type, a line each, every line starting with `prefix`; a stress
/// column when some structure has a stress label.
fn metrics_table(by_kind: &BTreeMap<String, Metrics>, prefix: &str) -> String {
    let stress = by_kind.values().any(|m| m.stress_mae_gpa.is_some());
    let mut table = format!(
        "{prefix}{:<14} {:>6} {:>16} {:>14} {:>14} {:>14} {:>14}{}\n",
        "type", "n", "E MAE meV/atom", "E MAE meV", "E RMSE meV", "F MAE meV/Å", "F RMSE meV/Å",
        if stress { format!(" {:>14}", "S MAE GPa") } else { String::new() }
    );
    for (kind, m) in by_kind {
        let s = match (stress, m.stress_mae_gpa) {
            (false, _) => String::new(),
            (true, Some(s)) => format!(" {s:>14.4}"),
            (true, None) => format!(" {:>14}", "-"),
        };
        table += &format!(
            "{prefix}{:<14} {:>6} {:>16.3} {:>14.2} {:>14.2} {:>14.2} {:>14.2}{s}\n",
            kind,
            m.n_structures,
            m.energy_mae_ev_per_atom * 1e3,
            m.energy_mae_ev * 1e3,
            m.energy_rmse_ev * 1e3,
            m.force_mae_ev_per_a * 1e3,
            m.force_rmse_ev_per_a * 1e3
        );
    }
    table
}

/// Runs `mdrun eval MODEL DATA [--json]`.
pub fn eval_command(model_path: &Path, data: &Path, json: bool, predictions_path: Option<&Path>) -> anyhow::Result<()> {
    let ctx = Ctx::cpu(true);
    let (model, _card) = file::load(model_path, &ctx)?;
    let structures = read_extxyz(data)?;
    let (predictions, _) = predict_all(&model, &structures, 32, &ctx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.display()))?;
    let by_kind = metrics_by_kind(&structures, &predictions);
    if let Some(path) = predictions_path {
        crate::io::checkpoint::write_atomically(path, predictions_extxyz(&structures, &predictions).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        let mut out = serde_json::to_value(&by_kind["all"]).expect("metrics serialise");
        out["by_type"] = serde_json::to_value(&by_kind).expect("metrics serialise");
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        print!("{}", metrics_table(&by_kind, ""));
    }
    Ok(())
}
