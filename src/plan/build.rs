//! The parts of a plan built from the schema: the structure (a file, a lattice, replica
//! frames), the system with its masses, the initial velocities and the potential.

use super::schema::*;
use super::*;

/// Reads the structure file or builds the lattice. Returns the data, a description of where it
/// came from, and whether the cell came from the file.
pub(super) fn read_structure(
    at: &Locator,
    s: &RawStructure,
    input_dir: &Path,
    frame_offset: usize,
) -> Result<(StructureData, String, bool), PlanError> {
    match (&s.file, &s.lattice) {
        (Some(file), None) => {
            for (given, key) in [(s.lattice_constant.is_some(), "lattice_constant"), (s.density.is_some(), "density"), (s.element.is_some(), "element")] {
                if given {
                    return Err(at.error(&file.span(), &format!("[structure] {key}"), "only used with lattice = \"...\", not with a structure file"));
                }
            }
            let path = input_dir.join(file.get_ref());
            let format = crate::io::format_for_path(&path, s.format.as_deref());
            structure::route_chemfiles_warnings();
            let frame = s.frame.unwrap_or(0) + frame_offset;
            let data = structure::read(&path, &format, frame)
                .map_err(|e| at.error(&file.span(), "[structure] file", e.to_string()))?;
            let has_cell = data.cell.is_some();
            let origin = if frame_offset > 0 {
                format!("structure file {} frame {frame}", path.display())
            } else {
                format!("structure file {}", path.display())
            };
            match &s.repeat {
                Some(r) => {
                    let counts = *r.get_ref();
                    if counts.contains(&0) {
                        return Err(at.error(&r.span(), "[structure] repeat", "each count must be at least 1"));
                    }
                    let replicated = structure::replicate(data, counts).map_err(|e| at.error(&r.span(), "[structure] repeat", format!("{e} (the {origin})")))?;
                    Ok((replicated, format!("{origin} repeated {}x{}x{}", counts[0], counts[1], counts[2]), has_cell))
                }
                None => Ok((data, origin, has_cell)),
            }
        }
        (None, Some(name)) => {
            let kind = LatticeKind::parse(name.get_ref()).ok_or_else(|| {
                at.error(&name.span(), "[structure] lattice", format!("unknown lattice '{}'; expected one of {}", name.get_ref(), LatticeKind::NAMES))
            })?;
            let a = match (&s.lattice_constant, &s.density) {
                (Some(q), None) => at.positive(q, "[structure] lattice_constant", Dimension::Length)?,
                (None, Some(d)) if *d.get_ref() > 0.0 => kind.constant_for_density(*d.get_ref()),
                (None, Some(d)) => return Err(at.error(&d.span(), "[structure] density", "must be positive (atoms per Å³)")),
                _ => return Err(at.error(&name.span(), "[structure] lattice_constant", "give exactly one of lattice_constant (Å) or density (atoms per Å³)")),
            };
            let repeat = s.repeat.as_ref().map(|r| *r.get_ref()).unwrap_or([1, 1, 1]);
            if repeat.contains(&0) {
                return Err(at.error(&s.repeat.as_ref().unwrap().span(), "[structure] repeat", "each count must be at least 1"));
            }
            let element = s.element.as_ref().ok_or_else(|| at.error(&name.span(), "[structure] element", "required with lattice: the species of the atoms"))?;
            let atoms = repeat.iter().fold(kind.basis().len() as u128, |t, &c| t.saturating_mul(c as u128));
            crate::limits::atoms(atoms).map_err(|e| at.error(&s.repeat.as_ref().map_or(name.span(), |r| r.span()), "[structure] repeat", e))?;
            let (positions, edges) = lattice::build(kind, a, repeat);
            let n = positions.len();
            let data = StructureData {
                names: vec![element.get_ref().clone(); n],
                positions,
                velocities: None,
                cell: Some([[edges[0], 0.0, 0.0], [0.0, edges[1], 0.0], [0.0, 0.0, edges[2]]]),
                pbc: Some([true; 3]),
            };
            Ok((data, format!("{} lattice (a = {a:.6} Å, {}x{}x{})", name.get_ref(), repeat[0], repeat[1], repeat[2]), true))
        }
        (Some(file), Some(_)) => Err(at.error(&file.span(), "[structure]", "give either file or lattice, not both")),
        (None, None) => Err(PlanError {
            file: at.file.to_path_buf(),
            line: None,
            key: Some("[structure]".into()),
            message: "needs file = \"...\" (any format chemfiles reads) or lattice = \"fcc\" (with lattice_constant or density, repeat, element)".into(),
        }),
    }
}

pub(super) fn build_system(
    at: &Locator,
    raw: &Spanned<RawStructure>,
    masses: &BTreeMap<String, Q>,
    data: StructureData,
    read_cell: bool,
    origin: &str,
) -> Result<System, PlanError> {
    let s = raw.get_ref();
    let vectors: Option<[Vec3; 3]> = match &s.cell {
        Some(c) => Some(match c.get_ref() {
            RawCell::Lengths(l) => [[l[0], 0.0, 0.0], [0.0, l[1], 0.0], [0.0, 0.0, l[2]]],
            RawCell::Vectors(v) => *v,
        }),
        None if read_cell => data.cell,
        None => None,
    };
    let pbc = match &s.pbc {
        Some(p) => match p.get_ref() {
            RawPbc::All(b) => [*b; 3],
            RawPbc::Each(e) => *e,
        },
        None => data.pbc.unwrap_or([vectors.is_some(); 3]),
    };
    let cell_span = s.cell.as_ref().map(|c| c.span()).unwrap_or(raw.span());
    let cell = match vectors {
        Some(v) => Cell::new(v, pbc)
            .map_err(|e| at.error(&cell_span, "[structure] cell", e.to_string()))?,
        None if pbc.iter().any(|&p| p) => {
            let span = s.pbc.as_ref().map(|p| p.span()).unwrap_or(raw.span());
            return Err(at.error(&span, "[structure] pbc", format!("periodic axes need a cell, and {origin} has none: give [structure] cell = [lx, ly, lz]")));
        }
        None => Cell::open(),
    };

    // Species in order of first appearance.
    let mut species: Vec<Species> = Vec::new();
    let mut types = Vec::with_capacity(data.names.len());
    for (i, name) in data.names.iter().enumerate() {
        let t = match species.iter().position(|sp| &sp.name == name) {
            Some(t) => t,
            None => {
                let mass = match masses.get(name) {
                    Some(q) => at.positive(q, &format!("[masses] {name}"), Dimension::Mass)?,
                    None => elements::standard_mass(name).ok_or_else(|| PlanError {
                        file: at.file.to_path_buf(),
                        line: None,
                        key: Some("[masses]".into()),
                        message: format!(
                            "atom {} of the {origin} is '{name}', which is not an element symbol; give its mass, e.g. [masses] {} = 39.948",
                            i + 1,
                            toml_key(name)
                        ),
                    })?,
                };
                species.push(Species {
                    name: name.clone(),
                    mass,
                });
                species.len() - 1
            }
        };
        types.push(t as u32);
    }
    for (name, q) in masses {
        if !species.iter().any(|sp| &sp.name == name) {
            let present: Vec<&str> = species.iter().map(|s| s.name.as_str()).collect();
            return Err(at.error(
                &q.span(),
                &format!("[masses] {name}"),
                format!(
                    "no atom of species '{name}' in the {origin} (species there: {})",
                    present.join(", ")
                ),
            ));
        }
    }
    let n = data.positions.len();
    Ok(System {
        species,
        types,
        positions: data.positions,
        velocities: vec![[0.0; 3]; n],
        images: vec![[0; 3]; n],
        cell,
    })
}


pub(super) fn set_velocities(
    at: &Locator,
    raw: Option<&Spanned<RawVelocities>>,
    data: &StructureData,
    system: &mut System,
    origin: &str,
) -> Result<Option<(f64, u64)>, PlanError> {
    let Some(raw) = raw else {
        if let Some(v) = &data.velocities {
            system.velocities = v.clone();
        }
        return Ok(None);
    };
    let mut drawn = None;
    let v = raw.get_ref();
    match v.source.get_ref().as_str() {
        "maxwell-boltzmann" => {
            let missing = |key: &str| {
                at.error(
                    &raw.span(),
                    &format!("[velocities] {key}"),
                    "required for source = \"maxwell-boltzmann\"",
                )
            };
            let t = at.non_negative(
                v.temperature
                    .as_ref()
                    .ok_or_else(|| missing("temperature"))?,
                "[velocities] temperature",
                Dimension::Temperature,
            )?;
            let seed = v.seed.ok_or_else(|| missing("seed"))?;
            crate::velocities::maxwell_boltzmann(system, t, seed);
            drawn = Some((t, seed));
        }
        "file" => {
            let from_file = data.velocities.as_ref().ok_or_else(|| {
                at.error(&v.source.span(), "[velocities] source", format!("the {origin} carries no velocities; use source = \"maxwell-boltzmann\" or \"zero\""))
            })?;
            system.velocities = from_file.clone();
        }
        "zero" => {}
        other => {
            return Err(at.error(
                &v.source.span(),
                "[velocities] source",
                format!(
                    "unknown source '{other}'; expected \"maxwell-boltzmann\", \"file\" or \"zero\""
                ),
            ));
        }
    }
    if v.source.get_ref() != "maxwell-boltzmann" && (v.temperature.is_some() || v.seed.is_some()) {
        return Err(at.error(
            &raw.span(),
            "[velocities]",
            "temperature and seed are only used with source = \"maxwell-boltzmann\"",
        ));
    }
    Ok(drawn)
}

/// `[potential] uncertainty` of a model with `members` committee members: the defaults for a
/// committee, nothing for one model (which has no deviation to judge).
fn build_uncertainty(at: &Locator, raw: Option<&Spanned<RawUncertainty>>, members: usize, output_dir: &Path) -> Result<Option<Uncertainty>, PlanError> {
    const KEY: &str = "[potential] uncertainty";
    let Some(raw) = raw else {
        return Ok((members > 1).then_some(Uncertainty { warn: Uncertainty::DEFAULT_WARN, save: None, stop: Uncertainty::DEFAULT_STOP }));
    };
    if members < 2 {
        return Err(at.error(&raw.span(), KEY, "needs a committee (a model folder from mdrun train --committee N): one model has no force deviation"));
    }
    let u = raw.get_ref();
    let threshold = |q: Option<&Q>, key: &str, default: f64| q.map_or(Ok(default), |q| at.positive_or_off(q, &format!("{KEY}.{key}"), Dimension::Force));
    let warn = threshold(u.warn.as_ref(), "warn", Uncertainty::DEFAULT_WARN)?;
    let stop = threshold(u.stop.as_ref(), "stop", Uncertainty::DEFAULT_STOP)?;
    let save = match (&u.save, &u.frames) {
        (_, None) => {
            if let Some(q) = &u.save {
                return Err(at.error(&q.span(), &format!("{KEY}.save"), "needs frames = \"file.extxyz\": where the frames above it go"));
            }
            None
        }
        (q, Some(frames)) => {
            let level = threshold(q.as_ref(), "save", warn)?;
            if !level.is_finite() || level >= stop {
                return Err(at.error(&frames.span(), &format!("{KEY}.save"), format!("the frames above {level} eV/Å are saved, but the run stops above {stop} eV/Å: expected save below stop")));
            }
            Some((level, output_dir.join(frames.get_ref())))
        }
    };
    Ok(Some(Uncertainty { warn, save, stop }))
}

pub(super) fn build_potential(
    at: &Locator,
    raw: &Spanned<RawPotential>,
    system: &System,
    charge: Option<&Spanned<f64>>,
    input_dir: &Path,
    output_dir: &Path,
) -> Result<PotentialSpec, PlanError> {
    let p = raw.get_ref();
    let kind = p.kind.get_ref().as_str();
    if kind == "mcgm" || kind == "ml" {
        let model = p.model.as_ref().ok_or_else(|| {
            at.error(
                &p.kind.span(),
                "[potential] model",
                format!("required for type = \"{kind}\": a model folder or file written by mdrun train"),
            )
        })?;
        if p.cutoff.is_some()
            || p.shift.is_some()
            || p.tail.is_some()
            || p.mixing.is_some()
            || !p.species.is_empty()
            || !p.pair.is_empty()
        {
            return Err(at.error(&raw.span(), "[potential]", format!("type = \"{kind}\" takes only model = \"...\" (the cutoff and species come from the model)")));
        }
        let path = input_dir.join(model.get_ref());
        let names: Vec<String> = system.species.iter().map(|s| s.name.clone()).collect();
        let potential = crate::potential::mcgm::MlPotential::load(&path, &names).map_err(|e| at.error(&model.span(), "[potential] model", e))?;
        let total = charge.map_or(0.0, |q| *q.get_ref());
        let potential = match charge {
            Some(q) => potential.with_total_charge(total).map_err(|e| at.error(&q.span(), "[structure] charge", e))?,
            None => potential,
        };
        let (ewald, potential) = match &p.ewald {
            None => (None, potential),
            Some(method) => {
                let mesh = match method.get_ref().as_str() {
                    "auto" => None,
                    "mesh" => Some(true),
                    "sum" => Some(false),
                    other => return Err(at.error(&method.span(), "[potential] ewald", format!("unknown method '{other}'; expected \"auto\", \"mesh\" (particle-mesh Ewald, or the free-space mesh in an open cell) or \"sum\" (the sum over k-vectors, or over all pairs in an open cell)"))),
                };
                (mesh, potential.with_ewald(mesh).map_err(|e| at.error(&method.span(), "[potential] ewald", e))?)
            }
        };
        potential.check_cell(&system.cell).map_err(|e| at.error(&model.span(), "[potential] model", e))?;
        let uncertainty = build_uncertainty(at, p.uncertainty.as_ref(), potential.committee_size(), output_dir)?;
        let half_tables = match &p.gpu_tables {
            None => false,
            Some(t) => match t.get_ref().as_str() {
                "f32" => false,
                "f16" => true,
                other => return Err(at.error(&t.span(), "[potential] gpu_tables", format!("unknown precision '{other}'; expected \"f32\" (the default) or \"f16\" (the GPU reads the filter tables in half precision on a coarser grid: forces within about 2e-3 of the largest force)"))),
            },
        };
        return Ok(PotentialSpec::Ml { model: path, charge: total, ewald, uncertainty, half_tables });
    }
    if let Some(q) = charge {
        return Err(at.error(&q.span(), "[structure] charge", "only a long-range model (type = \"ml\") uses the total charge"));
    }
    let Some(style) = crate::potential::styles::by_toml_name(kind) else {
        let mut known: Vec<String> = crate::potential::styles::STYLES.iter().map(|s| format!("\"{}\"", s.toml_names[0])).collect();
        known.push("\"ml\"".into());
        return Err(at.error(
            &p.kind.span(),
            "[potential] type",
            format!("unknown potential '{kind}'; expected {}", known.join(", ")),
        ));
    };
    if let Some(m) = &p.model {
        return Err(at.error(&m.span(), "[potential] model", "only used with type = \"ml\" (a learned model)"));
    }
    if let Some(m) = &p.ewald {
        return Err(at.error(&m.span(), "[potential] ewald", "only used with type = \"ml\" and a long-range model"));
    }
    if let Some(t) = &p.gpu_tables {
        return Err(at.error(&t.span(), "[potential] gpu_tables", "only used with type = \"ml\" (a learned model's filter tables)"));
    }
    let table = super::pair_table::RawPairTable {
        span: raw.span(),
        cutoff: p.cutoff.as_ref(),
        shift: p.shift,
        tail: p.tail,
        mixing: p.mixing.as_ref(),
        species: &p.species,
        pairs: &p.pair,
    };
    Ok(PotentialSpec::Pair(super::pair_table::build(at, style, &table, system)?))
}
