//! How mdrun asks for memory (the binary, the tests and `libmdrun.so` alike). An ML step
//! allocates and frees per-atom arrays of many MB (φ, μ and their gradients: 75 MB each at
//! 100,000 PaiNN atoms) and reads neighbours' rows all over them, and the defaults of glibc and
//! Linux cost a lot there:
//! - glibc gives large blocks back to the kernel on free (the rayon workers' arenas map any
//!   block over 64 MB afresh every time), and the next step page-faults them back: a tenth of a
//!   192-atom PaiNN step, a fifth of a 30,000-atom one;
//! - in 4 KB pages the neighbours' rows of a large system miss the TLB (in 2 MB pages a
//!   98,304-atom PaiNN step took 5.1 s instead of 6.9 s).
//!
//! So the crate's global allocator, `Allocator`, maps blocks of 4 MB and more itself, in
//! transparent huge pages, and keeps them for reuse when freed (`LargeBlocks`); everything
//! smaller goes to the system allocator, whose per-thread arenas keep the rayon workers' small
//! allocations free of a shared lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Blocks this large and up are mapped and cached by `LargeBlocks`.
pub const LARGE: usize = 4 << 20;
/// A huge page; large blocks are whole numbers of them, aligned to one.
const HUGE: usize = 2 << 20;
/// Freed large blocks kept at most (a PaiNN step frees a few dozen).
const KEPT: usize = 256;

/// Keeps the system allocator's blocks below `LARGE` in its heap once freed (a fixed mmap
/// threshold, which also stops glibc from raising it on its own, and no trimming). Call before
/// any thread starts (the binary), or once when loaded into a host (`crate::library`).
pub fn keep_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as i32);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// The binary's global allocator: large blocks from `LargeBlocks` (on Linux), the rest from the
/// system allocator.
pub struct Allocator {
    large: LargeBlocks,
}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator { large: LargeBlocks::new() }
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator::new()
    }
}

fn is_large(layout: &Layout) -> bool {
    cfg!(target_os = "linux") && layout.size() >= LARGE && layout.align() <= HUGE
}

// SAFETY: a block's layout decides, at allocation and at release alike, which of the two
// allocators owns it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) { self.large.take(layout.size(), false) } else { unsafe { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) { self.large.take(layout.size(), true) } else { unsafe { System.alloc_zeroed(layout) } }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's layout is valid for new_size (GlobalAlloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(&layout), is_large(&new_layout)) {
            (false, false) => return unsafe { System.realloc(ptr, layout, new_size) },
            // The same whole huge pages hold both sizes: nothing to move.
            (true, true) if layout.size().next_multiple_of(HUGE) == new_size.next_multiple_of(HUGE) => return ptr,
            _ => {}
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller size; they are distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) { self.large.give_back(ptr, layout.size()) } else { unsafe { System.dealloc(ptr, layout) } }
    }
}

/// Large blocks mapped in whole huge pages, and the freed ones kept for the next request of
/// their length (a step asks for the same sizes as the step before). What is kept never adds up
/// to more than the most that was ever in use at once (the oldest go first), so the footprint
/// stays within twice the peak.
pub struct LargeBlocks {
    state: Mutex<Kept>,
}

struct Kept {
    /// (address, length) of the freed blocks kept, oldest first; the first `count` are valid.
    /// A fixed array: the allocator must not allocate.
    blocks: [(usize, usize); KEPT],
    count: usize,
    kept_bytes: usize,
    in_use: usize,
    peak: usize,
}

impl Kept {
    fn remove(&mut self, i: usize) -> (usize, usize) {
        let block = self.blocks[i];
        self.blocks.copy_within(i + 1..self.count, i);
        self.count -= 1;
        self.kept_bytes -= block.1;
        block
    }
}

impl Default for LargeBlocks {
    fn default() -> Self {
        LargeBlocks::new()
    }
}

impl LargeBlocks {
    pub const fn new() -> LargeBlocks {
        LargeBlocks { state: Mutex::new(Kept { blocks: [(0, 0); KEPT], count: 0, kept_bytes: 0, in_use: 0, peak: 0 }) }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A block of at least `size` bytes (zeroed if asked): the latest kept one of its length in
    /// huge pages, or a new mapping. Null when the system has no memory left.
    pub fn take(&self, size: usize, zeroed: bool) -> *mut u8 {
        let len = size.next_multiple_of(HUGE);
        let reused = {
            let mut kept = self.kept();
            let found = kept.blocks[..kept.count].iter().rposition(|b| b.1 == len).map(|i| kept.remove(i));
            kept.in_use += len;
            kept.peak = kept.peak.max(kept.in_use);
            found
        };
        match reused {
            Some((addr, _)) => {
                if zeroed {
                    // SAFETY: the block is ours and `len` >= `size` long.
                    unsafe { std::ptr::write_bytes(addr as *mut u8, 0, size) };
                }
                addr as *mut u8
            }
            None => {
                let ptr = map(len);
                if ptr.is_null() {
                    self.kept().in_use -= len;
                }
                ptr
            }
        }
    }

    /// Takes back a block from `take` (with the size asked for there).
    pub fn give_back(&self, ptr: *mut u8, size: usize) {
        let len = size.next_multiple_of(HUGE);
        let mut kept = self.kept();
        kept.in_use -= len;
        if len > kept.peak {
            drop(kept);
            return unmap(ptr as usize, len);
        }
        while kept.count == KEPT || kept.kept_bytes + len > kept.peak {
            let oldest = kept.remove(0);
            unmap(oldest.0, oldest.1);
        }
        let count = kept.count;
        kept.blocks[count] = (ptr as usize, len);
        kept.count += 1;
        kept.kept_bytes += len;
    }

    /// Bytes of freed blocks kept for reuse.
    pub fn kept_bytes(&self) -> usize {
        self.kept().kept_bytes
    }
}

/// `len` bytes (a whole number of huge pages) of fresh zeroed memory aligned to a huge page,
/// advised for transparent huge pages; null if the system refuses.
fn map(len: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    {
        // Map a huge page more than asked and cut the ends off, so the block starts on one.
        let whole = len + HUGE;
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let raw = unsafe { libc::mmap(std::ptr::null_mut(), whole, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if raw == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let raw = raw as usize;
        let start = raw.next_multiple_of(HUGE);
        unmap(raw, start - raw);
        unmap(start + len, raw + whole - (start + len));
        // SAFETY: advice about pages of our own mapping; it changes no contents.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        start as *mut u8
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = len;
        std::ptr::null_mut()
    }
}

fn unmap(addr: usize, len: usize) {
    #[cfg(target_os = "linux")]
    if len > 0 {
        // SAFETY: the range is a part of a mapping of ours that nothing refers to any more.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_large_block_serves_the_next_request_of_its_length_zeroed_if_asked() {
        let blocks = LargeBlocks::new();
        let size = 5 << 20;
        let a = blocks.take(size, true);
        assert!(!a.is_null() && a as usize % HUGE == 0);
        // SAFETY: a is a live block of `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(a, size) };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes.fill(7);
        blocks.give_back(a, size);
        assert_eq!(blocks.kept_bytes(), 6 << 20);
        // Same length in huge pages (6 MB): the same block, zeroed again.
        let b = blocks.take(size - 1000, true);
        assert_eq!(a, b);
        assert!(unsafe { std::slice::from_raw_parts(b, size - 1000) }.iter().all(|&x| x == 0));
        assert_eq!(blocks.kept_bytes(), 0);
        // Another length: a new mapping, and the kept bytes stay within the peak in use.
        let c = blocks.take(9 << 20, false);
        assert_ne!(b, c);
        blocks.give_back(b, size - 1000);
        blocks.give_back(c, 9 << 20);
        assert_eq!(blocks.kept_bytes(), (6 << 20) + (10 << 20));
        // Peak in use was 16 MB: a 12 MB block freed now pushes the oldest out (6 MB, then
        // 10 MB) until it fits beside what is left.
        let d = blocks.take(12 << 20, false);
        blocks.give_back(d, 12 << 20);
        assert_eq!(blocks.kept_bytes(), 12 << 20);
    }

    #[test]
    fn the_allocator_reallocates_across_the_large_threshold_keeping_the_contents() {
        let alloc = Allocator::new();
        let small = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: layouts are valid; every block is released with the layout it has.
        unsafe {
            let p = alloc.alloc(small);
            std::ptr::write_bytes(p, 3, 1000);
            let q = alloc.realloc(p, small, LARGE + 10);
            assert!(std::slice::from_raw_parts(q, 1000).iter().all(|&b| b == 3));
            let large = Layout::from_size_align(LARGE + 10, 8).unwrap();
            // Within the same huge pages the block stays where it is.
            let same = alloc.realloc(q, large, LARGE + 1000);
            assert_eq!(same, q);
            let large = Layout::from_size_align(LARGE + 1000, 8).unwrap();
            let r = alloc.realloc(same, large, 500);
            assert!(std::slice::from_raw_parts(r, 500).iter().all(|&b| b == 3));
            alloc.dealloc(r, Layout::from_size_align(500, 8).unwrap());
        }
    }
}
