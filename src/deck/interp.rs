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
use super::world::{World, int, num};
use crate::plan::{Plan, Platform};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// `-screen FILE`: the screen output goes to this file instead of stdout.
    pub screen_file: Option<PathBuf>,
    pub echo: Echo,
    pub platform: Platform,
    pub threads: Option<usize>,
    /// Bounds for untrusted decks (the fuzzer): no file access, and caps on work (`max_steps`
    /// counts the steps of all runs together).
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
        DeckOptions { vars: Vec::new(), log: None, screen: true, screen_file: None, echo: Echo::Log, platform: Platform::Cpu, threads: None, sandbox: None }
    }
}

#[derive(Clone, Debug)]
pub(super) enum Var {
    Index { values: Vec<String>, at: usize },
    Loop { last: i64, at: i64, pad: usize },
    Equal(String),
    Str(String),
    Internal(f64),
    Format { var: String, format: String },
    Getenv(String),
}

pub(super) struct Frame {
    pub(super) script: Script,
    pub(super) pc: usize,
}

/// A LAMMPS text dump.
#[derive(Clone, Debug)]
pub(super) struct Dump {
    pub(super) id: String,
    pub(super) style: String,
    pub(super) every: u64,
    pub(super) path: PathBuf,
    pub(super) columns: Vec<String>,
    pub(super) elements: Option<Vec<String>>,
    pub(super) last: Option<u64>,
    pub(super) opened: bool,
}

/// One printed thermo row: keywords and values (deck units), kept for tests and `convert`.
#[derive(Clone, Debug)]
pub struct ThermoRow {
    pub keys: Vec<String>,
    pub values: Vec<f64>,
}

/// Why reading stopped early.
pub(super) enum Flow {
    Quit,
    /// `convert`: stopped at the first run, its plan taken.
    Captured,
}

pub struct Deck {
    pub(super) options: DeckOptions,
    pub(super) log: Option<std::io::BufWriter<std::fs::File>>,
    pub(super) screen_file: Option<std::io::BufWriter<std::fs::File>>,
    pub(super) echo: Echo,
    pub(super) vars: BTreeMap<String, Var>,
    pub(super) stack: Vec<Frame>,
    pub(super) jump_skip: bool,
    pub(super) label_search: Option<(String, String, usize)>,
    pub world: World,
    pub(super) thermo_every: u64,
    pub(super) style: ThermoStyle,
    pub(super) norm: Option<bool>,
    pub(super) flush: bool,
    pub(super) dumps: Vec<Dump>,
    /// The thermo quantities of the current state, if known.
    pub(super) current: Option<ThermoState>,
    pub(super) eval_depth: usize,
    /// Steps of the current (or last) run, for ramp().
    pub(super) run_bounds: (u64, u64),
    /// Every thermo row printed.
    pub rows: Vec<ThermoRow>,
    /// With `capture`: the plan of the first run and the line it was on.
    pub capture: bool,
    pub captured: Option<(Plan, usize)>,
    /// Commands that followed the captured run (for `convert`'s warning).
    pub after_capture: Vec<String>,
    pub(super) where_: (String, usize),
    pub(super) commands_run: u64,
    /// Steps run so far (for the sandbox's cap).
    pub(super) sandbox_steps: u64,
    /// Every deck script read (the -in file, includes, jumps), as the file system resolves
    /// them: no command may write over one.
    pub(super) scripts: Vec<PathBuf>,
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
        let screen_file = match &options.screen_file {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("cannot open the screen file {}: {e}", p.display()))?,
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
            screen_file,
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
            sandbox_steps: 0,
            scripts: Vec::new(),
        })
    }

    /// A line to the screen and the log.
    /// A line to the screen (stdout, or the -screen file) only.
    pub(super) fn to_screen(&mut self, line: &str) {
        if !self.options.screen {
            return;
        }
        match &mut self.screen_file {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => println!("{line}"),
        }
    }

    pub(super) fn say(&mut self, line: &str) {
        self.to_screen(line);
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{line}");
        }
    }

    pub(super) fn flush_log(&mut self) {
        if let Some(log) = &mut self.log {
            let _ = log.flush();
        }
        if let Some(f) = &mut self.screen_file {
            let _ = f.flush();
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
        self.scripts.push(crate::outputs::identity(path));
        self.stack.push(Frame { script: Script::from_text(path, text), pc: 0 });
        let result = self.read_loop();
        self.flush_log();
        match result {
            Ok(()) | Err(Ok(Flow::Quit)) | Err(Ok(Flow::Captured)) => Ok(()),
            Err(Err(e)) => Err(e),
        }
    }

    pub(super) fn read_loop(&mut self) -> Result<(), Result<Flow, DeckError>> {
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
    pub(super) fn execute(&mut self, text: &str) -> Result<(), Result<Flow, (String, String)>> {
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
        if matches!(self.echo, Echo::Screen | Echo::Both) {
            self.to_screen(substituted.trim());
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
        if let Err(m) = self.check_output(&command, &words[1..]) {
            return Err(Err((command, m)));
        }
        match self.command(&command, &words[1..]) {
            Ok(()) => Ok(()),
            Err(Ok(flow)) => Err(Ok(flow)),
            Err(Err(m)) => Err(Err((command, m))),
        }
    }

    pub(super) fn substitute(&mut self, text: &str, everywhere: bool) -> Result<String, String> {
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

    pub(super) fn variable_text(&mut self, name: &str) -> Result<String, String> {
        self.eval_depth += 1;
        if self.eval_depth > MAX_EVAL_DEPTH {
            self.eval_depth = 0;
            return Err(format!("variable '{name}' refers to itself (directly or through others)"));
        }
        let r = self.variable_text_inner(name);
        self.eval_depth = self.eval_depth.saturating_sub(1);
        r
    }

    pub(super) fn variable_text_inner(&mut self, name: &str) -> Result<String, String> {
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

    pub(super) fn nested(&mut self, name: &str, formula: &str) -> Result<f64, String> {
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
    pub(super) fn variable_value(&mut self, name: &str) -> Result<f64, String> {
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

    pub(super) fn norm(&self) -> bool {
        self.norm.unwrap_or(self.world.units.default_norm())
    }

    /// A thermo keyword of the current state; computes the state if no run left it.
    pub(super) fn keyword(&mut self, key: &str) -> Result<f64, String> {
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

    /// A state-changing command: the cached thermo state no longer holds.
    pub(super) fn changed(&mut self) {
        self.current = None;
    }

    pub(super) fn command(&mut self, name: &str, args: &[String]) -> Result<(), Result<Flow, String>> {
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
            "group" => self.group(args),
            "set" => self.set(args),
            "displace_atoms" => self.world.displace_atoms(args),
            // Force field.
            "pair_style" => self.pair_style(args),
            "pair_coeff" => self.pair_coeff(args),
            "plugin" => plugin(args),
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
            "minimize" => self.minimize(args),
            "min_style" => self.min_style(args),
            "min_modify" => self.min_modify(args),
            "atom_modify" | "newton" | "processors" | "comm_modify" => {
                self.say(&format!("note: {name} {} has no effect in mdrun (one process, full neighbour handling)", args.join(" ")));
                Ok(())
            }
            _ => Err(unsupported(name)),
        };
        r.map_err(Err)
    }


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

/// `plugin load PATH`: a deck written for LAMMPS with mdrun's own plugin (lammps-plugin/) runs
/// here as it is, its `pair_style mdrun` being mdrun's own model; other plugins cannot load.
fn plugin(args: &[String]) -> Result<(), String> {
    match args {
        [load, path] if load == "load" && std::path::Path::new(path).file_name().is_some_and(|f| f.to_string_lossy().starts_with("mdrunplugin")) => Ok(()),
        [load, path] if load == "load" => Err(format!("plugin load {path}: mdrun cannot load LAMMPS plugins; a deck for mdrun's own plugin (mdrunplugin.so, pair_style mdrun) runs as it is")),
        _ => Err("plugin: mdrun takes only `plugin load mdrunplugin.so` (its own LAMMPS plugin, a no-op here)".into()),
    }
}

fn unsupported(name: &str) -> String {
    let known = [
        "compute", "kspace_style", "bond_style", "angle_style", "dihedral_style", "improper_style",
        "special_bonds", "read_dump", "rerun", "balance", "change_box", "delete_atoms", "molecule", "shell", "python", "restart",
        "run_style", "package", "suffix", "partition", "thermo_style", "reset_atoms", "fix_modify", "compute_modify", "neb", "tad",
    ];
    let supported = "units atom_style dimension boundary lattice region create_box create_atoms read_data write_data mass replicate velocity displace_atoms pair_style pair_coeff pair_modify neighbor neigh_modify fix unfix timestep reset_timestep thermo thermo_style thermo_modify dump dump_modify undump write_restart read_restart run minimize min_style min_modify variable print label jump next include if clear quit log echo plugin";
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
    pub fn thermo_every(&self) -> u64 {
        self.thermo_every
    }

    /// The last line of a deck (screen and log), and every output flushed.
    pub fn finish(&mut self, line: &str) {
        self.say(line);
        self.flush_log();
    }
}

impl Deck {
    /// Refuses a command that would write over a deck script (`dump 1 all atom 100 in.lj`,
    /// `log in.lj`): LAMMPS would destroy the user's input without a word.
    fn check_output(&self, command: &str, args: &[String]) -> Result<(), String> {
        let target = match command {
            "write_data" | "write_restart" | "log" => args.first(),
            "dump" => args.get(4),
            "print" => args.windows(2).find(|w| w[0] == "file" || w[0] == "append").map(|w| &w[1]),
            _ => None,
        };
        match target {
            Some(file) if file != "none" && self.scripts.contains(&crate::outputs::identity(Path::new(file))) => {
                Err(format!("{command} would write {file}, a script of this deck; choose another file"))
            }
            _ => Ok(()),
        }
    }

    /// Refuses what a sandboxed deck may not do (files, oversized work).
    pub(super) fn sandbox_check(&self, command: &str, args: &[String], sb: Sandbox) -> Result<(), String> {
        let files = matches!(command, "include" | "read_data" | "write_data" | "log" | "dump" | "write_restart" | "read_restart")
            || (command == "jump" && args.first().is_some_and(|f| f != "SELF"))
            || (command == "print" && args.iter().any(|a| a == "file" || a == "append"))
            || (command == "pair_style" && args.first().is_some_and(|s| matches!(s.as_str(), "mcgm" | "ml" | "mdrun")));
        if files {
            return Err("sandbox: no file access".into());
        }
        if command == "run" && args.first().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| self.sandbox_steps + n > sb.max_steps) {
            return Err(format!("sandbox: runs are capped at {} steps in all", sb.max_steps));
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

