//! The state being simulated, as plain data (struct of arrays): species, per-atom positions,
//! velocities and image counts, and the cell. Behaviour lives in small functions elsewhere
//! (integrators, potentials); here only quantities that follow from the state alone.
//!
//! Atom ids in messages are 1-based positions in the input structure, as LAMMPS numbers atoms.

use crate::cell::{Cell, Vec3};
use crate::units::{BOLTZ, MVV2E};

/// One kind of atom: its label (an element symbol, or any name with a mass given by the user)
/// and its mass.
#[derive(Clone, Debug, PartialEq)]
pub struct Species {
    pub name: String,
    /// amu
    pub mass: f64,
}

#[derive(Clone, Debug)]
pub struct System {
    pub species: Vec<Species>,
    /// Index into `species`, per atom.
    pub types: Vec<u32>,
    /// Å. Wrapped into the cell only when the neighbour list is rebuilt.
    pub positions: Vec<Vec3>,
    /// Å/ps.
    pub velocities: Vec<Vec3>,
    /// How many times each atom has been wrapped through each periodic axis, so that
    /// `positions + images · cell` is the unwrapped trajectory.
    pub images: Vec<[i32; 3]>,
    pub cell: Cell,
}

impl System {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn mass(&self, atom: usize) -> f64 {
        self.species[self.types[atom] as usize].mass
    }

    pub fn masses(&self) -> Vec<f64> {
        self.types
            .iter()
            .map(|&t| self.species[t as usize].mass)
            .collect()
    }

    pub fn species_name(&self, atom: usize) -> &str {
        &self.species[self.types[atom] as usize].name
    }

    /// Number of atoms of each species, in species order.
    pub fn species_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.species.len()];
        for &t in &self.types {
            counts[t as usize] += 1;
        }
        counts
    }

    /// Kinetic energy tensor Σ m v_a v_b (eV), the kinetic part of the pressure tensor times V.
    pub fn kinetic_tensor(&self) -> [[f64; 3]; 3] {
        let mut k = [[0.0; 3]; 3];
        for (i, v) in self.velocities.iter().enumerate() {
            let m = self.mass(i);
            for a in 0..3 {
                for b in 0..3 {
                    k[a][b] += m * v[a] * v[b];
                }
            }
        }
        k.map(|row| row.map(|x| x * MVV2E))
    }

    /// ½ Σ m v², eV.
    pub fn kinetic_energy(&self) -> f64 {
        let k = self.kinetic_tensor();
        0.5 * (k[0][0] + k[1][1] + k[2][2])
    }

    /// Degrees of freedom used for the temperature: 3N - 3, as LAMMPS counts them (the centre of
    /// mass motion is removed), or 3 for a lone atom.
    pub fn degrees_of_freedom(&self) -> f64 {
        let n = self.len() as f64;
        if self.len() > 1 {
            3.0 * n - 3.0
        } else {
            3.0 * n
        }
    }

    /// Kinetic temperature, K.
    pub fn temperature(&self) -> f64 {
        2.0 * self.kinetic_energy() / (self.degrees_of_freedom() * BOLTZ)
    }

    /// Total momentum, amu Å/ps.
    pub fn momentum(&self) -> Vec3 {
        let mut p = [0.0; 3];
        for (i, v) in self.velocities.iter().enumerate() {
            let m = self.mass(i);
            for k in 0..3 {
                p[k] += m * v[k];
            }
        }
        p
    }

    /// Removes the centre-of-mass velocity.
    pub fn zero_momentum(&mut self) {
        let p = self.momentum();
        let total_mass: f64 = (0..self.len()).map(|i| self.mass(i)).sum();
        let vcm = p.map(|x| x / total_mass);
        for v in &mut self.velocities {
            for k in 0..3 {
                v[k] -= vcm[k];
            }
        }
    }

    /// Positions with the periodic wraps undone.
    pub fn unwrapped_positions(&self) -> Vec<Vec3> {
        self.positions
            .iter()
            .zip(&self.images)
            .map(|(r, &n)| crate::cell::add(*r, self.cell.shift_vector(n)))
            .collect()
    }

    /// Moves to the cell with `vectors`, every atom keeping its fractional coordinates
    /// (x' = H' H⁻¹ x, one 3 x 3 map, diagonal for an orthogonal cell; parallel over fixed
    /// chunks for large systems). Returns false, with every position made non-finite, when the
    /// vectors make no cell (a runaway barostat): the next force check then stops the run as
    /// a blow-up, with the last good state saved.
    pub fn move_to_cell(&mut self, vectors: [Vec3; 3]) -> bool {
        let cell = match crate::cell::Cell::new(vectors, self.cell.pbc()) {
            Ok(cell) if vectors.iter().flatten().all(|x| x.is_finite()) => cell,
            _ => {
                for x in &mut self.positions {
                    *x = [f64::NAN; 3];
                }
                return false;
            }
        };
        let map: [Vec3; 3] = [0, 1, 2].map(|k| {
            let mut e = [0.0; 3];
            e[k] = 1.0;
            cell.cartesian(self.cell.fractional(e))
        });
        let diagonal = self.cell.is_orthorhombic();
        let apply = |x: &mut Vec3| {
            *x = if diagonal {
                [x[0] * map[0][0], x[1] * map[1][1], x[2] * map[2][2]]
            } else {
                [0, 1, 2].map(|d| map[0][d] * x[0] + map[1][d] * x[1] + map[2][d] * x[2])
            };
        };
        if self.positions.len() >= 16_384 {
            use rayon::prelude::*;
            self.positions.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(apply));
        } else {
            self.positions.iter_mut().for_each(apply);
        }
        self.cell = cell;
        true
    }

    /// Wraps every atom into the cell along periodic axes, counting the wraps in `images`.
    pub fn wrap_positions(&mut self) {
        for (r, img) in self.positions.iter_mut().zip(self.images.iter_mut()) {
            let (wrapped, shift) = self.cell.wrap(*r);
            *r = wrapped;
            for k in 0..3 {
                img[k] += shift[k];
            }
        }
    }
}
