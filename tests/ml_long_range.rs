//! Long range (issue 19): the electrostatics of learned charges and the model around them.
//!
//! - Ewald reproduces rock salt's Madelung constant (cubic and triclinic primitive cells), does
//!   not depend on its splitting parameter (point and Gaussian charges, charged cells), and
//!   equals the direct lattice sum of whole cells plus its dipole term;
//! - the forces, the potentials (dE/dq) and the virial are the derivatives of the energy
//!   (central differences), periodic triclinic and open; the pair kernel the burn model trains
//!   with gives the same energy, forces and virial;
//! - the model's learned charges sum to the structure's charge exactly; its forces and virial are
//!   the derivatives of its energy; it is invariant under rotation, translation, permutation and
//!   batch composition; and the CPU fast path agrees with the burn reference for charged
//!   structures (the conformance suite covers neutral ones).

mod common;

use mdrun::cell::Cell;
use mdrun::ml::dataset::Structure;
use mdrun::ml::electrostatics::{COULOMB_CONSTANT, Coulomb, Field};
use mdrun::ml::implementation::{BurnModel, CpuInference, Evaluation, ModelImplementation};
use mdrun::ml::model::{LongRange, Model, ModelConfig};
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::tensor::{Ctx, to_vec};

const MADELUNG_ROCK_SALT: f64 = 1.747_564_594_633_182;

fn rock_salt_conventional(a: f64) -> (Vec<[f64; 3]>, Vec<f64>, Cell) {
    let fcc = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]];
    let mut positions = Vec::new();
    let mut charges = Vec::new();
    for (offset, q) in [([0.0, 0.0, 0.0], 1.0), ([0.5, 0.0, 0.0], -1.0)] {
        for f in fcc {
            positions.push([0, 1, 2].map(|k| (f[k] + offset[k]) * a));
            charges.push(q);
        }
    }
    (positions, charges, Cell::orthorhombic(a, a, a).unwrap())
}

#[test]
fn ewald_gives_the_madelung_constant_of_rock_salt() {
    let a = 5.64;
    let expected = -MADELUNG_ROCK_SALT * COULOMB_CONSTANT / (a / 2.0);
    let point = Coulomb { width: 0.0, mesh: None };
    let (x, q, cell) = rock_salt_conventional(a);
    let conventional = point.field(&x, &cell, &q).unwrap().energy / 4.0;
    // The primitive cell is triclinic (60° between its vectors).
    let h = a / 2.0;
    let primitive = Cell::new([[0.0, h, h], [h, 0.0, h], [h, h, 0.0]], [true; 3]).unwrap();
    let one_pair = point.field(&[[0.0; 3], [h, 0.0, 0.0]], &primitive, &[1.0, -1.0]).unwrap().energy;
    for (what, e) in [("conventional cell", conventional), ("triclinic primitive cell", one_pair)] {
        println!("{what}: {e:.12} eV per ion pair, Madelung {:.12}", -e * h / COULOMB_CONSTANT);
        assert!((e / expected - 1.0).abs() < 1e-9, "{what}: {e} eV per pair, expected {expected}");
    }
    // The field is -dE/dx: zero on every ion of the perfect crystal.
    let f = point.field(&x, &cell, &q).unwrap().forces;
    assert!(f.iter().flatten().all(|v| v.abs() < 1e-9), "{f:?}");
}

/// A skewed triclinic cell with `n` random charges (net charge `total`).
fn random_charges(n: usize, total: f64, seed: u64) -> (Vec<[f64; 3]>, Vec<f64>, Cell) {
    let cell = Cell::new([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [-1.0, 0.8, 7.5]], [true; 3]).unwrap();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let positions: Vec<[f64; 3]> = (0..n).map(|_| cell.cartesian([uniform(), uniform(), uniform()])).collect();
    let mut charges: Vec<f64> = (0..n).map(|_| uniform() * 2.0 - 1.0).collect();
    let shift = (total - charges.iter().sum::<f64>()) / n as f64;
    charges.iter_mut().for_each(|q| *q += shift);
    (positions, charges, cell)
}

fn largest_gap(a: &Field, b: &Field) -> f64 {
    let scale = |f: &Field| f.forces.iter().flatten().chain(&f.potential).chain(&f.virial).fold(f.energy.abs(), |m, v| m.max(v.abs()));
    let values = |f: &Field| {
        let mut v = vec![f.energy];
        v.extend(f.forces.iter().flatten());
        v.extend(&f.potential);
        v.extend(&f.virial);
        v
    };
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale(a)
}

#[test]
fn ewald_does_not_depend_on_its_splitting() {
    let (x, q, cell) = random_charges(12, 0.7, 1);
    for (width, alphas) in [(0.0, [0.3, 0.45, 0.7]), (0.8, [0.3, 0.5, 1.0 / (0.8 * std::f64::consts::SQRT_2)])] {
        let coulomb = Coulomb { width, mesh: None };
        let fields: Vec<Field> = alphas.iter().map(|&alpha| coulomb.ewald_sum(&coulomb.ewald_with(alpha, &cell), &x, &cell, &q).unwrap()).collect();
        let automatic = coulomb.field(&x, &cell, &q).unwrap();
        for (alpha, f) in alphas.iter().zip(&fields) {
            let gap = largest_gap(&automatic, f);
            println!("σ = {width} Å, α = {alpha:.3}/Å: E = {:.10} eV, largest gap to the automatic α {gap:.1e}", f.energy);
            assert!(gap < 1e-8, "σ = {width}, α = {alpha}: gap {gap:.2e}");
        }
    }
}

#[test]
fn ewald_equals_the_direct_lattice_sum_of_whole_cells() {
    // A neutral cell summed over the cells within a sphere converges to Ewald's (tin-foil)
    // energy plus the surface term 2π |D|² / (3V) of the cell's dipole D.
    let a = 5.0;
    let cell = Cell::orthorhombic(a, a, a).unwrap();
    let x = [[0.5, 0.7, 1.1], [3.2, 1.9, 0.4], [2.2, 4.1, 3.3], [4.4, 3.0, 2.0]];
    let q = [0.8, -0.5, 0.6, -0.9];
    for width in [0.0, 0.5] {
        let coulomb = Coulomb { width, mesh: None };
        let ewald = coulomb.field(&x, &cell, &q).unwrap().energy;
        let dipole: [f64; 3] = [0, 1, 2].map(|k| x.iter().zip(&q).map(|(r, q)| q * r[k]).sum());
        let surface = COULOMB_CONSTANT * 2.0 * std::f64::consts::PI / (3.0 * a * a * a) * (dipole[0].powi(2) + dipole[1].powi(2) + dipole[2].powi(2));
        let reach = 40i32;
        let mut direct = 0.0;
        for i in -reach..=reach {
            for j in -reach..=reach {
                for k in -reach..=reach {
                    if i * i + j * j + k * k > reach * reach {
                        continue;
                    }
                    let n = [i as f64 * a, j as f64 * a, k as f64 * a];
                    for (s, (xs, qs)) in x.iter().zip(&q).enumerate() {
                        for (t, (xt, qt)) in x.iter().zip(&q).enumerate() {
                            if (i, j, k) == (0, 0, 0) && s == t {
                                continue;
                            }
                            let d = ((xt[0] + n[0] - xs[0]).powi(2) + (xt[1] + n[1] - xs[1]).powi(2) + (xt[2] + n[2] - xs[2]).powi(2)).sqrt();
                            let phi = if width > 0.0 { libm::erf(d / (std::f64::consts::SQRT_2 * width)) / d } else { 1.0 / d };
                            direct += 0.5 * qs * qt * phi;
                        }
                    }
                }
            }
        }
        direct *= COULOMB_CONSTANT;
        let gap = (direct - (ewald + surface)).abs() / ewald.abs();
        println!("σ = {width}: direct sum over {reach} cells {direct:.8} eV, Ewald {ewald:.8} + surface {surface:.8}: gap {gap:.1e}");
        assert!(gap < 1e-4, "σ = {width}: {direct} vs {} (gap {gap:.1e})", ewald + surface);
    }
}

/// Central differences of the energy: by positions (forces), by charges (potentials) and by
/// strain (virial, W = -dE/dε, cell and positions deformed together).
fn check_derivatives(label: &str, coulomb: Coulomb, x: &[[f64; 3]], cell: &Cell, q: &[f64]) {
    let f = coulomb.field(x, cell, q).unwrap();
    let energy = |x: &[[f64; 3]], cell: &Cell, q: &[f64]| coulomb.field(x, cell, q).unwrap().energy;
    let h = 1e-5;
    let scale = f.forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        for k in 0..3 {
            let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
            plus[i][k] += h;
            minus[i][k] -= h;
            let numeric = -(energy(&plus, cell, q) - energy(&minus, cell, q)) / (2.0 * h);
            worst.0 = worst.0.max((numeric - f.forces[i][k]).abs() / scale);
        }
        let (mut plus, mut minus) = (q.to_vec(), q.to_vec());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (energy(x, cell, &plus) - energy(x, cell, &minus)) / (2.0 * h);
        worst.1 = worst.1.max((numeric - f.potential[i]).abs() / f.potential.iter().fold(0.0f64, |m, v| m.max(v.abs())));
    }
    let w_scale = f.virial.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for a in 0..3 {
        for b in 0..3 {
            let strained = |e: f64| {
                let deform = |r: [f64; 3]| {
                    let mut out = r;
                    out[a] += e * r[b];
                    out
                };
                let vectors = cell.vectors().map(deform);
                let cell = Cell::new(vectors, cell.pbc()).unwrap();
                energy(&x.iter().map(|&r| deform(r)).collect::<Vec<_>>(), &cell, q)
            };
            let numeric = -(strained(h) - strained(-h)) / (2.0 * h);
            worst.2 = worst.2.max((numeric - f.virial[3 * a + b]).abs() / w_scale);
        }
    }
    println!("{label}: forces {:.1e}, potentials {:.1e}, virial {:.1e} off the differences", worst.0, worst.1, worst.2);
    assert!(worst.0 < 1e-7 && worst.1 < 1e-7 && worst.2 < 1e-7, "{label}: {worst:?}");
}

#[test]
fn forces_potentials_and_virial_are_derivatives_of_the_energy() {
    let (x, q, cell) = random_charges(10, -0.4, 2);
    check_derivatives("periodic triclinic, point charges", Coulomb { width: 0.0, mesh: None }, &x, &cell, &q);
    check_derivatives("periodic triclinic, σ = 1 Å", Coulomb { width: 1.0, mesh: None }, &x, &cell, &q);
    let open = Cell::new(*cell.vectors(), [false; 3]).unwrap();
    check_derivatives("open, σ = 1 Å", Coulomb { width: 1.0, mesh: None }, &x, &open, &q);
    let slab = Cell::new(*cell.vectors(), [true, true, false]).unwrap();
    let err = Coulomb { width: 1.0, mesh: None }.field(&x, &slab, &q).unwrap_err();
    assert!(err.contains("periodic along all three axes or along none"), "{err}");
}

#[test]
fn the_pair_kernel_gives_the_same_energy_forces_and_virial() {
    let (x, q, cell) = random_charges(9, 1.0, 3);
    let open = Cell::new(*cell.vectors(), [false; 3]).unwrap();
    for (what, cell) in [("periodic", cell), ("open", open)] {
        let coulomb = Coulomb { width: 1.0, mesh: None };
        let field = coulomb.field(&x, &cell, &q).unwrap();
        let k = coulomb.pair_kernel(&x, &cell).unwrap();
        let mut from_kernel = Field { energy: 0.0, potential: vec![0.0; x.len()], forces: vec![[0.0; 3]; x.len()], virial: [0.0; 9] };
        for p in 0..k.kernel.len() {
            let (i, j) = (k.first[p], k.second[p]);
            let qq = q[i] * q[j];
            from_kernel.energy += qq * k.kernel[p];
            from_kernel.potential[i] += k.kernel[p] * q[j];
            from_kernel.potential[j] += k.kernel[p] * q[i];
            for c in 0..3 {
                from_kernel.forces[i][c] += qq * k.gradient[p][c];
                from_kernel.forces[j][c] -= qq * k.gradient[p][c];
            }
            (0..9).for_each(|c| from_kernel.virial[c] += qq * k.strain[p][c]);
        }
        let gap = largest_gap(&field, &from_kernel);
        println!("{what}: pair kernel vs field {gap:.1e}");
        assert!(gap < 1e-10, "{what}: {gap:.2e}");
    }
}

/// A small long-range model: learned charges, projected (false) or by charge equilibration.
fn long_range_model(backbone: &str, equilibration: bool) -> Model {
    long_range_model_on(backbone, equilibration, &Ctx::cpu_inference(true))
}

fn long_range_model_on(backbone: &str, equilibration: bool, ctx: &Ctx) -> Model {
    let config = ModelConfig { long_range: Some(LongRange { charge_width: 1.0, charge_embedding: true, equilibration }), ..common::small_config(backbone, None) };
    Model::new(config, common::small_normalization(), 5, ctx)
}

/// Both ways to the charges, named.
const CHARGE_KINDS: [(&str, bool); 2] = [("projected", false), ("Qeq", true)];

fn burn(model: &Model) -> BurnModel {
    BurnModel { model: model.clone(), ctx: Ctx::cpu_inference(true), f64_precision: true }
}

fn charged(cell: Cell, n: usize, charge: f64, seed: u32) -> Structure {
    let mut s = common::labelled_structure(cell, n, &[("C", 6), ("H", 1), ("O", 8), ("N", 7)], seed);
    s.charge = charge;
    s
}

fn open_molecule(charge: f64) -> Structure {
    charged(Cell::new([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]], [false; 3]).unwrap(), 10, charge, 4)
}

fn periodic_triclinic(charge: f64) -> Structure {
    charged(Cell::new([[8.0, 0.0, 0.0], [1.2, 7.5, 0.0], [-0.8, 0.6, 8.2]], [true; 3]).unwrap(), 14, charge, 5)
}

fn charges_of(e: &Evaluation) -> Vec<f64> {
    e.layers.iter().find(|l| l.name == "charges").expect("a charges layer").values.clone()
}

#[test]
fn the_features_know_the_total_charge() {
    // The same atoms, neutral and charged: with the charge embedding every atom's features
    // differ, the farthest ones too (not only through the charges' equal shift).
    let model = long_range_model("schnet", false);
    let (neutral, charged) = (open_molecule(0.0), open_molecule(1.0));
    let e = burn(&model).evaluate(&[neutral, charged]).unwrap();
    let first = |k: usize| e[k].layers.iter().find(|l| l.name == "block 0 interaction").unwrap().values.clone();
    let (a, b) = (first(0), first(1));
    let width = a.len() / 10;
    for atom in 0..10 {
        let gap = (0..width).map(|c| (a[atom * width + c] - b[atom * width + c]).abs()).fold(0.0, f64::max);
        assert!(gap > 1e-3, "atom {atom}: features unchanged by the total charge ({gap:.1e})");
    }
}

#[test]
fn learned_charges_sum_to_the_total_charge() {
    for (kind, equilibration) in CHARGE_KINDS {
        let model = long_range_model("schnet", equilibration);
        for s in [open_molecule(1.0), open_molecule(-2.0), periodic_triclinic(0.0), periodic_triclinic(-1.0)] {
            let e = burn(&model).evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
            let fast = CpuInference::new(&model).unwrap().evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
            for (what, q) in [("burn", charges_of(&e)), ("CPU fast path", charges_of(&fast))] {
                let sum: f64 = q.iter().sum();
                println!("{kind}, {what}, total charge {}: learned charges {:?}... sum {sum:.15}", s.charge, &q[..3]);
                // The fast path's charges layer is f32.
                let tolerance = if what == "burn" { 1e-12 } else { 1e-6 };
                assert!((sum - s.charge).abs() < tolerance, "{kind}, {what}: {sum} vs {}", s.charge);
                assert!(q.iter().any(|&v| (v - s.charge / q.len() as f64).abs() > 1e-3), "{kind}: the charges are not all equal");
            }
        }
    }
}

#[test]
fn model_forces_and_virial_are_derivatives_of_its_energy() {
    for (backbone, (kind, equilibration)) in ["schnet", "painn"].into_iter().flat_map(|b| CHARGE_KINDS.map(|k| (b, k))) {
        let model = long_range_model(backbone, equilibration);
        for (what, s) in [("open, charge +1", open_molecule(1.0)), ("periodic triclinic, charge -1", periodic_triclinic(-1.0))] {
            let mut implementation = burn(&model);
            let base = implementation.evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
            let h = 1e-4;
            let energy = |s: &Structure| burn(&model).evaluate(std::slice::from_ref(s)).unwrap()[0].energy;
            let worst = common::worst_force_error(&s, &base.forces, &[0, 3, 7], h, energy);
            let mut worst_virial: f64 = 0.0;
            if s.cell.pbc() == [true; 3] {
                let w_scale = base.virial.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (a, b) in [(0, 0), (1, 2), (2, 0), (1, 1)] {
                    let strained = |e: f64| {
                        let deform = |r: [f64; 3]| {
                            let mut out = r;
                            out[a] += e * r[b];
                            out
                        };
                        let mut t = s.clone();
                        t.cell = Cell::new(s.cell.vectors().map(deform), [true; 3]).unwrap();
                        t.positions = s.positions.iter().map(|&r| deform(r)).collect();
                        energy(&t)
                    };
                    worst_virial = worst_virial.max((-(strained(h) - strained(-h)) / (2.0 * h) - base.virial[3 * a + b]).abs() / w_scale);
                }
            }
            println!("{backbone}, {kind} charges, {what}: forces {worst:.1e}, virial {worst_virial:.1e} off the central differences");
            assert!(worst < 1e-6 && worst_virial < 1e-6, "{backbone}, {kind} charges, {what}: forces {worst:.1e}, virial {worst_virial:.1e}");
        }
    }
}

#[test]
fn the_model_is_invariant_and_independent_of_its_batch() {
    for (_, equilibration) in CHARGE_KINDS {
        invariant_and_independent_of_its_batch(&long_range_model("painn", equilibration));
    }
}

fn invariant_and_independent_of_its_batch(model: &Model) {
    let s = open_molecule(1.0);
    let base = burn(model).evaluate(std::slice::from_ref(&s)).unwrap().remove(0);
    // Rotation about z by 30° and a translation.
    let (c, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let mut moved = s.clone();
    moved.positions = s.positions.iter().map(|r| [c * r[0] - sn * r[1] + 0.7, sn * r[0] + c * r[1] - 1.3, r[2] + 0.4]).collect();
    let rotated = burn(model).evaluate(&[moved]).unwrap().remove(0);
    assert!((rotated.energy - base.energy).abs() < 1e-10, "rotation: {} vs {}", rotated.energy, base.energy);
    for (f, g) in base.forces.iter().zip(&rotated.forces) {
        let turned = [c * f[0] - sn * f[1], sn * f[0] + c * f[1], f[2]];
        assert!((0..3).all(|k| (turned[k] - g[k]).abs() < 1e-9), "{turned:?} vs {g:?}");
    }
    // Permutation: reversed atom order.
    let mut reversed = s.clone();
    reversed.numbers.reverse();
    reversed.positions.reverse();
    let permuted = burn(model).evaluate(&[reversed]).unwrap().remove(0);
    assert!((permuted.energy - base.energy).abs() < 1e-10);
    assert!(permuted.forces.iter().rev().zip(&base.forces).all(|(a, b)| (0..3).all(|k| (a[k] - b[k]).abs() < 1e-9)));
    // Batch composition: alone, or after a periodic charged structure.
    let together = burn(model).evaluate(&[periodic_triclinic(-1.0), s.clone()]).unwrap();
    assert!((together[1].energy - base.energy).abs() < 1e-10);
    assert!(together[1].forces.iter().zip(&base.forces).all(|(a, b)| (0..3).all(|k| (a[k] - b[k]).abs() < 1e-10)));
}

#[test]
fn the_cpu_fast_path_agrees_with_burn_on_charged_structures() {
    // Qeq: burn solves densely (Cholesky), the fast path by conjugate gradients over Coulomb sums.
    for (backbone, (kind, equilibration)) in ["schnet", "painn"].into_iter().flat_map(|b| CHARGE_KINDS.map(|k| (b, k))) {
        let model = long_range_model(backbone, equilibration);
        let structures = [open_molecule(1.0), periodic_triclinic(-1.0)];
        let reference = burn(&model).evaluate(&structures).unwrap();
        let fast = CpuInference::new(&model).unwrap().evaluate(&structures).unwrap();
        for (r, f) in reference.iter().zip(&fast) {
            let n = r.forces.len() as f64;
            let scale = r.forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
            let forces = r.forces.iter().flatten().zip(f.forces.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
            let charges = charges_of(r).iter().zip(charges_of(f)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            println!("{backbone}, {kind} charges: energy {:.1e} eV/atom, forces {forces:.1e}, charges {charges:.1e}", (r.energy - f.energy).abs() / n);
            assert!((r.energy - f.energy).abs() / n < 1e-6 && forces < 5e-5 && charges < 1e-5);
            assert!((charges_of(f).iter().sum::<f64>() - charges_of(r).iter().sum::<f64>()).abs() < 1e-5);
        }
    }
}

#[test]
fn equilibrated_charges_train_by_the_exact_gradient_of_a_force_loss() {
    // The burn model returns Qeq's charges as q0 − P (Δχ + q0 ⊙ ΔJ): the value from the host's
    // dense solve, the first derivative in χ and J from its response P. A loss on forces and
    // energies, differentiated by autodiff in the parameters, must then equal central
    // differences in those parameters: a detached solution without P would miss how the
    // charges move with the electronegativities and hardnesses.
    let ctx = Ctx::cpu(true);
    let model = long_range_model_on("schnet", true, &ctx);
    let structures = [open_molecule(1.0), periodic_triclinic(-1.0)];
    let refs: Vec<&Structure> = structures.iter().collect();
    let batch = Batch::new(&refs, model.config.cutoff, |z| model.species_index(z)).unwrap();
    let graph = GraphTensors::new(&batch, &ctx);
    let n = batch.n_atoms;
    let weights: Vec<f64> = (0..3 * n).map(|k| ((k * 7919) % 13) as f64 / 6.0 - 1.0).collect();
    let loss = |m: &Model| {
        let p = m.predict(&batch, &graph, &ctx).unwrap();
        (p.forces * ctx.matrix(&weights, n, 3)).sum() + p.energy.sum().mul_scalar(0.1)
    };
    let grads = loss(&model).backward();
    let value = |m: &Model| to_vec(loss(m).detach().reshape([1, 1]))[0];
    let h = 1e-5;
    let mut worst = 0.0f64;
    for name in ["charges.hardness", "charges.layer2.weight", "charges.layer1.weight", "embedding"] {
        let k = model.params.names.iter().position(|p| p == name).unwrap_or_else(|| panic!("a parameter {name}"));
        let tensor = model.params.values[k].clone();
        let dims = tensor.dims();
        let base = to_vec(tensor.clone().detach());
        let autodiff = to_vec(tensor.grad(&grads).expect("a gradient"));
        for e in [0, base.len() / 2, base.len() - 1] {
            let moved = |d: f64| {
                let mut v = base.clone();
                v[e] += d;
                let mut values = model.params.values.clone();
                values[k] = ctx.matrix(&v, dims[0], dims[1]);
                value(&model.with_params(values))
            };
            let numeric = (moved(h) - moved(-h)) / (2.0 * h);
            let gap = (numeric - autodiff[e]).abs() / numeric.abs().max(1e-3);
            println!("{name}[{e}]: autodiff {:.9e}, central differences {numeric:.9e}, relative gap {gap:.1e}", autodiff[e]);
            worst = worst.max(gap);
        }
    }
    assert!(worst < 1e-5, "the training gradient differs from central differences by {worst:.1e}");
}

/// The largest gap between `field`'s forces on the (atom, axis) `components` and central
/// differences of `energy` (steps of 1e-5 Å), relative to its largest force.
fn gradient_gap(field: &Field, x: &[[f64; 3]], components: &[(usize, usize)], energy: impl Fn(&[[f64; 3]]) -> f64) -> f64 {
    let h = 1e-5;
    let scale = field.forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst: f64 = 0.0;
    for &(i, k) in components {
        let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
        plus[i][k] += h;
        minus[i][k] -= h;
        worst = worst.max((-(energy(&plus) - energy(&minus)) / (2.0 * h) - field.forces[i][k]).abs() / scale);
    }
    worst
}

#[test]
fn pme_agrees_with_plain_ewald_and_its_forces_are_its_gradient() {
    // 600 random charges (net -0.3 e) in the skewed triclinic cell, enlarged: PME's energy,
    // potentials, forces and virial against the plain sum over k, for Gaussian and point charges.
    // Two enlargements, so that the grid's z size is even in one (its transform has a Nyquist
    // plane, counted once) and odd in the other.
    let (x0, q, small) = random_charges(600, -0.3, 6);
    let mut parities = Vec::new();
    for enlarge in [2.25, 2.5] {
        let cell = Cell::new(small.vectors().map(|v| v.map(|c| c * enlarge)), [true; 3]).unwrap();
        let x: Vec<[f64; 3]> = x0.iter().map(|r| r.map(|c| c * enlarge)).collect();
        for width in [1.0, 0.0] {
            let coulomb = Coulomb { width, mesh: None };
            let pme = coulomb.ewald(x.len(), &cell);
            assert!(x.len() >= mdrun::ml::electrostatics::PME_ATOMS);
            let mesh = pme.mesh().expect("PME from PME_ATOMS on");
            parities.push(mesh[2] % 2);
            let with_pme = coulomb.ewald_sum(&pme, &x, &cell, &q).unwrap();
            let plain = coulomb.ewald_sum(&coulomb.plain_ewald(x.len(), &cell), &x, &cell, &q).unwrap();
            let gap = largest_gap(&plain, &with_pme);
            println!("σ = {width} Å, grid {mesh:?}: PME E = {:.8} eV, plain Ewald {:.8} eV; largest gap {gap:.1e} of the largest value", with_pme.energy, plain.energy);
            assert!(gap < 2e-5, "σ = {width}, grid {mesh:?}: PME off plain Ewald by {gap:.2e}");
            // The forces are the gradient of PME's own energy (fixed grid and splitting).
            let worst = gradient_gap(&with_pme, &x, &[(0, 0), (17, 1), (300, 2), (599, 0)], |y| coulomb.ewald_sum(&pme, y, &cell, &q).unwrap().energy);
            println!("σ = {width} Å: PME forces vs central differences of PME's energy {worst:.1e}");
            assert!(worst < 1e-7, "σ = {width}: {worst:.2e}");
        }
    }
    assert!(parities.contains(&0) && parities.contains(&1), "the z sizes covered only one parity: {parities:?}");
}

/// `n` random charges (net `total`) in an open, roughly spherical cluster `radius` Å across.
fn open_cluster(n: usize, radius: f64, total: f64, seed: u64) -> (Vec<[f64; 3]>, Vec<f64>) {
    let (unit, q, _) = random_charges(4 * n, total, seed);
    let cube = Cell::new([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [-1.0, 0.8, 7.5]], [true; 3]).unwrap();
    let mut x = Vec::new();
    let mut charges = Vec::new();
    for (r, q) in unit.iter().zip(&q) {
        let s = cube.fractional(*r).map(|s| 2.0 * s - 1.0);
        if s.iter().map(|v| v * v).sum::<f64>() <= 1.0 && x.len() < n {
            x.push(s.map(|v| v * radius + 3.7));
            charges.push(*q);
        }
    }
    let shift = (total - charges.iter().sum::<f64>()) / charges.len() as f64;
    charges.iter_mut().for_each(|q| *q += shift);
    (x, charges)
}

#[test]
fn the_free_space_mesh_agrees_with_the_direct_sum_and_its_forces_are_its_gradient() {
    // An open cluster of 1,500 random charges (net +2 e): the mesh (ψ over pairs, the smooth rest
    // on the free-space grid) against every pair summed directly, for Gaussian and point
    // charges; translated by a fraction of a grid step (another grid under the atoms); and its
    // forces against central differences of its own energy.
    let (x, q) = open_cluster(1500, 16.0, 2.0, 7);
    assert_eq!(x.len(), 1500);
    let open = Cell::open();
    for width in [1.0, 0.0] {
        let mesh = Coulomb { width, mesh: Some(true) };
        let direct = Coulomb { width, mesh: Some(false) };
        let start = std::time::Instant::now();
        let on_mesh = mesh.field(&x, &open, &q).unwrap();
        let mesh_time = start.elapsed();
        let start = std::time::Instant::now();
        let exact = direct.field(&x, &open, &q).unwrap();
        let direct_time = start.elapsed();
        let gap = largest_gap(&exact, &on_mesh);
        println!(
            "σ = {width} Å: mesh E = {:.8} eV ({mesh_time:.2?}), direct {:.8} eV ({direct_time:.2?}); largest gap {gap:.1e} of the largest value",
            on_mesh.energy, exact.energy
        );
        assert!(gap < 2e-5, "σ = {width}: the mesh is off the direct sum by {gap:.2e}");
        let moved: Vec<[f64; 3]> = x.iter().map(|r| [r[0] + 0.31, r[1] - 0.17, r[2] + 0.05]).collect();
        let shifted = mesh.field(&moved, &open, &q).unwrap();
        let drift = (shifted.energy - on_mesh.energy).abs() / on_mesh.energy.abs();
        println!("σ = {width} Å: translated by a fraction of a grid step, E changes by {drift:.1e} relative");
        assert!(drift < 2e-6, "σ = {width}: translation changed E by {drift:.2e}");
        let worst = gradient_gap(&on_mesh, &x, &[(0, 0), (17, 1), (700, 2), (1499, 0)], |y| mesh.field(y, &open, &q).unwrap().energy);
        println!("σ = {width} Å: mesh forces vs central differences of its energy {worst:.1e}");
        assert!(worst < 1e-7, "σ = {width}: {worst:.2e}");
    }
}

#[test]
fn the_kept_kernel_products_equal_the_field_potentials() {
    // Charge equilibration's products (`Coulomb::potential_with`: real-space kernels kept per
    // pair, an open cell's direct-sum matrix kept) against `field_with`'s potentials, in every
    // method: periodic sum over k and PME, open direct sum and free-space mesh; twice at the
    // same positions with other charges (the kept values reused) and after a move.
    let (x, q, cell) = random_charges(300, -1.0, 11);
    let big = Cell::new([[21.0, 0.0, 0.0], [4.5, 19.5, 0.0], [-3.0, 2.4, 22.5]], [true; 3]).unwrap();
    let (xb, qb, _) = random_charges(900, 2.0, 12);
    let xb: Vec<[f64; 3]> = xb.iter().map(|r| r.map(|v| 3.0 * v)).collect();
    let (xo, qo) = open_cluster(700, 14.0, 1.0, 13);
    let open = Cell::new([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]], [false; 3]).unwrap();
    for (what, mesh, x, q, cell) in [("periodic, sum over k", Some(false), &x, &q, &cell), ("periodic, PME", Some(true), &xb, &qb, &big), ("open, direct", Some(false), &xo, &qo, &open), ("open, mesh", Some(true), &xo, &qo, &open)] {
        let coulomb = Coulomb { width: 1.0, mesh };
        let mut memory = mdrun::ml::electrostatics::Memory::default();
        let other: Vec<f64> = q.iter().rev().copied().collect();
        let moved: Vec<[f64; 3]> = x.iter().enumerate().map(|(i, r)| [r[0] + 0.01 * (i % 7) as f64, r[1], r[2] - 0.02]).collect();
        let mut worst = 0.0f64;
        for (x, q) in [(x, q), (x, &other), (&moved, q)] {
            let kept = coulomb.potential_with(&mut memory, x, cell, q).unwrap();
            let field = coulomb.field(x, cell, q).unwrap().potential;
            let scale = field.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            worst = worst.max(kept.iter().zip(&field).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale);
        }
        println!("{what}: kept products vs field potentials {worst:.1e} of the largest");
        assert!(worst < 1e-12, "{what}: {worst:.1e}");
    }
}
