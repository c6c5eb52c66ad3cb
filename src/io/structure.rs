//! Reading a starting structure with chemfiles: any format it reads (XYZ and extended XYZ,
//! PDB, CIF, LAMMPS data and dumps, GRO, mmCIF, ...). Extended XYZ's `Lattice=` sets the cell
//! and its `pbc=` the periodicity.

use crate::cell::Vec3;
use std::path::{Path, PathBuf};

/// What a structure file holds, before it becomes a [`crate::system::System`].
#[derive(Clone, Debug, PartialEq)]
pub struct StructureData {
    /// Species label per atom: the element symbol when the format has one, else the atom name.
    pub names: Vec<String>,
    pub positions: Vec<Vec3>,
    /// Å/ps, when the format carries velocities.
    pub velocities: Option<Vec<Vec3>>,
    /// Edge vectors (rows), when the file has a cell.
    pub cell: Option<[Vec3; 3]>,
    pub pbc: Option<[bool; 3]>,
}

/// The structure tiled `counts` times along its cell vectors (LAMMPS's `replicate`): copies in
/// x-fastest order, each a whole copy of the original atoms; the cell grows by the same counts.
pub fn replicate(data: StructureData, counts: [usize; 3]) -> Result<StructureData, String> {
    let cell = data.cell.ok_or("the structure has no cell to repeat (give one in the file, e.g. extended XYZ Lattice=)")?;
    let n = data.positions.len();
    let total = counts.iter().fold(n as u128, |t, &c| t.saturating_mul(c as u128));
    crate::limits::atoms(total).map_err(|e| format!("{n} atoms repeated {}x{}x{}: {e}", counts[0], counts[1], counts[2]))?;
    let copies = counts[0] * counts[1] * counts[2];
    let mut out = StructureData {
        names: Vec::with_capacity(n * copies),
        positions: Vec::with_capacity(n * copies),
        velocities: data.velocities.as_ref().map(|_| Vec::with_capacity(n * copies)),
        cell: Some([0, 1, 2].map(|a| cell[a].map(|x| x * counts[a] as f64))),
        pbc: data.pbc,
    };
    for k in 0..counts[2] {
        for j in 0..counts[1] {
            for i in 0..counts[0] {
                let shift = [0, 1, 2].map(|c| i as f64 * cell[0][c] + j as f64 * cell[1][c] + k as f64 * cell[2][c]);
                out.names.extend(data.names.iter().cloned());
                out.positions.extend(data.positions.iter().map(|p| [0, 1, 2].map(|c| p[c] + shift[c])));
                if let (Some(v), Some(all)) = (&data.velocities, &mut out.velocities) {
                    all.extend_from_slice(v);
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    #[error("structure file {path}: cannot be read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("structure file {path}: chemfiles could not read it: {message}")]
    Chemfiles { path: PathBuf, message: String },
    #[error("structure file {path}: has {frames} frame(s), frame {frame} was asked for")]
    NoSuchFrame {
        path: PathBuf,
        frames: usize,
        frame: usize,
    },
    #[error("structure file {path}: holds no atoms")]
    Empty { path: PathBuf },
    #[error("structure file {path}: atom {id} has a non-finite position {pos:?}")]
    BadPosition { path: PathBuf, id: usize, pos: Vec3 },
    #[error("structure file {path}: pbc={value:?} should be three of T/F (as in pbc=\"T T F\")")]
    BadPbc { path: PathBuf, value: String },
}

/// Reads frame `frame` (0-based) of `path`; `format` is a chemfiles format name ("XYZ", "PDB",
/// ...) or empty to guess it from the extension.
pub fn read(path: &Path, format: &str, frame: usize) -> Result<StructureData, StructureError> {
    super::guard::guarded(path, || read_unguarded(path, format, frame)).unwrap_or_else(|message| {
        Err(StructureError::Chemfiles { path: path.to_path_buf(), message })
    })
}

fn read_unguarded(path: &Path, format: &str, frame: usize) -> Result<StructureData, StructureError> {
    // A clear message for the common failures before chemfiles gives its own.
    if let Err(e) = std::fs::File::open(path) {
        return Err(StructureError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        });
    }
    // mdrun's own checkpoint (as `mdrun convert` writes the starting state of a deck): exact
    // positions, velocities and cell.
    if format == "mdrun-checkpoint" || (format.is_empty() && path.extension().is_some_and(|e| e == "chk")) {
        if frame > 0 {
            return Err(StructureError::NoSuchFrame { path: path.to_path_buf(), frames: 1, frame });
        }
        let chk = crate::io::checkpoint::Checkpoint::read(path).map_err(|e| StructureError::Chemfiles { path: path.to_path_buf(), message: e.to_string() })?;
        let s = chk.system;
        let unwrapped = s.unwrapped_positions();
        return Ok(StructureData {
            names: (0..s.len()).map(|i| s.species_name(i).to_string()).collect(),
            positions: unwrapped,
            velocities: Some(s.velocities.clone()),
            cell: s.cell.is_bounded().then(|| *s.cell.vectors()),
            pbc: Some(s.cell.pbc()),
        });
    }
    let chem = |e: chemfiles::Error| StructureError::Chemfiles {
        path: path.to_path_buf(),
        message: e.message,
    };
    let is_xyz = super::guard::is_xyz(path, format);
    super::guard::refuse_what_breaks_chemfiles(path, format).map_err(|message| StructureError::Chemfiles { path: path.to_path_buf(), message })?;
    let mut trajectory = super::open_trajectory(path, format, 'r').map_err(chem)?;
    let frames = trajectory.nsteps();
    if frame >= frames {
        return Err(StructureError::NoSuchFrame {
            path: path.to_path_buf(),
            frames,
            frame,
        });
    }
    let mut data = chemfiles::Frame::new();
    trajectory.read_step(frame, &mut data).map_err(chem)?;
    let mut out = from_frame(&data, path)?;
    // chemfiles reads `Lattice=` only from extended XYZ comment lines that have
    // `Properties=`; without it the cell would be dropped silently.
    if is_xyz && out.cell.is_none() {
        if let Some(comment) = xyz_comment(path, frame) {
            if let Some(lattice) = super::key_value(&comment, "Lattice") {
                let numbers: Vec<f64> = lattice.split_whitespace().filter_map(|w| w.parse().ok()).collect();
                if numbers.len() != 9 || numbers.iter().any(|x| !x.is_finite()) {
                    return Err(StructureError::Chemfiles { path: path.to_path_buf(), message: format!("frame {frame}: Lattice=\"{lattice}\" should be nine numbers (three edge vectors)") });
                }
                out.cell = Some([0, 1, 2].map(|r| [numbers[3 * r], numbers[3 * r + 1], numbers[3 * r + 2]]));
                if out.pbc.is_none() {
                    if let Some(pbc) = super::key_value(&comment, "pbc") {
                        out.pbc = Some(parse_pbc(&pbc).ok_or_else(|| StructureError::BadPbc { path: path.to_path_buf(), value: pbc.clone() })?);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The comment line of frame `frame` of an XYZ file (None if the file is shorter or odd).
fn xyz_comment(path: &Path, frame: usize) -> Option<String> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(std::fs::File::open(path).ok()?).lines();
    for _ in 0..frame {
        let n: usize = lines.next()?.ok()?.trim().parse().ok()?;
        for _ in 0..n + 1 {
            lines.next()?.ok()?;
        }
    }
    lines.next()?.ok()?;
    lines.next()?.ok()
}


/// The contents of one chemfiles frame read from `path` (named in errors).
pub fn from_frame(data: &chemfiles::Frame, path: &Path) -> Result<StructureData, StructureError> {
    if data.size() == 0 {
        return Err(StructureError::Empty {
            path: path.to_path_buf(),
        });
    }

    let names = (0..data.size())
        .map(|i| {
            let atom = data.atom(i);
            let kind = atom.atomic_type();
            if kind.trim().is_empty() {
                atom.name()
            } else {
                element_case(kind)
            }
        })
        .collect();
    let positions = data.positions().to_vec();
    if let Some(id) = positions
        .iter()
        .position(|r| r.iter().any(|x| !x.is_finite()))
    {
        return Err(StructureError::BadPosition {
            path: path.to_path_buf(),
            id: id + 1,
            pos: positions[id],
        });
    }
    // Native velocities, or the `velo` column mdrun writes into extended XYZ (Å/ps).
    // (Asking chemfiles for a missing property prints a warning: look at the names first.)
    let has_velo = data.atom(0).properties().any(|(name, _)| name == "velo");
    let velocities = data.velocities().map(|v| v.to_vec()).or_else(|| {
        has_velo.then(|| {
            (0..data.size())
                .map(|i| match data.atom(i).get("velo") {
                    Some(chemfiles::Property::Vector3D(v)) => Some(v),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
        })?
    });

    let cell = cell_vectors(data);
    let has_pbc = data.properties().any(|(name, _)| name == "pbc");
    let pbc = match has_pbc.then(|| data.get("pbc")).flatten() {
        Some(chemfiles::Property::String(s)) => {
            Some(parse_pbc(&s).ok_or_else(|| StructureError::BadPbc {
                path: path.to_path_buf(),
                value: s.clone(),
            })?)
        }
        Some(chemfiles::Property::Bool(b)) => Some([b; 3]),
        _ => None,
    };
    Ok(StructureData {
        names,
        positions,
        velocities,
        cell,
        pbc,
    })
}

/// PDB element columns are often capitals ("AR", "CL"): an element symbol in any case is
/// written as the element; other labels stay as they are.
fn element_case(kind: String) -> String {
    if crate::elements::atomic_number(&kind).is_some() {
        return kind;
    }
    let mut chars = kind.chars();
    let titled: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars.map(|c| c.to_ascii_lowercase())).collect();
    if crate::elements::atomic_number(&titled).is_some() { titled } else { kind }
}

/// The frame's cell as edge vectors (rows), None for an infinite cell.
pub fn cell_vectors(data: &chemfiles::Frame) -> Option<[Vec3; 3]> {
    let unit_cell = data.cell();
    match unit_cell.shape() {
        chemfiles::CellShape::Infinite => None,
        _ => {
            // chemfiles stores the edge vectors as columns.
            let m = unit_cell.matrix();
            Some([0, 1, 2].map(|c| [m[0][c], m[1][c], m[2][c]]))
        }
    }
}

/// "T T F", "True True False", "1 1 0" as extended XYZ writes them.
fn parse_pbc(text: &str) -> Option<[bool; 3]> {
    let flags: Vec<bool> = text
        .split_whitespace()
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" => Some(true),
            "f" | "false" | "0" => Some(false),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match flags.as_slice() {
        [a, b, c] => Some([*a, *b, *c]),
        [a] => Some([*a; 3]),
        _ => None,
    }
}

static WARNINGS_MUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Routes chemfiles' warnings through mdrun's stderr with a prefix, once per process.
pub fn route_chemfiles_warnings() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        chemfiles::set_warning_callback(|message: &str| {
            if !WARNINGS_MUTED.load(std::sync::atomic::Ordering::Relaxed) {
                eprintln!("warning (chemfiles): {message}")
            }
        })
    });
}

/// A frame property that may be absent, asked for without chemfiles' "not found" warning.
pub fn optional_property(frame: &chemfiles::Frame, name: &str) -> Option<chemfiles::Property> {
    use std::sync::atomic::Ordering;
    WARNINGS_MUTED.store(true, Ordering::Relaxed);
    let value = frame.get(name);
    WARNINGS_MUTED.store(false, Ordering::Relaxed);
    value
}

#[cfg(test)]
mod tests {
    use super::parse_pbc;

    #[test]
    fn extended_xyz_keys_and_element_case() {
        use super::element_case;
        use crate::io::key_value;
        let c = r#"Lattice="10 0 0 0 11 0 0 0 12" pbc="T T F" energy=-3.5"#;
        assert_eq!(key_value(c, "Lattice").as_deref(), Some("10 0 0 0 11 0 0 0 12"));
        assert_eq!(key_value(c, "pbc").as_deref(), Some("T T F"));
        assert_eq!(key_value(c, "energy").as_deref(), Some("-3.5"));
        assert_eq!(key_value("xLattice=1", "Lattice"), None);
        assert_eq!(element_case("AR".into()), "Ar");
        assert_eq!(element_case("CL".into()), "Cl");
        assert_eq!(element_case("C".into()), "C");
        assert_eq!(element_case("OW".into()), "OW");
    }

    #[test]
    fn pbc_flags() {
        assert_eq!(parse_pbc("T T F"), Some([true, true, false]));
        assert_eq!(parse_pbc("True False True"), Some([true, false, true]));
        assert_eq!(parse_pbc("T"), Some([true; 3]));
        assert_eq!(parse_pbc("yes"), None);
    }
}
