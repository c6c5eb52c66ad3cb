fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`mdrun eval ... | head`), as command-line tools do, instead
    // of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mdrun::memory::keep_freed_blocks();
    // On a headless machine (no XDG_RUNTIME_DIR) Mesa's Vulkan device-select layer tries to
    // reach a display server to rank GPUs and prints "XDG_RUNTIME_DIR is invalid" on every run.
    // mdrun ranks adapters itself, so switch that layer off there.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    mdrun::cli::main()
}
