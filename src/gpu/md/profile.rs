//! `--gpu-profile`: GPU time per kernel from timestamp queries written between dispatches.

use super::*;

impl GpuSimulation {
    /// Times every kernel with timestamp queries from now on (if the adapter has them).
    /// Returns whether profiling is on.
    pub fn enable_profiling(&mut self) -> bool {
        if !self.ctx.timestamps {
            return false;
        }
        let device = &self.ctx.device;
        self.profiler = Some(Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: PROFILE_QUERIES,
            }),
            resolved: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel timestamps"),
                size: 8 * PROFILE_QUERIES as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            labels: RefCell::new(Vec::new()),
            totals: BTreeMap::new(),
            tick_s: self.ctx.queue.get_timestamp_period() as f64 * 1e-9,
        });
        true
    }

    /// GPU seconds per kernel so far (empty unless profiling).
    pub fn kernel_times(&self) -> BTreeMap<String, f64> {
        self.profiler
            .iter()
            .flat_map(|p| p.totals.iter().map(|(k, v)| (k.to_string(), v.0)))
            .collect()
    }

    /// Dispatches per kernel so far (empty unless profiling).
    pub fn kernel_calls(&self) -> BTreeMap<String, u64> {
        self.profiler
            .iter()
            .flat_map(|p| p.totals.iter().map(|(k, v)| (k.to_string(), v.1)))
            .collect()
    }

    /// Records a timestamp after the kernel just dispatched (profiling only).
    pub(super) fn mark(&self, pass: &mut wgpu::ComputePass<'_>, label: &'static str) {
        if let Some(p) = &self.profiler {
            let mut labels = p.labels.borrow_mut();
            if (labels.len() as u32) < PROFILE_QUERIES {
                pass.write_timestamp(&p.queries, labels.len() as u32);
                labels.push(label);
            }
        }
    }

    /// Reads the timestamps of the last submission and adds them to the totals.
    pub(super) fn collect_profile(&mut self) -> Result<(), GpuError> {
        let Some(p) = &self.profiler else { return Ok(()) };
        let count = p.labels.borrow().len() as u32;
        if count == 0 {
            return Ok(());
        }
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        encoder.resolve_query_set(&p.queries, 0..count, &p.resolved, 0);
        self.ctx.queue.submit([encoder.finish()]);
        let bytes = self.ctx.read(&p.resolved, 0, 8 * count as u64)?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        let p = self.profiler.as_mut().unwrap();
        let labels = std::mem::take(&mut *p.labels.borrow_mut());
        for k in 1..labels.len() {
            if labels[k] == PASS_START {
                continue;
            }
            let dt = ticks[k].saturating_sub(ticks[k - 1]) as f64 * p.tick_s;
            let entry = p.totals.entry(labels[k]).or_insert((0.0, 0));
            entry.0 += dt;
            entry.1 += 1;
        }
        Ok(())
    }
}

/// Per-kernel GPU time from timestamp queries written between dispatches.
pub(super) struct Profiler {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    labels: RefCell<Vec<&'static str>>,
    /// kernel → (seconds, calls)
    totals: BTreeMap<&'static str, (f64, u64)>,
    tick_s: f64,
}

pub(super) const PROFILE_QUERIES: u32 = 4096;

/// Steps per profiled submission (each writes about 20 timestamps).
pub(super) const PROFILE_CHUNK: u64 = 128;

pub(super) const PASS_START: &str = "(pass start)";
