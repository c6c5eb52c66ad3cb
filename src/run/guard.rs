//! Stops a run that has clearly failed instead of stepping on through garbage: a temperature
//! far above anything the run started at or asked for (a blown-up learned potential heats to
//! 1e5 K and, without this, runs on for hours), a conserved energy that is no longer
//! conserved, a learned potential outside its training data for many thermo rows in a row, or
//! a committee whose members disagree past `[potential] uncertainty.stop`. Checked at every
//! thermo step; the state of the last check that passed is kept in memory and saved when a
//! later one fails.

use super::RunError;
use super::observers::ThermoSchedule;
use crate::driver::Observer;
use crate::engine::Engine;
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::plan::FailureLimits;
use crate::thermo::ThermoSample;
use crate::units::BOLTZ;
use std::path::PathBuf;

/// The default limits scale with at least this temperature (K), so that a run started at
/// 0 K or 50 K is not stopped for warming to a few hundred kelvin.
const FLOOR_TEMPERATURE: f64 = 300.0;
/// Default `[run] max_temperature`: this many times the reference temperature.
const TEMPERATURE_FACTOR: f64 = 10.0;
/// Default `[run] max_energy_drift`: this many k_B T per atom at the reference temperature
/// (0.26 eV per atom at 300 K: far beyond any usable drift, well before a blow-up's).
const DRIFT_KT_PER_ATOM: f64 = 10.0;
/// Default `[run] max_outside_rows`: a learned potential may leave its training data now and
/// then (a close collision), but not for this many thermo intervals in a row.
pub const DEFAULT_MAX_OUTSIDE_ROWS: u64 = 10;

/// The checks of one run, with the last state that passed them.
pub(super) struct Guard {
    schedule: ThermoSchedule,
    /// K; infinite: off.
    max_temperature: f64,
    /// Why the temperature limit is what it is ("[run] max_temperature" or how the default came).
    temperature_origin: String,
    /// eV per atom; None: the integrator conserves nothing, or off.
    max_drift: Option<f64>,
    drift_origin: String,
    conserved_name: &'static str,
    /// Thermo rows in a row outside the training data (u64::MAX: off).
    max_outside_rows: u64,
    /// eV/Å: a committee's force deviation above this fails the run (infinite or None: off).
    max_deviation: Option<f64>,
    start_energy: f64,
    n_atoms: usize,
    threads: usize,
    last_good: Checkpoint,
    last_good_temperature: f64,
    /// Where the last good state goes when a check fails.
    save_to: PathBuf,
}

impl Guard {
    /// The checks, at the thermo rows, of a run that starts at `first` with `integrator`;
    /// `start` is its state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(limits: FailureLimits, max_deviation: Option<f64>, integrator: &Integrator, first: &ThermoSample, n_atoms: usize, schedule: ThermoSchedule, start: Checkpoint, threads: usize, save_to: PathBuf) -> Guard {
        let target = integrator.highest_target_temperature();
        let (reference, why) = match target {
            Some(t) if t >= first.temperature && t >= FLOOR_TEMPERATURE => (t, format!("the thermostat's highest target, {t} K")),
            _ if first.temperature >= FLOOR_TEMPERATURE => (first.temperature, format!("the starting temperature, {:.1} K", first.temperature)),
            _ => (
                FLOOR_TEMPERATURE,
                format!("{FLOOR_TEMPERATURE} K, the lowest reference (the run starts at {:.1} K{})", first.temperature, if target.is_some() { " and its thermostat aims lower" } else { "" }),
            ),
        };
        let (max_temperature, temperature_origin) = match limits.max_temperature {
            Some(t) => (t, "[run] max_temperature".to_string()),
            None => (TEMPERATURE_FACTOR * reference, format!("the default of [run] max_temperature: {TEMPERATURE_FACTOR} x {why}")),
        };
        let (max_drift, drift_origin) = match limits.max_energy_drift {
            _ if !integrator.has_conserved_energy() => (None, String::new()),
            Some(d) => (Some(d).filter(|d| d.is_finite()), "[run] max_energy_drift".to_string()),
            None => {
                let d = DRIFT_KT_PER_ATOM * BOLTZ * reference;
                (Some(d), format!("the default of [run] max_energy_drift: {DRIFT_KT_PER_ATOM} k_B T per atom at {why}"))
            }
        };
        Guard {
            schedule,
            max_temperature,
            temperature_origin,
            max_drift,
            drift_origin,
            conserved_name: integrator.conserved_name(),
            max_outside_rows: limits.max_outside_rows.unwrap_or(DEFAULT_MAX_OUTSIDE_ROWS),
            max_deviation: max_deviation.filter(|d| d.is_finite()),
            start_energy: first.conserved_energy(),
            n_atoms: n_atoms.max(1),
            threads,
            last_good_temperature: first.temperature,
            last_good: start,
            save_to,
        }
    }

    /// Why `sample` shows a failed run (with `outside_rows` thermo rows in a row outside the
    /// training data); None if it passes.
    fn failure(&self, sample: &ThermoSample, outside_rows: u64) -> Option<String> {
        if outside_rows >= self.max_outside_rows {
            return Some(format!(
                "step {}: the learned potential has had pairs closer than its training data in each of the last {outside_rows} thermo intervals ([run] max_outside_rows = {}): its forces there are extrapolation; train on such configurations (mdrun learn) or set [run] max_outside_rows = \"off\" to run on regardless",
                sample.step, self.max_outside_rows
            ));
        }
        if let (Some(limit), Some(d)) = (self.max_deviation, sample.force_deviation)
            && !(d.max <= limit)
        {
            return Some(format!(
                "step {}: the committee's force deviation is {:.4} eV/Å on atom {}, above [potential] uncertainty.stop = {limit} eV/Å: the members disagree, so none of them can be trusted here; label such frames and retrain (mdrun learn), or set stop = \"off\"",
                sample.step, d.max, d.atom + 1
            ));
        }
        let t = sample.temperature;
        if !(t <= self.max_temperature) {
            return Some(format!(
                "step {}: the temperature is {t:.4e} K, above {:.4e} K ({}): the run has failed (a blow-up, a start far from equilibrium that [minimize] would relax, or a potential outside what it can describe); set [run] max_temperature = \"off\" to run on regardless",
                sample.step, self.max_temperature, self.temperature_origin
            ));
        }
        let limit = self.max_drift?;
        let drift = (sample.conserved_energy() - self.start_energy) / self.n_atoms as f64;
        (!(drift.abs() <= limit)).then(|| {
            format!(
                "step {}: the {} moved by {drift:.4e} eV per atom since the run's first step, more than {limit:.4e} ({}): the integration has failed (timestep too long, or forces that are not the energy's gradient); set [run] max_energy_drift = \"off\" to run on regardless",
                sample.step, self.conserved_name, self.drift_origin
            )
        })
    }
}

impl Observer<RunError> for Guard {
    fn next_step(&self, now: u64) -> Option<u64> {
        (self.max_temperature.is_finite() || self.max_drift.is_some() || self.max_outside_rows < u64::MAX || self.max_deviation.is_some()).then(|| self.schedule.next(now))
    }

    fn needs_energy(&self, step: u64) -> bool {
        self.schedule.due(step)
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), RunError> {
        if !self.schedule.due(step) || self.next_step(step).is_none() {
            return Ok(());
        }
        let sample = engine.thermo();
        match self.failure(&sample, engine.outside_data_streak()) {
            None => {
                self.last_good = engine.checkpoint(self.threads)?;
                self.last_good_temperature = sample.temperature;
                Ok(())
            }
            Some(reason) => {
                let (saved_step, saved_temperature) = (self.last_good.step, self.last_good_temperature);
                Err(match self.last_good.write(&self.save_to) {
                    Ok(()) => RunError::Failed { reason, saved_step, saved_temperature, saved: self.save_to.clone() },
                    Err(save_error) => RunError::FailedUnsaved { reason, path: self.save_to.clone(), save_error },
                })
            }
        }
    }
}
