//! Reading a LAMMPS input script into commands, with LAMMPS's parsing rules:
//! a line ending in `&` continues on the next; `#` starts a comment; `$x`, `${name}` and
//! `$(formula)` are substituted; words are split at blanks, and text in single, double or
//! triple quotes is one word (quotes removed). `#` and `$` inside quotes are left alone (the
//! `print` and `if` commands substitute their quoted text when they run).

/// One input file, as lines, with where it came from.
#[derive(Clone, Debug)]
pub struct Script {
    pub path: std::path::PathBuf,
    pub lines: Vec<String>,
}

impl Script {
    pub fn from_text(path: &std::path::Path, text: &str) -> Script {
        Script { path: path.to_path_buf(), lines: text.lines().map(str::to_string).collect() }
    }

    /// The command starting at line index `at`: its text (continuations joined) and the index
    /// of the line after it. None at the end of the file.
    pub fn logical_line(&self, at: usize) -> Option<(String, usize)> {
        if at >= self.lines.len() {
            return None;
        }
        let mut text = String::new();
        let mut next = at;
        loop {
            let Some(line) = self.lines.get(next) else { break };
            next += 1;
            let trimmed = line.trim_end();
            if let Some(body) = trimmed.strip_suffix('&') {
                text.push_str(body);
                text.push(' ');
                continue;
            }
            text.push_str(line);
            // An open triple quote continues onto the next lines.
            if text.matches("\"\"\"").count() % 2 == 1 && next < self.lines.len() {
                text.push('\n');
                continue;
            }
            break;
        }
        Some((text, next))
    }
}

/// Which quote, if any, starts at byte `i` of `s`.
fn quote_at(s: &[u8], i: usize) -> Option<&'static str> {
    if s[i..].starts_with(b"\"\"\"") {
        Some("\"\"\"")
    } else if s[i] == b'"' {
        Some("\"")
    } else if s[i] == b'\'' {
        Some("'")
    } else {
        None
    }
}

/// The text with its comment removed (a `#` outside quotes starts it).
pub fn strip_comment(line: &str) -> &str {
    let s = line.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if let Some(q) = quote_at(s, i) {
            match line[i + q.len()..].find(q) {
                Some(end) => i += q.len() + end + q.len(),
                None => return line,
            }
            continue;
        }
        if s[i] == b'#' {
            return &line[..i];
        }
        i += 1;
    }
    line
}

/// Replaces `$x`, `${name}` and `$(formula[:format])` outside quotes (or everywhere, for the
/// text of `print` and `if`). `lookup` gives a variable's text, `immediate` a formula's value.
pub fn substitute(
    line: &str,
    inside_quotes_too: bool,
    lookup: &mut dyn FnMut(&str) -> Result<String, String>,
    immediate: &mut dyn FnMut(&str) -> Result<f64, String>,
) -> Result<String, String> {
    let s = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < s.len() {
        if !inside_quotes_too && let Some(q) = quote_at(s, i) {
            let end = line[i + q.len()..].find(q).map_or(s.len(), |e| i + q.len() + e + q.len());
            out.push_str(&line[i..end]);
            i = end;
            continue;
        }
        if s[i] != b'$' {
            let c = line[i..].chars().next().expect("char boundary");
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let rest = &line[i + 1..];
        if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("'${{' without its '}}' in: {line}"))?;
            out.push_str(&lookup(&body[..end])?);
            i += 2 + end + 1;
        } else if rest.starts_with('(') {
            // Up to the matching parenthesis.
            let mut depth = 0usize;
            let mut end = None;
            for (k, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("'$(' without its ')' in: {line}"))?;
            let inner = &rest[1..end];
            // A trailing ":%fmt" sets the format; LAMMPS's default is %.20g.
            let (formula, format) = match inner.rfind(":%") {
                Some(k) => (&inner[..k], Some(&inner[k + 1..])),
                None => (inner, None),
            };
            let value = immediate(formula)?;
            let text = match format {
                Some(f) => super::cformat::printf(f, value)?,
                None => super::cformat::g(value, 20),
            };
            out.push_str(&text);
            i += 1 + end + 1;
        } else {
            let c = rest.chars().next().ok_or_else(|| format!("'$' at the end of: {line}"))?;
            if c.is_whitespace() {
                return Err(format!("'$' followed by a blank in: {line}"));
            }
            out.push_str(&lookup(&c.to_string())?);
            i += 1 + c.len_utf8();
        }
    }
    Ok(out)
}

/// Splits a line into words at blanks; quoted text is one word, without its quotes.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let s = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if let Some(q) = quote_at(s, i) {
            let start = i + q.len();
            let end = line[start..]
                .find(q)
                .ok_or_else(|| format!("unbalanced {q} quote in: {}", line.trim()))?;
            out.push(line[start..start + end].to_string());
            i = start + end + q.len();
            continue;
        }
        let start = i;
        while i < s.len() && !s[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push(line[start..i].to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_comments_quotes_and_substitution() {
        let sc = Script::from_text(std::path::Path::new("x"), "a b &\n  c # note\nprint \"\"\"one\ntwo\"\"\"\nlast");
        let (l, next) = sc.logical_line(0).unwrap();
        assert_eq!(strip_comment(&l).trim(), "a b    c");
        let (l, next) = sc.logical_line(next).unwrap();
        assert_eq!(words(&l).unwrap(), vec!["print", "one\ntwo"]);
        assert_eq!(sc.logical_line(next).unwrap().0, "last");
        assert_eq!(strip_comment("print 'a # b' # c"), "print 'a # b' ");
        let mut lookup = |n: &str| match n {
            "x" => Ok("2".to_string()),
            "name" => Ok("lj".to_string()),
            _ => Err(format!("no variable {n}")),
        };
        let mut imm = |f: &str| if f == "1/3" { Ok(1.0 / 3.0) } else { Err(f.to_string()) };
        assert_eq!(substitute("units ${name} $x", false, &mut lookup, &mut imm).unwrap(), "units lj 2");
        assert_eq!(substitute("print '$x'", false, &mut lookup, &mut imm).unwrap(), "print '$x'");
        assert_eq!(substitute("print '$x'", true, &mut lookup, &mut imm).unwrap(), "print '2'");
        assert_eq!(substitute("a $(1/3:%.3f)", false, &mut lookup, &mut imm).unwrap(), "a 0.333");
        assert_eq!(substitute("a $(1/3)", false, &mut lookup, &mut imm).unwrap(), "a 0.33333333333333331483");
        assert!(substitute("a ${y}", false, &mut lookup, &mut imm).unwrap_err().contains("no variable y"));
        assert!(substitute("a ${y", false, &mut lookup, &mut imm).is_err());
        assert!(words("a 'b").is_err());
    }
}
