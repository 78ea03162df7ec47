//! `pictor:plugin/gpu`: WebGPU-shaped compute for plugins, run with wgpu.
//!
//! - [`device`]: choosing the adapter, one shared device per GPU, loss and reopen;
//! - [`session`]: a job's quota, usage and resources;
//! - [`host`]: the WIT functions, each checked against the quota, each GPU
//!   call inside an error scope so invalid use is a `gpu-error`, never a
//!   host panic, and every wait bounded and off the async executor;
//! - [`direct`]: the one-copy `buffer.write` / `buffer.read` linked in place
//!   of the generated ones (the only code on wasmtime's hidden internals);
//! - [`shader`]: WGSL validation with line and column (shaders then compile
//!   with runtime bounds checks: `create_shader_module`, not the trusted path).

pub mod device;
mod direct;
mod host;
pub mod session;
pub mod shader;

use wasmtime::component::{HasData, Linker, ResourceTable};

pub use device::{AdapterChoice, GpuDevice, GpuHealth, GpuProvider};
pub use session::{
    GpuBindGroup, GpuBuffer, GpuFault, GpuPipeline, GpuQuota, GpuSession, GpuShaderModule,
};

use crate::bindings::pictor::plugin::gpu;

/// What the gpu host functions see: the job's session and resource table.
pub struct GpuView<'a> {
    /// The job's GPU session: its device, quota and usage.
    pub session: &'a mut GpuSession,
    /// The store's resource table, where buffers and pipelines live.
    pub table: &'a mut ResourceTable,
}

struct HasGpu;

impl HasData for HasGpu {
    type Data<'a> = GpuView<'a>;
}

/// The interface's name as components import it.
pub const INTERFACE: &str = "pictor:plugin/gpu@0.2.0";

/// Links `pictor:plugin/gpu` into `linker`, reaching the job's session and
/// resource table through `getter`.
///
/// `buffer.write` and `buffer.read` are then replaced by
/// `direct::write_direct` / `direct::read_direct`, which copy straight
/// between guest memory and wgpu's staging memory (one copy each way)
/// instead of through an owned `Vec` (two).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> GpuView<'_>,
) -> wasmtime::Result<()> {
    gpu::add_to_linker::<T, HasGpu>(linker, getter)?;
    linker.allow_shadowing(true);
    let linked = linker.instance(INTERFACE).and_then(|mut gpu| {
        gpu.func_wrap_async("[method]buffer.write", move |store, params| {
            direct::write_direct(store, params, getter)
        })?;
        gpu.func_wrap_async("[method]buffer.read", move |store, params| {
            direct::read_direct(store, params, getter)
        })
    });
    linker.allow_shadowing(false);
    linked
}
