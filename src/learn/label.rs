//! `mdrun label reference.toml frames.extxyz labelled.extxyz`: energies, forces and (periodic
//! cells) stresses of every frame
//! from the potential a system.toml describes (any pair style, or a trained model), written as
//! training data. It is how `mdrun learn` is checked end to end with a cheap reference (a
//! Lennard-Jones "truth" that a model must learn), and a quick way to label frames with a
//! classical potential.

use crate::io::extxyz::Frame;
use crate::neighbor::NeighborList;
use crate::plan::Plan;
use crate::potential::{ForceOutput, Want};
use crate::system::System;
use anyhow::{Context, bail};
use std::path::Path;

/// Labels every frame of `input` with the potential of `reference` into `output`.
pub fn label_command(reference: &Path, input: &Path, output: &Path) -> anyhow::Result<()> {
    let plan = Plan::from_file(reference, None)?;
    crate::outputs::check(&[crate::outputs::Output::file("the labelled frames", output)], &[("frames".to_string(), input.to_path_buf()), ("reference".to_string(), reference.to_path_buf())])
        .map_err(|e| anyhow::anyhow!(e))?;
    let frames = read_frames(input)?;
    let mut text = String::new();
    for (k, data) in frames.iter().enumerate() {
        let at = || format!("{} frame {}", input.display(), k + 1);
        let system = system_of(&plan, data).with_context(at)?;
        let out = evaluate(&plan, &system).map_err(anyhow::Error::msg).with_context(at)?;
        if !out.energy.is_finite() || out.forces.iter().flatten().any(|f| !f.is_finite()) {
            bail!("{}: the reference gives non-finite energy or forces", at());
        }
        let symbols: Vec<&str> = data.names.iter().map(String::as_str).collect();
        let mut info = vec![("config_type".to_string(), "labelled".to_string())];
        if system.cell.pbc().iter().all(|&p| p) {
            // ASE's stress, σ = (1/V) dE/dε = -W/V (eV/Å³), as ASE and tools/xtb_label.py write it.
            let volume = system.cell.volume();
            let stress: Vec<String> = out.virial.iter().flatten().map(|w| format!("{:?}", -w / volume)).collect();
            info.push(("stress".to_string(), format!("\"{}\"", stress.join(" "))));
        }
        text += &Frame { symbols: &symbols, positions: &data.positions, cell: &system.cell, info, energy: Some(out.energy), forces: Some(&out.forces) }.text();
    }
    crate::io::checkpoint::write_atomically(output, text.as_bytes()).with_context(|| format!("cannot write {}", output.display()))?;
    println!("labelled {} frame(s) of {} with the potential of {} into {}", frames.len(), input.display(), reference.display(), output.display());
    Ok(())
}

/// Every frame of an extended XYZ (or any chemfiles) file.
pub fn read_frames(path: &Path) -> anyhow::Result<Vec<crate::io::structure::StructureData>> {
    crate::io::guard::guarded(path, || read_frames_unguarded(path)).unwrap_or_else(|message| Err(anyhow::anyhow!("{}: {message}", path.display())))
}

fn read_frames_unguarded(path: &Path) -> anyhow::Result<Vec<crate::io::structure::StructureData>> {
    crate::io::structure::route_chemfiles_warnings();
    // chemfiles knows .xyz, not .extxyz, as XYZ (which reads the extended comment line).
    let format = if path.extension().is_some_and(|e| e == "extxyz" || e == "xyz") { "XYZ" } else { "" };
    if format == "XYZ" {
        crate::io::guard::refuse_what_breaks_chemfiles(path, "XYZ").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let mut trajectory = crate::io::open_trajectory(path, format, 'r').map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let n = trajectory.nsteps();
    let mut frames = Vec::with_capacity(n);
    for k in 0..n {
        let mut frame = chemfiles::Frame::new();
        trajectory.read(&mut frame).map_err(|e| anyhow::anyhow!("{} frame {}: {e}", path.display(), k + 1))?;
        frames.push(crate::io::structure::from_frame(&frame, path)?);
    }
    Ok(frames)
}

/// The reference's system with the frame's atoms: each atom's species by name among the
/// reference's, the frame's cell (or the reference's when the frame has none).
fn system_of(plan: &Plan, data: &crate::io::structure::StructureData) -> anyhow::Result<System> {
    let known: Vec<&str> = plan.system.species.iter().map(|s| s.name.as_str()).collect();
    let types = data
        .names
        .iter()
        .map(|name| known.iter().position(|k| k == name).map(|t| t as u32).ok_or_else(|| anyhow::anyhow!("atom '{name}': the reference knows {}", known.join(", "))))
        .collect::<anyhow::Result<Vec<u32>>>()?;
    let cell = match data.cell {
        Some(vectors) => crate::cell::Cell::new(vectors, data.pbc.unwrap_or([true; 3])).map_err(|e| anyhow::anyhow!("its cell: {e}"))?,
        None => plan.system.cell.clone(),
    };
    let n = data.positions.len();
    Ok(System { species: plan.system.species.clone(), types, positions: data.positions.clone(), velocities: vec![[0.0; 3]; n], images: vec![[0; 3]; n], cell })
}

/// Energy and forces of `system` under the plan's potential.
fn evaluate(plan: &Plan, system: &System) -> Result<ForceOutput, String> {
    let mut potential = plan.potential.instantiate(system)?;
    let mut wrapped = system.clone();
    wrapped.wrap_positions();
    let mut list = NeighborList::new(potential.list_kind(), potential.cutoff(), 0.0);
    list.build(&wrapped.positions, &wrapped.cell).map_err(|e| e.to_string())?;
    let mut out = ForceOutput::default();
    potential.compute(&wrapped, &list, Want::ALL, &mut out);
    Ok(out)
}
