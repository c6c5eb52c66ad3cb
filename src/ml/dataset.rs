//! Reference data for training: extended XYZ as ASE and MLIP codes write it. `energy=` in the
//! comment line (eV), a per-atom `forces` column (eV/Å), optional `Lattice=`/`pbc=` for periodic
//! cells, an optional `config_type=` that names the structure type for per-type metrics, and an
//! optional `stress=` (eV/Å³, ASE's sign) or `virial=` (eV) that training fits when given.

use crate::cell::{Cell, Vec3};
use crate::elements;
use std::path::{Path, PathBuf};

/// One labelled structure.
#[derive(Clone, Debug)]
pub struct Structure {
    /// Atomic numbers.
    pub numbers: Vec<u32>,
    pub positions: Vec<Vec3>,
    pub cell: Cell,
    /// eV
    pub energy: f64,
    /// eV/Å
    pub forces: Vec<Vec3>,
    /// Structure type (`config_type=`), or "default".
    pub kind: String,
    /// Total charge, e (`charge=`, as ASE writes it; 0 when absent). Long-range models
    /// constrain their learned charges to sum to it.
    pub charge: f64,
    /// The virial W = -dE/dε = -V σ (eV, row-major 3x3), from `stress=` σ (eV/Å³, as ASE writes
    /// it: 9 components or Voigt xx yy zz yz xz xy) or `virial=` W (9 components); None when the
    /// frame has neither. Only for cells periodic along all three axes.
    pub virial: Option<[f64; 9]>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("dataset {path}, frame {frame}: {message}")]
    Frame {
        path: PathBuf,
        frame: usize,
        message: String,
    },
}

/// Reads every frame of an extended XYZ file.
pub fn read_extxyz(path: &Path) -> Result<Vec<Structure>, DatasetError> {
    crate::io::guard::guarded(path, || read_extxyz_unguarded(path))
        .unwrap_or_else(|message| Err(DatasetError::Read { path: path.to_path_buf(), message }))
}

fn read_extxyz_unguarded(path: &Path) -> Result<Vec<Structure>, DatasetError> {
    let fail = |message: String| DatasetError::Read {
        path: path.to_path_buf(),
        message,
    };
    std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    crate::io::guard::refuse_what_breaks_chemfiles(path, "XYZ").map_err(fail)?;
    crate::io::structure::route_chemfiles_warnings();
    let mut trajectory =
        chemfiles::Trajectory::open_with_format(path, 'r', "XYZ").map_err(|e| fail(e.message))?;
    let n_frames = trajectory.nsteps();
    let mut out = Vec::with_capacity(n_frames);
    let mut frame = chemfiles::Frame::new();
    for index in 0..n_frames {
        let bad = |message: String| DatasetError::Frame {
            path: path.to_path_buf(),
            frame: index,
            message,
        };
        trajectory
            .read_step(index, &mut frame)
            .map_err(|e| bad(e.message))?;
        let n = frame.size();
        if n == 0 {
            return Err(bad("no atoms".into()));
        }
        let mut numbers = Vec::with_capacity(n);
        for i in 0..n {
            let atom = frame.atom(i);
            let symbol = atom.name();
            numbers.push(elements::atomic_number(&symbol).ok_or_else(|| {
                bad(format!(
                    "atom {}: '{symbol}' is not an element symbol",
                    i + 1
                ))
            })?);
        }
        let properties: Vec<String> = frame.properties().map(|(name, _)| name).collect();
        let energy = match properties
            .iter()
            .any(|p| p == "energy")
            .then(|| frame.get("energy"))
            .flatten()
        {
            Some(chemfiles::Property::Double(e)) => e,
            Some(chemfiles::Property::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| bad(format!("energy={s} is not a number")))?,
            _ => return Err(bad("no energy= in the comment line".into())),
        };
        let has_forces = frame.atom(0).properties().any(|(name, _)| name == "forces");
        if !has_forces {
            return Err(bad("no forces column (Properties=...:forces:R:3)".into()));
        }
        let mut forces = Vec::with_capacity(n);
        for i in 0..n {
            match frame.atom(i).get("forces") {
                Some(chemfiles::Property::Vector3D(f)) => forces.push(f),
                _ => return Err(bad(format!("atom {}: forces are not three numbers", i + 1))),
            }
        }
        let kind = match properties
            .iter()
            .any(|p| p == "config_type")
            .then(|| frame.get("config_type"))
            .flatten()
        {
            Some(chemfiles::Property::String(s)) => s,
            _ => "default".to_string(),
        };
        let charge = match properties.iter().any(|p| p == "charge").then(|| frame.get("charge")).flatten() {
            Some(chemfiles::Property::Double(q)) if q.is_finite() => q,
            Some(chemfiles::Property::String(s)) => match s.trim().parse::<f64>() {
                Ok(q) if q.is_finite() => q,
                _ => return Err(bad(format!("charge={s} is not a number"))),
            },
            Some(other) => return Err(bad(format!("charge={other:?} is not a finite number"))),
            None => 0.0,
        };
        let pbc = match properties
            .iter()
            .any(|p| p == "pbc")
            .then(|| frame.get("pbc"))
            .flatten()
        {
            Some(chemfiles::Property::String(s)) => {
                let flags: Vec<bool> = s
                    .split_whitespace()
                    .map(|w| matches!(w, "T" | "True" | "true" | "1"))
                    .collect();
                if flags.len() == 3 {
                    [flags[0], flags[1], flags[2]]
                } else {
                    [flags.first().copied().unwrap_or(false); 3]
                }
            }
            Some(chemfiles::Property::Bool(b)) => [b; 3],
            _ => [true; 3],
        };
        let unit_cell = frame.cell();
        let cell = match unit_cell.shape() {
            chemfiles::CellShape::Infinite => Cell::open(),
            _ => {
                let m = unit_cell.matrix();
                Cell::new([0, 1, 2].map(|c| [m[0][c], m[1][c], m[2][c]]), pbc)
                    .map_err(|e| bad(e.to_string()))?
            }
        };
        // A NaN or infinite label would train a model of NaN weights that cannot be loaded.
        if !energy.is_finite() {
            return Err(bad(format!("energy={energy} is not a finite number")));
        }
        if let Some(i) = forces.iter().position(|f| f.iter().any(|x| !x.is_finite())) {
            return Err(bad(format!("atom {}: force {:?} is not finite", i + 1, forces[i])));
        }
        let virial = virial_label(&frame, &properties, &cell).map_err(bad)?;
        let positions = frame.positions().to_vec();
        if let Some(i) = positions.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
            return Err(bad(format!("atom {}: position {:?} is not finite", i + 1, positions[i])));
        }
        out.push(Structure {
            numbers,
            positions,
            cell,
            energy,
            forces,
            kind,
            charge,
            virial,
        });
    }
    if out.is_empty() {
        return Err(fail("holds no frames".into()));
    }
    Ok(out)
}

/// The frame's virial label (see `Structure::virial`) from `stress=` or `virial=`.
fn virial_label(frame: &chemfiles::Frame, properties: &[String], cell: &Cell) -> Result<Option<[f64; 9]>, String> {
    let label = |key: &str| properties.iter().any(|p| p == key).then(|| frame.get(key)).flatten();
    let (key, value) = match (label("stress"), label("virial")) {
        (Some(_), Some(_)) => return Err("both stress= and virial=: give one".into()),
        (Some(v), None) => ("stress", v),
        (None, Some(v)) => ("virial", v),
        (None, None) => return Ok(None),
    };
    let numbers: Vec<f64> = match &value {
        chemfiles::Property::String(s) => s.split_whitespace().map(|w| w.parse::<f64>()).collect::<Result<_, _>>().map_err(|_| format!("{key}=\"{s}\": expected 9 numbers (or 6, Voigt order xx yy zz yz xz xy)"))?,
        chemfiles::Property::Double(x) => vec![*x],
        chemfiles::Property::Vector3D(v) => v.to_vec(),
        other => return Err(format!("{key}={other:?}: expected 9 numbers (or 6, Voigt order xx yy zz yz xz xy)")),
    };
    let full: [f64; 9] = match numbers[..] {
        [xx, yy, zz, yz, xz, xy] => [xx, xy, xz, xy, yy, yz, xz, yz, zz],
        _ => numbers.as_slice().try_into().map_err(|_| format!("{key}= has {} numbers: expected 9 (or 6, Voigt order xx yy zz yz xz xy)", numbers.len()))?,
    };
    if let Some(x) = full.iter().find(|x| !x.is_finite()) {
        return Err(format!("{key}= holds {x}: expected finite numbers"));
    }
    if !cell.pbc().iter().all(|&p| p) {
        return Err(format!("{key}= on a structure that is not periodic along all three axes (Lattice= and pbc=\"T T T\"): a stress needs a volume"));
    }
    Ok(Some(match key {
        "stress" => full.map(|s| -s * cell.volume()),
        _ => full,
    }))
}
