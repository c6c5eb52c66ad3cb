//! MCGM's cluster hierarchy (multi-stage clustered global modelling, seeds 000/001).
//!
//! Level 1 groups the atoms of each element of a structure. Level l > 1 groups the level l-1
//! clusters of a structure into max(1, floor(n_{l-1} / r)) clusters by K-means++ (then Lloyd
//! iterations) on their embeddings, which are detached: the assignment is a fixed, piecewise-
//! constant function of the positions, and gradients flow around it, not through it. The
//! K-means seed is fixed (the same for every structure), so evaluation is repeatable and a
//! structure clusters the same alone or in a batch. Clusters never span two
//! structures of a batch.
//!
//! Cluster embeddings: e_1 = mean of the member atoms' features, e_l = mean of the member
//! clusters' e_{l-1}.

use super::graph::Batch;
use super::tensor::{Ctx, scatter_add, to_vec};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assign {
    /// The paper's K-means++ labels.
    Hard,
    /// Element level, then one level of learned centroids with softmax memberships
    /// (`super::soft`): smooth in the positions.
    Soft,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McgmConfig {
    /// Levels L (level 1 = elements).
    pub levels: usize,
    /// Reduction ratio r between levels.
    pub ratio: usize,
    pub assign: Assign,
    /// Soft assignment: learned centroids above the element level.
    #[serde(default = "default_clusters")]
    pub clusters: usize,
    /// Soft assignment: the widths s_b (Å) of the distance basis through which the centroids
    /// exchange messages (`super::soft`); empty: the level pools features only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distance_widths: Vec<f64>,
}

/// The distance basis of `mdrun train --mcgm-distance`: Coulomb-like tails, resolved up to about
/// 16 Å (differences of two widths give 1/D³ tails).
pub const DISTANCE_WIDTHS: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 16.0];

fn default_clusters() -> usize {
    4
}

impl McgmConfig {
    /// "hard (3 levels, r = 2)", "soft (elements + 4 centroids)", for logs.
    pub fn describe(&self) -> String {
        match self.assign {
            Assign::Hard => format!("hard ({} levels, r = {})", self.levels, self.ratio),
            Assign::Soft if self.is_distance_aware() => format!("soft (elements + {} centroids, distance-aware)", self.clusters),
            Assign::Soft => format!("soft (elements + {} centroids)", self.clusters),
        }
    }

    /// With hard assignment and `elements` elements in a structure, the cluster counts of the
    /// K-means levels whose partition can change as the atoms move (k of n points with
    /// 1 < k < n; one cluster, or one per point, cannot regroup). Each change is a jump in the
    /// energy, which NVE cannot conserve across.
    pub fn regrouping_levels(&self, elements: usize) -> Vec<(usize, usize)> {
        let mut n = elements;
        let mut out = Vec::new();
        for _ in 1..self.hard_levels() {
            let k = (n / self.ratio).max(1);
            if 1 < k && k < n {
                out.push((n, k));
            }
            n = k;
        }
        out
    }

    /// The end-of-run line of a hard model: how often its clustering regrouped the atoms.
    pub fn regrouping_note(regroupings: u64, evaluations: u64) -> String {
        format!("MCGM hard clustering regrouped the atoms at {regroupings} of {evaluations} evaluations (each is a jump in the energy)")
    }

    /// Whether the soft centroids exchange messages by distance (open structures only).
    pub fn is_distance_aware(&self) -> bool {
        self.assign == Assign::Soft && !self.distance_widths.is_empty()
    }

    /// Levels built by clustering (hard K-means levels; the soft level is separate).
    pub fn hard_levels(&self) -> usize {
        match self.assign {
            Assign::Hard => self.levels,
            Assign::Soft => 1,
        }
    }
}

impl Default for McgmConfig {
    fn default() -> Self {
        McgmConfig {
            levels: 3,
            ratio: 2,
            assign: Assign::Hard,
            clusters: default_clusters(),
            distance_widths: Vec::new(),
        }
    }
}

/// One level of the hierarchy, for a whole batch.
pub struct Level {
    pub n_clusters: usize,
    /// For each member of the level below (atoms for level 1), its cluster here.
    pub member_of: Tensor<1, Int>,
    /// 1 / members, per cluster [K, 1].
    pub inverse_counts: Tensor<2>,
    /// For each atom, its cluster at this level.
    pub atom_cluster: Tensor<1, Int>,
    /// Host copies, for tests and diagnostics.
    pub member_of_host: Vec<usize>,
    /// Structure of each cluster.
    pub structure_host: Vec<usize>,
}

impl Level {
    /// Mean of the members' rows, per cluster.
    pub fn pool(&self, below: Tensor<2>, ctx: &Ctx) -> Tensor<2> {
        scatter_add(below, &self.member_of, self.n_clusters, ctx) * self.inverse_counts.clone()
    }

    /// Transpose of `pool`: each member receives its cluster's row divided by the cluster size.
    pub fn unpool(&self, g: Tensor<2>) -> Tensor<2> {
        (g * self.inverse_counts.clone()).select(0, self.member_of.clone())
    }
}

pub struct Hierarchy {
    pub levels: Vec<Level>,
}

/// The labels of one level, on the host: what both the burn model and the fast inference
/// build their levels from.
pub struct LevelLabels {
    /// For each member of the level below (atoms for level 1), its cluster here.
    pub member_of: Vec<usize>,
    /// Structure of each cluster.
    pub structure_of: Vec<usize>,
    /// For each atom, its cluster at this level.
    pub atom_cluster: Vec<usize>,
    /// Members per cluster (pooled atoms for level 1, over the whole system).
    pub members: Vec<f64>,
}

/// The atoms a clustering pools, and how partial sums become global ones: a domain-decomposed
/// host (the LAMMPS plugin) evaluates its owned atoms and a halo of ghost copies, so only the
/// owned atoms are pooled and the per-cluster sums are added up over all its ranks.
pub struct Pooling<'a> {
    /// Atoms `0..owned` are pooled; the rest (ghost copies owned elsewhere) only read the
    /// clusters' values.
    pub owned: usize,
    /// Adds up a buffer over every part of the system (MPI_Allreduce with MPI_SUM); the
    /// identity for a whole system.
    pub reduce: &'a mut dyn FnMut(&mut [f64]),
}

impl Pooling<'_> {
    /// Sums of the rows `0..owned` of `data` ([rows, f]) per group (`group` per row), added up
    /// over the whole system.
    pub fn sum_rows(&mut self, data: &[f32], f: usize, group: &[usize], groups: usize) -> Vec<f32> {
        let mut sum = vec![0.0f64; groups * f];
        for (row, &g) in group.iter().enumerate().take(self.owned) {
            sum[g * f..(g + 1) * f].iter_mut().zip(&data[row * f..(row + 1) * f]).for_each(|(s, &x)| *s += x as f64);
        }
        (self.reduce)(&mut sum);
        sum.into_iter().map(|v| v as f32).collect()
    }

    /// Adds `buffers` up over the whole system, in place, in one reduction (carried in f64).
    pub fn add_up(&mut self, buffers: &mut [&mut [f32]]) {
        let mut total: Vec<f64> = buffers.iter().flat_map(|b| b.iter().map(|&v| f64::from(v))).collect();
        (self.reduce)(&mut total);
        let mut rest = total.as_slice();
        for buffer in buffers.iter_mut() {
            let (mine, others) = rest.split_at(buffer.len());
            buffer.iter_mut().zip(mine).for_each(|(b, &t)| *b = t as f32);
            rest = others;
        }
    }
}

/// Clusters atoms (with their structure and species) by their features `x` ([N, F] row-major):
/// level 1 by (structure, species) in species order (so the hierarchy, like the energy, does
/// not depend on the order of the atoms), each level above by K-means on the level below's
/// mean embeddings, per structure, with the same seed for every structure (a structure's
/// hierarchy does not depend on the batch it is in). `n_species`: the model's species count.
/// Level 1's means are over the owned atoms of `pooling`, added up over the whole system, so
/// every part of a decomposed system builds the same hierarchy.
pub fn cluster_labels(config: &McgmConfig, structure: &[usize], species: &[usize], n_species: usize, n_structures: usize, x: &[f64], features: usize, pooling: &mut Pooling) -> Vec<LevelLabels> {
    // Per (structure, species): the pooled atoms, the feature sums, and the atoms of any kind
    // (ghosts too), one buffer for one reduction. A cluster exists where some part has an atom
    // of its kind: every part then numbers the same clusters, and every ghost has one (a
    // ghost's owner pools it; a kind seen only as ghosts, which a consistent host never sends,
    // gets an empty cluster rather than none).
    let keys = n_structures * n_species;
    let mut totals = vec![0.0f64; keys * (features + 2)];
    for a in 0..structure.len() {
        let key = structure[a] * n_species + species[a];
        totals[keys * (features + 1) + key] += 1.0;
        if a < pooling.owned {
            totals[key] += 1.0;
            let sum = &mut totals[keys + key * features..][..features];
            sum.iter_mut().zip(&x[a * features..(a + 1) * features]).for_each(|(s, v)| *s += v);
        }
    }
    (pooling.reduce)(&mut totals);
    let present: Vec<usize> = (0..keys).filter(|&k| totals[keys * (features + 1) + k] > 0.0).collect();
    let mut cluster_of_key = vec![usize::MAX; keys];
    present.iter().enumerate().for_each(|(c, &k)| cluster_of_key[k] = c);
    let member_of: Vec<usize> = (0..structure.len()).map(|a| cluster_of_key[structure[a] * n_species + species[a]]).collect();
    let mut structure_of: Vec<usize> = present.iter().map(|k| k / n_species).collect();
    let mut embeddings: Vec<f64> = present
        .iter()
        .flat_map(|&k| {
            let count = totals[k].max(1.0);
            totals[keys + k * features..][..features].iter().map(move |s| s / count)
        })
        .collect();
    let mut atom_cluster = member_of.clone();
    let members = present.iter().map(|&k| totals[k]).collect();
    let mut levels = vec![LevelLabels { member_of, structure_of: structure_of.clone(), atom_cluster: atom_cluster.clone(), members }];
    for _ in 1..config.hard_levels() {
        let below = structure_of.len();
        let mut member_of = vec![0usize; below];
        let mut new_structure = Vec::new();
        for s in 0..n_structures {
            let members: Vec<usize> = (0..below).filter(|&c| structure_of[c] == s).collect();
            if members.is_empty() {
                continue;
            }
            let k = (members.len() / config.ratio).max(1);
            let points: Vec<&[f64]> = members.iter().map(|&c| &embeddings[c * features..(c + 1) * features]).collect();
            let labels = kmeans(&points, k, 0);
            let base = new_structure.len();
            for (m, &c) in members.iter().enumerate() {
                member_of[c] = base + labels[m];
            }
            new_structure.extend(std::iter::repeat_n(s, k));
        }
        embeddings = mean_rows(&embeddings, features, &member_of, new_structure.len());
        atom_cluster = atom_cluster.iter().map(|&c| member_of[c]).collect();
        structure_of = new_structure;
        let mut members = vec![0.0; structure_of.len()];
        member_of.iter().for_each(|&c| members[c] += 1.0);
        levels.push(LevelLabels { member_of, structure_of: structure_of.clone(), atom_cluster: atom_cluster.clone(), members });
    }
    levels
}

impl Hierarchy {
    /// Clusters the atoms of `batch` using the current features `x` [N, F] (read, detached).
    pub fn build(config: &McgmConfig, batch: &Batch, x: &Tensor<2>, ctx: &Ctx) -> Hierarchy {
        let features = x.dims()[1];
        let xs = to_vec(x.clone().detach());
        let n_species = batch.species.iter().max().map_or(0, |s| s + 1);
        let mut whole = Pooling { owned: batch.n_atoms, reduce: &mut |_| {} };
        let levels = cluster_labels(config, &batch.structure, &batch.species, n_species, batch.n_structures, &xs, features, &mut whole)
            .into_iter()
            .map(|l| make_level(l.member_of, l.structure_of, &l.atom_cluster, ctx))
            .collect();
        Hierarchy { levels }
    }
}

fn make_level(
    member_of: Vec<usize>,
    structure_of: Vec<usize>,
    atom_cluster: &[usize],
    ctx: &Ctx,
) -> Level {
    let k = structure_of.len();
    let mut counts = vec![0.0f64; k];
    for &c in &member_of {
        counts[c] += 1.0;
    }
    Level {
        n_clusters: k,
        member_of: ctx.indices(&member_of),
        inverse_counts: ctx.matrix(
            &counts.iter().map(|c| 1.0 / c.max(1.0)).collect::<Vec<_>>(),
            k,
            1,
        ),
        atom_cluster: ctx.indices(atom_cluster),
        member_of_host: member_of,
        structure_host: structure_of,
    }
}

/// Mean of the rows of `data` ([rows, width], row-major) per group.
fn mean_rows(data: &[f64], width: usize, group: &[usize], groups: usize) -> Vec<f64> {
    let mut sum = vec![0.0; groups * width];
    let mut count = vec![0usize; groups];
    for (row, &g) in group.iter().enumerate() {
        count[g] += 1;
        for k in 0..width {
            sum[g * width + k] += data[row * width + k];
        }
    }
    for g in 0..groups {
        for k in 0..width {
            sum[g * width + k] /= count[g].max(1) as f64;
        }
    }
    sum
}

/// K-means++ seeding (deterministic for `seed`) followed by Lloyd iterations; labels per point.
/// Every cluster keeps at least one point.
pub fn kmeans(points: &[&[f64]], k: usize, seed: u64) -> Vec<usize> {
    let n = points.len();
    let k = k.min(n).max(1);
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let mut counter = 0u32;
    let mut uniform = || {
        counter += 1;
        crate::rng::philox4x32([counter, 0, 0, 0], [seed as u32, 0x4b4d])[0] as f64 / 4294967296.0
    };
    let mut centres: Vec<Vec<f64>> = vec![points[(uniform() * n as f64) as usize % n].to_vec()];
    while centres.len() < k {
        let d2: Vec<f64> = points
            .iter()
            .map(|p| {
                centres
                    .iter()
                    .map(|c| dist(p, c))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let mut target = uniform() * total;
            let mut chosen = n - 1;
            for (i, d) in d2.iter().enumerate() {
                if target < *d {
                    chosen = i;
                    break;
                }
                target -= d;
            }
            chosen
        } else {
            centres.len()
        };
        centres.push(points[pick].to_vec());
    }
    let mut labels = vec![0usize; n];
    for _ in 0..50 {
        let new: Vec<usize> = points
            .iter()
            .map(|p| {
                (0..k)
                    .min_by(|&a, &b| dist(p, &centres[a]).total_cmp(&dist(p, &centres[b])))
                    .unwrap()
            })
            .collect();
        let changed = new != labels;
        labels = new;
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&&[f64]> = points
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == c)
                .map(|(p, _)| p)
                .collect();
            if !members.is_empty() {
                for (d, v) in centre.iter_mut().enumerate() {
                    *v = members.iter().map(|p| p[d]).sum::<f64>() / members.len() as f64;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // An empty cluster takes the point farthest from its centre among clusters that can spare
    // one, so every level has exactly k clusters.
    for c in 0..k {
        if !labels.contains(&c) {
            let count = |l: usize, labels: &[usize]| labels.iter().filter(|&&x| x == l).count();
            let far = (0..n)
                .filter(|&p| count(labels[p], &labels) > 1)
                .max_by(|&a, &b| {
                    dist(points[a], &centres[labels[a]])
                        .total_cmp(&dist(points[b], &centres[labels[b]]))
                })
                .expect("k <= n leaves a cluster with two points");
            labels[far] = c;
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::{Assign, McgmConfig};

    #[test]
    fn only_k_means_levels_between_one_cluster_and_one_per_point_can_regroup() {
        let hard = McgmConfig { levels: 3, ratio: 2, assign: Assign::Hard, clusters: 4, distance_widths: Vec::new() };
        // Water, the chain: 2 elements -> 1 cluster, which never changes.
        assert!(hard.regrouping_levels(2).is_empty());
        assert!(hard.regrouping_levels(3).is_empty());
        // Acetamide: 4 elements -> 2 clusters (can regroup) -> 1.
        assert_eq!(hard.regrouping_levels(4), vec![(4, 2)]);
        assert_eq!(McgmConfig { levels: 4, ..hard.clone() }.regrouping_levels(9), vec![(9, 4), (4, 2)]);
        assert!(McgmConfig { ratio: 1, ..hard.clone() }.regrouping_levels(5).is_empty());
        assert!(McgmConfig { assign: Assign::Soft, ..hard }.regrouping_levels(8).is_empty());
    }

    use super::kmeans;

    #[test]
    fn kmeans_separates_obvious_groups_and_fills_every_cluster() {
        let data: Vec<Vec<f64>> = vec![
            vec![0.0, 0.0],
            vec![0.1, 0.0],
            vec![10.0, 10.0],
            vec![10.1, 9.9],
            vec![0.0, 0.2],
        ];
        let points: Vec<&[f64]> = data.iter().map(|v| v.as_slice()).collect();
        let labels = kmeans(&points, 2, 1);
        assert_eq!(labels[0], labels[1]);
        assert_eq!(labels[0], labels[4]);
        assert_eq!(labels[2], labels[3]);
        assert_ne!(labels[0], labels[2]);
        let same: Vec<Vec<f64>> = vec![vec![1.0]; 4];
        let points: Vec<&[f64]> = same.iter().map(|v| v.as_slice()).collect();
        let labels = kmeans(&points, 3, 1);
        for c in 0..3 {
            assert!(labels.contains(&c), "cluster {c} empty: {labels:?}");
        }
    }
}
