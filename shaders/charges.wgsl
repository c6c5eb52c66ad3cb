// Learned charges on the GPU (issue 19), as src/ml/inference/charges.rs and
// src/ml/electrostatics.rs (read them for the maths): the charge head's raw outputs are moved to
// each structure's total charge, their Coulomb energy is summed by Ewald in reciprocal space
// alone (α = a, the Gaussian charges' own width, where the real-space part vanishes: no pair
// list beyond the model's), and dE/dq goes back through the head with the rest of the backward
// pass. Compiled after ml.wgsl (same `Op` uniform and bindings).
//
// The long-range block L (f32): L[0] = -2α/√π (the self term), L[1] = k_e (eV Å), L[2..7] the
// mesh's (pme.wgsl); structure s at 8 + 16 s: total charge Q, Q / n, mean of the raw charges,
// mean potential, the background coefficient -π/(V α²), first k-vector, k-vector count (a
// multiple of KC), n, then the reciprocal virial (xx yy zz xy xz yz, at 8), and the first and
// count of its shares of the virial (6 floats each: chunks of KC k-vectors, or with the mesh
// workgroups of 64 grid points).
// The k-vectors K, 12 floats each: h, k, l (its indices on the reciprocal lattice), the weight
// w = 2 (4π/V) e^{-k²/4α²}/k²; k (1/Å) and the strain factor 1/(4α²) + 1/k²; its structure,
// and 1 where it continues the run of the k-vector before it (the same h and k, l one more).
// Each structure's k-vectors are padded with zero weights to a multiple of KC, and run in the
// order of the CPU's loop (h, then k, then l innermost), so that the phase of (h, k, l + 1)
// is the phase of (h, k, l) turned by the atom's e^{2πi s_c}: one complex product instead of a
// sine and cosine, re-anchored every RESTART k-vectors so that rounding cannot build up.
// Every sum runs in a fixed order (workgroup trees), so the same input gives the same bytes.

const LR_STRUCTURE: u32 = 8u;
const LR_WORDS: u32 = 16u;
const LR_Q: u32 = 0u;
const LR_Q_PER_ATOM: u32 = 1u;
const LR_BACKGROUND: u32 = 4u;
const LR_K_FIRST: u32 = 5u;
const LR_K_COUNT: u32 = 6u;
const LR_VIRIAL: u32 = 8u;
const LR_SHARES_FIRST: u32 = 14u;
const LR_SHARES: u32 = 15u;
const K_WORDS: u32 = 12u;
const KC: u32 = 8u;          // k-vectors per thread of the structure factor
const RESTART: u32 = 16u;    // k-vectors between exact phases in a run of products
const FRAC_WORDS: u32 = 8u;  // per atom: s_a, s_b, s_c, cos 2π s_c, sin 2π s_c

var<workgroup> sums: array<f32, 384>;   // 64 threads x 6 quantities (the virial)

// Adds the workgroup's `width` quantities per thread (sums[lid * width + q]) into thread 0's.
fn sum_workgroup(lid: u32, width: u32) {
    workgroupBarrier();
    for (var half = 32u; half > 0u; half = half / 2u) {
        if (lid < half) {
            for (var q = 0u; q < width; q++) {
                sums[lid * width + q] += sums[(lid + half) * width + q];
            }
        }
        workgroupBarrier();
    }
}

// cos and sin of 2π u, to about 1e-7 for any u: u is reduced to [-1/2, 1/2] in cycles, then to
// an eighth of a turn, where short Taylor series suffice. Drivers' own sin and cos may be far
// less accurate outside [-π, π] (Vulkan promises 2^-11 inside), and phases k·r reach hundreds.
fn turn(u: f32) -> vec2<f32> {
    let r = u - round(u);
    let q = round(4.0 * r);
    let x = (r - 0.25 * q) * 6.283185307179586;
    let x2 = x * x;
    let s = x * (1.0 + x2 * (-0.16666666666666666 + x2 * (0.008333333333333333 + x2 * (-0.0001984126984126984 + x2 * 2.755731922398589e-6))));
    let c = 1.0 + x2 * (-0.5 + x2 * (0.041666666666666664 + x2 * (-0.001388888888888889 + x2 * 2.48015873015873e-5)));
    switch (i32(q) + 4) % 4 {
        case 0: { return vec2<f32>(c, s); }
        case 1: { return vec2<f32>(-s, c); }
        case 2: { return vec2<f32>(-c, -s); }
        default: { return vec2<f32>(s, -c); }
    }
}

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn indices(kv: u32) -> vec3<f32> {
    return vec3<f32>(D[kv], D[kv + 1u], D[kv + 2u]);
}

// ---- The mean of A[off_a + i] over each structure's atoms into C at its word O.k (one
// workgroup per structure).
@compute @workgroup_size(64)
fn ml_structure_mean(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let st = wg.x;
    let range = structures[st].atoms;
    var acc = 0.0;
    for (var j = lid; j < range.y; j += 64u) {
        acc += A[O.off_a + range.x + j];
    }
    sums[lid] = acc;
    sum_workgroup(lid, 1u);
    if (lid == 0u) {
        C[LR_STRUCTURE + LR_WORDS * st + O.k] = sums[0] / f32(range.y);
    }
}

// ---- A[off_b + i] = A[off_a + i] - (the structure's mean, C word O.k), plus Q / n with
// O.mode == 0: the raw charges moved to sum to Q, or (mode 1) dE/dq projected back.
@compute @workgroup_size(64)
fn ml_charge_center(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let at = LR_STRUCTURE + LR_WORDS * structure_of(i);
    var v = A[O.off_a + i] - C[at + O.k];
    if (O.mode == 0u) {
        v += C[at + LR_Q_PER_ATOM];
    }
    A[O.off_b + i] = v;
}

// ---- Per atom: its fractional coordinates and e^{2πi s_c} into E (FRAC_WORDS each).
@compute @workgroup_size(64)
fn ml_ewald_prepare(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let x = pos[i].xyz;
    let inv = structures[structure_of(i)].inv_cols;
    let s = vec3<f32>(dot(x, inv[0].xyz), dot(x, inv[1].xyz), dot(x, inv[2].xyz));
    let z = turn(s.z);
    let o = FRAC_WORDS * i;
    E[o] = s.x;
    E[o + 1u] = s.y;
    E[o + 2u] = s.z;
    E[o + 3u] = z.x;
    E[o + 4u] = z.y;
}

fn fractional(i: u32) -> vec3<f32> {
    let o = FRAC_WORDS * i;
    return vec3<f32>(E[o], E[o + 1u], E[o + 2u]);
}

fn turn_c(i: u32) -> vec2<f32> {
    let o = FRAC_WORDS * i;
    return vec2<f32>(E[o + 3u], E[o + 4u]);
}

// ---- The structure factor S(k) = sum_j q_j e^{i k.r_j}: one thread per KC consecutive
// k-vectors, over the structure's atoms (all threads read the same atom at once), and the
// thread's share of the reciprocal virial, sum_k (w/2)|S|² (δ - 2 f k⊗k), into G (6 per
// thread). A = charges (at off_a), B = w S (2 per k), D = k-vectors, E = fractional coordinates.
@compute @workgroup_size(64)
fn ml_ewald_structure(@builtin(global_invocation_id) gid: vec3<u32>) {
    let chunk = flat_index(gid);
    let k0 = chunk * KC;
    if (k0 >= O.rows) { return; }
    let st = bitcast<u32>(D[K_WORDS * k0 + 8u]);
    let range = structures[st].atoms;
    // Which k-vectors continue the run of the one before (the same for every atom).
    var hkl: array<vec3<f32>, KC>;
    var chained: array<bool, KC>;
    for (var m = 0u; m < KC; m++) {
        hkl[m] = indices(K_WORDS * (k0 + m));
        chained[m] = m > 0u && D[K_WORDS * (k0 + m) + 9u] != 0.0;
    }
    var acc: array<vec2<f32>, KC>;
    for (var i = range.x; i < range.x + range.y; i++) {
        let q = A[O.off_a + i];
        let s = fractional(i);
        let zc = turn_c(i);
        var z = vec2<f32>(1.0, 0.0);
        for (var m = 0u; m < KC; m++) {
            if (chained[m]) {
                z = cmul(z, zc);
            } else {
                z = turn(dot(hkl[m], s));
            }
            acc[m] += q * z;
        }
    }
    var diag = vec3<f32>(0.0);
    var off = vec3<f32>(0.0);
    for (var m = 0u; m < KC; m++) {
        let k = k0 + m;
        let kv = K_WORDS * k;
        // w S(k), what the per-atom sums read.
        B[2u * k] = D[kv + 3u] * acc[m].x;
        B[2u * k + 1u] = D[kv + 3u] * acc[m].y;
        let e = 0.5 * D[kv + 3u] * dot(acc[m], acc[m]);
        let kk = vec3<f32>(D[kv + 4u], D[kv + 5u], D[kv + 6u]);
        let f2 = 2.0 * D[kv + 7u];
        diag += e * (vec3<f32>(1.0) - f2 * kk * kk);
        off -= e * f2 * vec3<f32>(kk.x * kk.y, kk.x * kk.z, kk.y * kk.z);
    }
    let o = 6u * chunk;
    G[o] = diag.x;
    G[o + 1u] = diag.y;
    G[o + 2u] = diag.z;
    G[o + 3u] = off.x;
    G[o + 4u] = off.y;
    G[o + 5u] = off.z;
}

// ---- Each structure's reciprocal virial: the sum of its shares (G, 6 each) into its words of
// the long-range block C (one workgroup per structure).
@compute @workgroup_size(64)
fn ml_ewald_virial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let st = wg.x;
    let at = LR_STRUCTURE + LR_WORDS * st;
    let first = bitcast<u32>(C[at + LR_SHARES_FIRST]);
    let chunks = bitcast<u32>(C[at + LR_SHARES]);
    var acc: array<f32, 6>;
    for (var c = lid; c < chunks; c += 64u) {
        for (var q = 0u; q < 6u; q++) {
            acc[q] += G[6u * (first + c) + q];
        }
    }
    for (var q = 0u; q < 6u; q++) {
        sums[6u * lid + q] = acc[q];
    }
    sum_workgroup(lid, 6u);
    if (lid < 6u) {
        C[at + LR_VIRIAL + lid] = sums[lid];
    }
}

// ---- Per atom: the potential φ_i = sum_k w Re(S* e^{ik.r_i}) and the force at fixed charges
// q_i sum_k w Im(...) k, over one part of the structure's k-vectors. One thread per atom, a
// workgroup per (block of 64 atoms of a structure, part O.k of the k-vectors): every thread
// reads the same k at once (a broadcast) and runs of products break at the same k, so the
// threads never diverge. The part's sums go to G[(i parts + part) 4 ..]. A = charges (off_a),
// B = w S, D = k-vectors, E = fractional coordinates, C = the long-range block.
@compute @workgroup_size(64)
fn ml_ewald_atoms(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = wg.x;
    let part = wg.y;
    let parts = O.k;
    let atom = block_atom(block, lid);
    let st = atom.x;
    let i = atom.z;
    if (atom.y >= structures[st].atoms.y) { return; }
    let at = LR_STRUCTURE + LR_WORDS * st;
    let first = bitcast<u32>(C[at + LR_K_FIRST]);
    let count = bitcast<u32>(C[at + LR_K_COUNT]);
    let span = (count + parts - 1u) / parts;
    let lo = first + min(part * span, count);
    let hi = first + min((part + 1u) * span, count);
    let q = A[O.off_a + i];
    let s = fractional(i);
    let zc = turn_c(i);
    var potential = 0.0;
    var force = vec3<f32>(0.0);
    var z = vec2<f32>(1.0, 0.0);
    for (var k = lo; k < hi; k++) {
        let kv = K_WORDS * k;
        // The branch is the same for every thread: no divergence, and the indices are read
        // only where a run starts.
        if ((k - lo) % RESTART != 0u && D[kv + 9u] != 0.0) {
            z = cmul(z, zc);
        } else {
            z = turn(dot(indices(kv), s));
        }
        let ws = vec2<f32>(B[2u * k], B[2u * k + 1u]);
        potential += ws.x * z.x + ws.y * z.y;
        force += (q * (ws.x * z.y - ws.y * z.x)) * vec3<f32>(D[kv + 4u], D[kv + 5u], D[kv + 6u]);
    }
    let o = 4u * (i * parts + part);
    G[o] = potential;
    G[o + 1u] = force.x;
    G[o + 2u] = force.y;
    G[o + 3u] = force.z;
}

// ---- Per atom: its parts' sums (G) added in order, with the self and background terms.
// Writes k_e φ_i to A[off_b + i], adds ½ k_e q_i φ_i to the atom's energy, and the force and an
// equal share of the structure's virial (reciprocal and background, times k_e) to the
// accumulator D. A = charges (off_a), C = the long-range block.
@compute @workgroup_size(64)
fn ml_ewald_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let st = structure_of(i);
    let at = LR_STRUCTURE + LR_WORDS * st;
    let parts = O.k;
    var sum = vec4<f32>(0.0);
    for (var p = 0u; p < parts; p++) {
        let o = 4u * (i * parts + p);
        sum += vec4<f32>(G[o], G[o + 1u], G[o + 2u], G[o + 3u]);
    }
    let q = A[O.off_a + i];
    let ke = C[1];
    let total = C[at + LR_Q];
    let background = C[at + LR_BACKGROUND];
    let phi = sum.x + C[0] * q + background * total;
    A[O.off_b + i] = ke * phi;
    obs[8u * i] += 0.5 * ke * q * phi;
    // The background's virial ½ b Q² δ and the reciprocal one, an equal share per atom (only
    // their sum is defined).
    let n = f32(structures[st].atoms.y);
    let bg = 0.5 * background * total * total;
    let a = 12u * i;
    let f = sum.yzw;
    for (var c = 0u; c < 3u; c++) {
        D[a + c] += ke * f[c];
        D[a + 3u + c] += ke * (C[at + LR_VIRIAL + c] + bg) / n;
        D[a + 6u + c] += ke * C[at + LR_VIRIAL + 3u + c] / n;
    }
}
