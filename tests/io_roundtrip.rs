//! Structures written through chemfiles (XYZ, extended XYZ, PDB) read back as they were, to the
//! precision of each format: species, positions, cell, periodicity, velocities where carried.

mod common;

use mdrun::cell::Cell;
use mdrun::io::structure;
use mdrun::io::trajectory::{FrameData, TrajectorySpec, TrajectoryWriter};
use mdrun::system::System;
use std::path::PathBuf;

fn sample() -> System {
    // A triclinic cell in the conventional orientation (a along x, b in the xy plane), as PDB
    // stores cells by lengths and angles.
    let cell =
        Cell::from_lengths_angles([14.2, 13.1, 15.7], [82.0, 97.5, 110.0], [true; 3]).unwrap();
    let mut s = common::random_system(40, cell, &["Ar", "Kr", "Xe"], 2.0, 21);
    let mut rng = common::Uniform::new(4);
    for v in &mut s.velocities {
        *v = [rng.next() - 0.5, rng.next() - 0.5, rng.next() - 0.5].map(|x| 10.0 * x);
    }
    s.wrap_positions();
    s
}

fn write(system: &System, path: &PathBuf, format: &str, velocities: bool, frames: u64) {
    let spec = TrajectorySpec {
        path: path.clone(),
        format: format.into(),
        interval: 1,
        velocities,
        wrap: true,
    };
    let names = (0..system.len())
        .map(|i| system.species_name(i).to_string())
        .collect();
    let mut writer = TrajectoryWriter::start(vec![spec], names, false).unwrap();
    for step in 0..frames {
        // Frames differ so that reading the wrong one is caught.
        let shifted: Vec<_> = system
            .positions
            .iter()
            .map(|r| [r[0], r[1], r[2] + 0.01 * step as f64])
            .collect();
        writer
            .send(FrameData {
                step,
                time_ps: step as f64 * 0.002,
                wrapped: shifted.clone(),
                unwrapped: shifted,
                velocities: Some(system.velocities.clone()),
                cell: Some(*system.cell.vectors()),
                outputs: vec![0],
            })
            .unwrap();
    }
    writer.finish().unwrap();
}

fn roundtrip(ext: &str, format: &str, position_tol: f64, velocities: bool) {
    let dir = std::env::temp_dir().join(format!("mdrun-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("frames.{ext}"));
    let system = sample();
    write(&system, &path, format, velocities, 3);
    let data = structure::read(&path, &mdrun::io::format_for_path(&path, None), 2).unwrap();

    let names: Vec<String> = (0..system.len())
        .map(|i| system.species_name(i).to_string())
        .collect();
    assert_eq!(data.names, names, "{ext}: species");
    let mut worst: f64 = 0.0;
    for (a, b) in data.positions.iter().zip(&system.positions) {
        let expected = [b[0], b[1], b[2] + 0.02];
        for k in 0..3 {
            worst = worst.max((a[k] - expected[k]).abs());
        }
    }
    assert!(
        worst <= position_tol,
        "{ext}: positions off by {worst} Å (format precision {position_tol})"
    );
    let cell = Cell::new(
        data.cell.expect("cell read back"),
        data.pbc.unwrap_or([true; 3]),
    )
    .unwrap();
    for (a, b) in cell.lengths().iter().zip(system.cell.lengths()) {
        assert!(
            (a - b).abs() < 2e-3,
            "{ext}: cell lengths {:?} vs {:?}",
            cell.lengths(),
            system.cell.lengths()
        );
    }
    for (a, b) in cell.angles().iter().zip(system.cell.angles()) {
        assert!(
            (a - b).abs() < 1e-2,
            "{ext}: cell angles {:?} vs {:?}",
            cell.angles(),
            system.cell.angles()
        );
    }
    if velocities {
        let v = data.velocities.expect("velocities read back");
        for (a, b) in v.iter().zip(&system.velocities) {
            for k in 0..3 {
                assert!(
                    (a[k] - b[k]).abs() <= 1e-5 * b[k].abs().max(1.0),
                    "{ext}: velocity {a:?} vs {b:?}"
                );
            }
        }
    }
    println!(
        "{ext}: {} atoms, frame 2 of 3, positions within {worst:.1e} Å",
        data.positions.len()
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn xyz_roundtrip() {
    // chemfiles writes XYZ numbers with 6 significant digits.
    roundtrip("xyz", "", 1e-4, true);
}

#[test]
fn extended_xyz_roundtrip() {
    roundtrip("extxyz", "", 1e-4, true);
}

#[test]
fn pdb_roundtrip() {
    // PDB stores 3 decimals.
    roundtrip("pdb", "", 5.1e-4, false);
}

#[test]
fn extended_xyz_reads_a_general_lattice_and_pbc() {
    let dir = std::env::temp_dir().join(format!("mdrun-io-pbc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("slab.extxyz");
    std::fs::write(
        &path,
        "2\nLattice=\"10.0 0.0 0.0 1.0 9.0 0.0 0.5 0.5 20.0\" Properties=species:S:1:pos:R:3 pbc=\"T T F\"\nAr 1.0 2.0 3.0\nKr 4.0 5.0 6.5\n",
    )
    .unwrap();
    let data = structure::read(&path, "XYZ", 0).unwrap();
    assert_eq!(data.names, vec!["Ar", "Kr"]);
    assert_eq!(data.pbc, Some([true, true, false]));
    let cell = data.cell.unwrap();
    assert_eq!(cell, [[10.0, 0.0, 0.0], [1.0, 9.0, 0.0], [0.5, 0.5, 20.0]]);
    assert_eq!(data.positions[1], [4.0, 5.0, 6.5]);
}

#[test]
fn a_structure_file_repeated_tiles_its_cell() {
    let dir = common::scratch("repeat");
    std::fs::write(
        dir.join("cell.extxyz"),
        "2\nLattice=\"4 0 0 1 5 0 0 0 6\" pbc=\"T T T\" Properties=species:S:1:pos:R:3\nAr 0.5 0.5 0.5\nKr 2 3 4\n",
    )
    .unwrap();
    let base = "[structure]\nfile = \"cell.extxyz\"\nrepeat = [3, 2, 1]\n[potential]\ntype = \"lj\"\ncutoff = \"2 A\"\nspecies.Ar = { epsilon = \"0.01 eV\", sigma = \"1 A\" }\nspecies.Kr = { epsilon = \"0.01 eV\", sigma = \"1 A\" }\n[integrator]\ntype = \"verlet\"\ntimestep = \"1 fs\"\n[run]\nsteps = 1\n";
    let plan = common::plan_in(&dir, base);
    let s = &plan.system;
    assert_eq!(s.len(), 12);
    let v = s.cell.vectors();
    assert_eq!(*v, [[12.0, 0.0, 0.0], [2.0, 10.0, 0.0], [0.0, 0.0, 6.0]]);
    // Copies in x-fastest order: copy 4 is (1, 1, 0), shifted by a + b = (5, 5, 0).
    let (first, copy) = (s.positions[1], s.positions[2 * 4 + 1]);
    for k in 0..3 {
        assert!((copy[k] - first[k] - [5.0, 5.0, 0.0][k]).abs() < 1e-12, "{copy:?} vs {first:?}");
    }
    assert_eq!(s.species_name(2 * 4 + 1), "Kr");
    // Without a cell there is nothing to tile: the error names the key.
    std::fs::write(dir.join("open.xyz"), "1\n\nAr 0 0 0\n").unwrap();
    std::fs::write(dir.join("system.toml"), base.replace("cell.extxyz", "open.xyz")).unwrap();
    let err = mdrun::plan::Plan::from_file(&dir.join("system.toml"), None).unwrap_err().to_string();
    assert!(err.contains("system.toml:3") && err.contains("[structure] repeat") && err.contains("no cell"), "{err}");
}

#[test]
fn dcd_frames_read_directly_equal_chemfiles_frames() {
    // `mdrun analyze` reads DCD coordinates and cells itself (io::dcd); chemfiles is the
    // reference. A triclinic cell checks the unit-cell record's angles.
    let dir = common::scratch("dcd-direct");
    let path = dir.join("traj.dcd");
    let system = sample();
    write(&system, &path, "", false, 7);
    let frames: Vec<_> = mdrun::analysis::frames::Frames::open(&path, "1::2".parse().unwrap())
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(frames.iter().map(|f| f.index).collect::<Vec<_>>(), vec![1, 3, 5]);
    for f in &frames {
        let reference = structure::read(&path, "", f.index).unwrap();
        assert_eq!(f.data.positions, reference.positions, "frame {}", f.index);
        let (cell, expected) = (f.cell.as_ref().unwrap().vectors(), reference.cell.unwrap());
        for a in 0..3 {
            for b in 0..3 {
                assert!((cell[a][b] - expected[a][b]).abs() < 1e-9, "frame {}: cell {cell:?} vs {expected:?}", f.index);
            }
        }
        assert_eq!(f.names.len(), system.len());
    }
    // A file cut inside its last frame offers the complete frames only (as chemfiles does).
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(dir.join("cut.dcd"), &bytes[..bytes.len() - 100]).unwrap();
    let read: Vec<_> = mdrun::analysis::frames::Frames::open(&dir.join("cut.dcd"), "::1".parse().unwrap()).unwrap().collect();
    assert_eq!(read.len(), 6);
    assert!(read.iter().all(|f| f.is_ok()));
}
