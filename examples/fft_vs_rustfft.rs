//! The hand-written FFT of the trajectory analysis (`mdrun::analysis::fft`: radix-2, AVX2,
//! no bit-reversal pass, split real/imaginary arrays) against rustfft, the maintained library
//! PME already uses, on what MSD and VACF do with them: a forward and an inverse transform of
//! one power-of-two length. Prints a Markdown table of µs per forward + inverse pair.
//!   cargo run --release --example fft_vs_rustfft
use mdrun::analysis::fft::FftPlan;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::time::Instant;

/// Best of five rounds of `reps` calls, µs per call.
fn best_us(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!("| length | mdrun's FFT µs | rustfft µs | rustfft / mdrun | largest difference of the round trip |");
    println!("|---|---|---|---|---|");
    for bits in [10, 12, 14, 16, 18] {
        let n = 1usize << bits;
        let signal: Vec<f64> = (0..n).map(|k| (0.37 * k as f64).sin() + 0.1 * ((k * 7919) % 113) as f64).collect();
        let reps = (1 << 22) / n;

        let plan = FftPlan::new(n);
        let (mut re, mut im) = (signal.clone(), vec![0.0; n]);
        let ours = best_us(reps, || {
            plan.forward(&mut re, &mut im);
            plan.inverse(&mut re, &mut im);
            // The pair scales by n; undo it so that the values stay bounded over the reps.
            let scale = 1.0 / n as f64;
            re.iter_mut().for_each(|v| *v *= scale);
            im.iter_mut().for_each(|v| *v *= scale);
        });
        let ours_error = re.iter().zip(&signal).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);

        let mut planner = FftPlanner::<f64>::new();
        let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
        let mut buffer: Vec<Complex<f64>> = signal.iter().map(|&x| Complex::new(x, 0.0)).collect();
        let mut scratch = vec![Complex::new(0.0, 0.0); fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len())];
        let theirs = best_us(reps, || {
            fwd.process_with_scratch(&mut buffer, &mut scratch);
            inv.process_with_scratch(&mut buffer, &mut scratch);
            let scale = 1.0 / n as f64;
            buffer.iter_mut().for_each(|v| *v *= scale);
        });
        let theirs_error = buffer.iter().zip(&signal).map(|(a, b)| (a.re - b).abs()).fold(0.0, f64::max);
        println!("| 2^{bits} | {ours:.1} | {theirs:.1} | {:.2} | {:.1e} / {:.1e} |", theirs / ours, ours_error, theirs_error);
    }
}
