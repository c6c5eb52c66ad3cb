//! LAMMPS data files (`read_data`, `write_data`) and text dumps (`dump atom|custom|xyz`), in the
//! deck's units. Data-file errors name the file and line.

use super::cformat;
use super::world::{Atoms, Pair, World, int, num};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

pub const DUMP_COLUMNS: &[&str] = &[
    "id", "type", "element", "mass", "x", "y", "z", "xs", "ys", "zs", "xu", "yu", "zu", "ix", "iy", "iz", "vx", "vy", "vz", "fx", "fy", "fz", "q",
];

/// Reads a data file into the world (which must have no box yet). Returns the atom count.
pub fn read_data(w: &mut World, args: &[String]) -> Result<usize, String> {
    let [file, rest @ ..] = args else { return Err("expected: read_data file".into()) };
    if let Some(k) = rest.first() {
        return Err(format!("read_data keyword '{k}' is not supported (mdrun reads one data file into an empty box)"));
    }
    if w.bounds.is_some() {
        return Err("read_data needs an empty world (no box yet); use clear first".into());
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let lines: Vec<&str> = text.lines().collect();
    let at = |i: usize, m: String| format!("{file}:{}: {m}", i + 1);
    let mut natoms = None;
    let mut ntypes = None;
    let mut lo = [0.0; 3];
    let mut hi = [0.0; 3];
    let mut got_box = [false; 3];
    // Header: from line 2 to the first section keyword.
    let sections = ["Masses", "Atoms", "Velocities", "Pair Coeffs", "PairIJ Coeffs", "Bonds", "Angles", "Dihedrals", "Impropers", "Bond Coeffs", "Angle Coeffs"];
    let mut i = 1;
    while i < lines.len() {
        let l = lines[i].split('#').next().unwrap_or("").trim();
        if sections.iter().any(|s| l == *s || l.starts_with(&format!("{s} "))) {
            break;
        }
        i += 1;
        if l.is_empty() {
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            [n, "atoms"] => natoms = Some(int(n, "atoms").map_err(|m| at(i - 1, m))?),
            [n, "atom", "types"] => ntypes = Some(int(n, "atom types").map_err(|m| at(i - 1, m))?),
            [a, b, lab @ ("xlo" | "ylo" | "zlo"), _] => {
                let d = (lab.as_bytes()[0] - b'x') as usize;
                lo[d] = num(a, "box bound").map_err(|m| at(i - 1, m))?;
                hi[d] = num(b, "box bound").map_err(|m| at(i - 1, m))?;
                got_box[d] = true;
            }
            [xy, xz, yz, "xy", "xz", "yz"] => {
                for t in [xy, xz, yz] {
                    if num(t, "tilt").map_err(|m| at(i - 1, m))? != 0.0 {
                        return Err(at(i - 1, "triclinic boxes (non-zero tilt) are not supported".into()));
                    }
                }
            }
            [n, kind @ ("bonds" | "angles" | "dihedrals" | "impropers"), ..] | [n, kind @ ("bond" | "angle" | "dihedral" | "improper"), "types"] => {
                if int(n, kind).map_err(|m| at(i - 1, m))? != 0 {
                    return Err(at(i - 1, format!("{kind}: mdrun has no molecular topology (atom_style atomic/charge)")));
                }
            }
            _ => return Err(at(i - 1, format!("unexpected header line '{l}'"))),
        }
    }
    let natoms = natoms.ok_or_else(|| format!("{file}: the header has no 'N atoms' line"))?;
    let ntypes = ntypes.ok_or_else(|| format!("{file}: the header has no 'N atom types' line"))?;
    if natoms < 0 || ntypes < 1 {
        return Err(format!("{file}: needs a positive number of atom types and no negative atom count"));
    }
    if got_box != [true; 3] {
        return Err(format!("{file}: the header needs xlo xhi, ylo yhi and zlo zhi"));
    }
    let (natoms, ntypes) = (natoms as usize, ntypes as usize);
    w.bounds = Some((lo, hi));
    w.ntypes = ntypes;
    w.masses = vec![None; ntypes];
    w.type_names = vec![None; ntypes];
    let mut by_id: Vec<Option<(usize, [f64; 3], [i32; 3], f64)>> = vec![None; natoms];
    let mut velocities: Vec<Option<[f64; 3]>> = vec![None; natoms];
    while i < lines.len() {
        let header_line = i;
        let full = lines[i].trim();
        let (name, hint) = match full.split_once('#') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (full, ""),
        };
        i += 1;
        if name.is_empty() {
            continue;
        }
        let count = match name {
            "Masses" | "Pair Coeffs" => ntypes,
            "Atoms" | "Velocities" => natoms,
            other => return Err(at(header_line, format!("section '{other}' is not supported; mdrun reads Masses, Atoms, Velocities, Pair Coeffs"))),
        };
        // A blank line, then `count` lines.
        let mut body = Vec::with_capacity(count);
        while i < lines.len() && body.len() < count {
            let l = lines[i].split('#').next().unwrap_or("").trim();
            if !l.is_empty() {
                body.push((i, l));
            }
            i += 1;
        }
        if body.len() < count {
            return Err(at(header_line, format!("section {name} has {} lines; the header promises {count}", body.len())));
        }
        for (li, l) in body {
            let f: Vec<&str> = l.split_whitespace().collect();
            let e = |m: String| at(li, m);
            match name {
                "Masses" => {
                    let [t, m, ..] = f.as_slice() else { return Err(e("expected: type mass".into())) };
                    let t = int(t, "type").map_err(e)?;
                    if t < 1 || t as usize > ntypes {
                        return Err(e(format!("type {t} outside 1..{ntypes}")));
                    }
                    let m = num(m, "mass").map_err(e)?;
                    if m <= 0.0 {
                        return Err(e("mass must be positive".into()));
                    }
                    w.masses[t as usize - 1] = Some(m);
                }
                "Pair Coeffs" => {
                    let Some(Pair::Style { style, cutoff, coeffs }) = &mut w.pair else {
                        return Err(e("Pair Coeffs need a pair_style (lj/cut, morse) defined before read_data".into()));
                    };
                    let [t, rest @ ..] = f.as_slice() else { return Err(e(format!("expected: type {}", style.params.iter().map(|p| p.name).collect::<Vec<_>>().join(" ")))) };
                    let t = int(t, "type").map_err(e)? as usize;
                    if t < 1 || t > ntypes {
                        return Err(e(format!("type {t} outside 1..{ntypes}")));
                    }
                    let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                    let c = super::pair::parse_coeffs(style, &rest, *cutoff).map_err(e)?;
                    coeffs.insert((t, t), c);
                }
                "Atoms" => {
                    let charge = match hint {
                        "atomic" => false,
                        "charge" => true,
                        "" => w.charge,
                        other => return Err(at(header_line, format!("Atoms # {other}: mdrun reads atomic and charge styles"))),
                    };
                    let cols = if charge { 6 } else { 5 };
                    if f.len() != cols && f.len() != cols + 3 {
                        return Err(e(format!("expected {cols} columns (id type {}x y z) and optionally ix iy iz", if charge { "q " } else { "" })));
                    }
                    let id = int(f[0], "atom id").map_err(e)?;
                    if id < 1 || id as usize > natoms {
                        return Err(e(format!("atom id {id}: mdrun needs ids 1..{natoms}")));
                    }
                    let t = int(f[1], "type").map_err(e)?;
                    if t < 1 || t as usize > ntypes {
                        return Err(e(format!("type {t} outside 1..{ntypes}")));
                    }
                    let q = if charge { num(f[2], "charge").map_err(e)? } else { 0.0 };
                    let o = cols - 3;
                    let x = [num(f[o], "x").map_err(e)?, num(f[o + 1], "y").map_err(e)?, num(f[o + 2], "z").map_err(e)?];
                    let im = if f.len() == cols + 3 {
                        [0, 1, 2].map(|d| f[cols + d].parse::<i32>().map_err(|_| e(format!("image flag '{}' is not an integer", f[cols + d]))))
                    } else {
                        [Ok(0), Ok(0), Ok(0)]
                    };
                    let im = [im[0].clone()?, im[1].clone()?, im[2].clone()?];
                    let slot = &mut by_id[id as usize - 1];
                    if slot.is_some() {
                        return Err(e(format!("atom id {id} appears twice")));
                    }
                    *slot = Some((t as usize, x, im, q));
                }
                _ => {
                    let [id, vx, vy, vz, ..] = f.as_slice() else { return Err(e("expected: id vx vy vz".into())) };
                    let id = int(id, "atom id").map_err(e)?;
                    if id < 1 || id as usize > natoms {
                        return Err(e(format!("atom id {id} outside 1..{natoms}")));
                    }
                    velocities[id as usize - 1] = Some([num(vx, "vx").map_err(e)?, num(vy, "vy").map_err(e)?, num(vz, "vz").map_err(e)?]);
                }
            }
        }
    }
    let mut atoms = Atoms::default();
    for (k, a) in by_id.into_iter().enumerate() {
        let (t, x, im, q) = a.ok_or_else(|| format!("{file}: atom {} is missing from the Atoms section", k + 1))?;
        atoms.x.push(x);
        atoms.v.push(velocities[k].unwrap_or([0.0; 3]));
        atoms.types.push(t);
        atoms.images.push(im);
        atoms.q.push(q);
        atoms.mask.push(1);
    }
    w.atoms = atoms;
    w.wrap();
    Ok(natoms)
}

/// `write_data file`: header, Masses, Atoms (with image flags) and Velocities, full precision.
pub fn write_data(w: &World, args: &[String]) -> Result<(), String> {
    let [file, ..] = args else { return Err("expected: write_data file".into()) };
    if args.len() > 1 {
        return Err(format!("write_data keyword '{}' is not supported", args[1]));
    }
    let (lo, hi) = w.require_box()?;
    let f = |x: f64| cformat::e(x, 16);
    let mut s = String::new();
    let _ = writeln!(s, "LAMMPS data file via mdrun write_data, timestep = {}, units = {}\n", w.step, w.units.name);
    let _ = writeln!(s, "{} atoms\n{} atom types\n", w.atoms.len(), w.ntypes);
    for (d, l) in ["x", "y", "z"].iter().enumerate() {
        let _ = writeln!(s, "{} {} {l}lo {l}hi", f(lo[d]), f(hi[d]));
    }
    if w.masses.iter().any(Option::is_some) {
        s.push_str("\nMasses\n\n");
        for (t, m) in w.masses.iter().enumerate() {
            if let Some(m) = m {
                let _ = writeln!(s, "{} {}", t + 1, cformat::g(*m, 17));
            }
        }
    }
    let _ = writeln!(s, "\nAtoms # {}\n", if w.charge { "charge" } else { "atomic" });
    let a = &w.atoms;
    for i in 0..a.len() {
        let q = if w.charge { format!(" {}", cformat::g(a.q[i], 17)) } else { String::new() };
        let _ = writeln!(s, "{} {}{q} {} {} {} {} {} {}", i + 1, a.types[i], f(a.x[i][0]), f(a.x[i][1]), f(a.x[i][2]), a.images[i][0], a.images[i][1], a.images[i][2]);
    }
    s.push_str("\nVelocities\n\n");
    for i in 0..a.len() {
        let _ = writeln!(s, "{} {} {} {}", i + 1, f(a.v[i][0]), f(a.v[i][1]), f(a.v[i][2]));
    }
    crate::io::checkpoint::write_atomically(Path::new(file), s.as_bytes()).map_err(|e| format!("cannot write {file}: {e}"))
}

/// One frame of a LAMMPS text dump (deck units, atoms in id order).
#[allow(clippy::too_many_arguments)]
pub fn write_dump(
    w: &World,
    step: u64,
    style: &str,
    columns: &[String],
    elements: Option<&[String]>,
    path: &Path,
    truncate: bool,
    forces: Option<&[[f64; 3]]>,
) -> Result<(), String> {
    let (lo, hi) = w.require_box()?;
    let a = &w.atoms;
    let n = a.len();
    let name = |t: usize| match elements {
        Some(e) => e[t - 1].clone(),
        None => w.type_names[t - 1].clone().unwrap_or_else(|| t.to_string()),
    };
    let mut s = String::new();
    if style == "xyz" {
        let _ = writeln!(s, "{n}\n Atoms. Timestep: {step}");
        for i in 0..n {
            let x = a.x[i];
            let _ = writeln!(s, "{} {} {} {}", name(a.types[i]), cformat::g(x[0], 6), cformat::g(x[1], 6), cformat::g(x[2], 6));
        }
    } else {
        let bc = |d: usize| if w.periodic[d] { "pp" } else { "ff" };
        let _ = writeln!(s, "ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS {} {} {}", bc(0), bc(1), bc(2));
        for d in 0..3 {
            let _ = writeln!(s, "{} {}", cformat::e(lo[d], 16), cformat::e(hi[d], 16));
        }
        let _ = writeln!(s, "ITEM: ATOMS {}", columns.join(" "));
        let masses = w.atom_masses()?;
        let l = [0, 1, 2].map(|d| hi[d] - lo[d]);
        for i in 0..n {
            let mut row = Vec::with_capacity(columns.len());
            for c in columns {
                let d = |c: &str| (c.as_bytes()[c.len() - 1] - b'x') as usize;
                let text = match c.as_str() {
                    "id" => (i + 1).to_string(),
                    "type" => a.types[i].to_string(),
                    "element" => name(a.types[i]),
                    "mass" => cformat::g(masses[i], 6),
                    "x" | "y" | "z" => cformat::g(a.x[i][d(c)], 6),
                    "xs" | "ys" | "zs" => {
                        let k = (c.as_bytes()[0] - b'x') as usize;
                        cformat::g((a.x[i][k] - lo[k]) / l[k], 6)
                    }
                    "xu" | "yu" | "zu" => {
                        let k = (c.as_bytes()[0] - b'x') as usize;
                        cformat::g(a.x[i][k] + a.images[i][k] as f64 * l[k], 6)
                    }
                    "ix" | "iy" | "iz" => a.images[i][d(c)].to_string(),
                    "vx" | "vy" | "vz" => cformat::g(a.v[i][d(c)], 6),
                    "fx" | "fy" | "fz" => {
                        let f = forces.ok_or("forces are not available on the GPU platform")?;
                        cformat::g(f[i][d(c)] / w.units.force(), 6)
                    }
                    "q" => cformat::g(a.q[i], 6),
                    other => return Err(format!("unknown column {other}")),
                };
                row.push(text);
            }
            let _ = writeln!(s, "{}", row.join(" "));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(!truncate)
        .truncate(truncate)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.write_all(s.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
