//! Streaming the frames of any trajectory chemfiles reads, one at a time, with a frame range
//! and stride: a trajectory larger than memory is fine for analyses that keep only sums.

use crate::cell::Cell;
use crate::io::structure::{StructureData, from_frame};
use std::path::{Path, PathBuf};

/// Frames `start..stop` every `stride` (Python slice syntax `START:STOP:STRIDE`, parts optional).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRange {
    pub start: usize,
    pub stop: Option<usize>,
    pub stride: usize,
}

impl Default for FrameRange {
    fn default() -> Self {
        FrameRange { start: 0, stop: None, stride: 1 }
    }
}

impl std::str::FromStr for FrameRange {
    type Err = String;
    fn from_str(text: &str) -> Result<FrameRange, String> {
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() > 3 {
            return Err(format!("frames '{text}': expected START:STOP:STRIDE"));
        }
        let number = |s: &str, what: &str| -> Result<Option<usize>, String> {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                s.trim().parse().map(Some).map_err(|_| format!("frames '{text}': {what} '{s}' is not a whole number"))
            }
        };
        let start = number(parts[0], "START")?.unwrap_or(0);
        let stop = match parts.get(1) {
            Some(s) => number(s, "STOP")?,
            None => Some(start + 1),
        };
        let stride = match parts.get(2) {
            Some(s) => number(s, "STRIDE")?.unwrap_or(1),
            None => 1,
        };
        if stride == 0 {
            return Err(format!("frames '{text}': STRIDE must be at least 1"));
        }
        Ok(FrameRange { start, stop, stride })
    }
}

/// One frame of the trajectory.
pub struct Snapshot {
    /// Index of the frame in the file (0-based).
    pub index: usize,
    /// Species label per atom (shared by all frames; `data.names` is left empty).
    pub names: std::sync::Arc<Vec<String>>,
    pub data: StructureData,
    /// The frame's `time` property (ps), when the file has one (mdrun writes it).
    pub time_ps: Option<f64>,
    /// The periodic cell, when the frame has one.
    pub cell: Option<Cell>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: frame {frame}: {message}")]
pub struct FrameError {
    pub path: PathBuf,
    pub frame: usize,
    pub message: String,
}

pub struct Frames {
    trajectory: chemfiles::Trajectory,
    path: PathBuf,
    total: usize,
    next: usize,
    range: FrameRange,
    frame: chemfiles::Frame,
    /// From the first frame: species per atom, pbc flags, whether velocities come as a `velo`
    /// column (None until a frame was read).
    topology: Option<Topology>,
    /// DCD files: coordinates and cells read directly (chemfiles reads the first frame only,
    /// for the names).
    dcd: Option<crate::io::dcd::DcdReader>,
}

struct Topology {
    names: std::sync::Arc<Vec<String>>,
    pbc: Option<[bool; 3]>,
    velocity_column: bool,
}

impl Frames {
    pub fn open(path: &Path, range: FrameRange) -> Result<Frames, FrameError> {
        crate::io::guard::guarded(path, || Frames::open_unguarded(path, range))
            .unwrap_or_else(|message| Err(FrameError { path: path.to_path_buf(), frame: 0, message }))
    }

    fn open_unguarded(path: &Path, range: FrameRange) -> Result<Frames, FrameError> {
        let error = |message: String| FrameError { path: path.to_path_buf(), frame: 0, message };
        std::fs::File::open(path).map_err(|e| error(format!("cannot be read: {e}")))?;
        crate::io::structure::route_chemfiles_warnings();
        let format = crate::io::format_for_path(path, None);
        crate::io::guard::refuse_what_breaks_chemfiles(path, &format).map_err(error)?;
        let mut trajectory = crate::io::open_trajectory(path, &format, 'r')
            .map_err(|e| error(format!("chemfiles could not open it: {}", e.message)))?;
        let total = trajectory.nsteps();
        if total == 0 {
            return Err(error("the file holds no frames".into()));
        }
        if range.start >= total {
            return Err(error(format!("the range starts at frame {} but the file has {total}", range.start)));
        }
        let is_dcd = format.eq_ignore_ascii_case("dcd") || (format.is_empty() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcd")));
        let dcd = if is_dcd {
            crate::io::dcd::DcdReader::open(path)
                .map_err(|e| error(format!("cannot be read: {e}")))?
                .filter(|d| d.frames() == total)
        } else {
            None
        };
        Ok(Frames { trajectory, path: path.to_path_buf(), total, next: 0, range, frame: chemfiles::Frame::new(), topology: None, dcd })
    }

    /// Frames in the file.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Frames the range selects.
    pub fn selected(&self) -> usize {
        let stop = self.range.stop.unwrap_or(self.total).min(self.total);
        if stop <= self.range.start { 0 } else { (stop - self.range.start).div_ceil(self.range.stride) }
    }

    fn wanted(&self, index: usize) -> bool {
        index >= self.range.start && (index - self.range.start) % self.range.stride == 0
    }
}

impl Iterator for Frames {
    type Item = Result<Snapshot, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.path.clone();
        let frame = self.next;
        crate::io::guard::guarded(&path, || self.next_unguarded())
            .unwrap_or_else(|message| Some(Err(FrameError { path, frame, message })))
    }
}

impl Frames {
    fn next_unguarded(&mut self) -> Option<Result<Snapshot, FrameError>> {
        let stop = self.range.stop.unwrap_or(self.total).min(self.total);
        while self.next < stop {
            let index = self.next;
            self.next += 1;
            let fail = |message: String| FrameError { path: self.path.clone(), frame: index, message };
            if let (Some(dcd), Some(topology)) = (self.dcd.as_mut(), &self.topology) {
                let mut positions = Vec::new();
                let record = match dcd.read(&mut positions) {
                    Ok(r) => r,
                    Err(e) => return Some(Err(fail(format!("unreadable: {e}")))),
                };
                if !self.wanted(index) {
                    continue;
                }
                if let Some(id) = positions.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
                    return Some(Err(fail(format!("atom {} has a non-finite position", id + 1))));
                }
                let cell = match record {
                    Some(r) => {
                        let (lengths, angles) = crate::io::dcd::cell_lengths_angles(r);
                        if lengths.iter().all(|&l| l > 0.0) {
                            match Cell::from_lengths_angles(lengths, angles, topology.pbc.unwrap_or([true; 3])) {
                                Ok(c) => Some(c),
                                Err(e) => return Some(Err(fail(format!("bad cell: {e}")))),
                            }
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                let data = StructureData { names: Vec::new(), positions, velocities: None, cell: cell.as_ref().map(|c| *c.vectors()), pbc: topology.pbc };
                return Some(Ok(Snapshot { index, names: topology.names.clone(), data, time_ps: None, cell }));
            }
            // Sequential reads: text formats cannot seek cheaply anyway.
            if let Err(e) = self.trajectory.read(&mut self.frame) {
                return Some(Err(fail(format!("unreadable (truncated or malformed?): {}", e.message))));
            }
            if !self.wanted(index) {
                continue;
            }
            // The topology (names, pbc flags) is read once; later frames only bring coordinates,
            // velocities and the cell, which chemfiles hands over as arrays (asking for each
            // atom's name every frame would cost more than the analyses).
            let size = self.frame.size();
            let data = match &self.topology {
                Some(t) if t.names.len() == size => {
                    let velocities = match self.frame.velocities() {
                        Some(v) => Some(v.to_vec()),
                        None if t.velocity_column => match from_frame(&self.frame, &self.path) {
                            Ok(d) => d.velocities,
                            Err(e) => return Some(Err(fail(e.to_string()))),
                        },
                        None => None,
                    };
                    let cell = crate::io::structure::cell_vectors(&self.frame);
                    let positions = self.frame.positions().to_vec();
                    if let Some(id) = positions.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
                        return Some(Err(fail(format!("atom {} has a non-finite position", id + 1))));
                    }
                    // Names live in `Snapshot::names` (shared), not copied per frame.
                    StructureData { names: Vec::new(), positions, velocities, cell, pbc: t.pbc }
                }
                _ => match from_frame(&self.frame, &self.path) {
                    Ok(mut d) => {
                        self.topology = Some(Topology {
                            names: std::sync::Arc::new(std::mem::take(&mut d.names)),
                            pbc: d.pbc,
                            velocity_column: self.frame.velocities().is_none() && d.velocities.is_some(),
                        });
                        d
                    }
                    Err(e) => return Some(Err(fail(e.to_string()))),
                },
            };
            // mdrun's extended XYZ carries time=... (chemfiles reads it as text).
            let time_ps = match crate::io::structure::optional_property(&self.frame, "time") {
                Some(chemfiles::Property::Double(t)) => Some(t),
                Some(chemfiles::Property::String(t)) => t.trim().parse().ok(),
                _ => None,
            };
            let cell = match data.cell {
                Some(vectors) => {
                    let pbc = data.pbc.unwrap_or([true; 3]);
                    match Cell::new(vectors, pbc) {
                        Ok(c) => Some(c),
                        Err(e) => return Some(Err(fail(format!("bad cell: {e}")))),
                    }
                }
                None => None,
            };
            let names = self.topology.as_ref().expect("set by the first frame").names.clone();
            if let Some(dcd) = self.dcd.as_mut() {
                // chemfiles read this frame for the names; the DCD reader takes over after it.
                let mut skip = Vec::new();
                for _ in 0..self.next {
                    if let Err(e) = dcd.read(&mut skip) {
                        return Some(Err(fail(format!("unreadable: {e}"))));
                    }
                }
            }
            return Some(Ok(Snapshot { index, names, data, time_ps, cell }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::FrameRange;

    #[test]
    fn ranges_parse_like_python_slices() {
        assert_eq!("10:100:5".parse::<FrameRange>().unwrap(), FrameRange { start: 10, stop: Some(100), stride: 5 });
        assert_eq!("::2".parse::<FrameRange>().unwrap(), FrameRange { start: 0, stop: None, stride: 2 });
        assert_eq!("5:".parse::<FrameRange>().unwrap(), FrameRange { start: 5, stop: None, stride: 1 });
        assert_eq!("7".parse::<FrameRange>().unwrap(), FrameRange { start: 7, stop: Some(8), stride: 1 });
        assert!("1:2:0".parse::<FrameRange>().is_err());
        assert!("a:b".parse::<FrameRange>().is_err());
    }
}
