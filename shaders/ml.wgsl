// The machine-learned potential (SchNet with MCGM) on the GPU: forward pass, the cluster
// hierarchy, and the explicit backward pass for forces and virials, as in src/ml/inference
// (the CPU version, which these kernels follow step by step; read it for the maths).
//
// Every kernel here runs with group 0 (the simulation's buffers: positions, the neighbour list,
// forces, per-atom observables) and group 1: one small uniform `O` describing the operation
// and up to six data buffers (and the mesh's atomics), bound per operation by src/gpu/ml.rs. Rows are indexed by atom id
// i; the neighbour loops walk slots t (sorted[t] = i) like the Lennard-Jones kernel.
//
// As on the CPU, every per-atom sum is a gather over the atom's own full-list row (edge i<-j has
// its twin j<-i at the same distance), so no two threads write one value and the results do not
// depend on scheduling.

struct Op {
    rows: u32,
    inputs: u32,
    outputs: u32,
    mode: u32,
    off_a: u32,
    off_b: u32,
    off_c: u32,
    off_d: u32,
    off_w: u32,
    off_bias: u32,
    spare: u32,      // unused (keeps the vec4 members below on 16 bytes)
    features: u32,
    cutoff_sq: f32,
    inv_h: f32,
    nodes: u32,
    k: u32,          // soft centroids, or level-1 clusters
    scale: f32,
    tau: f32,
    n_chunks: u32,
    levels: u32,     // hard levels (1..4)
    // Per simulation type (index into the system's species): model species, level-1 cluster.
    type_species: array<vec4<u32>, 2>,
    type_cluster: array<vec4<u32>, 2>,
    // Rows of each hard level and the first row of each level in the cluster buffers.
    level_rows: vec4<u32>,
    level_offset: vec4<u32>,
    // The small layers a fused kernel runs, two a vec4 (W, its bias, W, its bias): each hard
    // level's aggregation and dissemination (ml_hierarchy), or the soft centroids' (ml_cluster_layers).
    layers: array<vec4<u32>, 4>,
}

@group(1) @binding(0) var<uniform> O: Op;
@group(1) @binding(1) var<storage, read_write> A: array<f32>;
@group(1) @binding(2) var<storage, read_write> B: array<f32>;
@group(1) @binding(3) var<storage, read_write> C: array<f32>;
@group(1) @binding(4) var<storage, read_write> D: array<f32>;
@group(1) @binding(5) var<storage, read_write> E: array<f32>;
@group(1) @binding(6) var<storage, read_write> G: array<f32>;
@group(1) @binding(7) var<storage, read> W: array<f32>;   // the model's weights and tables (read-only)
@group(1) @binding(8) var<storage, read_write> U: array<u32>;   // cluster labels, or the edges (ml_edges)
@group(1) @binding(9) var<storage, read_write> M: array<atomic<u32>>;   // PME's fixed-point grid (pme.wgsl)

const MAX_FEATURES: u32 = 256u;
const CHUNK: u32 = 64u;          // atoms per partial sum of a pooling
const MAX_POINTS: u32 = 8u;      // level-1 clusters K-means may see (species per structure)

fn type_of(i: u32) -> u32 {
    return atom_type(pos[i]);
}

fn species_of_type(t: u32) -> u32 {
    return O.type_species[t / 4u][t % 4u];
}

fn cluster_of_type(t: u32) -> u32 {
    return O.type_cluster[t / 4u][t % 4u];
}

// Shifted softplus and its derivative, as dense.rs: ssp(x) = ln(1 + e^x) - ln 2.
fn ssp_and_slope(x: f32) -> vec2<f32> {
    let e = exp(-abs(x));
    let value = max(x, 0.0) + log(1.0 + e) - 0.6931471805599453;
    let slope = select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
    return vec2<f32>(value, slope);
}

// ---- Dense layers: out[r, o] = sum_k in[r, k] W(k, o) (+ bias), W stored [inputs, outputs] at
// O.off_w; the backward pass multiplies by the transpose the host stores beside W (O.inputs = the
// layer's outputs, O.outputs = its inputs), read the same way. Each thread computes a tile of TILE_ROWS rows by
// TILE_OUTS outputs in registers, so every input and weight it loads serves several products
// (a quarter of the loads of one thread per output); each output still sums over k in order, so
// the results are those of the plain product bit for bit. Edges of odd sizes read clamped
// indices and write only what is inside.
// Modes: 0 store, 1 add to B, 2 B = ssp(v) and C = ssp'(v), 3 B = v * C, 4 B = SiLU(v) and
// C = SiLU'(v).

const TILE_ROWS: u32 = 4u;
const TILE_OUTS: u32 = 4u;

@compute @workgroup_size(64)
fn ml_dense(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tiles_across = (O.outputs + TILE_OUTS - 1u) / TILE_OUTS;
    let tile = flat_index(gid);
    if (tile >= tiles_across * ((O.rows + TILE_ROWS - 1u) / TILE_ROWS)) { return; }
    let r0 = (tile / tiles_across) * TILE_ROWS;
    let o0 = (tile % tiles_across) * TILE_OUTS;
    let n_in = O.inputs;
    var a: array<u32, 4>;     // each tile row's first input
    var w: array<u32, 4>;     // each tile output's first weight
    for (var t = 0u; t < 4u; t++) {
        a[t] = O.off_a + min(r0 + t, O.rows - 1u) * n_in;
        w[t] = O.off_w + min(o0 + t, O.outputs - 1u);
    }
    var acc: array<vec4<f32>, 4>;   // acc[row][output]
    for (var k = 0u; k < n_in; k++) {
        let row = k * O.outputs;
        let wk = vec4<f32>(W[w[0] + row], W[w[1] + row], W[w[2] + row], W[w[3] + row]);
        acc[0] += A[a[0] + k] * wk;
        acc[1] += A[a[1] + k] * wk;
        acc[2] += A[a[2] + k] * wk;
        acc[3] += A[a[3] + k] * wk;
    }
    dense_tile_out(r0, o0, acc);
}

// A thread's tile of rows r0.. by outputs o0.., the values inside the layer's edges.
fn dense_tile_out(r0: u32, o0: u32, acc: array<vec4<f32>, 4>) {
    for (var t = 0u; t < TILE_ROWS; t++) {
        for (var c = 0u; c < TILE_OUTS; c++) {
            let r = r0 + t;
            let o = o0 + c;
            if (r < O.rows && o < O.outputs) {
                dense_out(r * O.outputs + o, o, acc[t][c]);
            }
        }
    }
}

// The same product in workgroup-memory tiles, for GPUs (the host picks it on hardware
// adapters): a workgroup of 8 x 8 threads computes 32 rows by 32 outputs, each thread the same
// 4 x 4 register tile as ml_dense, from slices of DENSE_K inputs that the workgroup loads once
// into workgroup memory (rows padded to DENSE_K + 1 floats, so that the four row groups of a warp
// read four banks). Each output sums over k in order, as ml_dense does: the same bits.
const DENSE_K: u32 = 16u;
var<workgroup> dense_a: array<f32, 544>;        // 32 rows x (DENSE_K + 1)
var<workgroup> dense_w: array<vec4<f32>, 128>;  // DENSE_K inputs x 8 groups of 4 outputs

@compute @workgroup_size(64)
fn ml_dense_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tiles_across = (O.outputs + 31u) / 32u;
    let tile = wg.x + wg.y * nwg.x;
    if (tile >= tiles_across * ((O.rows + 31u) / 32u)) { return; }
    let r0 = (tile / tiles_across) * 32u;
    let o0 = (tile % tiles_across) * 32u;
    let n_in = O.inputs;
    let ty = lid / 8u;
    let tx = lid % 8u;
    var acc: array<vec4<f32>, 4>;   // acc[row][output]
    for (var k0 = 0u; k0 < n_in; k0 += DENSE_K) {
        let kn = min(DENSE_K, n_in - k0);
        // 32 x DENSE_K inputs and DENSE_K x 32 weights, eight of each a thread; neighbouring
        // threads read neighbouring words. Rows and outputs past the edge read the last one.
        for (var j = 0u; j < 8u; j++) {
            let e = lid + 64u * j;
            let kk = e % DENSE_K;
            let row = e / DENSE_K;
            if (kk < kn) {
                dense_a[row * (DENSE_K + 1u) + kk] = A[O.off_a + min(r0 + row, O.rows - 1u) * n_in + k0 + kk];
            }
            let o = e % 32u;
            let kw = e / 32u;
            if (kw < kn) {
                dense_w[kw * 8u + o / 4u][o % 4u] = W[O.off_w + (k0 + kw) * O.outputs + min(o0 + o, O.outputs - 1u)];
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < kn; kk++) {
            let wk = dense_w[kk * 8u + tx];
            let a = 4u * ty * (DENSE_K + 1u) + kk;
            acc[0] += dense_a[a] * wk;
            acc[1] += dense_a[a + DENSE_K + 1u] * wk;
            acc[2] += dense_a[a + 2u * (DENSE_K + 1u)] * wk;
            acc[3] += dense_a[a + 3u * (DENSE_K + 1u)] * wk;
        }
        workgroupBarrier();
    }
    dense_tile_out(r0 + 4u * ty, o0 + 4u * tx, acc);
}

// Bias and the mode's output of one value e = r * outputs + o.
fn dense_out(e: u32, o: u32, value: f32) {
    var acc = value;
    if (O.off_bias != 0xffffffffu) {
        acc += W[O.off_bias + o];
    }
    switch O.mode {
        case 0u: { B[O.off_b + e] = acc; }
        case 1u: { B[O.off_b + e] += acc; }
        case 2u: {
            let s = ssp_and_slope(acc);
            B[O.off_b + e] = s.x;
            C[O.off_c + e] = s.y;
        }
        case 4u: {
            let sig = 1.0 / (1.0 + exp(-acc));
            B[O.off_b + e] = acc * sig;
            C[O.off_c + e] = sig * (1.0 + acc * (1.0 - sig));
        }
        default: { B[O.off_b + e] = acc * C[O.off_c + e]; }
    }
}

// ---- Embedding: x_i = embedding[species_i], plus (Q/n) c[species_i] with a charge embedding c
// (at O.off_c; Q/n from the long-range block A, shaders/charges.wgsl); the force accumulator D
// starts at zero, and with O.mode == 1 (PaiNN) so do the vector features E, their gradient G
// and the first block's input vector features C ([N, 3, F] each).
@compute @workgroup_size(64)
fn ml_embed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let f = O.features;
    let s = species_of_type(type_of(i));
    for (var k = 0u; k < f; k++) {
        B[i * f + k] = W[O.off_w + s * f + k];
    }
    if (O.off_c != 0xffffffffu) {
        let per_atom = A[LR_STRUCTURE + LR_WORDS * structure_of(i) + LR_Q_PER_ATOM];
        for (var k = 0u; k < f; k++) {
            B[i * f + k] += per_atom * W[O.off_c + s * f + k];
        }
    }
    for (var k = 0u; k < 12u; k++) {
        D[i * 12u + k] = 0.0;
    }
    if (O.mode == 1u) {
        for (var k = 0u; k < 3u * f; k++) {
            C[i * 3u * f + k] = 0.0;
            E[i * 3u * f + k] = 0.0;
            G[i * 3u * f + k] = 0.0;
        }
    }
}

// B[off_b + e] = A[off_a + e] for e < rows * features.
@compute @workgroup_size(64)
fn ml_copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    if (e >= O.rows * O.features) { return; }
    B[O.off_b + e] = A[O.off_a + e];
}

// ---- Continuous-filter convolution. The pairs inside the cutoff are placed once per
// evaluation (ml_edges, one thread per atom) into the edge buffer, bound as U; every edge
// kernel after it (two per block) reads them. The edge kernels run one workgroup per atom and
// one thread per feature (four at most per thread): an edge's words are the same for the whole
// workgroup (one broadcast load), and without shared memory there is no barrier in the loop
// (software GPUs such as lavapipe pay dearly for those).
//
// The edge buffer (u32 words, N = P.n_atoms, slots t in bin order, e = m N + t for the atom's
// m-th edge inside the cutoff): [0, N) each slot's edge count, then from N + 4 e the
// neighbour's id and the vector r from i to it (f32 bits). The edge kernels take the distance
// and direction from r as the placement did (16 bytes an edge: the buffer is 4x the list).
//
// The same walk over the list is the guardrail (O.mode 1): an atom with a neighbour closer than
// the training data had (squared limits per pair of model species at W[off_w], O.k species).
// The lowest such atom id goes to the status word; the host names the pairs.

fn edge_at(e: u32) -> u32 {
    return P.n_atoms + 4u * e;
}

@compute @workgroup_size(64)
fn ml_edges(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = flat_index(gid);
    let n = P.n_atoms;
    if (t >= n) { return; }
    let i = sorted[t];
    let st = structure_of(i);
    let cell = structures[st].cell;
    let xi = pos[i].xyz;
    let count = ncount[t];
    let check = O.mode == 1u;
    let limits = O.off_w + species_of_type(type_of(i)) * O.k;
    var close = false;
    var m = 0u;
    for (var k = 0u; k < count; k++) {
        let entry = neighbor_entry(k, t);
        let j = entry & ATOM_MASK;
        let pj = pos[j];
        let r = pj.xyz + shift_from(cell, entry >> ATOM_BITS) - xi;
        let d2 = dot(r, r);
        if (check && !close && d2 < W[limits + species_of_type(atom_type(pj))]) {
            close = true;
        }
        if (d2 < O.cutoff_sq && d2 > 0.0) {
            let v = edge_at(m * n + t);
            U[v] = j;
            U[v + 1u] = bitcast<u32>(r.x);
            U[v + 2u] = bitcast<u32>(r.y);
            U[v + 3u] = bitcast<u32>(r.z);
            m++;
        }
    }
    U[t] = m;
    if (close) {
        atomicMin(&status[status_word(st, SW_CLOSE_ATOM)], i);
    }
}

struct Place {
    atom: u32,
    row: u32,           // first table word of the interval's left node
    value: vec4<f32>,   // Hermite weights of W(d)
    slope: vec4<f32>,   // and of dW/dd
    dir: vec4<f32>,     // unit vector i -> j, and d
}

fn edge_count(t: u32) -> u32 {
    return U[t];
}

fn place_neighbor(t: u32, m: u32) -> Place {
    return place_in(t, m, O.features);
}

// Edge m of slot t on the filter grid of a table `width` lanes wide (SchNet's: F, PaiNN's: 3F).
fn place_in(t: u32, m: u32, width: u32) -> Place {
    var p: Place;
    let v = edge_at(m * P.n_atoms + t);
    p.atom = U[v];
    let r = vec3<f32>(bitcast<f32>(U[v + 1u]), bitcast<f32>(U[v + 2u]), bitcast<f32>(U[v + 3u]));
    let d = sqrt(dot(r, r));
    p.dir = vec4<f32>(r / d, d);
    let s = d * O.inv_h;
    let node = min(u32(s), O.nodes - 2u);
    let u = s - f32(node);
    let u2 = u * u;
    let u3 = u2 * u;
    p.row = O.off_w + node * select(2u, 1u, HALF_TABLES) * width;
    p.value = vec4<f32>(2.0 * u3 - 3.0 * u2 + 1.0, u3 - 2.0 * u2 + u, -2.0 * u3 + 3.0 * u2, u3 - u2);
    p.slope = vec4<f32>(6.0 * u2 - 6.0 * u, 3.0 * u2 - 4.0 * u + 1.0, -6.0 * u2 + 6.0 * u, 3.0 * u2 - 2.0 * u) * O.inv_h;
    return p;
}

fn filter_at(row: u32, f: u32, c: vec4<f32>) -> f32 {
    return table_at(row, f, c, O.features);
}

// The filter tables in f16 (`[potential] gpu_tables = "f16"`): per node one word a lane, the
// value in its low half and h times the slope in its high half, so a node's row is `width`
// words instead of 2 width (half the bytes and half the loads). Set when the pipelines are
// made: the other branch is compiled out.
override HALF_TABLES: bool = false;

// The Hermite combination c of lane `lane` of the table rows from `row` (`width` lanes a row).
fn table_at(row: u32, lane: u32, c: vec4<f32>, width: u32) -> f32 {
    if (HALF_TABLES) {
        let left = unpack2x16float(bitcast<u32>(W[row + lane]));
        let right = unpack2x16float(bitcast<u32>(W[row + width + lane]));
        return c.x * left.x + c.y * left.y + c.z * right.x + c.w * right.y;
    }
    return c.x * W[row + lane] + c.y * W[row + width + lane] + c.z * W[row + 2u * width + lane] + c.w * W[row + 3u * width + lane];
}

// m_i = sum_j y_j * W(d_ij): A = y, B = m.
@compute @workgroup_size(64)
fn ml_message(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x + wg.y * nwg.x;
    let f = O.features;
    if (t >= P.n_atoms || lid >= f) { return; }
    let i = sorted[t];
    let count = edge_count(t);
    let lanes = (f - lid + 63u) / 64u;
    var acc = vec4<f32>(0.0);
    for (var m = 0u; m < count; m++) {
        let p = place_neighbor(t, m);
        let yj = p.atom * f + lid;
        for (var q = 0u; q < lanes; q++) {
            acc[q] += A[yj + 64u * q] * filter_at(p.row, lid + 64u * q, p.value);
        }
    }
    for (var q = 0u; q < lanes; q++) {
        B[i * f + lid + 64u * q] = acc[q];
    }
}

var<workgroup> red: array<f32, 576>;   // 64 threads x 9 quantities

// The convolution's backward pass for atom i: B = g_y_i = sum_j g_m_j * W(d) (the twin edge's
// share), and the pair's dL/dd = sum_f (g_m_i y_j + g_m_j y_i) W'(d) turned into the force on i
// and its half of the pair virial, added to the accumulator D (12 per atom). A = g_m, C = y.
// Each thread keeps its features' share of the force and virial; one reduction at the end.
@compute @workgroup_size(64)
fn ml_message_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x + wg.y * nwg.x;
    if (t >= P.n_atoms) { return; }
    let f = O.features;
    let i = sorted[t];
    let count = select(0u, edge_count(t), lid < f);
    let lanes = select(0u, (f - lid + 63u) / 64u, lid < f);
    var gy = vec4<f32>(0.0);
    var gmi = vec4<f32>(0.0);
    var yi = vec4<f32>(0.0);
    for (var q = 0u; q < lanes; q++) {
        gmi[q] = A[i * f + lid + 64u * q];
        yi[q] = C[i * f + lid + 64u * q];
    }
    var force = vec3<f32>(0.0);
    var w_diag = vec3<f32>(0.0);
    var w_off = vec3<f32>(0.0);
    for (var m = 0u; m < count; m++) {
        let p = place_neighbor(t, m);
        var g = 0.0;
        for (var q = 0u; q < lanes; q++) {
            let at = p.atom * f + lid + 64u * q;
            let gmj = A[at];
            gy[q] += gmj * filter_at(p.row, lid + 64u * q, p.value);
            g += (gmi[q] * C[at] + gmj * yi[q]) * filter_at(p.row, lid + 64u * q, p.slope);
        }
        // F_i = sum_j dL/dd r_hat (r_hat from i to j); W = -1/2 r (x) dE/dr per side.
        let de_dr = g * p.dir.xyz;
        force += de_dr;
        let r = p.dir.xyz * p.dir.w;
        w_diag -= 0.5 * r * de_dr;
        w_off -= 0.5 * vec3<f32>(r.x * de_dr.y, r.x * de_dr.z, r.y * de_dr.z);
    }
    for (var q = 0u; q < lanes; q++) {
        B[i * f + lid + 64u * q] = gy[q];
    }
    reduce_force(lid, i, force, w_diag, w_off);
}

// Sums the workgroup's shares of atom i's force and virial and adds them to D (12 per atom).
fn reduce_force(lid: u32, i: u32, force: vec3<f32>, w_diag: vec3<f32>, w_off: vec3<f32>) {
    let o = lid * 9u;
    red[o] = force.x;
    red[o + 1u] = force.y;
    red[o + 2u] = force.z;
    red[o + 3u] = w_diag.x;
    red[o + 4u] = w_diag.y;
    red[o + 5u] = w_diag.z;
    red[o + 6u] = w_off.x;
    red[o + 7u] = w_off.y;
    red[o + 8u] = w_off.z;
    workgroupBarrier();
    for (var width = 32u; width > 0u; width = width / 2u) {
        if (lid < width) {
            for (var q = 0u; q < 9u; q++) {
                red[lid * 9u + q] += red[(lid + width) * 9u + q];
            }
        }
        workgroupBarrier();
    }
    if (lid < 9u) {
        D[i * 12u + lid] += red[lid];
    }
}

// ---- PaiNN (src/ml/inference/painn.rs, which these kernels follow): scalar features q [N, F]
// (the x buffer), vector features μ atom-major [N, 3, F], φ [N, 3F]; the filter table is 3F
// wide. U and V share one buffer (V at 3NF), as do |V|, <U, V> and (s1, s2, s3) (at 0, NF, 2NF).

// Message, one workgroup per atom a and one thread per feature: B = q += Σ_b φ_b^a W^a and
// D = μ += Σ_b (φ_b^b W^b) r̂ + (φ_b^c W^c) μ_b. A = φ, C = the block's input μ.
@compute @workgroup_size(64)
fn ml_painn_message(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x + wg.y * nwg.x;
    let f = O.features;
    if (t >= P.n_atoms || lid >= f) { return; }
    let width = 3u * f;
    let i = sorted[t];
    let count = edge_count(t);
    let lanes = (f - lid + 63u) / 64u;
    var dq = vec4<f32>(0.0);
    var dmu: array<vec3<f32>, 4>;
    for (var m = 0u; m < count; m++) {
        let p = place_in(t, m, width);
        let b = p.atom * width;
        for (var q = 0u; q < lanes; q++) {
            let o = lid + 64u * q;
            dq[q] += A[b + o] * table_at(p.row, o, p.value, width);
            let sb = A[b + f + o] * table_at(p.row, f + o, p.value, width);
            let sc = A[b + 2u * f + o] * table_at(p.row, 2u * f + o, p.value, width);
            dmu[q] += sb * p.dir.xyz + sc * vec3<f32>(C[b + o], C[b + f + o], C[b + 2u * f + o]);
        }
    }
    for (var q = 0u; q < lanes; q++) {
        let o = lid + 64u * q;
        B[i * f + o] += dq[q];
        D[i * width + o] += dmu[q].x;
        D[i * width + f + o] += dmu[q].y;
        D[i * width + 2u * f + o] += dmu[q].z;
    }
}

// One thread of the per-atom, per-feature PaiNN kernels: flat index e = i F + o over [N, F]
// (the scalar rows), and a = i 3F + o, lane o of atom i's first component in the atom-major
// vector rows [N, 3, F] (component k at a + k F). nf = N F: the kernels run while e < nf.
struct PainnLane {
    e: u32,
    i: u32,
    o: u32,
    a: u32,
    nf: u32,
}

fn painn_lane(gid: vec3<u32>) -> PainnLane {
    let e = flat_index(gid);
    let f = O.features;
    let i = e / f;
    let o = e % f;
    return PainnLane(e, i, o, i * 3u * f + o, P.n_atoms * f);
}

// |V|, <U, V> (into E at 0 and NF) and the update MLP's input [q, |V|] (B, [N, 2F]).
// A = U | V, D = q; one thread per atom and feature.
@compute @workgroup_size(64)
fn ml_painn_norm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = painn_lane(gid);
    if (l.e >= l.nf) { return; }
    let f = O.features;
    let v_at = 3u * l.nf + l.a;
    let u = vec3<f32>(A[l.a], A[l.a + f], A[l.a + 2u * f]);
    let v = vec3<f32>(A[v_at], A[v_at + f], A[v_at + 2u * f]);
    let norm = sqrt(dot(v, v) + 1e-8);
    E[l.e] = norm;
    E[l.nf + l.e] = dot(u, v);
    B[l.i * 2u * f + l.o] = D[l.e];
    B[l.i * 2u * f + f + l.o] = norm;
}

// q += s1 + s3 <U, V> (B), μ += s2 U (D). A = |V| | <U,V> | s, C = U | V. With O.mode == 1,
// the new μ is also kept in E, the next block's input μ (one copy dispatch fewer a block).
@compute @workgroup_size(64)
fn ml_painn_update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = painn_lane(gid);
    if (l.e >= l.nf) { return; }
    let f = O.features;
    let s = 2u * l.nf + l.a;
    B[l.e] += A[s] + A[s + 2u * f] * A[l.nf + l.e];
    for (var k = 0u; k < 3u; k++) {
        let mu = D[l.a + k * f] + A[s + f] * C[l.a + k * f];
        D[l.a + k * f] = mu;
        if (O.mode == 1u) {
            E[l.a + k * f] = mu;
        }
    }
}

// The update's backward, first half: B = dL/d(s1, s2, s3) = [g_q, Σ_k g_μ U, g_q <U, V>].
// A = g_q, C = g_μ, D = U | V, E = |V| | <U,V> | s. With O.mode == 1, g_μ is first taken from
// where the later block's message backward left it (G at 3NF) into C: one copy dispatch fewer
// a block.
@compute @workgroup_size(64)
fn ml_painn_gs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = painn_lane(gid);
    if (l.e >= l.nf) { return; }
    let f = O.features;
    let a = l.a;
    if (O.mode == 1u) {
        for (var k = 0u; k < 3u; k++) {
            C[a + k * f] = G[3u * l.nf + a + k * f];
        }
    }
    let g = A[l.e];
    B[a] = g;
    B[a + f] = C[a] * D[a] + C[a + f] * D[a + f] + C[a + 2u * f] * D[a + 2u * f];
    B[a + 2u * f] = g * E[l.nf + l.e];
}

// Second half, from A = dL/d[q, |V|] [N, 2F]: G = dL/dU | dL/dV, and B = g_q += dL/dq.
// C = g_μ, D = U | V, E = |V| | <U,V> | s.
@compute @workgroup_size(64)
fn ml_painn_guv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let l = painn_lane(gid);
    if (l.e >= l.nf) { return; }
    let f = O.features;
    let s = 2u * l.nf + l.a;
    let g_dot = B[l.e] * E[s + 2u * f];
    let g_norm = A[l.i * 2u * f + f + l.o] / E[l.e];
    for (var k = 0u; k < 3u; k++) {
        let x = l.a + k * f;
        G[x] = C[x] * E[s + f] + g_dot * D[3u * l.nf + x];
        G[3u * l.nf + x] = g_dot * D[x] + g_norm * D[3u * l.nf + x];
    }
    B[l.e] += A[l.i * 2u * f + l.o];
}

// The message's backward for atom a, one workgroup per atom and one thread per feature. Edge
// a<-b and its twin b<-a (direction -r̂) both enter: G = dL/dφ_a [N, 3F] (the twin read φ_a)
// and, at 3NF, dL/dμ_a before the block (g_μ plus the twin's share through μ_a); each edge's
// dL/dr of the pair becomes the force on a and half the pair virial, added to D (12 per atom)
// after one reduction. A = φ, B = g_q and E = g_μ after the messages, C = the block's input μ.
@compute @workgroup_size(64)
fn ml_painn_message_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.x + wg.y * nwg.x;
    if (t >= P.n_atoms) { return; }
    let f = O.features;
    let width = 3u * f;
    let nf = P.n_atoms * f;
    let i = sorted[t];
    let count = select(0u, edge_count(t), lid < f);
    let lanes = select(0u, (f - lid + 63u) / 64u, lid < f);
    var gq_a = vec4<f32>(0.0);
    var gm_a: array<vec3<f32>, 4>;
    var phi_a: array<vec3<f32>, 4>;
    var mu_a: array<vec3<f32>, 4>;
    var g_phi: array<vec3<f32>, 4>;
    var g_mu: array<vec3<f32>, 4>;
    let ia = i * width;
    for (var q = 0u; q < lanes; q++) {
        let o = lid + 64u * q;
        gq_a[q] = B[i * f + o];
        gm_a[q] = vec3<f32>(E[ia + o], E[ia + f + o], E[ia + 2u * f + o]);
        phi_a[q] = vec3<f32>(A[ia + o], A[ia + f + o], A[ia + 2u * f + o]);
        mu_a[q] = vec3<f32>(C[ia + o], C[ia + f + o], C[ia + 2u * f + o]);
    }
    var force = vec3<f32>(0.0);
    var w_diag = vec3<f32>(0.0);
    var w_off = vec3<f32>(0.0);
    for (var m = 0u; m < count; m++) {
        let p = place_in(t, m, width);
        let rh = p.dir.xyz;
        let ib = p.atom * width;
        var g_d = 0.0;
        var g_dir = vec3<f32>(0.0);
        for (var q = 0u; q < lanes; q++) {
            let o = lid + 64u * q;
            let w = vec3<f32>(table_at(p.row, o, p.value, width), table_at(p.row, f + o, p.value, width), table_at(p.row, 2u * f + o, p.value, width));
            let dw = vec3<f32>(table_at(p.row, o, p.slope, width), table_at(p.row, f + o, p.slope, width), table_at(p.row, 2u * f + o, p.slope, width));
            let gq_b = B[p.atom * f + o];
            let gm_b = vec3<f32>(E[ib + o], E[ib + f + o], E[ib + 2u * f + o]);
            let phi_b = vec3<f32>(A[ib + o], A[ib + f + o], A[ib + 2u * f + o]);
            let mu_b = vec3<f32>(C[ib + o], C[ib + f + o], C[ib + 2u * f + o]);
            let gb_own = dot(gm_a[q], rh);
            let gc_own = dot(gm_a[q], mu_b);
            let gb_twin = -dot(gm_b, rh);
            let gc_twin = dot(gm_b, mu_a[q]);
            g_phi[q] += vec3<f32>(gq_b, gb_twin, gc_twin) * w;
            g_mu[q] += gm_b * (phi_a[q].z * w.z);
            g_d += (gq_a[q] * phi_b.x + gq_b * phi_a[q].x) * dw.x + (gb_own * phi_b.y + gb_twin * phi_a[q].y) * dw.y + (gc_own * phi_b.z + gc_twin * phi_a[q].z) * dw.z;
            g_dir += gm_a[q] * (phi_b.y * w.y) - gm_b * (phi_a[q].y * w.y);
        }
        // dL/dr = dL/dd r̂ + (dL/dr̂ - r̂ (dL/dr̂ . r̂)) / d: this thread's features' share.
        let de_dr = g_d * rh + (g_dir - rh * dot(g_dir, rh)) / p.dir.w;
        force += de_dr;
        let r = rh * p.dir.w;
        w_diag -= 0.5 * r * de_dr;
        w_off -= 0.5 * vec3<f32>(r.x * de_dr.y, r.x * de_dr.z, r.y * de_dr.z);
    }
    for (var q = 0u; q < lanes; q++) {
        let o = lid + 64u * q;
        G[ia + o] = g_phi[q].x;
        G[ia + f + o] = g_phi[q].y;
        G[ia + 2u * f + o] = g_phi[q].z;
        G[3u * nf + ia + o] = gm_a[q].x + g_mu[q].x;
        G[3u * nf + ia + f + o] = gm_a[q].y + g_mu[q].y;
        G[3u * nf + ia + 2u * f + o] = gm_a[q].z + g_mu[q].z;
    }
    reduce_force(lid, i, force, w_diag, w_off);
}

// ---- Readout: E_i = scale (h_i . w2 + b2) into obs (the reference energies are added on the
// host, in f64), and dL/da = ssp'(a) * scale w2 into B. A = h, C = ssp'(a); O.inputs = F/2.
@compute @workgroup_size(64)
fn ml_energy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let half = O.inputs;
    var e = W[O.off_bias];
    for (var k = 0u; k < half; k++) {
        let w2 = W[O.off_w + k];
        e += A[i * half + k] * w2;
        B[i * half + k] = C[i * half + k] * (O.scale * w2);
    }
    obs[8u * i] = O.scale * e;
}

// ---- Forces and per-atom virials from the accumulator D; flags bad forces like pair.wgsl.
@compute @workgroup_size(64)
fn ml_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let a = i * 12u;
    let f = vec3<f32>(D[a], D[a + 1u], D[a + 2u]);
    force[i] = vec4<f32>(f, 0.0);
    for (var k = 1u; k < 7u; k++) {
        obs[8u * i + k] = D[a + 2u + k];
    }
    obs[8u * i + 7u] = 0.0;
    let st = structure_of(i);
    if (!(is_finite3(f) && dot(f, f) <= P.max_force_sq) && !frozen(st)) {
        atomicAdd(&status[ST_BAD_COUNT], 1u);
        atomicMin(&status[ST_BAD_ATOM], i);
    }
    // Every block's K-means has run: count this evaluation if one of them regrouped the
    // structure (its first atom does).
    if (i == structures[st].atoms.x && atomicExchange(&status[status_word(st, SW_REGROUPED)], 0u) != 0u) {
        atomicAdd(&status[status_word(st, SW_REGROUPINGS)], 1u);
    }
}

// ---- MCGM with several structures: each has its own clusters. Rows of the cluster buffers
// are laid out level by level, and within a level structure by structure: row c of level l of
// structure s is level_row(l, s) + c. Soft centroid c of structure s is row s K + c, so the
// soft layers run over all structures' rows at once.
fn level_row(l: u32, s: u32) -> u32 {
    return P.n_structures * O.level_offset[l] + s * O.level_rows[l];
}

// ---- Pooling over atoms, in two stages so that both run in parallel on a GPU.
// ml_pool: partial sums over chunks of CHUNK atoms of one structure (a structure's chunks start
// at structures[s].seed.w; O.n_chunks in all), one workgroup per (chunk, 64 features, class)
// and one thread per feature: 100k atoms make thousands of short loops, not a few hundred long
// ones. Class c of atom i has weight [cluster_1(i) == c] (mode 0, hard) or C[i * K + c] (mode 1,
// soft memberships). B[(c (F + 1) + f) T + chunk] = sum w x_f (T = O.n_chunks; chunks fastest,
// as ml_pool_finish reads them), and the weight sum at f = F. A = x (rows at off_a).
@compute @workgroup_size(64)
fn ml_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let chunk = wg.x;
    let k = wg.y * 64u + lid;
    let c = wg.z;
    let f = O.features;
    if (k >= f) { return; }
    let st = structure_by(chunk, 2u);
    let range = structures[st].atoms;
    let first = range.x + (chunk - structures[st].seed.w) * CHUNK;
    let last = min(first + CHUNK, range.x + range.y);
    var acc = 0.0;
    var total = 0.0;
    for (var i = first; i < last; i++) {
        var w = 0.0;
        if (O.mode == 0u) {
            w = select(0.0, 1.0, cluster_of_type(type_of(i)) == c);
        } else {
            w = C[i * O.k + c];
        }
        acc += w * A[O.off_a + i * f + k];
        total += w;
    }
    let column = (c * (f + 1u) + k) * O.n_chunks;
    B[column + chunk] = acc;
    if (k == 0u) {
        B[(c * (f + 1u) + f) * O.n_chunks + chunk] = total;
    }
}

// ml_pool_finish: the chunks' partial sums of each structure s added up. A workgroup of 64
// threads covers 64 / L columns (features, and the weight sum at F) of one class c of one
// structure s, with L threads a column: each adds every L-th chunk, then a tree in workgroup
// memory. L is the structure's own: the smallest power of 2 that leaves each thread at most
// 16 chunks, at most 64. A small structure takes a few workgroups and few barriers, a large one
// a workgroup a column (100k atoms: 1,563 chunks, 25 a thread). The order depends on the
// structure alone: the same bytes on every run, and in a batch as alone. The grid covers the
// batch's largest L (pool_lanes in src/gpu/ml/mod.rs); a workgroup past its structure's
// columns leaves.
// D[off_d + (s K + c) F + f] = the sum (mode 0: divided by the weight sum, a mean; mode 1: the
// plain sum), and the weight sum at D[off_c + s K + c]. B = partials.
var<workgroup> pool_sum: array<f32, 64>;
var<workgroup> pool_weight: array<f32, 64>;
var<workgroup> pool_chunks: u32;

@compute @workgroup_size(64)
fn ml_pool_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let f = O.features;
    let c = wg.y;
    let st = wg.z;
    if (lid == 0u) {
        pool_chunks = (structures[st].atoms.y + CHUNK - 1u) / CHUNK;
    }
    let chunks = workgroupUniformLoad(&pool_chunks);
    var lanes = 1u;
    while (lanes * 16u < chunks && lanes < 64u) {
        lanes *= 2u;
    }
    if (wg.x * (64u / lanes) > f) { return; }
    let lane = lid % lanes;
    let k = wg.x * (64u / lanes) + lid / lanes;
    let first = structures[st].seed.w;
    var acc = 0.0;
    var total = 0.0;
    if (k <= f) {
        let values = (c * (f + 1u) + k) * O.n_chunks + first;
        let weights = (c * (f + 1u) + f) * O.n_chunks + first;
        for (var j = lane; j < chunks; j += lanes) {
            acc += B[values + j];
            total += B[weights + j];
        }
    }
    pool_sum[lid] = acc;
    pool_weight[lid] = total;
    for (var half = lanes / 2u; half > 0u; half >>= 1u) {
        workgroupBarrier();
        if (lane < half) {
            pool_sum[lid] += pool_sum[lid + half];
            pool_weight[lid] += pool_weight[lid + half];
        }
    }
    if (lane != 0u || k > f) { return; }
    let row = st * O.k + c;
    let sum = pool_sum[lid];
    let weight = pool_weight[lid];
    if (k == f) {
        D[O.off_c + row] = weight;
    } else if (O.mode == 0u) {
        D[O.off_d + row * f + k] = sum / max(weight, 1e-30);
    } else {
        D[O.off_d + row * f + k] = sum;
    }
}

// ---- Hard levels above the elements: K-means++ and Lloyd iterations on the level below's mean
// embeddings, as crate::ml::mcgm::kmeans (same Philox draws; f32 instead of f64), one workgroup
// of 64 threads per structure s: a thread per (point, centre) distance, a thread per feature of
// the means, thread 0 for the draws and the bookkeeping over at most 8 points. Every value is
// summed in the order of the one-thread version this replaces, so the labels are the same. A
// holds the level-1 means at off_a (rows level_row(0, s) + [0, n1)); labels of level l (l >= 1,
// 0-based) go to U[level_row(l - 1, s) + m] for each row m of level l - 1. Each level's
// partition of the elements, numbered by first appearance, is kept at U[off_b + ((L - 1) s + l
// - 1) MAX_POINTS + e]; when it differs from the previous evaluation's (0xffffffff: none yet),
// the structure's SW_REGROUPED is set, as the CPU path counts regroupings.

// A level with fewer clusters than points has at most 4: k = max(n / ratio, 1) < n needs a
// ratio of 2 or more, and n <= MAX_POINTS. So the workgroup memory (12 KiB) stays within the
// 16 KiB every adapter offers.
const KM_CENTRES: u32 = 4u;
var<workgroup> km_points: array<f32, 2048>;    // MAX_POINTS x MAX_FEATURES
var<workgroup> km_centres: array<f32, 1024>;   // KM_CENTRES x MAX_FEATURES
var<workgroup> km_d: array<f32, 32>;            // point-centre distances, MAX_POINTS x KM_CENTRES
var<workgroup> km_labels: array<u32, 8>;
var<workgroup> km_pick: u32;                    // the point thread 0 drew
var<workgroup> km_changed: u32;                 // a label moved in this Lloyd iteration

fn km_distance(p: u32, c: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < O.features; k++) {
        let d = km_points[p * MAX_FEATURES + k] - km_centres[c * MAX_FEATURES + k];
        s += d * d;
    }
    return s;
}

// The distances of points [0, n) to centres [0, k) into km_d, a thread each.
fn km_distances(lid: u32, n: u32, k: u32) {
    if (lid < n * k) {
        let p = lid / k;
        let c = lid % k;
        km_d[p * KM_CENTRES + c] = km_distance(p, c);
    }
    workgroupBarrier();
}

fn km_draw(counter: ptr<function, u32>) -> u32 {
    *counter += 1u;
    return philox(vec4<u32>(*counter, 0u, 0u, 0u), vec2<u32>(0u, 0x4b4du)).x;
}

// Centre c := point p, a thread per feature.
fn km_set_centre(lid: u32, c: u32, p: u32) {
    for (var q = lid; q < O.features; q += 64u) {
        km_centres[c * MAX_FEATURES + q] = km_points[p * MAX_FEATURES + q];
    }
    workgroupBarrier();
}

// Each centre c < k := the mean of the points labelled c (left as it is when c has none), a
// thread per feature, summing the points in order.
fn km_means(lid: u32, n: u32, k: u32) {
    for (var q = lid; q < O.features; q += 64u) {
        for (var c = 0u; c < k; c++) {
            var members = 0u;
            var s = 0.0;
            for (var p = 0u; p < n; p++) {
                if (km_labels[p] == c) {
                    members += 1u;
                    s += km_points[p * MAX_FEATURES + q];
                }
            }
            if (members > 0u) {
                km_centres[c * MAX_FEATURES + q] = s / f32(members);
            }
        }
    }
    workgroupBarrier();
}

// K-means of the n points into k < n clusters (k <= KM_CENTRES): labels in km_labels.
fn kmeans(lid: u32, n: u32, k: u32) {
    var counter = 0u;   // thread 0's draws
    if (lid == 0u) {
        // floor(w n / 2^32), exactly as the f64 product on the CPU.
        let w = km_draw(&counter);
        let first = (((w >> 16u) * n) + (((w & 0xffffu) * n) >> 16u)) >> 16u;
        km_pick = first % n;
    }
    workgroupBarrier();
    km_set_centre(lid, 0u, km_pick);
    var chosen = 1u;
    while (chosen < k) {
        km_distances(lid, n, chosen);
        if (lid == 0u) {
            var d2: array<f32, 8>;
            var total = 0.0;
            for (var p = 0u; p < n; p++) {
                var best = 3.4e38;
                for (var c = 0u; c < chosen; c++) {
                    best = min(best, km_d[p * KM_CENTRES + c]);
                }
                d2[p] = best;
                total += best;
            }
            var pick = chosen;
            if (total > 0.0) {
                var remaining = f32(km_draw(&counter)) * (1.0 / 4294967296.0) * total;
                pick = n - 1u;
                for (var p = 0u; p < n; p++) {
                    if (remaining < d2[p]) {
                        pick = p;
                        break;
                    }
                    remaining -= d2[p];
                }
            }
            km_pick = pick;
        }
        workgroupBarrier();
        km_set_centre(lid, chosen, km_pick);
        chosen += 1u;
    }
    if (lid < n) {
        km_labels[lid] = 0xffffffffu;
    }
    for (var iteration = 0u; iteration < 50u; iteration++) {
        if (lid == 0u) {
            km_changed = 0u;
        }
        km_distances(lid, n, k);
        if (lid < n) {
            // The first of equal minima, as min_by.
            var best = 0u;
            var best_d = km_d[lid * KM_CENTRES];
            for (var c = 1u; c < k; c++) {
                let d = km_d[lid * KM_CENTRES + c];
                if (d < best_d) {
                    best = c;
                    best_d = d;
                }
            }
            if (km_labels[lid] != best) {
                km_changed = 1u;
            }
            km_labels[lid] = best;
        }
        workgroupBarrier();
        km_means(lid, n, k);
        if (workgroupUniformLoad(&km_changed) == 0u) { break; }
        workgroupBarrier();   // everyone has read km_changed before thread 0 clears it
    }
    // An empty cluster takes the point farthest from its centre among clusters that can spare one.
    if (lid == 0u) {
        for (var c = 0u; c < k; c++) {
            var used = false;
            for (var p = 0u; p < n; p++) {
                if (km_labels[p] == c) { used = true; }
            }
            if (used) { continue; }
            var far = 0u;
            var far_d = -1.0;
            for (var p = 0u; p < n; p++) {
                var same = 0u;
                for (var q = 0u; q < n; q++) {
                    if (km_labels[q] == km_labels[p]) { same += 1u; }
                }
                if (same > 1u) {
                    let d = km_distance(p, km_labels[p]);
                    // max_by keeps the last of equal maxima.
                    if (d >= far_d) {
                        far = p;
                        far_d = d;
                    }
                }
            }
            km_labels[far] = c;
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn ml_kmeans(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let st = wg.x;
    let f = O.features;
    let elements = O.level_rows[0];
    var n = elements;
    for (var e = lid; e < n * f; e += 64u) {
        let p = e / f;
        let q = e % f;
        km_points[p * MAX_FEATURES + q] = A[O.off_a + (level_row(0u, st) + p) * f + q];
    }
    workgroupBarrier();
    // Thread 0's bookkeeping: the cluster of each element at the current level (level 1: the
    // element itself), and whether a partition changed.
    var of_element: array<u32, 8>;
    for (var p = 0u; p < n; p++) {
        of_element[p] = p;
    }
    var regrouped = false;
    for (var l = 1u; l < O.levels; l++) {
        let k = O.level_rows[l];
        if (k < n) {
            kmeans(lid, n, k);
        } else if (lid < n) {
            // A cluster a point (a ratio of 1, or one point): the partition K-means would find.
            km_labels[lid] = lid;
        }
        workgroupBarrier();
        if (lid < n) {
            U[level_row(l - 1u, st) + lid] = km_labels[lid];
        }
        if (lid == 0u) {
            // This level's partition of the elements, clusters numbered by first appearance.
            var number: array<u32, 8>;
            for (var c = 0u; c < 8u; c++) { number[c] = 0xffffffffu; }
            var next = 0u;
            let kept = O.off_b + ((O.levels - 1u) * st + l - 1u) * MAX_POINTS;
            let had = U[kept] != 0xffffffffu;
            for (var e = 0u; e < elements; e++) {
                of_element[e] = km_labels[of_element[e]];
                if (number[of_element[e]] == 0xffffffffu) {
                    number[of_element[e]] = next;
                    next += 1u;
                }
                let canonical = number[of_element[e]];
                if (had && U[kept + e] != canonical) { regrouped = true; }
                U[kept + e] = canonical;
            }
        }
        // The next level's points: the means of this level's members (a point's own, when each
        // is a cluster).
        if (k < n) {
            km_means(lid, n, k);
            for (var e = lid; e < k * f; e += 64u) {
                let c = e / f;
                let q = e % f;
                km_points[c * MAX_FEATURES + q] = km_centres[c * MAX_FEATURES + q];
            }
        }
        workgroupBarrier();
        n = k;
    }
    if (lid == 0u && regrouped) { atomicStore(&status[status_word(st, SW_REGROUPED)], 1u); }
}

// ---- The hard hierarchy's small layers, fused: every level's pooling of the level below,
// aggregation and dissemination (at most 8 rows a structure each) in one dispatch instead of
// three a level, for a dispatch and a barrier cost microseconds on a GPU. One workgroup of 64
// threads per structure s, a thread per (row, feature); each value is summed in the order
// ml_dense and the per-level pooling summed it. A is the cluster buffer: level l's pooled rows
// at off_a, aggregated at off_b, out (disseminated) at off_c, member counts at off_d, all at
// rows level_row(l, s) + c. U = the labels. Level l's layers: O.layers[l] = (aggregate W,
// its bias, disseminate W, its bias).

// Rows [base, base + rows) of an F x F layer (W at w, bias at bias or NONE) from A[input_at]
// into A[output_at], a thread per (row, output).
fn cluster_layer(lid: u32, rows: u32, base: u32, input_at: u32, output_at: u32, w: u32, bias: u32) {
    let f = O.features;
    for (var e = lid; e < rows * f; e += 64u) {
        let r = base + e / f;
        let o = e % f;
        var acc = 0.0;
        for (var k = 0u; k < f; k++) {
            acc += A[input_at + r * f + k] * W[w + k * f + o];
        }
        if (bias != 0xffffffffu) {
            acc += W[bias + o];
        }
        A[output_at + r * f + o] = acc;
    }
}

// Two F x F layers in a row over each structure's K = O.k rows s K + [0, K): the soft centroids'
// aggregation and dissemination, or backward their transposes. One workgroup a structure
// instead of two dispatches over a few rows each: A[off_a] -> A[off_b] by layers[0].xy, then
// A[off_b] -> A[off_c] by layers[0].zw.
@compute @workgroup_size(64)
fn ml_cluster_layers(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = wg.x * O.k;
    let layers = O.layers[0];
    cluster_layer(lid, O.k, base, O.off_a, O.off_b, layers.x, layers.y);
    storageBarrier();
    cluster_layer(lid, O.k, base, O.off_b, O.off_c, layers.z, layers.w);
}

@compute @workgroup_size(64)
fn ml_hierarchy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let st = wg.x;
    let f = O.features;
    for (var l = 0u; l < O.levels; l++) {
        let rows = O.level_rows[l];
        let base = level_row(l, st);
        if (l > 0u) {
            // The mean of the aggregated rows of level l - 1 labelled c, and their count.
            let below = level_row(l - 1u, st);
            for (var e = lid; e < rows * f; e += 64u) {
                let c = e / f;
                let q = e % f;
                var s = 0.0;
                var members = 0u;
                for (var m = 0u; m < O.level_rows[l - 1u]; m++) {
                    if (U[below + m] == c) {
                        s += A[O.off_b + (below + m) * f + q];
                        members += 1u;
                    }
                }
                A[O.off_a + (base + c) * f + q] = s / f32(max(members, 1u));
                if (q == 0u) {
                    A[O.off_d + base + c] = f32(members);
                }
            }
            storageBarrier();
        }
        let layers = O.layers[l];
        cluster_layer(lid, rows, base, O.off_a, O.off_b, layers.x, layers.y);
        storageBarrier();
        cluster_layer(lid, rows, base, O.off_b, O.off_c, layers.z, layers.w);
        storageBarrier();
    }
}

// The cluster (within structure st) of atom type `ty` at hard level l.
fn cluster_at(ty: u32, l: u32, st: u32) -> u32 {
    var c = cluster_of_type(ty);
    for (var q = 1u; q <= l; q++) {
        c = U[level_row(q - 1u, st) + c];
    }
    return c;
}

// ---- Dissemination: B = x += sum_l out_l[cluster_l(i)] (hard, A at off_a, global rows) and,
// with O.mode == 1, sum_c w_ic V_c (soft: memberships C[i K + c], V at A[off_b]).
@compute @workgroup_size(64)
fn ml_disseminate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = flat_index(gid);
    let f = O.features;
    if (e >= P.n_atoms * f) { return; }
    let i = e / f;
    let q = e % f;
    let ty = type_of(i);
    let st = structure_of(i);
    var delta = 0.0;
    for (var l = 0u; l < O.levels; l++) {
        let row = level_row(l, st) + cluster_at(ty, l, st);
        delta += A[O.off_a + row * f + q];
    }
    if (O.mode == 1u) {
        for (var c = 0u; c < O.k; c++) {
            delta += C[i * O.k + c] * A[O.off_b + (st * O.k + c) * f + q];
        }
    }
    B[e] += delta;
}

// ---- The hierarchy's backward, fused as ml_hierarchy: one workgroup per structure s. From the
// level-1 sums of dL/dx (g_out, rows level_row(0, s) + [0, n1) at off_a, from ml_pool):
// - g_out of each level l >= 1: the sum of the level-1 rows whose level-l cluster is c;
// - g_c = g_out through each level's dissemination, transposed (at off_b);
// - from the top level down: g_pool = g_c through the aggregation, transposed (at off_c),
//   and below level 1, g_c of level l - 1 += g_pool[label] / members (counts at off_d).
// O.layers[l] = (aggregate W^T, NONE, disseminate W^T, NONE). ml_mcgm_atoms takes level
// 1's g_pool to the atoms.
@compute @workgroup_size(64)
fn ml_hierarchy_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let st = wg.x;
    let f = O.features;
    let n1 = O.level_rows[0];
    for (var l = 1u; l < O.levels; l++) {
        let base = level_row(l, st);
        for (var e = lid; e < O.level_rows[l] * f; e += 64u) {
            let c = e / f;
            let q = e % f;
            var s = 0.0;
            for (var c1 = 0u; c1 < n1; c1++) {
                var up = c1;
                for (var m = 1u; m <= l; m++) {
                    up = U[level_row(m - 1u, st) + up];
                }
                if (up == c) {
                    s += A[O.off_a + (level_row(0u, st) + c1) * f + q];
                }
            }
            A[O.off_a + (base + c) * f + q] = s;
        }
    }
    storageBarrier();
    for (var l = 0u; l < O.levels; l++) {
        cluster_layer(lid, O.level_rows[l], level_row(l, st), O.off_a, O.off_b, O.layers[l].z, 0xffffffffu);
    }
    storageBarrier();
    for (var l = O.levels; l > 0u; l--) {
        let level = l - 1u;
        cluster_layer(lid, O.level_rows[level], level_row(level, st), O.off_b, O.off_c, O.layers[level].x, 0xffffffffu);
        storageBarrier();
        if (level > 0u) {
            for (var e = lid; e < O.level_rows[level - 1u] * f; e += 64u) {
                let below = level_row(level - 1u, st) + e / f;
                let q = e % f;
                let row = level_row(level, st) + U[below];
                A[O.off_b + below * f + q] += A[O.off_c + row * f + q] / max(A[O.off_d + row], 1.0);
            }
            storageBarrier();
        }
    }
}

// ---- Soft memberships: w_ic = softmax_c(-|z_i - mu_c|^2 / tau). A = z, C = w [N, K].
@compute @workgroup_size(64)
fn ml_soft_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let f = O.features;
    let kk = O.k;
    var logits: array<f32, 16>;
    var top = -3.4e38;
    for (var c = 0u; c < kk; c++) {
        var s = 0.0;
        for (var q = 0u; q < f; q++) {
            let d = A[i * f + q] - W[O.off_w + c * f + q];
            s += d * d;
        }
        logits[c] = -s / O.tau;
        top = max(top, logits[c]);
    }
    var total = 0.0;
    for (var c = 0u; c < kk; c++) {
        logits[c] = exp(logits[c] - top);
        total += logits[c];
    }
    for (var c = 0u; c < kk; c++) {
        C[i * kk + c] = logits[c] / total;
    }
}

// dL/dw_ic = g_i . V_c: A = g (dL/dx), V at B[off_b] (the atom's structure's), out to G [N, K].
@compute @workgroup_size(64)
fn ml_soft_gw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let f = O.features;
    let v = O.off_b + structure_of(i) * O.k * f;
    for (var c = 0u; c < O.k; c++) {
        var s = 0.0;
        for (var q = 0u; q < f; q++) {
            s += A[i * f + q] * B[v + c * f + q];
        }
        G[i * O.k + c] = s;
    }
}

// Per centroid (of every structure, rows s K + c): g_sum_c = -(g_P_c . P_c) / sum_c, then
// g_P_c /= sum_c (the gradient of the numerator). In A: g_P at off_a, P at off_b, weight sums
// at off_c, g_sum out at off_d.
@compute @workgroup_size(64)
fn ml_soft_gsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = flat_index(gid);
    if (c >= P.n_structures * O.k) { return; }
    let f = O.features;
    let total = A[O.off_c + c];
    var s = 0.0;
    for (var q = 0u; q < f; q++) {
        s += A[O.off_a + c * f + q] * A[O.off_b + c * f + q];
    }
    A[O.off_d + c] = -s / total;
    for (var q = 0u; q < f; q++) {
        A[O.off_a + c * f + q] /= total;
    }
}

// ---- MCGM backward per atom, after every read of g = dL/d(delta x). B = g_x gets the hard
// level-1 term (pooled gradient at A[off_a], member counts at A[off_c]) and, with O.mode == 1,
// the soft terms (g_num at A[off_b], g_sum at A[off_d]); the memberships' gradient goes through
// the softmax to dL/dz, written to E at N F (z itself is at E[0]). C = w, G = dL/dw [N, K],
// D = the block's MCGM input x.
@compute @workgroup_size(64)
fn ml_mcgm_atoms(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let f = O.features;
    let st = structure_of(i);
    let c1 = level_row(0u, st) + cluster_of_type(type_of(i));
    let inv = 1.0 / max(A[O.off_c + c1], 1.0);
    for (var q = 0u; q < f; q++) {
        B[i * f + q] += A[O.off_a + c1 * f + q] * inv;
    }
    if (O.mode != 1u) { return; }
    let kk = O.k;
    let gz = P.n_atoms * f;
    var g_w: array<f32, 16>;
    var mean = 0.0;
    for (var c = 0u; c < kk; c++) {
        let w = C[i * kk + c];
        let row = st * kk + c;
        var dot_x = 0.0;
        for (var q = 0u; q < f; q++) {
            let g_num = A[O.off_b + row * f + q];
            B[i * f + q] += w * g_num;
            dot_x += D[i * f + q] * g_num;
        }
        g_w[c] = G[i * kk + c] + dot_x + A[O.off_d + row];
        mean += w * g_w[c];
    }
    for (var q = 0u; q < f; q++) {
        E[gz + i * f + q] = 0.0;
    }
    for (var c = 0u; c < kk; c++) {
        let g_a = C[i * kk + c] * (g_w[c] - mean) * (-2.0 / O.tau);
        for (var q = 0u; q < f; q++) {
            E[gz + i * f + q] += g_a * (E[i * f + q] - W[O.off_w + c * f + q]);
        }
    }
}
