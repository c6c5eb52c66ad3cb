//! Per-atom time series for MSD and VACF: positions unwrapped across periodic boundaries (each
//! frame's displacement taken to the nearest image, so atoms must move less than half a cell
//! between frames) and velocities when the frames have them. Stored as f32 (plenty for
//! displacements) to halve the memory of long trajectories.

use crate::cell::{Cell, Vec3};

pub struct Series {
    /// Atoms kept (indices into the frame) and their species.
    pub atoms: Vec<usize>,
    pub species: Vec<String>,
    /// frame-major: [frame][atom][xyz]
    positions: Vec<f32>,
    velocities: Vec<f32>,
    pub has_velocities: bool,
    pub times: Vec<Option<f64>>,
    last_wrapped: Vec<Vec3>,
    last_unwrapped: Vec<Vec3>,
}

impl Series {
    pub fn new(atoms: Vec<usize>, species: Vec<String>) -> Series {
        Series {
            atoms,
            species,
            positions: Vec::new(),
            velocities: Vec::new(),
            has_velocities: true,
            times: Vec::new(),
            last_wrapped: Vec::new(),
            last_unwrapped: Vec::new(),
        }
    }

    pub fn frames(&self) -> usize {
        self.times.len()
    }

    pub fn add(&mut self, positions: &[Vec3], velocities: Option<&[Vec3]>, cell: Option<&Cell>, time: Option<f64>) {
        let first = self.last_wrapped.is_empty();
        for (k, &i) in self.atoms.iter().enumerate() {
            let x = positions[i];
            let unwrapped = if first {
                x
            } else {
                let prev = self.last_wrapped[k];
                let mut d = [x[0] - prev[0], x[1] - prev[1], x[2] - prev[2]];
                if let Some(cell) = cell {
                    let mut s = cell.fractional(d);
                    for a in 0..3 {
                        if cell.pbc()[a] {
                            s[a] -= s[a].round();
                        }
                    }
                    d = cell.cartesian(s);
                }
                let u = self.last_unwrapped[k];
                [u[0] + d[0], u[1] + d[1], u[2] + d[2]]
            };
            if first {
                self.last_wrapped.push(x);
                self.last_unwrapped.push(unwrapped);
            } else {
                self.last_wrapped[k] = x;
                self.last_unwrapped[k] = unwrapped;
            }
            self.positions.extend(unwrapped.map(|v| v as f32));
        }
        match velocities {
            Some(v) if self.has_velocities => {
                for &i in &self.atoms {
                    self.velocities.extend(v[i].map(|x| x as f32));
                }
            }
            _ => {
                self.has_velocities = false;
                self.velocities.clear();
            }
        }
        self.times.push(time);
    }

    /// x, y and z traces over all frames for atoms `range` (positions or velocities), read
    /// frame by frame so memory is walked in order.
    pub fn traces(&self, range: std::ops::Range<usize>, velocity: bool) -> Vec<[Vec<f64>; 3]> {
        let data = if velocity { &self.velocities } else { &self.positions };
        let stride = 3 * self.atoms.len();
        let frames = self.frames();
        let mut out: Vec<[Vec<f64>; 3]> = range
            .clone()
            .map(|_| std::array::from_fn(|_| Vec::with_capacity(frames)))
            .collect();
        for f in 0..frames {
            let row = &data[f * stride..(f + 1) * stride];
            for (slot, k) in out.iter_mut().zip(range.clone()) {
                for d in 0..3 {
                    slot[d].push(row[3 * k + d] as f64);
                }
            }
        }
        out
    }

    /// Time between frames, ps: from the frames' times (they must be evenly spaced) or `dt`.
    pub fn frame_interval(&self, dt: Option<f64>) -> Result<f64, String> {
        let times: Option<Vec<f64>> = self.times.iter().cloned().collect();
        // Repeated frames are refused with or without --dt, as the thermo log's repeated steps.
        if let Some(k) = times.as_ref().and_then(|t| t.windows(2).position(|w| w[1] <= w[0])) {
            let t = times.as_ref().unwrap();
            return Err(format!("the frames' times do not increase: frame {} has time {} ps, the one before {} ps (frames repeat, as in the trajectory of a run continued from an earlier checkpoint); select a range without them", k + 1, t[k + 1], t[k]));
        }
        if let Some(dt) = dt {
            if !(dt.is_finite() && dt > 0.0) {
                return Err(format!("--dt {dt}: expected a positive time between frames (ps)"));
            }
            return Ok(dt);
        }
        let Some(times) = times.filter(|t| t.len() >= 2) else {
            return Err("the frames carry no time: give the time between frames with --dt (ps)".into());
        };
        let step = times[1] - times[0];
        let uneven = times.windows(2).any(|w| ((w[1] - w[0]) - step).abs() > 1e-6 * step.abs().max(1e-12));
        if step <= 0.0 || uneven {
            return Err("the frames' times are not evenly spaced: select an even range or give --dt".into());
        }
        Ok(step)
    }
}
