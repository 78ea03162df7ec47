//! `worker.json`: the per-worker config file a worker owner imports.
//!
//! Read in two stages, like the job spec: [`RawConfig`] is the file as
//! serde sees it (unknown keys rejected, with a "did you mean" hint), then
//! [`WorkerConfig::validate`] checks every value and resolves paths against
//! the file's folder. Every error names the file, the key and the fix.
//! Nothing is probed here (no GPU, no network): that happens when the
//! worker starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::net::SocketAddr;

use pictor_protocol::digest::Sha256Digest;
use pictor_protocol::mining::{self, MiningSettingError, PoolAddress};
use serde::Deserialize;

use pictor_runtime::capabilities::gpu::AdapterChoice;
use pictor_runtime::jobs::limits::LimitOverrides;

/// Longest error message about a bad file, in bytes: a hostile value
/// echoed back is clipped there, its control characters escaped.
const ERROR_BYTES: usize = 2048;

/// The config format version this host reads.
pub const CONFIG_VERSION: u32 = 1;

/// Coins this host can mine, with their hash algorithm.
pub use pictor_protocol::mining::SUPPORTED_COINS;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// What is wrong, naming the key, and how to fix it.
    pub message: String,
}

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
    pub worker_id: String,
    /// Worker name (the id if none was given).
    pub name: String,
    /// Rewards address.
    pub wallet: String,
    /// Where jobs come from.
    pub source: JobSource,
    /// Mining, if configured.
    pub mining: Option<MiningConfig>,
    /// Accepted job kinds (`None`: all).
    pub job_kinds: Option<Vec<String>>,
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
        let err = |message: String| ConfigError {
            file: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the config file: {e}")))?;
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
    pub fn validate(raw: RawConfig, dir: &Path, file: &Path) -> Result<Self, String> {
        Self::validate_unclipped(raw, dir, file)
            .map_err(|e| pictor_runtime::text::lines(&e, ERROR_BYTES))
    }

    fn validate_unclipped(raw: RawConfig, dir: &Path, file: &Path) -> Result<Self, String> {
        if raw.version != CONFIG_VERSION {
            return Err(format!(
                "`version` is {}, this host reads version {CONFIG_VERSION}; get a current config from the portal",
                raw.version
            ));
        }
        if !pictor_protocol::api::valid_worker_id(&raw.worker.id) {
            return Err(format!(
                "`worker.id` {:?} must be {}; copy it from the portal",
                raw.worker.id,
                pictor_protocol::api::WORKER_ID_RULE
            ));
        }
        let name = raw
            .worker
            .name
            .clone()
            .unwrap_or_else(|| raw.worker.id.clone());
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err("`worker.name` must be at most 100 printable characters".into());
        }
        check_wallet("wallet", &raw.wallet)?;
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
            Some(status) => Some(status_listen("status.listen", &status.listen)?),
            None => None,
        };
        if let Some(kinds) = &raw.limits.job_kinds {
            for kind in kinds {
                check_kind("limits.job_kinds", kind)?;
            }
        }
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
            .map_err(|e| format!("`limits.job`: {}", e.replacen("limits.", "", 1)))?;
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
            worker_id: raw.worker.id,
            name,
            wallet: raw.wallet,
            source,
            mining,
            job_kinds: raw.limits.job_kinds,
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

/// Parses JSON into [`RawConfig`]; errors name the key (with a "did you
/// mean" for misspelt ones) and give line and column.
pub fn parse(text: &str) -> Result<RawConfig, String> {
    parse_unclipped(text).map_err(|e| pictor_runtime::text::lines(&e, ERROR_BYTES))
}

fn parse_unclipped(text: &str) -> Result<RawConfig, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = with_suggestion(&inner.to_string());
        if path == "." {
            message
        } else {
            format!("`{path}`: {message}")
        }
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

fn check_wallet(key: &str, wallet: &str) -> Result<(), String> {
    let ok = (8..=128).contains(&wallet.len())
        && wallet
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}` {wallet:?} is not a wallet address (8-128 letters, digits, : . _ -); copy it from your wallet app"
        ))
    }
}

fn check_kind(key: &str, kind: &str) -> Result<(), String> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}`: job kind {kind:?} must be 1-64 characters from a-z 0-9 -"
        ))
    }
}

fn source(raw: &RawCoordinator, dir: &Path) -> Result<JobSource, String> {
    match (&raw.spool, &raw.url) {
        (spool, Some(text)) => {
            let url = url::Url::parse(text)
                .map_err(|e| format!("`coordinator.url` {text:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "`coordinator.url` {text:?} must be an http:// or https:// URL with a host"
                ));
            }
            let token = raw.token.clone().unwrap_or_default();
            if token.len() < 16 {
                return Err("`coordinator.token` is missing or shorter than 16 characters; download this worker's config again from the portal".into());
            }
            let spool = spool.as_deref().unwrap_or("worker-data");
            if spool.is_empty() {
                return Err("`coordinator.spool` is empty; give a working folder (default `worker-data` beside the config)".into());
            }
            Ok(JobSource::Coordinator {
                url,
                token,
                spool: absolute(dir, spool),
            })
        }
        (spool, None) => {
            if raw.token.is_some() {
                return Err("`coordinator.token` is only used with `coordinator.url`; remove it or add the URL".into());
            }
            let spool = spool.as_deref().unwrap_or("spool");
            if spool.is_empty() {
                return Err("`coordinator.spool` is empty; give a folder (default `spool` beside the config)".into());
            }
            Ok(JobSource::Spool(absolute(dir, spool)))
        }
    }
}

/// Checks a status page address: an IP literal (or `localhost`) and a
/// port, on a loopback interface only. `key` names where it came from
/// (`status.listen` or `--status-listen`).
pub fn status_listen(key: &str, text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let address: SocketAddr = match text.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|e| e.to_string()),
        None => text.parse::<SocketAddr>().map_err(|e| e.to_string()),
    }
    .map_err(|e| {
        format!("`{key}` {text:?} is not an address and port like 127.0.0.1:9187 ({e})")
    })?;
    if !address.ip().is_loopback() {
        return Err(format!(
            "`{key}` {text:?} is not a loopback address: the status page is for the owner's machine only, so it listens on 127.0.0.1 (or ::1); \
             to see it from elsewhere, use an SSH tunnel (ssh -L 9187:127.0.0.1:9187 this-host) or a reverse proxy with authentication"
        ));
    }
    Ok(address)
}

fn mining(
    raw: &RawMining,
    wallet: &str,
    dir: &Path,
    has_coordinator: bool,
) -> Result<MiningConfig, String> {
    let pool = PoolAddress::parse(&raw.pool).map_err(|e| format!("`mining.pool` {e}"))?;
    let coin = raw.coin.to_lowercase();
    let algorithm = mining::algorithm_of(&coin).map_err(|_| {
        // The coin as the owner wrote it.
        format!(
            "`mining.coin` {}",
            MiningSettingError::UnsupportedCoin {
                coin: raw.coin.clone()
            }
        )
    })?;
    let payout = raw.wallet.clone().unwrap_or_else(|| wallet.to_string());
    mining::check_payout_address(&coin, &payout).map_err(|e| format!("`mining.wallet` {e}"))?;
    let idle = raw.idle_delay_s.unwrap_or(30.0);
    if !(idle.is_finite() && (0.0..=86_400.0).contains(&idle)) {
        return Err(format!(
            "`mining.idle_delay_s` must be between 0 and 86400 seconds, got {idle}"
        ));
    }
    let plugin = raw.plugin.as_deref().map(|p| absolute(dir, p));
    let plugin_sha256 = match &raw.plugin_sha256 {
        Some(text) => Some(text.parse::<Sha256Digest>().map_err(|_| {
            format!("`mining.plugin_sha256` {text:?} is not a sha256 (64 hex digits); copy it from the portal")
        })?),
        None => None,
    };
    if raw.enabled && plugin.is_none() && plugin_sha256.is_none() {
        return Err(
            "mining is enabled but names no miner: give `mining.plugin` (the mining component, e.g. plugins/mine.wasm) or `mining.plugin_sha256` (downloaded from the coordinator)".into(),
        );
    }
    if raw.enabled && plugin.is_none() && !has_coordinator {
        return Err("`mining.plugin_sha256` is downloaded from the coordinator, but there is no `coordinator.url`; give `mining.plugin` (a path) instead".into());
    }
    Ok(MiningConfig {
        enabled: raw.enabled,
        pool_host: pool.host,
        pool_port: pool.port,
        coin,
        algorithm,
        wallet: payout,
        plugin,
        plugin_sha256,
        idle_delay: std::time::Duration::from_secs_f64(idle),
        require_nvidia: raw.require_nvidia.unwrap_or(true),
        allow_private_pool: raw.allow_private_pool.unwrap_or(false),
    })
}

fn absolute(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_test_support::hostile;

    const GOOD: &str = r#"{
        "version": 1,
        "worker": {"id": "wkr-7f3a9c", "name": "studio rig 1"},
        "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "coordinator": {"spool": "spool"},
        "mining": {"enabled": true, "pool": "stratum+tcp://pool.example:3333", "coin": "btc", "plugin": "plugins/mine.wasm", "require_nvidia": false},
        "limits": {"job_kinds": ["render", "upscale"], "jobs_per_gpu": 1, "job": {"timeout_s": 600}},
        "prices": {"render": 0.02},
        "gpu": "auto"
    }"#;

    fn check(text: &str) -> Result<WorkerConfig, String> {
        WorkerConfig::validate(
            parse(text)?,
            Path::new("/etc/pictor"),
            Path::new("/etc/pictor/worker.json"),
        )
    }

    #[test]
    fn good_config_resolves_paths_and_defaults() -> Result<(), String> {
        let c = check(GOOD)?;
        assert_eq!(
            c.source,
            JobSource::Spool(PathBuf::from("/etc/pictor/spool"))
        );
        let m = c.mining.ok_or("mining")?;
        assert_eq!(
            (m.pool_host.as_str(), m.pool_port, m.algorithm),
            ("pool.example", 3333, "sha256d")
        );
        assert_eq!(m.wallet, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
        assert_eq!(
            m.plugin,
            Some(PathBuf::from("/etc/pictor/plugins/mine.wasm"))
        );
        assert_eq!(m.idle_delay, std::time::Duration::from_secs(30));
        assert_eq!(c.jobs_per_gpu, 1);
        assert_eq!(c.gpus, vec![AdapterChoice::Auto]);
        let two = check(&GOOD.replace(r#""gpu": "auto""#, r#""gpu": ["0", "H100"]"#))?;
        assert_eq!(
            two.gpus,
            vec![AdapterChoice::Index(0), AdapterChoice::Name("H100".into())]
        );
        Ok(())
    }

    #[test]
    fn a_coordinator_gets_a_working_folder_beside_the_config() -> Result<(), String> {
        let token = r#""url": "https://c.example", "token": "0123456789abcdef0123""#;
        let c = check(&GOOD.replace(r#""spool": "spool""#, token))?;
        let url = url::Url::parse("https://c.example").map_err(|e| e.to_string())?;
        let expected = JobSource::Coordinator {
            url: url.clone(),
            token: "0123456789abcdef0123".into(),
            spool: "/etc/pictor/worker-data".into(),
        };
        assert_eq!(c.source, expected);
        let c = check(&GOOD.replace(
            r#""spool": "spool""#,
            &format!(r#""spool": "/var/lib/pictor", {token}"#),
        ))?;
        assert_eq!(c.source.spool(), Path::new("/var/lib/pictor"));
        Ok(())
    }

    #[test]
    fn the_status_page_listens_on_loopback_only() -> Result<(), String> {
        assert_eq!(check(GOOD)?.status_listen, None, "off unless asked for");
        let on = |listen: &str| {
            check(&GOOD.replace(
                r#""gpu": "auto""#,
                &format!(r#""gpu": "auto", "status": {{"listen": "{listen}"}}"#),
            ))
        };
        assert_eq!(
            on("127.0.0.1:9187")?.status_listen,
            Some("127.0.0.1:9187".parse().map_err(|_| "addr")?)
        );
        assert_eq!(
            on("127.0.0.2:0")?.status_listen,
            Some("127.0.0.2:0".parse().map_err(|_| "addr")?)
        );
        assert_eq!(
            on("[::1]:9187")?.status_listen,
            Some("[::1]:9187".parse().map_err(|_| "addr")?)
        );
        assert_eq!(
            on("localhost:9187")?.status_listen,
            Some("127.0.0.1:9187".parse().map_err(|_| "addr")?)
        );
        for refused in ["[::]:9187", "10.0.0.1:9187", "[::ffff:10.0.0.1]:1"] {
            assert!(
                on(refused)
                    .unwrap_err()
                    .contains("is not a loopback address"),
                "{refused}"
            );
        }
        assert!(
            status_listen("--status-listen", "0.0.0.0:1")
                .unwrap_err()
                .starts_with("`--status-listen` \"0.0.0.0:1\" is not a loopback")
        );
        Ok(())
    }

    #[test]
    fn the_miner_may_come_from_the_coordinator_by_digest() -> Result<(), String> {
        let digest = "ab".repeat(32);
        let coordinator = r#""url": "https://c.example", "token": "0123456789abcdef0123""#;
        let by_digest = GOOD.replace(
            r#""plugin": "plugins/mine.wasm""#,
            &format!(r#""plugin_sha256": "{digest}""#),
        );
        let c = check(&by_digest.replace(r#""spool": "spool""#, coordinator))?;
        let m = c.mining.ok_or("mining")?;
        assert_eq!(
            (m.plugin, m.plugin_sha256.map(|d| d.to_string())),
            (None, Some(digest.clone()))
        );
        // Without a coordinator there is nowhere to download it from.
        assert!(
            check(&by_digest)
                .unwrap_err()
                .contains("there is no `coordinator.url`")
        );
        // Both given: the path wins (the digest is kept, unused).
        let both = GOOD.replace(
            r#""plugin": "plugins/mine.wasm""#,
            &format!(r#""plugin": "plugins/mine.wasm", "plugin_sha256": "{digest}""#),
        );
        assert_eq!(
            check(&both)?.mining.ok_or("mining")?.plugin,
            Some(PathBuf::from("/etc/pictor/plugins/mine.wasm"))
        );
        Ok(())
    }

    #[test]
    fn each_bad_field_names_its_key_and_the_fix() {
        let cases: &[(&str, &str, &str)] = &[
            (r#""version": 1,"#, r#""version": 2,"#, "`version` is 2"),
            (
                r#""mining": {"#,
                r#""minig": {"#,
                "unknown field `minig`, expected one of",
            ),
            (r#""mining": {"#, r#""minig": {"#, "did you mean `mining`?"),
            (r#""id": "wkr-7f3a9c""#, r#""id": "a b""#, "`worker.id`"),
            (
                r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4""#,
                r#""wallet": "x""#,
                "`wallet` \"x\" is not a wallet address",
            ),
            (
                r#""pool": "stratum+tcp://pool.example:3333""#,
                r#""pool": "http://pool.example:3333""#,
                "must start with stratum+tcp://",
            ),
            (
                r#""pool": "stratum+tcp://pool.example:3333""#,
                r#""pool": "stratum+tcp://pool.example""#,
                "has no port",
            ),
            (
                r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4""#,
                r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5""#,
                "`mining.wallet` \"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5\" is not a btc address: not a valid segwit address",
            ),
            (
                r#""pool": "stratum+tcp://pool.example:3333""#,
                r#""pool": "stratum+tcp://pool.example:3333/path""#,
                "no path, user or spaces",
            ),
            (
                r#""coin": "btc""#,
                r#""coin": "xmr""#,
                "`mining.coin` \"xmr\" is not supported; this host mines btc, bch",
            ),
            (
                r#""jobs_per_gpu": 1"#,
                r#""jobs_per_gpu": 0"#,
                "`limits.jobs_per_gpu`",
            ),
            (
                r#""timeout_s": 600"#,
                r#""timeout_s": -1"#,
                "`limits.job`: timeout_s",
            ),
            (
                r#""render": 0.02"#,
                r#""render": -1"#,
                "`prices.render` must be a number",
            ),
            (
                r#""spool": "spool""#,
                r#""url": "ftp://x""#,
                "`coordinator.url` \"ftp://x\" must be an http",
            ),
            (
                r#""spool": "spool""#,
                r#""url": "https://c.example""#,
                "`coordinator.token` is missing",
            ),
            (
                r#""job_kinds": ["render", "upscale"]"#,
                r#""job_kinds": ["Render"]"#,
                "`limits.job_kinds`",
            ),
            (
                r#""jobs_per_gpu": 1"#,
                r#""jobs_per_gpu": "one""#,
                "`limits.jobs_per_gpu`: invalid type",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": ["0", "0"]"#,
                "`gpu` lists the same adapter twice",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": ["auto", "1"]"#,
                "use \"auto\" or \"none\" alone",
            ),
            (
                r#""plugin": "plugins/mine.wasm""#,
                r#""plugin_sha256": "abc""#,
                "`mining.plugin_sha256` \"abc\" is not a sha256",
            ),
            (
                r#""plugin": "plugins/mine.wasm", "#,
                "",
                "give `mining.plugin` (the mining component, e.g. plugins/mine.wasm) or `mining.plugin_sha256`",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": "auto", "status": {"listen": "0.0.0.0:9187"}"#,
                "`status.listen` \"0.0.0.0:9187\" is not a loopback address: the status page is for the owner's machine only",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": "auto", "status": {"listen": "192.168.1.5:80"}"#,
                "use an SSH tunnel",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": "auto", "status": {"listen": "127.0.0.1"}"#,
                "`status.listen` \"127.0.0.1\" is not an address and port",
            ),
            (
                r#""gpu": "auto""#,
                r#""gpu": "auto", "status": {"listn": "127.0.0.1:1"}"#,
                "did you mean `listen`?",
            ),
        ];
        for (from, to, expected) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "case {to} did not change the config");
            let err = check(&text).expect_err(to);
            assert!(err.contains(expected), "{to}: {err}");
        }
    }

    /// Fields of `GOOD` (and ones it lacks) a hostile config may change.
    const CONFIG_FIELDS: &[&str] = &[
        "version",
        "worker",
        "worker/id",
        "worker/name",
        "wallet",
        "coordinator",
        "coordinator/spool",
        "coordinator/url",
        "coordinator/token",
        "mining",
        "mining/enabled",
        "mining/pool",
        "mining/coin",
        "mining/wallet",
        "mining/plugin",
        "mining/plugin_sha256",
        "mining/idle_delay_s",
        "mining/require_nvidia",
        "mining/allow_private_pool",
        "limits",
        "limits/job_kinds",
        "limits/job_kinds/0",
        "limits/jobs_per_gpu",
        "limits/cache_mib",
        "limits/spool_mib",
        "limits/job",
        "limits/job/timeout_s",
        "limits/job/memory_mib",
        "limits/job/output_mib",
        "limits/job/open_files",
        "limits/job/gpu_memory_mib",
        "prices",
        "prices/render",
        "gpu",
        "gpu/0",
        "status",
        "status/listen",
        "unknown_key",
    ];

    proptest::proptest! {
        #![proptest_config(hostile::config())]

        #[test]
        fn a_hostile_worker_json_is_refused_readably_never_a_panic((path, value) in hostile::mutation(CONFIG_FIELDS)) {
            let good: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            let text = hostile::with_field(&good, path, value).to_string();
            if let Err(error) = check(&text) {
                hostile::assert_readable(&error);
            }
        }

        #[test]
        fn any_bytes_as_worker_json_are_refused_readably(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Err(error) = check(&String::from_utf8_lossy(&bytes)) {
                hostile::assert_readable(&error);
            }
        }
    }

    #[test]
    fn a_worker_json_nested_100000_deep_is_refused_not_a_stack_overflow() {
        let error = check(&hostile::deeply_nested(100_000))
            .err()
            .unwrap_or_default();
        hostile::assert_readable(&error);
        let text = GOOD.replace(
            r#""gpu": "auto""#,
            &format!(r#""gpu": {}"#, hostile::deeply_nested(100_000)),
        );
        hostile::assert_readable(&check(&text).err().unwrap_or_default());
    }
}
