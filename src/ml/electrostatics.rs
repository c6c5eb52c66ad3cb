//! The Coulomb energy of learned charges (issue 19): Ewald summation in a fully periodic cell,
//! the direct sum over pairs in an open one. f64 throughout; every implementation of the model
//! calls this module, so the physics is written once.
//!
//! Two unit charges r apart interact by k_e φ(r) with φ(r) = erf(a r)/r, a = 1/(√2 σ): the charges
//! are Gaussians of width σ (the kernel of LES, Cheng 2025), so φ is smooth and finite at r = 0
//! and what it differs from 1/r at short range is left to the local network, which sees those
//! pairs anyway. σ = 0 gives point charges (φ = 1/r), for the textbook checks (Madelung).
//!
//! Ewald splits φ = ψ + erf(α r)/r with ψ(r) = (erfc(α r) − erfc(a r))/r, short ranged and
//! summed in real space to r_c; the smooth rest is summed in reciprocal space:
//! ```text
//! E/k_e = Σ'_{i<j, images} q_i q_j ψ(r) + (2π/V) Σ_{k≠0} e^{−k²/4α²}/k² |S(k)|²
//!         − α/√π Σ_i q_i² − π Q²/(2 V α²),        S(k) = Σ_j q_j e^{i k·r_j}
//! ```
//! The last term is the neutralising background of a cell of net charge Q. The sum does not
//! depend on α (tests/ml_long_range.rs), which is chosen to balance the real and reciprocal
//! work (α = √π (N/V²)^{1/6}, at most a, where the real part vanishes).
//!
//! An open cell splits φ the same way from `PME_ATOMS` on: ψ over pairs, the smooth rest on a
//! free-space mesh (`crate::ml::free_space`), where the direct sum over all pairs would cost
//! more (`OPEN_MESH_POINTS_PER_PAIR`).
//!
//! Results are per structure: the energy, its derivative by each charge (what the charge model
//! needs), the forces and virial at fixed charges.

use crate::cell::{Cell, Vec3, dot, norm, sub};
use crate::ml::free_space::{FreeSpaceMesh, Layout};
use crate::ml::pme::Pme;
use crate::ml::reciprocal;
use crate::ml::real_space::RealSpaceList;
use rayon::prelude::*;
use std::f64::consts::PI;

/// e²/(4π ε₀) in eV·Å.
pub const COULOMB_CONSTANT: f64 = 14.399645478425668;

/// Truncation of both Ewald sums: erfc(s) and e^{-s²} below 1e-9 relative.
const EWALD_SPAN: f64 = 4.5;

/// The Coulomb interaction of charges of one width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coulomb {
    /// Å: the Gaussian width σ of every charge; 0 for point charges.
    pub width: f64,
    /// The reciprocal part of a periodic cell by particle-mesh Ewald (true) or the sum over k
    /// (false); an open cell's smooth part on the free-space mesh (true) or every pair directly
    /// (false); None: by the system's size (`PME_ATOMS` here, the GPU its own rule).
    /// `[potential] ewald`.
    pub mesh: Option<bool>,
}

/// The energy of a set of charges and its derivatives.
#[derive(Clone, Debug)]
pub struct Field {
    /// eV
    pub energy: f64,
    /// dE/dq_i, eV per elementary charge.
    pub potential: Vec<f64>,
    /// -dE/dx_i at fixed charges, eV/Å.
    pub forces: Vec<Vec3>,
    /// W = -dE/dε at fixed charges (LAMMPS's sign: Σ r ⊗ f), row-major, eV.
    pub virial: [f64; 9],
}

/// The Ewald splitting of one cell: α, the real-space cutoff and the reciprocal vectors kept.
#[derive(Clone, Debug)]
pub struct Ewald {
    /// 1/Å
    pub alpha: f64,
    /// Å (0: no real-space part, α = a).
    pub real_cutoff: f64,
    /// Half of the reciprocal vectors with |k| < k_max (k and -k give equal terms), 1/Å, with
    /// their integer indices on the reciprocal lattice.
    pub(crate) kvectors: Vec<([i32; 3], Vec3)>,
    pub(crate) volume: f64,
    /// ψ and ψ' tabulated for the real-space sum of MD (`RealTable`).
    table: RealTable,
    /// The reciprocal part by particle-mesh Ewald instead of the sum over k (large systems).
    pme: Option<Pme>,
}

impl Ewald {
    /// The splitting in words, for the run's header (as LAMMPS reports its kspace setup).
    pub fn describe(&self) -> String {
        let reciprocal = match &self.pme {
            Some(pme) => format!("particle-mesh Ewald on a {} x {} x {} grid", pme.grid[0], pme.grid[1], pme.grid[2]),
            None => format!("Ewald over {} k-vectors", self.kvectors.len()),
        };
        format!("{reciprocal}, α = {:.4}/Å, {}", self.alpha, real_space_words(self.real_cutoff))
    }

    /// PME's grid points along each cell vector (None: the plain sum over k).
    pub fn mesh(&self) -> Option<[usize; 3]> {
        self.pme.as_ref().map(|p| p.grid)
    }
}

/// Atoms from which the reciprocal part goes through PME (measured crossover, BENCHMARKS.md);
/// in an open cell, from which the free-space mesh may replace the direct sum.
pub const PME_ATOMS: usize = 500;

/// An open cell's sum goes on the free-space mesh when its padded grid has at most this many
/// points per pair of atoms (n²): where the mesh costs less than the direct sum (measured,
/// BENCHMARKS.md).
pub const OPEN_MESH_POINTS_PER_PAIR: f64 = 2.0;

/// Å: the real-space cutoff of an open cell's mesh. Its grid is padded to 8x the cluster's, so
/// a coarser grid and more pairs cost less than PME's 10 Å (measured: 10,000 atoms 133-143 ms
/// an evaluation at 10 Å, 88-99 ms at 13-14, 117 ms at 17).
const OPEN_REAL_CUTOFF: f64 = 14.0;

/// Å: the real-space cutoff with PME (the mesh makes a short one cheap).
const PME_REAL_CUTOFF: f64 = 10.0;

/// With PME: erfc(s) and e^{-s²} below 1e-7, under the mesh's own error (~1e-6).
const PME_SPAN: f64 = 4.0;

/// ψ(r) on a uniform grid with its slope, interpolated by cubic Hermite polynomials: the slope
/// used is the interpolant's own, so forces stay the exact gradient of the energy that is
/// summed, and a pair costs a lookup instead of two erfc and two exp (the real-space sum's
/// cost; measured in BENCHMARKS.md). Below `exact_below` (only point charges diverge there)
/// the kernel is evaluated exactly.
#[derive(Clone, Debug, Default)]
struct RealTable {
    /// 1/Å: one over the node spacing.
    inverse_step: f64,
    /// Per interval [k step, (k+1) step], the Hermite cubic through (ψ, ψ') at its ends in
    /// powers of t = r/step − k: ψ = c0 + c1 t + c2 t² + c3 t³ (fewer operations a pair).
    intervals: Vec<[f64; 4]>,
    exact_below: f64,
}

/// Å: the real-space table's spacing (interpolation error below 1e-10 relative past 0.5 Å).
const TABLE_STEP: f64 = 0.005;

impl RealTable {
    fn new(coulomb: &Coulomb, alpha: f64, cutoff: f64) -> RealTable {
        if cutoff <= 0.0 {
            return RealTable::default();
        }
        let n = (cutoff / TABLE_STEP).ceil() as usize + 2;
        let exact_below: f64 = if coulomb.width > 0.0 { 0.0 } else { 0.5 };
        let nodes: Vec<(f64, f64)> = (0..n)
            .map(|k| {
                let r = k as f64 * TABLE_STEP;
                if r < exact_below.max(1e-9) {
                    // Point charges: never read below exact_below. Gaussian ones: the r -> 0
                    // limit, ψ(0) = 2(a - α)/√π, ψ'(0) = 0.
                    (2.0 * (coulomb.a() - alpha) / PI.sqrt(), 0.0)
                } else {
                    coulomb.short_range(alpha, r)
                }
            })
            .collect();
        let intervals = nodes
            .windows(2)
            .map(|w| {
                let ((y0, d0), (y1, d1)) = (w[0], w[1]);
                let (m0, m1) = (d0 * TABLE_STEP, d1 * TABLE_STEP);
                [y0, m0, 3.0 * (y1 - y0) - 2.0 * m0 - m1, 2.0 * (y0 - y1) + m0 + m1]
            })
            .collect();
        RealTable { inverse_step: 1.0 / TABLE_STEP, intervals, exact_below }
    }

    /// ψ(r), ψ'(r).
    #[inline]
    fn at(&self, coulomb: &Coulomb, alpha: f64, r: f64) -> (f64, f64) {
        if r < self.exact_below {
            return coulomb.short_range(alpha, r);
        }
        let x = r * self.inverse_step;
        let k = x as usize;
        let t = x - k as f64;
        let [c0, c1, c2, c3] = self.intervals[k];
        let value = c0 + t * (c1 + t * (c2 + t * c3));
        let slope = (c1 + t * (2.0 * c2 + t * 3.0 * c3)) * self.inverse_step;
        (value, slope)
    }
}

impl Coulomb {
    /// a = 1/(√2 σ), infinite for point charges (also the α of `reciprocal_only`).
    pub fn a(&self) -> f64 {
        if self.width > 0.0 { 1.0 / (std::f64::consts::SQRT_2 * self.width) } else { f64::INFINITY }
    }

    /// φ(r) = erf(a r)/r and φ'(r).
    pub(crate) fn direct(&self, r: f64) -> (f64, f64) {
        let a = self.a();
        if a.is_infinite() {
            return (1.0 / r, -1.0 / (r * r));
        }
        let erf = libm::erf(a * r);
        let gauss = 2.0 * a / PI.sqrt() * (-(a * r).powi(2)).exp();
        (erf / r, gauss / r - erf / (r * r))
    }

    /// ψ(r) = (erfc(α r) − erfc(a r))/r and ψ'(r).
    pub(crate) fn short_range(&self, alpha: f64, r: f64) -> (f64, f64) {
        let part = |c: f64| -> (f64, f64) {
            if c.is_infinite() {
                return (0.0, 0.0);
            }
            let erfc = libm::erfc(c * r);
            (erfc / r, -erfc / (r * r) - 2.0 * c / PI.sqrt() * (-(c * r).powi(2)).exp() / r)
        };
        let (p, dp) = part(alpha);
        let (s, ds) = part(self.a());
        (p - s, dp - ds)
    }

    /// The Ewald splitting for `n` charges in `cell` (fully periodic): plain Ewald for few
    /// atoms, PME from `PME_ATOMS` on (or as `mesh` says).
    pub fn ewald(&self, n: usize, cell: &Cell) -> Ewald {
        if self.mesh.unwrap_or(n >= PME_ATOMS) {
            let alpha = (PME_SPAN / PME_REAL_CUTOFF).max(PME_SPAN / (10.0 * cell.thinnest_width())).min(self.a());
            return self.pme_with(alpha, cell);
        }
        self.plain_ewald(n, cell)
    }

    /// How charges at `positions` in `cell` are summed, in words (the run's header). The
    /// splitting is kept in `memory`, where the first `field_with` of the same cell finds it.
    pub fn describe_with(&self, memory: &mut Memory, positions: &[Vec3], cell: &Cell) -> String {
        match periodicity(cell) {
            Ok(true) => self.kept_ewald(&mut memory.ewald, positions.len(), cell).describe(),
            Ok(false) => {
                let splitting = memory.open.get_or_insert_with(|| self.open_splitting());
                match self.open_mesh_layout(splitting, positions) {
                    Ok(Some(layout)) => splitting.describe(&layout),
                    Ok(None) => "the direct sum over all pairs (open cell)".into(),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        }
    }

    /// An open cell's splitting: PME's accuracy, with a longer real-space cutoff.
    fn open_splitting(&self) -> OpenSplitting {
        let alpha = (PME_SPAN / OPEN_REAL_CUTOFF).min(self.a());
        let real_cutoff = if alpha >= self.a() { 0.0 } else { PME_SPAN / alpha };
        let table = RealTable::new(self, alpha, real_cutoff);
        OpenSplitting { alpha, real_cutoff, table, mesh: FreeSpaceMesh::new(alpha, 2.0 * alpha * PME_SPAN) }
    }

    /// The free-space mesh's grid for an open cell's `positions`, or None for the direct sum:
    /// as `mesh` says, else the mesh from `PME_ATOMS` on where it costs less.
    fn open_mesh_layout(&self, splitting: &OpenSplitting, positions: &[Vec3]) -> Result<Option<Layout>, String> {
        match self.mesh {
            _ if positions.is_empty() => Ok(None),
            Some(false) => Ok(None),
            Some(true) => splitting.mesh.layout(positions).map(Some),
            None if positions.len() < PME_ATOMS => Ok(None),
            None => {
                let pairs = (positions.len() as f64).powi(2);
                Ok(splitting.mesh.layout(positions).ok().filter(|l| l.points() as f64 <= OPEN_MESH_POINTS_PER_PAIR * pairs))
            }
        }
    }

    /// The splitting for `n` charges in `cell`, built only when the last one was for others.
    fn kept_ewald<'a>(&self, kept: &'a mut Option<(usize, Cell, Ewald)>, n: usize, cell: &Cell) -> &'a Ewald {
        let reuse = matches!(kept, Some((m, c, _)) if *m == n && c == cell);
        if !reuse {
            *kept = Some((n, cell.clone(), self.ewald(n, cell)));
        }
        &kept.as_ref().expect("set above").2
    }

    /// Plain Ewald (the reciprocal sum over k) for `n` charges in `cell`.
    pub fn plain_ewald(&self, n: usize, cell: &Cell) -> Ewald {
        let volume = cell.volume();
        // A real-space cutoff within 10 cell widths (the neighbour list reaches 12 images).
        let alpha = (PI.sqrt() * (n.max(1) as f64 / (volume * volume)).powf(1.0 / 6.0)).max(EWALD_SPAN / (10.0 * cell.thinnest_width())).min(self.a());
        self.ewald_with(alpha, cell)
    }

    /// The Ewald splitting with a given α (the result does not depend on it).
    pub fn ewald_with(&self, alpha: f64, cell: &Cell) -> Ewald {
        let real_cutoff = if alpha >= self.a() { 0.0 } else { EWALD_SPAN / alpha };
        let k_max = 2.0 * alpha * EWALD_SPAN;
        let vectors = cell.vectors();
        // Reciprocal vectors with a_l · b_m = 2π δ_lm.
        let b = cell.reciprocal_vectors().map(|v| v.map(|x| x * 2.0 * PI));
        let reach = [0, 1, 2].map(|m| (k_max * norm(vectors[m]) / (2.0 * PI)).floor() as i32);
        let mut kvectors = Vec::new();
        for h in 0..=reach[0] {
            for k in -reach[1]..=reach[1] {
                for l in -reach[2]..=reach[2] {
                    if h == 0 && (k < 0 || (k == 0 && l <= 0)) {
                        continue;
                    }
                    let kv = [0, 1, 2].map(|c| h as f64 * b[0][c] + k as f64 * b[1][c] + l as f64 * b[2][c]);
                    if dot(kv, kv) < k_max * k_max {
                        kvectors.push(([h, k, l], kv));
                    }
                }
            }
        }
        let table = RealTable::new(self, alpha, real_cutoff);
        Ewald { alpha, real_cutoff, kvectors, volume: cell.volume(), table, pme: None }
    }

    /// The sum over k alone, with α = a (the charges' own width), where the real-space part
    /// vanishes: what the GPU kernels sum (shaders/charges.wgsl), since it needs no pairs
    /// beyond the model's. Err for point charges (σ = 0), whose sum needs a real-space part.
    pub fn reciprocal_only(&self, cell: &Cell) -> Result<ReciprocalSum, String> {
        if self.width <= 0.0 {
            return Err("point charges (σ = 0) need a real-space sum, which the GPU kernels do not have".into());
        }
        let alpha = self.a();
        let ewald = self.ewald_with(alpha, cell);
        let prefactor = 4.0 * PI / ewald.volume;
        let vectors = ewald
            .kvectors
            .iter()
            .map(|&(index, k)| ReciprocalVector { index, k, weight: 2.0 * prefactor * reciprocal::weight(k, alpha), strain: reciprocal::strain_factor(k, alpha) })
            .collect();
        Ok(ReciprocalSum { alpha, volume: ewald.volume, vectors })
    }

    /// About how many k-vectors `reciprocal_only` keeps in a cell of `volume` Å³: the half
    /// sphere |k| < 2 a span, k_max³ V / (12 π²).
    pub fn reciprocal_only_count(&self, volume: f64) -> f64 {
        let k_max = 2.0 * self.a() * EWALD_SPAN;
        k_max.powi(3) * volume / (12.0 * PI * PI)
    }

    /// The largest |k| a mesh must resolve for the sum over k alone (α = a, as
    /// `reciprocal_only`) by particle-mesh Ewald: the GPU's mesh (shaders/pme.wgsl).
    pub fn reciprocal_only_mesh_reach(&self) -> f64 {
        2.0 * self.a() * PME_SPAN
    }

    /// The Ewald splitting with α and the reciprocal part by PME.
    pub fn pme_with(&self, alpha: f64, cell: &Cell) -> Ewald {
        let real_cutoff = if alpha >= self.a() { 0.0 } else { PME_SPAN / alpha };
        let table = RealTable::new(self, alpha, real_cutoff);
        let pme = Pme::new(alpha, 2.0 * alpha * PME_SPAN, cell);
        Ewald { alpha, real_cutoff, kvectors: Vec::new(), volume: cell.volume(), table, pme: Some(pme) }
    }

    /// Energy, potentials, forces and virial of `charges` at `positions`.
    pub fn field(&self, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Field, String> {
        self.field_with(&mut Memory::default(), positions, cell, charges)
    }

    /// `field`, keeping the Ewald splitting (PME's grid) and the real-space pairs in `memory`
    /// from one call to the next (MD: the same structure at every step).
    pub fn field_with(&self, memory: &mut Memory, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Field, String> {
        if !periodicity(cell)? {
            return self.open_sum(memory, positions, cell, charges);
        }
        let ewald = self.kept_ewald(&mut memory.ewald, positions.len(), cell);
        self.ewald_sum_with(ewald, &mut memory.pairs, positions, cell, charges)
    }

    /// The potentials dE/dq alone, as `field_with` sums them (charge equilibration's
    /// matrix-vector products, many at one set of positions): the real-space kernel of every
    /// kept pair, or an open cell's whole direct-sum matrix up to `DENSE_KERNEL_ATOMS`, is
    /// computed once for these positions and kept in `memory`, so a further product costs a
    /// multiply-add per pair plus the mesh's part. A periodic cell's sum over k-vectors (small
    /// cells) takes `field_with`.
    pub fn potential_with(&self, memory: &mut Memory, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Vec<f64>, String> {
        let n = positions.len();
        let (alpha, volume, mut potential) = if periodicity(cell)? {
            let Memory { ewald, pairs, kernel, .. } = memory;
            let ewald = self.kept_ewald(ewald, n, cell);
            let Some(pme) = &ewald.pme else {
                return Ok(self.field_with(memory, positions, cell, charges)?.potential);
            };
            let mut potential = self.kept_real_products(&ewald.table, ewald.alpha, ewald.real_cutoff, pairs, kernel, positions, cell, charges)?;
            pme.reciprocal(positions, cell, charges).0.iter().zip(&mut potential).for_each(|(m, p)| *p += m);
            (ewald.alpha, Some(ewald.volume), potential)
        } else {
            let Memory { open, pairs, kernel, .. } = memory;
            let splitting = open.get_or_insert_with(|| self.open_splitting());
            let Some(layout) = self.open_mesh_layout(splitting, positions)? else {
                if n > DENSE_KERNEL_ATOMS {
                    return Ok(self.direct_sum(positions, charges).potential);
                }
                let matrix = kept(kernel, positions, cell, || {
                    Ok((0..n * n).into_par_iter().with_min_len(256).map(|ij| if ij / n == ij % n { 0.0 } else { self.direct(norm(sub(positions[ij % n], positions[ij / n]))).0 }).collect())
                })?;
                let products = matrix.par_chunks(n).map(|row| COULOMB_CONSTANT * row.iter().zip(charges).map(|(k, q)| k * q).sum::<f64>());
                return Ok(products.collect());
            };
            let mut potential = self.kept_real_products(&splitting.table, splitting.alpha, splitting.real_cutoff, pairs, kernel, positions, cell, charges)?;
            splitting.mesh.sum(&layout, positions, charges).0.iter().zip(&mut potential).for_each(|(m, p)| *p += m);
            (splitting.alpha, None, potential)
        };
        let (own, _) = self_and_background(alpha, volume, charges);
        for (p, own) in potential.iter_mut().zip(own) {
            *p = COULOMB_CONSTANT * (*p + own);
        }
        Ok(potential)
    }

    /// Σ_j ψ(r_ij) q_j over the real-space pairs, with ψ per pair kept for these positions.
    #[allow(clippy::too_many_arguments)]
    fn kept_real_products(&self, table: &RealTable, alpha: f64, cutoff: f64, list: &mut RealSpaceList, kernel: &mut Option<(Vec<Vec3>, Cell, Vec<f64>)>, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Vec<f64>, String> {
        if cutoff <= 0.0 {
            return Ok(vec![0.0; positions.len()]);
        }
        let cutoff_sq = cutoff * cutoff;
        let values = kept(kernel, positions, cell, || {
            let wrapped = &list.update(cutoff, positions, cell)?;
            let (pairs, start, shifts) = (&list.pairs, &list.start, list.shift_vectors());
            Ok((0..positions.len())
                .into_par_iter()
                .with_min_len(16)
                .flat_map_iter(|i| {
                    pairs[start[i]..start[i + 1]].iter().map(move |&pair| {
                        let r = pair_image(wrapped, shifts, wrapped[i], pair).1;
                        let d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
                        if d2 < cutoff_sq { table.at(self, alpha, d2.sqrt()).0 } else { 0.0 }
                    })
                })
                .collect())
        })?;
        let (pairs, start) = (&list.pairs, &list.start);
        Ok((0..positions.len())
            .into_par_iter()
            .with_min_len(16)
            .map(|i| (start[i]..start[i + 1]).map(|e| values[e] * charges[(pairs[e] >> 32) as usize]).sum())
            .collect())
    }

    /// An open cell's sum: every pair directly, or ψ over pairs and the rest on the mesh.
    fn open_sum(&self, memory: &mut Memory, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Field, String> {
        let Memory { open, pairs, .. } = memory;
        let splitting = open.get_or_insert_with(|| self.open_splitting());
        let Some(layout) = self.open_mesh_layout(splitting, positions)? else {
            return Ok(self.direct_sum(positions, charges));
        };
        let mut rows = self.real_space_rows(&splitting.table, splitting.alpha, splitting.real_cutoff, pairs, positions, cell, charges)?;
        let (potential, forces, virial) = splitting.mesh.sum(&layout, positions, charges);
        add_mesh(&mut rows, potential, forces);
        Ok(self.finish(splitting.alpha, None, rows, charges, virial))
    }

    /// The direct sum over all pairs (open boundaries), rows in parallel.
    pub fn direct_sum(&self, positions: &[Vec3], charges: &[f64]) -> Field {
        let rows: Vec<(f64, Vec3, [f64; 9])> = (0..positions.len())
            .into_par_iter()
            .with_min_len(16)
            .map(|i| {
                let (mut potential, mut force, mut virial) = (0.0, [0.0; 3], [0.0; 9]);
                for (j, xj) in positions.iter().enumerate() {
                    if j != i {
                        let r = sub(*xj, positions[i]);
                        let d = norm(r);
                        let (phi, dphi) = self.direct(d);
                        pair_terms(charges[i], charges[j], r, d, phi, dphi, &mut potential, &mut force, &mut virial);
                    }
                }
                (potential, force, virial)
            })
            .collect();
        assemble(rows, charges, [0.0; 9])
    }

    /// Ewald's sum in a fully periodic cell.
    pub fn ewald_sum(&self, ewald: &Ewald, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Field, String> {
        self.ewald_sum_with(ewald, &mut RealSpaceList::default(), positions, cell, charges)
    }

    /// `ewald_sum` keeping the real-space pair list in `list` between calls (MD): it is
    /// rebuilt only when an atom has moved half its skin, or the cell or cutoff changed.
    pub fn ewald_sum_with(&self, ewald: &Ewald, list: &mut RealSpaceList, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Field, String> {
        let n = positions.len();
        let mut rows = self.real_space_rows(&ewald.table, ewald.alpha, ewald.real_cutoff, list, positions, cell, charges)?;
        if let Some(pme) = &ewald.pme {
            let (potential, forces, virial) = pme.reciprocal(positions, cell, charges);
            add_mesh(&mut rows, potential, forces);
            return Ok(self.finish(ewald.alpha, Some(ewald.volume), rows, charges, virial));
        }
        // Reciprocal space: S(k) per k (each a sum over atoms, in order), then per atom its
        // potential and force over all k; both passes are deterministic at any thread count.
        let phases = Phases::new(ewald, positions, cell);
        let structure: Vec<(f64, f64)> = (0..ewald.kvectors.len())
            .into_par_iter()
            .with_min_len(8)
            .map(|k| {
                let (mut c, mut s) = (0.0, 0.0);
                for (j, &q) in charges.iter().enumerate() {
                    let (cos, sin) = phases.at(j, &ewald.kvectors[k].0);
                    c += q * cos;
                    s += q * sin;
                }
                (c, s)
            })
            .collect();
        let weights: Vec<f64> = ewald.kvectors.iter().map(|(_, kv)| reciprocal::weight(*kv, ewald.alpha)).collect();
        let prefactor = 4.0 * PI / ewald.volume;
        let reciprocal: Vec<(f64, Vec3)> = (0..n)
            .into_par_iter()
            .with_min_len(16)
            .map(|i| {
                let (mut potential, mut force) = (0.0, [0.0; 3]);
                for (k, ((index, kv), &(c, s))) in ewald.kvectors.iter().zip(&structure).enumerate() {
                    let (cos, sin) = phases.at(i, index);
                    let w = 2.0 * prefactor * weights[k];
                    potential += w * (c * cos + s * sin);
                    let f = w * charges[i] * (c * sin - s * cos);
                    for a in 0..3 {
                        force[a] += f * kv[a];
                    }
                }
                (potential, force)
            })
            .collect();
        let mut virial = [0.0; 9];
        for (((_, kv), &(c, s)), &w) in ewald.kvectors.iter().zip(&structure).zip(&weights) {
            let e = prefactor * w * (c * c + s * s);
            let strain = reciprocal::strain(*kv, ewald.alpha);
            (0..9).for_each(|ab| virial[ab] += e * strain[ab]);
        }
        for (row, (potential, force)) in rows.iter_mut().zip(reciprocal) {
            row.0 += potential;
            (0..3).for_each(|a| row.1[a] += force[a]);
        }
        Ok(self.finish(ewald.alpha, Some(ewald.volume), rows, charges, virial))
    }

    /// The real-space rows (potential, force, virial) of ψ over a full pair list, each atom
    /// gathering over its own row; zero rows without a real-space part.
    #[allow(clippy::too_many_arguments)]
    fn real_space_rows(&self, table: &RealTable, alpha: f64, cutoff: f64, list: &mut RealSpaceList, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> Result<Vec<(f64, Vec3, [f64; 9])>, String> {
        let n = positions.len();
        if cutoff <= 0.0 {
            return Ok(vec![(0.0, [0.0; 3], [0.0; 9]); n]);
        }
        let wrapped = list.update(cutoff, positions, cell)?;
        let (pairs, start, shifts) = (&list.pairs, &list.start, list.shift_vectors());
        let cutoff_sq = cutoff * cutoff;
        let rows = (0..n)
            .into_par_iter()
            .with_min_len(16)
            .map(|i| {
                let (xi, qi) = (wrapped[i], charges[i]);
                let (mut potential, mut force, mut strain) = (0.0, [0.0; 3], [0.0; 6]);
                for &pair in &pairs[start[i]..start[i + 1]] {
                    let (j, r) = pair_image(&wrapped, shifts, xi, pair);
                    let d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
                    if d2 >= cutoff_sq {
                        continue;
                    }
                    let d = d2.sqrt();
                    let (psi, dpsi) = table.at(self, alpha, d);
                    let qj = charges[j];
                    potential += qj * psi;
                    // A central force: its virial r ⊗ f is symmetric (six entries).
                    let f = qi * qj * dpsi / d;
                    let (fx, fy, fz) = (f * r[0], f * r[1], f * r[2]);
                    force[0] += fx;
                    force[1] += fy;
                    force[2] += fz;
                    strain[0] += fx * r[0];
                    strain[1] += fy * r[1];
                    strain[2] += fz * r[2];
                    strain[3] += fx * r[1];
                    strain[4] += fx * r[2];
                    strain[5] += fy * r[2];
                }
                let [xx, yy, zz, xy, xz, yz] = strain.map(|w| -0.5 * w);
                (potential, force, [xx, xy, xz, xy, yy, yz, xz, yz, zz])
            })
            .collect();
        Ok(rows)
    }

    /// Adds the self term, and a periodic cell's (`volume`) background term, to the real and
    /// reciprocal (or mesh) rows, and sums up.
    fn finish(&self, alpha: f64, volume: Option<f64>, mut rows: Vec<(f64, Vec3, [f64; 9])>, charges: &[f64], mut virial: [f64; 9]) -> Field {
        // Self and background terms: E_self = -α/√π Σ q², E_bg = -π Q²/(2 V α²).
        let (own, background) = self_and_background(alpha, volume, charges);
        for (row, own) in rows.iter_mut().zip(own) {
            row.0 += own;
        }
        let total: f64 = charges.iter().sum();
        let e_background = 0.5 * background * total * total;
        for a in 0..3 {
            virial[4 * a] += e_background;
        }
        assemble(rows, charges, virial)
    }
}

/// The reciprocal-space Ewald sum alone (`Coulomb::reciprocal_only`).
#[derive(Clone, Debug)]
pub struct ReciprocalSum {
    /// 1/Å
    pub alpha: f64,
    /// Å³
    pub volume: f64,
    /// Half of the k-vectors (k and -k give equal terms).
    pub vectors: Vec<ReciprocalVector>,
}

/// One k-vector of a `ReciprocalSum`: E = (k_e/2) Σ_k weight |S(k)|² + self and background
/// terms, and −∂E_k/∂ε_ab = E_k (δ_ab − 2 strain k_a k_b).
#[derive(Clone, Copy, Debug)]
pub struct ReciprocalVector {
    /// Its indices on the reciprocal lattice (k = h b_1 + k b_2 + l b_3).
    pub index: [i32; 3],
    /// 1/Å
    pub k: Vec3,
    /// 2 (4π/V) e^{−k²/4α²}/k²
    pub weight: f64,
    /// 1/(4α²) + 1/k²
    pub strain: f64,
}

/// What `Coulomb::field_with` keeps between calls for one structure.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The splitting for (atoms, cell).
    ewald: Option<(usize, Cell, Ewald)>,
    /// An open cell's splitting and mesh.
    open: Option<OpenSplitting>,
    pairs: RealSpaceList,
    /// `potential_with`'s kernel values for the positions and cell they were made at: per
    /// real-space pair in `pairs`' order, or the open direct sum's n × n matrix.
    kernel: Option<(Vec<Vec3>, Cell, Vec<f64>)>,
}

/// An open cell's splitting: ψ over pairs to `real_cutoff`, the smooth rest on the mesh.
#[derive(Clone, Debug)]
struct OpenSplitting {
    alpha: f64,
    real_cutoff: f64,
    table: RealTable,
    mesh: FreeSpaceMesh,
}

impl OpenSplitting {
    fn describe(&self, layout: &Layout) -> String {
        let [p0, p1, p2] = layout.padded;
        format!(
            "a particle-mesh sum in free space on a {p0} x {p1} x {p2} grid ({:.3} Å apart, zero-padded), α = {:.4}/Å, {}",
            self.mesh.spacing,
            self.alpha,
            real_space_words(self.real_cutoff)
        )
    }
}

/// Atoms up to which `potential_with` keeps an open cell's direct-sum matrix (32 MB).
const DENSE_KERNEL_ATOMS: usize = 2000;

/// The values `make` gives, kept in `kernel` while the positions and cell stay.
fn kept<'a>(kernel: &'a mut Option<(Vec<Vec3>, Cell, Vec<f64>)>, positions: &[Vec3], cell: &Cell, make: impl FnOnce() -> Result<Vec<f64>, String>) -> Result<&'a [f64], String> {
    if !matches!(kernel, Some((x, c, _)) if x == positions && c == cell) {
        *kernel = Some((positions.to_vec(), cell.clone(), make()?));
    }
    Ok(&kernel.as_ref().expect("set above").2)
}

/// Pair key `pair` of atom i at `xi` (neighbour << 32 | image, `RealSpaceList`): the neighbour
/// and its image's displacement from i.
#[inline]
fn pair_image(wrapped: &[Vec3], shifts: &[Vec3], xi: Vec3, pair: u64) -> (usize, Vec3) {
    let j = (pair >> 32) as usize;
    let (xj, shift) = (wrapped[j], shifts[pair as u32 as usize]);
    (j, [xj[0] + shift[0] - xi[0], xj[1] + shift[1] - xi[1], xj[2] + shift[2] - xi[2]])
}

/// Every charge's potential from the self term and, in a periodic cell (`volume`), the
/// neutralising background: -2α/√π q_i + b Q with b = -π/(V α²) (units of k_e); and b.
fn self_and_background(alpha: f64, volume: Option<f64>, charges: &[f64]) -> (Vec<f64>, f64) {
    let total: f64 = charges.iter().sum();
    let background = volume.map_or(0.0, |v| -PI / (v * alpha * alpha));
    (charges.iter().map(|&q| -2.0 * alpha / PI.sqrt() * q + background * total).collect(), background)
}

/// Whether a cell is fully periodic (Ewald) or open (direct sum); a mix is refused.
pub fn periodicity(cell: &Cell) -> Result<bool, String> {
    match cell.pbc() {
        [true, true, true] => Ok(true),
        [false, false, false] => Ok(false),
        pbc => Err(format!(
            "learned charges need a cell periodic along all three axes or along none, not pbc = {pbc:?} (slab Ewald is not implemented)"
        )),
    }
}

/// e^{i k·r_j} from per-axis tables e^{i 2π n s_j,m}, n within each axis's reach.
struct Phases {
    reach: [i32; 3],
    /// [axis][atom][n + reach] as (cos, sin).
    tables: [Vec<Vec<(f64, f64)>>; 3],
}

impl Phases {
    fn new(ewald: &Ewald, positions: &[Vec3], cell: &Cell) -> Phases {
        let mut reach = [0i32; 3];
        for (index, _) in &ewald.kvectors {
            (0..3).for_each(|m| reach[m] = reach[m].max(index[m].abs()));
        }
        let tables = [0, 1, 2].map(|m| {
            positions
                .par_iter()
                .map(|&r| {
                    let s = cell.fractional(r)[m];
                    (-reach[m]..=reach[m]).map(|n| (2.0 * PI * n as f64 * s).sin_cos()).map(|(sin, cos)| (cos, sin)).collect()
                })
                .collect()
        });
        Phases { reach, tables }
    }

    /// (cos, sin) of k·r_atom for the reciprocal vector of integer `index`.
    fn at(&self, atom: usize, index: &[i32; 3]) -> (f64, f64) {
        let mut out = (1.0, 0.0);
        for m in 0..3 {
            let (c, s) = self.tables[m][atom][(index[m] + self.reach[m]) as usize];
            out = (out.0 * c - out.1 * s, out.0 * s + out.1 * c);
        }
        out
    }
}

/// One image of pair (i, j) at r = x_j + shift − x_i with kernel value v and slope dv, seen from
/// i: i's potential gains q_j v, its force q_i q_j dv r̂, the virial half the pair's -dv r⊗r/d.
#[allow(clippy::too_many_arguments)]
fn pair_terms(qi: f64, qj: f64, r: Vec3, d: f64, v: f64, dv: f64, potential: &mut f64, force: &mut Vec3, virial: &mut [f64; 9]) {
    *potential += qj * v;
    let f = qi * qj * dv / d;
    for a in 0..3 {
        force[a] += f * r[a];
        for b in 0..3 {
            virial[3 * a + b] -= 0.5 * f * r[a] * r[b];
        }
    }
}

/// The real-space part of a splitting in words (the run's header).
fn real_space_words(cutoff: f64) -> String {
    if cutoff > 0.0 { format!("real-space cutoff {cutoff:.2} Å") } else { "no real-space part".into() }
}

/// Adds a mesh's potentials and forces (PME's or the free-space one's) to the real-space rows.
fn add_mesh(rows: &mut [(f64, Vec3, [f64; 9])], potential: Vec<f64>, forces: Vec<Vec3>) {
    for ((row, p), f) in rows.iter_mut().zip(potential).zip(forces) {
        row.0 += p;
        (0..3).for_each(|a| row.1[a] += f[a]);
    }
}

/// The field from per-atom (potential, force, virial) rows in units of k_e: E = ½ Σ q_i φ_i.
fn assemble(rows: Vec<(f64, Vec3, [f64; 9])>, charges: &[f64], mut virial: [f64; 9]) -> Field {
    let mut e = 0.0;
    for ((potential, _, w), q) in rows.iter().zip(charges) {
        e += 0.5 * q * potential;
        (0..9).for_each(|c| virial[c] += w[c]);
    }
    Field {
        energy: COULOMB_CONSTANT * e,
        potential: rows.iter().map(|r| COULOMB_CONSTANT * r.0).collect(),
        forces: rows.iter().map(|r| r.1.map(|x| COULOMB_CONSTANT * x)).collect(),
        virial: virial.map(|x| COULOMB_CONSTANT * x),
    }
}
