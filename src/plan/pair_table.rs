//! The `system.toml` table of every pair style, read from the style's entry: `[potential]` with
//! `type` (a `PairStyle::toml_names`), `cutoff`, `shift`, `tail`, `mixing`; per species
//! `[potential.species.X]` with the style's parameters (and an optional cutoff), which give the
//! like pair X-X and, for styles that mix, the unlike pairs; `[[potential.pair]]` with `species
//! = ["A", "B"]` and the parameters of one pair, which wins over mixing.

use super::schema::{Locator, PairField, Q, QValue, toml_key};
use super::PlanError;
use crate::potential::pair::{Bound, Mix, PairParams, PairSpec, PairStyle};
use crate::system::System;
use crate::units::Dimension;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;


/// The pair style's part of `[potential]`, as written.
pub(crate) struct RawPairTable<'a> {
    /// The whole `[potential]` table (for messages about it).
    pub span: Range<usize>,
    pub cutoff: Option<&'a Q>,
    pub shift: Option<bool>,
    pub tail: Option<bool>,
    pub mixing: Option<&'a Spanned<String>>,
    pub species: &'a BTreeMap<String, Spanned<BTreeMap<String, Q>>>,
    pub pairs: &'a [Spanned<BTreeMap<String, Spanned<PairField>>>],
}

/// The style's table for `system`'s species, validated.
pub(crate) fn build(at: &Locator, style: &'static PairStyle, raw: &RawPairTable, system: &System) -> Result<PairSpec, PlanError> {
    let mix = match raw.mixing.map(|m| m.get_ref().as_str()) {
        None => Mix::Arithmetic,
        Some(_) if style.mix.is_none() => {
            return Err(at.error(&raw.mixing.unwrap().span(), "[potential] mixing", format!("{} has no mixing rule: give every unlike pair as a [[potential.pair]]", style.lammps)));
        }
        Some("lorentz-berthelot") | Some("arithmetic") => Mix::Arithmetic,
        Some("geometric") => Mix::Geometric,
        Some("sixthpower") => Mix::Sixthpower,
        Some(other) => {
            return Err(at.error(
                &raw.mixing.unwrap().span(),
                "[potential] mixing",
                format!("unknown rule '{other}'; expected \"lorentz-berthelot\", \"geometric\" or \"sixthpower\""),
            ));
        }
    };
    let global_cutoff = raw.cutoff.map(|q| at.positive(q, "[potential] cutoff", Dimension::Length)).transpose()?;
    let expected = || {
        let mut names: Vec<&str> = style.params.iter().map(|p| p.name).collect();
        names.push("cutoff");
        names.join(", ")
    };
    // One parameter by its rule.
    let value = |q: &Q, key: &str, dim: Dimension, bound: Bound| match bound {
        Bound::Positive => at.positive(q, key, dim),
        Bound::NonNegative => at.non_negative(q, key, dim),
        Bound::Any => at.quantity(q, key, dim),
    };

    // [potential.species.X]: (values, own cutoff).
    let mut per_species: BTreeMap<String, (Vec<f64>, Option<f64>)> = BTreeMap::new();
    for (name, table) in raw.species {
        let key = |k: &str| format!("[potential.species.{}] {k}", toml_key(name));
        let t = table.get_ref();
        if let Some(unknown) = t.keys().find(|k| *k != "cutoff" && !style.params.iter().any(|p| p.name == k.as_str())) {
            return Err(at.error(&t[unknown].span(), &key(unknown), format!("unknown key for {}; expected {}", style.lammps, expected())));
        }
        let mut values = Vec::new();
        for p in style.params {
            let q = t.get(p.name).ok_or_else(|| at.error(&table.span(), &key(p.name), format!("missing: {} takes {}", style.lammps, expected())))?;
            values.push(value(q, &key(p.name), p.dimension, p.bound)?);
        }
        let cutoff = t.get("cutoff").map(|q| at.positive(q, &key("cutoff"), Dimension::Length)).transpose()?;
        per_species.insert(name.clone(), (values, cutoff));
    }

    // [[potential.pair]]
    let mut explicit: BTreeMap<(String, String), (PairParams, Range<usize>)> = BTreeMap::new();
    for pair in raw.pairs {
        let fields = pair.get_ref();
        let names = match fields.get("species").map(|f| f.get_ref()) {
            Some(PairField::Names(n)) if n.len() == 2 => [n[0].clone(), n[1].clone()],
            _ => return Err(at.error(&pair.span(), "[[potential.pair]] species", "expected species = [\"A\", \"B\"]: the pair's two species")),
        };
        let label = format!("[[potential.pair]] {}-{}", names[0], names[1]);
        let quantity = |k: &str| -> Result<Option<Q>, PlanError> {
            match fields.get(k) {
                None => Ok(None),
                Some(f) => match f.get_ref() {
                    PairField::Number(x) => Ok(Some(Spanned::new(f.span(), QValue::Number(*x)))),
                    PairField::Text(t) => Ok(Some(Spanned::new(f.span(), QValue::Text(t.clone())))),
                    PairField::Names(_) => Err(at.error(&f.span(), &format!("{label} {k}"), "expected a number or a quantity such as \"2.5 A\"")),
                },
            }
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "species" && *k != "cutoff" && !style.params.iter().any(|p| p.name == k.as_str())) {
            return Err(at.error(&fields[unknown].span(), &format!("{label} {unknown}"), format!("unknown key for {}; expected species, {}", style.lammps, expected())));
        }
        let cutoff = match quantity("cutoff")? {
            Some(q) => at.positive(&q, &format!("{label} cutoff"), Dimension::Length)?,
            None => global_cutoff.ok_or_else(|| at.error(&pair.span(), &format!("{label} cutoff"), "no cutoff: give one here or [potential] cutoff"))?,
        };
        let mut values = Vec::new();
        for p in style.params {
            let key = format!("{label} {}", p.name);
            let q = quantity(p.name)?.ok_or_else(|| at.error(&pair.span(), &key, format!("missing: {} takes {}", style.lammps, expected())))?;
            values.push(value(&q, &key, p.dimension, p.bound)?);
        }
        let [a, b] = names;
        let key = if a <= b { (a, b) } else { (b, a) };
        if explicit.insert(key, (PairParams::new(&values, cutoff), pair.span())).is_some() {
            return Err(at.error(&pair.span(), &label, "this pair is given twice"));
        }
    }

    let n = system.species.len();
    let mut pairs = Vec::with_capacity(n * n);
    for a in &system.species {
        for b in &system.species {
            let key = if a.name <= b.name { (a.name.clone(), b.name.clone()) } else { (b.name.clone(), a.name.clone()) };
            if let Some((p, _)) = explicit.get(&key) {
                pairs.push(*p);
                continue;
            }
            let missing = |what: String| at.error(&raw.span, "[potential]", what);
            let (pa, pb) = match (per_species.get(&a.name), per_species.get(&b.name)) {
                (Some(pa), Some(pb)) if a.name == b.name || style.mix.is_some() => (pa, pb),
                (Some(_), Some(_)) => {
                    return Err(missing(format!(
                        "no {} parameters for the pair {}-{}: {} has no mixing rule; add a [[potential.pair]] with species = [\"{}\", \"{}\"] and {}",
                        style.title, a.name, b.name, style.lammps, a.name, b.name, expected()
                    )));
                }
                _ => {
                    let absent = if per_species.contains_key(&a.name) { &b.name } else { &a.name };
                    let params: Vec<&str> = style.params.iter().map(|p| p.name).collect();
                    return Err(missing(format!(
                        "no {} parameters for the pair {}-{}: add [potential.species.{}] with {}, or a [[potential.pair]] for it",
                        style.title, a.name, b.name, toml_key(absent), params.join(" and ")
                    )));
                }
            };
            let values = match style.mix {
                Some(rule) if a.name != b.name => rule(mix, &pa.0, &pb.0),
                _ => pa.0.clone(),
            };
            let cutoff = match (pa.1, pb.1) {
                (Some(ca), Some(cb)) if a.name == b.name => ca.max(cb),
                (Some(ca), Some(cb)) => if mix == Mix::Geometric { (ca * cb).sqrt() } else { 0.5 * (ca + cb) },
                _ => global_cutoff.ok_or_else(|| {
                    at.error(&raw.span, "[potential] cutoff", format!("no cutoff for the pair {}-{}: give [potential] cutoff or a cutoff per species", a.name, b.name))
                })?,
            };
            pairs.push(PairParams::new(&values, cutoff));
        }
    }
    for ((a, b), (_, span)) in &explicit {
        for name in [a, b] {
            if !system.species.iter().any(|s| &s.name == name) {
                return Err(at.error(span, "[[potential.pair]] species", format!("no atom of species '{name}' in the structure")));
            }
        }
    }
    let tail = raw.tail.unwrap_or(false);
    if tail && style.tail.is_none() {
        return Err(at.error(&raw.span, "[potential] tail", format!("{} has no tail correction", style.lammps)));
    }
    if tail && system.cell.pbc() != [true; 3] {
        return Err(at.error(&raw.span, "[potential] tail", "the tail correction assumes a homogeneous fluid filling a cell periodic on all three axes"));
    }
    Ok(PairSpec { style, pairs, shift: raw.shift.unwrap_or(false), tail })
}
