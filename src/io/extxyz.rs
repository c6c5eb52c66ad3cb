//! Extended XYZ frames as ASE and mdrun's training data read them: the atom count, a comment
//! line of key=value pairs (`Lattice=` and `pbc=` when the cell has them), then one line per
//! atom. Floats are written in full (shortest round-trip), so a frame read back is the frame.

use crate::cell::{Cell, Vec3};
use crate::system::System;
use std::fmt::Write as _;

/// The unlabelled frame of `system`'s atoms as they are now, with `info` pairs.
pub fn system_frame(system: &System, info: Vec<(String, String)>) -> String {
    let symbols: Vec<&str> = (0..system.len()).map(|i| system.species_name(i)).collect();
    Frame { symbols: &symbols, positions: &system.positions, cell: &system.cell, info, energy: None, forces: None }.text()
}

/// One frame: `symbols` and `positions` per atom, the `cell`, extra `info` pairs (values written
/// as given: quote strings yourself), and, when labelled, `energy` (eV) and `forces` (eV/Å).
pub struct Frame<'a> {
    pub symbols: &'a [&'a str],
    pub positions: &'a [Vec3],
    pub cell: &'a Cell,
    pub info: Vec<(String, String)>,
    pub energy: Option<f64>,
    pub forces: Option<&'a [Vec3]>,
}

impl Frame<'_> {
    /// The frame's lines, ending in a newline.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.positions.len());
        let mut comment: Vec<String> = Vec::new();
        if self.cell.is_bounded() {
            let v = self.cell.vectors().iter().flatten().map(|x| format!("{x:?}")).collect::<Vec<_>>();
            comment.push(format!("Lattice=\"{}\"", v.join(" ")));
        }
        let pbc = self.cell.pbc().map(|p| if p { "T" } else { "F" });
        comment.push(format!("pbc=\"{}\"", pbc.join(" ")));
        if let Some(e) = self.energy {
            comment.push(format!("energy={e:?}"));
        }
        comment.extend(self.info.iter().map(|(k, v)| format!("{k}={v}")));
        comment.push(format!("Properties=species:S:1:pos:R:3{}", if self.forces.is_some() { ":forces:R:3" } else { "" }));
        let _ = writeln!(out, "{}", comment.join(" "));
        for (i, (s, r)) in self.symbols.iter().zip(self.positions).enumerate() {
            let _ = write!(out, "{s} {:?} {:?} {:?}", r[0], r[1], r[2]);
            if let Some(f) = self.forces {
                let _ = write!(out, " {:?} {:?} {:?}", f[i][0], f[i][1], f[i][2]);
            }
            out.push('\n');
        }
        out
    }
}
