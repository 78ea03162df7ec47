//! `mine`: the Pictor miner plugin (world `pictor:plugin/miner`).
//!
//! Speaks Stratum v1 to the owner's pool over the one TCP connection the
//! host allows, builds block headers from each job (coinbase with
//! extranonces, merkle branch, version/prevhash/ntime/nbits), searches
//! nonces with a SHA-256d WGSL kernel in short GPU submissions, checks each
//! candidate with the `sha2` crate and submits the real shares; it reports
//! hashrate and accepted/rejected shares through `pictor:plugin/mining`
//! (typed) and `progress` (a line of text).
//!
//! Params (`job-info.params`), as the host sends them:
//!
//! ```json
//! {"pool": "pool.example:3333", "addresses": ["203.0.113.7:3333"],
//!  "user": "bc1q….wkr-7f3a9c", "password": "x", "coin": "btc", "algorithm": "sha256d"}
//! ```
//!
//! optionally with `batch_ms` (GPU time per submission, default 10) and
//! `backoff_ms` (`[first, longest]` reconnection delay, default
//! `[1000, 60000]`). Two more modes exist for tests and benchmarks:
//! `{"mode": "self-test", "hash": [...], "search": [...]}` writes the GPU's
//! digests and found nonces to `/output/self-test.json` (the host's tests
//! compare them with `sha2`), and `{"mode": "bench", "seconds": 3}` measures
//! the kernel's hashes per second.
//!
//! Modules: [`target`] (difficulty, nbits, hash vs target), [`algorithm`]
//! (the hash behind a trait, [`algorithm::by_name`]), [`sha256d`] (CPU
//! reference and GPU search), [`work`] (Stratum job → header), [`stratum`]
//! (protocol state machine), [`net`] (the TCP connection), [`miner`] (the
//! loop), [`report`] (figures to the host).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod algorithm;
pub mod hex;
pub mod miner;
pub mod net;
pub mod report;
pub mod sha256d;
pub mod stratum;
pub mod target;
pub mod work;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

use algorithm::{ALGORITHMS, Algorithm, Header};
use miner::{Miner, Settings, gpu_error};
use target::Target;

/// What the plugin is asked to do.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Mine on the pool until stopped.
    #[default]
    Mine,
    /// Hash given headers and search given ranges on the GPU, write the results.
    SelfTest,
    /// Measure the kernel's hashes per second.
    Bench,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    pool: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    coin: Option<String>,
    #[serde(default = "default_algorithm")]
    algorithm: String,
    #[serde(default)]
    batch_ms: Option<f64>,
    #[serde(default)]
    backoff_ms: Option<[u64; 2]>,
    #[serde(default)]
    hash: Vec<HashCase>,
    #[serde(default)]
    search: Vec<SearchCase>,
    #[serde(default)]
    seconds: Option<f64>,
}

fn default_algorithm() -> String {
    "sha256d".into()
}

/// Self-test: the digests of `header` with nonces `first..first + count`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HashCase {
    header: String,
    first: u32,
    count: u32,
}

/// Self-test: the nonces in `first..first + count` whose hash meets the
/// target (`target`, 64 hex digits big-endian, or the header's own nbits).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchCase {
    header: String,
    first: u32,
    count: u32,
    #[serde(default)]
    target: Option<String>,
}

/// Nonces one self-test case may cover.
const MAX_SELF_TEST_NONCES: u32 = 1 << 24;

/// The `mine` plugin.
pub struct Mine;

impl Plugin for Mine {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        let algorithm = algorithm::by_name(&params.algorithm).ok_or_else(|| {
            JobError::Unsupported(format!(
                "algorithm `{}` is not supported by this miner (it has {})",
                params.algorithm,
                ALGORITHMS.join(", ")
            ))
        })?;
        match params.mode {
            Mode::Mine => mine(job, &params, algorithm.as_ref()),
            Mode::SelfTest => self_test(job, &params, algorithm.as_ref()),
            Mode::Bench => bench(job, &params, algorithm.as_ref()),
        }
    }
}

/// The mining settings from the params, checked.
fn settings(params: &Params) -> Result<Settings, JobError> {
    let invalid = |m: String| JobError::InvalidParams(m);
    if params.addresses.is_empty() || params.addresses.len() > 16 {
        return Err(invalid(
            "`addresses` must list 1-16 pool addresses (ip:port)".into(),
        ));
    }
    let addresses = params
        .addresses
        .iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|e| invalid(format!("`addresses`: {a:?} is not ip:port ({e})")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if params.user.is_empty()
        || params.user.len() > 256
        || params.user.chars().any(char::is_control)
    {
        return Err(invalid(
            "`user` must be 1-256 printable characters (<wallet>.<worker>)".into(),
        ));
    }
    let pool = if params.pool.is_empty() {
        params.addresses[0].clone()
    } else {
        params.pool.clone()
    };
    let mut s = Settings::new(pool, addresses, params.user.clone());
    if let Some(p) = &params.password {
        s.password = p.clone();
    }
    if let Some(ms) = params.batch_ms {
        if !(ms.is_finite() && (0.1..=1000.0).contains(&ms)) {
            return Err(invalid(format!("`batch_ms` must be 0.1-1000, got {ms}")));
        }
        s.batch = Duration::from_secs_f64(ms / 1e3);
    }
    if let Some([first, longest]) = params.backoff_ms {
        if first == 0 || longest < first || longest > 3_600_000 {
            return Err(invalid(
                "`backoff_ms` is [first, longest] with 0 < first ≤ longest ≤ 3600000".into(),
            ));
        }
        s.backoff = (Duration::from_millis(first), Duration::from_millis(longest));
    }
    Ok(s)
}

fn mine(job: &Job, params: &Params, algorithm: &dyn Algorithm) -> Result<Summary, JobError> {
    let settings = settings(params)?;
    let coin = params.coin.as_deref().unwrap_or("?");
    println!(
        "mining {coin} ({}) on {} as {}",
        algorithm.name(),
        settings.pool,
        settings.user
    );
    let mut search = algorithm.gpu_search().map_err(gpu_error)?;
    let mut miner = Miner::new(job, &settings, algorithm, search.as_mut());
    miner.run()?;
    let s = *miner.stats();
    Ok(Summary::new(format!(
        "mined: {} accepted, {} rejected",
        s.accepted, s.rejected
    ))
    .metric("accepted", s.accepted as f64)
    .metric("rejected", s.rejected as f64)
    .metric("hashes", s.hashes as f64))
}

fn header(text: &str) -> Result<Header, JobError> {
    hex::decode_array(text).map_err(|e| JobError::InvalidParams(format!("self-test header: {e}")))
}

/// Runs the self-test cases on the GPU and writes `/output/self-test.json`:
/// `{"hash": [[digest hex, …], …], "search": [[nonce, …], …], "adapter": …}`.
fn self_test(job: &Job, params: &Params, algorithm: &dyn Algorithm) -> Result<Summary, JobError> {
    if algorithm.name() != "sha256d" {
        return Err(JobError::Unsupported(
            "the self-test hashes with sha256d only".into(),
        ));
    }
    let too_many = |n: u32| n > MAX_SELF_TEST_NONCES;
    if params
        .hash
        .iter()
        .map(|c| c.count)
        .chain(params.search.iter().map(|c| c.count))
        .any(too_many)
    {
        return Err(JobError::InvalidParams(format!(
            "a self-test case covers at most {MAX_SELF_TEST_NONCES} nonces"
        )));
    }
    let mut gpu = sha256d::GpuSha256d::new().map_err(gpu_error)?;
    let mut hashes = Vec::new();
    for case in &params.hash {
        let end = u64::from(case.first) + u64::from(case.count);
        if end > 1 << 32 {
            return Err(JobError::InvalidParams(
                "a self-test range passes nonce 2^32".into(),
            ));
        }
        let digests = gpu
            .digests(&header(&case.header)?, case.first, case.count)
            .map_err(gpu_error)?;
        hashes.push(digests.iter().map(|d| hex::encode(d)).collect::<Vec<_>>());
    }
    let mut found = Vec::new();
    for case in &params.search {
        let h = header(&case.header)?;
        let target = match &case.target {
            Some(t) => Target::from_be_bytes(
                hex::decode_array(t)
                    .map_err(|e| JobError::InvalidParams(format!("self-test target: {e}")))?,
            ),
            None => Target::from_compact(u32::from_le_bytes([h[72], h[73], h[74], h[75]]))
                .ok_or_else(|| {
                    JobError::InvalidParams("self-test header has an invalid nbits".into())
                })?,
        };
        if u64::from(case.first) + u64::from(case.count) > 1 << 32 {
            return Err(JobError::InvalidParams(
                "a self-test range passes nonce 2^32".into(),
            ));
        }
        let mut nonces =
            algorithm::NonceSearch::search(&mut gpu, &h, &target, case.first, case.count)
                .map_err(gpu_error)?
                .nonces;
        nonces.sort_unstable();
        found.push(nonces);
    }
    let adapter = pictor_sdk::gpu::adapter()
        .map(|a| a.name)
        .unwrap_or_default();
    let report = serde_json::json!({"adapter": adapter, "hash": hashes, "search": found});
    job.write_output("self-test.json", report.to_string().as_bytes())?;
    Ok(Summary::new(format!(
        "self-test: {} hash case(s), {} search case(s)",
        params.hash.len(),
        params.search.len()
    )))
}

/// Searches a pseudo-random header (at a target nothing meets) for `seconds` and
/// reports hashes per second: wall clock (host calls included) and GPU time.
fn bench(job: &Job, params: &Params, algorithm: &dyn Algorithm) -> Result<Summary, JobError> {
    let seconds = params.seconds.unwrap_or(3.0);
    if !(seconds.is_finite() && (0.1..=600.0).contains(&seconds)) {
        return Err(JobError::InvalidParams(format!(
            "`seconds` must be 0.1-600, got {seconds}"
        )));
    }
    let batch = params.batch_ms.unwrap_or(10.0).clamp(0.1, 1000.0) / 1e3;
    let mut search = algorithm.gpu_search().map_err(gpu_error)?;
    let mut header: Header = [0u8; algorithm::HEADER_LEN];
    for (i, b) in header.iter_mut().enumerate() {
        *b = (job.seed().rotate_left(i as u32 % 64) as u8) ^ (i as u8);
    }
    let impossible = Target::from_be_bytes([0; 32]);
    let (mut nonces, mut hashes, mut gpu_time) = (1u32 << 16, 0u64, Duration::ZERO);
    let mut first = 0u32;
    // One warm-up search (pipeline creation, first dispatch).
    search
        .search(&header, &impossible, 0, 4096)
        .map_err(gpu_error)?;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        job.check_cancelled()?;
        // Up to the end of the nonce space (then it wraps to 0).
        let count = nonces.min(u32::MAX - first).max(1);
        let found = search
            .search(&header, &impossible, first, count)
            .map_err(gpu_error)?;
        hashes += u64::from(count);
        gpu_time += found.elapsed;
        first = first.wrapping_add(count);
        let ratio = if found.elapsed.is_zero() {
            2.0
        } else {
            (batch / found.elapsed.as_secs_f64()).clamp(0.5, 2.0)
        };
        nonces = (f64::from(nonces) * ratio).clamp(4096.0, f64::from(1u32 << 30)) as u32;
    }
    let wall = started.elapsed().as_secs_f64();
    let gpu = gpu_time.as_secs_f64().max(1e-9);
    Ok(Summary::new(format!(
        "{}: {} (wall clock), {} (GPU time)",
        algorithm.name(),
        report::format_rate(hashes as f64 / wall),
        report::format_rate(hashes as f64 / gpu)
    ))
    .metric("hashes", hashes as f64)
    .metric("seconds", wall)
    .metric("hashes-per-second", hashes as f64 / wall)
    .metric("gpu-hashes-per-second", hashes as f64 / gpu)
    .metric("last-batch-nonces", f64::from(nonces)))
}

pictor_sdk::export_plugin!(Mine);
