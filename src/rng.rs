//! Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//!
//! A random number is a pure function of (seed, counter): the Langevin noise on atom i at step n
//! is `philox(seed, [n, i, stream, 0])`. So the "state" of the generator that a checkpoint must
//! carry is only the seed and the step, runs are reproducible whatever the thread count, and a GPU
//! kernel can draw exactly the same numbers as the CPU.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Streams keep independent uses of one seed apart.
pub mod stream {
    pub const LANGEVIN: u32 = 1;
    pub const INITIAL_VELOCITIES: u32 = 2;
    pub const CSVR: u32 = 3;
    pub const C_RESCALE: u32 = 4;
}

/// Philox4x32 with 10 rounds: four 32-bit random words from a 128-bit counter and 64-bit key.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut x = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (x[0] as u64);
        let p1 = (M1 as u64) * (x[2] as u64);
        x = [
            ((p1 >> 32) as u32) ^ x[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ x[3] ^ k[1],
            p0 as u32,
        ];
    }
    x
}

/// Four independent standard normal numbers for (seed, step, index, stream).
pub fn normals4(seed: u64, step: u64, index: u32, stream: u32) -> [f64; 4] {
    let key = [seed as u32, (seed >> 32) as u32];
    let w = philox4x32(
        [
            step as u32,
            (step >> 32) as u32 ^ (stream << 16),
            index,
            stream,
        ],
        key,
    );
    let (a, b) = box_muller(w[0], w[1]);
    let (c, d) = box_muller(w[2], w[3]);
    [a, b, c, d]
}

/// Two uniform numbers in (0, 1] and two standard normal numbers for (seed, step, index,
/// stream): what a rejection sampler needs per try.
pub fn uniforms2_normals2(seed: u64, step: u64, index: u32, stream: u32) -> ([f64; 2], [f64; 2]) {
    let key = [seed as u32, (seed >> 32) as u32];
    let w = philox4x32([step as u32, (step >> 32) as u32 ^ (stream << 16), index, stream], key);
    let (a, b) = box_muller(w[2], w[3]);
    ([unit_open(w[0]), unit_open(w[1])], [a, b])
}

/// Uniform in (0, 1]: never 0, so the logarithm below is finite.
fn unit_open(x: u32) -> f64 {
    (x as f64 + 1.0) / 4294967296.0
}

fn box_muller(u: u32, v: u32) -> (f64, f64) {
    let radius = (-2.0 * unit_open(u).ln()).sqrt();
    let angle = std::f64::consts::TAU * (v as f64 / 4294967296.0);
    (radius * angle.cos(), radius * angle.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answers() {
        // Known-answer vectors from Random123's kat_vectors (philox4x32, 10 rounds).
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn normals_have_unit_variance() {
        let n = 200_000u32;
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        for i in 0..n / 4 {
            for x in normals4(42, 7, i, stream::LANGEVIN) {
                s1 += x;
                s2 += x * x;
                s4 += x * x * x * x;
            }
        }
        let nf = n as f64;
        assert!((s1 / nf).abs() < 0.01);
        assert!((s2 / nf - 1.0).abs() < 0.01);
        assert!((s4 / nf - 3.0).abs() < 0.06, "kurtosis {}", s4 / nf);
    }
}
