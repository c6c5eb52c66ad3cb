//! The few tensor helpers the model needs on top of burn: a context that fixes device and float
//! precision, construction from host data, scatter-add, and the activations with their
//! derivatives (written out, since forces are computed by an explicit backward pass).

use burn::tensor::activation::{sigmoid, softplus};
use burn::tensor::{DType, Device, DeviceKind, DeviceType, IndexingUpdateOp, Int, Tensor, TensorCreationOptions, TensorData};

/// Device and float precision for every tensor a computation creates.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub device: Device,
    pub dtype: DType,
}

impl Ctx {
    /// The pure-Rust CPU backend, with autodiff (needed for training).
    pub fn cpu(f64_precision: bool) -> Ctx {
        Ctx {
            device: Device::flex().autodiff(),
            dtype: if f64_precision {
                DType::F64
            } else {
                DType::F32
            },
        }
    }

    /// The default GPU through wgpu (Vulkan, Metal, DX12; lavapipe counts), f32, with autodiff;
    /// None when wgpu finds no adapter.
    pub fn gpu() -> Option<Ctx> {
        if Device::enumerate(DeviceType::Wgpu).into_iter().next().is_none() {
            return None;
        }
        Some(Ctx { device: Device::wgpu(DeviceKind::DefaultDevice).autodiff(), dtype: DType::F32 })
    }

    /// `cpu` or `gpu`, as the command line names them.
    pub fn named(name: &str, f64_precision: bool) -> Result<Ctx, String> {
        match name {
            "cpu" => Ok(Ctx::cpu(f64_precision)),
            "gpu" => Ctx::gpu().ok_or_else(|| {
                "--device gpu: wgpu found no GPU adapter (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers and libvulkan1)".to_string()
            }),
            other => Err(format!("--device {other}: expected cpu or gpu")),
        }
    }

    /// The CPU backend without autodiff: inference only (MD), no graph recorded.
    pub fn cpu_inference(f64_precision: bool) -> Ctx {
        Ctx {
            device: Device::flex(),
            dtype: if f64_precision {
                DType::F64
            } else {
                DType::F32
            },
        }
    }

    fn options(&self) -> TensorCreationOptions {
        TensorCreationOptions::new(self.device.clone()).with_dtype(self.dtype)
    }

    pub fn matrix(&self, data: &[f64], rows: usize, cols: usize) -> Tensor<2> {
        assert_eq!(data.len(), rows * cols);
        Tensor::from_data(TensorData::new(data.to_vec(), [rows, cols]), self.options())
    }

    pub fn zeros(&self, rows: usize, cols: usize) -> Tensor<2> {
        Tensor::zeros([rows, cols], self.options())
    }

    pub fn indices(&self, data: &[usize]) -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(
                data.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [data.len()],
            ),
            &self.device,
        )
    }
}

/// Rows of `values` added into `rows` output rows at `index` (index_add).
pub fn scatter_add(values: Tensor<2>, index: &Tensor<1, Int>, rows: usize, ctx: &Ctx) -> Tensor<2> {
    let cols = values.dims()[1];
    ctx.zeros(rows, cols)
        .select_assign(0, index.clone(), values, IndexingUpdateOp::Add)
}

/// Host copy of a tensor as f64.
pub fn to_vec(t: Tensor<2>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float tensor")
}

/// Shifted softplus, ssp(x) = ln(1 + e^x) - ln 2 (SchNet's activation).
pub fn ssp(x: Tensor<2>) -> Tensor<2> {
    softplus(x, 1.0).sub_scalar(std::f64::consts::LN_2)
}

/// d ssp / dx = sigmoid(x).
pub fn ssp_derivative(x: Tensor<2>) -> Tensor<2> {
    sigmoid(x)
}

/// SiLU(x) = x sigmoid(x) (PaiNN's activation).
pub fn silu(x: Tensor<2>) -> Tensor<2> {
    burn::tensor::activation::silu(x)
}

/// d SiLU / dx = σ(x) (1 + x (1 - σ(x))).
pub fn silu_derivative(x: Tensor<2>) -> Tensor<2> {
    let s = sigmoid(x.clone());
    s.clone() * (x * (s.neg().add_scalar(1.0))).add_scalar(1.0)
}

/// Adds `value` into an optional running sum (None until the first term).
pub fn accumulate(sum: &mut Option<Tensor<2>>, value: Tensor<2>) {
    *sum = Some(match sum.take() {
        Some(s) => s + value,
        None => value,
    });
}
