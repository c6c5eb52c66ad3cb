//! What a deck builds before it runs: units, box, lattice, regions, atoms, masses, force field,
//! fixes and run settings, in the deck's own units (so that LAMMPS's algorithms that depend on
//! the exact numbers, such as `velocity ... loop geom`, see LAMMPS's numbers). `System` in
//! internal units is made from it for each run ([`World::system`]).

use super::units::UnitStyle;
use crate::cell::{Cell, Vec3};
use crate::system::{Species, System};
use std::collections::BTreeMap;

/// Box bounds beyond this are "INF".
const BIG: f64 = 1.0e80;

/// Everything `clear` resets.
#[derive(Clone, Debug)]
pub struct World {
    pub units: UnitStyle,
    /// Set by an explicit `units` command (which must come before the box).
    pub units_given: bool,
    pub charge: bool,
    pub periodic: [bool; 3],
    pub lattice: Option<Lattice>,
    pub regions: BTreeMap<String, Region>,
    /// (lo, hi) in deck units.
    pub bounds: Option<(Vec3, Vec3)>,
    pub ntypes: usize,
    /// Per type (index type - 1), deck units.
    pub masses: Vec<Option<f64>>,
    /// Element names per type, from `pair_coeff * * H O` with a model.
    pub type_names: Vec<Option<String>>,
    pub atoms: Atoms,
    pub pair: Option<Pair>,
    pub shift: bool,
    pub tail: bool,
    pub mix: Mix,
    /// Skin in deck units (None: the style's default).
    pub skin: Option<f64>,
    pub every: u64,
    pub delay: u64,
    pub check: bool,
    pub fixes: Vec<Fix>,
    /// min_style and min_modify.
    pub min: crate::minimize::MinChoice,
    /// A thermostat's state read by read_restart, for the next fix nvt/npt/nph or temp/csvr
    /// (LAMMPS hands a restart's fix state to the fix defined again after it).
    pub restart_fix_state: Option<crate::integrate::IntegratorState>,
    /// Group names by bit (`group` command); "all" is bit 0. LAMMPS allows 32.
    pub groups: Vec<String>,
    /// Deck units; None: the style's default.
    pub dt: Option<f64>,
    pub step: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Atoms {
    /// Deck units, absolute LAMMPS coordinates, in atom-ID order.
    pub x: Vec<Vec3>,
    pub v: Vec<Vec3>,
    /// 1-based types.
    pub types: Vec<usize>,
    pub images: Vec<[i32; 3]>,
    pub q: Vec<f64>,
    /// Group membership, one bit per group of `World::groups` (bit 0: all).
    pub mask: Vec<u32>,
}

impl Atoms {
    pub fn len(&self) -> usize {
        self.x.len()
    }

    fn push(&mut self, t: usize, x: Vec3) {
        self.x.push(x);
        self.v.push([0.0; 3]);
        self.types.push(t);
        self.images.push([0; 3]);
        self.q.push(0.0);
        self.mask.push(1);
    }
}

#[derive(Clone, Debug)]
pub struct Lattice {
    /// Unit-cell edges (orthogonal, along x, y, z) in units of the scale.
    pub aspect: Vec3,
    /// Fractional basis positions.
    pub basis: Vec<Vec3>,
    pub scale: f64,
    pub origin: Vec3,
    /// xlattice, ylattice, zlattice (deck units).
    pub spacing: Vec3,
}

impl Lattice {
    /// Box coordinates of lattice point (i, j, k) + basis b, as LAMMPS's lattice2box computes them.
    fn point(&self, ijk: [i64; 3], b: Vec3) -> Vec3 {
        [0, 1, 2].map(|d| {
            let u = self.aspect[d] * (ijk[d] as f64 + b[d]);
            u * self.scale + self.spacing[d] * self.origin[d]
        })
    }
}

#[derive(Clone, Debug)]
pub enum Region {
    Block { lo: Vec3, hi: Vec3, inside: bool },
    Sphere { centre: Vec3, radius: f64, inside: bool },
}

impl Region {
    pub fn contains(&self, x: Vec3) -> bool {
        match self {
            Region::Block { lo, hi, inside } => {
                let within = (0..3).all(|d| x[d] >= lo[d] && x[d] <= hi[d]);
                within == *inside
            }
            Region::Sphere { centre, radius, inside } => {
                let r2: f64 = (0..3).map(|d| (x[d] - centre[d]).powi(2)).sum();
                (r2 <= radius * radius) == *inside
            }
        }
    }
}

/// A deck's pair coefficients: (i, j) with i <= j → (parameters, cutoff), deck units.
pub type Coeffs = std::collections::BTreeMap<(usize, usize), (Vec<f64>, f64)>;

#[derive(Clone, Debug, PartialEq)]
pub enum Pair {
    /// A pair style of crate::potential::pair (read through deck/pair.rs).
    Style {
        style: &'static crate::potential::pair::PairStyle,
        /// Global cutoff, deck units.
        cutoff: f64,
        coeffs: Coeffs,
    },
    Mcgm { model: std::path::PathBuf },
}

pub use crate::potential::pair::Mix;

#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub id: String,
    pub kind: FixKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FixKind {
    Nve,
    /// Deck units.
    Langevin { t_start: f64, t_stop: f64, damp: f64, seed: i64, zero: bool },
    /// fix nvt/npt/nph.
    Nh(Box<super::ensembles::NhFix>),
    /// fix temp/csvr.
    Csvr(super::ensembles::CsvrFix),
    /// fix press/berendsen.
    PressBerendsen(super::ensembles::BerendsenFix),
}

pub use super::args::{int, num, pairs, yes_no};


/// A type range: `3`, `*`, `2*`, `*3`, `2*4`, within 1..=n.
pub fn type_range(text: &str, n: usize) -> Result<std::ops::RangeInclusive<usize>, String> {
    let parse = |s: &str, default: usize| -> Result<usize, String> {
        if s.is_empty() {
            Ok(default)
        } else {
            s.parse::<usize>().map_err(|_| format!("bad atom type '{text}'"))
        }
    };
    let (lo, hi) = match text.split_once('*') {
        Some((a, b)) => (parse(a, 1)?, parse(b, n)?),
        None => {
            let t = parse(text, 0)?;
            (t, t)
        }
    };
    if lo < 1 || hi > n || lo > hi {
        return Err(format!("atom type '{text}' is outside 1..{n}"));
    }
    Ok(lo..=hi)
}

impl World {
    pub fn new() -> World {
        World {
            units: UnitStyle::parse("lj").expect("lj"),
            units_given: false,
            charge: false,
            periodic: [true; 3],
            lattice: None,
            regions: BTreeMap::new(),
            bounds: None,
            ntypes: 0,
            masses: Vec::new(),
            type_names: Vec::new(),
            atoms: Atoms::default(),
            pair: None,
            shift: false,
            tail: false,
            mix: Mix::Geometric,
            skin: None,
            every: 1,
            delay: 0,
            check: true,
            fixes: Vec::new(),
            min: Default::default(),
            restart_fix_state: None,
            groups: vec!["all".to_string()],
            dt: None,
            step: 0,
        }
    }

    pub fn dt(&self) -> f64 {
        self.dt.unwrap_or(self.units.default_dt)
    }

    pub fn skin(&self) -> f64 {
        self.skin.unwrap_or(self.units.default_skin)
    }

    pub fn require_box(&self) -> Result<(Vec3, Vec3), String> {
        self.bounds.ok_or_else(|| "no simulation box yet: create_box or read_data comes first".to_string())
    }

    fn require_no_box(&self, what: &str) -> Result<(), String> {
        if self.bounds.is_some() {
            return Err(format!("{what} must come before the simulation box is defined"));
        }
        Ok(())
    }

    pub fn units_cmd(&mut self, args: &[String]) -> Result<(), String> {
        self.require_no_box("units")?;
        let [name] = args else { return Err("expected one unit style (lj, metal or real)".into()) };
        self.units = UnitStyle::parse(name)
            .ok_or_else(|| format!("unit style '{name}' is not supported; mdrun supports {}", UnitStyle::NAMES))?;
        self.units_given = true;
        self.lattice = None;
        Ok(())
    }

    pub fn atom_style(&mut self, args: &[String]) -> Result<(), String> {
        self.require_no_box("atom_style")?;
        match args.first().map(String::as_str) {
            Some("atomic") if args.len() == 1 => self.charge = false,
            Some("charge") if args.len() == 1 => self.charge = true,
            _ => return Err(format!("atom style '{}' is not supported; mdrun supports atomic and charge", args.join(" "))),
        }
        Ok(())
    }

    pub fn boundary(&mut self, args: &[String]) -> Result<(), String> {
        self.require_no_box("boundary")?;
        if args.len() != 3 {
            return Err("expected three boundary styles (x y z), e.g. p p p".into());
        }
        for d in 0..3 {
            self.periodic[d] = match args[d].as_str() {
                "p" => true,
                "f" => false,
                other => return Err(format!("boundary style '{other}' is not supported; mdrun supports p (periodic) and f (fixed, non-periodic)")),
            };
        }
        Ok(())
    }

    pub fn lattice_cmd(&mut self, args: &[String]) -> Result<(), String> {
        let style = args.first().ok_or("expected a lattice style and scale")?;
        if style == "none" {
            let scale = num(args.get(1).ok_or("lattice none needs a scale")?, "lattice none scale")?;
            self.lattice = Some(Lattice { aspect: [1.0; 3], basis: Vec::new(), scale, origin: [0.0; 3], spacing: [scale; 3] });
            return Ok(());
        }
        let scale = num(args.get(1).ok_or("expected a scale after the lattice style")?, "lattice scale")?;
        if scale <= 0.0 {
            return Err(format!("lattice scale must be positive (got {scale})"));
        }
        // The same unit cells as system.toml's lattices (crate::lattice), plus custom.
        let (mut aspect, mut basis): (Vec3, Vec<Vec3>) = match style.as_str() {
            "custom" => ([1.0; 3], Vec::new()),
            name => match crate::lattice::LatticeKind::parse(name) {
                Some(kind) => (kind.aspect(), kind.basis()),
                None => {
                    return Err(format!("lattice style '{name}' is not supported; mdrun supports {}, custom (and none)", crate::lattice::LatticeKind::NAMES));
                }
            },
        };
        let mut origin = [0.0; 3];
        let mut i = 2;
        let vec3 = |a: &[String], i: usize, what: &str| -> Result<Vec3, String> {
            if a.len() < i + 3 {
                return Err(format!("lattice {what} needs three numbers"));
            }
            Ok([num(&a[i], what)?, num(&a[i + 1], what)?, num(&a[i + 2], what)?])
        };
        while i < args.len() {
            match args[i].as_str() {
                "origin" => {
                    origin = vec3(args, i + 1, "origin")?;
                    if origin.iter().any(|&o| !(0.0..1.0).contains(&o)) {
                        return Err("lattice origin values must be in [0, 1)".into());
                    }
                    i += 4;
                }
                "basis" => {
                    basis.push(vec3(args, i + 1, "basis")?);
                    i += 4;
                }
                k @ ("a1" | "a2" | "a3") => {
                    let d = (k.as_bytes()[1] - b'1') as usize;
                    let v = vec3(args, i + 1, k)?;
                    for e in 0..3 {
                        if e != d && v[e] != 0.0 {
                            return Err(format!("lattice {k} {} {} {}: mdrun supports orthogonal lattice vectors along x, y and z only", v[0], v[1], v[2]));
                        }
                    }
                    if v[d] <= 0.0 {
                        return Err(format!("lattice {k} must point along +{}", ["x", "y", "z"][d]));
                    }
                    aspect[d] = v[d];
                    i += 4;
                }
                "orient" => {
                    let want = [["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]];
                    let d = ["x", "y", "z"].iter().position(|a| args.get(i + 1).is_some_and(|b| b == a)).ok_or("lattice orient needs x, y or z")?;
                    if args.len() < i + 5 || args[i + 2..i + 5] != want[d] {
                        return Err("lattice orient: mdrun supports the default orientation only (orient x 1 0 0 orient y 0 1 0 orient z 0 0 1)".into());
                    }
                    i += 5;
                }
                "spacing" => return Err("lattice spacing is not supported; mdrun takes the spacing from the unit cell".into()),
                other => return Err(format!("unknown lattice keyword '{other}'; expected origin, basis, a1, a2, a3, orient")),
            }
        }
        if basis.is_empty() {
            return Err("lattice custom needs at least one basis atom".into());
        }
        // In lj units the scale is a reduced density; otherwise a length (LAMMPS).
        let scale = if self.units.name == "lj" {
            let volume = aspect[0] * aspect[1] * aspect[2];
            (basis.len() as f64 / volume / scale).powf(1.0 / 3.0)
        } else {
            scale
        };
        let spacing = [0, 1, 2].map(|d| aspect[d] * scale);
        self.lattice = Some(Lattice { aspect, basis, scale, origin, spacing });
        Ok(())
    }

    /// Spacing for `units lattice` (the default of region, velocity set, displace_atoms).
    fn lattice_spacing(&self, what: &str) -> Result<Vec3, String> {
        self.lattice
            .as_ref()
            .map(|l| l.spacing)
            .ok_or_else(|| format!("{what} uses lattice units (the default) but no lattice is defined; add a lattice command or 'units box'"))
    }

    /// Reads trailing `units box|lattice` and `side in|out` style keywords: returns the scale.
    pub(super) fn units_keyword(&self, kw: &[(&str, &str)], what: &str) -> Result<Vec3, String> {
        let mut lattice_units = true;
        for &(k, v) in kw {
            if k == "units" {
                lattice_units = match v {
                    "box" => false,
                    "lattice" => true,
                    _ => return Err(format!("{what}: units must be box or lattice")),
                };
            }
        }
        if lattice_units { self.lattice_spacing(what) } else { Ok([1.0; 3]) }
    }

    pub fn region(&mut self, args: &[String]) -> Result<(), String> {
        let [id, style, rest @ ..] = args else { return Err("expected: region ID style args".into()) };
        let nargs = match style.as_str() {
            "block" => 6,
            "sphere" => 4,
            "delete" => return Err("region delete is not supported".into()),
            other => return Err(format!("region style '{other}' is not supported; mdrun supports block and sphere")),
        };
        if rest.len() < nargs {
            return Err(format!("region {style} needs {nargs} numbers"));
        }
        let kw = pairs(&rest[nargs..], "region")?;
        let mut inside = true;
        for &(k, v) in &kw {
            match k {
                "units" => {}
                "side" => inside = match v {
                    "in" => true,
                    "out" => false,
                    _ => return Err("region side must be in or out".into()),
                },
                other => return Err(format!("region keyword '{other}' is not supported; mdrun supports units and side")),
            }
        }
        let scale = self.units_keyword(&kw, "region")?;
        let bound = |text: &str, d: usize, hi: bool| -> Result<f64, String> {
            match text {
                "INF" => Ok(if hi { BIG } else { -BIG }),
                "EDGE" => {
                    let (lo, up) = self.require_box()?;
                    Ok(if hi { up[d] } else { lo[d] })
                }
                _ => Ok(num(text, "region bound")? * scale[d]),
            }
        };
        let region = if style == "block" {
            let lo = [bound(&rest[0], 0, false)?, bound(&rest[2], 1, false)?, bound(&rest[4], 2, false)?];
            let hi = [bound(&rest[1], 0, true)?, bound(&rest[3], 1, true)?, bound(&rest[5], 2, true)?];
            if (0..3).any(|d| lo[d] > hi[d]) {
                return Err("region block: a lower bound is above its upper bound".into());
            }
            Region::Block { lo, hi, inside }
        } else {
            let centre = [0, 1, 2].map(|d| num(&rest[d], "sphere centre").map(|x| x * scale[d]));
            let centre = [centre[0].clone()?, centre[1].clone()?, centre[2].clone()?];
            Region::Sphere { centre, radius: num(&rest[3], "sphere radius")? * scale[0], inside }
        };
        self.regions.insert(id.clone(), region);
        Ok(())
    }

    pub fn create_box(&mut self, args: &[String]) -> Result<(), String> {
        self.require_no_box("create_box")?;
        let [n, id, ..] = args else { return Err("expected: create_box N region-ID".into()) };
        if args.len() > 2 {
            return Err(format!("create_box keyword '{}' is not supported", args[2]));
        }
        let n = int(n, "number of atom types")?;
        if n < 1 {
            return Err("create_box needs at least one atom type".into());
        }
        let Some(Region::Block { lo, hi, .. }) = self.regions.get(id) else {
            return Err(format!("create_box needs a block region; '{id}' is {}", if self.regions.contains_key(id) { "not a block" } else { "not defined" }));
        };
        if lo.iter().chain(hi).any(|x| x.abs() >= BIG) {
            return Err("create_box: the region must be finite (no INF bounds)".into());
        }
        self.set_box(*lo, *hi, n as usize);
        Ok(())
    }

    fn set_box(&mut self, lo: Vec3, hi: Vec3, ntypes: usize) {
        self.bounds = Some((lo, hi));
        self.ntypes = ntypes;
        self.masses = vec![None; ntypes];
        self.type_names = vec![None; ntypes];
    }

    /// Creates atoms; `cap` bounds the atom count (and the lattice points visited).
    pub fn create_atoms(&mut self, args: &[String], cap: usize) -> Result<usize, String> {
        let (lo, hi) = self.require_box()?;
        let [t, style, rest @ ..] = args else { return Err("expected: create_atoms type box|region ID|single x y z".into()) };
        let t = int(t, "atom type")?;
        if t < 1 || t as usize > self.ntypes {
            return Err(format!("atom type {t} is outside 1..{}", self.ntypes));
        }
        let t = t as usize;
        let (region, rest) = match style.as_str() {
            "box" => (None, rest),
            "region" => {
                let id = rest.first().ok_or("create_atoms region needs a region ID")?;
                let r = self.regions.get(id).ok_or_else(|| format!("region '{id}' is not defined"))?.clone();
                (Some(r), &rest[1..])
            }
            "single" => {
                if rest.len() < 3 {
                    return Err("create_atoms single needs x y z".into());
                }
                let kw = pairs(&rest[3..], "create_atoms")?;
                let scale = self.units_keyword(&kw, "create_atoms single")?;
                let x = [0, 1, 2].map(|d| num(&rest[d], "position").unwrap_or(f64::NAN) * scale[d]);
                if x.iter().any(|v| v.is_nan()) {
                    return Err(format!("create_atoms single: bad position {} {} {}", rest[0], rest[1], rest[2]));
                }
                if self.atoms.len() >= cap {
                    return Err(format!("create_atoms: more than {cap} atoms"));
                }
                self.atoms.push(t, x);
                return Ok(1);
            }
            other => return Err(format!("create_atoms style '{other}' is not supported; mdrun supports box, region, single")),
        };
        let lattice = self.lattice.clone().ok_or("create_atoms needs a lattice")?;
        if lattice.basis.is_empty() {
            return Err("create_atoms needs a lattice with atoms (not lattice none)".into());
        }
        let mut basis_types = vec![t; lattice.basis.len()];
        let mut i = 0;
        while i < rest.len() {
            match rest[i].as_str() {
                "basis" => {
                    let (Some(m), Some(bt)) = (rest.get(i + 1), rest.get(i + 2)) else {
                        return Err("create_atoms basis needs two values: basis M type".into());
                    };
                    let m = int(m, "basis atom")?;
                    let bt = int(bt, "basis type")?;
                    if m < 1 || m as usize > basis_types.len() || bt < 1 || bt as usize > self.ntypes {
                        return Err(format!("create_atoms basis {m} {bt}: basis atom or type out of range"));
                    }
                    basis_types[m as usize - 1] = bt as usize;
                    i += 3;
                }
                other => return Err(format!("create_atoms keyword '{other}' is not supported; mdrun supports basis")),
            }
        }
        // LAMMPS: lattice points in [lo, hi) of the box, a periodic upper edge moved in by
        // 2e-6 of the box and a periodic lower edge out by 1e-6, so that the periodic image of
        // a point on the lower face is not created twice.
        let mut sublo = lo;
        let mut subhi = hi;
        for d in 0..3 {
            if self.periodic[d] {
                let eps = (hi[d] - lo[d]) * 1.0e-6;
                sublo[d] -= eps;
                subhi[d] -= 2.0 * eps;
            }
        }
        let range = |d: usize| -> (i64, i64) {
            let a = (lo[d] - lattice.spacing[d] * lattice.origin[d]) / (lattice.scale * lattice.aspect[d]);
            let b = (hi[d] - lattice.spacing[d] * lattice.origin[d]) / (lattice.scale * lattice.aspect[d]);
            let mut l = a as i64 - 1;
            if a < 0.0 {
                l -= 1;
            }
            (l, b as i64 + 1)
        };
        let (ilo, ihi) = range(0);
        let (jlo, jhi) = range(1);
        let (klo, khi) = range(2);
        let points = [(ilo, ihi), (jlo, jhi), (klo, khi)]
            .iter()
            .map(|&(a, b)| (b as f64 - a as f64 + 1.0).max(0.0))
            .product::<f64>()
            * lattice.basis.len() as f64;
        if points > 8.0 * cap as f64 + 1e6 {
            return Err(format!("create_atoms: the box spans {points:.3e} lattice points, more than the {cap} atoms allowed"));
        }
        let mut created = 0;
        for k in klo..=khi {
            for j in jlo..=jhi {
                for i in ilo..=ihi {
                    for (m, b) in lattice.basis.iter().enumerate() {
                        let x = lattice.point([i, j, k], *b);
                        if let Some(r) = &region
                            && !r.contains(x)
                        {
                            continue;
                        }
                        if (0..3).any(|d| x[d] < sublo[d] || x[d] >= subhi[d]) {
                            continue;
                        }
                        if self.atoms.len() >= cap {
                            return Err(format!("create_atoms: more than {cap} atoms"));
                        }
                        self.atoms.push(basis_types[m], x);
                        created += 1;
                    }
                }
            }
        }
        Ok(created)
    }

    pub fn mass(&mut self, args: &[String]) -> Result<(), String> {
        let [t, m] = args else { return Err("expected: mass type value".into()) };
        if self.ntypes == 0 {
            return Err("mass comes after the box is defined".into());
        }
        let m = num(m, "mass")?;
        if m <= 0.0 {
            return Err(format!("mass must be positive (got {m})"));
        }
        for i in type_range(t, self.ntypes)? {
            self.masses[i - 1] = Some(m);
        }
        Ok(())
    }

    /// Per-atom masses in deck units; errors if a type has none.
    pub fn atom_masses(&self) -> Result<Vec<f64>, String> {
        for (t, m) in self.masses.iter().enumerate() {
            if m.is_none() && self.atoms.types.contains(&(t + 1)) {
                return Err(format!("atom type {} has no mass (mass command or Masses section)", t + 1));
            }
        }
        Ok(self.atoms.types.iter().map(|&t| self.masses[t - 1].unwrap_or(0.0)).collect())
    }

    /// `displace_atoms group move dx dy dz` and `displace_atoms group random dx dy dz seed`
    /// (LAMMPS's draw: per atom, the Park-Miller generator reset from the seed and the atom's
    /// position, then dx (2u - 1), dy (2u - 1), dz (2u - 1)), with `units lattice|box`; atoms
    /// are then put back into the box, counting image flags.
    pub fn displace_atoms(&mut self, args: &[String]) -> Result<(), String> {
        let [group, style, rest @ ..] = args else { return Err("expected: displace_atoms group move|random dx dy dz [seed]".into()) };
        let bit = self.group_bit(group)?;
        let (values, seed) = match style.as_str() {
            "move" => (3, None),
            "random" => (4, Some(())),
            other => return Err(format!("displace_atoms style '{other}' is not supported; mdrun supports move and random")),
        };
        if rest.len() < values {
            return Err(format!("displace_atoms {style} needs dx dy dz{}", if seed.is_some() { " seed" } else { "" }));
        }
        let kw = pairs(&rest[values..], "displace_atoms")?;
        let scale = self.units_keyword(&kw, "displace_atoms")?;
        let delta = [num(&rest[0], "dx")? * scale[0], num(&rest[1], "dy")? * scale[1], num(&rest[2], "dz")? * scale[2]];
        let members = (0..self.atoms.len()).filter(|&i| self.atoms.mask[i] & bit != 0);
        match seed {
            None => {
                for i in members {
                    for d in 0..3 {
                        self.atoms.x[i][d] += delta[d];
                    }
                }
            }
            Some(()) => {
                let seed = int(&rest[3], "seed")?;
                if seed <= 0 || seed > i32::MAX as i64 {
                    return Err(format!("displace_atoms random: seed must be a positive 32-bit integer (got {seed})"));
                }
                let mut rng = super::random::RanPark::new(seed as i32)?;
                let members: Vec<usize> = members.collect();
                for i in members {
                    rng.reset(seed as i32, self.atoms.x[i]);
                    for d in 0..3 {
                        self.atoms.x[i][d] += delta[d] * 2.0 * (rng.uniform() - 0.5);
                    }
                }
            }
        }
        self.wrap();
        Ok(())
    }

    /// Puts atoms back into the box along periodic axes, counting image flags (LAMMPS pbc()).
    pub fn wrap(&mut self) {
        let Some((lo, hi)) = self.bounds else { return };
        for (x, im) in self.atoms.x.iter_mut().zip(&mut self.atoms.images) {
            for d in 0..3 {
                if !self.periodic[d] {
                    continue;
                }
                let l = hi[d] - lo[d];
                if !x[d].is_finite() || !(l > 0.0) || (x[d] >= lo[d] && x[d] < hi[d]) {
                    continue;
                }
                let n = ((x[d] - lo[d]) / l).floor();
                if n.abs() > i32::MAX as f64 / 2.0 {
                    continue; // absurdly far: left for the run to report
                }
                x[d] -= n * l;
                im[d] += n as i32;
                // Rounding can leave x a hair outside [lo, hi).
                if x[d] >= hi[d] {
                    x[d] -= l;
                    im[d] += 1;
                } else if x[d] < lo[d] {
                    x[d] += l;
                    im[d] -= 1;
                }
            }
        }
    }

    pub fn replicate(&mut self, args: &[String], cap: usize) -> Result<(), String> {
        let (lo, hi) = self.require_box()?;
        if args.len() != 3 {
            return Err("expected: replicate nx ny nz".into());
        }
        let n: Vec<i64> = args.iter().map(|a| int(a, "replicate count")).collect::<Result<_, _>>()?;
        if n.iter().any(|&c| c < 1) {
            return Err("replicate counts must be positive".into());
        }
        let total = n.iter().map(|&c| c as f64).product::<f64>() * self.atoms.len() as f64;
        if total > cap as f64 {
            return Err(format!("replicate would make {total:.3e} atoms, more than {cap}"));
        }
        let l = [0, 1, 2].map(|d| hi[d] - lo[d]);
        let old = std::mem::take(&mut self.atoms);
        for k in 0..n[2] {
            for j in 0..n[1] {
                for i in 0..n[0] {
                    let s = [i as f64 * l[0], j as f64 * l[1], k as f64 * l[2]];
                    for a in 0..old.len() {
                        // Unwrap through the image flags, then shift; flags are reset.
                        let x = [0, 1, 2].map(|d| old.x[a][d] + old.images[a][d] as f64 * l[d] + s[d]);
                        self.atoms.push(old.types[a], x);
                        let last = self.atoms.len() - 1;
                        self.atoms.v[last] = old.v[a];
                        self.atoms.q[last] = old.q[a];
                        self.atoms.mask[last] = old.mask[a];
                    }
                }
            }
        }
        let new_hi = [0, 1, 2].map(|d| lo[d] + n[d] as f64 * l[d]);
        self.bounds = Some((lo, new_hi));
        self.wrap();
        Ok(())
    }

    /// The atoms as an mdrun system in internal units (positions relative to the box's lower
    /// corner; mdrun's cell starts at the origin).
    pub fn system(&self) -> Result<System, String> {
        let (lo, hi) = self.require_box()?;
        if self.atoms.len() == 0 {
            return Err("the box has no atoms".into());
        }
        self.atom_masses()?;
        let u = &self.units;
        let species = (0..self.ntypes)
            .map(|t| Species {
                name: self.type_names[t].clone().unwrap_or_else(|| (t + 1).to_string()),
                mass: self.masses[t].unwrap_or(1.0) * u.mass,
            })
            .collect();
        let l = [0, 1, 2].map(|d| (hi[d] - lo[d]) * u.length);
        let cell = Cell::new([[l[0], 0.0, 0.0], [0.0, l[1], 0.0], [0.0, 0.0, l[2]]], self.periodic)
            .map_err(|e| format!("the box: {e}"))?;
        Ok(System {
            species,
            types: self.atoms.types.iter().map(|&t| (t - 1) as u32).collect(),
            positions: self.atoms.x.iter().map(|x| [0, 1, 2].map(|d| (x[d] - lo[d]) * u.length)).collect(),
            velocities: self.atoms.v.iter().map(|v| v.map(|c| c * u.velocity())).collect(),
            images: self.atoms.images.clone(),
            cell,
        })
    }

    /// Takes back the state a run ended in.
    /// The box bounds (deck units) of `cell`: the deck's own while the cell keeps its size; a
    /// cell a barostat has scaled keeps the box's centre (LAMMPS's default fixed point).
    pub fn box_of(&self, cell: &crate::cell::Cell) -> ([f64; 3], [f64; 3]) {
        let (lo, hi) = self.bounds.expect("a box");
        let l = cell.lengths().map(|x| x / self.units.length);
        if (0..3).all(|d| hi[d] - lo[d] == l[d]) {
            return (lo, hi);
        }
        let centre: [f64; 3] = [0, 1, 2].map(|d| 0.5 * (lo[d] + hi[d]));
        ([0, 1, 2].map(|d| centre[d] - 0.5 * l[d]), [0, 1, 2].map(|d| centre[d] + 0.5 * l[d]))
    }

    pub fn absorb(&mut self, system: &System) {
        let bounds = self.box_of(&system.cell);
        self.bounds = Some(bounds);
        let (lo, _) = bounds;
        let u = self.units;
        for (a, x) in self.atoms.x.iter_mut().zip(&system.positions) {
            *a = [0, 1, 2].map(|d| x[d] / u.length + lo[d]);
        }
        for (a, v) in self.atoms.v.iter_mut().zip(&system.velocities) {
            *a = v.map(|c| c / u.velocity());
        }
        self.atoms.images.clone_from(&system.images);
    }
}
