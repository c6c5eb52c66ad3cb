//! LAMMPS's Park-Miller generator (RanPark) and its `velocity ... create` algorithm, so that a
//! deck's initial velocities, and with them its whole thermo table, are LAMMPS's.
//!
//! - `loop all`: one generator seeded with the seed, three draws per atom in atom-ID order.
//! - `loop local`: the same after 100 warm-up draws, in the order atoms are stored (one
//!   process: the creation order).
//! - `loop geom`: each atom reseeds the generator from the seed and the bytes of its
//!   coordinates (Jenkins one-at-a-time hash, bytes as signed chars), so the velocity depends
//!   only on where the atom is.

const IA: i32 = 16807;
const IM: i32 = 2147483647;
const AM: f64 = 1.0 / IM as f64;
const IQ: i32 = 127773;
const IR: i32 = 2836;
/// Draws discarded before `loop local` and `loop geom`.
const WARMUP: usize = 100;

pub struct RanPark {
    seed: i32,
    second: f64,
    saved: bool,
}

impl RanPark {
    pub fn new(seed: i32) -> Result<RanPark, String> {
        if seed <= 0 {
            return Err(format!("seed {seed}: must be a positive integer"));
        }
        Ok(RanPark { seed, second: 0.0, saved: false })
    }

    pub fn uniform(&mut self) -> f64 {
        let k = self.seed / IQ;
        self.seed = IA.wrapping_mul(self.seed - k * IQ).wrapping_sub(IR.wrapping_mul(k));
        if self.seed < 0 {
            self.seed += IM;
        }
        AM * self.seed as f64
    }

    pub fn gaussian(&mut self) -> f64 {
        if self.saved {
            self.saved = false;
            return self.second;
        }
        let (v1, v2, rsq) = loop {
            let v1 = 2.0 * self.uniform() - 1.0;
            let v2 = 2.0 * self.uniform() - 1.0;
            let rsq = v1 * v1 + v2 * v2;
            if rsq < 1.0 && rsq != 0.0 {
                break (v1, v2, rsq);
            }
        };
        let fac = (-2.0 * rsq.ln() / rsq).sqrt();
        self.second = v1 * fac;
        self.saved = true;
        v2 * fac
    }

    /// Reseeds from a base seed and a position (LAMMPS `RanPark::reset(int, double*)`).
    pub fn reset(&mut self, base: i32, coord: [f64; 3]) {
        let mut hash: u32 = 0;
        let mut mix = |byte: u8| {
            // LAMMPS adds the bytes as (signed) chars.
            hash = hash.wrapping_add(byte as i8 as i32 as u32);
            hash = hash.wrapping_add(hash << 10);
            hash ^= hash >> 6;
        };
        for b in base.to_ne_bytes() {
            mix(b);
        }
        for c in coord {
            for b in c.to_ne_bytes() {
                mix(b);
            }
        }
        hash = hash.wrapping_add(hash << 3);
        hash ^= hash >> 11;
        hash = hash.wrapping_add(hash << 15);
        self.seed = (hash & 0x7ffffff) as i32;
        if self.seed == 0 {
            self.seed = 1;
        }
        for _ in 0..5 {
            self.uniform();
        }
        self.saved = false;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    All,
    Local,
    Geom,
}

/// Raw velocities of `velocity create` before momentum removal and scaling: per atom, three
/// draws (uniform in [-0.5, 0.5) or Gaussian) divided by sqrt(mass). `positions` are the atoms'
/// coordinates in the deck's units and `masses` their masses in the deck's units, in atom-ID
/// order (which is also the stored order here).
pub fn create(
    seed: i32,
    lp: Loop,
    gaussian: bool,
    positions: &[[f64; 3]],
    masses: &[f64],
) -> Result<Vec<[f64; 3]>, String> {
    let mut rng = RanPark::new(seed)?;
    let draw = |rng: &mut RanPark| {
        if gaussian {
            [rng.gaussian(), rng.gaussian(), rng.gaussian()]
        } else {
            [rng.uniform() - 0.5, rng.uniform() - 0.5, rng.uniform() - 0.5]
        }
    };
    if lp != Loop::All {
        for _ in 0..WARMUP {
            rng.uniform();
        }
    }
    let mut v = Vec::with_capacity(positions.len());
    for (x, &m) in positions.iter().zip(masses) {
        if lp == Loop::Geom {
            rng.reset(seed, *x);
        }
        let r = draw(&mut rng);
        let factor = 1.0 / m.sqrt();
        v.push([r[0] * factor, r[1] * factor, r[2] * factor]);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn park_miller_minimal_standard() {
        // Park & Miller's check: seed 1 gives 1043618065 after 10,000 draws.
        let mut r = RanPark::new(1).unwrap();
        for _ in 0..10_000 {
            r.uniform();
        }
        assert_eq!(r.seed, 1043618065);
        assert!(RanPark::new(0).is_err());
    }
}
