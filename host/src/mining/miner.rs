//! The running miner: a `miner`-world plugin run like a job with one TCP
//! grant (the pool's addresses, resolved by the host), preempted at once
//! when a job arrives, its GPU work drained before the job gets the GPU.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::board::{MiningBoard, MiningSummary, format_hashrate};
use crate::activity::Activity;
use pictor_runtime::LoadedPlugin;
use pictor_runtime::capabilities::gpu::GpuProvider;
use pictor_runtime::capabilities::mining::MinerReport;
use pictor_runtime::capabilities::progress::Progress;
use pictor_runtime::capabilities::sockets::SocketGrant;
use pictor_runtime::control::{Interruption, JobControl};
use pictor_runtime::jobs::limits::JobLimits;
use pictor_runtime::jobs::outcome::{FailureKind, JobFailure, JobOutcome};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::{JobSpec, SpecInvalid};

/// How long the worker waits for a preempted miner's GPU work to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a running miner's figures are logged.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How long resolving the pool's host name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to start the miner again and again.
pub struct MiningPlan {
    pub(super) plugin: Arc<LoadedPlugin>,
    pub(super) pool_host: String,
    pub(super) pool_port: u16,
    pub(super) allow_private_pool: bool,
    pub(super) params: MinerParams,
    pub(super) board: Arc<MiningBoard>,
    /// Idle time before mining starts.
    pub idle_delay: Duration,
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
    pub fn stats(&self) -> watch::Receiver<Option<MiningSummary>> {
        self.board.subscribe()
    }

    /// The board the figures are kept on.
    pub fn board(&self) -> &Arc<MiningBoard> {
        &self.board
    }

    /// The miner's job spec for the pool's `addresses` (its params are
    /// what the `miner` world documents).
    pub fn spec(&self, addresses: &[SocketAddr]) -> Result<JobSpec, SpecInvalid> {
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
        let _ = pictor_runtime::jobs::tree::remove_all(&output);
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
                    .map_err(|e| e.to_string())
                    .and_then(|addresses| {
                        pictor_runtime::capabilities::sockets::reachable_pool(
                            &host,
                            addresses,
                            allow_private,
                        )
                        .map_err(|e| e.to_string())
                    })
                    .and_then(|addresses| {
                        let spec = params
                            .spec(&addresses)
                            .map_err(|e| format!("mining job: {e}"))?;
                        Ok((spec, addresses))
                    }) {
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
                        run.network = SocketGrant::tcp_to(addresses);
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
pub(super) struct MinerParams {
    pub(super) pool: String,
    pub(super) user: String,
    pub(super) coin: String,
    pub(super) algorithm: String,
}

impl MinerParams {
    fn spec(&self, addresses: &[SocketAddr]) -> Result<JobSpec, SpecInvalid> {
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
    }
}

/// Why the pool's name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed.
    #[error("cannot resolve mining pool {host}: {error}")]
    Lookup {
        /// The pool's host name.
        host: String,
        /// The resolver's error.
        error: std::io::Error,
    },
    /// No answer within [`RESOLVE_TIMEOUT`].
    #[error("cannot resolve mining pool {host}: no answer within {} s", RESOLVE_TIMEOUT.as_secs())]
    Timeout {
        /// The pool's host name.
        host: String,
    },
    /// The answer held no address.
    #[error("mining pool {host} has no address")]
    NoAddress {
        /// The pool's host name.
        host: String,
    },
}

/// The pool's socket addresses (an IP literal, or a name resolved now).
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
    let addresses: Vec<SocketAddr> = match lookup.await {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(error)) => {
            return Err(ResolveError::Lookup {
                host: host.to_string(),
                error,
            });
        }
        Err(_) => {
            return Err(ResolveError::Timeout {
                host: host.to_string(),
            });
        }
    };
    if addresses.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_string(),
        });
    }
    Ok(addresses.into_iter().take(16).collect())
}

/// The outcome of a miner that could not start.
fn not_started(plugin: &LoadedPlugin, reason: String) -> JobOutcome {
    tracing::warn!(%reason, "miner not started");
    JobOutcome::not_run(
        "mining".into(),
        "mine".into(),
        plugin.digest,
        0,
        JobFailure::new(FailureKind::Failed, reason),
    )
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
                .to_string()
                .contains("cannot resolve mining pool no-such-host.invalid")
        );
    }
}
