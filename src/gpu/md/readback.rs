//! What the host reads back from the GPU simulation: thermo sums, the state, forces,
//! neighbour pairs and checkpoints.

use super::*;

impl GpuSimulation {
    pub(super) fn read_sums(&mut self) -> Result<(), GpuError> {
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

    pub(super) fn read_vec4<T: bytemuck::Pod>(&self, buffer: usize) -> Result<Vec<[T; 4]>, GpuError> {
        let b = &self.buf.state[buffer];
        let bytes = self.ctx.read(b, 0, 16 * self.n as u64)?;
        Ok(bytemuck::cast_slice::<u8, [T; 4]>(&bytes).to_vec())
    }

    /// Reads positions, velocities and images into the host copies of the structures.
    pub(super) fn read_host_state(&mut self) -> Result<(), GpuError> {
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

    /// The learned potential's kept layers at the last evaluation (`Inference::record_layers`;
    /// empty without it or for a pair potential), all structures atom after atom.
    pub fn ml_layers(&self) -> Result<Vec<(String, usize, Vec<f32>)>, GpuError> {
        match &self.ml {
            Some(ml) => ml.read_layers(&self.ctx),
            None => Ok(Vec::new()),
        }
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
    pub(super) fn state_checkpoint(&self, k: usize) -> Result<Checkpoint, GpuError> {
        let part = &self.parts[k];
        let reference = self.read_vec4::<f32>(REF)?[part.first..part.first + part.system.len()]
            .iter()
            .map(|r| [r[0] as f64, r[1] as f64, r[2] as f64])
            .collect();
        Ok(Checkpoint {
            step: self.host_step.unwrap_or(self.step),
            system: part.system.clone(),
            reference: Some(reference),
            reference_cell: None,
            threads: 0,
            integrator: part.integrator.state(),
            potential: Vec::new(),
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
