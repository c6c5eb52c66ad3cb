//! Verlet neighbour lists built from a cell list (binning), for any triclinic cell, any mix of
//! periodic and open axes, and cutoffs larger than half the cell (a pair may then appear once
//! for each periodic image within reach, including an atom with its own images).
//!
//! The list holds every pair closer than `cutoff + skin` when it was built. It stays valid until
//! some atom has moved more than `skin / 2` from where it was at the build (two atoms then may
//! have closed the gap by at most `skin`); [`NeighborList::needs_rebuild`] measures that on the
//! positions as they evolve, which are not re-wrapped between builds, so wrapping cannot hide a
//! move. Each stored pair carries the periodic image it was found in, so `x_j + shift - x_i` is
//! the pair vector until the next build.
//!
//! Layout: compressed rows, one row per atom, stored in the order of the bins (atoms close in
//! space are close in the list, which keeps the force loop's reads in cache). Row r belongs to
//! atom `row_atom(r)`; its first part needs no image shift (most pairs, so the force loops skip
//! the shift lookup there), the rest carry an index into `shift_vectors`.

use crate::cell::{Cell, Vec3};
use rayon::prelude::*;
use std::ops::Range;

/// Which pairs a list stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Each pair once (for potentials that apply Newton's third law on the CPU).
    Half,
    /// Each pair from both sides (for per-atom gathers without write conflicts).
    Full,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeighborError {
    #[error(
        "the neighbour cutoff plus skin ({reach:.3} Å) spans {images} periodic images of the cell along axis {axis} \
         (cell thickness {width:.3} Å); mdrun supports at most {max} images per axis: enlarge the cell (replicate it) \
         or reduce the cutoff"
    )]
    TooManyImages {
        reach: f64,
        images: usize,
        axis: usize,
        width: f64,
        max: usize,
    },
    #[error("atom {id} has a non-finite position ({pos:?})")]
    NonFinitePosition { id: usize, pos: Vec3 },
    #[error(
        "atom {id} at {pos:?} lies outside the periodic cell: wrap positions before building the neighbour list"
    )]
    NotWrapped { id: usize, pos: Vec3 },
}

/// Largest |image index| per axis: keeps the shift table small (u16 indices).
const MAX_IMAGES: usize = 12;

/// What a list in force was built from: positions, and the cell when it has changed since (a
/// barostat), so a restart rebuilds exactly the list the run had.
#[derive(Clone, Debug, PartialEq)]
pub struct ListReference {
    pub positions: Vec<Vec3>,
    pub cell: Option<Cell>,
}

impl From<Vec<Vec3>> for ListReference {
    fn from(positions: Vec<Vec3>) -> ListReference {
        ListReference { positions, cell: None }
    }
}

#[derive(Clone, Debug)]
pub struct NeighborList {
    kind: ListKind,
    cutoff: f64,
    skin: f64,
    /// Atom of each row.
    row_atoms: Vec<u32>,
    /// Start of each row in `neighbors`; one more entry than rows.
    offsets: Vec<usize>,
    /// End of the unshifted part of each row.
    plain_end: Vec<usize>,
    neighbors: Vec<u32>,
    shift_ids: Vec<u16>,
    shift_vectors: Vec<Vec3>,
    /// Positions at the last build.
    reference: Vec<Vec3>,
    /// The cell at the last build and the image range of the shift table: a barostat moves
    /// the cell between builds ([`NeighborList::follow_cell`]).
    reference_cell: Option<Cell>,
    max_shift: [i64; 3],
    /// How far the cell's change since the build can bring two atoms together, Å.
    cell_drift: f64,
    builds: u64,
}

/// A run of bins around an atom's bin, contiguous along z: its atoms (one range of the
/// bin-sorted arrays) and the periodic image they are seen through.
struct Target {
    atoms: Range<usize>,
    shift_id: u16,
    shift: Vec3,
    plain: bool,
    /// The run holds the atom's own bin (unshifted).
    centre: bool,
}

/// One column of the stencil: an (x, y) bin offset and the z offsets to visit there.
struct Column {
    offset: [i64; 2],
    dz: Range<i64>,
}

/// How the cell is cut into bins for one build.
struct Binning {
    /// Bins per axis.
    n: [usize; 3],
    /// Bins to look at on each side along each axis.
    reach: [i64; 3],
    /// Lowest fractional coordinate per axis (0 for periodic axes).
    lo: [f64; 3],
    /// Fractional extent per axis (1 for periodic axes).
    extent: [f64; 3],
    /// Perpendicular thickness of one bin, Å.
    thickness: [f64; 3],
}

impl NeighborList {
    pub fn new(kind: ListKind, cutoff: f64, skin: f64) -> NeighborList {
        NeighborList {
            kind,
            cutoff,
            skin,
            row_atoms: Vec::new(),
            offsets: vec![0],
            plain_end: Vec::new(),
            neighbors: Vec::new(),
            shift_ids: Vec::new(),
            shift_vectors: vec![[0.0; 3]],
            reference: Vec::new(),
            reference_cell: None,
            max_shift: [0; 3],
            cell_drift: 0.0,
            builds: 0,
        }
    }

    /// The cell has changed since the build (a barostat): the image shifts follow it, and the
    /// rebuild check counts how far the change can bring pairs together (LAMMPS shrinks its
    /// trigger distance by the box corners' displacement the same way).
    pub fn follow_cell(&mut self, cell: &Cell) {
        let Some(old) = &self.reference_cell else { return };
        let m = self.max_shift;
        let span = m.map(|x| 2 * x + 1);
        for a in -m[0]..=m[0] {
            for b in -m[1]..=m[1] {
                for c in -m[2]..=m[2] {
                    let k = (((a + m[0]) * span[1] + (b + m[1])) * span[2] + (c + m[2])) as usize;
                    self.shift_vectors[k] = cell.shift_vector([a as i32, b as i32, c as i32]);
                }
            }
        }
        // A pair's separation through image n changes by its atoms' displacements plus
        // (H - H0) n; |(H - H0) n| <= Σ_k |n_k| |a_k - a0_k|.
        let (new, old) = (cell.vectors(), old.vectors());
        self.cell_drift = (0..3)
            .map(|k| (m[k].max(1) as f64) * crate::cell::norm(crate::cell::sub(new[k], old[k])))
            .sum();
    }

    /// The positions and, when the cell has moved since, the cell of the last build.
    pub fn list_reference(&self, cell: &Cell) -> ListReference {
        let moved = self.reference_cell.as_ref().filter(|c| c.vectors() != cell.vectors()).cloned();
        ListReference { positions: self.reference.clone(), cell: moved }
    }

    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    pub fn skin(&self) -> f64 {
        self.skin
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// Positions at the last build (what a checkpoint saves to rebuild the same list).
    pub fn reference(&self) -> &[Vec3] {
        &self.reference
    }

    /// How many times the list has been built.
    pub fn builds(&self) -> u64 {
        self.builds
    }

    /// Number of stored pairs (each pair once in a half list, twice in a full list).
    pub fn len(&self) -> usize {
        self.neighbors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.neighbors.is_empty()
    }

    pub fn n_atoms(&self) -> usize {
        self.plain_end.len()
    }

    /// The atom whose neighbours row `r` holds.
    #[inline]
    pub fn row_atom(&self, r: usize) -> usize {
        self.row_atoms[r] as usize
    }

    /// Neighbours in row r that need no image shift.
    #[inline]
    pub fn plain(&self, r: usize) -> &[u32] {
        &self.neighbors[self.offsets[r]..self.plain_end[r]]
    }

    /// Neighbours in row r seen through a periodic image, with their shift indices.
    #[inline]
    pub fn shifted(&self, r: usize) -> (&[u32], &[u16]) {
        let range = self.plain_end[r]..self.offsets[r + 1];
        (&self.neighbors[range.clone()], &self.shift_ids[range])
    }

    /// Row r whole, each neighbour with its image's index in `shift_vectors` (the plain ones
    /// at the zero image's).
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[u16]) {
        let range = self.offsets[r]..self.offsets[r + 1];
        (&self.neighbors[range.clone()], &self.shift_ids[range])
    }

    /// The Cartesian image shifts that `shifted` indices refer to.
    pub fn shift_vectors(&self) -> &[Vec3] {
        &self.shift_vectors
    }

    /// Start of each row; `offsets()[n]` is the number of pairs.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// True when some atom has moved more than half the skin since the last build (or the
    /// list has never been built, or the atom count changed).
    pub fn needs_rebuild(&self, positions: &[Vec3]) -> bool {
        if self.builds == 0 || positions.len() != self.reference.len() {
            return true;
        }
        if self.cell_drift >= self.skin {
            return true;
        }
        let half = 0.5 * (self.skin - self.cell_drift);
        let limit = half * half;
        let moved = |(r, r0): (&Vec3, &Vec3)| {
            let d = [r[0] - r0[0], r[1] - r0[1], r[2] - r0[2]];
            // A NaN compares false: treat it as a move so the rebuild reports it.
            !(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] <= limit)
        };
        if positions.len() > 20_000 {
            positions
                .par_iter()
                .zip(self.reference.par_iter())
                .any(moved)
        } else {
            positions.iter().zip(&self.reference).any(moved)
        }
    }

    /// Builds the list for positions that the caller has already wrapped into the cell along
    /// its periodic axes.
    pub fn build(&mut self, positions: &[Vec3], cell: &Cell) -> Result<(), NeighborError> {
        if let Some(id) = positions
            .iter()
            .position(|r| r.iter().any(|x| !x.is_finite()))
        {
            return Err(NeighborError::NonFinitePosition {
                id: id + 1,
                pos: positions[id],
            });
        }
        let reach = self.cutoff + self.skin;
        let fractional: Vec<Vec3> = positions.par_iter().map(|&r| cell.fractional(r)).collect();
        let pbc = cell.pbc();
        // Binning assumes wrapped positions; rounding may leave s a hair outside [0, 1).
        if let Some(id) = fractional
            .iter()
            .position(|s| (0..3).any(|k| pbc[k] && !(-1e-6..1.0 + 1e-6).contains(&s[k])))
        {
            return Err(NeighborError::NotWrapped {
                id: id + 1,
                pos: positions[id],
            });
        }
        let binning = Binning::new(cell, &fractional, reach)?;

        // Shift table: every image combination the stencil can reach.
        let max_shift: [i64; 3] = [0, 1, 2].map(|k| {
            if cell.pbc()[k] {
                (binning.reach[k] + binning.n[k] as i64 - 1) / binning.n[k] as i64 + 1
            } else {
                0
            }
        });
        let widths = cell.perpendicular_widths();
        for k in 0..3 {
            if max_shift[k] as usize > MAX_IMAGES {
                return Err(NeighborError::TooManyImages {
                    reach,
                    images: max_shift[k] as usize,
                    axis: k,
                    width: widths[k],
                    max: MAX_IMAGES,
                });
            }
        }
        let span = max_shift.map(|m| 2 * m + 1);
        let shift_index = |s: [i64; 3]| -> usize {
            (((s[0] + max_shift[0]) * span[1] + (s[1] + max_shift[1])) * span[2]
                + (s[2] + max_shift[2])) as usize
        };
        let mut shift_vectors = vec![[0.0; 3]; (span[0] * span[1] * span[2]) as usize];
        let zero_shift = shift_index([0, 0, 0]) as u16;
        for a in -max_shift[0]..=max_shift[0] {
            for b in -max_shift[1]..=max_shift[1] {
                for c in -max_shift[2]..=max_shift[2] {
                    shift_vectors[shift_index([a, b, c])] =
                        cell.shift_vector([a as i32, b as i32, c as i32]);
                }
            }
        }

        // Counting sort of atoms into bins.
        let bin_of: Vec<[usize; 3]> = fractional.iter().map(|s| binning.bin(s)).collect();
        let flat = |b: [usize; 3]| (b[0] * binning.n[1] + b[1]) * binning.n[2] + b[2];
        let unflat = |f: usize| {
            [
                f / (binning.n[1] * binning.n[2]),
                (f / binning.n[2]) % binning.n[1],
                f % binning.n[2],
            ]
        };
        let n_bins = binning.n[0] * binning.n[1] * binning.n[2];
        let mut bin_start = vec![0usize; n_bins + 1];
        for b in &bin_of {
            bin_start[flat(*b) + 1] += 1;
        }
        for k in 0..n_bins {
            bin_start[k + 1] += bin_start[k];
        }
        let mut fill = bin_start.clone();
        let mut bin_atoms = vec![0u32; positions.len()];
        for (i, b) in bin_of.iter().enumerate() {
            let slot = &mut fill[flat(*b)];
            bin_atoms[*slot] = i as u32;
            *slot += 1;
        }

        // A pair (i, j, image) met from i's bin through offset d is met from j's bin through -d:
        // a half list keeps the offsets that are positive in lexicographic order (and, within
        // the centre bin, the atoms after i), which finds every pair once and halves the search.
        let half = self.kind == ListKind::Half;
        let columns = binning.columns(cell.is_orthorhombic(), reach, half);
        let reach_sq = reach * reach;

        // Positions in bin order, so the inner loop reads memory contiguously.
        let sorted_pos: Vec<Vec3> = bin_atoms.iter().map(|&j| positions[j as usize]).collect();

        // Rows are built bin by bin (the stencil is worked out once per bin), in chunks of
        // bins in parallel, then concatenated in bin order: the result does not depend on the
        // thread count.
        let target_chunk_atoms = 4096usize;
        let mut chunks: Vec<Range<usize>> = Vec::new();
        let mut first_bin = 0;
        for b in 0..n_bins {
            if bin_start[b + 1] - bin_start[first_bin] >= target_chunk_atoms || b + 1 == n_bins {
                chunks.push(first_bin..b + 1);
                first_bin = b + 1;
            }
        }
        let rows: Vec<(Vec<usize>, Vec<usize>, Vec<u32>, Vec<u16>)> = chunks
            .into_par_iter()
            .map(|bins| {
                let atoms = bin_start[bins.end] - bin_start[bins.start];
                let mut row_end = Vec::with_capacity(atoms);
                let mut row_plain = Vec::with_capacity(atoms);
                let mut nbrs = Vec::new();
                let mut shifts = Vec::new();
                let mut shifted_tmp: Vec<(u32, u16)> = Vec::new();
                let mut targets: Vec<Target> = Vec::with_capacity(2 * columns.len());
                for b in bins {
                    if bin_start[b] == bin_start[b + 1] {
                        continue;
                    }
                    let bi = unflat(b);
                    targets.clear();
                    for col in &columns {
                        // x and y of the column: one bin each (or none, off an open edge).
                        let mut fixed = [0usize; 2];
                        let mut image = [0i64; 3];
                        let mut inside = true;
                        for k in 0..2 {
                            let t = bi[k] as i64 + col.offset[k];
                            let n = binning.n[k] as i64;
                            if pbc[k] {
                                image[k] = t.div_euclid(n);
                                fixed[k] = t.rem_euclid(n) as usize;
                            } else if t < 0 || t >= n {
                                inside = false;
                            } else {
                                fixed[k] = t as usize;
                            }
                        }
                        if !inside {
                            continue;
                        }
                        // Along z the column is a run of bins; split it where it wraps through
                        // the cell, so that each piece is one contiguous range of atoms seen
                        // through one image.
                        let nz = binning.n[2] as i64;
                        let (mut lo, hi) = (bi[2] as i64 + col.dz.start, bi[2] as i64 + col.dz.end);
                        if !pbc[2] {
                            lo = lo.max(0);
                        }
                        let hi = if pbc[2] { hi } else { hi.min(nz) };
                        while lo < hi {
                            image[2] = if pbc[2] { lo.div_euclid(nz) } else { 0 };
                            let first = lo.rem_euclid(nz);
                            let last = (first + (hi - lo)).min(nz); // exclusive, within this image
                            let atoms = bin_start[flat([fixed[0], fixed[1], first as usize])]
                                ..bin_start[flat([fixed[0], fixed[1], last as usize - 1]) + 1];
                            let contains_centre = col.offset == [0, 0] && image == [0, 0, 0];
                            if !atoms.is_empty() {
                                let sid = shift_index(image);
                                targets.push(Target {
                                    atoms,
                                    shift_id: sid as u16,
                                    shift: shift_vectors[sid],
                                    plain: image == [0, 0, 0],
                                    // The run that starts at the atom's own bin (half list) or
                                    // holds it (full list).
                                    centre: contains_centre,
                                });
                            }
                            lo += last - first;
                        }
                    }
                    let candidates: usize = targets.iter().map(|t| t.atoms.len()).sum();
                    for slot in bin_start[b]..bin_start[b + 1] {
                        let xi = sorted_pos[slot];
                        // Hits are written unconditionally and counted with the comparison's
                        // result (no unpredictable branch per candidate): room for all first.
                        nbrs.reserve(candidates);
                        shifts.reserve(candidates);
                        shifted_tmp.resize(candidates, (0, 0));
                        let base = nbrs.len();
                        let (mut n_plain, mut n_shifted) = (0usize, 0usize);
                        let plain_out = &mut nbrs.spare_capacity_mut()[..candidates];
                        for t in &targets {
                            let x = [xi[0] - t.shift[0], xi[1] - t.shift[1], xi[2] - t.shift[2]];
                            // In the run through the atom's own bin, a half list starts after the
                            // atom (the pairs before it are met from the other side) and a full
                            // list skips only the atom itself.
                            let range = if t.centre && half {
                                slot + 1..t.atoms.end
                            } else {
                                t.atoms.clone()
                            };
                            let skip = if t.centre { slot } else { usize::MAX };
                            for k in range {
                                let xj = sorted_pos[k];
                                let dx = xj[0] - x[0];
                                let dy = xj[1] - x[1];
                                let dz = xj[2] - x[2];
                                let hit = ((dx * dx + dy * dy + dz * dz < reach_sq) & (k != skip))
                                    as usize;
                                let j = bin_atoms[k];
                                if t.plain {
                                    plain_out[n_plain].write(j);
                                    n_plain += hit;
                                } else {
                                    shifted_tmp[n_shifted] = (j, t.shift_id);
                                    n_shifted += hit;
                                }
                            }
                        }
                        // SAFETY: the first n_plain slots of the spare capacity were written above.
                        unsafe { nbrs.set_len(base + n_plain) };
                        shifts.resize(base + n_plain, zero_shift);
                        row_plain.push(nbrs.len());
                        for &(j, s) in &shifted_tmp[..n_shifted] {
                            nbrs.push(j);
                            shifts.push(s);
                        }
                        row_end.push(nbrs.len());
                    }
                }
                (row_plain, row_end, nbrs, shifts)
            })
            .collect();

        let total: usize = rows.iter().map(|r| r.2.len()).sum();
        self.row_atoms.clear();
        self.row_atoms.extend_from_slice(&bin_atoms);
        self.offsets.clear();
        self.offsets.push(0);
        self.plain_end.clear();
        self.neighbors.clear();
        self.neighbors.reserve(total);
        self.shift_ids.clear();
        self.shift_ids.reserve(total);
        for (row_plain, row_end, nbrs, shifts) in rows {
            let base = self.neighbors.len();
            self.plain_end.extend(row_plain.iter().map(|&p| base + p));
            self.offsets.extend(row_end.iter().map(|&e| base + e));
            self.neighbors.extend_from_slice(&nbrs);
            self.shift_ids.extend_from_slice(&shifts);
        }
        debug_assert!(
            self.shift_ids
                .iter()
                .all(|&s| (s as usize) < shift_vectors.len())
        );
        self.shift_vectors = shift_vectors;
        self.reference_cell = Some(cell.clone());
        self.max_shift = max_shift;
        self.cell_drift = 0.0;
        self.reference.clear();
        self.reference.extend_from_slice(positions);
        self.builds += 1;
        Ok(())
    }

    /// The closest stored pair at the current positions: (atom i, atom j, distance), 0-based.
    pub fn closest_pair(&self, positions: &[Vec3]) -> Option<(usize, usize, f64)> {
        let mut best: Option<(usize, usize, f64)> = None;
        for r in 0..self.n_atoms() {
            let i = self.row_atom(r);
            let (sh_j, sh_s) = self.shifted(r);
            let plain = self.plain(r).iter().map(|&j| (j, [0.0; 3]));
            let shifted = sh_j
                .iter()
                .zip(sh_s)
                .map(|(&j, &s)| (j, self.shift_vectors[s as usize]));
            for (j, shift) in plain.chain(shifted) {
                let (xi, xj) = (positions[i], positions[j as usize]);
                let d = [0, 1, 2].map(|k| xj[k] + shift[k] - xi[k]);
                let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                if best.is_none_or(|b| r < b.2) {
                    best = Some((i, j as usize, r));
                }
            }
        }
        best
    }
}

impl Binning {
    fn new(cell: &Cell, fractional: &[Vec3], reach: f64) -> Result<Binning, NeighborError> {
        let widths = cell.perpendicular_widths();
        let pbc = cell.pbc();
        let mut lo = [0.0; 3];
        let mut extent = [1.0; 3];
        for k in 0..3 {
            if !pbc[k] {
                let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
                for s in fractional {
                    min = min.min(s[k]);
                    max = max.max(s[k]);
                }
                if fractional.is_empty() {
                    (min, max) = (0.0, 0.0);
                }
                lo[k] = min;
                // A little slack so the highest atom falls inside the last bin.
                extent[k] = ((max - min) * (1.0 + 1e-9)).max(1e-12);
            }
        }
        let length = [0, 1, 2].map(|k| widths[k] * extent[k]);
        // Bins of about a third of the reach: with the stencil pruned to bins within reach,
        // it covers about 8 reach³ (16 with half-reach bins, 27 with reach-wide ones).
        // Cap the bin count near the atom count so sparse or huge cells stay cheap.
        let cap = (2 * fractional.len()).max(64) as f64;
        let mut bin_width = 0.5 * reach;
        let count = |w: f64| length.map(|l| ((l / w).floor() as usize).max(1));
        let mut n = count(bin_width);
        while (n[0] * n[1] * n[2]) as f64 > cap {
            bin_width *= 1.26;
            n = count(bin_width);
        }
        let thickness = [0, 1, 2].map(|k| length[k] / n[k] as f64);
        // Along an open axis no partner lies more than n - 1 bins away: without this bound a
        // flat or one-atom extent (thickness ~1e-12 Å) would ask for a stencil of ~1e12 bins.
        let reach_bins = [0, 1, 2].map(|k| {
            let bins = (reach / thickness[k]).ceil();
            if pbc[k] { bins as i64 } else { bins.min(n[k] as f64 - 1.0).max(0.0) as i64 }
        });
        Ok(Binning {
            n,
            reach: reach_bins,
            lo,
            extent,
            thickness,
        })
    }

    fn bin(&self, s: &Vec3) -> [usize; 3] {
        [0, 1, 2].map(|k| {
            let u = (s[k] - self.lo[k]) / self.extent[k];
            ((u * self.n[k] as f64) as i64).clamp(0, self.n[k] as i64 - 1) as usize
        })
    }

    /// The stencil as columns: for each (x, y) bin offset whose bins can hold a point within
    /// `reach` of the centre bin, the range of z offsets that can. For a half list only the
    /// lexicographically non-negative half, starting at z offset 0 in the centre column.
    fn columns(&self, orthorhombic: bool, reach: f64, half: bool) -> Vec<Column> {
        let r = self.reach;
        let gap = |d: i64, k: usize| (d.abs() - 1).max(0) as f64 * self.thickness[k];
        let mut out = Vec::new();
        for a in -r[0]..=r[0] {
            for b in -r[1]..=r[1] {
                if half && [a, b] < [0, 0] {
                    continue;
                }
                let (gx, gy) = (gap(a, 0), gap(b, 1));
                // Two points in bins d apart are at least gap[k] apart across each pair of faces;
                // along orthogonal axes those gaps add in quadrature, otherwise only the largest
                // bounds the distance.
                let dz_max = if orthorhombic {
                    let rest = reach * reach - gx * gx - gy * gy;
                    if rest <= 0.0 {
                        continue;
                    }
                    ((rest.sqrt() / self.thickness[2]).ceil() as i64).min(r[2])
                } else {
                    if gx.max(gy) >= reach {
                        continue;
                    }
                    r[2]
                };
                let dz_min = if half && [a, b] == [0, 0] { 0 } else { -dz_max };
                out.push(Column {
                    offset: [a, b],
                    dz: dz_min..dz_max + 1,
                });
            }
        }
        out
    }
}

/// `data` cut into the rows of a compressed-row layout (`start`: each row's first index, and
/// the end).
pub fn split_rows<'a, T>(mut data: &'a mut [T], start: &[usize]) -> Vec<&'a mut [T]> {
    let mut rows = Vec::with_capacity(start.len() - 1);
    for i in 0..start.len() - 1 {
        let (row, rest) = data.split_at_mut(start[i + 1] - start[i]);
        rows.push(row);
        data = rest;
    }
    rows
}
