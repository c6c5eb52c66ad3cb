//! Charge equilibration (Qeq, as in 4G-HDNNP and CELLI) for learned charges (issue 19): the
//! charges minimise
//! ```text
//! E_qeq(q) = Σ_i χ_i q_i + ½ Σ_i J_i q_i² + ½ qᵀ M q        subject to Σ_i q_i = Q
//! ```
//! with χ the learned electronegativities, J the hardnesses and ½ qᵀMq the charges' Coulomb
//! energy (`crate::ml::electrostatics`, which leaves out each Gaussian's self-energy). So charge
//! flows between atoms that no edge of the graph joins, as the Coulomb coupling pulls it: the
//! charge transfer a local charge head cannot model. The minimum satisfies
//! χ + J ⊙ q + M q = λ 1.
//!
//! J_i = `self_hardness(σ)` + softplus(h_Z): the first term is the Gaussian's own Coulomb energy,
//! which makes diag(J) + M the Coulomb matrix of whole Gaussians, positive semi-definite on
//! neutral changes of q (its kernel's transform is positive); the learned rest makes it
//! definite, so the minimum exists and is unique.
//!
//! Forces need no derivative of the solution: at the minimum dE/dq ∝ 1 and the charges' changes
//! sum to zero, so the forces are the Coulomb forces at fixed q plus q_i sent back through the
//! network as dE/dχ_i (the envelope theorem). Training needs q's first derivative in χ and J,
//! which `Solution::response` gives.

use crate::ml::electrostatics::{COULOMB_CONSTANT, Coulomb};
use rayon::prelude::*;

/// The hardness of a Gaussian charge of width σ (Å) by its own Coulomb energy, k_e 2a/√π with
/// a = 1/(√2 σ) (`Coulomb::a`), eV/e²: the kernel's limit at r = 0.
pub fn self_hardness(width: f64) -> f64 {
    COULOMB_CONSTANT * 2.0 * Coulomb { width, mesh: None }.a() / std::f64::consts::PI.sqrt()
}

/// The dense solution for a small structure (training).
pub struct Solution {
    /// The equilibrated charges, e.
    pub charges: Vec<f64>,
    /// P [n × n] row-major, the charges' response: dq = -P (dχ + q ⊙ dJ) to first order.
    pub response: Vec<f64>,
}

/// Solves Qeq for the matrix A = diag(J) + M [n × n] row-major (symmetric), with its Cholesky
/// factor in f64; O(n³), for training structures.
///
/// A may be indefinite along the uniform direction (a periodic cell's charged background), but
/// it is definite on neutral changes, which is all the constrained problem sees: adding c 1 1ᵀ
/// changes the objective by the constant ½ c Q² on Σ q = Q, so c is raised until the factor exists.
pub fn solve_dense(matrix: &[f64], chi: &[f64], total: f64) -> Result<Solution, String> {
    let n = chi.len();
    assert_eq!(matrix.len(), n * n);
    let scale = (0..n).map(|i| matrix[i * n + i].abs()).fold(0.0, f64::max).max(1e-300);
    let mut shift = 0.0;
    let factor = loop {
        let shifted: Vec<f64> = matrix.iter().map(|a| a + shift).collect();
        if let Some(l) = cholesky(&shifted, n) {
            break l;
        }
        if shift > 1e6 * scale {
            return Err("charge equilibration: the hardness and Coulomb matrix is not positive definite on neutral changes (non-finite charges or hardnesses?)".to_string());
        }
        shift = if shift == 0.0 { scale } else { 4.0 * shift };
    };
    // Columns of A⁻¹ in parallel; A⁻¹ is symmetric.
    let inverse: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|k| {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            cholesky_solve(&factor, n, &mut e);
            e
        })
        .collect();
    let u: Vec<f64> = (0..n).map(|i| inverse[i].iter().sum()).collect();
    let u_sum: f64 = u.iter().sum();
    let y: Vec<f64> = (0..n).map(|i| -(0..n).map(|j| inverse[i][j] * chi[j]).sum::<f64>()).collect();
    let lambda = (total - y.iter().sum::<f64>()) / u_sum;
    let charges: Vec<f64> = (0..n).map(|i| y[i] + lambda * u[i]).collect();
    let response = (0..n * n).map(|ij| inverse[ij / n][ij % n] - u[ij / n] * u[ij % n] / u_sum).collect();
    Ok(Solution { charges, response })
}

/// Lower Cholesky factor of a symmetric n × n matrix; None where it is not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            if i == j {
                if !(s > 0.0) {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// x ← A⁻¹ x for A = L Lᵀ.
fn cholesky_solve(l: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        x[i] = (x[i] - (0..i).map(|k| l[i * n + k] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    for i in (0..n).rev() {
        x[i] = (x[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
}

/// The largest conjugate-gradient iterations before `equilibrate` gives up.
pub const MAX_ITERATIONS: usize = 1000;

/// The stopping residual: the largest component of the gradient's part that λ does not absorb,
/// relative to the largest |χ| (at least 1 eV/e). A residual r leaves the charges off by about
/// r/J and so the forces (the envelope theorem's) off by the field times that: at 1e-8 of χ ≈ 10
/// eV/e, about 1e-8 e and 1e-7 eV/Å, under the f32 network's own noise, and the energy off by
/// r²/J. Each decade costs about 9 iterations on the ion-pair lattice (73 at 1e-10, 55 at 1e-8,
/// 40 at 1e-6), and NVE drifts alike at 1e-10 and 1e-8 (tests/ml_long_range_md.rs).
pub const TOLERANCE: f64 = 1e-8;

/// Solves Qeq by conjugate gradients projected on Σ q = Q (MD), with `coulomb(p)` = M p (one
/// Coulomb sum: Ewald, PME, the free-space mesh or the direct sum) as the matrix's product and
/// 1/J as the preconditioner. Starts from `start` where given (MD: charges extrapolated from
/// the steps before, `WarmStart`), moved onto Σ q = Q, else from the solution without the
/// Coulomb coupling. Returns the charges and the iterations taken.
pub fn equilibrate(chi: &[f64], hardness: &[f64], total: f64, start: Option<&[f64]>, mut coulomb: impl FnMut(&[f64]) -> Result<Vec<f64>, String>) -> Result<(Vec<f64>, usize), String> {
    let n = chi.len();
    let w: Vec<f64> = hardness.iter().map(|j| 1.0 / j).collect();
    let w_sum: f64 = w.iter().sum();
    // z = W r − W 1 (1ᵀ W r)/(1ᵀ W 1): the preconditioned residual, kept neutral.
    let precondition = |r: &[f64]| -> Vec<f64> {
        let shift = (0..n).map(|i| w[i] * r[i]).sum::<f64>() / w_sum;
        (0..n).map(|i| w[i] * (r[i] - shift)).collect()
    };
    let mut q: Vec<f64> = match start.filter(|q| q.len() == n && q.iter().all(|v| v.is_finite())) {
        // The guess's excess spread as the preconditioner spreads a uniform residual.
        Some(guess) => {
            let excess = (total - guess.iter().sum::<f64>()) / w_sum;
            (0..n).map(|i| guess[i] + w[i] * excess).collect()
        }
        None => {
            let mu = (total + (0..n).map(|i| w[i] * chi[i]).sum::<f64>()) / w_sum;
            (0..n).map(|i| w[i] * (mu - chi[i])).collect()
        }
    };
    // r = −(χ + J q + M q), the descent direction.
    let mq = coulomb(&q)?;
    let mut r: Vec<f64> = (0..n).map(|i| -(chi[i] + hardness[i] * q[i] + mq[i])).collect();
    let limit = TOLERANCE * chi.iter().fold(1.0f64, |m, c| m.max(c.abs()));
    let unabsorbed = |r: &[f64]| {
        let mean = r.iter().sum::<f64>() / n as f64;
        r.iter().fold(0.0f64, |m, v| m.max((v - mean).abs()))
    };
    let mut z = precondition(&r);
    let mut p = z.clone();
    // ρ = rᵀz = Σ z²/w, written so that r's large uniform part (λ, which z does not see) cannot
    // cancel it below zero.
    let inner = |z: &[f64]| (0..n).map(|i| z[i] * z[i] / w[i]).sum::<f64>();
    let mut rho = inner(&z);
    for iteration in 0..MAX_ITERATIONS {
        let gap = unabsorbed(&r);
        if !gap.is_finite() {
            return Err("charge equilibration: the residual is not finite (non-finite electronegativities or positions)".to_string());
        }
        if gap <= limit || rho == 0.0 {
            return Ok((q, iteration));
        }
        let mp = coulomb(&p)?;
        let ap: Vec<f64> = (0..n).map(|i| hardness[i] * p[i] + mp[i]).collect();
        let curvature: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
        if !(curvature > 0.0) {
            // p vanished to rounding just above the stopping residual.
            if gap <= 1e3 * limit {
                return Ok((q, iteration));
            }
            return Err(format!("charge equilibration: the energy is not convex along a search direction (curvature {curvature:.3e})"));
        }
        let step = rho / curvature;
        (0..n).for_each(|i| {
            q[i] += step * p[i];
            r[i] -= step * ap[i];
        });
        z = precondition(&r);
        let next = inner(&z);
        let beta = next / rho;
        rho = next;
        (0..n).for_each(|i| p[i] = z[i] + beta * p[i]);
    }
    Err(format!(
        "charge equilibration did not converge in {MAX_ITERATIONS} conjugate-gradient iterations (residual {:.2e} eV/e, wanted {limit:.1e})",
        unabsorbed(&r)
    ))
}

/// Charges carried from one MD evaluation to the next, one structure: the next solve starts from
/// the charges extrapolated from the last three, 3 q(t−Δt) − 3 q(t−2Δt) + q(t−3Δt), within
/// O(Δt³) of its answer, instead of from the uncoupled solution (fewer solutions before: the
/// linear extrapolation or the last one). On the 900-atom ion lattice at 0.25 fs that takes the
/// solve from 73 to 51 iterations (the linear one: 56); what is left is conjugate gradients'
/// slow last decades, not the start (`BENCHMARKS.md`).
///
/// What the last solve started from is kept too (the solutions behind the newest): a
/// checkpoint saves it (`saved`), and the restart's first evaluation, at the checkpoint's
/// positions, starts from exactly what the straight run's evaluation there did, so the
/// continuation stays bit-identical.
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    /// The latest solutions, newest first, at most `KEPT` + 1: the extrapolation reads the first
    /// `KEPT`, and the rest after the newest are what the last solve started from.
    history: Vec<Vec<f64>>,
}

impl WarmStart {
    /// Solutions the extrapolation reads.
    pub const KEPT: usize = 3;

    /// The start for a structure of `n` atoms (None: cold, no history of that size).
    pub fn guess(&self, n: usize) -> Option<Vec<f64>> {
        let usable = self.history.iter().take_while(|q| q.len() == n).count();
        let h = &self.history;
        match usable {
            0 => None,
            1 => Some(h[0].clone()),
            2 => Some((0..n).map(|i| 2.0 * h[0][i] - h[1][i]).collect()),
            _ => Some((0..n).map(|i| 3.0 * h[0][i] - 3.0 * h[1][i] + h[2][i]).collect()),
        }
    }

    /// Records this evaluation's solution.
    pub fn record(&mut self, charges: &[f64]) {
        self.history.truncate(Self::KEPT);
        self.history.insert(0, charges.to_vec());
    }

    /// What the last solve started from, flat: the number of solutions, the atoms, then each.
    pub fn saved(&self) -> Vec<f64> {
        let started_from = self.history.get(1..).unwrap_or_default();
        let n = started_from.first().map_or(0, Vec::len);
        let mut values = vec![started_from.len() as f64, n as f64];
        started_from.iter().for_each(|q| values.extend_from_slice(q));
        values
    }

    /// Takes the history from the front of `values` (as `saved` wrote it); returns how many
    /// values it read.
    pub fn restore(&mut self, values: &[f64]) -> Result<usize, String> {
        let (count, n) = match values {
            [count, n, ..] if count.fract() == 0.0 && (0.0..=Self::KEPT as f64).contains(count) && n.fract() == 0.0 && *n >= 0.0 => (*count as usize, *n as usize),
            _ => return Err("the saved charges do not start with their count and size".into()),
        };
        let end = count.checked_mul(n).and_then(|v| v.checked_add(2)).filter(|&end| end <= values.len()).ok_or_else(|| format!("{count} saved charge vectors of {n} atoms, but {} values", values.len()))?;
        self.history = (0..count).map(|k| values[2 + k * n..2 + (k + 1) * n].to_vec()).collect();
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small symmetric matrix with a negative uniform mode but definite on neutral vectors.
    fn matrix() -> (Vec<f64>, usize) {
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = if i == j { 3.0 + i as f64 } else { -0.2 - 0.05 * (i + j) as f64 } - 1.5;
            }
        }
        (a, n)
    }

    #[test]
    fn dense_and_iterative_solutions_agree_and_meet_the_constraint() {
        let (a, n) = matrix();
        let chi = [0.3, -1.2, 0.7, 2.0, -0.4];
        let dense = solve_dense(&a, &chi, -1.0).unwrap();
        assert!((dense.charges.iter().sum::<f64>() + 1.0).abs() < 1e-12);
        // Split A into its diagonal (the hardness) and the rest (the "Coulomb" product).
        let j: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        let (q, _) = equilibrate(&chi, &j, -1.0, None, |p| Ok((0..n).map(|i| (0..n).filter(|&k| k != i).map(|k| a[i * n + k] * p[k]).sum()).collect())).unwrap();
        for (x, y) in q.iter().zip(&dense.charges) {
            assert!((x - y).abs() < 1e-9, "{q:?} vs {:?}", dense.charges);
        }
        // Stationarity: χ + A q = λ 1.
        let g: Vec<f64> = (0..n).map(|i| chi[i] + (0..n).map(|k| a[i * n + k] * q[k]).sum::<f64>()).collect();
        assert!(g.iter().all(|v| (v - g[0]).abs() < 1e-9), "{g:?}");
        // The response is q's derivative in χ.
        let h = 1e-6;
        let mut moved = chi;
        moved[2] += h;
        let q2 = solve_dense(&a, &moved, -1.0).unwrap().charges;
        for i in 0..n {
            let numeric = (q2[i] - dense.charges[i]) / h;
            assert!((numeric + dense.response[i * n + 2]).abs() < 1e-6, "{numeric} vs {}", -dense.response[i * n + 2]);
        }
    }

    #[test]
    fn a_warm_start_extrapolates_its_history_and_its_saved_values_restore_it() {
        let mut w = WarmStart::default();
        assert_eq!(w.guess(3), None);
        w.record(&[1.0, 2.0, 3.0]);
        assert_eq!(w.guess(3), Some(vec![1.0, 2.0, 3.0]));
        assert_eq!(w.guess(4), None, "a history of another size is no start");
        let saved_before_second = w.saved();
        w.record(&[1.5, 2.0, 2.5]);
        // 2 q(t) − q(t − Δt).
        assert_eq!(w.guess(3), Some(vec![2.0, 2.0, 2.0]));
        // saved() is what the last solve started from: one solution, of 3 atoms.
        assert_eq!(w.saved(), vec![1.0, 3.0, 1.0, 2.0, 3.0]);
        assert_eq!(saved_before_second, vec![0.0, 0.0]);
        let mut back = WarmStart::default();
        assert_eq!(back.restore(&w.saved()).unwrap(), 5);
        assert_eq!(back.guess(3), Some(vec![1.0, 2.0, 3.0]));
        // 3 q(t) − 3 q(t − Δt) + q(t − 2Δt); a quadratic history is continued exactly.
        w.record(&[4.0, 4.0, 4.0]);
        assert_eq!(w.guess(3), Some(vec![8.5, 8.0, 7.5]));
        let mut square = WarmStart::default();
        [1.0, 4.0, 9.0].iter().for_each(|&k: &f64| square.record(&[k, 2.0 * k]));
        assert_eq!(square.guess(2), Some(vec![16.0, 32.0]));
        // Only the newest solutions of the asked size count.
        square.record(&[1.0, 2.0, 3.0]);
        assert_eq!(square.guess(2), None);
        assert!(back.restore(&[4.0, 1.0, 0.0, 0.0, 0.0, 0.0]).is_err(), "four solutions are more than it keeps");
        assert!(back.restore(&[2.0, 3.0, 1.0]).is_err(), "too few values");
        assert!(back.restore(&[]).is_err());
    }

    #[test]
    fn a_warm_start_lands_on_the_cold_solution_in_fewer_iterations() {
        // 60 sites on a line coupled by exp(-|x_i - x_j| / 3) (a positive definite kernel,
        // smooth enough that conjugate gradients need tens of iterations).
        let n = 60;
        let x: Vec<f64> = (0..n).map(|i| 0.3 * i as f64 + 0.05 * ((i * 7) % 5) as f64).collect();
        let j: Vec<f64> = (0..n).map(|i| 0.5 + 0.1 * (i % 3) as f64).collect();
        let chi: Vec<f64> = (0..n).map(|i| (0.7 * i as f64).sin()).collect();
        let product = |p: &[f64]| -> Result<Vec<f64>, String> { Ok((0..n).map(|i| (0..n).filter(|&k| k != i).map(|k| (-(x[i] - x[k]).abs() / 3.0).exp() * p[k]).sum()).collect()) };
        let mut a = vec![0.0; n * n];
        for r in 0..n {
            for c in 0..n {
                a[r * n + c] = if r == c { j[r] + 1.0 } else { (-(x[r] - x[c]).abs() / 3.0).exp() };
            }
        }
        // The dense solve's matrix has the kernel's diagonal (1) in it; the product leaves it
        // out, so the iterative solve's hardness carries it.
        let dense = solve_dense(&a, &chi, 2.0).unwrap().charges;
        let hardness: Vec<f64> = j.iter().map(|v| v + 1.0).collect();
        let (q, cold) = equilibrate(&chi, &hardness, 2.0, None, product).unwrap();
        // A start near the answer but off the constraint (as an extrapolation may be).
        let near: Vec<f64> = dense.iter().enumerate().map(|(i, q)| q + 1e-4 * (0.3 * i as f64).cos() + 1e-5).collect();
        let (warm, iterations) = equilibrate(&chi, &hardness, 2.0, Some(&near), product).unwrap();
        println!("cold {cold} iterations, warm {iterations}");
        // Four decades of the eight to the stopping residual are already there.
        assert!(cold >= 15 && 10 * iterations <= 6 * cold, "cold {cold} iterations, warm {iterations}");
        assert!((warm.iter().sum::<f64>() - 2.0).abs() < 1e-12);
        for ((w, c), d) in warm.iter().zip(&q).zip(&dense) {
            assert!((w - d).abs() < 1e-8 && (c - d).abs() < 1e-8, "warm {w}, cold {c}, dense {d}");
        }
        // At the answer already: no iteration.
        assert_eq!(equilibrate(&chi, &hardness, 2.0, Some(&dense), product).unwrap().1, 0);
        // A start of another size or not finite is no start.
        assert_eq!(equilibrate(&chi, &hardness, 2.0, Some(&dense[1..]), product).unwrap().1, cold);
        let mut broken = dense.clone();
        broken[3] = f64::NAN;
        assert_eq!(equilibrate(&chi, &hardness, 2.0, Some(&broken), product).unwrap().1, cold);
    }
}
