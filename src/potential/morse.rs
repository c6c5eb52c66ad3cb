//! Morse, truncated at a cutoff per pair of species, optionally shifted to zero energy at the
//! cutoff (LAMMPS `pair_style morse` with `pair_modify shift`).
//!
//! `E = D0 [e^{-2α(r - r0)} - 2 e^{-α(r - r0)}] - E_shift` for r < r_c. Parameters: d0 (energy,
//! the well depth), alpha (inverse length, the well's stiffness), r0 (length, the minimum).
//! As in LAMMPS there is no mixing rule: every pair of species is given. The loop is the shared
//! pair loop ([`crate::potential::pair`]); the GPU snippet is shaders/pair/morse.wgsl.

use super::pair::{Bound, Param, PairFunction, PairParams, PairPotential, PairStyle};
use crate::units::Dimension;

pub static STYLE: PairStyle = PairStyle {
    lammps: "morse",
    title: "Morse",
    toml_names: &["morse"],
    params: &[
        Param { name: "d0", dimension: Dimension::Energy, bound: Bound::NonNegative },
        Param { name: "alpha", dimension: Dimension::InverseLength, bound: Bound::Positive },
        Param { name: "r0", dimension: Dimension::Length, bound: Bound::NonNegative },
    ],
    mix: None,
    tail: None,
    cpu: |spec| Box::new(PairPotential::<Morse>::from_spec(spec.clone())),
    gpu: Ok(include_str!("../../shaders/pair/morse.wgsl")),
    gpu_rows,
};

/// The Morse pair function.
pub struct Morse;

#[derive(Clone, Copy, Debug, Default)]
pub struct MorseCoeffs {
    cutsq: f64,
    d0: f64,
    alpha: f64,
    r0: f64,
    /// 2 D0 α: the force prefactor
    morse1: f64,
    /// energy subtracted per pair inside the cutoff
    offset: f64,
}

impl PairFunction for Morse {
    type Coeffs = MorseCoeffs;
    const BRANCH_FREE: bool = false;

    fn coeffs(p: &PairParams, shift: bool) -> MorseCoeffs {
        let [d0, alpha, r0, _] = p.values;
        // LAMMPS's PairMorse::init_one.
        let offset = if shift {
            let alpha_dr = -alpha * (p.cutoff - r0);
            d0 * ((2.0 * alpha_dr).exp() - 2.0 * alpha_dr.exp())
        } else {
            0.0
        };
        MorseCoeffs { cutsq: p.cutoff * p.cutoff, d0, alpha, r0, morse1: 2.0 * d0 * alpha, offset }
    }

    #[inline(always)]
    fn cutsq(c: &MorseCoeffs) -> f64 {
        c.cutsq
    }

    #[inline(always)]
    fn eval<const EV: bool>(c: &MorseCoeffs, rsq: f64) -> (f64, f64) {
        let r = rsq.sqrt();
        let dexp = (-c.alpha * (r - c.r0)).exp();
        let fpair = c.morse1 * (dexp * dexp - dexp) / r;
        let energy = if EV { c.d0 * (dexp * dexp - 2.0 * dexp) - c.offset } else { 0.0 };
        (fpair, energy)
    }
}

/// shaders/pair/morse.wgsl's rows: (cutsq, d0, alpha, r0), (morse1, offset, 0, 0).
fn gpu_rows(p: &PairParams, shift: bool) -> [[f64; 4]; 2] {
    let c = Morse::coeffs(p, shift);
    [[c.cutsq, c.d0, c.alpha, c.r0], [c.morse1, c.offset, 0.0, 0.0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pair function's force is minus the derivative of its energy, the minimum sits at r0
    /// with depth -D0, and the shift puts the energy's zero at the cutoff.
    #[test]
    fn force_is_the_energy_gradient_and_the_well_is_where_it_belongs() {
        let p = PairParams::new(&[0.35, 1.3, 2.8], 7.0);
        for shift in [false, true] {
            let c = Morse::coeffs(&p, shift);
            for r in [2.0, 2.5, 2.8, 3.3, 5.0, 6.9] {
                let (fpair, _) = Morse::eval::<true>(&c, r * r);
                let e = |r: f64| Morse::eval::<true>(&c, r * r).1;
                let h = 1e-5;
                let dedr = (e(r + h) - e(r - h)) / (2.0 * h);
                assert!((fpair * r + dedr).abs() < 1e-8, "r {r}: F r {} vs -dE/dr {}", fpair * r, -dedr);
            }
            let (f_min, e_min) = Morse::eval::<true>(&c, 2.8 * 2.8);
            assert!(f_min.abs() < 1e-15);
            let (_, e_cut) = Morse::eval::<true>(&c, 49.0);
            if shift {
                assert!(e_cut.abs() < 1e-15);
                assert!((e_min + 0.35 + c.offset).abs() < 1e-15);
            } else {
                assert_eq!(e_min, -0.35);
            }
        }
    }
}
