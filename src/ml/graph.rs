//! A batch of structures as one graph: atoms concatenated, directed edges (i ← j, one per
//! neighbour and periodic image within the cutoff), and the bookkeeping to sum per structure.
//! Structures never share edges, so a structure's energy does not depend on its batch.

use super::tensor::Ctx;
use crate::cell::{Cell, Vec3};
use crate::ml::dataset::Structure;
use crate::neighbor::{ListKind, NeighborList};
use burn::tensor::{Int, Tensor};

/// Host-side description of a batch.
#[derive(Clone, Debug)]
pub struct Batch {
    pub n_atoms: usize,
    pub n_structures: usize,
    /// Index into the model's species, per atom.
    pub species: Vec<usize>,
    /// Structure of each atom.
    pub structure: Vec<usize>,
    /// Atoms per structure.
    pub counts: Vec<usize>,
    /// Positions (wrapped into their cells), Å.
    pub positions: Vec<Vec3>,
    /// Receiving atom of each edge.
    pub src: Vec<usize>,
    /// Neighbour atom of each edge.
    pub dst: Vec<usize>,
    /// Image shift of each edge: r_e = x_dst + shift - x_src.
    pub shifts: Vec<Vec3>,
    /// Cell of each structure (long-range models sum their charges in it).
    pub cells: Vec<Cell>,
    /// Total charge of each structure, e.
    pub charges: Vec<f64>,
}

impl Batch {
    /// Builds the graph of `structures` with edges shorter than `cutoff`; `species_index` maps
    /// an atomic number to the model's species index (None: unknown to the model).
    pub fn new(
        structures: &[&Structure],
        cutoff: f64,
        species_index: impl Fn(u32) -> Option<usize>,
    ) -> Result<Batch, String> {
        let mut b = Batch {
            n_atoms: 0,
            n_structures: structures.len(),
            species: Vec::new(),
            structure: Vec::new(),
            counts: Vec::new(),
            positions: Vec::new(),
            src: Vec::new(),
            dst: Vec::new(),
            shifts: Vec::new(),
            cells: Vec::new(),
            charges: Vec::new(),
        };
        for (s, st) in structures.iter().enumerate() {
            let offset = b.n_atoms;
            for (i, &z) in st.numbers.iter().enumerate() {
                let index = species_index(z).ok_or_else(|| {
                    format!(
                        "atom {} is {} (Z = {z}), which the model was not trained on",
                        i + 1,
                        crate::elements::symbol(z).unwrap_or("?")
                    )
                })?;
                b.species.push(index);
                b.structure.push(s);
            }
            let wrapped: Vec<Vec3> = st.positions.iter().map(|&r| st.cell.wrap(r).0).collect();
            let mut list = NeighborList::new(ListKind::Full, cutoff, 0.0);
            list.build(&wrapped, &st.cell).map_err(|e| e.to_string())?;
            b.add_edges(&list, &wrapped, offset, cutoff);
            b.positions.extend_from_slice(&wrapped);
            b.counts.push(st.numbers.len());
            b.cells.push(st.cell.clone());
            b.charges.push(st.charge);
            b.n_atoms += st.numbers.len();
        }
        Ok(b)
    }

    /// Adds the pairs of a full neighbour list that are closer than `cutoff` at `x` (atom
    /// indices shifted by `offset`, the structure's first atom in the batch).
    pub fn add_edges(&mut self, list: &NeighborList, x: &[Vec3], offset: usize, cutoff: f64) {
        let mut push = |i: usize, j: usize, shift: Vec3| {
            let d = [0, 1, 2].map(|k| x[j][k] + shift[k] - x[i][k]);
            if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < cutoff * cutoff {
                self.src.push(offset + i);
                self.dst.push(offset + j);
                self.shifts.push(shift);
            }
        };
        for r in 0..list.n_atoms() {
            let i = list.row_atom(r);
            for &j in list.plain(r) {
                push(i, j as usize, [0.0; 3]);
            }
            let (js, ss) = list.shifted(r);
            for (&j, &sid) in js.iter().zip(ss) {
                push(i, j as usize, list.shift_vectors()[sid as usize]);
            }
        }
    }

    /// Length of edge e, Å.
    pub fn edge_length(&self, e: usize) -> f64 {
        let (a, b, s) = (self.positions[self.src[e]], self.positions[self.dst[e]], self.shifts[e]);
        ((b[0] + s[0] - a[0]).powi(2) + (b[1] + s[1] - a[1]).powi(2) + (b[2] + s[2] - a[2]).powi(2)).sqrt()
    }

    pub fn n_edges(&self) -> usize {
        self.src.len()
    }
}

/// The batch's index and geometry tensors on a device.
pub struct GraphTensors {
    pub src: Tensor<1, Int>,
    pub dst: Tensor<1, Int>,
    pub species: Tensor<1, Int>,
    pub structure: Tensor<1, Int>,
    /// [N, 3]
    pub positions: Tensor<2>,
    /// [E, 3]
    pub shifts: Tensor<2>,
}

impl GraphTensors {
    pub fn new(batch: &Batch, ctx: &Ctx) -> GraphTensors {
        GraphTensors {
            src: ctx.indices(&batch.src),
            dst: ctx.indices(&batch.dst),
            species: ctx.indices(&batch.species),
            structure: ctx.indices(&batch.structure),
            positions: ctx.matrix(
                &batch
                    .positions
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>(),
                batch.n_atoms,
                3,
            ),
            shifts: ctx.matrix(
                &batch.shifts.iter().flatten().copied().collect::<Vec<_>>(),
                batch.n_edges(),
                3,
            ),
        }
    }

    /// Edge vectors r_e = x_dst + shift - x_src as tensor operations on `positions` (so that
    /// autodiff can follow them back to the positions).
    pub fn edge_vectors(&self, positions: &Tensor<2>) -> Tensor<2> {
        positions.clone().select(0, self.dst.clone())
            - positions.clone().select(0, self.src.clone())
            + self.shifts.clone()
    }
}
