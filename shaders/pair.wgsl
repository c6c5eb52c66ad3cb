// The pair loop of every pair style: forces gathered per atom over the full neighbour list
// (each pair is computed twice, once from each side): no two threads write the same atom and the
// sum over neighbours runs in list order, so forces are bit-identical run after run. With
// `observe` each atom also writes half of its pair energies and virials, for the reduction.
//
// The style's snippet (shaders/pair/<style>.wgsl) comes before this file and defines
// pair_force(c0, c1, r2) (fpair: F_i = -fpair d with d = x_j - x_i) and pair_energy(c0, c1, r2)
// over the pair's two rows of constants in P.pair; c0.x is the squared cutoff.

fn pair_atom(t: u32, observe: bool) {
    let n = P.n_atoms;
    let i = sorted[t];
    let st = structure_of(i);
    let cell = structures[st].cell;
    let pi = pos[i];
    let xi = pi.xyz;
    let row = atom_type(pi) * MAX_TYPES;
    let count = ncount[t];
    var f = vec3<f32>(0.0);
    var energy = 0.0;
    var w_diag = vec3<f32>(0.0);   // xx, yy, zz
    var w_off = vec3<f32>(0.0);    // xy, xz, yz
    for (var k = 0u; k < count; k++) {
        let e = neighbor_entry(k, t);
        let j = e & ATOM_MASK;
        let pj = pos[j];
        let d = pj.xyz + shift_from(cell, e >> ATOM_BITS) - xi;
        let r2 = dot(d, d);
        let pair = 2u * (row + atom_type(pj));
        let c0 = P.pair[pair];
        if (r2 < c0.x) {
            let c1 = P.pair[pair + 1u];
            // F_i = -fpair d with d = x_j - x_i (LAMMPS: fpair (x_i - x_j)).
            let fpair = pair_force(c0, c1, r2);
            f -= fpair * d;
            if (observe) {
                energy += 0.5 * pair_energy(c0, c1, r2);
                w_diag += 0.5 * fpair * d * d;
                w_off += 0.5 * fpair * vec3<f32>(d.x * d.y, d.x * d.z, d.y * d.z);
            }
        }
    }
    force[i] = vec4<f32>(f, 0.0);
    if (!(is_finite3(f) && dot(f, f) <= P.max_force_sq) && !frozen(st)) {
        atomicAdd(&status[ST_BAD_COUNT], 1u);
        atomicMin(&status[ST_BAD_ATOM], i);
    }
    if (observe) {
        let o = 8u * i;
        obs[o] = energy;
        obs[o + 1u] = w_diag.x;
        obs[o + 2u] = w_diag.y;
        obs[o + 3u] = w_diag.z;
        obs[o + 4u] = w_off.x;
        obs[o + 5u] = w_off.y;
        obs[o + 6u] = w_off.z;
        obs[o + 7u] = 0.0;
    }
}

@compute @workgroup_size(64)
fn pair_forces(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = flat_index(gid);
    if (t >= P.n_atoms) { return; }
    pair_atom(t, false);
}

@compute @workgroup_size(64)
fn pair_forces_observed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = flat_index(gid);
    if (t >= P.n_atoms) { return; }
    pair_atom(t, true);
}
