//! `[integrator]` and `[barostat]`: which equations of motion a run integrates.

use super::schema::{Locator as At, RawBarostat, RawIntegrator};
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
            let barostat = barostat.map(|b| build_barostat(at, b, timestep, system)).transpose()?;
            Integrator::NoseHoover(Box::new(NoseHoover::new(thermostat, barostat, 0.0, (0, steps), 300.0)))
        }
        _ => Integrator::VelocityVerlet,
    };
    if let Some(b) = barostat
        && !matches!(integrator, Integrator::NoseHoover(_))
    {
        return Err(at.error(&b.get_ref().kind.span(), "[barostat] type", format!("the MTK barostat runs with [integrator] type = \"nose-hoover\" (this run's is \"{kind}\")")));
    }
    Ok(integrator)
}

fn build_barostat(at: &At, raw: &Spanned<RawBarostat>, timestep: f64, system: &System) -> Result<BarostatSettings, PlanError> {
    let b = raw.get_ref();
    match b.kind.get_ref().as_str() {
        "mtk" => {}
        other => return Err(at.error(&b.kind.span(), "[barostat] type", format!("unknown barostat '{other}'; expected \"mtk\" (Martyna-Tobias-Klein, as LAMMPS fix npt)"))),
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
