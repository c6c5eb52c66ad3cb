//! The model's GPU program: the list of kernel dispatches (dense layers, filters, message
//! passing, MCGM clustering and pooling, the backward pass) recorded once per `MlForces`.

use super::*;
use super::charges::learned_charges;
use crate::ml::layer;

/// Records one evaluation, as `Inference::evaluate` runs it.
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    b: &mut Builder,
    model: &Inference,
    blocks: &[BlockAt],
    embedding: u32,
    charges: Option<&ChargesAt>,
    readout1: LinearAt,
    readout2: LinearAt,
    weights: usize,
    total_rows: usize,
    soft_k: usize,
    level_rows: &[usize],
) {
    let (n, f) = (b.n, b.f);
    let nf = n * f;
    let x = b.buffer("ml x", nf);
    let acc = b.buffer("ml force accumulator", 12 * n);
    let s1 = b.buffer("ml scratch 1", nf);
    let s2 = b.buffer("ml scratch 2", nf);
    let g_x = b.buffer("ml dL/dx", nf);
    let g_y = b.buffer("ml dL/dy", nf);
    let painn = model.is_painn();
    // Per block, what its backward pass reads: SchNet y and ssp'; PaiNN (layouts in ml.wgsl)
    // φ, SiLU' of both MLPs, the input μ, U | V and |V| | <U,V> | s.
    let per_block = |b: &mut Builder, label: &str, size: usize, wanted: bool| -> Vec<usize> { if wanted { (0..blocks.len()).map(|_| b.buffer(label, size)).collect() } else { Vec::new() } };
    let ys = per_block(b, "ml y", nf, !painn);
    let slopes = per_block(b, "ml slope", nf, true);
    let phis = per_block(b, "ml PaiNN phi", 3 * nf, painn);
    let upd_slopes = per_block(b, "ml PaiNN update slope", nf, painn);
    let mu_ins = per_block(b, "ml PaiNN block input mu", 3 * nf, painn);
    let uvs = per_block(b, "ml PaiNN U V", 6 * nf, painn);
    let nds = per_block(b, "ml PaiNN norm dot s", 5 * nf, painn);
    // PaiNN's μ and dL/dμ, and scratch ([N, 3F] or [N, 6F]: the message backward's output).
    let one = |b: &mut Builder, label: &str, size: usize| if painn { b.buffer(label, size) } else { usize::MAX };
    let (mu, g_mu) = (one(b, "ml PaiNN mu", 3 * nf), one(b, "ml PaiNN dL/dmu", 3 * nf));
    let (wide, wider) = (one(b, "ml PaiNN scratch 3F", 3 * nf), one(b, "ml PaiNN scratch 6F", 6 * nf));
    let hard = model.mcgm.is_some();
    let soft = soft_k > 0;
    // Every structure has its clusters: level l's rows of all structures are contiguous
    // (ml.wgsl level_row). The hard levels' layers run in one workgroup a structure
    // (ml_hierarchy); the soft centroids' dense layers run once over S K rows.
    let ns = b.structures;
    let classes = soft_k.max(level_rows[0]).max(1);
    let partials = if hard { b.buffer("ml pooling partials", b.chunks * classes * (f + 1)) } else { usize::MAX };
    let regions = ClusterRegions::new(ns * total_rows.max(1), ns * soft_k, f);
    struct Mcgm {
        xm: usize,
        clusters: usize,
        labels: usize,
        z: usize,
        w: usize,
        gw: usize,
    }
    let mcgm: Vec<Mcgm> = if hard {
        (0..blocks.len())
            .map(|_| Mcgm {
                xm: b.buffer("ml MCGM input", nf),
                clusters: b.buffer("ml clusters", regions.size),
                // The levels' labels, then each K-means level's last partition of the elements.
                labels: b.buffer("ml cluster labels", ns * (total_rows.max(1) + kept_partitions(level_rows.len()))),
                z: if soft { b.buffer("ml soft z", 2 * nf) } else { usize::MAX },
                w: if soft { b.buffer("ml soft memberships", n * soft_k) } else { usize::MAX },
                gw: if soft { b.buffer("ml soft dL/dw", n * soft_k) } else { usize::MAX },
            })
            .collect()
    } else {
        Vec::new()
    };
    let some = |k: usize| if k == usize::MAX { None } else { Some(k) };
    let atoms = b.per_atom();
    let rows = b.rows_grid();
    let levels = level_rows.len();

    // With a charge embedding, x_i += (Q/n) c[species_i] (Q/n from the long-range block).
    let (block, charge_embedding) = charges.map_or((None, NONE), |c| (Some(c.block), c.embedding));
    // The message kernels read the pairs inside the cutoff that ml_edges placed (MlForces::new).
    let edges = Some(b.edges);
    // PaiNN: μ, dL/dμ and the first block's input μ start at zero.
    let first_mu_in = mu_ins.first().copied();
    b.op("ml_embed", FORWARD, atoms, [block, Some(x), first_mu_in, Some(acc), some(mu), some(g_mu)], weights, None, &[(word::OFF_W, embedding), (word::MODE, painn as u32), (word::OFF_C, charge_embedding)]);
    for (t, blk) in blocks.iter().enumerate() {
        let table = [(word::OFF_W, blk.table)];
        match blk.interaction {
            InteractionAt::Schnet { input, out1, out2 } => {
                b.dense(input, false, n, (x, 0), (ys[t], 0), None, 0, weights);
                b.op("ml_message", FORWARD, rows, [Some(ys[t]), Some(s1), None, None, None, None], weights, edges, &table);
                b.dense(out1, false, n, (s1, 0), (s2, 0), Some((slopes[t], 0)), 2, weights);
                b.dense(out2, false, n, (s2, 0), (x, 0), None, 1, weights);
            }
            InteractionAt::Painn { phi1, phi2, vec_u, vec_v, upd1, upd2 } => {
                // φ = phi2(SiLU(phi1(q))); the messages; U, V; (s1, s2, s3) = MLP([q, |V|]).
                b.dense(phi1, false, n, (x, 0), (s1, 0), Some((slopes[t], 0)), 4, weights);
                b.dense(phi2, false, n, (s1, 0), (phis[t], 0), None, 0, weights);
                // The block's input μ (mu_ins[t]) was kept by the previous block's update (or
                // zeroed by ml_embed): the messages read it while they add into μ.
                b.op("ml_painn_message", FORWARD, rows, [Some(phis[t]), Some(x), Some(mu_ins[t]), Some(mu), None, None], weights, edges, &table);
                b.dense(vec_u, false, 3 * n, (mu, 0), (uvs[t], 0), None, 0, weights);
                b.dense(vec_v, false, 3 * n, (mu, 0), (uvs[t], 3 * nf as u32), None, 0, weights);
                let grid = b.elements(nf);
                b.op("ml_painn_norm", FORWARD, grid, [Some(uvs[t]), Some(wider), None, Some(x), Some(nds[t]), None], weights, None, &[]);
                b.dense(upd1, false, n, (wider, 0), (s1, 0), Some((upd_slopes[t], 0)), 4, weights);
                b.dense(upd2, false, n, (s1, 0), (nds[t], 2 * nf as u32), None, 0, weights);
                // It also keeps the new μ as the next block's input.
                let next_mu_in = mu_ins.get(t + 1).copied();
                b.op("ml_painn_update", FORWARD, grid, [Some(nds[t]), Some(x), Some(uvs[t]), Some(mu), next_mu_in, None], weights, None, &[(word::MODE, next_mu_in.is_some() as u32)]);
            }
        }
        if model.record_layers {
            tap(b, layer::name(t, layer::Stage::Interaction), (x, 0), f, weights);
            if painn {
                tap(b, layer::name(t, layer::Stage::Vectors), (mu, 0), 3 * f, weights);
            }
        }
        if !hard {
            continue;
        }
        let m = &mcgm[t];
        let c = m.clusters;
        let grid = b.elements(nf);
        b.op("ml_copy", CLUSTERING, grid, [Some(x), Some(m.xm), None, None, None, None], weights, None, &[(word::ROWS, n as u32)]);
        // Level 1: the means of each element's atoms.
        b.stage = CLUSTERING;
        pool(b, m.xm, None, partials, c, regions.pool, regions.counts, level_rows[0], false, weights);
        b.stage = FORWARD;
        if levels > 1 {
            b.op("ml_kmeans", CLUSTERING, [ns as u32, 1, 1], [Some(c), None, None, None, None, None], weights, Some(m.labels), &[(word::OFF_A, regions.pool), (word::OFF_B, (ns * total_rows.max(1)) as u32)]);
            b.kept_partitions.push((m.labels, ns * total_rows.max(1)));
        }
        // Every level's pooling, aggregation and dissemination: one dispatch.
        let mut words = vec![(word::OFF_A, regions.pool), (word::OFF_B, regions.aggregated), (word::OFF_C, regions.out), (word::OFF_D, regions.counts)];
        words.extend(layer_pairs(&blk.aggregate, &blk.disseminate, false));
        b.op("ml_hierarchy", CLUSTERING, [ns as u32, 1, 1], [Some(c), None, None, None, None, None], weights, Some(m.labels), &words);
        if let Some(s) = &blk.soft {
            b.dense(s.query, false, n, (m.xm, 0), (m.z, 0), None, 0, weights);
            b.op("ml_soft_weights", CLUSTERING, atoms, [Some(m.z), None, Some(m.w), None, None, None], weights, None, &[(word::K, soft_k as u32), (word::OFF_W, s.centroids)]);
            b.stage = CLUSTERING;
            pool(b, m.xm, Some(m.w), partials, c, regions.soft_pool, regions.soft_sums, soft_k, false, weights);
            b.stage = FORWARD;
            let layers = layer_pairs(&[s.aggregate], &[s.disseminate], false);
            two_layers(b, FORWARD, c, [regions.soft_pool, regions.soft_a, regions.soft_v], soft_k, layers, weights);
        }
        let grid = b.elements(nf);
        b.op(
            "ml_disseminate",
            FORWARD,
            grid,
            [Some(c), Some(x), some(m.w), None, None, None],
            weights,
            Some(m.labels),
            &[(word::OFF_A, regions.out), (word::OFF_B, regions.soft_v), (word::MODE, soft as u32), (word::K, soft_k as u32)],
        );
        if model.record_layers {
            tap(b, layer::name(t, layer::Stage::Mcgm), (x, 0), f, weights);
        }
    }
    // Readout and the energies; dL/da into g_y (as scratch).
    b.dense(readout1, false, n, (x, 0), (s1, 0), Some((s2, 0)), 2, weights);
    b.op(
        "ml_energy",
        FORWARD,
        atoms,
        [Some(s1), Some(g_y), Some(s2), None, None, None],
        weights,
        None,
        &[(word::INPUTS, readout2.inputs), (word::OFF_W, readout2.w), (word::OFF_BIAS, readout2.bias)],
    );
    b.stage = BACKWARD;
    b.dense(readout1, true, n, (g_y, 0), (g_x, 0), None, 0, weights);
    if let Some(c) = charges {
        learned_charges(b, c, x, g_x, (s1, s2), acc, weights);
        if model.record_layers {
            // The charges: [N, 2N) of the values.
            tap(b, layer::CHARGES.to_string(), (c.values, n as u32), 1, weights);
        }
    }

    for (t, blk) in blocks.iter().enumerate().rev() {
        let table = [(word::OFF_W, blk.table)];
        if hard {
            let m = &mcgm[t];
            let c = m.clusters;
            // Everything that reads g = dL/dx first: per-cluster sums, soft dL/dw and dL/dV.
            pool(b, g_x, None, partials, c, regions.g_out, regions.scratch, level_rows[0], true, weights);
            if let Some(s) = &blk.soft {
                b.op("ml_soft_gw", BACKWARD, atoms, [Some(g_x), Some(c), None, None, None, Some(m.gw)], weights, None, &[(word::K, soft_k as u32), (word::OFF_B, regions.soft_v)]);
                pool(b, g_x, Some(m.w), partials, c, regions.soft_gv, regions.scratch, soft_k, true, weights);
                // The transposes in reverse order: the dissemination's first.
                let layers = layer_pairs(&[s.disseminate], &[s.aggregate], true);
                two_layers(b, BACKWARD, c, [regions.soft_gv, regions.soft_ga, regions.soft_gp], soft_k, layers, weights);
                let grid = b.elements(ns * soft_k);
                b.op(
                    "ml_soft_gsum",
                    BACKWARD,
                    grid,
                    [Some(c), None, None, None, None, None],
                    weights,
                    None,
                    &[(word::K, soft_k as u32), (word::OFF_A, regions.soft_gp), (word::OFF_B, regions.soft_pool), (word::OFF_C, regions.soft_sums), (word::OFF_D, regions.soft_gsum)],
                );
            }
            // dL/d out of every level, through the transposed layers and down the levels: one dispatch.
            let mut words = vec![(word::OFF_A, regions.g_out), (word::OFF_B, regions.g_c), (word::OFF_C, regions.g_pool), (word::OFF_D, regions.counts)];
            words.extend(layer_pairs(&blk.aggregate, &blk.disseminate, true));
            b.op("ml_hierarchy_backward", BACKWARD, [ns as u32, 1, 1], [Some(c), None, None, None, None, None], weights, Some(m.labels), &words);
            let centroids = blk.soft.as_ref().map_or(0, |s| s.centroids);
            b.op(
                "ml_mcgm_atoms",
                BACKWARD,
                atoms,
                [Some(c), Some(g_x), some(m.w), Some(m.xm), some(m.z), some(m.gw)],
                weights,
                None,
                &[
                    (word::MODE, soft as u32),
                    (word::K, soft_k as u32),
                    (word::OFF_A, regions.g_pool),
                    (word::OFF_B, regions.soft_gp),
                    (word::OFF_C, regions.counts),
                    (word::OFF_D, regions.soft_gsum),
                    (word::OFF_W, centroids),
                ],
            );
            if let Some(s) = &blk.soft {
                b.dense(s.query, true, n, (m.z, nf as u32), (g_x, 0), None, 1, weights);
            }
        }
        match blk.interaction {
            InteractionAt::Schnet { input, out1, out2 } => {
                // x' = x + out2(ssp(out1(m))); m_i = Σ_j y_j W(d_ij); y = x W_in.
                b.dense(out2, true, n, (g_x, 0), (s2, 0), Some((slopes[t], 0)), 3, weights);
                b.dense(out1, true, n, (s2, 0), (s1, 0), None, 0, weights);
                b.op("ml_message_backward", BACKWARD, rows, [Some(s1), Some(g_y), Some(ys[t]), Some(acc), None, None], weights, edges, &[(word::OFF_W, blk.table)]);
                b.dense(input, true, n, (g_y, 0), (g_x, 0), None, 1, weights);
            }
            InteractionAt::Painn { phi1, phi2, vec_u, vec_v, upd1, upd2 } => {
                // The update: dL/ds, through the MLP to dL/d[q, |V|], then dL/dU, dL/dV, dL/dμ.
                // A later block's message backward left dL/dμ in `wider` at 3NF: ml_painn_gs
                // takes it into g_mu (the last block's starts at zero, from ml_embed).
                let grid = b.elements(nf);
                let later = t + 1 < blocks.len();
                b.op("ml_painn_gs", BACKWARD, grid, [Some(g_x), Some(wide), Some(g_mu), Some(uvs[t]), Some(nds[t]), Some(wider)], weights, None, &[(word::MODE, later as u32)]);
                b.dense(upd2, true, n, (wide, 0), (s1, 0), Some((upd_slopes[t], 0)), 3, weights);
                b.dense(upd1, true, n, (s1, 0), (wide, 0), None, 0, weights);
                b.op("ml_painn_guv", BACKWARD, grid, [Some(wide), Some(g_x), Some(g_mu), Some(uvs[t]), Some(nds[t]), Some(wider)], weights, None, &[]);
                b.dense(vec_u, true, 3 * n, (wider, 0), (g_mu, 0), None, 1, weights);
                b.dense(vec_v, true, 3 * n, (wider, 3 * nf as u32), (g_mu, 0), None, 1, weights);
                // The messages: dL/dφ and dL/dμ before them, the forces; then φ's MLP.
                b.op("ml_painn_message_backward", BACKWARD, rows, [Some(phis[t]), Some(g_x), Some(mu_ins[t]), Some(acc), Some(g_mu), Some(wider)], weights, edges, &table);
                b.dense(phi2, true, n, (wider, 0), (s1, 0), Some((slopes[t], 0)), 3, weights);
                b.dense(phi1, true, n, (s1, 0), (g_x, 0), None, 1, weights);
            }
        }
    }
    b.op("ml_finish", BACKWARD, atoms, [None, None, None, Some(acc), None, None], weights, None, &[]);
}

/// Two F x F layers in a row over each structure's `rows` rows of the cluster buffer `c`
/// (ml_cluster_layers): `at` = the input, middle and output regions.
fn two_layers(b: &mut Builder, stage: &'static str, c: usize, at: [u32; 3], rows: usize, layers: Vec<(usize, u32)>, weights: usize) {
    let mut words = vec![(word::K, rows as u32), (word::OFF_A, at[0]), (word::OFF_B, at[1]), (word::OFF_C, at[2])];
    words.extend(layers);
    b.op("ml_cluster_layers", stage, [b.structures as u32, 1, 1], [Some(c), None, None, None, None, None], weights, None, &words);
}

/// The uniform words naming pairs of layers, one pair a vec4 (`first[p]`'s W and bias, then
/// `second[p]`'s): for ml_hierarchy each hard level's aggregation and dissemination, or
/// `transposed` for its backward (W^T, no bias); for ml_cluster_layers the one pair it runs.
fn layer_pairs(first: &[LinearAt], second: &[LinearAt], transposed: bool) -> Vec<(usize, u32)> {
    let layer = |x: &LinearAt| if transposed { (x.wt, NONE) } else { (x.w, x.bias) };
    let mut words = Vec::new();
    for (p, (one, two)) in first.iter().zip(second).enumerate() {
        let at = word::LAYERS + 4 * p;
        let ((w1, b1), (w2, b2)) = (layer(one), layer(two));
        words.extend([(at, w1), (at + 1, b1), (at + 2, w2), (at + 3, b2)]);
    }
    words
}

/// Keeps a copy of `source` ([atoms, width] from its word `at`) as the layer `name`.
fn tap(b: &mut Builder, name: String, (source, at): (usize, u32), width: usize, weights: usize) {
    let n = b.n;
    let copy = b.buffer("ml layer", width * n);
    let grid = b.elements(width * n);
    b.op("ml_copy", FORWARD, grid, [Some(source), Some(copy), None, None, None, None], weights, None, &[(word::ROWS, n as u32), (word::FEATURES, width as u32), (word::OFF_A, at)]);
    b.taps.push((name, copy, width));
}

/// A pooling over atoms into `classes` rows of the cluster buffer at `rows_at` (weight sums
/// at `sums_at`): hard (by element, `memberships` None) or soft; `sum` keeps plain sums
/// instead of means.
#[allow(clippy::too_many_arguments)]
fn pool(b: &mut Builder, input: usize, memberships: Option<usize>, partials: usize, clusters: usize, rows_at: u32, sums_at: u32, classes: usize, sum: bool, weights: usize) {
    let chunks = b.chunks as u32;
    let mode = memberships.is_some() as u32;
    let stage = b.stage;
    let feature_blocks = b.f.div_ceil(64) as u32;
    b.op("ml_pool", stage, [chunks, feature_blocks, classes as u32], [Some(input), Some(partials), memberships, None, None, None], weights, None, &[(word::MODE, mode), (word::K, classes as u32)]);
    b.op(
        "ml_pool_finish",
        stage,
        [(b.f + 1).div_ceil(64 / b.pool_lanes) as u32, classes as u32, b.structures as u32],
        [None, Some(partials), None, Some(clusters), None, None],
        weights,
        None,
        &[(word::MODE, sum as u32), (word::K, classes as u32), (word::OFF_D, rows_at), (word::OFF_C, sums_at)],
    );
}
