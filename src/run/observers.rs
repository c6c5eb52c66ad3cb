//! The observers of a `system.toml` run (`crate::driver::Observer`): the thermo table and log,
//! trajectories, in-run analysis, checkpoints and progress.

use super::RunError;
use crate::driver::{Observer, next_multiple};
use crate::engine::Engine;
use crate::io::thermo_log::ThermoLog;
use crate::io::trajectory::{FrameData, TrajectoryWriter};
use crate::system::System;
use crate::thermo::ThermoSample;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A thermo log failure, naming the log.
pub(super) fn log_error(path: &Path) -> impl Fn(std::io::Error) -> RunError + Copy + '_ {
    move |e| RunError::Log { path: path.to_path_buf(), message: e.to_string() }
}

/// An `[analysis]` failure, naming the run's input file.
pub(super) fn analysis_error(source: &Path) -> impl Fn(anyhow::Error) -> RunError + Copy + '_ {
    move |e| RunError::Analysis { path: source.to_path_buf(), message: e.to_string() }
}

/// The thermo rows: every `interval` steps and at the last step (the table and the failure
/// checks look at the same steps).
#[derive(Clone, Copy)]
pub(super) struct ThermoSchedule {
    pub interval: u64,
    pub last_step: u64,
}

impl ThermoSchedule {
    pub fn due(&self, step: u64) -> bool {
        step % self.interval == 0 || step == self.last_step
    }

    pub fn next(&self, now: u64) -> u64 {
        next_multiple(now, self.interval).min(self.last_step)
    }
}

/// The thermo table on stdout and the thermo log at the thermo rows; keeps the samples for the
/// summary.
pub(super) struct ThermoTable<'a> {
    pub schedule: ThermoSchedule,
    pub log: ThermoLog,
    pub log_path: PathBuf,
    pub samples: Vec<ThermoSample>,
    pub progress: &'a Progress,
    pub quiet: bool,
    /// eV/Å: a committee's force deviation above this draws a warning after the row.
    pub warn_deviation: f64,
    /// Rows above `warn_deviation`.
    pub rows_above_warning: u64,
}

impl ThermoTable<'_> {
    pub fn log_error(&self, e: std::io::Error) -> RunError {
        log_error(&self.log_path)(e)
    }
}

impl Observer<RunError> for ThermoTable<'_> {
    fn next_step(&self, now: u64) -> Option<u64> {
        Some(self.schedule.next(now))
    }

    fn needs_energy(&self, step: u64) -> bool {
        self.schedule.due(step)
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        if self.schedule.due(step) {
            let sample = engine.thermo();
            self.progress.println(&sample.line(), self.quiet);
            for line in engine.take_outside_data_summary() {
                self.progress.warn(&line);
            }
            if let Some(d) = sample.force_deviation.filter(|d| !(d.max <= self.warn_deviation)) {
                self.rows_above_warning += 1;
                self.progress.warn(&format!(
                    "warning: step {}: the committee's force deviation is {:.4} eV/Å on atom {}, above [potential] uncertainty.warn = {} eV/Å: the model is unsure here",
                    sample.step,
                    d.max,
                    d.atom + 1,
                    self.warn_deviation
                ));
            }
            self.log.write(&sample).map_err(|e| self.log_error(e))?;
            self.samples.push(sample);
        }
        Ok(())
    }
}

/// A committee's uncertain frames: at each thermo row whose force deviation is at least
/// `level`, the frame goes to `path` (extended XYZ, with the deviation): what to label next.
pub(super) struct UncertainFrames {
    pub schedule: ThermoSchedule,
    pub level: f64,
    pub path: PathBuf,
    pub out: std::io::BufWriter<std::fs::File>,
    pub saved: u64,
}

impl UncertainFrames {
    /// Creates `path` (appends to it when `append`, for a restarted run).
    pub fn open(schedule: ThermoSchedule, level: f64, path: &Path, append: bool) -> std::io::Result<UncertainFrames> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(path)?;
        Ok(UncertainFrames { schedule, level, path: path.to_path_buf(), out: std::io::BufWriter::new(file), saved: 0 })
    }
}

impl Observer<RunError> for UncertainFrames {
    fn next_step(&self, now: u64) -> Option<u64> {
        Some(self.schedule.next(now))
    }

    fn needs_energy(&self, step: u64) -> bool {
        self.schedule.due(step)
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        use std::io::Write as _;
        if !self.schedule.due(step) {
            return Ok(());
        }
        let sample = engine.thermo();
        let Some(d) = sample.force_deviation.filter(|d| d.max >= self.level) else {
            return Ok(());
        };
        let info = vec![
            ("step".into(), step.to_string()),
            ("time_ps".into(), format!("{:?}", sample.time_ps)),
            ("temperature".into(), format!("{:?}", sample.temperature)),
            ("mdrun_force_deviation_max".into(), format!("{:?}", d.max)),
            ("mdrun_force_deviation_mean".into(), format!("{:?}", d.mean)),
        ];
        let frame = crate::io::extxyz::system_frame(engine.system()?, info);
        let error = |e: std::io::Error| RunError::Trajectory(crate::io::trajectory::TrajectoryError { path: self.path.clone(), message: e.to_string() });
        self.out.write_all(frame.as_bytes()).and_then(|_| self.out.flush()).map_err(error)?;
        self.saved += 1;
        Ok(())
    }
}

/// The trajectory files (written by the writer's thread). Before a checkpoint, every frame up
/// to its step is on disk, so that a restart from it finds them all.
pub(super) struct Trajectories {
    pub writer: TrajectoryWriter,
    pub checkpoint_interval: Option<u64>,
    pub last_step: u64,
}

impl Observer<RunError> for Trajectories {
    fn next_step(&self, now: u64) -> Option<u64> {
        self.writer.specs().iter().map(|t| next_multiple(now, t.interval)).min()
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        let due = self.writer.due(step);
        send_frame(&mut self.writer, engine, &due)?;
        if self.checkpoint_interval.is_some_and(|c| step % c == 0) && step != self.last_step {
            self.writer.sync()?;
        }
        Ok(())
    }
}

/// The in-run analysis (`[analysis]`), fed every `interval` steps.
pub(super) struct Analysis {
    pub accumulator: crate::analysis::Accumulator,
    pub interval: u64,
    pub names: Arc<Vec<String>>,
    pub source: PathBuf,
}

impl Analysis {
    /// Feeds the current state.
    pub fn sample(&mut self, engine: &mut dyn Engine) -> Result<(), RunError> {
        let step = engine.step();
        let time = step as f64 * engine.timestep();
        let s: &System = engine.system()?;
        self.accumulator
            .add(step as usize, &self.names, s.unwrapped_positions(), Some(&s.velocities), Some(&s.cell), Some(time))
            .map_err(analysis_error(&self.source))
    }
}

impl Observer<RunError> for Analysis {
    fn next_step(&self, now: u64) -> Option<u64> {
        Some(next_multiple(now, self.interval))
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        if step % self.interval == 0 {
            self.sample(engine)?;
        }
        Ok(())
    }
}

/// Checkpoints every `interval` steps before the last (the run writes the last one itself).
pub(super) struct Checkpoints {
    pub interval: Option<u64>,
    pub path: PathBuf,
    pub last_step: u64,
    pub threads: usize,
}

impl Observer<RunError> for Checkpoints {
    fn next_step(&self, now: u64) -> Option<u64> {
        self.interval.map(|c| next_multiple(now, c))
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        if self.interval.is_some_and(|c| step % c == 0) && step != self.last_step {
            engine.checkpoint(self.threads)?.write(&self.path)?;
        }
        Ok(())
    }
}

impl Observer<RunError> for &Progress {
    fn next_step(&self, _now: u64) -> Option<u64> {
        None
    }

    fn observe(&mut self, _engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        self.update(step);
        Ok(())
    }
}

/// Sends the current state as a frame to the trajectories `outputs` (indices into the writer's).
pub(super) fn send_frame(
    writer: &mut TrajectoryWriter,
    sim: &mut dyn Engine,
    outputs: &[usize],
) -> Result<(), RunError> {
    if outputs.is_empty() {
        return Ok(());
    }
    let (step, timestep) = (sim.step(), sim.timestep());
    let s: &System = sim.system()?;
    let mut wrapped = s.clone();
    wrapped.wrap_positions();
    let frame = FrameData {
        step,
        time_ps: step as f64 * timestep,
        wrapped: wrapped.positions,
        unwrapped: s.unwrapped_positions(),
        velocities: writer
            .wants_velocities(outputs)
            .then(|| s.velocities.clone()),
        cell: s.cell.is_bounded().then(|| *s.cell.vectors()),
        outputs: outputs.to_vec(),
    };
    Ok(writer.send(frame)?)
}

/// A progress bar with ETA and ns/day on a terminal; a plain line every 10 % otherwise.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    first_step: u64,
    last_step: u64,
    timestep: f64,
    started: Instant,
    next_report: std::cell::Cell<u64>,
    quiet: bool,
}

impl Progress {
    pub fn new(first_step: u64, last_step: u64, timestep: f64, quiet: bool) -> Progress {
        let total = last_step.saturating_sub(first_step);
        let bar = (!quiet && std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} steps  {msg}  ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            first_step,
            last_step,
            timestep,
            started: Instant::now(),
            next_report: std::cell::Cell::new(1),
            quiet,
        }
    }

    fn ns_per_day(&self, step: u64) -> f64 {
        let wall = self.started.elapsed().as_secs_f64();
        if wall <= 0.0 {
            0.0
        } else {
            (step - self.first_step) as f64 * self.timestep * 1e-3 / (wall / 86400.0)
        }
    }

    pub fn update(&self, step: u64) {
        let done = step - self.first_step;
        let total = (self.last_step - self.first_step).max(1);
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if done % 16 == 0 || step == self.last_step {
                bar.set_message(format!("{:.3} ns/day", self.ns_per_day(step)));
            }
        } else if !self.quiet && done * 10 >= self.next_report.get() * total && total >= 10 {
            let elapsed = self.started.elapsed().as_secs_f64();
            let eta = elapsed / done as f64 * (total - done) as f64;
            eprintln!(
                "progress: step {step}/{} ({}%), {:.3} ns/day, ETA {eta:.1} s",
                self.last_step,
                done * 100 / total,
                self.ns_per_day(step)
            );
            self.next_report.set(done * 10 / total + 1);
        }
    }

    /// A warning on stderr (printed even when quiet, as every warning is).
    pub fn warn(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    pub fn println(&self, line: &str, quiet: bool) {
        if quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
