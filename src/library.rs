//! A learned potential as a library, for the hosts that are not the `mdrun` binary: the C ABI
//! (`crate::capi`), through it the LAMMPS plugin (`lammps-plugin/`) and the Python package
//! (`python/`). It is the MD path's own compiled model (`crate::ml::inference`, f32 with
//! tabulated filters), evaluated on
//! - whole structures, periodic or open (ASE), one at a time or many in one batch;
//! - one part of a domain-decomposed system: the atoms a LAMMPS rank owns followed by the ghost
//!   copies it received; the energy is the owned atoms', the forces fall on owned atoms and
//!   ghosts alike (the host adds the ghosts' to their owners), and MCGM's cluster sums are
//!   added up over the ranks by the host's reduction. Either the ghosts reach the receptive
//!   field (blocks x cutoff) and the part is evaluated alone, or they reach one cutoff and the
//!   host refreshes them between blocks (`GhostExchange`): far fewer ghosts, one exchange of
//!   features per block each way.

use crate::cell::{Cell, Vec3};
use crate::ml::inference::{GhostExchange, Graph, Inference, Output};
use crate::neighbor::{ListKind, NeighborList};
use crate::potential::mcgm::MlPotential;
use std::path::Path;

/// A model loaded for a list of species (the host's atom types, in order).
pub struct Evaluator {
    inference: Inference,
    /// Model species of each host type.
    species_of_type: Vec<usize>,
    description: String,
    blocks: usize,
    long_range: bool,
    /// Learned charges or a distance-aware MCGM: whole structures only.
    whole_system: bool,
    /// The last structure's neighbour list (with a skin), its types and cell: the next call
    /// reuses it while the same atoms moved less than half the skin, as MD steps do.
    list: Option<(NeighborList, Vec<u32>, Cell)>,
}

/// The skin of the kept neighbour list, Å.
const SKIN: f64 = 1.0;

/// Whether the atoms of a call are those of the call before, in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameAtoms {
    /// The host knows they are (LAMMPS between reneighbourings).
    Yes,
    /// The host cannot tell: same count, types and cell, and no atom moved more than half the
    /// skin, is taken as the same atoms (ASE).
    Unknown,
    /// They are not (LAMMPS just reneighboured): the list is rebuilt.
    No,
}

/// One structure as the host holds it.
pub struct Structure<'a> {
    /// Å
    pub positions: &'a [Vec3],
    /// Index into the evaluator's species, per atom.
    pub types: &'a [u32],
    /// Periodic or open along each axis (`Cell::open()` for a rank's part: its ghosts are
    /// explicit copies).
    pub cell: Cell,
    /// Atoms `0..owned` count in the energy; the rest are ghosts (see `Graph::owned`).
    pub owned: usize,
    /// Total charge, e (a long-range model's charges sum to it).
    pub charge: f64,
    pub same_atoms: SameAtoms,
}

impl Evaluator {
    /// Loads the model at `path` (a folder or file written by `mdrun train`) for atoms of the
    /// elements `species`. The first load in a process sizes the evaluation's thread pool:
    /// `threads` (0: all cores). The model runs on the caller's thread with the pool's help, so
    /// a host's reduction (MPI) is called from the thread that called `evaluate`.
    pub fn load(path: &Path, species: &[String], threads: usize) -> Result<Evaluator, String> {
        if species.is_empty() {
            return Err("no species given: name the element of each atom type (e.g. \"O H\")".into());
        }
        let potential = MlPotential::load(path, species)?;
        let long_range = potential.is_long_range();
        let whole_system = potential.needs_whole_system();
        let blocks = potential.blocks();
        let compiled = potential.into_compiled()?;
        // Err: the pool already runs (an earlier load); it keeps its size.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
        // The host's malloc keeps freed blocks for reuse, as the mdrun binary's does.
        crate::memory::keep_freed_blocks();
        Ok(Evaluator { inference: compiled.inference, species_of_type: compiled.species_of_type, description: compiled.description, blocks, long_range, whole_system, list: None })
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The graph's cutoff, Å.
    pub fn cutoff(&self) -> f64 {
        self.inference.cutoff
    }

    /// How far an atom's energy reaches: blocks x cutoff, Å. A rank's ghosts must reach this
    /// far beyond its owned atoms for their energies and forces to be exact, unless the host
    /// exchanges ghost features between blocks (then one cutoff).
    pub fn receptive_field(&self) -> f64 {
        self.blocks as f64 * self.inference.cutoff
    }

    /// Whether the model has learned charges (a Coulomb sum over the whole system: it takes
    /// whole structures only).
    pub fn is_long_range(&self) -> bool {
        self.long_range
    }

    /// Whether the model needs whole structures, never a rank's part (learned charges, a
    /// distance-aware MCGM): a host with domains gathers the system for it.
    pub fn needs_whole_system(&self) -> bool {
        self.whole_system
    }

    /// The widest row a ghost exchange carries: F features, or PaiNN's 3F vector features.
    pub fn exchange_width(&self) -> usize {
        if self.inference.is_painn() { 3 * self.inference.features } else { self.inference.features }
    }

    /// Evaluates one structure (or one rank's part of one, with `reduce` adding MCGM's cluster
    /// sums over all ranks and, if given, `exchange` refreshing the ghosts between blocks; every
    /// rank must call it together).
    pub fn evaluate(&mut self, structure: &Structure, reduce: &mut dyn FnMut(&mut [f64]), exchange: Option<&mut dyn GhostExchange>) -> Result<Output, String> {
        let graph = self.graph(structure, true)?;
        if graph.owned == graph.n_atoms() || exchange.is_some() {
            return self.inference.evaluate_part(&graph, reduce, exchange);
        }
        let (part, order) = by_distance_from_owned(&graph, self.blocks);
        let out = self.inference.evaluate_part(&part, reduce, None)?;
        // Back to the host's order; atoms beyond the receptive field take nothing.
        let n = graph.n_atoms();
        let (mut forces, mut atom_energies, mut atom_virials) = (vec![[0.0; 3]; n], vec![0.0; n], vec![[0.0; 9]; n]);
        for (k, &a) in order.iter().enumerate() {
            forces[a] = out.forces[k];
            atom_energies[a] = out.atom_energies[k];
            atom_virials[a] = out.atom_virials[k];
        }
        Ok(Output { forces, atom_energies, atom_virials, ..out })
    }

    /// Evaluates whole structures in one batch (one pass of the model over all their atoms).
    pub fn evaluate_batch(&mut self, structures: &[Structure]) -> Result<Output, String> {
        if let Some(k) = structures.iter().position(|s| s.owned != s.positions.len()) {
            return Err(format!("structure {k}: a batch takes whole structures, not a rank's part (ghost atoms)"));
        }
        let graphs = structures.iter().map(|s| self.graph(s, false)).collect::<Result<Vec<_>, _>>()?;
        let batch = Graph::concat(&graphs);
        self.inference.forget_partitions();
        self.inference.evaluate(&batch)
    }

    /// The model's graph of `structure`: every pair closer than the cutoff, periodic images
    /// included, read off the kept neighbour list (`keep`) or a new one.
    fn graph(&mut self, s: &Structure, keep: bool) -> Result<Graph, String> {
        let n = s.positions.len();
        if s.types.len() != n {
            return Err(format!("{n} positions but {} types", s.types.len()));
        }
        if s.owned > n {
            return Err(format!("{} owned atoms of {n}", s.owned));
        }
        if let Some(k) = s.types.iter().position(|&t| t as usize >= self.species_of_type.len()) {
            return Err(format!("atom {}: type {} but {} species were loaded", k + 1, s.types[k], self.species_of_type.len()));
        }
        if let Some(k) = s.positions.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
            return Err(format!("atom {}: position {:?} is not finite", k + 1, s.positions[k]));
        }
        if self.long_range {
            crate::ml::electrostatics::periodicity(&s.cell)?;
        }
        // The list bins wrapped positions; the edge vectors do not change.
        let positions: Vec<Vec3> = s.positions.iter().map(|&r| s.cell.wrap(r).0).collect();
        let cutoff = self.inference.cutoff;
        let kept = self.list.take().filter(|(list, types, cell)| {
            keep && match s.same_atoms {
                SameAtoms::Yes => list.n_atoms() == n,
                SameAtoms::Unknown => types.as_slice() == s.types && cell.vectors() == s.cell.vectors() && cell.pbc() == s.cell.pbc(),
                SameAtoms::No => false,
            } && !list.needs_rebuild(&positions)
        });
        let (list, types, cell) = match kept {
            Some(kept) => kept,
            None => {
                let mut list = NeighborList::new(ListKind::Full, cutoff, if keep { SKIN } else { 0.0 });
                list.build(&positions, &s.cell).map_err(|e| e.to_string())?;
                (list, s.types.to_vec(), s.cell.clone())
            }
        };
        let species = s.types.iter().map(|&t| self.species_of_type[t as usize]).collect();
        let mut graph = Graph::from_neighbor_list(&list, &positions, species, cutoff, &s.cell, s.charge);
        if keep {
            self.list = Some((list, types, cell));
        }
        graph.owned = s.owned;
        Ok(graph)
    }
}

/// A rank's part reordered for `Graph::rows_within`: the owned atoms, then the ghosts one edge
/// from them, two edges, ... up to `blocks` edges; ghosts farther out cannot reach an owned
/// atom's energy and are left out. Returns the new graph and, per new row, the host's atom.
fn by_distance_from_owned(graph: &Graph, blocks: usize) -> (Graph, Vec<usize>) {
    let n = graph.n_atoms();
    let mut depth = vec![usize::MAX; n];
    let mut order: Vec<usize> = (0..graph.owned).collect();
    order.iter().for_each(|&a| depth[a] = 0);
    let mut rows_within = vec![order.len()];
    let mut front = 0;
    for d in 1..=blocks {
        let end = order.len();
        for k in front..end {
            let a = order[k];
            for e in graph.start[a]..graph.start[a + 1] {
                let b = graph.neighbor[e] as usize;
                if depth[b] == usize::MAX {
                    depth[b] = d;
                    order.push(b);
                }
            }
        }
        // Host order within a shell, so the result does not depend on the edges' order.
        order[end..].sort_unstable();
        front = end;
        rows_within.push(order.len());
    }
    let mut new_index = vec![u32::MAX; n];
    order.iter().enumerate().for_each(|(k, &a)| new_index[a] = k as u32);
    let mut part = Graph {
        n_structures: 1,
        species: order.iter().map(|&a| graph.species[a]).collect(),
        structure: vec![0; order.len()],
        start: vec![0],
        neighbor: Vec::new(),
        distance: Vec::new(),
        vector: Vec::new(),
        positions: order.iter().map(|&a| graph.positions[a]).collect(),
        cells: graph.cells.clone(),
        charges: graph.charges.clone(),
        owned: graph.owned,
        rows_within,
    };
    for &a in &order {
        for e in graph.start[a]..graph.start[a + 1] {
            let b = new_index[graph.neighbor[e] as usize];
            if b != u32::MAX {
                part.neighbor.push(b);
                part.distance.push(graph.distance[e]);
                part.vector.push(graph.vector[e]);
            }
        }
        part.start.push(part.neighbor.len());
    }
    (part, order)
}
