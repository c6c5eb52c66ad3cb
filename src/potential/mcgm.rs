//! The machine-learned potential in MD: a trained SchNet or PaiNN model (with or without MCGM)
//! evaluated on the CPU by `crate::ml::inference` (f32 network with tabulated filters, f64
//! sums); the burn reference (f64) evaluates any model that path cannot compile. The graph is read off the engine's full neighbour list
//! (cutoff = the model's), keeping the pairs inside the cutoff at the current positions, so it
//! is rebuilt as atoms move; the MCGM hierarchy is rebuilt at every evaluation.

use super::batch::BatchSlot;
use super::committee::ForceDeviation;
use super::{ForceOutput, Potential, Want};
use crate::ml::file;
use crate::ml::graph::{Batch, GraphTensors};
use crate::ml::inference::{Graph, Inference, Output};
use crate::ml::model::Model;
use crate::ml::tensor::{Ctx, to_vec};
use crate::ml::mcgm::McgmConfig;
use crate::neighbor::{ListKind, NeighborList};
use crate::system::System;
use std::path::Path;

pub struct MlPotential {
    model: Model,
    ctx: Ctx,
    /// The fast path; None: the burn reference evaluates the model.
    fast: Option<Inference>,
    /// Time spent turning the neighbour list into the model's graph.
    graph_time: std::time::Duration,
    /// Model species index of each system species.
    species_map: Vec<usize>,
    description: String,
    /// Printed before the run (hard K-means levels that can regroup these elements).
    cautions: Vec<String>,
    range: TrainingRange,
    /// `[run] replicas`: the model is evaluated for all replicas at once, there.
    batch: Option<BatchSlot>,
    /// The system's total charge, e (a long-range model's charges sum to it).
    total_charge: f64,
    /// A committee's members after the first (which is `model` and `fast`): evaluated on the
    /// same graph at the steps that compute the energy.
    committee: Vec<Inference>,
    deviation: Option<ForceDeviation>,
    /// Why the last evaluation failed (`Potential::failure`).
    failure: Option<String>,
}

/// The distances the model was trained on, and the warnings about pairs closer than that.
#[derive(Clone)]
pub struct TrainingRange {
    /// Per pair of model species: the distance below which a pair is outside the training
    /// data (0: no limit), and what the warning calls it.
    pub unseen_below: Vec<Vec<(f64, String)>>,
    /// Whether the first pair outside was reported (the rest are summed per thermo row).
    reported: bool,
    /// Since the last summary: force evaluations (GPU: blocks of steps) with pairs outside,
    /// and the first such pair.
    pending: u64,
    example: Option<String>,
    /// Summaries in a row (up to the last) that had evaluations outside.
    pub streak: u64,
}

impl TrainingRange {
    /// No limits (models without recorded distances, tests).
    pub fn unlimited(species: usize) -> TrainingRange {
        TrainingRange::with_limits(vec![vec![(0.0, String::new()); species]; species])
    }

    fn with_limits(unseen_below: Vec<Vec<(f64, String)>>) -> TrainingRange {
        TrainingRange { unseen_below, reported: false, pending: 0, example: None, streak: 0 }
    }

    fn of(model: &Model) -> TrainingRange {
        let n = &model.normalization;
        let species = &model.config.species;
        let unseen_below = species
            .iter()
            .map(|&a| {
                species
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
        TrainingRange::with_limits(unseen_below)
    }

    /// Whether the next pairs outside are worth naming (the first report, or the example of
    /// the next summary); else counting them is enough.
    pub fn wants_pairs(&self) -> bool {
        !self.reported || self.example.is_none()
    }

    /// Whether a pair of model species at `d` Å is closer than the training data had.
    pub fn is_outside(&self, species_i: usize, species_j: usize, d: f64) -> bool {
        d < self.unseen_below[species_i][species_j].0
    }

    /// "atoms i and j at d Å (why)" for a pair (1-based ids) closer than the training data
    /// had, else None.
    pub fn describe(&self, i: usize, j: usize, species_i: usize, species_j: usize, d: f64) -> Option<String> {
        let what = &self.unseen_below[species_i][species_j].1;
        self.is_outside(species_i, species_j, d).then(|| format!("atoms {} and {} at {d:.3} Å ({what})", i + 1, j + 1))
    }

    /// The pairs in `close` (descriptions) were outside in one evaluation: the first time,
    /// prints one warning listing up to five of them; later, counts them for the next summary.
    pub fn warn(&mut self, mut close: Vec<String>) {
        if close.is_empty() {
            return;
        }
        if self.reported {
            self.pending += 1;
            if self.example.is_none() {
                self.example = close.into_iter().next();
            }
            return;
        }
        self.reported = true;
        let more = if close.len() > 5 { format!(" and {} more pairs", close.len() - 5) } else { String::new() };
        close.truncate(5);
        eprintln!("warning: outside the model's training data: {}{more}; from here on one line after each thermo row sums them up", close.join(", "));
    }

    /// Counts an evaluation with pairs outside whose pairs were not named.
    pub fn count(&mut self) {
        self.pending += 1;
    }

    /// One line summing up the evaluations outside since the last call (what was counted, in
    /// the singular and the plural), or None if there were none.
    pub fn take_summary(&mut self, (one, many): (&str, &str)) -> Option<String> {
        if self.pending == 0 {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let example = self.example.take().map(|e| format!(", e.g. {e}")).unwrap_or_default();
        let line = format!("warning: outside the model's training data in {} {} since the last thermo row{example}", self.pending, if self.pending == 1 { one } else { many });
        self.pending = 0;
        Some(line)
    }
}

/// A compiled model with its species map: what the GPU kernels (`crate::gpu::ml`), replica
/// batches and the library (`crate::library`) evaluate.
pub struct GpuModel {
    /// The compiled model: the GPU kernels read its f32 weights and filter tables.
    pub inference: Inference,
    /// Model species of each system species.
    pub species_of_type: Vec<usize>,
    pub description: String,
    /// Printed before the run (see `Potential::cautions`).
    pub cautions: Vec<String>,
    pub range: TrainingRange,
    /// The total charge of each structure, e (a long-range model's charges sum to it).
    pub total_charge: f64,
    /// The GPU reads the filter tables in f16 (`[potential] gpu_tables = "f16"`).
    pub half_tables: bool,
}

/// Atoms closer than this fraction of the shortest training distance draw a warning.
const UNSEEN_FRACTION: f64 = 0.9;

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
        let mut fast = Inference::new(&model).ok();
        // Equilibrated charges: each solve starts from the evaluations before (MD, the library).
        if let Some(charges) = fast.as_mut().and_then(|f| f.charges.as_mut()) {
            charges.carry_charges();
        }
        let c = &model.config;
        let description = format!(
            "{} (F = {}, {} blocks, cutoff {} Å, MCGM {}{}; {}) from {}",
            c.backbone,
            c.features,
            c.blocks,
            c.cutoff,
            c.mcgm.as_ref().map_or("off".to_string(), |m| m.describe()),
            c.long_range.as_ref().map_or(String::new(), |l| format!(", {}", l.describe())),
            if fast.is_some() { "f32 with tabulated filters" } else { "burn reference, f64" },
            path.display()
        );
        let mut elements = species_map.clone();
        elements.sort_unstable();
        elements.dedup();
        let regrouping = c.mcgm.as_ref().map(|m| m.regrouping_levels(elements.len())).unwrap_or_default();
        let cautions = if regrouping.is_empty() {
            Vec::new()
        } else {
            let levels: Vec<String> = regrouping.iter().map(|(n, k)| format!("{n} -> {k}")).collect();
            vec![format!(
                "caution: with these {} elements the model's hard K-means ({} clusters) can regroup as the atoms move; each regrouping is a jump in the energy that NVE cannot conserve (a soft model's energy is smooth)",
                elements.len(),
                levels.join(", ")
            )]
        };
        let range = TrainingRange::of(&model);
        let committee = Self::other_members(path, &model, fast.is_some())?;
        let description = match committee.len() {
            0 => description,
            k => format!("committee of {} x {description} (the first drives the dynamics)", k + 1),
        };
        Ok(MlPotential { model, ctx, fast, graph_time: Default::default(), species_map, description, cautions, range, batch: None, total_charge: 0.0, committee, deviation: None, failure: None })
    }

    /// The compiled members of the committee at `path` after the first (`first`), or none for
    /// a single model. They must share the first's species and cutoff (one graph for all).
    fn other_members(path: &Path, first: &Model, first_compiles: bool) -> Result<Vec<Inference>, String> {
        let Some(members) = file::committee_members(path).map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        if members.len() > 1 && !first_compiles {
            return Err(format!("committee {}: its members must compile to the f32 fast path (feature count a multiple of 8)", path.display()));
        }
        let ctx = Ctx::cpu_inference(true);
        members[1..]
            .iter()
            .map(|member| {
                let (model, _) = file::load(member, &ctx).map_err(|e| e.to_string())?;
                let (a, b) = (&model.config, &first.config);
                if a.species != b.species || a.cutoff != b.cutoff {
                    return Err(format!(
                        "committee {}: member {} has species {:?} and cutoff {} Å, the first {:?} and {} Å; the members must share both (they see one graph)",
                        path.display(),
                        member.display(),
                        a.species,
                        a.cutoff,
                        b.species,
                        b.cutoff
                    ));
                }
                Inference::new(&model).map_err(|e| format!("committee member {}: {e}", member.display()))
            })
            .collect()
    }

    /// Members of the committee, the one that drives the dynamics included (1: a single model).
    pub fn committee_size(&self) -> usize {
        self.committee.len() + 1
    }

    /// The potential for a system in `cell` of total charge `charge` (e): both checks below.
    pub fn for_system(self, cell: &crate::cell::Cell, charge: f64) -> Result<MlPotential, String> {
        let potential = self.with_total_charge(charge)?;
        potential.check_cell(cell)?;
        Ok(potential)
    }

    /// Adds to the description how the charges of atoms at `positions` in `cell` are summed on
    /// the CPU's fast path (the run's header); nothing for a model without charges. The
    /// splitting it builds is the one the first evaluation uses (kept in structure 0's memory).
    pub fn describe_charges_for(mut self, positions: &[crate::cell::Vec3], cell: &crate::cell::Cell) -> MlPotential {
        if let Some(charges) = self.fast.as_mut().and_then(|f| f.charges.as_mut()) {
            charges.memory.resize_with(1.max(charges.memory.len()), Default::default);
            let method = charges.coulomb.describe_with(&mut charges.memory[0], positions, cell);
            self.description = format!("{}; charges summed by {method}", self.description);
        }
        self
    }

    /// How a long-range model sums its charges' reciprocal part (`Coulomb::mesh`); Err for a
    /// model without charges.
    pub fn with_ewald(mut self, mesh: Option<bool>) -> Result<MlPotential, String> {
        if mesh.is_some() && self.model.config.long_range.is_none() {
            return Err("the Ewald method is for a long-range model (mdrun train --long-range charges); this model has no charges".into());
        }
        for inference in self.fast.iter_mut().chain(self.committee.iter_mut()) {
            if let Some(charges) = inference.charges.as_mut() {
                charges.coulomb.mesh = mesh;
            }
        }
        Ok(self)
    }

    /// The system's total charge (e): a long-range model's charges sum to it; a local one has
    /// no charges and takes only a neutral system.
    pub fn with_total_charge(mut self, charge: f64) -> Result<MlPotential, String> {
        if !(charge.is_finite() && charge.abs() <= 1000.0) {
            return Err(format!("total charge {charge} e: expected a number from -1000 to 1000"));
        }
        if self.model.config.long_range.is_none() && charge != 0.0 {
            return Err(format!("a total charge of {charge} e needs a long-range model (mdrun train --long-range charges); this model has no charges"));
        }
        self.total_charge = charge;
        Ok(self)
    }

    /// Whether the model can run in `cell`: a long-range model sums its charges in a fully
    /// periodic or a fully open one.
    pub fn check_cell(&self, cell: &crate::cell::Cell) -> Result<(), String> {
        if self.model.config.long_range.is_some() {
            crate::ml::electrostatics::periodicity(cell)?;
        }
        if self.model.config.is_distance_aware() {
            crate::ml::model::open_for_centroids(cell)?;
        }
        Ok(())
    }

    /// Evaluates through `batch` (with the other replicas) from now on.
    pub fn in_batch(mut self, batch: BatchSlot) -> MlPotential {
        self.batch = Some(batch);
        self
    }

    /// The model for the GPU platform (or a replica batch); Err says why it cannot run there.
    pub fn into_gpu(self) -> Result<GpuModel, String> {
        if !self.committee.is_empty() {
            return Err(format!("a committee of {} models runs on the CPU (the GPU kernels evaluate one model)", self.committee_size()));
        }
        if let Some(part) = self.model.config.gpu_unsupported_part() {
            return Err(format!("the GPU kernels do not evaluate {part}: run this model on the CPU (--platform cpu)"));
        }
        self.into_compiled().map(|m| GpuModel { description: m.description.replace("f32 with tabulated filters", "f32 WGSL kernels with tabulated filters"), ..m })
    }

    /// Whether the model has learned charges.
    pub fn is_long_range(&self) -> bool {
        self.model.config.long_range.is_some()
    }

    /// The inference's time split and counts so far (the shared batch's, in a replica batch);
    /// None before the model is compiled.
    fn evaluation_times(&self) -> Option<crate::ml::inference::StageTimes> {
        match (&self.batch, &self.fast) {
            (Some(b), _) => Some(b.shared.times().0),
            (None, Some(fast)) => Some(fast.times),
            (None, None) => None,
        }
    }

    /// Whether the model needs the whole system at once, never a rank's part: learned charges
    /// (their Coulomb sum) or a distance-aware MCGM (its centroids).
    pub fn needs_whole_system(&self) -> bool {
        self.is_long_range() || self.model.config.is_distance_aware()
    }

    /// Interaction blocks (the receptive field is blocks x cutoff).
    pub fn blocks(&self) -> usize {
        self.model.config.blocks
    }

    /// The compiled f32 model with its species map (`crate::library`, the GPU kernels, replica
    /// batches); Err: the model does not compile to the fast path.
    pub fn into_compiled(mut self) -> Result<GpuModel, String> {
        match self.fast.take() {
            Some(inference) => Ok(GpuModel {
                inference,
                species_of_type: std::mem::take(&mut self.species_map),
                description: std::mem::take(&mut self.description),
                cautions: std::mem::take(&mut self.cautions),
                range: std::mem::replace(&mut self.range, TrainingRange::unlimited(0)),
                total_charge: self.total_charge,
                half_tables: false,
            }),
            None => Err(format!("the GPU kernels, replica batches and the library need the f32 fast path, which this {} model does not compile to (feature count not a multiple of 8)", self.model.config.backbone)),
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
            cells: vec![system.cell.clone()],
            charges: vec![self.total_charge],
        };
        batch.add_edges(list, &system.positions, 0, cutoff);
        batch
    }
}

impl MlPotential {
    /// Reports (the first time, then counts for the thermo rows' summaries) pairs closer than
    /// the training data had: per element pair where the model file records it, else against
    /// the shortest distance of all.
    fn warn_outside_training(&mut self, graph: &Graph) {
        if !self.range.wants_pairs() {
            let outside = (0..graph.n_atoms())
                .any(|i| (graph.start[i]..graph.start[i + 1]).any(|e| self.range.is_outside(graph.species[i], graph.species[graph.neighbor[e] as usize], graph.distance[e])));
            if outside {
                self.range.count();
            }
            return;
        }
        let mut close: Vec<String> = Vec::new();
        for i in 0..graph.n_atoms() {
            for e in graph.start[i]..graph.start[i + 1] {
                let j = graph.neighbor[e] as usize;
                if i < j
                    && let Some(pair) = self.range.describe(i, j, graph.species[i], graph.species[j], graph.distance[e])
                {
                    close.push(pair);
                }
            }
        }
        self.range.warn(close);
    }
}

/// The fast path's forces, energy and virial of one structure into `out`.
fn copy_output(result: &Output, out: &mut ForceOutput) {
    out.forces.copy_from_slice(&result.forces);
    out.energy = result.energy[0];
    let w = result.virial[0];
    out.virial = [[w[0], w[1], w[2]], [w[3], w[4], w[5]], [w[6], w[7], w[8]]];
}

impl Drop for MlPotential {
    fn drop(&mut self) {
        if let Some(b) = &self.batch {
            b.shared.leave(b.slot);
        }
    }
}

impl Potential for MlPotential {
    fn take_outside_data_summary(&mut self) -> Option<String> {
        self.range.take_summary(("force evaluation", "force evaluations"))
    }

    fn outside_data_streak(&self) -> u64 {
        self.range.streak
    }

    fn force_deviation(&self) -> Option<ForceDeviation> {
        self.deviation
    }

    fn failure(&self) -> Option<String> {
        self.failure.clone()
    }

    fn carried_state(&self) -> Vec<f64> {
        match (&self.batch, &self.fast) {
            (None, Some(fast)) => fast.charges.as_ref().map(|c| c.carried()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn restore_carried_state(&mut self, values: &[f64]) -> Result<(), String> {
        match (&self.batch, self.fast.as_mut().and_then(|f| f.charges.as_mut())) {
            (None, Some(charges)) => charges.restore_carried(values),
            _ if values.is_empty() => Ok(()),
            _ => Err(format!("{} carries nothing from step to step here, but the checkpoint saved {} values for it", self.description, values.len())),
        }
    }

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
        let graph = Graph::from_neighbor_list(list, &system.positions, species, self.model.config.cutoff, &system.cell, self.total_charge);
        self.warn_outside_training(&graph);
        self.deviation = None;
        if let Some(b) = &self.batch {
            self.graph_time += t.elapsed();
            let result = b.shared.evaluate(b.slot, graph);
            self.failure = result.failure.clone();
            copy_output(&result, out);
            return;
        }
        if let Some(fast) = &mut self.fast {
            self.graph_time += t.elapsed();
            let result = fast.evaluate(&graph).unwrap_or_else(|e| Output::not_a_number(&graph, e));
            self.failure = result.failure.clone();
            copy_output(&result, out);
            if want.energy && !self.committee.is_empty() {
                let others: Vec<Vec<[f64; 3]>> = self.committee.iter_mut().map(|m| m.evaluate(&graph).map(|o| o.forces).unwrap_or_else(|_| vec![[f64::NAN; 3]; graph.n_atoms()])).collect();
                let mut members: Vec<&[[f64; 3]]> = vec![&out.forces];
                members.extend(others.iter().map(|f| f.as_slice()));
                self.deviation = Some(super::committee::force_deviation(&members));
            }
            return;
        }
        // The burn reference takes the same pairs as a batch.
        let batch = self.batch(system, list);
        self.graph_time += t.elapsed();
        let graph = GraphTensors::new(&batch, &self.ctx);
        let prediction = match self.model.predict(&batch, &graph, &self.ctx) {
            Ok(p) => {
                self.failure = None;
                p
            }
            Err(e) => {
                self.failure = Some(e);
                out.forces.iter_mut().for_each(|f| *f = [f64::NAN; 3]);
                out.energy = f64::NAN;
                return;
            }
        };
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
        if let Some(t) = self.evaluation_times() {
            stages.push(("clustering", t.clustering.as_secs_f64()));
            stages.push(("forward", t.forward.as_secs_f64()));
            stages.push(("backward", t.backward.as_secs_f64()));
            if self.model.config.long_range.is_some() {
                stages.push(("long range", t.long_range.as_secs_f64()));
            }
        }
        stages
    }

    fn cautions(&self) -> Vec<String> {
        self.cautions.clone()
    }

    fn notes(&self) -> Vec<String> {
        // (regroupings, evaluations) of this system: in a replica batch its own count; the
        // batch evaluates every replica at each of its evaluations.
        let counts = match (&self.batch, &self.fast) {
            (Some(b), _) => Some((b.shared.regroupings(b.slot), b.shared.times().0.evaluations)),
            (None, Some(fast)) => Some((fast.times.partition_changes, fast.times.evaluations)),
            (None, None) => None,
        };
        let mut notes = match (counts, &self.model.config.mcgm) {
            (Some((regroupings, evaluations)), Some(m)) if m.assign == crate::ml::mcgm::Assign::Hard => vec![McgmConfig::regrouping_note(regroupings, evaluations)],
            _ => Vec::new(),
        };
        if let Some(t) = self.evaluation_times().filter(|t| t.evaluations > 0 && self.model.config.long_range.as_ref().is_some_and(|l| l.equilibration)) {
            notes.push(format!(
                "charge equilibration: {:.1} conjugate-gradient iterations per evaluation (one Coulomb sum each), over {} evaluations",
                t.equilibration_iterations as f64 / t.evaluations as f64,
                t.evaluations
            ));
        }
        notes
    }
}
