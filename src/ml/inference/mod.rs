//! Fast inference of a trained SchNet or PaiNN (with or without MCGM) for MD on the CPU: the same
//! model as `crate::ml::model`, evaluated in f32 with f64 sums for energies, forces and virials.
//!
//! What makes it fast:
//! - the filters, which depend on the distance alone, are tabulated per block (`table`), so an
//!   edge costs a table lookup instead of matrix products (two F x F for SchNet, K x 3F for
//!   PaiNN);
//! - the backward pass is written out per layer (no autodiff graph), and the per-edge work is
//!   gathered per atom over the full neighbour list: edge i←j has its twin j←i at the same
//!   distance, so the transpose of the message sum is again a sum over i's own neighbours, with
//!   no atomics and a result independent of the thread count;
//! - dense layers are blocked matrix products over rows split across the rayon pool.
//!
//! PaiNN's block (vector features, direction-dependent messages) is `painn`.

pub mod charges;
pub mod clusters;
pub mod dense;
pub mod painn;
pub mod table;

use self::clusters::{DistanceWeights, HardWeights, SoftWeights, hierarchy};
use self::dense::{Linear, ssp_and_slope};
use self::painn::{PainnCache, PainnWeights};
use self::table::{EdgeRows, FilterNetwork, FilterTable, LinearFilter};
use self::charges::ChargeWeights;
use crate::cell::{Cell, Vec3};
use crate::ml::graph::Batch;
use crate::ml::layer;
use crate::ml::mcgm::McgmConfig;
use crate::ml::model::Model;
use crate::ml::tensor::to_vec;
use crate::neighbor::split_rows;
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// The graph of a batch in compressed rows: atom i's edges are `start[i]..start[i + 1]`.
pub struct Graph {
    pub n_structures: usize,
    pub species: Vec<usize>,
    pub structure: Vec<usize>,
    pub start: Vec<usize>,
    pub neighbor: Vec<u32>,
    pub distance: Vec<f64>,
    /// r_e = x_neighbor + shift - x_i, Å.
    pub vector: Vec<[f64; 3]>,
    /// Positions, Å, and per structure the cell and total charge (e): what learned charges
    /// need (`charges`).
    pub positions: Vec<Vec3>,
    pub cells: Vec<Cell>,
    pub charges: Vec<f64>,
    /// Atoms `0..owned` count in the energy; the rest are ghost copies of atoms owned by another
    /// part of a domain-decomposed system (the halo a LAMMPS rank receives): they carry the
    /// owned atoms' environments and take forces, but their energy is counted where they are
    /// owned. `n_atoms()` for a whole system.
    pub owned: usize,
    /// A rank's part, its atoms ordered by how many edges they are from the owned ones: entry d
    /// is the number of leading atoms at most d edges away (entry 0 = `owned`). Block t of B
    /// then only updates the atoms within B-1-t edges, the only ones whose outputs reach an
    /// owned atom's energy. Empty: every atom is needed at every block.
    pub rows_within: Vec<usize>,
}

impl Graph {
    /// Regroups a batch's edges by receiving atom (stable, so the order within a row is the
    /// batch's).
    pub fn from_batch(batch: &Batch) -> Graph {
        let n = batch.n_atoms;
        let mut start = vec![0usize; n + 1];
        for &i in &batch.src {
            start[i + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let edges = batch.src.len();
        let mut next = start.clone();
        let (mut neighbor, mut distance, mut vector) = (vec![0u32; edges], vec![0.0; edges], vec![[0.0; 3]; edges]);
        for e in 0..edges {
            let (i, j, s) = (batch.src[e], batch.dst[e], batch.shifts[e]);
            let slot = next[i];
            next[i] += 1;
            let (a, b) = (batch.positions[i], batch.positions[j]);
            let r = [b[0] + s[0] - a[0], b[1] + s[1] - a[1], b[2] + s[2] - a[2]];
            neighbor[slot] = j as u32;
            distance[slot] = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            vector[slot] = r;
        }
        Graph {
            n_structures: batch.n_structures,
            species: batch.species.clone(),
            structure: batch.structure.clone(),
            start,
            neighbor,
            distance,
            vector,
            positions: batch.positions.clone(),
            cells: batch.cells.clone(),
            charges: batch.charges.clone(),
            owned: n,
            rows_within: Vec::new(),
        }
    }

    pub fn n_atoms(&self) -> usize {
        self.species.len()
    }

    /// Atoms per structure.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_structures];
        self.structure.iter().for_each(|&s| counts[s] += 1);
        counts
    }

    /// The graph of one structure (in `cell`, of total charge `charge`) straight from the
    /// engine's full neighbour list: the pairs closer than `cutoff` at `positions` (the list
    /// reaches cutoff + skin), rows in parallel.
    pub fn from_neighbor_list(list: &crate::neighbor::NeighborList, positions: &[Vec3], species: Vec<usize>, cutoff: f64, cell: &Cell, charge: f64) -> Graph {
        let n = positions.len();
        let mut row_of = vec![usize::MAX; n];
        for r in 0..list.n_atoms() {
            row_of[list.row_atom(r)] = r;
        }
        let shifts = list.shift_vectors();
        let rows: Vec<Vec<(u32, f64, [f64; 3])>> = (0..n)
            .into_par_iter()
            .with_min_len(64)
            .map(|i| {
                let mut row = Vec::new();
                let r = row_of[i];
                if r == usize::MAX {
                    return row;
                }
                let x = positions[i];
                let mut push = |j: u32, s: [f64; 3]| {
                    let y = positions[j as usize];
                    let v = [y[0] + s[0] - x[0], y[1] + s[1] - x[1], y[2] + s[2] - x[2]];
                    let d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                    if d2 < cutoff * cutoff {
                        row.push((j, d2.sqrt(), v));
                    }
                };
                for &j in list.plain(r) {
                    push(j, [0.0; 3]);
                }
                let (js, ss) = list.shifted(r);
                for (&j, &sid) in js.iter().zip(ss) {
                    push(j, shifts[sid as usize]);
                }
                row
            })
            .collect();
        let mut start = Vec::with_capacity(n + 1);
        start.push(0);
        for row in &rows {
            start.push(start.last().unwrap() + row.len());
        }
        let edges = *start.last().unwrap();
        let (mut neighbor, mut distance, mut vector) = (Vec::with_capacity(edges), Vec::with_capacity(edges), Vec::with_capacity(edges));
        for row in rows {
            for (j, d, v) in row {
                neighbor.push(j);
                distance.push(d);
                vector.push(v);
            }
        }
        Graph { n_structures: 1, structure: vec![0; n], species, start, neighbor, distance, vector, positions: positions.to_vec(), cells: vec![cell.clone()], charges: vec![charge], owned: n, rows_within: Vec::new() }
    }
}

impl Graph {
    /// Several graphs as one batch (structure k = graph k), atoms numbered on.
    pub fn concat(graphs: &[Graph]) -> Graph {
        let mut out = Graph {
            n_structures: 0,
            species: Vec::new(),
            structure: Vec::new(),
            start: vec![0],
            neighbor: Vec::new(),
            distance: Vec::new(),
            vector: Vec::new(),
            positions: Vec::new(),
            cells: Vec::new(),
            charges: Vec::new(),
            owned: 0,
            rows_within: Vec::new(),
        };
        for g in graphs {
            assert!(g.owned == g.n_atoms() && g.rows_within.is_empty(), "a batch holds whole systems");
            let (atoms, edges) = (out.species.len() as u32, out.neighbor.len());
            out.species.extend_from_slice(&g.species);
            out.structure.extend(g.structure.iter().map(|s| s + out.n_structures));
            out.start.extend(g.start[1..].iter().map(|e| e + edges));
            out.neighbor.extend(g.neighbor.iter().map(|j| j + atoms));
            out.distance.extend_from_slice(&g.distance);
            out.vector.extend_from_slice(&g.vector);
            out.positions.extend_from_slice(&g.positions);
            out.cells.extend_from_slice(&g.cells);
            out.charges.extend_from_slice(&g.charges);
            out.n_structures += g.n_structures;
        }
        out.owned = out.species.len();
        out
    }
}

/// Energies per structure, forces per atom and virials per structure, in f64.
pub struct Output {
    /// eV
    pub energy: Vec<f64>,
    /// eV/Å
    pub forces: Vec<[f64; 3]>,
    /// W = -Σ_e r_e ⊗ dE/dr_e per structure, row-major, eV.
    pub virial: Vec<[f64; 9]>,
    /// Per atom: its energy (eV; zero for ghosts, whose energy is counted where they are owned)
    /// and its share of the virial (half of each of its edges' terms, row-major, eV), as
    /// LAMMPS's `compute pe/atom` and `stress/atom` read them. They add up to `energy` and
    /// `virial` (a long-range model's Coulomb terms aside).
    pub atom_energies: Vec<f64>,
    pub atom_virials: Vec<[f64; 9]>,
    /// Hard MCGM: per structure, whether some block's clustering grouped its atoms differently
    /// from the previous evaluation of the structure at the same place in the batch.
    pub regrouped: Vec<bool>,
    /// With `Inference::record_layers`: every block's outputs over the whole graph, as (name,
    /// width, [atoms, width]) (see `crate::ml::layer`).
    pub layers: Vec<(String, usize, Vec<f32>)>,
    /// Why the evaluation could not be made (`not_a_number`).
    pub failure: Option<String>,
}

impl Output {
    /// NaN everywhere: what MD gets when an evaluation cannot be made (the step loop then
    /// stops the run as a blow-up and keeps the last good state).
    pub fn not_a_number(graph: &Graph, reason: String) -> Output {
        Output {
            failure: Some(reason),
            energy: vec![f64::NAN; graph.n_structures],
            forces: vec![[f64::NAN; 3]; graph.n_atoms()],
            virial: vec![[f64::NAN; 9]; graph.n_structures],
            regrouped: vec![false; graph.n_structures],
            layers: Vec::new(),
            atom_energies: vec![f64::NAN; graph.n_atoms()],
            atom_virials: vec![[f64::NAN; 9]; graph.n_atoms()],
        }
    }
}

/// Where an evaluation's time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageTimes {
    pub clustering: Duration,
    pub forward: Duration,
    pub backward: Duration,
    /// Learned charges: the charge head and the Coulomb sum (part of neither pass above).
    pub long_range: Duration,
    pub evaluations: u64,
    /// Evaluations at which some block's hard clustering grouped some structure's atoms
    /// differently from the evaluation before (the energy is discontinuous there).
    pub partition_changes: u64,
    /// Conjugate-gradient iterations of charge equilibration (`crate::ml::equilibration`).
    pub equilibration_iterations: u64,
}

/// One interaction block's weights (the GPU kernels read the same f32 values and tables).
pub struct Block {
    /// The block's filter W(d): F wide (SchNet) or 3F (PaiNN).
    pub table: FilterTable,
    pub interaction: Interaction,
    pub hard: Option<HardWeights>,
    pub soft: Option<SoftWeights>,
}

/// The backbone's dense layers in one block.
pub enum Interaction {
    /// m = Σ y_b ⊙ W, y = x W_in; x += out2(ssp(out1(m))).
    Schnet { input: Linear, out1: Linear, out2: Linear },
    Painn(PainnWeights),
}

pub struct Inference {
    pub features: usize,
    /// [species, F]
    pub embedding: Vec<f32>,
    /// [species, F]: added to the first features times the structure's charge per atom.
    pub charge_embedding: Option<Vec<f32>>,
    pub blocks: Vec<Block>,
    pub readout1: Linear,
    pub readout2: Linear,
    /// A long-range model's charge head.
    pub charges: Option<ChargeWeights>,
    /// Per model species, eV.
    pub reference: Vec<f64>,
    pub scale: f64,
    pub mcgm: Option<McgmConfig>,
    /// The graph's cutoff, Å.
    pub cutoff: f64,
    pub times: StageTimes,
    /// Hard MCGM: per structure of the previous evaluation, a digest of its atoms' partitions at
    /// every block's K-means levels (labels numbered by first appearance).
    partitions: Vec<u64>,
    /// Keep every block's outputs in `Output::layers` (the conformance suite; the GPU kernels
    /// compiled from this model keep them too).
    pub record_layers: bool,
}

/// Per structure, a digest of the partitions of its atoms (in order) at every block's K-means
/// levels, labels numbered by first appearance so that equal partitions give equal digests.
fn partition_digests(graph: &Graph, caches: &[BlockCache]) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let mut hashers: Vec<std::hash::DefaultHasher> = (0..graph.n_structures).map(|_| std::hash::DefaultHasher::new()).collect();
    for cache in caches {
        for level in &cache.levels[1..] {
            let mut numbers: Vec<std::collections::HashMap<usize, usize>> = vec![Default::default(); graph.n_structures];
            for (i, &c) in level.atom_cluster.iter().enumerate() {
                let s = graph.structure[i];
                let next = numbers[s].len();
                numbers[s].entry(c).or_insert(next).hash(&mut hashers[s]);
            }
        }
    }
    hashers.iter().map(|h| h.finish()).collect()
}

/// Forward values one block's backward pass needs.
struct BlockCache {
    interaction: InteractionCache,
    /// MCGM: the hierarchy, the soft level's cache and its input.
    levels: Vec<clusters::Level>,
    soft: Option<clusters::SoftCache>,
    x_mcgm: Vec<f32>,
    /// The rows this block updated (`Graph::rows_within`).
    rows: usize,
}

enum InteractionCache {
    /// y = x W_in [N, F], and ssp' (= sigmoid) at out1's pre-activation [N, F].
    Schnet { y: Vec<f32>, slope2: Vec<f32> },
    Painn(PainnCache),
}

impl Inference {
    /// Compiles a SchNet or PaiNN model (weights to f32, filters to tables).
    pub fn new(model: &Model) -> Result<Inference, String> {
        let c = &model.config;
        if c.backbone != "schnet" && c.backbone != "painn" {
            return Err(format!("fast inference covers SchNet and PaiNN, not {}", c.backbone));
        }
        if c.features % 8 != 0 {
            return Err(format!("fast inference needs a multiple of 8 features, not {}", c.features));
        }
        let f = c.features;
        let get = |name: &str| -> Result<Vec<f64>, String> {
            let i = model.params.names.iter().position(|n| n == name).ok_or_else(|| format!("the model has no parameter {name}"))?;
            Ok(to_vec(model.params.values[i].clone()))
        };
        let linear = |name: &str, inputs: usize, outputs: usize, bias: bool| -> Result<Linear, String> {
            let b = if bias { Some(get(&format!("{name}.bias"))?) } else { None };
            Ok(Linear::new(inputs, outputs, get(&format!("{name}.weight"))?, b))
        };
        let mut blocks = Vec::new();
        for t in 0..c.blocks {
            let (table, interaction) = if c.backbone == "schnet" {
                let (w1, b1) = (get(&format!("block{t}.filter1.weight"))?, get(&format!("block{t}.filter1.bias"))?);
                let (w2, b2) = (get(&format!("block{t}.filter2.weight"))?, get(&format!("block{t}.filter2.bias"))?);
                let net = FilterNetwork { n_rbf: c.n_rbf, features: f, cutoff: model.block_cutoff(t), w1: &w1, b1: &b1, w2: &w2, b2: &b2 };
                let interaction = Interaction::Schnet {
                    input: linear(&format!("block{t}.input"), f, f, false)?,
                    out1: linear(&format!("block{t}.out1"), f, f, true)?,
                    out2: linear(&format!("block{t}.out2"), f, f, true)?,
                };
                (FilterTable::new(&net, c.cutoff), interaction)
            } else {
                let (w, b) = (get(&format!("block{t}.message.filter.weight"))?, get(&format!("block{t}.message.filter.bias"))?);
                let filter = LinearFilter { n_rbf: c.n_rbf, width: 3 * f, cutoff: model.block_cutoff(t), w: &w, b: &b };
                let interaction = Interaction::Painn(PainnWeights {
                    phi1: linear(&format!("block{t}.message.phi1"), f, f, true)?,
                    phi2: linear(&format!("block{t}.message.phi2"), f, 3 * f, true)?,
                    vec_u: linear(&format!("block{t}.update.u"), f, f, false)?,
                    vec_v: linear(&format!("block{t}.update.v"), f, f, false)?,
                    upd1: linear(&format!("block{t}.update.mlp1"), 2 * f, f, true)?,
                    upd2: linear(&format!("block{t}.update.mlp2"), f, 3 * f, true)?,
                });
                (FilterTable::tabulate(filter.width, c.cutoff, |d| filter.evaluate(d)), interaction)
            };
            let hard = match &c.mcgm {
                Some(m) => Some(HardWeights {
                    aggregate: (0..m.hard_levels()).map(|l| linear(&format!("block{t}.mcgm{l}.aggregate"), f, f, true)).collect::<Result<_, _>>()?,
                    disseminate: (0..m.hard_levels()).map(|l| linear(&format!("block{t}.mcgm{l}.disseminate"), f, f, false)).collect::<Result<_, _>>()?,
                }),
                None => None,
            };
            let soft = match &c.mcgm {
                Some(m) if m.assign == crate::ml::mcgm::Assign::Soft => {
                    let centroids = get(&format!("block{t}.soft.centroids"))?;
                    Some(SoftWeights {
                        query: Linear::new(f, f, get(&format!("block{t}.soft.query"))?, None),
                        centroids: centroids.iter().map(|&v| v as f32).collect(),
                        aggregate: linear(&format!("block{t}.soft.aggregate"), f, f, true)?,
                        disseminate: linear(&format!("block{t}.soft.disseminate"), f, f, false)?,
                        distance: match m.is_distance_aware() {
                            true => Some(DistanceWeights {
                                message: Linear::new(f, f, get(&format!("block{t}.soft.message"))?, None),
                                filter: get(&format!("block{t}.soft.distance_filter"))?.iter().map(|&v| v as f32).collect(),
                                widths: m.distance_widths.clone(),
                            }),
                            false => None,
                        },
                    })
                }
                _ => None,
            };
            blocks.push(Block {
                table,
                interaction,
                hard,
                soft,
            });
        }
        assert!(blocks.windows(2).all(|b| b[0].table.same_grid(&b[1].table)), "filter tables share one grid");
        Ok(Inference {
            features: f,
            embedding: get("embedding")?.iter().map(|&v| v as f32).collect(),
            charge_embedding: match &c.long_range {
                Some(l) if l.charge_embedding => Some(get("charge_embedding")?.iter().map(|&v| v as f32).collect()),
                _ => None,
            },
            blocks,
            readout1: linear("readout1", f, f / 2, true)?,
            readout2: linear("readout2", f / 2, 1, true)?,
            charges: match &c.long_range {
                Some(long_range) => Some(ChargeWeights {
                    layer1: linear("charges.layer1", f, f / 2, true)?,
                    layer2: linear("charges.layer2", f / 2, 1, true)?,
                    coulomb: long_range.coulomb(),
                    hardness: match long_range.equilibration {
                        // J = J_self + softplus(h), softplus = ssp + ln 2.
                        true => Some(get("charges.hardness")?.iter().map(|&h| crate::ml::equilibration::self_hardness(long_range.charge_width) + dense::ssp64(h) + std::f64::consts::LN_2).collect()),
                        false => None,
                    },
                    memory: Vec::new(),
                    warm: None,
                }),
                None => None,
            },
            reference: model.normalization.reference_energies.clone(),
            scale: model.normalization.energy_scale,
            mcgm: c.mcgm.clone(),
            cutoff: c.cutoff,
            times: StageTimes::default(),
            partitions: Vec::new(),
            record_layers: false,
        })
    }

    /// Whether the backbone is PaiNN (vector features; every block is of one backbone).
    /// Whether a soft MCGM level exchanges messages by centroid distance (open structures only).
    pub fn is_distance_aware(&self) -> bool {
        self.mcgm.as_ref().is_some_and(|m| m.is_distance_aware())
    }

    pub fn is_painn(&self) -> bool {
        self.blocks.iter().any(|b| matches!(b.interaction, Interaction::Painn(_)))
    }

    /// Energies, forces and virials of `graph`. Err: a long-range model's charges cannot be
    /// summed in some structure's cell (periodic along some axes only).
    pub fn evaluate(&mut self, graph: &Graph) -> Result<Output, String> {
        self.evaluate_part(graph, &mut |_| {}, None)
    }

    /// `evaluate` for one part of a domain-decomposed system: the energy of the graph's owned
    /// atoms (`Graph::owned`) and its forces on every atom, ghosts included, with MCGM's
    /// cluster sums added up over all parts by `reduce` (every part must call this together,
    /// as with MPI_Allreduce). The parts' energies, forces (ghosts' added to their owners) and
    /// virials sum to the whole system's.
    ///
    /// Without `exchange` the ghosts must reach the model's receptive field (blocks x cutoff)
    /// and each block updates the rows `Graph::rows_within` says. With it, the host refreshes
    /// the ghosts' features from their owners after every block and adds the ghosts' gradients
    /// back to their owners in the backward pass (LAMMPS's forward and reverse communication),
    /// so one cutoff of ghosts suffices and each block updates the owned rows only.
    pub fn evaluate_part(&mut self, graph: &Graph, reduce: &mut dyn FnMut(&mut [f64]), mut exchange: Option<&mut dyn GhostExchange>) -> Result<Output, String> {
        if graph.owned < graph.n_atoms() && (graph.n_structures != 1 || self.charges.is_some() || self.is_distance_aware()) {
            return Err("a system in parts (ghost atoms) takes one structure and a model without learned charges or a distance-aware MCGM (both need the whole system)".into());
        }
        if self.is_distance_aware() {
            graph.cells.iter().try_for_each(crate::ml::model::open_for_centroids)?;
        }
        let mut pooling = crate::ml::mcgm::Pooling { owned: graph.owned, reduce };
        let n_species = self.embedding.len() / self.features;
        let f = self.features;
        let n = graph.n_atoms();
        let mut clustering = Duration::ZERO;
        let t_forward = Instant::now();
        let mut x: Vec<f32> = Vec::with_capacity(n * f);
        for &s in &graph.species {
            x.extend_from_slice(&self.embedding[s * f..(s + 1) * f]);
        }
        if let Some(c) = &self.charge_embedding {
            let counts = graph.counts();
            for (i, xi) in x.chunks_mut(f).enumerate() {
                let (s, z) = (graph.structure[i], graph.species[i]);
                let q = (graph.charges[s] / counts[s] as f64) as f32;
                xi.iter_mut().zip(&c[z * f..(z + 1) * f]).for_each(|(x, c)| *x += q * c);
            }
        }
        // Every block's table shares one grid: each edge's place on it is found once.
        let places: Vec<table::Place> = graph.distance.par_iter().with_min_len(1024).map(|&d| self.blocks[0].table.place(d)).collect();
        let mut caches = Vec::with_capacity(self.blocks.len());
        let (mut m, mut h, mut update) = (vec![0.0f32; n * f], Vec::new(), Vec::new());
        // PaiNN's vector features [N, 3, F], zero at the start.
        let painn = self.is_painn();
        let mut mu = if painn { vec![0.0f32; n * 3 * f] } else { Vec::new() };
        let mut layers = Vec::new();
        let n_blocks = self.blocks.len();
        // Rows within d edges of the owned atoms (all rows for a whole system).
        let within = |d: usize| graph.rows_within.get(d).copied().unwrap_or(n);
        for (t, block) in self.blocks.iter().enumerate() {
            // The rows whose outputs of this block are needed, and the rows they read.
            let (out_rows, in_rows) = if exchange.is_some() { (graph.owned, n) } else { (within(n_blocks - 1 - t), within(n_blocks - t)) };
            let interaction = match &block.interaction {
                Interaction::Schnet { input, out1, out2 } => {
                    let mut y = Vec::new();
                    input.forward(&x[..in_rows * f], &mut y);
                    // m_i = Σ_{e in row i} y_j ⊙ W(d_e)
                    m[..out_rows * f].par_chunks_mut(f).enumerate().with_min_len(16).for_each(|(i, mi)| {
                        mi.fill(0.0);
                        for e in graph.start[i]..graph.start[i + 1] {
                            let yj = &y[graph.neighbor[e] as usize * f..][..f];
                            block.table.accumulate_message(&places[e], yj, mi);
                        }
                    });
                    let mut slope2 = Vec::new();
                    out1.forward(&m[..out_rows * f], &mut slope2);
                    h.resize(slope2.len(), 0.0);
                    activate(&mut slope2, &mut h);
                    out2.forward(&h, &mut update);
                    x.iter_mut().zip(&update).for_each(|(x, u)| *x += u);
                    InteractionCache::Schnet { y, slope2 }
                }
                Interaction::Painn(p) => InteractionCache::Painn(p.forward(&block.table, &places, graph, &mut x, &mut mu, out_rows, in_rows)),
            };
            if self.record_layers {
                layers.push((layer::name(t, layer::Stage::Interaction), f, x.clone()));
                if !mu.is_empty() {
                    layers.push((layer::name(t, layer::Stage::Vectors), 3 * f, mu.clone()));
                }
            }
            let mut cache = BlockCache { interaction, levels: Vec::new(), soft: None, x_mcgm: Vec::new(), rows: out_rows };
            if let (Some(config), Some(hard)) = (&self.mcgm, &block.hard) {
                let t = Instant::now();
                cache.levels = hierarchy(config, &graph.structure, &graph.species, n_species, graph.n_structures, &x, f, &mut pooling);
                clustering += t.elapsed();
                let rows = &x[..out_rows * f];
                let mut delta = vec![0.0f32; out_rows * f];
                hard.forward(&cache.levels, rows, f, &mut delta, &mut pooling);
                if let Some(soft) = &block.soft {
                    cache.soft = Some(soft.forward(&graph.structure[..out_rows], graph.n_structures, rows, &graph.positions, f, &mut delta, &mut pooling));
                    cache.x_mcgm = rows.to_vec();
                }
                x.iter_mut().zip(&delta).for_each(|(x, d)| *x += d);
                if self.record_layers {
                    layers.push((layer::name(caches.len(), layer::Stage::Mcgm), f, x.clone()));
                }
            }
            // The ghosts take their owners' new features for the next block (the readout reads
            // owned rows only). Every part makes the same calls, whatever its atoms: they are
            // collective.
            if let Some(ex) = exchange.as_deref_mut().filter(|_| t + 1 < n_blocks) {
                ex.forward(&mut x, f);
                if painn {
                    ex.forward(&mut mu, 3 * f);
                }
            }
            caches.push(cache);
        }
        // Level 1 (elements) is fixed; only the K-means levels above it can regroup.
        let mut regrouped = vec![false; graph.n_structures];
        if self.mcgm.as_ref().is_some_and(|m| m.assign == crate::ml::mcgm::Assign::Hard && m.hard_levels() > 1) {
            let partitions = partition_digests(graph, &caches);
            if partitions.len() == self.partitions.len() {
                regrouped.iter_mut().zip(partitions.iter().zip(&self.partitions)).for_each(|(r, (now, before))| *r = now != before);
            }
            if regrouped.contains(&true) {
                self.times.partition_changes += 1;
            }
            self.partitions = partitions;
        }
        // Readout: E_i = scale (ssp(x W_r1 + b) W_r2 + b) + E_ref[species].
        // Only the owned atoms' energies count.
        let owned = graph.owned;
        let mut a_r = Vec::new();
        self.readout1.forward(&x[..owned * f], &mut a_r);
        h.resize(a_r.len(), 0.0);
        activate(&mut a_r, &mut h);
        let mut atomic = Vec::new();
        self.readout2.forward(&h, &mut atomic);
        // Ghosts' energies are counted where they are owned.
        let atom_energies: Vec<f64> = (0..n).map(|i| if i < owned { self.scale * atomic[i] as f64 + self.reference[graph.species[i]] } else { 0.0 }).collect();
        let mut energy = vec![0.0f64; graph.n_structures];
        for i in 0..n {
            energy[graph.structure[i]] += atom_energies[i];
        }
        let x_final = x;
        let forward = t_forward.elapsed();

        let t_backward = Instant::now();
        let half = f / 2;
        let w_r2: Vec<f32> = (0..half).map(|k| self.readout2.w[k] * self.scale as f32).collect();
        let mut g_ar = a_r;
        g_ar.chunks_mut(half).for_each(|row| row.iter_mut().zip(&w_r2).for_each(|(a, w)| *a *= w));
        let mut g_x = Vec::new();
        self.readout1.backward(&g_ar, &mut g_x, false);
        g_x.resize(n * f, 0.0);
        let t_long_range = Instant::now();
        let charges = match &mut self.charges {
            Some(head) => Some(head.evaluate(graph, &x_final, &mut g_x)?),
            None => None,
        };
        let long_range = t_long_range.elapsed();
        self.times.equilibration_iterations += charges.as_ref().map_or(0, |c| c.iterations as u64);
        let mut g_d = vec![0.0f64; graph.neighbor.len()];
        // PaiNN: dL/dr per edge (its messages depend on the direction too) and dL/dμ.
        let mut pair = if painn { vec![[0.0f64; 3]; graph.neighbor.len()] } else { Vec::new() };
        let mut g_mu = if painn { vec![0.0f32; n * 3 * f] } else { Vec::new() };
        let (mut g_a2, mut g_m, mut g_y) = (Vec::new(), Vec::new(), vec![0.0f32; n * f]);
        // A distance-aware MCGM's dL/dr through its centroids (zero otherwise).
        let mut g_positions = vec![[0.0f64; 3]; if self.is_distance_aware() { n } else { 0 }];
        for (t, (block, cache)) in self.blocks.iter().zip(&caches).enumerate().rev() {
            // Rows past `cache.rows` were not updated by this block: their gradient here is zero.
            let out_rows = cache.rows;
            if let Some(hard) = &block.hard {
                let g = &g_x[..out_rows * f];
                let mut g_mcgm = vec![0.0f32; out_rows * f];
                hard.backward(&cache.levels, g, f, &mut g_mcgm, &mut pooling);
                if let (Some(soft), Some(soft_cache)) = (&block.soft, &cache.soft) {
                    soft.backward(soft_cache, &graph.structure[..out_rows], graph.n_structures, &cache.x_mcgm, &graph.positions, g, f, &mut g_mcgm, &mut g_positions, &mut pooling);
                }
                g_x.iter_mut().zip(&g_mcgm).for_each(|(g, d)| *g += d);
            }
            match (&block.interaction, &cache.interaction) {
                (Interaction::Schnet { input, out1, out2 }, InteractionCache::Schnet { y, slope2 }) => {
                    // x' = x + out2(ssp(out1(m))).
                    let in_rows = y.len() / f;
                    out2.backward(&g_x[..out_rows * f], &mut g_a2, false);
                    g_a2.iter_mut().zip(slope2).for_each(|(g, &s)| *g *= s);
                    out1.backward(&g_a2, &mut g_m, false);
                    // Rows that sent messages but did not take any: zero.
                    g_m.resize(in_rows * f, 0.0);
                    // Per edge e = i←j: dL/dy_j += g_m[i] ⊙ W(d_e), gathered over j's own row
                    // through the twin edge; the pair's dL/dd (both directions, same distance)
                    // is kept per edge.
                    let rows = split_rows(&mut g_d, &graph.start);
                    g_y[..in_rows * f].par_chunks_mut(f).zip(rows).enumerate().with_min_len(16).for_each(|(i, (gyi, gdi))| {
                        gyi.fill(0.0);
                        let (g_m_i, y_i) = (&g_m[i * f..(i + 1) * f], &y[i * f..(i + 1) * f]);
                        for (slot, e) in (graph.start[i]..graph.start[i + 1]).enumerate() {
                            let j = graph.neighbor[e] as usize;
                            // Past `out_rows` no row took a message (g_m is zero): an edge
                            // between two such rows carries nothing back.
                            if j >= in_rows || (i >= out_rows && j >= out_rows) {
                                continue;
                            }
                            let rows = EdgeRows { g_m_i, g_m_j: &g_m[j * f..][..f], y_i, y_j: &y[j * f..][..f] };
                            gdi[slot] += block.table.accumulate_backward(&places[e], rows, gyi) as f64;
                        }
                    });
                    input.backward(&g_y[..in_rows * f], &mut g_x, true);
                }
                (Interaction::Painn(p), InteractionCache::Painn(c)) => p.backward(&block.table, &places, graph, c, &mut g_x, &mut g_mu, &mut pair),
                _ => unreachable!("a block's cache is of its own backbone"),
            }
            // The ghosts' features were their owners' (from the block before; block 0 read
            // embeddings, which take no gradient): their gradients go back there.
            if let Some(ex) = exchange.as_deref_mut().filter(|_| t > 0) {
                ex.reverse(&mut g_x, f);
                g_x[graph.owned * f..].fill(0.0);
                if painn {
                    ex.reverse(&mut g_mu, 3 * f);
                    g_mu[graph.owned * 3 * f..].fill(0.0);
                }
            }
        }
        let backward = t_backward.elapsed();
        self.times.clustering += clustering;
        self.times.forward += forward - clustering;
        self.times.backward += backward - long_range;
        self.times.long_range += long_range;
        self.times.evaluations += 1;
        let mut out = Output { regrouped, layers, ..forces_and_virial(graph, &g_d, &pair, energy, atom_energies) };
        add_position_gradient(graph, &g_positions, &mut out);
        if let Some(c) = charges {
            for (s, e) in c.energy.iter().enumerate() {
                out.energy[s] += e;
                out.virial[s].iter_mut().zip(&c.virial[s]).for_each(|(w, v)| *w += v);
            }
            out.forces.iter_mut().zip(&c.forces).for_each(|(f, g)| (0..3).for_each(|k| f[k] += g[k]));
            if self.record_layers {
                out.layers.push((layer::CHARGES.to_string(), 1, c.charges.iter().map(|&q| q as f32).collect()));
            }
        }
        Ok(out)
    }

    /// Forgets the previous evaluation's partitions (the batch's structures changed): the next
    /// evaluation counts no regrouping.
    pub fn forget_partitions(&mut self) {
        self.partitions.clear();
    }
}

/// How one part of a domain-decomposed system reaches the others between blocks (the LAMMPS
/// plugin: `comm->forward_comm` and `reverse_comm` through the pair style). Rows are [atoms,
/// width], owned atoms first, then ghosts.
pub trait GhostExchange {
    /// Every ghost row takes its owner's row.
    fn forward(&mut self, rows: &mut [f32], width: usize);
    /// Every owner row adds its ghosts' rows (the ghost rows are cleared afterwards by the
    /// caller).
    fn reverse(&mut self, rows: &mut [f32], width: usize);
}

/// h = ssp(a), and a replaced by ssp'(a) = sigmoid(a) for the backward pass (one exp for both).
fn activate(a: &mut [f32], h: &mut [f32]) {
    a.par_chunks_mut(4096).zip(h.par_chunks_mut(4096)).for_each(|(a, h)| {
        for (a, h) in a.iter_mut().zip(h) {
            (*h, *a) = ssp_and_slope(*a);
        }
    });
}

/// Forces F = -dE/dx and virials from the pairs' dE/dd (and, for PaiNN, dE/dr), kept on both
/// of each pair's edges. Each atom sums over its own row (no scatter): the force on i from its
/// pair with j is dE/dr with r = x_j - x_i, that is s r̂ for a pair's dE/dd = s.
fn forces_and_virial(graph: &Graph, g_d: &[f64], pair: &[[f64; 3]], energy: Vec<f64>, atom_energies: Vec<f64>) -> Output {
    let n = graph.n_atoms();
    let per_atom: Vec<([f64; 3], [f64; 9])> = (0..n)
        .into_par_iter()
        .with_min_len(64)
        .map(|i| {
            let (mut f, mut w) = ([0.0f64; 3], [0.0f64; 9]);
            for e in graph.start[i]..graph.start[i + 1] {
                let (r, d) = (graph.vector[e], graph.distance[e]);
                let mut de_dr = [0, 1, 2].map(|k| g_d[e] * r[k] / d);
                if let Some(p) = pair.get(e) {
                    de_dr = [0, 1, 2].map(|k| de_dr[k] + p[k]);
                }
                for k in 0..3 {
                    f[k] += de_dr[k];
                }
                // Every pair is seen from both atoms: half the pair's term each.
                for a in 0..3 {
                    for b in 0..3 {
                        w[3 * a + b] -= 0.5 * r[a] * de_dr[b];
                    }
                }
            }
            (f, w)
        })
        .collect();
    let mut virial = vec![[0.0f64; 9]; graph.n_structures];
    for (i, (_, w)) in per_atom.iter().enumerate() {
        let total = &mut virial[graph.structure[i]];
        total.iter_mut().zip(w).for_each(|(t, v)| *t += v);
    }
    let (forces, atom_virials) = per_atom.into_iter().unzip();
    Output { energy, forces, virial, regrouped: Vec::new(), layers: Vec::new(), atom_energies, atom_virials, failure: None }
}

/// The part of dE/dr that is not carried by edges (a distance-aware MCGM's centroids): F = -g,
/// W = -Σ_i r_i ⊗ g_i (that energy is translation invariant, so the origin does not matter).
fn add_position_gradient(graph: &Graph, g_positions: &[[f64; 3]], out: &mut Output) {
    for (i, g) in g_positions.iter().enumerate() {
        let r = graph.positions[i];
        (0..3).for_each(|k| out.forces[i][k] -= g[k]);
        for a in 0..3 {
            for b in 0..3 {
                out.atom_virials[i][3 * a + b] -= r[a] * g[b];
                out.virial[graph.structure[i]][3 * a + b] -= r[a] * g[b];
            }
        }
    }
}
