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
    fn a_panic_inside_becomes_an_error_and_others_pass_through() {
        let path = Path::new("/nonexistent/file.xyz");
        assert_eq!(guarded(path, || 7), Ok(7));
        let err = guarded(path, || -> i32 { panic!("Invalid Rust string from C") }).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
        // The flag is cleared after a caught panic.
        assert!(!GUARDED.with(Cell::get));
    }
}
