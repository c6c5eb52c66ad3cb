//! The simulation cell: three edge vectors (any triclinic shape) and periodicity per axis.
//!
//! Fractional coordinates `s` relate to Cartesian ones by `r = s[0] a + s[1] b + s[2] c`.
//! Along a periodic axis atoms are wrapped into `0 <= s < 1` (only when the neighbour list is
//! rebuilt, so that the pairs it stores stay valid in between). Along an open axis the vector
//! only defines the frame; atoms may sit anywhere. A system with no cell at all is open on all
//! three axes and has no volume.

use nalgebra::{Matrix3, Vector3};

pub type Vec3 = [f64; 3];

#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Edge vectors a, b, c (rows), Å.
    vectors: [Vec3; 3],
    /// Maps Cartesian to fractional: s = inverse * r (column vectors).
    inverse: Matrix3<f64>,
    pbc: [bool; 3],
    /// False for a system given without any cell: no volume, no pressure.
    bounded: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CellError {
    #[error(
        "the cell vectors are degenerate (volume {volume:.3e} Å³); give three independent vectors"
    )]
    Degenerate { volume: f64 },
    #[error("the cell has a non-finite component")]
    NotFinite,
}

impl Cell {
    /// A cell from its edge vectors (rows) and periodicity.
    pub fn new(vectors: [Vec3; 3], pbc: [bool; 3]) -> Result<Cell, CellError> {
        if vectors.iter().flatten().any(|x| !x.is_finite()) {
            return Err(CellError::NotFinite);
        }
        let m = Matrix3::from_fn(|r, c| vectors[c][r]);
        let volume = m.determinant();
        let scale = vectors.iter().map(|v| norm(*v)).product::<f64>();
        if !(volume.abs() > 1e-10 * scale) {
            return Err(CellError::Degenerate { volume });
        }
        let inverse = m.try_inverse().ok_or(CellError::Degenerate { volume })?;
        Ok(Cell {
            vectors,
            inverse,
            pbc,
            bounded: true,
        })
    }

    /// An orthorhombic box with edges lx, ly, lz, periodic on all axes.
    pub fn orthorhombic(lx: f64, ly: f64, lz: f64) -> Result<Cell, CellError> {
        Cell::new([[lx, 0.0, 0.0], [0.0, ly, 0.0], [0.0, 0.0, lz]], [true; 3])
    }

    /// No cell: open boundaries on every axis.
    pub fn open() -> Cell {
        let mut cell = Cell::new(
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [false; 3],
        )
        .unwrap();
        cell.bounded = false;
        cell
    }

    /// A cell from lengths (Å) and angles (degrees), in the conventional orientation: a along x,
    /// b in the xy plane (as LAMMPS and chemfiles orient it).
    pub fn from_lengths_angles(
        lengths: Vec3,
        angles_deg: Vec3,
        pbc: [bool; 3],
    ) -> Result<Cell, CellError> {
        let [la, lb, lc] = lengths;
        let [alpha, beta, gamma] = angles_deg.map(f64::to_radians);
        let (cos_a, cos_b, cos_g, sin_g) = (alpha.cos(), beta.cos(), gamma.cos(), gamma.sin());
        // Snap cosines of right angles to exact zero so orthorhombic cells stay orthorhombic.
        let snap = |x: f64| if x.abs() < 1e-12 { 0.0 } else { x };
        let (cos_a, cos_b, cos_g) = (snap(cos_a), snap(cos_b), snap(cos_g));
        let a = [la, 0.0, 0.0];
        let b = [lb * cos_g, lb * sin_g, 0.0];
        let cx = lc * cos_b;
        let cy = lc * (cos_a - cos_b * cos_g) / sin_g;
        let cz = (lc * lc - cx * cx - cy * cy).max(0.0).sqrt();
        Cell::new([a, b, [cx, cy, cz]], pbc)
    }

    pub fn vectors(&self) -> &[Vec3; 3] {
        &self.vectors
    }

    pub fn pbc(&self) -> [bool; 3] {
        self.pbc
    }

    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    pub fn any_periodic(&self) -> bool {
        self.pbc.iter().any(|&p| p)
    }

    /// True when a is along x, b along y and c along z.
    pub fn is_orthorhombic(&self) -> bool {
        let v = &self.vectors;
        v[0][1] == 0.0
            && v[0][2] == 0.0
            && v[1][0] == 0.0
            && v[1][2] == 0.0
            && v[2][0] == 0.0
            && v[2][1] == 0.0
    }

    /// Volume in Å³; zero for a system without a cell.
    pub fn volume(&self) -> f64 {
        if !self.bounded {
            return 0.0;
        }
        let [a, b, c] = self.vectors;
        dot(a, cross(b, c)).abs()
    }

    /// Distance between the two faces of the cell that cross axis k (the cell's thickness along
    /// the normal of those faces). A sphere of radius r fits in the cell iff r <= width/2.
    pub fn perpendicular_widths(&self) -> Vec3 {
        let [a, b, c] = self.vectors;
        let v = dot(a, cross(b, c)).abs();
        [
            v / norm(cross(b, c)),
            v / norm(cross(c, a)),
            v / norm(cross(a, b)),
        ]
    }

    pub fn lengths(&self) -> Vec3 {
        self.vectors.map(norm)
    }

    /// Angles alpha (b,c), beta (a,c), gamma (a,b) in degrees.
    pub fn angles(&self) -> Vec3 {
        let [a, b, c] = self.vectors;
        let angle = |u: Vec3, v: Vec3| {
            (dot(u, v) / (norm(u) * norm(v)))
                .clamp(-1.0, 1.0)
                .acos()
                .to_degrees()
        };
        [angle(b, c), angle(a, c), angle(a, b)]
    }

    /// The reciprocal vectors b_m (rows) with a_l · b_m = δ_lm: s_m = b_m · r.
    pub fn reciprocal_vectors(&self) -> [Vec3; 3] {
        [0, 1, 2].map(|m| [0, 1, 2].map(|c| self.inverse[(m, c)]))
    }

    /// The thinnest of `perpendicular_widths`.
    pub fn thinnest_width(&self) -> f64 {
        self.perpendicular_widths().into_iter().fold(f64::INFINITY, f64::min)
    }

    pub fn fractional(&self, r: Vec3) -> Vec3 {
        let s = self.inverse * Vector3::from(r);
        [s[0], s[1], s[2]]
    }

    pub fn cartesian(&self, s: Vec3) -> Vec3 {
        let [a, b, c] = self.vectors;
        [0, 1, 2].map(|k| s[0] * a[k] + s[1] * b[k] + s[2] * c[k])
    }

    /// The Cartesian vector of an integer image shift.
    pub fn shift_vector(&self, n: [i32; 3]) -> Vec3 {
        self.cartesian(n.map(f64::from))
    }

    /// Wraps a position into the cell along periodic axes; returns the wrapped position and the
    /// image shift that was removed (`r = wrapped + shift_vector(image)`).
    pub fn wrap(&self, r: Vec3) -> (Vec3, [i32; 3]) {
        let mut s = self.fractional(r);
        let mut image = [0i32; 3];
        for k in 0..3 {
            if self.pbc[k] {
                let n = s[k].floor();
                s[k] -= n;
                // Rounding can leave s == 1.0 exactly; fold it back to 0.
                if s[k] >= 1.0 {
                    s[k] -= 1.0;
                    image[k] = n as i32 + 1;
                } else {
                    image[k] = n as i32;
                }
            }
        }
        if image == [0; 3] {
            return (r, image);
        }
        let shift = self.shift_vector(image);
        ([r[0] - shift[0], r[1] - shift[1], r[2] - shift[2]], image)
    }
}

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triclinic_roundtrip_and_widths() {
        let cell = Cell::new(
            [[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, -1.0, 6.0]],
            [true; 3],
        )
        .unwrap();
        let r = [3.1, -2.2, 7.9];
        let back = cell.cartesian(cell.fractional(r));
        for k in 0..3 {
            assert!((back[k] - r[k]).abs() < 1e-12);
        }
        assert!((cell.volume() - 120.0).abs() < 1e-12);
        let w = cell.perpendicular_widths();
        assert!((w[2] - 6.0).abs() < 1e-12);
        assert!(w[0] < 4.0 && w[1] < 5.0);
    }

    #[test]
    fn wrap_puts_atoms_in_the_cell_and_reports_images() {
        let cell = Cell::new(
            [[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, -1.0, 6.0]],
            [true, true, false],
        )
        .unwrap();
        let r = [-9.0, 12.0, 20.0];
        let (w, img) = cell.wrap(r);
        let s = cell.fractional(w);
        assert!((0.0..1.0).contains(&s[0]) && (0.0..1.0).contains(&s[1]));
        assert_eq!(img[2], 0, "open axis is never wrapped");
        let back = add(w, cell.shift_vector(img));
        for k in 0..3 {
            assert!((back[k] - r[k]).abs() < 1e-12);
        }
    }

    #[test]
    fn lengths_angles_give_the_conventional_cell() {
        let cell =
            Cell::from_lengths_angles([3.0, 4.0, 5.0], [90.0, 90.0, 90.0], [true; 3]).unwrap();
        assert!(cell.is_orthorhombic());
        let cell =
            Cell::from_lengths_angles([3.0, 4.0, 5.0], [80.0, 95.0, 110.0], [true; 3]).unwrap();
        let ang = cell.angles();
        assert!(
            (ang[0] - 80.0).abs() < 1e-9
                && (ang[1] - 95.0).abs() < 1e-9
                && (ang[2] - 110.0).abs() < 1e-9
        );
        assert!(
            Cell::new(
                [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                [true; 3]
            )
            .is_err()
        );
    }
}
