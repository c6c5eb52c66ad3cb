//! The reciprocal-space terms of an Ewald sum, written once for the sum over k
//! (`crate::ml::electrostatics`), its pair kernel, and PME (`crate::ml::pme`).

use crate::cell::{Vec3, dot};

/// e^{−k²/4α²}/k²: the weight of reciprocal vector k (times 4π/V it is the kernel's transform).
pub fn weight(k: Vec3, alpha: f64) -> f64 {
    let k2 = dot(k, k);
    (-k2 / (4.0 * alpha * alpha)).exp() / k2
}

/// 1/4α² + 1/k²: the factor of k_a k_b in `strain`.
pub fn strain_factor(k: Vec3, alpha: f64) -> f64 {
    1.0 / (4.0 * alpha * alpha) + 1.0 / dot(k, k)
}

/// How a term E_k ∝ weight(k)/V responds to strain: −∂E_k/∂ε_ab = E_k s_ab with
/// s_ab = δ_ab − 2 (1/4α² + 1/k²) k_a k_b (the volume and k both change), row-major.
pub fn strain(k: Vec3, alpha: f64) -> [f64; 9] {
    let factor = strain_factor(k, alpha);
    let mut s = [0.0; 9];
    for a in 0..3 {
        for b in 0..3 {
            let delta = if a == b { 1.0 } else { 0.0 };
            s[3 * a + b] = delta - 2.0 * k[a] * k[b] * factor;
        }
    }
    s
}
