//! Whether this worker mines: the config, the GPUs and the miner component
//! decide, and the answer names the reason when it does not.

use std::path::Path;
use std::sync::Arc;

use super::board::MiningBoard;
use super::miner::{MinerParams, MiningPlan};
use crate::config::WorkerConfig;
use crate::telemetry::nvml::NvmlStatus;
use pictor_runtime::Runtime;

/// Whether this worker mines, and if not, why (for the owner's status).
pub enum Eligibility {
    /// Mining is set up.
    Mine(Box<MiningPlan>),
    /// Mining is off, for this reason.
    Off(String),
}

/// Where the miner component comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MinerSource {
    /// `mining.plugin`: a file.
    File(std::path::PathBuf),
    /// `mining.plugin_sha256`: the coordinator's blob store, by digest.
    Coordinator(crate::digest::Sha256Digest),
}

/// Why the config or the GPUs rule mining out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiningOff {
    /// No `mining` section.
    #[error("no `mining` in the config")]
    NotConfigured,
    /// `mining.enabled` is false.
    #[error("`mining.enabled` is false")]
    Disabled,
    /// NVIDIA GPUs are required and NVML cannot say (its reason).
    #[error("no NVIDIA GPU (NVML not available: {0})")]
    NoNvml(String),
    /// NVIDIA GPUs are required and NVML found none.
    #[error("NVML found no NVIDIA GPU")]
    NoNvidiaGpu,
    /// Neither a plugin file nor a digest names the miner.
    #[error("no `mining.plugin` or `mining.plugin_sha256`")]
    NoPlugin,
}

/// Whether the config and the GPUs allow mining (configured, enabled, on
/// an NVIDIA GPU unless `require_nvidia` is false), and where the miner
/// comes from; `Err` says why mining is off.
pub fn requirements(config: &WorkerConfig, nvml: &NvmlStatus) -> Result<MinerSource, MiningOff> {
    let Some(m) = &config.mining else {
        return Err(MiningOff::NotConfigured);
    };
    if !m.enabled {
        return Err(MiningOff::Disabled);
    }
    if m.require_nvidia && !nvml.has_nvidia_gpu() {
        return Err(match nvml {
            NvmlStatus::Unavailable { reason } => MiningOff::NoNvml(reason.clone()),
            NvmlStatus::Available { .. } => MiningOff::NoNvidiaGpu,
        });
    }
    match (&m.plugin, m.plugin_sha256) {
        (Some(path), _) => Ok(MinerSource::File(path.clone())),
        (None, Some(digest)) => Ok(MinerSource::Coordinator(digest)),
        (None, None) => Err(MiningOff::NoPlugin),
    }
}

/// Decides whether the worker mines: [`requirements`] met and the plugin
/// file of `mining.plugin` loads as a miner. (`pictor-host run` also
/// downloads a `mining.plugin_sha256` first and then calls [`plan`].)
pub fn eligibility(config: &WorkerConfig, nvml: &NvmlStatus, runtime: &Runtime) -> Eligibility {
    match requirements(config, nvml) {
        Err(reason) => Eligibility::Off(reason.to_string()),
        Ok(MinerSource::File(path)) => plan(config, &path, runtime),
        Ok(MinerSource::Coordinator(digest)) => Eligibility::Off(format!(
            "the mining plugin {digest} must be downloaded from the coordinator first"
        )),
    }
}

/// The mining plan with the miner component at `path` (which must load as
/// a `miner`); `Off` if it cannot be read or linked, or mining is not configured.
pub fn plan(config: &WorkerConfig, path: &Path, runtime: &Runtime) -> Eligibility {
    let Some(m) = &config.mining else {
        return Eligibility::Off("no `mining` in the config".into());
    };
    let plugin = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| runtime.load_miner(&b).map_err(|e| e.to_string()))
    {
        Ok(plugin) => plugin,
        Err(e) => return Eligibility::Off(format!("mining plugin {}: {e}", path.display())),
    };
    let pool = format!("{}:{}", m.pool_host, m.pool_port);
    Eligibility::Mine(Box::new(MiningPlan {
        plugin: Arc::new(plugin),
        pool_host: m.pool_host.clone(),
        pool_port: m.pool_port,
        allow_private_pool: m.allow_private_pool,
        params: MinerParams {
            pool: pool.clone(),
            user: format!("{}.{}", m.wallet, config.worker_id),
            coin: m.coin.clone(),
            algorithm: m.algorithm.to_string(),
        },
        board: MiningBoard::new(pool, m.coin.clone()),
        idle_delay: m.idle_delay,
    }))
}
