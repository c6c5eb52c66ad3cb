//! Sizes every kernel shares: the workgroup width, how a large dispatch splits into rows, and
//! the species table of the parameter block (shaders/common.wgsl).

/// Species the GPU kernels handle (the pair table lives in the parameter block).
pub const MAX_TYPES: usize = 8;
/// Threads per workgroup of the per-atom kernels.
pub const WG: u32 = 64;
/// Workgroups along x of a 2-D dispatch; beyond that rows are added along y.
pub const ROW_GROUPS: u32 = 65535;

/// Workgroup counts for `threads` threads of a 64-wide kernel, as (x, y, 1).
pub fn dims(threads: u64) -> [u32; 3] {
    let groups = threads.div_ceil(WG as u64).max(1) as u32;
    if groups <= ROW_GROUPS {
        [groups, 1, 1]
    } else {
        [ROW_GROUPS, groups.div_ceil(ROW_GROUPS), 1]
    }
}
