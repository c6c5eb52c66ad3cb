//! The Python package (python/): its own suite (tests/python/test_package.py) against mdrun and
//! ASE's checks, `pip install` of the package, and the ASE example (systems/ase/).

mod common;
mod hosts;

use hosts::{library, prebuilt, repo};
use std::process::Command;

#[test]
fn the_package_passes_its_suite_against_mdrun_and_ase() {
    let Some(h) = hosts::find() else { return };
    let dir = common::scratch("python-suite");
    let out = Command::new(&h.python)
        .arg(repo("tests/python/test_package.py"))
        .env("PYTHONPATH", repo("python"))
        .env("MDRUN_LIBRARY", library())
        .env("MDRUN_BINARY", env!("CARGO_BIN_EXE_mdrun"))
        .env("MDRUN_REPO", repo(""))
        .env("MDRUN_SCRATCH", &dir)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success() && text.contains("all passed"), "the Python suite failed:\n{text}");
}

#[test]
fn pip_installs_the_package_and_the_ase_example_runs() {
    let Some(h) = hosts::find() else { return };
    let dir = common::scratch("python-install");
    let site = dir.join("site");
    let out = Command::new(&h.python)
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target"])
        .arg(&site)
        .arg(repo("python"))
        .env("MDRUN_PREBUILT", prebuilt())
        .output()
        .unwrap();
    assert!(out.status.success(), "pip install ./python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for shipped in ["mdrun/_lib/libmdrun.so", "mdrun/_lib/mdrun", "mdrun/py.typed"] {
        assert!(site.join(shipped).exists(), "the installed package lacks {shipped}");
    }
    // The installed package alone: no MDRUN_LIBRARY / MDRUN_BINARY.
    let example = dir.join("ase");
    std::fs::create_dir_all(&example).unwrap();
    let script = example.join("relax_and_md.py");
    let text = std::fs::read_to_string(repo("systems/ase/relax_and_md.py")).unwrap();
    std::fs::write(&script, text.replace("repo = here.parent.parent", &format!("repo = Path({:?})", repo("").display().to_string()))).unwrap();
    let out = Command::new(&h.python).arg(&script).arg("200").env("PYTHONPATH", &site).env_remove("MDRUN_LIBRARY").env_remove("MDRUN_BINARY").output().unwrap();
    let screen = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{screen}");
    assert!(out.status.success(), "the ASE example failed:\n{screen}");
    assert!(screen.contains("relaxed (BFGS)") && screen.contains("velocity Verlet 200 steps") && example.join("out/md.traj").exists());
}
