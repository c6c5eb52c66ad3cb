//! Trajectory output on its own thread. The step loop hands frames to a bounded crossbeam
//! channel and goes on; it waits only when the writer has fallen `QUEUE` frames behind. Files
//! are opened (and errors reported) before the run starts, in the writer thread, since
//! chemfiles trajectories cannot move between threads.

use crate::cell::Vec3;
use crossbeam_channel::{Sender, bounded};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Frames that may wait in the queue before the step loop blocks.
const QUEUE: usize = 4;

/// One trajectory output, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectorySpec {
    pub path: PathBuf,
    /// chemfiles format name, or empty to choose from the extension.
    pub format: String,
    /// Write every this many steps.
    pub interval: u64,
    pub velocities: bool,
    /// Wrap positions into the cell (true) or write unwrapped ones.
    pub wrap: bool,
}

/// One frame, in internal units.
pub struct FrameData {
    pub step: u64,
    pub time_ps: f64,
    pub wrapped: Vec<Vec3>,
    pub unwrapped: Vec<Vec3>,
    pub velocities: Option<Vec<Vec3>>,
    pub cell: Option<[Vec3; 3]>,
    /// Indices of the outputs this frame goes to.
    pub outputs: Vec<usize>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("trajectory {path}: {message}")]
pub struct TrajectoryError {
    pub path: PathBuf,
    pub message: String,
}

/// What the step loop sends the writer thread.
enum Message {
    Frame(FrameData),
    /// Close and reopen every file (so every frame so far is on disk), then answer.
    Sync(Sender<()>),
}

pub struct TrajectoryWriter {
    specs: Vec<TrajectorySpec>,
    sender: Option<Sender<Message>>,
    handle: Option<JoinHandle<Result<(), TrajectoryError>>>,
}

impl TrajectoryWriter {
    /// Opens every output (appending when `append`) and starts the writer thread.
    pub fn start(
        specs: Vec<TrajectorySpec>,
        names: Vec<String>,
        append: bool,
    ) -> Result<TrajectoryWriter, TrajectoryError> {
        let (sender, receiver) = bounded::<Message>(QUEUE);
        let (opened_tx, opened_rx) = bounded::<Result<(), TrajectoryError>>(1);
        let thread_specs = specs.clone();
        let handle = std::thread::Builder::new()
            .name("trajectory-writer".into())
            .spawn(move || {
                let mut files = Vec::new();
                for spec in &thread_specs {
                    match open(spec, append) {
                        Ok(t) => files.push(t),
                        Err(e) => {
                            let _ = opened_tx.send(Err(e.clone()));
                            return Err(e);
                        }
                    }
                }
                let _ = opened_tx.send(Ok(()));
                let mut template = chemfiles::Frame::new();
                for name in &names {
                    template.add_atom(&chemfiles::Atom::new(name.as_str()), [0.0; 3], None);
                }
                for message in receiver {
                    let frame = match message {
                        Message::Frame(frame) => frame,
                        Message::Sync(done) => {
                            // chemfiles buffers; dropping a trajectory flushes and closes it.
                            files.clear();
                            for spec in &thread_specs {
                                files.push(open(spec, true)?);
                            }
                            let _ = done.send(());
                            continue;
                        }
                    };
                    for &o in &frame.outputs {
                        let spec = &thread_specs[o];
                        fill(&mut template, &frame, spec);
                        files[o].write(&template).map_err(|e| TrajectoryError {
                            path: spec.path.clone(),
                            message: e.message,
                        })?;
                    }
                }
                Ok(())
            })
            .map_err(|e| TrajectoryError {
                path: PathBuf::new(),
                message: format!("cannot start writer thread: {e}"),
            })?;
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(TrajectoryWriter {
                specs,
                sender: Some(sender),
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err(join_error(handle)),
        }
    }

    pub fn specs(&self) -> &[TrajectorySpec] {
        &self.specs
    }

    /// Which outputs want step `step`.
    pub fn due(&self, step: u64) -> Vec<usize> {
        (0..self.specs.len())
            .filter(|&o| step % self.specs[o].interval == 0)
            .collect()
    }

    pub fn wants_velocities(&self, outputs: &[usize]) -> bool {
        outputs.iter().any(|&o| self.specs[o].velocities)
    }

    /// Queues a frame; blocks only while the queue is full. Fails if the writer has stopped on
    /// an error, which is then returned.
    pub fn send(&mut self, frame: FrameData) -> Result<(), TrajectoryError> {
        self.post(Message::Frame(frame))
    }

    /// Waits until every frame queued so far is written and on disk (files closed and
    /// reopened for appending). Fails if the writer has stopped on an error.
    pub fn sync(&mut self) -> Result<(), TrajectoryError> {
        if self.specs.is_empty() {
            return Ok(());
        }
        let (done, wait) = bounded(1);
        self.post(Message::Sync(done))?;
        if wait.recv().is_err() {
            self.sender = None;
            return Err(join_error(self.handle.take().expect("writer handle")));
        }
        Ok(())
    }

    fn post(&mut self, message: Message) -> Result<(), TrajectoryError> {
        let sender = self.sender.as_ref().expect("writer already finished");
        if sender.send(message).is_err() {
            self.sender = None;
            return Err(join_error(self.handle.take().expect("writer handle")));
        }
        Ok(())
    }

    /// Waits for every queued frame to be written and closes the files.
    pub fn finish(mut self) -> Result<(), TrajectoryError> {
        self.sender = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(panic_error())),
            None => Ok(()),
        }
    }
}

impl Drop for TrajectoryWriter {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn open(spec: &TrajectorySpec, append: bool) -> Result<chemfiles::Trajectory, TrajectoryError> {
    let err = |message: String| TrajectoryError {
        path: spec.path.clone(),
        message,
    };
    if let Some(dir) = spec.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create directory {}: {e}", dir.display())))?;
    }
    let mode = if append { 'a' } else { 'w' };
    let format = if spec.format.is_empty() {
        super::format_for_path(&spec.path, None)
    } else {
        spec.format.clone()
    };
    super::open_trajectory(&spec.path, &format, mode).map_err(|e| err(e.message))
}

fn fill(template: &mut chemfiles::Frame, frame: &FrameData, spec: &TrajectorySpec) {
    let source = if spec.wrap {
        &frame.wrapped
    } else {
        &frame.unwrapped
    };
    template.positions_mut().copy_from_slice(source);
    if spec.velocities {
        if let Some(v) = &frame.velocities {
            if native_velocities(spec) {
                if !template.has_velocities() {
                    template.add_velocities();
                }
                template
                    .velocities_mut()
                    .expect("velocities added")
                    .copy_from_slice(v);
            } else {
                // Extended XYZ has no velocity field in chemfiles: write a `velo` column (Å/ps),
                // which mdrun reads back as velocities.
                for (i, vi) in v.iter().enumerate() {
                    template
                        .atom_mut(i)
                        .set("velo", chemfiles::Property::Vector3D(*vi));
                }
            }
        }
    }
    let cell = match frame.cell {
        // chemfiles wants the edge vectors as columns.
        Some(v) => chemfiles::UnitCell::from_matrix([0, 1, 2].map(|r| [v[0][r], v[1][r], v[2][r]])),
        None => chemfiles::UnitCell::infinite(),
    };
    template.set_cell(&cell);
    template.set_step(frame.step as usize);
    template.set("time", frame.time_ps);
}

/// Formats whose chemfiles writer stores velocities itself.
fn native_velocities(spec: &TrajectorySpec) -> bool {
    let ext = spec
        .path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = spec.format.to_ascii_uppercase();
    !(format == "XYZ" || (format.is_empty() && (ext == "xyz" || ext == "extxyz")))
}

fn join_error(handle: JoinHandle<Result<(), TrajectoryError>>) -> TrajectoryError {
    match handle.join() {
        Ok(Err(e)) => e,
        Ok(Ok(())) => TrajectoryError {
            path: PathBuf::new(),
            message: "writer stopped early".into(),
        },
        Err(_) => panic_error(),
    }
}

fn panic_error() -> TrajectoryError {
    TrajectoryError {
        path: PathBuf::new(),
        message: "the writer thread panicked".into(),
    }
}
