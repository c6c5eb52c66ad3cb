//! The whole MD step resident on the GPU: integrator half steps, displacement check, neighbour
//! list rebuild (decided on the GPU, dispatched indirectly), pair or model forces and the thermo
//! reductions, all in WGSL (shaders/). The host only encodes work and, at the end of a block of
//! steps, reads a few status words (and the thermo sums or the state when output is due).
//!
//! Steps run in blocks between outputs. At the start of a block the state is copied on the GPU;
//! if the block ends with a neighbour list that overflowed its capacity, the capacity grows and
//! the block is replayed from that copy (the result is the same as with a big enough list from
//! the start). If a force was non-finite or above `max_force`, the block is replayed one step at
//! a time to find the step, and the state before it is the last good state.
//!
//! Precision: forces, energies and velocities are f32; positions are float-float (about 48
//! bits) so that adding small displacements does not round away; thermo sums are exact 64-bit
//! fixed-point integer sums of the per-atom f32 values (order-independent).
//!
//! One `GpuSimulation` may hold several independent structures (replicas, or other frames of a
//! trajectory): their atoms are concatenated in every buffer and every dispatch, each with its
//! own cell, bins, list rebuilds, Langevin seed and thermo sums (see shaders/common.wgsl), so
//! that each evolves bit for bit as it would alone while the device works on all of them at
//! once. A structure whose forces blow up is saved and frozen; the others go on.

mod buffers;
mod checks;
mod profile;
mod readback;

use super::context::{GpuContext, GpuError};
use super::layout::{MAX_TYPES, ROW_GROUPS, WG, dims};
use buffers::{allocate, bind_groups, k_per_part, list_parts};
use profile::{PASS_START, PROFILE_CHUNK, Profiler};
use super::kernels::Kernels;
use super::ml::MlForces;
use crate::potential::mcgm::GpuModel;
use crate::cell::{Vec3, dot};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::potential::pair::PairSpec;
use crate::blowup::BlowUp;
use crate::system::System;
use crate::thermo::ThermoSample;
use crate::units::{BOLTZ, FTM2V, MVV2E};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SCAN_BLOCK: u32 = 256;
/// The scan handles up to 65535 blocks of 256 bins.
const MAX_BINS: u64 = 65535 * 256;
/// Structures in a batch: a grid axis's workgroups (65,535), one a structure.
const MAX_STRUCTURES: usize = 65535;
/// Atom ids share a neighbour entry with a 5-bit shift code.
const MAX_ATOMS: usize = 1 << 27;
/// The block-start copy covers these buffers (index into `Buffers::state`).
const STATE_BUFFERS: usize = 6;

/// Parts the neighbour entries are split into (storage bindings are capped, at 128 MiB on
/// some adapters).
const LIST_PARTS: usize = 4;

const ST_MAX_NEIGH: usize = 1;
const ST_BAD_COUNT: usize = 2;
const ST_BAD_ATOM: usize = 3;
const ST_STEP_LO: usize = 5;
const ST_STEP_HI: usize = 6;
/// Global words; then `SW` per structure (shaders/common.wgsl).
const STATUS_WORDS: usize = 16;
const SW: usize = 8;
const SW_REBUILD: usize = 1;
const SW_BUILDS: usize = 2;
const SW_REGROUPINGS: usize = 4;
const SW_CLOSE_ATOM: usize = 5;
/// `Structure` in shaders/common.wgsl: 9 vec4.
const STRUCTURE_BYTES: u64 = 16 * 9;

/// Why a system cannot run on the GPU platform (it can on the CPU).
pub fn unsupported_reason(system: &System, reach: f64) -> Option<String> {
    if system.cell.pbc() != [true; 3] {
        return Some(format!(
            "the GPU platform needs a cell periodic on all three axes (this one: {:?})",
            system.cell.pbc()
        ));
    }
    if system.species.len() > MAX_TYPES {
        return Some(format!(
            "the GPU platform handles up to {MAX_TYPES} species (this system has {})",
            system.species.len()
        ));
    }
    if system.len() >= MAX_ATOMS || system.is_empty() {
        return Some(format!(
            "the GPU platform handles 1 to {} atoms (this system has {})",
            MAX_ATOMS - 1,
            system.len()
        ));
    }
    let widths = system.cell.perpendicular_widths();
    if widths.iter().any(|&w| w < reach) {
        return Some(format!(
            "the cell is narrower ({:.3} x {:.3} x {:.3} Å between faces) than cutoff + skin = {reach:.3} Å; the GPU list reaches one image only",
            widths[0], widths[1], widths[2]
        ));
    }
    None
}

struct Buffers {
    params: wgpu::Buffer,
    /// pos, pos_lo, vel, force, image, ref_pos: the state of a step.
    state: [wgpu::Buffer; STATE_BUFFERS],
    /// Their copies at the start of the current block.
    backup: [wgpu::Buffer; STATE_BUFFERS],
    atom_bin: wgpu::Buffer,
    bins: wgpu::Buffer,
    sorted: wgpu::Buffer,
    slot_pos: wgpu::Buffer,
    ncount: wgpu::Buffer,
    /// The neighbour entries in `LIST_PARTS` parts of `k_per_part` entries per atom.
    nlist: [wgpu::Buffer; LIST_PARTS],
    obs: wgpu::Buffer,
    partial: wgpu::Buffer,
    status: wgpu::Buffer,
    dispatch: wgpu::Buffer,
    structures: wgpu::Buffer,
}

const POS: usize = 0;
const POS_LO: usize = 1;
const VEL: usize = 2;
const FORCE: usize = 3;
const IMAGE: usize = 4;
const REF: usize = 5;

/// What computes the forces on the GPU.
pub enum GpuPotential {
    /// A pair style with a GPU snippet (`PairStyle::gpu`).
    Pair(PairSpec),
    /// A SchNet model (with or without MCGM), compiled for the CPU fast path, whose weights and
    /// tables the GPU kernels read.
    Ml(Box<GpuModel>),
}

impl GpuPotential {
    pub fn name(&self) -> String {
        match self {
            GpuPotential::Pair(p) => p.describe(),
            GpuPotential::Ml(m) => m.description.clone(),
        }
    }

    pub fn cutoff(&self) -> f64 {
        match self {
            GpuPotential::Pair(p) => p.max_cutoff(),
            GpuPotential::Ml(m) => m.inference.cutoff,
        }
    }

    /// Printed before the run (see `Potential::cautions`).
    pub fn cautions(&self) -> Vec<String> {
        match self {
            GpuPotential::Pair(_) => Vec::new(),
            GpuPotential::Ml(m) => m.cautions.clone(),
        }
    }
}

/// One structure of a batch: where its atoms and bins are, and what the host knows of it.
struct Part {
    /// Species, cell, types, masses; positions, velocities and images as of the last read-back.
    system: System,
    integrator: Integrator,
    first: usize,
    nbins: [u32; 3],
    first_bin: u32,
    first_block: u32,
    /// First chunk of the ML poolings (256 atoms each; shaders/ml.wgsl).
    first_chunk: u32,
    builds: u64,
    /// Evaluations (hard MCGM) at which a K-means level regrouped the structure's elements.
    regroupings: u64,
    /// Thermo sums at `sums_step`: kinetic tensor (6), potential energy, virial (6).
    sums: [f64; 13],
    /// A replica that blew up stays where it was (its last good state).
    frozen: bool,
    last_good: Option<Checkpoint>,
    /// Warnings about pairs closer than the model's training data (ML).
    range: Option<crate::potential::mcgm::TrainingRange>,
    /// The ML reference energies of its atoms (added on the host, in f64).
    reference_energy: f64,
}

/// The GPU side of a simulation of one structure or of a batch of independent ones
/// (Lennard-Jones or a SchNet/MCGM model; velocity Verlet or Langevin).
pub struct GpuSimulation {
    ctx: GpuContext,
    kernels: Kernels,
    buf: Buffers,
    main_group: wgpu::BindGroup,
    dispatch_group: wgpu::BindGroup,
    parts: Vec<Part>,
    host_step: Option<u64>,
    pub potential: GpuPotential,
    /// The model's kernels and activations (machine-learned potentials).
    ml: Option<MlForces>,
    /// Structure 0's (every structure has the same, but for the Langevin seed).
    pub integrator: Integrator,
    /// ps
    pub timestep: f64,
    pub step: u64,
    max_force: f64,
    skin: f64,
    n: usize,
    capacity: u32,
    total_bins: u32,
    n_blocks: u32,
    reduce_blocks: u32,
    /// Force evaluations.
    evaluations: u64,
    /// Times the neighbour capacity had to grow.
    pub capacity_grows: u32,
    sums_step: u64,
    /// Wall time spent waiting for the GPU (all kernels).
    pub gpu_time: Duration,
    profiler: Option<Profiler>,
    /// Structures frozen at the start (their first forces were unusable), reported by the
    /// first advance.
    pending: Vec<(usize, GpuError)>,
}

impl GpuSimulation {
    /// Uploads the system and builds the first list and forces. With `reference` (from a
    /// checkpoint) the list is built from those positions, exactly as it was.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: GpuContext,
        system: System,
        potential: GpuPotential,
        integrator: Integrator,
        timestep: f64,
        skin: f64,
        max_force: f64,
        step: u64,
        reference: Option<Vec<Vec3>>,
    ) -> Result<GpuSimulation, GpuError> {
        Self::new_batch(ctx, vec![(system, integrator)], potential, timestep, skin, max_force, step, reference.map(|r| vec![r]))
    }

    /// A batch of independent structures, each with its integrator (they may differ in the
    /// Langevin seed only) and the same species. `references`: each structure's list build
    /// positions from its checkpoint (a restart), for all structures or none.
    #[allow(clippy::too_many_arguments)]
    pub fn new_batch(
        ctx: GpuContext,
        structures: Vec<(System, Integrator)>,
        potential: GpuPotential,
        timestep: f64,
        skin: f64,
        max_force: f64,
        step: u64,
        references: Option<Vec<Vec<Vec3>>>,
    ) -> Result<GpuSimulation, GpuError> {
        let unsupported = |reason: String| Err(GpuError::Unsupported(reason));
        let reach = potential.cutoff() + skin;
        let Some((first_system, integrator)) = structures.first().cloned() else {
            return unsupported("a batch needs at least one structure".into());
        };
        if let Some(reason) = integrator.gpu_unsupported() {
            return unsupported(reason);
        }
        // The per-structure sums run a workgroup a structure along one grid axis.
        if structures.len() > MAX_STRUCTURES {
            return unsupported(format!("a GPU batch holds up to {MAX_STRUCTURES} structures (this batch: {})", structures.len()));
        }
        if let Some(r) = &references
            && (r.len() != structures.len() || r.iter().zip(&structures).any(|(r, (s, _))| r.len() != s.len()))
        {
            return unsupported("the list build positions do not match the structures".into());
        }
        let same_species = |a: &System, b: &System| {
            a.species.len() == b.species.len() && a.species.iter().zip(&b.species).all(|(x, y)| x.name == y.name && x.mass == y.mass)
        };
        let mut parts = Vec::new();
        let (mut first, mut first_bin, mut first_block, mut first_chunk) = (0usize, 0u32, 0u32, 0u32);
        for (k, (mut system, own)) in structures.into_iter().enumerate() {
            if let Some(reason) = unsupported_reason(&system, reach) {
                return unsupported(if k == 0 { reason } else { format!("structure {k}: {reason}") });
            }
            if !same_species(&system, &first_system) {
                return unsupported(format!("structure {k} has other species than structure 0; a GPU batch shares one species table"));
            }
            if !own.same_but_seed(&integrator) {
                return unsupported(format!("structure {k} has another integrator than structure 0; a GPU batch shares all but the Langevin seed"));
            }
            if references.is_none() {
                system.wrap_positions();
            }
            // Bins at least `reach` wide between faces; fewer if there would be too many.
            let widths = system.cell.perpendicular_widths();
            let mut nbins = [0, 1, 2].map(|k| ((widths[k] / (reach * (1.0 + 1e-6))).floor() as u32).max(1));
            while nbins.iter().map(|&b| b as u64).product::<u64>() > MAX_BINS / 4 {
                let k = (0..3).max_by_key(|&k| nbins[k]).unwrap();
                nbins[k] -= 1;
            }
            let n = system.len();
            let reference_energy = match &potential {
                GpuPotential::Ml(m) => system.types.iter().map(|&t| m.inference.reference[m.species_of_type[t as usize]]).sum(),
                GpuPotential::Pair(_) => 0.0,
            };
            let range = match &potential {
                GpuPotential::Ml(m) => Some(m.range.clone()),
                GpuPotential::Pair(_) => None,
            };
            parts.push(Part {
                system,
                integrator: own,
                first,
                nbins,
                first_bin,
                first_block,
                first_chunk,
                builds: 0,
                regroupings: 0,
                sums: [0.0; 13],
                frozen: false,
                last_good: None,
                range,
                reference_energy,
            });
            first += n;
            first_bin += nbins.iter().product::<u32>();
            first_block += n.div_ceil(WG as usize) as u32;
            first_chunk += n.div_ceil(super::ml::CHUNK) as u32;
        }
        let n = first;
        let total_bins = first_bin;
        if n >= MAX_ATOMS || total_bins as u64 > MAX_BINS {
            return unsupported(format!("a batch of {} structures with {n} atoms and {total_bins} bins in all is more than the GPU list handles ({} atoms, {MAX_BINS} bins)", parts.len(), MAX_ATOMS - 1));
        }
        let n_blocks = total_bins.div_ceil(SCAN_BLOCK);
        let kernels = Kernels::new(&ctx, &integrator.splitting())?;

        // Start with room for 1.3x the mean neighbour count of the densest; overflow grows it.
        let density = parts.iter().map(|p| p.system.len() as f64 / p.system.cell.volume()).fold(0.0, f64::max);
        let mean = density * 4.0 / 3.0 * std::f64::consts::PI * reach.powi(3);
        let capacity = ((1.3 * mean).ceil() as u32 + 16).next_multiple_of(8);

        let buf = allocate(&ctx, n, total_bins, n_blocks, first_block, parts.len(), capacity)?;
        let (main_group, dispatch_group) = bind_groups(&ctx, &kernels, &buf);
        let ml = match &potential {
            GpuPotential::Ml(m) => {
                let types: Vec<u32> = parts.iter().flat_map(|p| p.system.types.iter().copied()).collect();
                let sizes: Vec<usize> = parts.iter().map(|p| p.system.len()).collect();
                let cells: Vec<crate::cell::Cell> = parts.iter().map(|p| p.system.cell.clone()).collect();
                Some(MlForces::new(&ctx, &kernels, m, &types, &sizes, &cells, capacity)?)
            }
            GpuPotential::Pair(_) => None,
        };
        let mut sim = GpuSimulation {
            ctx,
            kernels,
            buf,
            main_group,
            dispatch_group,
            parts,
            host_step: None,
            potential,
            ml,
            integrator,
            timestep,
            step,
            max_force,
            skin,
            n,
            capacity,
            total_bins,
            n_blocks,
            reduce_blocks: first_block,
            evaluations: 1,
            capacity_grows: 0,
            sums_step: step,
            gpu_time: Duration::ZERO,
            profiler: None,
            pending: Vec::new(),
        };
        sim.write_params();
        sim.write_structures();
        sim.upload(references.as_deref());
        sim.host_step = Some(step);
        sim.write_status(step);
        // First list: with the wrap (which only records the build positions: they are wrapped
        // already) unless the checkpoint gave them.
        sim.build_until_it_fits(references.is_none())
            ?;
        for p in &mut sim.parts {
            p.builds = 1;
        }
        // First forces, energy and virial. In a batch, a structure whose first forces are
        // already unusable is frozen at its start (its error comes with the first advance);
        // alone, or when every structure is, that is the error.
        loop {
            sim.write_status(step);
            let mut encoder = sim.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_bind_group(0, &sim.main_group, &[]);
                sim.encode_forces(&mut pass, true);
                sim.encode_reduction(&mut pass);
            }
            sim.ctx.queue.submit([encoder.finish()]);
            let status = sim.read_status()?;
            sim.read_sums()?;
            if status[ST_BAD_COUNT] == 0 {
                sim.warn_outside_training(&status, step)?;
                return Ok(sim);
            }
            let blow = GpuError::BlowUp(sim.describe_blow_up(status[ST_BAD_ATOM])?);
            let k = sim.structure_of_atom(status[ST_BAD_ATOM] as usize);
            sim.pending.push((k, blow));
            if sim.parts.len() == 1 || sim.pending.len() == sim.parts.len() {
                return Err(sim.pending.swap_remove(0).1);
            }
            sim.read_host_state()?;
            sim.parts[k].last_good = Some(sim.state_checkpoint(k)?);
            sim.parts[k].frozen = true;
            sim.write_structures();
            sim.write_params();
        }
    }

    /// Facts for the end of the run: with a hard MCGM model, the evaluations at which its
    /// clustering regrouped the atoms (as the CPU path reports them).
    pub fn notes(&self) -> Vec<String> {
        self.notes_of(0)
    }

    /// `notes` of structure k.
    pub fn notes_of(&self, k: usize) -> Vec<String> {
        match &self.potential {
            GpuPotential::Ml(m) if m.inference.mcgm.as_ref().is_some_and(|c| c.assign == crate::ml::mcgm::Assign::Hard) => {
                vec![crate::ml::mcgm::McgmConfig::regrouping_note(self.parts[k].regroupings, self.evaluations)]
            }
            _ => Vec::new(),
        }
    }

    pub fn adapter(&self) -> String {
        self.ctx.adapter.to_string()
    }

    /// Atoms of all structures.
    pub fn n_atoms(&self) -> usize {
        self.n
    }

    /// Structures in the batch.
    pub fn structures(&self) -> usize {
        self.parts.len()
    }

    pub fn builds(&self) -> u64 {
        self.builds_of(0)
    }

    /// Neighbour-list builds of structure k.
    pub fn builds_of(&self, k: usize) -> u64 {
        self.parts[k].builds
    }

    /// Whether structure k blew up and stands frozen.
    pub fn is_frozen(&self, k: usize) -> bool {
        self.parts[k].frozen
    }

    /// Neighbour entries per atom the list has room for now.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Builds every structure's list directly (not on the GPU's decision), growing the
    /// capacity until every atom's neighbours fit.
    fn build_until_it_fits(&mut self, mut wrap: bool) -> Result<(), GpuError> {
        loop {
            self.write_status_words(self.step, true);
            let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_bind_group(0, &self.main_group, &[]);
                self.encode_rebuild(&mut pass, wrap, false);
            }
            self.ctx.queue.submit([encoder.finish()]);
            let status = self.read_status()?;
            self.write_status(self.step);
            if status[ST_MAX_NEIGH] <= self.capacity {
                return Ok(());
            }
            self.grow(status[ST_MAX_NEIGH])?;
            // The wrap (if any) is done; the retry bins the same build positions.
            wrap = false;
        }
    }

    fn grow(&mut self, needed: u32) -> Result<(), GpuError> {
        self.capacity = ((needed as f64 * 1.2).ceil() as u32 + 8).next_multiple_of(8);
        self.capacity_grows += 1;
        self.buf.nlist = list_parts(&self.ctx, self.n, self.capacity)?;
        if let Some(ml) = &mut self.ml {
            ml.resize_edges(&self.ctx, self.capacity)?;
        }
        let (main, dispatch) = bind_groups(&self.ctx, &self.kernels, &self.buf);
        self.main_group = main;
        self.dispatch_group = dispatch;
        self.write_params();
        Ok(())
    }

    /// The rebuild: wrap, bin (count, scan, scatter, order), gather, for the structures marked
    /// for it. `indirect`: sized by the step scheduler (zero workgroups when none is due).
    fn encode_rebuild(&self, pass: &mut wgpu::ComputePass<'_>, wrap: bool, indirect: bool) {
        let k = &self.kernels;
        let atoms = dims(self.n as u64);
        let bins = dims(self.total_bins as u64);
        let blocks = [self.n_blocks, 1, 1];
        let single = [1, 1, 1];
        let mut go = |pipeline: &wgpu::ComputePipeline, name: &'static str, slot: u64, size: [u32; 3]| {
            pass.set_pipeline(pipeline);
            if indirect {
                pass.dispatch_workgroups_indirect(&self.buf.dispatch, slot * 12);
            } else {
                pass.dispatch_workgroups(size[0], size[1], size[2]);
            }
            self.mark(pass, name);
        };
        if wrap {
            go(&k.wrap_positions, "list: wrap", 0, atoms);
        }
        go(&k.clear_bins, "list: bin", 1, bins);
        go(&k.count_bins, "list: bin", 0, atoms);
        go(&k.scan_local, "list: bin", 2, blocks);
        go(&k.scan_blocks, "list: bin", 3, single);
        go(&k.scan_add, "list: bin", 2, blocks);
        go(&k.scatter_bins, "list: bin", 0, atoms);
        go(&k.sort_bins, "list: order bins", 1, bins);
        go(&k.build_list, "list: gather", 0, atoms);
    }

    fn encode_forces(&self, pass: &mut wgpu::ComputePass<'_>, observe: bool) {
        if let Some(ml) = &self.ml {
            // The model always writes its energies and virials (they come with the forces).
            ml.encode(pass, &self.main_group, &mut |pass, label| self.mark(pass, label));
            pass.set_bind_group(0, &self.main_group, &[]);
            return;
        }
        let GpuPotential::Pair(pair) = &self.potential else { unreachable!("a model has its own kernels") };
        let (plain, observed) = self.kernels.pair(pair.style).expect("checked by unsupported_reason");
        let atoms = dims(self.n as u64);
        pass.set_pipeline(if observe { observed } else { plain });
        pass.dispatch_workgroups(atoms[0], atoms[1], 1);
        self.mark(pass, "forces");
    }

    /// Sums kinetic tensor, energy and virial per structure (after the step's last velocity
    /// update).
    fn encode_reduction(&self, pass: &mut wgpu::ComputePass<'_>) {
        let k = &self.kernels;
        let blocks = dims(self.reduce_blocks as u64 * WG as u64);
        pass.set_pipeline(&k.reduce_atoms);
        pass.dispatch_workgroups(blocks[0], blocks[1], 1);
        pass.set_pipeline(&k.reduce_blocks);
        pass.dispatch_workgroups(self.parts.len() as u32, 1, 1);
        self.mark(pass, "thermo sums");
    }
    /// One step: integrate to the new positions and check displacements, let the scheduler decide
    /// the rebuild, rebuild (indirect), forces, final half kick.
    fn encode_step(&self, encoder: &mut wgpu::CommandEncoder, observe: bool) {
        let k = &self.kernels;
        let atoms = dims(self.n as u64);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.mark(&mut pass, PASS_START);
            pass.set_bind_group(0, &self.main_group, &[]);
            // Kick and drift, then each atom's displacement check (one kernel).
            pass.set_pipeline(&k.integrate_before);
            pass.dispatch_workgroups(atoms[0], atoms[1], 1);
            self.mark(&mut pass, "integrate");
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.mark(&mut pass, PASS_START);
            pass.set_bind_group(0, &self.main_group, &[]);
            pass.set_bind_group(1, &self.dispatch_group, &[]);
            pass.set_pipeline(&k.schedule_step);
            pass.dispatch_workgroups(1, 1, 1);
            self.mark(&mut pass, "schedule");
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.mark(&mut pass, PASS_START);
            pass.set_bind_group(0, &self.main_group, &[]);
            self.encode_rebuild(&mut pass, true, true);
            self.encode_forces(&mut pass, observe);
            pass.set_pipeline(&k.integrate_after);
            pass.dispatch_workgroups(atoms[0], atoms[1], 1);
            self.mark(&mut pass, "integrate");
            if observe {
                self.encode_reduction(&mut pass);
            }
        }
    }

    fn copy_state(&self, encoder: &mut wgpu::CommandEncoder, to_backup: bool) {
        for (live, copy) in self.buf.state.iter().zip(&self.buf.backup) {
            let (from, to) = if to_backup { (live, copy) } else { (copy, live) };
            encoder.copy_buffer_to_buffer(from, 0, to, 0, live.size());
        }
        if let Some(ml) = &self.ml {
            ml.copy_partitions(encoder, to_backup);
        }
    }

    /// Runs `steps` steps from the current state without checks; `observe` evaluates energy and
    /// virial at the last one.
    fn submit_steps(&mut self, steps: u64, observe: bool, backup_first: bool) -> Result<(), GpuError> {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        if backup_first {
            self.copy_state(&mut encoder, true);
        }
        // Keep command buffers to a moderate size (and the timestamps within one query set).
        let chunk = if self.profiler.is_some() { PROFILE_CHUNK } else { 64 };
        for s in 0..steps {
            self.encode_step(&mut encoder, observe && s + 1 == steps);
            if s % chunk == chunk - 1 && s + 1 < steps {
                let full = std::mem::replace(
                    &mut encoder,
                    self.ctx.device.create_command_encoder(&Default::default()),
                );
                self.ctx.queue.submit([full.finish()]);
                self.collect_profile()?;
            }
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.collect_profile()
    }

    fn restore_backup(&mut self) -> Result<(), GpuError> {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.copy_state(&mut encoder, false);
        self.ctx.queue.submit([encoder.finish()]);
        self.build_until_it_fits(false)
    }

    /// Advances `steps` steps; with `observe` the last one is evaluated for thermo output.
    /// A single structure's blow-up is returned as the error.
    pub fn advance(&mut self, steps: u64, observe: bool) -> Result<(), GpuError> {
        let mut failed = self.advance_batch(steps, observe)?;
        match failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Advances every structure `steps` steps. A structure whose forces blow up is saved
    /// (`last_good_checkpoint_of`) and frozen, the others go on; returned are the structures
    /// that blew up in this call, with their errors. The outer error is the device's.
    pub fn advance_batch(&mut self, steps: u64, observe: bool) -> Result<Vec<(usize, GpuError)>, GpuError> {
        let mut failed = std::mem::take(&mut self.pending);
        if steps == 0 {
            return Ok(failed);
        }
        let t = Instant::now();
        let result = self.advance_checked(steps, observe);
        self.gpu_time += t.elapsed();
        failed.extend(result?);
        Ok(failed)
    }

    fn advance_checked(&mut self, steps: u64, observe: bool) -> Result<Vec<(usize, GpuError)>, GpuError> {
        let mut failed = Vec::new();
        let mut remaining = steps;
        while remaining > 0 {
            self.write_status(self.step);
            self.submit_steps(remaining, observe, true)?;
            let status = self.read_status()?;
            if status[ST_MAX_NEIGH] > self.capacity {
                // Some list was cut short: grow, go back to the block start and replay.
                self.grow(status[ST_MAX_NEIGH])?;
                self.restore_backup()?;
                continue;
            }
            if status[ST_BAD_COUNT] > 0 {
                self.restore_backup()?;
                let first = self.step;
                let (k, error) = self.locate_blow_up(remaining)?;
                remaining -= self.step - first;
                failed.push((k, error));
                if self.parts.len() == 1 || self.parts.iter().all(|p| p.frozen) {
                    return Ok(failed);
                }
                continue;
            }
            self.accept(&status, remaining)?;
            if observe {
                self.read_sums()?;
            }
            remaining = 0;
        }
        Ok(failed)
    }

}


/// Inverse of the matrix whose rows are the cell vectors.
fn invert_rows(h: &[Vec3; 3]) -> [Vec3; 3] {
    let [a, b, c] = *h;
    let cross = crate::cell::cross;
    let det = dot(a, cross(b, c));
    // (H^-1) columns are (b x c, c x a, a x b) / det.
    let cols = [cross(b, c), cross(c, a), cross(a, b)];
    let mut inv = [[0.0; 3]; 3];
    for (k, col) in cols.iter().enumerate() {
        for m in 0..3 {
            inv[m][k] = col[m] / det;
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::buffers::PARAMS_BYTES;
    use super::*;

    #[test]
    fn params_layout_matches_the_shader_struct() {
        // three args, 16 scalars, any_frozen, types, lj.
        let words = 12 + 16 + 4 + 4 * MAX_TYPES + 4 * 128;
        assert_eq!(PARAMS_BYTES, 4 * words as u64);
    }

    #[test]
    fn dims_split_large_dispatches_into_rows() {
        assert_eq!(dims(1), [1, 1, 1]);
        assert_eq!(dims(64 * 65535), [65535, 1, 1]);
        assert_eq!(dims(64 * 65535 + 1), [65535, 2, 1]);
    }

    #[test]
    fn inverse_of_a_triclinic_cell() {
        let h = [[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, -0.7, 6.0]];
        let inv = invert_rows(&h);
        for (r, row) in h.iter().enumerate() {
            for c in 0..3 {
                let x: f64 = (0..3).map(|m| row[m] * inv[m][c]).sum();
                assert!((x - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
}
