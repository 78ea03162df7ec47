//! The owner's status page and Prometheus metrics (`status.listen`).
//!
//! Everything the owner sees is one [`Snapshot`], assembled on each request
//! from what the rest of the host already publishes: the worker's running
//! jobs and mining figures (`watch` channels), the network side's
//! connection state, the NVML sampler's latest reading (its own thread:
//! nothing here blocks the executor), and the finished jobs [`tally`]
//! (seeded from the journal, fed by the worker's job ends). The same
//! snapshot is rendered three ways: HTML ([`page`]), JSON, and Prometheus
//! text ([`metrics`]); [`server`] serves them on a loopback address.

pub mod line;
pub mod metrics;
pub mod page;
pub mod server;
pub mod tally;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::activity::{Activity, RunningJob};
use crate::coordinator::{Connection, NetStatus};
use crate::journal::FinishedJob;
use crate::mining::{MiningSummary, format_hashrate};
use crate::telemetry::nvml::{GpuSample, NvmlStatus};
use crate::worker::WorkerWatch;
use tally::{JobRow, JobTally};

/// Where the worker's jobs come from, for the connection line.
#[derive(Debug, Clone)]
pub enum SourceView {
    /// A local spool folder.
    Spool(String),
    /// A coordinator (its URL), with the network side's status.
    Coordinator(String, watch::Receiver<NetStatus>),
}

/// Whether the worker mines when idle, as decided at start.
#[derive(Debug, Clone, PartialEq)]
pub enum MiningMode {
    /// Mining is off, for this reason.
    Off(String),
    /// Mining starts on a GPU idle for this long.
    On {
        /// `mining.idle_delay_s`.
        idle_delay: Duration,
    },
}

/// A GPU adapter as wgpu lists it (probed once at start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adapter {
    /// Adapter name, e.g. `NVIDIA H100 PCIe` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend, e.g. `Vulkan`.
    pub backend: String,
    /// Device type, e.g. `DiscreteGpu` or `Cpu`.
    pub device_type: String,
}

/// What the status page is assembled from.
pub struct StatusSources {
    /// Worker id.
    pub worker_id: String,
    /// Worker name.
    pub name: String,
    /// Where jobs come from.
    pub source: SourceView,
    /// The config's price per job kind (the reward of a succeeded job).
    pub prices: BTreeMap<String, f64>,
    /// The GPU adapters found at start.
    pub adapters: Vec<Adapter>,
    /// The latest NVML reading ([`crate::telemetry::nvml::NvmlSampler::subscribe`]).
    pub nvml: watch::Receiver<NvmlStatus>,
    /// The worker's live state ([`crate::worker::Worker::watch`]).
    pub worker: WorkerWatch,
    /// Mining on or off, and why.
    pub mining: MiningMode,
    /// Jobs that finished before this start ([`crate::worker::Worker::job_history`]).
    pub history: Vec<FinishedJob>,
    /// The sampler `nvml` comes from, kept alive (its thread stops when
    /// it drops); `None` where the reading is fixed (tests).
    pub sampler: Option<crate::telemetry::nvml::NvmlSampler>,
}

/// The assembled status; cheap to make, made per request.
pub struct StatusHub {
    sources: StatusSources,
    tally: Mutex<JobTally>,
    started: Instant,
}

/// Everything the owner sees, at one moment (`/status.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Who this worker is.
    pub worker: WorkerView,
    /// The connection to the job source.
    pub connection: ConnectionView,
    /// Whether NVML is available, or why not.
    pub nvml: NvmlView,
    /// Each GPU adapter, with NVML telemetry where NVML knows it.
    pub gpus: Vec<AdapterView>,
    /// Each configured GPU slot's health (a kernel that never ended makes a
    /// slot `recovered`, then `unhealthy`).
    pub slots: Vec<SlotView>,
    /// The spool's disk use and limit.
    pub spool: SpoolView,
    /// Jobs running now.
    pub jobs: Vec<JobView>,
    /// The miner.
    pub mining: MiningView,
    /// The last finished jobs (up to [`tally::RECENT`]), newest first.
    pub recent_jobs: Vec<JobRow>,
    /// Jobs finished since the worker started, by kind and outcome.
    pub jobs_total: Vec<JobCount>,
    /// The prices of jobs that succeeded since the worker started.
    pub earnings: f64,
    /// Results stored and not yet acknowledged by the coordinator.
    pub results_pending_report: usize,
    /// Seconds since the worker started.
    pub uptime_s: f64,
}

/// Who this worker is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    /// Worker id.
    pub id: String,
    /// Worker name.
    pub name: String,
    /// `pictor-host` version.
    pub version: String,
}

/// The connection, in the status line's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionView {
    /// `connected`, `connecting`, `offline`, `refused` or `revoked`.
    pub state: &'static str,
    /// What the owner reads, e.g. `Connected to http://…` or `Revoked: …`.
    pub text: String,
    /// The coordinator URL, if jobs come from one.
    pub coordinator: Option<String>,
}

/// Whether NVML is there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvmlView {
    /// NVML loaded.
    pub available: bool,
    /// The driver version, or why NVML is not available.
    pub detail: String,
}

/// One GPU adapter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterView {
    /// Index in `pictor-host gpu list` (and the `gpu` config key).
    pub index: usize,
    /// Adapter name.
    pub name: String,
    /// Backend.
    pub backend: String,
    /// Device type.
    pub device_type: String,
    /// NVML's reading of this GPU, if it is an NVIDIA GPU NVML knows.
    pub telemetry: Option<GpuTelemetry>,
}

/// The spool's disk use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpoolView {
    /// Bytes its jobs and journal take (the download cache not counted).
    pub bytes: u64,
    /// `limits.spool_mib` in bytes.
    pub limit_bytes: u64,
    /// True while no new job is claimed for lack of room.
    pub full: bool,
}

/// One GPU slot's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotView {
    /// Slot index (the order of the config's `gpus`).
    pub slot: usize,
    /// `healthy`, `recovered` or `unhealthy`.
    pub health: &'static str,
    /// What happened, unless healthy.
    pub detail: Option<String>,
}

/// NVML's reading of one GPU; fields it could not read are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuTelemetry {
    /// Utilization, percent.
    pub utilization_percent: Option<u32>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory in all, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Core temperature, °C.
    pub temperature_c: Option<u32>,
    /// Power draw, watts.
    pub power_w: Option<f64>,
}

/// A running job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// Job kind.
    pub kind: String,
    /// Which configured GPU it runs on.
    pub gpu: usize,
    /// Fraction done, 0 to 1.
    pub fraction: f32,
    /// The plugin's message.
    pub message: String,
    /// Seconds since this attempt started.
    pub elapsed_s: f64,
    /// Estimated seconds left (from progress so far), once there is some.
    pub eta_s: Option<f64>,
}

/// The miner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MiningView {
    /// `off`, `waiting` or `mining`.
    pub state: &'static str,
    /// What the owner reads, e.g. `mining btc · 6.41 MH/s · 12 accepted, 0 rejected · pool host:port`.
    pub text: String,
    /// Miners running now (one per idle GPU).
    pub miners: usize,
    /// Whether a miner is connected to the pool.
    pub connected: bool,
    /// Coin (empty when mining is off).
    pub coin: String,
    /// Pool `host:port` (empty when mining is off).
    pub pool: String,
    /// Hashes per second now.
    pub hashrate_hps: f64,
    /// Shares accepted since the worker started.
    pub accepted: u64,
    /// Shares rejected since the worker started.
    pub rejected: u64,
}

/// Jobs of one kind that ended one way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobCount {
    /// Job kind.
    pub kind: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    /// How many since the worker started.
    pub count: u64,
}

impl StatusHub {
    /// A hub over `sources`; its tally starts from their history.
    pub fn new(sources: StatusSources) -> Arc<Self> {
        let tally = JobTally::new(&sources.history, &sources.prices);
        Arc::new(StatusHub {
            sources,
            tally: Mutex::new(tally),
            started: Instant::now(),
        })
    }

    /// Counts one finished job (since start, and in the recent list).
    pub fn record(&self, job: &FinishedJob) {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(job, &self.sources.prices);
    }

    /// Feeds the tally from the worker's job ends until the worker is gone.
    pub async fn follow(self: Arc<Self>, mut ended: broadcast::Receiver<FinishedJob>) {
        loop {
            match ended.recv().await {
                Ok(job) => self.record(&job),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "status page missed job ends (counts are low by that many)"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The status now.
    pub fn snapshot(&self) -> Snapshot {
        let s = &self.sources;
        let net = match &s.source {
            SourceView::Coordinator(_, net) => Some(net.borrow().clone()),
            SourceView::Spool(_) => None,
        };
        let connection = connection_view(&s.source, net.as_ref().map(|n| &n.connection));
        let revoked = connection.state == "revoked";
        let nvml = s.nvml.borrow().clone();
        let (tally_rows, totals, earnings) = {
            let tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
            (tally.recent(), tally.totals(), tally.earnings())
        };
        Snapshot {
            worker: WorkerView {
                id: s.worker_id.clone(),
                name: s.name.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            connection,
            nvml: match &nvml {
                NvmlStatus::Available { driver, .. } => NvmlView {
                    available: true,
                    detail: format!("driver {driver}"),
                },
                NvmlStatus::Unavailable { reason } => NvmlView {
                    available: false,
                    detail: reason.clone(),
                },
            },
            gpus: gpu_views(&s.adapters, &nvml),
            slots: s
                .worker
                .gpu_slots
                .iter()
                .enumerate()
                .map(|(slot, gpu)| slot_view(slot, &gpu.health()))
                .collect(),
            spool: {
                let usage = *s.worker.spool_usage.borrow();
                SpoolView {
                    bytes: usage.bytes,
                    limit_bytes: usage.limit,
                    full: usage.full(),
                }
            },
            jobs: job_views(&s.worker.running.borrow()),
            mining: mining_view(
                &s.mining,
                s.worker.mining.borrow().as_ref(),
                s.worker.activity.borrow().as_ref(),
                revoked,
            ),
            recent_jobs: tally_rows,
            jobs_total: totals,
            earnings,
            results_pending_report: net.map_or(0, |n| n.unreported),
            uptime_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// The connection line: the local spool is always connected; a
/// coordinator's connection in [`Connection::describe`]'s words.
fn connection_view(source: &SourceView, connection: Option<&Connection>) -> ConnectionView {
    match (source, connection) {
        (SourceView::Spool(dir), _) | (SourceView::Coordinator(dir, _), None) => ConnectionView {
            state: "connected",
            text: format!("Connected (local spool {dir})"),
            coordinator: None,
        },
        (SourceView::Coordinator(url, _), Some(connection)) => {
            let state = match connection {
                Connection::Connecting => "connecting",
                Connection::Connected => "connected",
                Connection::Offline(_) => "offline",
                Connection::Refused(_) => "refused",
                Connection::Revoked(_) => "revoked",
            };
            let text = match connection {
                Connection::Connected => format!("Connected to {url}"),
                other => other.describe(),
            };
            ConnectionView {
                state,
                text,
                coordinator: Some(url.clone()),
            }
        }
    }
}

fn slot_view(slot: usize, health: &pictor_runtime::capabilities::gpu::GpuHealth) -> SlotView {
    SlotView {
        slot,
        health: health.as_str(),
        detail: health.detail(),
    }
}

/// Each adapter with the NVML reading of the same name (each reading used
/// once, in order, so two identical GPUs get one each).
fn gpu_views(adapters: &[Adapter], nvml: &NvmlStatus) -> Vec<AdapterView> {
    let mut samples: Vec<&GpuSample> = match nvml {
        NvmlStatus::Available { gpus, .. } => gpus.iter().collect(),
        NvmlStatus::Unavailable { .. } => Vec::new(),
    };
    adapters
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let sample = samples
                .iter()
                .position(|g| g.name == a.name)
                .map(|i| samples.remove(i));
            AdapterView {
                index,
                name: a.name.clone(),
                backend: a.backend.clone(),
                device_type: a.device_type.clone(),
                telemetry: sample.map(|g| GpuTelemetry {
                    utilization_percent: g.utilization_percent,
                    memory_used_bytes: g.memory_used,
                    memory_total_bytes: g.memory_total,
                    temperature_c: g.temperature_c,
                    power_w: g.power_w.filter(|w| w.is_finite()),
                }),
            }
        })
        .collect()
}

fn job_views(running: &BTreeMap<String, RunningJob>) -> Vec<JobView> {
    running
        .iter()
        .map(|(id, job)| {
            let fraction = if job.progress.fraction.is_finite() {
                job.progress.fraction.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let elapsed_s = job.since.elapsed().as_secs_f64();
            let f = f64::from(fraction);
            JobView {
                id: id.clone(),
                kind: job.kind.clone(),
                gpu: job.gpu,
                fraction,
                message: job.progress.message.clone(),
                elapsed_s,
                eta_s: (f > 0.01 && f < 1.0).then(|| elapsed_s * (1.0 - f) / f),
            }
        })
        .collect()
}

/// The miner's state in the status line's words.
fn mining_view(
    mode: &MiningMode,
    stats: Option<&MiningSummary>,
    activity: Option<&Activity>,
    revoked: bool,
) -> MiningView {
    let stats = stats.cloned().unwrap_or_default();
    let mut view = MiningView {
        state: "off",
        text: String::new(),
        miners: stats.miners,
        connected: stats.connected,
        coin: stats.coin.clone(),
        pool: stats.pool.clone(),
        hashrate_hps: if stats.hashrate_hps.is_finite() {
            stats.hashrate_hps.max(0.0)
        } else {
            0.0
        },
        accepted: stats.accepted,
        rejected: stats.rejected,
    };
    match mode {
        MiningMode::Off(reason) => view.text = format!("off ({reason})"),
        MiningMode::On { .. } if revoked && stats.miners == 0 => {
            view.text = "off (the coordinator revoked this worker's credential)".into()
        }
        MiningMode::On { idle_delay } if stats.miners == 0 => {
            view.state = "waiting";
            view.text = format!("waiting (starts after {} s idle)", idle_delay.as_secs_f64());
        }
        MiningMode::On { .. } => {
            view.state = "mining";
            view.text = if stats.connected {
                format!(
                    "mining {} · {} · {} accepted, {} rejected · pool {}",
                    stats.coin,
                    format_hashrate(view.hashrate_hps),
                    stats.accepted,
                    stats.rejected,
                    stats.pool
                )
            } else {
                // Not connected: the miner's own words (connecting, retrying in …).
                let words = activity
                    .filter(|a| a.label == "mining")
                    .map(|a| a.progress.message.clone())
                    .unwrap_or_default();
                let words = if words.is_empty() {
                    format!("connecting to pool {}", stats.pool)
                } else {
                    words
                };
                format!("mining {} · {words}", stats.coin)
            };
        }
    }
    view
}

/// `0.1 + 0.2` → `0.3`: an amount with at most 8 decimals, no trailing zeros.
pub fn format_amount(value: f64) -> String {
    if !value.is_finite() {
        return "0".into();
    }
    let text = format!("{value:.8}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::activity::SpoolUsage;
    use pictor_runtime::capabilities::progress::Progress;

    /// A test hub and the senders of its running jobs and mining figures.
    pub(crate) type TestHub = (
        Arc<StatusHub>,
        watch::Sender<BTreeMap<String, RunningJob>>,
        watch::Sender<Option<MiningSummary>>,
    );

    /// A hub with two adapters, a spool source, and mining on.
    pub(crate) fn hub(nvml: NvmlStatus) -> TestHub {
        let (running_tx, running) = watch::channel(BTreeMap::new());
        let (stats_tx, mining_stats) = watch::channel(None);
        let history = vec![FinishedJob {
            job: "before-restart".into(),
            kind: "render".into(),
            status: "succeeded".into(),
            failure: None,
            reason: None,
            duration_s: Some(3.5),
            at_ms: 1,
        }];
        let hub = StatusHub::new(StatusSources {
            worker_id: "wkr-7f3a9c".into(),
            name: "studio <rig> 1".into(),
            source: SourceView::Spool("/var/lib/pictor/spool".into()),
            prices: BTreeMap::from([("render".into(), 0.02), ("hello".into(), 0.5)]),
            adapters: vec![
                Adapter {
                    name: "NVIDIA H100 PCIe".into(),
                    backend: "Vulkan".into(),
                    device_type: "DiscreteGpu".into(),
                },
                Adapter {
                    name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                    backend: "Vulkan".into(),
                    device_type: "Cpu".into(),
                },
            ],
            nvml: watch::channel(nvml).1,
            worker: WorkerWatch {
                activity: watch::channel(None).1,
                running,
                mining: mining_stats,
                finished: watch::channel(0).1,
                spool_usage: watch::channel(SpoolUsage {
                    bytes: 3 << 20,
                    limit: 20 << 30,
                })
                .1,
                gpu_slots: Vec::new(),
            },
            mining: MiningMode::On {
                idle_delay: Duration::from_secs(30),
            },
            history,
            sampler: None,
        });
        (hub, running_tx, stats_tx)
    }

    pub(crate) fn h100() -> NvmlStatus {
        NvmlStatus::Available {
            driver: "550.54".into(),
            gpus: vec![GpuSample {
                index: 0,
                name: "NVIDIA H100 PCIe".into(),
                uuid: None,
                memory_total: Some(80 << 30),
                memory_used: Some(20 << 30),
                temperature_c: Some(61),
                utilization_percent: Some(87),
                power_w: Some(301.5),
            }],
        }
    }

    pub(crate) fn finished(job: &str, kind: &str, failure: Option<&str>) -> FinishedJob {
        FinishedJob {
            job: job.into(),
            kind: kind.into(),
            status: if failure.is_some() {
                "failed"
            } else {
                "succeeded"
            }
            .into(),
            failure: failure.map(Into::into),
            reason: failure.map(|f| format!("it {f}")),
            duration_s: Some(1.25),
            at_ms: 2,
        }
    }

    #[test]
    fn the_snapshot_joins_gpus_with_nvml_jobs_mining_and_history() {
        let (hub, running, stats) = hub(h100());
        let s = hub.snapshot();
        assert_eq!(
            (s.worker.id.as_str(), s.connection.state),
            ("wkr-7f3a9c", "connected")
        );
        assert_eq!(
            s.connection.text,
            "Connected (local spool /var/lib/pictor/spool)"
        );
        assert_eq!(s.gpus.len(), 2);
        let t = s.gpus[0].telemetry.as_ref().unwrap();
        assert_eq!(
            (t.utilization_percent, t.temperature_c, t.memory_total_bytes),
            (Some(87), Some(61), Some(80 << 30))
        );
        assert_eq!(s.gpus[1].telemetry, None, "llvmpipe is not an NVIDIA GPU");
        assert_eq!(s.mining.state, "waiting");
        assert_eq!(s.mining.text, "waiting (starts after 30 s idle)");
        assert_eq!(s.recent_jobs.len(), 1, "history from before the restart");
        assert_eq!(
            (s.earnings, s.jobs_total.len()),
            (0.0, 0),
            "counts are since start"
        );

        running.send_replace(BTreeMap::from([(
            "job-1".to_string(),
            RunningJob {
                kind: "render".into(),
                gpu: 0,
                since: Instant::now() - Duration::from_secs(10),
                progress: Progress {
                    fraction: 0.25,
                    message: "tile 3/12".into(),
                },
            },
        )]));
        stats.send_replace(Some(MiningSummary {
            hashrate_hps: 6.41e6,
            accepted: 12,
            pool: "pool.example:3333".into(),
            coin: "btc".into(),
            connected: true,
            miners: 1,
            ..MiningSummary::default()
        }));
        hub.record(&finished("a", "render", None));
        hub.record(&finished("b", "render", Some("timed-out")));
        hub.record(&finished("c", "hello", Some("cancelled")));
        let s = hub.snapshot();
        let job = &s.jobs[0];
        assert_eq!(
            (
                job.id.as_str(),
                job.kind.as_str(),
                job.fraction,
                job.message.as_str()
            ),
            ("job-1", "render", 0.25, "tile 3/12")
        );
        let eta = job.eta_s.unwrap();
        assert!((29.0..31.0).contains(&eta), "{eta}");
        assert_eq!(
            s.mining.text,
            "mining btc · 6.41 MH/s · 12 accepted, 0 rejected · pool pool.example:3333"
        );
        let outcomes: Vec<(&str, &str, f64)> = s
            .recent_jobs
            .iter()
            .map(|r| (r.id.as_str(), r.outcome.as_str(), r.reward))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("c", "cancelled", 0.0),
                ("b", "failed: timed-out", 0.0),
                ("a", "succeeded", 0.02),
                ("before-restart", "succeeded", 0.02)
            ]
        );
        assert_eq!(s.earnings, 0.02);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["worker"]["id"], "wkr-7f3a9c");
        assert_eq!(json["jobs"][0]["kind"], "render");
        assert_eq!(json["recent_jobs"][0]["outcome"], "cancelled");
    }

    #[test]
    fn a_coordinator_connection_reads_like_the_status_line() {
        let (tx, rx) = watch::channel(NetStatus {
            connection: Connection::Connecting,
            download: None,
            unreported: 2,
        });
        let source = SourceView::Coordinator("http://127.0.0.1:8080/".into(), rx);
        let view = |c: &Connection| connection_view(&source, Some(c));
        assert_eq!(
            view(&Connection::Connected).text,
            "Connected to http://127.0.0.1:8080/"
        );
        assert!(
            view(&Connection::Offline("refused".into()))
                .text
                .starts_with("Offline (retrying; results are kept): refused")
        );
        let revoked = view(&Connection::Revoked("revoked by the owner".into()));
        assert_eq!(
            (revoked.state, revoked.text.as_str()),
            ("revoked", "Revoked: revoked by the owner")
        );
        drop(tx);
        let off = mining_view(
            &MiningMode::On {
                idle_delay: Duration::ZERO,
            },
            None,
            None,
            true,
        );
        assert_eq!(
            (off.state, off.text.as_str()),
            (
                "off",
                "off (the coordinator revoked this worker's credential)"
            )
        );
        let off = mining_view(&MiningMode::Off("no NVIDIA GPU".into()), None, None, false);
        assert_eq!(off.text, "off (no NVIDIA GPU)");
    }

    #[test]
    fn amounts_read_well() {
        assert_eq!(format_amount(0.1 + 0.2), "0.3");
        assert_eq!(format_amount(0.0), "0");
        assert_eq!(format_amount(2.0), "2");
        assert_eq!(format_amount(0.02), "0.02");
        assert_eq!(format_amount(f64::NAN), "0");
    }
}
