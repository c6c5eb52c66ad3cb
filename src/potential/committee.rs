//! A committee of learned models (`mdrun train --committee N`): the members see the same graph
//! and the first drives the dynamics; how far their forces disagree is the committee's estimate
//! of the error where the run is now (DeePMD's model deviation, which DP-GEN, GPUMD and FLARE
//! use to find what the training data lacks).

use crate::cell::Vec3;
pub use crate::thermo::ForceDeviation;

/// The deviation of the members' forces on the same atoms (at least one member; each member's
/// slice has one force per atom).
pub fn force_deviation(members: &[&[Vec3]]) -> ForceDeviation {
    let n = members.first().map_or(0, |m| m.len());
    let k = members.len() as f64;
    let (mut max, mut sum, mut atom) = (0.0f64, 0.0, 0);
    for i in 0..n {
        // Differences from the first member (exactly zero for identical members), then their
        // variance about their mean.
        let first = members[0][i];
        let shifted = |m: &&[Vec3], a: usize| m[i][a] - first[a];
        let mut mean = [0.0; 3];
        for m in members {
            for a in 0..3 {
                mean[a] += shifted(m, a) / k;
            }
        }
        let spread: f64 = members.iter().map(|m| (0..3).map(|a| (shifted(m, a) - mean[a]).powi(2)).sum::<f64>()).sum::<f64>() / k;
        let e = spread.sqrt();
        // NaN forces make NaN deviations: they must win the max, not vanish from it.
        if e > max || e.is_nan() && !max.is_nan() {
            (max, atom) = (e, i);
        }
        sum += e;
    }
    ForceDeviation { max, mean: if n > 0 { sum / n as f64 } else { 0.0 }, atom }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_members_agree() {
        let f = vec![[1.0, -2.0, 0.5], [0.3, 0.0, -4.0]];
        let d = force_deviation(&[&f, &f, &f]);
        assert_eq!((d.max, d.mean), (0.0, 0.0));
    }

    #[test]
    fn two_members_deviate_by_half_their_difference() {
        // Members F and F + δ: each is |δ|/2 from the mean.
        let a = vec![[0.0; 3], [1.0, 1.0, 1.0]];
        let b = vec![[0.3, 0.0, 0.4], [1.0, 1.0, 1.0]];
        let d = force_deviation(&[&a, &b]);
        assert!((d.max - 0.25).abs() < 1e-15 && (d.mean - 0.125).abs() < 1e-15 && d.atom == 0, "{d:?}");
    }
}
