// Sums over atoms for thermo output: kinetic tensor (6), potential energy, virial (6).
//
// Each per-atom f32 value is converted to 64-bit fixed point (32 fractional bits, carried as
// two u32 words) and summed with integer adds. Integer sums are exact and associative, so the
// total does not depend on order and no compiler reassociation can spoil it (GPU compilers
// treat float arithmetic as reassociable, which defeats compensated float sums). Range:
// |total| < 2^31 eV, resolution 2^-32 eV per atom. Each structure has its own sums: stage 1
// sums blocks of 64 of a structure's atoms (workgroup w is block w - first_block of the
// structure whose blocks hold w) into partial[32 S + 32 w ..] (as u32 bits); stage 2 (one
// workgroup per structure) sums a structure's blocks into partial[32 s .. 32 s + 26].

const NQ: u32 = 13u;

var<workgroup> red_lo: array<u32, 832>;  // 64 threads x 13 quantities
var<workgroup> red_hi: array<u32, 832>;

// x as a two's-complement 32.32 fixed-point number (lo, hi).
fn to_fixed(x: f32) -> vec2<u32> {
    let whole = floor(x);
    let frac = x - whole;                 // exact, in [0, 1)
    return vec2<u32>(u32(frac * 4294967296.0), bitcast<u32>(i32(whole)));
}

fn fixed_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

fn tree_reduce(lid: u32) {
    for (var width = 32u; width > 0u; width = width / 2u) {
        if (lid < width) {
            for (var q = 0u; q < NQ; q++) {
                let a = vec2<u32>(red_lo[lid * NQ + q], red_hi[lid * NQ + q]);
                let b = vec2<u32>(red_lo[(lid + width) * NQ + q], red_hi[(lid + width) * NQ + q]);
                let s = fixed_add(a, b);
                red_lo[lid * NQ + q] = s.x;
                red_hi[lid * NQ + q] = s.y;
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(64)
fn reduce_atoms(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = wid.x + wid.y * nwg.x;
    if (block >= P.n_reduce_blocks) { return; }
    let atom = block_atom(block, lid.x);
    let st = atom.x;
    let local = atom.y;
    let i = atom.z;
    var q: array<f32, 13>;
    for (var k = 0u; k < NQ; k++) { q[k] = 0.0; }
    if (local < structures[st].atoms.y) {
        let v = vel[i].xyz;
        let m = P.types[atom_type(pos[i])].z;
        q[0] = m * v.x * v.x;
        q[1] = m * v.y * v.y;
        q[2] = m * v.z * v.z;
        q[3] = m * v.x * v.y;
        q[4] = m * v.x * v.z;
        q[5] = m * v.y * v.z;
        for (var k = 0u; k < 7u; k++) { q[6u + k] = obs[8u * i + k]; }
    }
    for (var k = 0u; k < NQ; k++) {
        let f = to_fixed(q[k]);
        red_lo[lid.x * NQ + k] = f.x;
        red_hi[lid.x * NQ + k] = f.y;
    }
    workgroupBarrier();
    tree_reduce(lid.x);
    if (lid.x == 0u) {
        for (var k = 0u; k < NQ; k++) {
            partial[32u * (P.n_structures + block) + 2u * k] = bitcast<f32>(red_lo[k]);
            partial[32u * (P.n_structures + block) + 2u * k + 1u] = bitcast<f32>(red_hi[k]);
        }
    }
}

@compute @workgroup_size(64)
fn reduce_blocks(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let st = wid.x;
    let first = structures[st].atoms.z;
    let blocks = structures[st].seed.z;
    var acc: array<vec2<u32>, 13>;
    for (var k = 0u; k < NQ; k++) { acc[k] = vec2<u32>(0u); }
    for (var b = first + lid.x; b < first + blocks; b += 64u) {
        for (var k = 0u; k < NQ; k++) {
            let o = 32u * (P.n_structures + b) + 2u * k;
            acc[k] = fixed_add(acc[k], vec2<u32>(bitcast<u32>(partial[o]), bitcast<u32>(partial[o + 1u])));
        }
    }
    for (var k = 0u; k < NQ; k++) {
        red_lo[lid.x * NQ + k] = acc[k].x;
        red_hi[lid.x * NQ + k] = acc[k].y;
    }
    workgroupBarrier();
    tree_reduce(lid.x);
    if (lid.x == 0u) {
        for (var k = 0u; k < NQ; k++) {
            partial[32u * st + 2u * k] = bitcast<f32>(red_lo[k]);
            partial[32u * st + 2u * k + 1u] = bitcast<f32>(red_hi[k]);
        }
    }
}
