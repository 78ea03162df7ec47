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
        // WASI (the `plugin` world includes `wasi:cli/imports`): wasmtime-wasi's.
        "wasi": wasmtime_wasi::p2::bindings,
        "pictor:plugin/gpu.buffer": crate::capabilities::gpu::GpuBuffer,
        "pictor:plugin/gpu.shader-module": crate::capabilities::gpu::GpuShaderModule,
        "pictor:plugin/gpu.compute-pipeline": crate::capabilities::gpu::GpuPipeline,
        "pictor:plugin/gpu.bind-group": crate::capabilities::gpu::GpuBindGroup,
    },
});

pub use pictor::plugin::types::Metric;

/// Host bindings of the `miner` world: only its own interface,
/// `pictor:plugin/mining`, is generated here; the interfaces it shares
/// with the `job` world are the ones above. A miner's `run` has the job
/// world's signature, so miners are called through [`JobPre`] too.
pub mod miner {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "miner",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "pictor:plugin/types": super::pictor::plugin::types,
            "pictor:plugin/progress": super::pictor::plugin::progress,
            "pictor:plugin/gpu": super::pictor::plugin::gpu,
        },
    });
}
