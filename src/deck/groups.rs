//! Groups of atoms and per-atom settings: LAMMPS's `group` and `set` commands.
//!
//! A group is a bit in each atom's mask (`Atoms::mask`), as in LAMMPS: membership is fixed when
//! the group is defined (a later `set type` does not move atoms between `group ... type`
//! groups), atoms created later belong to `all` only, and `replicate` copies the masks.
//! `set type/fraction` draws LAMMPS's Park-Miller number per atom from the seed and the atom's
//! coordinates, so the same atoms change type as in LAMMPS whatever the processor layout.

use super::interp::Deck;
use super::random::RanPark;
use super::world::{World, int, num, type_range};

/// LAMMPS's limit on groups (one bit of an int each).
const MAX_GROUPS: usize = 32;

impl World {
    /// The mask bit of group `name`.
    pub fn group_bit(&self, name: &str) -> Result<u32, String> {
        match self.groups.iter().position(|g| g == name) {
            Some(k) => Ok(1 << k),
            None => Err(format!("no group '{name}' (defined: {}); define it with the group command", self.groups.join(", "))),
        }
    }

    /// Indices of the atoms a `set` style selects: `atom` IDs, `type`s, a `group`, a `region`.
    fn select(&self, style: &str, id: &str) -> Result<Vec<bool>, String> {
        let n = self.atoms.len();
        Ok(match style {
            "atom" => {
                let ids = type_range(id, n).map_err(|_| format!("set atom {id}: expected an atom ID or range within 1..{n}"))?;
                (1..=n).map(|i| ids.contains(&i)).collect()
            }
            "type" => {
                let types = type_range(id, self.ntypes)?;
                self.atoms.types.iter().map(|t| types.contains(t)).collect()
            }
            "group" => {
                let bit = self.group_bit(id)?;
                self.atoms.mask.iter().map(|m| m & bit != 0).collect()
            }
            "region" => {
                let region = self.regions.get(id).ok_or_else(|| format!("no region '{id}'"))?;
                self.atoms.x.iter().map(|&x| region.contains(x)).collect()
            }
            "mol" => return Err("set mol: mdrun has no molecules (atom_style atomic or charge)".into()),
            other => return Err(format!("set style '{other}': expected atom, type, group or region")),
        })
    }
}

impl Deck {
    /// `group ID style args`: type, id, region, empty, clear, delete, union, intersect, subtract.
    pub(super) fn group(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        w.require_box()?;
        let [name, style, rest @ ..] = args else { return Err("expected: group ID style args".into()) };
        if style == "delete" {
            if name == "all" {
                return Err("group all cannot be deleted".into());
            }
            let k = w.groups.iter().position(|g| g == name).ok_or_else(|| format!("no group '{name}' to delete"))?;
            // Later groups keep their bits: the slot is emptied, not removed.
            w.groups[k] = String::new();
            for m in &mut w.atoms.mask {
                *m &= !(1 << k);
            }
            return Ok(());
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("group ID '{name}': use letters, digits and underscores"));
        }
        let n = w.atoms.len();
        let chosen: Vec<bool> = match style.as_str() {
            "type" | "id" => {
                let (limit, values): (usize, Vec<usize>) = if style == "type" {
                    (w.ntypes, w.atoms.types.clone())
                } else {
                    (n, (1..=n).collect())
                };
                match rest {
                    [] => return Err(format!("group {style} needs values")),
                    [op, a, b] if op == "<>" => {
                        let (a, b) = (int(a, "group bound")?, int(b, "group bound")?);
                        values.iter().map(|&v| (v as i64) >= a && (v as i64) <= b).collect()
                    }
                    [op, a] if ["<", "<=", ">", ">=", "==", "!="].contains(&op.as_str()) => {
                        let a = int(a, "group bound")?;
                        values
                            .iter()
                            .map(|&v| {
                                let v = v as i64;
                                match op.as_str() {
                                    "<" => v < a,
                                    "<=" => v <= a,
                                    ">" => v > a,
                                    ">=" => v >= a,
                                    "==" => v == a,
                                    _ => v != a,
                                }
                            })
                            .collect()
                    }
                    list => {
                        let ranges = list.iter().map(|t| type_range(t, limit)).collect::<Result<Vec<_>, _>>()?;
                        values.iter().map(|v| ranges.iter().any(|r| r.contains(v))).collect()
                    }
                }
            }
            "region" => {
                let [region] = rest else { return Err("expected: group ID region REGION-ID".into()) };
                w.select("region", region)?
            }
            "empty" => vec![false; n],
            "clear" => {
                if name == "all" {
                    return Err("group all cannot be cleared".into());
                }
                let bit = w.group_bit(name)?;
                for m in &mut w.atoms.mask {
                    *m &= !bit;
                }
                return Ok(());
            }
            "union" | "intersect" | "subtract" => {
                if rest.is_empty() || (style != "union" && rest.len() < 2) {
                    return Err(format!("group {style} needs {} group(s)", if style == "union" { 1 } else { 2 }));
                }
                let bits = rest.iter().map(|g| w.group_bit(g)).collect::<Result<Vec<_>, _>>()?;
                w.atoms
                    .mask
                    .iter()
                    .map(|m| match style.as_str() {
                        "union" => bits.iter().any(|b| m & b != 0),
                        "intersect" => bits.iter().all(|b| m & b != 0),
                        _ => m & bits[0] != 0 && bits[1..].iter().all(|b| m & b == 0),
                    })
                    .collect()
            }
            "variable" | "molecule" | "include" | "dynamic" | "static" => {
                return Err(format!("group style '{style}' is not supported; mdrun supports type, id, region, empty, clear, delete, union, intersect, subtract"));
            }
            other => return Err(format!("unknown group style '{other}'")),
        };
        // A group that exists gains atoms (LAMMPS adds to it); a new one takes a free bit.
        let k = match w.groups.iter().position(|g| g == name) {
            Some(k) => k,
            None => match w.groups.iter().position(String::is_empty) {
                Some(free) => {
                    w.groups[free] = name.clone();
                    free
                }
                None if w.groups.len() < MAX_GROUPS => {
                    w.groups.push(name.clone());
                    w.groups.len() - 1
                }
                None => return Err(format!("too many groups: LAMMPS allows {MAX_GROUPS} (all included)")),
            },
        };
        for (m, &c) in w.atoms.mask.iter_mut().zip(&chosen) {
            if c {
                *m |= 1 << k;
            }
        }
        let count = w.atoms.mask.iter().filter(|&&m| m & (1 << k) != 0).count();
        self.say(&format!("{count} atoms in group {name}"));
        Ok(())
    }

    /// `set style ID keyword value ...`: type, type/fraction, charge, x y z, vx vy vz, image;
    /// `mass` as LAMMPS has it (only for atom styles with per-atom masses, which mdrun does
    /// not have).
    pub(super) fn set(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        w.require_box()?;
        let [style, id, rest @ ..] = args else { return Err("expected: set style ID keyword value ...".into()) };
        if w.atoms.len() == 0 {
            return Err("set: no atoms exist yet".into());
        }
        if rest.is_empty() {
            return Err("set needs at least one keyword".into());
        }
        let mut rest: &[String] = rest;
        let selected = w.select(style, id)?;
        let mut lines = vec!["Setting atom values ...".to_string()];
        while let [keyword, after @ ..] = rest {
            let take = |k: usize| -> Result<&[String], String> {
                after.get(..k).ok_or_else(|| format!("set {keyword} needs {k} value(s)"))
            };
            let mut count = 0;
            let used = match keyword.as_str() {
                "type" => {
                    let t = new_type(&take(1)?[0], w.ntypes)?;
                    for (i, _) in selected.iter().enumerate().filter(|(_, s)| **s) {
                        w.atoms.types[i] = t;
                        count += 1;
                    }
                    1
                }
                "type/fraction" => {
                    let v = take(3)?;
                    let t = new_type(&v[0], w.ntypes)?;
                    let fraction = num(&v[1], "fraction")?;
                    if !(0.0..=1.0).contains(&fraction) {
                        return Err(format!("set type/fraction: fraction must be within 0..1 (got {fraction})"));
                    }
                    let seed = int(&v[2], "seed")?;
                    if seed <= 0 || seed > i32::MAX as i64 {
                        return Err(format!("set type/fraction: seed must be a positive 32-bit integer (got {seed})"));
                    }
                    let mut rng = RanPark::new(1)?;
                    for (i, _) in selected.iter().enumerate().filter(|(_, s)| **s) {
                        rng.reset(seed as i32, w.atoms.x[i]);
                        if rng.uniform() >= fraction {
                            continue;
                        }
                        w.atoms.types[i] = t;
                        count += 1;
                    }
                    3
                }
                "type/ratio" | "type/subset" => {
                    return Err(format!("set {keyword} is not supported; mdrun supports type, type/fraction, charge, x, y, z, vx, vy, vz, image"));
                }
                "mass" => {
                    return Err(format!("Cannot set attribute mass for atom style {}: masses are per type here; use the mass command", if w.charge { "charge" } else { "atomic" }));
                }
                "charge" => {
                    if !w.charge {
                        return Err("Cannot set attribute charge for atom style atomic".into());
                    }
                    let q = num(&take(1)?[0], "charge")?;
                    for (i, _) in selected.iter().enumerate().filter(|(_, s)| **s) {
                        w.atoms.q[i] = q;
                        count += 1;
                    }
                    1
                }
                "x" | "y" | "z" | "vx" | "vy" | "vz" => {
                    let value = num(&take(1)?[0], keyword.as_str())?;
                    let d = match keyword.as_str() {
                        "x" | "vx" => 0,
                        "y" | "vy" => 1,
                        _ => 2,
                    };
                    for (i, _) in selected.iter().enumerate().filter(|(_, s)| **s) {
                        if keyword.starts_with('v') {
                            w.atoms.v[i][d] = value;
                        } else {
                            w.atoms.x[i][d] = value;
                        }
                        count += 1;
                    }
                    1
                }
                "image" => {
                    let v = take(3)?;
                    let flags = v.iter().map(|f| if f == "NULL" { Ok(None) } else { int(f, "image flag").map(|x| Some(x as i32)) }).collect::<Result<Vec<_>, _>>()?;
                    for (i, _) in selected.iter().enumerate().filter(|(_, s)| **s) {
                        for d in 0..3 {
                            if let Some(f) = flags[d] {
                                w.atoms.images[i][d] = f;
                            }
                        }
                        count += 1;
                    }
                    3
                }
                other => return Err(format!("set keyword '{other}' is not supported; mdrun supports type, type/fraction, charge, x, y, z, vx, vy, vz, image")),
            };
            lines.push(format!("  {count} settings made for {keyword}"));
            rest = &after[used..];
        }
        if args.iter().any(|a| a == "x" || a == "y" || a == "z") {
            w.wrap();
        }
        for line in lines {
            self.say(&line);
        }
        self.changed();
        Ok(())
    }
}

/// A type for `set type`: 1..=ntypes.
fn new_type(text: &str, ntypes: usize) -> Result<usize, String> {
    let t = int(text, "atom type")?;
    if t < 1 || t as usize > ntypes {
        return Err(format!("atom type {t} is outside 1..{ntypes}"));
    }
    Ok(t as usize)
}
