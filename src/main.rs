fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`mdrun eval ... | head`), as command-line tools do, instead
    // of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // An ML step allocates and frees per-atom arrays of many MB; glibc hands blocks that large
    // back to the kernel on free, and the next step pays a page fault per page to get them back
    // (a tenth of a small PaiNN step, a fifth of a 30,000-atom one). Keep them in the heap
    // instead: a fixed mmap threshold (which also stops glibc from moving it), no trimming, and
    // one arena (the rayon workers' own arenas are capped at 64 MB and map anything larger).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // On a headless machine (no XDG_RUNTIME_DIR) Mesa's Vulkan device-select layer tries to
    // reach a display server to rank GPUs and prints "XDG_RUNTIME_DIR is invalid" on every run.
    // mdrun ranks adapters itself, so switch that layer off there.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    mdrun::cli::main()
}
