//! Upper bounds on what an input may ask for, checked before anything is allocated, so that a
//! typo (`repeat = [1000, 1000, 1000]`, `--threads 100000`) is a clear error instead of an
//! allocation abort or a machine brought to its knees.

/// Atom ids are stored as u32 and i32 in places (GPU buffers, LAMMPS-style ids).
pub const MAX_ATOMS: u128 = i32::MAX as u128;

/// A floor on what a CPU run holds per atom: positions, velocities, forces, images, reference
/// positions (24 bytes each), species, and a neighbour list of ~50 partners at 4 bytes.
pub const BYTES_PER_ATOM: u128 = 400;

/// `[run] replicas`: each runs its loop on a thread of its own.
pub const MAX_REPLICAS: usize = 4096;

/// g(r) bins: far finer than any trajectory resolves, and 160 MB per channel at most.
pub const MAX_HISTOGRAM_BINS: usize = 10_000_000;

/// A smaller memory budget than the machine's, in bytes (0: none): the fuzz harness sets one so
/// that an input asking for millions of atoms is refused instead of filling its memory.
static BUDGET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn set_memory_budget(bytes: u64) {
    BUDGET.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The memory a run may plan on, in bytes: the budget if set, else the physical memory.
pub fn physical_memory() -> Option<u128> {
    match BUDGET.load(std::sync::atomic::Ordering::Relaxed) {
        0 => machine_memory(),
        budget => Some(budget as u128),
    }
}

fn machine_memory() -> Option<u128> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system constants.
        let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGE_SIZE)) };
        if pages > 0 && size > 0 {
            return Some(pages as u128 * size as u128);
        }
    }
    None
}

/// Checks that `atoms` (computed without overflow by the caller, as u128) can be held.
pub fn atoms(atoms: u128) -> Result<usize, String> {
    if atoms > MAX_ATOMS {
        return Err(format!("{atoms} atoms is more than mdrun can index ({MAX_ATOMS})"));
    }
    if let Some(memory) = physical_memory()
        && atoms * BYTES_PER_ATOM > memory
    {
        return Err(format!(
            "{atoms} atoms need at least {:.1} GB, more than this machine's {:.1} GB of memory",
            (atoms * BYTES_PER_ATOM) as f64 / 1e9,
            memory as f64 / 1e9
        ));
    }
    Ok(atoms as usize)
}

/// The most worker threads a run may ask for: oversubscribing a few times can make sense,
/// thousands of threads per core cannot.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (16 * cores).max(64)
}

/// Checks a requested thread count (0 is "all cores" and passes).
pub fn threads(threads: usize) -> Result<usize, String> {
    let max = max_threads();
    if threads > max {
        return Err(format!("more than the {max} this machine allows (16 per core, at least 64)"));
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_requests_are_refused_and_ordinary_ones_pass() {
        assert!(atoms(1000).is_ok());
        assert!(atoms(1_000_000_000_000).unwrap_err().contains("more than mdrun can index"));
        assert!(threads(1).is_ok());
        assert!(threads(100_000).unwrap_err().contains("more than the"));
    }
}
