// Integrator half steps, one thread per atom. Positions are kept as float-float pairs
// (pos + pos_lo): each drift adds dt v to a value known to ~1e-14 relative, so the rounding of
// f32 positions does not accumulate over millions of steps. Forces read only the high part.

// x += d, carried in float-float.
fn drift(i: u32, d: vec3<f32>) {
    let hi = pos[i];
    let lo = pos_lo[i].xyz;
    var h: vec3<f32>;
    var l: vec3<f32>;
    for (var k = 0u; k < 3u; k++) {
        let s = two_sum(hi[k], d[k]);
        let r = renormalise(s.x, s.y + lo[k]);
        h[k] = r.x;
        l[k] = r.y;
    }
    pos[i] = vec4<f32>(h, hi.w);
    pos_lo[i] = vec4<f32>(l, 0.0);
}

fn accel(i: u32) -> vec3<f32> {
    return force[i].xyz * P.types[atom_type(pos[i])].x;
}

// The first kernel of a step: a structure's first atom clears the structure's rebuild mark of
// the step before (neighbor.wgsl).
fn clear_rebuild_mark(i: u32) {
    let st = structure_of(i);
    if (i == structures[st].atoms.x) {
        atomicStore(&status[status_word(st, SW_REBUILD)], 0u);
    }
}

// Velocity Verlet, first half: kick 1/2, drift.
@compute @workgroup_size(64)
fn verlet_first(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    clear_rebuild_mark(i);
    if (P.any_frozen.x != 0u && frozen(structure_of(i))) { return; }
    let v = vel[i].xyz + 0.5 * P.dt * accel(i);
    vel[i] = vec4<f32>(v, 0.0);
    drift(i, P.dt * v);
}

// Both integrators end the step with the same half kick.
@compute @workgroup_size(64)
fn kick(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    if (P.any_frozen.x != 0u && frozen(structure_of(i))) { return; }
    vel[i] = vec4<f32>(vel[i].xyz + 0.5 * P.dt * accel(i), 0.0);
}

// ---- Langevin noise: philox (common.wgsl) keyed on (seed, step, atom, stream), as src/rng.rs.

const STREAM_LANGEVIN: u32 = 1u;
const TAU: f32 = 6.283185307179586;

fn box_muller(u: u32, v: u32) -> vec2<f32> {
    // (u + 1) / 2^32 lies in (0, 1]: the logarithm stays finite.
    let uo = (f32(u >> 8u) + 1.0) * (1.0 / 16777216.0);
    let radius = sqrt(-2.0 * log(uo));
    let angle = TAU * (f32(v >> 8u) * (1.0 / 16777216.0));
    return vec2<f32>(radius * cos(angle), radius * sin(angle));
}

// Keyed on the structure's seed and the atom's index within it: a replica gets the noise it
// would get alone.
fn normals4(step_lo: u32, step_hi: u32, st: u32, index: u32) -> vec4<f32> {
    let seed = structures[st].seed;
    let w = philox(vec4<u32>(step_lo, step_hi ^ (STREAM_LANGEVIN << 16u), index, STREAM_LANGEVIN),
                   vec2<u32>(seed.x, seed.y));
    return vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w));
}

// Langevin BAOAB up to the force call: kick 1/2, drift 1/2, Ornstein-Uhlenbeck, drift 1/2.
// The noise of step n+1 is keyed on n+1, as on the CPU.
@compute @workgroup_size(64)
fn langevin_first(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= P.n_atoms) { return; }
    clear_rebuild_mark(i);
    let st = structure_of(i);
    if (frozen(st)) { return; }
    var lo = atomicLoad(&status[ST_STEP_LO]) + 1u;
    var hi = atomicLoad(&status[ST_STEP_HI]);
    if (lo == 0u) { hi += 1u; }
    let t = P.types[atom_type(pos[i])];
    var v = vel[i].xyz + 0.5 * P.dt * accel(i);
    drift(i, 0.5 * P.dt * v);
    let g = normals4(lo, hi, st, i - structures[st].atoms.x);
    v = P.c1 * v + (P.c2 * t.y) * g.xyz;
    drift(i, 0.5 * P.dt * v);
    vel[i] = vec4<f32>(v, 0.0);
}
