//! `mdrun analyze` on trajectories whose answers are known: an ideal gas (g = 1), a perfect fcc
//! lattice (shells and coordination numbers), random walkers crossing the cell many times (the
//! diffusion coefficient they were built with), harmonic oscillators (their frequency), a thermo
//! log with a known drift; plus a truncated file that must be named with its frame.

mod common;

use common::{Uniform, scratch};
use std::io::Write;
use std::path::{Path, PathBuf};

type Frame = (Vec<[f64; 3]>, Option<Vec<[f64; 3]>>, f64);

/// Extended XYZ as mdrun writes it: species, positions, optional velo column, Lattice, time.
fn write_xyz(path: &Path, species: &str, box_len: f64, frames: &[Frame]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (pos, vel, time) in frames {
        writeln!(out, "{}", pos.len()).unwrap();
        let props = if vel.is_some() { "species:S:1:pos:R:3:velo:R:3" } else { "species:S:1:pos:R:3" };
        writeln!(out, "Properties={props} Lattice=\"{box_len} 0 0 0 {box_len} 0 0 0 {box_len}\" time={time}").unwrap();
        for (i, p) in pos.iter().enumerate() {
            write!(out, "{species} {:.10} {:.10} {:.10}", p[0], p[1], p[2]).unwrap();
            if let Some(v) = vel {
                write!(out, " {:.10} {:.10} {:.10}", v[i][0], v[i][1], v[i][2]).unwrap();
            }
            writeln!(out).unwrap();
        }
    }
}

fn analyze(args: &[&str]) -> (String, serde_json::Value, PathBuf) {
    let out_dir = PathBuf::from(args[1]).parent().unwrap().join("analysis");
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).args(args).arg("--quiet").output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    if !run.status.success() {
        return (stderr, serde_json::Value::Null, out_dir);
    }
    let summary = serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    (stderr, summary, out_dir)
}

fn csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows = lines.map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    (header, rows)
}

fn gaussian(rng: &mut Uniform) -> f64 {
    let (u, v) = (rng.next().max(1e-300), rng.next());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[test]
fn the_ideal_gas_has_g_equal_to_one_within_its_error() {
    let dir = scratch("an-ideal");
    let (n, l, frames) = (2000, 30.0, 20);
    let mut rng = Uniform::new(3);
    let data: Vec<Frame> = (0..frames)
        .map(|f| ((0..n).map(|_| [rng.next() * l, rng.next() * l, rng.next() * l]).collect(), None, f as f64))
        .collect();
    let traj = dir.join("gas.xyz");
    write_xyz(&traj, "Ar", l, &data);
    let (err, _, out) = analyze(&["analyze", traj.to_str().unwrap(), "--rdf", "--rmax", "10", "--bins", "50", "--no-plots"]);
    assert!(err.is_empty() || !err.contains("error"), "{err}");
    let (header, rows) = csv(&out.join("rdf.csv"));
    assert_eq!(header, ["r", "g", "n"]);
    let mut worst: f64 = 0.0;
    for row in rows.iter().filter(|r| r[0] > 1.0) {
        let (r, g) = (row[0], row[1]);
        // Expected ordered pairs in the shell over all frames; Poisson error of g.
        let dr = 10.0 / 50.0;
        let expected = frames as f64 * n as f64 * (n - 1) as f64 / (l * l * l) * 4.0 * std::f64::consts::PI * r * r * dr;
        let sigma = (2.0 / expected).sqrt();
        worst = worst.max((g - 1.0).abs() / sigma);
    }
    println!("ideal gas: largest |g - 1| = {worst:.2} standard errors");
    assert!(worst < 4.5, "g(r) of an ideal gas departs from 1 by {worst:.1} sigma");
}

#[test]
fn a_perfect_fcc_lattice_has_its_shells_and_coordination_numbers() {
    let dir = scratch("an-fcc");
    let a = 4.0;
    let cells = 5;
    let mut pos = Vec::new();
    for i in 0..cells {
        for j in 0..cells {
            for k in 0..cells {
                for b in [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]] {
                    pos.push([(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a]);
                }
            }
        }
    }
    let traj = dir.join("fcc.xyz");
    write_xyz(&traj, "Cu", a * cells as f64, &[(pos, None, 0.0)]);
    let (err, summary, out) = analyze(&["analyze", traj.to_str().unwrap(), "--rdf", "--rmax", "6.5", "--bins", "650", "--no-plots"]);
    assert!(summary.is_object(), "{err}");
    let (_, rows) = csv(&out.join("rdf.csv"));
    // Shells at a/√2, a, a√(3/2), a√2 with 12, 6, 24, 12 neighbours: the running count just past
    // each shell is 12, 18, 42, 54, and g is zero between shells.
    for (shell, cumulative) in [(a / 2f64.sqrt(), 12.0), (a, 18.0), (a * 1.5f64.sqrt(), 42.0), (a * 2f64.sqrt(), 54.0)] {
        let past = rows.iter().find(|r| r[0] > shell + 0.02).unwrap();
        assert!((past[2] - cumulative).abs() < 1e-9, "n({:.3}) = {}, expected {cumulative}", past[0], past[2]);
        // The shell falls in the bin that holds it (at 4.000 Å: on a bin edge, the upper bin).
        let peak = rows.iter().filter(|r| (r[0] - shell).abs() < 0.015).map(|r| r[1]).fold(0.0, f64::max);
        assert!(peak > 10.0, "no peak at {shell:.3} Å (g = {peak})");
    }
    let between = rows.iter().find(|r| (r[0] - 3.4).abs() < 0.006).unwrap();
    assert_eq!(between[1], 0.0);
    assert!((summary["rdf"]["all"]["coordination"].as_f64().unwrap() - 12.0).abs() < 1e-9);
}

#[test]
fn random_walkers_give_the_diffusion_coefficient_they_were_built_with() {
    let dir = scratch("an-walk");
    // 1000 walkers, Gaussian steps of sigma = 0.3 Å per axis every 0.1 ps: D = sigma² / (2 dt)
    // = 0.45 Å²/ps. In a 6 Å cell they cross it about 30 times each over 1000 frames. Fitting
    // lags of 1 to 10 ps (about 1e4 independent windows) pins D to about 1 %.
    let (n, frames, l, sigma, dt) = (1000, 1000, 6.0, 0.3, 0.1);
    let mut rng = Uniform::new(9);
    let mut x: Vec<[f64; 3]> = (0..n).map(|_| [rng.next() * l, rng.next() * l, rng.next() * l]).collect();
    let mut data = Vec::new();
    for f in 0..frames {
        let wrapped = x.iter().map(|p| p.map(|v| v.rem_euclid(l))).collect();
        data.push((wrapped, None, f as f64 * dt));
        for p in x.iter_mut() {
            for v in p.iter_mut() {
                *v += sigma * gaussian(&mut rng);
            }
        }
    }
    let traj = dir.join("walk.xyz");
    write_xyz(&traj, "X", l, &data);
    let (err, summary, out) = analyze(&["analyze", traj.to_str().unwrap(), "--msd", "--fit", "0.01:0.1"]);
    assert!(summary.is_object(), "{err}");
    let d = summary["diffusion_a2_per_ps"]["X"]["value"].as_f64().unwrap();
    let expected = sigma * sigma / (2.0 * dt);
    println!("random walk: D = {d:.4} Å²/ps, built with {expected:.4}");
    assert!((d - expected).abs() < 0.03 * expected, "D = {d}, expected {expected}");
    // The MSD of a free walk is 6 D t at every lag (the unwrapping lost no crossing).
    let (header, rows) = csv(&out.join("msd.csv"));
    assert_eq!(header, ["t_ps", "msd_a2"]);
    let at = |t: f64| rows.iter().find(|r| (r[0] - t).abs() < 1e-9).unwrap()[1];
    assert!((at(10.0) / (6.0 * expected * 10.0) - 1.0).abs() < 0.05, "MSD(10 ps) = {}", at(10.0));
    assert!(out.join("msd.png").exists());
}

#[test]
fn harmonic_oscillators_show_their_frequency_in_the_vacf_and_spectrum() {
    let dir = scratch("an-vacf");
    let (n, frames, dt, nu) = (50, 2000, 0.01, 2.0);
    let omega = std::f64::consts::TAU * nu;
    let mut rng = Uniform::new(4);
    let atoms: Vec<([f64; 3], [f64; 3], f64)> = (0..n)
        .map(|_| ([rng.next() * 20.0, rng.next() * 20.0, rng.next() * 20.0], [rng.next() - 0.5, rng.next() - 0.5, rng.next() - 0.5], rng.next() * std::f64::consts::TAU))
        .collect();
    let data: Vec<Frame> = (0..frames)
        .map(|f| {
            let t = f as f64 * dt;
            let pos = atoms.iter().map(|(c, a, ph)| [0, 1, 2].map(|k| c[k] + a[k] * (omega * t + ph).cos())).collect();
            let vel = atoms.iter().map(|(_, a, ph)| [0, 1, 2].map(|k| -a[k] * omega * (omega * t + ph).sin())).collect();
            (pos, Some(vel), t)
        })
        .collect();
    let traj = dir.join("osc.xyz");
    write_xyz(&traj, "H", 20.0, &data);
    let (err, summary, out) = analyze(&["analyze", traj.to_str().unwrap(), "--vacf"]);
    assert!(summary.is_object(), "{err}");
    let peak = summary["vacf"]["vdos_peak_thz"].as_f64().unwrap();
    println!("oscillators at {nu} THz: VDOS peak at {peak:.3} THz");
    assert!((peak - nu).abs() < 0.06, "peak at {peak} THz");
    // C(t)/C(0) = cos(ω t): -1 at half a period.
    let (_, rows) = csv(&out.join("vacf.csv"));
    let half = rows.iter().find(|r| (r[0] - 0.25).abs() < 1e-9).unwrap();
    assert!((half[2] + 1.0).abs() < 1e-3, "C(T/2)/C(0) = {}", half[2]);
}

#[test]
fn a_thermo_log_gives_its_drift_and_statistics() {
    let dir = scratch("an-log");
    let log = dir.join("thermo.log");
    let mut text = String::from("# mdrun 0.1.0\n# 1000 atoms: 1000 Ar (39.948 amu); cell ...\nStep Time(ps) Temp(K) TotEng(eV)\n");
    let mut rng = Uniform::new(5);
    for k in 0..400 {
        let t = k as f64 * 0.5;
        // Drift of 2e-6 eV/atom/ps plus noise.
        let e = -5000.0 + 2e-6 * 1000.0 * t + 1e-3 * gaussian(&mut rng);
        text.push_str(&format!("{} {t} {} {e}\n", k * 100, 300.0 + gaussian(&mut rng)));
    }
    std::fs::write(&log, text).unwrap();
    let (err, summary, out) = analyze(&["analyze", log.to_str().unwrap()]);
    assert!(summary.is_object(), "{err}");
    let drift = summary["drift"]["ev_per_atom_per_ps"].as_f64().unwrap();
    let error = summary["drift"]["error"].as_f64().unwrap();
    println!("drift {drift:.4e} ± {error:.1e} (built with 2e-6)");
    assert!((drift - 2e-6).abs() < 4.0 * error && error < 1e-8);
    let temp = &summary["stats"]["Temp(K)"];
    assert!((temp["mean"].as_f64().unwrap() - 300.0).abs() < 0.2);
    assert!((temp["std"].as_f64().unwrap() - 1.0).abs() < 0.1);
    assert!(out.join("energy.png").exists());
}

#[test]
fn a_truncated_trajectory_is_named_with_its_frame() {
    let dir = scratch("an-truncated");
    let traj = dir.join("cut.xyz");
    let frames: Vec<Frame> = (0..3).map(|f| (vec![[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], None, f as f64)).collect();
    write_xyz(&traj, "Ar", 10.0, &frames);
    let text = std::fs::read_to_string(&traj).unwrap();
    std::fs::write(&traj, &text[..text.len() - 30]).unwrap();
    let (err, summary, _) = analyze(&["analyze", traj.to_str().unwrap(), "--rdf", "--rmax", "4"]);
    assert!(summary.is_null(), "a truncated file was accepted");
    println!("{err}");
    assert!(err.contains("cut.xyz") && err.contains("frame 2"), "{err}");
}

#[test]
fn g_of_r_and_msd_agree_with_mdanalysis() {
    // Fixtures by benches/mdanalysis/make_fixtures.sh: MDAnalysis 2.11 InterRDF (self pairs
    // excluded) and EinsteinMSD (FFT) on the same 31-frame, 256-atom argon trajectory.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch("an-mda");
    let traj = dir.join("argon_256.xyz");
    std::fs::copy(root.join("tests/data/analysis/argon_256.xyz"), &traj).unwrap();
    let (err, summary, out) = analyze(&["analyze", traj.to_str().unwrap(), "--rdf", "--msd", "--rmax", "8", "--bins", "80", "--no-plots"]);
    assert!(summary.is_object(), "{err}");
    let (_, ours) = csv(&out.join("rdf.csv"));
    let (_, theirs) = csv(&root.join("tests/fixtures/mdanalysis_rdf.csv"));
    assert_eq!(ours.len(), theirs.len());
    let worst_g = ours.iter().zip(&theirs).map(|(a, b)| {
        assert!((a[0] - b[0]).abs() < 1e-9, "bins differ");
        (a[1] - b[1]).abs()
    }).fold(0.0, f64::max);
    let (_, ours) = csv(&out.join("msd.csv"));
    let (_, theirs) = csv(&root.join("tests/fixtures/mdanalysis_msd.csv"));
    assert_eq!(ours.len(), theirs.len());
    let worst_msd = ours.iter().zip(&theirs).skip(1).map(|(a, b)| (a[1] - b[1]).abs() / b[1]).fold(0.0, f64::max);
    println!("vs MDAnalysis: largest g(r) difference {worst_g:.2e}, largest relative MSD difference {worst_msd:.2e}");
    // Measured: 2.6e-4 and 3e-9. MDAnalysis computes in f32, so a pair a hair from a bin edge
    // may land in the next bin; MSDs agree to rounding.
    assert!(worst_g < 2e-3, "g(r) differs from MDAnalysis by {worst_g}");
    assert!(worst_msd < 1e-6, "MSD differs from MDAnalysis by {worst_msd}");
}

#[test]
fn the_in_run_analysis_equals_mdrun_analyze_on_the_same_states() {
    let dir = scratch("in-run-analysis");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/argon/argon.extxyz"), dir.join("argon.extxyz")).unwrap();
    let toml = "[structure]\nfile = \"argon.extxyz\"\n[velocities]\nsource = \"file\"\n[potential]\ntype = \"lj\"\ncutoff = \"8.5 A\"\nshift = true\n[potential.species.Ar]\nepsilon = \"0.0103408 eV\"\nsigma = \"3.4 A\"\n[integrator]\ntype = \"verlet\"\ntimestep = \"5 fs\"\n[run]\nsteps = 400\n[output]\nthermo = 100\nlog = \"out/thermo.log\"\ncheckpoint = \"out/final.chk\"\n[[output.trajectory]]\npath = \"out/trajectory.extxyz\"\ninterval = 20\nvelocities = true\n[analysis]\ninterval = 20\nrdf = true\nmsd = true\nvacf = true\nrmax = \"10 A\"\nbins = 100\nout = \"in-run\"\n";
    std::fs::write(dir.join("system.toml"), toml).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mdrun")).arg(dir.join("system.toml")).arg("--quiet").output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let traj = dir.join("out/trajectory.extxyz");
    let (stderr, after, post) = analyze(&["analyze", traj.to_str().unwrap(), "--rdf", "--msd", "--vacf", "--rmax", "10", "--bins", "100", "--no-plots"]);
    assert!(after.is_object(), "{stderr}");
    let during: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("in-run/summary.json")).unwrap()).unwrap();
    assert_eq!(during["frames"], 21);
    for table in ["rdf.csv", "msd.csv", "vacf.csv"] {
        let (h1, a) = csv(&dir.join("in-run").join(table));
        let (h2, b) = csv(&post.join(table));
        assert_eq!(h1, h2, "{table}");
        assert_eq!(a.len(), b.len(), "{table}");
        let scale = a.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale;
        println!("{table}: in-run vs mdrun analyze of the written trajectory: {worst:.1e} of the largest value");
        // The trajectory file rounds positions and velocities to its text precision, which
        // moves the odd pair across a g(r) bin edge; a wrong frame or time would differ by O(1).
        assert!(worst < 1e-4, "{table}: {worst:e}");
    }
    assert!(dir.join("in-run/rdf.png").exists() && dir.join("in-run/msd.png").exists());
    let d1 = during["diffusion_a2_per_ps"]["Ar"]["value"].as_f64().unwrap();
    let d2 = after["diffusion_a2_per_ps"]["Ar"]["value"].as_f64().unwrap();
    assert!((d1 - d2).abs() < 1e-4 * d2.abs(), "{d1} vs {d2}");
}

/// The height and the count of pixels of exactly `color` of a PNG.
fn png_pixels(path: &Path, color: [u8; 3]) -> (u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    (info.height, buf.chunks(3).filter(|p| *p == color).count())
}

#[test]
fn the_thermo_time_series_has_a_panel_per_quantity_and_a_lammps_log_as_reference() {
    let dir = scratch("an-thermo-figure");
    let log = dir.join("thermo.log");
    let mut text = String::from("# 32 atoms: 32 Ar\nStep Time(ps) Temp(K) PotEng(eV) TotEng(eV) Press(bar) Volume(A3) Conserved(eV)\n");
    for k in 0..50 {
        let t = k as f64 * 0.01;
        text.push_str(&format!("{} {t} {} {} -10 {} 1000 -10\n", k * 10, 300.0 + 10.0 * (t * 20.0).sin(), -12.0 + 0.1 * t, 50.0 * t));
    }
    std::fs::write(&log, text).unwrap();
    // The reference: a LAMMPS log (metal units, 1 fs steps) with its header, two runs, and
    // LAMMPS's column names.
    let lammps = dir.join("log.lammps");
    let mut text = String::from("LAMMPS (29 Aug 2024)\nunits metal\nStep Temp PotEng TotEng Press\n");
    for k in 0..25 {
        text.push_str(&format!("{} {} -12.05 -10.02 {}\n", k * 10, 290.0 + k as f64, -20.0 * k as f64));
    }
    text.push_str("Loop time of 1.0 on 1 procs for 250 steps with 32 atoms\n\nStep Temp PotEng TotEng Press\n");
    for k in 25..50 {
        text.push_str(&format!("{} {} -12.05 -10.02 {}\n", k * 10, 290.0 + k as f64, -20.0 * k as f64));
    }
    text.push_str("Loop time of 1.0 on 1 procs\n");
    std::fs::write(&lammps, text).unwrap();
    let (err, summary, out) = analyze(&["analyze", log.to_str().unwrap(), "--reference", lammps.to_str().unwrap()]);
    assert!(summary.is_object(), "{err}");
    // Temperature, potential energy, total energy (the conserved energy equals it: one curve),
    // pressure; the volume never moves: four panels of 190 pixels under a 120-pixel title.
    let (height, blue) = png_pixels(&out.join("thermo.png"), [31, 119, 180]);
    assert_eq!(height, 120 + 4 * 190);
    assert!(blue > 2000, "{blue} blue pixels");
    // Without the reference the figure has fewer curve pixels: the dashed ones were drawn.
    let (_, alone) = {
        analyze(&["analyze", log.to_str().unwrap()]);
        png_pixels(&out.join("thermo.png"), [31, 119, 180])
    };
    assert!(alone + 300 < blue, "with the reference {blue}, without {alone}");
    // A reference with no thermo rows, or a g(r) reference on a thermo log, is named.
    std::fs::write(dir.join("empty.log"), "nothing here\n").unwrap();
    let (err, summary, _) = analyze(&["analyze", log.to_str().unwrap(), "--reference", dir.join("empty.log").to_str().unwrap()]);
    assert!(summary.is_null() && err.contains("empty.log") && err.contains("no thermo rows"), "{err}");
    let (err, _, _) = analyze(&["analyze", log.to_str().unwrap(), "--rdf-reference", "O-O=x.csv"]);
    assert!(err.contains("--rdf-reference"), "{err}");
}

#[test]
fn a_reference_g_of_r_is_drawn_over_its_pair_and_an_unknown_pair_is_refused() {
    let dir = scratch("an-rdf-reference");
    let frames: Vec<Frame> = (0..3).map(|k| ((0..64).map(|i| [(i % 4) as f64 * 2.5 + 0.01 * k as f64, ((i / 4) % 4) as f64 * 2.5, (i / 16) as f64 * 2.5]).collect(), None, k as f64)).collect();
    let xyz = dir.join("cubic.xyz");
    write_xyz(&xyz, "Ar", 10.0, &frames);
    let reference = dir.join("exp.csv");
    std::fs::write(&reference, "# r, g\n2.0, 0.0\n2.5, 3.0\n3.0, 1.0\n4.9, 1.0\n").unwrap();
    let (err, summary, out) = analyze(&["analyze", xyz.to_str().unwrap(), "--rdf", "--rmax", "4.9", "--rdf-reference", &format!("all={}", reference.display())]);
    assert!(summary.is_object(), "{err}");
    let (_, with) = png_pixels(&out.join("rdf.png"), [31, 119, 180]);
    analyze(&["analyze", xyz.to_str().unwrap(), "--rdf", "--rmax", "4.9"]);
    let (_, without) = png_pixels(&out.join("rdf.png"), [31, 119, 180]);
    assert!(with > without + 100, "with the reference {with}, without {without}");
    let (err, summary, _) = analyze(&["analyze", xyz.to_str().unwrap(), "--rdf", "--rmax", "4.9", "--rdf-reference", &format!("O-O={}", reference.display())]);
    assert!(summary.is_null() && err.contains("no pair O-O") && err.contains("exp.csv"), "{err}");
}

/// g(r) of several pairs: a panel each, on its own scale, so the O-O shell (g ~ 3) is not
/// flattened by the O-H bond's peak (g ~ 30) as it was on one shared axis.
#[test]
fn g_of_r_of_several_pairs_draws_a_panel_per_pair_on_its_own_scale() {
    let dir = scratch("an-rdf-panels");
    let water = dir.join("water64.extxyz");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("systems/water/water64.extxyz"), &water).unwrap();
    let (err, summary, out) = analyze(&["analyze", water.to_str().unwrap(), "--rdf", "--pairs", "O-O,O-H", "--rmax", "6"]);
    assert!(summary.is_object(), "{err}");
    // The total and the two pairs: three panels of 400 pixels under the title.
    let (height, blue) = png_pixels(&out.join("rdf.png"), [31, 119, 180]);
    let (_, red) = png_pixels(&out.join("rdf.png"), [214, 39, 40]);
    let (_, green) = png_pixels(&out.join("rdf.png"), [44, 160, 44]);
    assert_eq!(height, 50 + 3 * 400);
    assert!(blue > 500 && red > 500 && green > 500, "curve pixels: all {blue}, O-O {red}, O-H {green}");
    // On its own axis the O-O g(r) rises through most of its panel's height: red pixels on at
    // least 200 of its 400 rows left of x = 500 (r < ~3.4 Å, where the dashed n(r) stays low;
    // on the shared axis the peak used a tenth of the plot).
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out.join("rdf.png")).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let width = info.width as usize;
    let rows = (0..info.height as usize).filter(|&y| buf[y * width * 3..(y * width + 500) * 3].chunks(3).any(|p| p == [214, 39, 40])).count();
    assert!(rows >= 200, "the O-O curve covers {rows} rows");
}
