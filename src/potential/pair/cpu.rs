//! The one pair loop of the CPU platform: every [`PairFunction`] runs through it.
//!
//! The loop runs over a half list with Newton's third law. With several threads each thread
//! accumulates into its own force array and the arrays are added in a fixed order afterwards,
//! so results are bit-identical from run to run for a given thread count.
//!
//! The virial costs the loop almost nothing (LAMMPS's `virial_fdotr_compute` in spirit): for a
//! pair at del = x_i - x_j - s (s its image shift) with force f on i and -f on j,
//! del ⊗ f = x_i ⊗ f + x_j ⊗ (-f) - s ⊗ f, so W = Σ_i x_i ⊗ F_i - Σ_s s ⊗ (Σ of the f of the
//! pairs seen through image s). The loop only sums forces per image shift; a barostat, which
//! needs W every step, then costs a pass over the atoms instead of six products per pair.

use super::{PairFunction, PairSpec};
use crate::cell::Vec3;
use crate::neighbor::{ListKind, NeighborList};
use crate::potential::{ForceOutput, Potential, Want};
use crate::system::System;
use rayon::prelude::*;

/// A pair potential on the CPU: the style's function `F` over the neighbour list.
pub struct PairPotential<F: PairFunction> {
    spec: PairSpec,
    n_species: usize,
    coeffs: Vec<F::Coeffs>,
    max_cutoff: f64,
    /// One force array per extra thread, kept between calls.
    scratch: Vec<Vec<Vec3>>,
}

impl<F: PairFunction> PairPotential<F> {
    pub fn from_spec(spec: PairSpec) -> PairPotential<F> {
        let coeffs = spec.pairs.iter().map(|p| F::coeffs(p, spec.shift)).collect();
        PairPotential { n_species: spec.n_species(), max_cutoff: spec.max_cutoff(), coeffs, spec, scratch: Vec::new() }
    }

    pub fn spec(&self) -> &PairSpec {
        &self.spec
    }
}

impl<F: PairFunction> Potential for PairPotential<F> {
    fn name(&self) -> String {
        self.spec.describe()
    }

    fn cutoff(&self) -> f64 {
        self.max_cutoff
    }

    fn list_kind(&self) -> ListKind {
        ListKind::Half
    }

    fn compute(&mut self, system: &System, list: &NeighborList, want: Want, out: &mut ForceOutput) {
        let n = system.len();
        assert_eq!(list.n_atoms(), n, "neighbour list built for another system");
        out.clear(n);
        let threads = rayon::current_num_threads().min(n.div_ceil(256)).max(1);
        let ev = want.energy;
        let single = self.n_species == 1;
        let kernel = match (ev, single) {
            (true, true) => pair_loop::<F, true, true>,
            (true, false) => pair_loop::<F, true, false>,
            (false, true) => pair_loop::<F, false, true>,
            (false, false) => pair_loop::<F, false, false>,
        };
        let ctx = LoopContext {
            positions: &system.positions,
            types: &system.types,
            list,
            coeffs: &self.coeffs,
            n_species: self.n_species,
            shift_sums: want.virial,
        };
        let tally = if threads == 1 {
            kernel(&ctx, 0..n, &mut out.forces)
        } else {
            self.scratch.resize_with(threads - 1, Vec::new);
            for buf in &mut self.scratch {
                buf.clear();
                buf.resize(n, [0.0; 3]);
            }
            let bounds = balanced_ranges(list.offsets(), threads);
            let mut buffers: Vec<&mut Vec<Vec3>> = std::iter::once(&mut out.forces)
                .chain(self.scratch.iter_mut())
                .collect();
            let tallies: Vec<Tally> = buffers
                .par_iter_mut()
                .enumerate()
                .map(|(t, buf)| kernel(&ctx, bounds[t]..bounds[t + 1], buf))
                .collect();
            // Add the other threads' arrays into the first, in thread order.
            let (first, rest) = buffers.split_first_mut().unwrap();
            first
                .par_chunks_mut(4096)
                .enumerate()
                .for_each(|(c, chunk)| {
                    let base = c * 4096;
                    for other in rest.iter() {
                        for (k, f) in chunk.iter_mut().enumerate() {
                            let g = other[base + k];
                            f[0] += g[0];
                            f[1] += g[1];
                            f[2] += g[2];
                        }
                    }
                });
            tallies.into_iter().fold(Tally::default(), |a, b| a.add(&b))
        };

        if want.energy {
            out.energy = tally.energy;
        }
        if want.virial {
            out.virial = virial_from_forces(&system.positions, &out.forces, list.shift_vectors(), &tally.shift_forces);
        }
        if self.spec.tail && system.cell.is_bounded() {
            let (e_tail, w_tail) =
                self.spec.tail_correction(&system.species_counts(), system.cell.volume());
            if want.energy {
                out.energy += e_tail;
            }
            if want.virial {
                for k in 0..3 {
                    out.virial[k][k] += w_tail / 3.0;
                }
            }
        }
    }
}

/// Energy and, per image shift, the sum of the forces on i of the pairs seen through it,
/// summed by one thread.
#[derive(Clone, Default)]
struct Tally {
    energy: f64,
    shift_forces: Vec<Vec3>,
}

impl Tally {
    fn add(&self, other: &Tally) -> Tally {
        let mut s = self.shift_forces.clone();
        s.resize(s.len().max(other.shift_forces.len()), [0.0; 3]);
        for (a, b) in s.iter_mut().zip(&other.shift_forces) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
        Tally { energy: self.energy + other.energy, shift_forces: s }
    }
}

/// W = Σ_i x_i ⊗ F_i - Σ_s s ⊗ F_s (see the module's doc), symmetrised as the pair sum is.
fn virial_from_forces(positions: &[Vec3], forces: &[Vec3], shifts: &[Vec3], shift_forces: &[Vec3]) -> [[f64; 3]; 3] {
    let sum = |range: std::ops::Range<usize>| {
        let mut w = [[0.0; 3]; 3];
        for (x, f) in positions[range.clone()].iter().zip(&forces[range]) {
            for a in 0..3 {
                for b in 0..3 {
                    w[a][b] += x[a] * f[b];
                }
            }
        }
        w
    };
    const CHUNK: usize = 8192;
    let parts: Vec<[[f64; 3]; 3]> = (0..positions.len().div_ceil(CHUNK)).into_par_iter().map(|c| sum(c * CHUNK..((c + 1) * CHUNK).min(positions.len()))).collect();
    let mut w = [[0.0; 3]; 3];
    for p in parts {
        for a in 0..3 {
            for b in 0..3 {
                w[a][b] += p[a][b];
            }
        }
    }
    for (s, f) in shifts.iter().zip(shift_forces) {
        for a in 0..3 {
            for b in 0..3 {
                w[a][b] -= s[a] * f[b];
            }
        }
    }
    // The pair sum is symmetric; the rearranged one is up to rounding.
    for a in 0..3 {
        for b in a + 1..3 {
            let m = 0.5 * (w[a][b] + w[b][a]);
            w[a][b] = m;
            w[b][a] = m;
        }
    }
    w
}

struct LoopContext<'a, C> {
    positions: &'a [Vec3],
    types: &'a [u32],
    list: &'a NeighborList,
    coeffs: &'a [C],
    n_species: usize,
    /// Sum the forces per image shift (for the virial).
    shift_sums: bool,
}

/// Splits the rows into `parts` consecutive ranges holding about the same number of pairs.
fn balanced_ranges(offsets: &[usize], parts: usize) -> Vec<usize> {
    let n = offsets.len() - 1;
    let total = offsets[n];
    let mut bounds = vec![0usize];
    for p in 1..parts {
        let target = total * p / parts;
        let i = offsets.partition_point(|&o| o < target).min(n);
        bounds.push(i.max(*bounds.last().unwrap()));
    }
    bounds.push(n);
    bounds
}

/// The force loop over the neighbour-list rows `range`, accumulating into `forces` (which every
/// thread owns in full, since Newton's third law writes to neighbours anywhere). `SINGLE`: one
/// species, so no per-pair type lookup.
fn pair_loop<F: PairFunction, const EV: bool, const SINGLE: bool>(
    ctx: &LoopContext<F::Coeffs>,
    range: std::ops::Range<usize>,
    forces: &mut [Vec3],
) -> Tally {
    let mut tally = Tally::default();
    if ctx.shift_sums {
        tally.shift_forces = vec![[0.0; 3]; ctx.list.shift_vectors().len()];
    }
    let pos = ctx.positions;
    let types = ctx.types;
    let shifts = ctx.list.shift_vectors();
    for r in range {
        let i = ctx.list.row_atom(r);
        let xi = pos[i];
        let row = if SINGLE {
            0
        } else {
            types[i] as usize * ctx.n_species
        };
        let mut fi = [0.0f64; 3];
        let coeffs_of = |j: usize| -> &F::Coeffs {
            if SINGLE {
                &ctx.coeffs[0]
            } else {
                // SAFETY: types are below n_species by construction of the System, and the list
                // only holds atom indices below the atom count (asserted in `compute`).
                unsafe {
                    ctx.coeffs
                        .get_unchecked(row + *types.get_unchecked(j) as usize)
                }
            }
        };
        for &j in ctx.list.plain(r) {
            let j = j as usize;
            // SAFETY: as above.
            let xj = unsafe { *pos.get_unchecked(j) };
            let del = [xi[0] - xj[0], xi[1] - xj[1], xi[2] - xj[2]];
            interact::<F, EV>(
                coeffs_of(j),
                del,
                &mut fi,
                unsafe { forces.get_unchecked_mut(j) },
                &mut tally,
            );
        }
        let (shifted_j, shifted_s) = ctx.list.shifted(r);
        for (&j, &s) in shifted_j.iter().zip(shifted_s) {
            let j = j as usize;
            let v = shifts[s as usize];
            // SAFETY: as above.
            let xj = unsafe { *pos.get_unchecked(j) };
            let del = [
                xi[0] - xj[0] - v[0],
                xi[1] - xj[1] - v[1],
                xi[2] - xj[2] - v[2],
            ];
            let f = interact::<F, EV>(
                coeffs_of(j),
                del,
                &mut fi,
                unsafe { forces.get_unchecked_mut(j) },
                &mut tally,
            );
            if ctx.shift_sums {
                let acc = &mut tally.shift_forces[s as usize];
                for k in 0..3 {
                    acc[k] += f[k];
                }
            }
        }
        let f = &mut forces[i];
        f[0] += fi[0];
        f[1] += fi[1];
        f[2] += fi[2];
    }
    tally
}

/// One pair at separation `del` = x_i - x_j (image included).
#[inline(always)]
fn interact<F: PairFunction, const EV: bool>(
    c: &F::Coeffs,
    del: Vec3,
    fi: &mut Vec3,
    fj: &mut Vec3,
    tally: &mut Tally,
) -> Vec3 {
    let rsq = del[0] * del[0] + del[1] * del[1] + del[2] * del[2];
    // About a third of the listed pairs lie in the skin, beyond the cutoff, in no predictable
    // pattern. A cheap function is computed for them and multiplied by zero (no mispredicted
    // branches); a costly one (square roots, exponentials) is skipped.
    if !F::BRANCH_FREE && rsq >= F::cutsq(c) {
        return [0.0; 3];
    }
    let inside = if rsq < F::cutsq(c) { 1.0 } else { 0.0 };
    let (fpair, energy) = F::eval::<EV>(c, rsq);
    let fpair = inside * fpair;
    let f = [del[0] * fpair, del[1] * fpair, del[2] * fpair];
    fi[0] += f[0];
    fi[1] += f[1];
    fi[2] += f[2];
    fj[0] -= f[0];
    fj[1] -= f[1];
    fj[2] -= f[2];
    if EV {
        tally.energy += inside * energy;
    }
    f
}
