// Particle-mesh Ewald on the GPU (issue 19), as src/ml/pme.rs (read it for the maths): each
// structure's charges spread on a grid by order-6 B-splines, a 3-D FFT, the influence function,
// the FFT back, and per atom the potential and the force at fixed charges interpolated with the
// same splines. O(N + M log M) where the sum over k-vectors (charges.wgsl) is O(N K), which
// grows as N² at fixed density. The same α as that sum (the charges' own width), so there is no
// real-space part either; ml_ewald_finish adds the self and background terms to both.
// Compiled after ml.wgsl and charges.wgsl (same `Op` uniform, bindings and helpers).
//
// Every structure of a batch has a grid of the same dimensions, 2^a 3^b up to MAX_LINE,
// z fastest, structure s's at s × points. The long-range block's header holds them: L[2..5] =
// K_x, K_y, K_z, points (u32 bits), L[6] = 1/(4α²).
// Spreading adds each atom's 216 weights with atomics on 64-bit fixed-point numbers (two u32
// words, 2^-32 e): sums of integers do not depend on the order the threads come in, so the same
// input gives the same bytes (float atomics would not, and WGSL has none).

const ORDER: u32 = 6u;
const MAX_LINE: u32 = 1024u;
const FIXED_ONE: f32 = 4294967296.0;   // 2^32: one e in fixed point

// The FFT's lines and the other buffer of its stages: 16 KB, WebGPU's least limit.
var<workgroup> line: array<vec2<f32>, MAX_LINE>;
var<workgroup> line_other: array<vec2<f32>, MAX_LINE>;

fn mesh_dims() -> vec3<u32> {
    return vec3<u32>(bitcast<u32>(C[2]), bitcast<u32>(C[3]), bitcast<u32>(C[4]));
}

fn mesh_points() -> u32 {
    return bitcast<u32>(C[5]);
}

// M_6(w + t) for t = 0..5 and their slopes, w in [0, 1] (pme.rs `splines`).
struct Splines {
    v: array<f32, 6>,
    d: array<f32, 6>,
}

fn splines(w: f32) -> Splines {
    var v: array<f32, 6>;
    var d: array<f32, 6>;
    v[0] = w;
    v[1] = 1.0 - w;
    for (var n = 3u; n <= ORDER; n++) {
        if (n == ORDER) {
            d[0] = v[0];
            for (var t = 1u; t < n; t++) {
                d[t] = v[t] - v[t - 1u];
            }
        }
        let previous = v;
        v[0] = w * previous[0] / f32(n - 1u);
        for (var t = 1u; t < n; t++) {
            v[t] = ((w + f32(t)) * previous[t] + (f32(n) - w - f32(t)) * previous[t - 1u]) / f32(n - 1u);
        }
    }
    return Splines(v, d);
}

// An atom's stencil: per offset t and axis, the part of the grid index its point adds (the
// point of offset t is base − t, wrapped; the x part includes the structure's first point),
// so that point (tx, ty, tz) is at[tx].x + at[ty].y + at[tz].z; and the splines there. As the
// CPU's stencils (pme.rs), tabulated once so the 216-point loops do no modulo.
struct Stencil {
    at: array<vec3<u32>, 6>,
    x: Splines,
    y: Splines,
    z: Splines,
}

fn stencil(i: u32) -> Stencil {
    let p = pos[i].xyz;
    let inv = structures[structure_of(i)].inv_cols;
    let s = vec3<f32>(dot(p, inv[0].xyz), dot(p, inv[1].xyz), dot(p, inv[2].xyz));
    let dims = mesh_dims();
    let u = (s - floor(s)) * vec3<f32>(dims);
    let f = floor(u);
    // s − floor(s) may round up to 1: the point K is the point 0.
    let base = vec3<u32>(f) % dims;
    let first = structure_of(i) * mesh_points();
    var at: array<vec3<u32>, 6>;
    for (var t = 0u; t < ORDER; t++) {
        let g = (base + dims - vec3<u32>(t)) % dims;
        at[t] = vec3<u32>(first + g.x * dims.y * dims.z, g.y * dims.z, g.z);
    }
    return Stencil(at, splines(u.x - f.x), splines(u.y - f.y), splines(u.z - f.z));
}

// Adds v to grid point `point` in fixed point: |v| split into whole and fraction (both exact),
// negated in two's complement, the low word's carry added to the high word.
fn add_fixed(point: u32, v: f32) {
    let a = abs(v);
    let whole = floor(a);
    var lo = u32((a - whole) * FIXED_ONE);
    var hi = u32(whole);
    if (v < 0.0) {
        lo = ~lo + 1u;
        hi = ~hi + select(0u, 1u, lo == 0u);
    }
    let old = atomicAdd(&M[2u * point], lo);
    atomicAdd(&M[2u * point + 1u], hi + select(0u, 1u, old + lo < old));
}

// ---- Per atom: q_i (A at off_a) spread on its structure's grid (M, fixed point).
@compute @workgroup_size(64)
fn ml_pme_spread(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let q = A[O.off_a + i];
    let st = stencil(i);
    for (var tx = 0u; tx < ORDER; tx++) {
        let wx = q * st.x.v[tx];
        for (var ty = 0u; ty < ORDER; ty++) {
            let wxy = wx * st.y.v[ty];
            let row = st.at[tx].x + st.at[ty].y;
            for (var tz = 0u; tz < ORDER; tz++) {
                add_fixed(row + st.at[tz].z, wxy * st.z.v[tz]);
            }
        }
    }
}

// ---- Per grid point (O.rows of them): the fixed-point charge (M) as a complex number into B,
// and M cleared for the next evaluation.
@compute @workgroup_size(64)
fn ml_pme_load(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = flat_index(gid);
    if (g >= O.rows) { return; }
    let lo = atomicLoad(&M[2u * g]);
    let hi = bitcast<i32>(atomicLoad(&M[2u * g + 1u]));
    B[2u * g] = f32(hi) + f32(lo) * (1.0 / FIXED_ONE);
    B[2u * g + 1u] = 0.0;
    atomicStore(&M[2u * g], 0u);
    atomicStore(&M[2u * g + 1u], 0u);
}

// Which of a workgroup's lines, and which point of it, the j-th load or store moves: along z
// (stride 1) a line's points are neighbours in memory, along x and y the lines are, so
// neighbouring threads take neighbouring words either way.
fn line_and_point(j: u32, lines: u32, length: u32, stride: u32) -> vec2<u32> {
    if (stride == 1u) {
        return vec2<u32>(j / length, j % length);
    }
    return vec2<u32>(j % lines, j / lines);
}

// The FFT's stages read one workgroup buffer and write the other (flipped: read line_other).
fn stage_read(i: u32, flipped: bool) -> vec2<f32> {
    if (flipped) {
        return line_other[i];
    }
    return line[i];
}

fn stage_write(i: u32, v: vec2<f32>, flipped: bool) {
    if (flipped) {
        line[i] = v;
    } else {
        line_other[i] = v;
    }
}

// ±i z (the sign of the transform's exponent).
fn times_i(z: vec2<f32>, sign: f32) -> vec2<f32> {
    return sign * vec2<f32>(-z.y, z.x);
}

fn radix_of(rest: u32) -> u32 {
    if (rest % 4u == 0u) { return 4u; }
    if (rest % 2u == 0u) { return 2u; }
    return 3u;
}

// ---- The FFT of every grid line along one axis, in place in B (complex), unnormalised:
// e^{-2πi jk/K} with O.mode 0, e^{+2πi jk/K} with 1. Each workgroup takes O.k whole lines
// (up to MAX_LINE points: short lines share a workgroup, so every thread has butterflies and
// a barrier serves them all) into workgroup memory, then Stockham stages of radix 4, 2 or 3
// (K = 2^a 3^b), which keep the natural order (no permutation), between the two buffers in
// turn. The lines' layout comes in the uniform (O.rows lines of length K = O.inputs, stride
// O.outputs; line l starts at (l / O.off_c) O.off_d + l % O.off_c), so the barriers sit in
// uniform control flow.
@compute @workgroup_size(64)
fn ml_pme_fft(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first = (wg.x + wg.y * groups.x) * O.k;
    if (first >= O.rows) { return; }
    let length = O.inputs;
    let stride = O.outputs;
    let lines = min(O.k, O.rows - first);
    for (var j = lid; j < lines * length; j += 64u) {
        let lp = line_and_point(j, lines, length, stride);
        let l = first + lp.x;
        let at = 2u * ((l / O.off_c) * O.off_d + l % O.off_c + lp.y * stride);
        line[lp.x * length + lp.y] = vec2<f32>(B[at], B[at + 1u]);
    }
    let sign = select(-1.0, 1.0, O.mode == 1u);
    // span: the product of the radices done (Stockham's N_s); flipped: the data is in
    // line_other.
    var span = 1u;
    var rest = length;
    var flipped = false;
    while (rest > 1u) {
        let r = radix_of(rest);
        let per_line = length / r;
        workgroupBarrier();
        for (var b = lid; b < lines * per_line; b += 64u) {
            let start = (b / per_line) * length;
            let j = b % per_line;
            let phase = j % span;
            // The inputs times the stage's twiddles e^{∓2πi q phase/(span r)}, by powers.
            let step = turn(sign * f32(phase) / f32(span * r));
            let source = start + j;
            let at = start + (j / span) * span * r + phase;
            if (r == 2u) {
                let a0 = stage_read(source, flipped);
                let a1 = cmul(stage_read(source + per_line, flipped), step);
                stage_write(at, a0 + a1, flipped);
                stage_write(at + span, a0 - a1, flipped);
            } else if (r == 4u) {
                let step2 = cmul(step, step);
                let a0 = stage_read(source, flipped);
                let a1 = cmul(stage_read(source + per_line, flipped), step);
                let a2 = cmul(stage_read(source + 2u * per_line, flipped), step2);
                let a3 = cmul(stage_read(source + 3u * per_line, flipped), cmul(step2, step));
                let s02 = a0 + a2;
                let d02 = a0 - a2;
                let s13 = a1 + a3;
                let d13 = times_i(a1 - a3, sign);
                stage_write(at, s02 + s13, flipped);
                stage_write(at + span, d02 + d13, flipped);
                stage_write(at + 2u * span, s02 - s13, flipped);
                stage_write(at + 3u * span, d02 - d13, flipped);
            } else {
                // Radix 3: e^{±2πi/3} = −1/2 ± i √3/2 (the transform's sign).
                let a0 = stage_read(source, flipped);
                let a1 = cmul(stage_read(source + per_line, flipped), step);
                let a2 = cmul(stage_read(source + 2u * per_line, flipped), cmul(step, step));
                let sum = a1 + a2;
                let middle = a0 - 0.5 * sum;
                let turned = 0.8660254037844386 * times_i(a1 - a2, sign);
                stage_write(at, a0 + sum, flipped);
                stage_write(at + span, middle + turned, flipped);
                stage_write(at + 2u * span, middle - turned, flipped);
            }
        }
        flipped = !flipped;
        span *= r;
        rest /= r;
    }
    workgroupBarrier();
    for (var j = lid; j < lines * length; j += 64u) {
        let lp = line_and_point(j, lines, length, stride);
        let l = first + lp.x;
        let at = 2u * ((l / O.off_c) * O.off_d + l % O.off_c + lp.y * stride);
        let i = lp.x * length + lp.y;
        let value = stage_read(i, flipped);
        B[at] = value.x;
        B[at + 1u] = value.y;
    }
}

fn signed_index(m: u32, size: u32) -> f32 {
    return select(f32(m), f32(m) - f32(size), 2u * m > size);
}

// ---- Per grid point: the transform (B) times the influence function (D), and the point's
// share of the reciprocal virial, ½ g |FQ|² (δ − 2 (1/4α² + 1/k²) k⊗k), summed per block of
// CONVOLVE_POINTS points of one structure into G (6 each; O.k blocks per structure, the last
// one partial). Thread t takes points t, t + 64, ... of its block (neighbouring threads,
// neighbouring points), so that one reduction serves many points.
const CONVOLVE_POINTS: u32 = 1024u;

@compute @workgroup_size(64)
fn ml_pme_convolve(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = wg.x + wg.y * groups.x;
    var share: array<f32, 6>;
    let points = mesh_points();
    let structure_first = (block / O.k) * points;
    let lo = structure_first + (block % O.k) * CONVOLVE_POINTS;
    let hi = min(lo + CONVOLVE_POINTS, structure_first + points);
    for (var g = lo + lid; g < hi && g < O.rows; g += 64u) {
        let dims = mesh_dims();
        let local = g % points;
        let m = vec3<f32>(signed_index(local / (dims.y * dims.z), dims.x), signed_index((local / dims.z) % dims.y, dims.y), signed_index(local % dims.z, dims.z));
        let inv = structures[g / points].inv_cols;
        let k = 6.283185307179586 * (m.x * inv[0].xyz + m.y * inv[1].xyz + m.z * inv[2].xyz);
        let influence = D[g];
        let fq = vec2<f32>(B[2u * g], B[2u * g + 1u]);
        if (influence != 0.0) {
            let e = 0.5 * influence * dot(fq, fq);
            let f2 = 2.0 * (C[6] + 1.0 / dot(k, k));
            share[0] += e * (1.0 - f2 * k.x * k.x);
            share[1] += e * (1.0 - f2 * k.y * k.y);
            share[2] += e * (1.0 - f2 * k.z * k.z);
            share[3] -= e * f2 * k.x * k.y;
            share[4] -= e * f2 * k.x * k.z;
            share[5] -= e * f2 * k.y * k.z;
        }
        B[2u * g] = influence * fq.x;
        B[2u * g + 1u] = influence * fq.y;
    }
    for (var q = 0u; q < 6u; q++) {
        sums[6u * lid + q] = share[q];
    }
    sum_workgroup(lid, 6u);
    // Workgroups past the last block (the dispatch's second row pads) write nothing.
    if (lid < 6u && block < O.k * P.n_structures) {
        G[6u * block + lid] = sums[lid];
    }
}

// ---- Per atom: the potential φ_i = Σ_g φ(g) W_i(g) and the force at fixed charges
// −q_i Σ_g φ(g) ∇W_i(g) from the convolved grid (B, real parts), into G (4 per atom: the
// layout of ml_ewald_atoms with one part, which ml_ewald_finish reads). A = charges (off_a).
@compute @workgroup_size(64)
fn ml_pme_gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let q = A[O.off_a + i];
    let st = stencil(i);
    var potential = 0.0;
    var du = vec3<f32>(0.0);
    for (var tx = 0u; tx < ORDER; tx++) {
        for (var ty = 0u; ty < ORDER; ty++) {
            let row = st.at[tx].x + st.at[ty].y;
            let vx = st.x.v[tx];
            let vy = st.y.v[ty];
            let dx = st.x.d[tx];
            let dy = st.y.d[ty];
            for (var tz = 0u; tz < ORDER; tz++) {
                let phi = B[2u * (row + st.at[tz].z)];
                let vz = st.z.v[tz];
                let dz = st.z.d[tz];
                potential += phi * vx * vy * vz;
                du += phi * vec3<f32>(dx * vy * vz, vx * dy * vz, vx * vy * dz);
            }
        }
    }
    // u_m = K_m s_m(r): ∇u_m = K_m b_m, b_m the inverse's columns.
    let inv = structures[structure_of(i)].inv_cols;
    let k = vec3<f32>(mesh_dims());
    let force = -q * (du.x * k.x * inv[0].xyz + du.y * k.y * inv[1].xyz + du.z * k.z * inv[2].xyz);
    G[4u * i] = potential;
    G[4u * i + 1u] = force.x;
    G[4u * i + 2u] = force.y;
    G[4u * i + 3u] = force.z;
}
