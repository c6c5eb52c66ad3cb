//! The WGSL kernels (shaders/*.wgsl), compiled once per device, and the bind-group layouts they
//! share. Every kernel file is compiled with shaders/common.wgsl in front of it, so the buffer
//! declarations exist once; all kernels use one layout (group 0: the simulation's buffers), and
//! the step scheduler adds group 1 (the indirect dispatch arguments it writes).

use super::context::{GpuContext, GpuError, block_on};

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const INTEGRATE: &str = include_str!("../../shaders/integrate.wgsl");
const NEIGHBOR: &str = include_str!("../../shaders/neighbor.wgsl");
const SCHEDULE: &str = include_str!("../../shaders/schedule.wgsl");
const LJ: &str = include_str!("../../shaders/lj.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// Storage buffers in group 0, bindings 1..=STORAGE_BINDINGS (binding 0 is the parameters).
pub const STORAGE_BINDINGS: u32 = 19;

pub struct Kernels {
    pub main_layout: wgpu::BindGroupLayout,
    pub dispatch_layout: wgpu::BindGroupLayout,
    pub verlet_first: wgpu::ComputePipeline,
    pub langevin_first: wgpu::ComputePipeline,
    pub kick: wgpu::ComputePipeline,
    pub check_displacement: wgpu::ComputePipeline,
    pub schedule_step: wgpu::ComputePipeline,
    pub wrap_positions: wgpu::ComputePipeline,
    pub clear_bins: wgpu::ComputePipeline,
    pub count_bins: wgpu::ComputePipeline,
    pub scan_local: wgpu::ComputePipeline,
    pub scan_blocks: wgpu::ComputePipeline,
    pub scan_add: wgpu::ComputePipeline,
    pub scatter_bins: wgpu::ComputePipeline,
    pub sort_bins: wgpu::ComputePipeline,
    pub build_list: wgpu::ComputePipeline,
    pub lj_forces: wgpu::ComputePipeline,
    pub lj_forces_observed: wgpu::ComputePipeline,
    pub reduce_atoms: wgpu::ComputePipeline,
    pub reduce_blocks: wgpu::ComputePipeline,
}

fn storage_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: false },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Kernels, GpuError> {
        let device = &ctx.device;
        let needed = STORAGE_BINDINGS;
        let have = device.limits().max_storage_buffers_per_shader_stage;
        if have < needed {
            return Err(GpuError::Device {
                adapter: ctx.adapter.to_string(),
                message: format!(
                    "mdrun's kernels bind {needed} storage buffers at once, this adapter allows {have}"
                ),
            });
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        entries.extend((1..=STORAGE_BINDINGS).map(storage_entry));
        let main_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("mdrun main"),
            entries: &entries,
        });
        let dispatch_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("mdrun dispatch"),
            entries: &[storage_entry(0)],
        });
        let main = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mdrun main"),
            bind_group_layouts: &[Some(&main_layout)],
            immediate_size: 0,
        });
        let with_dispatch = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mdrun schedule"),
            bind_group_layouts: &[Some(&main_layout), Some(&dispatch_layout)],
            immediate_size: 0,
        });

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = |name: &str, source: &str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()),
            })
        };
        let integrate = module("integrate.wgsl", INTEGRATE);
        let neighbor = module("neighbor.wgsl", NEIGHBOR);
        let schedule = module("schedule.wgsl", SCHEDULE);
        let lj = module("lj.wgsl", LJ);
        let reduce = module("reduce.wgsl", REDUCE);
        let pipeline = |module: &wgpu::ShaderModule, layout: &wgpu::PipelineLayout, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(layout),
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let kernels = Kernels {
            verlet_first: pipeline(&integrate, &main, "verlet_first"),
            langevin_first: pipeline(&integrate, &main, "langevin_first"),
            kick: pipeline(&integrate, &main, "kick"),
            check_displacement: pipeline(&neighbor, &main, "check_displacement"),
            schedule_step: pipeline(&schedule, &with_dispatch, "schedule_step"),
            wrap_positions: pipeline(&neighbor, &main, "wrap_positions"),
            clear_bins: pipeline(&neighbor, &main, "clear_bins"),
            count_bins: pipeline(&neighbor, &main, "count_bins"),
            scan_local: pipeline(&neighbor, &main, "scan_local"),
            scan_blocks: pipeline(&neighbor, &main, "scan_blocks"),
            scan_add: pipeline(&neighbor, &main, "scan_add"),
            scatter_bins: pipeline(&neighbor, &main, "scatter_bins"),
            sort_bins: pipeline(&neighbor, &main, "sort_bins"),
            build_list: pipeline(&neighbor, &main, "build_list"),
            lj_forces: pipeline(&lj, &main, "lj_forces"),
            lj_forces_observed: pipeline(&lj, &main, "lj_forces_observed"),
            reduce_atoms: pipeline(&reduce, &main, "reduce_atoms"),
            reduce_blocks: pipeline(&reduce, &main, "reduce_blocks"),
            main_layout,
            dispatch_layout,
        };
        if let Some(e) = block_on(scope.pop()) {
            return Err(GpuError::Other {
                what: "compiling the WGSL kernels".into(),
                message: e.to_string(),
            });
        }
        ctx.check("compiling the WGSL kernels")?;
        Ok(kernels)
    }
}
