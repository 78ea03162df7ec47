//! Mining while idle: whether this worker may mine, a running miner that
//! the worker can preempt at once when a job arrives, and the figures the
//! owner sees ([`MiningStats`]).
//!
//! The miner is a plugin of the `miner` world run like a job (same sandbox,
//! same GPU capability, its own quota) plus one TCP grant: the pool's
//! addresses, which the host resolves itself each time the miner starts
//! (the plugin gets no DNS). Preemption is hard: the miner's store is
//! interrupted at the next epoch tick (or dropped at once if it waits in a
//! host call), and the GPU work it left in flight is drained before the job
//! gets the GPU. The time from the stop request to "GPU free" is measured
//! and journaled. The plugin reconnects to the pool by itself when the
//! connection drops; a miner that *ends* (the pool refused the worker, no
//! GPU) is started again by the worker after a growing delay.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::capabilities::gpu::GpuProvider;
use crate::capabilities::mining::MinerReport;
use crate::capabilities::network::NetworkGrant;
use crate::capabilities::progress::Progress;
use crate::config::WorkerConfig;
use crate::jobs::limits::JobLimits;
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, ProgressReport};
use crate::jobs::runner::{JobRun, run_job};
use crate::jobs::sandbox::JobDirs;
use crate::jobs::spec::JobSpec;
use crate::runtime::control::{Interruption, JobControl};
use crate::runtime::{LoadedPlugin, Runtime};
use crate::telemetry::nvml::NvmlStatus;
use crate::worker::Activity;

/// How long the worker waits for a preempted miner's GPU work to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a running miner's figures are logged.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How long resolving the pool's host name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Mining figures of this worker, for the owner: the status line, and the
/// status page and metrics. Share counts and hashes are totals since the
/// worker started (over every miner run and GPU); the hashrate is now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MiningStats {
    /// Hashes per second now, all GPUs together (0 while no miner runs).
    pub hashrate_hps: f64,
    /// Shares the pool accepted since the worker started.
    pub accepted: u64,
    /// Shares the pool rejected since the worker started.
    pub rejected: u64,
    /// Hashes computed since the worker started.
    pub hashes: u64,
    /// The pool, `host:port`.
    pub pool: String,
    /// The coin mined.
    pub coin: String,
    /// Whether a miner is connected to the pool (and authorized) now.
    pub connected: bool,
    /// Miners running now (one per idle GPU; 0 while jobs run).
    pub miners: usize,
    /// The pool's latest share difficulty.
    pub difficulty: f64,
}

/// Keeps [`MiningStats`] up to date from every running miner's reports
/// and publishes them on a `watch` channel.
#[derive(Debug)]
pub struct MiningBoard {
    state: Mutex<BoardState>,
    published: watch::Sender<Option<MiningStats>>,
}

#[derive(Debug, Default)]
struct BoardState {
    /// Totals of finished runs, and pool and coin.
    base: MiningStats,
    /// The latest report of each running miner, by GPU slot.
    live: BTreeMap<usize, MinerReport>,
}

impl MiningBoard {
    /// A board for mining `coin` on `pool`, publishing its first figures.
    pub fn new(pool: String, coin: String) -> Arc<Self> {
        let base = MiningStats {
            pool,
            coin,
            ..MiningStats::default()
        };
        let (published, _) = watch::channel(Some(base.clone()));
        Arc::new(MiningBoard {
            state: Mutex::new(BoardState {
                base,
                live: BTreeMap::new(),
            }),
            published,
        })
    }

    /// The figures, updated on every report.
    pub fn subscribe(&self) -> watch::Receiver<Option<MiningStats>> {
        self.published.subscribe()
    }

    /// The figures now.
    pub fn stats(&self) -> MiningStats {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }

    /// Records the latest report of the miner on `slot`.
    pub fn update(&self, slot: usize, report: MinerReport) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.live.insert(slot, report);
        self.published.send_replace(Some(state.stats()));
    }

    /// The miner on `slot` ended: its counts join the totals.
    pub fn finish(&self, slot: usize) -> MinerReport {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let last = state.live.remove(&slot).unwrap_or_default();
        state.base.accepted += last.accepted;
        state.base.rejected += last.rejected;
        state.base.hashes += last.hashes;
        if last.difficulty > 0.0 {
            state.base.difficulty = last.difficulty;
        }
        self.published.send_replace(Some(state.stats()));
        last
    }
}

impl BoardState {
    fn stats(&self) -> MiningStats {
        let mut s = self.base.clone();
        for r in self.live.values() {
            s.hashrate_hps += r.hashrate_hps;
            s.accepted += r.accepted;
            s.rejected += r.rejected;
            s.hashes += r.hashes;
            s.connected |= r.connected;
            if r.difficulty > 0.0 {
                s.difficulty = r.difficulty;
            }
        }
        s.miners = self.live.len();
        s
    }
}

/// `12345678.0` → `12.35 MH/s`.
pub fn format_hashrate(hps: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut value = if hps.is_finite() { hps.max(0.0) } else { 0.0 };
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

/// Everything needed to start the miner again and again.
pub struct MiningPlan {
    plugin: Arc<LoadedPlugin>,
    pool_host: String,
    pool_port: u16,
    allow_private_pool: bool,
    params: MinerParams,
    board: Arc<MiningBoard>,
    /// Idle time before mining starts.
    pub idle_delay: Duration,
}

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

/// Whether the config and the GPUs allow mining (configured, enabled, on
/// an NVIDIA GPU unless `require_nvidia` is false), and where the miner
/// comes from; `Err` says why mining is off.
pub fn requirements(config: &WorkerConfig, nvml: &NvmlStatus) -> Result<MinerSource, String> {
    let Some(m) = &config.mining else {
        return Err("no `mining` in the config".into());
    };
    if !m.enabled {
        return Err("`mining.enabled` is false".into());
    }
    if m.require_nvidia && !nvml.has_nvidia_gpu() {
        return Err(match nvml {
            NvmlStatus::Unavailable { reason } => {
                format!("no NVIDIA GPU (NVML not available: {reason})")
            }
            NvmlStatus::Available { .. } => "NVML found no NVIDIA GPU".into(),
        });
    }
    match (&m.plugin, m.plugin_sha256) {
        (Some(path), _) => Ok(MinerSource::File(path.clone())),
        (None, Some(digest)) => Ok(MinerSource::Coordinator(digest)),
        (None, None) => Err("no `mining.plugin` or `mining.plugin_sha256`".into()),
    }
}

/// Decides whether the worker mines: [`requirements`] met and the plugin
/// file of `mining.plugin` loads as a miner. (`pictor-host run` also
/// downloads a `mining.plugin_sha256` first and then calls [`plan`].)
pub fn eligibility(config: &WorkerConfig, nvml: &NvmlStatus, runtime: &Runtime) -> Eligibility {
    match requirements(config, nvml) {
        Err(reason) => Eligibility::Off(reason),
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

/// A running miner.
pub struct Miner {
    task: JoinHandle<JobOutcome>,
    control: Arc<JobControl>,
    last: watch::Receiver<Progress>,
    slot: usize,
    board: Arc<MiningBoard>,
}

/// How a miner ended.
pub struct Stopped {
    /// Stop request → miner gone and GPU drained, in milliseconds.
    pub latency_ms: f64,
    /// The miner's last progress message.
    pub last_report: String,
    /// Its last figures (hashrate, shares of this run).
    pub report: MinerReport,
    /// Its outcome, if the task ended normally.
    pub outcome: Option<JobOutcome>,
}

impl MiningPlan {
    /// The mining plugin's sha256.
    pub fn plugin_digest(&self) -> String {
        self.plugin.digest.to_string()
    }

    /// The pool, `host:port`.
    pub fn pool(&self) -> String {
        format!("{}:{}", self.pool_host, self.pool_port)
    }

    /// The mining figures, updated as the miners report.
    pub fn stats(&self) -> watch::Receiver<Option<MiningStats>> {
        self.board.subscribe()
    }

    /// The board the figures are kept on.
    pub fn board(&self) -> &Arc<MiningBoard> {
        &self.board
    }

    /// The miner's job spec for the pool's `addresses` (its params are
    /// what the `miner` world documents).
    pub fn spec(&self, addresses: &[SocketAddr]) -> Result<JobSpec, String> {
        self.params.spec(addresses)
    }

    /// Starts the miner for GPU `slot` on `gpu`, with its folders in `dir`;
    /// its progress is also sent to `status`, its figures to the board.
    pub fn start(
        &self,
        slot: usize,
        dir: &Path,
        gpu: Arc<GpuProvider>,
        status: watch::Sender<Option<Activity>>,
    ) -> std::io::Result<Miner> {
        let (input, output) = (dir.join("input"), dir.join("output"));
        let _ = crate::jobs::tree::remove_all(&output);
        std::fs::create_dir_all(&input)?;
        let dirs = JobDirs::prepare(&input, &output).map_err(std::io::Error::other)?;
        let control = Arc::new(JobControl::default());
        let (progress_tx, last) = watch::channel(Progress::default());
        let (report_tx, mut reports) = watch::channel(MinerReport::default());
        let plugin = Arc::clone(&self.plugin);
        let (host, port, allow_private) = (
            self.pool_host.clone(),
            self.pool_port,
            self.allow_private_pool,
        );
        let params = self.params.clone();
        let board = Arc::clone(&self.board);
        let mut forward = progress_tx.subscribe();
        let task = tokio::spawn({
            let (control, board) = (Arc::clone(&control), Arc::clone(&board));
            async move {
                let since = Instant::now();
                let relay = tokio::spawn(async move {
                    // A log line a minute, for owners who run the worker as a service.
                    let mut minute = tokio::time::interval_at(
                        tokio::time::Instant::now() + LOG_INTERVAL,
                        LOG_INTERVAL,
                    );
                    loop {
                        tokio::select! {
                            _ = minute.tick() => {
                                let r = reports.borrow().clone();
                                tracing::info!(
                                    gpu = slot,
                                    hashrate = %format_hashrate(r.hashrate_hps),
                                    accepted = r.accepted,
                                    rejected = r.rejected,
                                    connected = r.connected,
                                    "mining"
                                );
                            }
                            changed = forward.changed() => {
                                if changed.is_err() { return }
                                let progress = forward.borrow_and_update().clone();
                                status.send_replace(Some(Activity { label: "mining".into(), progress, since }));
                            }
                            changed = reports.changed() => {
                                if changed.is_err() { return }
                                let report = reports.borrow_and_update().clone();
                                board.update(slot, report);
                            }
                        }
                    }
                });
                let outcome = match resolve(&host, port)
                    .await
                    .and_then(|addresses| {
                        crate::capabilities::network::reachable_pool(
                            &host,
                            addresses,
                            allow_private,
                        )
                    })
                    .and_then(|addresses| Ok((params.spec(&addresses)?, addresses)))
                {
                    Err(reason) => not_started(&plugin, reason),
                    Ok((spec, addresses)) => {
                        tracing::debug!(pool = %format!("{host}:{port}"), ?addresses, "mining pool resolved");
                        let mut run = JobRun::new(&spec, &dirs).with_gpu(gpu);
                        run.limits = JobLimits {
                            timeout: Duration::from_secs(7 * 86_400),
                            output_bytes: 16 << 20,
                            ..JobLimits::default()
                        };
                        run.control = control;
                        run.progress = progress_tx;
                        run.network = NetworkGrant::tcp_to(addresses);
                        run.mining = Some(report_tx);
                        run_job(&plugin, run).await
                    }
                };
                relay.abort();
                outcome
            }
        });
        Ok(Miner {
            task,
            control,
            last,
            slot,
            board,
        })
    }
}

/// What the miner's params are made of.
#[derive(Debug, Clone)]
struct MinerParams {
    pool: String,
    user: String,
    coin: String,
    algorithm: String,
}

impl MinerParams {
    fn spec(&self, addresses: &[SocketAddr]) -> Result<JobSpec, String> {
        let params = serde_json::json!({
            "pool": self.pool,
            "addresses": addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "user": self.user,
            "password": "x",
            "coin": self.coin,
            "algorithm": self.algorithm,
        });
        JobSpec::from_json(
            &serde_json::json!({"version": 1, "id": "mining", "kind": "mine", "params": params})
                .to_string(),
        )
        .map_err(|e| format!("mining job: {e}"))
    }
}

/// The pool's socket addresses (an IP literal, or a name resolved now).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
    let addresses: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(e)) => return Err(format!("cannot resolve mining pool {host}: {e}")),
        Err(_) => {
            return Err(format!(
                "cannot resolve mining pool {host}: no answer within {} s",
                RESOLVE_TIMEOUT.as_secs()
            ));
        }
    };
    if addresses.is_empty() {
        return Err(format!("mining pool {host} has no address"));
    }
    Ok(addresses.into_iter().take(16).collect())
}

/// The outcome of a miner that could not start.
fn not_started(plugin: &LoadedPlugin, reason: String) -> JobOutcome {
    tracing::warn!(%reason, "miner not started");
    JobOutcome {
        job_id: "mining".into(),
        kind: "mine".into(),
        plugin: plugin.digest,
        attempt: 0,
        status: "failed",
        success: None,
        failure: Some(JobFailure::new(FailureKind::Failed, reason)),
        duration_s: 0.0,
        outputs: Vec::new(),
        progress: ProgressReport::default(),
        checkpoints_saved: 0,
        adapter: None,
    }
}

impl Miner {
    /// Whether the miner ended by itself (it failed).
    pub fn ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the miner now and waits until it is gone and the GPU drained.
    pub async fn stop(self, gpu: &Arc<GpuProvider>) -> Stopped {
        let started = Instant::now();
        self.control.stop(Interruption::Preempted);
        let outcome = self.task.await.ok();
        let provider = Arc::clone(gpu);
        let _ = tokio::task::spawn_blocking(move || provider.drain_current(DRAIN_TIMEOUT)).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let last_report = self.last.borrow().message.clone();
        let report = self.board.finish(self.slot);
        Stopped {
            latency_ms,
            last_report,
            report,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_sums_live_miners_over_finished_runs() {
        let board = MiningBoard::new("pool.example:3333".into(), "btc".into());
        let rx = board.subscribe();
        let first = rx.borrow().clone().unwrap();
        assert_eq!(
            (
                first.pool.as_str(),
                first.coin.as_str(),
                first.miners,
                first.connected
            ),
            ("pool.example:3333", "btc", 0, false)
        );
        let report = |hps, accepted, connected| MinerReport {
            hashrate_hps: hps,
            hashes: 100,
            accepted,
            rejected: 1,
            connected,
            difficulty: 0.5,
        };
        board.update(0, report(10.0, 3, true));
        board.update(1, report(5.0, 1, false));
        let s = rx.borrow().clone().unwrap();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.hashes,
                s.miners,
                s.connected
            ),
            (15.0, 4, 2, 200, 2, true)
        );
        assert_eq!(board.finish(0).accepted, 3);
        // A new run on slot 0 starts from zero; the totals keep the old one.
        board.update(0, report(7.0, 1, false));
        let s = board.stats();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.miners,
                s.connected
            ),
            (12.0, 5, 3, 2, false)
        );
        board.finish(0);
        board.finish(1);
        let s = board.stats();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.hashes,
                s.miners,
                s.difficulty
            ),
            (0.0, 5, 3, 300, 0, 0.5)
        );
        assert_eq!(*rx.borrow(), Some(s));
    }

    #[test]
    fn hashrates_read_well() {
        assert_eq!(format_hashrate(0.0), "0.00 H/s");
        assert_eq!(format_hashrate(12_345_678.0), "12.35 MH/s");
        assert_eq!(format_hashrate(f64::NAN), "0.00 H/s");
    }

    #[tokio::test]
    async fn ip_literals_resolve_without_dns() {
        assert_eq!(
            resolve("127.0.0.1", 3333).await.unwrap(),
            vec!["127.0.0.1:3333".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            resolve("no-such-host.invalid", 3333)
                .await
                .unwrap_err()
                .contains("cannot resolve mining pool no-such-host.invalid")
        );
    }
}
