//! The potential: a SchNet backbone with an optional MCGM block after every interaction, and its
//! energy, forces and virial.
//!
//! Forces are computed by an explicit backward pass written as ordinary forward tensor
//! operations (methods.md §5): burn's autodiff is first order, so a loss on forces can only be
//! trained if the forces themselves are a forward computation. The energy depends on positions
//! only through edge lengths; the backward pass carries dE/dx_atom back through readout, MCGM and
//! the interaction blocks to dE/dd per edge, and forces follow as F = -Σ dE/dd ∂d/∂x.
//!
//! SchNet (Schütt et al., schnetpack conventions):
//! ```text
//! x0     = embedding[species]
//! W_e    = (ssp(g(d_e) W1 + b1) W2 + b2) * f_c(d_e)     filter network, per edge
//! m_i    = Σ_{e: src=i} (x_dst W_in) ⊙ W_e               continuous-filter convolution
//! x_i   += ssp(m_i Wo1 + bo1) Wo2 + bo2
//! E      = Σ_i [ scale * (ssp(x_i Wr1 + br1) Wr2 + br2) + E_ref[species_i] ]
//! ```
//! MCGM (methods.md §2), after each interaction: level 1 pools the atoms of each element of a
//! structure, level l > 1 pools the level l-1 clusters by K-means++ on their (detached) embeddings
//! into max(1, floor(n/r)) clusters; c_l = mean-pool(c_{l-1}) A_l + a_l with c_0 = x;
//! x_i += Σ_l c_l[cluster_l(i)] U_l.

use super::graph::{Batch, GraphTensors};
use super::layer;
use super::mcgm::{Assign, Hierarchy, McgmConfig};
use super::soft::{DistanceParams, Soft, SoftCache, SoftParams};
pub use self::charges::LongRange;
use self::charges::ChargeHead;
use super::tensor::{accumulate, Ctx, scatter_add, silu, silu_derivative, ssp, ssp_derivative};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// "schnet"
    pub backbone: String,
    /// Feature width F.
    pub features: usize,
    /// Interaction blocks.
    pub blocks: usize,
    /// Gaussian radial basis functions.
    pub n_rbf: usize,
    /// Å: the graph's cutoff, and every block's unless `block_cutoffs` says otherwise.
    pub cutoff: f64,
    /// One cutoff per interaction block (seed 003's layer-dependent cutoffs), each at most
    /// `cutoff`; empty: all blocks use `cutoff`.
    #[serde(default)]
    pub block_cutoffs: Vec<f64>,
    /// Atomic numbers the model knows, in embedding order.
    pub species: Vec<u32>,
    pub mcgm: Option<McgmConfig>,
    /// Learned charges and their Coulomb energy (absent: a local model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_range: Option<LongRange>,
}

impl ModelConfig {
    /// Whether its soft MCGM level exchanges messages by centroid distance (open structures
    /// only).
    pub fn is_distance_aware(&self) -> bool {
        self.mcgm.as_ref().is_some_and(|m| m.is_distance_aware())
    }

    /// What of this model the GPU kernels do not evaluate (the CPU does), described: they run
    /// periodic cells only, where a distance-aware MCGM's centroids are not defined, and sum
    /// learned charges by Ewald in reciprocal space, which point charges cannot use.
    pub fn gpu_unsupported_part(&self) -> Option<String> {
        if self.is_distance_aware() {
            return Some("a distance-aware MCGM (it takes open structures; the GPU platform runs fully periodic cells)".to_string());
        }
        if self.long_range.as_ref().is_some_and(|l| l.equilibration) {
            return Some("charge equilibration (Qeq: the charges are solved for by conjugate gradients over Coulomb sums, on the CPU only)".to_string());
        }
        self.long_range.as_ref().filter(|l| l.charge_width <= 0.0).map(|_| "point charges (σ = 0: the GPU's Ewald sum is in reciprocal space only)".to_string())
    }
}

/// A dense layer: y = x W + b, W [in, out], b [1, out] (indices into the parameter list).
#[derive(Clone, Copy, Debug)]
struct Dense {
    w: usize,
    b: Option<usize>,
}

/// SchNet's interaction: filter network, input and output layers.
#[derive(Clone, Copy, Debug)]
struct SchnetParams {
    filter1: Dense,
    filter2: Dense,
    input: Dense,
    out1: Dense,
    out2: Dense,
}

/// PaiNN's message and update (Schütt et al. 2021), as written in methods.md.
#[derive(Clone, Copy, Debug)]
struct PainnParams {
    phi1: Dense,
    phi2: Dense,
    filter: Dense,
    vec_u: Dense,
    vec_v: Dense,
    upd1: Dense,
    upd2: Dense,
}

#[derive(Clone, Debug)]
struct Block {
    schnet: Option<SchnetParams>,
    painn: Option<PainnParams>,
    /// Per MCGM level: aggregation A_l (with bias) and dissemination U_l.
    aggregate: Vec<Dense>,
    disseminate: Vec<Dense>,
    /// The soft level (assign = "soft").
    soft: Option<SoftParams>,
}

/// The trainable tensors, by name, in a fixed order.
#[derive(Clone)]
pub struct Params {
    pub names: Vec<String>,
    pub values: Vec<Tensor<2>>,
}

/// Everything that is not a weight: per-species reference energies and the output scale.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// eV per atom of each species (least-squares fit to the training energies).
    pub reference_energies: Vec<f64>,
    /// eV: multiplies the network's per-atom output.
    pub energy_scale: f64,
    /// The shortest interatomic distance in the training data, Å (0: unknown). MD warns when
    /// atoms come much closer: the model has never seen that region.
    #[serde(default)]
    pub training_min_distance: f64,
    /// The shortest distance per element pair in the training data ("H-O": Å, symbols in order
    /// of atomic number). Two oxygens 1.5 Å apart are far outside water data even though O-H
    /// pairs sit at 0.9 Å: MD warns per pair where the model file has these.
    #[serde(default)]
    pub pair_min_distances: std::collections::BTreeMap<String, f64>,
}

/// The key of an element pair in `Normalization::pair_min_distances`.
pub fn pair_key(z1: u32, z2: u32) -> String {
    let (a, b) = (z1.min(z2), z1.max(z2));
    format!("{}-{}", crate::elements::symbol(a).unwrap_or("?"), crate::elements::symbol(b).unwrap_or("?"))
}

#[derive(Clone)]
pub struct Model {
    pub config: ModelConfig,
    pub params: Params,
    pub normalization: Normalization,
    embedding: usize,
    blocks: Vec<Block>,
    readout1: Dense,
    readout2: Dense,
    charges: Option<ChargeHead>,
    /// [species, F]: the first features' response to the structure's charge per atom.
    charge_embedding: Option<usize>,
}

/// Energies per structure, forces per atom, and the edge gradients they came from.
pub struct Prediction {
    /// [S, 1], eV
    pub energy: Tensor<2>,
    /// [N, 3], eV/Å
    pub forces: Tensor<2>,
    /// [S, 9] virial W = -Σ_e r_e ⊗ dE/dr_e per structure (row-major), eV
    pub virial: Tensor<2>,
    /// Every block's outputs (`super::layer`), [atoms of the batch, width] each.
    pub layers: Vec<(String, Tensor<2>)>,
}

/// Cached values of one interaction block's forward pass, for its backward pass.
struct BlockCache {
    interaction: InteractionCache,
    hierarchy: Option<Hierarchy>,
    soft: Option<SoftCache>,
    /// The block's outputs, for the conformance suite (`layers`): named as in `super::layer`.
    taps: Vec<(String, Tensor<2>)>,
}

enum InteractionCache {
    Schnet {
        a1: Tensor<2>,
        filter: Tensor<2>,
        w_edge: Tensor<2>,
        y_dst: Tensor<2>,
        a2: Tensor<2>,
    },
    Painn(Box<PainnCache>),
}

struct PainnCache {
    phi_a: Tensor<2>,
    phi_dst: Tensor<2>,
    lin: Tensor<2>,
    w: Tensor<2>,
    b: Tensor<2>,
    c: Tensor<2>,
    mu_dst: [Tensor<2>; 3],
    rhat: [Tensor<2>; 3],
    u: [Tensor<2>; 3],
    v: [Tensor<2>; 3],
    norm_v: Tensor<2>,
    upd_a: Tensor<2>,
    s2: Tensor<2>,
    s3: Tensor<2>,
    dot: Tensor<2>,
}

mod charges;
mod painn;

impl Model {
    /// A freshly initialised model (weights from `seed`).
    pub fn new(config: ModelConfig, normalization: Normalization, seed: u64, ctx: &Ctx) -> Model {
        let mut builder = Builder {
            names: Vec::new(),
            values: Vec::new(),
            seed,
            ctx: ctx.clone(),
        };
        let f = config.features;
        let embedding = builder.param("embedding", config.species.len(), f, 1.0);
        let levels = config.mcgm.as_ref().map_or(0, |m| m.hard_levels());
        let soft_clusters = config
            .mcgm
            .as_ref()
            .filter(|m| m.assign == Assign::Soft)
            .map(|m| m.clusters.max(1));
        let distance_widths = config.mcgm.as_ref().map_or(Vec::new(), |m| m.distance_widths.clone());
        let blocks = (0..config.blocks)
            .map(|t| Block {
                schnet: (config.backbone == "schnet").then(|| SchnetParams {
                    filter1: builder.dense(&format!("block{t}.filter1"), config.n_rbf, f, true),
                    filter2: builder.dense(&format!("block{t}.filter2"), f, f, true),
                    input: builder.dense(&format!("block{t}.input"), f, f, false),
                    out1: builder.dense(&format!("block{t}.out1"), f, f, true),
                    out2: builder.dense(&format!("block{t}.out2"), f, f, true),
                }),
                painn: (config.backbone == "painn").then(|| PainnParams {
                    phi1: builder.dense(&format!("block{t}.message.phi1"), f, f, true),
                    phi2: builder.dense(&format!("block{t}.message.phi2"), f, 3 * f, true),
                    filter: builder.dense(
                        &format!("block{t}.message.filter"),
                        config.n_rbf,
                        3 * f,
                        true,
                    ),
                    vec_u: builder.dense(&format!("block{t}.update.u"), f, f, false),
                    vec_v: builder.dense(&format!("block{t}.update.v"), f, f, false),
                    upd1: builder.dense(&format!("block{t}.update.mlp1"), 2 * f, f, true),
                    upd2: builder.dense(&format!("block{t}.update.mlp2"), f, 3 * f, true),
                }),
                aggregate: (0..levels)
                    .map(|l| builder.dense(&format!("block{t}.mcgm{l}.aggregate"), f, f, true))
                    .collect(),
                // Dissemination starts near zero so MCGM begins as a small correction.
                disseminate: (0..levels)
                    .map(|l| {
                        builder.dense_scaled(&format!("block{t}.mcgm{l}.disseminate"), f, f, 0.1)
                    })
                    .collect(),
                soft: soft_clusters.map(|k| {
                    let aggregate = builder.dense(&format!("block{t}.soft.aggregate"), f, f, true);
                    SoftParams {
                        query: builder.param(&format!("block{t}.soft.query"), f, f, 1.0),
                        centroids: builder.param(&format!("block{t}.soft.centroids"), k, f, 1.0),
                        aggregate_w: aggregate.w,
                        aggregate_b: aggregate.b.expect("with bias"),
                        disseminate: builder
                            .dense_scaled(&format!("block{t}.soft.disseminate"), f, f, 0.1)
                            .w,
                        distance: (!distance_widths.is_empty()).then(|| DistanceParams {
                            message: builder.param(&format!("block{t}.soft.message"), f, f, 1.0),
                            filter: builder.param(&format!("block{t}.soft.distance_filter"), distance_widths.len(), f, 1.0),
                        }),
                    }
                }),
            })
            .collect();
        let readout1 = builder.dense("readout1", f, f / 2, true);
        let readout2 = builder.dense("readout2", f / 2, 1, true);
        let charges = config.long_range.as_ref().map(|l| ChargeHead {
            layer1: builder.dense("charges.layer1", f, f / 2, true),
            layer2: builder.dense("charges.layer2", f / 2, 1, true),
            hardness: l.equilibration.then(|| builder.param("charges.hardness", config.species.len(), 1, 1.0)),
        });
        let charge_embedding = config
            .long_range
            .as_ref()
            .filter(|l| l.charge_embedding)
            .map(|_| builder.param("charge_embedding", config.species.len(), f, 1.0));
        let params = Params {
            names: builder.names,
            values: builder.values,
        };
        Model {
            config,
            params,
            normalization,
            embedding,
            blocks,
            readout1,
            readout2,
            charges,
            charge_embedding,
        }
    }

    /// The same architecture with the given parameter values (e.g. loaded from a file).
    pub fn with_params(&self, values: Vec<Tensor<2>>) -> Model {
        assert_eq!(values.len(), self.params.values.len());
        let mut m = self.clone();
        m.params.values = values;
        m
    }

    /// The same model with its parameters on `ctx`'s device and precision.
    pub fn on(&self, ctx: &Ctx) -> Model {
        let values = self.params.values.iter().map(|v| {
            let d = v.dims();
            ctx.matrix(&super::tensor::to_vec(v.clone()), d[0], d[1])
        });
        self.with_params(values.collect())
    }

    fn p(&self, index: usize) -> Tensor<2> {
        self.params.values[index].clone()
    }

    fn dense(&self, d: Dense, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.p(d.w));
        match d.b {
            Some(b) => y + self.p(b),
            None => y,
        }
    }

    /// Backward through the linear part of a dense layer: dL/dx = dL/dy W^T.
    fn dense_back(&self, d: Dense, g: Tensor<2>) -> Tensor<2> {
        g.matmul(self.p(d.w).transpose())
    }

    pub fn species_index(&self, z: u32) -> Option<usize> {
        self.config.species.iter().position(|&s| s == z)
    }

    /// Energies, forces and virials of a batch. Every operation is a tensor operation on the
    /// model's parameters, so the result can be differentiated with respect to them.
    /// Err: a structure the long-range part cannot sum (a cell periodic along some axes only).
    pub fn predict(&self, batch: &Batch, graph: &GraphTensors, ctx: &Ctx) -> Result<Prediction, String> {
        let r = graph.edge_vectors(&graph.positions);
        self.predict_from_edges(batch, graph, r, ctx)
    }

    /// The energy alone, as a function of the edge vectors (for autodiff checks of the explicit
    /// forces; a long-range model's Coulomb kernel is a constant of the positions here).
    pub fn energy_from_edges(
        &self,
        batch: &Batch,
        graph: &GraphTensors,
        r: Tensor<2>,
        ctx: &Ctx,
    ) -> Result<Tensor<2>, String> {
        Ok(self.forward(batch, graph, r, ctx)?.0)
    }

    fn predict_from_edges(
        &self,
        batch: &Batch,
        graph: &GraphTensors,
        r: Tensor<2>,
        ctx: &Ctx,
    ) -> Result<Prediction, String> {
        let (energy, caches, x_final, radials, charges) = self.forward(batch, graph, r.clone(), ctx)?;
        let g_charges = charges.as_ref().map(|c| c.g_x.clone());
        let (g_d, g_rhat, g_positions) = self.backward(batch, graph, &caches, x_final, g_charges, &radials, ctx);
        // dE/dr_e = dE/dd_e r̂_e, plus, where directions enter (PaiNN), the part of dE/dr̂_e
        // perpendicular to r̂_e divided by d_e.
        let d = radials[0].distance.clone();
        let rhat = r.clone() / d.clone();
        let mut de_dr = rhat.clone() * g_d;
        if let Some(g) = g_rhat {
            let g = Tensor::cat(g.to_vec(), 1);
            let along = (g.clone() * rhat.clone()).sum_dim(1);
            de_dr = de_dr + (g - rhat * along) / d;
        }
        let n = batch.n_atoms;
        let mut forces = scatter_add(de_dr.clone(), &graph.src, n, ctx)
            - scatter_add(de_dr.clone(), &graph.dst, n, ctx);
        // W = Σ_pairs r_ij ⊗ f_ij, in LAMMPS's convention: with r_e = x_dst - x_src and the force
        // on src from this edge being +dE/dr_e, W = -Σ_e r_e ⊗ dE/dr_e.
        let outer = Tensor::cat(
            (0..3)
                .map(|a| r.clone().narrow(1, a, 1) * de_dr.clone())
                .collect(),
            1,
        )
        .neg();
        let edge_structure = edge_structure_index(batch, ctx);
        let mut virial = scatter_add(outer, &edge_structure, batch.n_structures, ctx);
        // Centroid distances: F = -dE/dr, W = -Σ_i r_i ⊗ dE/dr_i (their energy is translation
        // invariant, so the origin does not matter).
        if let Some(g) = g_positions {
            forces = forces - g.clone();
            let outer = Tensor::cat((0..3).map(|a| graph.positions.clone().narrow(1, a, 1) * g.clone()).collect(), 1).neg();
            virial = virial + scatter_add(outer, &graph.structure, batch.n_structures, ctx);
        }
        let mut layers: Vec<(String, Tensor<2>)> = caches.into_iter().flat_map(|c| c.taps).collect();
        if let Some(c) = charges {
            forces = forces + c.forces;
            virial = virial + c.virial;
            layers.push((layer::CHARGES.to_string(), c.charges));
        }
        Ok(Prediction { energy, forces, virial, layers })
    }

    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        batch: &Batch,
        graph: &GraphTensors,
        r: Tensor<2>,
        ctx: &Ctx,
    ) -> Result<(Tensor<2>, Vec<BlockCache>, Tensor<2>, Vec<Radial>, Option<charges::ChargeTerms>), String> {
        let radials: Vec<Radial> = (0..self.blocks.len())
            .map(|t| Radial::new(r.clone(), self.config.n_rbf, self.block_cutoff(t), ctx))
            .collect();
        if self.config.is_distance_aware() {
            batch.cells.iter().try_for_each(open_for_centroids)?;
        }
        let n = batch.n_atoms;
        let mut x = self.p(self.embedding).select(0, graph.species.clone());
        if let Some(index) = self.charge_embedding {
            x = x + self.total_charge_features(index, batch, &graph.species, &graph.structure, ctx);
        }
        let zeros = || ctx.zeros(n, self.config.features);
        let mut mu = [zeros(), zeros(), zeros()];
        let mut caches = Vec::with_capacity(self.blocks.len());
        for (block, rbf) in self.blocks.iter().zip(&radials) {
            let t = caches.len();
            let interaction = if let Some(p) = block.schnet {
                let a1 = self.dense(p.filter1, rbf.g.clone());
                let filter = self.dense(p.filter2, ssp(a1.clone()));
                let w_edge = filter.clone() * rbf.fc.clone();
                let y_dst = self.dense(p.input, x.clone()).select(0, graph.dst.clone());
                let m = scatter_add(y_dst.clone() * w_edge.clone(), &graph.src, n, ctx);
                let a2 = self.dense(p.out1, m);
                x = x + self.dense(p.out2, ssp(a2.clone()));
                InteractionCache::Schnet {
                    a1,
                    filter,
                    w_edge,
                    y_dst,
                    a2,
                }
            } else {
                let p = block.painn.expect("a backbone per block");
                let (cache, q, m) = self.painn_forward(p, x, mu, rbf, &r, graph, n, ctx);
                x = q;
                mu = m;
                InteractionCache::Painn(Box::new(cache))
            };
            let mut taps = vec![(layer::name(t, layer::Stage::Interaction), x.clone())];
            if block.painn.is_some() {
                taps.push((layer::name(t, layer::Stage::Vectors), Tensor::cat(mu.to_vec(), 1)));
            }
            let mut soft = None;
            let hierarchy = self.config.mcgm.as_ref().map(|cfg| {
                let h = Hierarchy::build(cfg, batch, &x, ctx);
                let mut delta = self.mcgm_forward(block, &h, x.clone(), ctx);
                if let Some(indices) = block.soft {
                    let (d, cache) = self.soft(indices, graph, batch, ctx).forward(x.clone());
                    delta = delta + d;
                    soft = Some(cache);
                }
                x = x.clone() + delta;
                h
            });
            if hierarchy.is_some() {
                taps.push((layer::name(t, layer::Stage::Mcgm), x.clone()));
            }
            caches.push(BlockCache {
                interaction,
                hierarchy,
                soft,
                taps,
            });
        }
        let h = self.dense(self.readout2, ssp(self.dense(self.readout1, x.clone())));
        let reference = ctx
            .matrix(
                &self.normalization.reference_energies,
                self.config.species.len(),
                1,
            )
            .select(0, graph.species.clone());
        let atomic = h.mul_scalar(self.normalization.energy_scale) + reference;
        let mut energy = scatter_add(atomic, &graph.structure, batch.n_structures, ctx);
        let charges = match self.charges {
            Some(head) => Some(self.charge_terms(head, x.clone(), batch, &graph.species, &graph.structure, ctx)?),
            None => None,
        };
        if let Some(c) = &charges {
            energy = energy + c.energy.clone();
        }
        Ok((energy, caches, x, radials, charges))
    }

    /// The cutoff of block t.
    pub fn block_cutoff(&self, t: usize) -> f64 {
        self.config
            .block_cutoffs
            .get(t)
            .copied()
            .unwrap_or(self.config.cutoff)
    }

    fn soft<'a>(
        &'a self,
        indices: SoftParams,
        graph: &'a GraphTensors,
        batch: &Batch,
        ctx: &'a Ctx,
    ) -> Soft<'a> {
        Soft {
            params: &self.params.values,
            indices,
            structure: &graph.structure,
            n_structures: batch.n_structures,
            positions: &graph.positions,
            widths: self.config.mcgm.as_ref().map_or(&[], |m| m.distance_widths.as_slice()),
            ctx,
        }
    }

    /// MCGM's update Δx = Σ_l c_l[cluster_l(i)] U_l for features x (assignments fixed).
    fn mcgm_forward(&self, block: &Block, h: &Hierarchy, x: Tensor<2>, ctx: &Ctx) -> Tensor<2> {
        let mut c = x;
        let mut delta: Option<Tensor<2>> = None;
        for (l, level) in h.levels.iter().enumerate() {
            c = self.dense(block.aggregate[l], level.pool(c, ctx));
            let back = self
                .dense(block.disseminate[l], c.clone())
                .select(0, level.atom_cluster.clone());
            accumulate(&mut delta, back);
        }
        delta.expect("MCGM has at least one level")
    }

    /// Transpose of `mcgm_forward`'s linear map: dL/dx from dL/dΔx.
    fn mcgm_backward(&self, block: &Block, h: &Hierarchy, g: Tensor<2>, ctx: &Ctx) -> Tensor<2> {
        let levels = h.levels.len();
        // dL/dc_l from the dissemination of level l.
        let mut g_c: Vec<Tensor<2>> = h
            .levels
            .iter()
            .enumerate()
            .map(|(l, level)| {
                self.dense_back(
                    block.disseminate[l],
                    scatter_add(g.clone(), &level.atom_cluster, level.n_clusters, ctx),
                )
            })
            .collect();
        // Down the hierarchy: c_l = pool_l(c_{l-1}) A_l + a_l.
        for l in (0..levels).rev() {
            let g_pooled = self.dense_back(block.aggregate[l], g_c[l].clone());
            let g_below = h.levels[l].unpool(g_pooled);
            if l == 0 {
                return g_below;
            }
            g_c[l - 1] = g_c[l - 1].clone() + g_below;
        }
        unreachable!("levels > 0")
    }

    /// dE/dd per edge [E, 1], for PaiNN dE/dr̂ per edge [E, 3] (the direction enters its vector
    /// messages), and for a distance-aware MCGM dE/dr per atom [N, 3] (through the centroids),
    /// by carrying dE/dx back through readout, MCGM and the blocks.
    fn backward(
        &self,
        batch: &Batch,
        graph: &GraphTensors,
        caches: &[BlockCache],
        x_final: Tensor<2>,
        g_charges: Option<Tensor<2>>,
        radials: &[Radial],
        ctx: &Ctx,
    ) -> (Tensor<2>, Option<[Tensor<2>; 3]>, Option<Tensor<2>>) {
        let n = batch.n_atoms;
        let a_r = self.dense(self.readout1, x_final);
        let ones = ctx.matrix(&vec![self.normalization.energy_scale; n], n, 1);
        let mut g_x = self.dense_back(
            self.readout1,
            self.dense_back(self.readout2, ones) * ssp_derivative(a_r),
        );
        if let Some(g) = g_charges {
            g_x = g_x + g;
        }
        let zeros = || ctx.zeros(n, self.config.features);
        let mut g_mu = [zeros(), zeros(), zeros()];
        let mut g_d: Option<Tensor<2>> = None;
        let mut g_rhat: Option<[Tensor<2>; 3]> = None;
        let mut g_positions: Option<Tensor<2>> = None;
        for ((block, cache), rbf) in self.blocks.iter().zip(caches).zip(radials).rev() {
            if let Some(h) = &cache.hierarchy {
                let mut g_mcgm = self.mcgm_backward(block, h, g_x.clone(), ctx);
                if let (Some(indices), Some(soft_cache)) = (block.soft, &cache.soft) {
                    let (g_soft, g_r) = self.soft(indices, graph, batch, ctx).backward(soft_cache, g_x.clone());
                    g_mcgm = g_mcgm + g_soft;
                    if let Some(g_r) = g_r {
                        accumulate(&mut g_positions, g_r);
                    }
                }
                g_x = g_x + g_mcgm;
            }
            let g_block = match (&cache.interaction, block.schnet, block.painn) {
                (
                    InteractionCache::Schnet {
                        a1,
                        filter,
                        w_edge,
                        y_dst,
                        a2,
                    },
                    Some(p),
                    _,
                ) => {
                    // x' = x + out2(ssp(out1(m))).
                    let g_m = self.dense_back(
                        p.out1,
                        self.dense_back(p.out2, g_x.clone()) * ssp_derivative(a2.clone()),
                    );
                    let g_msg = g_m.select(0, graph.src.clone());
                    // msg = y_dst ⊙ W_e.
                    let g_y = scatter_add(g_msg.clone() * w_edge.clone(), &graph.dst, n, ctx);
                    g_x = g_x + self.dense_back(p.input, g_y);
                    let g_w = g_msg * y_dst.clone();
                    // W_e = filter ⊙ f_c; filter = filter2(ssp(filter1(g))).
                    let g_filter = g_w.clone() * rbf.fc.clone();
                    let fc_part = (g_w * filter.clone()).sum_dim(1);
                    let g_a1 = self.dense_back(p.filter2, g_filter) * ssp_derivative(a1.clone());
                    let g_g = self.dense_back(p.filter1, g_a1);
                    (g_g * rbf.dg_dd.clone()).sum_dim(1) + fc_part * rbf.dfc_dd.clone()
                }
                (InteractionCache::Painn(c), _, Some(p)) => {
                    let (g_q, g_m, g_dist, g_dir) =
                        self.painn_backward(p, c, g_x, g_mu, rbf, graph, n, ctx);
                    g_x = g_q;
                    g_mu = g_m;
                    g_rhat = Some(match g_rhat {
                        Some([x, y, z]) => [
                            x + g_dir[0].clone(),
                            y + g_dir[1].clone(),
                            z + g_dir[2].clone(),
                        ],
                        None => g_dir,
                    });
                    g_dist
                }
                _ => unreachable!("cache and parameters of one backbone"),
            };
            accumulate(&mut g_d, g_block);
        }
        (g_d.expect("at least one block"), g_rhat, g_positions)
    }

}

/// The radial part of every edge: distance, Gaussian basis, cosine cutoff and their derivatives.
struct Radial {
    /// [E, 1]
    distance: Tensor<2>,
    /// [E, K]
    g: Tensor<2>,
    dg_dd: Tensor<2>,
    /// [E, 1]
    fc: Tensor<2>,
    dfc_dd: Tensor<2>,
}

impl Radial {
    /// The basis of a block with cutoff `rc` (edges beyond it get zero filter and derivative).
    fn new(r: Tensor<2>, k: usize, rc: f64, ctx: &Ctx) -> Radial {
        let d = (r.clone() * r).sum_dim(1).sqrt();
        let width = rc / (k - 1) as f64;
        let centres = ctx.matrix(&(0..k).map(|i| i as f64 * width).collect::<Vec<_>>(), 1, k);
        let diff = d.clone() - centres; // [E, K]
        let g = (diff.clone() * diff.clone())
            .mul_scalar(-0.5 / (width * width))
            .exp();
        let dg_dd = g.clone() * diff.mul_scalar(-1.0 / (width * width));
        let phase = d.clone().mul_scalar(std::f64::consts::PI / rc);
        let inside = d.clone().lower_elem(rc).float().cast(ctx.dtype);
        let fc = (phase.clone().cos().add_scalar(1.0)).mul_scalar(0.5) * inside.clone();
        let dfc_dd = phase.sin().mul_scalar(-0.5 * std::f64::consts::PI / rc) * inside;
        Radial {
            distance: d,
            g,
            dg_dd,
            fc,
            dfc_dd,
        }
    }
}

/// A distance-aware MCGM's centroids are weighted means of positions: defined in an open cell
/// only.
pub fn open_for_centroids(cell: &crate::cell::Cell) -> Result<(), String> {
    if cell.pbc().iter().any(|&p| p) {
        return Err("the distance-aware MCGM (--mcgm-distance) takes open structures only: a cluster's centroid is a mean of positions, which a periodic cell does not define; for periodic systems use learned charges (--long-range charges)".to_string());
    }
    Ok(())
}

fn edge_structure_index(batch: &Batch, ctx: &Ctx) -> Tensor<1, Int> {
    let s: Vec<usize> = batch.src.iter().map(|&i| batch.structure[i]).collect();
    ctx.indices(&s)
}

/// Creates parameters with seeded uniform (Glorot-like) initialisation.
struct Builder {
    names: Vec<String>,
    values: Vec<Tensor<2>>,
    seed: u64,
    ctx: Ctx,
}

impl Builder {
    fn param(&mut self, name: &str, rows: usize, cols: usize, scale: f64) -> usize {
        let index = self.values.len() as u32;
        let limit = scale * (6.0 / (rows + cols) as f64).sqrt();
        let data: Vec<f64> = (0..rows * cols)
            .map(|k| {
                let w = crate::rng::philox4x32(
                    [k as u32, index, 0x5eed, 0],
                    [self.seed as u32, (self.seed >> 32) as u32],
                );
                (w[0] as f64 / 4294967296.0 * 2.0 - 1.0) * limit
            })
            .collect();
        let value = self.ctx.matrix(&data, rows, cols);
        self.push(name, value)
    }

    fn zeros(&mut self, name: &str, cols: usize) -> usize {
        let value = self.ctx.zeros(1, cols);
        self.push(name, value)
    }

    /// Parameters are leaves that keep their gradient, where the device records gradients.
    fn push(&mut self, name: &str, value: Tensor<2>) -> usize {
        self.names.push(name.to_string());
        self.values.push(if self.ctx.device.is_autodiff() {
            value.require_grad()
        } else {
            value
        });
        self.values.len() - 1
    }

    fn dense(&mut self, name: &str, inputs: usize, outputs: usize, bias: bool) -> Dense {
        let w = self.param(&format!("{name}.weight"), inputs, outputs, 1.0);
        let b = bias.then(|| self.zeros(&format!("{name}.bias"), outputs));
        Dense { w, b }
    }

    fn dense_scaled(&mut self, name: &str, inputs: usize, outputs: usize, scale: f64) -> Dense {
        let w = self.param(&format!("{name}.weight"), inputs, outputs, scale);
        Dense { w, b: None }
    }
}

impl Assign {
    pub fn name(&self) -> &'static str {
        match self {
            Assign::Hard => "hard",
            Assign::Soft => "soft",
        }
    }
}
