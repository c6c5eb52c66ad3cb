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
/// 1/J as the preconditioner. Starts from the solution without the Coulomb coupling, so the
/// result depends on this step's positions alone (restarts stay bit-identical). Returns the
/// charges and the iterations taken.
pub fn equilibrate(chi: &[f64], hardness: &[f64], total: f64, mut coulomb: impl FnMut(&[f64]) -> Result<Vec<f64>, String>) -> Result<(Vec<f64>, usize), String> {
    let n = chi.len();
    let w: Vec<f64> = hardness.iter().map(|j| 1.0 / j).collect();
    let w_sum: f64 = w.iter().sum();
    // z = W r − W 1 (1ᵀ W r)/(1ᵀ W 1): the preconditioned residual, kept neutral.
    let precondition = |r: &[f64]| -> Vec<f64> {
        let shift = (0..n).map(|i| w[i] * r[i]).sum::<f64>() / w_sum;
        (0..n).map(|i| w[i] * (r[i] - shift)).collect()
    };
    let mu = (total + (0..n).map(|i| w[i] * chi[i]).sum::<f64>()) / w_sum;
    let mut q: Vec<f64> = (0..n).map(|i| w[i] * (mu - chi[i])).collect();
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
        let (q, _) = equilibrate(&chi, &j, -1.0, |p| Ok((0..n).map(|i| (0..n).filter(|&k| k != i).map(|k| a[i * n + k] * p[k]).sum()).collect())).unwrap();
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
}
