//! `mdrun convert in.deck`: the system.toml of the deck's first `run`. The deck is executed up
//! to that run (setup, velocities, force field), its starting state written beside the deck as
//! an mdrun checkpoint (exact positions and velocities, e.g. LAMMPS's `velocity create`), and
//! the TOML refers to it. Values are in mdrun's units (metal), written with every digit.

use crate::integrate::Integrator;
use crate::plan::{Plan, PotentialSpec};
use std::fmt::Write as _;
use std::path::Path;

/// TOML for `plan`; `state_file` is the checkpoint's file name (relative to the TOML).
pub fn to_toml(plan: &Plan, deck: &Path, line: usize, units: &str, thermo: u64, state_file: &str, start_step: u64) -> String {
    let mut s = String::new();
    let q = |name: &str| format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""));
    let _ = writeln!(s, "# Written by `mdrun convert {}`: the run at its line {line}, with the deck's {units} units", deck.display());
    let _ = writeln!(s, "# converted to mdrun's (eV, Å, ps, amu, K, bar). The starting state (LAMMPS's positions and");
    let _ = writeln!(s, "# velocities, step {start_step}) is in {state_file}.\n");
    let _ = writeln!(s, "[structure]\nfile = {}", q(state_file));
    if let PotentialSpec::Ml { charge, .. } = &plan.potential
        && *charge != 0.0
    {
        let _ = writeln!(s, "charge = {charge:?}");
    }
    s.push('\n');
    s.push_str("[masses]\n");
    for sp in &plan.system.species {
        let _ = writeln!(s, "{} = {:?}", q(&sp.name), sp.mass);
    }
    s.push_str("\n[velocities]\nsource = \"file\"\n\n[potential]\n");
    match &plan.potential {
        PotentialSpec::Pair(pair) => {
            let _ = writeln!(s, "type = {}\nshift = {}\ntail = {}", q(pair.style.toml_names[0]), pair.shift, pair.tail);
            let n = plan.system.species.len();
            let params = |p: &crate::potential::pair::PairParams| {
                let mut t = String::new();
                for (k, param) in pair.style.params.iter().enumerate() {
                    let _ = writeln!(t, "{} = {:?}", param.name, p.values[k]);
                }
                let _ = write!(t, "cutoff = {:?}", p.cutoff);
                t
            };
            for i in 0..n {
                let _ = writeln!(s, "[potential.species.{}]\n{}", q(&plan.system.species[i].name), params(pair.pair(i, i)));
            }
            for i in 0..n {
                for j in i + 1..n {
                    let _ = writeln!(
                        s,
                        "[[potential.pair]]\nspecies = [{}, {}]\n{}",
                        q(&plan.system.species[i].name),
                        q(&plan.system.species[j].name),
                        params(pair.pair(i, j))
                    );
                }
            }
        }
        PotentialSpec::Ml { model, .. } => {
            let _ = writeln!(s, "type = \"ml\"\nmodel = {}", q(&model.display().to_string()));

        }
    }
    s.push_str("\n[integrator]\n");
    // system.toml has no Berendsen barostat: its integrator goes in alone (and a note says so).
    let integrator = match &plan.integrator {
        Integrator::Berendsen(inner, _) => inner.as_ref(),
        other => other,
    };
    match integrator {
        Integrator::VelocityVerlet => s.push_str("type = \"verlet\"\n"),
        Integrator::Langevin { temperature, damping, seed, zero } => {
            let _ = writeln!(s, "type = \"langevin\"\ntemperature = {temperature:?}\ndamping = {damping:?}\nseed = {seed}\nzero = {zero}");
        }
        Integrator::Csvr(c) => {
            let _ = writeln!(s, "type = \"csvr\"\ntemperature = {:?}\ndamping = {:?}\nseed = {}", c.start, c.period, c.seed);
        }
        // Decks have no stochastic cell rescaling; written as NVE should one ever get here.
        Integrator::CRescale(..) => s.push_str("type = \"verlet\"\n"),
        Integrator::Berendsen(..) => s.push_str("type = \"verlet\"\n"),
        Integrator::NoseHoover(nh) => {
            s.push_str("type = \"nose-hoover\"\n");
            if let Some(t) = &nh.thermostat {
                let _ = writeln!(s, "temperature = {:?}\ndamping = {:?}\nchain = {}\nloops = {}", t.start, t.period, t.length, t.loops);
            }
        }
    }
    let _ = writeln!(s, "timestep = {:?}\n", plan.timestep);
    if let Integrator::NoseHoover(nh) = integrator
        && let Some(b) = &nh.barostat
    {
        let coupling = if b.couple == crate::integrate::nose_hoover::Couple::Xyz { "iso" } else { "aniso" };
        let _ = writeln!(s, "[barostat]\ntype = \"mtk\"\npressure = {:?}\ndamping = {:?}\ncoupling = \"{coupling}\"\nchain = {}\n", b.start[0], b.period[0], b.chain);
    }
    let _ = writeln!(s, "[run]\nsteps = {}\nplatform = \"cpu\"\n", plan.steps - start_step);
    let r = plan.rebuild;
    let _ = writeln!(s, "[neighbor]\nskin = {:?}\nevery = {}\ndelay = {}\ncheck = {}\n", plan.skin, r.every, r.delay, r.check);
    let _ = writeln!(s, "[output]\nthermo = {}", thermo.max(1));
    s
}

/// What the system.toml cannot say of the deck's thermostat or barostat (the TOML holds one
/// target each and iso/aniso coupling), for `convert`'s notes.
pub fn lost_in_toml(integrator: &Integrator) -> Option<String> {
    let mut lost = Vec::new();
    let integrator = match integrator {
        Integrator::Berendsen(inner, _) => {
            lost.push("fix press/berendsen (system.toml has no Berendsen barostat; [barostat] c-rescale is its stochastic, ensemble-correct successor)");
            inner.as_ref()
        }
        other => other,
    };
    match integrator {
        Integrator::NoseHoover(nh) => {
            if nh.thermostat.as_ref().is_some_and(|t| t.start != t.stop) {
                lost.push("the temperature ramp (the TOML holds Tstart)");
            }
            if let Some(b) = &nh.barostat {
                if b.start != b.stop || b.start.iter().zip(b.axes).any(|(p, on)| on && *p != b.start[0]) {
                    lost.push("the pressure ramp or per-axis pressures (the TOML holds the first Pstart)");
                }
                if !b.axes.iter().all(|&a| a) || !matches!(b.couple, crate::integrate::nose_hoover::Couple::Xyz | crate::integrate::nose_hoover::Couple::None) {
                    lost.push("the per-axis barostat and couple settings (the TOML holds iso or aniso)");
                }
                if !b.mtk || b.loops != 1 {
                    lost.push("mtk no / ploop");
                }
            }
            if nh.drag != 0.0 {
                lost.push("drag");
            }
        }
        Integrator::Csvr(c) if c.start != c.stop => lost.push("the temperature ramp (the TOML holds Tstart)"),
        _ => {}
    }
    (!lost.is_empty()).then(|| format!("not in the TOML: {}", lost.join("; ")))
}
