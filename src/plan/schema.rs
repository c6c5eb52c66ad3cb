//! The `system.toml` schema as users write it (deserialised with spans, unknown keys refused)
//! and [`Locator`], which turns a span into the file, line and key of an error.

use super::PlanError;
use crate::units::{Dimension, parse_quantity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum QValue {
    Number(f64),
    Text(String),
}

pub(crate) type Q = Spanned<QValue>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    pub(super) structure: Spanned<RawStructure>,
    #[serde(default)]
    pub(super) masses: BTreeMap<String, Q>,
    pub(super) velocities: Option<Spanned<RawVelocities>>,
    pub(super) potential: Spanned<RawPotential>,
    pub(super) integrator: Spanned<RawIntegrator>,
    pub(super) barostat: Option<Spanned<RawBarostat>>,
    pub(super) minimize: Option<Spanned<RawMinimize>>,
    pub(super) run: Spanned<RawRun>,
    pub(super) neighbor: Option<RawNeighbor>,
    pub(super) output: Option<RawOutput>,
    pub(super) analysis: Option<Spanned<RawAnalysis>>,
}

/// `[analysis]`: g(r), MSD and VACF computed during the run from the state every `interval`
/// steps, without writing a trajectory (the same tables as `mdrun analyze`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalysis {
    pub(super) interval: Spanned<i64>,
    #[serde(default)]
    pub(super) rdf: bool,
    #[serde(default)]
    pub(super) msd: bool,
    #[serde(default)]
    pub(super) vacf: bool,
    pub(super) rmax: Option<Q>,
    pub(super) bins: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) pairs: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) select: Vec<String>,
    pub(super) fit: Option<Spanned<[f64; 2]>>,
    pub(super) out: Option<String>,
    pub(super) plots: Option<bool>,
    /// g(r) from elsewhere drawn over mdrun's: { "O-O" = "exp.csv" } (two columns, r and g).
    #[serde(default)]
    pub(super) rdf_reference: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub(super) enum RawCell {
    Lengths([f64; 3]),
    Vectors([[f64; 3]; 3]),
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub(super) enum RawPbc {
    All(bool),
    Each([bool; 3]),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStructure {
    pub(super) file: Option<Spanned<String>>,
    pub(super) format: Option<String>,
    pub(super) frame: Option<usize>,
    pub(super) lattice: Option<Spanned<String>>,
    pub(super) lattice_constant: Option<Q>,
    pub(super) density: Option<Spanned<f64>>,
    pub(super) repeat: Option<Spanned<[usize; 3]>>,
    /// With `[run] replicas`: replica k reads frame `frame + k` (different molecules or
    /// conformations per replica).
    pub(super) replica_frames: Option<Spanned<bool>>,
    pub(super) element: Option<Spanned<String>>,
    pub(super) cell: Option<Spanned<RawCell>>,
    pub(super) pbc: Option<Spanned<RawPbc>>,
    /// Total charge, e: a long-range model's learned charges sum to it.
    pub(super) charge: Option<Spanned<f64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVelocities {
    pub(super) source: Spanned<String>,
    pub(super) temperature: Option<Q>,
    pub(super) seed: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPotential {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) cutoff: Option<Q>,
    pub(super) shift: Option<bool>,
    pub(super) tail: Option<bool>,
    pub(super) mixing: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) species: BTreeMap<String, Spanned<BTreeMap<String, Q>>>,
    #[serde(default)]
    pub(super) pair: Vec<Spanned<BTreeMap<String, Spanned<PairField>>>>,
    pub(super) model: Option<Spanned<String>>,
    /// A long-range model's reciprocal sum: "auto", "mesh" (particle-mesh Ewald) or "sum".
    pub(super) ewald: Option<Spanned<String>>,
    /// A committee's thresholds on its force deviation.
    pub(super) uncertainty: Option<Spanned<RawUncertainty>>,
    /// The GPU's filter tables: "f32" (default) or "f16".
    pub(super) gpu_tables: Option<Spanned<String>>,
}

/// `[potential] uncertainty = { warn = "0.2 eV/A", save = "0.3 eV/A", stop = "1 eV/A",
/// frames = "uncertain.extxyz" }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUncertainty {
    pub(super) warn: Option<Q>,
    pub(super) save: Option<Q>,
    pub(super) stop: Option<Q>,
    pub(super) frames: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntegrator {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) timestep: Q,
    pub(super) temperature: Option<Q>,
    pub(super) damping: Option<Q>,
    pub(super) seed: Option<u64>,
    pub(super) zero: Option<bool>,
    /// Nosé-Hoover chain length and Trotter loops.
    pub(super) chain: Option<Spanned<i64>>,
    pub(super) loops: Option<Spanned<i64>>,
}

/// `[minimize]`: relax the structure (and the cell) before the run.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMinimize {
    pub(super) method: Option<Spanned<String>>,
    pub(super) etol: Option<Spanned<f64>>,
    pub(super) ftol: Option<Q>,
    pub(super) max_iterations: Option<Spanned<i64>>,
    pub(super) max_evaluations: Option<Spanned<i64>>,
    pub(super) dmax: Option<Q>,
    pub(super) cell: Option<Spanned<String>>,
    pub(super) pressure: Option<Q>,
    pub(super) pressure_tolerance: Option<Q>,
    pub(super) max_cycles: Option<Spanned<i64>>,
}

/// `[barostat]`: constant pressure.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBarostat {
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) pressure: Q,
    pub(super) damping: Q,
    pub(super) coupling: Option<Spanned<String>>,
    pub(super) chain: Option<Spanned<i64>>,
    /// c-rescale: the isothermal compressibility, 1/bar.
    pub(super) compressibility: Option<Spanned<f64>>,
    /// c-rescale: the noise seed.
    pub(super) seed: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub(super) steps: Spanned<i64>,
    pub(super) threads: Option<Spanned<i64>>,
    pub(super) max_force: Option<Q>,
    /// K, or "off".
    pub(super) max_temperature: Option<Q>,
    /// eV per atom, or "off".
    pub(super) max_energy_drift: Option<Q>,
    /// Thermo rows in a row with atoms outside a learned model's training data, or "off".
    pub(super) max_outside_rows: Option<Q>,
    pub(super) platform: Option<Spanned<String>>,
    pub(super) replicas: Option<Spanned<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub(super) skin: Option<Q>,
    pub(super) every: Option<Spanned<i64>>,
    pub(super) delay: Option<Spanned<i64>>,
    pub(super) check: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    pub(super) thermo: Option<Spanned<i64>>,
    pub(super) log: Option<String>,
    pub(super) checkpoint: Option<String>,
    pub(super) checkpoint_interval: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) trajectory: Vec<Spanned<RawTrajectory>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrajectory {
    pub(super) path: Spanned<String>,
    pub(super) interval: Spanned<i64>,
    pub(super) format: Option<String>,
    pub(super) velocities: Option<bool>,
    pub(super) wrap: Option<bool>,
}



/// Where a value sits in the input, for messages.
pub(crate) struct Locator<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub(crate) fn error(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> PlanError {
        PlanError {
            file: self.file.to_path_buf(),
            line: Some(self.line(span)),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    pub(crate) fn quantity(&self, q: &Q, key: &str, dim: Dimension) -> Result<f64, PlanError> {
        let value = match q.get_ref() {
            QValue::Number(x) => *x,
            QValue::Text(s) => {
                parse_quantity(s, dim).map_err(|e| self.error(&q.span(), key, e.describe(dim)))?
            }
        };
        if !value.is_finite() {
            return Err(self.error(&q.span(), key, format!("expected a finite {dim}")));
        }
        Ok(value)
    }

    pub(crate) fn positive(&self, q: &Q, key: &str, dim: Dimension) -> Result<f64, PlanError> {
        let v = self.quantity(q, key, dim)?;
        if v <= 0.0 {
            return Err(self.error(&q.span(), key, format!("must be positive (got {v})")));
        }
        Ok(v)
    }

    /// A positive quantity, or "off" (infinity: the check it sets never fires).
    pub(crate) fn positive_or_off(&self, q: &Q, key: &str, dim: Dimension) -> Result<f64, PlanError> {
        match q.get_ref() {
            QValue::Text(s) if s.trim() == "off" => Ok(f64::INFINITY),
            _ => self.positive(q, key, dim).map_err(|e| PlanError { message: format!("{} (or \"off\")", e.message), ..e }),
        }
    }

    /// A whole count of at least 1, or "off" (u64::MAX).
    pub(crate) fn count_or_off(&self, q: &Q, key: &str) -> Result<u64, PlanError> {
        match q.get_ref() {
            QValue::Text(s) if s.trim() == "off" => Ok(u64::MAX),
            QValue::Number(x) if x.fract() == 0.0 && *x >= 1.0 && *x <= 1e15 => Ok(*x as u64),
            _ => Err(self.error(&q.span(), key, "expected a whole count of at least 1, or \"off\"")),
        }
    }

    pub(crate) fn non_negative(&self, q: &Q, key: &str, dim: Dimension) -> Result<f64, PlanError> {
        let v = self.quantity(q, key, dim)?;
        if v < 0.0 {
            return Err(self.error(&q.span(), key, format!("must not be negative (got {v})")));
        }
        Ok(v)
    }

    pub(super) fn interval(&self, v: &Spanned<i64>, key: &str) -> Result<u64, PlanError> {
        if *v.get_ref() <= 0 {
            return Err(self.error(
                &v.span(),
                key,
                format!("must be a positive number of steps (got {})", v.get_ref()),
            ));
        }
        Ok(*v.get_ref() as u64)
    }
}

pub(crate) fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}

/// A value in a `[[potential.pair]]` entry: a quantity or the two species' names.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum PairField {
    Number(f64),
    Text(String),
    Names(Vec<String>),
}
