//! Model files: `model.safetensors` (the weights, f64, by name) beside `model.json` (the card:
//! format and version, architecture, species, reference energies, units, and how it was
//! trained). Wherever a model is expected, the folder or either file may be given.
//!
//! Loading checks the format name and version, the architecture, and every tensor's name and
//! shape, so a file from another model type or an older format fails with a message instead of
//! producing numbers.

use super::model::{Model, ModelConfig, Normalization};
use super::tensor::{Ctx, to_vec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "mdrun-mcgm";
/// The newest format this mdrun reads. Version 2 adds the long-range parts (learned charges, the
/// distance-aware MCGM); version 3 charge equilibration (which a version-2 reader would take
/// for projected charges). A model is written in the oldest version that holds it, which older
/// mdrun reads.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version that holds `model`.
fn version_of(model: &Model) -> u32 {
    if model.config.long_range.as_ref().is_some_and(|l| l.equilibration) {
        3
    } else if model.config.long_range.is_some() || model.config.is_distance_aware() {
        2
    } else {
        1
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelCard {
    pub format: String,
    pub format_version: u32,
    pub units: BTreeMap<String, String>,
    pub config: ModelConfig,
    pub normalization: Normalization,
    /// Free-form training provenance: data, options, metrics.
    #[serde(default)]
    pub training: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("model {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The card of a committee folder (`mdrun train --committee N`): its members are model folders
/// inside it, trained on the same data from different seeds. Wherever one model is expected,
/// the committee folder stands for its first member.
pub const COMMITTEE_FORMAT: &str = "mdrun-committee";
pub const COMMITTEE_CARD: &str = "committee.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitteeCard {
    pub format: String,
    /// Member folders, relative to the committee folder; the first drives the dynamics.
    pub members: Vec<String>,
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The member folders of the committee at `path` (a folder with committee.json), or None for a
/// single model.
pub fn committee_members(path: &Path) -> Result<Option<Vec<PathBuf>>, ModelFileError> {
    let card_path = path.join(COMMITTEE_CARD);
    if !path.is_dir() || !card_path.is_file() {
        return Ok(None);
    }
    let invalid = |message: String| ModelFileError::Invalid { path: card_path.clone(), message };
    let text = std::fs::read_to_string(&card_path).map_err(|source| ModelFileError::Io { path: card_path.clone(), source })?;
    let card: CommitteeCard = serde_json::from_str(&text).map_err(|e| invalid(format!("not a committee card: {e}")))?;
    if card.format != COMMITTEE_FORMAT {
        return Err(invalid(format!("format '{}' is not an mdrun committee ('{COMMITTEE_FORMAT}')", card.format)));
    }
    if card.members.is_empty() {
        return Err(invalid("members is empty: a committee needs at least one model".into()));
    }
    // Members live inside the folder: a card cannot send mdrun elsewhere.
    if let Some(bad) = card.members.iter().find(|m| m.is_empty() || Path::new(m).components().any(|c| !matches!(c, std::path::Component::Normal(_)))) {
        return Err(invalid(format!("member '{bad}': expected a folder name inside {}", path.display())));
    }
    Ok(Some(card.members.iter().map(|m| path.join(m)).collect()))
}

/// Writes `dir/committee.json` naming `members` (folders inside `dir`, already written).
pub fn save_committee(dir: &Path, members: &[String], training: serde_json::Value) -> Result<(), ModelFileError> {
    let card = CommitteeCard { format: COMMITTEE_FORMAT.into(), members: members.to_vec(), training };
    let path = dir.join(COMMITTEE_CARD);
    crate::io::checkpoint::write_atomically(&path, &serde_json::to_vec_pretty(&card).expect("card serialises")).map_err(|source| ModelFileError::Io { path, source })
}

/// The (card, weights) paths for a folder or either file; a committee folder's are its first
/// member's.
pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
    if let Ok(Some(members)) = committee_members(path)
        && !path.join("model.json").exists()
    {
        return paths(&members[0]);
    }
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let stem = if path.is_dir() {
        "model".to_string()
    } else {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    };
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.safetensors")),
    )
}

/// Writes `dir/model.safetensors` and `dir/model.json` (each atomically).
pub fn save(model: &Model, dir: &Path, training: serde_json::Value) -> Result<(), ModelFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelFileError::Io {
            path: path.clone(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (card_path, weights_path) = paths(dir);
    let card = ModelCard {
        format: FORMAT.into(),
        format_version: version_of(model),
        units: [("energy", "eV"), ("length", "Å"), ("force", "eV/Å")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        config: model.config.clone(),
        normalization: model.normalization.clone(),
        training,
    };
    let json = serde_json::to_vec_pretty(&card).expect("card serialises");
    crate::io::checkpoint::write_atomically(&weights_path, &safetensors_bytes(model))
        .map_err(io(&weights_path))?;
    crate::io::checkpoint::write_atomically(&card_path, &json).map_err(io(&card_path))?;
    Ok(())
}

fn safetensors_bytes(model: &Model) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, value) in model.params.names.iter().zip(&model.params.values) {
        let dims = value.dims();
        let start = data.len();
        for x in to_vec(value.clone().detach()) {
            data.extend_from_slice(&x.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F64", "shape": dims, "data_offsets": [start, data.len()]}),
        );
    }
    header.insert(
        "__metadata__".into(),
        serde_json::json!({"format": FORMAT, "format_version": version_of(model).to_string()}),
    );
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(header)).expect("header serialises");
    // The data must start 8-byte aligned.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

/// Largest sizes a card may ask for: well past any trained model, small enough that building
/// the network cannot exhaust memory.
const MAX_FEATURES: usize = 4096;
const MAX_BLOCKS: usize = 64;
const MAX_RBF: usize = 1024;
/// About 512 MB of f64 weights: 50 times the methods' largest network (F = 128, 6 blocks).
const MAX_PARAMETERS: u128 = 64 << 20;
/// Å: a graph cutoff beyond this holds thousands of neighbours per atom in any condensed phase.
const MAX_CUTOFF: f64 = 30.0;

/// Range checks of a card's architecture and normalisation, each naming the key.
fn check_card(card: &ModelCard) -> Result<(), String> {
    let c = &card.config;
    let count = |key: &str, value: usize, max: usize| {
        if (1..=max).contains(&value) { Ok(()) } else { Err(format!("config.{key} = {value}: expected 1 to {max}")) }
    };
    count("features", c.features, MAX_FEATURES)?;
    count("blocks", c.blocks, MAX_BLOCKS)?;
    count("n_rbf", c.n_rbf, MAX_RBF)?;
    if let Some(l) = &c.long_range
        && !(l.charge_width.is_finite() && (0.0..=10.0).contains(&l.charge_width))
    {
        return Err(format!("config.long_range.charge_width = {}: expected 0 to 10 Å", l.charge_width));
    }
    if let Some(l) = &c.long_range
        && l.equilibration
        && l.charge_width <= 0.0
    {
        return Err("config.long_range.charge_width = 0 with equilibration: charge equilibration needs Gaussian charges (a width above 0)".to_string());
    }
    if !(c.cutoff.is_finite() && c.cutoff > 0.0 && c.cutoff <= MAX_CUTOFF) {
        return Err(format!("config.cutoff = {}: expected a length above 0 and at most {MAX_CUTOFF} Å", c.cutoff));
    }
    // Dense layers are F x F (a few per block) and F x n_rbf: bound what building the network
    // allocates before the weights file says whether it matches.
    let parameters = c.blocks as u128 * (12 * (c.features as u128).pow(2) + 2 * (c.features * c.n_rbf) as u128);
    if parameters > MAX_PARAMETERS {
        return Err(format!(
            "config: {} blocks of {} features ({} radial functions) make about {parameters} parameters, more than {MAX_PARAMETERS}",
            c.blocks, c.features, c.n_rbf
        ));
    }
    if !c.block_cutoffs.is_empty() && c.block_cutoffs.len() != c.blocks {
        return Err(format!("config.block_cutoffs has {} values for {} blocks", c.block_cutoffs.len(), c.blocks));
    }
    if let Some(b) = c.block_cutoffs.iter().find(|b| !(b.is_finite() && **b > 0.0 && **b <= c.cutoff)) {
        return Err(format!("config.block_cutoffs holds {b}: each must be above 0 and at most the cutoff {}", c.cutoff));
    }
    if c.species.is_empty() {
        return Err("config.species is empty: the model knows no element".into());
    }
    if let Some(z) = c.species.iter().find(|&&z| crate::elements::symbol(z).is_none()) {
        return Err(format!("config.species holds {z}, not an atomic number"));
    }
    if let Some(m) = &c.mcgm {
        count("mcgm.levels", m.levels, 16)?;
        count("mcgm.ratio", m.ratio, 1 << 20)?;
        count("mcgm.clusters", m.clusters, 1024)?;
        if m.distance_widths.len() > 16 || m.distance_widths.iter().any(|w| !(w.is_finite() && *w > 0.0 && *w <= 100.0)) {
            return Err(format!("config.mcgm.distance_widths = {:?}: expected at most 16 widths, each above 0 and at most 100 Å", m.distance_widths));
        }
    }
    let n = &card.normalization;
    if n.reference_energies.len() != c.species.len() {
        return Err(format!(
            "normalization.reference_energies has {} values for {} species",
            n.reference_energies.len(),
            c.species.len()
        ));
    }
    if let Some(e) = n.reference_energies.iter().find(|e| !e.is_finite()) {
        return Err(format!("normalization.reference_energies holds {e}"));
    }
    if !(n.energy_scale.is_finite() && n.energy_scale > 0.0) {
        return Err(format!("normalization.energy_scale = {}: expected a positive number", n.energy_scale));
    }
    Ok(())
}

/// Reads a model from its folder or either of its files.
pub fn load(path: &Path, ctx: &Ctx) -> Result<(Model, ModelCard), ModelFileError> {
    // A committee folder stands for its first member; a broken committee card is named.
    committee_members(path)?;
    let (card_path, weights_path) = paths(path);
    let invalid = |p: &Path, message: String| ModelFileError::Invalid {
        path: p.to_path_buf(),
        message,
    };
    let card_text = std::fs::read_to_string(&card_path).map_err(|source| ModelFileError::Io {
        path: card_path.clone(),
        source,
    })?;
    let probe: serde_json::Value = serde_json::from_str(&card_text)
        .map_err(|e| invalid(&card_path, format!("not JSON: {e}")))?;
    let format = probe.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT {
        return Err(invalid(
            &card_path,
            format!("format '{format}' is not an mdrun model ('{FORMAT}')"),
        ));
    }
    let version = probe
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if !(1..=FORMAT_VERSION as u64).contains(&version) {
        return Err(invalid(
            &card_path,
            format!("format version {version}; this mdrun reads versions 1 to {FORMAT_VERSION}"),
        ));
    }
    let card: ModelCard =
        serde_json::from_value(probe).map_err(|e| invalid(&card_path, format!("card: {e}")))?;
    if !matches!(card.config.backbone.as_str(), "schnet" | "painn") {
        return Err(invalid(
            &card_path,
            format!(
                "backbone '{}' is not supported by this mdrun (schnet, painn)",
                card.config.backbone
            ),
        ));
    }
    check_card(&card).map_err(|message| invalid(&card_path, message))?;

    let bytes = std::fs::read(&weights_path).map_err(|source| ModelFileError::Io {
        path: weights_path.clone(),
        source,
    })?;
    let bad = |m: &str| invalid(&weights_path, m.to_string());
    if bytes.len() < 8 {
        return Err(bad("too short for safetensors"));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(
        bytes
            .get(8..8 + header_len)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|e| bad(&format!("header: {e}")))?;
    let data = &bytes[8 + header_len..];

    let template = Model::new(card.config.clone(), card.normalization.clone(), 0, ctx);
    let mut values = Vec::with_capacity(template.params.names.len());
    for (name, expected) in template.params.names.iter().zip(&template.params.values) {
        let entry = header.get(name).ok_or_else(|| {
            bad(&format!(
                "no tensor '{name}': the card's architecture does not match the weights"
            ))
        })?;
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone())
            .map_err(|_| bad(&format!("{name}: bad shape")))?;
        if shape != expected.dims().to_vec() {
            return Err(bad(&format!(
                "{name}: shape {shape:?}, the architecture needs {:?}",
                expected.dims()
            )));
        }
        if entry["dtype"] != "F64" {
            return Err(bad(&format!(
                "{name}: dtype {} (mdrun writes F64)",
                entry["dtype"]
            )));
        }
        let offsets: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone())
            .map_err(|_| bad(&format!("{name}: bad offsets")))?;
        let raw = data
            .get(offsets[0]..offsets[1])
            .ok_or_else(|| bad(&format!("{name}: data out of range (truncated file?)")))?;
        if raw.len() != shape.iter().product::<usize>() * 8 {
            return Err(bad(&format!(
                "{name}: {} bytes for shape {shape:?}",
                raw.len()
            )));
        }
        let floats: Vec<f64> = raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if let Some(k) = floats.iter().position(|x| !x.is_finite()) {
            return Err(bad(&format!("{name}: element {k} is {} (the training diverged?)", floats[k])));
        }
        values.push(ctx.matrix(&floats, shape[0], shape[1]));
    }
    Ok((template.with_params(values), card))
}
