//! A radix-2 complex FFT with precomputed twiddles, and the autocorrelation sums built on it:
//! what MSD and VACF over all time origins need in O(n log n) instead of O(n²).
//!
//! The sums for two atoms (six real traces) take four complex transforms: three forward ones,
//! each carrying two real traces as real and imaginary part, and one inverse carrying both
//! atoms' power spectra (real and even, so their transforms are real and come back as the real
//! and imaginary parts).

use std::f64::consts::PI;

/// Transforms of one power-of-two length, with twiddles computed once. The forward transform
/// (decimation in frequency) leaves the spectrum in bit-reversed order and the inverse
/// (decimation in time) takes it in that order, so no bit-reversal permutation is ever done:
/// autocorrelations only multiply spectra pointwise, and `mirror` finds frequency -k.
pub struct FftPlan {
    n: usize,
    /// Per stage of half-length h (1, 2, 4, ...): e^{-2πik/(2h)} for k < h, at offset h - 1.
    tw_re: Vec<f64>,
    tw_im: Vec<f64>,
    /// For each position of a bit-reversed spectrum, the position of the opposite frequency.
    mirror: Vec<u32>,
}

impl FftPlan {
    pub fn new(n: usize) -> FftPlan {
        assert!(n.is_power_of_two(), "FFT length must be a power of two");
        let bits = n.trailing_zeros();
        let reverse = |i: usize| if bits == 0 { 0 } else { i.reverse_bits() >> (usize::BITS - bits) };
        let mirror = (0..n).map(|p| reverse((n - reverse(p)) % n) as u32).collect();
        let (mut tw_re, mut tw_im) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut half = 1;
        while half < n {
            for k in 0..half {
                let angle = -PI * k as f64 / half as f64;
                tw_re.push(angle.cos());
                tw_im.push(angle.sin());
            }
            half *= 2;
        }
        FftPlan { n, tw_re, tw_im, mirror }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// In-place forward transform X_k = Σ x_j e^{-2πijk/n}, X_k left at position bitrev(k).
    pub fn forward(&self, re: &mut [f64], im: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { simd::forward(self, re, im) };
        }
        forward(self, re, im)
    }

    /// In-place inverse of `forward` without the 1/n factor: bit-reversed spectrum in, natural
    /// order out.
    pub fn inverse(&self, re: &mut [f64], im: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { simd::inverse(self, re, im) };
        }
        inverse(self, re, im)
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    #[target_feature(enable = "avx2,fma")]
    pub fn forward(plan: &super::FftPlan, re: &mut [f64], im: &mut [f64]) {
        super::forward(plan, re, im)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn inverse(plan: &super::FftPlan, re: &mut [f64], im: &mut [f64]) {
        super::inverse(plan, re, im)
    }
}

/// Decimation in frequency: per stage, (a, b) -> (a + b, (a - b) w).
#[inline(always)]
fn forward(plan: &FftPlan, re: &mut [f64], im: &mut [f64]) {
    let n = plan.n;
    assert!(re.len() == n && im.len() == n);
    let mut half = n / 2;
    while half >= 1 {
        let (wr, wi) = (&plan.tw_re[half - 1..2 * half - 1], &plan.tw_im[half - 1..2 * half - 1]);
        for (r, i) in re.chunks_exact_mut(2 * half).zip(im.chunks_exact_mut(2 * half)) {
            let (r_lo, r_hi) = r.split_at_mut(half);
            let (i_lo, i_hi) = i.split_at_mut(half);
            for ((((rl, il), rh), ih), (wr, wi)) in r_lo.iter_mut().zip(i_lo.iter_mut()).zip(r_hi.iter_mut()).zip(i_hi.iter_mut()).zip(wr.iter().zip(wi)) {
                let (dr, di) = (*rl - *rh, *il - *ih);
                *rl += *rh;
                *il += *ih;
                *rh = dr * wr - di * wi;
                *ih = dr * wi + di * wr;
            }
        }
        half /= 2;
    }
}

/// Decimation in time with conjugate twiddles: per stage, (a, b) -> (a + b w̄, a - b w̄).
#[inline(always)]
fn inverse(plan: &FftPlan, re: &mut [f64], im: &mut [f64]) {
    let n = plan.n;
    assert!(re.len() == n && im.len() == n);
    let mut half = 1;
    while half < n {
        let (wr, wi) = (&plan.tw_re[half - 1..2 * half - 1], &plan.tw_im[half - 1..2 * half - 1]);
        for (r, i) in re.chunks_exact_mut(2 * half).zip(im.chunks_exact_mut(2 * half)) {
            let (r_lo, r_hi) = r.split_at_mut(half);
            let (i_lo, i_hi) = i.split_at_mut(half);
            for ((((rl, il), rh), ih), (wr, wi)) in r_lo.iter_mut().zip(i_lo.iter_mut()).zip(r_hi.iter_mut()).zip(i_hi.iter_mut()).zip(wr.iter().zip(wi)) {
                let t_re = *rh * wr + *ih * wi;
                let t_im = *ih * wr - *rh * wi;
                *rh = *rl - t_re;
                *ih = *il - t_im;
                *rl += t_re;
                *il += t_im;
            }
        }
        half *= 2;
    }
}

/// The transform length for autocorrelations of n samples (zero padding to 2n avoids wrap-around).
pub fn padded_length(n: usize) -> usize {
    (2 * n).next_power_of_two()
}

/// Σ over the three traces of each atom of the autocorrelation sums
/// A(m) = Σ_{k=0}^{n-1-m} x_k x_{k+m} (sums, not means, over time origins), for one atom or two
/// (`b`), with the plan of `padded_length(n)`.
pub fn autocorrelation_sums(plan: &FftPlan, a: [&[f64]; 3], b: Option<[&[f64]; 3]>) -> (Vec<f64>, Option<Vec<f64>>) {
    autocorrelation_sums_in(plan, &mut Workspace::default(), a, b)
}

/// Buffers reused from one call to the next (a thread's atoms share one).
#[derive(Default)]
pub struct Workspace {
    spectra: Vec<(Vec<f64>, Vec<f64>)>,
    p_re: Vec<f64>,
    p_im: Vec<f64>,
}

/// `autocorrelation_sums` with the buffers of `work`.
pub fn autocorrelation_sums_in(plan: &FftPlan, work: &mut Workspace, a: [&[f64]; 3], b: Option<[&[f64]; 3]>) -> (Vec<f64>, Option<Vec<f64>>) {
    let n = a[0].len();
    let size = plan.len();
    let zero: Vec<f64> = Vec::new();
    let b_or = |d: usize| b.map_or(&zero[..], |b| b[d]);
    // Three transforms, two real traces each: (x1, y1), (z1, x2), (y2, z2).
    let pairs: [(&[f64], &[f64]); 3] = [(a[0], a[1]), (a[2], b_or(0)), (b_or(1), b_or(2))];
    work.spectra.resize_with(3, Default::default);
    for ((u, v), (re, im)) in pairs.iter().zip(work.spectra.iter_mut()).take(if b.is_some() { 3 } else { 2 }) {
        for (buffer, data) in [(&mut *re, u), (&mut *im, v)] {
            buffer.clear();
            buffer.extend_from_slice(data);
            buffer.resize(size, 0.0);
        }
        plan.forward(re, im);
    }
    let spectra = &work.spectra;
    // Z = FFT(u + i v): U_k = (Z_k + conj Z_{-k}) / 2, V_k = (Z_k - conj Z_{-k}) / 2i, so
    // |U_k|² + |V_k|² = (|Z_k|² + |Z_{-k}|²) / 2 and |U_k|² = |Z_k + conj Z_{-k}|² / 4.
    let power = |s: &(Vec<f64>, Vec<f64>), k: usize| s.0[k] * s.0[k] + s.1[k] * s.1[k];
    let mirror = |k: usize| plan.mirror[k] as usize;
    let (p_re, p_im) = (&mut work.p_re, &mut work.p_im);
    p_re.clear();
    p_re.resize(size, 0.0);
    p_im.clear();
    p_im.resize(size, 0.0);
    for k in 0..size {
        let m = mirror(k);
        let (s0, s1) = (&spectra[0], &spectra[1]);
        let both = 0.5 * (power(s0, k) + power(s0, m));
        // The middle transform: u = z1 (atom a), v = x2 (atom b).
        let (sr, si) = (s1.0[k] + s1.0[m], s1.1[k] - s1.1[m]);
        let (dr, di) = (s1.0[k] - s1.0[m], s1.1[k] + s1.1[m]);
        p_re[k] = both + 0.25 * (sr * sr + si * si);
        if b.is_some() {
            let s2 = &spectra[2];
            p_im[k] = 0.25 * (dr * dr + di * di) + 0.5 * (power(s2, k) + power(s2, m));
        }
    }
    plan.inverse(p_re, p_im);
    let scale = 1.0 / size as f64;
    let first = p_re[..n].iter().map(|v| v * scale).collect();
    let second = b.map(|_| p_im[..n].iter().map(|v| v * scale).collect());
    (first, second)
}

/// One atom's sums (a convenience for tests and small inputs).
pub fn autocorrelation_sums_3(x: &[f64], y: &[f64], z: &[f64]) -> Vec<f64> {
    if x.is_empty() {
        return Vec::new();
    }
    autocorrelation_sums(&FftPlan::new(padded_length(x.len())), [x, y, z], None).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(x: &[f64], y: &[f64], z: &[f64], m: usize) -> f64 {
        (0..x.len() - m).map(|k| x[k] * x[k + m] + y[k] * y[k + m] + z[k] * z[k + m]).sum()
    }

    #[test]
    fn one_and_two_atoms_at_once_equal_the_direct_sums() {
        let t = |s: usize| -> Vec<f64> { (0..29).map(|i| (((i + s) * 7919) % 31) as f64 - 15.0 + 0.1 * i as f64).collect() };
        let (x, y, z) = (t(1), t(5), t(9));
        let (u, v, w) = (t(2), t(13), t(21));
        let joint = autocorrelation_sums_3(&x, &y, &z);
        let plan = FftPlan::new(padded_length(x.len()));
        let (first, second) = autocorrelation_sums(&plan, [&x, &y, &z], Some([&u, &v, &w]));
        let second = second.unwrap();
        for m in 0..x.len() {
            let (d1, d2) = (direct(&x, &y, &z, m), direct(&u, &v, &w, m));
            assert!((joint[m] - d1).abs() < 1e-8 * d1.abs().max(1.0), "lag {m}: {} vs {d1}", joint[m]);
            assert!((first[m] - d1).abs() < 1e-8 * d1.abs().max(1.0), "pair, first atom, lag {m}");
            assert!((second[m] - d2).abs() < 1e-8 * d2.abs().max(1.0), "pair, second atom, lag {m}: {} vs {d2}", second[m]);
        }
    }

    #[test]
    fn the_transform_matches_the_definition_and_inverts() {
        let n = 64;
        let re0: Vec<f64> = (0..n).map(|i| (i as f64).sin() + 0.3).collect();
        let im0: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).cos()).collect();
        let (mut re, mut im) = (re0.clone(), im0.clone());
        let plan = FftPlan::new(n);
        plan.forward(&mut re, &mut im);
        let position = |k: usize| (k as u32).reverse_bits() as usize >> (32 - 6);
        for k in [0, 1, 7, 33, 63] {
            let (mut sr, mut si) = (0.0, 0.0);
            for j in 0..n {
                let a = -2.0 * PI * (j * k) as f64 / n as f64;
                sr += re0[j] * a.cos() - im0[j] * a.sin();
                si += re0[j] * a.sin() + im0[j] * a.cos();
            }
            let p = position(k);
            assert!((re[p] - sr).abs() < 1e-10 && (im[p] - si).abs() < 1e-10, "bin {k}");
        }
        plan.inverse(&mut re, &mut im);
        for k in 0..n {
            assert!((re[k] / n as f64 - re0[k]).abs() < 1e-12 && (im[k] / n as f64 - im0[k]).abs() < 1e-12);
        }
    }
}
