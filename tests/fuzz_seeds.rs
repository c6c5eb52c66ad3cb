//! Replays every seed and every finding of the readers' fuzz targets (`fuzz/seeds/<target>/`)
//! through the same entry point `cargo fuzz` drives: none may panic or hang. A finding of the fuzz
//! script (`benches/fuzz_readers.sh`) is added there as a file, and so becomes a test.

use std::path::Path;

#[test]
fn every_seed_and_finding_reads_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut failures = Vec::new();
    for target in mdrun::fuzzing::TARGETS {
        let mut files: Vec<_> = std::fs::read_dir(root.join(target))
            .unwrap_or_else(|e| panic!("fuzz/seeds/{target}: {e}"))
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "fuzz/seeds/{target} holds no seed");
        let mut accepted = 0;
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            // On a thread of its own, so that a hang is a failure and not a stuck test.
            let (done, wait) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = done.send(std::panic::catch_unwind(|| mdrun::fuzzing::read(target, &bytes)));
            });
            match wait.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(Ok(ok)) => accepted += ok as usize,
                Ok(Err(_)) => failures.push(format!("{target}: {} panicked", file.display())),
                Err(_) => failures.push(format!("{target}: {} did not finish in 60 s", file.display())),
            }
        }
        println!("{target}: {} seeds, {accepted} read as valid", files.len());
        // Each target's corpus starts from real files: at least one must be read as valid,
        // or the fuzzer would only ever see the entry point's first error.
        assert!(accepted > 0, "{target}: no seed is a valid input");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
