//! NVIDIA GPU telemetry through NVML (nvml-wrapper): name, memory,
//! temperature, utilization, power. Where no NVIDIA driver is installed,
//! NVML does not load and the status says why; that is never an error.

use std::sync::Arc;
use std::time::Duration;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use serde::Serialize;
use tokio::sync::watch;

/// One NVIDIA GPU at one moment. Fields NVML could not read are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSample {
    /// NVML index.
    pub index: u32,
    /// Product name.
    pub name: String,
    /// Stable GPU identifier.
    pub uuid: Option<String>,
    /// Total memory in bytes.
    pub memory_total: Option<u64>,
    /// Used memory in bytes.
    pub memory_used: Option<u64>,
    /// Core temperature, °C.
    pub temperature_c: Option<u32>,
    /// GPU utilization over the last sample period, percent.
    pub utilization_percent: Option<u32>,
    /// Power draw in watts.
    pub power_w: Option<f64>,
}

/// What NVML says, or why it cannot say anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum NvmlStatus {
    /// NVML loaded.
    Available {
        /// The driver version.
        driver: String,
        /// Every NVIDIA GPU.
        gpus: Vec<GpuSample>,
    },
    /// NVML could not load (no NVIDIA driver) or failed.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl NvmlStatus {
    /// Whether at least one NVIDIA GPU is present (the mining requirement).
    pub fn has_nvidia_gpu(&self) -> bool {
        matches!(self, NvmlStatus::Available { gpus, .. } if !gpus.is_empty())
    }
}

fn read(nvml: &Nvml) -> NvmlStatus {
    let driver = nvml
        .sys_driver_version()
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            return NvmlStatus::Unavailable {
                reason: format!("cannot count GPUs: {e}"),
            };
        }
    };
    let gpus = (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let memory = device.memory_info().ok();
            Some(GpuSample {
                index,
                name: device
                    .name()
                    .unwrap_or_else(|_| "unknown NVIDIA GPU".into()),
                uuid: device.uuid().ok(),
                memory_total: memory.as_ref().map(|m| m.total),
                memory_used: memory.as_ref().map(|m| m.used),
                temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
                utilization_percent: device.utilization_rates().ok().map(|u| u.gpu),
                power_w: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            })
        })
        .collect();
    NvmlStatus::Available { driver, gpus }
}

/// One reading, loading NVML for it.
pub fn sample() -> NvmlStatus {
    match Nvml::init() {
        Ok(nvml) => read(&nvml),
        Err(e) => NvmlStatus::Unavailable {
            reason: e.to_string(),
        },
    }
}

/// A thread that reads NVML every `period` and publishes the result; the
/// rest of the host reads the latest with [`NvmlSampler::latest`] or waits
/// for changes on [`NvmlSampler::subscribe`].
pub struct NvmlSampler {
    rx: watch::Receiver<NvmlStatus>,
    _stop: Arc<()>,
}

impl NvmlSampler {
    /// Starts sampling (the first reading is taken before this returns).
    pub fn start(period: Duration) -> Self {
        let nvml = Nvml::init();
        let first = match &nvml {
            Ok(nvml) => read(nvml),
            Err(e) => NvmlStatus::Unavailable {
                reason: e.to_string(),
            },
        };
        let (tx, rx) = watch::channel(first);
        let stop = Arc::new(());
        if let Ok(nvml) = nvml {
            let alive = Arc::downgrade(&stop);
            let spawned = std::thread::Builder::new()
                .name("pictor-nvml".into())
                .spawn(move || {
                    while alive.upgrade().is_some() {
                        std::thread::sleep(period);
                        if tx.send(read(&nvml)).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "NVML sampling thread not started");
            }
        }
        NvmlSampler { rx, _stop: stop }
    }

    /// The latest reading.
    pub fn latest(&self) -> NvmlStatus {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every new reading.
    pub fn subscribe(&self) -> watch::Receiver<NvmlStatus> {
        self.rx.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_reports_a_status_either_way() {
        let sampler = NvmlSampler::start(Duration::from_millis(50));
        match sampler.latest() {
            NvmlStatus::Available { gpus, .. } => assert!(gpus.iter().all(|g| !g.name.is_empty())),
            NvmlStatus::Unavailable { reason } => assert!(!reason.is_empty()),
        }
        assert_eq!(sampler.latest().has_nvidia_gpu(), sample().has_nvidia_gpu());
    }
}
