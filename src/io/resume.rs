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

/// Cuts the trajectory of `spec` back to the frames written up to `step` (at `time_ps`).
/// Returns a note when something was cut or looks wrong.
pub fn truncate_trajectory(spec: &TrajectorySpec, step: u64, time_ps: f64) -> Result<Option<String>, String> {
    let path = &spec.path;
    if !path.exists() {
        return Ok(None);
    }
    let expected = frames_at(step, spec.interval);
    let mut want = expected;
    let format = if spec.format.is_empty() { super::format_for_path(path, None) } else { spec.format.clone() };
    let (have, keep) = if super::guard::is_xyz(path, &format) {
        let frames = xyz_frames(path, time_ps).map_err(|e| format!("cannot be read: {e}"))?;
        // mdrun's XYZ frames carry their time: those up to the checkpoint's are the ones to
        // keep, whatever interval wrote them (an interval changed between runs included).
        if let Some(timed) = frames.up_to_time {
            want = timed;
        }
        let have = frames.ends.len() as u64;
        let keep = match want {
            0 => 0,
            w => frames.ends[(w.min(have) - 1) as usize],
        };
        (have, Some(keep))
    } else {
        (count_frames(path, &format)?, None)
    };
    let cut = match keep {
        // XYZ: cut the bytes after the last wanted frame (a half-written frame included).
        Some(keep) => {
            let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
            if keep < len {
                std::fs::OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(keep)).map_err(|e| format!("cannot be cut back: {e}"))?;
            }
            keep < len
        }
        // Other formats: the wanted frames rewritten through chemfiles, then renamed over it.
        None if have > want => {
            rewrite_first_frames(path, &format, want)?;
            true
        }
        None => false,
    };
    let mut notes = Vec::new();
    if cut {
        notes.push(format!("cut back to the checkpoint's step {step} ({} frame(s) kept)", want.min(have)));
    }
    if have <= want && have < expected {
        notes.push(format!("holds {have} complete frame(s), a run that reached step {step} writes {expected}; new frames are appended after them"));
    }
    Ok((!notes.is_empty()).then(|| format!("trajectory {}: {}", path.display(), notes.join("; "))))
}

/// The complete frames of an XYZ file.
struct XyzFrames {
    /// Byte offset of the end of each complete frame.
    ends: Vec<u64>,
    /// When every frame has `time=`: how many come at or before the given time.
    up_to_time: Option<u64>,
}

fn xyz_frames(path: &Path, time_ps: f64) -> std::io::Result<XyzFrames> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let mut ends = Vec::new();
    let mut end = 0u64;
    let mut up_to_time = Some(0u64);
    while let Some(count) = lines.next() {
        let Some(n) = std::str::from_utf8(count).ok().and_then(|t| t.trim().parse::<u64>().ok()) else { break };
        let mut length = count.len() as u64;
        let mut complete = count.ends_with(b"\n");
        let mut time = None;
        for k in 0..n + 1 {
            match lines.next() {
                Some(line) if line.ends_with(b"\n") => {
                    length += line.len() as u64;
                    if k == 0 {
                        time = super::key_value(&String::from_utf8_lossy(line), "time").and_then(|t| t.parse::<f64>().ok());
                    }
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            break;
        }
        end += length;
        ends.push(end);
        up_to_time = match (up_to_time, time) {
            (Some(k), Some(t)) if t <= time_ps * (1.0 + 1e-9) + 1e-12 => Some(k + 1),
            (Some(k), Some(_)) => Some(k),
            _ => None,
        };
    }
    Ok(XyzFrames { ends, up_to_time })
}

fn open_read(path: &Path, format: &str) -> Result<chemfiles::Trajectory, String> {
    super::open_trajectory(path, format, 'r').map_err(|e| format!("cannot be read to cut it back: {}", e.message))
}

fn count_frames(path: &Path, format: &str) -> Result<u64, String> {
    super::guard::guarded(path, || open_read(path, format).map(|mut t| t.nsteps() as u64))?
}

fn rewrite_first_frames(path: &Path, format: &str, want: u64) -> Result<(), String> {
    // Same extension (chemfiles picks the format by it), another name.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".cut.{name}"));
    super::guard::guarded(path, || -> Result<(), String> {
        let mut input = open_read(path, format)?;
        {
            let mut output = super::open_trajectory(&temporary, format, 'w')
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
        // Frames at times 0, 1, 2 (and half of 3): the checkpoint at time 1.5 keeps two.
        truncate_trajectory(&spec, 15, 1.5).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}{}", frame(0), frame(1)));
        // Fewer frames than the step implies: kept, with a note.
        let note = truncate_trajectory(&spec, 40, 4.0).unwrap().unwrap();
        assert!(note.contains("holds 2 complete frame(s)"), "{note}");
        // Without times the frames are counted from the interval: step 5 of interval 10 is one.
        let untimed = "1\n\nAr 0 0 0\n";
        std::fs::write(&path, untimed.repeat(3)).unwrap();
        truncate_trajectory(&spec, 5, 0.0).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), untimed);
    }

    #[test]
    fn frames_written_at_another_interval_are_kept_by_their_time() {
        // A first run wrote every 10 steps of 1 ps to step 30; the restart asks for every 20.
        let text: String = (0..4).map(|k| format!("1\ntime={}\nAr 0 0 0\n", 10 * k)).collect();
        let path = scratch("interval.xyz", &text);
        let spec = TrajectorySpec { path: path.clone(), format: String::new(), interval: 20, velocities: false, wrap: true };
        assert_eq!(truncate_trajectory(&spec, 30, 30.0).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
