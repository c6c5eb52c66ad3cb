//! benches/gpu_check.sh, the device check, in its smoke mode on whatever adapter wgpu finds
//! (lavapipe in CI), so that the script a lent GPU runs first never rots: every table row has
//! numbers (LJ, the water models, learned charges), and the kernel profiles are written.

mod common;

#[test]
fn the_device_check_runs_in_smoke_mode() {
    if common::gpu().is_none() {
        return;
    }
    let out = common::scratch("gpu-check");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = std::process::Command::new("bash")
        .arg(root.join("benches/gpu_check.sh"))
        .arg("--smoke")
        .env("MDRUN", env!("CARGO_BIN_EXE_mdrun"))
        .env("OUT", &out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}\n{stderr}");
    assert!(run.status.success(), "{stderr}");
    let report = std::fs::read_to_string(out.join("gpu_check.md")).unwrap();
    let row = |first: &str| report.lines().find(|l| l.starts_with(&format!("| {first} |"))).unwrap_or_else(|| panic!("no row for {first} atoms:\n{report}")).to_string();
    // LJ at 4,000 atoms, the water models at 24: every mdrun column a number.
    let lj = row("4000");
    let water = row("24");
    let numbers = |line: &str, columns: &[usize]| columns.iter().all(|&k| line.split('|').nth(k + 1).is_some_and(|c| c.trim().parse::<f64>().is_ok_and(|v| v > 0.0)));
    assert!(numbers(&lj, &[2, 3]), "LJ row: {lj}");
    assert!(numbers(&water, &[2, 3, 4, 5, 6, 7, 11, 12, 13, 14]), "water row: {water}");
    // Learned charges on the 72-atom ion-pair lattice by both methods, with the local model
    // beside them.
    let charges = row("72");
    assert!(numbers(&charges, &[2, 3, 4, 5, 6]), "learned charges row: {charges}");
    // The kernel profiles, and the model's with the dense layers in the other tiles (on
    // lavapipe, workgroup-memory tiles: ml_dense_tiled).
    for name in ["lj", "water-schnet", "water-painn", "water-schnet-workgroup-dense", "water-painn-workgroup-dense"] {
        let kernels = std::fs::read_to_string(out.join(format!("kernels-{name}.txt"))).unwrap();
        assert!(kernels.lines().count() > 2, "kernels-{name}.txt: {kernels}");
        // The dispatches a step, from the profile's counts (launches and barriers are what a
        // small system's step costs on a GPU).
        let dispatches = kernels.lines().next().and_then(|l| l.strip_suffix(" dispatches a step")?.rsplit(' ').next()?.parse::<f64>().ok());
        assert!(dispatches.is_some_and(|d| d >= 1.0), "kernels-{name}.txt: {kernels}");
        if name.ends_with("workgroup-dense") {
            assert!(kernels.contains("/ ml_dense_tiled"), "kernels-{name}.txt: {kernels}");
        }
    }
}
