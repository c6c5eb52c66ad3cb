//! The real-space pairs of an Ewald-type splitting (`crate::ml::electrostatics`: Ewald and PME
//! in a periodic cell, the free-space mesh in an open one), kept from one MD step to the next.

use crate::cell::{Cell, Vec3, sub};
use crate::neighbor::{ListKind, NeighborList, split_rows};
use rayon::prelude::*;

/// The real-space pairs of an Ewald sum, kept between MD steps: a full neighbour list of
/// cutoff + skin, built on the wrapped positions; until the next build each atom's position is
/// taken as it moved on from its wrapped one (no re-wrapping, so the stored images stay right).
/// Each atom's pairs are sorted by (neighbour, image), so the pairs inside the cutoff are summed
/// in one order whenever the list was built: a restarted run adds them as the straight run does.
#[derive(Clone, Debug)]
pub struct RealSpaceList {
    list: NeighborList,
    /// Per atom, what wrapping removed at the build (position - wrapped).
    offsets: Vec<Vec3>,
    /// Atom i's pairs are `pairs[start[i]..start[i + 1]]`, each neighbour << 32 | its image's
    /// index in the list's `shift_vectors` (8 bytes a pair: the sum reads them all every step).
    pub(crate) start: Vec<usize>,
    pub(crate) pairs: Vec<u64>,
    cell: Option<Cell>,
}

/// Å: the real-space list's skin.
const REAL_SPACE_SKIN: f64 = 1.0;

impl Default for RealSpaceList {
    fn default() -> RealSpaceList {
        RealSpaceList { list: NeighborList::new(ListKind::Full, 0.0, 0.0), offsets: Vec::new(), start: vec![0], pairs: Vec::new(), cell: None }
    }
}

impl RealSpaceList {
    /// The periodic shift of each image index the pairs refer to.
    pub(crate) fn shift_vectors(&self) -> &[Vec3] {
        self.list.shift_vectors()
    }

    /// The positions the list's pairs refer to (rebuilding it first where needed).
    pub(crate) fn update(&mut self, cutoff: f64, positions: &[Vec3], cell: &Cell) -> Result<Vec<Vec3>, String> {
        let continued: Vec<Vec3> = positions.iter().zip(&self.offsets).map(|(r, o)| sub(*r, *o)).collect();
        let stale = self.cell.as_ref() != Some(cell)
            || self.list.cutoff() != cutoff
            || self.offsets.len() != positions.len()
            || self.list.needs_rebuild(&continued);
        if !stale {
            return Ok(continued);
        }
        let wrapped: Vec<Vec3> = positions.iter().map(|&r| cell.wrap(r).0).collect();
        self.list = NeighborList::new(ListKind::Full, cutoff, REAL_SPACE_SKIN);
        self.list.build(&wrapped, cell).map_err(|e| format!("the Ewald real-space sum: {e}"))?;
        self.offsets = positions.iter().zip(&wrapped).map(|(r, w)| sub(*r, *w)).collect();
        let mut row_of = vec![usize::MAX; positions.len()];
        for r in 0..self.list.n_atoms() {
            row_of[self.list.row_atom(r)] = r;
        }
        let list = &self.list;
        let length = |row: usize| if row == usize::MAX { 0 } else { list.row(row).0.len() };
        self.start = std::iter::once(0).chain(row_of.iter().scan(0, |n, &row| { *n += length(row); Some(*n) })).collect();
        // Per atom, (neighbour << 32 | image) keys in its own slice of one buffer, filled and
        // sorted in parallel: sorted by (neighbour, image), the pairs inside the cutoff are
        // summed in one order whenever the list was built (the list numbers its images
        // lexicographically by their integer shift, and wrapping differently moves every image
        // of a row or of a neighbour by one lattice vector, which keeps their order).
        // The buffer is kept from build to build (no fresh pages to fault in).
        self.pairs.resize(*self.start.last().expect("start has n + 1 entries"), 0);
        split_rows(&mut self.pairs, &self.start).into_par_iter().zip(&row_of).with_min_len(64).for_each(|(slice, &row)| {
            if row == usize::MAX {
                return;
            }
            let (js, ss) = list.row(row);
            slice.iter_mut().zip(js.iter().zip(ss)).for_each(|(key, (&j, &s))| *key = (j as u64) << 32 | s as u64);
            slice.sort_unstable();
        });
        self.cell = Some(cell.clone());
        Ok(wrapped)
    }
}

