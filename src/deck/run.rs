//! `run N` and what it prints and writes: the deck's world as a [`Plan`], stepped by the
//! engine, with LAMMPS's thermo rows and dumps (`impl Deck`).

use super::cformat;
use super::interp::{Deck, Flow, ThermoRow};
use super::thermo_out::ThermoState;
use super::world::{FixKind, Pair, World, int};
use crate::driver::{Drive, Observer, Stop, next_multiple};
use crate::engine::Engine;
use crate::plan::{Plan, PotentialSpec};
use std::path::PathBuf;
use std::time::Instant;

impl Deck {
    /// Thermo quantities of the world as it stands (a force evaluation on the CPU).
    pub(super) fn evaluate_state(&mut self) -> Result<ThermoState, String> {
        let plan = self.plan(0)?;
        self.sandbox_work(&plan)?;
        let sim = crate::simulation::Simulation::new(
            plan.system.clone(),
            plan.potential.instantiate(&plan.system)?,
            plan.integrator.clone(),
            plan.timestep,
            plan.skin,
            plan.max_force,
            self.world.step,
            None,
        )
        .map_err(|e| e.to_string())?;
        let sample = sim.thermo();
        Ok(self.state(&plan, sample, &sim.forces.forces, 0.0, sim.list.builds()))
    }

    pub(super) fn state(&self, plan: &Plan, sample: crate::thermo::ThermoSample, forces: &[[f64; 3]], cpu: f64, nbuild: u64) -> ThermoState {
        let (lo, hi) = self.world.bounds.unwrap_or(([0.0; 3], [0.0; 3]));
        let mut fmax: f64 = 0.0;
        let mut fnorm2 = 0.0;
        for f in forces {
            for c in f {
                fmax = fmax.max(c.abs());
                fnorm2 += c * c;
            }
        }
        let etail = match &plan.potential {
            PotentialSpec::Pair(pair) => pair.tail_correction(&plan.system.species_counts(), plan.system.cell.volume()).0,
            _ => 0.0,
        };
        ThermoState {
            step: sample.step,
            sample,
            natoms: plan.system.len(),
            fmax,
            fnorm: fnorm2.sqrt(),
            etail,
            lo,
            hi,
            total_mass: plan.system.masses().iter().sum(),
            dt: self.world.dt(),
            cpu,
            run_first: self.run_bounds.0,
            nbuild,
            ecouple: 0.0,
        }
    }

    /// The world as a plan for a run of `steps` steps from the current step.
    /// In a sandbox, refuses force evaluations whose pair search would be huge: atoms² times
    /// the periodic images within cutoff + skin (a dense box with a long reach).
    fn sandbox_work(&self, plan: &Plan) -> Result<(), String> {
        if self.options.sandbox.is_none() {
            return Ok(());
        }
        let reach = match &plan.potential {
            PotentialSpec::Pair(pair) => pair.max_cutoff(),
            PotentialSpec::Ml { .. } => 10.0,
        } + plan.skin;
        let n = plan.system.len() as f64;
        let widths = plan.system.cell.perpendicular_widths();
        let images: f64 = (0..3).map(|d| if plan.system.cell.pbc()[d] { 2.0 * (reach / widths[d]).ceil() + 1.0 } else { 1.0 }).product();
        if n * n * images > 2e6 {
            return Err(format!("sandbox: a pair search of {:.2e} atom pairs x images is too much work", n * n * images));
        }
        Ok(())
    }

    pub fn plan(&self, steps: u64) -> Result<Plan, String> {
        let w = &self.world;
        let u = w.units;
        let system = w.system()?;
        let potential = match &w.pair {
            None => return Err("no pair style: pair_style and pair_coeff come before run".into()),
            Some(Pair::Style { style, coeffs, .. }) => {
                PotentialSpec::Pair(super::pair::to_spec(style, coeffs, w.ntypes, w.mix, w.shift, w.tail, &u)?)
            }
            Some(Pair::Mcgm { model }) => {
                if w.type_names.iter().any(Option::is_none) {
                    return Err("pair_style ml: name the element of every atom type with pair_coeff * * El1 El2 ...".into());
                }
                // The total charge is the data file's (atom_style charge) or set's charges.
                PotentialSpec::Ml { model: model.clone(), charge: w.atoms.q.iter().sum(), ewald: None, uncertainty: None, half_tables: false }
            }
        };
        let integrator = self.integrator(steps)?;
        let source = PathBuf::from(&self.where_.0);
        Ok(Plan {
            structure_origin: format!("the atoms of {}", source.display()),
            source,
            system,
            potential,
            integrator,
            timestep: w.dt() * u.time,
            steps: w.step + steps,
            skin: w.skin() * u.length,
            rebuild: crate::simulation::RebuildPolicy { every: w.every, delay: w.delay, check: w.check },
            threads: self.options.threads,
            max_force: crate::plan::DEFAULT_MAX_FORCE,
            // LAMMPS runs on whatever the temperature; so does a deck.
            failure_limits: crate::plan::FailureLimits { max_temperature: Some(f64::INFINITY), max_energy_drift: Some(f64::INFINITY), max_outside_rows: Some(u64::MAX) },
            platform: self.options.platform,
            thermo_interval: if self.thermo_every > 0 { self.thermo_every } else { steps.max(1) },
            log: PathBuf::from("thermo.log"),
            checkpoint: PathBuf::from("checkpoint.chk"),
            checkpoint_interval: None,
            trajectories: Vec::new(),
            analysis: None,
            minimize: None,
            replicas: 1,
            velocity_seed: None,
            replica_systems: Vec::new(),
            inputs: vec![("deck".to_string(), PathBuf::from(&self.where_.0))],
        })
    }

    /// The time integrator the fixes make for a run of `steps` steps from the current step,
    /// with fix press/berendsen's barostat around it.
    fn integrator(&self, steps: u64) -> Result<crate::integrate::Integrator, String> {
        let inner = self.thermostatted(steps)?;
        let w = &self.world;
        match w.fixes.iter().find_map(|f| match &f.kind {
            FixKind::PressBerendsen(b) => Some(b),
            _ => None,
        }) {
            Some(b) => Ok(crate::integrate::Integrator::Berendsen(Box::new(inner), b.barostat(&w.units, w.dt(), w.step, w.step + steps)?)),
            None => Ok(inner),
        }
    }

    /// The integrator of the time-integration and thermostat fixes.
    fn thermostatted(&self, steps: u64) -> Result<crate::integrate::Integrator, String> {
        use crate::integrate::Integrator;
        let w = &self.world;
        let u = w.units;
        let nve = w.fixes.iter().any(|f| f.kind == FixKind::Nve);
        let (first, last) = (w.step, w.step + steps);
        for f in &w.fixes {
            match &f.kind {
                FixKind::Nh(nh) => return nh.integrator(&u, w.dt(), first, last),
                FixKind::Langevin { .. } | FixKind::Csvr(_) if !nve => {
                    return Err(format!("fix {} adds a thermostat only; add fix nve to integrate (as in LAMMPS)", f.id));
                }
                FixKind::Langevin { t_start, damp, seed, zero, .. } => {
                    return Ok(Integrator::Langevin { temperature: t_start * u.temperature, damping: damp * u.time, seed: *seed as u64, zero: *zero });
                }
                FixKind::Csvr(super::ensembles::CsvrFix { t_start, t_stop, damp, seed, state }) => {
                    if *damp < w.dt() {
                        return Err(format!("fix {}: Tdamp {damp} is shorter than the timestep {}", f.id, w.dt()));
                    }
                    let mut c = crate::integrate::csvr::Csvr::new(t_start * u.temperature, t_stop * u.temperature, damp * u.time, *seed as u64, (first, last));
                    if let Some(state) = state {
                        c.restore(&state.values)?;
                    }
                    return Ok(Integrator::Csvr(c));
                }
                FixKind::Nve | FixKind::PressBerendsen(_) => {}
            }
        }
        Ok(Integrator::VelocityVerlet)
    }

    /// `run N [upto] [pre yes|no] [post yes|no]`.
    pub(super) fn run(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
        let e = |m: String| Err(m);
        let [n, rest @ ..] = args else { return Err(e("expected: run N [upto]".into())) };
        let n = int(n, "run length").map_err(Err)?;
        let mut upto = false;
        let mut i = 0;
        while i < rest.len() {
            match rest[i].as_str() {
                "upto" => {
                    upto = true;
                    i += 1;
                }
                "pre" | "post" => {
                    rest.get(i + 1).ok_or_else(|| Err(format!("{} needs yes or no", rest[i])))?;
                    i += 2;
                }
                other => return Err(e(format!("run keyword '{other}' is not supported; mdrun supports upto, pre, post"))),
            }
        }
        if n < 0 {
            return Err(e("run length must not be negative".into()));
        }
        let steps = if upto {
            (n as u64).checked_sub(self.world.step).ok_or_else(|| Err(format!("run {n} upto: the step is already {}", self.world.step)))?
        } else {
            n as u64
        };
        let plan = self.plan(steps).map_err(Err)?;
        if self.capture {
            self.captured = Some((plan, self.where_.1));
            return Err(Ok(Flow::Captured));
        }
        self.run_plan(plan, steps).map_err(Err)
    }

    fn run_plan(&mut self, plan: Plan, steps: u64) -> Result<(), String> {
        self.sandbox_work(&plan)?;
        self.sandbox_steps += steps;
        let integrate = self.world.fixes.iter().any(|f| matches!(f.kind, FixKind::Nve | FixKind::Nh(_)));
        let u = self.world.units;
        let threads = self.options.threads.filter(|&t| t > 0).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| format!("cannot start {threads} threads: {e}"))?;
        let mut notes = Vec::new();
        let gpu = crate::engine::choose(&plan, self.options.platform, &plan.system, &mut |line| notes.push(line.to_string()))?;
        for n in notes {
            self.say(&n);
        }
        let first = self.world.step;
        let last = first + steps;
        self.run_bounds = (first, last);
        let mut engine = pool
            .install(|| crate::engine::start(gpu, &plan, plan.system.clone(), first, None, &[], None))
            .map_err(|e| match e {
                crate::engine::EngineError::Potential(m) => m,
                crate::engine::EngineError::Simulation(s) => s.to_string(),
            })?;
        self.say("Setting up Verlet run ...");
        self.say(&format!("  Unit style    : {}", u.name));
        self.say(&format!("  Current step  : {first}"));
        self.say(&format!("  Time step     : {}", cformat::g(self.world.dt(), 8)));
        self.say(&format!("  Platform      : {}; potential: {}; integrator: {}", engine.describe(threads), engine.potential_name(), if integrate { engine.integrator().name() } else { "none (no fix nve: atoms do not move)".into() }));
        let wants_vars = self.style.keys.iter().any(|k| k.starts_with("v_"));
        if let Some(h) = self.style.header() {
            self.say(&h);
        }
        let start = Instant::now();
        self.output(engine.as_mut(), &plan, 0.0, wants_vars, first)?;
        self.write_dumps(engine.as_mut(), first)?;
        let drive = Drive { last_step: last, moving: integrate, interrupt: None };
        let mut output = DeckOutput { deck: self, plan: &plan, start, wants_vars, last };
        match pool.install(|| crate::driver::drive(engine.as_mut(), first, &drive, &mut [&mut output])) {
            Ok(_) => {}
            Err(Stop::Observer(e)) => return Err(e),
            Err(Stop::Engine(e)) => return Err(format!("{e}{}", self.save_last_good(engine.as_mut(), threads))),
            Err(Stop::Interrupted(step)) => return Err(format!("interrupted at step {step}")),
        }
        let wall = start.elapsed().as_secs_f64();
        if integrate {
            let system = engine.system().map_err(|e| e.to_string())?.clone();
            self.world.absorb(&system);
            // The thermostat's and barostat's variables carry on into the next run.
            let state = engine.integrator().state();
            for f in &mut self.world.fixes {
                match &mut f.kind {
                    FixKind::Nh(nh) => nh.state = Some(state.clone()),
                    FixKind::Csvr(c) => c.state = Some(state.clone()),
                    _ => {}
                }
            }
        }
        self.world.step = last;
        let natoms = plan.system.len();
        self.say(&format!("Loop time of {} on {threads} thread(s) for {steps} steps with {natoms} atoms", cformat::g(wall, 6)));
        self.say("");
        if wall > 0.0 && steps > 0 {
            let per_s = steps as f64 / wall;
            let matom = per_s * natoms as f64 / 1e6;
            let dt = self.world.dt();
            let line = if u.name == "lj" {
                format!("Performance: {:.3} tau/day, {:.3} timesteps/s, {:.3} Matom-step/s", per_s * dt * 86400.0, per_s, matom)
            } else {
                let ns_per_day = per_s * dt * u.time * 1e-3 * 86400.0;
                format!("Performance: {ns_per_day:.3} ns/day, {:.3} hours/ns, {per_s:.3} timesteps/s, {matom:.3} Matom-step/s", 24.0 / ns_per_day)
            };
            self.say(&line);
        }
        // LAMMPS counts the builds during the run, not the one at its setup.
        self.say(&format!("Neighbor list builds = {}", engine.builds().saturating_sub(1)));
        self.say("");
        self.flush_log();
        Ok(())
    }

    /// After a blow-up: writes the state before the bad step next to the log, and says where.
    fn save_last_good(&mut self, engine: &mut dyn Engine, threads: usize) -> String {
        if self.options.sandbox.is_some() {
            return String::new(); // a sandboxed deck writes no files
        }
        match engine.last_good_checkpoint(threads) {
            Ok(chk) => {
                let path = PathBuf::from("mdrun.last-good.chk");
                match chk.write(&path) {
                    Ok(()) => format!("\nThe last good state (step {}) was saved to {}.", chk.step, path.display()),
                    Err(e) => format!("\nSaving the last good state failed too: {e}"),
                }
            }
            Err(e) => format!("\nThe last good state could not be read back: {e}"),
        }
    }

    /// Prints one thermo row of the engine's current state, at `step` (the engine's own step, or
    /// for a run without fix nve, where nothing moves, the deck's).
    pub(super) fn output(&mut self, engine: &mut dyn Engine, plan: &Plan, cpu: f64, wants_vars: bool, step: u64) -> Result<(), String> {
        let mut sample = engine.thermo();
        sample.step = step;
        let forces: Vec<[f64; 3]> = engine.forces().map(<[_]>::to_vec).unwrap_or_default();
        let gpu_forces = forces.is_empty();
        let mut state = self.state(plan, sample, &forces, cpu, engine.builds());
        {
            let integrator = engine.integrator().clone();
            let system = engine.system().map_err(|e| e.to_string())?;
            state.ecouple = integrator.coupling_energy(system);
            (state.lo, state.hi) = self.world.box_of(&system.cell);
            if let PotentialSpec::Pair(pair) = &plan.potential {
                state.etail = pair.tail_correction(&system.species_counts(), system.cell.volume()).0;
            }
        }
        self.current = Some(state);
        self.world.step = step;
        if wants_vars {
            // Formulas may look at atoms (xcm, vcm): bring them up to date.
            let system = engine.system().map_err(|e| e.to_string())?.clone();
            self.world.absorb(&system);
        }
        // Atoms past a fixed (non-periodic) face are lost, and LAMMPS stops (thermo_modify lost
        // error, its default).
        if self.world.periodic.contains(&false) {
            let system = engine.system().map_err(|e| e.to_string())?;
            let l = system.cell.lengths();
            let lost = system
                .positions
                .iter()
                .filter(|x| (0..3).any(|d| !self.world.periodic[d] && !(x[d] >= 0.0 && x[d] <= l[d])))
                .count();
            if lost > 0 {
                let n = system.len();
                return Err(format!("Lost atoms: original {n} current {} ({lost} left the box through a fixed boundary by step {})", n - lost, engine.step()));
            }
        }
        let keys = self.style.keys.clone();
        let mut values = Vec::with_capacity(keys.len());
        for k in &keys {
            if gpu_forces && (k == "fmax" || k == "fnorm") {
                return Err(format!("thermo keyword {k} is not available on the GPU platform"));
            }
            values.push(match k.strip_prefix("v_") {
                Some(v) => self.variable_value(v)?,
                None => self.keyword(k)?,
            });
        }
        let line = self.style.row(&values, cpu)?;
        self.say(&line);
        if self.flush {
            self.flush_log();
        }
        self.rows.push(ThermoRow { keys, values });
        Ok(())
    }

    fn write_dumps(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), String> {
        let due: Vec<usize> = (0..self.dumps.len())
            .filter(|&k| step % self.dumps[k].every == 0 && self.dumps[k].last != Some(step))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let system = engine.system().map_err(|e| e.to_string())?.clone();
        let forces: Option<Vec<[f64; 3]>> = engine.forces().map(<[_]>::to_vec);
        let mut view = self.world.clone();
        view.absorb(&system);
        for k in due {
            let d = &mut self.dumps[k];
            if d.style == "chemfiles" {
                let names: Vec<String> = (0..system.len()).map(|i| match &d.elements {
                    Some(e) => e[system.types[i] as usize].clone(),
                    None => system.species_name(i).to_string(),
                }).collect();
                let (lo, _) = view.require_box()?;
                let shift = lo.map(|x| x * view.units.length);
                let mut wrapped = system.clone();
                wrapped.wrap_positions();
                let moved = |p: &[[f64; 3]]| p.iter().map(|x| [x[0] + shift[0], x[1] + shift[1], x[2] + shift[2]]).collect::<Vec<_>>();
                let spec = crate::io::trajectory::TrajectorySpec {
                    path: d.path.clone(),
                    format: d.columns.first().cloned().unwrap_or_default(),
                    interval: d.every,
                    velocities: true,
                    wrap: true,
                };
                let frame = crate::io::trajectory::FrameData {
                    step,
                    time_ps: step as f64 * plan_dt(&view),
                    wrapped: moved(&wrapped.positions),
                    unwrapped: moved(&system.unwrapped_positions()),
                    velocities: Some(system.velocities.clone()),
                    cell: Some(*system.cell.vectors()),
                    outputs: vec![0],
                };
                let mut writer = crate::io::trajectory::TrajectoryWriter::start(vec![spec], names, d.opened).map_err(|e| format!("dump {}: {e}", d.id))?;
                writer.send(frame).map_err(|e| format!("dump {}: {e}", d.id))?;
                writer.finish().map_err(|e| format!("dump {}: {e}", d.id))?;
                d.opened = true;
                d.last = Some(step);
                continue;
            }
            super::data::write_dump(&view, step, &d.style, &d.columns, d.elements.as_deref(), &d.path, !d.opened, forces.as_deref())
                .map_err(|e| format!("dump {}: {e}", d.id))?;
            d.opened = true;
            d.last = Some(step);
        }
        Ok(())
    }
}

/// The deck's thermo rows (every `thermo` steps and at the last) and dumps (each at its own
/// interval), as one observer: both write through the deck.
struct DeckOutput<'a> {
    deck: &'a mut Deck,
    plan: &'a Plan,
    start: Instant,
    wants_vars: bool,
    last: u64,
}

impl DeckOutput<'_> {
    fn thermo_due(&self, step: u64) -> bool {
        step == self.last || (self.deck.thermo_every > 0 && step % self.deck.thermo_every == 0)
    }
}

impl Observer<String> for DeckOutput<'_> {
    fn next_step(&self, now: u64) -> Option<u64> {
        let every = self.deck.thermo_every;
        let thermo = if every > 0 { next_multiple(now, every) } else { self.last };
        self.deck.dumps.iter().map(|d| next_multiple(now, d.every)).chain([thermo]).min()
    }

    fn needs_energy(&self, step: u64) -> bool {
        self.thermo_due(step)
    }

    fn observe(&mut self, engine: &mut dyn Engine, step: u64) -> Result<(), String> {
        self.deck.world.step = step;
        if self.thermo_due(step) {
            self.deck.output(engine, self.plan, self.start.elapsed().as_secs_f64(), self.wants_vars, step)?;
        }
        if self.deck.dumps.iter().any(|d| step % d.every == 0) {
            self.deck.write_dumps(engine, step)?;
        }
        Ok(())
    }
}

/// The timestep of a world in ps.
fn plan_dt(w: &World) -> f64 {
    w.dt() * w.units.time
}
