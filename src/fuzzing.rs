//! The readers of every file a user hands mdrun, behind one entry point for `cargo fuzz`
//! (`fuzz/fuzz_targets/*.rs`) and for the test that replays every seed and finding
//! (`tests/fuzz_seeds.rs`). Each reader must end in `Ok` or an error, never a panic, an abort
//! or a hang. Inputs go through a scratch file, since the readers take paths.

use std::path::{Path, PathBuf};

/// The readers, by target name.
pub const TARGETS: [&str; 7] = ["plan", "structure", "checkpoint", "model", "dataset", "thermo_log", "trajectory"];

/// Extensions a structure or trajectory input is tried as, picked by its first byte.
const EXTENSIONS: [&str; 6] = ["xyz", "pdb", "gro", "extxyz", "cif", "data"];

/// A per-process, per-thread scratch folder holding the fixtures a plan may refer to.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdrun-fuzz-{}-{:?}", std::process::id(), std::thread::current().id()));
    if !dir.exists() {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("two.xyz"), "2\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 1 1 1\nAr 4.5 1 1\n");
    }
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::write(&path, bytes);
    path
}

/// Feeds `bytes` to the reader `target`; returns whether the reader accepted them.
pub fn read(target: &str, bytes: &[u8]) -> bool {
    // Nothing a fuzz input asks for may take more than this.
    crate::limits::set_memory_budget(256 << 20);
    let dir = scratch();
    let (ext, body) = match bytes.split_first() {
        Some((first, rest)) => (EXTENSIONS[*first as usize % EXTENSIONS.len()], rest),
        None => ("xyz", bytes),
    };
    match target {
        "plan" => {
            let text = String::from_utf8_lossy(bytes);
            crate::plan::Plan::from_str(&text, &dir.join("system.toml"), Some(&dir.join("out"))).is_ok()
        }
        "structure" => {
            let path = write(&dir, &format!("input.{ext}"), body);
            crate::io::structure::read(&path, &crate::io::format_for_path(&path, None), 0).is_ok()
        }
        "checkpoint" => {
            // An odd first byte: the rest as it is. Even: the rest sealed with its checksum, so
            // that the fuzzer reaches the header and the arrays behind the checksum test.
            let file = match bytes.split_first() {
                Some((first, rest)) if first % 2 == 0 => [rest, &crate::io::checkpoint::fnv1a(rest).to_le_bytes()].concat(),
                Some((_, rest)) => rest.to_vec(),
                None => Vec::new(),
            };
            crate::io::checkpoint::Checkpoint::read(&write(&dir, "input.chk", &file)).is_ok()
        }
        "model" => {
            // The first two bytes say where the card ends and the weights begin.
            let rest = bytes.get(2..).unwrap_or_default();
            let split = match bytes {
                [a, b, ..] => (u16::from_le_bytes([*a, *b]) as usize).min(rest.len()),
                _ => 0,
            };
            let (card, weights) = rest.split_at(split);
            let folder = dir.join("model");
            let _ = std::fs::create_dir_all(&folder);
            write(&folder, "model.json", card);
            write(&folder, "model.safetensors", weights);
            crate::potential::mcgm::MlPotential::load(&folder, &["O".to_string(), "H".to_string()]).is_ok()
        }
        "dataset" => crate::ml::dataset::read_extxyz(&write(&dir, "data.extxyz", bytes)).is_ok(),
        "thermo_log" => crate::analysis::stats::read_table(&write(&dir, "thermo.log", bytes)).is_ok(),
        "trajectory" => {
            let path = write(&dir, &format!("trajectory.{ext}"), body);
            match crate::analysis::frames::Frames::open(&path, Default::default()) {
                Ok(frames) => frames.take(1000).all(|f| f.is_ok()),
                Err(_) => false,
            }
        }
        other => panic!("no fuzz target {other}; the targets are {TARGETS:?}"),
    }
}
