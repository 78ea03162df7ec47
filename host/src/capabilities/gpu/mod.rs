//! `pictor:plugin/gpu`: WebGPU-shaped compute for plugins, run with wgpu.
//!
//! - [`device`]: choosing the adapter, one shared device per GPU, loss and reopen;
//! - [`session`]: a job's quota, usage and resources;
//! - [`host`]: the WIT functions, each checked against the quota, each GPU
//!   call inside an error scope so invalid use is a `gpu-error`, never a
//!   host panic, and every wait bounded and off the async executor;
//! - [`shader`]: WGSL validation with line and column (shaders then compile
//!   with runtime bounds checks: `create_shader_module`, not the trusted path).

pub mod device;
mod host;
pub mod session;
pub mod shader;

use wasmtime::component::{HasData, Linker, ResourceTable};

pub use device::{AdapterChoice, GpuDevice, GpuHealth, GpuProvider};
pub use session::{
    GpuBindGroup, GpuBuffer, GpuFault, GpuPipeline, GpuQuota, GpuSession, GpuShaderModule,
};

use crate::runtime::bindings::pictor::plugin::gpu;
use crate::runtime::store::StoreState;

/// What the gpu host functions see: the job's session and resource table.
pub struct GpuView<'a> {
    pub(crate) session: &'a mut GpuSession,
    pub(crate) table: &'a mut ResourceTable,
}

struct HasGpu;

impl HasData for HasGpu {
    type Data<'a> = GpuView<'a>;
}

/// The interface's name as components import it.
pub const INTERFACE: &str = "pictor:plugin/gpu@0.2.0";

/// Links `pictor:plugin/gpu` into `linker`.
///
/// `buffer.write` and `buffer.read` are then replaced by
/// `host::write_direct` / `host::read_direct`, which copy straight between
/// guest memory and wgpu's staging memory (one copy each way) instead of
/// through an owned `Vec` (two).
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    gpu::add_to_linker::<StoreState, HasGpu>(linker, |state| GpuView {
        session: &mut state.gpu,
        table: &mut state.table,
    })?;
    linker.allow_shadowing(true);
    let linked = linker.instance(INTERFACE).and_then(|mut gpu| {
        gpu.func_wrap_async("[method]buffer.write", host::write_direct)?;
        gpu.func_wrap_async("[method]buffer.read", host::read_direct)
    });
    linker.allow_shadowing(false);
    linked
}
