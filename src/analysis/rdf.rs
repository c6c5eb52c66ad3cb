//! Radial distribution functions, total and per pair of species, with coordination numbers.
//!
//! g_ab(r) = V / (N_a (N_b - δ_ab)) · ⟨Σ_{i∈a} Σ_{j∈b, j≠i} δ(r - r_ij)⟩ / (4π r² dr), averaged over
//! frames (V per frame, so a changing cell is fine). Pairs are found with mdrun's own
//! neighbour list, so any triclinic cell works and r may exceed half the cell (all images
//! within reach count, which keeps the ideal gas at g = 1). n_ab(r) is the mean number of b
//! atoms within r of an a atom.

use crate::cell::{Cell, Vec3};
use crate::neighbor::{ListKind, NeighborList};
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct RdfSettings {
    /// Å
    pub rmax: f64,
    pub bins: usize,
    /// Pairs of species, e.g. ("O", "H"); empty: all atoms together.
    pub pairs: Vec<(String, String)>,
}

/// One frame: species per atom (shared between frames), positions, cell.
pub type FrameInput = (std::sync::Arc<Vec<String>>, Vec<Vec3>, Cell);

/// Sums over the frames seen so far.
pub struct Rdf {
    settings: RdfSettings,
    /// Per channel (total first, then each pair): Σ_frames V · ordered pair counts / (N_a N_b').
    g_sums: Vec<Vec<f64>>,
    /// Per channel: Σ_frames ordered pair counts / N_a (for coordination numbers).
    n_sums: Vec<Vec<f64>>,
    frames: usize,
}

pub struct RdfResult {
    /// Bin centres, Å.
    pub r: Vec<f64>,
    /// (label, g, cumulative coordination n): "" for all atoms, "O-H" for a pair.
    pub channels: Vec<(String, Vec<f64>, Vec<f64>)>,
    pub frames: usize,
}

impl Rdf {
    pub fn new(settings: RdfSettings) -> Rdf {
        let channels = 1 + settings.pairs.len();
        Rdf {
            g_sums: vec![vec![0.0; settings.bins]; channels],
            n_sums: vec![vec![0.0; settings.bins]; channels],
            settings,
            frames: 0,
        }
    }

    /// Adds frames (in parallel: they are independent).
    pub fn add_frames(&mut self, frames: &[FrameInput]) -> Result<(), String> {
        let settings = &self.settings;
        let parts: Vec<Result<(Vec<Vec<f64>>, Vec<Vec<f64>>), String>> = frames
            .par_iter()
            .map(|(names, positions, cell)| frame_histograms(settings, names, positions, cell))
            .collect();
        for part in parts {
            let (g, n) = part?;
            for (sum, add) in self.g_sums.iter_mut().zip(&g) {
                sum.iter_mut().zip(add).for_each(|(s, a)| *s += a);
            }
            for (sum, add) in self.n_sums.iter_mut().zip(&n) {
                sum.iter_mut().zip(add).for_each(|(s, a)| *s += a);
            }
            self.frames += 1;
        }
        Ok(())
    }

    pub fn finish(&self) -> RdfResult {
        let dr = self.settings.rmax / self.settings.bins as f64;
        let frames = self.frames.max(1) as f64;
        let r: Vec<f64> = (0..self.settings.bins).map(|b| (b as f64 + 0.5) * dr).collect();
        let labels = std::iter::once(String::new())
            .chain(self.settings.pairs.iter().map(|(a, b)| format!("{a}-{b}")));
        let channels = labels
            .enumerate()
            .map(|(c, label)| {
                let g = (0..self.settings.bins)
                    .map(|b| {
                        let (lo, hi) = (b as f64 * dr, (b + 1) as f64 * dr);
                        let shell = 4.0 / 3.0 * std::f64::consts::PI * (hi.powi(3) - lo.powi(3));
                        self.g_sums[c][b] / frames / shell
                    })
                    .collect();
                let mut running = 0.0;
                let n = self.n_sums[c]
                    .iter()
                    .map(|v| {
                        running += v / frames;
                        running
                    })
                    .collect();
                (label, g, n)
            })
            .collect();
        RdfResult { r, channels, frames: self.frames }
    }
}

/// One frame's contributions to every channel.
fn frame_histograms(
    settings: &RdfSettings,
    names: &[String],
    positions: &[Vec3],
    cell: &Cell,
) -> Result<(Vec<Vec<f64>>, Vec<Vec<f64>>), String> {
    let bins = settings.bins;
    let dr = settings.rmax / bins as f64;
    // Unwrapped trajectories are fine: the list wants atoms inside the cell.
    let wrapped: Vec<Vec3> = positions.iter().map(|&p| cell.wrap(p).0).collect();
    let positions = &wrapped[..];
    let mut list = NeighborList::new(ListKind::Half, settings.rmax, 0.0);
    list.build(positions, cell).map_err(|e| e.to_string())?;
    // counts[c][b]: ordered pairs (i in a, j in b) at distance bin b.
    let channels = 1 + settings.pairs.len();
    let mut counts = vec![vec![0.0f64; bins]; channels];
    // Species as small integers; each pair channel as a pair of them (None: absent here).
    let mut kinds: Vec<&str> = Vec::new();
    let kind: Vec<usize> = names
        .iter()
        .map(|n| match kinds.iter().position(|k| *k == n.as_str()) {
            Some(k) => k,
            None => {
                kinds.push(n);
                kinds.len() - 1
            }
        })
        .collect();
    let id = |species: &str| kinds.iter().position(|k| *k == species);
    let channel_kinds: Vec<(Option<usize>, Option<usize>)> =
        settings.pairs.iter().map(|(a, b)| (id(a), id(b))).collect();
    let shifts = list.shift_vectors().to_vec();
    let mut add = |i: usize, j: usize, d: Vec3| {
        let r = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if r >= settings.rmax {
            return;
        }
        let b = ((r / dr) as usize).min(bins - 1);
        counts[0][b] += 2.0;
        let (ki, kj) = (Some(kind[i]), Some(kind[j]));
        for (c, &(a, bn)) in channel_kinds.iter().enumerate() {
            // Ordered pairs (x in a, y in b): i→j and j→i each count when they match.
            let k = (ki == a && kj == bn) as u8 + (kj == a && ki == bn) as u8;
            counts[c + 1][b] += k as f64;
        }
    };
    for row in 0..list.n_atoms() {
        let i = list.row_atom(row);
        let xi = positions[i];
        for &j in list.plain(row) {
            let xj = positions[j as usize];
            add(i, j as usize, [xj[0] - xi[0], xj[1] - xi[1], xj[2] - xi[2]]);
        }
        let (js, codes) = list.shifted(row);
        for (&j, &code) in js.iter().zip(codes) {
            let (xj, s) = (positions[j as usize], shifts[code as usize]);
            add(i, j as usize, [xj[0] + s[0] - xi[0], xj[1] + s[1] - xi[1], xj[2] + s[2] - xi[2]]);
        }
    }
    let volume = cell.volume();
    let count_of = |species: &str| names.iter().filter(|n| n.as_str() == species).count() as f64;
    let mut g = Vec::with_capacity(channels);
    let mut n = Vec::with_capacity(channels);
    for c in 0..channels {
        let (na, nb_other) = if c == 0 {
            let total = names.len() as f64;
            (total, total - 1.0)
        } else {
            let (a, b) = &settings.pairs[c - 1];
            let (na, nb) = (count_of(a), count_of(b));
            (na, if a == b { nb - 1.0 } else { nb })
        };
        if na <= 0.0 || nb_other <= 0.0 {
            let label = if c == 0 { "all".to_string() } else { format!("{}-{}", settings.pairs[c - 1].0, settings.pairs[c - 1].1) };
            return Err(format!("no pairs of the selection {label} in this frame"));
        }
        g.push(counts[c].iter().map(|x| x * volume / (na * nb_other)).collect());
        n.push(counts[c].iter().map(|x| x / na).collect());
    }
    Ok((g, n))
}

/// First peak and the first minimum after it (r, g), for the summary; None if g has no peak.
pub fn first_shell(r: &[f64], g: &[f64]) -> Option<(f64, f64)> {
    let peak = (0..g.len()).max_by(|&a, &b| g[a].total_cmp(&g[b]))?;
    if g[peak] <= 1.0 {
        return None;
    }
    // The first minimum after the peak: smallest g before it climbs back above 1.
    let mut min = peak;
    for b in peak + 1..g.len() {
        if g[b] < g[min] {
            min = b;
        }
        if g[b] > 1.0 && min > peak && g[b] > g[min] + 0.5 {
            break;
        }
    }
    (min > peak).then(|| (r[peak], r[min]))
}
