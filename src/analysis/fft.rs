//! A radix-2 complex FFT and the autocorrelation sums built on it: what MSD and VACF over all
//! time origins need in O(n log n) instead of O(n²).

use std::f64::consts::PI;

/// In-place FFT of (re, im) of a power-of-two length; `inverse` without the 1/n factor.
pub fn fft(re: &mut [f64], im: &mut [f64], inverse: bool) {
    let n = re.len();
    assert!(n.is_power_of_two() && im.len() == n, "FFT length must be a power of two");
    // Bit-reversal permutation.
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let angle = sign * 2.0 * PI / len as f64;
        let (w_re, w_im) = (angle.cos(), angle.sin());
        for start in (0..n).step_by(len) {
            let (mut c_re, mut c_im) = (1.0, 0.0);
            for k in 0..len / 2 {
                let (a, b) = (start + k, start + k + len / 2);
                let t_re = re[b] * c_re - im[b] * c_im;
                let t_im = re[b] * c_im + im[b] * c_re;
                re[b] = re[a] - t_re;
                im[b] = im[a] - t_im;
                re[a] += t_re;
                im[a] += t_im;
                let next = c_re * w_re - c_im * w_im;
                c_im = c_re * w_im + c_im * w_re;
                c_re = next;
            }
        }
        len <<= 1;
    }
}

/// Σ over three traces (x, y, z of one atom) of their autocorrelation sums
/// A(m) = Σ_{k=0}^{n-1-m} x_k x_{k+m} (sums, not means, over time origins), with two forward
/// FFTs and one inverse instead of six: x and y ride in one complex FFT (x + i y), whose
/// power spectrum splits as |X_k|² + |Y_k|² = (|Z_k|² + |Z_{-k}|²) / 2.
pub fn autocorrelation_sums_3(x: &[f64], y: &[f64], z: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let size = (2 * n).next_power_of_two();
    let (mut a_re, mut a_im) = (vec![0.0; size], vec![0.0; size]);
    a_re[..n].copy_from_slice(x);
    a_im[..n].copy_from_slice(y);
    fft(&mut a_re, &mut a_im, false);
    let (mut b_re, mut b_im) = (vec![0.0; size], vec![0.0; size]);
    b_re[..n].copy_from_slice(z);
    fft(&mut b_re, &mut b_im, false);
    let power = |re: &[f64], im: &[f64], k: usize| re[k] * re[k] + im[k] * im[k];
    let mut p_re: Vec<f64> = (0..size)
        .map(|k| 0.5 * (power(&a_re, &a_im, k) + power(&a_re, &a_im, (size - k) % size)) + power(&b_re, &b_im, k))
        .collect();
    let mut p_im = vec![0.0; size];
    fft(&mut p_re, &mut p_im, true);
    p_re.truncate(n);
    p_re.iter_mut().for_each(|v| *v /= size as f64);
    p_re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_traces_at_once_equal_the_direct_sums() {
        let t = |s: usize| -> Vec<f64> { (0..29).map(|i| (((i + s) * 7919) % 31) as f64 - 15.0 + 0.1 * i as f64).collect() };
        let (x, y, z) = (t(1), t(5), t(9));
        let joint = autocorrelation_sums_3(&x, &y, &z);
        for m in 0..x.len() {
            let direct: f64 = (0..x.len() - m).map(|k| x[k] * x[k + m] + y[k] * y[k + m] + z[k] * z[k + m]).sum();
            assert!((joint[m] - direct).abs() < 1e-8 * direct.abs().max(1.0), "lag {m}: {} vs {direct}", joint[m]);
        }
    }

    #[test]
    fn forward_then_inverse_is_the_identity() {
        let mut re: Vec<f64> = (0..16).map(|i| (i as f64).sin()).collect();
        let mut im: Vec<f64> = (0..16).map(|i| (i as f64 * 0.3).cos()).collect();
        let (r0, i0) = (re.clone(), im.clone());
        fft(&mut re, &mut im, false);
        fft(&mut re, &mut im, true);
        for k in 0..16 {
            assert!((re[k] / 16.0 - r0[k]).abs() < 1e-12 && (im[k] / 16.0 - i0[k]).abs() < 1e-12);
        }
    }
}
