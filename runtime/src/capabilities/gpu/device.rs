//! The worker's GPU devices: choosing an adapter, opening one device per
//! physical GPU, noticing loss, and reopening it for the next job.
//!
//! A GPU cannot be interrupted mid-kernel, and a kernel may never end (an
//! endless loop in a plugin's shader). The job that submitted it ends with
//! `gpu-timeout`; the device is marked overrun. The next job waits at most
//! [`DRAIN_TIMEOUT`] for the GPU to finish; if it has not, the device is
//! *abandoned* — never dropped, since dropping a device waits for its work
//! and would hang whichever thread did it — and a fresh device is opened in
//! its place, so the slot keeps working (on lavapipe the stuck kernel keeps
//! its CPU threads busy; on a GPU it time-slices with the new context).
//! After [`MAX_ABANDONED`] abandoned devices the slot is unhealthy: its GPU
//! jobs fail as `gpu-lost` (retryable: another worker can take them), the
//! status page and heartbeats say so, and a restart clears it.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Which adapter jobs run on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// The best adapter: a discrete GPU, else integrated, virtual, then a
    /// software one (lavapipe).
    #[default]
    Auto,
    /// The adapter at this index in `pictor-host gpu list`.
    Index(usize),
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
    /// No GPU: GPU calls return `unavailable`.
    None,
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "auto" => AdapterChoice::Auto,
            "none" => AdapterChoice::None,
            text => match text.parse::<usize>() {
                Ok(i) => AdapterChoice::Index(i),
                Err(_) => AdapterChoice::Name(text.to_string()),
            },
        })
    }
}

/// The wgpu instance every adapter comes from (backends from `WGPU_BACKEND`,
/// default: the platform's primary ones).
pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter of `instance`, in the order `gpu list` shows them.
pub fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Why a job gets no GPU device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuUnavailable {
    /// The owner set `gpu: none`.
    #[error("GPU disabled for this worker (gpu: none)")]
    Disabled,
    /// No adapter at all.
    #[error(
        "no GPU adapter found (on a machine without a GPU, install mesa-vulkan-drivers for lavapipe)"
    )]
    NoAdapter,
    /// `gpu` names an index past the adapters found.
    #[error("GPU adapter index {index} does not exist ({found} found; see `pictor-host gpu list`)")]
    NoIndex {
        /// The index asked for.
        index: usize,
        /// Adapters found.
        found: usize,
    },
    /// `gpu` names an adapter no adapter's name contains.
    #[error("no GPU adapter named like `{name}` ({found} found; see `pictor-host gpu list`)")]
    NoName {
        /// The name asked for.
        name: String,
        /// Adapters found.
        found: usize,
    },
    /// The driver refused a device.
    #[error("cannot open a device on {adapter}: {reason}")]
    Open {
        /// The adapter's name.
        adapter: String,
        /// The driver's words.
        reason: String,
    },
    /// The slot's GPU was given up on (its reason).
    #[error("this worker's GPU is unhealthy: {0}")]
    Unhealthy(String),
}

/// Picks the adapter `choice` names among `adapters`.
pub fn choose(
    adapters: Vec<wgpu::Adapter>,
    choice: &AdapterChoice,
) -> Result<wgpu::Adapter, GpuUnavailable> {
    let found = adapters.len();
    match choice {
        AdapterChoice::None => Err(GpuUnavailable::Disabled),
        AdapterChoice::Auto => adapters
            .into_iter()
            .min_by_key(|a| rank(a.get_info().device_type))
            .ok_or(GpuUnavailable::NoAdapter),
        AdapterChoice::Index(index) => {
            adapters
                .into_iter()
                .nth(*index)
                .ok_or(GpuUnavailable::NoIndex {
                    index: *index,
                    found,
                })
        }
        AdapterChoice::Name(text) => {
            let wanted = text.to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                .ok_or_else(|| GpuUnavailable::NoName {
                    name: text.clone(),
                    found,
                })
        }
    }
}

/// An open device on one adapter, shared by the jobs that run on it.
pub struct GpuDevice {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is.
    pub info: wgpu::AdapterInfo,
    /// The device's limits (the adapter's own: jobs get quotas on top).
    pub limits: wgpu::Limits,
    lost: Arc<Mutex<Option<String>>>,
    live_buffers: AtomicU64,
    live_bytes: AtomicU64,
    overrun: AtomicBool,
    /// Bytes written with `buffer.write` since the last submission.
    pub(crate) staged: AtomicU64,
    /// Kept for as long as the device, and dropped after it (fields drop in
    /// order): some drivers (NVIDIA's) crash at exit if the instance goes
    /// first.
    _instance: wgpu::Instance,
}

/// How long the provider waits for work left behind by a job that overran
/// its GPU time before giving up on the device and opening a new one.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Devices a slot may abandon (kernels that never ended) before it is
/// marked unhealthy.
pub const MAX_ABANDONED: u32 = 2;

/// Bytes of `buffer.write` data a device may hold in wgpu's staging memory
/// before the host flushes them to the GPU (writes are staged until the
/// next submission; without a flush, writes without a submit grow host
/// memory without bound).
pub const STAGING_FLUSH_BYTES: u64 = 64 << 20;

impl GpuDevice {
    /// Opens a device on `adapter` (from `instance`) with the adapter's full limits.
    pub fn open(
        instance: &wgpu::Instance,
        adapter: &wgpu::Adapter,
    ) -> Result<Self, GpuUnavailable> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("pictor"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuUnavailable::Open {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let lost = Arc::new(Mutex::new(None));
        device.set_device_lost_callback({
            let lost = Arc::clone(&lost);
            let name = info.name.clone();
            move |reason, message| {
                tracing::error!(adapter = %name, ?reason, %message, "GPU device lost");
                *lost.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("{reason:?}: {message}"));
            }
        });
        // Every call the host makes is wrapped in an error scope; anything
        // that escapes one is a host bug, logged rather than a panic.
        device.on_uncaptured_error(Arc::new(|error: wgpu::Error| {
            tracing::error!(%error, "uncaptured GPU error");
        }));
        tracing::info!(adapter = %info.name, backend = ?info.backend, kind = ?info.device_type, "GPU device opened");
        Ok(GpuDevice {
            device,
            queue,
            info,
            limits,
            lost,
            live_buffers: AtomicU64::new(0),
            live_bytes: AtomicU64::new(0),
            overrun: AtomicBool::new(false),
            staged: AtomicU64::new(0),
            _instance: instance.clone(),
        })
    }

    /// Why the device was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records that a job left work running past its quota: the GPU cannot
    /// be interrupted, so the next job must not start until it has drained.
    pub(crate) fn mark_overrun(&self) {
        self.overrun.store(true, Ordering::SeqCst);
    }

    /// Whether a job left work on it that ran past its quota and has not
    /// been seen to finish.
    pub fn overran(&self) -> bool {
        self.overrun.load(Ordering::SeqCst)
    }

    /// Waits (up to `timeout`) for all submitted work to finish. False if it
    /// did not finish in time.
    pub fn drain(&self, timeout: Duration) -> bool {
        let done = self
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(timeout),
            })
            .is_ok();
        if done {
            self.overrun.store(false, Ordering::SeqCst);
        }
        done
    }

    /// Buffers that jobs currently hold on this device.
    pub fn live_buffers(&self) -> u64 {
        self.live_buffers.load(Ordering::SeqCst)
    }

    /// Bytes of buffers that jobs currently hold on this device.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn track_alloc(&self, bytes: u64) {
        self.live_buffers.fetch_add(1, Ordering::SeqCst);
        self.live_bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    pub(crate) fn track_free(&self, bytes: u64) {
        self.live_buffers.fetch_sub(1, Ordering::SeqCst);
        self.live_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }
}

/// How a slot's GPU is doing, for the status page and heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuHealth {
    /// Every kernel so far finished (or no device was opened yet).
    Healthy,
    /// Kernels that never finished made it abandon this many devices; it
    /// runs on a fresh one.
    Recovered {
        /// Devices abandoned so far.
        abandoned: u32,
    },
    /// Too many devices abandoned: GPU jobs are refused until a restart.
    Unhealthy {
        /// Why, for the owner.
        reason: String,
    },
}

impl GpuHealth {
    /// `healthy`, `recovered` or `unhealthy`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GpuHealth::Healthy => "healthy",
            GpuHealth::Recovered { .. } => "recovered",
            GpuHealth::Unhealthy { .. } => "unhealthy",
        }
    }

    /// What happened, for the owner and the coordinator; `None` when healthy.
    pub fn detail(&self) -> Option<String> {
        match self {
            GpuHealth::Healthy => None,
            GpuHealth::Recovered { abandoned } => Some(format!(
                "{abandoned} GPU kernel(s) never finished; running on a fresh device"
            )),
            GpuHealth::Unhealthy { reason } => Some(reason.clone()),
        }
    }
}

/// Hands jobs the device of the configured adapter, opening it on first
/// use, reopening it after it was lost, and replacing it when a kernel
/// never ends.
pub struct GpuProvider {
    choice: AdapterChoice,
    current: Mutex<Option<Arc<GpuDevice>>>,
    abandoned: AtomicU32,
}

impl GpuProvider {
    /// A provider for `choice`; nothing is opened until a job needs it.
    pub fn new(choice: AdapterChoice) -> Self {
        GpuProvider {
            choice,
            current: Mutex::new(None),
            abandoned: AtomicU32::new(0),
        }
    }

    /// How this slot's GPU is doing.
    pub fn health(&self) -> GpuHealth {
        match self.abandoned.load(Ordering::SeqCst) {
            0 => GpuHealth::Healthy,
            n if n < MAX_ABANDONED => GpuHealth::Recovered { abandoned: n },
            n => GpuHealth::Unhealthy {
                reason: format!(
                    "{n} GPU kernels never finished; GPU jobs are refused until the worker restarts"
                ),
            },
        }
    }

    /// Waits (up to `timeout`) for the work submitted on the open device,
    /// if one is open. True when the GPU is idle. A device that a job left
    /// overrunning is not waited for (the next job deals with it).
    pub fn drain_current(&self, timeout: Duration) -> bool {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        current.is_none_or(|device| !device.overran() && device.drain(timeout))
    }

    /// The device for the next job. Blocking (opening a device takes tens
    /// to hundreds of milliseconds; a device left overrunning is waited for
    /// up to [`DRAIN_TIMEOUT`]): call it off the async executor.
    pub fn device(&self) -> Result<Arc<GpuDevice>, GpuUnavailable> {
        let unhealthy = |health: GpuHealth| match health {
            GpuHealth::Unhealthy { reason } => Err(GpuUnavailable::Unhealthy(reason)),
            _ => Ok(()),
        };
        unhealthy(self.health())?;
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        self.settle_locked(&mut current);
        unhealthy(self.health())?;
        if let Some(device) = current.as_ref() {
            match device.lost_reason() {
                None => return Ok(Arc::clone(device)),
                Some(reason) => tracing::warn!(%reason, "reopening the lost GPU device"),
            }
        }
        let instance = instance();
        let adapter = choose(adapters(&instance), &self.choice)?;
        let device = Arc::new(GpuDevice::open(&instance, &adapter)?);
        *current = Some(Arc::clone(&device));
        Ok(device)
    }
}

impl GpuProvider {
    /// Whether the open device has work a job left running past its GPU
    /// time.
    pub fn overran(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|d| d.overran())
    }

    /// Waits up to [`DRAIN_TIMEOUT`] for work a job left running past its
    /// GPU time, and abandons the device if it does not finish (the slot
    /// turns `recovered`, then `unhealthy`). Blocking: call it off the
    /// executor. The worker calls it when such a job ends, so the slot's
    /// health is current at once; [`device`](Self::device) does it too.
    pub fn settle(&self) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        self.settle_locked(&mut current);
    }

    fn settle_locked(&self, current: &mut Option<Arc<GpuDevice>>) {
        let Some(device) = current.as_ref() else {
            return;
        };
        if device.lost_reason().is_some() || !device.overran() {
            return;
        }
        tracing::info!("waiting for GPU work left by an overrunning job");
        if device.drain(DRAIN_TIMEOUT) {
            return;
        }
        let abandoned = self.abandoned.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::error!(
            secs = DRAIN_TIMEOUT.as_secs(),
            abandoned,
            "a GPU kernel never finished; abandoning the device (a new one is opened for the next GPU job)"
        );
        if let Some(stuck) = current.take() {
            abandon(stuck);
        }
        if let GpuHealth::Unhealthy { reason } = self.health() {
            tracing::error!(%reason, "GPU slot marked unhealthy");
        }
    }
}

/// Never drops `device`: its queue runs a kernel that does not end, and
/// dropping a device waits for its work (forever, on the dropping thread).
fn abandon(device: Arc<GpuDevice>) {
    std::mem::forget(device);
}

impl Drop for GpuProvider {
    fn drop(&mut self) {
        let current = self
            .current
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(device) = current
            && device.overran()
            && !device.drain(Duration::from_millis(500))
        {
            tracing::warn!("leaving a GPU device with a kernel that never finished");
            abandon(device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_choice_parses() {
        assert_eq!(
            "auto".parse::<AdapterChoice>().ok(),
            Some(AdapterChoice::Auto)
        );
        assert_eq!(
            "none".parse::<AdapterChoice>().ok(),
            Some(AdapterChoice::None)
        );
        assert_eq!(
            "1".parse::<AdapterChoice>().ok(),
            Some(AdapterChoice::Index(1))
        );
        assert_eq!(
            "H100".parse::<AdapterChoice>().ok(),
            Some(AdapterChoice::Name("H100".into()))
        );
    }

    #[test]
    fn missing_adapters_are_clear_errors() {
        let err = choose(Vec::new(), &AdapterChoice::Auto)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("mesa-vulkan-drivers"), "{err}");
        let err = choose(Vec::new(), &AdapterChoice::Index(3))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("index 3 does not exist"), "{err}");
    }
}
