//! Named intermediate results of the model's forward pass, the same in every implementation
//! (burn, the CPU fast path, the GPU kernels), so that the conformance suite
//! (`crate::ml::implementation`, tests/ml_conformance.rs) can say at which block two
//! implementations part.

/// Where in block t a layer is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The scalar features x [atoms, F] after the interaction (SchNet or PaiNN).
    Interaction,
    /// PaiNN's vector features μ [atoms, 3F] after the interaction (component-major per atom).
    Vectors,
    /// The scalar features after the MCGM block (present with MCGM only).
    Mcgm,
}

/// The name of block t's layer at `stage`, e.g. "block 1 MCGM".
pub fn name(t: usize, stage: Stage) -> String {
    let what = match stage {
        Stage::Interaction => "interaction",
        Stage::Vectors => "interaction vectors",
        Stage::Mcgm => "MCGM",
    };
    format!("block {t} {what}")
}

/// The learned charges [atoms, 1] of a long-range model (after the projection to the total
/// charge).
pub const CHARGES: &str = "charges";

/// One layer of one structure: `values` is [atoms, width], row-major, in f64.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub width: usize,
    pub values: Vec<f64>,
}

impl Layer {
    /// Splits a layer of a batch [Σ atoms, width] into one per structure of `counts` atoms.
    pub fn split(name: &str, width: usize, values: &[f64], counts: &[usize]) -> Vec<Layer> {
        let mut start = 0;
        counts
            .iter()
            .map(|&n| {
                let layer = Layer { name: name.to_string(), width, values: values[start * width..(start + n) * width].to_vec() };
                start += n;
                layer
            })
            .collect()
    }
}
