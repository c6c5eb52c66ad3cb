//! The model on a wgpu device (the real GPU, or lavapipe in CI) agrees with the CPU reference,
//! and a training step runs there. Skips, loudly, only where wgpu finds no adapter at all, and
//! fails instead when MDRUN_REQUIRE_GPU is set (as CI sets it, with lavapipe installed).

use mdrun::ml::dataset::Structure;
use mdrun::ml::graph::{Batch, GraphTensors};
use mdrun::ml::mcgm::{Assign, McgmConfig};
use mdrun::ml::model::{Model, ModelConfig, Normalization};
use mdrun::ml::tensor::{Ctx, to_vec};
use mdrun::ml::train::{TrainOptions, train};

fn chain() -> Vec<Structure> {
    mdrun::ml::dataset::read_extxyz(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("potentials/data/chain.extxyz")).unwrap()
}

#[test]
fn gpu_model_agrees_with_the_cpu_and_trains() {
    let Some(gpu) = Ctx::gpu() else {
        assert!(std::env::var_os("MDRUN_REQUIRE_GPU").is_none(), "MDRUN_REQUIRE_GPU is set but wgpu finds no adapter for burn (install mesa-vulkan-drivers and libvulkan1)");
        eprintln!("\n*** SKIPPED: wgpu found no GPU adapter (install mesa-vulkan-drivers for lavapipe) ***\n");
        return;
    };
    let cpu = Ctx::cpu(true);
    let data = chain();
    let structures: Vec<&Structure> = data.iter().step_by(97).take(4).collect();
    for (backbone, mcgm) in [("schnet", Some(McgmConfig { levels: 2, ratio: 2, assign: Assign::Soft, clusters: 3, distance_widths: Vec::new() })), ("painn", None)] {
        let config = ModelConfig { backbone: backbone.into(), features: 16, blocks: 2, n_rbf: 10, cutoff: 4.0, block_cutoffs: vec![], species: vec![1, 6], mcgm, long_range: None };
        let normalization = Normalization { reference_energies: vec![-12.0, -48.0], energy_scale: 0.8, training_min_distance: 0.0, ..Default::default() };
        let reference = Model::new(config, normalization, 4, &cpu);
        // The same weights on the GPU.
        let on_gpu = reference.on(&gpu);
        let batch = Batch::new(&structures, 4.0, |z| reference.species_index(z)).unwrap();
        let a = reference.predict(&batch, &GraphTensors::new(&batch, &cpu), &cpu).unwrap();
        let b = on_gpu.predict(&batch, &GraphTensors::new(&batch, &gpu), &gpu).unwrap();
        let (ea, eb) = (to_vec(a.energy), to_vec(b.energy));
        let (fa, fb) = (to_vec(a.forces), to_vec(b.forces));
        let e_err = ea.iter().zip(&eb).map(|(x, y)| ((x - y) / x).abs()).fold(0.0, f64::max);
        let f_scale = fa.iter().fold(0.0f64, |m, f| m.max(f.abs()));
        let f_err = fa.iter().zip(&fb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / f_scale;
        println!("{backbone}: GPU (f32) vs CPU (f64): energy relative error {e_err:.1e}, forces {f_err:.1e} of max |F|");
        assert!(e_err < 1e-5, "{backbone}: energies differ by {e_err:e}");
        assert!(f_err < 1e-4, "{backbone}: forces differ by {f_err:e}");
    }
    let train_set: Vec<Structure> = data.iter().step_by(20).cloned().collect();
    let valid_set: Vec<Structure> = data.iter().skip(7).step_by(50).cloned().collect();
    let config = ModelConfig { backbone: "schnet".into(), features: 16, blocks: 2, n_rbf: 10, cutoff: 4.0, block_cutoffs: vec![], species: vec![], mcgm: None, long_range: None };
    let options = TrainOptions { epochs: 2, device: "gpu".into(), ..Default::default() };
    let trained = train(config, &train_set, &valid_set, &options, |r| println!("GPU epoch {}: valid loss {:.3e}", r.epoch, r.valid_loss)).unwrap();
    assert!(trained.history.iter().all(|r| r.valid_loss.is_finite()));
}
