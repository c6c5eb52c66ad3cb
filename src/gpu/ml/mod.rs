//! The machine-learned potential (SchNet or PaiNN, with or without MCGM) evaluated on the GPU inside the
//! resident MD step: graph from the simulation's neighbour list, forward pass, cluster hierarchy
//! rebuilt from the current embeddings (hard: K-means on the GPU; soft: learned centroids),
//! readout and the explicit backward pass to forces and virials, all as WGSL kernels
//! (shaders/ml.wgsl) on the simulation's own wgpu device. Nothing goes to the host per step.
//!
//! The kernels follow the CPU fast path (`crate::ml::inference`) operation by operation and read
//! the very same f32 weights and filter tables, compiled from an `Inference`. This module lays
//! the weights out in one buffer, allocates the activations for n atoms and records the list of
//! operations (a kernel, its uniform block, its buffers, its grid) that one evaluation runs.

use super::context::{DenseTiles, GpuContext, GpuError, block_on};
use super::kernels::Kernels;
use super::layout::{MAX_TYPES, dims};
use crate::ml::inference::{Inference, Interaction};
use crate::ml::inference::dense::Linear;
use crate::cell::Cell;
use crate::ml::electrostatics::COULOMB_CONSTANT;
use crate::ml::mcgm::Assign;
use crate::potential::mcgm::GpuModel;

mod charges;
mod half_tables;
mod program;

pub use charges::describe as describe_charges;
use charges::{ChargesAt, charges_at};
use half_tables::{HALF_STRIDE, half_nodes, half_range, half_table};
use program::record;

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const ML: &str = include_str!("../../../shaders/ml.wgsl");
const CHARGES: &str = include_str!("../../../shaders/charges.wgsl");
const PME: &str = include_str!("../../../shaders/pme.wgsl");

/// Limits of the kernels (shaders/ml.wgsl): features per row, hard levels, soft centroids,
/// level-1 clusters K-means sees.
const MAX_FEATURES: usize = 256;
const MAX_LEVELS: usize = 4;
const MAX_CENTROIDS: usize = 16;
const MAX_POINTS: usize = 8;
/// Atoms per partial sum of a pooling (CHUNK in the shader).
pub(crate) const CHUNK: usize = 64;
/// Threads that add one column of a structure's pooled chunks (ml_pool_finish, which picks the
/// same for each structure): the smallest power of 2 that leaves each at most 16 chunks, at
/// most 64. The grid is sized for the batch's largest.
fn pool_lanes(structure_size: usize) -> usize {
    structure_size.div_ceil(CHUNK).div_ceil(16).next_power_of_two().clamp(1, 64)
}

/// Bytes per operation's uniform block (the uniform offset alignment).
const OP_BYTES: u64 = 256;
const OP_WORDS: usize = 60;
/// Data bindings of group 1 (A, B, C, D, E, G, W, U, M).
const DATA_BINDINGS: usize = 9;
/// W's binding number.
const WEIGHTS_BINDING: u32 = 7;
const NONE: u32 = u32::MAX;
/// The evaluation's stages, which prefix the profiler's kernel names (`profile_label`).
const FORWARD: &str = "ml: forward";
const CLUSTERING: &str = "ml: clustering";
const BACKWARD: &str = "ml: backward";
const LONG_RANGE: &str = "ml: long range";

/// The profiler's name of a kernel in a stage, "ml: forward / ml_dense": `--gpu-profile` splits
/// the model's time by kernel within each stage. Interned: one string per pair for the process.
fn profile_label(stage: &'static str, kernel: &'static str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static LABELS: OnceLock<Mutex<HashMap<(&'static str, &'static str), &'static str>>> = OnceLock::new();
    let mut labels = LABELS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    labels.entry((stage, kernel)).or_insert_with(|| Box::leak(format!("{stage} / {kernel}").into_boxed_str()))
}

/// Why a model cannot run on the GPU (it can on the CPU) for `n_atoms` atoms in `cell`.
pub fn unsupported_reason(model: &Inference, n_atoms: usize, cell: &Cell) -> Option<String> {
    if let Some(reason) = charges::unsupported_reason(model, n_atoms, cell) {
        return Some(reason);
    }
    if model.features > MAX_FEATURES {
        return Some(format!("the GPU kernels handle up to {MAX_FEATURES} features (this model: {})", model.features));
    }
    if let Some(m) = &model.mcgm {
        if m.hard_levels() > MAX_LEVELS {
            return Some(format!("the GPU kernels handle up to {MAX_LEVELS} hard MCGM levels (this model: {})", m.hard_levels()));
        }
        if m.assign == Assign::Soft && m.clusters > MAX_CENTROIDS {
            return Some(format!("the GPU kernels handle up to {MAX_CENTROIDS} soft centroids (this model: {})", m.clusters));
        }
    }
    if n_atoms.div_ceil(16) > 65535 {
        return Some(format!("the GPU's dense layers handle up to {} atoms (this system: {n_atoms})", 65535 * 16));
    }
    None
}

/// A linear layer's place in the weights buffer.
#[derive(Clone, Copy)]
struct LinearAt {
    inputs: u32,
    outputs: u32,
    /// W, [inputs, outputs] as in the model file (the forward pass).
    w: u32,
    /// Its transpose, [outputs, inputs], for the backward pass: stored so that the backward
    /// reads it as the forward reads W (neighbouring threads, neighbouring words).
    wt: u32,
    bias: u32,
}

struct SoftAt {
    query: LinearAt,
    centroids: u32,
    aggregate: LinearAt,
    disseminate: LinearAt,
}

/// The backbone's layers of one block.
enum InteractionAt {
    Schnet { input: LinearAt, out1: LinearAt, out2: LinearAt },
    Painn { phi1: LinearAt, phi2: LinearAt, vec_u: LinearAt, vec_v: LinearAt, upd1: LinearAt, upd2: LinearAt },
}

struct BlockAt {
    table: u32,
    interaction: InteractionAt,
    aggregate: Vec<LinearAt>,
    disseminate: Vec<LinearAt>,
    soft: Option<SoftAt>,
}

/// The model's f32 weights in one flat array, and where each piece is.
struct Weights {
    data: Vec<f32>,
}

impl Weights {
    fn push(&mut self, values: &[f32]) -> u32 {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(values);
        at
    }

    fn linear(&mut self, l: &Linear) -> LinearAt {
        let w = self.push(&l.w);
        let transposed: Vec<f32> = (0..l.outputs).flat_map(|o| (0..l.inputs).map(move |i| l.w[i * l.outputs + o])).collect();
        let wt = self.push(&transposed);
        let bias = l.b.as_ref().map_or(NONE, |b| self.push(b));
        LinearAt { inputs: l.inputs as u32, outputs: l.outputs as u32, w, wt, bias }
    }
}

/// One kernel launch of the evaluation.
struct Op {
    pipeline: usize,
    group: wgpu::BindGroup,
    grid: [u32; 3],
    label: &'static str,
}

/// An operation before its bind group exists: its uniform words and buffer indices.
struct OpSpec {
    pipeline: usize,
    words: [u32; OP_WORDS],
    bind: [usize; DATA_BINDINGS],
    grid: [u32; 3],
    label: &'static str,
}

const ENTRIES: [&str; 38] = [
    "ml_edges", "ml_dense", "ml_dense_tiled", "ml_embed", "ml_copy", "ml_message", "ml_message_backward", "ml_energy", "ml_finish",
    "ml_pool", "ml_pool_finish", "ml_kmeans", "ml_hierarchy", "ml_disseminate", "ml_hierarchy_backward",
    "ml_cluster_layers", "ml_soft_weights", "ml_soft_gw", "ml_soft_gsum", "ml_mcgm_atoms",
    "ml_painn_message", "ml_painn_norm", "ml_painn_update", "ml_painn_gs", "ml_painn_guv", "ml_painn_message_backward",
    "ml_structure_mean", "ml_charge_center", "ml_ewald_prepare", "ml_ewald_structure", "ml_ewald_virial", "ml_ewald_atoms", "ml_ewald_finish",
    "ml_pme_spread", "ml_pme_load", "ml_pme_fft", "ml_pme_convolve", "ml_pme_gather",
];

fn entry(name: &str) -> usize {
    ENTRIES.iter().position(|e| *e == name).expect("a kernel of ml.wgsl")
}

/// Words of the `Op` uniform (shaders/ml.wgsl).
mod word {
    pub const ROWS: usize = 0;
    pub const INPUTS: usize = 1;
    pub const OUTPUTS: usize = 2;
    pub const MODE: usize = 3;
    pub const OFF_A: usize = 4;
    pub const OFF_B: usize = 5;
    pub const OFF_C: usize = 6;
    pub const OFF_D: usize = 7;
    pub const OFF_W: usize = 8;
    pub const OFF_BIAS: usize = 9;
    pub const FEATURES: usize = 11;
    pub const CUTOFF_SQ: usize = 12;
    pub const INV_H: usize = 13;
    pub const NODES: usize = 14;
    pub const K: usize = 15;
    pub const SCALE: usize = 16;
    pub const TAU: usize = 17;
    pub const N_CHUNKS: usize = 18;
    pub const LEVELS: usize = 19;
    pub const TYPE_SPECIES: usize = 20;
    pub const TYPE_CLUSTER: usize = 28;
    pub const LEVEL_ROWS: usize = 36;
    pub const LEVEL_OFFSET: usize = 40;
    pub const LAYERS: usize = 44;
}

/// The model on the GPU for one simulation of n atoms.
pub struct MlForces {
    pipelines: Vec<wgpu::ComputePipeline>,
    ops: Vec<Op>,
    /// Each operation's buffers (indices into `buffers`), kept to bind them again when the
    /// edge buffer grows; the uniform blocks, the unused-binding stand-in and the edges.
    binds: Vec<[usize; DATA_BINDINGS]>,
    uniforms: usize,
    dummy: usize,
    edges: usize,
    /// Σ of the atoms' reference energies (eV, f64: the kernels write only the learned part).
    pub reference_energy: f64,
    pub cutoff: f64,
    /// Hard MCGM with K-means levels: where each block keeps its last partitions.
    partitions: Option<KeptPartitions>,
    /// The activations and weights (the bind groups hold them too).
    buffers: Vec<wgpu::Buffer>,
    /// Kept layers (name, buffer, floats per atom), as `Builder::taps`.
    taps: Vec<(String, usize, usize)>,
    n: usize,
}

struct KeptPartitions {
    /// (buffer, byte offset) per block.
    at: Vec<(usize, u64)>,
    /// Bytes per block.
    bytes: u64,
    backup: wgpu::Buffer,
}

/// Buffer indices while building.
struct Builder<'a> {
    ctx: &'a GpuContext,
    buffers: Vec<wgpu::Buffer>,
    specs: Vec<OpSpec>,
    base: [u32; OP_WORDS],
    n: usize,
    f: usize,
    /// What the profiler calls the operations being recorded.
    stage: &'static str,
    /// (labels buffer, first word) of each block's kept K-means partitions.
    kept_partitions: Vec<(usize, usize)>,
    /// Structures in the batch, and their chunks of pooling (CHUNK atoms) in all.
    structures: usize,
    chunks: usize,
    /// Threads a column of ml_pool_finish for the batch's largest structure.
    pool_lanes: usize,
    /// With `Inference::record_layers`: (name, buffer, floats per atom) of each kept layer.
    taps: Vec<(String, usize, usize)>,
    /// The first buffer larger than the adapter binds (label, bytes): it was not allocated,
    /// and the model is refused.
    too_large: Option<(String, u64)>,
    /// The particle-mesh Ewald's fixed-point grid (binding M), usize::MAX: none.
    mesh: usize,
    /// The pairs inside the cutoff (ml_edges), bound as U by the edge kernels.
    edges: usize,
}

/// Words after a block's labels that keep its K-means levels' partitions of the elements
/// between evaluations (ml_kmeans).
fn kept_partitions(levels: usize) -> usize {
    levels.saturating_sub(1) * MAX_POINTS
}

impl Builder<'_> {
    fn buffer(&mut self, label: &str, floats: usize) -> usize {
        let mut size = (4 * floats.max(4)) as u64;
        if size > self.ctx.adapter.max_binding {
            self.too_large.get_or_insert((label.to_string(), size));
            size = 16;
        }
        self.buffers.push(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }));
        self.buffers.len() - 1
    }

    /// Adds an operation: `set` fills its own uniform words, `bind` its buffers (A, B, C, D,
    /// E, G; W and U are given separately, M is the mesh's if there is one).
    fn op(&mut self, name: &'static str, label: &'static str, grid: [u32; 3], bind: [Option<usize>; 6], weights: usize, labels: Option<usize>, set: &[(usize, u32)]) {
        let mut words = self.base;
        for &(k, v) in set {
            words[k] = v;
        }
        let mut b = [usize::MAX; DATA_BINDINGS];
        for (k, x) in bind.iter().enumerate() {
            b[k] = x.unwrap_or(usize::MAX);
        }
        b[6] = weights;
        b[7] = labels.unwrap_or(usize::MAX);
        b[8] = self.mesh;
        self.specs.push(OpSpec { pipeline: entry(name), words, bind: b, grid, label: profile_label(label, name) });
    }

    fn per_atom(&self) -> [u32; 3] {
        dims(self.n as u64)
    }

    /// out (rows at `output`) = in (rows at `input`) through `l` (or its transpose), by `mode`.
    #[allow(clippy::too_many_arguments)]
    fn dense(&mut self, l: LinearAt, transpose: bool, rows: usize, input: (usize, u32), output: (usize, u32), aux: Option<(usize, u32)>, mode: u32, weights: usize) {
        let (inputs, outputs, w, bias) = if transpose { (l.outputs, l.inputs, l.wt, NONE) } else { (l.inputs, l.outputs, l.w, l.bias) };
        // One thread per tile of 4 rows by 4 outputs (TILE_ROWS, TILE_OUTS in ml.wgsl); with
        // workgroup tiles, a workgroup of 64 per 32 x 32. A layer of fewer than 32 outputs (the
        // charge head's last) keeps register tiles: most of a 32-wide tile would idle.
        let tiled = self.ctx.dense_tiles == DenseTiles::Workgroup && outputs >= 32;
        let (kernel, grid) = if tiled {
            ("ml_dense_tiled", dims(64 * rows.div_ceil(32) as u64 * outputs.div_ceil(32) as u64))
        } else {
            ("ml_dense", dims(rows.div_ceil(4) as u64 * outputs.div_ceil(4) as u64))
        };
        let aux_buffer = aux.map(|a| a.0);
        let stage = self.stage;
        self.op(
            kernel,
            stage,
            grid,
            [Some(input.0), Some(output.0), aux_buffer, None, None, None],
            weights,
            None,
            &[
                (word::ROWS, rows as u32),
                (word::INPUTS, inputs),
                (word::OUTPUTS, outputs),
                (word::MODE, mode),
                (word::OFF_A, input.1),
                (word::OFF_B, output.1),
                (word::OFF_C, aux.map_or(0, |a| a.1)),
                (word::OFF_W, w),
                (word::OFF_BIAS, bias),
            ],
        );
    }

    fn elements(&self, count: usize) -> [u32; 3] {
        dims(count as u64)
    }

    fn rows_grid(&self) -> [u32; 3] {
        let n = self.n as u32;
        [n.min(65535), n.div_ceil(65535), 1]
    }
}

/// Regions of a block's cluster buffer (f32 offsets) for R hard rows and K soft centroids.
struct ClusterRegions {
    pool: u32,
    aggregated: u32,
    out: u32,
    g_out: u32,
    g_c: u32,
    g_pool: u32,
    counts: u32,
    scratch: u32,
    soft_pool: u32,
    soft_sums: u32,
    soft_a: u32,
    soft_v: u32,
    soft_gv: u32,
    soft_ga: u32,
    soft_gp: u32,
    soft_gsum: u32,
    size: usize,
}

impl ClusterRegions {
    fn new(rows: usize, k: usize, f: usize) -> ClusterRegions {
        let mut at = 0usize;
        let mut take = |n: usize| {
            let start = at;
            at += n;
            start as u32
        };
        let (rf, kf) = (rows * f, k * f);
        let r = ClusterRegions {
            pool: take(rf),
            aggregated: take(rf),
            out: take(rf),
            g_out: take(rf),
            g_c: take(rf),
            g_pool: take(rf),
            counts: take(rows),
            scratch: take(rows.max(k) + 1),
            soft_pool: take(kf),
            soft_sums: take(k),
            soft_a: take(kf),
            soft_v: take(kf),
            soft_gv: take(kf),
            soft_ga: take(kf),
            soft_gp: take(kf),
            soft_gsum: take(k),
            size: 0,
        };
        ClusterRegions { size: at, ..r }
    }
}

impl MlForces {
    /// Compiles the kernels and lays out the model for `types` (each simulation type's element)
    /// with `type_of_atom` (per atom, the structures of a batch one after the other, of
    /// `structure_sizes` atoms each, in `cells`), for a neighbour list of `capacity` per atom.
    pub fn new(ctx: &GpuContext, kernels: &Kernels, gpu_model: &GpuModel, type_of_atom: &[u32], structure_sizes: &[usize], cells: &[Cell], capacity: u32) -> Result<MlForces, GpuError> {
        let (model, species_of_type) = (&gpu_model.inference, &gpu_model.species_of_type);
        let n = type_of_atom.len();
        if let Some(reason) = structure_sizes.iter().zip(cells).find_map(|(&size, cell)| unsupported_reason(model, size, cell)) {
            return Err(GpuError::Unsupported(reason));
        }
        let f = model.features;
        if gpu_model.half_tables {
            let largest = model.blocks.iter().map(|b| half_range(&b.table.data, b.table.features)).fold(0.0f32, f32::max);
            if !(largest <= half::f16::MAX.to_f32()) {
                return Err(GpuError::Unsupported(format!("the model's filter tables reach {largest:e}, beyond f16's range (65504): gpu_tables = \"f32\"")));
            }
        }
        let pipelines = compile(ctx, kernels, gpu_model.half_tables)?;

        // Weights, in the order the kernels use them.
        let mut wts = Weights { data: Vec::new() };
        let embedding = wts.push(&model.embedding);
        let blocks: Vec<BlockAt> = model
            .blocks
            .iter()
            .map(|b| BlockAt {
                table: if gpu_model.half_tables { wts.push(&half_table(&b.table.data, b.table.features, b.table.nodes)) } else { wts.push(&b.table.data) },
                interaction: match &b.interaction {
                    Interaction::Schnet { input, out1, out2 } => InteractionAt::Schnet { input: wts.linear(input), out1: wts.linear(out1), out2: wts.linear(out2) },
                    Interaction::Painn(p) => InteractionAt::Painn {
                        phi1: wts.linear(&p.phi1),
                        phi2: wts.linear(&p.phi2),
                        vec_u: wts.linear(&p.vec_u),
                        vec_v: wts.linear(&p.vec_v),
                        upd1: wts.linear(&p.upd1),
                        upd2: wts.linear(&p.upd2),
                    },
                },
                aggregate: b.hard.as_ref().map_or(Vec::new(), |h| h.aggregate.iter().map(|l| wts.linear(l)).collect()),
                disseminate: b.hard.as_ref().map_or(Vec::new(), |h| h.disseminate.iter().map(|l| wts.linear(l)).collect()),
                soft: b.soft.as_ref().map(|s| SoftAt {
                    query: wts.linear(&s.query),
                    centroids: wts.push(&s.centroids),
                    aggregate: wts.linear(&s.aggregate),
                    disseminate: wts.linear(&s.disseminate),
                }),
            })
            .collect();
        let readout1 = wts.linear(&model.readout1);
        let readout2 = wts.linear(&model.readout2);
        let head = model.charges.as_ref().map(|c| (wts.linear(&c.layer1), wts.linear(&c.layer2)));
        let charge_embedding = model.charge_embedding.as_ref().map_or(NONE, |e| wts.push(e));
        // Squared training-range limits per pair of model species (0: none).
        let limits: Vec<f32> = gpu_model.range.unseen_below.iter().flatten().map(|(d, _)| (d * d) as f32).collect();
        let check_close = limits.iter().any(|&l| l > 0.0).then(|| wts.push(&limits));
        let model_species = gpu_model.range.unseen_below.len();

        // The hierarchy's shape is fixed by the species present: level 1 has one cluster per
        // element (in species order, as cluster_labels), level l max(1, n_{l-1}/r).
        // Every structure of a batch must have the same (they share the shape).
        let order_in = |atoms: &[u32]| {
            let mut order: Vec<usize> = Vec::new();
            for &t in atoms {
                let s = species_of_type[t as usize];
                if !order.contains(&s) {
                    order.push(s);
                }
            }
            order.sort_unstable();
            order
        };
        let mut starts = vec![0usize];
        for &size in structure_sizes {
            starts.push(starts.last().unwrap() + size);
        }
        let order = order_in(&type_of_atom[..structure_sizes[0]]);
        if model.mcgm.is_some() && (1..structure_sizes.len()).any(|k| order_in(&type_of_atom[starts[k]..starts[k + 1]]) != order) {
            return Err(GpuError::Unsupported(
                "MCGM in a GPU batch needs every structure to have the same elements (they share the cluster hierarchy's shape)".into(),
            ));
        }
        let chunks: usize = structure_sizes.iter().map(|s| s.div_ceil(CHUNK)).sum();
        // MCGM runs a workgroup a chunk (ml_pool) and a structure (ml_kmeans, ml_hierarchy);
        // a grid axis holds 65,535.
        if model.mcgm.is_some() && chunks > 65535 {
            return Err(GpuError::Unsupported(format!(
                "MCGM on the GPU pools up to 65,535 chunks of {CHUNK} atoms, at least one a structure (this batch: {chunks}, from {} structures)",
                structure_sizes.len()
            )));
        }
        let pool_lanes = structure_sizes.iter().map(|&s| pool_lanes(s)).max().unwrap_or(1);
        let hard_levels = model.mcgm.as_ref().map_or(0, |m| m.hard_levels());
        let mut level_rows = vec![order.len()];
        for _ in 1..hard_levels {
            let below = *level_rows.last().unwrap();
            level_rows.push((below / model.mcgm.as_ref().unwrap().ratio).max(1));
        }
        let mut level_offset = vec![0usize];
        for l in 1..level_rows.len() {
            level_offset.push(level_offset[l - 1] + level_rows[l - 1]);
        }
        let total_rows: usize = if hard_levels > 0 { level_rows.iter().sum() } else { 0 };
        let soft_k = model.blocks.first().and_then(|b| b.soft.as_ref()).map_or(0, |s| s.k());

        let mut base = [0u32; OP_WORDS];
        base[word::FEATURES] = f as u32;
        base[word::CUTOFF_SQ] = ((model.cutoff * model.cutoff) as f32).to_bits();
        let table = &model.blocks[0].table;
        let (inv_h, nodes) = if gpu_model.half_tables { (table.inv_h / HALF_STRIDE as f64, half_nodes(table.nodes)) } else { (table.inv_h, table.nodes) };
        base[word::INV_H] = (inv_h as f32).to_bits();
        base[word::NODES] = nodes as u32;
        base[word::SCALE] = (model.scale as f32).to_bits();
        base[word::TAU] = (f as f32).to_bits();
        base[word::N_CHUNKS] = chunks as u32;
        base[word::LEVELS] = hard_levels as u32;
        for t in 0..MAX_TYPES.min(species_of_type.len()) {
            let s = species_of_type[t];
            base[word::TYPE_SPECIES + t] = s as u32;
            base[word::TYPE_CLUSTER + t] = order.iter().position(|&o| o == s).unwrap_or(0) as u32;
        }
        for l in 0..level_rows.len().min(MAX_LEVELS) {
            base[word::LEVEL_ROWS + l] = level_rows[l] as u32;
            base[word::LEVEL_OFFSET + l] = level_offset[l] as u32;
        }

        let reference_energy = type_of_atom.iter().map(|&t| model.reference[species_of_type[t as usize]]).sum();
        let structures = structure_sizes.len();
        let mut b = Builder { ctx, buffers: Vec::new(), specs: Vec::new(), base, n, f, stage: FORWARD, kept_partitions: Vec::new(), structures, chunks, pool_lanes, taps: Vec::new(), too_large: None, mesh: usize::MAX, edges: usize::MAX };
        let built = ctx.allocating("for the model's activations", || {
            let weights = b.buffer("ml weights", wts.data.len());
            // Sized after the activations (a refusal names the first buffer that is too large),
            // but bound by the edge kernels, so its place is taken now.
            b.edges = b.buffer("ml edges", 0);
            ctx.queue.write_buffer(&b.buffers[weights], 0, bytemuck::cast_slice(&wts.data));
            // The pairs inside the cutoff, placed once for every message kernel of the
            // evaluation; the same walk over the list checks the training range's limits.
            let grid = b.per_atom();
            let check = check_close.map_or(Vec::new(), |at| vec![(word::MODE, 1), (word::K, model_species as u32), (word::OFF_W, at)]);
            let edges = Some(b.edges);
            b.op("ml_edges", FORWARD, grid, [None; 6], weights, edges, &check);
            let charges = head.map(|(layer1, layer2)| charges_at(&mut b, model, layer1, layer2, charge_embedding, gpu_model.total_charge, structure_sizes, cells));
            let charges = charges.transpose()?;
            record(&mut b, model, &blocks, embedding, charges.as_ref(), readout1, readout2, weights, total_rows, soft_k, &level_rows);
            Ok::<(), GpuError>(())
        });
        built??;
        if let Some((label, bytes)) = b.too_large.take() {
            return Err(GpuError::Unsupported(ctx.binding_too_large(&format!("model's {}", label.trim_start_matches("ml ")), bytes, n)));
        }
        let Builder { mut buffers, specs, kept_partitions: kept_at, taps, edges, .. } = b;
        buffers[edges] = edge_buffer(ctx, n, capacity)?;
        // No partition seen yet: the first evaluation is not a regrouping.
        let words = structures * kept_partitions(level_rows.len());
        for &(buffer, at) in &kept_at {
            ctx.queue.write_buffer(&buffers[buffer], 4 * at as u64, bytemuck::cast_slice(&vec![u32::MAX; words]));
        }
        let partitions = (!kept_at.is_empty()).then(|| KeptPartitions {
            at: kept_at.iter().map(|&(buffer, at)| (buffer, 4 * at as u64)).collect(),
            bytes: 4 * words as u64,
            backup: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ml kept partitions (block start)"),
                size: 4 * (words * kept_at.len()) as u64,
                usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        });

        // One uniform block per operation, then the bind groups.
        let mut uniform = vec![0u32; specs.len() * (OP_BYTES as usize / 4)];
        for (k, spec) in specs.iter().enumerate() {
            uniform[k * (OP_BYTES as usize / 4)..][..OP_WORDS].copy_from_slice(&spec.words);
        }
        let uniforms = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ml ops"),
            size: (uniform.len() * 4) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&uniforms, 0, bytemuck::cast_slice(&uniform));
        let dummy = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ml unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        buffers.push(uniforms);
        buffers.push(dummy);
        let (uniforms, dummy) = (buffers.len() - 2, buffers.len() - 1);
        let binds: Vec<[usize; DATA_BINDINGS]> = specs.iter().map(|s| s.bind).collect();
        let groups = bind_groups(ctx, &pipelines[0], &buffers, &binds, uniforms, dummy);
        let ops = specs.into_iter().zip(groups).map(|(spec, group)| Op { pipeline: spec.pipeline, group, grid: spec.grid, label: spec.label }).collect();
        ctx.check("setting up the model on the GPU")?;
        Ok(MlForces { pipelines, ops, binds, uniforms, dummy, edges, reference_energy, cutoff: model.cutoff, partitions, buffers, taps, n })
    }

    /// The neighbour list now has room for `capacity` entries per atom: the edge buffer
    /// (ml_edges) grows with it, and the operations are bound to the new one.
    pub fn resize_edges(&mut self, ctx: &GpuContext, capacity: u32) -> Result<(), GpuError> {
        self.buffers[self.edges] = edge_buffer(ctx, self.n, capacity)?;
        let groups = bind_groups(ctx, &self.pipelines[0], &self.buffers, &self.binds, self.uniforms, self.dummy);
        for (op, group) in self.ops.iter_mut().zip(groups) {
            op.group = group;
        }
        ctx.check("binding the model's edges")
    }

    /// Copies the kept K-means partitions to their block-start copy or back (with the state,
    /// so that a replayed block counts the same regroupings).
    pub fn copy_partitions(&self, encoder: &mut wgpu::CommandEncoder, to_backup: bool) {
        let Some(p) = &self.partitions else { return };
        for (k, &(buffer, at)) in p.at.iter().enumerate() {
            let (live, copy) = ((&self.buffers[buffer], at), (&p.backup, k as u64 * p.bytes));
            let (from, to) = if to_backup { (live, copy) } else { (copy, live) };
            encoder.copy_buffer_to_buffer(from.0, from.1, to.0, to.1, p.bytes);
        }
    }

    /// The layers kept at the last evaluation (`Inference::record_layers`), over all atoms of
    /// the batch: (name, floats per atom, values).
    pub fn read_layers(&self, ctx: &GpuContext) -> Result<Vec<(String, usize, Vec<f32>)>, GpuError> {
        self.taps
            .iter()
            .map(|(name, buffer, width)| {
                let bytes = ctx.read(&self.buffers[*buffer], 0, (4 * width * self.n) as u64)?;
                Ok((name.clone(), *width, bytemuck::cast_slice(&bytes).to_vec()))
            })
            .collect()
    }

    /// Encodes one evaluation: forces into `force`, per-atom energies and virials into `obs`.
    /// `mark` labels each kernel for the profiler.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, main_group: &wgpu::BindGroup, mark: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &'static str)) {
        pass.set_bind_group(0, main_group, &[]);
        for op in &self.ops {
            pass.set_pipeline(&self.pipelines[op.pipeline]);
            pass.set_bind_group(1, &op.group, &[]);
            pass.dispatch_workgroups(op.grid[0], op.grid[1], op.grid[2]);
            mark(pass, op.label);
        }
    }
}

/// The edge buffer (ml.wgsl, ml_edges) for n atoms of up to `capacity` neighbours: a count per
/// atom, then per edge the neighbour and the vector to it; refused past the binding limit.
fn edge_buffer(ctx: &GpuContext, n: usize, capacity: u32) -> Result<wgpu::Buffer, GpuError> {
    let bytes = 4 * (n as u64 + 4 * n as u64 * capacity as u64);
    if bytes > ctx.adapter.max_binding {
        return Err(GpuError::Unsupported(ctx.binding_too_large("model's edges", bytes, n)));
    }
    ctx.allocating("for the model's edges", || {
        ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ml edges"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    })
}

/// One bind group (group 1) per operation: its uniform block in `uniforms` and its buffers by
/// index (`dummy` where it binds none).
fn bind_groups(ctx: &GpuContext, pipeline: &wgpu::ComputePipeline, buffers: &[wgpu::Buffer], binds: &[[usize; DATA_BINDINGS]], uniforms: usize, dummy: usize) -> Vec<wgpu::BindGroup> {
    let layout = pipeline.get_bind_group_layout(1);
    binds
        .iter()
        .enumerate()
        .map(|(k, bind)| {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &buffers[uniforms],
                    offset: k as u64 * OP_BYTES,
                    size: wgpu::BufferSize::new(4 * OP_WORDS as u64),
                }),
            }];
            for (slot, &index) in bind.iter().enumerate() {
                let buffer = if index == usize::MAX { &buffers[dummy] } else { &buffers[index] };
                entries.push(wgpu::BindGroupEntry { binding: slot as u32 + 1, resource: buffer.as_entire_binding() });
            }
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
        })
        .collect()
}

fn compile(ctx: &GpuContext, kernels: &Kernels, half_tables: bool) -> Result<Vec<wgpu::ComputePipeline>, GpuError> {
    let device = &ctx.device;
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }];
    for k in 1..=DATA_BINDINGS as u32 {
        // W (the weights and tables) is never written: read-only, which lets a GPU cache it.
        let read_only = k == WEIGHTS_BINDING;
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: k,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        });
    }
    let have = device.limits().max_storage_buffers_per_shader_stage;
    let needed = super::kernels::STORAGE_BINDINGS + DATA_BINDINGS as u32;
    if have < needed {
        return Err(GpuError::Unsupported(format!("the model's kernels bind {needed} storage buffers at once, this adapter allows {have}")));
    }
    let op_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("ml op"), entries: &entries });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("ml"),
        bind_group_layouts: &[Some(&kernels.main_layout), Some(&op_layout)],
        immediate_size: 0,
    });
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("ml.wgsl"),
        source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{ML}\n{CHARGES}\n{PME}").into()),
    });
    let pipelines = ENTRIES
        .iter()
        .map(|name| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(name),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &[("HALF_TABLES", half_tables as u8 as f64)], ..Default::default() },
                cache: None,
            })
        })
        .collect();
    if let Some(e) = block_on(scope.pop()) {
        return Err(GpuError::Other { what: "compiling the model's WGSL kernels".into(), message: e.to_string() });
    }
    Ok(pipelines)
}
