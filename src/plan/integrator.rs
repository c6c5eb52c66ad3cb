//! `[integrator]` and `[barostat]`: which equations of motion a run integrates; `[minimize]`:
//! the relaxation before them.

use super::schema::{Locator as At, RawBarostat, RawIntegrator, RawMinimize};
use super::PlanError;
use crate::integrate::Integrator;
use crate::integrate::csvr::Csvr;
use crate::integrate::nose_hoover::{BarostatSettings, ChainSettings, NoseHoover};
use crate::system::System;
use crate::units::Dimension;
use toml::Spanned;

/// The integrator of a plan of `steps` steps of `timestep` ps on `system`.
pub(super) fn build(at: &At, raw: &Spanned<RawIntegrator>, barostat: Option<&Spanned<RawBarostat>>, timestep: f64, steps: u64, system: &System) -> Result<Integrator, PlanError> {
    let integ = raw.get_ref();
    let kind = integ.kind.get_ref().as_str();
    let key_error = |key: &str, message: &str| at.error(&raw.span(), &format!("[integrator] {key}"), message);
    let uses: &[&str] = match kind {
        "verlet" | "velocity-verlet" | "nve" => &[],
        "langevin" => &["temperature", "damping", "seed", "zero"],
        "nose-hoover" => &["temperature", "damping", "chain", "loops"],
        "csvr" => &["temperature", "damping", "seed"],
        other => {
            return Err(at.error(
                &integ.kind.span(),
                "[integrator] type",
                format!("unknown integrator '{other}'; expected \"verlet\", \"langevin\", \"nose-hoover\" or \"csvr\""),
            ));
        }
    };
    for (given, key) in [
        (integ.temperature.is_some(), "temperature"),
        (integ.damping.is_some(), "damping"),
        (integ.seed.is_some(), "seed"),
        (integ.zero.is_some(), "zero"),
        (integ.chain.is_some(), "chain"),
        (integ.loops.is_some(), "loops"),
    ] {
        if given && !uses.contains(&key) {
            return Err(key_error(key, &format!("is not used by type = \"{kind}\" (it takes: {})", if uses.is_empty() { "timestep only".to_string() } else { uses.join(", ") })));
        }
    }
    let required = |key: &str| key_error(key, &format!("required for type = \"{kind}\""));
    if let Some(b) = barostat
        && !["mtk", "c-rescale"].contains(&b.get_ref().kind.get_ref().as_str())
    {
        build_barostat(at, b, timestep, system)?; // names the unknown type
    }
    // A thermostat's damping must span steps, or its equations are integrated badly (LAMMPS
    // suggests ~100 timesteps).
    let damping = |q: &Option<super::schema::Q>, key: &str| -> Result<f64, PlanError> {
        let q = q.as_ref().ok_or_else(|| required(key))?;
        let d = at.positive(q, &format!("[integrator] {key}"), Dimension::Time)?;
        if d < timestep {
            return Err(at.error(&q.span(), &format!("[integrator] {key}"), format!("{d} ps is shorter than the timestep ({timestep} ps); a thermostat relaxes over many steps (~100 x the timestep)")));
        }
        Ok(d)
    };
    let temperature = |key: &str| -> Result<f64, PlanError> {
        at.non_negative(integ.temperature.as_ref().ok_or_else(|| required(key))?, &format!("[integrator] {key}"), Dimension::Temperature)
    };
    let count = |v: &Option<Spanned<i64>>, key: &str, default: usize| -> Result<usize, PlanError> {
        match v {
            None => Ok(default),
            Some(v) if (1..=100).contains(v.get_ref()) => Ok(*v.get_ref() as usize),
            Some(v) => Err(at.error(&v.span(), key, format!("expected 1 to 100 (got {})", v.get_ref()))),
        }
    };
    let integrator = match kind {
        "langevin" => Integrator::Langevin {
            temperature: temperature("temperature")?,
            damping: damping(&integ.damping, "damping")?,
            seed: integ.seed.ok_or_else(|| required("seed"))?,
            zero: integ.zero.unwrap_or(false),
        },
        "csvr" => {
            let t = temperature("temperature")?;
            Integrator::Csvr(Csvr::new(t, t, damping(&integ.damping, "damping")?, integ.seed.ok_or_else(|| required("seed"))?, (0, steps)))
        }
        "nose-hoover" => {
            // NPH: a barostat without a temperature.
            let thermostat = match (&integ.temperature, barostat) {
                (None, Some(_)) if integ.damping.is_none() => None,
                _ => {
                    let t = temperature("temperature")?;
                    if t <= 0.0 {
                        return Err(key_error("temperature", "a Nosé-Hoover target temperature must be positive"));
                    }
                    Some(ChainSettings { start: t, stop: t, period: damping(&integ.damping, "damping")?, length: count(&integ.chain, "[integrator] chain", 3)?, loops: count(&integ.loops, "[integrator] loops", 1)? })
                }
            };
            let mtk = barostat.filter(|b| b.get_ref().kind.get_ref() == "mtk");
            let barostat = mtk.map(|b| build_barostat(at, b, timestep, system)).transpose()?;
            Integrator::NoseHoover(Box::new(NoseHoover::new(thermostat, barostat, 0.0, (0, steps), 300.0)))
        }
        _ => Integrator::VelocityVerlet,
    };
    match barostat {
        Some(b) if b.get_ref().kind.get_ref() == "c-rescale" => {
            let temperature = match &integrator {
                Integrator::Langevin { temperature, .. } => *temperature,
                Integrator::Csvr(c) => c.start,
                Integrator::NoseHoover(nh) if nh.thermostat.is_some() => nh.thermostat.as_ref().map_or(0.0, |t| t.start),
                _ => return Err(at.error(&b.get_ref().kind.span(), "[barostat] type", format!("stochastic cell rescaling needs a thermostat: [integrator] type = \"csvr\", \"langevin\" or \"nose-hoover\" with a temperature (this run's is \"{kind}\")"))),
            };
            let c = build_c_rescale(at, b, timestep, temperature, system)?;
            Ok(Integrator::CRescale(Box::new(integrator), c))
        }
        Some(b) if !matches!(integrator, Integrator::NoseHoover(_)) => {
            let _ = build_barostat(at, b, timestep, system)?;
            Err(at.error(&b.get_ref().kind.span(), "[barostat] type", format!("the MTK barostat runs with [integrator] type = \"nose-hoover\" (this run's is \"{kind}\"); \"c-rescale\" runs with any thermostat")))
        }
        _ => Ok(integrator),
    }
}

fn build_barostat(at: &At, raw: &Spanned<RawBarostat>, timestep: f64, system: &System) -> Result<BarostatSettings, PlanError> {
    let b = raw.get_ref();
    match b.kind.get_ref().as_str() {
        "mtk" => {}
        other => return Err(at.error(&b.kind.span(), "[barostat] type", format!("unknown barostat '{other}'; expected \"mtk\" (Martyna-Tobias-Klein, as LAMMPS fix npt) or \"c-rescale\" (stochastic cell rescaling)"))),
    }
    for (given, key) in [(b.compressibility.is_some(), "compressibility"), (b.seed.is_some(), "seed")] {
        if given {
            return Err(at.error(&raw.span(), &format!("[barostat] {key}"), "is used by type = \"c-rescale\" only"));
        }
    }
    let pressure = at.quantity(&b.pressure, "[barostat] pressure", Dimension::Pressure)?;
    let damping = at.positive(&b.damping, "[barostat] damping", Dimension::Time)?;
    if damping < timestep {
        return Err(at.error(&b.damping.span(), "[barostat] damping", format!("{damping} ps is shorter than the timestep ({timestep} ps); a barostat relaxes over many steps (~1000 x the timestep)")));
    }
    let mut settings = match b.coupling.as_ref().map(|c| c.get_ref().as_str()).unwrap_or("iso") {
        "iso" => BarostatSettings::iso(pressure, pressure, damping),
        "aniso" => BarostatSettings::aniso(pressure, pressure, damping),
        "tri" => {
            return Err(at.error(&b.coupling.as_ref().expect("given").span(), "[barostat] coupling", "\"tri\" (a cell that shears) is not supported yet; use \"iso\" or \"aniso\""));
        }
        other => return Err(at.error(&b.coupling.as_ref().expect("given").span(), "[barostat] coupling", format!("unknown coupling '{other}'; expected \"iso\" or \"aniso\""))),
    };
    if let Some(c) = &b.chain {
        if !(0..=100).contains(c.get_ref()) {
            return Err(at.error(&c.span(), "[barostat] chain", format!("expected 0 to 100 (got {})", c.get_ref())));
        }
        settings.chain = *c.get_ref() as usize;
    }
    let pbc = system.cell.pbc();
    if let Some(axis) = (0..3).find(|&k| !pbc[k]) {
        return Err(at.error(&raw.span(), "[barostat]", format!("the cell is not periodic along {}: a barostat needs a periodic cell along every axis it scales", ["x", "y", "z"][axis])));
    }
    Ok(settings)
}

/// `[barostat] type = "c-rescale"`: isotropic stochastic cell rescaling at the thermostat's
/// temperature.
fn build_c_rescale(at: &At, raw: &Spanned<RawBarostat>, timestep: f64, temperature: f64, system: &System) -> Result<crate::integrate::c_rescale::CRescale, PlanError> {
    let b = raw.get_ref();
    let pressure = at.quantity(&b.pressure, "[barostat] pressure", Dimension::Pressure)?;
    let damping = at.positive(&b.damping, "[barostat] damping", Dimension::Time)?;
    if damping < timestep {
        return Err(at.error(&b.damping.span(), "[barostat] damping", format!("{damping} ps is shorter than the timestep ({timestep} ps)")));
    }
    if let Some(c) = &b.coupling
        && c.get_ref() != "iso"
    {
        return Err(at.error(&c.span(), "[barostat] coupling", "stochastic cell rescaling is isotropic here (\"iso\"); use type = \"mtk\" for \"aniso\""));
    }
    if let Some(c) = &b.chain {
        return Err(at.error(&c.span(), "[barostat] chain", "is used by type = \"mtk\" only"));
    }
    let compressibility = match &b.compressibility {
        Some(c) if *c.get_ref() > 0.0 && c.get_ref().is_finite() => *c.get_ref(),
        Some(c) => return Err(at.error(&c.span(), "[barostat] compressibility", format!("expected a positive compressibility in 1/bar (got {})", c.get_ref()))),
        None => return Err(at.error(&raw.span(), "[barostat] compressibility", "required for type = \"c-rescale\": the isothermal compressibility in 1/bar (water: 4.5e-5); it sets how fast the volume relaxes, not where")),
    };
    let seed = b.seed.ok_or_else(|| at.error(&raw.span(), "[barostat] seed", "required for type = \"c-rescale\" (its noise)"))?;
    if system.cell.pbc() != [true; 3] {
        return Err(at.error(&raw.span(), "[barostat]", "a barostat needs a cell periodic along all three axes"));
    }
    Ok(crate::integrate::c_rescale::CRescale { pressure, period: damping, compressibility, temperature, seed })
}

/// `[minimize]`: method (fire, cg, sd), tolerances, and the cell's part (fixed, iso, aniso) with
/// its target pressure.
pub(super) fn build_minimize(at: &At, raw: &Spanned<RawMinimize>, timestep: f64, system: &System) -> Result<crate::minimize::Relaxation, PlanError> {
    use crate::minimize::{CellRelax, FireSettings, LineSearch, MinSettings, MinStyle, Relaxation};
    let m = raw.get_ref();
    let style = match m.method.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("fire") {
        "fire" => MinStyle::Fire,
        "cg" => MinStyle::Cg,
        "sd" => MinStyle::Sd,
        other => return Err(at.error(&m.method.as_ref().expect("given").span(), "[minimize] method", format!("unknown method '{other}'; expected \"fire\", \"cg\" or \"sd\""))),
    };
    let etol = match &m.etol {
        Some(e) if !(0.0..1.0).contains(e.get_ref()) => return Err(at.error(&e.span(), "[minimize] etol", format!("expected a relative energy change in [0, 1) (got {})", e.get_ref()))),
        Some(e) => *e.get_ref(),
        None => 0.0,
    };
    let ftol = match &m.ftol {
        Some(q) => at.non_negative(q, "[minimize] ftol", Dimension::Force)?,
        None => 1e-4,
    };
    if etol == 0.0 && ftol == 0.0 {
        return Err(at.error(&raw.span(), "[minimize]", "etol and ftol are both zero: the minimisation would stop only at its iteration limit; give ftol (eV/A) or etol"));
    }
    let count = |v: &Option<Spanned<i64>>, key: &str, default: u64| -> Result<u64, PlanError> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() > 0 => Ok(*v.get_ref() as u64),
            Some(v) => Err(at.error(&v.span(), key, format!("must be positive (got {})", v.get_ref()))),
        }
    };
    let dmax = match &m.dmax {
        Some(q) => at.positive(q, "[minimize] dmax", Dimension::Length)?,
        None => 0.1,
    };
    let cell = match m.cell.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("fixed") {
        "fixed" => CellRelax::Fixed,
        "iso" => CellRelax::Iso,
        "aniso" => CellRelax::Aniso,
        "tri" => return Err(at.error(&m.cell.as_ref().expect("given").span(), "[minimize] cell", "\"tri\" (relaxing the cell's angles) is not supported yet; use \"iso\" or \"aniso\"")),
        other => return Err(at.error(&m.cell.as_ref().expect("given").span(), "[minimize] cell", format!("unknown cell relaxation '{other}'; expected \"fixed\", \"iso\" or \"aniso\""))),
    };
    if cell != CellRelax::Fixed && system.cell.pbc() != [true; 3] {
        return Err(at.error(&m.cell.as_ref().expect("given").span(), "[minimize] cell", "relaxing the cell needs a cell periodic along all three axes"));
    }
    if cell == CellRelax::Fixed && (m.pressure.is_some() || m.pressure_tolerance.is_some()) {
        return Err(at.error(&raw.span(), "[minimize] pressure", "a target pressure needs cell = \"iso\" or \"aniso\""));
    }
    let pressure = match &m.pressure {
        Some(q) => at.quantity(q, "[minimize] pressure", Dimension::Pressure)?,
        None => 0.0,
    };
    let pressure_tolerance = match &m.pressure_tolerance {
        Some(q) => at.positive(q, "[minimize] pressure_tolerance", Dimension::Pressure)?,
        None => 1.0,
    };
    Ok(Relaxation {
        settings: MinSettings {
            style,
            line: LineSearch::Quadratic,
            dmax,
            etol,
            ftol,
            max_iterations: count(&m.max_iterations, "[minimize] max_iterations", 10_000)?,
            max_evaluations: count(&m.max_evaluations, "[minimize] max_evaluations", 100_000)?,
            energy_unit: 1.0,
            force_unit: 1.0,
            per_atom: false,
            fire: FireSettings::new(timestep),
        },
        cell,
        pressure,
        pressure_tolerance,
        max_cycles: count(&m.max_cycles, "[minimize] max_cycles", 100)? as usize,
    })
}
