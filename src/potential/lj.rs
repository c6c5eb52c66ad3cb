//! Lennard-Jones 12-6, truncated at a cutoff per pair of species, optionally shifted to zero
//! energy at the cutoff and optionally with the analytic tail correction (LAMMPS `lj/cut` with
//! `pair_modify shift` and `tail`).
//!
//! `E = 4ε[(σ/r)^12 - (σ/r)^6] - E_shift` for r < r_c. Parameters: epsilon (energy), sigma
//! (length); mixing: LAMMPS's geometric, arithmetic (Lorentz-Berthelot) and sixthpower rules.
//! The loop is the shared pair loop ([`crate::potential::pair`]); the GPU snippet is
//! shaders/pair/lj.wgsl.

use super::pair::{Bound, Mix, Param, PairFunction, PairParams, PairPotential, PairSpec, PairStyle};
use crate::units::Dimension;

pub static STYLE: PairStyle = PairStyle {
    lammps: "lj/cut",
    title: "Lennard-Jones",
    toml_names: &["lj", "lj/cut", "lennard-jones"],
    params: &[
        Param { name: "epsilon", dimension: Dimension::Energy, bound: Bound::NonNegative },
        Param { name: "sigma", dimension: Dimension::Length, bound: Bound::Positive },
    ],
    mix: Some(mix),
    tail: Some(tail),
    cpu: |spec| Box::new(PairPotential::<LjCut>::from_spec(spec.clone())),
    gpu: Ok(include_str!("../../shaders/pair/lj.wgsl")),
    gpu_rows,
};

/// Parameters of one pair of species.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LjPair {
    /// eV
    pub epsilon: f64,
    /// Å
    pub sigma: f64,
    /// Å
    pub cutoff: f64,
}

impl LjPair {
    /// Energy of the pair at distance r, untruncated and unshifted.
    pub fn energy_at(&self, r: f64) -> f64 {
        let sr6 = (self.sigma / r).powi(6);
        4.0 * self.epsilon * (sr6 * sr6 - sr6)
    }

    fn params(&self) -> PairParams {
        PairParams::new(&[self.epsilon, self.sigma], self.cutoff)
    }

    fn of(p: &PairParams) -> LjPair {
        LjPair { epsilon: p.values[0], sigma: p.values[1], cutoff: p.cutoff }
    }
}

/// The Lennard-Jones pair function.
pub struct LjCut;

/// Precomputed constants of one pair of species, laid out for the inner loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct LjCoeffs {
    cutsq: f64,
    /// 48 ε σ^12 and 24 ε σ^6: force prefactors
    lj1: f64,
    lj2: f64,
    /// 4 ε σ^12 and 4 ε σ^6: energy prefactors
    lj3: f64,
    lj4: f64,
    /// energy subtracted per pair inside the cutoff
    offset: f64,
}

impl PairFunction for LjCut {
    type Coeffs = LjCoeffs;

    fn coeffs(params: &PairParams, shift: bool) -> LjCoeffs {
        let p = LjPair::of(params);
        let s6 = p.sigma.powi(6);
        let s12 = s6 * s6;
        LjCoeffs {
            cutsq: p.cutoff * p.cutoff,
            lj1: 48.0 * p.epsilon * s12,
            lj2: 24.0 * p.epsilon * s6,
            lj3: 4.0 * p.epsilon * s12,
            lj4: 4.0 * p.epsilon * s6,
            offset: if shift && p.cutoff > 0.0 { p.energy_at(p.cutoff) } else { 0.0 },
        }
    }

    #[inline(always)]
    fn cutsq(c: &LjCoeffs) -> f64 {
        c.cutsq
    }

    #[inline(always)]
    fn eval<const EV: bool>(c: &LjCoeffs, rsq: f64) -> (f64, f64) {
        let r2inv = 1.0 / rsq;
        let r6inv = r2inv * r2inv * r2inv;
        let fpair = r6inv * (c.lj1 * r6inv - c.lj2) * r2inv;
        let energy = if EV { r6inv * (c.lj3 * r6inv - c.lj4) - c.offset } else { 0.0 };
        (fpair, energy)
    }
}

/// LAMMPS's `PairLJCut::init_one` mixing of (epsilon, sigma).
fn mix(rule: Mix, a: &[f64], b: &[f64]) -> Vec<f64> {
    let eps = match rule {
        Mix::Sixthpower => 2.0 * (a[0] * b[0]).sqrt() * a[1].powi(3) * b[1].powi(3) / (a[1].powi(6) + b[1].powi(6)),
        _ => (a[0] * b[0]).sqrt(),
    };
    vec![eps, rule.distance(a[1], b[1])]
}

/// The tail correction of `nn` pairs beyond the cutoff (times the volume).
fn tail(p: &PairParams, nn: f64) -> (f64, f64) {
    let p = LjPair::of(p);
    if p.epsilon == 0.0 {
        return (0.0, 0.0);
    }
    let pi = std::f64::consts::PI;
    let s3 = p.sigma.powi(3);
    let x3 = (p.sigma / p.cutoff).powi(3);
    let x9 = x3 * x3 * x3;
    (
        8.0 * pi * nn * p.epsilon * s3 * (x9 / 9.0 - x3 / 3.0),
        16.0 * pi * nn * p.epsilon * s3 * (2.0 / 3.0 * x9 - x3),
    )
}

/// shaders/pair/lj.wgsl's rows: (cutsq, lj1, lj2, 0), (lj3, lj4, offset, 0); rounded to f32
/// on upload (the products in this order, as the GPU platform has always had them).
fn gpu_rows(p: &PairParams, shift: bool) -> [[f64; 4]; 2] {
    let q = LjPair::of(p);
    let s6 = q.sigma.powi(6);
    let offset = if shift && q.cutoff > 0.0 { q.energy_at(q.cutoff) } else { 0.0 };
    [
        [q.cutoff * q.cutoff, 48.0 * q.epsilon * s6 * s6, 24.0 * q.epsilon * s6, 0.0],
        [4.0 * q.epsilon * s6 * s6, 4.0 * q.epsilon * s6, offset, 0.0],
    ]
}

/// Lennard-Jones on the CPU: the shared pair loop over [`LjCut`].
pub type LennardJones = PairPotential<LjCut>;

impl PairPotential<LjCut> {
    /// `pairs` is the full n×n table (symmetric) of species-pair parameters, row-major.
    pub fn new(n_species: usize, pairs: Vec<LjPair>, shift: bool, tail: bool) -> LennardJones {
        assert_eq!(pairs.len(), n_species * n_species, "LJ table must be n_species²");
        PairPotential::from_spec(spec(pairs, shift, tail))
    }

    pub fn pair(&self, a: usize, b: usize) -> LjPair {
        LjPair::of(self.spec().pair(a, b))
    }

    /// Tail corrections (energy eV, isotropic virial W = Σ r·f eV) for a homogeneous fluid
    /// beyond the cutoffs, in volume `volume` with `counts` atoms of each species (whether or
    /// not the potential applies them).
    pub fn tail_correction(&self, counts: &[usize], volume: f64) -> (f64, f64) {
        PairSpec { tail: true, ..self.spec().clone() }.tail_correction(counts, volume)
    }

    pub fn shifted(&self) -> bool {
        self.spec().shift
    }

    pub fn tail_corrected(&self) -> bool {
        self.spec().tail
    }
}

/// The pair spec of a Lennard-Jones table.
pub fn spec(pairs: Vec<LjPair>, shift: bool, tail: bool) -> PairSpec {
    PairSpec { style: &STYLE, pairs: pairs.iter().map(LjPair::params).collect(), shift, tail }
}
