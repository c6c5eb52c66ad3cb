//! `system.toml` → [`Plan`]: the validated description of a run, in internal units.
//!
//! Every error names the file, the line and the key, and says what was expected. Unknown keys
//! are errors (a typo must not silently fall back to a default). The README lists every key;
//! keep it in step when adding one here.
//!
//! Relative paths to inputs are taken from the TOML file's folder; relative output paths from
//! the output folder (by default the same folder).

use crate::cell::{Cell, Vec3};
use crate::elements;
use crate::integrate::Integrator;
use crate::io::structure::{self, StructureData};
use crate::io::trajectory::TrajectorySpec;
use crate::lattice::{self, LatticeKind};
use crate::system::{Species, System};
use crate::units::{Dimension, parse_quantity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The validated run description.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The file the plan came from.
    pub source: PathBuf,
    /// Where the structure came from, for messages ("file argon.xyz" or "fcc lattice").
    pub structure_origin: String,
    pub system: System,
    pub potential: PotentialSpec,
    pub integrator: Integrator,
    /// ps
    pub timestep: f64,
    /// The step number at which the run ends.
    pub steps: u64,
    /// Å
    pub skin: f64,
    /// `[neighbor] every / delay / check`: when the list is rebuilt.
    pub rebuild: crate::simulation::RebuildPolicy,
    pub threads: Option<usize>,
    /// eV/Å: a larger force on any atom stops the run.
    pub max_force: f64,
    /// Where the steps run.
    pub platform: Platform,
    pub thermo_interval: u64,
    pub log: PathBuf,
    pub checkpoint: PathBuf,
    pub checkpoint_interval: Option<u64>,
    pub trajectories: Vec<TrajectorySpec>,
    /// `[analysis]`: computed during the run.
    pub analysis: Option<AnalysisPlan>,
    /// `[run] replicas`: independent copies stepped together (`Plan::replica`).
    pub replicas: usize,
    /// The Maxwell-Boltzmann draw of the initial velocities (temperature K, seed), if any.
    pub velocity_seed: Option<(f64, u64)>,
    /// `[structure] replica_frames`: the systems of replicas 1, 2, ... (replica 0 is `system`),
    /// with where each came from.
    pub replica_systems: Vec<(System, String)>,
    /// The files the run reads, by what they are ("input file", "structure file", "model"):
    /// no output may be one of them.
    pub inputs: Vec<(String, PathBuf)>,
}

/// The in-run analysis: what to compute, how often to sample, where the tables go.
#[derive(Clone, Debug)]
pub struct AnalysisPlan {
    pub settings: crate::analysis::TrajectoryAnalysis,
    pub interval: u64,
    pub out: PathBuf,
}

/// Where a simulation runs: `auto` takes a real GPU when there is one, else the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Platform {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl Platform {
    pub fn parse(text: &str) -> Result<Platform, String> {
        match text {
            "auto" => Ok(Platform::Auto),
            "cpu" => Ok(Platform::Cpu),
            "gpu" => Ok(Platform::Gpu),
            other => Err(format!(
                "unknown platform '{other}'; expected \"auto\", \"cpu\" or \"gpu\""
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum PotentialSpec {
    /// A pair style (crate::potential::pair) and its table.
    Pair(crate::potential::pair::PairSpec),
    /// A trained model file (`mdrun train`): `[potential] type = "ml"` (or "mcgm").
    Mcgm { model: PathBuf },
}

/// A problem with the input, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PlanError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl PlanError {
    fn render(&self) -> String {
        let mut s = self.file.display().to_string();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
        }
        s.push_str(": ");
        if let Some(key) = &self.key {
            s.push_str(key);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The TOML schema, as written by users.

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum QValue {
    Number(f64),
    Text(String),
}

pub(crate) type Q = Spanned<QValue>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    structure: Spanned<RawStructure>,
    #[serde(default)]
    masses: BTreeMap<String, Q>,
    velocities: Option<Spanned<RawVelocities>>,
    potential: Spanned<RawPotential>,
    integrator: Spanned<RawIntegrator>,
    run: Spanned<RawRun>,
    neighbor: Option<RawNeighbor>,
    output: Option<RawOutput>,
    analysis: Option<Spanned<RawAnalysis>>,
}

/// `[analysis]`: g(r), MSD and VACF computed during the run from the state every `interval`
/// steps, without writing a trajectory (the same tables as `mdrun analyze`).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawAnalysis {
    interval: Spanned<i64>,
    #[serde(default)]
    rdf: bool,
    #[serde(default)]
    msd: bool,
    #[serde(default)]
    vacf: bool,
    rmax: Option<Q>,
    bins: Option<Spanned<i64>>,
    #[serde(default)]
    pairs: Vec<Spanned<String>>,
    #[serde(default)]
    select: Vec<String>,
    fit: Option<Spanned<[f64; 2]>>,
    out: Option<String>,
    plots: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawCell {
    Lengths([f64; 3]),
    Vectors([[f64; 3]; 3]),
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawPbc {
    All(bool),
    Each([bool; 3]),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawStructure {
    file: Option<Spanned<String>>,
    format: Option<String>,
    frame: Option<usize>,
    lattice: Option<Spanned<String>>,
    lattice_constant: Option<Q>,
    density: Option<Spanned<f64>>,
    repeat: Option<Spanned<[usize; 3]>>,
    /// With `[run] replicas`: replica k reads frame `frame + k` (different molecules or
    /// conformations per replica).
    replica_frames: Option<Spanned<bool>>,
    element: Option<Spanned<String>>,
    cell: Option<Spanned<RawCell>>,
    pbc: Option<Spanned<RawPbc>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawVelocities {
    source: Spanned<String>,
    temperature: Option<Q>,
    seed: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPotential {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    cutoff: Option<Q>,
    shift: Option<bool>,
    tail: Option<bool>,
    mixing: Option<Spanned<String>>,
    #[serde(default)]
    species: BTreeMap<String, Spanned<BTreeMap<String, Q>>>,
    #[serde(default)]
    pair: Vec<Spanned<BTreeMap<String, Spanned<crate::potential::pair::toml::PairField>>>>,
    model: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawIntegrator {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    timestep: Q,
    temperature: Option<Q>,
    damping: Option<Q>,
    seed: Option<u64>,
    zero: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRun {
    steps: Spanned<i64>,
    threads: Option<Spanned<i64>>,
    max_force: Option<Q>,
    platform: Option<Spanned<String>>,
    replicas: Option<Spanned<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    skin: Option<Q>,
    every: Option<Spanned<i64>>,
    delay: Option<Spanned<i64>>,
    check: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    thermo: Option<Spanned<i64>>,
    log: Option<String>,
    checkpoint: Option<String>,
    checkpoint_interval: Option<Spanned<i64>>,
    #[serde(default)]
    trajectory: Vec<Spanned<RawTrajectory>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawTrajectory {
    path: Spanned<String>,
    interval: Spanned<i64>,
    format: Option<String>,
    velocities: Option<bool>,
    wrap: Option<bool>,
}

// ---------------------------------------------------------------------------------------------

/// Default neighbour skin, Å.
pub const DEFAULT_SKIN: f64 = 1.0;
/// Default force above which a run is stopped, eV/Å.
pub const DEFAULT_MAX_FORCE: f64 = 1.0e4;

/// Where a value sits in the input, for messages.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
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

    pub(crate) fn non_negative(&self, q: &Q, key: &str, dim: Dimension) -> Result<f64, PlanError> {
        let v = self.quantity(q, key, dim)?;
        if v < 0.0 {
            return Err(self.error(&q.span(), key, format!("must not be negative (got {v})")));
        }
        Ok(v)
    }

    fn interval(&self, v: &Spanned<i64>, key: &str) -> Result<u64, PlanError> {
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

impl Plan {
    /// Reads and validates a system.toml. `output_dir` overrides where relative outputs go.
    pub fn from_file(path: &Path, output_dir: Option<&Path>) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the input file: {e}"),
        })?;
        Plan::from_str(&text, path, output_dir)
    }

    /// Validates TOML text; `path` locates it (relative inputs are found next to it).
    pub fn from_str(text: &str, path: &Path, output_dir: Option<&Path>) -> Result<Plan, PlanError> {
        let at = Locator { file: path, text };
        let raw: RawPlan = toml::from_str(text).map_err(|e| PlanError {
            file: path.to_path_buf(),
            line: e.span().map(|s| at.line(&s)),
            key: None,
            message: e.message().trim().to_string(),
        })?;
        let input_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let output_dir = output_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| input_dir.clone());

        let (data, structure_origin, read_cell) =
            read_structure(&at, raw.structure.get_ref(), &input_dir, 0)?;
        let mut system = build_system(
            &at,
            &raw.structure,
            &raw.masses,
            data.clone(),
            read_cell,
            &structure_origin,
        )?;
        let velocity_seed = set_velocities(
            &at,
            raw.velocities.as_ref(),
            &data,
            &mut system,
            &structure_origin,
        )?;
        let potential = build_potential(&at, &raw.potential, &system, &input_dir)?;

        let integ = raw.integrator.get_ref();
        let timestep = at.positive(&integ.timestep, "[integrator] timestep", Dimension::Time)?;
        let integrator = match integ.kind.get_ref().as_str() {
            "verlet" | "velocity-verlet" | "nve" => {
                for (given, key) in [
                    (integ.temperature.is_some(), "temperature"),
                    (integ.damping.is_some(), "damping"),
                    (integ.seed.is_some(), "seed"),
                    (integ.zero.is_some(), "zero"),
                ] {
                    if given {
                        return Err(at.error(
                            &raw.integrator.span(),
                            &format!("[integrator] {key}"),
                            "only used by type = \"langevin\"; velocity Verlet is NVE",
                        ));
                    }
                }
                Integrator::VelocityVerlet
            }
            "langevin" => {
                let missing = |key: &str| {
                    at.error(
                        &raw.integrator.span(),
                        &format!("[integrator] {key}"),
                        "required for type = \"langevin\"",
                    )
                };
                let temperature = at.non_negative(
                    integ
                        .temperature
                        .as_ref()
                        .ok_or_else(|| missing("temperature"))?,
                    "[integrator] temperature",
                    Dimension::Temperature,
                )?;
                let damping = at.positive(
                    integ.damping.as_ref().ok_or_else(|| missing("damping"))?,
                    "[integrator] damping",
                    Dimension::Time,
                )?;
                Integrator::Langevin {
                    temperature,
                    damping,
                    seed: integ.seed.ok_or_else(|| missing("seed"))?,
                    zero: integ.zero.unwrap_or(false),
                }
            }
            other => {
                return Err(at.error(
                    &integ.kind.span(),
                    "[integrator] type",
                    format!("unknown integrator '{other}'; expected \"verlet\" or \"langevin\""),
                ));
            }
        };

        let run = raw.run.get_ref();
        if *run.steps.get_ref() < 0 {
            return Err(at.error(&run.steps.span(), "[run] steps", "must not be negative"));
        }
        let threads = match &run.threads {
            Some(t) if *t.get_ref() < 0 => {
                return Err(at.error(
                    &t.span(),
                    "[run] threads",
                    "must be 0 (all cores) or a positive count",
                ));
            }
            Some(t) if *t.get_ref() > 0 => Some(*t.get_ref() as usize),
            _ => None,
        };
        let replicas = match &run.replicas {
            Some(r) if *r.get_ref() < 1 || *r.get_ref() as u64 > crate::limits::MAX_REPLICAS as u64 => {
                return Err(at.error(&r.span(), "[run] replicas", format!("must be a count from 1 to {} (each replica runs on a thread of its own)", crate::limits::MAX_REPLICAS)));
            }
            Some(r) => *r.get_ref() as usize,
            None => 1,
        };
        let mut replica_systems = Vec::new();
        if let Some(flag) = &raw.structure.get_ref().replica_frames
            && *flag.get_ref()
        {
            if raw.structure.get_ref().file.is_none() || replicas < 2 {
                return Err(at.error(&flag.span(), "[structure] replica_frames", "needs a structure file and [run] replicas of 2 or more"));
            }
            for k in 1..replicas {
                let (data, origin, read_cell) = read_structure(&at, raw.structure.get_ref(), &input_dir, k)
                    .map_err(|e| PlanError { message: format!("{} (replica {k} of replica_frames)", e.message), ..e })?;
                let mut other = build_system(&at, &raw.structure, &raw.masses, data.clone(), read_cell, &origin)?;
                set_velocities(&at, raw.velocities.as_ref(), &data, &mut other, &origin)?;
                if matches!(potential, PotentialSpec::Pair(_)) && other.species != system.species {
                    return Err(at.error(&flag.span(), "[structure] replica_frames", format!("the {origin} has other species than frame 0; with Lennard-Jones every replica needs the same species (a model takes any it knows)")));
                }
                replica_systems.push((other, origin));
            }
        }
        let max_force = match &run.max_force {
            Some(q) => at.positive(q, "[run] max_force", Dimension::Force)?,
            None => DEFAULT_MAX_FORCE,
        };
        let platform = match &run.platform {
            None => Platform::Auto,
            Some(p) => Platform::parse(p.get_ref()).map_err(|e| at.error(&p.span(), "[run] platform", e))?,
        };
        let skin = match raw.neighbor.as_ref().and_then(|n| n.skin.as_ref()) {
            Some(q) => at.non_negative(q, "[neighbor] skin", Dimension::Length)?,
            None => DEFAULT_SKIN,
        };
        let mut rebuild = crate::simulation::RebuildPolicy::default();
        if let Some(n) = &raw.neighbor {
            if let Some(e) = &n.every {
                rebuild.every = at.interval(e, "[neighbor] every")?;
            }
            if let Some(d) = &n.delay {
                if *d.get_ref() < 0 {
                    return Err(at.error(&d.span(), "[neighbor] delay", "must not be negative"));
                }
                rebuild.delay = *d.get_ref() as u64;
            }
            if let Some(c) = n.check {
                rebuild.check = c;
            }
        }

        let output = raw.output.as_ref();
        let thermo_interval = match output.and_then(|o| o.thermo.as_ref()) {
            Some(t) => at.interval(t, "[output] thermo")?,
            None => 100,
        };
        let out_path = |p: &str| output_dir.join(p);
        let log = out_path(
            output
                .and_then(|o| o.log.as_deref())
                .unwrap_or("thermo.log"),
        );
        let checkpoint = out_path(
            output
                .and_then(|o| o.checkpoint.as_deref())
                .unwrap_or("checkpoint.chk"),
        );
        let checkpoint_interval = match output.and_then(|o| o.checkpoint_interval.as_ref()) {
            Some(c) => Some(at.interval(c, "[output] checkpoint_interval")?),
            None => None,
        };
        let mut trajectories = Vec::new();
        for t in output.map(|o| o.trajectory.as_slice()).unwrap_or_default() {
            let raw_t = t.get_ref();
            let path = out_path(raw_t.path.get_ref());
            let format = crate::io::format_for_path(&path, raw_t.format.as_deref());
            if format.is_empty() && path.extension().is_none() {
                return Err(at.error(&raw_t.path.span(), "[[output.trajectory]] path", "has no extension to choose the format from; add one (.xyz, .pdb, .dcd, ...) or give format"));
            }
            trajectories.push(TrajectorySpec {
                path,
                format,
                interval: at.interval(&raw_t.interval, "[[output.trajectory]] interval")?,
                velocities: raw_t.velocities.unwrap_or(false),
                wrap: raw_t.wrap.unwrap_or(true),
            });
        }

        let analysis = match &raw.analysis {
            None => None,
            Some(a) => {
                let r = a.get_ref();
                if !(r.rdf || r.msd || r.vacf) {
                    return Err(at.error(&a.span(), "[analysis]", "asks for nothing: set rdf, msd and/or vacf = true"));
                }
                let rmax = match &r.rmax {
                    Some(q) => at.positive(q, "[analysis] rmax", Dimension::Length)?,
                    None => 10.0,
                };
                let bins = match &r.bins {
                    Some(b) if *b.get_ref() > 0 && *b.get_ref() as u64 <= crate::limits::MAX_HISTOGRAM_BINS as u64 => *b.get_ref() as usize,
                    Some(b) => return Err(at.error(&b.span(), "[analysis] bins", format!("must be a count from 1 to {}", crate::limits::MAX_HISTOGRAM_BINS))),
                    None => 200,
                };
                let mut pairs = Vec::new();
                for p in &r.pairs {
                    pairs.push(crate::analysis::parse_pair(p.get_ref()).ok_or_else(|| at.error(&p.span(), "[analysis] pairs", format!("'{}': expected two species joined by '-', such as \"O-H\"", p.get_ref())))?);
                }
                for name in r.select.iter().chain(pairs.iter().flat_map(|(a, b)| [a, b])) {
                    if !system.species.iter().any(|sp| &sp.name == name) {
                        let present: Vec<&str> = system.species.iter().map(|sp| sp.name.as_str()).collect();
                        return Err(at.error(&a.span(), "[analysis]", format!("species '{name}' is not in the system (it has {})", present.join(", "))));
                    }
                }
                let fit = match &r.fit {
                    Some(f) => {
                        let [lo, hi] = *f.get_ref();
                        crate::analysis::fit_window(lo, hi).ok_or_else(|| at.error(&f.span(), "[analysis] fit", "expected [FROM, TO], fractions of the longest lag with 0 <= FROM < TO <= 1"))?
                    }
                    None => (0.1, 0.5),
                };
                let interval = at.interval(&r.interval, "[analysis] interval")?;
                Some(AnalysisPlan {
                    settings: crate::analysis::TrajectoryAnalysis {
                        rdf: r.rdf,
                        msd: r.msd,
                        vacf: r.vacf,
                        select: r.select.clone(),
                        pairs,
                        rmax,
                        bins,
                        dt: Some(interval as f64 * timestep),
                        fit,
                        plots: r.plots.unwrap_or(true),
                        quiet: false,
                    },
                    interval,
                    out: out_path(r.out.as_deref().unwrap_or("analysis")),
                })
            }
        };

        let inputs = input_files(path, raw.structure.get_ref().file.as_ref().map(|f| input_dir.join(f.get_ref())), &potential);
        Ok(Plan {
            source: path.to_path_buf(),
            structure_origin,
            system,
            potential,
            integrator,
            timestep,
            steps: *run.steps.get_ref() as u64,
            skin,
            rebuild,
            threads,
            max_force,
            platform,
            thermo_interval,
            log,
            checkpoint,
            checkpoint_interval,
            trajectories,
            analysis,
            replicas,
            velocity_seed,
            replica_systems,
            inputs,
        })
    }

    /// Every file and folder the run writes, with the key that names it.
    pub fn outputs(&self) -> Vec<crate::outputs::Output> {
        use crate::outputs::Output;
        let mut out = vec![Output::file("[output] log", &self.log), Output::file("[output] checkpoint", &self.checkpoint)];
        out.push(Output::file("the last-good checkpoint", &crate::run::sibling(&self.checkpoint, "last-good")));
        for t in &self.trajectories {
            out.push(Output::file("[[output.trajectory]] path", &t.path));
        }
        if let Some(a) = &self.analysis {
            out.push(Output::folder("[analysis] out", &a.out));
        }
        out
    }

    /// Replica k of a `[run] replicas` run: its own structure with `replica_frames`, velocities
    /// drawn with seed + k (when drawn at all),
    /// the Langevin seed + k, and every output under `replica-k/` next to where it would go.
    pub fn replica(&self, k: usize) -> Plan {
        let mut plan = self.clone();
        plan.replicas = 1;
        plan.replica_systems = Vec::new();
        if k > 0
            && let Some((system, origin)) = self.replica_systems.get(k - 1)
        {
            plan.system = system.clone();
            plan.structure_origin = origin.clone();
        }
        if let Some((t, seed)) = self.velocity_seed {
            crate::velocities::maxwell_boltzmann(&mut plan.system, t, seed + k as u64);
            plan.velocity_seed = Some((t, seed + k as u64));
        }
        if let Integrator::Langevin { seed, .. } = &mut plan.integrator {
            *seed += k as u64;
        }
        let moved = |p: &Path| replica_path(p, k);
        plan.log = moved(&plan.log);
        plan.checkpoint = moved(&plan.checkpoint);
        for t in &mut plan.trajectories {
            t.path = moved(&t.path);
        }
        if let Some(a) = &mut plan.analysis {
            a.out = moved(&a.out);
        }
        plan
    }
}

/// The files a run reads: the TOML, the structure file, the model's files.
fn input_files(source: &Path, structure: Option<PathBuf>, potential: &PotentialSpec) -> Vec<(String, PathBuf)> {
    let mut inputs = vec![("input file".to_string(), source.to_path_buf())];
    inputs.extend(structure.map(|p| ("structure file".to_string(), p)));
    if let PotentialSpec::Mcgm { model } = potential {
        if model.is_dir() {
            for name in ["model.json", "model.safetensors"] {
                inputs.push(("model".to_string(), model.join(name)));
            }
        } else {
            inputs.push(("model".to_string(), model.with_extension("json")));
            inputs.push(("model".to_string(), model.with_extension("safetensors")));
        }
    }
    inputs
}

/// Where replica k keeps what a single run keeps at `path`: `out/final.chk` becomes
/// `out/replica-k/final.chk` (its outputs, and the checkpoint `--restart` continues it from).
pub fn replica_path(path: &Path, k: usize) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("")).join(format!("replica-{k}"));
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// Reads the structure file or builds the lattice. Returns the data, a description of where it
/// came from, and whether the cell came from the file.
fn read_structure(
    at: &Locator,
    s: &RawStructure,
    input_dir: &Path,
    frame_offset: usize,
) -> Result<(StructureData, String, bool), PlanError> {
    match (&s.file, &s.lattice) {
        (Some(file), None) => {
            for (given, key) in [(s.lattice_constant.is_some(), "lattice_constant"), (s.density.is_some(), "density"), (s.element.is_some(), "element")] {
                if given {
                    return Err(at.error(&file.span(), &format!("[structure] {key}"), "only used with lattice = \"...\", not with a structure file"));
                }
            }
            let path = input_dir.join(file.get_ref());
            let format = crate::io::format_for_path(&path, s.format.as_deref());
            structure::route_chemfiles_warnings();
            let frame = s.frame.unwrap_or(0) + frame_offset;
            let data = structure::read(&path, &format, frame)
                .map_err(|e| at.error(&file.span(), "[structure] file", e.to_string()))?;
            let has_cell = data.cell.is_some();
            let origin = if frame_offset > 0 {
                format!("structure file {} frame {frame}", path.display())
            } else {
                format!("structure file {}", path.display())
            };
            match &s.repeat {
                Some(r) => {
                    let counts = *r.get_ref();
                    if counts.contains(&0) {
                        return Err(at.error(&r.span(), "[structure] repeat", "each count must be at least 1"));
                    }
                    let replicated = structure::replicate(data, counts).map_err(|e| at.error(&r.span(), "[structure] repeat", format!("{e} (the {origin})")))?;
                    Ok((replicated, format!("{origin} repeated {}x{}x{}", counts[0], counts[1], counts[2]), has_cell))
                }
                None => Ok((data, origin, has_cell)),
            }
        }
        (None, Some(name)) => {
            let kind = LatticeKind::parse(name.get_ref()).ok_or_else(|| {
                at.error(&name.span(), "[structure] lattice", format!("unknown lattice '{}'; expected one of {}", name.get_ref(), LatticeKind::NAMES))
            })?;
            let a = match (&s.lattice_constant, &s.density) {
                (Some(q), None) => at.positive(q, "[structure] lattice_constant", Dimension::Length)?,
                (None, Some(d)) if *d.get_ref() > 0.0 => kind.constant_for_density(*d.get_ref()),
                (None, Some(d)) => return Err(at.error(&d.span(), "[structure] density", "must be positive (atoms per Å³)")),
                _ => return Err(at.error(&name.span(), "[structure] lattice_constant", "give exactly one of lattice_constant (Å) or density (atoms per Å³)")),
            };
            let repeat = s.repeat.as_ref().map(|r| *r.get_ref()).unwrap_or([1, 1, 1]);
            if repeat.contains(&0) {
                return Err(at.error(&s.repeat.as_ref().unwrap().span(), "[structure] repeat", "each count must be at least 1"));
            }
            let element = s.element.as_ref().ok_or_else(|| at.error(&name.span(), "[structure] element", "required with lattice: the species of the atoms"))?;
            let atoms = repeat.iter().fold(kind.basis().len() as u128, |t, &c| t.saturating_mul(c as u128));
            crate::limits::atoms(atoms).map_err(|e| at.error(&s.repeat.as_ref().map_or(name.span(), |r| r.span()), "[structure] repeat", e))?;
            let (positions, edges) = lattice::build(kind, a, repeat);
            let n = positions.len();
            let data = StructureData {
                names: vec![element.get_ref().clone(); n],
                positions,
                velocities: None,
                cell: Some([[edges[0], 0.0, 0.0], [0.0, edges[1], 0.0], [0.0, 0.0, edges[2]]]),
                pbc: Some([true; 3]),
            };
            Ok((data, format!("{} lattice (a = {a:.6} Å, {}x{}x{})", name.get_ref(), repeat[0], repeat[1], repeat[2]), true))
        }
        (Some(file), Some(_)) => Err(at.error(&file.span(), "[structure]", "give either file or lattice, not both")),
        (None, None) => Err(PlanError {
            file: at.file.to_path_buf(),
            line: None,
            key: Some("[structure]".into()),
            message: "needs file = \"...\" (any format chemfiles reads) or lattice = \"fcc\" (with lattice_constant or density, repeat, element)".into(),
        }),
    }
}

fn build_system(
    at: &Locator,
    raw: &Spanned<RawStructure>,
    masses: &BTreeMap<String, Q>,
    data: StructureData,
    read_cell: bool,
    origin: &str,
) -> Result<System, PlanError> {
    let s = raw.get_ref();
    let vectors: Option<[Vec3; 3]> = match &s.cell {
        Some(c) => Some(match c.get_ref() {
            RawCell::Lengths(l) => [[l[0], 0.0, 0.0], [0.0, l[1], 0.0], [0.0, 0.0, l[2]]],
            RawCell::Vectors(v) => *v,
        }),
        None if read_cell => data.cell,
        None => None,
    };
    let pbc = match &s.pbc {
        Some(p) => match p.get_ref() {
            RawPbc::All(b) => [*b; 3],
            RawPbc::Each(e) => *e,
        },
        None => data.pbc.unwrap_or([vectors.is_some(); 3]),
    };
    let cell_span = s.cell.as_ref().map(|c| c.span()).unwrap_or(raw.span());
    let cell = match vectors {
        Some(v) => Cell::new(v, pbc)
            .map_err(|e| at.error(&cell_span, "[structure] cell", e.to_string()))?,
        None if pbc.iter().any(|&p| p) => {
            let span = s.pbc.as_ref().map(|p| p.span()).unwrap_or(raw.span());
            return Err(at.error(&span, "[structure] pbc", format!("periodic axes need a cell, and {origin} has none: give [structure] cell = [lx, ly, lz]")));
        }
        None => Cell::open(),
    };

    // Species in order of first appearance.
    let mut species: Vec<Species> = Vec::new();
    let mut types = Vec::with_capacity(data.names.len());
    for (i, name) in data.names.iter().enumerate() {
        let t = match species.iter().position(|sp| &sp.name == name) {
            Some(t) => t,
            None => {
                let mass = match masses.get(name) {
                    Some(q) => at.positive(q, &format!("[masses] {name}"), Dimension::Mass)?,
                    None => elements::standard_mass(name).ok_or_else(|| PlanError {
                        file: at.file.to_path_buf(),
                        line: None,
                        key: Some("[masses]".into()),
                        message: format!(
                            "atom {} of the {origin} is '{name}', which is not an element symbol; give its mass, e.g. [masses] {} = 39.948",
                            i + 1,
                            toml_key(name)
                        ),
                    })?,
                };
                species.push(Species {
                    name: name.clone(),
                    mass,
                });
                species.len() - 1
            }
        };
        types.push(t as u32);
    }
    for (name, q) in masses {
        if !species.iter().any(|sp| &sp.name == name) {
            let present: Vec<&str> = species.iter().map(|s| s.name.as_str()).collect();
            return Err(at.error(
                &q.span(),
                &format!("[masses] {name}"),
                format!(
                    "no atom of species '{name}' in the {origin} (species there: {})",
                    present.join(", ")
                ),
            ));
        }
    }
    let n = data.positions.len();
    Ok(System {
        species,
        types,
        positions: data.positions,
        velocities: vec![[0.0; 3]; n],
        images: vec![[0; 3]; n],
        cell,
    })
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

fn set_velocities(
    at: &Locator,
    raw: Option<&Spanned<RawVelocities>>,
    data: &StructureData,
    system: &mut System,
    origin: &str,
) -> Result<Option<(f64, u64)>, PlanError> {
    let Some(raw) = raw else {
        if let Some(v) = &data.velocities {
            system.velocities = v.clone();
        }
        return Ok(None);
    };
    let mut drawn = None;
    let v = raw.get_ref();
    match v.source.get_ref().as_str() {
        "maxwell-boltzmann" => {
            let missing = |key: &str| {
                at.error(
                    &raw.span(),
                    &format!("[velocities] {key}"),
                    "required for source = \"maxwell-boltzmann\"",
                )
            };
            let t = at.non_negative(
                v.temperature
                    .as_ref()
                    .ok_or_else(|| missing("temperature"))?,
                "[velocities] temperature",
                Dimension::Temperature,
            )?;
            let seed = v.seed.ok_or_else(|| missing("seed"))?;
            crate::velocities::maxwell_boltzmann(system, t, seed);
            drawn = Some((t, seed));
        }
        "file" => {
            let from_file = data.velocities.as_ref().ok_or_else(|| {
                at.error(&v.source.span(), "[velocities] source", format!("the {origin} carries no velocities; use source = \"maxwell-boltzmann\" or \"zero\""))
            })?;
            system.velocities = from_file.clone();
        }
        "zero" => {}
        other => {
            return Err(at.error(
                &v.source.span(),
                "[velocities] source",
                format!(
                    "unknown source '{other}'; expected \"maxwell-boltzmann\", \"file\" or \"zero\""
                ),
            ));
        }
    }
    if v.source.get_ref() != "maxwell-boltzmann" && (v.temperature.is_some() || v.seed.is_some()) {
        return Err(at.error(
            &raw.span(),
            "[velocities]",
            "temperature and seed are only used with source = \"maxwell-boltzmann\"",
        ));
    }
    Ok(drawn)
}

fn build_potential(
    at: &Locator,
    raw: &Spanned<RawPotential>,
    system: &System,
    input_dir: &Path,
) -> Result<PotentialSpec, PlanError> {
    let p = raw.get_ref();
    let kind = p.kind.get_ref().as_str();
    if kind == "mcgm" || kind == "ml" {
        let model = p.model.as_ref().ok_or_else(|| {
            at.error(
                &p.kind.span(),
                "[potential] model",
                format!("required for type = \"{kind}\": a model folder or file written by mdrun train"),
            )
        })?;
        if p.cutoff.is_some()
            || p.shift.is_some()
            || p.tail.is_some()
            || p.mixing.is_some()
            || !p.species.is_empty()
            || !p.pair.is_empty()
        {
            return Err(at.error(&raw.span(), "[potential]", format!("type = \"{kind}\" takes only model = \"...\" (the cutoff and species come from the model)")));
        }
        let path = input_dir.join(model.get_ref());
        let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
        crate::potential::mcgm::MlPotential::load(&path, &names)
            .map_err(|e| at.error(&model.span(), "[potential] model", e))?;
        return Ok(PotentialSpec::Mcgm { model: path });
    }
    let Some(style) = crate::potential::pair::by_toml_name(kind) else {
        let mut known: Vec<String> = crate::potential::pair::STYLES.iter().map(|s| format!("\"{}\"", s.toml_names[0])).collect();
        known.push("\"ml\"".into());
        return Err(at.error(
            &p.kind.span(),
            "[potential] type",
            format!("unknown potential '{kind}'; expected {}", known.join(", ")),
        ));
    };
    if let Some(m) = &p.model {
        return Err(at.error(&m.span(), "[potential] model", "only used with type = \"ml\" (a learned model)"));
    }
    let table = crate::potential::pair::toml::RawPairTable {
        span: raw.span(),
        cutoff: p.cutoff.as_ref(),
        shift: p.shift,
        tail: p.tail,
        mixing: p.mixing.as_ref(),
        species: &p.species,
        pairs: &p.pair,
    };
    Ok(PotentialSpec::Pair(crate::potential::pair::toml::build(at, style, &table, system)?))
}

impl PotentialSpec {
    /// The potential object this spec describes, for a system with these species.
    pub fn instantiate(
        &self,
        species: &[Species],
    ) -> Result<Box<dyn crate::potential::Potential>, String> {
        Ok(match self {
            PotentialSpec::Pair(pair) => pair.instantiate(),
            PotentialSpec::Mcgm { model } => {
                let names: Vec<String> = species.iter().map(|s| s.name.clone()).collect();
                Box::new(crate::potential::mcgm::MlPotential::load(model, &names)?)
            }
        })
    }
}
