//! After each block: accept it, or find the step and atom that blew up (replaying the block
//! step by step), and warn when a model leaves its training range.

use super::*;

impl GpuSimulation {
    /// Takes the counters of `steps` steps that ran well from the status words.
    pub(super) fn accept(&mut self, status: &[u32], steps: u64) -> Result<(), GpuError> {
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

    /// One line per structure summing up the blocks since the last call in which its pairs
    /// came closer than the model's training data (`part`: only that structure's).
    pub fn take_outside_data_summary(&mut self, part: Option<usize>) -> Vec<String> {
        let batch = self.parts.len() > 1;
        let mut lines = Vec::new();
        for (k, p) in self.parts.iter_mut().enumerate().filter(|(k, _)| part.is_none_or(|only| only == *k)) {
            if let Some(line) = p.range.as_mut().and_then(|r| r.take_summary(("block of steps", "blocks of steps"))) {
                lines.push(if batch { format!("structure {k}: {line}") } else { line });
            }
        }
        lines
    }

    /// Thermo rows in a row, up to the last summary, in which structure `part` had pairs
    /// outside the training data.
    pub fn outside_data_streak(&self, part: usize) -> u64 {
        self.parts.get(part).and_then(|p| p.range.as_ref()).map_or(0, |r| r.streak)
    }

    /// The GPU flagged atoms closer to a neighbour than the model's training data had, at some
    /// step after `since` (the lowest such id per structure): names their pairs that are that
    /// close now (or says when).
    pub(super) fn warn_outside_training(&mut self, status: &[u32], since: u64) -> Result<(), GpuError> {
        let GpuPotential::Ml(model) = &self.potential else { return Ok(()) };
        let species_of_type = model.species_of_type.clone();
        let flagged: Vec<(usize, u32)> = (0..self.parts.len())
            .map(|k| (k, status[STATUS_WORDS + SW * k + SW_CLOSE_ATOM]))
            .filter(|&(k, atom)| atom != u32::MAX && self.parts[k].range.is_some())
            .collect();
        // Naming pairs needs the positions on the host; once a summary has its example, the
        // flag alone is counted.
        let (named, counted): (Vec<_>, Vec<_>) = flagged.into_iter().partition(|&(k, _)| self.parts[k].range.as_ref().is_some_and(|r| r.wants_pairs()));
        for (k, _) in counted {
            if let Some(range) = self.parts[k].range.as_mut() {
                range.count();
            }
        }
        let flagged = named;
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
    pub(super) fn locate_blow_up(&mut self, steps: u64) -> Result<(usize, GpuError), GpuError> {
        for _ in 0..steps {
            self.write_status(self.step);
            self.submit_steps(1, false, true)?;
            let status = self.read_status()?;
            if status[ST_BAD_COUNT] == 0 {
                self.accept(&status, 1)?;
                continue;
            }
            let atom = status[ST_BAD_ATOM];
            let mut blow = self.describe_blow_up(atom)?;
            blow.step = self.step + 1;
            let k = self.structure_of_atom(atom as usize);
            self.restore_backup()?;
            self.read_host_state()?;
            let chk = self.state_checkpoint(k)?;
            self.parts[k].last_good = Some(chk);
            self.parts[k].frozen = true;
            self.write_structures();
            self.write_params();
            return Ok((k, GpuError::BlowUp(blow)));
        }
        // Not reproduced step by step: should not happen (the kernels are deterministic).
        Err(GpuError::Other {
            what: "replaying a block that produced bad forces".into(),
            message: "the replay did not reproduce them".into(),
        })
    }

    pub(super) fn structure_of_atom(&self, atom: usize) -> usize {
        self.parts.partition_point(|p| p.first <= atom) - 1
    }

    pub(super) fn describe_blow_up(&self, atom: u32) -> Result<BlowUp, GpuError> {
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
            reason: None,
        })
    }
}

/// |b - a| at the nearest image (fractional difference rounded), for messages.
pub(super) fn nearest_image_distance(cell: &crate::cell::Cell, a: Vec3, b: Vec3) -> f64 {
    let d = [0, 1, 2].map(|k| b[k] - a[k]);
    let s = cell.fractional(d).map(|x| x - x.round());
    let d = cell.cartesian(s);
    dot(d, d).sqrt()
}
