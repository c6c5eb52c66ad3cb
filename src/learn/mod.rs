//! `mdrun learn learn.toml`: the active-learning loop (DP-GEN's, with mdrun doing every step but
//! the reference calculation). Each round trains a committee on the data so far, runs MD with
//! it on the target systems, keeps the frames where the members disagree by `candidate` or more
//! (runs that pass `stop` end there, their last good state kept as a candidate), labels a
//! spread of them with an external command, and adds them to the data. It ends when a round's
//! MD finds nothing to label, or after `rounds`.
//!
//! Everything lives under `out/round-K/`: `train.extxyz` (the data it trains on), `model/` (the
//! committee), `system-J/` (each MD run, with `candidates.extxyz`), `selected.extxyz`,
//! `labelled.extxyz` and `round.json` (its row of the table). A stage whose output is there is
//! not run again, so an interrupted loop resumes where it stopped.

pub mod label;

use crate::ml::commands::TrainSettings;
use crate::plan::{Plan, Platform};
use crate::run::{RunError, RunOptions};
use crate::summary::CommitteeSummary;
use crate::units::{Dimension, parse_quantity};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// learn.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnFile {
    /// Labelled frames to start from (extended XYZ with energy= and forces).
    data: PathBuf,
    /// The working folder.
    out: PathBuf,
    /// The labelling command, run by `sh -c` in learn.toml's folder: `{input}` is replaced by
    /// the frames to label, `{output}` by where the labelled frames must go.
    label: String,
    /// The most rounds (default 5).
    rounds: Option<usize>,
    /// Committee members (default 4).
    committee: Option<usize>,
    /// Frames labelled per system and round, at most (default 20).
    frames_per_round: Option<usize>,
    /// Force deviation from which a frame is a candidate (default "0.1 eV/A").
    candidate: Option<String>,
    /// Force deviation past which an MD run stops: its frames are no longer worth labelling
    /// (default "1 eV/A").
    stop: Option<String>,
    /// The training settings (`mdrun train`'s keys; train, valid, out and committee are set by
    /// the loop).
    #[serde(default)]
    train: TrainSettings,
    /// The target systems: system.toml files whose [potential] the loop replaces by its
    /// committee.
    #[serde(default)]
    system: Vec<TargetSystem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSystem {
    input: PathBuf,
    /// Overrides the file's [run] steps.
    steps: Option<u64>,
}

/// What one round found: its row of the table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    /// Frames it trained on.
    pub trained_on: usize,
    /// The first member's force MAE on its validation frames, eV/Å.
    pub valid_force_mae: f64,
    pub systems: Vec<SystemRecord>,
    /// Frames labelled this round (0: converged).
    pub labelled: usize,
    /// The first member's errors on those frames before they were learned: what the
    /// committee's deviation was warning about (eV/atom, eV/Å).
    pub labelled_energy_mae: Option<f64>,
    pub labelled_force_mae: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SystemRecord {
    pub input: String,
    /// Thermo rows, and the committee's largest force deviation and the mean of the rows'
    /// largest (eV/Å).
    pub rows: u64,
    pub max_deviation: f64,
    pub mean_max_deviation: f64,
    pub candidates: usize,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

/// Runs `mdrun learn`.
pub fn learn_command(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: LearnFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let settings = Settings::of(&file, &dir, path)?;
    std::fs::create_dir_all(&settings.out).with_context(|| format!("cannot create {}", settings.out.display()))?;
    let mut records: Vec<RoundRecord> = Vec::new();
    for round in 1..=settings.rounds {
        let record = run_round(&settings, &file, round)?;
        let converged = record.labelled == 0;
        records.push(record);
        print_table(&records);
        write_table(&settings.out, &records)?;
        if converged {
            let model = settings.out.join(format!("round-{round}/model"));
            println!("converged in round {round}: its MD found no frame with a force deviation of {} eV/Å or more; the committee is {}", settings.candidate, model.display());
            return Ok(());
        }
    }
    println!(
        "not converged after {} rounds: the last round still found frames to label; run again with more rounds (the loop resumes) or look at the table in {}",
        settings.rounds,
        settings.out.join("rounds.tsv").display()
    );
    Ok(())
}

/// learn.toml checked, with paths made relative to its folder.
struct Settings {
    source: PathBuf,
    data: PathBuf,
    out: PathBuf,
    dir: PathBuf,
    label: String,
    rounds: usize,
    committee: usize,
    frames_per_round: usize,
    /// eV/Å, with the text the runs take.
    candidate: f64,
    candidate_text: String,
    stop_text: String,
    systems: Vec<(PathBuf, Option<u64>)>,
}

impl Settings {
    fn of(file: &LearnFile, dir: &Path, source: &Path) -> anyhow::Result<Settings> {
        let key = |k: &str, why: String| anyhow::anyhow!("{}: {k}: {why}", source.display());
        let force = |k: &str, text: &Option<String>, default: &str| -> anyhow::Result<(f64, String)> {
            let text = text.clone().unwrap_or_else(|| default.to_string());
            match parse_quantity(&text, Dimension::Force) {
                Ok(v) if v > 0.0 && v.is_finite() => Ok((v, text)),
                Ok(v) => Err(key(k, format!("{v}: expected a positive force"))),
                Err(e) => Err(key(k, e.describe(Dimension::Force))),
            }
        };
        let (candidate, candidate_text) = force("candidate", &file.candidate, "0.1 eV/A")?;
        let (stop, stop_text) = force("stop", &file.stop, "1 eV/A")?;
        if candidate >= stop {
            return Err(key("candidate", format!("{candidate_text} is not below stop = {stop_text}")));
        }
        if file.system.is_empty() {
            return Err(key("[[system]]", "no target system: give at least one [[system]] input = \"md.toml\"".into()));
        }
        if !file.label.contains("{input}") || !file.label.contains("{output}") {
            return Err(key("label", format!("'{}' must contain {{input}} and {{output}}", file.label)));
        }
        let count = |k: &str, v: Option<usize>, default: usize| match v {
            Some(0) => Err(key(k, "0: expected a positive count".into())),
            v => Ok(v.unwrap_or(default)),
        };
        if file.committee == Some(1) {
            return Err(key("committee", "1: a committee needs at least 2 members to disagree".into()));
        }
        if file.train.train.is_some() || file.train.out.is_some() || file.train.committee.is_some() {
            return Err(key("[train]", "train, out and committee are set by the loop (data, out and committee at the top of learn.toml)".into()));
        }
        Ok(Settings {
            source: source.to_path_buf(),
            data: dir.join(&file.data),
            out: dir.join(&file.out),
            dir: dir.to_path_buf(),
            label: file.label.clone(),
            rounds: count("rounds", file.rounds, 5)?,
            committee: count("committee", file.committee, 4)?,
            frames_per_round: count("frames_per_round", file.frames_per_round, 20)?,
            candidate,
            candidate_text,
            stop_text,
            systems: file.system.iter().map(|s| (dir.join(&s.input), s.steps)).collect(),
        })
    }
}

/// One round, each stage skipped when its output is already there.
fn run_round(settings: &Settings, file: &LearnFile, round: usize) -> anyhow::Result<RoundRecord> {
    let here = settings.out.join(format!("round-{round}"));
    let record_path = here.join("round.json");
    if let Ok(text) = std::fs::read_to_string(&record_path) {
        return serde_json::from_str(&text).with_context(|| format!("{} is not a round record", record_path.display()));
    }
    std::fs::create_dir_all(&here).with_context(|| format!("cannot create {}", here.display()))?;
    println!("== round {round}: {}", here.display());
    // The data: the initial frames, then each earlier round's labelled ones.
    let data = here.join("train.extxyz");
    if !data.exists() {
        let mut text = std::fs::read_to_string(&settings.data).with_context(|| format!("cannot read {}", settings.data.display()))?;
        for k in 1..round {
            let labelled = settings.out.join(format!("round-{k}/labelled.extxyz"));
            if labelled.exists() {
                text += &std::fs::read_to_string(&labelled).with_context(|| format!("cannot read {}", labelled.display()))?;
            }
        }
        crate::io::checkpoint::write_atomically(&data, text.as_bytes())?;
    }
    let trained_on = crate::ml::dataset::read_extxyz(&data)?.len();
    let model = here.join("model");
    if !model.join(crate::ml::file::COMMITTEE_CARD).exists() {
        let train = TrainSettings { train: Some(data.clone()), out: Some(model.clone()), committee: Some(settings.committee), valid: file.train.valid.as_ref().map(|v| settings.dir.join(v)), ..file.train.clone() };
        crate::ml::commands::train_command(None, train).context(format!("round {round}: training the committee"))?;
    }
    let valid_force_mae = first_member_valid_force_mae(&model).unwrap_or(f64::NAN);

    let mut systems = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for (j, (input, steps)) in settings.systems.iter().enumerate() {
        let md = here.join(format!("system-{}", j + 1));
        let (record, frames) = sample(settings, input, *steps, &model, &md).with_context(|| format!("round {round}: MD of {}", input.display()))?;
        println!(
            "round {round}, {}: max force deviation {:.4} eV/Å (rows' mean {:.4}), {} candidate frame(s){}",
            input.display(),
            record.max_deviation,
            record.mean_max_deviation,
            record.candidates,
            record.stopped.as_ref().map_or(String::new(), |s| format!("; stopped: {s}"))
        );
        candidates.extend(spread(frames, settings.frames_per_round));
        systems.push(record);
    }
    let mut record = RoundRecord { round, trained_on, valid_force_mae, systems, labelled: candidates.len(), ..Default::default() };
    if !candidates.is_empty() {
        let selected = here.join("selected.extxyz");
        crate::io::checkpoint::write_atomically(&selected, candidates.concat().as_bytes())?;
        let labelled = here.join("labelled.extxyz");
        if !labelled.exists() {
            run_labeller(settings, &selected, &labelled, candidates.len()).with_context(|| format!("round {round}: labelling {}", selected.display()))?;
        }
        let frames = crate::ml::dataset::read_extxyz(&labelled)?;
        let (energy, force) = first_member_errors(&model, &frames)?;
        record.labelled_energy_mae = Some(energy);
        record.labelled_force_mae = Some(force);
    }
    crate::io::checkpoint::write_atomically(&record_path, &serde_json::to_vec_pretty(&record).expect("a record serialises"))?;
    Ok(record)
}

/// The committee's MD of one target system: its record and the candidate frames (text).
fn sample(settings: &Settings, input: &Path, steps: Option<u64>, model: &Path, md: &Path) -> anyhow::Result<(SystemRecord, Vec<String>)> {
    let text = std::fs::read_to_string(input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{}: {}", input.display(), e.message().trim()))?;
    let model = std::path::absolute(model)?;
    let potential = toml::toml! {
        type = "ml"
        model = (model.display().to_string())
        // The loop's table reports the deviation: no warning per row as well.
        uncertainty = { warn = "off", save = (settings.candidate_text.clone()), stop = (settings.stop_text.clone()), frames = "candidates.extxyz" }
    };
    table.insert("potential".into(), toml::Value::Table(potential));
    // The failure checks stay on: members trained on the same data can agree on a wrong
    // extrapolation (atoms fall into each other where no frame had them close), and
    // `[run] max_outside_rows` stops that run at its last frame worth labelling.
    if let Some(steps) = steps {
        let run = table.entry("run").or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(run) = run.as_table_mut() {
            run.insert("steps".into(), toml::Value::Integer(steps as i64));
        }
    }
    let plan = Plan::from_str(&toml::to_string(&table)?, input, Some(md)).map_err(|e| anyhow::anyhow!("{e} (with [potential] replaced by the round's committee)"))?;
    let options = RunOptions { quiet: true, platform: Some(Platform::Cpu), ..Default::default() };
    let frames_path = md.join("candidates.extxyz");
    let mut record = SystemRecord { input: input.display().to_string(), ..Default::default() };
    let mut extra = Vec::new();
    match crate::run::run(&plan, &options) {
        Ok(summary) => {
            if let Some(c) = summary.committee {
                (record.rows, record.max_deviation, record.mean_max_deviation) = (c.rows, c.max_deviation, c.mean_max_deviation);
            }
        }
        // Past `stop` (or any other failure check, or a blow-up): the state before is where
        // the model stopped being trustworthy, the most useful frame of the run.
        Err(e @ (RunError::Failed { .. } | RunError::BlowUp { .. })) => {
            let saved = match &e {
                RunError::Failed { saved, .. } | RunError::BlowUp { saved, .. } => saved.clone(),
                _ => unreachable!(),
            };
            let deviations: Vec<f64> = crate::analysis::stats::read_table(&plan.log)
                .ok()
                .and_then(|t| t.columns.iter().position(|c| c == "FDevMax(eV/A)").map(|c| t.rows.iter().map(|r| r[c]).collect()))
                .unwrap_or_default();
            let c = CommitteeSummary::of_row_maxima(&deviations);
            (record.rows, record.max_deviation, record.mean_max_deviation) = (c.rows, c.max_deviation, c.mean_max_deviation);
            record.stopped = Some(e.to_string());
            let chk = crate::io::checkpoint::Checkpoint::read(&saved)?;
            extra.push(crate::io::extxyz::system_frame(&chk.system, vec![("step".into(), chk.step.to_string()), ("mdrun_last_good".into(), "T".into())]));
        }
        Err(e) => return Err(e.into()),
    }
    let mut frames = match std::fs::read_to_string(&frames_path) {
        Ok(text) => split_frames(&text).with_context(|| format!("{}", frames_path.display()))?,
        Err(_) => Vec::new(),
    };
    frames.extend(extra);
    record.candidates = frames.len();
    Ok((record, frames))
}

/// The frames of an XYZ text, each with its lines.
fn split_frames(text: &str) -> anyhow::Result<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let n: usize = lines[at].trim().parse().with_context(|| format!("line {}: expected an atom count", at + 1))?;
        let end = at + n + 2;
        if end > lines.len() {
            bail!("line {}: the last frame is cut short", at + 1);
        }
        frames.push(lines[at..end].join("\n") + "\n");
        at = end;
    }
    Ok(frames)
}

/// At most `n` of `frames`, evenly spread over the run (neighbouring thermo rows are alike).
fn spread(frames: Vec<String>, n: usize) -> Vec<String> {
    if frames.len() <= n {
        return frames;
    }
    let last = frames.len() - 1;
    let mut picked: Vec<usize> = (0..n).map(|k| if n == 1 { last } else { (k * last + (n - 1) / 2) / (n - 1) }).collect();
    picked.dedup();
    picked.into_iter().map(|k| frames[k].clone()).collect()
}

/// Runs the labelling command on `selected` into `labelled` (through a part file, so a
/// labelling cut short is run again) and checks it labelled every frame.
fn run_labeller(settings: &Settings, selected: &Path, labelled: &Path, expected: usize) -> anyhow::Result<()> {
    let part = labelled.with_extension("extxyz.part");
    let absolute = |p: &Path| std::path::absolute(p).map(|p| p.display().to_string());
    let command = settings.label.replace("{input}", &shell_quote(&absolute(selected)?)).replace("{output}", &shell_quote(&absolute(&part)?));
    println!("labelling {expected} frame(s): {command}");
    let output = std::process::Command::new("sh").arg("-c").arg(&command).current_dir(&settings.dir).output().with_context(|| format!("cannot start sh for '{command}'"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("the label command of {} failed ({}): '{command}'; its last words: {}", settings.source.display(), output.status, tail.join(" | "));
    }
    let frames = crate::ml::dataset::read_extxyz(&part).with_context(|| format!("the label command wrote {}, which is not labelled data", part.display()))?;
    if frames.len() != expected {
        bail!("the label command wrote {} frame(s) to {}, for {expected} to label", frames.len(), part.display());
    }
    std::fs::rename(&part, labelled).with_context(|| format!("cannot move {} to {}", part.display(), labelled.display()))?;
    Ok(())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The first member's force MAE on its validation frames (from its card), eV/Å.
fn first_member_valid_force_mae(model: &Path) -> Option<f64> {
    let (card, _) = crate::ml::file::paths(model);
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(card).ok()?).ok()?;
    card["training"]["valid_metrics"]["all"]["force_mae_ev_per_a"].as_f64()
}

/// The first member's energy (eV/atom) and force (eV/Å) MAE on `frames`.
fn first_member_errors(model: &Path, frames: &[crate::ml::dataset::Structure]) -> anyhow::Result<(f64, f64)> {
    let ctx = crate::ml::tensor::Ctx::cpu(true);
    let (model, _) = crate::ml::file::load(model, &ctx)?;
    let (_, metrics) = crate::ml::train::predict_all(&model, frames, 32, &ctx).map_err(anyhow::Error::msg)?;
    Ok((metrics.energy_mae_ev_per_atom, metrics.force_mae_ev_per_a))
}

const TABLE_HEADER: [&str; 8] = ["round", "trained on", "valid F MAE meV/Å", "max dev eV/Å", "mean max dev eV/Å", "candidates", "labelled", "their F MAE meV/Å"];

fn table_row(r: &RoundRecord) -> [String; 8] {
    let max = r.systems.iter().map(|s| s.max_deviation).fold(0.0, f64::max);
    let mean = r.systems.iter().map(|s| s.mean_max_deviation).sum::<f64>() / r.systems.len().max(1) as f64;
    let candidates: usize = r.systems.iter().map(|s| s.candidates).sum();
    let stopped = if r.systems.iter().any(|s| s.stopped.is_some()) { " (stopped)" } else { "" };
    [
        r.round.to_string(),
        r.trained_on.to_string(),
        format!("{:.2}", r.valid_force_mae * 1e3),
        format!("{max:.4}{stopped}"),
        format!("{mean:.4}"),
        candidates.to_string(),
        r.labelled.to_string(),
        r.labelled_force_mae.map_or("-".into(), |f| format!("{:.2}", f * 1e3)),
    ]
}

fn print_table(records: &[RoundRecord]) {
    println!("{:>5} {:>10} {:>18} {:>20} {:>18} {:>10} {:>8} {:>18}", TABLE_HEADER[0], TABLE_HEADER[1], TABLE_HEADER[2], TABLE_HEADER[3], TABLE_HEADER[4], TABLE_HEADER[5], TABLE_HEADER[6], TABLE_HEADER[7]);
    for r in records {
        let c = table_row(r);
        println!("{:>5} {:>10} {:>18} {:>20} {:>18} {:>10} {:>8} {:>18}", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    }
}

/// `out/rounds.tsv`: the table so far, tab-separated.
fn write_table(out: &Path, records: &[RoundRecord]) -> anyhow::Result<()> {
    let mut text = TABLE_HEADER.join("\t") + "\n";
    for r in records {
        text += &(table_row(r).join("\t") + "\n");
    }
    crate::io::checkpoint::write_atomically(&out.join("rounds.tsv"), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_ends_and_spaces_the_rest() {
        let frames: Vec<String> = (0..10).map(|k| k.to_string()).collect();
        assert_eq!(spread(frames.clone(), 3), ["0", "5", "9"]);
        assert_eq!(spread(frames.clone(), 1), ["9"]);
        assert_eq!(spread(frames.clone(), 20).len(), 10);
    }

    #[test]
    fn frames_split_by_their_atom_counts() {
        let text = "2\nc\nA 0 0 0\nA 1 0 0\n1\nc\nB 0 0 0\n";
        assert_eq!(split_frames(text).unwrap(), ["2\nc\nA 0 0 0\nA 1 0 0\n", "1\nc\nB 0 0 0\n"]);
        assert!(split_frames("3\nc\nA 0 0 0\n").is_err());
    }
}
