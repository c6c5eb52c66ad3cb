//! The neighbour list holds exactly the pairs (with their periodic image) that a brute-force
//! search over all atom pairs and all images within reach finds: random triclinic cells, cells
//! smaller than the cutoff (several images, atoms paired with their own images), mixed and
//! fully open boundaries, half and full lists.

mod common;

use mdrun::cell::Cell;
use mdrun::neighbor::{ListKind, NeighborList};
use mdrun::system::System;
use std::collections::BTreeSet;

type Pair = (usize, usize, [i32; 3]);

/// Every (i, j, image) with |x_j + image - x_i| < reach, i != j or image != 0.
fn brute_force(system: &System, reach: f64) -> BTreeSet<Pair> {
    let cell = &system.cell;
    let widths = cell.perpendicular_widths();
    let m = [0, 1, 2].map(|k| {
        if cell.pbc()[k] {
            (reach / widths[k]).ceil() as i32 + 1
        } else {
            0
        }
    });
    let mut out = BTreeSet::new();
    for i in 0..system.len() {
        for j in 0..system.len() {
            for a in -m[0]..=m[0] {
                for b in -m[1]..=m[1] {
                    for c in -m[2]..=m[2] {
                        if i == j && [a, b, c] == [0, 0, 0] {
                            continue;
                        }
                        let s = cell.shift_vector([a, b, c]);
                        let (xi, xj) = (system.positions[i], system.positions[j]);
                        let d = [
                            xj[0] + s[0] - xi[0],
                            xj[1] + s[1] - xi[1],
                            xj[2] + s[2] - xi[2],
                        ];
                        if d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < reach * reach {
                            out.insert((i, j, [a, b, c]));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The pairs a list holds, as (i, j, image); images recovered from the shift vectors.
fn listed(list: &NeighborList, cell: &Cell) -> Vec<Pair> {
    let mut out = Vec::new();
    for r in 0..list.n_atoms() {
        let i = list.row_atom(r);
        for &j in list.plain(r) {
            out.push((i, j as usize, [0, 0, 0]));
        }
        let (js, ss) = list.shifted(r);
        for (&j, &s) in js.iter().zip(ss) {
            let f = cell.fractional(list.shift_vectors()[s as usize]);
            let image = f.map(|x| x.round() as i32);
            assert_ne!(image, [0, 0, 0], "a shifted entry with a zero shift");
            out.push((i, j as usize, image));
        }
    }
    out
}

fn canonical(p: Pair) -> Pair {
    let (i, j, n) = p;
    let neg = n.map(|x| -x);
    if i < j || (i == j && n > neg) {
        (i, j, n)
    } else {
        (j, i, neg)
    }
}

fn check(label: &str, system: &System, cutoff: f64, skin: f64) {
    let mut s = system.clone();
    s.wrap_positions();
    let expected = brute_force(&s, cutoff + skin);

    let mut full = NeighborList::new(ListKind::Full, cutoff, skin);
    full.build(&s.positions, &s.cell).unwrap();
    let full_pairs = listed(&full, &s.cell);
    let full_set: BTreeSet<Pair> = full_pairs.iter().copied().collect();
    assert_eq!(
        full_pairs.len(),
        full_set.len(),
        "{label}: full list has duplicates"
    );
    assert_eq!(
        full_set, expected,
        "{label}: full list differs from brute force"
    );

    let mut half = NeighborList::new(ListKind::Half, cutoff, skin);
    half.build(&s.positions, &s.cell).unwrap();
    let half_pairs: Vec<Pair> = listed(&half, &s.cell).into_iter().map(canonical).collect();
    let half_set: BTreeSet<Pair> = half_pairs.iter().copied().collect();
    assert_eq!(
        half_pairs.len(),
        half_set.len(),
        "{label}: half list holds a pair twice"
    );
    let expected_half: BTreeSet<Pair> = expected.iter().map(|&p| canonical(p)).collect();
    assert_eq!(
        half_set, expected_half,
        "{label}: half list differs from brute force"
    );
    println!(
        "{label}: {} atoms, {} pairs in the half list, {} in the full list: both equal brute force",
        s.len(),
        half.len(),
        full.len()
    );
}

#[test]
fn lists_equal_brute_force() {
    let mut rng = common::Uniform::new(99);
    // Random triclinic cells of various shapes, fully periodic.
    for trial in 0..6 {
        let v = [
            [8.0 + 6.0 * rng.next(), 0.0, 0.0],
            [4.0 * (rng.next() - 0.5), 8.0 + 6.0 * rng.next(), 0.0],
            [
                4.0 * (rng.next() - 0.5),
                4.0 * (rng.next() - 0.5),
                8.0 + 6.0 * rng.next(),
            ],
        ];
        let cell = Cell::new(v, [true; 3]).unwrap();
        let system = common::random_system(120, cell, &["A"], 0.5, 100 + trial);
        check(&format!("triclinic #{trial}"), &system, 3.0, 0.5);
    }
    // A general (rotated, not upper-triangular) cell.
    let cell = Cell::new(
        [[7.0, 2.0, 1.0], [-1.5, 8.0, 2.5], [1.0, -2.0, 9.0]],
        [true; 3],
    )
    .unwrap();
    check(
        "rotated triclinic",
        &common::random_system(100, cell, &["A"], 0.5, 7),
        2.5,
        0.4,
    );
    // Cells thinner than the cutoff: several images, atoms paired with their own images.
    let cell = Cell::new(
        [[3.0, 0.0, 0.0], [1.0, 3.5, 0.0], [0.5, 0.7, 4.0]],
        [true; 3],
    )
    .unwrap();
    check(
        "small triclinic, cutoff 2.5x the cell",
        &common::random_system(6, cell, &["A"], 0.8, 8),
        7.0,
        1.0,
    );
    let cell = Cell::orthorhombic(2.0, 2.0, 2.0).unwrap();
    check(
        "one atom in a tiny box",
        &common::random_system(1, cell, &["A"], 0.1, 9),
        4.5,
        0.3,
    );
    // Mixed and open boundaries.
    let cell = Cell::new(
        [[10.0, 0.0, 0.0], [2.0, 9.0, 0.0], [0.0, 0.0, 12.0]],
        [true, false, true],
    )
    .unwrap();
    check(
        "periodic x and z, open y",
        &common::random_system(120, cell, &["A"], 0.5, 10),
        3.0,
        0.5,
    );
    let cell = Cell::new(
        [[10.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 12.0]],
        [false; 3],
    )
    .unwrap();
    check(
        "open cluster",
        &common::random_system(150, cell, &["A"], 0.5, 11),
        3.0,
        0.5,
    );
    let cell = Cell::new(
        [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 40.0]],
        [true, true, false],
    )
    .unwrap();
    check(
        "thin slab, cutoff beyond the cell in x and y",
        &common::random_system(40, cell, &["A"], 0.5, 12),
        6.0,
        0.5,
    );
}

#[test]
fn rebuild_is_needed_exactly_when_an_atom_moved_half_the_skin() {
    let cell = Cell::orthorhombic(10.0, 10.0, 10.0).unwrap();
    let mut system = common::random_system(50, cell, &["A"], 0.8, 13);
    system.wrap_positions();
    let mut list = NeighborList::new(ListKind::Half, 3.0, 0.6);
    assert!(list.needs_rebuild(&system.positions));
    list.build(&system.positions, &system.cell).unwrap();
    assert!(!list.needs_rebuild(&system.positions));
    system.positions[7][1] += 0.29;
    assert!(!list.needs_rebuild(&system.positions));
    system.positions[7][1] += 0.02;
    assert!(
        list.needs_rebuild(&system.positions),
        "a move of 0.31 > skin/2 = 0.3 must trigger a rebuild"
    );
    // Crossing the periodic boundary counts as the move it is, not as a jump of a whole box.
    let mut s2 = system.clone();
    s2.positions[3] = [9.95, 5.0, 5.0];
    s2.wrap_positions();
    list.build(&s2.positions, &s2.cell).unwrap();
    s2.positions[3][0] += 0.1; // now at 10.05: outside the box, not wrapped between builds
    assert!(!list.needs_rebuild(&s2.positions));
}

fn with_positions(cell: Cell, positions: Vec<[f64; 3]>) -> System {
    let n = positions.len();
    System {
        species: vec![mdrun::system::Species { name: "A".into(), mass: 1.0 }],
        types: vec![0; n],
        positions,
        velocities: vec![[0.0; 3]; n],
        images: vec![[0; 3]; n],
        cell,
    }
}

/// Property test over degenerate geometries: one atom, collinear and planar sets (along the
/// axes and along skew directions), atoms piled within 1e-9 Å, extents from 1e-12 Å to 1e6 Å,
/// under open, mixed and periodic boundaries. Each list must equal brute force, and build
/// quickly (a flat extent once asked for a stencil of ~1e12 bins and never returned).
#[test]
fn degenerate_geometries_equal_brute_force() {
    let mut rng = common::Uniform::new(2026);
    let open = Cell::open();
    let slab = Cell::new([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 1.0]], [true, true, false]).unwrap();
    let wire = Cell::new([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 8.0]], [false, false, true]).unwrap();
    let started = std::time::Instant::now();
    let mut cases = 0;
    for trial in 0..120u32 {
        let n = 1 + (rng.next() * 40.0) as usize;
        let scale = 10f64.powf(-12.0 + 18.0 * rng.next()); // 1e-12 .. 1e6 Å
        let direction = {
            let d = [rng.next() - 0.5, rng.next() - 0.5, rng.next() - 0.5];
            let l = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-9);
            d.map(|x| x / l)
        };
        let axis = (rng.next() * 3.0) as usize % 3;
        let kind = trial % 5;
        let positions: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                let (a, b, c) = (rng.next(), rng.next(), rng.next());
                match kind {
                    // Collinear along an axis.
                    0 => {
                        let mut p = [0.5; 3];
                        p[axis] += a * scale;
                        p
                    }
                    // Collinear along a skew direction.
                    1 => direction.map(|d| 0.5 + d * a * scale),
                    // Planar: one coordinate shared.
                    2 => {
                        let mut p = [a * scale, b * scale, c * scale];
                        p[axis] = 0.25;
                        p
                    }
                    // A pile within 1e-9 Å (the list does not judge distances).
                    3 => [0.5 + a * 1e-9, 0.5 + b * 1e-9, 0.5],
                    // A cloud of any size.
                    _ => [a * scale, b * scale, c * scale],
                }
            })
            .collect();
        let cutoff = 0.5 + 3.0 * rng.next();
        let cell = match trial % 3 {
            0 => open.clone(),
            // Periodic cells: positions wrapped; degenerate along the open axes.
            1 => slab.clone(),
            _ => wire.clone(),
        };
        // Brute force over all pairs is O(n²) per image; skip sets whose extent and cell make
        // the images explode (the list refuses them with TooManyImages, tested elsewhere).
        let system = with_positions(cell, positions);
        let t = std::time::Instant::now();
        check(&format!("degenerate #{trial} (kind {kind}, n {n}, scale {scale:.1e})"), &system, cutoff, 0.3);
        assert!(t.elapsed().as_secs_f64() < 5.0, "degenerate #{trial}: the list took {:?}", t.elapsed());
        cases += 1;
    }
    println!("{cases} degenerate geometries in {:?}", started.elapsed());
}
