//! The coordinator's settings (from the `serve` command line, or built
//! directly by tests), with the defaults a local farm uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::FaultConfig;
use crate::limits::Limits;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// How the coordinator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder (store, blobs, tokens); created on first start.
    pub data_dir: PathBuf,
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The URL workers and the CLI reach this coordinator at, when it is not
    /// `http://<listen address>` (behind a TLS reverse proxy, or listening
    /// on 0.0.0.0).
    pub public_url: Option<String>,
    /// A lease lives this long after it is granted or last extended.
    pub lease_ttl: Duration,
    /// The longest long-poll wait honoured on lease requests.
    pub max_wait: Duration,
    /// A worker stops getting a kind after this many consecutive failures on it.
    pub skip_after_failures: u32,
    /// `max_attempts` of a submitted job that does not give one (1-20).
    pub max_attempts_default: u32,
    /// The largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// The largest JSON request body accepted, in bytes.
    pub max_json_bytes: usize,
    /// The miner plugin component that issued workers download (by its
    /// sha256, from the blob store) and mine with; without it, issued
    /// `worker.json` files carry the mining settings with mining off.
    pub miner_plugin: Option<PathBuf>,
    /// The bounds on callers: timeouts, poll and upload caps, lease
    /// deadlines, blob garbage collection.
    pub limits: Limits,
    /// Fault injection for tests (all off by default).
    pub faults: FaultConfig,
}

impl Config {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            public_url: None,
            lease_ttl: Duration::from_secs(60),
            max_wait: Duration::from_secs(30),
            skip_after_failures: 3,
            max_attempts_default: 3,
            max_blob_bytes: 16384 << 20,
            max_json_bytes: 16 << 20,
            miner_plugin: None,
            limits: Limits::default(),
            faults: FaultConfig::default(),
        }
    }
}
