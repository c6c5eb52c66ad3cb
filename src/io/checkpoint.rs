//! Checkpoints: everything needed to continue a run so that the continuation is bit-identical
//! to a run that never stopped (same thread count).
//!
//! Layout (little-endian): `MDRUNCHK`, format version (u32), header length (u64), a JSON header
//! (step, species, cell, the integrator's state as named values, thread count), then the raw arrays (types u32,
//! positions, velocities and neighbour-list reference positions as f64, images as i32; version 3
//! adds the potential's carried state as f64), and an FNV-1a 64 checksum of all preceding
//! bytes. Floats are stored as their exact bits.
//!
//! The neighbour list's reference positions are saved because the list in force at the
//! checkpoint was built from them: rebuilding from them on restart gives the very same pairs in
//! the very same order, hence the same floating-point sums.
//!
//! Files are written to `<name>.tmp`, flushed to disk, then renamed over the target, so a crash
//! mid-write never leaves a truncated checkpoint in place of a good one.

use crate::cell::{Cell, Vec3};
use crate::integrate::{Integrator, IntegratorState};
use crate::system::{Species, System};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MDRUNCHK";

#[cfg(not(target_endian = "little"))]
compile_error!("checkpoints are written as little-endian memory images");
/// Version 2 stores the integrator's state generically (`integrator`); version 1 files (with
/// `langevin_seed`) are still read. Version 3 adds the potential's carried state
/// (`Potential::carried_state`); it is written only where that state is not empty, so every
/// other run's checkpoint stays version 2, readable by an older mdrun.
pub const VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("checkpoint {path}: not an mdrun checkpoint (bad magic bytes)")]
    NotACheckpoint { path: PathBuf },
    #[error("checkpoint {path}: format version {found}, this mdrun reads versions 1 to {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("checkpoint {path}: truncated or corrupted ({reason})")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Header {
    step: u64,
    n_atoms: usize,
    species: Vec<(String, f64)>,
    cell: [Vec3; 3],
    pbc: [bool; 3],
    bounded: bool,
    threads: usize,
    has_reference: bool,
    /// The cell the neighbour list was built in, where a barostat has moved the cell since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference_cell: Option<[Vec3; 3]>,
    /// The integrator's state (version 2).
    #[serde(default)]
    integrator: Option<IntegratorState>,
    /// How many f64 values of the potential's carried state follow the arrays (version 3).
    #[serde(default, skip_serializing_if = "is_zero")]
    potential_values: usize,
    /// Version 1: the Langevin seed, read into `integrator`.
    #[serde(default, skip_serializing)]
    langevin_seed: Option<u64>,
}

/// A run's state at one step.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub step: u64,
    pub system: System,
    /// Positions the neighbour list in force was built from (absent: rebuild from `positions`).
    pub reference: Option<Vec<Vec3>>,
    /// The cell of that build, when it differs from the system's (NPT).
    pub reference_cell: Option<[Vec3; 3]>,
    /// Threads the run used: force sums are bit-identical only for the same count.
    pub threads: usize,
    /// What the integrator carries from step to step (`Integrator::state`).
    pub integrator: IntegratorState,
    /// What the potential carries from step to step (`Potential::carried_state`), usually empty.
    pub potential: Vec<f64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Checkpoint {
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |e: std::io::Error| CheckpointError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let s = &self.system;
        let header = Header {
            step: self.step,
            n_atoms: s.len(),
            species: s
                .species
                .iter()
                .map(|sp| (sp.name.clone(), sp.mass))
                .collect(),
            cell: *s.cell.vectors(),
            pbc: s.cell.pbc(),
            bounded: s.cell.is_bounded(),
            threads: self.threads,
            has_reference: self.reference.is_some(),
            reference_cell: self.reference_cell,
            integrator: Some(self.integrator.clone()),
            potential_values: self.potential.len(),
            langevin_seed: None,
        };
        let json = serde_json::to_vec(&header).expect("header serialises");
        let bytes = self.encode(if self.potential.is_empty() { 2 } else { VERSION }, &json);
        write_atomically(path, &bytes).map_err(io)
    }

    /// The file's bytes for a header already in JSON.
    fn encode(&self, version: u32, json: &[u8]) -> Vec<u8> {
        let s = &self.system;
        let mut bytes = Vec::with_capacity(64 + json.len() + s.len() * 88);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(json);
        // The arrays are stored little-endian: on such machines their memory is the format.
        bytes.extend_from_slice(bytemuck::cast_slice(&s.types));
        bytes.extend_from_slice(bytemuck::cast_slice(&s.positions));
        bytes.extend_from_slice(bytemuck::cast_slice(&s.velocities));
        bytes.extend_from_slice(bytemuck::cast_slice(&s.images));
        if let Some(reference) = &self.reference {
            bytes.extend_from_slice(bytemuck::cast_slice(reference));
        }
        bytes.extend_from_slice(bytemuck::cast_slice(&self.potential));
        let sum = fnv1a(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        bytes
    }

    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let corrupt = |reason: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_path_buf(),
            });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if !(1..=VERSION).contains(&version) {
            return Err(CheckpointError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        if fnv1a(body) != u64::from_le_bytes(tail.try_into().unwrap()) {
            return Err(corrupt("checksum mismatch"));
        }
        let mut reader = Reader {
            bytes: body,
            at: 12,
        };
        let header_len = reader.u64().ok_or_else(|| corrupt("no header"))? as usize;
        let header: Header = serde_json::from_slice(
            reader
                .take(header_len)
                .ok_or_else(|| corrupt("short header"))?,
        )
        .map_err(|e| corrupt(&format!("header: {e}")))?;
        let n = header.n_atoms;
        let types: Vec<u32> = (0..n)
            .map(|_| reader.u32())
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("types"))?;
        let positions = reader.vecs(n).ok_or_else(|| corrupt("positions"))?;
        let velocities = reader.vecs(n).ok_or_else(|| corrupt("velocities"))?;
        let images: Vec<[i32; 3]> = (0..n)
            .map(|_| Some([reader.i32()?, reader.i32()?, reader.i32()?]))
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("images"))?;
        let reference = if header.has_reference {
            Some(reader.vecs(n).ok_or_else(|| corrupt("reference"))?)
        } else {
            None
        };
        let potential: Vec<f64> = (0..header.potential_values)
            .map(|_| reader.f64())
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("the potential's state"))?;
        if reader.at != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        if types.iter().any(|&t| t as usize >= header.species.len()) {
            return Err(corrupt("species index out of range"));
        }
        let cell = if header.bounded {
            Cell::new(header.cell, header.pbc).map_err(|e| corrupt(&e.to_string()))?
        } else {
            Cell::open()
        };
        let species = header
            .species
            .into_iter()
            .map(|(name, mass)| Species { name, mass })
            .collect();
        let system = System {
            species,
            types,
            positions,
            velocities,
            images,
            cell,
        };
        Ok(Checkpoint {
            step: header.step,
            system,
            reference,
            reference_cell: header.reference_cell,
            threads: header.threads,
            integrator: match (header.integrator, header.langevin_seed) {
                (Some(state), _) => state,
                // Version 1 named the one state it had.
                (None, Some(seed)) => Integrator::Langevin { temperature: 0.0, damping: 1.0, seed, zero: false }.state(),
                (None, None) => Integrator::VelocityVerlet.state(),
            },
            potential,
        })
    }
}

/// Writes `bytes` to `path.tmp`, syncs it, and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// FNV-1a 64 of `bytes`: the checksum that ends every checkpoint.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn vecs(&mut self, n: usize) -> Option<Vec<Vec3>> {
        (0..n)
            .map(|_| Some([self.f64()?, self.f64()?, self.f64()?]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let cell = Cell::new(
            [[5.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.0, 0.5, 7.0]],
            [true, true, false],
        )
        .unwrap();
        let system = System {
            species: vec![
                Species {
                    name: "Ar".into(),
                    mass: 39.948,
                },
                Species {
                    name: "Kr".into(),
                    mass: 83.798,
                },
            ],
            types: vec![0, 1, 0],
            positions: vec![[0.1, 0.2, 0.3], [1.0 / 3.0, 2.5, -0.7], [4.9, 5.9, 6.9]],
            velocities: vec![
                [1e-3, -2.0, 3.5],
                [0.0, 0.0, 0.0],
                [f64::MIN_POSITIVE, 1.0, -1.0],
            ],
            images: vec![[0, 0, 0], [-1, 2, 0], [3, 0, 0]],
            cell,
        };
        Checkpoint {
            step: 1234,
            reference: Some(system.positions.clone()),
            reference_cell: None,
            system,
            threads: 2,
            // A seed beyond f64's integers and a float kept as its bits (exact in JSON).
            integrator: crate::integrate::IntegratorState {
                kind: "langevin".into(),
                values: [("seed".to_string(), (u64::MAX - 3).into()), ("xi".to_string(), (0.1f64 + 0.2).to_bits().into())].into(),
            },
            potential: Vec::new(),
        }
    }

    #[test]
    fn a_potentials_carried_state_round_trips_in_version_3_and_only_then() {
        let dir = std::env::temp_dir().join(format!("mdrun-chk-state-{}", std::process::id()));
        let version = |path: &Path| u32::from_le_bytes(std::fs::read(path).unwrap()[8..12].try_into().unwrap());
        let plain = dir.join("plain.chk");
        sample().write(&plain).unwrap();
        assert_eq!(version(&plain), 2, "a checkpoint without carried state keeps version 2");
        let mut chk = sample();
        chk.potential = vec![2.0, 3.0, 0.1 + 0.2, -1.0 / 3.0, f64::MIN_POSITIVE, 1e300, -0.0, 7.0];
        let path = dir.join("state.chk");
        chk.write(&path).unwrap();
        assert_eq!(version(&path), 3);
        let back = Checkpoint::read(&path).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.potential), bits(&chk.potential));
        assert_eq!(back.system.positions, chk.system.positions);
        // One value short is a corrupt file, not a shorter state.
        let mut bytes = std::fs::read(&path).unwrap();
        let json_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[20..20 + json_len].to_vec()).unwrap();
        assert!(header.contains("\"potential_values\":8"), "{header}");
        bytes.drain(bytes.len() - 16..bytes.len() - 8);
        let sum = fnv1a(&bytes[..bytes.len() - 8]);
        let at = bytes.len() - 8;
        bytes[at..].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(Checkpoint::read(&path), Err(CheckpointError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn roundtrip_is_exact_and_corruption_is_caught() {
        let dir = std::env::temp_dir().join(format!("mdrun-chk-{}", std::process::id()));
        let path = dir.join("a.chk");
        let chk = sample();
        chk.write(&path).unwrap();
        assert!(
            !dir.join("a.chk.tmp").exists(),
            "temporary file left behind"
        );
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.step, 1234);
        assert_eq!(back.threads, 2);
        assert_eq!(back.system.positions, chk.system.positions);
        assert_eq!(back.system.velocities, chk.system.velocities);
        assert_eq!(back.system.images, chk.system.images);
        assert_eq!(back.system.types, chk.system.types);
        assert_eq!(back.system.species, chk.system.species);
        assert_eq!(back.system.cell, chk.system.cell);
        assert_eq!(back.reference, chk.reference);
        assert_eq!(back.integrator, chk.integrator);

        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Checkpoint::read(&path),
            Err(CheckpointError::Corrupt { .. })
        ));
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        assert!(matches!(
            Checkpoint::read(&path),
            Err(CheckpointError::Corrupt { .. })
        ));
        std::fs::write(&path, b"hello world, not a checkpoint").unwrap();
        assert!(matches!(
            Checkpoint::read(&path),
            Err(CheckpointError::NotACheckpoint { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A version 1 file (its integrator state was one field, `langevin_seed`) reads as the
    /// Langevin state it names.
    #[test]
    fn version_1_files_are_read() {
        let dir = std::env::temp_dir().join(format!("mdrun-chk1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let chk = sample();
        let s = &chk.system;
        for (seed, kind) in [(serde_json::json!(42u64), "langevin"), (serde_json::Value::Null, "verlet")] {
            let header = serde_json::json!({
                "step": chk.step, "n_atoms": s.len(),
                "species": s.species.iter().map(|sp| (sp.name.clone(), sp.mass)).collect::<Vec<_>>(),
                "cell": s.cell.vectors(), "pbc": s.cell.pbc(), "bounded": true, "threads": 2,
                "has_reference": true, "langevin_seed": seed,
            });
            let path = dir.join("v1.chk");
            std::fs::write(&path, chk.encode(1, &serde_json::to_vec(&header).unwrap())).unwrap();
            let back = Checkpoint::read(&path).unwrap();
            assert_eq!(back.integrator.kind, kind);
            assert_eq!(back.integrator.values.get("seed").and_then(|v| v.as_u64()), seed.as_u64());
            assert_eq!(back.system.positions, s.positions);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
