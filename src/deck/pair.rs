//! Every pair style in LAMMPS decks, from its entry: `pair_style NAME Rc`, `pair_coeff I J
//! p1 .. pk [Rc]`, the `Pair Coeffs` section of data files, mixing of unset unlike pairs (for
//! styles that mix; LAMMPS's "All pair coeffs are not set" otherwise) and the table in internal
//! units for the run.

use super::units::UnitStyle;
use super::world::{Coeffs, num};
use crate::potential::pair::{Bound, Mix, PairParams, PairSpec, PairStyle};


/// `pair_style NAME Rc`: the global cutoff.
pub fn global_cutoff(style: &PairStyle, args: &[String]) -> Result<f64, String> {
    let [c] = args else { return Err(format!("pair_style {} needs a global cutoff: pair_style {} Rc", style.lammps, style.lammps)) };
    let cutoff = num(c, "global cutoff")?;
    if cutoff <= 0.0 {
        return Err("cutoff must be positive".into());
    }
    Ok(cutoff)
}

/// What `pair_coeff` takes for the style, for messages: "I J epsilon sigma [cutoff]".
pub fn usage(style: &PairStyle) -> String {
    let names: Vec<&str> = style.params.iter().map(|p| p.name).collect();
    format!("pair_style {}: expected pair_coeff I J {} [cutoff]", style.lammps, names.join(" "))
}

/// The parameters and cutoff of one `pair_coeff` (after I J) or `Pair Coeffs` line (after the
/// type), deck units.
pub fn parse_coeffs(style: &PairStyle, args: &[String], global: f64) -> Result<(Vec<f64>, f64), String> {
    let k = style.params.len();
    if args.len() != k && args.len() != k + 1 {
        return Err(usage(style));
    }
    let mut values = Vec::with_capacity(k);
    for (p, text) in style.params.iter().zip(args) {
        let v = num(text, p.name)?;
        match p.bound {
            Bound::Positive if v <= 0.0 => return Err(format!("{} must be positive (got {v})", p.name)),
            Bound::NonNegative if v < 0.0 => return Err(format!("{} must not be negative (got {v})", p.name)),
            _ => {}
        }
        values.push(v);
    }
    let cutoff = match args.get(k) {
        Some(c) => num(c, "cutoff")?,
        None => global,
    };
    if cutoff <= 0.0 {
        return Err(format!("cutoff must be positive (got {cutoff})"));
    }
    Ok((values, cutoff))
}

/// `pair_coeff I J ...` into `coeffs` for the `n` types.
pub fn pair_coeff(style: &PairStyle, coeffs: &mut Coeffs, global: f64, n: usize, args: &[String]) -> Result<(), String> {
    if args.len() < 2 {
        return Err(usage(style));
    }
    let (values, cutoff) = parse_coeffs(style, &args[2..], global)?;
    let ri = super::world::type_range(&args[0], n)?;
    let rj = super::world::type_range(&args[1], n)?;
    let mut set = 0;
    for i in ri {
        for j in rj.clone() {
            if j >= i {
                coeffs.insert((i, j), (values.clone(), cutoff));
                set += 1;
            }
        }
    }
    if set == 0 {
        return Err(format!("pair_coeff {} {} sets no pair (the first type must not exceed the second)", args[0], args[1]));
    }
    Ok(())
}

/// The table for the run in internal units: unset unlike pairs mixed by `mix` where the style
/// mixes.
pub fn to_spec(style: &'static PairStyle, coeffs: &Coeffs, n: usize, mix: Mix, shift: bool, tail: bool, u: &UnitStyle) -> Result<PairSpec, String> {
    let get = |i: usize, j: usize| coeffs.get(&(i.min(j), i.max(j)));
    let scale: Vec<f64> = style.params.iter().map(|p| u.of(p.dimension)).collect();
    let mut pairs = Vec::with_capacity(n * n);
    for i in 1..=n {
        for j in 1..=n {
            let (values, cutoff) = match (get(i, j), style.mix) {
                (Some((v, c)), _) => (v.clone(), *c),
                (None, Some(rule)) => {
                    let (Some(a), Some(b)) = (get(i, i), get(j, j)) else {
                        return Err(format!("pair coefficients for types {} {} are not set (pair_coeff)", i.min(j), i.max(j)));
                    };
                    (rule(mix, &a.0, &b.0), mix.distance(a.1, b.1))
                }
                (None, None) => {
                    return Err(format!(
                        "pair coefficients for types {} {} are not set (pair_coeff): pair_style {} does not mix, every pair of types needs its coefficients",
                        i.min(j),
                        i.max(j),
                        style.lammps
                    ));
                }
            };
            let internal: Vec<f64> = values.iter().zip(&scale).map(|(v, s)| v * s).collect();
            pairs.push(PairParams::new(&internal, cutoff * u.length));
        }
    }
    // As in LAMMPS, `pair_modify tail yes` does nothing for a style without a tail correction.
    Ok(PairSpec { style, pairs, shift, tail: tail && style.tail.is_some() })
}
