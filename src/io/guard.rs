//! A fence around chemfiles. The chemfiles crate turns every C string it gets back (error
//! messages, warnings, atom names, string properties) into a Rust `String` with
//! `expect("Invalid Rust string from C")`, so a file with bytes that are not UTF-8 text panics
//! inside it. Every read goes through [`guarded`]: such a panic becomes an error that names the
//! file and the first offending line, and the panic message is kept off the terminal.

use std::cell::Cell;
use std::path::Path;

thread_local! {
    /// Set while this thread is inside [`guarded`]: a panic here is reported as an error.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once per process) a panic hook that stays silent for panics inside [`guarded`]
/// and prints every other panic as before.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `read` (a chemfiles call on `path`); a panic inside it becomes `Err` with a message
/// that says why and where.
pub fn guarded<T>(path: &Path, read: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    GUARDED.with(|g| g.set(was));
    result.map_err(|_| not_text_message(path))
}

/// Why chemfiles could not read `path`: the first byte that is not UTF-8 text, by line.
fn not_text_message(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => match first_invalid_utf8(&bytes) {
            Some((line, column)) => format!(
                "line {line}, byte {column}: not UTF-8 text (is it a binary file, or given the wrong format or extension?)"
            ),
            None => "chemfiles returned text that is not UTF-8".to_string(),
        },
        Err(e) => format!("cannot be read: {e}"),
    }
}

/// Refuses an XYZ file that chemfiles (0.10) would never finish reading, or would exhaust
/// memory on; both found by fuzzing, both in extended XYZ comment lines (those that declare
/// `species:S:1:pos:R:3`):
/// - its comment parser loops forever where a key should start but a `=` stands
///   (`Lattice ="..."`, ` =x`, `""=x`);
/// - it makes one property per column that `Properties=` declares (`forces:R:39834403` is 40
///   million, gigabytes) before reading a single atom line; an atom line needs at least two
///   bytes a column, so more columns than that are refused.
///
/// The scan reads each line once, far faster than chemfiles parses it.
fn refuse_xyz_parser_hangs(path: &Path) -> Result<(), String> {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else { return Ok(()) };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    // Columns the last comment line declared (in a frame with atoms), checked against the atom
    // line after it; and whether the line before was an atom count above zero.
    let mut declared: Option<(usize, usize)> = None;
    let mut after_count = false;
    loop {
        line.clear();
        let end = !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0);
        if let Some((columns, at)) = declared.take() {
            // At the end of the file there is no atom line: a bound on what chemfiles allocates.
            let room = if end { MAX_COLUMNS } else { line.len().div_ceil(2) };
            if columns > room {
                return Err(format!("line {at}: Properties= declares {columns} columns, but the atom line after it has {} bytes", line.len()));
            }
        }
        if end {
            return Ok(());
        }
        number += 1;
        if chemfiles_comment_parser_hangs(&line) {
            return Err(format!(
                "line {number}: an extended XYZ comment line with '=' where a key should start (as in `key =value`); write key=value without spaces around '='"
            ));
        }
        declared = if after_count { declared_columns(&line).map(|c| (c, number)) } else { None };
        after_count = std::str::from_utf8(&line).ok().and_then(|t| t.trim().parse::<u64>().ok()).is_some_and(|n| n > 0);
    }
}

/// Columns a last, atom-less comment line may declare (chemfiles allocates ~50 bytes a column).
const MAX_COLUMNS: usize = 1 << 20;

/// The columns a comment line's `Properties=species:S:1:pos:R:3:...` declares, if it has one.
fn declared_columns(line: &[u8]) -> Option<usize> {
    // Lossy: chemfiles reads the line's bytes whatever they are.
    let text = String::from_utf8_lossy(line);
    let value = crate::io::key_value(&text, "Properties")?;
    let list = value.strip_prefix("species:S:1:pos:R:3")?;
    let parts: Vec<&str> = list.split(':').skip(1).collect();
    let repeats = parts.chunks(3).filter_map(|c| c.get(2)?.parse::<usize>().ok());
    Some(repeats.fold(4usize, usize::saturating_add))
}

/// Whether chemfiles' `extended_xyz_parser::parse` (XYZ.cpp) would loop forever on `line`,
/// by following its steps: it does when a token starts with '='.
fn chemfiles_comment_parser_hangs(line: &[u8]) -> bool {
    const MARK: &[u8] = b"species:S:1:pos:R:3";
    if !line.windows(MARK.len()).any(|w| w == MARK) {
        return false;
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    // chemfiles' next_substring: a quoted or a bare word; returns its length.
    let word = |i: &mut usize| -> usize {
        let mut quote = None;
        if *i < line.len() && matches!(line[*i], b'"' | b'\'') {
            quote = Some(line[*i]);
            *i += 1;
        }
        let mut size = 0;
        while *i < line.len() {
            match quote {
                Some(q) if line[*i] == q => {
                    *i += 1;
                    break;
                }
                None if space(line[*i]) || line[*i] == b'=' => break,
                _ => {
                    *i += 1;
                    size += 1;
                }
            }
        }
        size
    };
    let mut i = 0;
    loop {
        while i < line.len() && space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return false;
        }
        if line[i] == b'=' {
            return true;
        }
        let key = word(&mut i);
        if !(key > 0 && i < line.len() && line[i] == b'=') {
            continue;
        }
        i += 1;
        word(&mut i);
        if i < line.len() && !space(line[i]) {
            return false;
        }
    }
}

/// Whether chemfiles reads `path` as XYZ (format named, or chosen by the extension).
pub fn is_xyz(path: &Path, format: &str) -> bool {
    is_format(path, format, "xyz", &["xyz"])
}

fn is_format(path: &Path, format: &str, name: &str, extensions: &[&str]) -> bool {
    format.eq_ignore_ascii_case(name)
        || (format.is_empty() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x))))
}

/// Refuses what chemfiles would hang, exhaust memory or crash on, for the formats where
/// fuzzing found such inputs: XYZ ([`refuse_xyz_parser_hangs`]) and PDB
/// ([`refuse_pdb_reader_crashes`]).
pub fn refuse_what_breaks_chemfiles(path: &Path, format: &str) -> Result<(), String> {
    if is_xyz(path, format) {
        refuse_xyz_parser_hangs(path)?;
    }
    if is_format(path, format, "pdb", &["pdb", "ent"]) {
        refuse_pdb_reader_crashes(path)?;
    }
    Ok(())
}

/// Refuses a PDB file on which chemfiles (0.10) reads out of bounds and dies (SIGSEGV): a
/// CONECT record in a model before any ATOM, HETATM or TER record (its atom id offsets are
/// still empty then). Found by fuzzing.
fn refuse_pdb_reader_crashes(path: &Path) -> Result<(), String> {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else { return Ok(()) };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let (mut number, mut atoms) = (0, false);
    loop {
        line.clear();
        if !matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            return Ok(());
        }
        number += 1;
        // chemfiles' record names: the first six bytes; any END... ends the model.
        if line.starts_with(b"END") {
            atoms = false;
        } else if line.starts_with(b"ATOM  ") || line.starts_with(b"HETATM") || line.starts_with(b"TER") {
            atoms = true;
        } else if line.starts_with(b"CONECT") && !atoms {
            return Err(format!("line {number}: a CONECT record before any ATOM or HETATM record of its model"));
        }
    }
}

/// 1-based (line, byte in line) of the first byte sequence that is not UTF-8.
pub fn first_invalid_utf8(bytes: &[u8]) -> Option<(usize, usize)> {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => return None,
        Err(e) => e.valid_up_to(),
    };
    let before = &bytes[..valid];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    Some((line, valid - start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_invalid_byte_is_located() {
        assert_eq!(first_invalid_utf8(b"abc\ndef"), None);
        assert_eq!(first_invalid_utf8(b"ab\ncd\xffe"), Some((2, 3)));
        assert_eq!(first_invalid_utf8(b"\xc3"), Some((1, 1)));
    }

    #[test]
    fn comment_lines_that_hang_chemfiles_are_found() {
        let props = "Properties=species:S:1:pos:R:3";
        for hangs in [format!("La20\" Propertie\t={props}"), format!("{props} Lattice =\"1 0 0\""), format!("={props}"), format!("{props} \"\"=1")] {
            assert!(chemfiles_comment_parser_hangs(hangs.as_bytes()), "{hangs}");
        }
        for fine in [format!("{props} Lattice=\"1 0 0 0 1 0 0 0 1\" pbc=\"T T T\" energy=-3"), format!("{props} flag other=\"a b\"x = 1"), "Lattice =\"1\" no properties".to_string()] {
            assert!(!chemfiles_comment_parser_hangs(fine.as_bytes()), "{fine}");
        }
    }

    #[test]
    fn declared_columns_are_counted() {
        assert_eq!(declared_columns(b"Properties=species:S:1:pos:R:3 energy=1\n"), Some(4));
        assert_eq!(declared_columns(b"Properties=species:S:1:pos:R:3:forces:R:3:q:R:1\n"), Some(8));
        assert_eq!(declared_columns(b"Properties=species:S:1:pos:R:3:forces:R:39834403\n"), Some(39834407));
        assert_eq!(declared_columns(b"energy=1\n"), None);
        // Bytes that are not UTF-8 elsewhere on the line do not hide the count (fuzzing).
        assert_eq!(declared_columns(b"a=\xff\xff Properties=species:S:1:pos:R:3:forces:R:39834403\n"), Some(39834407));
    }

    #[test]
    fn a_panic_inside_becomes_an_error_and_others_pass_through() {
        let path = Path::new("/nonexistent/file.xyz");
        assert_eq!(guarded(path, || 7), Ok(7));
        let err = guarded(path, || -> i32 { panic!("Invalid Rust string from C") }).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        // The flag is cleared after a caught panic.
        assert!(!GUARDED.with(Cell::get));
    }
}
