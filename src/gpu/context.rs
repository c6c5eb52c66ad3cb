//! The wgpu context: which adapter, the device with the adapter's own limits, and errors that
//! wgpu reports out of band (device lost, out of memory, validation) turned into `GpuError`s.

use std::future::Future;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found: wgpu sees no Vulkan, Metal or DX12 device. Install a driver (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1` gives the lavapipe software GPU) or use platform = \"cpu\""
    )]
    NoAdapter,
    #[error("the GPU ({adapter}) refused a device: {message}")]
    Device { adapter: String, message: String },
    #[error("the GPU ran out of memory {what}: {message}")]
    OutOfMemory { what: String, message: String },
    #[error("the GPU device was lost ({message}); the last good state was kept")]
    Lost { message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("GPU error {what}: {message}")]
    Other { what: String, message: String },
    /// Unusable forces at a step (the state before it is kept).
    #[error("{0}")]
    BlowUp(crate::blowup::BlowUp),
}

/// What wgpu says about one adapter, for `mdrun --list-devices` and run logs.
#[derive(Clone, Debug)]
pub struct AdapterDescription {
    pub name: String,
    pub backend: String,
    pub kind: String,
    pub driver: String,
    /// A real GPU (not a software rasteriser such as lavapipe).
    pub hardware: bool,
    /// Largest storage buffer a kernel can bind, bytes.
    pub max_binding: u64,
    pub max_storage_buffers: u32,
    /// Timestamp queries inside compute passes (per-kernel timing).
    pub timestamps: bool,
}

impl AdapterDescription {
    fn of(adapter: &wgpu::Adapter) -> AdapterDescription {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterDescription {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            kind: format!("{:?}", info.device_type),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            hardware: info.device_type != wgpu::DeviceType::Cpu,
            max_binding: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
            timestamps: features.contains(
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            ),
        }
    }
}

impl std::fmt::Display for AdapterDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.kind)?;
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        write!(f, ")")
    }
}

fn instance() -> wgpu::Instance {
    // Vulkan, Metal and DX12 only, unless WGPU_BACKEND says otherwise (as in every wgpu
    // program): probing GL/EGL costs time and prints display-server noise on headless machines.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    // wgpu checks an indirect dispatch's sizes by a hidden dispatch and barrier before each
    // one (nine a step with a rebuild scheduled on the GPU). mdrun's sizes come from the host's
    // `layout::dims` (at most 65,535 workgroups a dimension) or zero, and no indirectly
    // dispatched kernel reads num_workgroups (which D3D12 then leaves 0), so the check is
    // off unless WGPU_VALIDATION_INDIRECT_CALL=1 asks for it (BENCHMARKS.md: about 4 % of a
    // 4,000-atom Lennard-Jones step on lavapipe).
    if std::env::var_os("WGPU_VALIDATION_INDIRECT_CALL").is_none() {
        desc.flags.remove(wgpu::InstanceFlags::VALIDATION_INDIRECT_CALL);
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu sees, best first (discrete, integrated, virtual, other, software).
pub fn list_adapters() -> Vec<AdapterDescription> {
    let mut adapters = block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
        .iter()
        .map(AdapterDescription::of)
        .collect()
}

fn rank(info: &wgpu::AdapterInfo) -> u8 {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    // Prefer the native API of each platform over GL.
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    kind * 2 + api
}

/// How the model's dense layers run (shaders/ml.wgsl). Both give the same sums in the same
/// order; which is faster depends on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseTiles {
    /// A 4 x 4 tile of rows by outputs per thread, read from the buffers (`ml_dense`): no
    /// barriers, which a CPU rasteriser such as lavapipe pays dearly for.
    Registers,
    /// The same per thread, from 32 x 32 tiles a workgroup loads into workgroup memory
    /// (`ml_dense_tiled`): fewer loads from memory, the usual shape on a GPU.
    Workgroup,
}

impl DenseTiles {
    /// Workgroup tiles on real GPUs, register tiles on software adapters; MDRUN_GPU_DENSE
    /// (`registers` or `workgroup`) chooses instead (the device check runs both).
    fn for_adapter(adapter: &AdapterDescription) -> Result<DenseTiles, GpuError> {
        match std::env::var("MDRUN_GPU_DENSE").as_deref() {
            Err(_) => Ok(if adapter.hardware { DenseTiles::Workgroup } else { DenseTiles::Registers }),
            Ok("registers") => Ok(DenseTiles::Registers),
            Ok("workgroup") => Ok(DenseTiles::Workgroup),
            Ok(other) => Err(GpuError::Device {
                adapter: adapter.to_string(),
                message: format!("MDRUN_GPU_DENSE is `{other}`; expected `registers` or `workgroup`"),
            }),
        }
    }
}

/// A device and its queue on the best adapter.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterDescription,
    /// How the model's dense layers run.
    pub dense_tiles: DenseTiles,
    /// Timestamp queries inside compute passes are enabled (per-kernel profiling).
    pub timestamps: bool,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the best adapter; `hardware_only` refuses software adapters (None then).
    pub fn open(hardware_only: bool) -> Result<Option<GpuContext>, GpuError> {
        let mut adapters = block_on(instance().enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_key(|a| rank(&a.get_info()));
        // MDRUN_GPU_ADAPTER picks one by its number in `mdrun --list-devices` or by a part of
        // its name; otherwise the best one.
        let chosen = match std::env::var("MDRUN_GPU_ADAPTER") {
            Ok(want) => {
                let by_index = want.parse::<usize>().ok();
                let position = adapters.iter().enumerate().position(|(k, a)| {
                    Some(k) == by_index
                        || a.get_info().name.to_lowercase().contains(&want.to_lowercase())
                });
                match position {
                    Some(k) => Some(adapters.swap_remove(k)),
                    None => {
                        return Err(GpuError::Device {
                            adapter: want,
                            message: "MDRUN_GPU_ADAPTER names no adapter that wgpu sees (see mdrun --list-devices)".into(),
                        });
                    }
                }
            }
            Err(_) => adapters.into_iter().next(),
        };
        let Some(adapter) = chosen else {
            return Ok(None);
        };
        let description = AdapterDescription::of(&adapter);
        if hardware_only && !description.hardware {
            return Ok(None);
        }
        let dense_tiles = DenseTiles::for_adapter(&description)?;
        // Ask for everything the adapter offers: large systems need big storage buffers.
        let limits = adapter.limits();
        let timestamp_features =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let timestamps = adapter.features().contains(timestamp_features);
        let (device, queue) = block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mdrun"),
            required_features: if timestamps {
                timestamp_features
            } else {
                wgpu::Features::empty()
            },
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device {
            adapter: description.to_string(),
            message: e.to_string(),
        })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_in = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                *lost_in.lock().unwrap() = Some(format!("{reason:?}: {message}"));
            }
        });
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_in = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let mut slot = uncaptured_in.lock().unwrap();
            if slot.is_none() {
                *slot = Some(error.to_string());
            }
        }));
        Ok(Some(GpuContext {
            device,
            queue,
            adapter: description,
            dense_tiles,
            timestamps,
            lost,
            uncaptured,
        }))
    }

    /// Fails if the device was lost or wgpu reported an error since the last check.
    pub fn check(&self, what: &str) -> Result<(), GpuError> {
        if let Some(message) = self.lost.lock().unwrap().clone() {
            return Err(GpuError::Lost { message });
        }
        if let Some(message) = self.uncaptured.lock().unwrap().take() {
            return Err(GpuError::Other {
                what: what.to_string(),
                message,
            });
        }
        Ok(())
    }

    /// Runs `make` (buffer allocations) in an out-of-memory error scope.
    pub fn allocating<T>(&self, what: &str, make: impl FnOnce() -> T) -> Result<T, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let value = make();
        match block_on(scope.pop()) {
            None => Ok(value),
            Some(e) => Err(GpuError::OutOfMemory {
                what: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Why a `what` buffer of `bytes` (for `n` atoms) cannot be bound on this adapter.
    pub fn binding_too_large(&self, what: &str, bytes: u64, n: usize) -> String {
        let size = |b: u64| if b >= 1 << 30 { format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64) } else { format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64) };
        format!("{n} atoms need a {what} buffer of {}, more than {} binds at once ({}): fewer atoms, or platform = \"cpu\"", size(bytes), self.adapter.name, size(self.adapter.max_binding))
    }

    /// Waits for all submitted work.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Other {
                what: "waiting for the GPU".into(),
                message: e.to_string(),
            })?;
        self.check("running the step kernels")
    }

    /// Copies `size` bytes of `buffer` from `offset` to the host (waits for the GPU).
    pub fn read(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>, GpuError> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let done = Arc::new(Mutex::new(None));
        let done_in = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            *done_in.lock().unwrap() = Some(r);
        });
        self.wait()?;
        match done.lock().unwrap().take() {
            Some(Ok(())) => {}
            other => {
                return Err(GpuError::Other {
                    what: "reading results back".into(),
                    message: format!("{other:?}"),
                });
            }
        }
        let bytes = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Other {
                what: "reading results back".into(),
                message: e.to_string(),
            })?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}

/// Drives a future to completion on this thread. wgpu's native futures are ready as soon as
/// the device has been polled, which `GpuContext::wait` does.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
