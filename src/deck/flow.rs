//! The script language's commands (`impl Deck`): `variable`, `print`, `jump`, `next`,
//! `include`, `if`, `log`.

use super::cformat;
use super::interp::*;
use super::script::Script;
use super::world;
use std::io::Write;
use std::path::Path;
use super::world::{int, num, yes_no};

impl Deck {
    pub(super) fn variable(&mut self, args: &[String]) -> Result<(), String> {
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

    pub(super) fn print(&mut self, args: &[String]) -> Result<(), String> {
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
        if screen {
            self.to_screen(&text);
        }
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "{text}");
        }
        Ok(())
    }

    pub(super) fn jump(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
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
            self.scripts.push(crate::outputs::identity(&path));
            let frame = self.stack.last_mut().expect("frame");
            *frame = Frame { script: Script::from_text(&path, &text), pc: 0 };
        }
        if let Some(label) = label {
            self.label_search = Some((label, self.where_.0.clone(), self.where_.1));
        }
        Ok(())
    }

    pub(super) fn next(&mut self, args: &[String]) -> Result<(), String> {
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

    pub(super) fn include(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: include file".into()) };
        if self.stack.len() > 32 {
            return Err("include nested more than 32 deep".into());
        }
        let current = self.stack.last().expect("frame").script.path.clone();
        let path = resolve(file, &current);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.scripts.push(crate::outputs::identity(&path));
        self.stack.push(Frame { script: Script::from_text(&path, &text), pc: 0 });
        Ok(())
    }

    pub(super) fn if_cmd(&mut self, args: &[String]) -> Result<(), Result<Flow, String>> {
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

    pub(super) fn log_cmd(&mut self, args: &[String]) -> Result<(), String> {
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
}
