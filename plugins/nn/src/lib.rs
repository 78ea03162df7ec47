//! `nn`: the tensor layer of Pictor's AI plugins (`train`, `upscale`).
//!
//! - [`kernels`]: WGSL compute kernels, run through the host's `gpu`
//!   capability — conv2d (stride 1, "same" padding) with its input and
//!   parameter gradients, activations and their gradients, pixel shuffle
//!   and its inverse, an MSE loss with its gradient, and Adam;
//! - [`cpu`]: a plain f64 reference of every kernel, used to check the GPU
//!   (`tests/plugins/nncheck`) and, by finite differences, itself;
//! - [`model`]: the ESPCN-class super-resolution network (layers, flat
//!   parameter layout, initialisation) and [`graph`], its forward and
//!   training passes as batched GPU submissions;
//! - [`image`], [`resample`], [`metrics`]: decoding with size limits,
//!   BT.601 luma/chroma, box downscale, bicubic upscale, PSNR and SSIM;
//! - [`weights`]: safetensors files with validation of every tensor;
//! - [`rng`]: a counter-based RNG, so training batches depend only on
//!   (seed, step), which makes resumed runs reproduce uninterrupted ones.
//!
//! All GPU work goes through [`pictor_sdk::gpu`]; natively (tests on the
//! build machine) GPU calls return `Unavailable` and the CPU code runs.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cpu;
pub mod eval;
pub mod graph;
pub mod image;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod resample;
pub mod rng;
pub mod upscaler;
pub mod weights;
