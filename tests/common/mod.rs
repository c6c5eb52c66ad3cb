//! Helpers shared by the integration tests: random systems and LJ setups.
#![allow(dead_code)]

use mdrun::cell::{Cell, Vec3};
use mdrun::ml::dataset::Structure;
use mdrun::ml::mcgm::McgmConfig;
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::Ctx;
use mdrun::neighbor::NeighborList;
use mdrun::potential::lj::LjPair;
use mdrun::potential::{ForceOutput, Potential, Want};
use mdrun::plan::Plan;
use mdrun::rng::philox4x32;
use std::path::{Path, PathBuf};
use mdrun::system::{Species, System};

/// A deterministic uniform generator for tests.
pub struct Uniform {
    seed: u32,
    counter: u32,
}

impl Uniform {
    pub fn new(seed: u32) -> Uniform {
        Uniform { seed, counter: 0 }
    }
    pub fn next(&mut self) -> f64 {
        self.counter += 1;
        philox4x32([self.counter, 0, 0, 0], [self.seed, 77])[0] as f64 / 4294967296.0
    }
}

/// `n` atoms placed at random in `cell` (fractional coordinates uniform), no two closer than
/// `min_dist` (minimum image over the periodic axes), species alternating over `names`.
pub fn random_system(n: usize, cell: Cell, names: &[&str], min_dist: f64, seed: u32) -> System {
    let mut rng = Uniform::new(seed);
    let mut positions: Vec<Vec3> = Vec::new();
    let mut attempts = 0;
    while positions.len() < n {
        attempts += 1;
        assert!(attempts < 1_000_000, "cannot place {n} atoms");
        let s = [rng.next(), rng.next(), rng.next()];
        let r = cell.cartesian(s);
        let ok = positions
            .iter()
            .all(|p| min_image_distance(&cell, *p, r) >= min_dist);
        if ok {
            positions.push(r);
        }
    }
    let species = names
        .iter()
        .map(|&name| Species {
            name: name.to_string(),
            mass: 1.0 + name.len() as f64,
        })
        .collect();
    let types = (0..n).map(|i| (i % names.len()) as u32).collect();
    System {
        species,
        types,
        velocities: vec![[0.0; 3]; n],
        images: vec![[0; 3]; n],
        positions,
        cell,
    }
}

/// Smallest distance between a and b over images within two cells along periodic axes.
pub fn min_image_distance(cell: &Cell, a: Vec3, b: Vec3) -> f64 {
    let pbc = cell.pbc();
    let range = |k: usize| if pbc[k] { -2..=2 } else { 0..=0 };
    let mut best = f64::INFINITY;
    for i in range(0) {
        for j in range(1) {
            for k in range(2) {
                let s = cell.shift_vector([i, j, k]);
                let d = [b[0] + s[0] - a[0], b[1] + s[1] - a[1], b[2] + s[2] - a[2]];
                best = best.min((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt());
            }
        }
    }
    best
}

/// The LJ table for species with (epsilon, sigma) each, Lorentz-Berthelot mixing, one cutoff.
pub fn lj_mixed(params: &[(f64, f64)], cutoff: f64) -> Vec<LjPair> {
    let mut pairs = Vec::new();
    for a in params {
        for b in params {
            pairs.push(LjPair {
                epsilon: (a.0 * b.0).sqrt(),
                sigma: 0.5 * (a.1 + b.1),
                cutoff,
            });
        }
    }
    pairs
}

/// Energy, forces and virial of `system` (wrapped first) with a fresh neighbour list.
pub fn evaluate(system: &System, lj: &mut dyn Potential, skin: f64) -> ForceOutput {
    let mut s = system.clone();
    s.wrap_positions();
    let mut list = NeighborList::new(lj.list_kind(), lj.cutoff(), skin);
    list.build(&s.positions, &s.cell).expect("list builds");
    let mut out = ForceOutput::default();
    lj.compute(&s, &list, Want::ALL, &mut out);
    out
}

/// A random labelled structure for the model tests: species cycle through `elements`
/// (symbol, atomic number), no two atoms closer than 1 Å.
pub fn labelled_structure(cell: Cell, n: usize, elements: &[(&str, u32)], seed: u32) -> Structure {
    let names: Vec<&str> = elements.iter().map(|e| e.0).collect();
    let s = random_system(n, cell.clone(), &names, 1.0, seed);
    let numbers = s.types.iter().map(|&t| elements[t as usize].1).collect();
    Structure { numbers, positions: s.positions, cell, energy: 0.0, forces: vec![], kind: "test".into(), charge: 0.0, virial: None }
}

/// A small untrained model (F = 16, 2 blocks, 10 RBF, 4 Å) over H, C, N, O.
pub fn small_model(backbone: &str, mcgm: Option<McgmConfig>, seed: u64, ctx: &Ctx) -> Model {
    Model::new(small_config(backbone, mcgm), small_normalization(), seed, ctx)
}

/// `small_model`'s reference energies and scale.
pub fn small_normalization() -> Normalization {
    Normalization { reference_energies: vec![-0.5, 0.25, -0.1, 0.3], energy_scale: 0.7, training_min_distance: 0.0, ..Default::default() }
}

/// `small_model`'s architecture.
pub fn small_config(backbone: &str, mcgm: Option<McgmConfig>) -> ModelConfig {
    ModelConfig {
        backbone: backbone.into(),
        features: 16,
        blocks: 2,
        n_rbf: 10,
        cutoff: 4.0,
        block_cutoffs: vec![],
        species: vec![1, 6, 7, 8],
        mcgm,
        long_range: None,
    }
}

/// Rows of a thermo log (comments and the header skipped), as numbers.
pub fn thermo_rows(path: &std::path::Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim_start().starts_with("Step") && !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect()
}

/// The whitespace-separated numbers of the first line of `text` that starts with `step`.
pub fn row_at_step(text: &str, step: &str) -> Vec<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(step))
        .unwrap_or_else(|| panic!("no row for step {step}"))
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

/// A fresh scratch folder for this test process. The first call also removes the folders of
/// earlier test processes that have ended (a suite leaves some hundred MB otherwise).
pub fn scratch(name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let pid = file_name.to_str().and_then(|n| n.strip_prefix("mdrun-test-")).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = std::env::temp_dir().join(format!("mdrun-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn plan_in(dir: &Path, toml: &str) -> Plan {
    let path = dir.join("system.toml");
    std::fs::write(&path, toml).unwrap();
    Plan::from_file(&path, None).unwrap_or_else(|e| panic!("{e}"))
}


/// LAMMPS's bench system in mdrun units (sigma = 1 Å, epsilon = 1 eV, m = 1 amu).
pub fn lj_liquid(repeat: usize, steps: u64, integrator: &str) -> String {
    format!(
        r#"
[structure]
lattice = "fcc"
density = 0.8442
repeat = [{repeat}, {repeat}, {repeat}]
element = "LJ"
[masses]
LJ = 1.0
[velocities]
source = "maxwell-boltzmann"
temperature = "16710.4872117 K"
seed = 87287
[potential]
type = "lj"
cutoff = 2.5
shift = true
[potential.species.LJ]
epsilon = 1.0
sigma = 1.0
[integrator]
{integrator}
timestep = "0.050902525 fs"
[run]
steps = {steps}
[neighbor]
skin = 0.3
[output]
thermo = 100
"#
    )
}

/// The largest |central difference - force| over the components of `atoms`, relative to the
/// largest |force| of the structure: how far `forces` are from -dE/dr of `energy` at step `h`.
#[allow(dead_code)]
pub fn worst_force_error(s: &Structure, forces: &[[f64; 3]], atoms: &[usize], h: f64, energy: impl Fn(&Structure) -> f64) -> f64 {
    let scale = forces.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut worst: f64 = 0.0;
    for &i in atoms {
        for k in 0..3 {
            let (mut plus, mut minus) = (s.clone(), s.clone());
            plus.positions[i][k] += h;
            minus.positions[i][k] -= h;
            worst = worst.max((-(energy(&plus) - energy(&minus)) / (2.0 * h) - forces[i][k]).abs() / scale);
        }
    }
    worst
}

/// (relative change of E from start to end, largest relative deviation from the start).
pub fn conservation(energies: &[f64]) -> (f64, f64) {
    let e0 = energies[0];
    let end = (energies[energies.len() - 1] - e0) / e0.abs();
    let max = energies.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max) / e0.abs();
    (end, max)
}

/// A GPU context (lavapipe counts), or None with a loud SKIPPED when wgpu finds no adapter at
/// all; with MDRUN_REQUIRE_GPU set (CI) a missing adapter is a failure.
pub fn gpu() -> Option<mdrun::gpu::GpuContext> {
    match mdrun::gpu::GpuContext::open(false).expect("wgpu opens") {
        Some(ctx) => Some(ctx),
        None if std::env::var_os("MDRUN_REQUIRE_GPU").is_some() => {
            panic!("MDRUN_REQUIRE_GPU is set but wgpu finds no adapter (install mesa-vulkan-drivers and libvulkan1)")
        }
        None => {
            eprintln!("\n*** SKIPPED: no GPU adapter (not even lavapipe); GPU tests did not run ***\n");
            None
        }
    }
}

/// The platforms of this machine: the CPU, and the GPU platform where wgpu finds an adapter
/// (where MDRUN_REQUIRE_GPU is set, `gpu()` fails instead of leaving it out).
#[allow(dead_code)]
pub fn platforms() -> Vec<mdrun::plan::Platform> {
    let mut p = vec![mdrun::plan::Platform::Cpu];
    if gpu().is_some() {
        p.push(mdrun::plan::Platform::Gpu);
    }
    p
}

/// Options of a quiet two-thread run on `platform`.
#[allow(dead_code)]
pub fn on(platform: mdrun::plan::Platform) -> mdrun::run::RunOptions {
    mdrun::run::RunOptions { quiet: true, threads: Some(2), platform: Some(platform), ..Default::default() }
}

/// One NVE run of a structure (velocities at 300 K, seed 4, one thread, thermo every 20 steps)
/// with a shipped model, through the `mdrun` binary.
pub struct ModelNve {
    /// Thermo rows: step, time, T, PE, KE, E, ...
    pub rows: Vec<Vec<f64>>,
    /// The run summary's fitted drift, eV/atom/ps.
    pub drift: f64,
    pub stdout: String,
    pub stderr: String,
}

impl ModelNve {
    /// Runs `potentials/<model>` on the quickstart's 8-water box for `steps` steps of
    /// `timestep_fs` on `platform` (None: the default choice) with the given neighbour skin
    /// (None: the default).
    pub fn water(mdrun: &str, model: &str, platform: Option<&str>, steps: u64, timestep_fs: f64, skin: Option<&str>) -> ModelNve {
        ModelNve::run(mdrun, "systems/quickstart/water8.extxyz", model, platform, steps, timestep_fs, skin)
    }

    /// The same on `structure` (a path in the repository).
    pub fn run(mdrun: &str, structure: &str, model: &str, platform: Option<&str>, steps: u64, timestep_fs: f64, skin: Option<&str>) -> ModelNve {
        ModelNve::run_with(mdrun, structure, model, platform, steps, timestep_fs, skin, "")
    }

    /// The same with more lines in `[potential]` (`gpu_tables = "f16"`).
    #[allow(clippy::too_many_arguments)]
    pub fn run_with(mdrun: &str, structure: &str, model: &str, platform: Option<&str>, steps: u64, timestep_fs: f64, skin: Option<&str>, potential_lines: &str) -> ModelNve {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let variant = if potential_lines.is_empty() { String::new() } else { format!("-{:x}", potential_lines.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))) };
        let dir = scratch(&format!("nve-{model}-{}{variant}", platform.unwrap_or("default")));
        let platform_line = platform.map(|p| format!("platform = \"{p}\"\n")).unwrap_or_default();
        let neighbor = skin.map(|s| format!("[neighbor]\nskin = \"{s}\"\n")).unwrap_or_default();
        let toml = format!(
            "[structure]\nfile = \"{}\"\n[velocities]\nsource = \"maxwell-boltzmann\"\ntemperature = \"300 K\"\nseed = 4\n[potential]\ntype = \"mcgm\"\nmodel = \"{}\"\n{potential_lines}[integrator]\ntype = \"verlet\"\ntimestep = \"{timestep_fs} fs\"\n[run]\nsteps = {steps}\n{platform_line}{neighbor}[output]\nthermo = 20\nlog = \"thermo.log\"\ncheckpoint = \"final.chk\"\n",
            repo.join(structure).display(),
            repo.join("potentials").join(model).display()
        );
        std::fs::write(dir.join("system.toml"), toml).unwrap();
        let out = std::process::Command::new(mdrun).arg(dir.join("system.toml")).args(["--threads", "1", "--summary"]).arg(dir.join("summary.json")).output().unwrap();
        assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if let Some(p) = platform {
            assert!(stdout.contains(&format!("platform: {p}")), "{model}: not run on {p}:\n{stdout}");
        }
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        ModelNve { rows: thermo_rows(&dir.join("thermo.log")), drift: summary["energy_drift_ev_per_atom_per_ps"].as_f64().unwrap(), stdout, stderr }
    }

    /// The largest |E - E0| (eV) and the mean kinetic energy (eV) over the thermo rows.
    pub fn deviation_and_kinetic(&self) -> (f64, f64) {
        let e0 = self.rows[0][5];
        let max_dev = self.rows.iter().map(|r| (r[5] - e0).abs()).fold(0.0, f64::max);
        (max_dev, self.rows.iter().map(|r| r[4]).sum::<f64>() / self.rows.len() as f64)
    }
}

/// Every backbone and MCGM setting the inference paths must agree on, for models of the given
/// species (F = 32, 3 blocks, 20 Gaussians, 5 Å): SchNet and PaiNN, each alone, with MCGM hard
/// (3 levels, r = 2), with MCGM soft (4 centroids), and with per-block cutoffs.
pub fn backbone_settings(species: &[u32]) -> Vec<(&'static str, ModelConfig)> {
    use mdrun::ml::mcgm::Assign;
    let config = |backbone: &str, mcgm: Option<McgmConfig>, block_cutoffs: Vec<f64>| ModelConfig {
        backbone: backbone.into(),
        features: 32,
        blocks: 3,
        n_rbf: 20,
        cutoff: 5.0,
        block_cutoffs,
        species: species.to_vec(),
        mcgm,
        long_range: None,
    };
    let hard = || Some(McgmConfig { levels: 3, ratio: 2, assign: Assign::Hard, clusters: 4, distance_widths: Vec::new() });
    let soft = || Some(McgmConfig { levels: 2, ratio: 2, assign: Assign::Soft, clusters: 4, distance_widths: Vec::new() });
    vec![
        ("schnet", config("schnet", None, vec![])),
        ("schnet + MCGM hard (3 levels, r = 2)", config("schnet", hard(), vec![])),
        ("schnet + MCGM soft (4 centroids)", config("schnet", soft(), vec![])),
        ("schnet, block cutoffs 3/5/4 Å", config("schnet", None, vec![3.0, 5.0, 4.0])),
        ("painn", config("painn", None, vec![])),
        ("painn + MCGM hard (3 levels, r = 2)", config("painn", hard(), vec![])),
        ("painn + MCGM soft (4 centroids)", config("painn", soft(), vec![])),
        ("painn, block cutoffs 3/5/4 Å", config("painn", None, vec![3.0, 5.0, 4.0])),
    ]
}

/// `backbone_settings` with the long-range parts (issue 19): learned charges, one per
/// backbone, SchNet's with soft MCGM under them (the charges read the MCGM-refined features);
/// and the distance-aware soft MCGM (open structures only), one per backbone.
pub fn long_range_settings(species: &[u32]) -> Vec<(&'static str, ModelConfig)> {
    let charges = Some(mdrun::ml::model::LongRange { charge_width: 1.0, charge_embedding: true, equilibration: false });
    let equilibrated = Some(mdrun::ml::model::LongRange { equilibration: true, ..charges.clone().expect("charges") });
    let settings = backbone_settings(species);
    let pick = |name: &str| settings.iter().find(|(n, _)| *n == name).expect("a setting").1.clone();
    let distance_aware = |name: &str| {
        let mut config = pick(name);
        config.mcgm.as_mut().expect("a soft level").distance_widths = mdrun::ml::mcgm::DISTANCE_WIDTHS.to_vec();
        config
    };
    vec![
        ("schnet + MCGM soft + charges", ModelConfig { long_range: charges.clone(), ..pick("schnet + MCGM soft (4 centroids)") }),
        ("painn + charges", ModelConfig { long_range: charges, ..pick("painn") }),
        ("schnet + charges by Qeq", ModelConfig { long_range: equilibrated, ..pick("schnet") }),
        ("schnet + MCGM soft distance-aware", distance_aware("schnet + MCGM soft (4 centroids)")),
        ("painn + MCGM soft distance-aware", distance_aware("painn + MCGM soft (4 centroids)")),
    ]
}
