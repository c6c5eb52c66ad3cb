//! The smooth part of the Coulomb sum in an open cell, on a grid: Hockney and Eastwood's
//! free-space particle-mesh sum, with smooth PME's B-splines (`crate::ml::pme`). O(N + G log G)
//! where the direct sum over pairs is O(N²); `crate::ml::electrostatics` adds the short-range
//! rest over a pair list and the self term, as it does for a periodic cell.
//!
//! ```text
//! E = ½ Σ_{i,j} q_i q_j g(r_ij),   g(r) = erf(α r)/r   (i = j included: g(0) = 2α/√π)
//! Q(m) = Σ_i q_i W_i(m),   φ = Φ ⋆ Q,   E = ½ Σ_m Q(m) φ(m)
//! dE/dq_i = Σ_m φ(m) W_i(m),   F_i = −q_i Σ_m φ(m) ∇W_i(m)
//! ```
//! W_i is the product of order-p B-splines on an axis-aligned grid of spacing h around the
//! atoms. Φ is g at the grid's displacements deconvolved by the splines' Euler factors
//! (Φ̂ = B ĝ), so that spreading and interpolating by splines reproduce g between grid points,
//! as SPME does for a periodic sum. The grid is zero-padded to twice its size and a margin, so
//! that the circular convolution of the FFTs is the linear one (no images); the transforms skip
//! the rows that padding leaves zero, and compute only the rows that are read back.
//!
//! The grid's origin and size are functions of the positions alone (whole grid steps, the size
//! rounded up to `QUANTUM`), never of an earlier step: a restarted run sums each step on the
//! grid the straight run used. Units as `Pme::reciprocal`: multiply by k_e.

use crate::cell::Vec3;
use crate::ml::pme::{ORDER, OVERSAMPLING, euler_factors, interpolate, smooth_size, splines};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;

/// Grid points the occupied region is rounded up to along each axis, so that the padded size,
/// and the kernel with it, change only every few grid steps as a cluster breathes.
const QUANTUM: usize = 8;

/// Grid points added to twice the occupied size. The sampled kernel wraps around half of this
/// beyond the largest displacement read; its kink there (the slope of erf(αr)/r far away) is so
/// small that margins of 2, 24 and 64 points give energies 3e-10 apart (relative).
const MARGIN: usize = 2;

/// A stencil row's point offsets from its start, for points taken first − tz.
const BACKWARDS: [usize; ORDER] = {
    let mut offsets = [0; ORDER];
    let mut tz = 0;
    while tz < ORDER {
        offsets[tz] = ORDER - 1 - tz;
        tz += 1;
    }
    offsets
};

/// Kernels kept for the grid sizes last used.
const KERNELS: usize = 2;

/// Lines transformed together (gathered and scattered as contiguous runs of this length).
const BLOCK: usize = 16;

/// Padded grid points above which the mesh is refused: its buffers and two kernels keep about
/// 18 bytes a point, and making a kernel takes 12 more for a moment (about 1 GB at this limit).
pub const MAX_POINTS: usize = 1 << 25;

/// The grid of one evaluation: where it starts (in grid steps from the Cartesian origin), the
/// points the atoms' splines reach along each axis, and the padded size the FFTs run on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    origin: [i64; 3],
    pub occupied: [usize; 3],
    pub padded: [usize; 3],
}

impl Layout {
    pub fn points(&self) -> usize {
        self.padded.iter().product()
    }
}

/// The free-space mesh of one splitting α, with what it keeps between calls.
#[derive(Clone, Debug)]
pub struct FreeSpaceMesh {
    alpha: f64,
    /// Å
    pub spacing: f64,
    /// Φ̂ B / G for the padded sizes they were made for, z half, as (y, z) lines along x: the
    /// last `KERNELS` used, latest first (a cluster whose size hovers at a step between two
    /// grids does not remake one every step).
    kernels: Vec<([usize; 3], Vec<f64>)>,
    /// Kept buffers (no fresh pages every step): the occupied real rows, the spectrum of the
    /// occupied x planes, and the x lines.
    real: Vec<f64>,
    near: Vec<Complex<f64>>,
    lines: Vec<Complex<f64>>,
}

/// An atom's spline stencil per axis: its first grid point, the B-spline values and slopes
/// (point t is first − t).
type Stencil = ([usize; 3], [[f64; ORDER]; 3], [[f64; ORDER]; 3]);

impl FreeSpaceMesh {
    /// A mesh that resolves g's spectrum, e^{−k²/4α²}, to |k| < `k_max`: the same points per
    /// Å as `Pme::new` takes for that reach.
    pub fn new(alpha: f64, k_max: f64) -> FreeSpaceMesh {
        FreeSpaceMesh { alpha, spacing: PI / (OVERSAMPLING * k_max), kernels: Vec::new(), real: Vec::new(), near: Vec::new(), lines: Vec::new() }
    }

    /// The grid for atoms at `positions` (at least one); Err when it would exceed `MAX_POINTS`.
    pub fn layout(&self, positions: &[Vec3]) -> Result<Layout, String> {
        let mut low = [f64::INFINITY; 3];
        let mut high = [f64::NEG_INFINITY; 3];
        for r in positions {
            for a in 0..3 {
                low[a] = low[a].min(r[a] / self.spacing);
                high[a] = high[a].max(r[a] / self.spacing);
            }
        }
        let too_many = |points: f64| {
            let extent = [0, 1, 2].map(|a| (high[a] - low[a]) * self.spacing);
            Err(format!(
                "the atoms spread over {:.0} x {:.0} x {:.0} Å, and an open cell's particle-mesh sum would need about {points:.1e} grid points (at most {MAX_POINTS}); use [potential] ewald = \"sum\" (the direct sum over pairs)",
                extent[0], extent[1], extent[2]
            ))
        };
        // A spread no grid within the limit can hold is refused before sizes are taken from it:
        // each padded size is at least twice the spread and the stencil.
        let least: f64 = (0..3).map(|a| 2.0 * (high[a] - low[a] + ORDER as f64)).product();
        if least.is_nan() || least > MAX_POINTS as f64 {
            return too_many(least);
        }
        // One point of slack at each end, for rounding in r/h − origin.
        let origin = [0, 1, 2].map(|a| low[a].floor() as i64 - ORDER as i64);
        let occupied = [0, 1, 2].map(|a| ((high[a].floor() as i64 - origin[a] + 2) as usize).div_ceil(QUANTUM) * QUANTUM);
        let padded = occupied.map(|n| smooth_size(2 * n + MARGIN));
        let layout = Layout { origin, occupied, padded };
        if layout.points() > MAX_POINTS {
            return too_many(layout.points() as f64);
        }
        Ok(layout)
    }

    /// The mesh part for `charges` at `positions` on `layout`: dE/dq, forces, and the virial
    /// Σ (x_i − x̄) ⊗ F_i (symmetrised: the sum's pair forces are central), all without k_e.
    pub fn sum(&mut self, layout: &Layout, positions: &[Vec3], charges: &[f64]) -> (Vec<f64>, Vec<Vec3>, [f64; 9]) {
        let (occupied, padded) = (layout.occupied, layout.padded);
        match self.kernels.iter().position(|(p, _)| *p == padded) {
            Some(k) => self.kernels[..=k].rotate_right(1),
            None => {
                self.kernels.truncate(KERNELS - 1);
                self.kernels.insert(0, (padded, kernel(self.alpha, self.spacing, padded)));
            }
        }
        let stencils: Vec<Stencil> = positions
            .par_iter()
            .with_min_len(256)
            .map(|r| {
                let mut first = [0usize; 3];
                let (mut values, mut slopes) = ([[0.0; ORDER]; 3], [[0.0; ORDER]; 3]);
                for a in 0..3 {
                    let u = r[a] / self.spacing - layout.origin[a] as f64;
                    let floor = u.floor();
                    (values[a], slopes[a]) = splines(u - floor);
                    first[a] = floor as usize;
                }
                (first, values, slopes)
            })
            .collect();
        // Spreading onto the occupied rows, one x plane per task, each adding its atoms in a
        // fixed order (by t, then by atom): the grid does not depend on the thread count.
        let [n0, n1, _] = occupied;
        let row = padded[2];
        let plane = n1 * row;
        let mut by_plane: Vec<Vec<u32>> = vec![Vec::new(); n0];
        for (i, (first, _, _)) in stencils.iter().enumerate() {
            by_plane[first[0]].push(i as u32);
        }
        self.real.clear();
        self.real.resize(n0 * plane, 0.0);
        self.real.par_chunks_mut(plane).enumerate().for_each(|(gx, slab)| {
            for tx in 0..ORDER {
                let Some(atoms) = by_plane.get(gx + tx) else { break };
                for &i in atoms {
                    let (first, values, _) = &stencils[i as usize];
                    let wx = charges[i as usize] * values[0][tx];
                    for ty in 0..ORDER {
                        let start = (first[1] - ty) * row;
                        let wxy = wx * values[1][ty];
                        for tz in 0..ORDER {
                            slab[start + first[2] - tz] += wxy * values[2][tz];
                        }
                    }
                }
            }
        });
        self.convolve(occupied, padded);
        let phi = &self.real;
        let inverse_h = 1.0 / self.spacing;
        let (potential, forces): (Vec<f64>, Vec<Vec3>) = stencils
            .par_iter()
            .zip(charges)
            .with_min_len(256)
            .map(|((first, values, slopes), &q)| {
                // Point tz of a row is first[2] − tz: the row starts ORDER − 1 before it.
                let start = |tx: usize, ty: usize| ((first[0] - tx) * n1 + first[1] - ty) * row + first[2] - (ORDER - 1);
                let (p, du) = interpolate(phi, values, slopes, start, &BACKWARDS);
                (p, du.map(|d| -q * d * inverse_h))
            })
            .unzip();
        let n = positions.len().max(1) as f64;
        let centre: Vec3 = [0, 1, 2].map(|a| positions.iter().map(|r| r[a]).sum::<f64>() / n);
        let mut virial = [0.0; 9];
        for (r, f) in positions.iter().zip(&forces) {
            for a in 0..3 {
                for b in 0..3 {
                    virial[3 * a + b] += 0.5 * ((r[a] - centre[a]) * f[b] + (r[b] - centre[b]) * f[a]);
                }
            }
        }
        (potential, forces, virial)
    }

    /// φ = Φ ⋆ Q on the occupied rows of `self.real` (in place): forward FFTs along z (occupied
    /// rows only), y (occupied planes only) and x, the kernel, and back.
    fn convolve(&mut self, occupied: [usize; 3], padded: [usize; 3]) {
        let [n0, n1, _] = occupied;
        let [p0, p1, p2] = padded;
        let half = p2 / 2 + 1;
        let mut real_planner = RealFftPlanner::<f64>::new();
        let (forward_z, inverse_z) = (real_planner.plan_fft_forward(p2), real_planner.plan_fft_inverse(p2));
        let mut planner = FftPlanner::<f64>::new();
        let (forward_y, inverse_y) = (planner.plan_fft_forward(p1), planner.plan_fft_inverse(p1));
        let (forward_x, inverse_x) = (planner.plan_fft_forward(p0), planner.plan_fft_inverse(p0));
        let near_plane = p1 * half;
        self.near.clear();
        self.near.resize(n0 * near_plane, Complex::new(0.0, 0.0));
        // z, then y, within each occupied x plane.
        self.real.par_chunks_mut(n1 * p2).zip(self.near.par_chunks_mut(near_plane)).for_each(|(rows, spectrum)| {
            let mut scratch = forward_z.make_scratch_vec();
            for (y, data) in rows.chunks_mut(p2).enumerate() {
                forward_z.process_with_scratch(data, &mut spectrum[y * half..(y + 1) * half], &mut scratch).expect("rows of the planned length");
            }
            across_rows(spectrum, half, &*forward_y);
        });
        // x: each (y, z) line padded with zeros past the occupied planes, transformed,
        // multiplied by the kernel, transformed back; only its occupied part is kept. Lines go
        // in blocks of `BLOCK` neighbours in (y, z), read and written as contiguous runs;
        // `lines` holds each block's occupied part x-major ([block][x][line]).
        let (_, kernel) = &self.kernels[0];
        let near = &self.near;
        self.lines.clear();
        self.lines.resize(near_plane.div_ceil(BLOCK) * BLOCK * n0, Complex::new(0.0, 0.0));
        self.lines.par_chunks_mut(BLOCK * n0).enumerate().for_each_init(
            || vec![Complex::new(0.0, 0.0); BLOCK * p0],
            |block, (b, out)| {
                let first = b * BLOCK;
                let width = BLOCK.min(near_plane - first);
                block.fill(Complex::new(0.0, 0.0));
                for x in 0..n0 {
                    let run = &near[x * near_plane + first..x * near_plane + first + width];
                    run.iter().enumerate().for_each(|(l, v)| block[l * p0 + x] = *v);
                }
                let block = &mut block[..width * p0];
                forward_x.process(block);
                block.iter_mut().zip(&kernel[first * p0..(first + width) * p0]).for_each(|(v, k)| *v *= k);
                inverse_x.process(block);
                for x in 0..n0 {
                    (0..width).for_each(|l| out[x * BLOCK + l] = block[l * p0 + x]);
                }
            },
        );
        // Back along y, then z for the occupied rows only.
        let lines = &self.lines;
        self.near.par_chunks_mut(near_plane).zip(self.real.par_chunks_mut(n1 * p2)).enumerate().for_each(|(x, (spectrum, rows))| {
            for (b, run) in spectrum.chunks_mut(BLOCK).enumerate() {
                let start = (b * n0 + x) * BLOCK;
                run.copy_from_slice(&lines[start..start + run.len()]);
            }
            across_rows(spectrum, half, &*inverse_y);
            let mut scratch = inverse_z.make_scratch_vec();
            for (y, data) in rows.chunks_mut(p2).enumerate() {
                // The m_z = 0 (and p2/2) terms are real up to rounding, which realfft reports
                // and drops.
                match inverse_z.process_with_scratch(&mut spectrum[y * half..(y + 1) * half], data, &mut scratch) {
                    Ok(()) | Err(realfft::FftError::InputValues(..)) => {}
                    Err(e) => panic!("rows of the planned length: {e}"),
                }
            }
        });
    }
}

/// The FFT along the rows of a slab of `columns` columns (z fastest) for every column,
/// `BLOCK` columns at a time through a contiguous buffer.
fn across_rows(slab: &mut [Complex<f64>], columns: usize, fft: &dyn rustfft::Fft<f64>) {
    let rows = slab.len() / columns;
    let mut buffer = vec![Complex::new(0.0, 0.0); BLOCK * rows];
    for first in (0..columns).step_by(BLOCK) {
        let width = BLOCK.min(columns - first);
        for y in 0..rows {
            (0..width).for_each(|l| buffer[l * rows + y] = slab[y * columns + first + l]);
        }
        fft.process(&mut buffer[..width * rows]);
        for y in 0..rows {
            (0..width).for_each(|l| slab[y * columns + first + l] = buffer[l * rows + y]);
        }
    }
}

/// Φ̂ B / G on a `padded` grid (G its points; the two unnormalised FFTs of `convolve` leave a
/// factor G), as (y, z) lines along x for the z half: g(h |d|) at each displacement d taken
/// the short way round the padded grid, transformed (real and even, so its transform is real),
/// times the splines' Euler factors. Sampled row by row into the transform (no real grid), and
/// along x in blocks of lines, as `convolve` does.
fn kernel(alpha: f64, spacing: f64, padded: [usize; 3]) -> Vec<f64> {
    let [p0, p1, p2] = padded;
    let half = p2 / 2 + 1;
    let shortest = |m: usize, p: usize| if m <= p / 2 { m as f64 } else { p as f64 - m as f64 };
    let forward_z = RealFftPlanner::<f64>::new().plan_fft_forward(p2);
    let mut planner = FftPlanner::<f64>::new();
    let (forward_y, forward_x) = (planner.plan_fft_forward(p1), planner.plan_fft_forward(p0));
    let plane = p1 * half;
    let mut spectrum = vec![Complex::new(0.0, 0.0); p0 * plane];
    // Planes x and p0 − x hold the same samples, so the same transforms: the upper ones are
    // copied from the lower.
    let (lower, upper) = spectrum.split_at_mut((p0 / 2 + 1) * plane);
    lower.par_chunks_mut(plane).enumerate().for_each(|(x, planes)| {
        let dx = shortest(x, p0);
        let (mut row, mut scratch) = (vec![0.0; p2], forward_z.make_scratch_vec());
        for y in 0..p1 {
            let dy = shortest(y, p1);
            for (z, v) in row.iter_mut().enumerate() {
                let dz = shortest(z, p2);
                let r = spacing * (dx * dx + dy * dy + dz * dz).sqrt();
                *v = if r > 0.0 { libm::erf(alpha * r) / r } else { 2.0 * alpha / PI.sqrt() };
            }
            forward_z.process_with_scratch(&mut row, &mut planes[y * half..(y + 1) * half], &mut scratch).expect("rows of the planned length");
        }
        across_rows(planes, half, &*forward_y);
    });
    upper.par_chunks_mut(plane).enumerate().for_each(|(k, planes)| {
        let mirror = p0 - (p0 / 2 + 1 + k);
        planes.copy_from_slice(&lower[mirror * plane..(mirror + 1) * plane]);
    });
    let euler = euler_factors(padded);
    let total = (p0 * p1 * p2) as f64;
    let mut lines = vec![0.0; plane * p0];
    lines.par_chunks_mut(BLOCK * p0).enumerate().for_each_init(
        || vec![Complex::new(0.0, 0.0); BLOCK * p0],
        |block, (b, out)| {
            let (first, width) = (b * BLOCK, out.len() / p0);
            for x in 0..p0 {
                (0..width).for_each(|l| block[l * p0 + x] = spectrum[x * plane + first + l]);
            }
            forward_x.process(&mut block[..width * p0]);
            for l in 0..width {
                let (y, z) = ((first + l) / half, (first + l) % half);
                for x in 0..p0 {
                    out[l * p0 + x] = block[l * p0 + x].re * euler[0][x] * euler[1][y] * euler[2][z] / total;
                }
            }
        },
    );
    lines
}
