//! One model, several implementations. The model is specified once (`ModelConfig` plus its
//! parameters, `crate::ml::model::Model`) and runs three ways:
//!
//! - burn (`BurnModel`): training and the f64 reference, on any burn device;
//! - the CPU fast path (`CpuInference`, `crate::ml::inference`): f32, tabulated filters;
//! - the GPU kernels (`crate::gpu::GpuKernels`, shaders/ml.wgsl): f32, inside the MD step.
//!
//! Each implements `ModelImplementation`: energy, forces, virial and every block's outputs
//! (`crate::ml::layer`) per structure. tests/ml_conformance.rs runs one suite over every
//! implementation and every backbone x MCGM setting, so a new model part is written once in
//! burn and once per fast path, and the suite says at which block they part.

use super::dataset::Structure;
use super::graph::{Batch, GraphTensors};
use super::inference::{Graph, Inference};
use super::layer::Layer;
use super::model::Model;
use super::tensor::{Ctx, to_vec};

/// What an implementation gives for one structure (atoms in input order, f64).
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// eV
    pub energy: f64,
    /// eV/Å
    pub forces: Vec<[f64; 3]>,
    /// W = -Σ_e r_e ⊗ dE/dr_e, row-major, eV.
    pub virial: [f64; 9],
    /// Every block's outputs, in forward order.
    pub layers: Vec<Layer>,
}

/// The arithmetic an implementation computes in, which sets what agreement to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F64,
    F32,
}

/// The model, evaluated one way.
pub trait ModelImplementation {
    /// For messages: which implementation, on which device.
    fn name(&self) -> String;
    fn precision(&self) -> Precision;
    /// Evaluates each structure (together, where the implementation batches).
    fn evaluate(&mut self, structures: &[Structure]) -> Result<Vec<Evaluation>, String>;
}

/// The burn model: the same code trains the model and gives the f64 reference.
pub struct BurnModel {
    pub model: Model,
    pub ctx: Ctx,
    /// Whether `ctx` computes in f64.
    pub f64_precision: bool,
}

impl ModelImplementation for BurnModel {
    fn name(&self) -> String {
        format!("burn ({})", if self.f64_precision { "f64" } else { "f32" })
    }

    fn precision(&self) -> Precision {
        if self.f64_precision { Precision::F64 } else { Precision::F32 }
    }

    fn evaluate(&mut self, structures: &[Structure]) -> Result<Vec<Evaluation>, String> {
        let refs: Vec<&Structure> = structures.iter().collect();
        let batch = Batch::new(&refs, self.model.config.cutoff, |z| self.model.species_index(z))?;
        let graph = GraphTensors::new(&batch, &self.ctx);
        let prediction = self.model.predict(&batch, &graph, &self.ctx)?;
        let layers: Vec<(String, usize, Vec<f64>)> = prediction
            .layers
            .into_iter()
            .map(|(name, t)| {
                let width = t.dims()[1];
                (name, width, to_vec(t))
            })
            .collect();
        let (energy, forces, virial) = (to_vec(prediction.energy), to_vec(prediction.forces), to_vec(prediction.virial));
        let forces: Vec<[f64; 3]> = forces.chunks(3).map(|f| [f[0], f[1], f[2]]).collect();
        let virial: Vec<[f64; 9]> = virial.chunks(9).map(|w| w.try_into().expect("9 entries")).collect();
        Ok(per_structure(&batch.counts, &energy, &forces, &virial, &layers))
    }
}

/// The CPU fast path, compiled from a model.
pub struct CpuInference {
    inference: Inference,
    model: Model,
}

impl CpuInference {
    pub fn new(model: &Model) -> Result<CpuInference, String> {
        let mut inference = Inference::new(model)?;
        inference.record_layers = true;
        Ok(CpuInference { inference, model: model.clone() })
    }
}

impl ModelImplementation for CpuInference {
    fn name(&self) -> String {
        "CPU fast path (f32)".into()
    }

    fn precision(&self) -> Precision {
        Precision::F32
    }

    fn evaluate(&mut self, structures: &[Structure]) -> Result<Vec<Evaluation>, String> {
        let refs: Vec<&Structure> = structures.iter().collect();
        let batch = Batch::new(&refs, self.model.config.cutoff, |z| self.model.species_index(z))?;
        // Each evaluation stands alone: no regrouping is counted against the previous one.
        self.inference.forget_partitions();
        let out = self.inference.evaluate(&Graph::from_batch(&batch))?;
        let layers: Vec<(String, usize, Vec<f64>)> = out.layers.into_iter().map(|(name, width, v)| (name, width, v.iter().map(|&x| x as f64).collect())).collect();
        Ok(per_structure(&batch.counts, &out.energy, &out.forces, &out.virial, &layers))
    }
}

/// Cuts a batch's results (atoms and layer rows of all structures in order) per structure.
pub fn per_structure(counts: &[usize], energy: &[f64], forces: &[[f64; 3]], virial: &[[f64; 9]], layers: &[(String, usize, Vec<f64>)]) -> Vec<Evaluation> {
    let split: Vec<Vec<Layer>> = layers.iter().map(|(name, width, values)| Layer::split(name, *width, values, counts)).collect();
    let mut start = 0;
    counts
        .iter()
        .enumerate()
        .map(|(s, &n)| {
            let evaluation = Evaluation {
                energy: energy[s],
                forces: forces[start..start + n].to_vec(),
                virial: virial[s],
                layers: split.iter().map(|per| per[s].clone()).collect(),
            };
            start += n;
            evaluation
        })
        .collect()
}
