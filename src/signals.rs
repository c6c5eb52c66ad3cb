//! SIGINT (Ctrl-C), SIGTERM (what batch schedulers send before they kill a job) and SIGHUP (a
//! dropped ssh session) ask mdrun to stop at the next safe point: a run after the current step,
//! with a checkpoint; training after the current epoch, with the best model so far. A second
//! signal quits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process) and clears any earlier request. Until this is
/// called, signals keep their default action and [`requested`] stays false.
pub fn install() -> &'static AtomicBool {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // ctrlc's `termination` feature routes SIGTERM and SIGHUP here as well.
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            on_first_signal();
        });
    });
    REQUESTED.store(false, Ordering::SeqCst);
    &REQUESTED
}

/// Whether a signal asked to stop since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

fn on_first_signal() {
    use std::io::Write;
    let told = writeln!(std::io::stderr(), "\ninterrupted (signal): stopping at the next safe point and saving (a second signal quits at once)");
    // After SIGHUP the terminal may be gone: then send stdout and stderr to /dev/null, so
    // that no later println! fails (and panics) before the state is saved.
    #[cfg(unix)]
    if told.is_err() {
        // SAFETY: plain descriptor calls; fds 1 and 2 are replaced atomically by dup2.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 1);
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = told;
}

/// The error of a command that stopped on a signal after saving what it had: the message says
/// what was saved and how to go on. The command line exits with status 130 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);
