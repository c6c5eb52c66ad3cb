//! The Coulomb energy of a training structure as a pair kernel (the burn model's form of
//! `crate::ml::electrostatics`): E = Σ_p q_i q_j K_p over the pairs i ≤ j, with each kernel's
//! position and strain derivatives, so that the energy, forces and virial are tensor operations
//! on the learned charges. O(N² × k-vectors): for training structures, not for MD.

use crate::cell::{Cell, Vec3, dot, norm, sub};
use crate::ml::electrostatics::{COULOMB_CONSTANT, Coulomb, periodicity};
use crate::ml::reciprocal;
use crate::neighbor::{ListKind, NeighborList};
use std::f64::consts::PI;

/// The Coulomb pair kernel of one structure (see `Coulomb::pair_kernel`), × k_e.
#[derive(Clone, Debug, Default)]
pub struct PairKernel {
    pub first: Vec<usize>,
    pub second: Vec<usize>,
    /// K_p, eV/e².
    pub kernel: Vec<f64>,
    /// ∂K_p/∂x_second (= -∂K_p/∂x_first), eV/(e² Å).
    pub gradient: Vec<Vec3>,
    /// -∂K_p/∂ε, row-major.
    pub strain: Vec<[f64; 9]>,
}

impl PairKernel {
    /// The symmetric matrix M [n × n] row-major of the quadratic form E = ½ qᵀMq the kernel
    /// sums: M_ij = K_p off the diagonal, M_ii = 2 K_p (the diagonal's ½ inside K_p).
    pub fn coulomb_matrix(&self, n: usize) -> Vec<f64> {
        let mut matrix = vec![0.0; n * n];
        for ((&i, &j), &value) in self.first.iter().zip(&self.second).zip(&self.kernel) {
            if i == j {
                matrix[i * n + i] += 2.0 * value;
            } else {
                matrix[i * n + j] += value;
                matrix[j * n + i] += value;
            }
        }
        matrix
    }

    fn push(&mut self, i: usize, j: usize, k: f64, g: Vec3, w: [f64; 9]) {
        self.first.push(i);
        self.second.push(j);
        self.kernel.push(COULOMB_CONSTANT * k);
        self.gradient.push(g.map(|x| COULOMB_CONSTANT * x));
        self.strain.push(w.map(|x| COULOMB_CONSTANT * x));
    }
}

impl Coulomb {
    /// The pair kernel of a structure for the burn model: E = Σ_p q_i q_j K_p over the pairs
    /// i ≤ j (the diagonal weighted ½ inside K_p), with ∂K_p/∂x_j and -∂K_p/∂ε, all × k_e.
    /// O(N² × k-vectors): for training structures, not for MD.
    pub fn pair_kernel(&self, positions: &[Vec3], cell: &Cell) -> Result<PairKernel, String> {
        let n = positions.len();
        let periodic = periodicity(cell)?;
        let mut out = PairKernel::default();
        if !periodic {
            for i in 0..n {
                for j in i..n {
                    let (mut k, mut g, mut w) = (0.0, [0.0; 3], [0.0; 9]);
                    if i != j {
                        let r = sub(positions[j], positions[i]);
                        let d = norm(r);
                        let (phi, dphi) = self.direct(d);
                        k = phi;
                        image_terms(r, d, dphi, &mut g, &mut w);
                    }
                    out.push(i, j, k, g, w);
                }
            }
            return Ok(out);
        }
        let ewald = self.plain_ewald(n, cell);
        let wrapped: Vec<Vec3> = positions.iter().map(|&r| cell.wrap(r).0).collect();
        let mut real = std::collections::HashMap::<(usize, usize), (f64, Vec3, [f64; 9])>::new();
        if ewald.real_cutoff > 0.0 {
            let mut list = NeighborList::new(ListKind::Full, ewald.real_cutoff, 0.0);
            list.build(&wrapped, cell).map_err(|e| format!("the Ewald real-space sum: {e}"))?;
            let shifts = list.shift_vectors();
            for row in 0..list.n_atoms() {
                let i = list.row_atom(row);
                let plain = list.plain(row).iter().map(|&j| (j as usize, [0.0; 3]));
                let (js, ss) = list.shifted(row);
                let shifted = js.iter().zip(ss).map(|(&j, &s)| (j as usize, shifts[s as usize]));
                for (j, shift) in plain.chain(shifted) {
                    if j < i {
                        continue;
                    }
                    let r = [0, 1, 2].map(|c| wrapped[j][c] + shift[c] - wrapped[i][c]);
                    let d = norm(r);
                    if d >= ewald.real_cutoff {
                        continue;
                    }
                    let (psi, dpsi) = self.short_range(ewald.alpha, d);
                    let entry = real.entry((i, j)).or_insert((0.0, [0.0; 3], [0.0; 9]));
                    // Self images come in ± pairs: each counted once by the ½ of the diagonal.
                    let half = if i == j { 0.5 } else { 1.0 };
                    entry.0 += half * psi;
                    let (mut g, mut w) = ([0.0; 3], [0.0; 9]);
                    image_terms(r, d, dpsi, &mut g, &mut w);
                    if i != j {
                        (0..3).for_each(|c| entry.1[c] += g[c]);
                    }
                    (0..9).for_each(|c| entry.2[c] += half * w[c]);
                }
            }
        }
        let weights: Vec<f64> = ewald.kvectors.iter().map(|(_, kv)| 8.0 * PI / ewald.volume * reciprocal::weight(*kv, ewald.alpha)).collect();
        let strains: Vec<[f64; 9]> = ewald.kvectors.iter().map(|(_, kv)| reciprocal::strain(*kv, ewald.alpha)).collect();
        let background = -PI / (ewald.volume * ewald.alpha * ewald.alpha);
        for i in 0..n {
            for j in i..n {
                let half = if i == j { 0.5 } else { 1.0 };
                let (mut k, mut g, mut w) = real.get(&(i, j)).copied().unwrap_or((0.0, [0.0; 3], [0.0; 9]));
                let r = sub(positions[j], positions[i]);
                for (((_, kv), &weight), strain) in ewald.kvectors.iter().zip(&weights).zip(&strains) {
                    let (sin, cos) = dot(*kv, r).sin_cos();
                    k += half * weight * cos;
                    if i != j {
                        (0..3).for_each(|a| g[a] -= weight * sin * kv[a]);
                    }
                    (0..9).for_each(|ab| w[ab] += half * weight * cos * strain[ab]);
                }
                k += half * background;
                (0..3).for_each(|a| w[4 * a] += half * background);
                if i == j {
                    k -= ewald.alpha / PI.sqrt();
                }
                out.push(i, j, k, g, w);
            }
        }
        Ok(out)
    }
}

/// ∂v/∂x_j (= dv r̂) and -∂v/∂ε (= -dv r⊗r/d) of one image of a pair kernel.
fn image_terms(r: Vec3, d: f64, dv: f64, gradient: &mut Vec3, strain: &mut [f64; 9]) {
    for a in 0..3 {
        gradient[a] += dv * r[a] / d;
        for b in 0..3 {
            strain[3 * a + b] -= dv * r[a] * r[b] / d;
        }
    }
}
