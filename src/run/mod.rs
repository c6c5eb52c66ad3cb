//! Running a [`Plan`]: the step loop with its observers (thermo table and log, trajectory
//! writer thread, checkpoints, progress) and the summary at the end.

use crate::io::checkpoint::{Checkpoint, CheckpointError};
use crate::io::thermo_log::ThermoLog;
use crate::io::trajectory::{TrajectoryError, TrajectoryWriter};
use crate::driver::{Drive, Observer, Stop};
use crate::gpu::GpuError;
use crate::plan::{Plan, Platform, PotentialSpec, replica_path};
use crate::potential::batch::{BatchSlot, SharedInference};
use crate::engine::{Engine, EngineError, NO_TIMESTAMPS};
use observers::{Analysis, Checkpoints, Progress, ThermoSchedule, ThermoTable, Trajectories, send_frame};
use crate::simulation::SimulationError;
use crate::system::System;
use crate::summary::{CommitteeSummary, RunSummary, energy_drift};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod guard;
mod observers;
mod replicas;

pub use replicas::run_replicas;

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Overrides `[run] threads`; None or 0: all cores.
    pub threads: Option<usize>,
    /// Continue from this checkpoint.
    pub restart: Option<PathBuf>,
    /// Overrides `[run] steps` (the step at which the run ends).
    pub steps: Option<u64>,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Overrides `[run] platform`.
    pub platform: Option<Platform>,
    /// GPU runs: time every kernel (timestamp queries) and report the split.
    pub gpu_profile: bool,
    /// A replica of a `[run] replicas` run: the model is evaluated with the other replicas.
    pub batch: Option<BatchSlot>,
    /// A replica of a `[run] replicas` run on the GPU: one batch steps all of them.
    pub gpu_batch: Option<crate::gpu::GpuSlot>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("restart from {path}: {message}")]
    Restart { path: PathBuf, message: String },
    #[error("{path}: [potential]: {message}")]
    Potential { path: PathBuf, message: String },
    #[error("{origin}: {source}")]
    Setup {
        origin: String,
        source: SimulationError,
    },
    #[error("{source}\nThe last good state (step {saved_step}) was saved to {saved}.")]
    BlowUp {
        source: SimulationError,
        saved_step: u64,
        saved: PathBuf,
    },
    #[error("{source}\nSaving the last good state to {path} failed too: {save_error}")]
    BlowUpUnsaved {
        source: SimulationError,
        path: PathBuf,
        save_error: CheckpointError,
    },
    #[error("{reason}\nThe last good state (step {saved_step}, {saved_temperature:.1} K) was saved to {saved}.")]
    Failed {
        reason: String,
        saved_step: u64,
        saved_temperature: f64,
        saved: PathBuf,
    },
    #[error("{reason}\nSaving the last good state to {path} failed too: {save_error}")]
    FailedUnsaved {
        reason: String,
        path: PathBuf,
        save_error: CheckpointError,
    },
    #[error(transparent)]
    Trajectory(#[from] TrajectoryError),
    #[error("thermo log {path}: {message}")]
    Log { path: PathBuf, message: String },
    #[error(
        "interrupted at step {step}; the state was saved to {saved}: continue with --restart {saved}"
    )]
    Interrupted { step: u64, saved: PathBuf },
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("{path}: [run] {message}")]
    Platform { path: PathBuf, message: String },
    #[error("{path}: [analysis]: {message}")]
    Analysis { path: PathBuf, message: String },
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("cannot start {threads} threads: {message}")]
    Threads { threads: usize, message: String },
}

/// Runs the plan to its last step and returns the summary.
pub fn run(plan: &Plan, options: &RunOptions) -> Result<RunSummary, RunError> {
    crate::outputs::check(&plan.outputs(), &plan.inputs).map_err(|message| RunError::Output { path: plan.source.clone(), message })?;
    let threads = resolve_threads(plan, options)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| RunError::Threads {
            threads,
            message: e.to_string(),
        })?;
    pool.install(|| run_in_pool(plan, options, threads))
}

/// The worker threads: `--threads`, else `[run] threads`, else all cores; bounded.
fn resolve_threads(plan: &Plan, options: &RunOptions) -> Result<usize, RunError> {
    let asked = options.threads.or(plan.threads).unwrap_or(0);
    crate::limits::threads(asked).map_err(|message| RunError::Threads { threads: asked, message })?;
    Ok(if asked > 0 { asked } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) })
}

/// Chooses the platform and sets up the simulation on it.
fn start_engine(plan: &Plan, options: &RunOptions, platform: Platform, system: System, step: u64, reference: Option<crate::neighbor::ListReference>, carried: &[f64]) -> Result<Box<dyn Engine>, RunError> {
    let gpu = crate::engine::choose(plan, platform, &system, &mut |line| {
        if !options.quiet {
            eprintln!("{line}");
        }
    })
    .map_err(|message| RunError::Platform {
        path: plan.source.clone(),
        message,
    })?;
    crate::engine::start(gpu, plan, system, step, reference, carried, options.batch.clone()).map_err(|e| match e {
        EngineError::Potential(message) => match &options.restart {
            Some(path) if !carried.is_empty() => RunError::Restart { path: path.clone(), message },
            _ => RunError::Potential { path: plan.source.clone(), message },
        },
        EngineError::Simulation(source) => RunError::Setup {
            origin: format!("{} (from {})", plan.structure_origin, plan.source.display()),
            source,
        },
    })
}

fn relax_first(plan: &Plan, relaxation: &crate::minimize::Relaxation, system: System, say: &dyn Fn(&str)) -> Result<System, RunError> {
    let setup = |source| RunError::Setup { origin: format!("{} (from {})", plan.structure_origin, plan.source.display()), source };
    let potential = plan.potential.instantiate(&system).map_err(|message| RunError::Potential { path: plan.source.clone(), message })?;
    let velocities = system.velocities.clone();
    // Relaxing starts where forces may be huge by design; only non-finite ones stop it.
    let mut sim = crate::simulation::Simulation::new(system, potential, crate::integrate::Integrator::VelocityVerlet, plan.timestep, plan.skin, f64::INFINITY, 0, None).map_err(setup)?;
    say(&format!("Relaxing the structure ({}, cell {}) ...", format!("{:?}", relaxation.settings.style).to_lowercase(), format!("{:?}", relaxation.cell).to_lowercase()));
    let relaxed = crate::minimize::relax(&mut sim, relaxation, &mut |line| say(&line)).map_err(setup)?;
    let verdict = if relaxed.converged { "converged" } else { "NOT converged (the run goes on from the last state)" };
    say(&format!(
        "Relaxation {verdict} after {} cycle(s): E {:.10} eV, force norm {:.3e} eV/A ({}), volume {:.4} A3",
        relaxed.cycles,
        sim.forces.energy,
        relaxed.stats.fnorm_final,
        relaxed.stats.stop.describe(),
        sim.system.cell.volume()
    ));
    if !relaxed.converged {
        eprintln!("warning: {}: [minimize] did not converge ({}); the run starts from the last state", plan.source.display(), relaxed.stats.stop.describe());
    }
    let mut system = sim.system;
    system.velocities = velocities;
    Ok(system)
}

fn run_in_pool(plan: &Plan, options: &RunOptions, threads: usize) -> Result<RunSummary, RunError> {
    let say = |line: &str| {
        if !options.quiet {
            println!("{line}");
        }
    };
    // The thread count that wrote the checkpoint (0: the GPU), to compare with this run's.
    let (system, step, reference, carried, restart_threads) = match &options.restart {
        None => (plan.system.clone(), 0, None, Vec::new(), None),
        Some(path) => {
            let chk = Checkpoint::read(path)?;
            check_restart_matches(plan, &chk, path)?;
            if let Some(note) = plan.integrator.resume_note(&chk.integrator) {
                eprintln!("note: {} {note}", path.display());
            }
            let list_cell = chk
                .reference_cell
                .map(|v| crate::cell::Cell::new(v, chk.system.cell.pbc()))
                .transpose()
                .map_err(|e| RunError::Restart { path: path.clone(), message: format!("its neighbour-list cell is not a cell: {e}") })?;
            let reference = chk.reference.map(|positions| crate::neighbor::ListReference { positions, cell: list_cell });
            (chk.system, chk.step, reference, chk.potential, Some((chk.threads, chk.integrator)))
        }
    };
    // The integrator continues the checkpoint's state (Nosé-Hoover chains and cell, CSVR).
    let resumed;
    let plan = match (&options.restart, &restart_threads) {
        (Some(path), Some((_, saved))) => {
            let mut integrator = plan.integrator.clone();
            integrator.restore(saved).map_err(|message| RunError::Restart { path: path.clone(), message })?;
            resumed = Plan { integrator, ..plan.clone() };
            &resumed
        }
        _ => plan,
    };
    let restart_threads = restart_threads.map(|(t, _)| t);
    // `[minimize]`: relax the structure (and cell) first, on the CPU; the run starts from the
    // relaxed positions and cell with the plan's velocities.
    let system = match (&plan.minimize, &options.restart) {
        (Some(relaxation), None) => relax_first(plan, relaxation, system, &say)?,
        _ => system,
    };
    let restarting = options.restart.is_some();
    let last_step = options.steps.unwrap_or(plan.steps);
    if let Some(path) = options.restart.as_ref().filter(|_| last_step < step) {
        let by = if options.steps.is_some() { "--steps" } else { "[run] steps" };
        return Err(RunError::Restart {
            path: path.clone(),
            message: format!("is at step {step}, past the last step {last_step} ({by}); the run ends at a step, so ask for one beyond {step}"),
        });
    }
    let platform = options.platform.unwrap_or(plan.platform);
    let mut sim = if let Some(slot) = &options.gpu_batch {
        crate::engine::gpu_replica(slot.clone(), plan)
    } else {
        start_engine(plan, options, platform, system, step, reference, &carried)?
    };
    if let (Some(path), Some(chk_threads)) = (&options.restart, restart_threads) {
        let now = sim.checkpoint_threads(threads);
        if chk_threads != now {
            let on = |t: usize| match t {
                0 => "the GPU".to_string(),
                t => format!("{t} CPU thread(s)"),
            };
            eprintln!(
                "note: {} was written by a run on {}, this one runs on {}: the continuation is correct but not bit-identical to an uninterrupted run",
                path.display(),
                on(chk_threads),
                on(now)
            );
        }
    }
    if options.gpu_profile
        && let Err(why) = sim.enable_profiling()
        && !options.quiet
    {
        eprintln!("--gpu-profile: {why}");
    }
    let system = sim.system()?.clone();
    let n_atoms = system.len();
    let species: Vec<String> = system
        .species
        .iter()
        .zip(system.species_counts())
        .map(|(s, c)| format!("{c} {} ({} amu)", s.name, s.mass))
        .collect();
    let cell = &system.cell;
    let cell_text = if cell.is_bounded() {
        let l = cell.lengths();
        let a = cell.angles();
        format!(
            "cell {:.4} x {:.4} x {:.4} Å, angles {:.2} {:.2} {:.2}°, periodic {:?}",
            l[0],
            l[1],
            l[2],
            a[0],
            a[1],
            a[2],
            cell.pbc()
        )
    } else {
        "no cell (open boundaries)".to_string()
    };
    let preamble = vec![
        format!(
            "mdrun {} — {}",
            env!("CARGO_PKG_VERSION"),
            plan.source.display()
        ),
        format!("{n_atoms} atoms: {}; {}", species.join(", "), cell_text),
        format!(
            "potential: {}; neighbour skin {} Å",
            sim.potential_name(),
            plan.skin
        ),
        format!(
            "integrator: {}; timestep {} fs",
            sim.integrator().name(),
            plan.timestep * 1e3
        ),
        match &options.restart {
            Some(p) => format!(
                "restarted from {} at step {step}; running to step {last_step} on {threads} thread(s)",
                p.display()
            ),
            None => format!("running {last_step} steps on {threads} thread(s)"),
        },
        format!("platform: {}", sim.describe(threads)),
    ];
    for line in &preamble {
        say(line);
    }
    if !options.quiet {
        for line in sim.potential_cautions() {
            eprintln!("{line}");
        }
    }

    let log_error = observers::log_error(&plan.log);
    if restarting {
        // A run killed after its last checkpoint wrote past it (and maybe half a row or frame).
        let mut notes = Vec::new();
        notes.extend(crate::io::resume::truncate_log(&plan.log, step).map_err(log_error)?);
        for spec in &plan.trajectories {
            let cut = crate::io::resume::truncate_trajectory(spec, step, step as f64 * plan.timestep)
                .map_err(|message| TrajectoryError { path: spec.path.clone(), message })?;
            notes.extend(cut);
        }
        if !options.quiet {
            for note in notes {
                eprintln!("note: {note}");
            }
        }
    }
    let first = sim.thermo();
    let log = ThermoLog::open(&plan.log, restarting, &preamble, &first).map_err(log_error)?;
    let names: Vec<String> = (0..n_atoms)
        .map(|i| system.species_name(i).to_string())
        .collect();
    let mut analysis = match &plan.analysis {
        Some(a) => {
            let mut settings = a.settings.clone();
            settings.quiet = options.quiet;
            let source = plan.source.clone();
            let accumulator = crate::analysis::Accumulator::new(settings, format!("the run of {}", plan.source.display()))
                .map_err(observers::analysis_error(&source))?;
            Some(Analysis { accumulator, interval: a.interval, names: std::sync::Arc::new(names.clone()), source })
        }
        None => None,
    };
    let writer = TrajectoryWriter::start(plan.trajectories.clone(), names, restarting)?;
    let mut trajectories = Trajectories { writer, checkpoint_interval: plan.checkpoint_interval, last_step };

    let mut output_time = Duration::ZERO;
    let t_out = Instant::now();
    let progress = Progress::new(sim.step(), last_step, plan.timestep, options.quiet);
    let schedule = ThermoSchedule { interval: plan.thermo_interval, last_step };
    let warn_deviation = plan.uncertainty().map_or(f64::INFINITY, |u| u.warn);
    let mut thermo = ThermoTable { schedule, log, log_path: plan.log.clone(), samples: Vec::new(), progress: &progress, quiet: options.quiet, warn_deviation, rows_above_warning: 0 };
    let mut uncertain_frames = match plan.uncertainty().and_then(|u| u.save.as_ref()) {
        Some((level, path)) => Some(
            observers::UncertainFrames::open(schedule, *level, path, restarting).map_err(|e| TrajectoryError { path: path.clone(), message: e.to_string() })?,
        ),
        None => None,
    };
    say(&first.header());
    say(&first.line());
    if !restarting {
        thermo.log.write(&first).map_err(log_error)?;
        let due = trajectories.writer.due(sim.step());
        send_frame(&mut trajectories.writer, sim.as_mut(), &due)?;
    }
    if let Some(a) = analysis.as_mut() {
        a.sample(sim.as_mut())?;
    }
    thermo.samples.push(first);
    output_time += t_out.elapsed();

    let mut checkpoints = Checkpoints { interval: plan.checkpoint_interval, path: plan.checkpoint.clone(), last_step, threads };
    let start_state = sim.checkpoint(threads)?;
    let mut guard = guard::Guard::new(
        plan.failure_limits,
        plan.uncertainty().map(|u| u.stop),
        sim.integrator(),
        &first,
        n_atoms,
        schedule,
        start_state,
        threads,
        crate::outputs::sibling(&plan.checkpoint, "last-good"),
    );
    let start = Instant::now();
    let start_step = sim.step();
    let drive = Drive { last_step, moving: true, interrupt: Some(crate::signals::install()) };
    let mut shown = &progress;
    let driven = {
        // The guard looks after the thermo table has printed the row that fails it.
        let mut observers: Vec<&mut dyn Observer<RunError>> = vec![&mut thermo, &mut guard, &mut trajectories];
        // After the guard: a frame past the committee's stop level is not a candidate.
        if let Some(f) = uncertain_frames.as_mut() {
            observers.push(f);
        }
        if let Some(a) = analysis.as_mut() {
            observers.push(a);
        }
        observers.push(&mut checkpoints);
        observers.push(&mut shown);
        crate::driver::drive(sim.as_mut(), start_step, &drive, &mut observers)
    };
    match driven {
        Ok(observing) => output_time += observing,
        Err(Stop::Observer(failed @ (RunError::Failed { .. } | RunError::FailedUnsaved { .. }))) => {
            let _ = trajectories.writer.finish();
            let _ = thermo.log.comment(&format!("run stopped: {failed}"));
            progress.finish();
            // What the run measured before it failed is kept (78 ps of g(r) are not lost to
            // one bad step at the end).
            if let (Some(a), Some(p)) = (analysis, &plan.analysis) {
                match write_analysis(a, p, &plan.source) {
                    Ok(()) => eprintln!("The in-run analysis of the steps before the stop was written to {}.", p.out.display()),
                    Err(e) => eprintln!("warning: the in-run analysis before the stop could not be written: {e}"),
                }
            }
            return Err(failed);
        }
        Err(Stop::Observer(e)) => return Err(e),
        Err(Stop::Engine(source @ (SimulationError::BlowUp(_) | SimulationError::Neighbor(_)))) => {
            let path = crate::outputs::sibling(&plan.checkpoint, "last-good");
            let chk = sim.last_good_checkpoint(threads)?;
            let _ = trajectories.writer.finish();
            let _ = thermo.log.comment(&format!("run stopped: {source}"));
            progress.finish();
            return match chk.write(&path) {
                Ok(()) => Err(RunError::BlowUp { source, saved_step: chk.step, saved: path }),
                Err(save_error) => Err(RunError::BlowUpUnsaved { source, path, save_error }),
            };
        }
        Err(Stop::Engine(source)) => return Err(RunError::Setup { origin: plan.source.display().to_string(), source }),
        Err(Stop::Interrupted(step)) => {
            progress.finish();
            sim.checkpoint(threads)?.write(&plan.checkpoint)?;
            trajectories.writer.finish()?;
            let _ = thermo.log.comment(&format!("interrupted at step {step}"));
            return Err(RunError::Interrupted { step, saved: plan.checkpoint.clone() });
        }
    }
    let wall = start.elapsed().as_secs_f64();
    progress.finish();

    let t_out = Instant::now();
    sim.checkpoint(threads)?.write(&plan.checkpoint)?;
    trajectories.writer.finish()?;
    if let (Some(a), Some(p)) = (analysis, &plan.analysis) {
        write_analysis(a, p, &plan.source)?;
        say(&format!("Wrote the in-run analysis to {}.", p.out.display()));
    }
    output_time += t_out.elapsed();
    let samples = thermo.samples;
    let maxima: Vec<f64> = samples.iter().filter_map(|s| s.force_deviation.map(|d| d.max)).collect();
    let committee = (!maxima.is_empty()).then(|| CommitteeSummary {
        rows_above_warning: thermo.rows_above_warning,
        warn: warn_deviation,
        frames_saved: uncertain_frames.as_ref().map(|f| (f.saved, f.path.clone())),
        ..CommitteeSummary::of_row_maxima(&maxima)
    });

    let steps = sim.step() - start_step;
    let simulated_ns = steps as f64 * plan.timestep * 1e-3;
    // Mean over the samples of this run, excluding the starting one (it is the previous
    // run's last sample on a restart, and the prescribed initial temperature otherwise).
    let run_samples = if samples.len() > 1 {
        &samples[1..]
    } else {
        &samples[..]
    };
    let drift = if sim.integrator().has_conserved_energy() {
        energy_drift(&samples, n_atoms)
    } else {
        None
    };
    let last = samples.last().expect("at least the initial sample");
    let split = sim.time_split();
    let summary = RunSummary {
        steps,
        wall_s: wall,
        atom_steps_per_s: if wall > 0.0 {
            (steps as f64 * n_atoms as f64) / wall
        } else {
            0.0
        },
        ns_per_day: if wall > 0.0 {
            simulated_ns / (wall / 86400.0)
        } else {
            0.0
        },
        mean_temperature_k: run_samples.iter().map(|s| s.temperature).sum::<f64>()
            / run_samples.len() as f64,
        energy_drift_ev_per_atom_per_ps: drift.map(|d| d.0),
        conserved_name: sim.integrator().conserved_name(),
        energy_drift_error_ev_per_atom_per_ps: drift.map(|d| d.1),
        final_potential_energy_ev: last.potential_energy,
        final_total_energy_ev: last.total_energy(),
        n_atoms,
        timestep_fs: plan.timestep * 1e3,
        neighbor_builds: sim.builds(),
        threads,
        platform: sim.describe(threads),
        time_force_s: split.force.as_secs_f64(),
        time_neighbor_s: split.neighbor.as_secs_f64(),
        time_integrate_s: split.integrate.as_secs_f64(),
        time_gpu_s: split.gpu.as_secs_f64(),
        force_stages_s: split.force_stages.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        potential_notes: split.notes.clone(),
        gpu_kernel_s: sim.kernel_times(),
        gpu_kernel_calls: sim.kernel_calls(),
        time_output_s: output_time.as_secs_f64(),
        committee,
    };
    say(&summary.print());
    say(&format!(
        "Wrote {} (thermo log) and {} (checkpoint at step {}).",
        plan.log.display(),
        plan.checkpoint.display(),
        sim.step()
    ));
    Ok(summary)
}

/// Writes the in-run analysis (`[analysis]`) to its folder.
fn write_analysis(a: Analysis, p: &crate::plan::AnalysisPlan, source: &Path) -> Result<(), RunError> {
    if a.accumulator.frames() < 2 {
        eprintln!("note: [analysis] sampled {} state(s); MSD and VACF need at least two (interval {} steps)", a.accumulator.frames(), p.interval);
    }
    let analysis_error = observers::analysis_error(source);
    std::fs::create_dir_all(&p.out).map_err(|e| analysis_error(anyhow::anyhow!("cannot create {}: {e}", p.out.display())))?;
    let entries = a.accumulator.finish(&p.out).map_err(analysis_error)?;
    crate::analysis::merge_summary(&p.out, entries).map_err(analysis_error)
}

/// A restart continues the same system: same species, in the same order, same atom count.
fn check_restart_matches(plan: &Plan, chk: &Checkpoint, path: &Path) -> Result<(), RunError> {
    let names =
        |s: &crate::system::System| s.species.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    let (want, found) = (names(&plan.system), names(&chk.system));
    if want != found {
        return Err(RunError::Restart {
            path: path.to_path_buf(),
            message: format!(
                "holds species {found:?}, but {} describes {want:?}",
                plan.source.display()
            ),
        });
    }
    for (species, saved) in plan.system.species.iter().zip(&chk.system.species) {
        if species.mass.to_bits() != saved.mass.to_bits() {
            return Err(RunError::Restart {
                path: path.to_path_buf(),
                message: format!(
                    "holds {} with mass {} amu, but {} gives {} amu: a restart continues the same system (to change masses, start a new run with the checkpoint as [structure] file)",
                    species.name, saved.mass, plan.source.display(), species.mass
                ),
            });
        }
    }
    if chk.system.len() != plan.system.len() {
        return Err(RunError::Restart {
            path: path.to_path_buf(),
            message: format!(
                "holds {} atoms, but {} describes {}",
                chk.system.len(),
                plan.source.display(),
                plan.system.len()
            ),
        });
    }
    Ok(())
}


