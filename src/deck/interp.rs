//! The deck interpreter: reads commands one by one (with `label`/`jump`/`next` loops, `if`,
//! `include`), keeps variables, and applies each command to the [`World`]; `run N` turns the
//! world into a [`Plan`] and steps it with the engine, printing LAMMPS's thermo table.
//!
//! Every error names the file, the line and the command, and says what mdrun supports instead:
//! a deck never runs with a command silently skipped.

use super::cformat;
use super::expr::{self, Context};
use super::script::{self, Script};
use super::thermo_out::{self, ThermoState, ThermoStyle};
use super::world::{self, Fix, FixKind, Mix, Pair, World, int, num, yes_no};
use crate::plan::{Plan, Platform, PotentialSpec};
use crate::potential::lj::LjPair;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A deck error, located.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}: {command}: {message}")]
pub struct DeckError {
    pub file: String,
    pub line: usize,
    pub command: String,
    pub message: String,
}

/// Where echoed input goes (LAMMPS `-echo` and `echo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    None,
    Screen,
    Log,
    Both,
}

impl Echo {
    pub fn parse(s: &str) -> Option<Echo> {
        Some(match s {
            "none" => Echo::None,
            "screen" => Echo::Screen,
            "log" => Echo::Log,
            "both" => Echo::Both,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct DeckOptions {
    /// `-var name value...`: index variables defined before the deck runs.
    pub vars: Vec<(String, Vec<String>)>,
    /// `-log`: None for `none`.
    pub log: Option<PathBuf>,
    /// `-screen none` turns the screen output off.
    pub screen: bool,
    pub echo: Echo,
    pub platform: Platform,
    pub threads: Option<usize>,
    /// Bounds for untrusted decks (the fuzzer): no file access, and caps on work.
    pub sandbox: Option<Sandbox>,
}

/// What a sandboxed deck may do: no command reads or writes files, and the work is capped.
#[derive(Clone, Copy, Debug)]
pub struct Sandbox {
    pub max_commands: u64,
    pub max_atoms: usize,
    pub max_steps: u64,
    /// Longest pair cutoff, in the deck's units.
    pub max_cutoff: f64,
}

impl Default for DeckOptions {
    fn default() -> Self {
        DeckOptions { vars: Vec::new(), log: None, screen: true, echo: Echo::Log, platform: Platform::Cpu, threads: None, sandbox: None }
    }
}

#[derive(Clone, Debug)]
enum Var {
    Index { values: Vec<String>, at: usize },
    Loop { last: i64, at: i64, pad: usize },
    Equal(String),
    Str(String),
    Internal(f64),
    Format { var: String, format: String },
    Getenv(String),
}

struct Frame {
    script: Script,
    pc: usize,
}

/// A LAMMPS text dump.
#[derive(Clone, Debug)]
struct Dump {
    id: String,
    style: String,
    every: u64,
    path: PathBuf,
    columns: Vec<String>,
    sort: bool,
    elements: Option<Vec<String>>,
    last: Option<u64>,
    opened: bool,
}

/// One printed thermo row: keywords and values (deck units), kept for tests and `convert`.
#[derive(Clone, Debug)]
pub struct ThermoRow {
    pub keys: Vec<String>,
    pub values: Vec<f64>,
}

/// Why reading stopped early.
enum Flow {
    Quit,
    /// `convert`: stopped at the first run, its plan taken.
    Captured,
}

pub struct Deck {
    options: DeckOptions,
    log: Option<std::io::BufWriter<std::fs::File>>,
    echo: Echo,
    vars: BTreeMap<String, Var>,
    stack: Vec<Frame>,
    jump_skip: bool,
    label_search: Option<(String, String, usize)>,
    pub world: World,
    thermo_every: u64,
    style: ThermoStyle,
    norm: Option<bool>,
    flush: bool,
    dumps: Vec<Dump>,
    /// The thermo quantities of the current state, if known.
    current: Option<ThermoState>,
    eval_depth: usize,
    /// Steps of the current (or last) run, for ramp().
    run_bounds: (u64, u64),
    /// Every thermo row printed.
    pub rows: Vec<ThermoRow>,
    /// With `capture`: the plan of the first run and the line it was on.
    pub capture: bool,
    pub captured: Option<(Plan, usize)>,
    /// Commands that followed the captured run (for `convert`'s warning).
    pub after_capture: Vec<String>,
    where_: (String, usize),
    commands_run: u64,
}

const MAX_EVAL_DEPTH: usize = 64;

impl Deck {
    pub fn new(options: DeckOptions) -> Result<Deck, String> {
        let log = match &options.log {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("cannot open the log file {}: {e}", p.display()))?,
            )),
            None => None,
        };
        let mut vars = BTreeMap::new();
        for (name, values) in &options.vars {
            if values.is_empty() {
                return Err(format!("-var {name}: needs at least one value"));
            }
            vars.insert(name.clone(), Var::Index { values: values.clone(), at: 0 });
        }
        Ok(Deck {
            echo: options.echo,
            options,
            log,
            vars,
            stack: Vec::new(),
            jump_skip: false,
            label_search: None,
            world: World::new(),
            thermo_every: 0,
            style: ThermoStyle::default(),
            norm: None,
            flush: false,
            dumps: Vec::new(),
            current: None,
            eval_depth: 0,
            run_bounds: (0, 0),
            rows: Vec::new(),
            capture: false,
            captured: None,
            after_capture: Vec::new(),
            where_: (String::new(), 0),
            commands_run: 0,
        })
    }

    /// A line to the screen and the log.
    fn say(&mut self, line: &str) {
        if self.options.screen {
            println!("{line}");
        }
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{line}");
        }
    }

    fn flush_log(&mut self) {
        if let Some(log) = &mut self.log {
            let _ = log.flush();
        }
    }

    /// Runs a deck file to its end.
    pub fn run_file(&mut self, path: &Path) -> Result<(), DeckError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeckError {
            file: path.display().to_string(),
            line: 0,
            command: "-in".into(),
            message: format!("cannot read the input script: {e}"),
        })?;
        self.run_text(path, &text)
    }

    pub fn run_text(&mut self, path: &Path, text: &str) -> Result<(), DeckError> {
        self.say(&format!("mdrun {} (LAMMPS-style input, lj/metal/real units)", env!("CARGO_PKG_VERSION")));
        self.stack.push(Frame { script: Script::from_text(path, text), pc: 0 });
        let result = self.read_loop();
        self.flush_log();
        match result {
            Ok(()) | Err(Ok(Flow::Quit)) | Err(Ok(Flow::Captured)) => Ok(()),
            Err(Err(e)) => Err(e),
        }
    }

    fn read_loop(&mut self) -> Result<(), Result<Flow, DeckError>> {
        loop {
            let Some(frame) = self.stack.last_mut() else { break };
            let Some((text, next)) = frame.script.logical_line(frame.pc) else {
                if let Some((label, file, line)) = self.label_search.take() {
                    return Err(Err(DeckError { file, line, command: "jump".into(), message: format!("label '{label}' not found in the script") }));
                }
                self.stack.pop();
                continue;
            };
            let line_no = frame.pc + 1;
            frame.pc = next;
            let file = frame.script.path.display().to_string();
            if let Some((label, _, _)) = &self.label_search {
                let words = script::words(script::strip_comment(&text)).unwrap_or_default();
                if words.len() >= 2 && words[0] == "label" && &words[1] == label {
                    self.label_search = None;
                }
                continue;
            }
            if self.captured.is_some() {
                let t = script::strip_comment(&text).trim().to_string();
                if !t.is_empty() {
                    self.after_capture.push(t);
                }
                continue;
            }
            self.where_ = (file.clone(), line_no);
            match self.execute(&text) {
                Ok(()) => {}
                // The rest of the deck is only listed (for convert's note).
                Err(Ok(Flow::Captured)) => {}
                Err(Ok(flow)) => return Err(Ok(flow)),
                Err(Err((command, message))) => {
                    return Err(Err(DeckError { file, line: line_no, command, message }));
                }
            }
        }
        Ok(())
    }

    /// One command line: comment stripped, variables substituted, split, dispatched.
    fn execute(&mut self, text: &str) -> Result<(), Result<Flow, (String, String)>> {
        let stripped = script::strip_comment(text);
        let first = stripped.split_whitespace().next().unwrap_or("").to_string();
        let fail = |m: String| Err(Err((first.clone(), m)));
        let substituted = match self.substitute(stripped, false) {
            Ok(s) => s,
            Err(m) => return fail(m),
        };
        let words = match script::words(&substituted) {
            Ok(w) => w,
            Err(m) => return fail(m),
        };
        if words.is_empty() {
            return Ok(());
        }
        if matches!(self.echo, Echo::Screen | Echo::Both) && self.options.screen {
            println!("{}", substituted.trim());
        }
        if matches!(self.echo, Echo::Log | Echo::Both)
            && let Some(log) = &mut self.log
        {
            let _ = writeln!(log, "{}", substituted.trim());
        }
        let command = words[0].clone();
        if let Some(sb) = self.options.sandbox {
            self.commands_run += 1;
            if self.commands_run > sb.max_commands {
                return Err(Err((command, format!("sandbox: more than {} commands", sb.max_commands))));
            }
            if let Err(m) = self.sandbox_check(&command, &words[1..], sb) {
                return Err(Err((command, m)));
            }
        }
        match self.command(&command, &words[1..]) {
            Ok(()) => Ok(()),
            Err(Ok(flow)) => Err(Ok(flow)),
            Err(Err(m)) => Err(Err((command, m))),
        }
    }

    fn substitute(&mut self, text: &str, everywhere: bool) -> Result<String, String> {
        // The closures need the deck; take what they need by value and evaluate through self.
        let mut lookups: Vec<Result<String, String>> = Vec::new();
        let names: std::cell::RefCell<Vec<(bool, String)>> = Default::default();
        // First pass: collect the variables and formulas in order, then evaluate them, then
        // substitute. (A formula may look at other variables, so evaluation needs &mut self.)
        let _ = script::substitute(
            text,
            everywhere,
            &mut |n| {
                names.borrow_mut().push((false, n.to_string()));
                Ok(String::new())
            },
            &mut |f| {
                names.borrow_mut().push((true, f.to_string()));
                Ok(0.0)
            },
        )?;
        let mut immediates = Vec::new();
        for (is_formula, n) in names.into_inner() {
            if is_formula {
                immediates.push(self.evaluate(&n));
            } else {
                lookups.push(self.variable_text(&n));
            }
        }
        let mut lookups = lookups.into_iter();
        let mut immediates = immediates.into_iter();
        script::substitute(
            text,
            everywhere,
            &mut |_| lookups.next().expect("same order"),
            &mut |_| immediates.next().expect("same order"),
        )
    }

    fn variable_text(&mut self, name: &str) -> Result<String, String> {
        self.eval_depth += 1;
        if self.eval_depth > MAX_EVAL_DEPTH {
            self.eval_depth = 0;
            return Err(format!("variable '{name}' refers to itself (directly or through others)"));
        }
        let r = self.variable_text_inner(name);
        self.eval_depth = self.eval_depth.saturating_sub(1);
        r
    }

    fn variable_text_inner(&mut self, name: &str) -> Result<String, String> {
        let var = self.vars.get(name).cloned().ok_or_else(|| format!("variable '{name}' is not defined"))?;
        Ok(match var {
            Var::Index { values, at } => values[at].clone(),
            Var::Loop { at, pad, .. } => format!("{at:0pad$}"),
            Var::Str(s) => s,
            Var::Getenv(n) => std::env::var(&n).unwrap_or_default(),
            Var::Internal(x) => cformat::g(x, 15),
            Var::Equal(f) => cformat::g(self.nested(name, &f)?, 15),
            Var::Format { var, format } => {
                let x = self.variable_value(&var)?;
                cformat::printf(&format, x)?
            }
        })
    }

    fn nested(&mut self, name: &str, formula: &str) -> Result<f64, String> {
        self.eval_depth += 1;
        if self.eval_depth > MAX_EVAL_DEPTH {
            self.eval_depth = 0;
            return Err(format!("variable '{name}' refers to itself (directly or through others)"));
        }
        let r = self.evaluate(formula).map_err(|e| format!("variable '{name}': {e}"));
        self.eval_depth = self.eval_depth.saturating_sub(1);
        r
    }

    /// The numeric value of a variable (for `v_name`).
    fn variable_value(&mut self, name: &str) -> Result<f64, String> {
        let var = self.vars.get(name).cloned().ok_or_else(|| format!("variable '{name}' is not defined"))?;
        match var {
            Var::Equal(f) => self.nested(name, &f),
            Var::Internal(x) => Ok(x),
            _ => {
                let text = self.variable_text(name)?;
                text.trim().parse::<f64>().map_err(|_| format!("variable '{name}' = '{text}' is not a number"))
            }
        }
    }

    pub fn evaluate(&mut self, formula: &str) -> Result<f64, String> {
        let mut ctx = Eval { deck: self };
        expr::evaluate(formula, &mut ctx)
    }

    fn norm(&self) -> bool {
        self.norm.unwrap_or(self.world.units.default_norm())
    }

    /// A thermo keyword of the current state; computes the state if no run left it.
    fn keyword(&mut self, key: &str) -> Result<f64, String> {
        // Keywords of the box and the step need no force evaluation.
        if self.current.is_none() {
            let w = &self.world;
            let bounds = w.bounds;
            let len = |d: usize| bounds.map(|(lo, hi)| hi[d] - lo[d]);
            let simple = match key {
                "step" => Some(Some(w.step as f64)),
                "atoms" => Some(Some(w.atoms.len() as f64)),
                "dt" => Some(Some(w.dt())),
                "time" => Some(Some(w.step as f64 * w.dt())),
                "vol" => Some(bounds.map(|_| len(0).unwrap() * len(1).unwrap() * len(2).unwrap())),
                "lx" | "ly" | "lz" => Some(len((key.as_bytes()[1] - b'x') as usize)),
                "xlo" | "ylo" | "zlo" => Some(bounds.map(|b| b.0[(key.as_bytes()[0] - b'x') as usize])),
                "xhi" | "yhi" | "zhi" => Some(bounds.map(|b| b.1[(key.as_bytes()[0] - b'x') as usize])),
                _ => None,
            };
            if let Some(v) = simple {
                return v.ok_or_else(|| format!("thermo keyword {key} needs the simulation box"));
            }
        }
        if self.current.is_none() {
            self.current = Some(self.evaluate_state()?);
        }
        let state = self.current.as_ref().expect("just set");
        let lattice = self.world.lattice.as_ref().map(|l| l.spacing);
        match thermo_out::value(state, key, &self.world.units, self.norm(), lattice) {
            Some(r) => r,
            None => Err(format!("unknown thermo keyword '{key}'; mdrun knows {}", thermo_out::KEYWORDS)),
        }
    }

    /// Thermo quantities of the world as it stands (a force evaluation on the CPU).
    fn evaluate_state(&mut self) -> Result<ThermoState, String> {
        let plan = self.plan(0)?;
        let sim = crate::simulation::Simulation::new(
            plan.system.clone(),
            plan.potential.instantiate(&plan.system.species)?,
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

    fn state(&self, plan: &Plan, sample: crate::thermo::ThermoSample, forces: &[[f64; 3]], cpu: f64, nbuild: u64) -> ThermoState {
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
            PotentialSpec::LennardJones { pairs, shift, tail: true } => {
                let lj = crate::potential::lj::LennardJones::new(plan.system.species.len(), pairs.clone(), *shift, true);
                lj.tail_correction(&plan.system.species_counts(), plan.system.cell.volume()).0
            }
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
            run_last: self.run_bounds.1,
            nbuild,
        }
    }

    /// The world as a plan for a run of `steps` steps from the current step.
    pub fn plan(&self, steps: u64) -> Result<Plan, String> {
        let w = &self.world;
        let u = w.units;
        let system = w.system()?;
        let potential = match &w.pair {
            None => return Err("no pair style: pair_style and pair_coeff come before run".into()),
            Some(Pair::LjCut { coeffs, .. }) => {
                let n = w.ntypes;
                let get = |i: usize, j: usize| coeffs.get(&(i.min(j), i.max(j))).copied();
                let mut pairs = Vec::with_capacity(n * n);
                for i in 1..=n {
                    for j in 1..=n {
                        let c = match get(i, j) {
                            Some(c) => c,
                            None => {
                                let (Some(a), Some(b)) = (get(i, i), get(j, j)) else {
                                    return Err(format!("pair coefficients for types {} {} are not set (pair_coeff)", i.min(j), i.max(j)));
                                };
                                mix(w.mix, a, b)
                            }
                        };
                        pairs.push(LjPair { epsilon: c.0 * u.energy, sigma: c.1 * u.length, cutoff: c.2 * u.length });
                    }
                }
                PotentialSpec::LennardJones { pairs, shift: w.shift, tail: w.tail }
            }
            Some(Pair::Mcgm { model }) => {
                if w.type_names.iter().any(Option::is_none) {
                    return Err("pair_style mcgm: name the element of every atom type with pair_coeff * * El1 El2 ...".into());
                }
                PotentialSpec::Mcgm { model: model.clone() }
            }
        };
        let nve = w.fixes.iter().any(|f| f.kind == FixKind::Nve);
        let langevin = w.fixes.iter().find_map(|f| match &f.kind {
            FixKind::Langevin { t_start, t_stop, damp, seed, zero } => Some((*t_start, *t_stop, *damp, *seed, *zero)),
            _ => None,
        });
        let integrator = match langevin {
            Some(_) if !nve => return Err("fix langevin adds forces only; add fix nve to integrate (as in LAMMPS)".into()),
            Some((t, _, damp, seed, zero)) => crate::integrate::Integrator::Langevin { temperature: t * u.temperature, damping: damp * u.time, seed: seed as u64, zero },
            None => crate::integrate::Integrator::VelocityVerlet,
        };
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
            platform: self.options.platform,
            thermo_interval: if self.thermo_every > 0 { self.thermo_every } else { steps.max(1) },
            log: PathBuf::from("thermo.log"),
            checkpoint: PathBuf::from("checkpoint.chk"),
            checkpoint_interval: None,
            trajectories: Vec::new(),
            analysis: None,
            replicas: 1,
            velocity_seed: None,
            replica_systems: Vec::new(),
        })
    }

    /// A state-changing command: the cached thermo state no longer holds.
    fn changed(&mut self) {
        self.current = None;
    }

    fn command(&mut self, name: &str, args: &[String]) -> Result<(), Result<Flow, String>> {
        let r: Result<(), String> = match name {
            // The script language.
            "variable" => self.variable(args),
            "print" => self.print(args),
            "label" => Ok(()),
            "jump" => return self.jump(args),
            "next" => self.next(args),
            "include" => self.include(args),
            "if" => return self.if_cmd(args),
            "clear" => {
                self.world = World::new();
                self.thermo_every = 0;
                self.style = ThermoStyle::default();
                self.norm = None;
                self.dumps.clear();
                self.changed();
                Ok(())
            }
            "quit" => return Err(Ok(Flow::Quit)),
            "log" => self.log_cmd(args),
            "echo" => match args {
                [s] => Echo::parse(s).map(|e| self.echo = e).ok_or_else(|| "expected none, screen, log or both".to_string()),
                _ => Err("expected: echo none|screen|log|both".into()),
            },
            // Setup.
            "units" => self.world.units_cmd(args),
            "atom_style" => self.world.atom_style(args),
            "dimension" => match args {
                [d] if d == "3" => Ok(()),
                _ => Err("mdrun simulates in 3 dimensions only".into()),
            },
            "boundary" => self.world.boundary(args),
            "lattice" => self.world.lattice_cmd(args).map(|()| {
                if let Some(l) = &self.world.lattice {
                    let s = l.spacing;
                    self.say(&format!("Lattice spacing in x,y,z = {} {} {}", cformat::g(s[0], 8), cformat::g(s[1], 8), cformat::g(s[2], 8)));
                }
            }),
            "region" => self.world.region(args),
            "create_box" => self.world.create_box(args).map(|()| {
                let (lo, hi) = self.world.bounds.expect("box");
                self.say(&format!(
                    "Created orthogonal box = ({} {} {}) to ({} {} {})",
                    cformat::g(lo[0], 8), cformat::g(lo[1], 8), cformat::g(lo[2], 8), cformat::g(hi[0], 8), cformat::g(hi[1], 8), cformat::g(hi[2], 8)
                ));
            }),
            "create_atoms" => {
                let cap = self.max_atoms();
                self.world.create_atoms(args, cap).map(|n| self.say(&format!("Created {n} atoms")))
            }
            "read_data" => super::data::read_data(&mut self.world, args).map(|n| self.say(&format!("  {n} atoms read"))),
            "write_data" => super::data::write_data(&self.world, args),
            "mass" => self.world.mass(args),
            "replicate" => {
                let cap = self.max_atoms();
                self.world.replicate(args, cap).map(|()| self.say(&format!("  {} atoms after replicate", self.world.atoms.len())))
            }
            "velocity" => self.world.velocity(args),
            "displace_atoms" => self.world.displace_atoms(args),
            // Force field.
            "pair_style" => self.pair_style(args),
            "pair_coeff" => self.pair_coeff(args),
            "pair_modify" => self.pair_modify(args),
            "neighbor" => self.neighbor(args),
            "neigh_modify" => self.neigh_modify(args),
            // Run.
            "fix" => self.fix(args),
            "unfix" => match args {
                [id] => {
                    let before = self.world.fixes.len();
                    self.world.fixes.retain(|f| &f.id != id);
                    if self.world.fixes.len() == before { Err(format!("no fix with ID '{id}'")) } else { Ok(()) }
                }
                _ => Err("expected: unfix ID".into()),
            },
            "timestep" => match args {
                [dt] => num(dt, "timestep").and_then(|dt| {
                    if dt > 0.0 {
                        self.world.dt = Some(dt);
                        Ok(())
                    } else {
                        Err("timestep must be positive".into())
                    }
                }),
                _ => Err("expected: timestep dt".into()),
            },
            "reset_timestep" => match args {
                [n] => int(n, "step").and_then(|n| if n < 0 { Err("step must not be negative".into()) } else { self.world.step = n as u64; Ok(()) }),
                _ => Err("expected: reset_timestep N".into()),
            },
            "thermo" => match args {
                [n] => int(n, "thermo interval").and_then(|n| {
                    if n < 0 {
                        Err("thermo interval must not be negative".into())
                    } else {
                        self.thermo_every = n as u64;
                        Ok(())
                    }
                }),
                _ => Err("expected: thermo N".into()),
            },
            "thermo_style" => self.thermo_style(args),
            "thermo_modify" => self.thermo_modify(args),
            "dump" => self.dump(args),
            "undump" => match args {
                [id] => {
                    let before = self.dumps.len();
                    self.dumps.retain(|d| &d.id != id);
                    if self.dumps.len() == before { Err(format!("no dump with ID '{id}'")) } else { Ok(()) }
                }
                _ => Err("expected: undump ID".into()),
            },
            "dump_modify" => self.dump_modify(args),
            "write_restart" => self.write_restart(args),
            "read_restart" => self.read_restart(args),
            "run" => return self.run(args),
            "atom_modify" | "newton" | "processors" | "comm_modify" => {
                self.say(&format!("note: {name} {} has no effect in mdrun (one process, full neighbour handling)", args.join(" ")));
                Ok(())
            }
            _ => Err(unsupported(name)),
        };
        r.map_err(Err)
    }

    fn variable(&mut self, args: &[String]) -> Result<(), String> {
        let [name, style, rest @ ..] = args else { return Err("expected: variable name style args".into()) };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
            return Err(format!("variable name '{name}' may hold only letters, digits and _"));
        }
        let need = |n: usize| if rest.len() < n { Err(format!("variable {style} needs {n} argument(s)")) } else { Ok(()) };
        let var = match style.as_str() {
            "delete" => {
                self.vars.remove(name);
                return Ok(());
            }
            // index and loop variables that exist already are kept (so -var wins).
            "index" => {
                need(1)?;
                if self.vars.contains_key(name) {
                    return Ok(());
                }
                Var::Index { values: rest.to_vec(), at: 0 }
            }
            "loop" => {
                need(1)?;
                if self.vars.contains_key(name) {
                    return Ok(());
                }
                let mut args: Vec<&String> = rest.iter().collect();
                let pad = args.last().is_some_and(|a| *a == "pad");
                if pad {
                    args.pop();
                }
                let (first, last) = match args.as_slice() {
                    [n] => (1, int(n, "loop count")?),
                    [a, b] => (int(a, "loop start")?, int(b, "loop end")?),
                    _ => return Err("variable loop: expected N, or N1 N2, and optionally pad".into()),
                };
                if first > last || last < 1 {
                    return Err(format!("variable loop: empty range {first}..{last}"));
                }
                let width = if pad { last.to_string().len() } else { 0 };
                Var::Loop { last, at: first, pad: width }
            }
            "equal" => {
                need(1)?;
                Var::Equal(rest.join(" "))
            }
            "string" => {
                need(1)?;
                Var::Str(rest.join(" "))
            }
            "internal" => {
                need(1)?;
                Var::Internal(num(&rest[0], "internal value")?)
            }
            "getenv" => {
                need(1)?;
                Var::Getenv(rest[0].clone())
            }
            "format" => {
                need(2)?;
                cformat::printf(&rest[1], 1.0)?;
                Var::Format { var: rest[0].clone(), format: rest[1].clone() }
            }
            other => {
                return Err(format!(
                    "variable style '{other}' is not supported; mdrun supports index, loop, equal, string, internal, getenv, format, delete"
                ));
            }
        };
        self.vars.insert(name.clone(), var);
        Ok(())
    }

    fn print(&mut self, args: &[String]) -> Result<(), String> {
        let text = args.first().ok_or("expected: print \"text\"")?;
        let text = self.substitute(text, true)?;
        let mut screen = true;
        let mut file: Option<(String, bool)> = None;
        for (k, v) in world::pairs(&args[1..], "print")? {
            match k {
                "screen" => screen = yes_no(v, "print screen")?,
                "file" => file = Some((v.to_string(), false)),
                "append" => file = Some((v.to_string(), true)),
                "universe" => {}
                other => return Err(format!("unknown print keyword '{other}'; expected file, append, screen")),
            }
        }
        if let Some((path, append)) = file {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&path)
                .map_err(|e| format!("cannot open {path}: {e}"))?;
            writeln!(f, "{text}").map_err(|e| format!("cannot write {path}: {e}"))?;
        }
        if screen && self.options.screen {
            println!("{text}");
        }
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{text}");
        }
        Ok(())
    }

    fn jump(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
        let [file, rest @ ..] = args else { return Err(Err("expected: jump file|SELF [label]".into())) };
        if self.jump_skip {
            self.jump_skip = false;
            return Ok(());
        }
        let label = rest.first().cloned();
        if rest.len() > 1 {
            return Err(Err("expected: jump file|SELF [label]".into()));
        }
        let current = self.stack.last().expect("a frame").script.path.clone();
        let same = file == "SELF" || Path::new(file) == current;
        if same {
            self.stack.last_mut().expect("frame").pc = 0;
        } else {
            let path = resolve(file, &current);
            let text = std::fs::read_to_string(&path).map_err(|e| Err(format!("cannot read {}: {e}", path.display())))?;
            let frame = self.stack.last_mut().expect("frame");
            *frame = Frame { script: Script::from_text(&path, &text), pc: 0 };
        }
        if let Some(label) = label {
            self.label_search = Some((label, self.where_.0.clone(), self.where_.1));
        }
        Ok(())
    }

    fn next(&mut self, args: &[String]) -> Result<(), String> {
        if args.is_empty() {
            return Err("expected: next variable...".into());
        }
        let mut exhausted = false;
        for name in args {
            let var = self.vars.get_mut(name).ok_or_else(|| format!("variable '{name}' is not defined"))?;
            let done = match var {
                Var::Index { values, at } => {
                    *at += 1;
                    *at >= values.len()
                }
                Var::Loop { last, at, .. } => {
                    *at += 1;
                    *at > *last
                }
                _ => return Err(format!("next: variable '{name}' is not an index or loop variable")),
            };
            if done {
                self.vars.remove(name);
                exhausted = true;
            }
        }
        if exhausted {
            self.jump_skip = true;
        }
        Ok(())
    }

    fn include(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: include file".into()) };
        if self.stack.len() > 32 {
            return Err("include nested more than 32 deep".into());
        }
        let current = self.stack.last().expect("frame").script.path.clone();
        let path = resolve(file, &current);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.stack.push(Frame { script: Script::from_text(&path, &text), pc: 0 });
        Ok(())
    }

    fn if_cmd(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
        let bad = || Err(Err("expected: if \"condition\" then \"command\" ... [elif \"condition\" \"command\" ...] [else \"command\" ...]".to_string()));
        if args.len() < 3 || args[1] != "then" {
            return bad();
        }
        // Branches: (condition or None for else, commands).
        let mut branches: Vec<(Option<String>, Vec<String>)> = vec![(Some(args[0].clone()), Vec::new())];
        let mut i = 2;
        while i < args.len() {
            match args[i].as_str() {
                "elif" => {
                    let c = args.get(i + 1).ok_or("elif needs a condition").map_err(|e| Err(e.to_string()))?;
                    branches.push((Some(c.clone()), Vec::new()));
                    i += 2;
                }
                "else" => {
                    branches.push((None, Vec::new()));
                    i += 1;
                }
                _ => {
                    branches.last_mut().expect("branch").1.push(args[i].clone());
                    i += 1;
                }
            }
        }
        for (cond, commands) in branches {
            let take = match cond {
                None => true,
                Some(c) => {
                    let text = self.substitute(&c, true).map_err(Err)?;
                    self.evaluate(&text).map_err(Err)? != 0.0
                }
            };
            if take {
                for c in commands {
                    match self.execute(&c) {
                        Ok(()) => {}
                        Err(Ok(flow)) => return Err(Ok(flow)),
                        Err(Err((cmd, m))) => return Err(Err(format!("in the if branch, {cmd}: {m}"))),
                    }
                }
                break;
            }
        }
        Ok(())
    }

    fn log_cmd(&mut self, args: &[String]) -> Result<(), String> {
        let [file, rest @ ..] = args else { return Err("expected: log file [append]".into()) };
        let append = match rest {
            [] => false,
            [a] if a == "append" => true,
            _ => return Err("expected: log file [append]".into()),
        };
        self.flush_log();
        if file == "none" {
            self.log = None;
            return Ok(());
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(file)
            .map_err(|e| format!("cannot open the log file {file}: {e}"))?;
        self.log = Some(std::io::BufWriter::new(f));
        Ok(())
    }

    fn pair_style(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        match args {
            [s, c] if s == "lj/cut" => {
                let cutoff = num(c, "global cutoff")?;
                if cutoff <= 0.0 {
                    return Err("cutoff must be positive".into());
                }
                // A new global cutoff applies to coefficients set without their own (LAMMPS
                // resets them all); mdrun sets it for those that used the old global one.
                let coeffs = match &w.pair {
                    Some(Pair::LjCut { cutoff: old, coeffs }) => coeffs
                        .iter()
                        .map(|(k, &(e, s, c))| (*k, (e, s, if c == *old { cutoff } else { c })))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                w.pair = Some(Pair::LjCut { cutoff, coeffs });
            }
            [s] if s == "lj/cut" => return Err("pair_style lj/cut needs a global cutoff".into()),
            [s, model] if s == "mcgm" => {
                let current = self.stack.last().map(|f| f.script.path.clone()).unwrap_or_default();
                let path = resolve(model, &current);
                w.pair = Some(Pair::Mcgm { model: path });
            }
            [s, ..] => {
                return Err(format!("pair style '{s}' (with these arguments) is not supported; mdrun supports lj/cut Rc and mcgm MODEL-FILE"));
            }
            [] => return Err("expected: pair_style style args".into()),
        }
        self.changed();
        Ok(())
    }

    fn pair_coeff(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        let n = w.ntypes;
        if n == 0 {
            return Err("pair_coeff comes after the box is defined".into());
        }
        match &mut w.pair {
            None => return Err("pair_coeff comes after pair_style".into()),
            Some(Pair::Mcgm { .. }) => {
                if args.len() != 2 + n || args[0] != "*" || args[1] != "*" {
                    return Err(format!("pair_style mcgm: expected pair_coeff * * followed by one element per atom type ({n})"));
                }
                for t in 0..n {
                    if crate::elements::atomic_number(&args[2 + t]).is_none() {
                        return Err(format!("'{}' is not an element symbol", args[2 + t]));
                    }
                    w.type_names[t] = Some(args[2 + t].clone());
                }
            }
            Some(Pair::LjCut { cutoff, coeffs }) => {
                if args.len() != 4 && args.len() != 5 {
                    return Err("pair_style lj/cut: expected pair_coeff I J epsilon sigma [cutoff]".into());
                }
                let eps = num(&args[2], "epsilon")?;
                let sigma = num(&args[3], "sigma")?;
                let cut = match args.get(4) {
                    Some(c) => num(c, "cutoff")?,
                    None => *cutoff,
                };
                if eps < 0.0 || sigma <= 0.0 || cut <= 0.0 {
                    return Err("epsilon must not be negative; sigma and cutoff must be positive".into());
                }
                let ri = world::type_range(&args[0], n)?;
                let rj = world::type_range(&args[1], n)?;
                let mut set = 0;
                for i in ri {
                    for j in rj.clone() {
                        if j >= i {
                            coeffs.insert((i, j), (eps, sigma, cut));
                            set += 1;
                        }
                    }
                }
                if set == 0 {
                    return Err(format!("pair_coeff {} {} sets no pair (the first type must not exceed the second)", args[0], args[1]));
                }
            }
        }
        self.changed();
        Ok(())
    }

    fn pair_modify(&mut self, args: &[String]) -> Result<(), String> {
        for (k, v) in world::pairs(args, "pair_modify")? {
            match k {
                "shift" => self.world.shift = yes_no(v, "shift")?,
                "tail" => self.world.tail = yes_no(v, "tail")?,
                "mix" => {
                    self.world.mix = match v {
                        "geometric" => Mix::Geometric,
                        "arithmetic" => Mix::Arithmetic,
                        "sixthpower" => Mix::Sixthpower,
                        _ => return Err(format!("mix '{v}': expected geometric, arithmetic or sixthpower")),
                    }
                }
                other => return Err(format!("pair_modify keyword '{other}' is not supported; mdrun supports shift, mix, tail")),
            }
        }
        self.changed();
        Ok(())
    }

    fn neighbor(&mut self, args: &[String]) -> Result<(), String> {
        let [skin, style] = args else { return Err("expected: neighbor skin bin".into()) };
        if style != "bin" && style != "nsq" {
            return Err(format!("neighbor style '{style}' is not supported; mdrun builds cell lists (bin)"));
        }
        let skin = num(skin, "skin")?;
        if skin < 0.0 {
            return Err("skin must not be negative".into());
        }
        self.world.skin = Some(skin);
        Ok(())
    }

    fn neigh_modify(&mut self, args: &[String]) -> Result<(), String> {
        for (k, v) in world::pairs(args, "neigh_modify")? {
            match k {
                "every" => {
                    let n = int(v, "every")?;
                    if n < 1 {
                        return Err("every must be positive".into());
                    }
                    self.world.every = n as u64;
                }
                "delay" => {
                    let n = int(v, "delay")?;
                    if n < 0 {
                        return Err("delay must not be negative".into());
                    }
                    self.world.delay = n as u64;
                }
                "check" => self.world.check = yes_no(v, "check")?,
                "one" | "page" => {
                    int(v, k)?;
                }
                other => return Err(format!("neigh_modify keyword '{other}' is not supported; mdrun supports every, delay, check (one, page are accepted)")),
            }
        }
        Ok(())
    }

    fn fix(&mut self, args: &[String]) -> Result<(), String> {
        let [id, group, style, rest @ ..] = args else { return Err("expected: fix ID group style args".into()) };
        if group != "all" {
            return Err(format!("group '{group}': mdrun supports the group all only"));
        }
        let kind = match style.as_str() {
            "nve" if rest.is_empty() => FixKind::Nve,
            "langevin" => {
                if rest.len() < 4 {
                    return Err("fix langevin needs Tstart Tstop damp seed".into());
                }
                let t_start = num(&rest[0], "Tstart")?;
                let t_stop = num(&rest[1], "Tstop")?;
                let damp = num(&rest[2], "damp")?;
                let seed = int(&rest[3], "seed")?;
                if t_start != t_stop {
                    return Err("fix langevin: mdrun holds one temperature (Tstart must equal Tstop)".into());
                }
                if damp <= 0.0 || seed <= 0 || t_start < 0.0 {
                    return Err("fix langevin: damp and seed must be positive, the temperature not negative".into());
                }
                let mut zero = false;
                for (k, v) in world::pairs(&rest[4..], "fix langevin")? {
                    match k {
                        "zero" => zero = yes_no(v, "zero")?,
                        _ => return Err(format!("fix langevin keyword '{k}' is not supported; mdrun supports zero")),
                    }
                }
                FixKind::Langevin { t_start, t_stop, damp, seed, zero }
            }
            "nvt" | "npt" | "nph" | "nve/limit" | "momentum" | "recenter" | "temp/rescale" | "temp/berendsen" | "press/berendsen" | "spring" | "setforce" | "addforce" | "wall/reflect" | "deform" | "box/relax" | "shake" | "rattle" => {
                return Err(format!("fix {style} is not supported; mdrun supports fix nve and fix langevin (with nve)"));
            }
            other => return Err(format!("fix style '{other}' is not supported; mdrun supports nve and langevin")),
        };
        self.world.fixes.retain(|f| &f.id != id);
        if matches!(kind, FixKind::Langevin { .. }) && self.world.fixes.iter().any(|f| matches!(f.kind, FixKind::Langevin { .. })) {
            return Err("a second fix langevin: mdrun applies one thermostat".into());
        }
        self.world.fixes.push(Fix { id: id.clone(), kind });
        Ok(())
    }

    fn thermo_style(&mut self, args: &[String]) -> Result<(), String> {
        let [style, rest @ ..] = args else { return Err("expected: thermo_style one|multi|custom ...".into()) };
        let keep = (self.style.float_format.clone(), self.style.int_format.clone());
        self.style = match style.as_str() {
            "one" if rest.is_empty() => ThermoStyle::default(),
            "multi" if rest.is_empty() => ThermoStyle {
                keys: std::iter::once("step").chain(thermo_out::MULTI.iter().copied()).map(str::to_string).collect(),
                multi: true,
                ..ThermoStyle::default()
            },
            "custom" => {
                if rest.is_empty() {
                    return Err("thermo_style custom needs keywords".into());
                }
                for k in rest {
                    let known = k.starts_with("v_") || thermo_out::title(k) != *k || matches!(k.as_str(), "step");
                    if !known {
                        return Err(format!("thermo keyword '{k}' is not supported; mdrun knows {}", thermo_out::KEYWORDS));
                    }
                }
                ThermoStyle { keys: rest.to_vec(), ..ThermoStyle::default() }
            }
            other => return Err(format!("thermo_style '{other}': expected one, multi or custom keywords...")),
        };
        (self.style.float_format, self.style.int_format) = keep;
        Ok(())
    }

    fn thermo_modify(&mut self, args: &[String]) -> Result<(), String> {
        let mut i = 0;
        while i < args.len() {
            let v = args.get(i + 1).ok_or_else(|| format!("thermo_modify {} needs a value", args[i]))?;
            match args[i].as_str() {
                "norm" => self.norm = Some(yes_no(v, "norm")?),
                "flush" => self.flush = yes_no(v, "flush")?,
                "line" => {
                    self.style.multi = match v.as_str() {
                        "one" => false,
                        "multi" => true,
                        _ => return Err("thermo_modify line: expected one or multi".into()),
                    }
                }
                "lost" => {
                    if v != "error" {
                        return Err("thermo_modify lost: mdrun never loses atoms silently (only 'error')".into());
                    }
                }
                "format" => {
                    let f = args.get(i + 2).ok_or("thermo_modify format needs a kind (float, int) and a format")?;
                    match v.as_str() {
                        "float" => self.style.float_format = Some(f.clone()),
                        "int" => self.style.int_format = Some(f.clone()),
                        _ => return Err("thermo_modify format: mdrun supports float and int".into()),
                    }
                    cformat::printf(f, 1.0)?;
                    i += 1;
                }
                other => return Err(format!("thermo_modify keyword '{other}' is not supported; mdrun supports norm, flush, line, lost, format")),
            }
            i += 2;
        }
        Ok(())
    }

    fn dump(&mut self, args: &[String]) -> Result<(), String> {
        let [id, group, style, every, file, cols @ ..] = args else { return Err("expected: dump ID group style N file [columns]".into()) };
        if group != "all" {
            return Err(format!("group '{group}': mdrun supports the group all only"));
        }
        let every = int(every, "dump interval")?;
        if every < 1 {
            return Err("dump interval must be positive".into());
        }
        let columns: Vec<String> = match style.as_str() {
            "atom" if cols.is_empty() => ["id", "type", "xs", "ys", "zs"].map(str::to_string).to_vec(),
            "xyz" if cols.is_empty() => Vec::new(),
            "custom" => {
                if cols.is_empty() {
                    return Err("dump custom needs columns".into());
                }
                for c in cols {
                    if !super::data::DUMP_COLUMNS.contains(&c.as_str()) {
                        return Err(format!("dump custom column '{c}' is not supported; mdrun writes {}", super::data::DUMP_COLUMNS.join(" ")));
                    }
                }
                cols.to_vec()
            }
            // Any format chemfiles writes, chosen by the extension or named: `dump 1 all
            // chemfiles 100 traj.pdb [PDB]`.
            "chemfiles" if cols.len() <= 1 => cols.to_vec(),
            "atom" | "xyz" | "chemfiles" => return Err(format!("dump {style} takes no columns (chemfiles: an optional format name)")),
            other => return Err(format!("dump style '{other}' is not supported; mdrun supports atom, custom, xyz and chemfiles (any format chemfiles writes)")),
        };
        if self.dumps.iter().any(|d| &d.id == id) {
            return Err(format!("a dump with ID '{id}' exists already (undump it first)"));
        }
        self.dumps.push(Dump {
            id: id.clone(),
            style: style.clone(),
            every: every as u64,
            path: PathBuf::from(file),
            columns,
            sort: false,
            elements: None,
            last: None,
            opened: false,
        });
        Ok(())
    }

    fn dump_modify(&mut self, args: &[String]) -> Result<(), String> {
        let [id, rest @ ..] = args else { return Err("expected: dump_modify ID keyword value".into()) };
        let ntypes = self.world.ntypes;
        let dump = self.dumps.iter_mut().find(|d| &d.id == id).ok_or_else(|| format!("no dump with ID '{id}'"))?;
        let mut i = 0;
        while i < rest.len() {
            let v = rest.get(i + 1).ok_or_else(|| format!("dump_modify {} needs a value", rest[i]))?;
            match rest[i].as_str() {
                "sort" => {
                    dump.sort = match v.as_str() {
                        "id" => true,
                        "off" => false,
                        _ => return Err("dump_modify sort: mdrun sorts by id (or off)".into()),
                    };
                    i += 2;
                }
                "every" => {
                    let n = int(v, "every")?;
                    if n < 1 {
                        return Err("every must be positive".into());
                    }
                    dump.every = n as u64;
                    i += 2;
                }
                "element" => {
                    if rest.len() < i + 1 + ntypes {
                        return Err(format!("dump_modify element needs one name per atom type ({ntypes})"));
                    }
                    dump.elements = Some(rest[i + 1..i + 1 + ntypes].to_vec());
                    i += 1 + ntypes;
                }
                other => return Err(format!("dump_modify keyword '{other}' is not supported; mdrun supports sort, every, element")),
            }
        }
        Ok(())
    }

    fn write_restart(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: write_restart file".into()) };
        let plan = self.plan(0)?;
        let chk = crate::io::checkpoint::Checkpoint {
            step: self.world.step,
            system: plan.system,
            reference: None,
            threads: 0,
            langevin_seed: plan.integrator.seed(),
        };
        chk.write(Path::new(file)).map_err(|e| e.to_string())?;
        // The deck's own state beside it: units, box origin and types (the checkpoint is in
        // internal units, from the origin).
        let (lo, hi) = self.world.require_box()?;
        // With the force field and run settings, as LAMMPS's restart files keep them (fixes are
        // not kept, as in LAMMPS).
        let w = &self.world;
        let pair = match &w.pair {
            Some(Pair::LjCut { cutoff, coeffs }) => serde_json::json!({
                "style": "lj/cut", "cutoff": cutoff,
                "coeffs": coeffs.iter().map(|(&(i, j), &(e, s, c))| serde_json::json!([i, j, e, s, c])).collect::<Vec<_>>(),
            }),
            Some(Pair::Mcgm { model }) => serde_json::json!({ "style": "mcgm", "model": model, "types": w.type_names }),
            None => serde_json::Value::Null,
        };
        let meta = serde_json::json!({
            "units": w.units.name,
            "lo": lo, "hi": hi,
            "periodic": w.periodic,
            "masses": w.masses,
            "charge": w.charge,
            "pair": pair,
            "shift": w.shift, "tail": w.tail,
            "mix": match w.mix { Mix::Geometric => "geometric", Mix::Arithmetic => "arithmetic", Mix::Sixthpower => "sixthpower" },
            "dt": w.dt, "skin": w.skin, "every": w.every, "delay": w.delay, "check": w.check,
        });
        crate::io::checkpoint::write_atomically(&PathBuf::from(format!("{file}.deck.json")), meta.to_string().as_bytes())
            .map_err(|e| format!("cannot write {file}.deck.json: {e}"))?;
        Ok(())
    }

    fn read_restart(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: read_restart file".into()) };
        let chk = crate::io::checkpoint::Checkpoint::read(Path::new(file)).map_err(|e| e.to_string())?;
        let meta_path = format!("{file}.deck.json");
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&meta_path).map_err(|e| format!("cannot read {meta_path} (written beside the restart by write_restart): {e}"))?,
        )
        .map_err(|e| format!("{meta_path}: {e}"))?;
        let get3 = |k: &str| -> Result<[f64; 3], String> {
            serde_json::from_value(meta[k].clone()).map_err(|e| format!("{meta_path}: {k}: {e}"))
        };
        let units = meta["units"].as_str().ok_or_else(|| format!("{meta_path}: no units"))?;
        let mut w = World::new();
        w.units_cmd(&[units.to_string()])?;
        let (lo, hi) = (get3("lo")?, get3("hi")?);
        w.periodic = serde_json::from_value(meta["periodic"].clone()).map_err(|e| format!("{meta_path}: periodic: {e}"))?;
        let masses: Vec<Option<f64>> = serde_json::from_value(meta["masses"].clone()).map_err(|e| format!("{meta_path}: masses: {e}"))?;
        w.bounds = Some((lo, hi));
        w.ntypes = chk.system.species.len();
        w.masses = masses;
        w.type_names = vec![None; w.ntypes];
        w.atoms = world::Atoms {
            x: vec![[0.0; 3]; chk.system.len()],
            v: vec![[0.0; 3]; chk.system.len()],
            types: chk.system.types.iter().map(|&t| t as usize + 1).collect(),
            images: vec![[0; 3]; chk.system.len()],
            q: vec![0.0; chk.system.len()],
        };
        w.absorb(&chk.system);
        w.step = chk.step;
        let bad = |k: &str| format!("{meta_path}: {k} is missing or malformed");
        w.charge = meta["charge"].as_bool().unwrap_or(false);
        w.shift = meta["shift"].as_bool().ok_or_else(|| bad("shift"))?;
        w.tail = meta["tail"].as_bool().ok_or_else(|| bad("tail"))?;
        w.mix = match meta["mix"].as_str() {
            Some("geometric") => Mix::Geometric,
            Some("arithmetic") => Mix::Arithmetic,
            Some("sixthpower") => Mix::Sixthpower,
            _ => return Err(bad("mix")),
        };
        w.dt = meta["dt"].as_f64();
        w.skin = meta["skin"].as_f64();
        w.every = meta["every"].as_u64().ok_or_else(|| bad("every"))?;
        w.delay = meta["delay"].as_u64().ok_or_else(|| bad("delay"))?;
        w.check = meta["check"].as_bool().ok_or_else(|| bad("check"))?;
        let p = &meta["pair"];
        w.pair = match p["style"].as_str() {
            None => None,
            Some("lj/cut") => {
                let mut coeffs = BTreeMap::new();
                for c in p["coeffs"].as_array().ok_or_else(|| bad("pair coeffs"))? {
                    let v: (usize, usize, f64, f64, f64) = serde_json::from_value(c.clone()).map_err(|_| bad("pair coeffs"))?;
                    coeffs.insert((v.0, v.1), (v.2, v.3, v.4));
                }
                Some(Pair::LjCut { cutoff: p["cutoff"].as_f64().ok_or_else(|| bad("pair cutoff"))?, coeffs })
            }
            Some("mcgm") => {
                w.type_names = serde_json::from_value(p["types"].clone()).map_err(|_| bad("pair types"))?;
                Some(Pair::Mcgm { model: serde_json::from_value(p["model"].clone()).map_err(|_| bad("pair model"))? })
            }
            Some(_) => return Err(bad("pair")),
        };
        self.world = w;
        self.changed();
        Ok(())
    }
}

/// LAMMPS mixing of two types' (epsilon, sigma, cutoff).
fn mix(rule: Mix, a: (f64, f64, f64), b: (f64, f64, f64)) -> (f64, f64, f64) {
    let distance = |x: f64, y: f64| match rule {
        Mix::Geometric => (x * y).sqrt(),
        Mix::Arithmetic => 0.5 * (x + y),
        Mix::Sixthpower => (0.5 * (x.powi(6) + y.powi(6))).powf(1.0 / 6.0),
    };
    let eps = match rule {
        Mix::Sixthpower => 2.0 * (a.0 * b.0).sqrt() * a.1.powi(3) * b.1.powi(3) / (a.1.powi(6) + b.1.powi(6)),
        _ => (a.0 * b.0).sqrt(),
    };
    (eps, distance(a.1, b.1), distance(a.2, b.2))
}

/// A path from the deck: as given (LAMMPS reads relative to the working folder), else next
/// to the deck.
pub fn resolve(file: &str, deck: &Path) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() || p.exists() {
        return p;
    }
    match deck.parent() {
        Some(dir) if dir.join(&p).exists() => dir.join(p),
        _ => p,
    }
}

fn unsupported(name: &str) -> String {
    let known = [
        "compute", "group", "minimize", "min_style", "kspace_style", "bond_style", "angle_style", "dihedral_style", "improper_style",
        "special_bonds", "read_dump", "rerun", "balance", "change_box", "delete_atoms", "set", "molecule", "shell", "python", "restart",
        "run_style", "package", "suffix", "partition", "thermo_style", "reset_atoms", "fix_modify", "compute_modify", "neb", "tad",
    ];
    let supported = "units atom_style dimension boundary lattice region create_box create_atoms read_data write_data mass replicate velocity displace_atoms pair_style pair_coeff pair_modify neighbor neigh_modify fix unfix timestep reset_timestep thermo thermo_style thermo_modify dump dump_modify undump write_restart read_restart run variable print label jump next include if clear quit log echo";
    if known.contains(&name) {
        format!("the LAMMPS command '{name}' is not supported by mdrun; mdrun supports: {supported}")
    } else {
        format!("unknown command '{name}'; mdrun supports: {supported}")
    }
}

/// Formula lookups through the deck.
struct Eval<'a> {
    deck: &'a mut Deck,
}

impl Context for Eval<'_> {
    fn word(&mut self, name: &str) -> Result<f64, String> {
        if let Some(v) = name.strip_prefix("v_") {
            return self.deck.variable_value(v);
        }
        if name.starts_with("c_") || name.starts_with("f_") {
            return Err(format!("'{name}': computes and fix outputs are not supported in formulas; use thermo keywords and v_ variables"));
        }
        self.deck.keyword(name)
    }

    fn function(&mut self, name: &str, args: &[&str]) -> Option<Result<f64, String>> {
        let d = &mut *self.deck;
        let group = |args: &[&str], n: usize| -> Result<(), String> {
            if args.len() != n || args[0] != "all" {
                return Err(format!("{name}(): mdrun supports the group all, as {name}(all{})", if n == 2 { ",x" } else { "" }));
            }
            Ok(())
        };
        Some(match name {
            "count" => group(args, 1).map(|()| d.world.atoms.len() as f64),
            "mass" => group(args, 1).and_then(|()| Ok(d.world.atom_masses()?.iter().sum())),
            "xcm" | "vcm" => group(args, 2).and_then(|()| {
                let dim = ["x", "y", "z"].iter().position(|a| *a == args[1]).ok_or("the dimension must be x, y or z")?;
                let m = d.world.atom_masses()?;
                let values = if name == "xcm" { &d.world.atoms.x } else { &d.world.atoms.v };
                let total: f64 = m.iter().sum();
                Ok(values.iter().zip(&m).map(|(v, m)| v[dim] * m).sum::<f64>() / total)
            }),
            "ramp" | "stagger" | "logfreq" => {
                let mut vals = Vec::new();
                for a in args {
                    match d.evaluate(a) {
                        Ok(v) => vals.push(v),
                        Err(e) => return Some(Err(e)),
                    }
                }
                let step = d.world.step as f64;
                match (name, vals.as_slice()) {
                    ("ramp", [x, y]) => {
                        let (a, b) = d.run_bounds;
                        let f = if b > a { (step - a as f64) / (b - a) as f64 } else { 0.0 };
                        Ok(x + (y - x) * f)
                    }
                    ("stagger", [x, y]) if *x > *y && *y > 0.0 => {
                        let base = (step / x).floor() * x;
                        Ok(if step - base < *y { base + y } else { base + x })
                    }
                    ("logfreq", [x, y, z]) if *x > 0.0 && *y > 0.0 && *z > *y => {
                        let mut base = *x;
                        let mut next = *x;
                        while next <= step {
                            next += base;
                            if next >= z * base {
                                base *= z;
                                next = base;
                            }
                        }
                        Ok(next)
                    }
                    _ => Err(format!("{name}(): wrong arguments")),
                }
            }
            _ => return None,
        })
    }
}

impl Deck {
    /// `run N [upto] [pre yes|no] [post yes|no]`.
    fn run(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
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
        let integrate = self.world.fixes.iter().any(|f| f.kind == FixKind::Nve);
        let u = self.world.units;
        let threads = self.options.threads.filter(|&t| t > 0).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| format!("cannot start {threads} threads: {e}"))?;
        let mut notes = Vec::new();
        let gpu = crate::platform::choose(&plan, self.options.platform, &plan.system, &mut |line| notes.push(line.to_string()))?;
        for n in notes {
            self.say(&n);
        }
        let first = self.world.step;
        let last = first + steps;
        self.run_bounds = (first, last);
        let mut engine = pool
            .install(|| crate::platform::Engine::start(gpu, &plan, plan.system.clone(), first, None, None))
            .map_err(|e| match e {
                crate::platform::EngineError::Potential(m) => m,
                crate::platform::EngineError::Simulation(s) => s.to_string(),
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
        self.output(&mut engine, &plan, 0.0, wants_vars, first)?;
        self.write_dumps(&mut engine, first)?;
        let mut step = first;
        while step < last {
            let next_thermo = if self.thermo_every > 0 { (step / self.thermo_every + 1) * self.thermo_every } else { last };
            let next_dump = self.dumps.iter().map(|d| (step / d.every + 1) * d.every).min().unwrap_or(last);
            let stop = next_thermo.min(next_dump).min(last);
            if integrate {
                let block = if engine.is_gpu() { stop - step } else { 1 };
                let due = step + block == next_thermo || step + block == last;
                pool.install(|| engine.advance(block, due)).map_err(|e| {
                    let saved = self.save_last_good(&mut engine, threads);
                    format!("{e}{saved}")
                })?;
                step = engine.step();
            } else {
                step = stop;
            }
            self.world.step = step;
            if step == next_thermo || step == last {
                self.output(&mut engine, &plan, start.elapsed().as_secs_f64(), wants_vars, step)?;
            }
            if step == next_dump {
                self.write_dumps(&mut engine, step)?;
            }
        }
        let wall = start.elapsed().as_secs_f64();
        if integrate {
            let system = engine.system().map_err(|e| e.to_string())?.clone();
            self.world.absorb(&system);
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
    fn save_last_good(&mut self, engine: &mut crate::platform::Engine, threads: usize) -> String {
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
    fn output(&mut self, engine: &mut crate::platform::Engine, plan: &Plan, cpu: f64, wants_vars: bool, step: u64) -> Result<(), String> {
        let mut sample = engine.thermo();
        sample.step = step;
        let forces: Vec<[f64; 3]> = match engine {
            crate::platform::Engine::Cpu(s) => s.forces.forces.clone(),
            crate::platform::Engine::Gpu(_) => Vec::new(),
        };
        let gpu_forces = forces.is_empty();
        self.current = Some(self.state(plan, sample, &forces, cpu, engine.builds()));
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

    fn write_dumps(&mut self, engine: &mut crate::platform::Engine, step: u64) -> Result<(), String> {
        let due: Vec<usize> = (0..self.dumps.len())
            .filter(|&k| step % self.dumps[k].every == 0 && self.dumps[k].last != Some(step))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let system = engine.system().map_err(|e| e.to_string())?.clone();
        let forces: Option<Vec<[f64; 3]>> = match engine {
            crate::platform::Engine::Cpu(s) => Some(s.forces.forces.clone()),
            crate::platform::Engine::Gpu(_) => None,
        };
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

impl Deck {
    pub fn thermo_every(&self) -> u64 {
        self.thermo_every
    }

    /// Whether screen output is on.
    pub fn screen(&self) -> bool {
        self.options.screen
    }
}

impl Deck {
    /// Refuses what a sandboxed deck may not do (files, oversized work).
    fn sandbox_check(&self, command: &str, args: &[String], sb: Sandbox) -> Result<(), String> {
        let files = matches!(command, "include" | "read_data" | "write_data" | "log" | "dump" | "write_restart" | "read_restart")
            || (command == "jump" && args.first().is_some_and(|f| f != "SELF"))
            || (command == "print" && args.iter().any(|a| a == "file" || a == "append"))
            || (command == "pair_style" && args.first().is_some_and(|s| s == "mcgm"));
        if files {
            return Err("sandbox: no file access".into());
        }
        if command == "run" && args.first().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > sb.max_steps) {
            return Err(format!("sandbox: runs are capped at {} steps", sb.max_steps));
        }
        if matches!(command, "pair_style" | "pair_coeff") && args.iter().filter_map(|a| a.parse::<f64>().ok()).any(|c| c > sb.max_cutoff) {
            return Err(format!("sandbox: numbers above {} in {command}", sb.max_cutoff));
        }
        if matches!(command, "create_atoms" | "replicate" | "read_restart") {
            // Checked after the fact below; the lattice-point guard bounds the work.
        }
        Ok(())
    }

    /// The most atoms this deck may create.
    pub(crate) fn max_atoms(&self) -> usize {
        self.options.sandbox.map_or(MAX_ATOMS, |s| s.max_atoms)
    }
}

/// Atoms a deck may hold (LAMMPS's own limit for atom IDs in 32 bits).
pub const MAX_ATOMS: usize = i32::MAX as usize;

/// The timestep of a world in ps.
fn plan_dt(w: &World) -> f64 {
    w.dt() * w.units.time
}
