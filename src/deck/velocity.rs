//! LAMMPS's `velocity` command on a group: `create` with LAMMPS's Park-Miller draws (loop all,
//! local, geom) so that the velocities are LAMMPS's to the last bit, `set`, `scale`, `zero`,
//! momentum and rotation removal, and the group temperature with 3N - 3 degrees of freedom.

use super::random::{self, Loop};
use super::world::{World, int, num, pairs, yes_no};
use crate::cell::Vec3;

impl World {
    /// Σ m v² / (dof k_B) in deck units of the atoms with velocities `v` (all, or a group's),
    /// with LAMMPS's 3N - 3 degrees of freedom (`compute temp`).
    pub fn temperature(&self, v: &[Vec3], masses: &[f64]) -> f64 {
        let sum: f64 = v.iter().zip(masses).map(|(v, m)| m * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])).sum();
        let dof = 3.0 * v.len() as f64 - 3.0;
        // In deck units: T = Σ m v² · mvv2e / (dof · boltz); mvv2e/boltz from the factors.
        let u = &self.units;
        let mvv2e_over_boltz = u.mass * u.velocity() * u.velocity() * crate::units::MVV2E / (crate::units::BOLTZ * u.temperature);
        if dof > 0.0 { sum * mvv2e_over_boltz / dof } else { 0.0 }
    }

    pub fn velocity(&mut self, args: &[String]) -> Result<(), String> {
        self.require_box()?;
        let [group, style, rest @ ..] = args else { return Err("expected: velocity group style args".into()) };
        let bit = self.group_bit(group)?;
        let members: Vec<usize> = (0..self.atoms.len()).filter(|&i| self.atoms.mask[i] & bit != 0).collect();
        let all_masses = self.atom_masses()?;
        let masses: Vec<f64> = members.iter().map(|&i| all_masses[i]).collect();
        let n = members.len();
        let (nargs, what) = match style.as_str() {
            "create" => (2, "create"),
            "set" => (3, "set"),
            "scale" => (1, "scale"),
            "zero" => (1, "zero"),
            other => return Err(format!("velocity style '{other}' is not supported; mdrun supports create, set, scale, zero")),
        };
        if rest.len() < nargs {
            return Err(format!("velocity {what} needs {nargs} argument(s)"));
        }
        let mut dist_gauss = false;
        let mut sum = false;
        let mut mom = true;
        let mut rot = false;
        let mut lp = Loop::All;
        let kw = pairs(&rest[nargs..], "velocity")?;
        for &(k, v) in &kw {
            match k {
                "dist" => dist_gauss = match v {
                    "uniform" => false,
                    "gaussian" => true,
                    _ => return Err("velocity dist must be uniform or gaussian".into()),
                },
                "sum" => sum = yes_no(v, "velocity sum")?,
                "mom" => mom = yes_no(v, "velocity mom")?,
                "rot" => rot = yes_no(v, "velocity rot")?,
                "loop" => lp = match v {
                    "all" => Loop::All,
                    "local" => Loop::Local,
                    "geom" => Loop::Geom,
                    _ => return Err("velocity loop must be all, local or geom".into()),
                },
                "units" => {}
                "temp" | "bias" | "rigid" => return Err(format!("velocity keyword '{k}' is not supported")),
                other => return Err(format!("unknown velocity keyword '{other}'")),
            }
        }
        match style.as_str() {
            "create" => {
                let t = num(&rest[0], "temperature")?;
                if t < 0.0 {
                    return Err("velocity create: temperature must not be negative".into());
                }
                let seed = int(&rest[1], "seed")?;
                if seed <= 0 || seed > i32::MAX as i64 {
                    return Err(format!("velocity create: seed must be a positive 32-bit integer (got {seed})"));
                }
                if n < 2 {
                    return Err("velocity create needs at least two atoms".into());
                }
                // loop all draws for every atom ID and keeps the group's (as LAMMPS does); local
                // and geom draw for the group's atoms only.
                let mut v = if lp == Loop::All {
                    let every = random::create(seed as i32, lp, dist_gauss, &self.atoms.x, &all_masses)?;
                    members.iter().map(|&i| every[i]).collect()
                } else {
                    let x: Vec<Vec3> = members.iter().map(|&i| self.atoms.x[i]).collect();
                    random::create(seed as i32, lp, dist_gauss, &x, &masses)?
                };
                if mom {
                    zero_momentum(&mut v, &masses);
                }
                if rot {
                    self.zero_rotation(&members, &mut v, &masses);
                }
                let current = self.temperature(&v, &masses);
                let factor = if current > 0.0 { (t / current).sqrt() } else { 0.0 };
                for (&i, src) in members.iter().zip(&v) {
                    let dst = &mut self.atoms.v[i];
                    for d in 0..3 {
                        dst[d] = if sum { dst[d] + src[d] * factor } else { src[d] * factor };
                    }
                }
            }
            "set" => {
                let scale = self.units_keyword(&kw, "velocity set")?;
                let mut set = [None; 3];
                for d in 0..3 {
                    if rest[d] != "NULL" {
                        set[d] = Some(num(&rest[d], "velocity component")? * scale[d]);
                    }
                }
                for &i in &members {
                    let v = &mut self.atoms.v[i];
                    for d in 0..3 {
                        if let Some(s) = set[d] {
                            v[d] = if sum { v[d] + s } else { s };
                        }
                    }
                }
            }
            "scale" => {
                let t = num(&rest[0], "temperature")?;
                let v: Vec<Vec3> = members.iter().map(|&i| self.atoms.v[i]).collect();
                let current = self.temperature(&v, &masses);
                if current > 0.0 {
                    let factor = (t / current).sqrt();
                    for &i in &members {
                        self.atoms.v[i] = self.atoms.v[i].map(|c| c * factor);
                    }
                }
            }
            _ => {
                let mut v: Vec<Vec3> = members.iter().map(|&i| self.atoms.v[i]).collect();
                match rest[0].as_str() {
                    "linear" => zero_momentum(&mut v, &masses),
                    "angular" => self.zero_rotation(&members, &mut v, &masses),
                    other => return Err(format!("velocity zero {other}: expected linear or angular")),
                }
                for (&i, v) in members.iter().zip(v) {
                    self.atoms.v[i] = v;
                }
            }
        }
        Ok(())
    }

    fn unwrapped(&self) -> Vec<Vec3> {
        let (lo, hi) = self.bounds.unwrap_or(([0.0; 3], [0.0; 3]));
        self.atoms
            .x
            .iter()
            .zip(&self.atoms.images)
            .map(|(x, im)| [0, 1, 2].map(|d| x[d] + im[d] as f64 * (hi[d] - lo[d])))
            .collect()
    }

    /// Removes the rigid rotation of the atoms `members` (velocities `v`, masses `masses`) about
    /// their centre of mass (LAMMPS `rot yes`).
    fn zero_rotation(&self, members: &[usize], v: &mut [Vec3], masses: &[f64]) {
        let every = self.unwrapped();
        let x: Vec<Vec3> = members.iter().map(|&i| every[i]).collect();
        let total: f64 = masses.iter().sum();
        let mut cm = [0.0; 3];
        for (x, m) in x.iter().zip(masses) {
            for d in 0..3 {
                cm[d] += m * x[d];
            }
        }
        cm = cm.map(|c| c / total);
        let mut l = [0.0; 3];
        let mut inertia = nalgebra::Matrix3::<f64>::zeros();
        for ((x, v), m) in x.iter().zip(v.iter()).zip(masses) {
            let r = [x[0] - cm[0], x[1] - cm[1], x[2] - cm[2]];
            l[0] += m * (r[1] * v[2] - r[2] * v[1]);
            l[1] += m * (r[2] * v[0] - r[0] * v[2]);
            l[2] += m * (r[0] * v[1] - r[1] * v[0]);
            let r2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
            for a in 0..3 {
                for b in 0..3 {
                    inertia[(a, b)] += m * (if a == b { r2 } else { 0.0 } - r[a] * r[b]);
                }
            }
        }
        let Some(inv) = inertia.try_inverse() else { return };
        let w = inv * nalgebra::Vector3::new(l[0], l[1], l[2]);
        for (x, v) in x.iter().zip(v.iter_mut()) {
            let r = [x[0] - cm[0], x[1] - cm[1], x[2] - cm[2]];
            v[0] -= w[1] * r[2] - w[2] * r[1];
            v[1] -= w[2] * r[0] - w[0] * r[2];
            v[2] -= w[0] * r[1] - w[1] * r[0];
        }
    }
}

pub fn zero_momentum(v: &mut [Vec3], masses: &[f64]) {
    let total: f64 = masses.iter().sum();
    let mut p = [0.0; 3];
    for (v, m) in v.iter().zip(masses) {
        for d in 0..3 {
            p[d] += v[d] * m;
        }
    }
    let vcm = p.map(|c| c / total);
    for v in v.iter_mut() {
        for d in 0..3 {
            v[d] -= vcm[d];
        }
    }
}
