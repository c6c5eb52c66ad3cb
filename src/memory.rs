//! How mdrun's binary asks for memory. An ML step allocates and frees per-atom arrays of many MB
//! (φ, μ and their gradients: 75 MB each at 100,000 PaiNN atoms) and reads neighbours' rows all
//! over them, so two defaults of glibc and Linux cost a lot:
//! - glibc gives such blocks back to the kernel on free, and the next step page-faults them back
//!   (a tenth of a 192-atom PaiNN step, a fifth of a 30,000-atom one);
//! - in 4 KB pages, the neighbour rows of a large system miss the TLB (in 2 MB pages a
//!   98,304-atom PaiNN step took 5.1 s instead of 6.9 s).
//!
//! `keep_large_blocks` fixes the first, `LargePages` (the binary's global allocator) the second.

use std::alloc::{GlobalAlloc, Layout, System};

/// Keeps freed blocks in glibc's heap: a fixed mmap threshold (which also stops glibc from
/// raising it on its own), no trimming, and one arena (the rayon workers' own arenas are capped
/// at 64 MB and map anything larger afresh). Call before any thread starts.
pub fn keep_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The system allocator, asking Linux for transparent huge pages under blocks of 4 MB and more
/// (the usual THP setting, `madvise`, gives them to advised memory only). The advice
/// goes to the whole 2 MB pages inside the block, before its first touch.
pub struct LargePages;

const LARGE: usize = 4 << 20;

fn advise(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() && size >= LARGE {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + size) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside the block just allocated; advice changes no contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
}

// SAFETY: every call goes to `System`; `advise` only adds advice about the pages.
unsafe impl GlobalAlloc for LargePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let ptr = unsafe { System.realloc(ptr, layout, new_size) };
        advise(ptr, new_size);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}
