//! NIST Lennard-Jones reference calculations (tests/data/nist-lj): energy, virial and tail
//! correction of four fluid configurations at cutoffs 3 and 4 sigma, matched at the precision
//! NIST published.

mod common;

use mdrun::cell::Cell;
use mdrun::io::structure;
use mdrun::potential::lj::{LennardJones, LjPair};
use mdrun::system::{Species, System};
use std::path::Path;

/// (file, [(cutoff, U, W, U_tail)]) as NIST printed them.
const REFERENCE: [(&str, [(f64, &str, &str, &str); 2]); 4] = [
    (
        "lj-1",
        [
            (3.0, "-4351.5", "-568.67", "-198.49"),
            (4.0, "-4467.5", "-1263.9", "-83.769"),
        ],
    ),
    (
        "lj-2",
        [
            (3.0, "-690.00", "-568.46", "-24.230"),
            (4.0, "-704.60", "-655.99", "-10.226"),
        ],
    ),
    (
        "lj-3",
        [
            (3.0, "-1146.7", "-1164.9", "-49.622"),
            (4.0, "-1175.4", "-1337.1", "-20.942"),
        ],
    ),
    (
        "lj-4",
        [
            (3.0, "-16.790", "-46.249", "-0.54517"),
            (4.0, "-17.060", "-47.869", "-0.23008"),
        ],
    ),
];

/// Value and half a unit of its last printed digit.
fn published(text: &str) -> (f64, f64) {
    let decimals = text.split('.').nth(1).map_or(0, str::len) as i32;
    (text.parse().unwrap(), 0.5 * 10f64.powi(-decimals))
}

fn load(name: &str) -> System {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nist-lj")
        .join(format!("{name}.xyz"));
    let data = structure::read(&path, "", 0).expect("NIST file reads");
    let cell = Cell::new(
        data.cell.expect("NIST files have a lattice"),
        data.pbc.unwrap_or([true; 3]),
    )
    .unwrap();
    assert_eq!(cell.pbc(), [true; 3]);
    let n = data.positions.len();
    System {
        species: vec![Species {
            name: "Ar".into(),
            mass: 39.948,
        }],
        types: vec![0; n],
        positions: data.positions,
        velocities: vec![[0.0; 3]; n],
        images: vec![[0; 3]; n],
        cell,
    }
}

#[test]
fn energies_virials_and_tail_corrections_match_nist() {
    for (name, cases) in REFERENCE {
        let system = load(name);
        for (cutoff, u, w, tail) in cases {
            let pair = LjPair {
                epsilon: 1.0,
                sigma: 1.0,
                cutoff,
            };
            let mut lj = LennardJones::new(1, vec![pair], false, false);
            let out = common::evaluate(&system, &mut lj, 0.3);
            let virial = out.virial[0][0] + out.virial[1][1] + out.virial[2][2];
            let (e_tail, _) = lj.tail_correction(&[system.len()], system.cell.volume());
            for (what, ours, text) in [
                ("U", out.energy, u),
                ("W", virial, w),
                ("U_tail", e_tail, tail),
            ] {
                let (reference, tolerance) = published(text);
                println!("{name} rc={cutoff}: {what} = {ours:.6} (NIST {text})");
                assert!(
                    (ours - reference).abs() <= tolerance * 1.0001,
                    "{name} rc={cutoff}: {what} = {ours} but NIST gives {text}"
                );
            }
            // The tail-corrected potential adds exactly U_tail to the energy.
            let mut with_tail = LennardJones::new(1, vec![pair], false, true);
            let out_tail = common::evaluate(&system, &mut with_tail, 0.3);
            assert!((out_tail.energy - out.energy - e_tail).abs() < 1e-9 * out.energy.abs());
        }
    }
}
