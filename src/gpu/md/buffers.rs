//! The GPU simulation's buffers, bind groups and the parameter block (shaders/common.wgsl
//! `Params`, `Structure`): allocation, upload, and the status words the host writes.

use super::*;

impl GpuSimulation {
    pub(super) fn write_params(&self) {
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
    pub(super) fn write_structures(&self) {
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

    pub(super) fn upload(&self, references: Option<&[Vec<Vec3>]>) {
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
    pub(super) fn write_status_words(&self, step: u64, rebuild: bool) {
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

    pub(super) fn write_status(&self, step: u64) {
        self.write_status_words(step, false);
    }

    pub(super) fn read_status(&self) -> Result<Vec<u32>, GpuError> {
        let words = STATUS_WORDS + SW * self.parts.len();
        let bytes = self.ctx.read(&self.buf.status, 0, 4 * words as u64)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}

pub(super) fn storage(ctx: &GpuContext, label: &str, size: u64, indirect: bool) -> wgpu::Buffer {
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

pub(super) fn allocate(
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
    // Every buffer below is bound whole: the largest must fit one binding (at 67M atoms the
    // per-atom observables pass 2 GiB).
    let largest = [("per-atom observables", 32 * n64), ("positions", 16 * n64), ("bins", 4 * (2 * total_bins as u64 + 1 + n_blocks as u64))];
    if let Some((what, bytes)) = largest.into_iter().find(|&(_, bytes)| bytes > ctx.adapter.max_binding) {
        return Err(GpuError::Unsupported(ctx.binding_too_large(what, bytes, n)));
    }
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
pub(super) fn k_per_part(ctx: &GpuContext, n: usize, capacity: u32) -> u32 {
    let limits = ctx.device.limits();
    let largest = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    ((largest / (4 * n as u64)).min(capacity as u64) as u32).max(1)
}

/// The neighbour entries for `capacity` per atom, split over `LIST_PARTS` buffers (unused
/// parts are 16-byte placeholders).
pub(super) fn list_parts(ctx: &GpuContext, n: usize, capacity: u32) -> Result<[wgpu::Buffer; LIST_PARTS], GpuError> {
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

pub(super) fn bind_groups(ctx: &GpuContext, kernels: &Kernels, buf: &Buffers) -> (wgpu::BindGroup, wgpu::BindGroup) {
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
pub(super) const PARAMS_BYTES: u64 = 4 * (12 + 20 + 4 * MAX_TYPES as u64 + 4 * 128);

/// Lays out the `Params` uniform word by word, in the order of shaders/common.wgsl.
#[derive(Default)]
pub(super) struct ParamWriter(pub(super) Vec<u32>);

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
