//! A job's GPU session: its device, its quota, what it has allocated, and
//! the resources it holds (kept in the store's `ResourceTable`, so all of
//! them are freed when the job's store drops, however the job ended).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::capabilities::gpu::device::GpuDevice;

/// What one job may use on the GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuQuota {
    /// Bytes of all live buffers together.
    pub memory_bytes: u64,
    /// Live buffers.
    pub buffers: u32,
    /// Commands in one `submit`.
    pub commands_per_submit: u32,
    /// Workgroups (x × y × z) in one dispatch.
    pub workgroups_per_dispatch: u64,
    /// Time one submission may take on the GPU before the job is ended.
    pub submission: Duration,
}

impl Default for GpuQuota {
    fn default() -> Self {
        GpuQuota {
            memory_bytes: 1 << 30,
            buffers: 256,
            commands_per_submit: 1024,
            workgroups_per_dispatch: 1 << 24,
            submission: Duration::from_secs(10),
        }
    }
}

/// Shader modules, pipelines and bind groups a job may hold at once.
pub const MAX_OBJECTS: u32 = 4096;

/// A GPU failure that ends the job (a trap, not a `gpu-error`): the GPU
/// cannot be interrupted mid-submission, so going on is unsafe.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuFault {
    /// A submission ran past the job's `submission-ms` quota.
    #[error(
        "GPU submission ran past the job's {ms} ms quota (split the work into shorter submissions)"
    )]
    SubmissionTimeout {
        /// The quota in milliseconds.
        ms: u128,
    },
    /// The device was lost (driver reset, GPU removed, …).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// The driver took too long to compile a shader or pipeline.
    #[error("GPU {what} compilation ran past {secs} s (simplify the shader)")]
    CompileTimeout {
        /// `shader module` or `pipeline`.
        what: &'static str,
        /// The limit in seconds.
        secs: u64,
    },
}

/// Per-job state of the gpu capability.
pub struct GpuSession {
    pub(crate) device: Result<Arc<GpuDevice>, String>,
    pub(crate) quota: GpuQuota,
    pub(crate) usage: Arc<SessionUsage>,
    pub(crate) objects: u32,
}

/// What a session has allocated right now.
#[derive(Default)]
pub struct SessionUsage {
    pub(crate) bytes: AtomicU64,
    pub(crate) buffers: AtomicU32,
}

impl GpuSession {
    /// A session on `device` (or with the reason there is none).
    pub fn new(device: Result<Arc<GpuDevice>, String>, quota: GpuQuota) -> Self {
        GpuSession {
            device,
            quota,
            usage: Arc::default(),
            objects: 0,
        }
    }

    /// A session without a GPU, for jobs that do not import the interface.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(Err(reason.into()), GpuQuota::default())
    }

    /// Bytes of buffers the job holds now.
    pub fn bytes_in_use(&self) -> u64 {
        self.usage.bytes.load(Ordering::SeqCst)
    }

    /// The adapter's name, if the job had a GPU.
    pub fn adapter_name(&self) -> Option<String> {
        self.device.as_ref().ok().map(|d| d.info.name.clone())
    }

    /// Buffers the job holds now.
    pub fn buffers_in_use(&self) -> u32 {
        self.usage.buffers.load(Ordering::SeqCst)
    }
}

/// A buffer allocation, shared by the guest's handle and the bind groups
/// that use it; freed (and uncounted) when the last of them drops.
pub(crate) struct BufferAlloc {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) size: u64,
    usage: Arc<SessionUsage>,
    device: Arc<GpuDevice>,
}

impl BufferAlloc {
    pub(crate) fn new(
        buffer: wgpu::Buffer,
        size: u64,
        usage: Arc<SessionUsage>,
        device: Arc<GpuDevice>,
    ) -> Self {
        usage.bytes.fetch_add(size, Ordering::SeqCst);
        usage.buffers.fetch_add(1, Ordering::SeqCst);
        device.track_alloc(size);
        BufferAlloc {
            buffer,
            size,
            usage,
            device,
        }
    }
}

impl Drop for BufferAlloc {
    fn drop(&mut self) {
        self.buffer.destroy();
        self.usage.bytes.fetch_sub(self.size, Ordering::SeqCst);
        self.usage.buffers.fetch_sub(1, Ordering::SeqCst);
        self.device.track_free(self.size);
    }
}

/// The host side of a guest `buffer`.
pub struct GpuBuffer {
    pub(crate) alloc: Arc<BufferAlloc>,
}

/// The host side of a guest `shader-module`.
pub struct GpuShaderModule {
    pub(crate) module: wgpu::ShaderModule,
}

/// The host side of a guest `compute-pipeline`.
pub struct GpuPipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
}

/// The host side of a guest `bind-group`; keeps its buffers alive.
pub struct GpuBindGroup {
    pub(crate) group: wgpu::BindGroup,
    pub(crate) _buffers: Vec<Arc<BufferAlloc>>,
}
