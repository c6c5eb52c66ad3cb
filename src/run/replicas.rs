//! `[run] replicas = N`: independent copies of one plan, each with its own run loop and
//! outputs, stepped together: on the CPU sharing one thread pool and (with a model) one batched
//! evaluation per step; on the GPU as one `GpuSimulation` batch.

use super::*;

/// Runs the `[run] replicas` copies of the plan together (`Plan::replica`): one thread per
/// replica, each with its own run loop and outputs (under `replica-k/`), and for a SchNet model
/// one batched evaluation per step for all of them (`crate::potential::batch`). Replica 0
/// prints its thermo table; the others run quietly. Returns the summaries in replica order.
pub fn run_replicas(plan: &Plan, options: &RunOptions) -> Result<Vec<RunSummary>, RunError> {
    let n = plan.replicas;
    let platform = options.platform.unwrap_or(plan.platform);
    if platform != Platform::Cpu {
        let gpu = crate::engine::choose(plan, platform, &plan.system, &mut |line| {
            if !options.quiet {
                eprintln!("{line}");
            }
        })
        .map_err(|message| RunError::Platform { path: plan.source.clone(), message })?;
        if let Some(ctx) = gpu {
            match run_replicas_on_the_gpu(plan, options, ctx) {
                // `auto` falls back to the CPU when the replicas cannot share a GPU batch.
                Err(RunError::Setup { source: SimulationError::Gpu(GpuError::Unsupported(reason)), .. }) if platform == Platform::Auto => {
                    if !options.quiet {
                        eprintln!("platform auto: running the replicas on the CPU ({reason})");
                    }
                }
                other => return other,
            }
        }
    }
    let threads = resolve_threads(plan, options)?;
    crate::limits::atoms(plan.system.len() as u128 * n as u128).map_err(|message| RunError::Platform { path: plan.source.clone(), message: format!("replicas = {n}: {message}") })?;
    let shared = match &plan.potential {
        PotentialSpec::Ml { model, .. } => {
            let names: Vec<String> = plan.system.species.iter().map(|s| s.name.clone()).collect();
            match crate::potential::mcgm::MlPotential::load(model, &names).and_then(|p| p.into_gpu()) {
                Ok(m) => Some(SharedInference::new(m.inference, n, threads).map_err(|message| RunError::Threads { threads, message })?),
                Err(e) => {
                    if !options.quiet {
                        eprintln!("note: {e}; the replicas evaluate it one by one");
                    }
                    None
                }
            }
        }
        PotentialSpec::Pair(_) => None,
    };
    if !options.quiet {
        println!(
            "{n} replicas (velocity and Langevin seeds + 0..{}), outputs under replica-0/ .. replica-{}/{}",
            n - 1,
            n - 1,
            if shared.is_some() { "; the model evaluated for all of them in one batch per step" } else { "" }
        );
    }
    let results: Vec<Result<RunSummary, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|k| {
                let plan = plan.replica(k);
                let shared = shared.clone();
                let options = RunOptions {
                    restart: options.restart.as_deref().map(|p| replica_path(p, k)),
                    platform: Some(Platform::Cpu),
                    // With a shared model the heavy work runs on the shared pool; each replica's
                    // own steps (list, graph, integration) run side by side, one thread each.
                    threads: if shared.is_some() { Some(1) } else { options.threads },
                    quiet: options.quiet || k > 0,
                    batch: shared.clone().map(|shared| BatchSlot { shared, slot: k }),
                    ..options.clone()
                };
                scope.spawn(move || {
                    let result = run(&plan, &options);
                    // Failed before or after its potential existed: the others stop waiting.
                    if let Some(s) = shared {
                        s.leave(k);
                    }
                    result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a replica's thread panicked")).collect()
    });
    finish_replicas(plan, options, results, Default::default())
}

/// `run_replicas` on the GPU: every replica's structure in one `GpuSimulation` (each with its
/// cell, seeds and outputs), one thread per replica for its run loop and outputs.
fn run_replicas_on_the_gpu(plan: &Plan, options: &RunOptions, ctx: crate::gpu::GpuContext) -> Result<Vec<RunSummary>, RunError> {
    let n = plan.replicas;
    let plans: Vec<Plan> = (0..n).map(|k| plan.replica(k)).collect();
    let potential = crate::engine::gpu_potential(plan, &plan.system).map_err(|message| RunError::Potential { path: plan.source.clone(), message })?;
    let mut structures = Vec::new();
    let mut references = Vec::new();
    let mut step = 0;
    for (k, p) in plans.iter().enumerate() {
        match &options.restart {
            None => structures.push((p.system.clone(), p.integrator.clone())),
            Some(path) => {
                // Every replica continues from its own checkpoint, all at the same step.
                let path = replica_path(path, k);
                let chk = Checkpoint::read(&path)?;
                check_restart_matches(p, &chk, &path)?;
                if k > 0 && chk.step != step {
                    return Err(RunError::Restart { path, message: format!("is at step {}, replica 0's at step {step}: a batch continues from one step", chk.step) });
                }
                step = chk.step;
                let Some(reference) = chk.reference else {
                    return Err(RunError::Restart { path, message: "has no neighbour-list build positions (written by an older mdrun?)".into() });
                };
                references.push(reference);
                structures.push((chk.system, p.integrator.clone()));
            }
        }
    }
    let references = options.restart.is_some().then_some(references);
    let sim = crate::gpu::GpuSimulation::new_batch(ctx, structures, potential, plan.timestep, plan.skin, plan.max_force, step, references)
        .map_err(|source| RunError::Setup { origin: format!("{} (from {}), {n} replicas on the GPU", plan.structure_origin, plan.source.display()), source: source.into() })?;
    let batch = crate::gpu::SharedGpuBatch::new(sim, crate::signals::install());
    if !options.quiet {
        println!("{n} replicas (velocity and Langevin seeds + 0..{}), outputs under replica-0/ .. replica-{}/; all of them in one GPU batch", n - 1, n - 1);
    }
    // One kernel split for the batch (every kernel covers all the structures).
    if options.gpu_profile && !batch.with(|g| g.enable_profiling()) && !options.quiet {
        eprintln!("--gpu-profile: {NO_TIMESTAMPS}");
    }
    let results: Vec<Result<RunSummary, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(k, plan)| {
                let slot = crate::gpu::GpuSlot { batch: batch.clone(), slot: k };
                let options = RunOptions {
                    restart: options.restart.as_deref().map(|p| replica_path(p, k)),
                    platform: Some(Platform::Gpu),
                    threads: Some(1),
                    quiet: options.quiet || k > 0,
                    gpu_profile: false,
                    gpu_batch: Some(slot.clone()),
                    ..options.clone()
                };
                scope.spawn(move || {
                    // Done, failed, blown up or panicked: the others stop waiting for it.
                    let _leave = LeaveOnDrop(slot);
                    run(plan, &options)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a replica's thread panicked")).collect()
    });
    let kernels = batch.with(|g| (g.kernel_times(), g.kernel_calls()));
    finish_replicas(plan, options, results, kernels)
}


/// Takes a replica out of its GPU batch when its thread ends, however it ends.
struct LeaveOnDrop(crate::gpu::GpuSlot);

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        self.0.batch.leave(self.0.slot);
    }
}

/// Reports the replicas' outcomes: the summaries in replica order, or the first error (each
/// failed replica's error is printed). A GPU batch's kernel split (`--gpu-profile`) is printed
/// here and kept in replica 0's summary.
fn finish_replicas(
    plan: &Plan,
    options: &RunOptions,
    results: Vec<Result<RunSummary, RunError>>,
    (kernels, calls): (std::collections::BTreeMap<String, f64>, std::collections::BTreeMap<String, u64>),
) -> Result<Vec<RunSummary>, RunError> {
    let n = plan.replicas;
    let mut summaries = Vec::new();
    let mut first_error = None;
    for (k, r) in results.into_iter().enumerate() {
        match r {
            Ok(s) => summaries.push(s),
            Err(e) => {
                eprintln!("replica {k}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if !options.quiet {
        let wall = summaries.iter().map(|s| s.wall_s).fold(0.0, f64::max);
        let atoms: Vec<usize> = (0..n).map(|k| plan.replica_systems.get(k.wrapping_sub(1)).map_or(plan.system.len(), |s| s.0.len())).collect();
        let atom_steps: f64 = summaries.iter().zip(&atoms).map(|(s, &a)| a as f64 * s.steps as f64).sum();
        println!("replicas: {n} ({} atoms in all) in {wall:.3} s: {:.4e} atom-steps/s together", atoms.iter().sum::<usize>(), atom_steps / wall);
        for (k, s) in summaries.iter().enumerate() {
            if let Some(d) = s.energy_drift_ev_per_atom_per_ps {
                println!("  replica {k}: energy drift {d:+.3e} eV/atom/ps");
            }
        }
        if !kernels.is_empty() {
            let steps = summaries.first().map_or(0, |s| s.steps);
            println!("  {}", crate::summary::kernel_split(&crate::summary::dispatches_title("GPU kernels of the batch", &calls, steps), &kernels));
        }
    }
    if let Some(first) = summaries.first_mut() {
        first.gpu_kernel_s = kernels;
        first.gpu_kernel_calls = calls;
    }
    Ok(summaries)
}
