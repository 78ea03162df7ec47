//! Host bindings generated from `wit/` for the `job` world.
//!
//! Imports (`progress`, `checkpoint`) are synchronous and may trap; `run` is
//! called asynchronously so epoch deadlines can yield and interrupt it.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job",
    imports: { default: trappable },
    exports: { default: async },
});

pub use pictor::plugin::types::Metric;
