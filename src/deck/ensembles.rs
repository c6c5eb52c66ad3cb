//! The thermostat and barostat fixes of a deck: `fix nvt`, `fix npt`, `fix nph` (Nosé-Hoover
//! chains and the MTK barostat, as LAMMPS's fix nh) and `fix temp/csvr`, read into
//! [`super::world::FixKind`]s and turned into the run's integrator.

use super::units::UnitStyle;
use super::args::{int, num, yes_no};
use crate::integrate::nose_hoover::{BarostatSettings, ChainSettings, Couple, NoseHoover};
use crate::integrate::{Integrator, IntegratorState};

/// `fix ID all nvt|npt|nph ...` in deck units, with the state its variables carry between runs.
#[derive(Clone, Debug, PartialEq)]
pub struct NhFix {
    pub style: String,
    /// Tstart, Tstop, Tdamp.
    pub temp: Option<[f64; 3]>,
    /// Per axis: Pstart, Pstop, Pdamp (None: not barostatted).
    pub press: [Option<[f64; 3]>; 3],
    pub couple: Couple,
    pub tchain: usize,
    pub tloop: usize,
    pub pchain: usize,
    pub ploop: usize,
    pub mtk: bool,
    pub drag: f64,
    /// The chains' and cell's variables at the end of the last run (LAMMPS keeps them in the
    /// fix between runs).
    pub state: Option<IntegratorState>,
}

/// `KEY start stop damping` at `args[i]`.
fn start_stop_damping(args: &[String], i: usize, what: &str) -> Result<[f64; 3], String> {
    if args.len() < i + 4 {
        return Err(format!("{what} needs start, stop and damping values"));
    }
    Ok([num(&args[i + 1], &format!("{what} start"))?, num(&args[i + 2], &format!("{what} stop"))?, num(&args[i + 3], &format!("{what} damping"))?])
}

/// Every barostatted axis has a positive damping and is periodic.
fn check_barostat_axes(what: &str, press: &[Option<[f64; 3]>; 3], periodic: [bool; 3]) -> Result<(), String> {
    for (axis, p) in press.iter().enumerate() {
        if let Some(p) = p {
            if p[2] <= 0.0 {
                return Err(format!("{what}: Pdamp must be positive"));
            }
            if !periodic[axis] {
                return Err(format!("{what}: the box is not periodic along {} (boundary f or s there); a barostat scales periodic axes only", ["x", "y", "z"][axis]));
            }
        }
    }
    Ok(())
}

/// Reads the arguments after `fix ID group nvt|npt|nph`.
pub fn parse_nh(style: &str, args: &[String], periodic: [bool; 3]) -> Result<NhFix, String> {
    let what = format!("fix {style}");
    let mut f = NhFix { style: style.to_string(), temp: None, press: [None; 3], couple: Couple::None, tchain: 3, tloop: 1, pchain: 3, ploop: 1, mtk: true, drag: 0.0, state: None };
    let three = |i: usize, key: &str| start_stop_damping(args, i, &format!("{what} {key}"));
    let count = |v: Option<&String>, key: &str, min: i64| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{what}: {key} needs a value"))?;
        let n = int(v, &format!("{what} {key}"))?;
        if n < min {
            return Err(format!("{what}: {key} must be at least {min} (got {n})"));
        }
        Ok(n as usize)
    };
    let mut i = 0;
    while i < args.len() {
        let key = args[i].as_str();
        match key {
            "temp" => {
                let t = three(i, key)?;
                if t[0] < 0.0 || t[1] <= 0.0 {
                    return Err(format!("{what}: the target temperature must be positive"));
                }
                f.temp = Some(t);
                i += 4;
            }
            "iso" | "aniso" => {
                let p = three(i, key)?;
                f.press = [Some(p); 3];
                f.couple = if key == "iso" { Couple::Xyz } else { Couple::None };
                i += 4;
            }
            "x" | "y" | "z" => {
                f.press[(key.as_bytes()[0] - b'x') as usize] = Some(three(i, key)?);
                i += 4;
            }
            "tri" | "xy" | "xz" | "yz" => {
                return Err(format!("{what} {key}: the box is orthogonal; a tilt pressure needs a triclinic box (LAMMPS refuses it the same way), use iso or aniso"));
            }
            "couple" => {
                f.couple = Couple::parse(args.get(i + 1).map(String::as_str)).map_err(|e| format!("{what}: {e}"))?;
                i += 2;
            }
            "tchain" | "tloop" | "pchain" | "ploop" => {
                // A barostat may go without its chain; everything else needs at least one.
                let n = count(args.get(i + 1), key, if key == "pchain" { 0 } else { 1 })?;
                *match key {
                    "tchain" => &mut f.tchain,
                    "tloop" => &mut f.tloop,
                    "pchain" => &mut f.pchain,
                    _ => &mut f.ploop,
                } = n;
                i += 2;
            }
            "mtk" => {
                f.mtk = yes_no(args.get(i + 1).ok_or_else(|| format!("{what}: mtk needs yes or no"))?, "mtk")?;
                i += 2;
            }
            "drag" => {
                f.drag = num(args.get(i + 1).ok_or_else(|| format!("{what}: drag needs a value"))?, "drag")?;
                if f.drag < 0.0 {
                    return Err(format!("{what}: drag must not be negative"));
                }
                i += 2;
            }
            "dilate" => {
                if args.get(i + 1).map(String::as_str) != Some("all") {
                    return Err(format!("{what}: mdrun dilates all atoms (dilate all)"));
                }
                i += 2;
            }
            other => return Err(format!("{what} keyword '{other}' is not supported; mdrun supports temp, iso, aniso, x, y, z, couple, tchain, tloop, pchain, ploop, mtk, drag, dilate all")),
        }
    }
    let barostatted = f.press.iter().any(Option::is_some);
    match style {
        "nvt" if f.temp.is_none() => return Err("fix nvt needs temp Tstart Tstop Tdamp".into()),
        "nvt" if barostatted => return Err("fix nvt: pressure settings belong to fix npt or fix nph".into()),
        "npt" if f.temp.is_none() || !barostatted => return Err("fix npt needs temp Tstart Tstop Tdamp and iso, aniso or x/y/z pressures".into()),
        "nph" if f.temp.is_some() => return Err("fix nph: temp belongs to fix nvt or fix npt".into()),
        "nph" if !barostatted => return Err("fix nph needs iso, aniso or x/y/z pressures".into()),
        _ => {}
    }
    if let Some(t) = f.temp
        && t[2] <= 0.0
    {
        return Err(format!("{what}: Tdamp must be positive"));
    }
    check_barostat_axes(&what, &f.press, periodic)?;
    // Coupled axes must share their settings (LAMMPS: "Invalid fix nvt/npt/nph pressure settings").
    let pairs: &[(usize, usize)] = match f.couple {
        Couple::Xyz => &[(0, 1), (0, 2)],
        Couple::Xy => &[(0, 1)],
        Couple::Yz => &[(1, 2)],
        Couple::Xz => &[(0, 2)],
        Couple::None => &[],
    };
    for &(a, b) in pairs {
        match (f.press[a], f.press[b]) {
            (Some(x), Some(y)) if x == y => {}
            _ => return Err(format!("{what}: couple joins axes {} and {}; both need the same pressure settings", ["x", "y", "z"][a], ["x", "y", "z"][b])),
        }
    }
    Ok(f)
}

/// `fix ID all temp/csvr Tstart Tstop Tdamp seed` in deck units, with its state at the end of
/// the last run.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvrFix {
    pub t_start: f64,
    pub t_stop: f64,
    pub damp: f64,
    pub seed: i64,
    pub state: Option<IntegratorState>,
}

/// Reads `fix ID group temp/csvr Tstart Tstop Tdamp seed`.
pub fn parse_csvr(args: &[String]) -> Result<CsvrFix, String> {
    let [t_start, t_stop, damp, seed] = args else { return Err("fix temp/csvr needs Tstart Tstop Tdamp seed".into()) };
    let t_start = num(t_start, "Tstart")?;
    let t_stop = num(t_stop, "Tstop")?;
    let damp = num(damp, "Tdamp")?;
    let seed = int(seed, "seed")?;
    if t_start < 0.0 || t_stop < 0.0 || damp <= 0.0 || seed <= 0 {
        return Err("fix temp/csvr: temperatures must not be negative, Tdamp and seed must be positive".into());
    }
    Ok(CsvrFix { t_start, t_stop, damp, seed, state: None })
}

impl NhFix {
    /// The integrator for a run from `first` to `last`.
    pub fn integrator(&self, u: &UnitStyle, dt: f64, first: u64, last: u64) -> Result<Integrator, String> {
        let what = format!("fix {}", self.style);
        if let Some(t) = self.temp
            && t[2] < dt
        {
            return Err(format!("{what}: Tdamp {} is shorter than the timestep {dt}; LAMMPS suggests about 100 timesteps", t[2]));
        }
        let thermostat = self.temp.map(|t| ChainSettings { start: t[0] * u.temperature, stop: t[1] * u.temperature, period: t[2] * u.time, length: self.tchain, loops: self.tloop });
        let barostat = self.press.iter().any(Option::is_some).then(|| {
            let a = PressureAxes::of(&self.press, u);
            BarostatSettings { axes: a.axes, start: a.start, stop: a.stop, period: a.period, couple: self.couple, chain: self.pchain, loops: self.ploop, mtk: self.mtk }
        });
        check_pdamp(&what, &self.press, dt, "; LAMMPS suggests about 1000 timesteps")?;
        let rest = if u.name == "lj" { 1.0 } else { 300.0 } * u.temperature;
        let mut nh = NoseHoover::new(thermostat, barostat, self.drag, (first, last), rest);
        if let Some(state) = &self.state {
            nh.restore(&state.values, false)?;
        }
        Ok(Integrator::NoseHoover(Box::new(nh)))
    }
}

/// `fix ID all press/berendsen iso|aniso|x|y|z Pstart Pstop Pdamp ... [couple] [modulus B]
/// [dilate all]` in deck units.
#[derive(Clone, Debug, PartialEq)]
pub struct BerendsenFix {
    pub press: [Option<[f64; 3]>; 3],
    pub couple: Couple,
    pub modulus: f64,
}

pub fn parse_berendsen(args: &[String], periodic: [bool; 3]) -> Result<BerendsenFix, String> {
    let what = "fix press/berendsen";
    let mut f = BerendsenFix { press: [None; 3], couple: Couple::None, modulus: 10.0 };
    let three = |i: usize, key: &str| start_stop_damping(args, i, &format!("{what} {key}"));
    let mut i = 0;
    while i < args.len() {
        let key = args[i].as_str();
        match key {
            "iso" | "aniso" => {
                f.press = [Some(three(i, key)?); 3];
                f.couple = if key == "iso" { Couple::Xyz } else { Couple::None };
                i += 4;
            }
            "x" | "y" | "z" => {
                f.press[(key.as_bytes()[0] - b'x') as usize] = Some(three(i, key)?);
                i += 4;
            }
            "couple" => {
                f.couple = Couple::parse(args.get(i + 1).map(String::as_str)).map_err(|e| format!("{what}: {e}"))?;
                i += 2;
            }
            "modulus" => {
                f.modulus = num(args.get(i + 1).ok_or_else(|| format!("{what}: modulus needs a value"))?, "modulus")?;
                if f.modulus <= 0.0 {
                    return Err(format!("{what}: modulus must be positive"));
                }
                i += 2;
            }
            "dilate" if args.get(i + 1).map(String::as_str) == Some("all") => i += 2,
            other => return Err(format!("{what} keyword '{other}' is not supported; mdrun supports iso, aniso, x, y, z, couple, modulus, dilate all")),
        }
    }
    if f.press.iter().all(Option::is_none) {
        return Err(format!("{what} needs iso, aniso or x/y/z pressures"));
    }
    check_barostat_axes(what, &f.press, periodic)?;
    Ok(f)
}

impl BerendsenFix {
    pub fn barostat(&self, u: &UnitStyle, dt: f64, first: u64, last: u64) -> Result<crate::integrate::berendsen::Berendsen, String> {
        check_pdamp("fix press/berendsen", &self.press, dt, "")?;
        let a = PressureAxes::of(&self.press, u);
        Ok(crate::integrate::berendsen::Berendsen { axes: a.axes, start: a.start, stop: a.stop, period: a.period, couple: self.couple, modulus: self.modulus * u.pressure, ramp: (first, last) })
    }
}

/// A barostat fix's per-axis (Pstart, Pstop, Pdamp) in mdrun's units: which axes, targets (bar)
/// and periods (ps; 1 on an axis left alone).
struct PressureAxes {
    axes: [bool; 3],
    start: [f64; 3],
    stop: [f64; 3],
    period: [f64; 3],
}

impl PressureAxes {
    fn of(press: &[Option<[f64; 3]>; 3], u: &UnitStyle) -> PressureAxes {
        let axis = |k: usize, i: usize| press[k].map_or(0.0, |p| p[i]);
        PressureAxes {
            axes: [0, 1, 2].map(|k| press[k].is_some()),
            start: [0, 1, 2].map(|k| axis(k, 0) * u.pressure),
            stop: [0, 1, 2].map(|k| axis(k, 1) * u.pressure),
            period: [0, 1, 2].map(|k| if press[k].is_some() { axis(k, 2) * u.time } else { 1.0 }),
        }
    }
}

/// Refuses a Pdamp shorter than the timestep (both in deck units).
fn check_pdamp(what: &str, press: &[Option<[f64; 3]>; 3], dt: f64, advice: &str) -> Result<(), String> {
    match press.iter().flatten().find(|p| p[2] < dt) {
        Some(p) => Err(format!("{what}: Pdamp {} is shorter than the timestep {dt}{advice}", p[2])),
        None => Ok(()),
    }
}
