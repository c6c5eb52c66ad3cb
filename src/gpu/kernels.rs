//! The WGSL kernels (shaders/*.wgsl), compiled once per device, and the bind-group layouts they
//! share. Every kernel file is compiled with shaders/common.wgsl in front of it, so the buffer
//! declarations exist once; all kernels use one layout (group 0: the simulation's buffers), and
//! the step scheduler adds group 1 (the indirect dispatch arguments it writes).

use super::context::{GpuContext, GpuError, block_on};
use crate::integrate::Splitting;
use crate::integrate::pieces::wgsl_body;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const INTEGRATE: &str = include_str!("../../shaders/integrate.wgsl");
const NEIGHBOR: &str = include_str!("../../shaders/neighbor.wgsl");
const SCHEDULE: &str = include_str!("../../shaders/schedule.wgsl");
const PAIR: &str = include_str!("../../shaders/pair.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// Storage buffers in group 0, bindings 1..=STORAGE_BINDINGS (binding 0 is the parameters).
pub const STORAGE_BINDINGS: u32 = 19;

pub struct Kernels {
    pub main_layout: wgpu::BindGroupLayout,
    pub dispatch_layout: wgpu::BindGroupLayout,
    /// The integrator's pieces before and after the force call (generated).
    pub integrate_before: wgpu::ComputePipeline,
    pub integrate_after: wgpu::ComputePipeline,
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
    /// Per pair style with a GPU snippet (by LAMMPS name): the pair loop without and with
    /// energies and virials.
    pub pair_forces: Vec<(&'static str, wgpu::ComputePipeline, wgpu::ComputePipeline)>,
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

/// The integrator's two kernels for `splitting`, appended to shaders/integrate.wgsl: each atom
/// goes through the pieces in order (a frozen structure's atoms skip them, and need no check:
/// they do not move). The first then checks the atom's displacement, marking its structure for
/// a rebuild; the last clears the marks the step's rebuild has used. (The first cannot clear
/// them: another atom of the structure may already have marked it in the same dispatch.)
fn integrator_kernels(splitting: &Splitting) -> String {
    let kernel = |name: &str, first: bool, body: String| {
        format!(
            "@compute @workgroup_size(64)\nfn {name}(@builtin(global_invocation_id) gid: vec3<u32>) {{\n    let i = flat_index(gid);\n    if (i >= P.n_atoms) {{ return; }}\n{}    let st = structure_of(i);\n    if (P.any_frozen.x != 0u && frozen(st)) {{ return; }}\n{body}{}}}\n",
            if first { "" } else { "    clear_rebuild_mark(i);\n" },
            if first { "    check_displacement(i);\n" } else { "" }
        )
    };
    format!(
        "{}\n{}",
        kernel("integrate_before", true, wgsl_body(&splitting.before)),
        kernel("integrate_after", false, wgsl_body(&splitting.after))
    )
}

impl Kernels {
    /// Compiles the kernels, with the integrator's for `splitting`.
    pub fn new(ctx: &GpuContext, splitting: &Splitting) -> Result<Kernels, GpuError> {
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
        let integrate = module("integrate.wgsl", &format!("{INTEGRATE}\n{}", integrator_kernels(splitting)));
        let neighbor = module("neighbor.wgsl", NEIGHBOR);
        let schedule = module("schedule.wgsl", SCHEDULE);
        let pair_modules: Vec<(&'static str, wgpu::ShaderModule)> = crate::potential::styles::STYLES
            .iter()
            .filter_map(|style| {
                let snippet = style.gpu.ok()?;
                Some((style.lammps, module(&format!("pair.wgsl ({})", style.lammps), &format!("{snippet}\n{PAIR}"))))
            })
            .collect();
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
            integrate_before: pipeline(&integrate, &main, "integrate_before"),
            integrate_after: pipeline(&integrate, &main, "integrate_after"),
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
            pair_forces: pair_modules
                .iter()
                .map(|(name, m)| (*name, pipeline(m, &main, "pair_forces"), pipeline(m, &main, "pair_forces_observed")))
                .collect(),
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

    /// The pair loop compiled with `style`'s snippet: (forces, forces with energy and virial).
    pub fn pair(&self, style: &crate::potential::pair::PairStyle) -> Option<(&wgpu::ComputePipeline, &wgpu::ComputePipeline)> {
        self.pair_forces.iter().find(|p| p.0 == style.lammps).map(|p| (&p.1, &p.2))
    }
}
