//! `worker.json`: the per-worker config file a worker owner imports.
//!
//! Read in two stages, like the job spec: [`RawConfig`] is the file as
//! serde sees it (unknown keys rejected, with a "did you mean" hint), then
//! [`WorkerConfig::validate`] checks every value and resolves paths against
//! the file's folder. Every error names the file, the key and the fix.
//! Nothing is probed here (no GPU, no network): that happens when the
//! worker starts.
//!
//! [`raw`] holds the file's shape and [`parse`]; [`fields`] the checks of
//! single values shared by the validation.

mod fields;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pictor_protocol::digest::Sha256Digest;
use pictor_protocol::ids::{JobKind, Wallet, WorkerId};
use pictor_runtime::capabilities::gpu::AdapterChoice;
use pictor_runtime::jobs::limits::LimitOverrides;

pub use fields::{ListenError, status_listen};
use fields::{check_kind, check_wallet, mining, source};
pub use raw::{
    GpuSetting, RawConfig, RawCoordinator, RawLimits, RawMining, RawStatus, RawWorker, parse,
};

/// Longest error message about a bad file, in bytes: a hostile value
/// echoed back is clipped there, its control characters escaped.
const ERROR_BYTES: usize = 2048;

/// The config format version this host reads.
pub const CONFIG_VERSION: u32 = 1;

/// Coins this host can mine, with their hash algorithm.
pub use pictor_protocol::mining::SUPPORTED_COINS;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// What is wrong, naming the key, and how to fix it.
    pub problem: ConfigProblem,
}

/// What is wrong with a `worker.json`. It shows as one message naming the
/// key and the fix; a hostile value echoed back is clipped to 2 KiB with
/// its control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// The file cannot be read.
    Unreadable(String),
    /// Not JSON, or a key of the wrong type, missing or unknown (with a
    /// "did you mean" for a misspelt one, and line and column).
    Syntax(String),
    /// A value outside its rule or range.
    Value(String),
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ConfigProblem::Unreadable(message)
        | ConfigProblem::Syntax(message)
        | ConfigProblem::Value(message)) = self;
        f.write_str(&pictor_runtime::text::lines(message, ERROR_BYTES))
    }
}

impl std::error::Error for ConfigProblem {}

/// Where jobs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSource {
    /// A local spool folder (absolute).
    Spool(PathBuf),
    /// An HTTP(S) coordinator; leased jobs pass through a local spool.
    Coordinator {
        /// Base URL.
        url: url::Url,
        /// Credential.
        token: String,
        /// The local working folder (absolute): spool, lease ledger and
        /// download cache.
        spool: PathBuf,
    },
}

impl JobSource {
    /// The local spool folder jobs run from (for a coordinator, where
    /// leased jobs are queued).
    pub fn spool(&self) -> &Path {
        match self {
            JobSource::Spool(dir) | JobSource::Coordinator { spool: dir, .. } => dir,
        }
    }
}

/// Mining settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MiningConfig {
    /// Whether mining is on.
    pub enabled: bool,
    /// Pool host.
    pub pool_host: String,
    /// Pool port.
    pub pool_port: u16,
    /// Coin.
    pub coin: String,
    /// Hash algorithm of the coin.
    pub algorithm: &'static str,
    /// Payout address.
    pub wallet: String,
    /// Mining plugin (absolute), if configured.
    pub plugin: Option<PathBuf>,
    /// The mining plugin's sha256, to download from the coordinator when
    /// no `plugin` path is given.
    pub plugin_sha256: Option<Sha256Digest>,
    /// Idle time before mining starts.
    pub idle_delay: std::time::Duration,
    /// Mine only on NVIDIA GPUs.
    pub require_nvidia: bool,
    /// The pool may resolve to loopback, private or link-local addresses.
    pub allow_private_pool: bool,
}

/// A validated `worker.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The file it came from.
    pub file: PathBuf,
    /// Worker id.
    pub worker_id: WorkerId,
    /// Worker name (the id if none was given).
    pub name: String,
    /// Rewards address.
    pub wallet: Wallet,
    /// Where jobs come from.
    pub source: JobSource,
    /// Mining, if configured.
    pub mining: Option<MiningConfig>,
    /// Accepted job kinds (`None`: all).
    pub job_kinds: Option<Vec<JobKind>>,
    /// Jobs at once per GPU.
    pub jobs_per_gpu: u32,
    /// Download cache size in bytes.
    pub cache_bytes: u64,
    /// Disk the spool may use, in bytes.
    pub spool_bytes: u64,
    /// Default job limits.
    pub job_limits: LimitOverrides,
    /// Price per job, by kind.
    pub prices: BTreeMap<String, f64>,
    /// The GPUs jobs run on (at least one; `AdapterChoice::None` runs
    /// without a GPU).
    pub gpus: Vec<AdapterChoice>,
    /// The worker's signing key: `worker.key` beside the config file,
    /// created on first run.
    pub key_file: PathBuf,
    /// Where the status page and metrics listen (`None`: off).
    pub status_listen: Option<SocketAddr>,
}

impl WorkerConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |problem: ConfigProblem| ConfigError {
            file: path.to_path_buf(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(ConfigProblem::Unreadable(format!(
                "cannot read the config file: {e}"
            )))
        })?;
        let raw = parse(&text).map_err(err)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        Self::validate(raw, &dir, path).map_err(err)
    }

    /// Checks every value of `raw`; relative paths are resolved against `dir`.
    pub fn validate(raw: RawConfig, dir: &Path, file: &Path) -> Result<Self, ConfigProblem> {
        Self::validate_values(raw, dir, file).map_err(ConfigProblem::Value)
    }

    fn validate_values(raw: RawConfig, dir: &Path, file: &Path) -> Result<Self, String> {
        if raw.version != CONFIG_VERSION {
            return Err(format!(
                "`version` is {}, this host reads version {CONFIG_VERSION}; get a current config from the portal",
                raw.version
            ));
        }
        let worker_id: WorkerId = raw.worker.id.parse().map_err(|_| {
            format!(
                "`worker.id` {:?} must be {}; copy it from the portal",
                raw.worker.id,
                WorkerId::RULE
            )
        })?;
        let name = raw
            .worker
            .name
            .clone()
            .unwrap_or_else(|| raw.worker.id.clone());
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err("`worker.name` must be at most 100 printable characters".into());
        }
        let wallet = check_wallet("wallet", &raw.wallet)?;
        let source = source(&raw.coordinator, dir)?;
        let mining = match &raw.mining {
            Some(m) => Some(mining(
                m,
                &raw.wallet,
                dir,
                matches!(source, JobSource::Coordinator { .. }),
            )?),
            None => None,
        };
        let status_listen = match &raw.status {
            Some(status) => {
                Some(status_listen("status.listen", &status.listen).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let job_kinds = match &raw.limits.job_kinds {
            Some(kinds) => Some(
                kinds
                    .iter()
                    .map(|kind| check_kind("limits.job_kinds", kind))
                    .collect::<Result<Vec<JobKind>, String>>()?,
            ),
            None => None,
        };
        let jobs_per_gpu = raw.limits.jobs_per_gpu.unwrap_or(1);
        if !(1..=64).contains(&jobs_per_gpu) {
            return Err(format!(
                "`limits.jobs_per_gpu` must be between 1 and 64, got {jobs_per_gpu}"
            ));
        }
        let cache_mib = raw.limits.cache_mib.unwrap_or(20 * 1024);
        if !(64..=16 * 1024 * 1024).contains(&cache_mib) {
            return Err(format!(
                "`limits.cache_mib` must be between 64 and 16777216, got {cache_mib}"
            ));
        }
        let spool_mib = raw.limits.spool_mib.unwrap_or(20 * 1024);
        if !(64..=16 * 1024 * 1024).contains(&spool_mib) {
            return Err(format!(
                "`limits.spool_mib` must be between 64 and 16777216, got {spool_mib}"
            ));
        }
        raw.limits
            .job
            .validate()
            .map_err(|e| format!("`limits.job`: {}", e.to_string().replacen("limits.", "", 1)))?;
        for (kind, price) in &raw.prices {
            check_kind("prices", kind)?;
            if !(price.is_finite() && *price >= 0.0) {
                return Err(format!("`prices.{kind}` must be a number ≥ 0, got {price}"));
            }
        }
        let gpus: Vec<AdapterChoice> = match &raw.gpu {
            None => vec![AdapterChoice::Auto],
            Some(GpuSetting::One(one)) => vec![one.parse().unwrap_or_default()],
            Some(GpuSetting::Many(list)) => {
                if list.is_empty() || list.len() > 64 {
                    return Err(
                        "`gpu` lists 1-64 adapters (indexes or names from `pictor-host gpu list`)"
                            .into(),
                    );
                }
                let unique: std::collections::BTreeSet<&String> = list.iter().collect();
                if unique.len() != list.len() {
                    return Err("`gpu` lists the same adapter twice".into());
                }
                let choices: Vec<AdapterChoice> =
                    list.iter().map(|g| g.parse().unwrap_or_default()).collect();
                if choices
                    .iter()
                    .any(|c| matches!(c, AdapterChoice::Auto | AdapterChoice::None))
                {
                    return Err("a `gpu` list names adapters by index or name; use \"auto\" or \"none\" alone".into());
                }
                choices
            }
        };
        Ok(WorkerConfig {
            file: file.to_path_buf(),
            worker_id,
            name,
            wallet,
            source,
            mining,
            job_kinds,
            jobs_per_gpu,
            cache_bytes: cache_mib << 20,
            spool_bytes: spool_mib << 20,
            job_limits: raw.limits.job,
            prices: raw.prices,
            gpus,
            key_file: dir.join("worker.key"),
            status_listen,
        })
    }
}
