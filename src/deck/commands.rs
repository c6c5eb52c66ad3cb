//! The force-field, fix, thermo, dump and restart commands of a deck (`impl Deck`).

use super::cformat;
use super::interp::{Deck, Dump, resolve};
use super::thermo_out::{self, ThermoStyle};
use super::world::{self, Fix, FixKind, Mix, Pair, World, int, num, yes_no};
use crate::potential::styles;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl Deck {
    pub(super) fn pair_style(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        match args {
            [s, rest @ ..] if styles::by_lammps_name(s).is_some() => {
                let style = styles::by_lammps_name(s).expect("checked");
                let cutoff = super::pair::global_cutoff(style, rest)?;
                // A new global cutoff applies to coefficients set without their own (LAMMPS
                // resets them all); mdrun sets it for those that used the old global one.
                let coeffs = match &w.pair {
                    Some(Pair::Style { style: old_style, cutoff: old, coeffs }) if old_style == &style => coeffs
                        .iter()
                        .map(|(k, (v, c))| (*k, (v.clone(), if c == old { cutoff } else { *c })))
                        .collect(),
                    _ => BTreeMap::new(),
                };
                w.pair = Some(Pair::Style { style, cutoff, coeffs });
            }
            // A learned model (`mdrun train`); "mcgm" is its older name, "mdrun" the LAMMPS
            // plugin's (lammps-plugin/), so that one deck runs in both.
            // `halo exchange|full` says how the plugin gives ghosts their environment: one
            // process has none.
            [s, model, halo, mode] if s == "mdrun" && halo == "halo" && (mode == "exchange" || mode == "full") => {
                let current = self.stack.last().map(|f| f.script.path.clone()).unwrap_or_default();
                w.pair = Some(Pair::Mcgm { model: resolve(model, &current) });
            }
            [s, model] if s == "ml" || s == "mcgm" || s == "mdrun" => {
                let current = self.stack.last().map(|f| f.script.path.clone()).unwrap_or_default();
                let path = resolve(model, &current);
                w.pair = Some(Pair::Mcgm { model: path });
            }
            [s, ..] => {
                let styles: Vec<String> = styles::STYLES.iter().map(|p| format!("{} Rc", p.lammps)).collect();
                return Err(format!("pair style '{s}' (with these arguments) is not supported; mdrun supports {} and ml MODEL-FILE (a model of mdrun train)", styles.join(", ")));
            }
            [] => return Err("expected: pair_style style args".into()),
        }
        self.changed();
        Ok(())
    }

    pub(super) fn pair_coeff(&mut self, args: &[String]) -> Result<(), String> {
        let w = &mut self.world;
        let n = w.ntypes;
        if n == 0 {
            return Err("pair_coeff comes after the box is defined".into());
        }
        match &mut w.pair {
            None => return Err("pair_coeff comes after pair_style".into()),
            Some(Pair::Mcgm { .. }) => {
                if args.len() != 2 + n || args[0] != "*" || args[1] != "*" {
                    return Err(format!("pair_style ml: expected pair_coeff * * followed by one element per atom type ({n})"));
                }
                for t in 0..n {
                    if crate::elements::atomic_number(&args[2 + t]).is_none() {
                        return Err(format!("'{}' is not an element symbol", args[2 + t]));
                    }
                    w.type_names[t] = Some(args[2 + t].clone());
                }
            }
            Some(Pair::Style { style, cutoff, coeffs }) => super::pair::pair_coeff(style, coeffs, *cutoff, n, args)?,
        }
        self.changed();
        Ok(())
    }

    pub(super) fn pair_modify(&mut self, args: &[String]) -> Result<(), String> {
        for (k, v) in world::pairs(args, "pair_modify")? {
            match k {
                "shift" => self.world.shift = yes_no(v, "shift")?,
                "tail" => self.world.tail = yes_no(v, "tail")?,
                "mix" => {
                    self.world.mix = match v {
                        "geometric" => Mix::Geometric,
                        "arithmetic" => Mix::Arithmetic,
                        "sixthpower" => Mix::Sixthpower,
                        _ => return Err(format!("mix '{v}': expected geometric, arithmetic or sixthpower")),
                    }
                }
                other => return Err(format!("pair_modify keyword '{other}' is not supported; mdrun supports shift, mix, tail")),
            }
        }
        self.changed();
        Ok(())
    }

    pub(super) fn neighbor(&mut self, args: &[String]) -> Result<(), String> {
        let [skin, style] = args else { return Err("expected: neighbor skin bin".into()) };
        if style != "bin" && style != "nsq" {
            return Err(format!("neighbor style '{style}' is not supported; mdrun builds cell lists (bin)"));
        }
        let skin = num(skin, "skin")?;
        if skin < 0.0 {
            return Err("skin must not be negative".into());
        }
        self.world.skin = Some(skin);
        Ok(())
    }

    pub(super) fn neigh_modify(&mut self, args: &[String]) -> Result<(), String> {
        for (k, v) in world::pairs(args, "neigh_modify")? {
            match k {
                "every" => {
                    let n = int(v, "every")?;
                    if n < 1 {
                        return Err("every must be positive".into());
                    }
                    self.world.every = n as u64;
                }
                "delay" => {
                    let n = int(v, "delay")?;
                    if n < 0 {
                        return Err("delay must not be negative".into());
                    }
                    self.world.delay = n as u64;
                }
                "check" => self.world.check = yes_no(v, "check")?,
                "one" | "page" => {
                    int(v, k)?;
                }
                other => return Err(format!("neigh_modify keyword '{other}' is not supported; mdrun supports every, delay, check (one, page are accepted)")),
            }
        }
        Ok(())
    }

    pub(super) fn fix(&mut self, args: &[String]) -> Result<(), String> {
        let [id, group, style, rest @ ..] = args else { return Err("expected: fix ID group style args".into()) };
        if group != "all" {
            return Err(format!("group '{group}': mdrun supports the group all only"));
        }
        let kind = match style.as_str() {
            "nve" if rest.is_empty() => FixKind::Nve,
            "langevin" => {
                if rest.len() < 4 {
                    return Err("fix langevin needs Tstart Tstop damp seed".into());
                }
                let t_start = num(&rest[0], "Tstart")?;
                let t_stop = num(&rest[1], "Tstop")?;
                let damp = num(&rest[2], "damp")?;
                let seed = int(&rest[3], "seed")?;
                if t_start != t_stop {
                    return Err("fix langevin: mdrun holds one temperature (Tstart must equal Tstop)".into());
                }
                if damp <= 0.0 || seed <= 0 || t_start < 0.0 {
                    return Err("fix langevin: damp and seed must be positive, the temperature not negative".into());
                }
                let mut zero = false;
                for (k, v) in world::pairs(&rest[4..], "fix langevin")? {
                    match k {
                        "zero" => zero = yes_no(v, "zero")?,
                        _ => return Err(format!("fix langevin keyword '{k}' is not supported; mdrun supports zero")),
                    }
                }
                FixKind::Langevin { t_start, t_stop, damp, seed, zero }
            }
            "nvt" | "npt" | "nph" => FixKind::Nh(Box::new(super::ensembles::parse_nh(style, rest, self.world.periodic)?)),
            "temp/csvr" => FixKind::Csvr(super::ensembles::parse_csvr(rest)?),
            "press/berendsen" => FixKind::PressBerendsen(super::ensembles::parse_berendsen(rest, self.world.periodic)?),
            "nve/limit" | "momentum" | "recenter" | "temp/rescale" | "temp/berendsen" | "spring" | "setforce" | "addforce" | "wall/reflect" | "deform" | "box/relax" | "shake" | "rattle" => {
                return Err(format!("fix {style} is not supported; mdrun supports fix nve, nvt, npt, nph, and langevin or temp/csvr (with nve)"));
            }
            other => return Err(format!("fix style '{other}' is not supported; mdrun supports nve, nvt, npt, nph, langevin and temp/csvr")),
        };
        self.world.fixes.retain(|f| &f.id != id);
        // One thermostat and one time integrator per atom: a second would act on the same atoms.
        let thermostat = |k: &FixKind| match k {
            FixKind::Langevin { .. } | FixKind::Csvr(_) => true,
            FixKind::Nh(nh) => nh.temp.is_some(),
            FixKind::Nve | FixKind::PressBerendsen(_) => false,
        };
        let integrates = |k: &FixKind| matches!(k, FixKind::Nve | FixKind::Nh(_));
        let barostat = |k: &FixKind| matches!(k, FixKind::PressBerendsen(_)) || matches!(k, FixKind::Nh(nh) if nh.press.iter().any(Option::is_some));
        if let Some(other) = self.world.fixes.iter().find(|f| (thermostat(&kind) && thermostat(&f.kind)) || (integrates(&kind) && integrates(&f.kind)) || (barostat(&kind) && barostat(&f.kind))) {
            let what = if thermostat(&kind) && thermostat(&other.kind) {
                "thermostat"
            } else if barostat(&kind) && barostat(&other.kind) {
                "barostat"
            } else {
                "time integrator"
            };
            return Err(format!("fix {id} ({style}) and fix {} both act on all atoms as a {what}: mdrun applies one (unfix {} first)", other.id, other.id));
        }
        // A restart's thermostat state goes to the first such fix defined after it.
        let mut kind = kind;
        if let Some(state) = self.world.restart_fix_state.take_if(|s| matches!((&kind, s.kind.as_str()), (FixKind::Nh(_), "nose-hoover") | (FixKind::Csvr(_), "csvr"))) {
            match &mut kind {
                FixKind::Nh(nh) => nh.state = Some(state),
                FixKind::Csvr(c) => c.state = Some(state),
                _ => {}
            }
        }
        self.world.fixes.push(Fix { id: id.clone(), kind });
        Ok(())
    }

    pub(super) fn thermo_style(&mut self, args: &[String]) -> Result<(), String> {
        let [style, rest @ ..] = args else { return Err("expected: thermo_style one|multi|custom ...".into()) };
        let keep = (self.style.float_format.clone(), self.style.int_format.clone());
        self.style = match style.as_str() {
            "one" if rest.is_empty() => ThermoStyle::default(),
            "multi" if rest.is_empty() => ThermoStyle {
                keys: std::iter::once("step").chain(thermo_out::MULTI.iter().copied()).map(str::to_string).collect(),
                multi: true,
                ..ThermoStyle::default()
            },
            "custom" => {
                if rest.is_empty() {
                    return Err("thermo_style custom needs keywords".into());
                }
                for k in rest {
                    let known = k.starts_with("v_") || thermo_out::title(k) != *k || matches!(k.as_str(), "step");
                    if !known {
                        return Err(format!("thermo keyword '{k}' is not supported; mdrun knows {}", thermo_out::KEYWORDS));
                    }
                }
                ThermoStyle { keys: rest.to_vec(), ..ThermoStyle::default() }
            }
            other => return Err(format!("thermo_style '{other}': expected one, multi or custom keywords...")),
        };
        (self.style.float_format, self.style.int_format) = keep;
        Ok(())
    }

    pub(super) fn thermo_modify(&mut self, args: &[String]) -> Result<(), String> {
        let mut i = 0;
        while i < args.len() {
            let v = args.get(i + 1).ok_or_else(|| format!("thermo_modify {} needs a value", args[i]))?;
            match args[i].as_str() {
                "norm" => self.norm = Some(yes_no(v, "norm")?),
                "flush" => self.flush = yes_no(v, "flush")?,
                "line" => {
                    self.style.multi = match v.as_str() {
                        "one" => false,
                        "multi" => true,
                        _ => return Err("thermo_modify line: expected one or multi".into()),
                    }
                }
                "lost" => {
                    if v != "error" {
                        return Err("thermo_modify lost: mdrun never loses atoms silently (only 'error')".into());
                    }
                }
                "format" => {
                    let f = args.get(i + 2).ok_or("thermo_modify format needs a kind (float, int) and a format")?;
                    match v.as_str() {
                        "float" => self.style.float_format = Some(f.clone()),
                        "int" => self.style.int_format = Some(f.clone()),
                        _ => return Err("thermo_modify format: mdrun supports float and int".into()),
                    }
                    cformat::printf(f, 1.0)?;
                    i += 1;
                }
                other => return Err(format!("thermo_modify keyword '{other}' is not supported; mdrun supports norm, flush, line, lost, format")),
            }
            i += 2;
        }
        Ok(())
    }

    pub(super) fn dump(&mut self, args: &[String]) -> Result<(), String> {
        let [id, group, style, every, file, cols @ ..] = args else { return Err("expected: dump ID group style N file [columns]".into()) };
        if group != "all" {
            return Err(format!("group '{group}': mdrun supports the group all only"));
        }
        let every = int(every, "dump interval")?;
        if every < 1 {
            return Err("dump interval must be positive".into());
        }
        let columns: Vec<String> = match style.as_str() {
            "atom" if cols.is_empty() => ["id", "type", "xs", "ys", "zs"].map(str::to_string).to_vec(),
            "xyz" if cols.is_empty() => Vec::new(),
            "custom" => {
                if cols.is_empty() {
                    return Err("dump custom needs columns".into());
                }
                for c in cols {
                    if !super::data::DUMP_COLUMNS.contains(&c.as_str()) {
                        return Err(format!("dump custom column '{c}' is not supported; mdrun writes {}", super::data::DUMP_COLUMNS.join(" ")));
                    }
                }
                cols.to_vec()
            }
            // Any format chemfiles writes, chosen by the extension or named: `dump 1 all
            // chemfiles 100 traj.pdb [PDB]`.
            "chemfiles" if cols.len() <= 1 => cols.to_vec(),
            "atom" | "xyz" | "chemfiles" => return Err(format!("dump {style} takes no columns (chemfiles: an optional format name)")),
            other => return Err(format!("dump style '{other}' is not supported; mdrun supports atom, custom, xyz and chemfiles (any format chemfiles writes)")),
        };
        if self.dumps.iter().any(|d| &d.id == id) {
            return Err(format!("a dump with ID '{id}' exists already (undump it first)"));
        }
        self.dumps.push(Dump {
            id: id.clone(),
            style: style.clone(),
            every: every as u64,
            path: PathBuf::from(file),
            columns,
            elements: None,
            last: None,
            opened: false,
        });
        Ok(())
    }

    pub(super) fn dump_modify(&mut self, args: &[String]) -> Result<(), String> {
        let [id, rest @ ..] = args else { return Err("expected: dump_modify ID keyword value".into()) };
        let ntypes = self.world.ntypes;
        let dump = self.dumps.iter_mut().find(|d| &d.id == id).ok_or_else(|| format!("no dump with ID '{id}'"))?;
        let mut i = 0;
        while i < rest.len() {
            let v = rest.get(i + 1).ok_or_else(|| format!("dump_modify {} needs a value", rest[i]))?;
            match rest[i].as_str() {
                "sort" => {
                    // mdrun writes atoms in id order either way.
                    if v != "id" && v != "off" {
                        return Err("dump_modify sort: mdrun sorts by id (or off)".into());
                    }
                    i += 2;
                }
                "every" => {
                    let n = int(v, "every")?;
                    if n < 1 {
                        return Err("every must be positive".into());
                    }
                    dump.every = n as u64;
                    i += 2;
                }
                "element" => {
                    if rest.len() < i + 1 + ntypes {
                        return Err(format!("dump_modify element needs one name per atom type ({ntypes})"));
                    }
                    dump.elements = Some(rest[i + 1..i + 1 + ntypes].to_vec());
                    i += 1 + ntypes;
                }
                other => return Err(format!("dump_modify keyword '{other}' is not supported; mdrun supports sort, every, element")),
            }
        }
        Ok(())
    }

    pub(super) fn write_restart(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: write_restart file".into()) };
        let plan = self.plan(0)?;
        let chk = crate::io::checkpoint::Checkpoint {
            step: self.world.step,
            system: plan.system,
            reference: None,
            reference_cell: None,
            threads: 0,
            integrator: plan.integrator.state(),
            potential: Vec::new(),
        };
        chk.write(Path::new(file)).map_err(|e| e.to_string())?;
        // The deck's own state beside it: units, box origin and types (the checkpoint is in
        // internal units, from the origin).
        let (lo, hi) = self.world.require_box()?;
        // With the force field and run settings, as LAMMPS's restart files keep them (fixes are
        // not kept, as in LAMMPS).
        let w = &self.world;
        let pair = match &w.pair {
            Some(Pair::Style { style, cutoff, coeffs }) => serde_json::json!({
                "style": style.lammps, "cutoff": cutoff,
                "coeffs": coeffs.iter().map(|(&(i, j), (v, c))| serde_json::json!([i, j, v, c])).collect::<Vec<_>>(),
            }),
            Some(Pair::Mcgm { model }) => serde_json::json!({ "style": "mcgm", "model": model, "types": w.type_names }),
            None => serde_json::Value::Null,
        };
        let meta = serde_json::json!({
            "units": w.units.name,
            "lo": lo, "hi": hi,
            "periodic": w.periodic,
            "masses": w.masses,
            "charge": w.charge,
            "pair": pair,
            "shift": w.shift, "tail": w.tail,
            "mix": match w.mix { Mix::Geometric => "geometric", Mix::Arithmetic => "arithmetic", Mix::Sixthpower => "sixthpower" },
            "dt": w.dt, "skin": w.skin, "every": w.every, "delay": w.delay, "check": w.check,
            // Groups, as LAMMPS's restart files keep them: names by bit and each atom's mask.
            "groups": w.groups, "mask": w.atoms.mask,
        });
        crate::io::checkpoint::write_atomically(&PathBuf::from(format!("{file}.deck.json")), meta.to_string().as_bytes())
            .map_err(|e| format!("cannot write {file}.deck.json: {e}"))?;
        Ok(())
    }

    pub(super) fn read_restart(&mut self, args: &[String]) -> Result<(), String> {
        let [file] = args else { return Err("expected: read_restart file".into()) };
        let chk = crate::io::checkpoint::Checkpoint::read(Path::new(file)).map_err(|e| e.to_string())?;
        let meta_path = format!("{file}.deck.json");
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&meta_path).map_err(|e| format!("cannot read {meta_path} (written beside the restart by write_restart): {e}"))?,
        )
        .map_err(|e| format!("{meta_path}: {e}"))?;
        let get3 = |k: &str| -> Result<[f64; 3], String> {
            serde_json::from_value(meta[k].clone()).map_err(|e| format!("{meta_path}: {k}: {e}"))
        };
        let units = meta["units"].as_str().ok_or_else(|| format!("{meta_path}: no units"))?;
        let mut w = World::new();
        w.units_cmd(&[units.to_string()])?;
        let (lo, hi) = (get3("lo")?, get3("hi")?);
        w.periodic = serde_json::from_value(meta["periodic"].clone()).map_err(|e| format!("{meta_path}: periodic: {e}"))?;
        let masses: Vec<Option<f64>> = serde_json::from_value(meta["masses"].clone()).map_err(|e| format!("{meta_path}: masses: {e}"))?;
        w.bounds = Some((lo, hi));
        w.ntypes = chk.system.species.len();
        w.masses = masses;
        w.type_names = vec![None; w.ntypes];
        w.atoms = world::Atoms {
            x: vec![[0.0; 3]; chk.system.len()],
            v: vec![[0.0; 3]; chk.system.len()],
            types: chk.system.types.iter().map(|&t| t as usize + 1).collect(),
            images: vec![[0; 3]; chk.system.len()],
            q: vec![0.0; chk.system.len()],
            mask: vec![1; chk.system.len()],
        };
        w.absorb(&chk.system);
        w.step = chk.step;
        w.restart_fix_state = matches!(chk.integrator.kind.as_str(), "nose-hoover" | "csvr").then(|| chk.integrator.clone());
        let bad = |k: &str| format!("{meta_path}: {k} is missing or malformed");
        w.charge = meta["charge"].as_bool().unwrap_or(false);
        w.shift = meta["shift"].as_bool().ok_or_else(|| bad("shift"))?;
        w.tail = meta["tail"].as_bool().ok_or_else(|| bad("tail"))?;
        w.mix = match meta["mix"].as_str() {
            Some("geometric") => Mix::Geometric,
            Some("arithmetic") => Mix::Arithmetic,
            Some("sixthpower") => Mix::Sixthpower,
            _ => return Err(bad("mix")),
        };
        w.dt = meta["dt"].as_f64();
        w.skin = meta["skin"].as_f64();
        w.every = meta["every"].as_u64().ok_or_else(|| bad("every"))?;
        w.delay = meta["delay"].as_u64().ok_or_else(|| bad("delay"))?;
        w.check = meta["check"].as_bool().ok_or_else(|| bad("check"))?;
        if !meta["groups"].is_null() {
            w.groups = serde_json::from_value(meta["groups"].clone()).map_err(|_| bad("groups"))?;
            let mask: Vec<u32> = serde_json::from_value(meta["mask"].clone()).map_err(|_| bad("mask"))?;
            if mask.len() != w.atoms.len() || w.groups.first().map(String::as_str) != Some("all") || w.groups.len() > 32 {
                return Err(bad("groups"));
            }
            w.atoms.mask = mask;
        }
        let p = &meta["pair"];
        w.pair = match p["style"].as_str() {
            None => None,
            Some(name) if styles::by_lammps_name(name).is_some() => {
                let style = styles::by_lammps_name(name).expect("checked");
                let mut coeffs = BTreeMap::new();
                for c in p["coeffs"].as_array().ok_or_else(|| bad("pair coeffs"))? {
                    let v: (usize, usize, Vec<f64>, f64) = serde_json::from_value(c.clone()).map_err(|_| bad("pair coeffs"))?;
                    if v.2.len() != style.params.len() {
                        return Err(bad("pair coeffs"));
                    }
                    coeffs.insert((v.0, v.1), (v.2, v.3));
                }
                Some(Pair::Style { style, cutoff: p["cutoff"].as_f64().ok_or_else(|| bad("pair cutoff"))?, coeffs })
            }
            Some("mcgm") => {
                w.type_names = serde_json::from_value(p["types"].clone()).map_err(|_| bad("pair types"))?;
                Some(Pair::Mcgm { model: serde_json::from_value(p["model"].clone()).map_err(|_| bad("pair model"))? })
            }
            Some(_) => return Err(bad("pair")),
        };
        self.world = w;
        self.changed();
        Ok(())
    }
}
