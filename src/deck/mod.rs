//! LAMMPS-style input decks: `mdrun -in in.deck` runs a LAMMPS script with the engine, and
//! `mdrun convert in.deck` writes the system.toml of its first run.
//!
//! - [`script`]: lines, continuation, comments, quotes, `$` substitution.
//! - [`expr`]: equal-style formulas.
//! - [`interp`]: the interpreter (reading, variables, loops, dispatch); [`commands`]: force
//!   field, fix, thermo, dump and restart commands; [`run`]: `run N` with the engine.
//! - [`world`]: the state a deck builds (box, lattice, atoms, force field, fixes).
//! - [`units`], [`random`], [`data`], [`thermo_out`], [`cformat`], [`convert`].

pub mod args;
pub mod cformat;
pub mod convert;
pub mod data;
pub mod ensembles;
pub mod expr;
mod flow;
mod groups;
pub mod interp;
mod minimize;
mod pair;
pub mod random;
pub mod run;
pub mod commands;
pub mod script;
pub mod thermo_out;
pub mod units;
mod velocity;
pub mod world;

pub use interp::{Deck, DeckError, DeckOptions, Echo};

use crate::plan::Platform;
use std::path::{Path, PathBuf};

/// Whether the command line is LAMMPS's (`-in`, `-var`, ...) rather than mdrun's own.
pub fn is_lammps_command_line(args: &[String]) -> bool {
    args.iter().skip(1).any(|a| matches!(a.as_str(), "-in" | "-i" | "-var" | "-v" | "-log" | "-l" | "-screen" | "-sc" | "-echo" | "-e" | "-sf" | "-suffix"))
}

/// Parses LAMMPS's command line: `-in FILE -var NAME VALUE... -log FILE|none -screen none
/// -echo none|screen|log|both -sf gpu|omp -pk omp N`, plus mdrun's `--threads N`.
pub fn parse_command_line(args: &[String]) -> Result<(PathBuf, DeckOptions), String> {
    let mut options = DeckOptions { log: Some(PathBuf::from("log.lammps")), ..DeckOptions::default() };
    let mut input = None;
    let mut i = 1;
    let value = |i: usize, flag: &str| args.get(i + 1).cloned().ok_or_else(|| format!("{flag} needs a value"));
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "-in" | "-i" => {
                input = Some(PathBuf::from(value(i, flag)?));
                i += 2;
            }
            "-var" | "-v" => {
                let name = value(i, flag)?;
                let mut values = Vec::new();
                i += 2;
                while i < args.len() && !(args[i].starts_with('-') && args[i].len() > 1 && args[i].as_bytes()[1].is_ascii_alphabetic()) {
                    values.push(args[i].clone());
                    i += 1;
                }
                if values.is_empty() {
                    return Err(format!("-var {name} needs at least one value"));
                }
                options.vars.push((name, values));
            }
            "-log" | "-l" => {
                let v = value(i, flag)?;
                options.log = (v != "none").then(|| PathBuf::from(v));
                i += 2;
            }
            "-screen" | "-sc" => {
                let v = value(i, flag)?;
                if v == "none" {
                    options.screen = false;
                } else {
                    options.screen_file = Some(PathBuf::from(v));
                }
                i += 2;
            }
            "-echo" | "-e" => {
                let v = value(i, flag)?;
                options.echo = Echo::parse(&v).ok_or_else(|| format!("-echo {v}: expected none, screen, log or both"))?;
                i += 2;
            }
            "-sf" | "-suffix" => {
                let v = value(i, flag)?;
                options.platform = match v.as_str() {
                    "gpu" => Platform::Gpu,
                    "omp" | "opt" => Platform::Cpu,
                    other => return Err(format!("-sf {other}: mdrun accepts gpu (the GPU platform) or omp/opt (the CPU, all threads)")),
                };
                i += 2;
            }
            "-pk" | "-package" => {
                let style = value(i, flag)?;
                let n = value(i + 1, flag)?;
                if style != "omp" {
                    return Err(format!("-pk {style}: mdrun takes -pk omp N (CPU threads)"));
                }
                options.threads = Some(n.parse().map_err(|_| format!("-pk omp {n}: expected a thread count"))?);
                i += 3;
            }
            "--threads" => {
                let n = value(i, flag)?;
                options.threads = Some(n.parse().map_err(|_| format!("--threads {n}: expected a count"))?);
                i += 2;
            }
            "-nocite" | "-nc" => i += 1,
            other => return Err(format!("unknown option '{other}'; mdrun takes LAMMPS's -in, -var, -log, -screen, -echo, -sf, -pk (or its own `mdrun system.toml`)")),
        }
    }
    let input = input.ok_or("-in FILE is required (mdrun does not read a deck from stdin)")?;
    // The log is opened (truncated) before the deck is read: it must not be the deck.
    for (flag, out) in [("-log", &options.log), ("-screen", &options.screen_file)] {
        if let Some(out) = out.as_ref().filter(|o| crate::outputs::identity(o) == crate::outputs::identity(&input)) {
            return Err(format!("{flag} {} is the input deck (-in): writing it would overwrite the deck; choose another file", out.display()));
        }
    }
    Ok((input, options))
}

/// `mdrun -in in.deck ...`.
pub fn lammps_main(args: &[String]) -> std::process::ExitCode {
    let (input, options) = match parse_command_line(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut deck = match Deck::new(options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let start = std::time::Instant::now();
    match deck.run_file(&input) {
        Ok(()) => {
            let s = start.elapsed().as_secs();
            deck.finish(&format!("Total wall time: {}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `mdrun convert in.deck`: runs the deck up to its first `run`, writes the starting state
/// beside `state` and returns the TOML and a note on what was not converted.
pub fn convert(deck_path: &Path, vars: Vec<(String, Vec<String>)>, state: Option<&Path>) -> anyhow::Result<(String, Vec<String>)> {
    let options = DeckOptions { vars, log: None, screen: false, echo: Echo::None, ..DeckOptions::default() };
    let mut deck = Deck::new(options).map_err(anyhow::Error::msg)?;
    deck.capture = true;
    deck.run_file(deck_path)?;
    let Some((plan, line)) = deck.captured.take() else {
        anyhow::bail!("{}: the deck has no run command; nothing to convert", deck_path.display());
    };
    let default_state = PathBuf::from(format!("{}.start.chk", deck_path.display()));
    let state = state.map(Path::to_path_buf).unwrap_or(default_state);
    if deck.scripts.contains(&crate::outputs::identity(&state)) {
        anyhow::bail!("--state {} is a script of the deck: writing it would overwrite the deck; choose another file", state.display());
    }
    let chk = crate::io::checkpoint::Checkpoint {
        step: deck.world.step,
        system: plan.system.clone(),
        reference: None,
        reference_cell: None,
        threads: 0,
        integrator: plan.integrator.state(),
        potential: Vec::new(),
    };
    chk.write(&state)?;
    let name = state.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let thermo = if deck.thermo_every() > 0 { deck.thermo_every() } else { plan.steps - deck.world.step };
    let toml = convert::to_toml(&plan, deck_path, line, deck.world.units.name, thermo, &name, deck.world.step);
    let mut notes = vec![format!("wrote the starting state to {}", state.display())];
    if !deck.after_capture.is_empty() {
        notes.push(format!(
            "the deck goes on after that run ({} more command(s), first: '{}'); only the first run is in the TOML",
            deck.after_capture.len(),
            deck.after_capture[0]
        ));
    }
    if deck.world.units.name != "metal" {
        notes.push(format!("values converted from {} units to mdrun's metal units (the thermo table prints eV, K, bar)", deck.world.units.name));
    }
    if let Some(what) = convert::lost_in_toml(&plan.integrator) {
        notes.push(what);
    }
    Ok((toml, notes))
}
