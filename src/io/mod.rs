//! Everything that touches files: structures in (any format chemfiles reads), trajectories out
//! (any format chemfiles writes, on a writer thread), checkpoints, and the thermo log.

pub mod checkpoint;
pub mod dcd;
pub mod guard;
pub mod resume;
pub mod structure;
pub mod thermo_log;
pub mod trajectory;

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
