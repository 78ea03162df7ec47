//! GPU compute from a plugin, through the host's `pictor:plugin/gpu`
//! capability: typed buffers, WGSL kernels and batched submissions.
//!
//! ```no_run
//! use pictor_sdk::gpu::{self, Buffer, Kernel, Usage};
//!
//! const SAXPY: &str = r#"
//! @group(0) @binding(0) var<storage, read> x: array<f32>;
//! @group(0) @binding(1) var<storage, read_write> y: array<f32>;
//! override a: f32 = 1.0;
//! @compute @workgroup_size(64)
//! fn main(@builtin(global_invocation_id) id: vec3<u32>) {
//!     if id.x < arrayLength(&y) { y[id.x] = a * x[id.x] + y[id.x]; }
//! }"#;
//!
//! # fn main() -> Result<(), gpu::GpuError> {
//! let x = Buffer::from_slice(&[1.0f32, 2.0, 3.0], Usage::STORAGE)?;
//! let y = Buffer::from_slice(&[10.0f32, 20.0, 30.0], Usage::STORAGE)?;
//! let kernel = Kernel::with_constants(SAXPY, "main", &[("a", 2.0)])?;
//! let group = kernel.bind(0, &[x.binding(), y.binding()])?;
//! gpu::submit(&[kernel.dispatch(&[&group], [1, 1, 1])])?;
//! assert_eq!(y.read()?, vec![12.0, 24.0, 36.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Outside a component (native tests) every call returns
//! [`GpuError::Unavailable`], so plugin crates still build and test natively.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use bytemuck::Pod;

#[cfg(target_arch = "wasm32")]
use crate::__private::bindings::pictor::plugin::gpu as wit;

/// A GPU call that failed; the job can go on (or return it as a
/// [`JobError`](crate::JobError) with `?`).
///
/// ```
/// use pictor_sdk::gpu::GpuError;
/// let e = GpuError::QuotaExceeded("the job already holds 256 buffers, its quota is 256".into());
/// assert!(e.to_string().starts_with("GPU quota exceeded"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// No GPU for this job.
    Unavailable(String),
    /// A quota would be exceeded.
    QuotaExceeded(String),
    /// The WGSL does not parse or validate (with line and column).
    InvalidShader(String),
    /// A bad size, offset, binding or entry point.
    InvalidArgument(String),
    /// The device is out of memory.
    OutOfMemory(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::Unavailable(m) => write!(f, "no GPU: {m}"),
            GpuError::QuotaExceeded(m) => write!(f, "GPU quota exceeded: {m}"),
            GpuError::InvalidShader(m) => write!(f, "invalid shader: {m}"),
            GpuError::InvalidArgument(m) => write!(f, "invalid GPU argument: {m}"),
            GpuError::OutOfMemory(m) => write!(f, "GPU out of memory: {m}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<GpuError> for crate::JobError {
    fn from(e: GpuError) -> Self {
        crate::JobError::Failed(e.to_string())
    }
}

#[cfg(target_arch = "wasm32")]
impl From<wit::GpuError> for GpuError {
    fn from(e: wit::GpuError) -> Self {
        match e {
            wit::GpuError::Unavailable(m) => GpuError::Unavailable(m),
            wit::GpuError::QuotaExceeded(m) => GpuError::QuotaExceeded(m),
            wit::GpuError::InvalidShader(m) => GpuError::InvalidShader(m),
            wit::GpuError::InvalidArgument(m) => GpuError::InvalidArgument(m),
            wit::GpuError::OutOfMemory(m) => GpuError::OutOfMemory(m),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn no_gpu<T>() -> Result<T, GpuError> {
    Err(GpuError::Unavailable(
        "GPU calls only work inside a Pictor host".into(),
    ))
}

/// The bytes of a slice of [`Pod`] values (e.g. to write a result file).
///
/// ```
/// assert_eq!(pictor_sdk::gpu::as_bytes(&[1u32]), &[1, 0, 0, 0]);
/// ```
pub fn as_bytes<T: Pod>(values: &[T]) -> &[u8] {
    bytemuck::cast_slice(values)
}

/// The adapter a job runs on, from [`adapter`].
///
/// ```no_run
/// let info = pictor_sdk::gpu::adapter()?;
/// if info.device_type == "cpu" {
///     println!("software adapter: keep the problem small");
/// }
/// # Ok::<(), pictor_sdk::gpu::GpuError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    /// Adapter name, e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe (…)`.
    pub name: String,
    /// `vulkan`, `metal`, `dx12`, …
    pub backend: String,
    /// `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
}

/// The adapter this job runs on.
///
/// ```no_run
/// let info = pictor_sdk::gpu::adapter()?;
/// println!("running on {} ({})", info.name, info.backend);
/// # Ok::<(), pictor_sdk::gpu::GpuError>(())
/// ```
pub fn adapter() -> Result<AdapterInfo, GpuError> {
    #[cfg(target_arch = "wasm32")]
    {
        let info = wit::info()?;
        let device_type = match info.device_type {
            wit::DeviceType::DiscreteGpu => "discrete-gpu",
            wit::DeviceType::IntegratedGpu => "integrated-gpu",
            wit::DeviceType::VirtualGpu => "virtual-gpu",
            wit::DeviceType::Cpu => "cpu",
            wit::DeviceType::Other => "other",
        };
        Ok(AdapterInfo {
            name: info.name,
            backend: info.backend,
            device_type: device_type.into(),
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    no_gpu()
}

/// How a buffer is bound in shaders.
///
/// ```
/// let usage = pictor_sdk::gpu::Usage::STORAGE;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage(u8);

impl Usage {
    /// `var<storage>` (read or read_write).
    ///
    /// ```no_run
    /// let b = pictor_sdk::gpu::Buffer::<u32>::zeroed(16, pictor_sdk::gpu::Usage::STORAGE)?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub const STORAGE: Usage = Usage(1);
    /// `var<uniform>`.
    ///
    /// ```no_run
    /// let params = pictor_sdk::gpu::Buffer::from_slice(&[640u32, 480], pictor_sdk::gpu::Usage::UNIFORM)?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub const UNIFORM: Usage = Usage(2);

    #[cfg(target_arch = "wasm32")]
    fn wit(self) -> wit::BufferUsage {
        let mut usage = wit::BufferUsage::COPY_SRC | wit::BufferUsage::COPY_DST;
        if self.0 & 1 != 0 {
            usage |= wit::BufferUsage::STORAGE;
        }
        if self.0 & 2 != 0 {
            usage |= wit::BufferUsage::UNIFORM;
        }
        usage
    }
}

/// Bytes per `buffer.write` and `buffer.read` call (a multiple of 4, under
/// the host's 128 MiB per-call limit).
#[cfg(target_arch = "wasm32")]
const WRITE_CHUNK: usize = 64 << 20;

/// A GPU buffer of `T`s (any [`Pod`] type: `f32`, `u32`, `[f32; 4]`, your
/// `#[derive(Pod, Zeroable)]` structs). Freed when dropped.
pub struct Buffer<T: Pod> {
    #[cfg(target_arch = "wasm32")]
    raw: wit::Buffer,
    len: usize,
    _type: PhantomData<T>,
}

impl<T: Pod> Buffer<T> {
    /// A buffer of `len` zeroed elements.
    ///
    /// ```no_run
    /// let out = pictor_sdk::gpu::Buffer::<f32>::zeroed(1024, pictor_sdk::gpu::Usage::STORAGE)?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn zeroed(len: usize, usage: Usage) -> Result<Self, GpuError> {
        let bytes = (len * size_of::<T>()).max(4).next_multiple_of(4) as u64;
        #[cfg(target_arch = "wasm32")]
        {
            let raw = wit::create_buffer(bytes, usage.wit())?;
            Ok(Buffer {
                raw,
                len,
                _type: PhantomData,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (bytes, usage);
            no_gpu()
        }
    }

    /// A buffer holding a copy of `data`.
    ///
    /// ```no_run
    /// let b = pictor_sdk::gpu::Buffer::from_slice(&[1u32, 2, 3], pictor_sdk::gpu::Usage::STORAGE)?;
    /// assert_eq!(b.len(), 3);
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn from_slice(data: &[T], usage: Usage) -> Result<Self, GpuError> {
        let buffer = Self::zeroed(data.len(), usage)?;
        buffer.write(0, data)?;
        Ok(buffer)
    }

    /// Number of elements.
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(8, pictor_sdk::gpu::Usage::STORAGE)?;
    /// assert_eq!(b.len(), 8);
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(0, pictor_sdk::gpu::Usage::STORAGE)?;
    /// assert!(b.is_empty());
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` starting at element `first` (element byte sizes must
    /// keep offsets and lengths multiples of 4 bytes).
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(8, pictor_sdk::gpu::Usage::STORAGE)?;
    /// b.write(4, &[1.0, 2.0])?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn write(&self, first: usize, data: &[T]) -> Result<(), GpuError> {
        if first + data.len() > self.len {
            return Err(GpuError::InvalidArgument(format!(
                "writing {} elements at {first} overflows a buffer of {}",
                data.len(),
                self.len
            )));
        }
        let bytes: &[u8] = bytemuck::cast_slice(data);
        #[cfg(target_arch = "wasm32")]
        {
            // One host call may carry at most 128 MiB (wasmtime's hostcall
            // fuel); larger writes go in chunks.
            let start = (first * size_of::<T>()) as u64;
            for (i, chunk) in bytes.chunks(WRITE_CHUNK).enumerate() {
                self.raw.write(start + (i * WRITE_CHUNK) as u64, chunk)?;
            }
            Ok(())
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = bytes;
            no_gpu()
        }
    }

    /// Reads the whole buffer back, after all work submitted so far.
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(8, pictor_sdk::gpu::Usage::STORAGE)?;
    /// let values: Vec<f32> = b.read()?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn read(&self) -> Result<Vec<T>, GpuError> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes()?))
    }

    /// Reads the whole buffer back as raw bytes (little-endian `T`s), after
    /// all work submitted so far. One copy from the GPU's staging memory into
    /// this plugin's memory; [`read`](Self::read) adds one more to build the
    /// `Vec<T>` (wasm allocations of bytes are not aligned for `T`).
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(8, pictor_sdk::gpu::Usage::STORAGE)?;
    /// let bytes: Vec<u8> = b.read_bytes()?;
    /// assert_eq!(bytes.len(), 8 * 4);
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn read_bytes(&self) -> Result<Vec<u8>, GpuError> {
        #[cfg(target_arch = "wasm32")]
        {
            let bytes = (self.len * size_of::<T>()) as u64;
            let padded = bytes.next_multiple_of(4);
            let chunk = WRITE_CHUNK as u64;
            let mut raw = if padded <= chunk {
                self.raw.read(0, padded)?
            } else {
                // One host call returns at most 128 MiB: read in chunks.
                let mut all = Vec::with_capacity(padded as usize);
                let mut offset = 0;
                while offset < padded {
                    all.extend_from_slice(&self.raw.read(offset, chunk.min(padded - offset))?);
                    offset += chunk;
                }
                all
            };
            raw.truncate(bytes as usize);
            Ok(raw)
        }
        #[cfg(not(target_arch = "wasm32"))]
        no_gpu()
    }

    /// This buffer as a binding of a bind group (binding numbers follow
    /// the order given to [`Kernel::bind`]).
    ///
    /// ```no_run
    /// # let b = pictor_sdk::gpu::Buffer::<f32>::zeroed(8, pictor_sdk::gpu::Usage::STORAGE)?;
    /// let binding = b.binding();
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn binding(&self) -> Binding<'_> {
        Binding {
            #[cfg(target_arch = "wasm32")]
            raw: &self.raw,
            _life: PhantomData,
        }
    }
}

/// A buffer to bind, from [`Buffer::binding`].
///
/// ```no_run
/// # use pictor_sdk::gpu::*;
/// # let k = Kernel::new("", "main")?;
/// let input = Buffer::from_slice(&[1.0f32; 64], Usage::STORAGE)?;
/// let group = k.bind(0, &[input.binding()])?;
/// # Ok::<(), GpuError>(())
/// ```
pub struct Binding<'a> {
    #[cfg(target_arch = "wasm32")]
    raw: &'a wit::Buffer,
    _life: PhantomData<&'a ()>,
}

/// A compiled WGSL compute entry point.
///
/// ```no_run
/// let k = pictor_sdk::gpu::Kernel::new("@compute @workgroup_size(64) fn main() {}", "main")?;
/// # Ok::<(), pictor_sdk::gpu::GpuError>(())
/// ```
pub struct Kernel {
    #[cfg(target_arch = "wasm32")]
    pipeline: wit::ComputePipeline,
}

impl Kernel {
    /// Compiles `entry` of the WGSL `source`. Invalid WGSL gives
    /// [`GpuError::InvalidShader`] with line and column.
    ///
    /// ```no_run
    /// let k = pictor_sdk::gpu::Kernel::new("@compute @workgroup_size(1) fn main() {}", "main")?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn new(source: &str, entry: &str) -> Result<Self, GpuError> {
        Self::with_constants(source, entry, &[])
    }

    /// Like [`new`](Self::new), setting WGSL `override` constants.
    ///
    /// ```no_run
    /// let src = "override n: u32 = 1u; @compute @workgroup_size(1) fn main() { _ = n; }";
    /// let k = pictor_sdk::gpu::Kernel::with_constants(src, "main", &[("n", 4.0)])?;
    /// # Ok::<(), pictor_sdk::gpu::GpuError>(())
    /// ```
    pub fn with_constants(
        source: &str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Self, GpuError> {
        #[cfg(target_arch = "wasm32")]
        {
            let module = wit::create_shader_module(source)?;
            let constants: Vec<wit::Constant> = constants
                .iter()
                .map(|(name, value)| wit::Constant {
                    name: name.to_string(),
                    value: *value,
                })
                .collect();
            let pipeline = wit::create_compute_pipeline(&module, entry, &constants)?;
            Ok(Kernel { pipeline })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (source, entry, constants);
            no_gpu()
        }
    }

    /// Binds `buffers` to `@group(group)`, as `@binding(0)`, `@binding(1)`, …
    ///
    /// ```no_run
    /// # use pictor_sdk::gpu::*;
    /// # let k = Kernel::new("", "main")?;
    /// # let (a, b) = (Buffer::<f32>::zeroed(4, Usage::STORAGE)?, Buffer::<f32>::zeroed(4, Usage::STORAGE)?);
    /// let group = k.bind(0, &[a.binding(), b.binding()])?;
    /// # Ok::<(), GpuError>(())
    /// ```
    pub fn bind(&self, group: u32, buffers: &[Binding<'_>]) -> Result<BindGroup, GpuError> {
        #[cfg(target_arch = "wasm32")]
        {
            let entries: Vec<wit::BufferBinding<'_>> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wit::BufferBinding {
                    binding: i as u32,
                    buffer: b.raw,
                    offset: 0,
                    size: None,
                })
                .collect();
            Ok(BindGroup {
                raw: wit::create_bind_group(&self.pipeline, group, &entries)?,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (group, buffers);
            no_gpu()
        }
    }

    /// A dispatch of this kernel over `workgroups` (x, y, z), with bind
    /// groups for `@group(0)`, `@group(1)`, … Submit it with [`submit`].
    ///
    /// ```no_run
    /// # use pictor_sdk::gpu::*;
    /// # let k = Kernel::new("", "main")?;
    /// # let g = k.bind(0, &[])?;
    /// submit(&[k.dispatch(&[&g], [16, 1, 1])])?;
    /// # Ok::<(), GpuError>(())
    /// ```
    pub fn dispatch<'a>(&'a self, groups: &[&'a BindGroup], workgroups: [u32; 3]) -> Command<'a> {
        Command::Dispatch {
            kernel: self,
            groups: groups.to_vec(),
            workgroups,
        }
    }
}

/// Buffers bound to one `@group` of a kernel, from [`Kernel::bind`].
///
/// ```no_run
/// # use pictor_sdk::gpu::*;
/// # let (k, a) = (Kernel::new("", "main")?, Buffer::<u32>::zeroed(4, Usage::STORAGE)?);
/// let group: BindGroup = k.bind(0, &[a.binding()])?;
/// # Ok::<(), GpuError>(())
/// ```
pub struct BindGroup {
    #[cfg(target_arch = "wasm32")]
    raw: wit::BindGroup,
}

/// One command of a batch for [`submit`], from [`Kernel::dispatch`].
///
/// ```no_run
/// # use pictor_sdk::gpu::*;
/// # let (k, a) = (Kernel::new("", "main")?, Buffer::<u32>::zeroed(4, Usage::STORAGE)?);
/// # let g = k.bind(0, &[a.binding()])?;
/// let batch: Vec<Command> = (0..8).map(|_| k.dispatch(&[&g], [1, 1, 1])).collect();
/// submit(&batch)?;
/// # Ok::<(), GpuError>(())
/// ```
pub enum Command<'a> {
    /// Run a kernel.
    Dispatch {
        /// The kernel.
        kernel: &'a Kernel,
        /// Bind groups for `@group(0)`, `@group(1)`, …
        groups: Vec<&'a BindGroup>,
        /// Workgroups in x, y, z.
        workgroups: [u32; 3],
    },
}

/// Submits `commands` as one batch and waits for the GPU; returns how long
/// the GPU took. Keep each batch short (well under a second).
///
/// ```no_run
/// # use pictor_sdk::gpu::*;
/// # let k = Kernel::new("", "main")?;
/// # let g = k.bind(0, &[])?;
/// let took = submit(&[k.dispatch(&[&g], [64, 1, 1]), k.dispatch(&[&g], [64, 1, 1])])?;
/// # Ok::<(), GpuError>(())
/// ```
pub fn submit(commands: &[Command<'_>]) -> Result<Duration, GpuError> {
    #[cfg(target_arch = "wasm32")]
    {
        let wit_commands: Vec<wit::Command<'_>> = commands
            .iter()
            .map(|c| match c {
                Command::Dispatch {
                    kernel,
                    groups,
                    workgroups: [x, y, z],
                } => wit::Command::Dispatch(wit::Dispatch {
                    pipeline: &kernel.pipeline,
                    bind_groups: groups.iter().map(|g| &g.raw).collect(),
                    x: *x,
                    y: *y,
                    z: *z,
                }),
            })
            .collect();
        let done = wit::submit(&wit_commands)?;
        Ok(Duration::from_nanos(done.elapsed_ns))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = commands;
        no_gpu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_every_call_is_unavailable() {
        assert!(matches!(adapter(), Err(GpuError::Unavailable(_))));
        assert!(matches!(
            Buffer::<f32>::zeroed(4, Usage::STORAGE),
            Err(GpuError::Unavailable(_))
        ));
        let err: crate::JobError = GpuError::QuotaExceeded("x".into()).into();
        assert_eq!(err.to_string(), "failed: GPU quota exceeded: x");
    }
}
