//! Crystal lattices built in place of a structure file (LAMMPS `lattice` + `create_atoms box`):
//! simple cubic, bcc, fcc, diamond and hcp, repeated along the three axes.
//!
//! Atoms are created in LAMMPS's order (z outermost, then y, then x, then the basis), so a
//! lattice here numbers its atoms as the same LAMMPS deck does.

use crate::cell::Vec3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatticeKind {
    Sc,
    Bcc,
    Fcc,
    Diamond,
    Hcp,
}

impl LatticeKind {
    pub const NAMES: &'static str = "sc, bcc, fcc, diamond, hcp";

    pub fn parse(name: &str) -> Option<LatticeKind> {
        Some(match name {
            "sc" => LatticeKind::Sc,
            "bcc" => LatticeKind::Bcc,
            "fcc" => LatticeKind::Fcc,
            "diamond" => LatticeKind::Diamond,
            "hcp" => LatticeKind::Hcp,
            _ => return None,
        })
    }

    /// Basis in fractional coordinates of the unit cell.
    pub fn basis(self) -> Vec<Vec3> {
        match self {
            LatticeKind::Sc => vec![[0.0, 0.0, 0.0]],
            LatticeKind::Bcc => vec![[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
            LatticeKind::Fcc => vec![
                [0.0, 0.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.5, 0.0, 0.5],
                [0.0, 0.5, 0.5],
            ],
            LatticeKind::Diamond => vec![
                [0.0, 0.0, 0.0],
                [0.0, 0.5, 0.5],
                [0.5, 0.0, 0.5],
                [0.5, 0.5, 0.0],
                [0.25, 0.25, 0.25],
                [0.25, 0.75, 0.75],
                [0.75, 0.25, 0.75],
                [0.75, 0.75, 0.25],
            ],
            LatticeKind::Hcp => vec![
                [0.0, 0.0, 0.0],
                [0.5, 0.5, 0.0],
                [0.5, 5.0 / 6.0, 0.5],
                [0.0, 1.0 / 3.0, 0.5],
            ],
        }
    }

    /// Unit-cell edge lengths in units of the lattice constant.
    pub fn aspect(self) -> Vec3 {
        match self {
            LatticeKind::Hcp => [1.0, 3f64.sqrt(), (8.0f64 / 3.0).sqrt()],
            _ => [1.0, 1.0, 1.0],
        }
    }

    /// The lattice constant that gives `density` atoms per Å³ (LAMMPS's reduced-density form).
    pub fn constant_for_density(self, density: f64) -> f64 {
        let a = self.aspect();
        (self.basis().len() as f64 / (density * a[0] * a[1] * a[2])).cbrt()
    }
}

/// Positions and orthorhombic box edges of `repeat` unit cells with lattice constant `a`.
pub fn build(kind: LatticeKind, a: f64, repeat: [usize; 3]) -> (Vec<Vec3>, Vec3) {
    let aspect = kind.aspect();
    let edge = aspect.map(|x| x * a);
    let basis = kind.basis();
    let mut positions = Vec::with_capacity(repeat[0] * repeat[1] * repeat[2] * basis.len());
    for k in 0..repeat[2] {
        for j in 0..repeat[1] {
            for i in 0..repeat[0] {
                for b in &basis {
                    positions.push([
                        (i as f64 + b[0]) * edge[0],
                        (j as f64 + b[1]) * edge[1],
                        (k as f64 + b[2]) * edge[2],
                    ]);
                }
            }
        }
    }
    let box_edges = [0, 1, 2].map(|d| repeat[d] as f64 * edge[d]);
    (positions, box_edges)
}
