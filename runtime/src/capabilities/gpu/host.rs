//! The WIT `gpu` functions. Each one checks the job's quota and the
//! arguments first (a `gpu-error` names what is wrong), runs the wgpu calls
//! inside error scopes (so invalid use is an error, never a host panic) and
//! does anything that may block (shader compilation, submissions, reads) on
//! a blocking thread with a bounded wait.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::instrument;
use wasmtime::component::Resource;

use super::GpuView;
use super::device::GpuDevice;
use super::direct::MappedBytes;
use super::session::{
    BufferAlloc, GpuBindGroup, GpuBuffer, GpuFault, GpuPipeline, GpuShaderModule, MAX_OBJECTS,
};
use super::shader::validate_wgsl;
use crate::bindings::pictor::plugin::gpu::{
    AdapterInfo, BufferBinding, BufferUsage, Command, Constant, DeviceType, GpuError, Host,
    HostBindGroup, HostBuffer, HostComputePipeline, HostShaderModule, Limits, Quota, Submission,
};

/// Result of a host function: the outer error is a trap (ends the job).
type GpuResult<T> = wasmtime::Result<Result<T, GpuError>>;

/// Copy offsets and sizes must be multiples of this (WebGPU's rule).
const ALIGN: u64 = wgpu::COPY_BUFFER_ALIGNMENT;

/// Most bytes one `buffer.write` or `buffer.read` moves (the WIT's
/// per-call limit; writes are also held to it by the store's hostcall fuel).
pub const MAX_TRANSFER_BYTES: u64 = 128 << 20;

/// Longest a shader module or pipeline may take to compile. Compilation
/// runs on a thread of its own; past this the job ends with `gpu-timeout`
/// and the thread is left to finish (a driver cannot be interrupted).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

fn invalid(message: impl Into<String>) -> GpuError {
    GpuError::InvalidArgument(message.into())
}

/// Refuses one `buffer.write` or `buffer.read` of more than [`MAX_TRANSFER_BYTES`].
pub(super) fn check_transfer(what: &str, len: u64) -> Result<(), GpuError> {
    if len > MAX_TRANSFER_BYTES {
        return Err(invalid(format!(
            "{what}: {len} bytes in one call, the limit is {MAX_TRANSFER_BYTES}; {what} in chunks"
        )));
    }
    Ok(())
}

/// Runs `f` inside validation and out-of-memory error scopes on this thread.
fn scoped<R>(device: &wgpu::Device, f: impl FnOnce() -> R) -> (R, Option<GpuError>) {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = f();
    let validation_error = pollster::block_on(validation.pop());
    let oom_error = pollster::block_on(oom.pop());
    let error = validation_error.or(oom_error).map(|e| match e {
        wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(e.to_string()),
        wgpu::Error::Validation { description, .. } => GpuError::InvalidArgument(description),
        other => GpuError::InvalidArgument(other.to_string()),
    });
    (result, error)
}

/// Runs blocking GPU work off the async executor.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> wasmtime::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| wasmtime::Error::msg(format!("GPU worker thread failed: {e}")))
}

/// Runs `f` (a compilation) on a thread of its own and waits at most
/// [`COMPILE_TIMEOUT`]; past that the job ends and the thread is left behind.
async fn compiling<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> wasmtime::Result<T> {
    compiling_within(what, COMPILE_TIMEOUT, f).await
}

/// [`compiling`] with a time limit of `limit`.
async fn compiling_within<T: Send + 'static>(
    what: &'static str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> wasmtime::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pictor-gpu-compile".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| wasmtime::Error::msg(format!("cannot start a GPU compile thread: {e}")))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => Err(wasmtime::Error::msg(format!(
            "{what} compilation failed on its thread"
        ))),
        Err(_) => Err(wasmtime::Error::new(GpuFault::CompileTimeout {
            what,
            secs: limit.as_secs(),
        })),
    }
}

/// Waits for `submission` within `timeout`; a timeout or a poll failure ends the job.
pub(super) fn wait(
    device: &GpuDevice,
    submission: wgpu::SubmissionIndex,
    timeout: Duration,
) -> Result<(), GpuFault> {
    // Every submission takes the writes staged before it along.
    device.staged.store(0, std::sync::atomic::Ordering::SeqCst);
    match device.device.poll(wgpu::PollType::Wait {
        submission_index: Some(submission),
        timeout: Some(timeout),
    }) {
        Ok(_) => Ok(()),
        Err(wgpu::PollError::Timeout) => {
            device.mark_overrun();
            Err(GpuFault::SubmissionTimeout {
                ms: timeout.as_millis(),
            })
        }
        Err(other) => Err(GpuFault::DeviceLost(other.to_string())),
    }
}

fn check_range(what: &str, offset: u64, size: u64, buffer_size: u64) -> Result<(), GpuError> {
    if !offset.is_multiple_of(ALIGN) || !size.is_multiple_of(ALIGN) {
        return Err(invalid(format!(
            "{what}: offset {offset} and size {size} must be multiples of {ALIGN}"
        )));
    }
    match offset.checked_add(size) {
        Some(end) if end <= buffer_size => Ok(()),
        _ => Err(invalid(format!(
            "{what}: bytes {offset}..{offset}+{size} are outside the {buffer_size}-byte buffer"
        ))),
    }
}

macro_rules! try_gpu {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl GpuView<'_> {
    /// The job's device, `unavailable` if it has none; a lost device ends the job.
    fn device(&self) -> wasmtime::Result<Result<Arc<GpuDevice>, GpuError>> {
        match &self.session.device {
            Err(reason) => Ok(Err(GpuError::Unavailable(reason.clone()))),
            Ok(device) => match device.lost_reason() {
                Some(reason) => Err(wasmtime::Error::new(GpuFault::DeviceLost(reason))),
                None => Ok(Ok(Arc::clone(device))),
            },
        }
    }

    fn count_object(&mut self) -> Result<(), GpuError> {
        if self.session.objects >= MAX_OBJECTS {
            return Err(GpuError::QuotaExceeded(format!(
                "a job may hold at most {MAX_OBJECTS} shader modules, pipelines and bind groups"
            )));
        }
        self.session.objects += 1;
        Ok(())
    }

    /// Counts a new object against the quota, builds it with `make` on a
    /// blocking thread (shader and pipeline compilation can take a while)
    /// and stores it in the table; a failure uncounts it.
    async fn create_object<T: Send + 'static, R: Send + 'static>(
        &mut self,
        what: &'static str,
        wrap: impl FnOnce(T) -> R,
        make: impl FnOnce() -> Result<T, GpuError> + Send + 'static,
    ) -> GpuResult<Resource<R>> {
        try_gpu!(self.count_object());
        match compiling(what, make).await? {
            Ok(object) => Ok(Ok(self.table.push(wrap(object))?)),
            Err(e) => {
                self.session.objects -= 1;
                Ok(Err(e))
            }
        }
    }

    /// The device and allocation for a `what` of `len` bytes at `offset`
    /// of `buffer`, checked: no GPU, a lost device (trap) or a bad range.
    pub(super) fn access(
        &self,
        buffer: &Resource<GpuBuffer>,
        what: &str,
        offset: u64,
        len: u64,
    ) -> GpuResult<(Arc<GpuDevice>, Arc<BufferAlloc>)> {
        let device = try_gpu!(self.device()?);
        let alloc = self.alloc(buffer)?;
        try_gpu!(check_range(what, offset, len, alloc.size));
        Ok(Ok((device, alloc)))
    }

    fn alloc(&self, buffer: &Resource<GpuBuffer>) -> wasmtime::Result<Arc<BufferAlloc>> {
        Ok(Arc::clone(&self.table.get(buffer)?.alloc))
    }
}

impl Host for GpuView<'_> {
    async fn info(&mut self) -> GpuResult<AdapterInfo> {
        let device = try_gpu!(self.device()?);
        let info = &device.info;
        Ok(Ok(AdapterInfo {
            name: info.name.clone(),
            vendor: info.vendor,
            device: info.device,
            device_type: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => DeviceType::DiscreteGpu,
                wgpu::DeviceType::IntegratedGpu => DeviceType::IntegratedGpu,
                wgpu::DeviceType::VirtualGpu => DeviceType::VirtualGpu,
                wgpu::DeviceType::Cpu => DeviceType::Cpu,
                wgpu::DeviceType::Other => DeviceType::Other,
            },
            backend: format!("{:?}", info.backend).to_lowercase(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }))
    }

    async fn device_limits(&mut self) -> GpuResult<Limits> {
        let device = try_gpu!(self.device()?);
        let l = &device.limits;
        Ok(Ok(Limits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_bind_groups: l.max_bind_groups,
            max_bindings_per_bind_group: l.max_bindings_per_bind_group,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroup_size_y: l.max_compute_workgroup_size_y,
            max_compute_workgroup_size_z: l.max_compute_workgroup_size_z,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment,
        }))
    }

    async fn job_quota(&mut self) -> wasmtime::Result<Quota> {
        let q = &self.session.quota;
        Ok(Quota {
            memory_bytes: q.memory_bytes,
            buffers: q.buffers,
            commands_per_submit: q.commands_per_submit,
            workgroups_per_dispatch: q.workgroups_per_dispatch,
            submission_ms: u32::try_from(q.submission.as_millis()).unwrap_or(u32::MAX),
        })
    }

    #[instrument(level = "debug", skip(self), err(level = "debug"))]
    async fn create_buffer(
        &mut self,
        size: u64,
        usage: BufferUsage,
    ) -> GpuResult<Resource<GpuBuffer>> {
        let device = try_gpu!(self.device()?);
        if size == 0 || !size.is_multiple_of(ALIGN) {
            return Ok(Err(invalid(format!(
                "buffer size {size} must be a positive multiple of {ALIGN}"
            ))));
        }
        if size > device.limits.max_buffer_size {
            return Ok(Err(invalid(format!(
                "buffer size {size} is over the device's max-buffer-size {}",
                device.limits.max_buffer_size
            ))));
        }
        let quota = &self.session.quota;
        let (used, buffers) = (self.session.bytes_in_use(), self.session.buffers_in_use());
        if buffers >= quota.buffers {
            return Ok(Err(GpuError::QuotaExceeded(format!(
                "the job already holds {buffers} buffers, its quota is {}",
                quota.buffers
            ))));
        }
        if used.saturating_add(size) > quota.memory_bytes {
            return Ok(Err(GpuError::QuotaExceeded(format!(
                "a {size}-byte buffer would bring the job to {} bytes of GPU memory, its quota is {}",
                used + size,
                quota.memory_bytes
            ))));
        }
        let mut wgpu_usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        if usage.contains(BufferUsage::STORAGE) {
            wgpu_usage |= wgpu::BufferUsages::STORAGE;
        }
        if usage.contains(BufferUsage::UNIFORM) {
            wgpu_usage |= wgpu::BufferUsages::UNIFORM;
        }
        let (buffer, error) = scoped(&device.device, || {
            device.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("job buffer"),
                size,
                usage: wgpu_usage,
                mapped_at_creation: false,
            })
        });
        if let Some(error) = error {
            buffer.destroy();
            return Ok(Err(error));
        }
        let alloc = BufferAlloc::new(buffer, size, Arc::clone(&self.session.usage), device);
        Ok(Ok(self.table.push(GpuBuffer {
            alloc: Arc::new(alloc),
        })?))
    }

    #[instrument(level = "debug", skip_all, fields(bytes = code.len()), err(level = "debug"))]
    async fn create_shader_module(&mut self, code: String) -> GpuResult<Resource<GpuShaderModule>> {
        let device = try_gpu!(self.device()?);
        self.create_object(
            "shader module",
            |module| GpuShaderModule { module },
            move || {
                validate_wgsl(&code).map_err(|e| GpuError::InvalidShader(e.to_string()))?;
                let (module, error) = scoped(&device.device, || {
                    device
                        .device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some("job shader"),
                            source: wgpu::ShaderSource::Wgsl(code.into()),
                        })
                });
                match error {
                    Some(GpuError::InvalidArgument(m)) => Err(GpuError::InvalidShader(m)),
                    Some(other) => Err(other),
                    None => Ok(module),
                }
            },
        )
        .await
    }

    #[instrument(level = "debug", skip(self, module, constants), err(level = "debug"))]
    async fn create_compute_pipeline(
        &mut self,
        module: Resource<GpuShaderModule>,
        entry_point: String,
        constants: Vec<Constant>,
    ) -> GpuResult<Resource<GpuPipeline>> {
        let device = try_gpu!(self.device()?);
        let module = self.table.get(&module)?.module.clone();
        self.create_object(
            "pipeline",
            |pipeline| GpuPipeline { pipeline },
            move || {
                let constants: Vec<(&str, f64)> = constants
                    .iter()
                    .map(|c| (c.name.as_str(), c.value))
                    .collect();
                let (pipeline, error) = scoped(&device.device, || {
                    device
                        .device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some("job pipeline"),
                            layout: None,
                            module: &module,
                            entry_point: Some(&entry_point),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: &constants,
                                ..Default::default()
                            },
                            cache: None,
                        })
                });
                error.map_or(Ok(pipeline), Err)
            },
        )
        .await
    }

    #[instrument(level = "debug", skip(self, pipeline, entries), err(level = "debug"))]
    async fn create_bind_group(
        &mut self,
        pipeline: Resource<GpuPipeline>,
        group: u32,
        entries: Vec<BufferBinding>,
    ) -> GpuResult<Resource<GpuBindGroup>> {
        let device = try_gpu!(self.device()?);
        if group >= device.limits.max_bind_groups {
            return Ok(Err(invalid(format!(
                "bind group {group} is over the device's max-bind-groups {}",
                device.limits.max_bind_groups
            ))));
        }
        let pipeline = self.table.get(&pipeline)?.pipeline.clone();
        let mut buffers = Vec::with_capacity(entries.len());
        for entry in &entries {
            let alloc = self.alloc(&entry.buffer)?;
            let size = entry
                .size
                .unwrap_or(alloc.size.saturating_sub(entry.offset));
            if entry
                .offset
                .checked_add(size)
                .is_none_or(|end| end > alloc.size)
                || size == 0
            {
                return Ok(Err(invalid(format!(
                    "binding {}: bytes {}..+{size} are outside the {}-byte buffer",
                    entry.binding, entry.offset, alloc.size
                ))));
            }
            buffers.push((entry.binding, entry.offset, NonZeroU64::new(size), alloc));
        }
        try_gpu!(self.count_object());
        let (group_result, error) = scoped(&device.device, || {
            let layout = pipeline.get_bind_group_layout(group);
            let wgpu_entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
                .iter()
                .map(|(binding, offset, size, alloc)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &alloc.buffer,
                        offset: *offset,
                        size: *size,
                    }),
                })
                .collect();
            device.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("job bind group"),
                layout: &layout,
                entries: &wgpu_entries,
            })
        });
        if let Some(error) = error {
            self.session.objects -= 1;
            return Ok(Err(error));
        }
        let keep = buffers.into_iter().map(|(_, _, _, alloc)| alloc).collect();
        Ok(Ok(self.table.push(GpuBindGroup {
            group: group_result,
            _buffers: keep,
        })?))
    }

    #[instrument(level = "debug", skip_all, fields(commands = commands.len()), err(level = "debug"))]
    async fn submit(&mut self, commands: Vec<Command>) -> GpuResult<Submission> {
        let device = try_gpu!(self.device()?);
        let quota = self.session.quota.clone();
        if commands.len() as u64 > u64::from(quota.commands_per_submit) {
            return Ok(Err(GpuError::QuotaExceeded(format!(
                "{} commands in one submit, the quota is {}",
                commands.len(),
                quota.commands_per_submit
            ))));
        }
        let max_dim = device.limits.max_compute_workgroups_per_dimension;
        let mut recorded = Vec::with_capacity(commands.len());
        for (i, command) in commands.into_iter().enumerate() {
            recorded.push(match command {
                Command::Dispatch(d) => {
                    let workgroups = u64::from(d.x) * u64::from(d.y) * u64::from(d.z);
                    if workgroups > quota.workgroups_per_dispatch {
                        return Ok(Err(GpuError::QuotaExceeded(format!(
                            "command {i}: {workgroups} workgroups in one dispatch, the quota is {}",
                            quota.workgroups_per_dispatch
                        ))));
                    }
                    if d.x.max(d.y).max(d.z) > max_dim {
                        return Ok(Err(invalid(format!(
                            "command {i}: dispatch ({}, {}, {}) is over the device's {max_dim} workgroups per dimension",
                            d.x, d.y, d.z
                        ))));
                    }
                    let pipeline = self.table.get(&d.pipeline)?.pipeline.clone();
                    let mut groups = Vec::with_capacity(d.bind_groups.len());
                    for g in &d.bind_groups {
                        groups.push(self.table.get(g)?.group.clone());
                    }
                    Recorded::Dispatch { pipeline, groups, x: d.x, y: d.y, z: d.z }
                }
                Command::Copy(c) => {
                    let (src, dst) = (self.alloc(&c.source)?, self.alloc(&c.destination)?);
                    try_gpu!(check_range(&format!("command {i}: copy source"), c.source_offset, c.size, src.size));
                    try_gpu!(check_range(&format!("command {i}: copy destination"), c.destination_offset, c.size, dst.size));
                    Recorded::Copy { src, src_offset: c.source_offset, dst, dst_offset: c.destination_offset, size: c.size }
                }
                Command::Clear(c) => {
                    let buffer = self.alloc(&c.buffer)?;
                    let size = c.size.unwrap_or(buffer.size.saturating_sub(c.offset));
                    try_gpu!(check_range(&format!("command {i}: clear"), c.offset, size, buffer.size));
                    Recorded::Clear { buffer, offset: c.offset, size }
                }
            });
        }
        match blocking(move || run_submission(&device, recorded, quota.submission)).await? {
            Ok(result) => Ok(result),
            Err(fault) => Err(wasmtime::Error::new(fault)),
        }
    }
}

/// A command with its resources resolved (and kept alive while it runs).
enum Recorded {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        groups: Vec<wgpu::BindGroup>,
        x: u32,
        y: u32,
        z: u32,
    },
    Copy {
        src: Arc<BufferAlloc>,
        src_offset: u64,
        dst: Arc<BufferAlloc>,
        dst_offset: u64,
        size: u64,
    },
    Clear {
        buffer: Arc<BufferAlloc>,
        offset: u64,
        size: u64,
    },
}

/// Encodes, submits and waits for one batch (on a blocking thread).
fn run_submission(
    device: &GpuDevice,
    commands: Vec<Recorded>,
    timeout: Duration,
) -> Result<Result<Submission, GpuError>, GpuFault> {
    let ((index, started), error) = scoped(&device.device, || {
        let mut encoder = device
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("job batch"),
            });
        for command in &commands {
            match command {
                Recorded::Dispatch {
                    pipeline,
                    groups,
                    x,
                    y,
                    z,
                } => {
                    let mut pass =
                        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    pass.set_pipeline(pipeline);
                    for (i, group) in groups.iter().enumerate() {
                        pass.set_bind_group(i as u32, group, &[]);
                    }
                    pass.dispatch_workgroups(*x, *y, *z);
                }
                Recorded::Copy {
                    src,
                    src_offset,
                    dst,
                    dst_offset,
                    size,
                } => {
                    encoder.copy_buffer_to_buffer(
                        &src.buffer,
                        *src_offset,
                        &dst.buffer,
                        *dst_offset,
                        *size,
                    );
                }
                Recorded::Clear {
                    buffer,
                    offset,
                    size,
                } => {
                    encoder.clear_buffer(&buffer.buffer, *offset, Some(*size));
                }
            }
        }
        let started = Instant::now();
        (device.queue.submit([encoder.finish()]), started)
    });
    if let Some(error) = error {
        // The invalid command buffer did nothing; the job may go on.
        return Ok(Err(error));
    }
    wait(device, index, timeout)?;
    let elapsed_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(Ok(Submission { elapsed_ns }))
}

/// Copies `bytes` into wgpu's staging memory for `alloc` at `offset` (the
/// one copy of a write; uploaded before the next submission).
pub(super) fn write_bytes(
    device: &GpuDevice,
    alloc: &BufferAlloc,
    offset: u64,
    bytes: &[u8],
) -> Result<(), GpuError> {
    let Some(size) = NonZeroU64::new(bytes.len() as u64) else {
        return Ok(());
    };
    let (written, error) = scoped(&device.device, || {
        match device.queue.write_buffer_with(&alloc.buffer, offset, size) {
            Some(mut staging) => {
                staging.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    });
    match (error, written) {
        (Some(e), _) => Err(e),
        (None, false) => Err(invalid("write: the device refused the staging allocation")),
        (None, true) => Ok(()),
    }
}

impl HostBuffer for GpuView<'_> {
    async fn size(&mut self, buffer: Resource<GpuBuffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&buffer)?.alloc.size)
    }

    /// Not called by guests ([`write_direct`](super::direct::write_direct) is linked in its place); the
    /// same checks and copy, for host-side callers and tests.
    async fn write(
        &mut self,
        buffer: Resource<GpuBuffer>,
        offset: u64,
        data: Vec<u8>,
    ) -> GpuResult<()> {
        try_gpu!(check_transfer("write", data.len() as u64));
        let (device, alloc) = try_gpu!(self.access(&buffer, "write", offset, data.len() as u64)?);
        Ok(write_bytes(&device, &alloc, offset, &data))
    }

    /// Not called by guests ([`read_direct`](super::direct::read_direct) is linked in its place); the
    /// same checks and staging read, returning an owned copy.
    async fn read(
        &mut self,
        buffer: Resource<GpuBuffer>,
        offset: u64,
        size: u64,
    ) -> GpuResult<Vec<u8>> {
        try_gpu!(check_transfer("read", size));
        let (device, alloc) = try_gpu!(self.access(&buffer, "read", offset, size)?);
        if size == 0 {
            return Ok(Ok(Vec::new()));
        }
        let timeout = self.session.quota.submission;
        match blocking(move || map_for_read(&device, &alloc, offset, size, timeout)).await? {
            Ok(result) => Ok(result.map(|mapped| mapped.bytes().to_vec())),
            Err(fault) => Err(wasmtime::Error::new(fault)),
        }
    }

    async fn drop(&mut self, buffer: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        self.table.delete(buffer)?;
        Ok(())
    }
}

/// Copies part of a buffer into a staging buffer and maps it for reading.
pub(super) fn map_for_read(
    device: &GpuDevice,
    alloc: &BufferAlloc,
    offset: u64,
    size: u64,
    timeout: Duration,
) -> Result<Result<MappedBytes, GpuError>, GpuFault> {
    let ((staging, index), error) = scoped(&device.device, || {
        let staging = device.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read"),
            });
        encoder.copy_buffer_to_buffer(&alloc.buffer, offset, &staging, 0, size);
        (staging, device.queue.submit([encoder.finish()]))
    });
    if let Some(error) = error {
        staging.destroy();
        return Ok(Err(error));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
    wait(device, index, timeout)?;
    let mapped = match rx.try_recv() {
        Ok(Ok(())) => staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| invalid(format!("read: {e}"))),
        Ok(Err(e)) => Err(invalid(format!("read: {e}"))),
        Err(_) => Err(invalid("read: the GPU did not map the staging buffer")),
    };
    Ok(match mapped {
        Ok(view) => Ok(MappedBytes::new(view, staging)),
        Err(e) => {
            staging.destroy();
            Err(e)
        }
    })
}

impl HostShaderModule for GpuView<'_> {
    async fn drop(&mut self, module: Resource<GpuShaderModule>) -> wasmtime::Result<()> {
        self.table.delete(module)?;
        self.session.objects = self.session.objects.saturating_sub(1);
        Ok(())
    }
}

impl HostComputePipeline for GpuView<'_> {
    async fn drop(&mut self, pipeline: Resource<GpuPipeline>) -> wasmtime::Result<()> {
        self.table.delete(pipeline)?;
        self.session.objects = self.session.objects.saturating_sub(1);
        Ok(())
    }
}

impl HostBindGroup for GpuView<'_> {
    async fn drop(&mut self, group: Resource<GpuBindGroup>) -> wasmtime::Result<()> {
        self.table.delete(group)?;
        self.session.objects = self.session.objects.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::gpu::{AdapterChoice, GpuProvider, GpuQuota, GpuSession};
    use wasmtime::component::ResourceTable;

    type JobGpu = (GpuProvider, Arc<GpuDevice>, GpuSession, ResourceTable);

    /// The default adapter's provider and device, and a fresh job session
    /// and table on it.
    fn job_gpu() -> wasmtime::Result<JobGpu> {
        let provider = GpuProvider::new(AdapterChoice::Auto);
        let device = provider.device().map_err(wasmtime::Error::msg)?;
        let session = GpuSession::new(Ok(Arc::clone(&device)), GpuQuota::default());
        Ok((provider, device, session, ResourceTable::new()))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn calls_on_a_lost_device_end_the_job_and_buffers_are_freed() -> wasmtime::Result<()> {
        let (_provider, device, mut session, mut table) = job_gpu()?;
        let mut view = GpuView {
            session: &mut session,
            table: &mut table,
        };

        let buffer = view
            .create_buffer(64, BufferUsage::STORAGE)
            .await?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        assert_eq!((device.live_buffers(), device.live_bytes()), (1, 64));
        let data: Vec<u8> = (0..64).collect();
        assert!(
            view.write(Resource::new_borrow(buffer.rep()), 0, data.clone())
                .await?
                .is_ok()
        );
        let back = view.read(Resource::new_borrow(buffer.rep()), 0, 64).await?;
        assert_eq!(back.ok(), Some(data));
        let misaligned = view
            .write(Resource::new_borrow(buffer.rep()), 2, vec![0; 4])
            .await?;
        assert!(
            matches!(misaligned, Err(GpuError::InvalidArgument(ref m)) if m.contains("multiples of 4")),
            "{misaligned:?}"
        );

        device.device.destroy();
        let _ = device.device.poll(wgpu::PollType::Poll);
        let error = view
            .info()
            .await
            .err()
            .ok_or_else(|| wasmtime::Error::msg("info on a lost device must trap"))?;
        assert!(
            matches!(
                error.downcast_ref::<GpuFault>(),
                Some(GpuFault::DeviceLost(_))
            ),
            "{error:?}"
        );

        drop(table);
        assert_eq!(
            (device.live_buffers(), device.live_bytes()),
            (0, 0),
            "the store's table owns every buffer"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_transfer_past_the_per_call_limit_is_refused_before_any_copy()
    -> wasmtime::Result<()> {
        let (_provider, _device, mut session, mut table) = job_gpu()?;
        let mut view = GpuView {
            session: &mut session,
            table: &mut table,
        };
        let buffer = view
            .create_buffer(64, BufferUsage::STORAGE)
            .await?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        let over = MAX_TRANSFER_BYTES + 4;
        let read = view
            .read(Resource::new_borrow(buffer.rep()), 0, over)
            .await?;
        assert!(
            matches!(read, Err(GpuError::InvalidArgument(ref m)) if m.contains("the limit is 134217728; read in chunks")),
            "{read:?}"
        );
        let write = view
            .write(
                Resource::new_borrow(buffer.rep()),
                0,
                vec![0; over as usize],
            )
            .await?;
        assert!(
            matches!(write, Err(GpuError::InvalidArgument(ref m)) if m.contains("write in chunks")),
            "{write:?}"
        );
        // At the limit the size is fine and only the buffer's range refuses it.
        let read = view
            .read(Resource::new_borrow(buffer.rep()), 0, MAX_TRANSFER_BYTES)
            .await?;
        assert!(
            matches!(read, Err(GpuError::InvalidArgument(ref m)) if !m.contains("in chunks")),
            "{read:?}"
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_compile_past_its_limit_ends_with_gpu_timeout_and_leaves_its_thread() {
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&finished);
        let result = compiling_within("shader module", Duration::from_millis(50), move || {
            std::thread::sleep(Duration::from_secs(2));
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .await;
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.contains("shader module compilation ran past"),
            "{error}"
        );
        assert!(
            !finished.load(std::sync::atomic::Ordering::SeqCst),
            "the job must not wait for the compile thread"
        );
        let quick = compiling_within("pipeline", Duration::from_secs(30), || 7).await;
        assert_eq!(quick.ok(), Some(7));
    }
}
