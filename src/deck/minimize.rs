//! `min_style`, `min_modify` and `minimize etol ftol maxiter maxeval`: energy minimisation of
//! the deck's world with [`crate::minimize`], printed as LAMMPS prints it (thermo rows every
//! `thermo` iterations and at the last, then the "Minimization stats" block).

use super::interp::Deck;
use super::args::{int, num};
use crate::minimize::{LineSearch, MinSettings, MinStats, MinStyle, Minimizer, Stop};
use std::time::Instant;

impl Deck {
    /// `min_style cg|sd`.
    pub(super) fn min_style(&mut self, args: &[String]) -> Result<(), String> {
        self.world.min.style = match args {
            [s] if s == "cg" => MinStyle::Cg,
            [s] if s == "sd" => MinStyle::Sd,
            [s] if s == "fire" => MinStyle::Fire,
            [s] => return Err(format!("min_style {s} is not supported; mdrun supports cg, sd and fire")),
            _ => return Err("expected: min_style cg|sd|fire".into()),
        };
        Ok(())
    }

    /// `min_modify dmax D | line quadratic|backtrack | norm two`.
    pub(super) fn min_modify(&mut self, args: &[String]) -> Result<(), String> {
        if args.is_empty() {
            return Err("expected: min_modify keyword value ...".into());
        }
        for (k, v) in super::args::pairs(args, "min_modify")? {
            match k {
                "dmax" => {
                    let d = num(v, "min_modify dmax")?;
                    if d <= 0.0 {
                        return Err(format!("min_modify dmax must be positive (got {d})"));
                    }
                    self.world.min.dmax = d;
                }
                "line" => {
                    self.world.min.line = match v {
                        "quadratic" => LineSearch::Quadratic,
                        "backtrack" => LineSearch::Backtrack,
                        other => return Err(format!("min_modify line {other} is not supported; mdrun supports quadratic and backtrack")),
                    }
                }
                "norm" if v == "two" => {}
                "norm" => return Err(format!("min_modify norm {v} is not supported; mdrun stops on the force two-norm (norm two)")),
                other => return Err(format!("min_modify keyword '{other}' is not supported; mdrun supports dmax, line and norm two")),
            }
        }
        Ok(())
    }

    /// `minimize etol ftol maxiter maxeval`.
    pub(super) fn minimize(&mut self, args: &[String]) -> Result<(), String> {
        let [etol, ftol, maxiter, maxeval] = args else { return Err("expected: minimize etol ftol maxiter maxeval".into()) };
        let etol = num(etol, "minimize etol")?;
        let ftol = num(ftol, "minimize ftol")?;
        let maxiter = int(maxiter, "minimize maxiter")?;
        let maxeval = int(maxeval, "minimize maxeval")?;
        if etol < 0.0 || ftol < 0.0 {
            return Err("minimize: etol and ftol must not be negative".into());
        }
        if maxiter < 0 || maxeval < 0 {
            return Err("minimize: maxiter and maxeval must not be negative".into());
        }
        if etol == 0.0 && ftol == 0.0 && maxiter > 100_000 {
            self.say("WARNING: minimize with etol = ftol = 0 stops only at maxiter, maxeval or when the line search cannot progress");
        }
        let plan = self.plan(0)?;
        self.sandbox_steps += maxiter as u64;
        let u = self.world.units;
        let first = self.world.step;
        let mut sim = crate::simulation::Simulation::new(
            plan.system.clone(),
            plan.potential.instantiate(&plan.system)?,
            crate::integrate::Integrator::VelocityVerlet,
            plan.timestep,
            plan.skin,
            // Minimisation starts where forces are huge (overlapping atoms) by design; only
            // non-finite forces stop it.
            f64::INFINITY,
            first,
            None,
        )
        .map_err(|e| e.to_string())?;
        let settings = MinSettings {
            style: self.world.min.style,
            line: self.world.min.line,
            dmax: self.world.min.dmax * u.length,
            etol,
            ftol,
            max_iterations: maxiter as u64,
            max_evaluations: maxeval as u64,
            energy_unit: u.energy,
            force_unit: u.force(),
            per_atom: self.norm(),
            fire: crate::minimize::FireSettings::new(plan.timestep),
        };
        let style = match settings.style {
            MinStyle::Cg => "cg",
            MinStyle::Sd => "sd",
            MinStyle::Fire => "fire",
        };
        self.run_bounds = (first, first + maxiter as u64);
        self.say(&format!("Setting up {style} style minimization ..."));
        self.say(&format!("  Unit style    : {}", u.name));
        self.say(&format!("  Current step  : {first}"));
        let wants_vars = self.style.keys.iter().any(|k| k.starts_with("v_"));
        if let Some(h) = self.style.header() {
            self.say(&h);
        }
        let start = Instant::now();
        self.output(&mut sim, &plan, 0.0, wants_vars, first)?;
        let mut minimizer = Minimizer::start(settings, &mut sim);
        let stop = loop {
            match minimizer.iterate(&mut sim).map_err(|e| e.to_string())? {
                None => {
                    let step = sim.step;
                    if self.thermo_every > 0 && step % self.thermo_every == 0 {
                        self.output(&mut sim, &plan, start.elapsed().as_secs_f64(), wants_vars, step)?;
                    }
                }
                Some(stop) => break stop,
            }
        };
        // LAMMPS evaluates the final state once more after an early stop, then prints it.
        if stop != Stop::MaxIterations {
            sim.evaluate_moved().map_err(|e| e.to_string())?;
        }
        let step = sim.step;
        self.output(&mut sim, &plan, start.elapsed().as_secs_f64(), wants_vars, step)?;
        let wall = start.elapsed().as_secs_f64();
        let steps = sim.step - first;
        // FIRE leaves the atoms with its velocities, as LAMMPS does.
        self.world.absorb(&sim.system);
        self.world.step = sim.step;
        self.say(&format!("Loop time of {} on 1 thread(s) for {steps} steps with {} atoms", super::cformat::g(wall, 6), sim.system.len()));
        self.say("");
        let stats = minimizer.stats(stop, &sim);
        for line in report(&stats).lines() {
            self.say(line);
        }
        self.say("");
        if stop.is_stalled() {
            self.say(&format!("WARNING: the minimizer stopped making progress ({}); the energy may not be at a minimum", stop.describe()));
        }
        self.flush_log();
        Ok(())
    }
}

/// The "Minimization stats" block as LAMMPS prints it.
fn report(stats: &MinStats) -> String {
    let g8 = |x: f64| super::cformat::g(x, 8);
    let g15 = |x: f64| super::cformat::g(x, 15);
    format!(
        "Minimization stats:\n  Stopping criterion = {}\n  Energy initial, next-to-last, final = \n    {:>18} {:>18} {:>18}\n  Force two-norm initial, final = {} {}\n  Force max component initial, final = {} {}\n  Final line search alpha, max atom move = {} {}\n  Iterations, force evaluations = {} {}\n",
        stats.stop.describe(),
        g15(stats.energy_initial),
        g15(stats.energy_next_to_last),
        g15(stats.energy_final),
        g8(stats.fnorm_initial),
        g8(stats.fnorm_final),
        g8(stats.fmax_initial),
        g8(stats.fmax_final),
        g8(stats.alpha_final),
        g8(stats.alpha_final * stats.fmax_final),
        stats.iterations,
        stats.evaluations
    )
}
