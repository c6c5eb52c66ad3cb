// Shared by every mdrun kernel: the parameter block, the buffers of one simulation and small
// helpers. The host prepends this file to each kernel file (see src/gpu/kernels.rs), so binding
// numbers and types are declared once.
//
// Atoms are indexed by their id i (the order of the input). "Slots" t index the atoms in bin
// order (sorted[t] = i): the neighbour-list build and the force loop walk slots, so neighbouring
// threads read neighbouring atoms.

const WG: u32 = 64u;
const MAX_TYPES: u32 = 8u;
// A neighbour entry packs the atom (low 27 bits) and its periodic shift code (0..26, high bits).
const ATOM_BITS: u32 = 27u;
const ATOM_MASK: u32 = 0x07ffffffu;

// Words of the status buffer.
const ST_REBUILD: u32 = 0u;      // set when an atom moved more than skin/2 since the last build
const ST_MAX_NEIGH: u32 = 1u;    // the largest neighbour count seen by a build (atomicMax)
const ST_BAD_COUNT: u32 = 2u;    // atoms with a non-finite force or one above max_force
const ST_BAD_ATOM: u32 = 3u;     // the lowest such atom id (atomicMin; host sets 0xffffffff)
const ST_BUILDS: u32 = 4u;       // neighbour-list builds done
const ST_STEP_LO: u32 = 5u;      // the current step, 64 bits (the Langevin noise is keyed on it)
const ST_STEP_HI: u32 = 6u;
const ST_CLOSE_ATOM: u32 = 7u;   // ML: the lowest atom id closer to a neighbour than the training data had
const ST_REGROUPED: u32 = 8u;    // ML, hard MCGM: a K-means level's partition changed in this evaluation
const ST_REGROUPINGS: u32 = 9u;  // ML, hard MCGM: evaluations at which some partition changed

struct Params {
    // Cell rows a, b, c (x = s_a a + s_b b + s_c c) and the columns of its inverse, so that the
    // fractional coordinate s_k = dot(x, inv_cols[k]).
    cell: array<vec4<f32>, 3>,
    inv_cols: array<vec4<f32>, 3>,
    // Shift vector of code c = (sx+1) + 3 (sy+1) + 9 (sz+1).
    shifts: array<vec4<f32>, 27>,
    // Bins per axis and their product.
    nbins: vec4<u32>,
    // Indirect dispatch sizes (x, y, 1) for a rebuild: per atom, per bin, per scan block.
    args_atoms: vec4<u32>,
    args_bins: vec4<u32>,
    args_blocks: vec4<u32>,
    n_atoms: u32,
    capacity: u32,        // neighbour slots per atom
    n_types: u32,
    n_blocks: u32,        // scan blocks of 256 bins
    dt: f32,              // ps
    list_reach_sq: f32,   // (cutoff + skin)^2
    half_skin_sq: f32,    // (skin / 2)^2
    max_force_sq: f32,
    c1: f32,              // Langevin: exp(-dt / damping)
    c2: f32,              // sqrt(1 - c1^2)
    seed_lo: u32,
    seed_hi: u32,
    row_threads: u32,     // threads per row of a 2-D dispatch (x groups * WG)
    n_reduce_blocks: u32, // workgroups of the per-atom reduction
    one: f32,             // 1.0, which the compiler cannot see: see two_sum
    k_per_part: u32,      // neighbour entries per atom in each part of the list
    // Per type: x = FTM2V / m, y = Langevin velocity scale sqrt(kT / (m MVV2E)), z = m MVV2E.
    types: array<vec4<f32>, MAX_TYPES>,
    // Per pair of types (a * MAX_TYPES + b), two rows: (cutsq, lj1, lj2, 0), (lj3, lj4, offset, 0).
    lj: array<vec4<f32>, 128>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> pos: array<vec4<f32>>;      // xyz, w = type bits
@group(0) @binding(2) var<storage, read_write> pos_lo: array<vec4<f32>>;   // low part of xyz
@group(0) @binding(3) var<storage, read_write> vel: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> force: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> image: array<vec4<i32>>;
@group(0) @binding(6) var<storage, read_write> ref_pos: array<vec4<f32>>;  // positions at the last build
@group(0) @binding(7) var<storage, read_write> atom_bin: array<vec2<u32>>; // (bin, rank in bin)
// [0, nb): atoms per bin; [nb, 2 nb]: first slot of each bin (exclusive scan, nb+1 entries);
// then one partial sum per scan block.
@group(0) @binding(8) var<storage, read_write> bins: array<atomic<u32>>;
@group(0) @binding(9) var<storage, read_write> sorted: array<u32>;
// Neighbour count of each slot.
@group(0) @binding(10) var<storage, read_write> ncount: array<u32>;
@group(0) @binding(11) var<storage, read_write> obs: array<f32>;     // 8 per atom: energy, virial xx yy zz xy xz yz, 0
@group(0) @binding(12) var<storage, read_write> partial: array<f32>; // [0, 32): totals; then 32 per block
@group(0) @binding(13) var<storage, read_write> status: array<atomic<u32>>;
// The neighbour entries, in up to four parts (a storage binding may be as small as 128 MiB):
// entry k of slot t is in part p = k / k_per_part at (k - p k_per_part) N + t.
@group(0) @binding(14) var<storage, read_write> nl0: array<u32>;
@group(0) @binding(15) var<storage, read_write> nl1: array<u32>;
@group(0) @binding(16) var<storage, read_write> nl2: array<u32>;
@group(0) @binding(17) var<storage, read_write> nl3: array<u32>;
// Build positions in slot order (w = the atom id's bits): the list build reads each bin's
// atoms from contiguous memory.
@group(0) @binding(18) var<storage, read_write> slot_pos: array<vec4<f32>>;

fn neighbor_entry(k: u32, t: u32) -> u32 {
    let p = k / P.k_per_part;
    let at = (k - p * P.k_per_part) * P.n_atoms + t;
    switch p {
        case 0u: { return nl0[at]; }
        case 1u: { return nl1[at]; }
        case 2u: { return nl2[at]; }
        default: { return nl3[at]; }
    }
}

fn set_neighbor_entry(k: u32, t: u32, value: u32) {
    let p = k / P.k_per_part;
    let at = (k - p * P.k_per_part) * P.n_atoms + t;
    switch p {
        case 0u: { nl0[at] = value; }
        case 1u: { nl1[at] = value; }
        case 2u: { nl2[at] = value; }
        default: { nl3[at] = value; }
    }
}

// The flat thread index of a 1-D or 2-D dispatch of WG-thread workgroups.
fn flat_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * P.row_threads;
}

fn atom_type(p: vec4<f32>) -> u32 {
    return bitcast<u32>(p.w);
}

fn is_finite3(v: vec3<f32>) -> bool {
    let e = vec3<u32>(0x7f800000u);
    return all((bitcast<vec3<u32>>(v) & e) != e);
}

// Error-free sum (Knuth): a + b = s + e exactly. GPU compilers treat float arithmetic as
// reassociable and would simplify (a + b) - a to b, leaving e = 0; multiplying by P.one, a 1.0
// they cannot see, keeps the intermediate values opaque and the rounding error intact.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = (a + b) * P.one;
    let bb = (s - a) * P.one;
    let e = (a - (s - bb)) + (b - bb);
    return vec2<f32>(s, e);
}

// hi + lo renormalised so that |lo| <= ulp(hi) / 2.
fn renormalise(hi: f32, lo: f32) -> vec2<f32> {
    let t = (hi + lo) * P.one;
    return vec2<f32>(t, lo - (t - hi));
}

// Philox4x32-10, as src/rng.rs: random words from a counter and a key, the same on CPU and GPU.

// High and low 32 bits of a * b.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var x = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mul_wide(0xD2511F53u, x.x);
        let p1 = mul_wide(0xCD9E8D57u, x.z);
        x = vec4<u32>(p1.x ^ x.y ^ k.x, p1.y, p0.x ^ x.w ^ k.y, p0.y);
    }
    return x;
}
