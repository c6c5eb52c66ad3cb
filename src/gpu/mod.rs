//! The GPU platform: a wgpu context (any Vulkan, Metal or DX12 adapter, lavapipe included) and
//! the MD step written as WGSL compute shaders (shaders/), resident on the device.

pub mod context;
pub mod kernels;
pub mod kernels_as_model;
pub mod layout;
pub mod md;
pub mod ml;
pub mod shared;

pub use context::{AdapterDescription, DenseTiles, GpuContext, GpuError, list_adapters};
pub use md::{GpuPotential, GpuSimulation};
pub use kernels_as_model::GpuKernels;
pub use shared::{GpuSlot, SharedGpuBatch};
