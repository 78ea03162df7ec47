//! `worker.json` as written: the serde shape of the file (unknown keys
//! refused) and [`parse`], whose errors name the key with a "did you mean".

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigProblem;
use pictor_runtime::jobs::limits::LimitOverrides;

/// `worker.json` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Who this worker is.
    pub worker: RawWorker,
    /// Where rewards go.
    pub wallet: String,
    /// Where jobs come from.
    #[serde(default)]
    pub coordinator: RawCoordinator,
    /// Mining while idle.
    #[serde(default)]
    pub mining: Option<RawMining>,
    /// What jobs this worker accepts and their default limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// The worker's price per job, by job kind.
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
    /// Which GPU(s) jobs run on: `"auto"`, `"none"`, an index or a name, or
    /// a list of indexes/names (one scheduler slot group per GPU).
    #[serde(default)]
    pub gpu: Option<GpuSetting>,
    /// The owner's local status page and metrics (absent: off).
    #[serde(default)]
    pub status: Option<RawStatus>,
}

/// The `status` object: where the status page and `/metrics` listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    /// A loopback address and port, e.g. `127.0.0.1:9187` (port 0: any free port).
    pub listen: String,
}

/// The `gpu` key: one adapter, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GpuSetting {
    /// `"auto"`, `"none"`, `"1"`, `"H100"`.
    One(String),
    /// `["0", "1"]`.
    Many(Vec<String>),
}

/// The `worker` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    /// The id the network knows this worker by.
    pub id: String,
    /// A name for the owner.
    #[serde(default)]
    pub name: Option<String>,
}

/// The `coordinator` object: a spool folder or an HTTP(S) coordinator.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCoordinator {
    /// Local spool folder (the default: `spool` beside the config file); with
    /// `url`, the working folder for leased jobs and downloads (default
    /// `worker-data` beside the config file).
    #[serde(default)]
    pub spool: Option<String>,
    /// Coordinator base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// This worker's credential for the coordinator.
    #[serde(default)]
    pub token: Option<String>,
}

/// The `mining` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMining {
    /// Whether to mine when idle.
    pub enabled: bool,
    /// `stratum+tcp://host:port`.
    pub pool: String,
    /// Which coin (see [`SUPPORTED_COINS`]).
    pub coin: String,
    /// Payout address on the pool (default: the worker's wallet).
    #[serde(default)]
    pub wallet: Option<String>,
    /// The mining plugin component.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The mining plugin's sha256, downloaded from the coordinator's blob
    /// store when `plugin` is not given.
    #[serde(default)]
    pub plugin_sha256: Option<String>,
    /// Seconds idle before mining starts (default 30).
    #[serde(default)]
    pub idle_delay_s: Option<f64>,
    /// Mine only where NVML finds an NVIDIA GPU (default true).
    #[serde(default)]
    pub require_nvidia: Option<bool>,
    /// Let the miner reach a pool on a loopback, private or link-local
    /// address (default false: a pool in the owner's own network, or tests).
    #[serde(default)]
    pub allow_private_pool: Option<bool>,
}

/// The `limits` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Job kinds accepted (default: all).
    #[serde(default)]
    pub job_kinds: Option<Vec<String>>,
    /// Jobs running at once on one GPU (default 1).
    #[serde(default)]
    pub jobs_per_gpu: Option<u32>,
    /// Size of the download cache in MiB (default 20480).
    #[serde(default)]
    pub cache_mib: Option<u64>,
    /// Disk the spool may use in MiB (default 20480): past it the worker
    /// claims no new job until results are reported or removed.
    #[serde(default)]
    pub spool_mib: Option<u64>,
    /// Default limits of every job, and ceilings: a job may ask for less,
    /// and one asking for more is given back as `unsupported`.
    #[serde(default)]
    pub job: LimitOverrides,
}

/// Parses JSON into [`RawConfig`]; errors name the key (with a "did you
/// mean" for misspelt ones) and give line and column.
pub fn parse(text: &str) -> Result<RawConfig, ConfigProblem> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = with_suggestion(&inner.to_string());
        ConfigProblem::Syntax(if path == "." {
            message
        } else {
            format!("`{path}`: {message}")
        })
    })
}

/// Adds "did you mean `x`?" to serde's unknown-field message.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, rest)) = rest.split_once('`') else {
        return message.to_string();
    };
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let best = expected
        .iter()
        .map(|candidate| (strsim::jaro_winkler(unknown, candidate), *candidate))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, candidate)) if score >= 0.8 => {
            let (msg, position) = match message.find(" at line ") {
                Some(at) => (&message[..at], &message[at..]),
                None => (message, ""),
            };
            format!("{msg}; did you mean `{candidate}`?{position}")
        }
        _ => message.to_string(),
    }
}
