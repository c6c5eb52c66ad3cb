//! Everything that touches files: structures in (any format chemfiles reads), trajectories out
//! (any format chemfiles writes, on a writer thread), checkpoints, and the thermo log.

pub mod checkpoint;
pub mod dcd;
pub mod extxyz;
pub mod guard;
pub mod resume;
pub mod structure;
pub mod thermo_log;
pub mod trajectory;

/// Opens `path` with chemfiles in `mode` ('r', 'w', 'a'): as the format named, or as the one
/// its extension says when `format` is empty.
pub fn open_trajectory(path: &std::path::Path, format: &str, mode: char) -> Result<chemfiles::Trajectory, chemfiles::Error> {
    if format.is_empty() {
        chemfiles::Trajectory::open(path, mode)
    } else {
        chemfiles::Trajectory::open_with_format(path, mode, format)
    }
}

/// chemfiles does not know the `.extxyz` extension; extended XYZ is its XYZ format.
pub fn format_for_path(path: &std::path::Path, explicit: Option<&str>) -> String {
    if let Some(f) = explicit {
        return f.to_string();
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("extxyz") => "XYZ".to_string(),
        _ => String::new(),
    }
}

/// The value of `key=value` or `key="a b c"` in an extended XYZ comment line (key case-blind).
pub(crate) fn key_value(comment: &str, key: &str) -> Option<String> {
    let lower = comment.to_ascii_lowercase();
    let needle = format!("{}=", key.to_ascii_lowercase());
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let at = from + found;
        // A key starts the line or follows whitespace.
        if at == 0 || comment[..at].ends_with(char::is_whitespace) {
            let rest = &comment[at + needle.len()..];
            return Some(match rest.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or("").to_string(),
                None => rest.split_whitespace().next().unwrap_or("").to_string(),
            });
        }
        from = at + needle.len();
    }
    None
}
