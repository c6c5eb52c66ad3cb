//! The whole MD step resident on the GPU: integrator half steps, displacement check, neighbour
//! list rebuild (decided on the GPU, dispatched indirectly), Lennard-Jones forces and the thermo
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

use super::context::{GpuContext, GpuError};
use super::kernels::Kernels;
use super::ml::MlForces;
use crate::potential::mcgm::GpuModel;
use crate::cell::{Vec3, dot};
use crate::integrate::Integrator;
use crate::io::checkpoint::Checkpoint;
use crate::potential::pair::PairSpec;
use crate::simulation::{BlowUp, SimulationError};
use crate::system::System;
use crate::thermo::ThermoSample;
use crate::units::{BOLTZ, FTM2V, MVV2E};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Species the GPU kernels handle (the LJ table lives in the parameter block).
pub const MAX_TYPES: usize = 8;
const WG: u32 = 64;
/// Workgroups along x of a 2-D dispatch; beyond that rows are added along y.
const ROW_GROUPS: u32 = 65535;
const SCAN_BLOCK: u32 = 256;
/// The scan handles up to 65535 blocks of 256 bins.
const MAX_BINS: u64 = 65535 * 256;
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
/// Atoms per partial sum of the ML poolings (CHUNK in shaders/ml.wgsl).
const ML_CHUNK: usize = 256;
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

/// Workgroup counts for `threads` threads of a 64-wide kernel, as (x, y, 1).
pub(super) fn dims(threads: u64) -> [u32; 3] {
    let groups = threads.div_ceil(WG as u64).max(1) as u32;
    if groups <= ROW_GROUPS {
        [groups, 1, 1]
    } else {
        [ROW_GROUPS, groups.div_ceil(ROW_GROUPS), 1]
    }
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
    pending: Vec<(usize, SimulationError)>,
}

/// Per-kernel GPU time from timestamp queries written between dispatches.
struct Profiler {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    labels: RefCell<Vec<&'static str>>,
    /// kernel → (seconds, calls)
    totals: BTreeMap<&'static str, (f64, u64)>,
    tick_s: f64,
}

const PROFILE_QUERIES: u32 = 4096;
/// Steps per profiled submission (each writes about 20 timestamps).
const PROFILE_CHUNK: u64 = 128;
const PASS_START: &str = "(pass start)";

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
    ) -> Result<GpuSimulation, SimulationError> {
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
    ) -> Result<GpuSimulation, SimulationError> {
        let unsupported = |reason: String| Err(gpu_error(GpuError::Unsupported(reason)));
        let reach = potential.cutoff() + skin;
        let Some((first_system, integrator)) = structures.first().cloned() else {
            return unsupported("a batch needs at least one structure".into());
        };
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
            first_chunk += n.div_ceil(ML_CHUNK) as u32;
        }
        let n = first;
        let total_bins = first_bin;
        if n >= MAX_ATOMS || total_bins as u64 > MAX_BINS {
            return unsupported(format!("a batch of {} structures with {n} atoms and {total_bins} bins in all is more than the GPU list handles ({} atoms, {MAX_BINS} bins)", parts.len(), MAX_ATOMS - 1));
        }
        let n_blocks = total_bins.div_ceil(SCAN_BLOCK);
        let kernels = Kernels::new(&ctx, &integrator.splitting()).map_err(gpu_error)?;

        // Start with room for 1.3x the mean neighbour count of the densest; overflow grows it.
        let density = parts.iter().map(|p| p.system.len() as f64 / p.system.cell.volume()).fold(0.0, f64::max);
        let mean = density * 4.0 / 3.0 * std::f64::consts::PI * reach.powi(3);
        let capacity = ((1.3 * mean).ceil() as u32 + 16).next_multiple_of(8);

        let buf = allocate(&ctx, n, total_bins, n_blocks, first_block, parts.len(), capacity).map_err(gpu_error)?;
        let (main_group, dispatch_group) = bind_groups(&ctx, &kernels, &buf);
        let ml = match &potential {
            GpuPotential::Ml(m) => {
                let types: Vec<u32> = parts.iter().flat_map(|p| p.system.types.iter().copied()).collect();
                let sizes: Vec<usize> = parts.iter().map(|p| p.system.len()).collect();
                Some(MlForces::new(&ctx, &kernels, m, &types, &sizes).map_err(gpu_error)?)
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
            .map_err(gpu_error)?;
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
            let status = sim.read_status().map_err(gpu_error)?;
            sim.read_sums().map_err(gpu_error)?;
            if status[ST_BAD_COUNT] == 0 {
                sim.warn_outside_training(&status, step).map_err(gpu_error)?;
                return Ok(sim);
            }
            let blow = SimulationError::BlowUp(sim.describe_blow_up(status[ST_BAD_ATOM]).map_err(gpu_error)?);
            let k = sim.structure_of_atom(status[ST_BAD_ATOM] as usize);
            sim.pending.push((k, blow));
            if sim.parts.len() == 1 || sim.pending.len() == sim.parts.len() {
                return Err(sim.pending.swap_remove(0).1);
            }
            sim.read_host_state().map_err(gpu_error)?;
            sim.parts[k].last_good = Some(sim.state_checkpoint(k).map_err(gpu_error)?);
            sim.parts[k].frozen = true;
            sim.write_structures();
            sim.write_params();
        }
    }

    /// Times every kernel with timestamp queries from now on (if the adapter has them).
    /// Returns whether profiling is on.
    pub fn enable_profiling(&mut self) -> bool {
        if !self.ctx.timestamps {
            return false;
        }
        let device = &self.ctx.device;
        self.profiler = Some(Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: PROFILE_QUERIES,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel timestamps"),
                size: 8 * PROFILE_QUERIES as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            labels: RefCell::new(Vec::new()),
            totals: BTreeMap::new(),
            tick_s: self.ctx.queue.get_timestamp_period() as f64 * 1e-9,
        });
        true
    }

    /// GPU seconds per kernel so far (empty unless profiling).
    pub fn kernel_times(&self) -> BTreeMap<String, f64> {
        self.profiler
            .iter()
            .flat_map(|p| p.totals.iter().map(|(k, v)| (k.to_string(), v.0)))
            .collect()
    }

    /// Records a timestamp after the kernel just dispatched (profiling only).
    fn mark(&self, pass: &mut wgpu::ComputePass<'_>, label: &'static str) {
        if let Some(p) = &self.profiler {
            let mut labels = p.labels.borrow_mut();
            if (labels.len() as u32) < PROFILE_QUERIES {
                pass.write_timestamp(&p.queries, labels.len() as u32);
                labels.push(label);
            }
        }
    }

    /// Reads the timestamps of the last submission and adds them to the totals.
    fn collect_profile(&mut self) -> Result<(), GpuError> {
        let Some(p) = &self.profiler else { return Ok(()) };
        let count = p.labels.borrow().len() as u32;
        if count == 0 {
            return Ok(());
        }
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        encoder.resolve_query_set(&p.queries, 0..count, &p.resolved, 0);
        self.ctx.queue.submit([encoder.finish()]);
        let bytes = self.ctx.read(&p.resolved, 0, 8 * count as u64)?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        let p = self.profiler.as_mut().unwrap();
        let labels = std::mem::take(&mut *p.labels.borrow_mut());
        for k in 1..labels.len() {
            if labels[k] == PASS_START {
                continue;
            }
            let dt = ticks[k].saturating_sub(ticks[k - 1]) as f64 * p.tick_s;
            let entry = p.totals.entry(labels[k]).or_insert((0.0, 0));
            entry.0 += dt;
            entry.1 += 1;
        }
        Ok(())
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

    fn write_params(&self) {
        let s = &self.parts[0].system;
        let reach = self.potential.cutoff() + self.skin;
        let mut p = ParamWriter::default();
        let atoms = dims(self.n as u64);
        let bins = dims(self.total_bins as u64);
        p.u4([atoms[0], atoms[1], 1, 0]);
        p.u4([bins[0], bins[1], 1, 0]);
        p.u4([self.n_blocks, 1, 1, 0]);
        p.u(self.n as u32);
        p.u(self.capacity);
        p.u(s.species.len() as u32);
        p.u(self.n_blocks);
        // The constants of the integrator's friction piece, if it has one.
        let friction = self.integrator.splitting().before.into_iter().find_map(|p| match p {
            crate::integrate::pieces::Piece::Friction(o) => Some(o),
            _ => None,
        });
        let (c1, c2) = friction.map_or((1.0, 0.0), |o| o.constants(self.timestep));
        p.f(self.timestep);
        p.f(reach * reach);
        p.f(0.25 * self.skin * self.skin);
        p.f(self.max_force * self.max_force);
        p.f(c1);
        p.f(c2);
        p.u(self.parts.len() as u32);
        p.u(self.total_bins);
        p.u(ROW_GROUPS * WG);
        p.u(self.reduce_blocks);
        p.f(1.0);
        p.u(k_per_part(&self.ctx, self.n, self.capacity));
        p.u4([self.parts.iter().any(|p| p.frozen) as u32, 0, 0, 0]);
        let temperature = friction.map_or(0.0, |o| o.temperature);
        for t in 0..MAX_TYPES {
            match s.species.get(t) {
                Some(sp) => p.vec3([
                    FTM2V / sp.mass,
                    (BOLTZ * temperature / (sp.mass * MVV2E)).sqrt(),
                    sp.mass * MVV2E,
                ]),
                None => p.vec3([0.0; 3]),
            }
        }
        let rows = match &self.potential {
            GpuPotential::Pair(pair) => pair.gpu_table(MAX_TYPES),
            GpuPotential::Ml(_) => vec![[0.0; 4]; 2 * MAX_TYPES * MAX_TYPES],
        };
        for row in rows {
            for x in row {
                p.f(x);
            }
        }
        debug_assert_eq!(4 * p.0.len() as u64, PARAMS_BYTES);
        self.ctx.queue.write_buffer(&self.buf.params, 0, bytemuck::cast_slice(&p.0));
    }

    /// The per-structure table (shaders/common.wgsl `Structure`).
    fn write_structures(&self) {
        let mut p = ParamWriter::default();
        for part in &self.parts {
            let cell = part.system.cell.vectors();
            // Columns of the inverse of the row matrix H: s = x H^-1.
            let inv = invert_rows(cell);
            for row in cell {
                p.vec3(*row);
            }
            for k in 0..3 {
                p.vec3([inv[0][k], inv[1][k], inv[2][k]]);
            }
            let [x, y, z] = part.nbins;
            p.u4([x, y, z, part.first_bin]);
            p.u4([part.first as u32, part.system.len() as u32, part.first_block, part.frozen as u32]);
            let seed = part.integrator.seed().unwrap_or(0);
            p.u4([seed as u32, (seed >> 32) as u32, part.system.len().div_ceil(WG as usize) as u32, part.first_chunk]);
        }
        debug_assert_eq!(4 * p.0.len() as u64, STRUCTURE_BYTES * self.parts.len() as u64);
        self.ctx.queue.write_buffer(&self.buf.structures, 0, bytemuck::cast_slice(&p.0));
    }

    fn upload(&self, references: Option<&[Vec<Vec3>]>) {
        let mut hi = Vec::with_capacity(self.n);
        let mut lo = Vec::with_capacity(self.n);
        let mut vel = Vec::with_capacity(self.n);
        let mut image = Vec::with_capacity(self.n);
        let mut refs = Vec::with_capacity(self.n);
        for (k, part) in self.parts.iter().enumerate() {
            let s = &part.system;
            for (x, &t) in s.positions.iter().zip(&s.types) {
                let h = x.map(|v| v as f32);
                hi.push([h[0], h[1], h[2], f32::from_bits(t)]);
                lo.push([
                    (x[0] - h[0] as f64) as f32,
                    (x[1] - h[1] as f64) as f32,
                    (x[2] - h[2] as f64) as f32,
                    0.0,
                ]);
            }
            vel.extend(s.velocities.iter().map(|v| [v[0] as f32, v[1] as f32, v[2] as f32, 0.0]));
            // The image's w is the atom's structure.
            image.extend(s.images.iter().map(|m| [m[0], m[1], m[2], k as i32]));
            if let Some(reference) = references.map(|r| &r[k]) {
                refs.extend(reference.iter().zip(&s.types).map(|(x, &t)| [x[0] as f32, x[1] as f32, x[2] as f32, f32::from_bits(t)]));
            }
        }
        let q = &self.ctx.queue;
        q.write_buffer(&self.buf.state[POS], 0, bytemuck::cast_slice(&hi));
        q.write_buffer(&self.buf.state[POS_LO], 0, bytemuck::cast_slice(&lo));
        q.write_buffer(&self.buf.state[VEL], 0, bytemuck::cast_slice(&vel));
        q.write_buffer(&self.buf.state[IMAGE], 0, bytemuck::cast_slice(&image));
        if references.is_some() {
            q.write_buffer(&self.buf.state[REF], 0, bytemuck::cast_slice(&refs));
        }
    }

    /// Resets the per-block status words; the step counter starts at `step`. With `rebuild`,
    /// every structure's list is marked for a build (the host-driven builds).
    fn write_status_words(&self, step: u64, rebuild: bool) {
        let mut words = vec![0u32; STATUS_WORDS + SW * self.parts.len()];
        words[ST_BAD_ATOM] = u32::MAX;
        words[ST_STEP_LO] = step as u32;
        words[ST_STEP_HI] = (step >> 32) as u32;
        for (k, part) in self.parts.iter().enumerate() {
            let w = &mut words[STATUS_WORDS + SW * k..STATUS_WORDS + SW * (k + 1)];
            w[SW_REBUILD] = rebuild as u32;
            w[SW_BUILDS] = part.builds as u32;
            w[SW_CLOSE_ATOM] = u32::MAX;
        }
        self.ctx
            .queue
            .write_buffer(&self.buf.status, 0, bytemuck::cast_slice(&words));
    }

    fn write_status(&self, step: u64) {
        self.write_status_words(step, false);
    }

    fn read_status(&self) -> Result<Vec<u32>, GpuError> {
        let words = STATUS_WORDS + SW * self.parts.len();
        let bytes = self.ctx.read(&self.buf.status, 0, 4 * words as u64)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
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
    /// One step: integrate to the new positions, check displacements, let the scheduler decide
    /// the rebuild, rebuild (indirect), forces, final half kick.
    fn encode_step(&self, encoder: &mut wgpu::CommandEncoder, observe: bool) {
        let k = &self.kernels;
        let atoms = dims(self.n as u64);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.mark(&mut pass, PASS_START);
            pass.set_bind_group(0, &self.main_group, &[]);
            pass.set_pipeline(&k.integrate_before);
            pass.dispatch_workgroups(atoms[0], atoms[1], 1);
            self.mark(&mut pass, "integrate");
            pass.set_pipeline(&k.check_displacement);
            pass.dispatch_workgroups(atoms[0], atoms[1], 1);
            self.mark(&mut pass, "list: check");
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
    pub fn advance(&mut self, steps: u64, observe: bool) -> Result<(), SimulationError> {
        let mut failed = self.advance_batch(steps, observe)?;
        match failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Advances every structure `steps` steps. A structure whose forces blow up is saved
    /// (`last_good_checkpoint_of`) and frozen, the others go on; returned are the structures
    /// that blew up in this call, with their errors. The outer error is the device's.
    pub fn advance_batch(&mut self, steps: u64, observe: bool) -> Result<Vec<(usize, SimulationError)>, SimulationError> {
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

    fn advance_checked(&mut self, steps: u64, observe: bool) -> Result<Vec<(usize, SimulationError)>, SimulationError> {
        let mut failed = Vec::new();
        let mut remaining = steps;
        while remaining > 0 {
            self.write_status(self.step);
            self.submit_steps(remaining, observe, true).map_err(gpu_error)?;
            let status = self.read_status().map_err(gpu_error)?;
            if status[ST_MAX_NEIGH] > self.capacity {
                // Some list was cut short: grow, go back to the block start and replay.
                self.grow(status[ST_MAX_NEIGH]).map_err(gpu_error)?;
                self.restore_backup().map_err(gpu_error)?;
                continue;
            }
            if status[ST_BAD_COUNT] > 0 {
                self.restore_backup().map_err(gpu_error)?;
                let first = self.step;
                let (k, error) = self.locate_blow_up(remaining)?;
                remaining -= self.step - first;
                failed.push((k, error));
                if self.parts.len() == 1 || self.parts.iter().all(|p| p.frozen) {
                    return Ok(failed);
                }
                continue;
            }
            self.accept(&status, remaining).map_err(gpu_error)?;
            if observe {
                self.read_sums().map_err(gpu_error)?;
            }
            remaining = 0;
        }
        Ok(failed)
    }

    /// Takes the counters of `steps` steps that ran well from the status words.
    fn accept(&mut self, status: &[u32], steps: u64) -> Result<(), GpuError> {
        let first = self.step;
        self.evaluations += steps;
        self.step += steps;
        for (k, part) in self.parts.iter_mut().enumerate() {
            let w = &status[STATUS_WORDS + SW * k..STATUS_WORDS + SW * (k + 1)];
            part.builds = w[SW_BUILDS] as u64;
            part.regroupings += w[SW_REGROUPINGS] as u64;
        }
        self.warn_outside_training(status, first)
    }

    /// The GPU flagged atoms closer to a neighbour than the model's training data had, at some
    /// step after `since` (the lowest such id per structure): names their pairs that are that
    /// close now (or says when).
    fn warn_outside_training(&mut self, status: &[u32], since: u64) -> Result<(), GpuError> {
        let GpuPotential::Ml(model) = &self.potential else { return Ok(()) };
        let species_of_type = model.species_of_type.clone();
        let flagged: Vec<(usize, u32)> = (0..self.parts.len())
            .map(|k| (k, status[STATUS_WORDS + SW * k + SW_CLOSE_ATOM]))
            .filter(|&(k, atom)| atom != u32::MAX && self.parts[k].range.as_ref().is_some_and(|r| r.warning_open()))
            .collect();
        if flagged.is_empty() {
            return Ok(());
        }
        self.read_host_state()?;
        let step = self.step;
        let batch = self.parts.len() > 1;
        for (k, atom) in flagged {
            let part = &mut self.parts[k];
            let system = &part.system;
            let i = atom as usize - part.first;
            let species = |a: usize| species_of_type[system.types[a] as usize];
            let Some(range) = part.range.as_mut() else { continue };
            let mut close = Vec::new();
            for j in (0..system.len()).filter(|&j| j != i) {
                let d = nearest_image_distance(&system.cell, system.positions[i], system.positions[j]);
                close.extend(range.describe(i.min(j), i.max(j), species(i), species(j), d));
            }
            if close.is_empty() {
                close.push(format!(
                    "atom {} ({}) came closer to a neighbour than the training data had between steps {since} and {step}",
                    i + 1,
                    system.species_name(i)
                ));
            }
            if batch {
                close[0] = format!("structure {k}: {}", close[0]);
            }
            range.warn(close);
        }
        Ok(())
    }

    /// Replays the block one step at a time from its start until a step's forces are bad;
    /// the state before it is the last good state of the structure that blew up, which is
    /// then frozen. The good steps before it count as done. Returns the structure and its error.
    fn locate_blow_up(&mut self, steps: u64) -> Result<(usize, SimulationError), SimulationError> {
        for _ in 0..steps {
            self.write_status(self.step);
            self.submit_steps(1, false, true).map_err(gpu_error)?;
            let status = self.read_status().map_err(gpu_error)?;
            if status[ST_BAD_COUNT] == 0 {
                self.accept(&status, 1).map_err(gpu_error)?;
                continue;
            }
            let atom = status[ST_BAD_ATOM];
            let mut blow = self.describe_blow_up(atom).map_err(gpu_error)?;
            blow.step = self.step + 1;
            let k = self.structure_of_atom(atom as usize);
            self.restore_backup().map_err(gpu_error)?;
            self.read_host_state().map_err(gpu_error)?;
            let chk = self.state_checkpoint(k).map_err(gpu_error)?;
            self.parts[k].last_good = Some(chk);
            self.parts[k].frozen = true;
            self.write_structures();
            self.write_params();
            return Ok((k, SimulationError::BlowUp(blow)));
        }
        // Not reproduced step by step: should not happen (the kernels are deterministic).
        Err(gpu_error(GpuError::Other {
            what: "replaying a block that produced bad forces".into(),
            message: "the replay did not reproduce them".into(),
        }))
    }

    fn structure_of_atom(&self, atom: usize) -> usize {
        self.parts.partition_point(|p| p.first <= atom) - 1
    }

    fn describe_blow_up(&self, atom: u32) -> Result<BlowUp, GpuError> {
        let k = self.structure_of_atom(atom as usize);
        let part = &self.parts[k];
        let bytes = self.ctx.read(&self.buf.state[FORCE], 16 * atom as u64, 16)?;
        let f: &[f32] = bytemuck::cast_slice(&bytes);
        let mag = ((f[0] as f64).powi(2) + (f[1] as f64).powi(2) + (f[2] as f64).powi(2)).sqrt();
        // The atom's closest partner (nearest image), for the message.
        let pos = self.read_vec4::<f32>(POS)?;
        let cell = &part.system.cell;
        let at = |a: usize| [0, 1, 2].map(|c| pos[part.first + a][c] as f64);
        let i = atom as usize - part.first;
        let closest = (0..part.system.len())
            .filter(|&j| j != i)
            .map(|j| (j, nearest_image_distance(cell, at(i), at(j))))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(j, r)| (i.min(j) + 1, i.max(j) + 1, r));
        Ok(BlowUp {
            step: self.step,
            atoms: vec![(i + 1, part.system.species_name(i).to_string(), mag)],
            limit: self.max_force,
            closest,
        })
    }

    fn read_sums(&mut self) -> Result<(), GpuError> {
        let bytes = self.ctx.read(&self.buf.partial, 0, 4 * 32 * self.parts.len() as u64)?;
        let w: &[u32] = bytemuck::cast_slice(&bytes);
        for (k, part) in self.parts.iter_mut().enumerate() {
            if part.frozen {
                continue;
            }
            for q in 0..13 {
                // 32.32 fixed point, two's complement.
                let at = 32 * k + 2 * q;
                let fixed = ((w[at + 1] as u64) << 32 | w[at] as u64) as i64;
                part.sums[q] = fixed as f64 / 4294967296.0;
            }
        }
        self.sums_step = self.step;
        Ok(())
    }

    fn read_vec4<T: bytemuck::Pod>(&self, buffer: usize) -> Result<Vec<[T; 4]>, GpuError> {
        let b = &self.buf.state[buffer];
        let bytes = self.ctx.read(b, 0, 16 * self.n as u64)?;
        Ok(bytemuck::cast_slice::<u8, [T; 4]>(&bytes).to_vec())
    }

    /// Reads positions, velocities and images into the host copies of the structures.
    fn read_host_state(&mut self) -> Result<(), GpuError> {
        let hi = self.read_vec4::<f32>(POS)?;
        let lo = self.read_vec4::<f32>(POS_LO)?;
        let vel = self.read_vec4::<f32>(VEL)?;
        let image = self.read_vec4::<i32>(IMAGE)?;
        for part in &mut self.parts {
            let s = &mut part.system;
            for a in 0..s.len() {
                let i = part.first + a;
                s.positions[a] = [0, 1, 2].map(|k| hi[i][k] as f64 + lo[i][k] as f64);
                s.velocities[a] = [0, 1, 2].map(|k| vel[i][k] as f64);
                s.images[a] = [image[i][0], image[i][1], image[i][2]];
            }
        }
        self.host_step = Some(self.step);
        Ok(())
    }

    /// The system as it is now on the GPU (read back if it changed since the last call).
    pub fn system(&mut self) -> Result<&System, GpuError> {
        self.system_of(0)
    }

    /// Structure k as it is now on the GPU.
    pub fn system_of(&mut self, k: usize) -> Result<&System, GpuError> {
        if self.host_step != Some(self.step) {
            self.read_host_state()?;
        }
        Ok(&self.parts[k].system)
    }

    /// Forces of the current step, eV/Å (all structures, atom after atom).
    pub fn forces(&self) -> Result<Vec<Vec3>, GpuError> {
        Ok(self
            .read_vec4::<f32>(FORCE)?
            .iter()
            .map(|f| [f[0] as f64, f[1] as f64, f[2] as f64])
            .collect())
    }

    /// Potential energy (eV, with the tail correction if asked for) and virial tensor of the
    /// last observed step.
    pub fn energy_virial(&self) -> (f64, [[f64; 3]; 3]) {
        self.energy_virial_of(0)
    }

    /// `energy_virial` of structure k.
    pub fn energy_virial_of(&self, k: usize) -> (f64, [[f64; 3]; 3]) {
        let part = &self.parts[k];
        let s = &part.sums;
        let mut energy = s[6] + part.reference_energy;
        let mut w = [[s[7], s[10], s[11]], [s[10], s[8], s[12]], [s[11], s[12], s[9]]];
        if let GpuPotential::Pair(pair) = &self.potential
            && pair.tail
        {
            let (e, wt) = pair.tail_correction(&part.system.species_counts(), part.system.cell.volume());
            energy += e;
            for (k, row) in w.iter_mut().enumerate() {
                row[k] += wt / 3.0;
            }
        }
        (energy, w)
    }

    /// Thermo quantities of the last observed step.
    pub fn thermo(&self) -> ThermoSample {
        self.thermo_of(0)
    }

    /// `thermo` of structure k.
    pub fn thermo_of(&self, k: usize) -> ThermoSample {
        let part = &self.parts[k];
        let s = &part.sums;
        let kinetic = [[s[0], s[3], s[4]], [s[3], s[1], s[5]], [s[4], s[5], s[2]]];
        let (energy, virial) = self.energy_virial_of(k);
        ThermoSample::from_sums(
            self.sums_step,
            self.sums_step as f64 * self.timestep,
            kinetic,
            part.system.degrees_of_freedom(),
            energy,
            virial,
            part.system.cell.volume(),
        )
    }

    /// The pairs of the list in force as (i, j, image of j), for tests (ids across the batch).
    pub fn neighbor_pairs(&self) -> Result<Vec<(usize, usize, [i32; 3])>, GpuError> {
        let sorted = self.ctx.read(&self.buf.sorted, 0, 4 * self.n as u64)?;
        let sorted: &[u32] = bytemuck::cast_slice(&sorted);
        let counts = self.ctx.read(&self.buf.ncount, 0, 4 * self.n as u64)?;
        let counts: &[u32] = bytemuck::cast_slice(&counts);
        let per_part = k_per_part(&self.ctx, self.n, self.capacity) as usize;
        let mut parts = Vec::new();
        for part in &self.buf.nlist {
            parts.push(self.ctx.read(part, 0, part.size())?);
        }
        let n = self.n;
        let mut out = Vec::new();
        for t in 0..n {
            let i = sorted[t] as usize;
            for k in 0..counts[t] as usize {
                let (p, kk) = (k / per_part, k % per_part);
                let part: &[u32] = bytemuck::cast_slice(&parts[p]);
                let e = part[kk * n + t];
                let code = (e >> 27) as i32;
                let j = (e & 0x07ff_ffff) as usize;
                out.push((i, j, [code % 3 - 1, (code / 3) % 3 - 1, code / 9 - 1]));
            }
        }
        Ok(out)
    }

    /// Structure k's checkpoint from the host copy (read back before) and the list's build
    /// positions.
    fn state_checkpoint(&self, k: usize) -> Result<Checkpoint, GpuError> {
        let part = &self.parts[k];
        let reference = self.read_vec4::<f32>(REF)?[part.first..part.first + part.system.len()]
            .iter()
            .map(|r| [r[0] as f64, r[1] as f64, r[2] as f64])
            .collect();
        Ok(Checkpoint {
            step: self.host_step.unwrap_or(self.step),
            system: part.system.clone(),
            reference: Some(reference),
            threads: 0,
            integrator: part.integrator.state(),
        })
    }

    /// The current state with the list's build positions: a restart is bit-identical.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, GpuError> {
        self.checkpoint_of(0)
    }

    /// `checkpoint` of structure k (a frozen one: its last good state).
    pub fn checkpoint_of(&mut self, k: usize) -> Result<Checkpoint, GpuError> {
        if let Some(chk) = &self.parts[k].last_good {
            return Ok(chk.clone());
        }
        self.system_of(k)?;
        self.state_checkpoint(k)
    }

    /// After a blow-up: the state at the start of the step that blew up.
    pub fn last_good_checkpoint(&mut self) -> Result<Checkpoint, GpuError> {
        self.checkpoint_of(0)
    }

    /// `last_good_checkpoint` of structure k.
    pub fn last_good_checkpoint_of(&mut self, k: usize) -> Result<Checkpoint, GpuError> {
        self.checkpoint_of(k)
    }
}

/// |b - a| at the nearest image (fractional difference rounded), for messages.
fn nearest_image_distance(cell: &crate::cell::Cell, a: Vec3, b: Vec3) -> f64 {
    let d = [0, 1, 2].map(|k| b[k] - a[k]);
    let s = cell.fractional(d).map(|x| x - x.round());
    let d = cell.cartesian(s);
    dot(d, d).sqrt()
}

fn gpu_error(e: GpuError) -> SimulationError {
    SimulationError::Gpu(e)
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

fn storage(ctx: &GpuContext, label: &str, size: u64, indirect: bool) -> wgpu::Buffer {
    let mut usage = wgpu::BufferUsages::STORAGE
        | wgpu::BufferUsages::COPY_SRC
        | wgpu::BufferUsages::COPY_DST;
    if indirect {
        usage |= wgpu::BufferUsages::INDIRECT;
    }
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16).next_multiple_of(16),
        usage,
        mapped_at_creation: false,
    })
}

fn allocate(
    ctx: &GpuContext,
    n: usize,
    total_bins: u32,
    n_blocks: u32,
    reduce_blocks: u32,
    structures: usize,
    capacity: u32,
) -> Result<Buffers, GpuError> {
    let n64 = n as u64;
    let s64 = structures as u64;
    let nlist = list_parts(ctx, n, capacity)?;
    ctx.allocating("for the simulation buffers", || {
        let state = |name: &str| storage(ctx, name, 16 * n64, false);
        Buffers {
            params: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: PARAMS_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            state: ["pos", "pos_lo", "vel", "force", "image", "ref_pos"].map(state),
            backup: ["pos'", "pos_lo'", "vel'", "force'", "image'", "ref_pos'"].map(state),
            atom_bin: storage(ctx, "atom_bin", 8 * n64, false),
            bins: storage(
                ctx,
                "bins",
                4 * (2 * total_bins as u64 + 1 + n_blocks as u64),
                false,
            ),
            sorted: storage(ctx, "sorted", 4 * n64, false),
            slot_pos: storage(ctx, "slot_pos", 16 * n64, false),
            ncount: storage(ctx, "ncount", 4 * n64, false),
            nlist,
            obs: storage(ctx, "obs", 32 * n64, false),
            partial: storage(ctx, "partial", 4 * 32 * (s64 + reduce_blocks as u64), false),
            status: storage(ctx, "status", 4 * (STATUS_WORDS + SW * structures) as u64, false),
            dispatch: storage(ctx, "dispatch", 4 * 12, true),
            structures: storage(ctx, "structures", STRUCTURE_BYTES * s64, false),
        }
    })
}

/// Entries per atom in each part of the list: as many as one binding holds.
fn k_per_part(ctx: &GpuContext, n: usize, capacity: u32) -> u32 {
    let limits = ctx.device.limits();
    let largest = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    ((largest / (4 * n as u64)).min(capacity as u64) as u32).max(1)
}

/// The neighbour entries for `capacity` per atom, split over `LIST_PARTS` buffers (unused
/// parts are 16-byte placeholders).
fn list_parts(ctx: &GpuContext, n: usize, capacity: u32) -> Result<[wgpu::Buffer; LIST_PARTS], GpuError> {
    let per_part = k_per_part(ctx, n, capacity);
    let parts_needed = capacity.div_ceil(per_part) as usize;
    if parts_needed > LIST_PARTS {
        return Err(GpuError::OutOfMemory {
            what: "for the neighbour list".into(),
            message: format!(
                "{capacity} neighbours per atom for {n} atoms need {parts_needed} buffers of {} MiB, more than the {LIST_PARTS} mdrun binds",
                (4 * n as u64 * per_part as u64) >> 20
            ),
        });
    }
    ctx.allocating("for the neighbour list", || {
        [0, 1, 2, 3].map(|p| {
            let entries = (capacity as u64).saturating_sub(p as u64 * per_part as u64).min(per_part as u64);
            storage(ctx, "nlist", 4 * n as u64 * entries, false)
        })
    })
}

fn bind_groups(ctx: &GpuContext, kernels: &Kernels, buf: &Buffers) -> (wgpu::BindGroup, wgpu::BindGroup) {
    let storage_buffers: [&wgpu::Buffer; 19] = [
        &buf.state[POS],
        &buf.state[POS_LO],
        &buf.state[VEL],
        &buf.state[FORCE],
        &buf.state[IMAGE],
        &buf.state[REF],
        &buf.atom_bin,
        &buf.bins,
        &buf.sorted,
        &buf.ncount,
        &buf.obs,
        &buf.partial,
        &buf.status,
        &buf.nlist[0],
        &buf.nlist[1],
        &buf.nlist[2],
        &buf.nlist[3],
        &buf.slot_pos,
        &buf.structures,
    ];
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: buf.params.as_entire_binding(),
    }];
    for (k, b) in storage_buffers.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: k as u32 + 1,
            resource: b.as_entire_binding(),
        });
    }
    let main = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("mdrun main"),
        layout: &kernels.main_layout,
        entries: &entries,
    });
    let dispatch = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("mdrun dispatch"),
        layout: &kernels.dispatch_layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buf.dispatch.as_entire_binding(),
        }],
    });
    (main, dispatch)
}

/// Size of `Params` in shaders/common.wgsl.
const PARAMS_BYTES: u64 = 4 * (12 + 20 + 4 * MAX_TYPES as u64 + 4 * 128);

/// Lays out the `Params` uniform word by word, in the order of shaders/common.wgsl.
#[derive(Default)]
struct ParamWriter(Vec<u32>);

impl ParamWriter {
    fn f(&mut self, x: f64) {
        self.0.push((x as f32).to_bits());
    }
    fn u(&mut self, x: u32) {
        self.0.push(x);
    }
    fn vec3(&mut self, v: Vec3) {
        for x in v {
            self.f(x);
        }
        self.f(0.0);
    }
    fn u4(&mut self, v: [u32; 4]) {
        self.0.extend_from_slice(&v);
    }
}

#[cfg(test)]
mod tests {
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
