//! The command line. `mdrun system.toml` and `mdrun run system.toml` are the same; later
//! subcommands (train, eval, analyze, convert) sit beside `run`.

use crate::plan::Plan;
use crate::run::{RunOptions, run};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mdrun",
    version,
    about = "Molecular dynamics: `mdrun system.toml` runs the simulation it describes"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the simulation described by a system.toml.
    Run(RunArgs),
    /// Train a potential on extended XYZ data with energies and forces.
    Train(TrainArgs),
    /// Energy and force errors of a model on extended XYZ data, per structure type.
    Eval(EvalArgs),
    /// Active learning: train a committee, run MD with it, label where it is unsure, retrain.
    Learn(LearnArgs),
    /// Label frames with the potential of a system.toml (energies and forces, extended XYZ).
    Label(LabelArgs),
    /// RDF, MSD, VACF of a trajectory; statistics and drift of a thermo log.
    Analyze(crate::analysis::AnalyzeArgs),
    /// Write the system.toml of a LAMMPS deck's first run (to stdout).
    Convert(ConvertArgs),
}

#[derive(Args, Debug, Clone)]
struct ConvertArgs {
    /// The LAMMPS input deck.
    deck: PathBuf,
    /// Define an index variable, as LAMMPS's -var NAME VALUE (repeatable).
    #[arg(long = "var", num_args = 2, value_names = ["NAME", "VALUE"])]
    var: Vec<String>,
    /// Where to write the starting state (default: the deck's path + .start.chk).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct TrainArgs {
    /// A train.toml with the same keys as the flags (flags win).
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: crate::ml::commands::TrainSettings,
}

#[derive(Args, Debug, Clone)]
struct LearnArgs {
    /// The learn.toml (data, out, label command, rounds, [train], [[system]]).
    config: PathBuf,
}

#[derive(Args, Debug, Clone)]
struct LabelArgs {
    /// A system.toml whose [potential] is the reference (its species name the elements).
    reference: PathBuf,
    /// The frames to label (extended XYZ, or any format chemfiles reads).
    input: PathBuf,
    /// Where the labelled frames go (extended XYZ with energy= and forces).
    output: PathBuf,
}

#[derive(Args, Debug, Clone)]
struct EvalArgs {
    /// The model: its folder, model.json or model.safetensors.
    model: PathBuf,
    /// Extended XYZ with energy= and forces.
    data: PathBuf,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
    /// Also write every structure with the model's energy and forces (extended XYZ:
    /// `mdrun_energy=` beside the reference `energy=`, an `mdrun_forces` column).
    #[arg(long, value_name = "EXTXYZ")]
    predictions: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// The system.toml to run.
    input: Option<PathBuf>,
    /// Continue from a checkpoint written by an earlier run of the same input.
    #[arg(long, value_name = "CHECKPOINT")]
    restart: Option<PathBuf>,
    /// Worker threads for the force loop (default: all cores; [run] threads in the input).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// End the run at this step instead of [run] steps.
    #[arg(long, value_name = "N")]
    steps: Option<u64>,
    /// Also write the end-of-run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Folder for relative output paths (default: the input file's folder).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Print only errors.
    #[arg(long, short)]
    quiet: bool,
    /// Where to run: auto (a real GPU if there is one, else the CPU), cpu or gpu; overrides
    /// [run] platform.
    #[arg(long, value_name = "auto|cpu|gpu", value_parser = parse_platform)]
    platform: Option<crate::plan::Platform>,
    /// GPU runs: time every kernel with timestamp queries and print the split in the summary.
    #[arg(long)]
    gpu_profile: bool,
    /// List the GPU adapters wgpu sees (best first) and exit.
    #[arg(long)]
    list_devices: bool,
}

fn parse_platform(text: &str) -> Result<crate::plan::Platform, String> {
    crate::plan::Platform::parse(text)
}

fn list_devices() {
    let adapters = crate::gpu::list_adapters();
    if adapters.is_empty() {
        println!("wgpu sees no GPU adapter: {}", crate::gpu::GpuError::NoAdapter);
        return;
    }
    for (k, a) in adapters.iter().enumerate() {
        let note = if a.hardware { "" } else { "  [software: platform auto skips it, gpu uses it]" };
        println!("{k}: {a}{note}");
        println!(
            "   largest storage binding {} MiB, {} storage buffers per kernel, timestamp queries: {}",
            a.max_binding >> 20,
            a.max_storage_buffers,
            if a.timestamps { "yes" } else { "no" }
        );
    }
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if crate::deck::is_lammps_command_line(&args) {
        return crate::deck::lammps_main(&args);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => execute(args),
        Some(Command::Train(args)) => {
            crate::ml::commands::train_command(args.config.as_deref(), args.settings)
        }
        Some(Command::Eval(args)) => {
            crate::ml::commands::eval_command(&args.model, &args.data, args.json, args.predictions.as_deref())
        }
        Some(Command::Learn(args)) => crate::learn::learn_command(&args.config),
        Some(Command::Label(args)) => crate::learn::label::label_command(&args.reference, &args.input, &args.output),
        Some(Command::Analyze(args)) => crate::analysis::analyze_command(&args),
        Some(Command::Convert(args)) => convert_command(&args),
        None => execute(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            let interrupted = matches!(
                e.downcast_ref::<crate::run::RunError>(),
                Some(crate::run::RunError::Interrupted { .. })
            ) || e.downcast_ref::<crate::signals::Interrupted>().is_some();
            if interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line, each cause only where the text so far does not
/// already hold it (mdrun's errors often name their source in their own message).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

fn execute(args: RunArgs) -> anyhow::Result<()> {
    if args.list_devices {
        list_devices();
        return Ok(());
    }
    let Some(input) = args.input else {
        anyhow::bail!("no input: run `mdrun system.toml` (see `mdrun --help`)");
    };
    let plan = Plan::from_file(&input, args.output_dir.as_deref())?;
    if let Some(path) = &args.summary {
        let mut outputs = plan.outputs();
        outputs.push(crate::outputs::Output::file("--summary", path));
        crate::outputs::check(&outputs, &plan.inputs).map_err(|e| anyhow::anyhow!("{}: {e}", plan.source.display()))?;
    }
    let options = RunOptions {
        threads: args.threads,
        restart: args.restart,
        steps: args.steps,
        quiet: args.quiet,
        platform: args.platform,
        gpu_profile: args.gpu_profile,
        batch: None,
        gpu_batch: None,
    };
    let json = if plan.replicas > 1 {
        let summaries = crate::run::run_replicas(&plan, &options)?;
        serde_json::to_string_pretty(&summaries)
    } else {
        serde_json::to_string_pretty(&run(&plan, &options)?)
    };
    if let Some(path) = args.summary {
        let json = json.expect("summary serialises");
        crate::io::checkpoint::write_atomically(&path, json.as_bytes())
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    Ok(())
}

fn convert_command(args: &ConvertArgs) -> anyhow::Result<()> {
    let vars = args.var.chunks(2).map(|c| (c[0].clone(), vec![c[1].clone()])).collect();
    let (toml, notes) = crate::deck::convert(&args.deck, vars, args.state.as_deref())?;
    print!("{toml}");
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}
