//! The super-resolution network: ESPCN (Shi et al., 2016) on the luma
//! channel, as a residual over bicubic upsampling.
//!
//! ```text
//! LR luma [1, h, w] ─ conv k0 → F0, act ─ conv k1 → F1, act ─ … ─ conv → r² ─ pixel shuffle ─┐
//!                                                                                        (+) → HR luma [1, rh, rw]
//! bicubic ×r of the LR luma ─────────────────────────────────────────────────────────────┘
//! ```
//!
//! All parameters live in one flat f32 array (weights then bias of each
//! layer, PyTorch's `[out, in, k, k]` order), so Adam, checkpoints and
//! gradients are one buffer each.

use serde::{Deserialize, Serialize};

use crate::cpu::{self, ConvShape, Dims};
use crate::rng::Counter;

/// Non-linearity after each hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// None (used for the last layer).
    Identity,
    /// max(x, 0).
    Relu,
    /// tanh(x), as in ESPCN.
    Tanh,
}

impl Activation {
    /// The kernels' `ACT` constant.
    pub fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Tanh => 2,
        }
    }

    /// Its name in params and weight files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// Parses a name from a params or weight file.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "identity" => Some(Activation::Identity),
            "relu" => Some(Activation::Relu),
            "tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }
}

/// Supported upscaling factors.
pub const SCALES: [u32; 3] = [2, 3, 4];
/// Most channels of a hidden layer.
pub const MAX_FEATURES: u32 = 256;
/// Largest kernel side.
pub const MAX_KERNEL: u32 = 9;
/// Most hidden layers.
pub const MAX_HIDDEN: usize = 8;

/// The shape of a network: scale, hidden layers and activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// Upscaling factor r.
    pub scale: u32,
    /// Channels of each hidden layer.
    pub features: Vec<u32>,
    /// Kernel side of each layer (hidden layers, then the output layer).
    pub kernels: Vec<u32>,
    /// Activation after each hidden layer.
    pub activation: Activation,
}

/// One convolution of the network, with its place in the flat parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Input and output channels and kernel side.
    pub shape: ConvShape,
    /// Offset of its weights in the flat parameters.
    pub weight_offset: usize,
    /// Offset of its biases in the flat parameters.
    pub bias_offset: usize,
}

impl Layer {
    /// Number of weights.
    pub fn weight_count(&self) -> usize {
        self.shape.cout * self.shape.cin * self.shape.k * self.shape.k
    }
}

impl Architecture {
    /// ESPCN's shape at scale `r` with the given hidden channels:
    /// kernels 5, then 3 for every further layer.
    pub fn espcn(scale: u32, features: &[u32], activation: Activation) -> Self {
        let kernels = (0..=features.len())
            .map(|i| if i == 0 { 5 } else { 3 })
            .collect();
        Architecture {
            scale,
            features: features.to_vec(),
            kernels,
            activation,
        }
    }

    /// The default network for `scale`: hidden layers of 32 and 16 channels, tanh.
    pub fn default_for(scale: u32) -> Self {
        Self::espcn(scale, &[32, 16], Activation::Tanh)
    }

    /// Checks the shape; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !SCALES.contains(&self.scale) {
            return Err(format!(
                "scale {} is not supported (use 2, 3 or 4)",
                self.scale
            ));
        }
        if self.features.is_empty() || self.features.len() > MAX_HIDDEN {
            return Err(format!(
                "{} hidden layers; use 1 to {MAX_HIDDEN}",
                self.features.len()
            ));
        }
        if let Some(f) = self.features.iter().find(|&&f| f == 0 || f > MAX_FEATURES) {
            return Err(format!(
                "a hidden layer of {f} channels; use 1 to {MAX_FEATURES}"
            ));
        }
        if self.kernels.len() != self.features.len() + 1 {
            return Err(format!(
                "{} kernel sizes for {} layers",
                self.kernels.len(),
                self.features.len() + 1
            ));
        }
        if let Some(k) = self.kernels.iter().find(|&&k| k % 2 == 0 || k > MAX_KERNEL) {
            return Err(format!(
                "kernel size {k}; use an odd size up to {MAX_KERNEL}"
            ));
        }
        if self.activation == Activation::Identity {
            return Err(
                "activation `identity` makes the network linear; use `tanh` or `relu`".into(),
            );
        }
        Ok(())
    }

    /// The layers in order, with their offsets.
    pub fn layers(&self) -> Vec<Layer> {
        let r2 = (self.scale * self.scale) as usize;
        let mut channels = vec![1usize];
        channels.extend(self.features.iter().map(|&f| f as usize));
        channels.push(r2);
        let mut offset = 0;
        (0..self.kernels.len())
            .map(|i| {
                let shape = ConvShape {
                    cin: channels[i],
                    cout: channels[i + 1],
                    k: self.kernels[i] as usize,
                };
                let weight_offset = offset;
                let bias_offset = weight_offset + shape.cout * shape.cin * shape.k * shape.k;
                offset = bias_offset + shape.cout;
                Layer {
                    shape,
                    weight_offset,
                    bias_offset,
                }
            })
            .collect()
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.layers()
            .last()
            .map_or(0, |l| l.bias_offset + l.shape.cout)
    }

    /// How far (in LR pixels) an output depends on its input: tiles need
    /// this much overlap to match the whole image exactly.
    pub fn receptive_radius(&self) -> u32 {
        self.kernels.iter().map(|k| k / 2).sum()
    }

    /// Fresh parameters for `seed`: weights uniform in ±√(6 / fan_in) · gain
    /// (He-style; gain 1 for tanh/ReLU layers), the output layer scaled by
    /// 0.1 so the network starts close to plain bicubic; biases zero.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut params = vec![0.0f32; self.param_count()];
        let layers = self.layers();
        for (i, layer) in layers.iter().enumerate() {
            let fan_in = (layer.shape.cin * layer.shape.k * layer.shape.k) as f64;
            let mut bound = (6.0 / fan_in).sqrt();
            if i + 1 == layers.len() {
                bound *= 0.1;
            }
            let rng = Counter::new(seed, 1000 + i as u64);
            for j in 0..layer.weight_count() {
                params[layer.weight_offset + j] = ((rng.unit(j as u64) * 2.0 - 1.0) * bound) as f32;
            }
        }
        params
    }
}

/// The activations of a CPU forward pass, kept for the backward pass.
#[derive(Debug, Clone)]
pub struct CpuForward {
    /// Each hidden layer's output (after its activation).
    pub hidden: Vec<Vec<f64>>,
    /// The residual at high resolution, `[n, 1, rh, rw]` (before adding bicubic).
    pub residual: Vec<f64>,
}

/// The network's forward pass on the CPU: `x` is `[n, 1, h, w]` LR luma.
pub fn cpu_forward(arch: &Architecture, params: &[f64], x: &[f64], d: Dims) -> CpuForward {
    let layers = arch.layers();
    let mut hidden = Vec::new();
    let mut input = x.to_vec();
    for (i, layer) in layers.iter().enumerate() {
        let w = &params[layer.weight_offset..layer.bias_offset];
        let b = &params[layer.bias_offset..layer.bias_offset + layer.shape.cout];
        let z = cpu::conv2d(&input, d, layer.shape, w, b);
        if i + 1 < layers.len() {
            input = cpu::activate(arch.activation, &z);
            hidden.push(input.clone());
        } else {
            input = z;
        }
    }
    CpuForward {
        hidden,
        residual: cpu::pixel_shuffle(&input, d, 1, arch.scale as usize),
    }
}

/// The loss of a CPU forward pass against `target` (with `base` the bicubic
/// upsample) and its gradient for every parameter.
pub fn cpu_loss_and_grads(
    arch: &Architecture,
    params: &[f64],
    x: &[f64],
    base: &[f64],
    target: &[f64],
    d: Dims,
) -> (f64, Vec<f64>) {
    let layers = arch.layers();
    let fwd = cpu_forward(arch, params, x, d);
    let (loss, g_pred) = cpu::mse(&fwd.residual, base, target);
    let mut grads = vec![0.0; params.len()];
    let mut g = cpu::pixel_unshuffle(&g_pred, d, 1, arch.scale as usize);
    for (i, layer) in layers.iter().enumerate().rev() {
        let input: &[f64] = if i == 0 { x } else { &fwd.hidden[i - 1] };
        let (dw, db) = cpu::conv2d_grad_params(&g, input, d, layer.shape);
        grads[layer.weight_offset..layer.bias_offset].copy_from_slice(&dw);
        grads[layer.bias_offset..layer.bias_offset + layer.shape.cout].copy_from_slice(&db);
        if i > 0 {
            let w = &params[layer.weight_offset..layer.bias_offset];
            let dx = cpu::conv2d_grad_input(&g, d, layer.shape, w);
            g = cpu::activate_grad(arch.activation, &fwd.hidden[i - 1], &dx);
        }
    }
    (loss, grads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_chain_and_count_parameters() {
        let arch = Architecture::default_for(2);
        arch.validate().unwrap();
        let layers = arch.layers();
        assert_eq!(layers.len(), 3);
        assert_eq!(
            layers[0].shape,
            ConvShape {
                cin: 1,
                cout: 32,
                k: 5
            }
        );
        assert_eq!(
            layers[2].shape,
            ConvShape {
                cin: 16,
                cout: 4,
                k: 3
            }
        );
        assert_eq!(
            arch.param_count(),
            (32 * 25 + 32) + (16 * 32 * 9 + 16) + (4 * 16 * 9 + 4)
        );
        assert_eq!(arch.receptive_radius(), 4);
        assert_eq!(Architecture::default_for(4).layers()[2].shape.cout, 16);
    }

    #[test]
    fn bad_shapes_are_named() {
        let mut arch = Architecture::default_for(5);
        assert!(arch.validate().unwrap_err().contains("scale 5"));
        arch.scale = 2;
        arch.kernels[1] = 4;
        assert!(arch.validate().unwrap_err().contains("kernel size 4"));
        assert!(
            Architecture::espcn(2, &[], Activation::Tanh)
                .validate()
                .unwrap_err()
                .contains("0 hidden layers")
        );
    }

    #[test]
    fn whole_network_gradient_matches_finite_differences() {
        let arch = Architecture::espcn(2, &[3, 2], Activation::Tanh);
        let d = Dims { n: 2, h: 4, w: 3 };
        let rng = Counter::new(5, 0);
        let params: Vec<f64> = arch
            .init(3)
            .iter()
            .enumerate()
            .map(|(i, &p)| f64::from(p) + 0.05 * rng.unit(i as u64))
            .collect();
        let x: Vec<f64> = (0..d.n * d.plane())
            .map(|i| rng.unit(1000 + i as u64))
            .collect();
        let hr = d.n * d.plane() * 4;
        let base: Vec<f64> = (0..hr).map(|i| rng.unit(2000 + i as u64)).collect();
        let target: Vec<f64> = (0..hr).map(|i| rng.unit(3000 + i as u64)).collect();
        let (_, grads) = cpu_loss_and_grads(&arch, &params, &x, &base, &target, d);
        let h = 1e-6;
        for i in 0..params.len() {
            let (mut up, mut down) = (params.clone(), params.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (cpu_loss_and_grads(&arch, &up, &x, &base, &target, d).0
                - cpu_loss_and_grads(&arch, &down, &x, &base, &target, d).0)
                / (2.0 * h);
            assert!(
                (grads[i] - numeric).abs() <= 1e-7 + 1e-5 * numeric.abs(),
                "param {i}: {} vs {numeric}",
                grads[i]
            );
        }
    }

    #[test]
    fn init_is_deterministic_and_starts_near_bicubic() {
        let arch = Architecture::default_for(2);
        assert_eq!(arch.init(1), arch.init(1));
        assert_ne!(arch.init(1), arch.init(2));
        let last = arch.layers()[2];
        let max_last = arch.init(1)[last.weight_offset..last.bias_offset]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max_last < 0.1 * (6.0f32 / 144.0).sqrt() + 1e-6);
    }
}
