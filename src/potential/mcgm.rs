//! The machine-learned potential in MD: a trained SchNet/MCGM model evaluated on the CPU.
//! SchNet models run on `crate::ml::inference` (f32 network with tabulated filters, f64 sums);
//! PaiNN on the burn reference (f64). The graph is read off the engine's full neighbour list
//! (cutoff = the model's), keeping the pairs inside the cutoff at the current positions, so it
//! is rebuilt as atoms move; the MCGM hierarchy is rebuilt at every evaluation.

use super::{ForceOutput, Potential, Want};
use crate::ml::file;
use crate::ml::graph::{Batch, GraphTensors};
use crate::ml::inference::{Graph, Inference};
use crate::ml::model::Model;
use crate::ml::tensor::{Ctx, to_vec};
use crate::neighbor::{ListKind, NeighborList};
use crate::system::System;
use std::path::Path;

pub struct MlPotential {
    model: Model,
    ctx: Ctx,
    /// The fast path (SchNet); None: the burn reference evaluates the model.
    fast: Option<Inference>,
    /// Time spent turning the neighbour list into the model's graph.
    graph_time: std::time::Duration,
    /// Model species index of each system species.
    species_map: Vec<usize>,
    description: String,
    /// Warnings about atoms closer than the training data ever had, printed so far.
    warnings: usize,
    /// Per pair of model species: the distance below which a pair is outside the training
    /// data (0: no limit), and what the warning calls it.
    unseen_below: Vec<Vec<(f64, String)>>,
}

/// Atoms closer than this fraction of the shortest training distance draw a warning.
const UNSEEN_FRACTION: f64 = 0.9;
/// Warnings printed before the rest are suppressed.
const MAX_WARNINGS: usize = 10;

impl MlPotential {
    /// Loads the model and maps the system's species onto the model's.
    pub fn load(path: &Path, species: &[String]) -> Result<MlPotential, String> {
        let ctx = Ctx::cpu_inference(true);
        let (model, _card) = file::load(path, &ctx).map_err(|e| e.to_string())?;
        let known: Vec<&str> = model
            .config
            .species
            .iter()
            .filter_map(|&z| crate::elements::symbol(z))
            .collect();
        let species_map = species
            .iter()
            .map(|name| {
                crate::elements::atomic_number(name)
                    .and_then(|z| model.species_index(z))
                    .ok_or_else(|| {
                        format!(
                            "the model {} knows {}, not '{name}'",
                            path.display(),
                            known.join(", ")
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fast = Inference::new(&model).ok();
        let c = &model.config;
        let description = format!(
            "{} (F = {}, {} blocks, cutoff {} Å, MCGM {}; {}) from {}",
            c.backbone,
            c.features,
            c.blocks,
            c.cutoff,
            c.mcgm.as_ref().map_or("off".to_string(), |m| m.describe()),
            if fast.is_some() { "f32 with tabulated filters" } else { "burn reference, f64" },
            path.display()
        );
        let n = &model.normalization;
        let unseen_below = model
            .config
            .species
            .iter()
            .map(|&a| {
                model
                    .config
                    .species
                    .iter()
                    .map(|&b| {
                        let key = crate::ml::model::pair_key(a, b);
                        match n.pair_min_distances.get(&key) {
                            Some(&d) => (UNSEEN_FRACTION * d, format!("{key} never closer than {d:.3} Å there")),
                            None => (UNSEEN_FRACTION * n.training_min_distance, format!("any pair never closer than {:.3} Å there", n.training_min_distance)),
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(MlPotential { model, ctx, fast, graph_time: Default::default(), species_map, description, warnings: 0, unseen_below })
    }

    /// What the GPU platform needs: the compiled SchNet (the GPU kernels read its f32 weights
    /// and filter tables), the model species of each system species, and the description.
    /// Err says why the model cannot run on the GPU.
    pub fn into_gpu(self) -> Result<(Inference, Vec<usize>, String), String> {
        match self.fast {
            Some(fast) => Ok((fast, self.species_map, self.description.replace("f32 with tabulated filters", "f32 WGSL kernels with tabulated filters"))),
            None => Err(format!("the GPU kernels run SchNet models; {} runs on the CPU", self.model.config.backbone)),
        }
    }

    /// The model's graph for the system's current positions.
    fn batch(&self, system: &System, list: &NeighborList) -> Batch {
        let cutoff = self.model.config.cutoff;
        let n = system.len();
        let mut batch = Batch {
            n_atoms: n,
            n_structures: 1,
            species: system
                .types
                .iter()
                .map(|&t| self.species_map[t as usize])
                .collect(),
            structure: vec![0; n],
            counts: vec![n],
            positions: system.positions.clone(),
            src: Vec::new(),
            dst: Vec::new(),
            shifts: Vec::new(),
        };
        batch.add_edges(list, &system.positions, 0, cutoff);
        batch
    }
}

impl MlPotential {
    /// Warns (a bounded number of times) about pairs closer than the training data had: per
    /// element pair where the model file records it, else against the shortest distance of all.
    fn warn_outside_training(&mut self, graph: &Graph) {
        if self.warnings >= MAX_WARNINGS {
            return;
        }
        let mut close: Vec<String> = Vec::new();
        for i in 0..graph.n_atoms() {
            for e in graph.start[i]..graph.start[i + 1] {
                let j = graph.neighbor[e] as usize;
                let (limit, what) = &self.unseen_below[graph.species[i]][graph.species[j]];
                let d = graph.distance[e];
                if i < j && d < *limit {
                    close.push(format!("atoms {} and {} at {d:.3} Å ({what})", i + 1, j + 1));
                }
            }
        }
        if close.is_empty() {
            return;
        }
        self.warnings += 1;
        let more = if close.len() > 5 { format!(" and {} more pairs", close.len() - 5) } else { String::new() };
        close.truncate(5);
        eprintln!(
            "warning: outside the model's training data: {}{more}{}",
            close.join(", "),
            if self.warnings == MAX_WARNINGS { "; further warnings suppressed" } else { "" }
        );
    }
}

impl Potential for MlPotential {
    fn name(&self) -> String {
        self.description.clone()
    }

    fn cutoff(&self) -> f64 {
        self.model.config.cutoff
    }

    fn list_kind(&self) -> ListKind {
        ListKind::Full
    }

    fn compute(&mut self, system: &System, list: &NeighborList, want: Want, out: &mut ForceOutput) {
        out.clear(system.len());
        let t = std::time::Instant::now();
        let species = system.types.iter().map(|&t| self.species_map[t as usize]).collect();
        let graph = Graph::from_neighbor_list(list, &system.positions, species, self.model.config.cutoff);
        self.warn_outside_training(&graph);
        if let Some(fast) = &mut self.fast {
            self.graph_time += t.elapsed();
            let result = fast.evaluate(&graph);
            out.forces.copy_from_slice(&result.forces);
            out.energy = result.energy[0];
            let w = result.virial[0];
            out.virial = [[w[0], w[1], w[2]], [w[3], w[4], w[5]], [w[6], w[7], w[8]]];
            return;
        }
        // The burn reference (PaiNN) takes the same pairs as a batch.
        let batch = self.batch(system, list);
        self.graph_time += t.elapsed();
        let graph = GraphTensors::new(&batch, &self.ctx);
        let prediction = self.model.predict(&batch, &graph, &self.ctx);
        let forces = to_vec(prediction.forces);
        for (i, f) in out.forces.iter_mut().enumerate() {
            *f = [forces[3 * i], forces[3 * i + 1], forces[3 * i + 2]];
        }
        if want.energy {
            out.energy = to_vec(prediction.energy)[0];
        }
        if want.virial {
            let w = to_vec(prediction.virial);
            out.virial = [[w[0], w[1], w[2]], [w[3], w[4], w[5]], [w[6], w[7], w[8]]];
        }
    }

    fn stage_times(&self) -> Vec<(&'static str, f64)> {
        let mut stages = vec![("graph", self.graph_time.as_secs_f64())];
        if let Some(fast) = &self.fast {
            let t = fast.times;
            stages.push(("clustering", t.clustering.as_secs_f64()));
            stages.push(("forward", t.forward.as_secs_f64()));
            stages.push(("backward", t.backward.as_secs_f64()));
        }
        stages
    }

    fn notes(&self) -> Vec<String> {
        match (&self.fast, &self.model.config.mcgm) {
            (Some(fast), Some(m)) if m.assign == crate::ml::mcgm::Assign::Hard => vec![format!(
                "MCGM hard clustering regrouped the atoms at {} of {} evaluations (each is a jump in the energy)",
                fast.times.partition_changes, fast.times.evaluations
            )],
            _ => Vec::new(),
        }
    }
}
