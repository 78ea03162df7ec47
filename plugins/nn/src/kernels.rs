//! The WGSL kernels and the dispatch geometry they share. Every kernel
//! runs 64 invocations per workgroup; dispatches of more than 65,535
//! workgroups fold into a second dimension, which the kernels unfold.

use pictor_sdk::gpu::{GpuError, Kernel};

use crate::model::{Activation, Layer};

/// conv2d forward, input gradient and parameter gradients.
pub const CONV2D: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/conv2d.wgsl")
);
/// Activation, in place.
pub const ACTIVATION_FORWARD: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/activation_forward.wgsl")
);
/// Activation gradient, in place.
pub const ACTIVATION_BACKWARD: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/activation_backward.wgsl")
);
/// Pixel shuffle and its inverse.
pub const SHUFFLE: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/shuffle.wgsl")
);
/// MSE loss with its gradient, per-workgroup partial sums.
pub const LOSS: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/loss.wgsl")
);
/// The mean of the partial sums.
pub const LOSS_FINISH: &str = include_str!("kernels/loss_finish.wgsl");
/// Adam.
pub const ADAM: &str = concat!(
    include_str!("kernels/index.wgsl"),
    include_str!("kernels/adam.wgsl")
);

/// Invocations per workgroup in every kernel.
pub const WORKGROUP: u64 = 64;
/// The most workgroups in one dimension of a dispatch.
const MAX_DIM: u64 = 65_535;

/// Workgroup counts for `groups` workgroups, folded into (x, y).
pub fn fold(groups: u64) -> [u32; 3] {
    let groups = groups.max(1);
    let x = groups.min(MAX_DIM);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// Workgroup counts for one invocation per element of `elements`.
pub fn per_element(elements: usize) -> [u32; 3] {
    fold((elements as u64).div_ceil(WORKGROUP))
}

/// The three kernels of one convolution layer.
pub struct ConvKernels {
    /// y from x.
    pub forward: Kernel,
    /// dL/dx from dL/dy (`None` for the first layer, whose input is data).
    pub grad_input: Option<Kernel>,
    /// dL/dweights and dL/dbias (one workgroup each).
    pub grad_params: Option<Kernel>,
}

impl ConvKernels {
    /// Compiles the kernels `layer` needs: the forward pass always, the
    /// gradients when `training`.
    pub fn new(layer: &Layer, training: bool, first: bool) -> Result<Self, GpuError> {
        let s = layer.shape;
        let constants = [
            ("CIN", s.cin as f64),
            ("COUT", s.cout as f64),
            ("K", s.k as f64),
            ("W_OFF", layer.weight_offset as f64),
            ("B_OFF", layer.bias_offset as f64),
        ];
        Ok(ConvKernels {
            forward: Kernel::with_constants(CONV2D, "forward", &constants)?,
            grad_input: if training && !first {
                Some(Kernel::with_constants(CONV2D, "grad_input", &constants)?)
            } else {
                None
            },
            grad_params: if training {
                Some(Kernel::with_constants(CONV2D, "grad_params", &constants)?)
            } else {
                None
            },
        })
    }

    /// Workgroups of the parameter-gradient dispatch of `layer`.
    pub fn grad_params_groups(layer: &Layer) -> [u32; 3] {
        fold((layer.weight_count() + layer.shape.cout) as u64)
    }
}

/// The forward and backward activation kernels for `act`.
pub fn activation(act: Activation) -> Result<(Kernel, Kernel), GpuError> {
    let c = [("ACT", f64::from(act.code()))];
    Ok((
        Kernel::with_constants(ACTIVATION_FORWARD, "forward", &c)?,
        Kernel::with_constants(ACTIVATION_BACKWARD, "backward", &c)?,
    ))
}

/// Pixel shuffle (and, when `training`, its inverse) for `channels` output
/// channels at scale `r`.
pub fn shuffle(
    channels: u32,
    r: u32,
    training: bool,
) -> Result<(Kernel, Option<Kernel>), GpuError> {
    let c = [("C", f64::from(channels)), ("R", f64::from(r))];
    let backward = if training {
        Some(Kernel::with_constants(SHUFFLE, "backward", &c)?)
    } else {
        None
    };
    Ok((Kernel::with_constants(SHUFFLE, "forward", &c)?, backward))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_covers_every_workgroup() {
        assert_eq!(fold(10), [10, 1, 1]);
        assert_eq!(fold(65_535), [65_535, 1, 1]);
        let [x, y, _] = fold(200_000);
        assert!(u64::from(x) * u64::from(y) >= 200_000 && x <= 65_535);
        assert_eq!(per_element(65), [2, 1, 1]);
    }

    #[test]
    fn every_kernel_is_valid_wgsl_with_its_entry_points() {
        for (name, src, entries) in [
            (
                "conv2d",
                CONV2D,
                &["forward", "grad_input", "grad_params"][..],
            ),
            ("activation_forward", ACTIVATION_FORWARD, &["forward"][..]),
            (
                "activation_backward",
                ACTIVATION_BACKWARD,
                &["backward"][..],
            ),
            ("shuffle", SHUFFLE, &["forward", "backward"][..]),
            ("loss", LOSS, &["mse"][..]),
            ("loss_finish", LOSS_FINISH, &["finish"][..]),
            ("adam", ADAM, &["step"][..]),
        ] {
            let module = naga::front::wgsl::parse_str(src)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            for entry in entries {
                assert!(
                    module.entry_points.iter().any(|e| e.name == *entry),
                    "{name} lacks {entry}"
                );
            }
        }
    }
}
