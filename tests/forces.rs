//! Forces are minus the gradient of the energy, and the virial is minus its strain derivative:
//! central finite differences on random dense systems, orthorhombic and triclinic, two species
//! with mixing, a cutoff longer than half the cell (several images of each atom), and open
//! boundaries; Lennard-Jones and Morse (each pair style through the one pair loop).

mod common;

use mdrun::cell::Cell;
use mdrun::potential::Potential;
use mdrun::potential::lj::LennardJones;
use mdrun::potential::pair::{PairParams, PairSpec};
use mdrun::system::System;

fn energy(system: &System, lj: &mut dyn Potential) -> f64 {
    common::evaluate(system, lj, 0.5).energy
}

fn check_forces(system: &System, lj: &mut dyn Potential, label: &str) {
    let out = common::evaluate(system, lj, 0.5);
    let h = 1e-5;
    let scale = out
        .forces
        .iter()
        .flatten()
        .fold(0.0f64, |m, f| m.max(f.abs()));
    let mut worst: f64 = 0.0;
    for i in (0..system.len()).step_by(3) {
        for k in 0..3 {
            let mut plus = system.clone();
            plus.positions[i][k] += h;
            let mut minus = system.clone();
            minus.positions[i][k] -= h;
            let numeric = -(energy(&plus, lj) - energy(&minus, lj)) / (2.0 * h);
            let err = (numeric - out.forces[i][k]).abs() / scale;
            worst = worst.max(err);
        }
    }
    println!("{label}: largest |F - F_fd| / max|F| = {worst:.2e} (max|F| = {scale:.3} eV/Å)");
    assert!(
        worst < 1e-6,
        "{label}: forces differ from -dE/dx by {worst:.2e} of the largest force"
    );
}

/// W_ab = -dE/dε_ab for a homogeneous strain of cell and positions.
fn check_virial(system: &System, lj: &mut dyn Potential, label: &str) {
    let out = common::evaluate(system, lj, 0.5);
    let h = 1e-6;
    let strained = |a: usize, b: usize, e: f64| {
        let mut s = system.clone();
        let deform = |r: [f64; 3]| {
            let mut x = r;
            x[a] += e * r[b];
            x
        };
        for r in &mut s.positions {
            *r = deform(*r);
        }
        let v = s.cell.vectors().map(deform);
        s.cell = Cell::new(v, s.cell.pbc()).unwrap();
        s
    };
    let scale = out
        .virial
        .iter()
        .flatten()
        .fold(0.0f64, |m, w| m.max(w.abs()));
    for a in 0..3 {
        for b in 0..3 {
            let numeric =
                -(energy(&strained(a, b, h), lj) - energy(&strained(a, b, -h), lj)) / (2.0 * h);
            let err = (numeric - out.virial[a][b]).abs() / scale;
            println!(
                "{label}: W[{a}][{b}] = {:.6} vs -dE/de = {numeric:.6}",
                out.virial[a][b]
            );
            assert!(
                err < 1e-6,
                "{label}: virial[{a}][{b}] = {} but -dE/de = {numeric}",
                out.virial[a][b]
            );
        }
    }
}

#[test]
fn forces_are_the_negative_energy_gradient() {
    let params = [(0.0103, 3.405), (0.0141, 3.65)];
    let cases = [
        (
            "orthorhombic",
            Cell::new(
                [[14.0, 0.0, 0.0], [0.0, 13.0, 0.0], [0.0, 0.0, 15.0]],
                [true; 3],
            )
            .unwrap(),
            8.0,
        ),
        (
            "triclinic",
            Cell::new(
                [[14.0, 0.0, 0.0], [3.5, 13.0, 0.0], [-2.0, 2.5, 15.0]],
                [true; 3],
            )
            .unwrap(),
            8.0,
        ),
        (
            "triclinic, cutoff beyond the cell",
            Cell::new(
                [[7.5, 0.0, 0.0], [2.0, 7.0, 0.0], [1.0, -1.5, 8.0]],
                [true; 3],
            )
            .unwrap(),
            10.0,
        ),
        (
            "slab, open along z",
            Cell::new(
                [[14.0, 0.0, 0.0], [2.0, 13.0, 0.0], [0.0, 0.0, 15.0]],
                [true, true, false],
            )
            .unwrap(),
            8.0,
        ),
    ];
    for (label, cell, cutoff) in cases {
        let n = (cell.volume() * 0.021).round() as usize;
        let system = common::random_system(n, cell, &["Ar", "Kr"], 2.9, 11);
        for shift in [false, true] {
            let mut lj = LennardJones::new(2, common::lj_mixed(&params, cutoff), shift, false);
            check_forces(
                &system,
                &mut lj,
                &format!("{label}, {n} atoms, shift {shift}"),
            );
        }
    }
    // Fully open boundaries: a cluster without any cell.
    let cluster = common::random_system(
        60,
        Cell::new(
            [[12.0, 0.0, 0.0], [0.0, 12.0, 0.0], [0.0, 0.0, 12.0]],
            [false; 3],
        )
        .unwrap(),
        &["Ar"],
        3.0,
        5,
    );
    let mut lj = LennardJones::new(1, common::lj_mixed(&params[..1], 9.0), true, false);
    check_forces(&cluster, &mut lj, "open cluster");
}

#[test]
fn virial_is_the_negative_strain_derivative() {
    let params = [(0.0103, 3.405), (0.0141, 3.65)];
    for (label, cell) in [
        (
            "orthorhombic",
            Cell::new(
                [[14.0, 0.0, 0.0], [0.0, 13.0, 0.0], [0.0, 0.0, 15.0]],
                [true; 3],
            )
            .unwrap(),
        ),
        (
            "triclinic",
            Cell::new(
                [[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [-1.5, 2.0, 9.5]],
                [true; 3],
            )
            .unwrap(),
        ),
    ] {
        let n = (cell.volume() * 0.021).round() as usize;
        let system = common::random_system(n, cell, &["Ar", "Kr"], 2.9, 3);
        let mut lj = LennardJones::new(2, common::lj_mixed(&params, 8.5), true, false);
        check_virial(&system, &mut lj, label);
    }
}

/// Two species of Morse with a cutoff of its own for the unlike pair, shifted and not, through
/// the shared pair loop: forces and virial are the energy's derivatives.
#[test]
fn morse_forces_and_virial_are_the_energy_derivatives() {
    let cu = PairParams::new(&[0.3429, 1.3588, 2.866], 7.0);
    let ni = PairParams::new(&[0.4205, 1.4199, 2.780], 7.0);
    let cross = PairParams::new(&[0.38, 1.39, 2.82], 6.5);
    for (label, cell) in [
        ("orthorhombic", Cell::new([[15.0, 0.0, 0.0], [0.0, 16.0, 0.0], [0.0, 0.0, 15.5]], [true; 3]).unwrap()),
        ("triclinic, cutoff past half the cell", Cell::new([[10.0, 0.0, 0.0], [2.5, 9.5, 0.0], [-1.5, 2.0, 10.5]], [true; 3]).unwrap()),
        ("slab, open along z", Cell::new([[14.0, 0.0, 0.0], [2.0, 13.0, 0.0], [0.0, 0.0, 15.0]], [true, true, false]).unwrap()),
    ] {
        let n = (cell.volume() * 0.05).round() as usize;
        let system = common::random_system(n, cell, &["Cu", "Ni"], 2.3, 17);
        for shift in [false, true] {
            let spec = PairSpec { style: &mdrun::potential::morse::STYLE, pairs: vec![cu, cross, cross, ni], shift, tail: false };
            let mut morse = spec.instantiate();
            assert_eq!(morse.cutoff(), 7.0);
            check_forces(&system, morse.as_mut(), &format!("morse, {label}, {n} atoms, shift {shift}"));
            if system.cell.pbc() == [true; 3] {
                check_virial(&system, morse.as_mut(), &format!("morse, {label}, shift {shift}"));
            }
        }
    }
}
