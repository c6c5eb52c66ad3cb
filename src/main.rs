fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`mdrun eval ... | head`), as command-line tools do, instead
    // of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mdrun::cli::main()
}
