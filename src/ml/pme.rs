//! Smooth particle-mesh Ewald (Essmann et al. 1995) for the reciprocal part of
//! `crate::ml::electrostatics`: charges spread on a grid by cardinal B-splines, one FFT forward
//! and one back, potentials and forces interpolated with the same splines. O(N log N) where the
//! plain reciprocal sum is O(N K); the forces are the exact gradient of the PME energy (the
//! splines are differentiated analytically), so MD conserves it.
//!
//! With u = K ⊙ s (s fractional), Q(g) = Σ_i q_i Π_m M_p(u_im − g_m) (periodic in g), and FQ its
//! discrete Fourier transform:
//! ```text
//! E = (2π/V) Σ_{m≠0} e^{−k²/4α²}/k² B(m) |FQ(m)|²,    k = 2π (m_1 b_1 + m_2 b_2 + m_3 b_3)
//! φ = IFFT[(4π/V) e^{−k²/4α²}/k² B FQ],  dE/dq_i = Σ_g φ(g) W_i(g),  F_i = −q_i Σ_g φ(g) ∇W_i(g)
//! ```
//! with b_m the reciprocal vectors (a_l · b_m = δ_lm) and B the B-splines' Euler factors.
//! Units as `Ewald`'s reciprocal part: multiply by k_e.

use crate::cell::{Cell, Vec3};
use crate::ml::reciprocal::{strain as strain_factor, weight};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;

/// B-spline order (interpolation error falls as h^ORDER).
pub const ORDER: usize = 6;

/// Grid points per Nyquist point of the largest |k| kept (tests/ml_long_range.rs: PME within
/// 6e-6 of plain Ewald at 1.5).
pub(crate) const OVERSAMPLING: f64 = 1.5;

#[derive(Clone, Debug)]
pub struct Pme {
    /// Grid points along each cell vector.
    pub grid: [usize; 3],
    /// (4π/V) e^{−k²/4α²}/k² B(m) per grid frequency of the z half (m_z ≤ K_z/2), 0 at m = 0.
    influence: Vec<f64>,
    /// Per such frequency, `reciprocal::strain` (xx, yy, zz, xy, xz, yz), for the virial.
    strain: Vec<[f64; 6]>,
}

/// An atom's spline stencil per axis: its grid points, the B-spline values and their slopes.
type Stencil = ([[usize; ORDER]; 3], [[f64; ORDER]; 3], [[f64; ORDER]; 3]);

/// The grid index of flat position (x, y, z): z fastest.
fn flat(grid: [usize; 3], x: usize, y: usize, z: usize) -> usize {
    (x * grid[1] + y) * grid[2] + z
}

/// The smallest 2^a 3^b 5^c at least n (sizes FFTs are fast at).
pub(crate) fn smooth_size(n: usize) -> usize {
    (n.max(ORDER)..).find(|&m| {
        let mut r = m;
        for p in [2, 3, 5] {
            while r % p == 0 {
                r /= p;
            }
        }
        r == 1
    })
    .expect("a smooth size exists")
}

/// Grid points along cell vector `m` that resolve |k| < `k_max`: oversampled past the Nyquist
/// size, for the splines' aliasing.
pub fn nyquist_points(k_max: f64, cell: &Cell, m: usize) -> usize {
    (OVERSAMPLING * k_max * crate::cell::norm(cell.vectors()[m]) / PI).ceil() as usize
}

/// The B-splines' Euler factors per axis: |b(m)|² = 1 / |Σ_{k=0}^{p−2} M_p(k+1) e^{2πimk/K}|².
pub(crate) fn euler_factors(grid: [usize; 3]) -> Vec<Vec<f64>> {
    let (at_integers, _) = splines(0.0);
    grid.iter()
        .map(|&k| {
            (0..k)
                .map(|m| {
                    let mut sum = Complex::new(0.0, 0.0);
                    for j in 0..ORDER - 1 {
                        sum += Complex::from_polar(at_integers[j + 1], 2.0 * PI * (m * j) as f64 / k as f64);
                    }
                    1.0 / sum.norm_sqr()
                })
                .collect()
        })
        .collect()
}

/// A grid's frequencies in `cell`: each point's wave vector and influence function value.
struct Spectrum {
    grid: [usize; 3],
    alpha: f64,
    volume: f64,
    /// Reciprocal vectors, a_l · b_m = δ_lm.
    b: [Vec3; 3],
    euler: Vec<Vec<f64>>,
}

impl Spectrum {
    fn new(alpha: f64, grid: [usize; 3], cell: &Cell) -> Spectrum {
        Spectrum { grid, alpha, volume: cell.volume(), b: cell.reciprocal_vectors(), euler: euler_factors(grid) }
    }

    /// k = 2π Σ m_c b_c of grid point (x, y, z) (indices past K/2 are the negative
    /// frequencies), and (4π/V) e^{−k²/4α²}/k² B(m) there; None at m = 0.
    fn at(&self, x: usize, y: usize, z: usize) -> Option<(Vec3, f64)> {
        if (x, y, z) == (0, 0, 0) {
            return None;
        }
        let (grid, b) = (self.grid, &self.b);
        let signed = |m: usize, k: usize| if m <= k / 2 { m as f64 } else { m as f64 - k as f64 };
        let m = [signed(x, grid[0]), signed(y, grid[1]), signed(z, grid[2])];
        let k = [0, 1, 2].map(|c| 2.0 * PI * (m[0] * b[0][c] + m[1] * b[1][c] + m[2] * b[2][c]));
        Some((k, 4.0 * PI / self.volume * weight(k, self.alpha) * self.euler[0][x] * self.euler[1][y] * self.euler[2][z]))
    }
}

/// The influence function (4π/V) e^{−k²/4α²}/k² B(m) over the whole `grid` (z fastest, 0 at
/// m = 0), for a full complex transform (the GPU's, shaders/pme.wgsl).
pub fn influence_on(alpha: f64, grid: [usize; 3], cell: &Cell) -> Vec<f64> {
    let spectrum = Spectrum::new(alpha, grid, cell);
    let mut influence = vec![0.0; grid[0] * grid[1] * grid[2]];
    influence.par_chunks_mut(grid[1] * grid[2]).enumerate().for_each(|(x, plane)| {
        for y in 0..grid[1] {
            for z in 0..grid[2] {
                plane[y * grid[2] + z] = spectrum.at(x, y, z).map_or(0.0, |(_, g)| g);
            }
        }
    });
    influence
}

/// M_p(w + t) and its slope for t = 0..p−1, w in [0, 1) (cardinal B-spline of order p).
pub(crate) fn splines(w: f64) -> ([f64; ORDER], [f64; ORDER]) {
    let mut v = [0.0; ORDER];
    v[0] = w;
    v[1] = 1.0 - w;
    let mut slope = [0.0; ORDER];
    for n in 3..=ORDER {
        if n == ORDER {
            for t in 0..n {
                slope[t] = v[t] - if t > 0 { v[t - 1] } else { 0.0 };
            }
        }
        let previous = v;
        for t in 0..n {
            let lower = if t > 0 { previous[t - 1] } else { 0.0 };
            v[t] = ((w + t as f64) * previous[t] + (n as f64 - w - t as f64) * lower) / (n - 1) as f64;
        }
    }
    (v, slope)
}

impl Pme {
    /// A grid that resolves the reciprocal sum to |k| < `k_max` in `cell` (fully periodic).
    pub fn new(alpha: f64, k_max: f64, cell: &Cell) -> Pme {
        let grid = [0, 1, 2].map(|m| smooth_size(nyquist_points(k_max, cell, m)));
        let spectrum = Spectrum::new(alpha, grid, cell);
        // The charges are real: their transform's z half (0..=K_z/2) carries all of it.
        let half = grid[2] / 2 + 1;
        let total = grid[0] * grid[1] * half;
        let mut influence = vec![0.0; total];
        let mut strain = vec![[0.0; 6]; total];
        for x in 0..grid[0] {
            for y in 0..grid[1] {
                for z in 0..half {
                    let Some((k, g)) = spectrum.at(x, y, z) else { continue };
                    let index = flat([grid[0], grid[1], half], x, y, z);
                    influence[index] = g;
                    // The symmetric strain factor's six distinct entries.
                    let s = strain_factor(k, alpha);
                    strain[index] = [s[0], s[4], s[8], s[1], s[2], s[5]];
                }
            }
        }
        Pme { grid, influence, strain }
    }

    /// The reciprocal part: dE/dq, forces and virial (row-major), without k_e (the energy is
    /// ½ Σ q dE/dq).
    pub fn reciprocal(&self, positions: &[Vec3], cell: &Cell, charges: &[f64]) -> (Vec<f64>, Vec<Vec3>, [f64; 9]) {
        let grid = self.grid;
        let total = grid[0] * grid[1] * grid[2];
        // Per atom: the first grid index per axis and the spline values and slopes there.
        // The point of offset t is (base − t) mod K, tabulated per atom (no division in the loops).
        let stencils: Vec<Stencil> = positions
            .par_iter()
            .with_min_len(256)
            .map(|&r| {
                let s = cell.fractional(r);
                let mut points = [[0usize; ORDER]; 3];
                let (mut values, mut slopes) = ([[0.0; ORDER]; 3], [[0.0; ORDER]; 3]);
                for m in 0..3 {
                    let u = (s[m] - s[m].floor()) * grid[m] as f64;
                    let floor = u.floor();
                    (values[m], slopes[m]) = splines(u - floor);
                    let base = floor as usize % grid[m];
                    points[m] = std::array::from_fn(|t| (base + grid[m] - t % grid[m]) % grid[m]);
                }
                (points, values, slopes)
            })
            .collect();
        // Spreading, one grid plane (x) per task: the atoms whose stencil reaches plane gx have
        // their first index at gx + t; each plane adds them in a fixed order (by t, then by atom),
        // so the grid does not depend on the thread count.
        let mut by_plane: Vec<Vec<u32>> = vec![Vec::new(); grid[0]];
        for (i, (points, _, _)) in stencils.iter().enumerate() {
            by_plane[points[0][0]].push(i as u32);
        }
        let plane = grid[1] * grid[2];
        let mut q_grid = vec![0.0; total];
        q_grid.par_chunks_mut(plane).enumerate().for_each(|(gx, slab)| {
            for tx in 0..ORDER {
                for &i in &by_plane[(gx + tx) % grid[0]] {
                    let (points, values, _) = &stencils[i as usize];
                    let wx = charges[i as usize] * values[0][tx];
                    for ty in 0..ORDER {
                        let row = points[1][ty] * grid[2];
                        let wxy = wx * values[1][ty];
                        for tz in 0..ORDER {
                            slab[row + points[2][tz]] += wxy * values[2][tz];
                        }
                    }
                }
            }
        });
        let mut spectrum = real_fft3(&mut q_grid, grid);
        let mut virial6 = [0.0; 6];
        let half = grid[2] / 2 + 1;
        for (index, ((fq, &g), s)) in spectrum.iter_mut().zip(&self.influence).zip(&self.strain).enumerate() {
            // Every m_z but 0 and K_z/2 stands for itself and its mirror −m_z.
            let z = index % half;
            let mirrored = if z == 0 || 2 * z == grid[2] { 1.0 } else { 2.0 };
            let e = 0.5 * mirrored * g * fq.norm_sqr();
            for c in 0..6 {
                virial6[c] += e * s[c];
            }
            *fq *= g;
        }
        inverse_real_fft3(&mut spectrum, grid, &mut q_grid);
        let phi = q_grid;
        let b = cell.reciprocal_vectors();
        let inverse = [0, 1, 2].map(|m| b[m].map(|x| x * grid[m] as f64));
        let (potential, forces): (Vec<f64>, Vec<Vec3>) = stencils
            .par_iter()
            .zip(charges)
            .with_min_len(256)
            .map(|((points, values, slopes), &q)| {
                let (p, du) = interpolate(&phi, values, slopes, |tx, ty| flat(grid, points[0][tx], points[1][ty], 0), &points[2]);
                // F = −q ∇_r Σ φ W, u_m = K_m s_m(r).
                let force = [0, 1, 2].map(|c| -q * (0..3).map(|m| du[m] * inverse[m][c]).sum::<f64>());
                (p, force)
            })
            .unzip();
        let [xx, yy, zz, xy, xz, yz] = virial6;
        (potential, forces, [xx, xy, xz, xy, yy, yz, xz, yz, zz])
    }
}

/// Σ φ W and Σ φ ∂W/∂u_m over an atom's ORDER³ stencil (its potential, and the gradient in
/// grid units that gives its force): `row(tx, ty)` is the grid index where the stencil's row
/// (tx, ty) starts, and `columns[tz]` each point's offset along it. PME's periodic grid and the
/// free-space one (`crate::ml::free_space`) index their stencils differently.
#[inline]
pub(crate) fn interpolate(phi: &[f64], values: &[[f64; ORDER]; 3], slopes: &[[f64; ORDER]; 3], row: impl Fn(usize, usize) -> usize, columns: &[usize; ORDER]) -> (f64, [f64; 3]) {
    let (mut p, mut du) = (0.0, [0.0; 3]);
    for tx in 0..ORDER {
        for ty in 0..ORDER {
            let start = row(tx, ty);
            for tz in 0..ORDER {
                let f = phi[start + columns[tz]];
                let (vx, vy, vz) = (values[0][tx], values[1][ty], values[2][tz]);
                p += f * vx * vy * vz;
                du[0] += f * slopes[0][tx] * vy * vz;
                du[1] += f * vx * slopes[1][ty] * vz;
                du[2] += f * vx * vy * slopes[2][tz];
            }
        }
    }
    (p, du)
}

/// The 3D FFT of a real grid (z fastest), unnormalised: the z half of the spectrum
/// (m_z = 0..=K_z/2, z fastest), the rest being its complex conjugate. `grid` is scratch after.
fn real_fft3(data: &mut [f64], grid: [usize; 3]) -> Vec<Complex<f64>> {
    let plan = RealFftPlanner::<f64>::new().plan_fft_forward(grid[2]);
    let half = grid[2] / 2 + 1;
    let mut spectrum = vec![Complex::new(0.0, 0.0); grid[0] * grid[1] * half];
    data.par_chunks_mut(grid[2]).zip(spectrum.par_chunks_mut(half)).for_each_init(
        || plan.make_scratch_vec(),
        |scratch, (row, out)| plan.process_with_scratch(row, out, scratch).expect("rows of the planned length"),
    );
    fft_xy(&mut spectrum, [grid[0], grid[1], half], false);
    spectrum
}

/// The inverse of `real_fft3` (unnormalised) into `data`; `spectrum` is scratch after.
fn inverse_real_fft3(spectrum: &mut [Complex<f64>], grid: [usize; 3], data: &mut [f64]) {
    let plan = RealFftPlanner::<f64>::new().plan_fft_inverse(grid[2]);
    let half = grid[2] / 2 + 1;
    fft_xy(spectrum, [grid[0], grid[1], half], true);
    spectrum.par_chunks_mut(half).zip(data.par_chunks_mut(grid[2])).for_each_init(
        || plan.make_scratch_vec(),
        |scratch, (row, out)| {
            // The m_z = 0 (and K_z/2) terms of a real grid's transform are real; what rounding
            // left in their imaginary parts is dropped (realfft reports it, and transforms
            // without it).
            match plan.process_with_scratch(row, out, scratch) {
                Ok(()) | Err(realfft::FftError::InputValues(..)) => {}
                Err(e) => panic!("rows of the planned length: {e}"),
            }
        },
    );
}

/// In place, the FFTs along y and x of a complex grid `dims` (z fastest), unnormalised both
/// ways; every pass runs its lines in parallel without shared writes.
fn fft_xy(data: &mut [Complex<f64>], dims: [usize; 3], inverse: bool) {
    let mut planner = FftPlanner::<f64>::new();
    let plans = [0, 1].map(|m| if inverse { planner.plan_fft_inverse(dims[m]) } else { planner.plan_fft_forward(dims[m]) });
    let plane = dims[1] * dims[2];
    // y: within each x-plane, lines of stride dims[2].
    data.par_chunks_mut(plane).for_each(|slab| {
        let mut line = vec![Complex::new(0.0, 0.0); dims[1]];
        for z in 0..dims[2] {
            (0..dims[1]).for_each(|y| line[y] = slab[y * dims[2] + z]);
            plans[1].process(&mut line);
            (0..dims[1]).for_each(|y| slab[y * dims[2] + z] = line[y]);
        }
    });
    // x: gather every (y, z) line into a buffer, transform, put back plane by plane.
    let mut buffer = vec![Complex::new(0.0, 0.0); data.len()];
    buffer.par_chunks_mut(dims[0]).enumerate().for_each(|(yz, line)| {
        (0..dims[0]).for_each(|x| line[x] = data[x * plane + yz]);
        plans[0].process(line);
    });
    data.par_chunks_mut(plane).enumerate().for_each(|(x, slab)| {
        slab.iter_mut().enumerate().for_each(|(yz, v)| *v = buffer[yz * dims[0] + x]);
    });
}
