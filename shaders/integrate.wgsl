// What the integrators' pieces use (src/integrate/pieces.rs): the kernels themselves,
// `integrate_before` (the pieces before the force call) and `integrate_after`, are generated
// from the integrator's pieces and appended to this file (src/gpu/kernels.rs), one thread per
// atom. Positions are kept as float-float pairs
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

// Marks the structure for a rebuild (SW_REBUILD, and ST_REBUILD for the scheduler) when atom i
// moved more than skin/2 since its last build (neighbor.wgsl): the end of the step's first
// kernel, so the check costs no dispatch of its own.
fn check_displacement(i: u32) {
    let d = pos[i].xyz - ref_pos[i].xyz;
    if (!(dot(d, d) <= P.half_skin_sq)) {
        atomicStore(&status[status_word(structure_of(i), SW_REBUILD)], 1u);
        atomicStore(&status[ST_REBUILD], 1u);
    }
}

// The last kernel of a step: a structure's first atom clears the structure's rebuild mark,
// which the step's rebuild has used (neighbor.wgsl), for the next step's displacement checks.
fn clear_rebuild_mark(i: u32) {
    let st = structure_of(i);
    if (i == structures[st].atoms.x) {
        atomicStore(&status[status_word(st, SW_REBUILD)], 0u);
    }
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
