//! Host bindings generated from `wit/` for the `job` world.
//!
//! Imports may trap; `gpu` imports are async (their GPU waits run on a
//! blocking thread), the others synchronous. `run` is called asynchronously so epoch deadlines can yield and interrupt it.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job",
    imports: {
        "pictor:plugin/gpu": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "pictor:plugin/gpu.buffer": crate::capabilities::gpu::GpuBuffer,
        "pictor:plugin/gpu.shader-module": crate::capabilities::gpu::GpuShaderModule,
        "pictor:plugin/gpu.compute-pipeline": crate::capabilities::gpu::GpuPipeline,
        "pictor:plugin/gpu.bind-group": crate::capabilities::gpu::GpuBindGroup,
    },
});

pub use pictor::plugin::types::Metric;
