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
const ST_REBUILD: u32 = 0u;      // some structure's list is due for a rebuild this step
// Word 4 is unused (each structure has its own build count, below).
const ST_MAX_NEIGH: u32 = 1u;    // the largest neighbour count seen by a build (atomicMax)
const ST_BAD_COUNT: u32 = 2u;    // atoms with a non-finite force or one above max_force
const ST_BAD_ATOM: u32 = 3u;     // the lowest such atom id (atomicMin; host sets 0xffffffff)
const ST_STEP_LO: u32 = 5u;      // the current step, 64 bits (the Langevin noise is keyed on it)
const ST_STEP_HI: u32 = 6u;
// Then SW words per structure s, from ST_STRUCTURES + SW s.
const ST_STRUCTURES: u32 = 16u;
const SW: u32 = 8u;
// Word 0 of a structure is unused.
const SW_REBUILD: u32 = 1u;      // the structure's list is rebuilt this step (an atom moved skin/2)
const SW_BUILDS: u32 = 2u;       // the structure's builds
const SW_REGROUPED: u32 = 3u;    // ML, hard MCGM: a K-means level's partition changed in this evaluation
const SW_REGROUPINGS: u32 = 4u;  // ML, hard MCGM: evaluations at which some partition changed
const SW_CLOSE_ATOM: u32 = 5u;   // ML: the lowest atom id closer to a neighbour than the training data had

fn status_word(s: u32, word: u32) -> u32 {
    return ST_STRUCTURES + SW * s + word;
}

// Several independent structures (replicas) share every buffer: the atoms of structure s are
// the ids [first, first + count), its bins [first_bin, first_bin + nx ny nz); no neighbour pair
// crosses structures, so each evolves exactly as it would alone.
struct Structure {
    // Cell rows a, b, c (x = s_a a + s_b b + s_c c) and the columns of its inverse, so that the
    // fractional coordinate s_k = dot(x, inv_cols[k]).
    cell: array<vec4<f32>, 3>,
    inv_cols: array<vec4<f32>, 3>,
    // Bins per axis, and the structure's first bin.
    nbins: vec4<u32>,
    // First atom, atom count, first block of the thermo reduction, frozen (1: a replica that
    // blew up: its atoms stay where they are).
    atoms: vec4<u32>,
    // Langevin seed (lo, hi), blocks of the thermo reduction, first chunk of the ML poolings.
    seed: vec4<u32>,
}

struct Params {
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
    n_structures: u32,
    total_bins: u32,
    row_threads: u32,     // threads per row of a 2-D dispatch (x groups * WG)
    n_reduce_blocks: u32, // workgroups of the per-atom reduction, all structures
    one: f32,             // 1.0, which the compiler cannot see: see two_sum
    k_per_part: u32,      // neighbour entries per atom in each part of the list
    any_frozen: vec4<u32>, // x: 1 when some structure is frozen (saves the per-atom look-up otherwise)
    // Per type: x = FTM2V / m, y = Langevin velocity scale sqrt(kT / (m MVV2E)), z = m MVV2E.
    types: array<vec4<f32>, MAX_TYPES>,
    // Per pair of types (a * MAX_TYPES + b), two rows of the pair style's constants
    // (shaders/pair/<style>.wgsl says which); row 0's x is the squared cutoff.
    pair: array<vec4<f32>, 128>,
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
@group(0) @binding(19) var<storage, read_write> structures: array<Structure>;

// The structure of atom i (image[i].w, set by the host and never changed).
fn structure_of(i: u32) -> u32 {
    if (P.n_structures == 1u) { return 0u; }
    return u32(image[i].w);
}


// The periodic shift of code c = (sx+1) + 3 (sy+1) + 9 (sz+1): sx a + sy b + sz c. Computed
// from the cell rows (loaded once per atom) rather than read from a table per neighbour, which
// cost 15 % of a Lennard-Jones step on lavapipe.
fn shift_from(cell: array<vec4<f32>, 3>, code: u32) -> vec3<f32> {
    // Most pairs of a large cell need no shift: no divisions and products for them.
    if (code == 13u) { return vec3<f32>(0.0); }
    let n = vec3<f32>(f32(code % 3u), f32((code / 3u) % 3u), f32(code / 9u)) - vec3<f32>(1.0);
    return n.x * cell[0].xyz + n.y * cell[1].xyz + n.z * cell[2].xyz;
}

fn rebuilding(s: u32) -> bool {
    return atomicLoad(&status[status_word(s, SW_REBUILD)]) != 0u;
}

fn frozen(s: u32) -> bool {
    return P.any_frozen.x != 0u && structures[s].atoms.w != 0u;
}

// The structure whose range holds x, a bin (which = 0: first bins at nbins.w), a reduction
// block (1: atoms.z) or an ML pooling chunk (2: seed.w): the last s with first_s <= x.
fn structure_by(x: u32, which: u32) -> u32 {
    var lo = 0u;
    var hi = P.n_structures;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        var first = structures[mid].nbins.w;
        if (which == 1u) { first = structures[mid].atoms.z; }
        if (which == 2u) { first = structures[mid].seed.w; }
        if (first <= x) { lo = mid; } else { hi = mid; }
    }
    return lo;
}

// Lane `lane` of reduction block `block` (64 atoms of one structure; structures[s].atoms.z is
// its first block): (the structure, the atom's index within it, the atom id). In a structure's
// last block the index may pass its atom count.
fn block_atom(block: u32, lane: u32) -> vec3<u32> {
    let st = structure_by(block, 1u);
    let local = (block - structures[st].atoms.z) * WG + lane;
    return vec3<u32>(st, local, structures[st].atoms.x + local);
}

// Entry k of slot t. A list that fits one binding has all its entries in the first part: no
// division for those (an integer division costs tens of instructions per neighbour).
fn neighbor_entry(k: u32, t: u32) -> u32 {
    if (k < P.k_per_part) { return nl0[k * P.n_atoms + t]; }
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
    if (k < P.k_per_part) {
        nl0[k * P.n_atoms + t] = value;
        return;
    }
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
