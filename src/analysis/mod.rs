//! `mdrun analyze`: radial distribution functions, mean-squared displacements and diffusion
//! coefficients, velocity autocorrelation and vibrational spectra from any trajectory chemfiles
//! reads; statistics and energy drift from a thermo log. CSV tables, PNG plots and a
//! summary.json with the fitted numbers and their errors.

pub mod fft;
pub mod frames;
pub mod msd;
pub mod plot;
pub mod rdf;
pub mod series;
pub mod reference;
pub mod stats;
pub mod thermo_figure;
pub mod vacf;

use frames::{FrameRange, Frames};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// A trajectory (any format chemfiles reads) or a thermo log.
    pub input: PathBuf,
    /// Radial distribution function and coordination numbers.
    #[arg(long)]
    pub rdf: bool,
    /// Mean-squared displacement and diffusion coefficients.
    #[arg(long)]
    pub msd: bool,
    /// Velocity autocorrelation and vibrational density of states (needs velocities).
    #[arg(long)]
    pub vacf: bool,
    /// Thermo log: mean, standard deviation, standard error and correlation time per column.
    #[arg(long)]
    pub stats: bool,
    /// Thermo log: NVE energy drift per atom per ps.
    #[arg(long)]
    pub drift: bool,
    /// Only these species (comma-separated), for MSD, VACF and the total g(r).
    #[arg(long, value_delimiter = ',', value_name = "SPECIES")]
    pub select: Vec<String>,
    /// g(r) per pair of species, e.g. O-H,O-O.
    #[arg(long, value_delimiter = ',', value_name = "A-B")]
    pub pairs: Vec<String>,
    /// Frames START:STOP:STRIDE (Python slice; default all).
    #[arg(long, default_value = "::1")]
    pub frames: FrameRange,
    /// g(r) range, Å.
    #[arg(long, default_value_t = 10.0)]
    pub rmax: f64,
    /// g(r) bins.
    #[arg(long, default_value_t = 200)]
    pub bins: usize,
    /// Time between the analysed frames, ps (default: from the frames' time property).
    #[arg(long)]
    pub dt: Option<f64>,
    /// MSD fit window, as fractions of the longest lag.
    #[arg(long, default_value = "0.1:0.5", value_name = "FROM:TO")]
    pub fit: String,
    /// Atoms, for the drift per atom (default: from the thermo log's preamble).
    #[arg(long)]
    pub atoms: Option<usize>,
    /// Output folder (default: INPUT's folder / analysis).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CSV and JSON only.
    #[arg(long)]
    pub no_plots: bool,
    /// Thermo log: another run's thermo table (an mdrun log, a LAMMPS log), drawn dashed over
    /// this one's in thermo.png.
    #[arg(long, value_name = "LOG")]
    pub reference: Option<PathBuf>,
    /// g(r) of a pair from elsewhere (two columns, r in Å and g), drawn dashed over mdrun's:
    /// O-O=exp.csv (repeatable; "all" for the total g(r)).
    #[arg(long = "rdf-reference", value_name = "PAIR=FILE")]
    pub rdf_reference: Vec<String>,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn analyze_command(args: &AnalyzeArgs) -> anyhow::Result<()> {
    let out = match &args.out {
        Some(d) => d.clone(),
        None => args.input.parent().map(|p| p.join("analysis")).unwrap_or_else(|| PathBuf::from("analysis")),
    };
    std::fs::create_dir_all(&out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let summary = if is_thermo_log(&args.input) {
        analyze_log(args, &out)?
    } else {
        analyze_trajectory(args, &out)?
    };
    merge_summary(&out, summary)?;
    if !args.quiet {
        println!("Wrote {} (summary.json and tables{}).", out.display(), if args.no_plots { "" } else { ", plots" });
    }
    Ok(())
}

fn is_thermo_log(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "log") {
        return true;
    }
    // Only the start: trajectories can be larger than memory.
    let mut head = Vec::new();
    let Ok(file) = std::fs::File::open(path) else { return false };
    if std::io::Read::read_to_end(&mut std::io::Read::take(file, 4096), &mut head).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&head);
    text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).is_some_and(|l| l.trim_start().starts_with("Step"))
}

fn analyze_log(args: &AnalyzeArgs, out: &Path) -> anyhow::Result<Value> {
    if !args.rdf_reference.is_empty() {
        anyhow::bail!("{}: --rdf-reference draws over a trajectory's g(r); a thermo log takes --reference OTHER.log", args.input.display());
    }
    let table = stats::read_table(&args.input).map_err(anyhow::Error::msg)?;
    let (want_stats, want_drift) = if args.stats || args.drift { (args.stats, args.drift) } else { (true, true) };
    let time = table.columns.iter().position(|c| c.starts_with("Time"));
    let dt = match time {
        Some(t) if table.rows.len() > 1 => table.rows[1][t] - table.rows[0][t],
        _ => 1.0,
    };
    let mut summary = serde_json::Map::new();
    summary.insert("thermo_log".into(), json!(args.input.display().to_string()));
    summary.insert("rows".into(), json!(table.rows.len()));
    if want_stats {
        let mut all = BTreeMap::new();
        let mut lines = Vec::new();
        for (c, name) in table.columns.iter().enumerate() {
            if name == "Step" || name.starts_with("Time") {
                continue;
            }
            let x: Vec<f64> = table.rows.iter().map(|r| r[c]).collect();
            let s = stats::column_stats(&x, dt);
            lines.push(format!(
                "  {name:<12} mean {:.10} ± {:.2e} (sem), std {:.4e}, correlation time {:.3} ps",
                s.mean, s.sem, s.std, s.correlation_time_ps
            ));
            all.insert(name.clone(), s);
        }
        if !args.quiet {
            println!("{} rows, {dt} ps apart:", table.rows.len());
            lines.iter().for_each(|l| println!("{l}"));
        }
        summary.insert("stats".into(), serde_json::to_value(all)?);
    }
    if want_drift {
        let n = args.atoms.or(table.n_atoms).ok_or_else(|| {
            anyhow::anyhow!("{}: the drift per atom needs the atom count: give --atoms N", args.input.display())
        })?;
        let d = stats::drift(&table, n).map_err(anyhow::Error::msg)?;
        if !args.quiet {
            println!("  energy drift {:.4e} ± {:.1e} eV/atom/ps ({n} atoms)", d.ev_per_atom_per_ps, d.error);
        }
        summary.insert("drift".into(), serde_json::to_value(&d)?);
    }
    if !args.no_plots {
        if let (Some(t), Some(e)) = (time, table.columns.iter().position(|c| c.starts_with("TotEng"))) {
            let x: Vec<f64> = table.rows.iter().map(|r| r[t]).collect();
            let mut series = vec![("TotEng".to_string(), x.clone(), table.rows.iter().map(|r| r[e]).collect())];
            if let Some(p) = table.columns.iter().position(|c| c.starts_with("PotEng")) {
                let e0 = table.rows[0][e];
                let p0 = table.rows[0][p];
                // PotEng shifted onto TotEng's start, to share the axis.
                series.push(("PotEng (shifted)".to_string(), x, table.rows.iter().map(|r| r[p] - p0 + e0).collect()));
            }
            plot::line_plot(&out.join("energy.png"), "energy", "t (ps)", "E (eV)", &series)?;
        }
        let reference = match &args.reference {
            Some(path) => {
                Some((reference::read_thermo(path).map_err(anyhow::Error::msg)?, reference::short_name(path)))
            }
            None => None,
        };
        if thermo_figure::draw(&out.join("thermo.png"), &table, reference.as_ref().map(|(t, o)| (t, o.as_str())))? && !args.quiet {
            println!("Wrote {}", out.join("thermo.png").display());
        }
    }
    Ok(Value::Object(summary))
}

fn parse_fit(text: &str) -> anyhow::Result<(f64, f64)> {
    let parts: Vec<f64> = text.split(':').map(|s| s.trim().parse::<f64>()).collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--fit '{text}': expected FROM:TO fractions such as 0.1:0.5"))?;
    match parts[..] {
        [a, b] => fit_window(a, b).ok_or_else(|| anyhow::anyhow!("--fit '{text}': expected 0 <= FROM < TO <= 1")),
        _ => anyhow::bail!("--fit '{text}': expected 0 <= FROM < TO <= 1"),
    }
}

/// The MSD fit window (fractions of the longest lag) when 0 <= from < to <= 1.
pub fn fit_window(from: f64, to: f64) -> Option<(f64, f64)> {
    ((0.0..1.0).contains(&from) && from < to && to <= 1.0).then_some((from, to))
}

fn write_csv(path: &Path, header: &[String], columns: &[&[f64]]) -> anyhow::Result<()> {
    let mut text = header.join(",");
    text.push('\n');
    let rows = columns.iter().map(|c| c.len()).min().unwrap_or(0);
    for r in 0..rows {
        let row: Vec<String> = columns.iter().map(|c| format!("{:.8e}", c[r])).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    let mut file = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// What a trajectory analysis computes and how: shared by `mdrun analyze` and the `[analysis]`
/// table of a run.
#[derive(Clone, Debug)]
pub struct TrajectoryAnalysis {
    pub rdf: bool,
    pub msd: bool,
    pub vacf: bool,
    /// Species kept for MSD, VACF and the total g(r) (empty: all).
    pub select: Vec<String>,
    /// g(r) per pair of species.
    pub pairs: Vec<(String, String)>,
    /// g(r) range, Å, and bins.
    pub rmax: f64,
    pub bins: usize,
    /// Time between frames, ps (None: from the frames' times).
    pub dt: Option<f64>,
    /// MSD fit window as fractions of the longest lag.
    pub fit: (f64, f64),
    pub plots: bool,
    /// Reference g(r) curves drawn over the channel they name ("O-O", or "all"), with the
    /// file they came from.
    pub rdf_references: Vec<(String, PathBuf)>,
    pub quiet: bool,
}

/// A trajectory analysis under way: frames go in one by one (nothing but the MSD/VACF traces
/// is kept), results come out at `finish`.
pub struct Accumulator {
    settings: TrajectoryAnalysis,
    /// Names the input in messages.
    source: String,
    rdf: Option<rdf::Rdf>,
    series: Option<series::Series>,
    batch: Vec<rdf::FrameInput>,
    names0: Vec<String>,
    count: usize,
}

impl Accumulator {
    pub fn new(settings: TrajectoryAnalysis, source: String) -> anyhow::Result<Accumulator> {
        if settings.rdf && !(settings.rmax > 0.0 && settings.rmax.is_finite() && (1..=crate::limits::MAX_HISTOGRAM_BINS).contains(&settings.bins)) {
            anyhow::bail!("{source}: the g(r) range must be positive and the bins between 1 and {}", crate::limits::MAX_HISTOGRAM_BINS);
        }
        let rdf = settings.rdf.then(|| rdf::Rdf::new(rdf::RdfSettings { rmax: settings.rmax, bins: settings.bins, pairs: settings.pairs.clone() }));
        Ok(Accumulator { settings, source, rdf, series: None, batch: Vec::new(), names0: Vec::new(), count: 0 })
    }

    pub fn frames(&self) -> usize {
        self.count
    }

    /// Adds one frame (`index` names it in messages).
    pub fn add(&mut self, index: usize, names: &std::sync::Arc<Vec<String>>, positions: Vec<crate::cell::Vec3>, velocities: Option<&[crate::cell::Vec3]>, cell: Option<&crate::cell::Cell>, time_ps: Option<f64>) -> anyhow::Result<()> {
        let st = &self.settings;
        if self.count == 0 {
            self.names0 = names.to_vec();
            for species in st.select.iter().chain(st.pairs.iter().flat_map(|(a, b)| [a, b])) {
                if !names.contains(species) {
                    anyhow::bail!("{}: no atom of species '{species}' (the file has {:?})", self.source, distinct(names));
                }
            }
        } else if names.len() != self.names0.len() {
            anyhow::bail!("{}: frame {index}: {} atoms where the first frame had {}", self.source, names.len(), self.names0.len());
        }
        let keep: Vec<usize> = (0..names.len()).filter(|&i| st.select.is_empty() || st.select.contains(&names[i])).collect();
        if st.msd || st.vacf {
            let ser = self.series.get_or_insert_with(|| series::Series::new(keep.clone(), keep.iter().map(|&i| names[i].clone()).collect()));
            ser.add(&positions, velocities, cell, time_ps);
        }
        if self.rdf.is_some() {
            let Some(cell) = cell.cloned().filter(|c| c.pbc() == [true; 3]) else {
                anyhow::bail!("{}: frame {index}: g(r) needs a cell periodic on all three axes", self.source);
            };
            let (sel_names, sel_pos) = if st.select.is_empty() || !st.pairs.is_empty() {
                (names.clone(), positions)
            } else {
                (std::sync::Arc::new(keep.iter().map(|&i| names[i].clone()).collect()), keep.iter().map(|&i| positions[i]).collect())
            };
            self.batch.push((sel_names, sel_pos, cell));
            if self.batch.len() >= 4 * rayon::current_num_threads() {
                self.flush()?;
            }
        }
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(r) = self.rdf.as_mut() {
            r.add_frames(&self.batch).map_err(|e| anyhow::anyhow!("{}: g(r): {e}", self.source))?;
        }
        self.batch.clear();
        Ok(())
    }

    /// Writes the tables (and plots) into `out` and returns the summary's entries.
    pub fn finish(mut self, out: &Path) -> anyhow::Result<Value> {
        self.flush()?;
        let (args, count) = (&self.settings, self.count);
        if count == 0 {
            anyhow::bail!("{}: no frame to analyse", self.source);
        }
        let mut summary = serde_json::Map::new();
        summary.insert("trajectory".into(), json!(self.source));
        summary.insert("frames".into(), json!(count));
        let say = |line: String| {
            if !args.quiet {
                println!("{line}");
            }
        };
        say(format!("{count} frames of {} atoms", self.names0.len()));

        if let Some(rdf) = &self.rdf {
            let result = rdf.finish();
            let mut header = vec!["r".to_string()];
            let mut columns: Vec<&[f64]> = vec![&result.r];
            let mut shells = serde_json::Map::new();
            for (label, g, n) in &result.channels {
                let (gname, nname) = if label.is_empty() { ("g".to_string(), "n".to_string()) } else { (format!("g_{label}"), format!("n_{label}")) };
                header.push(gname);
                header.push(nname);
                columns.push(g);
                columns.push(n);
                if let Some((peak, min)) = rdf::first_shell(&result.r, g) {
                    let b = result.r.iter().position(|&r| r >= min).unwrap_or(0);
                    let key = if label.is_empty() { "all".to_string() } else { label.clone() };
                    say(format!("g(r) {key}: first peak at {peak:.3} Å, first minimum at {min:.3} Å, coordination {:.3}", n[b]));
                    shells.insert(key, json!({"first_peak_a": peak, "first_minimum_a": min, "coordination": n[b]}));
                }
            }
            write_csv(&out.join("rdf.csv"), &header, &columns)?;
            summary.insert("rdf".into(), Value::Object(shells));
            if args.plots {
                let name = |label: &String| if label.is_empty() { "all".to_string() } else { label.clone() };
                let curves: Vec<plot::Series> = result.channels.iter().map(|(label, g, _)| (format!("g(r) {}", name(label)), result.r.clone(), g.clone())).collect();
                // The running coordination numbers on the right axis, dashed in their g(r)'s colour.
                let counts: Vec<(usize, plot::Series)> =
                    result.channels.iter().enumerate().map(|(k, (label, _, n))| (k, (format!("n(r) {}", name(label)), result.r.clone(), n.clone()))).collect();
                let mut references: Vec<(usize, plot::Series)> = Vec::new();
                for (pair, path) in &self.settings.rdf_references {
                    let Some(k) = result.channels.iter().position(|(label, _, _)| &name(label) == pair || same_pair(label, pair)) else {
                        let have: Vec<String> = result.channels.iter().map(|(l, _, _)| name(l)).collect();
                        anyhow::bail!("reference g(r) {}: the analysis has no pair {pair} (it has {})", path.display(), have.join(", "));
                    };
                    let (r, g) = reference::read_curve(path).map_err(anyhow::Error::msg)?;
                    references.push((k, (format!("g(r) {pair}: {}", reference::short_name(path)), r, g)));
                }
                if curves.len() == 1 {
                    let figure = plot::Figure {
                        title: "radial distribution function",
                        x_label: "r (Å)",
                        y_label: "g(r)",
                        series: &curves,
                        fits: &references,
                        right: Some(("coordination number n(r)", &counts)),
                        legend: plot::Legend::UpperLeft,
                        first_color: 0,
                    };
                    plot::draw_figure(&out.join("rdf.png"), &figure)?;
                } else {
                    // A panel per pair, each on its own scale: one axis for all would let an
                    // intramolecular peak (O-H, g ~ 30) flatten the shells that matter (O-O, g ~ 3).
                    let captions: Vec<String> = result
                        .channels
                        .iter()
                        .map(|(label, _, _)| format!("{}: g(r) solid, left; n(r) dashed, right", name(label)))
                        .collect();
                    // Each panel's curve, references and n(r), renumbered from 0 (`first_color` keeps the colours).
                    let panels: Vec<_> = (0..curves.len())
                        .map(|k| {
                            let own = |list: &[(usize, plot::Series)]| list.iter().filter(|(c, _)| *c == k).map(|(_, s)| (0, s.clone())).collect::<Vec<_>>();
                            (vec![curves[k].clone()], own(&references), own(&counts))
                        })
                        .collect();
                    let figures: Vec<plot::Figure> = panels
                        .iter()
                        .zip(&captions)
                        .enumerate()
                        .map(|(k, ((series, fits, right), caption))| plot::Figure {
                            title: caption,
                            x_label: "r (Å)",
                            y_label: "g(r)",
                            series,
                            fits,
                            right: Some(("n(r)", right)),
                            legend: if fits.is_empty() { plot::Legend::None } else { plot::Legend::UpperLeft },
                            first_color: k,
                        })
                        .collect();
                    plot::draw_figures(&out.join("rdf.png"), "radial distribution functions", &figures)?;
                }
            }
        }
        if let Some(ser) = &self.series {
            let dt = ser.frame_interval(args.dt).map_err(|e| anyhow::anyhow!("{}: {e}", self.source))?;
            if args.msd {
                let result = msd::compute(ser, dt, args.fit);
                let single = result.curves.len() == 1;
                let mut header = vec!["t_ps".to_string()];
                let mut columns: Vec<&[f64]> = vec![&result.t];
                for (label, curve) in &result.curves {
                    header.push(if single || label.is_empty() { "msd_a2".into() } else { format!("msd_a2_{label}") });
                    columns.push(curve);
                }
                write_csv(&out.join("msd.csv"), &header, &columns)?;
                let mut diffusion = serde_json::Map::new();
                for (label, d, err) in &result.diffusion {
                    let key = if label.is_empty() { "all".to_string() } else { label.clone() };
                    say(format!("D({key}) = {d:.4e} ± {err:.1e} Å²/ps (= {:.4e} cm²/s), fit over {:.3} to {:.3} ps", d * 1e-4, result.fit_window.0, result.fit_window.1));
                    diffusion.insert(key, json!({"value": d, "error": err}));
                }
                summary.insert("diffusion_a2_per_ps".into(), Value::Object(diffusion));
                summary.insert("msd_fit_window_ps".into(), json!([result.fit_window.0, result.fit_window.1]));
                if args.plots {
                    let curves: Vec<plot::Series> = result
                        .curves
                        .iter()
                        .map(|(label, c)| (if label.is_empty() { "all".into() } else { label.clone() }, result.t.clone(), c.clone()))
                        .collect();
                    // The fitted lines over the fit window: a least-squares line passes through
                    // the mean of the points it fits, with slope 6D.
                    let (lo, hi) = result.fit_window;
                    let mut fits = Vec::new();
                    for (label, d, _) in &result.diffusion {
                        let Some(k) = result.curves.iter().position(|(l, _)| l == label) else { continue };
                        let c = &result.curves[k].1;
                        let window: Vec<(f64, f64)> = result.t.iter().zip(c).filter(|(t, _)| (lo..=hi).contains(*t)).map(|(&t, &m)| (t, m)).collect();
                        if window.len() >= 2 {
                            let n = window.len() as f64;
                            let (tm, mm) = (window.iter().map(|p| p.0).sum::<f64>() / n, window.iter().map(|p| p.1).sum::<f64>() / n);
                            let name = if label.is_empty() { "all".to_string() } else { label.clone() };
                            fits.push((k, (format!("{name} fit, D = {} Å²/ps", plot::number(*d)), vec![lo, hi], vec![mm + 6.0 * d * (lo - tm), mm + 6.0 * d * (hi - tm)])));
                        }
                    }
                    let figure = plot::Figure { title: "mean-squared displacement", x_label: "t (ps)", y_label: "MSD (Å²)", series: &curves, fits: &fits, right: None, legend: plot::Legend::UpperLeft, first_color: 0 };
                    plot::draw_figure(&out.join("msd.png"), &figure)?;
                }
            }
            if args.vacf {
                if !ser.has_velocities {
                    anyhow::bail!("{}: the VACF needs velocities in every frame (mdrun writes them with velocities = true)", self.source);
                }
                let result = vacf::compute(ser, dt);
                let c0 = result.c[0].max(1e-300);
                let normalised: Vec<f64> = result.c.iter().map(|c| c / c0).collect();
                write_csv(&out.join("vacf.csv"), &["t_ps".into(), "vacf_a2_per_ps2".into(), "vacf_normalised".into()], &[&result.t, &result.c, &normalised])?;
                let wavenumber: Vec<f64> = result.frequency.iter().map(|f| f * 33.356_409_519_815_2).collect();
                write_csv(&out.join("vdos.csv"), &["frequency_thz".into(), "wavenumber_cm1".into(), "vdos_per_thz".into()], &[&result.frequency, &wavenumber, &result.dos])?;
                let peak = (0..result.dos.len()).max_by(|&a, &b| result.dos[a].total_cmp(&result.dos[b])).unwrap_or(0);
                say(format!("VACF: C(0) = {:.4e} Å²/ps²; VDOS peak at {:.4} THz ({:.1} cm⁻¹)", result.c[0], result.frequency[peak], wavenumber[peak]));
                summary.insert("vacf".into(), json!({"c0_a2_per_ps2": result.c[0], "vdos_peak_thz": result.frequency[peak]}));
                if args.plots {
                    plot::line_plot(&out.join("vacf.png"), "velocity autocorrelation", "t (ps)", "C(t) / C(0)", &[("vacf".into(), result.t.clone(), normalised)])?;
                    plot::line_plot(&out.join("vdos.png"), "vibrational density of states", "ν (THz)", "VDOS (1/THz)", &[("vdos".into(), result.frequency.clone(), result.dos.clone())])?;
                }
            }
        }
        Ok(Value::Object(summary))
    }
}

/// Merges `entries` into `out`/summary.json (a run's trajectory and thermo-log analyses share
/// the folder), written atomically.
pub fn merge_summary(out: &Path, entries: Value) -> anyhow::Result<()> {
    let path = out.join("summary.json");
    let mut merged = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    if let Value::Object(new) = entries {
        merged.extend(new);
    }
    let text = serde_json::to_string_pretty(&Value::Object(merged)).expect("summary serialises");
    crate::io::checkpoint::write_atomically(&path, text.as_bytes())?;
    Ok(())
}

fn analyze_trajectory(args: &AnalyzeArgs, out: &Path) -> anyhow::Result<Value> {
    let (mut want_rdf, mut want_msd, want_vacf) = (args.rdf, args.msd, args.vacf);
    if !(args.rdf || args.msd || args.vacf) {
        want_rdf = true;
        want_msd = true;
    }
    if args.stats || args.drift || args.reference.is_some() {
        anyhow::bail!("{}: --stats, --drift and --reference read a thermo log, not a trajectory (a reference g(r) is --rdf-reference PAIR=FILE)", args.input.display());
    }
    let pairs: Vec<(String, String)> = args
        .pairs
        .iter()
        .map(|p| parse_pair(p).ok_or_else(|| anyhow::anyhow!("--pairs '{p}': expected two species joined by '-', such as O-H")))
        .collect::<anyhow::Result<_>>()?;
    if want_rdf && !(args.rmax > 0.0 && args.rmax.is_finite() && (1..=crate::limits::MAX_HISTOGRAM_BINS).contains(&args.bins)) {
        anyhow::bail!("--rmax must be a positive length and --bins between 1 and {}", crate::limits::MAX_HISTOGRAM_BINS);
    }
    let settings = TrajectoryAnalysis {
        rdf: want_rdf,
        msd: want_msd,
        vacf: want_vacf,
        select: args.select.clone(),
        pairs,
        rmax: args.rmax,
        bins: args.bins,
        dt: args.dt,
        fit: parse_fit(&args.fit)?,
        plots: !args.no_plots,
        rdf_references: args
            .rdf_reference
            .iter()
            .map(|r| r.split_once('=').map(|(p, f)| (p.to_string(), PathBuf::from(f))).ok_or_else(|| anyhow::anyhow!("--rdf-reference '{r}': expected PAIR=FILE, such as O-O=exp.csv")))
            .collect::<anyhow::Result<_>>()?,
        quiet: args.quiet,
    };
    let mut frames = Frames::open(&args.input, args.frames)?;
    let selected = frames.selected();
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(selected as u64);
        bar.set_style(ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} frames  ETA {eta}").expect("template"));
        bar
    });
    let mut analysis = Accumulator::new(settings, args.input.display().to_string())?;
    for snapshot in frames.by_ref() {
        let s = snapshot?;
        analysis.add(s.index, &s.names, s.data.positions, s.data.velocities.as_deref(), s.cell.as_ref(), s.time_ps)?;
        if let Some(b) = &bar {
            b.set_position(analysis.frames() as u64);
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if analysis.frames() == 0 {
        anyhow::bail!("{}: the frame range {:?} selects no frame", args.input.display(), args.frames);
    }
    analysis.finish(out)
}

/// "O-H" -> ("O", "H").
/// Whether a g(r) channel's label ("O-H") is the pair `text` names, in either order.
fn same_pair(label: &str, text: &str) -> bool {
    match (parse_pair(label), parse_pair(text)) {
        (Some((a, b)), Some((c, d))) => (a == c && b == d) || (a == d && b == c),
        _ => false,
    }
}

pub fn parse_pair(text: &str) -> Option<(String, String)> {
    match text.split_once('-') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Some((a.to_string(), b.to_string())),
        _ => None,
    }
}

fn distinct(names: &[String]) -> Vec<String> {
    let mut d: Vec<String> = names.to_vec();
    d.sort();
    d.dedup();
    d
}
