// The neighbour list, rebuilt on the GPU: wrap positions into the cell, bin atoms by fractional
// coordinates (counting sort: count, scan, scatter, then order each bin by atom id so the list
// is the same run after run), and gather for each atom every atom in the 27 surrounding bins
// within cutoff + skin. Bins are at least cutoff + skin wide (perpendicular to their faces), so
// 27 bins hold every partner; with one or two bins along an axis the periodic shift tells the
// images apart. Lists have `capacity` entries per atom; a longer list is counted (ST_MAX_NEIGH)
// and the host grows the capacity and replays the steps.
//
// With several structures, each has its own bins and its own rebuild decision: a structure's
// list is rebuilt when one of its atoms moved half the skin (SW_REBUILD), exactly when it would
// be alone, and the kernels below skip the atoms and bins of the others. The flag is set here,
// read by the rebuild, and cleared by the structure's first atom in the next step's first
// integrator kernel: no kernel walks the structures one by one. Counts of the others'
// bins stay as they were, so the scan gives their bins the same first slots as before: the
// slots of structure s are always [first_s, first_s + count_s).

// Wraps each atom into the cell (updating its image counts) and records the build positions.
@compute @workgroup_size(64)
fn wrap_positions(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let st = structure_of(i);
    if (!rebuilding(st)) { return; }
    let cell = structures[st].cell;
    let inv_cols = structures[st].inv_cols;
    let p = pos[i];
    var x = p.xyz;
    var lo = pos_lo[i].xyz;
    var n = vec3<i32>(0);
    for (var k = 0u; k < 3u; k++) {
        n[k] = i32(floor(dot(x + lo, inv_cols[k].xyz)));
    }
    if (any(n != vec3<i32>(0))) {
        let shift = f32(n.x) * cell[0].xyz + f32(n.y) * cell[1].xyz + f32(n.z) * cell[2].xyz;
        for (var k = 0u; k < 3u; k++) {
            let s = two_sum(x[k], -shift[k]);
            let r = renormalise(s.x, s.y + lo[k]);
            x[k] = r.x;
            lo[k] = r.y;
        }
        pos[i] = vec4<f32>(x, p.w);
        pos_lo[i] = vec4<f32>(lo, 0.0);
        image[i] = image[i] + vec4<i32>(n, 0);
    }
    ref_pos[i] = vec4<f32>(x, p.w);
}

fn bin_coords(st: u32, x: vec3<f32>) -> vec3<u32> {
    var b: vec3<u32>;
    for (var k = 0u; k < 3u; k++) {
        let s = dot(x, structures[st].inv_cols[k].xyz);
        let nb = structures[st].nbins[k];
        // Clamp: rounding can put an atom a hair outside [0, 1).
        b[k] = u32(clamp(i32(floor(s * f32(nb))), 0, i32(nb) - 1));
    }
    return b;
}

// The global index of bin b of structure st.
fn bin_index(st: u32, b: vec3<u32>) -> u32 {
    let nb = structures[st].nbins;
    return nb.w + b.x + nb.x * (b.y + nb.y * b.z);
}

@compute @workgroup_size(64)
fn clear_bins(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = flat_index(gid);
    if (b >= P.total_bins) { return; }
    if (!rebuilding(structure_by(b, 0u))) { return; }
    atomicStore(&bins[b], 0u);
}

@compute @workgroup_size(64)
fn count_bins(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    let st = structure_of(i);
    if (!rebuilding(st)) { return; }
    if (i == structures[st].atoms.x) {
        atomicAdd(&status[status_word(st, SW_BUILDS)], 1u);
    }
    let b = bin_index(st, bin_coords(st, ref_pos[i].xyz));
    let rank = atomicAdd(&bins[b], 1u);
    atomic_bin_store(i, b, rank);
}

fn atomic_bin_store(i: u32, b: u32, rank: u32) {
    atom_bin[i] = vec2<u32>(b, rank);
}

// ---- Exclusive scan of the bin counts into first slots, in blocks of 256 bins.

var<workgroup> scan_tmp: array<u32, 256>;

// Inclusive prefix sum of `value` over the 256 threads of the workgroup (Hillis-Steele);
// scan_tmp[255] holds the total afterwards. Call from uniform control flow.
fn workgroup_scan(lid: u32, value: u32) -> u32 {
    scan_tmp[lid] = value;
    workgroupBarrier();
    for (var offset = 1u; offset < 256u; offset = offset * 2u) {
        var add = 0u;
        if (lid >= offset) { add = scan_tmp[lid - offset]; }
        workgroupBarrier();
        scan_tmp[lid] += add;
        workgroupBarrier();
    }
    return scan_tmp[lid];
}

@compute @workgroup_size(256)
fn scan_local(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let nb = P.total_bins;
    let b = wid.x * 256u + lid.x;
    var count = 0u;
    if (b < nb) { count = atomicLoad(&bins[b]); }
    let inclusive = workgroup_scan(lid.x, count);
    if (b < nb) { atomicStore(&bins[nb + b], inclusive - count); }
    if (lid.x == 255u) { atomicStore(&bins[2u * nb + 1u + wid.x], inclusive); }
}

// One workgroup: exclusive scan of the block sums, in chunks of 256 with a running carry.
@compute @workgroup_size(256)
fn scan_blocks(@builtin(local_invocation_id) lid: vec3<u32>) {
    let base = 2u * P.total_bins + 1u;
    var carry = 0u;
    for (var chunk = 0u; chunk < P.n_blocks; chunk += 256u) {
        let k = chunk + lid.x;
        var v = 0u;
        if (k < P.n_blocks) { v = atomicLoad(&bins[base + k]); }
        let inclusive = workgroup_scan(lid.x, v);
        if (k < P.n_blocks) { atomicStore(&bins[base + k], carry + inclusive - v); }
        carry += scan_tmp[255];
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn scan_add(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let nb = P.total_bins;
    let b = wid.x * 256u + lid.x;
    if (b < nb) {
        let add = atomicLoad(&bins[2u * nb + 1u + wid.x]);
        atomicAdd(&bins[nb + b], add);
    }
    if (b == 0u) { atomicStore(&bins[2u * nb], P.n_atoms); }
}

@compute @workgroup_size(64)
fn scatter_bins(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    if (!rebuilding(structure_of(i))) { return; }
    let br = atom_bin[i];
    sorted[atomicLoad(&bins[P.total_bins + br.x]) + br.y] = i;
}

// The atomic counter handed out ranks in any order; sort each bin by atom id (bins are small).
@compute @workgroup_size(64)
fn sort_bins(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = flat_index(gid);
    let nb = P.total_bins;
    if (b >= nb) { return; }
    if (!rebuilding(structure_by(b, 0u))) { return; }
    let start = atomicLoad(&bins[nb + b]);
    let end = atomicLoad(&bins[nb + b + 1u]);
    for (var k = start + 1u; k < end; k++) {
        let a = sorted[k];
        var m = k;
        while (m > start && sorted[m - 1u] > a) {
            sorted[m] = sorted[m - 1u];
            m -= 1u;
        }
        sorted[m] = a;
    }
    for (var k = start; k < end; k++) {
        let i = sorted[k];
        slot_pos[k] = vec4<f32>(ref_pos[i].xyz, bitcast<f32>(i));
    }
}

// One thread per slot: the atoms of the 27 surrounding bins within reach, in a fixed order.
@compute @workgroup_size(64)
fn build_list(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = flat_index(gid);
    let n = P.n_atoms;
    if (t >= n) { return; }
    let st = structure_of(sorted[t]);
    if (!rebuilding(st)) { return; }
    let xi = slot_pos[t].xyz;
    let bi = bin_coords(st, xi);
    let nb = structures[st].nbins.xyz;
    let cell = structures[st].cell;
    var count = 0u;
    for (var oz = -1; oz <= 1; oz++) {
        for (var oy = -1; oy <= 1; oy++) {
            for (var ox = -1; ox <= 1; ox++) {
                let o = vec3<i32>(ox, oy, oz);
                let raw = vec3<i32>(bi) + o;
                // Bin index wrapped into [0, nb) and the image it stands for (-1, 0 or 1).
                let sh = select(vec3<i32>(0), vec3<i32>(-1), raw < vec3<i32>(0))
                       + select(vec3<i32>(0), vec3<i32>(1), raw >= vec3<i32>(nb));
                let bj = vec3<u32>(raw - sh * vec3<i32>(nb));
                let code = u32((sh.x + 1) + 3 * (sh.y + 1) + 9 * (sh.z + 1));
                let shift = shift_from(cell, code);
                let b = bin_index(st, bj);
                let start = atomicLoad(&bins[P.total_bins + b]);
                let end = atomicLoad(&bins[P.total_bins + b + 1u]);
                for (var k = start; k < end; k++) {
                    if (k == t && code == 13u) { continue; }
                    let pj = slot_pos[k];
                    let j = bitcast<u32>(pj.w);
                    let d = pj.xyz + shift - xi;
                    if (dot(d, d) < P.list_reach_sq) {
                        if (count < P.capacity) {
                            set_neighbor_entry(count, t, j | (code << ATOM_BITS));
                        }
                        count += 1u;
                    }
                }
            }
        }
    }
    ncount[t] = min(count, P.capacity);
    // The host reads the largest count only to grow a list that did not fit.
    if (count > P.capacity) {
        atomicMax(&status[ST_MAX_NEIGH], count);
    }
}
