//! Pair potentials: an energy that is a sum over pairs of atoms closer than a cutoff, each term a
//! function of the pair's distance and species only (LAMMPS's `pair_style lj/cut`, `morse`).
//!
//! A pair style is split the way HOOMD-blue splits `EvaluatorPairLJ` from `PotentialPair`:
//! - the **pair function** ([`PairFunction`]): the constants of one pair of species and what
//!   they give at a squared distance (force over distance and energy). It is all a style has to
//!   write for the CPU;
//! - the **pair loop** ([`PairPotential`], in `cpu.rs`): one loop over the neighbour list for
//!   every style, with Newton's third law, threads and deterministic sums. On the GPU one
//!   kernel (shaders/pair.wgsl) calls the style's WGSL snippet the same way;
//! - the **style entry** ([`PairStyle`]): the data that every front end reads: its names in
//!   `system.toml` and in decks, its parameters with their units, its mixing rule, its tail
//!   correction, its GPU snippet and how its constants are laid out for it. The registry
//!   [`crate::potential::styles::STYLES`] lists them (LAMMPS's `PairStyle(name, class)`), and `system.toml`
//!   (crate::plan's `pair_table.rs`), decks (crate::deck's `pair.rs`: `pair_style`,
//!   `pair_coeff`, `pair_modify`, data files, restarts) and the GPU platform find a style there
//!   by name and read its schema from the entry: none of them names a style.
//!
//! # Adding a pair style
//! One module beside `lj.rs` and `morse.rs`, one WGSL snippet in `shaders/pair/`, one line in
//! [`crate::potential::styles::STYLES`], and its tests. The module holds a [`PairFunction`] and a `pub static STYLE:
//! PairStyle`. For example a soft cosine repulsion, `E = A (1 + cos(π r / r_c))`:
//!
//! ```
//! use mdrun::potential::pair::{PairFunction, PairParams};
//!
//! #[derive(Clone, Copy, Default)]
//! struct SoftCoeffs { cutsq: f64, a: f64, k: f64 }
//!
//! struct Soft;
//!
//! impl PairFunction for Soft {
//!     type Coeffs = SoftCoeffs;
//!     fn coeffs(p: &PairParams, _shift: bool) -> SoftCoeffs {
//!         // parameters in the order the style entry lists them: here just A
//!         SoftCoeffs { cutsq: p.cutoff * p.cutoff, a: p.values[0], k: std::f64::consts::PI / p.cutoff }
//!     }
//!     fn cutsq(c: &SoftCoeffs) -> f64 { c.cutsq }
//!     fn eval<const EV: bool>(c: &SoftCoeffs, rsq: f64) -> (f64, f64) {
//!         let r = rsq.sqrt();
//!         let (s, co) = (c.k * r).sin_cos();
//!         // F_i = fpair (x_i - x_j): fpair = -dE/dr / r
//!         let fpair = c.a * c.k * s / r;
//!         (fpair, if EV { c.a * (1.0 + co) } else { 0.0 })
//!     }
//! }
//!
//! let c = Soft::coeffs(&PairParams::new(&[2.0], 3.0), false);
//! let (fpair, e) = Soft::eval::<true>(&c, 1.5 * 1.5);
//! assert!((e - 2.0).abs() < 1e-12 && fpair > 0.0);
//! ```
//!
//! The GPU snippet defines `pair_force(c0, c1, r2)` (fpair) and `pair_energy(c0, c1, r2)` over
//! the two `vec4<f32>` rows that `PairStyle::gpu_rows` fills for the pair (row 0's x is always
//! the squared cutoff); see shaders/pair/lj.wgsl. A style without a snippet says why in
//! `PairStyle::gpu` and the GPU platform refuses it with that reason.

mod cpu;

pub use cpu::PairPotential;

use crate::units::Dimension;

/// At most this many parameters per pair besides the cutoff.
pub const MAX_PARAMS: usize = 4;

/// One pair of species' parameters in a style's order, internal units, and its cutoff (Å).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PairParams {
    pub values: [f64; MAX_PARAMS],
    pub cutoff: f64,
}

impl PairParams {
    pub fn new(values: &[f64], cutoff: f64) -> PairParams {
        let mut v = [0.0; MAX_PARAMS];
        v[..values.len()].copy_from_slice(values);
        PairParams { values: v, cutoff }
    }
}

/// What a pair style computes for one pair; monomorphised into the pair loop.
pub trait PairFunction: Send + Sync + 'static {
    /// The constants of one pair of species, laid out for the inner loop.
    type Coeffs: Copy + Default + Send + Sync;
    /// Whether the loop evaluates pairs beyond the cutoff too (and multiplies them by zero)
    /// rather than branching: right for a few multiplications (Lennard-Jones),
    /// wrong where a pair costs a square root and an exponential (Morse: measured in
    /// BENCHMARKS.md).
    const BRANCH_FREE: bool = true;
    /// The constants from the pair's parameters (with `shift`: energy zero at the cutoff).
    fn coeffs(params: &PairParams, shift: bool) -> Self::Coeffs;
    /// The squared cutoff: pairs at or beyond it contribute nothing.
    fn cutsq(c: &Self::Coeffs) -> f64;
    /// At squared distance `rsq` inside the cutoff: (fpair, energy) with F_i = fpair (x_i - x_j)
    /// and the pair's (shifted) energy; the energy only when `EV`.
    fn eval<const EV: bool>(c: &Self::Coeffs, rsq: f64) -> (f64, f64);
}

/// The rule for a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Positive,
    NonNegative,
    Any,
}

/// One parameter of a pair style: its name (in `system.toml` and messages), what it measures
/// and its allowed values.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub dimension: Dimension,
    pub bound: Bound,
}

/// How unlike pairs are made from like ones when no coefficients are given for them: the
/// decks' `pair_modify mix` rule or `system.toml`'s `mixing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Geometric,
    Arithmetic,
    Sixthpower,
}

impl Mix {
    /// The LAMMPS distance rule (used for cutoffs by every style that mixes).
    pub fn distance(self, x: f64, y: f64) -> f64 {
        match self {
            Mix::Geometric => (x * y).sqrt(),
            Mix::Arithmetic => 0.5 * (x + y),
            Mix::Sixthpower => (0.5 * (x.powi(6) + y.powi(6))).powf(1.0 / 6.0),
        }
    }
}

/// A pair style as every front end and platform sees it.
pub struct PairStyle {
    /// LAMMPS's name (`pair_style lj/cut`), also printed in logs.
    pub lammps: &'static str,
    /// The potential's name in messages ("Lennard-Jones").
    pub title: &'static str,
    /// Names accepted as `[potential] type` (the first is the one mdrun writes).
    pub toml_names: &'static [&'static str],
    /// The parameters per pair of species, in `pair_coeff` order (the cutoff comes after them).
    pub params: &'static [Param],
    /// Mixing of two like pairs' parameters into an unlike pair's (values only; cutoffs mix by
    /// the distance rule). None: the style does not mix, every pair must be given.
    pub mix: Option<fn(Mix, &[f64], &[f64]) -> Vec<f64>>,
    /// Tail correction of one pair of species with `nn` = N_a N_b pairs: (energy · V, virial ·
    /// V), for a homogeneous fluid beyond the cutoff. None: the style has none.
    pub tail: Option<fn(&PairParams, f64) -> (f64, f64)>,
    /// The CPU evaluation of a table of pairs.
    pub cpu: fn(&PairSpec) -> Box<dyn crate::potential::Potential>,
    /// The GPU part: the WGSL snippet, or why the style cannot run there.
    pub gpu: Result<&'static str, &'static str>,
    /// The two `vec4<f32>` rows of constants the snippet reads for one pair (row 0, x: the
    /// squared cutoff).
    pub gpu_rows: fn(&PairParams, bool) -> [[f64; 4]; 2],
}

impl std::fmt::Debug for PairStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pair style {}", self.lammps)
    }
}

impl PartialEq for PairStyle {
    fn eq(&self, other: &Self) -> bool {
        self.lammps == other.lammps
    }
}

/// A validated pair potential: a style and its parameters for every pair of species.
#[derive(Clone, Debug, PartialEq)]
pub struct PairSpec {
    pub style: &'static PairStyle,
    /// n_species × n_species, row-major, symmetric, in the order of `System::species`.
    pub pairs: Vec<PairParams>,
    /// `pair_modify shift yes`: each pair's energy is zero at its cutoff.
    pub shift: bool,
    /// `pair_modify tail yes`: the analytic tail correction (styles that have one).
    pub tail: bool,
}

impl PairSpec {
    pub fn n_species(&self) -> usize {
        (self.pairs.len() as f64).sqrt().round() as usize
    }

    pub fn pair(&self, a: usize, b: usize) -> &PairParams {
        &self.pairs[a * self.n_species() + b]
    }

    pub fn max_cutoff(&self) -> f64 {
        self.pairs.iter().map(|p| p.cutoff).fold(0.0, f64::max)
    }

    /// "lj/cut 8.5000 Å, shifted, tail corrected".
    pub fn describe(&self) -> String {
        let mut name = format!("{} {:.4} Å", self.style.lammps, self.max_cutoff());
        if self.shift {
            name.push_str(", shifted");
        }
        if self.tail {
            name.push_str(", tail corrected");
        }
        name
    }

    /// Tail corrections (energy eV, isotropic virial W = Σ r·f eV) in volume `volume` with
    /// `counts` atoms of each species; zero without `tail`.
    pub fn tail_correction(&self, counts: &[usize], volume: f64) -> (f64, f64) {
        let Some(tail) = self.style.tail.filter(|_| self.tail) else { return (0.0, 0.0) };
        let n = self.n_species();
        let (mut energy, mut virial) = (0.0, 0.0);
        for a in 0..n {
            for b in 0..n {
                let p = self.pair(a, b);
                if p.cutoff <= 0.0 {
                    continue;
                }
                let (e, w) = tail(p, counts[a] as f64 * counts[b] as f64);
                energy += e;
                virial += w;
            }
        }
        (energy / volume, virial / volume)
    }

    /// The CPU potential.
    pub fn instantiate(&self) -> Box<dyn crate::potential::Potential> {
        (self.style.cpu)(self)
    }

    /// The GPU constants of every pair, `max_types`² pairs of two rows (zero beyond n).
    pub fn gpu_table(&self, max_types: usize) -> Vec<[f64; 4]> {
        let n = self.n_species();
        let mut rows = Vec::with_capacity(2 * max_types * max_types);
        for a in 0..max_types {
            for b in 0..max_types {
                if a < n && b < n {
                    rows.extend((self.style.gpu_rows)(self.pair(a, b), self.shift));
                } else {
                    rows.extend([[0.0; 4]; 2]);
                }
            }
        }
        rows
    }
}
