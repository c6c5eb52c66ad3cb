//! The GPU kernels as a `ModelImplementation` (crate::ml::implementation): the structures go up
//! as one GPU batch (consecutive structures with the same elements and total charge share one:
//! MCGM's hierarchy has one shape per batch, and the model one total charge), and the model is
//! evaluated once, by the very kernels and buffers that the MD step uses, then read back.

use crate::gpu::{DenseTiles, GpuContext, GpuPotential, GpuSimulation};
use crate::integrate::Integrator;
use crate::ml::dataset::Structure;
use crate::ml::implementation::{Evaluation, ModelImplementation, Precision, per_structure};
use crate::ml::inference::Inference;
use crate::ml::model::Model;
use crate::potential::mcgm::{GpuModel, TrainingRange};
use crate::system::{Species, System};

/// The model on the GPU kernels (shaders/ml.wgsl), f32.
pub struct GpuKernels {
    model: Model,
    adapter: String,
    /// Learned charges by particle-mesh Ewald (true) or the sum over k-vectors (false); None: by
    /// the system's size (`Coulomb::mesh`).
    pub ewald_mesh: Option<bool>,
    /// The dense layers' tiles; None: the adapter's (`DenseTiles::for_adapter`).
    pub dense_tiles: Option<DenseTiles>,
}

impl GpuKernels {
    /// None where wgpu finds no adapter.
    pub fn new(model: &Model) -> Result<Option<GpuKernels>, String> {
        if let Some(part) = model.config.gpu_unsupported_part() {
            return Err(format!("the GPU kernels do not evaluate {part}"));
        }
        let Some(ctx) = GpuContext::open(false).map_err(|e| e.to_string())? else { return Ok(None) };
        Ok(Some(GpuKernels { model: model.clone(), adapter: ctx.adapter.name.clone(), ewald_mesh: None, dense_tiles: None }))
    }

    /// The structures as systems whose species are the model's, in its order.
    fn system(&self, s: &Structure) -> Result<System, String> {
        let species = self
            .model
            .config
            .species
            .iter()
            .map(|&z| {
                let name = crate::elements::symbol(z).ok_or_else(|| format!("no element has atomic number {z}"))?;
                Ok(Species { name: name.to_string(), mass: crate::elements::standard_mass(name).unwrap_or(1.0) })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let types = s
            .numbers
            .iter()
            .map(|&z| self.model.species_index(z).map(|t| t as u32).ok_or_else(|| format!("the model does not know element {z}")))
            .collect::<Result<Vec<_>, String>>()?;
        let n = s.positions.len();
        Ok(System { species, types, positions: s.positions.clone(), velocities: vec![[0.0; 3]; n], images: vec![[0; 3]; n], cell: s.cell.clone() })
    }

    fn evaluate_batch(&self, structures: &[Structure]) -> Result<Vec<Evaluation>, String> {
        let mut ctx = GpuContext::open(false).map_err(|e| e.to_string())?.ok_or("wgpu found no adapter")?;
        if let Some(tiles) = self.dense_tiles {
            ctx.dense_tiles = tiles;
        }
        let mut inference = Inference::new(&self.model)?;
        inference.record_layers = true;
        if let Some(charges) = inference.charges.as_mut() {
            charges.coulomb.mesh = self.ewald_mesh;
        }
        let species = self.model.config.species.len();
        let potential = GpuPotential::Ml(Box::new(GpuModel {
            inference,
            species_of_type: (0..species).collect(),
            description: "conformance".into(),
            cautions: Vec::new(),
            range: TrainingRange::unlimited(species),
            total_charge: structures[0].charge,
            half_tables: false,
        }));
        let systems = structures.iter().map(|s| Ok((self.system(s)?, Integrator::VelocityVerlet))).collect::<Result<Vec<_>, String>>()?;
        // Building the simulation evaluates the forces once (step 0); nothing is stepped.
        let sim = GpuSimulation::new_batch(ctx, systems, potential, 0.0005, 0.5, f64::MAX, 0, None).map_err(|e| e.to_string())?;
        let forces = sim.forces().map_err(|e| e.to_string())?;
        let (mut energy, mut virial) = (Vec::new(), Vec::new());
        for k in 0..structures.len() {
            let (e, w) = sim.energy_virial_of(k);
            energy.push(e);
            virial.push([w[0][0], w[0][1], w[0][2], w[1][0], w[1][1], w[1][2], w[2][0], w[2][1], w[2][2]]);
        }
        let layers: Vec<(String, usize, Vec<f64>)> = sim
            .ml_layers()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(name, width, v)| (name, width, v.iter().map(|&x| x as f64).collect()))
            .collect();
        let counts: Vec<usize> = structures.iter().map(|s| s.positions.len()).collect();
        Ok(per_structure(&counts, &energy, &forces, &virial, &layers))
    }
}

/// The elements of a structure, sorted.
fn element_order(s: &Structure) -> Vec<u32> {
    let mut order = s.numbers.clone();
    order.sort_unstable();
    order.dedup();
    order
}

impl ModelImplementation for GpuKernels {
    fn name(&self) -> String {
        format!("GPU kernels (f32, {})", self.adapter)
    }

    fn precision(&self) -> Precision {
        Precision::F32
    }

    fn evaluate(&mut self, structures: &[Structure]) -> Result<Vec<Evaluation>, String> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < structures.len() {
            // A batch shares one element order and one total charge.
            let key = |s: &Structure| (element_order(s), s.charge.to_bits());
            let first = key(&structures[start]);
            let end = (start + 1..structures.len()).find(|&k| key(&structures[k]) != first).unwrap_or(structures.len());
            out.extend(self.evaluate_batch(&structures[start..end])?);
            start = end;
        }
        Ok(out)
    }
}
