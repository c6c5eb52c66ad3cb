//! `[minimize]` in system.toml: FIRE, CG and steepest descent relax a disturbed fcc crystal to
//! the lattice's own energy; relaxing the cell with them finds the lattice constant that an
//! independent scan of the lattice energy E(a) puts at its minimum (iso from a cubic start,
//! aniso from a box stretched differently along each axis); and the learned water potential's
//! box relaxes with its cell to a volume that is a minimum of its energy.
//! (`minimize` in decks, against LAMMPS's own rows, is in tests/lammps_decks.rs.)

mod common;

use common::{plan_in, scratch};
use mdrun::plan::Platform;
use mdrun::run::{RunOptions, run};
use std::fmt::Write;
use std::path::Path;

fn cpu() -> RunOptions {
    RunOptions { quiet: true, threads: Some(2), platform: Some(Platform::Cpu), ..Default::default() }
}

/// An fcc argon crystal of 4 x 4 x 4 cells with lattice constants `a` (Å) along x, y, z, each
/// atom displaced by up to `disturb` Å along each axis (a fixed, reproducible pattern).
fn fcc_extxyz(a: [f64; 3], disturb: f64) -> String {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let mut atoms = Vec::new();
    let mut u = common::Uniform::new(12345);
    for i in 0..4 {
        for j in 0..4 {
            for k in 0..4 {
                for b in basis {
                    let cell = [i as f64, j as f64, k as f64];
                    atoms.push([0, 1, 2].map(|d| (cell[d] + b[d]) * a[d] + disturb * (2.0 * u.next() - 1.0)));
                }
            }
        }
    }
    let mut s = format!("{}\nLattice=\"{} 0 0 0 {} 0 0 0 {}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n", atoms.len(), 4.0 * a[0], 4.0 * a[1], 4.0 * a[2]);
    for x in atoms {
        let _ = writeln!(s, "Ar {:.12} {:.12} {:.12}", x[0], x[1], x[2]);
    }
    s
}

/// system.toml for `structure.extxyz` in `dir`: LJ argon (shifted at 8.5 Å, so E is continuous
/// and the virial pressure is exactly -dE/dV), no steps, and `minimize` as given.
fn relax_toml(minimize: &str) -> String {
    format!(
        r#"
[structure]
file = "structure.extxyz"
[potential]
type = "lj"
cutoff = "8.5 A"
shift = true
[potential.species.Ar]
epsilon = "0.0104 eV"
sigma = "3.4 A"
[integrator]
type = "verlet"
timestep = "2 fs"
[run]
steps = 0
[neighbor]
skin = "1.0 A"
{minimize}
"#
    )
}

/// The potential energy (eV) of `structure` after the plan's relaxation, and its final volume.
fn relaxed(dir: &Path, structure: &str, minimize: &str) -> (f64, f64) {
    std::fs::write(dir.join("structure.extxyz"), structure).unwrap();
    let plan = plan_in(dir, &relax_toml(minimize));
    let summary = run(&plan, &cpu()).unwrap();
    let chk = mdrun::io::checkpoint::Checkpoint::read(&dir.join("checkpoint.chk")).unwrap();
    (summary.final_potential_energy_ev, chk.system.cell.volume())
}

#[test]
fn fire_cg_and_sd_relax_a_disturbed_crystal_to_the_lattice_energy() {
    let a = 5.26;
    let dir = scratch("relax-lattice");
    let (lattice, _) = relaxed(&dir, &fcc_extxyz([a; 3], 0.0), "");
    for method in ["fire", "cg", "sd"] {
        let dir = scratch(&format!("relax-{method}"));
        let (start, _) = relaxed(&dir, &fcc_extxyz([a; 3], 0.25), "");
        let (end, _) = relaxed(&dir, &fcc_extxyz([a; 3], 0.25), &format!("[minimize]\nmethod = \"{method}\"\nftol = \"1e-6 eV/A\"\nmax_iterations = 20000"));
        println!("{method}: {start:.8} eV disturbed -> {end:.10} eV relaxed; the lattice {lattice:.10} eV");
        assert!(start > lattice + 0.1, "the disturbance should cost energy");
        assert!((end - lattice).abs() < 1e-8 * lattice.abs(), "{method}: relaxed to {end} eV, the lattice has {lattice} eV");
    }
}

/// E(a) of the perfect lattice, minimised by golden-section search: the equilibrium lattice
/// constant of this potential at zero pressure, found without any pressure or cell move.
fn lattice_minimum() -> f64 {
    let dir = scratch("relax-scan");
    let energy = |a: f64| relaxed(&dir, &fcc_extxyz([a; 3], 0.0), "").0;
    let (mut lo, mut hi) = (5.0, 5.6);
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fc, mut fd) = (energy(c), energy(d));
    while hi - lo > 1e-6 {
        if fc < fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - g * (hi - lo);
            fc = energy(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + g * (hi - lo);
            fd = energy(d);
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn cell_relaxation_finds_the_lattice_constant_of_the_energy_minimum() {
    let a_star = lattice_minimum();
    // iso from a cubic box 4 % too large; aniso from one stretched differently along each axis.
    for (label, start, cell) in [("iso", [1.04 * a_star; 3], "iso"), ("aniso", [1.03 * a_star, 0.98 * a_star, 1.01 * a_star], "aniso")] {
        let dir = scratch(&format!("relax-cell-{label}"));
        let minimize = format!("[minimize]\nmethod = \"fire\"\nftol = \"1e-6 eV/A\"\ncell = \"{cell}\"\npressure = \"0 bar\"\npressure_tolerance = \"0.1 bar\"");
        std::fs::write(dir.join("structure.extxyz"), fcc_extxyz(start, 0.05)).unwrap();
        let plan = plan_in(&dir, &relax_toml(&minimize));
        run(&plan, &cpu()).unwrap();
        let chk = mdrun::io::checkpoint::Checkpoint::read(&dir.join("checkpoint.chk")).unwrap();
        let lengths = chk.system.cell.lengths().map(|l| l / 4.0);
        println!("{label}: relaxed lattice constants {:.6} {:.6} {:.6} A; E(a) is least at {a_star:.6} A", lengths[0], lengths[1], lengths[2]);
        for l in lengths {
            assert!((l / a_star - 1.0).abs() < 2e-4, "{label}: lattice constant {l} vs {a_star}");
        }
    }
}

/// The shipped water model's 8-molecule box relaxed with its cell (iso, 0 bar): the pressure
/// ends within its tolerance, and the volume it ends at is a minimum of the model's energy
/// over volumes: the box made 1 % smaller or larger, its atoms relaxed again at that fixed
/// cell, has a higher energy both ways. (A disordered molecular box has many local minima, so
/// other starting points may end in other ones; each must be a minimum in volume.)
#[test]
fn learned_water_box_relaxes_with_its_cell_to_its_own_density() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("potentials/water-schnet-mcgm-soft");
    let toml = |minimize: &str| {
        format!(
            "[structure]\nfile = \"water.extxyz\"\n[potential]\ntype = \"ml\"\nmodel = \"{}\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"0.5 fs\"\n[run]\nsteps = 0\n[neighbor]\nskin = \"1.0 A\"\n[minimize]\nmethod = \"fire\"\nftol = \"1e-3 eV/A\"\n{minimize}\n",
            model.display()
        )
    };
    let dir = scratch("relax-water");
    std::fs::copy(root.join("systems/quickstart/water8.extxyz"), dir.join("water.extxyz")).unwrap();
    let plan = plan_in(&dir, &toml("cell = \"iso\"\npressure = \"0 bar\"\npressure_tolerance = \"20 bar\""));
    let mass: f64 = plan.system.masses().iter().sum();
    let relaxed = run(&plan, &cpu()).unwrap();
    let chk = mdrun::io::checkpoint::Checkpoint::read(&dir.join("checkpoint.chk")).unwrap();
    let volume = chk.system.cell.volume();
    let density = mass / volume / 0.602214076;
    // The log's pressure at step 0 (the atoms are at rest: the virial's).
    let p = common::thermo_rows(&dir.join("thermo.log"))[0][6];
    println!("water: relaxed to {density:.4} g/cm3, E {:.6} eV, pressure {p:.2} bar", relaxed.final_potential_energy_ev);
    assert!(p.abs() <= 20.0 + 1e-6, "pressure {p} bar after relaxing to 0 bar");
    assert!((0.5..2.0).contains(&density), "implausible density {density}");
    for scale in [0.99f64, 1.01] {
        let sub = scratch(&format!("relax-water-{scale}"));
        std::fs::write(sub.join("water.extxyz"), frame_extxyz(&chk.system, scale.cbrt())).unwrap();
        let e = run(&plan_in(&sub, &toml("")), &cpu()).unwrap().final_potential_energy_ev;
        println!("water: volume x {scale}: E {e:.6} eV ({:+.6} eV)", e - relaxed.final_potential_energy_ev);
        assert!(e > relaxed.final_potential_energy_ev, "volume x {scale} relaxes lower ({e} eV) than the relaxed cell ({} eV)", relaxed.final_potential_energy_ev);
    }
}

/// A system as an extxyz frame, its cell and every position times `s`.
fn frame_extxyz(system: &mdrun::system::System, s: f64) -> String {
    let v = system.cell.vectors();
    let lattice: Vec<String> = v.iter().flat_map(|r| r.iter().map(|x| format!("{:.12}", x * s))).collect();
    let mut out = format!("{}\nLattice=\"{}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n", system.len(), lattice.join(" "));
    for (i, x) in system.positions.iter().enumerate() {
        let _ = writeln!(out, "{} {:.12} {:.12} {:.12}", system.species_name(i), x[0] * s, x[1] * s, x[2] * s);
    }
    out
}

/// Bad `[minimize]` settings name their key.
#[test]
fn bad_minimize_settings_name_the_key() {
    let dir = scratch("relax-bad");
    std::fs::write(dir.join("structure.extxyz"), fcc_extxyz([5.26; 3], 0.0)).unwrap();
    for (minimize, key, what) in [
        ("[minimize]\nmethod = \"newton\"", "[minimize] method", "unknown method"),
        ("[minimize]\nftol = 0\netol = 0", "[minimize]", "both zero"),
        ("[minimize]\ncell = \"tri\"", "[minimize] cell", "not supported yet"),
        ("[minimize]\npressure = \"1 bar\"", "[minimize] pressure", "needs cell"),
        ("[minimize]\nmax_iterations = 0", "[minimize] max_iterations", "must be positive"),
    ] {
        std::fs::write(dir.join("system.toml"), relax_toml(minimize)).unwrap();
        let err = mdrun::plan::Plan::from_file(&dir.join("system.toml"), None).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(what), "{minimize}: {err}");
    }
}
