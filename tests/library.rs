//! The library (src/library.rs, what the C ABI, the LAMMPS plugin and the Python package call):
//! a system split into domain-decomposed parts, each part its owned atoms plus ghost copies out
//! to the model's receptive field, evaluated on two threads that add MCGM's cluster sums up
//! through a shared reduction (as MPI_Allreduce does between ranks), gives the whole system's
//! energy, forces (ghosts' added to their owners), virial and per-atom energies; and a batch
//! equals the structures one by one.

mod common;

use mdrun::cell::{Cell, Vec3};
use mdrun::library::{Evaluator, SameAtoms, Structure};
use mdrun::ml::inference::{GhostExchange, Output};
use std::path::PathBuf;
use std::sync::{Barrier, Mutex};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The quickstart's 8 water molecules tiled `k` x 1 x 1: positions, types (O = 0, H = 1), cell.
fn water(k: usize) -> (Vec<Vec3>, Vec<u32>, [Vec3; 3]) {
    let s = mdrun::io::structure::read(&repo("systems/quickstart/water8.extxyz"), "XYZ", 0).unwrap();
    let c = s.cell.unwrap();
    let (mut x, mut t) = (Vec::new(), Vec::new());
    for i in 0..k {
        for (p, name) in s.positions.iter().zip(&s.names) {
            x.push([p[0] + i as f64 * c[0][0], p[1], p[2]]);
            t.push(if name == "O" { 0 } else { 1 });
        }
    }
    (x, t, [[c[0][0] * k as f64, 0.0, 0.0], c[1], c[2]])
}

/// MPI_Allreduce(SUM) between threads: every part adds its buffer, all read the total.
struct Allreduce {
    barrier: Barrier,
    total: Mutex<Vec<f64>>,
}

impl Allreduce {
    fn sum(&self, buffer: &mut [f64]) {
        if self.barrier.wait().is_leader() {
            *self.total.lock().unwrap() = vec![0.0; buffer.len()];
        }
        self.barrier.wait();
        self.total.lock().unwrap().iter_mut().zip(buffer.iter()).for_each(|(t, b)| *t += b);
        self.barrier.wait();
        buffer.copy_from_slice(&self.total.lock().unwrap());
        self.barrier.wait();
    }
}

/// LAMMPS's forward and reverse communication between threads: a shared table of rows by
/// atom of the whole system.
struct Exchange<'a> {
    shared: &'a Allreduce,
    rows: &'a Mutex<Vec<f32>>,
    origin: &'a [usize],
    owned: usize,
    atoms: usize,
}

impl GhostExchange for Exchange<'_> {
    fn forward(&mut self, rows: &mut [f32], width: usize) {
        if self.shared.barrier.wait().is_leader() {
            *self.rows.lock().unwrap() = vec![0.0; self.atoms * width];
        }
        self.shared.barrier.wait();
        {
            let mut table = self.rows.lock().unwrap();
            for k in 0..self.owned {
                table[self.origin[k] * width..][..width].copy_from_slice(&rows[k * width..][..width]);
            }
        }
        self.shared.barrier.wait();
        let table = self.rows.lock().unwrap().clone();
        for k in self.owned..self.origin.len() {
            rows[k * width..][..width].copy_from_slice(&table[self.origin[k] * width..][..width]);
        }
        self.shared.barrier.wait();
    }

    fn reverse(&mut self, rows: &mut [f32], width: usize) {
        if self.shared.barrier.wait().is_leader() {
            *self.rows.lock().unwrap() = vec![0.0; self.atoms * width];
        }
        self.shared.barrier.wait();
        {
            let mut table = self.rows.lock().unwrap();
            for k in self.owned..self.origin.len() {
                table[self.origin[k] * width..][..width].iter_mut().zip(&rows[k * width..][..width]).for_each(|(t, r)| *t += r);
            }
        }
        self.shared.barrier.wait();
        let table = self.rows.lock().unwrap().clone();
        for k in 0..self.owned {
            rows[k * width..][..width].iter_mut().zip(&table[self.origin[k] * width..][..width]).for_each(|(r, t)| *r += t);
        }
        self.shared.barrier.wait();
    }
}

/// Part `p` of `parts` slabs along x: its owned atoms, then every periodic image within
/// `reach` of the slab (LAMMPS's ghost box), and for each atom its index in the whole system.
fn part(x: &[Vec3], t: &[u32], cell: &[Vec3; 3], p: usize, parts: usize, reach: f64) -> (Vec<Vec3>, Vec<u32>, usize, Vec<usize>) {
    let l = [cell[0][0], cell[1][1], cell[2][2]];
    let (lo, hi) = (l[0] * p as f64 / parts as f64, l[0] * (p + 1) as f64 / parts as f64);
    let owned: Vec<usize> = (0..x.len()).filter(|&a| (lo..hi).contains(&x[a][0].rem_euclid(l[0]))).collect();
    let (mut pos, mut typ, mut origin) = (Vec::new(), Vec::new(), Vec::new());
    for &a in &owned {
        pos.push([x[a][0].rem_euclid(l[0]), x[a][1], x[a][2]]);
        typ.push(t[a]);
        origin.push(a);
    }
    let n = [3i32, 3, 3];
    for a in 0..x.len() {
        for i in -n[0]..=n[0] {
            for j in -n[1]..=n[1] {
                for k in -n[2]..=n[2] {
                    let r = [x[a][0].rem_euclid(l[0]) + i as f64 * l[0], x[a][1] + j as f64 * l[1], x[a][2] + k as f64 * l[2]];
                    let inside = (lo - reach..hi + reach).contains(&r[0]) && (-reach..l[1] + reach).contains(&r[1]) && (-reach..l[2] + reach).contains(&r[2]);
                    let original = i == 0 && j == 0 && k == 0 && owned.contains(&a);
                    if inside && !original {
                        pos.push(r);
                        typ.push(t[a]);
                        origin.push(a);
                    }
                }
            }
        }
    }
    (pos, typ, owned.len(), origin)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Both ways a part can be evaluated: ghosts out to the receptive field, evaluated alone; and
/// ghosts out to one cutoff, refreshed from their owners between blocks.
#[test]
fn parts_with_ghosts_add_up_to_the_whole_system_for_every_model_kind() {
    for exchanged in [false, true] {
        parts_add_up(exchanged);
    }
}

fn parts_add_up(exchanged: bool) {
    let (x, t, cell) = water(3);
    let species = ["O".to_string(), "H".to_string()];
    for model in ["water-schnet", "water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        let path = repo(&format!("potentials/{model}"));
        let mut whole = Evaluator::load(&path, &species, 0).unwrap();
        let reach = if exchanged { whole.cutoff() } else { whole.receptive_field() } + 0.5;
        let periodic = Structure { positions: &x, types: &t, cell: Cell::new(cell, [true; 3]).unwrap(), owned: x.len(), charge: 0.0, same_atoms: SameAtoms::No };
        let reference = whole.evaluate(&periodic, &mut |_| {}, None).unwrap();

        let parts = 2;
        let reduce = Allreduce { barrier: Barrier::new(parts), total: Mutex::new(Vec::new()) };
        let table = Mutex::new(Vec::new());
        let results: Vec<(Output, Vec<usize>, usize)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..parts)
                .map(|p| {
                    let (reduce, table, path, species, x, t) = (&reduce, &table, &path, &species, &x, &t);
                    scope.spawn(move || {
                        let (pos, typ, owned, origin) = part(x, t, &cell, p, parts, reach);
                        let mut evaluator = Evaluator::load(path, species, 0).unwrap();
                        let s = Structure { positions: &pos, types: &typ, cell: Cell::open(), owned, charge: 0.0, same_atoms: SameAtoms::No };
                        let mut exchange = Exchange { shared: reduce, rows: table, origin: &origin, owned, atoms: x.len() };
                        let exchange = exchanged.then_some(&mut exchange as &mut dyn GhostExchange);
                        (evaluator.evaluate(&s, &mut |b| reduce.sum(b), exchange).unwrap(), origin, owned)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });

        let n = x.len();
        let (mut energy, mut atom_energy_sum, mut virial) = (0.0, 0.0, [0.0; 9]);
        let mut forces = vec![[0.0f64; 3]; n];
        let mut owners = vec![0usize; n];
        for (out, origin, owned) in &results {
            energy += out.energy[0];
            atom_energy_sum += out.atom_energies.iter().sum::<f64>();
            virial.iter_mut().zip(&out.virial[0]).for_each(|(v, w)| *v += w);
            for (k, &a) in origin.iter().enumerate() {
                (0..3).for_each(|c| forces[a][c] += out.forces[k][c]);
                if k < *owned {
                    owners[a] += 1;
                }
            }
            assert!(out.atom_energies[*owned..].iter().all(|&e| e == 0.0), "{model}: ghosts carry no energy");
        }
        assert!(owners.iter().all(|&o| o == 1), "{model}: every atom owned once");
        let e_ref = reference.energy[0];
        assert!(close(energy, e_ref, 1e-6 * e_ref.abs()), "{model}: parts {energy} vs whole {e_ref}");
        assert!(close(atom_energy_sum, energy, 1e-9 * e_ref.abs()), "{model}: per-atom energies {atom_energy_sum} vs {energy}");
        let f_scale = reference.forces.iter().flatten().fold(0.0f64, |m, f| m.max(f.abs()));
        let worst_f = forces.iter().flatten().zip(reference.forces.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst_f < 2e-5 * f_scale, "{model}: forces differ by {worst_f} eV/Å (largest {f_scale})");
        let w_scale = reference.virial[0].iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let worst_w = virial.iter().zip(&reference.virial[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst_w < 2e-5 * w_scale, "{model}: virial differs by {worst_w} eV (largest {w_scale})");
        // The per-atom virials add up to the virial.
        let atom_w: f64 = results.iter().map(|(o, _, _)| o.atom_virials.iter().map(|w| w[0] + w[4] + w[8]).sum::<f64>()).sum();
        let trace = virial[0] + virial[4] + virial[8];
        assert!(close(atom_w, trace, 1e-9 * w_scale.max(1.0)), "{model}: per-atom virials {atom_w} vs {trace}");
        println!("{model} (ghosts {}): parts vs whole: energy {:.1e} relative, forces {worst_f:.1e} eV/Å, virial {worst_w:.1e} eV", if exchanged { "one cutoff, exchanged" } else { "to the receptive field" }, (energy - e_ref).abs() / e_ref.abs());
    }
}

/// A part whose MCGM pooling were not added up over the parts would be wrong: with the reduction
/// left out (each part pooling only its own atoms), the MCGM model's parts no longer add up.
#[test]
fn mcgm_parts_need_the_reduction() {
    let (x, t, cell) = water(3);
    let species = ["O".to_string(), "H".to_string()];
    let path = repo("potentials/water-schnet-mcgm-soft");
    let mut whole = Evaluator::load(&path, &species, 0).unwrap();
    let reach = whole.receptive_field() + 0.5;
    let periodic = Structure { positions: &x, types: &t, cell: Cell::new(cell, [true; 3]).unwrap(), owned: x.len(), charge: 0.0, same_atoms: SameAtoms::No };
    let e_ref = whole.evaluate(&periodic, &mut |_| {}, None).unwrap().energy[0];
    let mut energy = 0.0;
    for p in 0..2 {
        let (pos, typ, owned, _) = part(&x, &t, &cell, p, 2, reach);
        let s = Structure { positions: &pos, types: &typ, cell: Cell::open(), owned, charge: 0.0, same_atoms: SameAtoms::No };
        energy += whole.evaluate(&s, &mut |_| {}, None).unwrap().energy[0];
    }
    assert!((energy - e_ref).abs() > 1e-4, "without the reduction the parts still add up ({energy} vs {e_ref}): the test cannot see MCGM");
}

#[test]
fn a_batch_equals_its_structures_one_by_one_and_bad_input_is_refused() {
    let species = ["O".to_string(), "H".to_string()];
    let mut e = Evaluator::load(&repo("potentials/water-schnet-mcgm-soft"), &species, 0).unwrap();
    let (x1, t1, c1) = water(1);
    let (x2, t2, c2) = water(2);
    let s1 = Structure { positions: &x1, types: &t1, cell: Cell::new(c1, [true; 3]).unwrap(), owned: x1.len(), charge: 0.0, same_atoms: SameAtoms::No };
    let s2 = Structure { positions: &x2, types: &t2, cell: Cell::new(c2, [true; 3]).unwrap(), owned: x2.len(), charge: 0.0, same_atoms: SameAtoms::No };
    let one = e.evaluate(&s1, &mut |_| {}, None).unwrap();
    let two = e.evaluate(&s2, &mut |_| {}, None).unwrap();
    let batch = e.evaluate_batch(&[s1, s2]).unwrap();
    assert!(close(batch.energy[0], one.energy[0], 1e-9 * one.energy[0].abs()) && close(batch.energy[1], two.energy[0], 1e-9 * two.energy[0].abs()));
    let worst = batch.forces.iter().flatten().zip(one.forces.iter().chain(&two.forces).flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-6, "batch forces differ by {worst}");

    let err = |r: Result<Output, String>| r.err().expect("refused");
    let bad_type = [0u32, 7];
    let msg = err(e.evaluate(&Structure { positions: &x1[..2], types: &bad_type, cell: Cell::open(), owned: 2, charge: 0.0, same_atoms: SameAtoms::No }, &mut |_| {}, None));
    assert!(msg.contains("type 7") && msg.contains("2 species"), "{msg}");
    let nan = [[f64::NAN, 0.0, 0.0], [1.0, 0.0, 0.0]];
    let msg = err(e.evaluate(&Structure { positions: &nan, types: &[0, 1], cell: Cell::open(), owned: 2, charge: 0.0, same_atoms: SameAtoms::No }, &mut |_| {}, None));
    assert!(msg.contains("atom 1") && msg.contains("not finite"), "{msg}");
    let msg = Evaluator::load(&repo("potentials/water-schnet"), &["O".into(), "Xe".into()], 0).err().unwrap();
    assert!(msg.contains("Xe") && msg.contains("H, O"), "{msg}");
    let msg = Evaluator::load(&repo("potentials/no-such-model"), &species, 0).err().unwrap();
    assert!(msg.contains("no-such-model"), "{msg}");
}

/// Successive calls reuse the neighbour list while the atoms move less than half its skin, and
/// give what a new list gives; other atoms, other types or larger moves get a new list.
#[test]
fn a_kept_neighbour_list_gives_what_a_new_one_gives() {
    let species = ["O".to_string(), "H".to_string()];
    let path = repo("potentials/water-schnet-mcgm-soft");
    let (mut kept, mut fresh) = (Evaluator::load(&path, &species, 0).unwrap(), Evaluator::load(&path, &species, 0).unwrap());
    let (mut x, t, c) = water(2);
    let cell = Cell::new(c, [true; 3]).unwrap();
    let mut noise = common::Uniform::new(3);
    for (step, amplitude) in [0.0, 0.1, 0.2, 0.45, 0.1, 0.8].into_iter().enumerate() {
        x.iter_mut().flatten().for_each(|v| *v += amplitude * (2.0 * noise.next() - 1.0) / 3f64.sqrt());
        let s = |same_atoms| Structure { positions: &x, types: &t, cell: cell.clone(), owned: x.len(), charge: 0.0, same_atoms };
        let a = kept.evaluate(&s(if step % 2 == 0 { SameAtoms::Unknown } else { SameAtoms::Yes }), &mut |_| {}, None).unwrap();
        let b = fresh.evaluate(&s(SameAtoms::No), &mut |_| {}, None).unwrap();
        assert!((a.energy[0] - b.energy[0]).abs() < 1e-9 * b.energy[0].abs(), "step {step}: {} vs {}", a.energy[0], b.energy[0]);
        let worst = a.forces.iter().flatten().zip(b.forces.iter().flatten()).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "step {step}: forces differ by {worst}");
    }
    // Other types at the same places: not the same atoms.
    let swapped: Vec<u32> = t.iter().map(|&k| 1 - k).collect();
    let mut s = |types: &[u32], same_atoms| kept.evaluate(&Structure { positions: &x, types, cell: cell.clone(), owned: x.len(), charge: 0.0, same_atoms }, &mut |_| {}, None).unwrap().energy[0];
    let (a, b) = (s(&swapped, SameAtoms::Unknown), fresh.evaluate(&Structure { positions: &x, types: &swapped, cell: cell.clone(), owned: x.len(), charge: 0.0, same_atoms: SameAtoms::No }, &mut |_| {}, None).unwrap().energy[0]);
    assert!((a - b).abs() < 1e-9 * b.abs(), "swapped types: {a} vs {b}");
}

/// A rank may own no atoms (many ranks, a small or clustered system): its part must still join
/// every reduction and every ghost exchange the other ranks make, or they would wait forever.
#[test]
fn an_empty_part_joins_every_collective_call() {
    let species = ["O".to_string(), "H".to_string()];
    for model in ["water-schnet-mcgm-soft", "water-schnet-mcgm-hard", "water-painn"] {
        let mut e = Evaluator::load(&repo(&format!("potentials/{model}")), &species, 0).unwrap();
        let count = |e: &mut Evaluator, x: &[Vec3], t: &[u32], owned: usize| {
            struct Counter(usize);
            impl GhostExchange for Counter {
                fn forward(&mut self, _: &mut [f32], _: usize) {
                    self.0 += 1;
                }
                fn reverse(&mut self, _: &mut [f32], _: usize) {
                    self.0 += 1;
                }
            }
            let (mut reductions, mut exchanges) = (0, Counter(0));
            let s = Structure { positions: x, types: t, cell: Cell::open(), owned, charge: 0.0, same_atoms: SameAtoms::No };
            let out = e.evaluate(&s, &mut |_| reductions += 1, Some(&mut exchanges)).unwrap();
            assert!(out.energy[0].is_finite() && out.forces.iter().flatten().all(|f| f.is_finite()), "{model}: {} atoms", x.len());
            (reductions, exchanges.0)
        };
        let (x, t, _) = water(1);
        let full = count(&mut e, &x, &t, x.len());
        assert!((full.0 > 0 || !model.contains("mcgm")) && full.1 > 0, "{model}: {full:?}");
        assert_eq!(count(&mut e, &[], &[], 0), full, "{model}: a rank with no atoms at all");
        assert_eq!(count(&mut e, &x, &t, 0), full, "{model}: a rank with ghosts only");
    }
}
