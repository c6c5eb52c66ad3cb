// One thread, once per step, after the displacement check: turns the rebuild flag into the
// sizes of the rebuild's indirect dispatches (zero workgroups when no rebuild is due) and
// advances the step counter. The decision never leaves the GPU.

@group(1) @binding(0) var<storage, read_write> dispatch: array<u32>;

fn set_args(slot: u32, args: vec4<u32>, on: bool) {
    dispatch[slot * 3u] = select(0u, args.x, on);
    dispatch[slot * 3u + 1u] = args.y;
    dispatch[slot * 3u + 2u] = 1u;
}

@compute @workgroup_size(1)
fn schedule_step() {
    // Each structure is rebuilt when its own atoms moved far enough; the dispatches run when
    // any is.
    var rebuild = false;
    for (var s = 0u; s < P.n_structures; s++) {
        let moved = atomicExchange(&status[status_word(s, SW_MOVED)], 0u);
        atomicStore(&status[status_word(s, SW_REBUILD)], moved);
        if (moved != 0u) {
            atomicAdd(&status[status_word(s, SW_BUILDS)], 1u);
            rebuild = true;
        }
    }
    set_args(0u, P.args_atoms, rebuild);
    set_args(1u, P.args_bins, rebuild);
    set_args(2u, P.args_blocks, rebuild);
    set_args(3u, vec4<u32>(1u, 1u, 1u, 0u), rebuild);
    let lo = atomicLoad(&status[ST_STEP_LO]) + 1u;
    atomicStore(&status[ST_STEP_LO], lo);
    if (lo == 0u) { atomicAdd(&status[ST_STEP_HI], 1u); }
}
