//! Learned charges on the GPU: the charge head, the projection to the total charge, and their
//! Coulomb energy in reciprocal space alone (α = the charges' own width, so no pair list beyond
//! the model's), either as the sum over k-vectors (shaders/charges.wgsl), O(N K), or by
//! particle-mesh Ewald (shaders/pme.wgsl), O(N + M log M), which large systems take.

use super::*;
use crate::ml::pme::{influence_on, nyquist_points};

/// Terms (k-vectors x atoms of a structure) from which the GPU takes the mesh instead of the
/// sum over k-vectors: about where the two cost the same on lavapipe, some 600 atoms of the
/// ion-pair lattice (`PLATFORM=gpu benches/long_range_md.sh`, BENCHMARKS.md). To measure again
/// on a real GPU.
const MESH_ABOVE_TERMS: f64 = 1.5e7;
/// Terms of the sum over k-vectors beyond which a system is refused where the mesh is ruled
/// out: about 0.1 s a step on an H100 (each term is two phases of ~40 flops).
const MAX_EWALD_TERMS: f64 = 2e10;
/// The FFT's longest grid line (MAX_LINE in shaders/pme.wgsl: one workgroup's memory), the
/// fewest points along a cell vector, and grid points per share of the virial
/// (CONVOLVE_POINTS: a structure's last share takes what is left).
const MAX_LINE: usize = 1024;
const MIN_LINE: usize = 16;
const CONVOLVE_POINTS: usize = 1024;
/// The long-range block's first structure word, and words per structure (as in
/// shaders/charges.wgsl).
const LR_STRUCTURE: usize = 8;
const LR_WORDS: usize = 16;
/// Words of the block's header (shaders/charges.wgsl, pme.wgsl).
mod header {
    pub const SELF: usize = 0;
    pub const KE: usize = 1;
    pub const MESH_DIMS: usize = 2;
    pub const MESH_POINTS: usize = 5;
    pub const INV_4_ALPHA_SQ: usize = 6;
}
/// Words of a structure's part of the long-range block (LR_* in shaders/charges.wgsl).
mod lr {
    pub const Q: usize = 0;
    pub const Q_PER_ATOM: usize = 1;
    pub const BACKGROUND: usize = 4;
    pub const K_FIRST: usize = 5;
    pub const K_COUNT: usize = 6;
    pub const ATOMS: usize = 7;
    pub const SHARES_FIRST: usize = 14;
    pub const SHARES: usize = 15;
}
/// f32 words per k-vector, k-vectors per thread of the structure factor, and words per atom of
/// the fractional coordinates (shaders/charges.wgsl).
const K_WORDS: usize = 12;
const KC: usize = 8;
const FRAC_WORDS: usize = 8;
/// k-vectors per part of the per-atom Ewald sum (at most 64 parts).
const K_PER_PART: usize = 4096;

/// Learned charges: the head's layers, the charge embedding's place in the weights, and the
/// buffers of the reciprocal sum.
pub(super) struct ChargesAt {
    layer1: LinearAt,
    layer2: LinearAt,
    pub(super) embedding: u32,
    /// The long-range block (written once: the GPU keeps the cell) and per atom the raw
    /// charges, the charges and dE/dq.
    pub(super) block: usize,
    pub(super) values: usize,
    /// Per atom and part of the reciprocal sum, the part's sums (φ and the force).
    part_sums: usize,
    parts: u32,
    reciprocal: Reciprocal,
}

enum Reciprocal {
    /// The sum over k-vectors: the k-vectors, S(k), each chunk of KC k-vectors' share of the
    /// virial, the fractional coordinates; the per-atom sum's workgroups are blocks of 64
    /// atoms (each structure's own) by parts of each structure's k-vectors.
    Sum { kvectors: usize, structure_factor: usize, virial_shares: usize, fractional: usize, k_total: usize, atom_blocks: u32 },
    /// Particle-mesh Ewald: grid points per axis (the same for every structure) and per
    /// structure, the complex grid, the influence function, each workgroup of 64 points' share
    /// of the virial (the fixed-point grid is the builder's `mesh`).
    Mesh { dims: [usize; 3], points: usize, grid: usize, influence: usize, virial_shares: usize },
}

/// The mesh's grid points per axis for a structure in `cell`: the smallest 2^a 3^b (the
/// FFT's radices 2, 3 and 4) at least the Nyquist count and `MIN_LINE`.
fn mesh_dims(model: &Inference, cell: &Cell) -> [usize; 3] {
    let reach = model.charges.as_ref().expect("a model with charges").coulomb.reciprocal_only_mesh_reach();
    [0, 1, 2].map(|m| fft_size(nyquist_points(reach, cell, m).max(MIN_LINE)))
}

/// The smallest 2^a 3^b at least n.
fn fft_size(n: usize) -> usize {
    (n..)
        .find(|&m| {
            let mut odd = m >> m.trailing_zeros();
            while odd % 3 == 0 {
                odd /= 3;
            }
            odd == 1
        })
        .expect("a size 2^a 3^b exists")
}

/// Whether the GPU sums the structures' charges on the mesh: as `Coulomb::mesh` says, else
/// where the sum over k-vectors would take more than `MESH_ABOVE_TERMS` terms for any structure.
fn takes_mesh(model: &Inference, sizes: &[usize], cells: &[Cell]) -> bool {
    let coulomb = &model.charges.as_ref().expect("a model with charges").coulomb;
    coulomb.mesh.unwrap_or_else(|| sizes.iter().zip(cells).any(|(&n, cell)| coulomb.reciprocal_only_count(cell.volume()) * n as f64 > MESH_ABOVE_TERMS))
}

/// Why learned charges cannot run on the GPU for `n_atoms` atoms in `cell` (None: they can,
/// or the model has none).
pub(super) fn unsupported_reason(model: &Inference, n_atoms: usize, cell: &Cell) -> Option<String> {
    let c = model.charges.as_ref()?;
    if c.coulomb.width <= 0.0 {
        return Some("the GPU sums learned charges by Ewald in reciprocal space, which point charges (σ = 0) cannot use".into());
    }
    if takes_mesh(model, &[n_atoms], std::slice::from_ref(cell)) {
        let dims = mesh_dims(model, cell);
        if dims.iter().any(|&d| d > MAX_LINE) {
            return Some(format!(
                "the GPU's particle-mesh Ewald takes up to {MAX_LINE} grid points along a cell vector; this cell needs {} x {} x {} (the CPU has no such limit)",
                dims[0], dims[1], dims[2]
            ));
        }
    }
    None
}

/// How the GPU sums the charges of `n_atoms` atoms in `cell`, in words (the run's header);
/// None for a model without charges.
pub fn describe(model: &Inference, n_atoms: usize, cell: &Cell) -> Option<String> {
    let coulomb = &model.charges.as_ref()?.coulomb;
    let alpha = coulomb.a();
    Some(if takes_mesh(model, &[n_atoms], std::slice::from_ref(cell)) {
        let [x, y, z] = mesh_dims(model, cell);
        format!("particle-mesh Ewald on the GPU, a {x} x {y} x {z} grid, α = {alpha:.4}/Å, no real-space part")
    } else {
        format!("Ewald on the GPU over about {:.0} k-vectors, α = {alpha:.4}/Å, no real-space part", coulomb.reciprocal_only_count(cell.volume()))
    })
}

/// Lays out learned charges for structures of `sizes` atoms in `cells`, each of the GPU
/// model's total charge: the long-range block, and the k-vectors of each structure's sum or
/// its mesh's influence function, written once since the GPU keeps the cell.
#[allow(clippy::too_many_arguments)]
pub(super) fn charges_at(b: &mut Builder, model: &Inference, layer1: LinearAt, layer2: LinearAt, embedding: u32, total_charge: f64, sizes: &[usize], cells: &[Cell]) -> Result<ChargesAt, GpuError> {
    let coulomb = model.charges.as_ref().expect("a model with charges").coulomb;
    let mut block = vec![0.0f32; LR_STRUCTURE + LR_WORDS * sizes.len()];
    // The header: the self term's -2α/√π (α = a, the same in every cell) and k_e.
    block[header::SELF] = (-2.0 * coulomb.a() / std::f64::consts::PI.sqrt()) as f32;
    block[header::KE] = COULOMB_CONSTANT as f32;
    let values = b.buffer("ml charges", 3 * b.n);
    let alpha = coulomb.a();
    for (s, (&size, cell)) in sizes.iter().zip(cells).enumerate() {
        let at = LR_STRUCTURE + LR_WORDS * s;
        block[at + lr::Q] = total_charge as f32;
        block[at + lr::Q_PER_ATOM] = (total_charge / size as f64) as f32;
        block[at + lr::BACKGROUND] = (-std::f64::consts::PI / (cell.volume() * alpha * alpha)) as f32;
        block[at + lr::ATOMS] = size as f32;
    }
    let (reciprocal, parts) = if takes_mesh(model, sizes, cells) {
        let mut dims = [MIN_LINE; 3];
        for cell in cells {
            let own = mesh_dims(model, cell);
            dims = [0, 1, 2].map(|m| dims[m].max(own[m]));
        }
        if dims.iter().any(|&d| d > MAX_LINE) {
            return Err(GpuError::Unsupported(format!("the GPU's particle-mesh Ewald takes up to {MAX_LINE} grid points along a cell vector; these cells need {dims:?}")));
        }
        let points = dims.iter().product::<usize>();
        let total = points * cells.len();
        // The complex grid, the largest binding, checked before the host computes anything.
        let grid_bytes = 8 * total as u64;
        if grid_bytes > b.ctx.adapter.max_binding {
            return Err(GpuError::Unsupported(b.ctx.binding_too_large("particle-mesh Ewald grid", grid_bytes, b.n)));
        }
        let mut influence = Vec::with_capacity(points * cells.len());
        let shares = points.div_ceil(CONVOLVE_POINTS);
        for (s, cell) in cells.iter().enumerate() {
            influence.extend(influence_on(alpha, dims, cell).into_iter().map(|g| g as f32));
            let at = LR_STRUCTURE + LR_WORDS * s;
            block[at + lr::SHARES_FIRST] = f32::from_bits((s * shares) as u32);
            block[at + lr::SHARES] = f32::from_bits(shares as u32);
        }
        for m in 0..3 {
            block[header::MESH_DIMS + m] = f32::from_bits(dims[m] as u32);
        }
        block[header::MESH_POINTS] = f32::from_bits(points as u32);
        block[header::INV_4_ALPHA_SQ] = (1.0 / (4.0 * alpha * alpha)) as f32;
        b.mesh = b.buffer("ml PME fixed-point grid", 2 * total);
        let influence_buffer = b.buffer("ml PME influence function", total);
        b.ctx.queue.write_buffer(&b.buffers[influence_buffer], 0, bytemuck::cast_slice(&influence));
        let mesh = Reciprocal::Mesh {
            dims,
            points,
            grid: b.buffer("ml PME grid", 2 * total),
            influence: influence_buffer,
            virial_shares: b.buffer("ml PME virial shares", 6 * shares * cells.len()),
        };
        (mesh, 1)
    } else {
        let mut kvectors: Vec<f32> = Vec::new();
        let mut most = 0;
        for (s, cell) in cells.iter().enumerate() {
            let sum = coulomb.reciprocal_only(cell).map_err(GpuError::Unsupported)?;
            if sum.vectors.len() as f64 * sizes[s] as f64 > MAX_EWALD_TERMS {
                return Err(GpuError::Unsupported(format!(
                    "the GPU's Ewald sum over k-vectors takes up to {MAX_EWALD_TERMS:.0e} terms a step: {} k-vectors x {} atoms is more (the mesh would take it)",
                    sum.vectors.len(),
                    sizes[s]
                )));
            }
            let first = kvectors.len() / K_WORDS;
            for (k, v) in sum.vectors.iter().enumerate() {
                let [h, kk, l] = v.index.map(|x| x as f32);
                // Whether the phase of this k is the one before's times e^{2πi s_c} (the sum's
                // order is h, then k, then l innermost).
                let before = k.checked_sub(1).map(|b| sum.vectors[b].index);
                let chained = before.is_some_and(|b| b[0] == v.index[0] && b[1] == v.index[1] && b[2] + 1 == v.index[2]);
                kvectors.extend_from_slice(&[h, kk, l, v.weight as f32, v.k[0] as f32, v.k[1] as f32, v.k[2] as f32, v.strain as f32, f32::from_bits(s as u32), chained as u32 as f32, 0.0, 0.0]);
            }
            // Padded to whole chunks with k-vectors of zero weight, which add nothing.
            let count = sum.vectors.len().next_multiple_of(KC).max(KC);
            for _ in sum.vectors.len()..count {
                kvectors.extend_from_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, f32::from_bits(s as u32), 0.0, 0.0, 0.0]);
            }
            most = most.max(count);
            let at = LR_STRUCTURE + LR_WORDS * s;
            block[at + lr::K_FIRST] = f32::from_bits(first as u32);
            block[at + lr::K_COUNT] = f32::from_bits(count as u32);
            block[at + lr::SHARES_FIRST] = f32::from_bits((first / KC) as u32);
            block[at + lr::SHARES] = f32::from_bits((count / KC) as u32);
        }
        let k_total = kvectors.len() / K_WORDS;
        let kvectors_buffer = b.buffer("ml k-vectors", kvectors.len());
        b.ctx.queue.write_buffer(&b.buffers[kvectors_buffer], 0, bytemuck::cast_slice(&kvectors));
        let sum = Reciprocal::Sum {
            kvectors: kvectors_buffer,
            structure_factor: b.buffer("ml structure factors", 2 * k_total),
            virial_shares: b.buffer("ml reciprocal virial shares", 6 * k_total / KC),
            fractional: b.buffer("ml fractional coordinates", FRAC_WORDS * b.n),
            k_total,
            atom_blocks: sizes.iter().map(|n| n.div_ceil(64) as u32).sum(),
        };
        (sum, most.div_ceil(K_PER_PART).clamp(1, 64))
    };
    let at = ChargesAt {
        layer1,
        layer2,
        embedding,
        block: b.buffer("ml long-range block", block.len()),
        values,
        part_sums: b.buffer("ml reciprocal part sums", 4 * parts * b.n),
        parts: parts as u32,
        reciprocal,
    };
    b.ctx.queue.write_buffer(&b.buffers[at.block], 0, bytemuck::cast_slice(&block));
    Ok(at)
}

/// Learned charges (src/ml/inference/charges.rs): q̃ = layer2(ssp(layer1(x))) from the final
/// features, moved to sum to each structure's charge; their Ewald energy, forces and virial
/// (added to the accumulator `acc`); dE/dq̃ back through the head into `g_x`. `scratch` holds
/// the head's activations and slopes ([N, F/2] each).
pub(super) fn learned_charges(b: &mut Builder, c: &ChargesAt, x: usize, g_x: usize, scratch: (usize, usize), acc: usize, weights: usize) {
    let (n, ns) = (b.n as u32, b.structures as u32);
    let (h, slope) = scratch;
    let q = c.values;
    let atoms = b.per_atom();
    b.stage = LONG_RANGE;
    // q at [0, N): raw, [N, 2N): moved to sum to Q, [2N, 3N): dE/dq, then projected at [0, N).
    b.dense(c.layer1, false, b.n, (x, 0), (h, 0), Some((slope, 0)), 2, weights);
    b.dense(c.layer2, false, b.n, (h, 0), (q, 0), None, 0, weights);
    let mean = |b: &mut Builder, at: u32, word: u32| b.op("ml_structure_mean", LONG_RANGE, [ns, 1, 1], [Some(q), None, Some(c.block), None, None, None], weights, None, &[(word::OFF_A, at), (word::K, word)]);
    let center = |b: &mut Builder, from: u32, to: u32, word: u32, mode: u32| {
        b.op("ml_charge_center", LONG_RANGE, atoms, [Some(q), None, Some(c.block), None, None, None], weights, None, &[(word::OFF_A, from), (word::OFF_B, to), (word::K, word), (word::MODE, mode)])
    };
    mean(b, 0, 2);
    center(b, 0, n, 2, 0);
    match c.reciprocal {
        Reciprocal::Sum { kvectors, structure_factor, virial_shares, fractional, k_total, atom_blocks } => {
            b.op("ml_ewald_prepare", LONG_RANGE, atoms, [None, None, None, None, Some(fractional), None], weights, None, &[]);
            let chunks = b.elements(k_total / KC);
            b.op(
                "ml_ewald_structure",
                LONG_RANGE,
                chunks,
                [Some(q), Some(structure_factor), None, Some(kvectors), Some(fractional), Some(virial_shares)],
                weights,
                None,
                &[(word::OFF_A, n), (word::ROWS, k_total as u32)],
            );
            b.op("ml_ewald_virial", LONG_RANGE, [ns, 1, 1], [None, None, Some(c.block), None, None, Some(virial_shares)], weights, None, &[]);
            b.op(
                "ml_ewald_atoms",
                LONG_RANGE,
                [atom_blocks, c.parts, 1],
                [Some(q), Some(structure_factor), Some(c.block), Some(kvectors), Some(fractional), Some(c.part_sums)],
                weights,
                None,
                &[(word::OFF_A, n), (word::K, c.parts)],
            );
        }
        Reciprocal::Mesh { dims, points, grid, influence, virial_shares } => {
            let total = (points * b.structures) as u32;
            b.op("ml_pme_spread", LONG_RANGE, atoms, [Some(q), None, Some(c.block), None, None, None], weights, None, &[(word::OFF_A, n)]);
            let per_point = b.elements(total as usize);
            b.op("ml_pme_load", LONG_RANGE, per_point, [None, Some(grid), Some(c.block), None, None, None], weights, None, &[(word::ROWS, total)]);
            fft(b, c.block, grid, dims, total, false, weights);
            let shares = points.div_ceil(CONVOLVE_POINTS) as u32;
            let blocks = shares * ns;
            b.op(
                "ml_pme_convolve",
                LONG_RANGE,
                [blocks.min(65535), blocks.div_ceil(65535), 1],
                [None, Some(grid), Some(c.block), Some(influence), None, Some(virial_shares)],
                weights,
                None,
                &[(word::ROWS, total), (word::K, shares)],
            );
            b.op("ml_ewald_virial", LONG_RANGE, [ns, 1, 1], [None, None, Some(c.block), None, None, Some(virial_shares)], weights, None, &[]);
            fft(b, c.block, grid, dims, total, true, weights);
            b.op("ml_pme_gather", LONG_RANGE, atoms, [Some(q), Some(grid), Some(c.block), None, None, Some(c.part_sums)], weights, None, &[(word::OFF_A, n)]);
        }
    }
    b.op("ml_ewald_finish", LONG_RANGE, atoms, [Some(q), None, Some(c.block), Some(acc), None, Some(c.part_sums)], weights, None, &[(word::OFF_A, n), (word::OFF_B, 2 * n), (word::K, c.parts)]);
    mean(b, 2 * n, 3);
    center(b, 2 * n, 0, 3, 1);
    // dE/dx = ((dE/dq̃ W_2^T) ⊙ ssp'(a)) W_1^T, added to g_x.
    b.dense(c.layer2, true, b.n, (q, 0), (h, 0), Some((slope, 0)), 3, weights);
    b.dense(c.layer1, true, b.n, (h, 0), (g_x, 0), None, 1, weights);
    b.stage = BACKWARD;
}

/// The 3-D FFT of every structure's grid (`total` points, z fastest), in place: one pass of
/// whole lines per axis (z, y, x forward; x, y, z back), unnormalised.
fn fft(b: &mut Builder, block: usize, grid: usize, dims: [usize; 3], total: u32, inverse: bool, weights: usize) {
    let [kx, ky, kz] = dims.map(|d| d as u32);
    // Per axis: line length, stride, lines per run of consecutive starts, and the run's span.
    let axes = [(kx, ky * kz, ky * kz, kx * ky * kz), (ky, kz, kz, ky * kz), (kz, 1, 1, kz)];
    let order: [usize; 3] = if inverse { [0, 1, 2] } else { [2, 1, 0] };
    for axis in order {
        let (length, stride, per_run, span) = axes[axis];
        let lines = total / length;
        // Whole lines per workgroup, up to MAX_LINE points in all.
        let per_group = MAX_LINE as u32 / length;
        let needed = lines.div_ceil(per_group);
        let groups = [needed.min(65535), needed.div_ceil(65535), 1];
        b.op(
            "ml_pme_fft",
            LONG_RANGE,
            groups,
            [None, Some(grid), Some(block), None, None, None],
            weights,
            None,
            &[(word::ROWS, lines), (word::INPUTS, length), (word::OUTPUTS, stride), (word::OFF_C, per_run), (word::OFF_D, span), (word::MODE, inverse as u32), (word::K, per_group)],
        );
    }
}
