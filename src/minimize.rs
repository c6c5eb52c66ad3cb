//! Energy minimisation as LAMMPS's `minimize` performs it with `min_style cg` (Polak-Ribière
//! conjugate gradients, restarted every 3N iterations or when the direction is not downhill)
//! or `min_style sd` (steepest descent), each with LAMMPS's line searches (`quadratic`, the
//! default: backtracking that switches to a secant step on the projected force once the energy
//! is locally quadratic; `backtrack`: Armijo backtracking), or `min_style fire` (FIRE 2.0,
//! Guénolé et al. 2020: damped dynamics with an adaptive timestep, semi-implicit Euler steps,
//! a half step back when the power turns negative), with LAMMPS's stopping criteria and
//! statistics.
//!
//! The minimiser works in the deck's units (energies per atom under `thermo_modify norm yes`),
//! because LAMMPS's fixed thresholds (ALPHA_MAX, EMACH, ...) are in those units: the same
//! input takes the same path. Positions are in Å, which is the length unit of every deck unit
//! style mdrun reads.

use crate::cell::Vec3;
use crate::simulation::{Simulation, SimulationError};

/// LAMMPS's line-search constants (min_linesearch.cpp).
const ALPHA_MAX: f64 = 1.0;
const ALPHA_REDUCE: f64 = 0.5;
const BACKTRACK_SLOPE: f64 = 0.4;
const QUADRATIC_TOL: f64 = 0.1;
const EMACH: f64 = 1.0e-8;
const EPS_QUAD: f64 = 1.0e-28;
/// Floor of the energy tolerance's normalisation.
const EPS_ENERGY: f64 = 1.0e-8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinStyle {
    Cg,
    Sd,
    Fire,
}

/// FIRE 2.0's parameters (LAMMPS's `min_modify` defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct FireSettings {
    /// The MD timestep FIRE starts from, ps; it grows to `tmax` and shrinks to `tmin` times it.
    pub timestep: f64,
    pub tmax: f64,
    pub tmin: f64,
    pub delay: u64,
    pub grow: f64,
    pub shrink: f64,
    pub alpha0: f64,
    pub alpha_shrink: f64,
    pub half_step_back: bool,
    /// Stop after this many iterations with P = v·F <= 0 (LAMMPS `vdfmax`).
    pub max_negative: u64,
}

impl FireSettings {
    pub fn new(timestep: f64) -> FireSettings {
        FireSettings { timestep, tmax: 10.0, tmin: 0.02, delay: 20, grow: 1.1, shrink: 0.5, alpha0: 0.25, alpha_shrink: 0.99, half_step_back: true, max_negative: 2000 }
    }
}

/// FIRE's running state.
#[derive(Clone, Debug)]
struct Fire {
    settings: FireSettings,
    dt: f64,
    alpha: f64,
    last_negative: u64,
    start: u64,
    negative: u64,
    /// The velocities were zeroed: re-derive the step limit from a trial kick.
    reset: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearch {
    Quadratic,
    Backtrack,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MinSettings {
    pub style: MinStyle,
    pub line: LineSearch,
    /// Largest move of any coordinate in one line search, Å (LAMMPS `min_modify dmax`).
    pub dmax: f64,
    /// Relative energy change that stops (`minimize etol`).
    pub etol: f64,
    /// Force 2-norm that stops, in `force_unit`s (`minimize ftol`).
    pub ftol: f64,
    pub max_iterations: u64,
    pub max_evaluations: u64,
    /// eV per energy unit and eV/Å per force unit of the deck.
    pub energy_unit: f64,
    pub force_unit: f64,
    /// Energies per atom (LAMMPS `thermo_modify norm yes`).
    pub per_atom: bool,
    /// FIRE's parameters (min_style fire).
    pub fire: FireSettings,
}

/// A deck's minimiser choices (`min_style`, `min_modify`), deck units.
#[derive(Clone, Debug, PartialEq)]
pub struct MinChoice {
    pub style: MinStyle,
    pub line: LineSearch,
    pub dmax: f64,
}

impl Default for MinChoice {
    fn default() -> Self {
        MinChoice { style: MinStyle::Cg, line: LineSearch::Quadratic, dmax: 0.1 }
    }
}

/// Why the minimisation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    MaxIterations,
    MaxEvaluations,
    MaxNegativePower,
    EnergyTolerance,
    ForceTolerance,
    NotDownhill,
    ZeroAlpha,
    ZeroForce,
    ZeroQuadratic,
}

impl Stop {
    /// LAMMPS's wording ("Stopping criterion = ...").
    pub fn describe(self) -> &'static str {
        match self {
            Stop::MaxIterations => "max iterations",
            Stop::MaxEvaluations => "max force evaluations",
            Stop::MaxNegativePower => "max iterations with v.f negative",
            Stop::EnergyTolerance => "energy tolerance",
            Stop::ForceTolerance => "force tolerance",
            Stop::NotDownhill => "search direction is not downhill",
            Stop::ZeroAlpha => "linesearch alpha is zero",
            Stop::ZeroForce => "forces are zero",
            Stop::ZeroQuadratic => "quadratic factors are zero",
        }
    }

    /// Whether the minimiser stopped because it could make no further progress, rather than
    /// by converging or running out of iterations.
    pub fn is_stalled(self) -> bool {
        matches!(self, Stop::NotDownhill | Stop::ZeroAlpha | Stop::ZeroQuadratic)
    }
}

/// The statistics LAMMPS prints after a minimisation, in the deck's units.
#[derive(Clone, Debug, PartialEq)]
pub struct MinStats {
    pub stop: Stop,
    pub energy_initial: f64,
    pub energy_next_to_last: f64,
    pub energy_final: f64,
    pub fnorm_initial: f64,
    pub fnorm_final: f64,
    pub fmax_initial: f64,
    pub fmax_final: f64,
    pub alpha_final: f64,
    pub iterations: u64,
    pub evaluations: u64,
}

/// A minimisation in progress on a [`Simulation`] (whose forces are those of its current
/// positions).
pub struct Minimizer {
    settings: MinSettings,
    /// Line-search start, previous force and search direction (deck force units).
    x0: Vec<Vec3>,
    g: Vec<Vec3>,
    h: Vec<Vec3>,
    gg: f64,
    energy: f64,
    previous: f64,
    initial: f64,
    fnorm_initial: f64,
    fmax_initial: f64,
    alpha_final: f64,
    iterations: u64,
    evaluations: u64,
    /// Iterations after which CG restarts from steepest descent (3N, as LAMMPS).
    restart_every: u64,
    fire: Option<Fire>,
}

impl Minimizer {
    /// Starts at the simulation's current positions (FIRE zeroes the velocities, as LAMMPS).
    pub fn start(settings: MinSettings, sim: &mut Simulation) -> Minimizer {
        let f = forces(&settings, sim);
        let energy = energy(&settings, sim);
        let gg = dot(&f, &f);
        let n = f.len();
        Minimizer {
            x0: vec![[0.0; 3]; n],
            g: f.clone(),
            h: f.clone(),
            gg,
            energy,
            previous: energy,
            initial: energy,
            fnorm_initial: gg.sqrt(),
            fmax_initial: max_component(&f),
            alpha_final: 0.0,
            iterations: 0,
            evaluations: 0,
            restart_every: (3 * n as u64).max(1),
            fire: (settings.style == MinStyle::Fire).then(|| {
                for v in &mut sim.system.velocities {
                    *v = [0.0; 3];
                }
                let f = &settings.fire;
                Fire { settings: f.clone(), dt: f.timestep, alpha: f.alpha0, last_negative: sim.step, start: sim.step, negative: 0, reset: true }
            }),
            settings,
        }
    }

    /// One iteration (one line search; the step count advances by one). `Some(stop)` ends the
    /// minimisation.
    pub fn iterate(&mut self, sim: &mut Simulation) -> Result<Option<Stop>, SimulationError> {
        if self.iterations >= self.settings.max_iterations {
            return Ok(Some(Stop::MaxIterations));
        }
        if self.fire.is_some() {
            return self.fire_iteration(sim);
        }
        sim.step += 1;
        self.iterations += 1;
        self.previous = self.energy;
        let searched = match self.settings.line {
            LineSearch::Quadratic => self.quadratic(sim)?,
            LineSearch::Backtrack => self.backtrack(sim)?,
        };
        if let Some(stop) = searched {
            return Ok(Some(stop));
        }
        if self.evaluations >= self.settings.max_evaluations {
            return Ok(Some(Stop::MaxEvaluations));
        }
        if (self.energy - self.previous).abs() < self.settings.etol * 0.5 * (self.energy.abs() + self.previous.abs() + EPS_ENERGY) {
            return Ok(Some(Stop::EnergyTolerance));
        }
        let f = forces(&self.settings, sim);
        let ff = dot(&f, &f);
        let fg = dot(&f, &self.g);
        if self.settings.ftol > 0.0 && ff < self.settings.ftol * self.settings.ftol {
            return Ok(Some(Stop::ForceTolerance));
        }
        match self.settings.style {
            MinStyle::Sd | MinStyle::Fire => self.h.clone_from(&f),
            MinStyle::Cg => {
                // Polak-Ribière, never negative; restarted every 3N iterations.
                let mut beta = ((ff - fg) / self.gg).max(0.0);
                if (self.iterations + 1) % self.restart_every == 0 {
                    beta = 0.0;
                }
                self.gg = ff;
                for (h, f) in self.h.iter_mut().zip(&f) {
                    for d in 0..3 {
                        h[d] = f[d] + beta * h[d];
                    }
                }
                self.g = f;
                // Not downhill: restart from the force.
                if dot(&self.g, &self.h) <= 0.0 {
                    self.h.clone_from(&self.g);
                }
            }
        }
        Ok(if self.iterations >= self.settings.max_iterations { Some(Stop::MaxIterations) } else { None })
    }

    /// The statistics once stopped (`next_to_last` energy: before the last line search).
    pub fn stats(&self, stop: Stop, sim: &Simulation) -> MinStats {
        let f = forces(&self.settings, sim);
        MinStats {
            stop,
            energy_initial: self.initial,
            energy_next_to_last: self.previous,
            energy_final: self.energy,
            fnorm_initial: self.fnorm_initial,
            fnorm_final: dot(&f, &f).sqrt(),
            fmax_initial: self.fmax_initial,
            fmax_final: max_component(&f),
            alpha_final: self.alpha_final,
            iterations: self.iterations,
            evaluations: self.evaluations,
        }
    }

    /// One FIRE 2.0 iteration (LAMMPS's default semi-implicit Euler integrator).
    fn fire_iteration(&mut self, sim: &mut Simulation) -> Result<Option<Stop>, SimulationError> {
        let mut fire = self.fire.take().expect("FIRE state");
        let result = self.fire_step(&mut fire, sim);
        self.fire = Some(fire);
        result
    }

    fn fire_step(&mut self, fire: &mut Fire, sim: &mut Simulation) -> Result<Option<Stop>, SimulationError> {
        use crate::units::FTM2V;
        let p = fire.settings.clone();
        sim.step += 1;
        self.iterations += 1;
        let step = sim.step;
        let masses: Vec<f64> = (0..sim.system.len()).map(|i| sim.system.mass(i)).collect();
        let power = dot(&sim.system.velocities, &sim.forces.forces);
        let (mut scale1, mut scale2) = (1.0, 0.0);
        if power > 0.0 {
            fire.negative = 0;
            let vv = dot(&sim.system.velocities, &sim.system.velocities);
            let ff = dot(&sim.forces.forces, &sim.forces.forces);
            scale1 = 1.0 - fire.alpha;
            scale2 = if ff <= 1e-20 { 0.0 } else { fire.alpha * (vv / ff).sqrt() };
            if step - fire.last_negative > p.delay {
                fire.dt = (fire.dt * p.grow).min(p.tmax * p.timestep);
                fire.alpha *= p.alpha_shrink;
            }
        } else {
            // Uphill: back half a step, stop, start slower (not within the first `delay`).
            fire.last_negative = step;
            if step - fire.start >= p.delay {
                fire.alpha = p.alpha0;
                if fire.dt * p.shrink >= p.tmin * p.timestep {
                    fire.dt *= p.shrink;
                }
            }
            fire.negative += 1;
            if p.max_negative > 0 && fire.negative > p.max_negative {
                return Ok(Some(Stop::MaxNegativePower));
            }
            if p.half_step_back {
                for (x, v) in sim.system.positions.iter_mut().zip(&sim.system.velocities) {
                    for d in 0..3 {
                        x[d] -= 0.5 * fire.dt * v[d];
                    }
                }
            }
            for v in &mut sim.system.velocities {
                *v = [0.0; 3];
            }
            fire.reset = true;
        }
        // After a reset, a trial kick from rest sets how far the step may go.
        if fire.reset {
            self.evaluate(sim)?;
            self.evaluations += 1;
            for ((v, f), m) in sim.system.velocities.iter_mut().zip(&sim.forces.forces).zip(&masses) {
                *v = f.map(|x| fire.dt * FTM2V / m * x);
            }
        }
        // No coordinate moves more than dmax.
        let mut dtv = fire.dt;
        for v in &sim.system.velocities {
            let vmax = v[0].abs().max(v[1].abs()).max(v[2].abs());
            if dtv * vmax > self.settings.dmax {
                dtv = self.settings.dmax / vmax;
            }
        }
        if fire.reset {
            for v in &mut sim.system.velocities {
                *v = [0.0; 3];
            }
        }
        let mixing = power > 0.0;
        {
            let crate::system::System { positions, velocities, .. } = &mut sim.system;
            for (((x, v), f), m) in positions.iter_mut().zip(velocities.iter_mut()).zip(&sim.forces.forces).zip(&masses) {
                let dtfm = dtv * FTM2V / m;
                for d in 0..3 {
                    v[d] += dtfm * f[d];
                }
                if mixing {
                    for d in 0..3 {
                        v[d] = scale1 * v[d] + scale2 * f[d];
                    }
                }
                for d in 0..3 {
                    x[d] += dtv * v[d];
                }
            }
        }
        self.previous = self.energy;
        self.energy = self.evaluate(sim)?;
        self.evaluations += 1;
        fire.reset = false;
        if self.settings.etol > 0.0
            && step - fire.last_negative > p.delay
            && (self.energy - self.previous).abs() < self.settings.etol * 0.5 * (self.energy.abs() + self.previous.abs() + EPS_ENERGY)
        {
            return Ok(Some(Stop::EnergyTolerance));
        }
        if self.settings.ftol > 0.0 {
            let f = forces(&self.settings, sim);
            if dot(&f, &f) < self.settings.ftol * self.settings.ftol {
                return Ok(Some(Stop::ForceTolerance));
            }
        }
        Ok(if self.iterations >= self.settings.max_iterations { Some(Stop::MaxIterations) } else { None })
    }

    /// Projected force f·h (per atom under norm) and the largest |h| component; None when the
    /// direction is not downhill or zero.
    fn direction(&self, sim: &Simulation) -> Result<(f64, f64), Stop> {
        let f = forces(&self.settings, sim);
        let mut fh = dot(&f, &self.h);
        if self.settings.per_atom {
            fh /= sim.system.len() as f64;
        }
        if fh <= 0.0 {
            return Err(Stop::NotDownhill);
        }
        let hmax = max_component(&self.h);
        if hmax == 0.0 {
            return Err(Stop::ZeroForce);
        }
        Ok((fh, hmax))
    }

    /// Positions x0 + alpha h, their energy and forces (`evaluations` counts it).
    fn step_to(&mut self, sim: &mut Simulation, alpha: f64) -> Result<f64, SimulationError> {
        for ((x, x0), h) in sim.system.positions.iter_mut().zip(&self.x0).zip(&self.h) {
            *x = *x0;
            if alpha > 0.0 {
                for d in 0..3 {
                    x[d] += alpha * h[d];
                }
            }
        }
        self.evaluations += 1;
        self.evaluate(sim)
    }

    /// Energy and forces at the current positions; atoms wrapped by a list rebuild take the
    /// line search's start point with them.
    fn evaluate(&mut self, sim: &mut Simulation) -> Result<f64, SimulationError> {
        if let Some(moved) = sim.evaluate_moved()? {
            for (i, shift) in moved {
                for d in 0..3 {
                    self.x0[i][d] -= shift[d];
                }
            }
        }
        Ok(energy(&self.settings, sim))
    }

    fn backtrack(&mut self, sim: &mut Simulation) -> Result<Option<Stop>, SimulationError> {
        let (fh, hmax) = match self.direction(sim) {
            Ok(x) => x,
            Err(stop) => return Ok(Some(stop)),
        };
        let mut alpha = ALPHA_MAX.min(self.settings.dmax / hmax);
        self.x0.clone_from(&sim.system.positions);
        let original = self.energy;
        loop {
            self.energy = self.step_to(sim, alpha)?;
            let ideal = -BACKTRACK_SLOPE * alpha * fh;
            let de = self.energy - original;
            self.alpha_final = alpha;
            if de <= ideal {
                return Ok(None);
            }
            alpha *= ALPHA_REDUCE;
            self.alpha_final = alpha;
            if alpha <= 0.0 || ideal >= -EMACH {
                self.energy = self.step_to(sim, 0.0)?;
                return Ok(Some(if de < 0.0 { Stop::EnergyTolerance } else { Stop::ZeroAlpha }));
            }
        }
    }

    fn quadratic(&mut self, sim: &mut Simulation) -> Result<Option<Stop>, SimulationError> {
        let (fh0, hmax) = match self.direction(sim) {
            Ok(x) => x,
            Err(stop) => return Ok(Some(stop)),
        };
        let alpha_max = ALPHA_MAX.min(self.settings.dmax / hmax);
        self.x0.clone_from(&sim.system.positions);
        let original = self.energy;
        let mut alpha = alpha_max;
        let mut fh_prev = fh0;
        let mut e_prev = original;
        let mut alpha_prev = 0.0;
        let n = sim.system.len() as f64;
        loop {
            // LAMMPS reports the backtracking alpha, also when a secant step ended the search.
            self.alpha_final = alpha;
            self.energy = self.step_to(sim, alpha)?;
            let f = forces(&self.settings, sim);
            let mut fh = dot(&f, &self.h);
            if self.settings.per_atom {
                fh /= n;
            }
            let delfh = fh - fh_prev;
            if fh.abs() < EPS_QUAD || delfh.abs() < EPS_QUAD {
                self.energy = self.reset(sim)?;
                return Ok(Some(Stop::ZeroQuadratic));
            }
            // Secant step to fh = 0 once the energy is locally quadratic in alpha.
            let relerr = (1.0 - (0.5 * (alpha - alpha_prev) * (fh + fh_prev) + self.energy) / e_prev).abs();
            let alpha0 = alpha - (alpha - alpha_prev) * fh / delfh;
            if relerr <= QUADRATIC_TOL && alpha0 > 0.0 && alpha0 < alpha_max {
                self.energy = self.step_to(sim, alpha0)?;
                if self.energy - original < EMACH {
                    return Ok(None);
                }
            }
            let ideal = -BACKTRACK_SLOPE * alpha * fh0;
            if self.energy - original <= ideal {
                return Ok(None);
            }
            fh_prev = fh;
            e_prev = self.energy;
            alpha_prev = alpha;
            alpha *= ALPHA_REDUCE;
            self.alpha_final = alpha;
            if alpha <= 0.0 || ideal >= -EMACH {
                self.energy = self.reset(sim)?;
                return Ok(Some(Stop::ZeroAlpha));
            }
        }
    }

    /// Back to the line search's start (LAMMPS counts this evaluation too).
    fn reset(&mut self, sim: &mut Simulation) -> Result<f64, SimulationError> {
        self.step_to(sim, 0.0)
    }
}

/// The forces in the deck's units.
fn forces(settings: &MinSettings, sim: &Simulation) -> Vec<Vec3> {
    sim.forces.forces.iter().map(|f| f.map(|x| x / settings.force_unit)).collect()
}

/// The potential energy in the deck's units (per atom under norm).
fn energy(settings: &MinSettings, sim: &Simulation) -> f64 {
    let e = sim.forces.energy / settings.energy_unit;
    if settings.per_atom { e / sim.system.len() as f64 } else { e }
}

fn dot(a: &[Vec3], b: &[Vec3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x[0] * y[0] + x[1] * y[1] + x[2] * y[2]).sum()
}

fn max_component(a: &[Vec3]) -> f64 {
    a.iter().flat_map(|v| v.iter()).fold(0.0, |m: f64, x| m.max(x.abs()))
}

/// How the cell takes part in a relaxation (system.toml `[minimize] cell`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellRelax {
    Fixed,
    /// One scale for the whole cell: the mean pressure reaches the target.
    Iso,
    /// Each cell vector its own scale: each diagonal pressure reaches the target.
    Aniso,
}

/// A system.toml relaxation: the atoms by a minimiser, and the cell to a target pressure.
#[derive(Clone, Debug, PartialEq)]
pub struct Relaxation {
    pub settings: MinSettings,
    pub cell: CellRelax,
    /// bar
    pub pressure: f64,
    /// bar: the cell is relaxed once every barostatted pressure is this close to the target.
    pub pressure_tolerance: f64,
    /// Cycles of (relax the atoms, rescale the cell).
    pub max_cycles: usize,
}

/// What a relaxation reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Relaxed {
    /// The last atomic minimisation's statistics.
    pub stats: MinStats,
    pub cycles: usize,
    /// Diagonal pressures at the end (virial only: the atoms are at rest), bar.
    pub pressure: [f64; 3],
    pub converged: bool,
}

/// Relaxes the simulation's atoms, and its cell when asked, at zero temperature: cycles of
/// a minimisation at fixed cell followed by a rescaling of the cell vectors towards the target
/// pressure (a secant step on ln L, from the pressures the cycles have seen), until the forces
/// and the pressure both meet their tolerances. The atoms keep their fractional coordinates
/// when the cell moves. `report` receives one line per cycle.
pub fn relax(sim: &mut Simulation, relaxation: &Relaxation, report: &mut dyn FnMut(String)) -> Result<Relaxed, SimulationError> {
    let mut history: Vec<([f64; 3], [f64; 3])> = Vec::new();
    let first = sim.step;
    for cycle in 1..=relaxation.max_cycles.max(1) {
        let mut minimizer = Minimizer::start(relaxation.settings.clone(), sim);
        let stop = loop {
            if let Some(stop) = minimizer.iterate(sim)? {
                break stop;
            }
        };
        let stats = minimizer.stats(stop, sim);
        let pressure = virial_pressure(sim);
        let atoms_done = matches!(stop, Stop::EnergyTolerance | Stop::ForceTolerance | Stop::ZeroForce);
        let error: [f64; 3] = match relaxation.cell {
            CellRelax::Fixed => [0.0; 3],
            CellRelax::Iso => [(pressure[0] + pressure[1] + pressure[2]) / 3.0 - relaxation.pressure; 3],
            CellRelax::Aniso => pressure.map(|p| p - relaxation.pressure),
        };
        let cell_done = error.iter().all(|e| e.abs() <= relaxation.pressure_tolerance);
        report(format!(
            "relax cycle {cycle}: {} iterations ({}), E {:.10} eV, |F| {:.3e} eV/A, pressure {:.4} {:.4} {:.4} bar, volume {:.4} A3",
            stats.iterations,
            stop.describe(),
            sim.forces.energy,
            stats.fnorm_final * relaxation.settings.force_unit,
            pressure[0],
            pressure[1],
            pressure[2],
            sim.system.cell.volume()
        ));
        if relaxation.cell == CellRelax::Fixed || (cell_done && atoms_done) || cycle == relaxation.max_cycles {
            sim.step = first;
            return Ok(Relaxed { stats, cycles: cycle, pressure, converged: atoms_done && cell_done });
        }
        // ln L per cell vector: the secant through the last two cycles, else a small trial step
        // that expands a cell under too much pressure.
        let log_lengths = sim.system.cell.lengths().map(f64::ln);
        let mut step = [0.0; 3];
        for k in 0..3 {
            let trial = 0.005 * error[k].signum();
            step[k] = match history.last() {
                Some((l, e)) if (log_lengths[k] - l[k]).abs() > 1e-12 && (error[k] - e[k]).abs() > 1e-12 => {
                    let slope = (error[k] - e[k]) / (log_lengths[k] - l[k]);
                    if slope < 0.0 { (-error[k] / slope).clamp(-0.03, 0.03) } else { trial }
                }
                _ => trial,
            };
        }
        if relaxation.cell == CellRelax::Iso {
            step = [step[0]; 3];
        }
        history.push((log_lengths, error));
        let mut vectors = *sim.system.cell.vectors();
        for k in 0..3 {
            vectors[k] = vectors[k].map(|x| x * step[k].exp());
        }
        sim.rescale_cell(vectors)?;
    }
    unreachable!("the loop returns at its last cycle")
}

/// The diagonal pressure of the virial alone (bar): the pressure of atoms at rest.
fn virial_pressure(sim: &Simulation) -> [f64; 3] {
    let v = sim.system.cell.volume();
    [0, 1, 2].map(|k| sim.forces.virial[k][k] / v * crate::units::NKTV2P)
}
