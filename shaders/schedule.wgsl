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
    // The dispatches run when any structure is due; each kernel then skips the others.
    let rebuild = atomicExchange(&status[ST_REBUILD], 0u) != 0u;
    set_args(0u, P.args_atoms, rebuild);
    set_args(1u, P.args_bins, rebuild);
    set_args(2u, P.args_blocks, rebuild);
    set_args(3u, vec4<u32>(1u, 1u, 1u, 0u), rebuild);
    let lo = atomicLoad(&status[ST_STEP_LO]) + 1u;
    atomicStore(&status[ST_STEP_LO], lo);
    if (lo == 0u) { atomicAdd(&status[ST_STEP_HI], 1u); }
}
