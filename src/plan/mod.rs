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
use crate::units::Dimension;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod build;
mod integrator;
mod pair_table;
mod schema;

use build::{build_potential, build_system, read_structure, set_velocities};
use schema::*;

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
    /// `[run] max_temperature / max_energy_drift`: when a run has clearly failed.
    pub failure_limits: FailureLimits,
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
    /// `[minimize]`: a relaxation of the structure (and cell) before the steps.
    pub minimize: Option<crate::minimize::Relaxation>,
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
    /// A trained model; `charge` is the system's total charge (e), which a long-range model's
    /// learned charges sum to.
    /// `ewald`: a long-range model's reciprocal part by particle-mesh Ewald (true) or the sum
    /// over k (false); None: by the system's size.
    /// `half_tables`: the GPU reads the filter tables in f16 (`[potential] gpu_tables`).
    Ml { model: PathBuf, charge: f64, ewald: Option<bool>, uncertainty: Option<Uncertainty>, half_tables: bool },
}

/// What a run does with a committee's force deviation (`[potential] uncertainty`), eV/Å.
#[derive(Clone, Debug, PartialEq)]
pub struct Uncertainty {
    /// Above it, a warning after the thermo row (infinite: off).
    pub warn: f64,
    /// Above it (and at most `stop`), the thermo row's frame goes to `frames` (extended XYZ):
    /// the candidates for labelling.
    pub save: Option<(f64, PathBuf)>,
    /// Above it the run has failed: it stops with the last good state saved (infinite: off).
    pub stop: f64,
}

impl Uncertainty {
    /// eV/Å: the defaults (DP-GEN's trust levels for water are 0.15-0.35 eV/Å; a committee a
    /// full eV/Å apart is describing nothing).
    pub const DEFAULT_WARN: f64 = 0.2;
    pub const DEFAULT_STOP: f64 = 1.0;
}

/// `[run] max_temperature` and `[run] max_energy_drift` as the plan gives them: None takes
/// the default, infinity turns the check off.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FailureLimits {
    /// K
    pub max_temperature: Option<f64>,
    /// eV per atom, of the integrator's conserved energy since the run's first step.
    pub max_energy_drift: Option<f64>,
    /// Thermo rows in a row whose interval had pairs outside a learned model's training data.
    pub max_outside_rows: Option<u64>,
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

/// Default neighbour skin, Å.
pub const DEFAULT_SKIN: f64 = 1.0;
/// Default force above which a run is stopped, eV/Å.
pub const DEFAULT_MAX_FORCE: f64 = 1.0e4;

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
        let potential = build_potential(&at, &raw.potential, &system, raw.structure.get_ref().charge.as_ref(), &input_dir, &output_dir)?;

        let integ = raw.integrator.get_ref();
        let timestep = at.positive(&integ.timestep, "[integrator] timestep", Dimension::Time)?;
        let run_steps = (*raw.run.get_ref().steps.get_ref()).max(0) as u64;
        let integrator = integrator::build(&at, &raw.integrator, raw.barostat.as_ref(), timestep, run_steps, &system)?;
        let minimize = raw.minimize.as_ref().map(|m| integrator::build_minimize(&at, m, timestep, &system)).transpose()?;

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
        let failure_limits = FailureLimits {
            max_temperature: run.max_temperature.as_ref().map(|q| at.positive_or_off(q, "[run] max_temperature", Dimension::Temperature)).transpose()?,
            max_energy_drift: run.max_energy_drift.as_ref().map(|q| at.positive_or_off(q, "[run] max_energy_drift", Dimension::Energy)).transpose()?,
            max_outside_rows: run.max_outside_rows.as_ref().map(|q| at.count_or_off(q, "[run] max_outside_rows")).transpose()?,
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
                        rdf_references: r.rdf_reference.iter().map(|(pair, file)| (pair.clone(), input_dir.join(file))).collect(),
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
            failure_limits,
            platform,
            thermo_interval,
            log,
            checkpoint,
            checkpoint_interval,
            trajectories,
            analysis,
            minimize,
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
        out.push(Output::file("the last-good checkpoint", &crate::outputs::sibling(&self.checkpoint, "last-good")));
        for t in &self.trajectories {
            out.push(Output::file("[[output.trajectory]] path", &t.path));
        }
        if let Some(a) = &self.analysis {
            out.push(Output::folder("[analysis] out", &a.out));
        }
        if let Some((_, frames)) = self.uncertainty().and_then(|u| u.save.as_ref()) {
            out.push(Output::file("[potential] uncertainty.frames", frames));
        }
        out
    }

    /// A committee's thresholds, when the potential is one.
    pub fn uncertainty(&self) -> Option<&Uncertainty> {
        match &self.potential {
            PotentialSpec::Ml { uncertainty, .. } => uncertainty.as_ref(),
            PotentialSpec::Pair(_) => None,
        }
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
        plan.integrator.offset_seeds(k as u64);
        let moved = |p: &Path| replica_path(p, k);
        plan.log = moved(&plan.log);
        plan.checkpoint = moved(&plan.checkpoint);
        for t in &mut plan.trajectories {
            t.path = moved(&t.path);
        }
        if let Some(a) = &mut plan.analysis {
            a.out = moved(&a.out);
        }
        if let PotentialSpec::Ml { uncertainty: Some(Uncertainty { save: Some((_, frames)), .. }), .. } = &mut plan.potential {
            *frames = moved(frames);
        }
        plan
    }
}

/// The files a run reads: the TOML, the structure file, the model's files.
fn input_files(source: &Path, structure: Option<PathBuf>, potential: &PotentialSpec) -> Vec<(String, PathBuf)> {
    let mut inputs = vec![("input file".to_string(), source.to_path_buf())];
    inputs.extend(structure.map(|p| ("structure file".to_string(), p)));
    if let PotentialSpec::Ml { model, .. } = potential {
        if let Ok(Some(members)) = crate::ml::file::committee_members(model) {
            inputs.push(("model".to_string(), model.join(crate::ml::file::COMMITTEE_CARD)));
            for member in members {
                for name in ["model.json", "model.safetensors"] {
                    inputs.push(("model".to_string(), member.join(name)));
                }
            }
        } else if model.is_dir() {
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

impl PotentialSpec {
    /// The potential object this spec describes, for `system` (its species, cell).
    pub fn instantiate(&self, system: &crate::system::System) -> Result<Box<dyn crate::potential::Potential>, String> {
        Ok(match self {
            PotentialSpec::Pair(pair) => pair.instantiate(),
            PotentialSpec::Ml { model, charge, ewald, .. } => {
                let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
                Box::new(crate::potential::mcgm::MlPotential::load(model, &names)?.with_ewald(*ewald)?.for_system(&system.cell, *charge)?.describe_charges_for(&system.positions, &system.cell))
            }
        })
    }
}
