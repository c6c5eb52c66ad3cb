//! Crash consistency of the outputs a restart appends to. A run killed after its last
//! checkpoint leaves a thermo log and trajectories that go past the checkpoint's step, often
//! with a half-written last row or frame. Before `--restart` appends, each is cut back to the
//! checkpoint's step, so that the continued files equal those of a run that never stopped.

use super::trajectory::TrajectorySpec;
use std::io::Read;
use std::path::Path;

/// Cuts the thermo log at `path` after the last complete row at or before `step`, dropping
/// later rows, comments and a half-written line. Returns a note when something was cut.
pub fn truncate_log(path: &Path, step: u64) -> std::io::Result<Option<String>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let mut keep = 0;
    let mut dropped_rows = 0;
    let mut cut = false;
    let mut offset = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let complete = line.ends_with(b"\n");
        let text = String::from_utf8_lossy(line);
        let row_step = text.split_whitespace().next().and_then(|w| w.parse::<u64>().ok());
        if !complete || cut || row_step.is_some_and(|s| s > step) {
            cut = true;
            if complete && row_step.is_some() {
                dropped_rows += 1;
            }
        } else {
            keep = offset + line.len();
        }
        offset += line.len();
    }
    if keep == bytes.len() {
        return Ok(None);
    }
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(keep as u64)?;
    Ok(Some(format!(
        "thermo log {}: cut back to the checkpoint's step {step} ({dropped_rows} later row(s){} dropped)",
        path.display(),
        if bytes.ends_with(b"\n") { "" } else { " and a half-written line" }
    )))
}

/// Frames a trajectory written every `interval` steps from step 0 holds at step `step`.
pub fn frames_at(step: u64, interval: u64) -> u64 {
    step / interval + 1
}

/// Cuts the trajectory of `spec` back to the frames written up to `step`. Returns a note when
/// something was cut or looks wrong.
pub fn truncate_trajectory(spec: &TrajectorySpec, step: u64) -> Result<Option<String>, String> {
    let path = &spec.path;
    if !path.exists() {
        return Ok(None);
    }
    let want = frames_at(step, spec.interval);
    let format = if spec.format.is_empty() { super::format_for_path(path, None) } else { spec.format.clone() };
    let is_xyz = format.eq_ignore_ascii_case("xyz")
        || (format.is_empty() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xyz")));
    let (have, keep) = if is_xyz {
        let (have, keep) = xyz_frames(path, want).map_err(|e| format!("cannot be read: {e}"))?;
        (have, Some(keep))
    } else {
        (count_frames(path, &format)?, None)
    };
    if have < want {
        return Ok(Some(format!(
            "trajectory {}: holds {have} complete frame(s), a run that reached step {step} writes {want}; new frames are appended after them",
            path.display()
        )));
    }
    match keep {
        // XYZ: cut the bytes after the last wanted frame (a half-written frame included).
        Some(keep) => {
            let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
            if keep == len {
                return Ok(None);
            }
            std::fs::OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(keep)).map_err(|e| format!("cannot be cut back: {e}"))?;
        }
        // Other formats: the wanted frames rewritten through chemfiles, then renamed over it.
        None if have > want => rewrite_first_frames(path, &format, want)?,
        None => return Ok(None),
    }
    Ok(Some(format!(
        "trajectory {}: cut back to the checkpoint's step {step} ({want} frame(s) kept)",
        path.display()
    )))
}

/// Complete XYZ frames in the file (at most `want` counted) and the byte length of the first
/// `want` of them (or of all complete ones).
fn xyz_frames(path: &Path, want: u64) -> std::io::Result<(u64, u64)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let (mut frames, mut end) = (0u64, 0u64);
    while frames < want {
        let Some(count) = lines.next() else { break };
        let Some(n) = std::str::from_utf8(count).ok().and_then(|t| t.trim().parse::<u64>().ok()) else { break };
        let mut length = count.len() as u64;
        let mut complete = count.ends_with(b"\n");
        for _ in 0..n + 1 {
            match lines.next() {
                Some(line) if line.ends_with(b"\n") => length += line.len() as u64,
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            break;
        }
        frames += 1;
        end += length;
    }
    Ok((frames, end))
}

fn open_read(path: &Path, format: &str) -> Result<chemfiles::Trajectory, String> {
    let opened = if format.is_empty() {
        chemfiles::Trajectory::open(path, 'r')
    } else {
        chemfiles::Trajectory::open_with_format(path, 'r', format)
    };
    opened.map_err(|e| format!("cannot be read to cut it back: {}", e.message))
}

fn count_frames(path: &Path, format: &str) -> Result<u64, String> {
    super::guard::guarded(path, || open_read(path, format).map(|mut t| t.nsteps() as u64))?
}

fn rewrite_first_frames(path: &Path, format: &str, want: u64) -> Result<(), String> {
    let temporary = path.with_extension(format!("{}.cut", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    super::guard::guarded(path, || -> Result<(), String> {
        let mut input = open_read(path, format)?;
        {
            let mut output = if format.is_empty() {
                chemfiles::Trajectory::open(&temporary, 'w')
            } else {
                chemfiles::Trajectory::open_with_format(&temporary, 'w', format)
            }
            .map_err(|e| format!("cannot write {}: {}", temporary.display(), e.message))?;
            let mut frame = chemfiles::Frame::new();
            for _ in 0..want {
                input.read(&mut frame).map_err(|e| format!("unreadable frame: {}", e.message))?;
                output.write(&frame).map_err(|e| format!("cannot write {}: {}", temporary.display(), e.message))?;
            }
        }
        std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace it: {e}"))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mdrun-resume-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_log_is_cut_after_the_checkpoint_step() {
        let log = "# mdrun\nStep Temp\n0 1.0\n10 2.0\n20 3.0\n# comment\n30 4.0\n40 5";
        let path = scratch("log", log);
        let note = truncate_log(&path, 20).unwrap().unwrap();
        assert!(note.contains("1 later row(s) and a half-written line"), "{note}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mdrun\nStep Temp\n0 1.0\n10 2.0\n20 3.0\n# comment\n");
        // Nothing past the step: left alone.
        assert_eq!(truncate_log(&path, 20).unwrap(), None);
    }

    #[test]
    fn an_xyz_trajectory_keeps_its_complete_frames_up_to_the_step() {
        let frame = |t: u32| format!("2\ntime={t}\nAr 0 0 0\nAr 1 1 1\n");
        let text = format!("{}{}{}2\ntime=3\nAr 0 0", frame(0), frame(1), frame(2));
        let path = scratch("traj.xyz", &text);
        let spec = TrajectorySpec { path: path.clone(), format: String::new(), interval: 10, velocities: false, wrap: true };
        truncate_trajectory(&spec, 15).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}{}", frame(0), frame(1)));
        // Fewer frames than the step implies: kept, with a note.
        let note = truncate_trajectory(&spec, 40).unwrap().unwrap();
        assert!(note.contains("holds 2 complete frame(s)"), "{note}");
    }
}
