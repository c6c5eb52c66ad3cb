//! Initial velocities: Maxwell-Boltzmann at a temperature, from a seed.
//!
//! Each atom's velocity is drawn from the counter-based generator keyed by (seed, atom), so the
//! result does not depend on thread count or on the order atoms are visited. The total momentum
//! is then removed and the velocities scaled so that the kinetic temperature, counted with the
//! same 3N - 3 degrees of freedom as the thermo output, is exactly the target.

use crate::rng::{normals4, stream};
use crate::system::System;
use crate::units::{BOLTZ, MVV2E};

pub fn maxwell_boltzmann(system: &mut System, temperature: f64, seed: u64) {
    for i in 0..system.len() {
        let g = normals4(seed, 0, i as u32, stream::INITIAL_VELOCITIES);
        let sigma = (BOLTZ * temperature / (system.mass(i) * MVV2E)).sqrt();
        system.velocities[i] = [g[0] * sigma, g[1] * sigma, g[2] * sigma];
    }
    if system.len() > 1 {
        system.zero_momentum();
    }
    scale_to_temperature(system, temperature);
}

/// Rescales all velocities so the kinetic temperature is exactly `temperature`.
pub fn scale_to_temperature(system: &mut System, temperature: f64) {
    let current = system.temperature();
    if current > 0.0 {
        let factor = (temperature / current).sqrt();
        for v in &mut system.velocities {
            *v = v.map(|x| x * factor);
        }
    }
}
