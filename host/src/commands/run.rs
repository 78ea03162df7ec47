//! `pictor-host run`: the worker. Reads worker.json, says who it is and
//! what it has, then runs jobs from its source until stopped (Ctrl-C or
//! SIGTERM: the running job is asked to stop and checkpoint, the journal is
//! flushed, exit 0). With `status.listen` (or `--status-listen`) it also
//! serves the owner's status page and metrics. If the coordinator revokes
//! the worker's credential it stops the same way, keeps every result, and
//! exits with [`EXIT_REVOKED`](super::EXIT_REVOKED).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use pictor_host::activity::Activity;
use pictor_host::blobs::cache::BlobCache;
use pictor_host::blobs::fetch::{FetchOptions, Fetcher};
use pictor_host::config::{self as worker_config, JobSource, WorkerConfig};
use pictor_host::coordinator::client::CoordinatorClient;
use pictor_host::coordinator::{Connection, NetStatus, NetworkSource, SourceParts};
use pictor_host::mining::download::miner_from_coordinator;
use pictor_host::mining::{self, Eligibility, MinerSource, MiningSummary, format_hashrate};
use pictor_host::spool::Spool;
use pictor_host::status::{self, Adapter, MiningMode, SourceView, StatusHub, StatusSources};
use pictor_host::telemetry::nvml::{self, NvmlSampler};
use pictor_host::worker::Worker;
use pictor_protocol::api::{GpuDescription, RegisterRequest};
use pictor_runtime::capabilities::gpu::{GpuProvider, device};
use pictor_runtime::{Runtime, RuntimeConfig};
use tokio::sync::watch;

use super::wait_for_signal;

/// Run the worker.
#[derive(Args)]
pub struct RunCommand {
    /// The worker's config file.
    #[arg(long, value_name = "worker.json")]
    config: PathBuf,
    /// Exit once no job is queued (for demos and scripts); without it, serve until stopped.
    #[arg(long)]
    until_idle: bool,
    /// Serve the status page and /metrics on this loopback address, e.g.
    /// 127.0.0.1:9187 (port 0: any free port); overrides `status.listen`.
    #[arg(long, value_name = "ADDR")]
    status_listen: Option<String>,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let config = WorkerConfig::load(&self.config)?;
        pictor_runtime::engine::raise_open_file_limit();
        let status_listen = match &self.status_listen {
            Some(text) => Some(
                worker_config::status_listen("--status-listen", text)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => config.status_listen,
        };
        // Bound first: a taken port is an error before anything starts.
        let status_listener = status_listen.map(status::server::bind).transpose()?;
        eprintln!(
            "Worker {} ({}) · Connecting…",
            config.worker_id, config.name
        );
        let spool_dir = config.source.spool().to_path_buf();
        let spool = Spool::open(&spool_dir)?;
        match &config.source {
            JobSource::Spool(_) => eprintln!(
                "Worker {} · Connected (local spool {})",
                config.worker_id,
                spool_dir.display()
            ),
            JobSource::Coordinator { url, .. } => {
                eprintln!(
                    "Worker {} · coordinator {url} (working folder {})",
                    config.worker_id,
                    spool_dir.display()
                )
            }
        }

        let adapters = device::adapters(&device::instance());
        if adapters.is_empty() {
            eprintln!("GPUs: none found (GPU jobs will fail with `no GPU`)");
        }
        for (i, adapter) in adapters.iter().enumerate() {
            let info = adapter.get_info();
            eprintln!(
                "GPU [{i}] {} ({:?}, {:?})",
                info.name, info.backend, info.device_type
            );
        }
        let nvml = nvml::sample();
        let runtime = Arc::new(Runtime::new(&RuntimeConfig {
            cache_dir: RuntimeConfig::default_cache_dir(),
        })?);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        // The coordinator client and the download cache, made once: the
        // miner may come from the coordinator too.
        let network = match &config.source {
            JobSource::Coordinator { url, token, .. } => {
                let http = pictor_host::blobs::http_client(concat!(
                    "pictor-host/",
                    env!("CARGO_PKG_VERSION")
                ))?;
                let cache = Arc::new(BlobCache::open(
                    spool_dir.join("cache"),
                    config.cache_bytes,
                )?);
                let fetcher = Arc::new(Fetcher::new(http.clone(), cache, FetchOptions::default()));
                Some((
                    CoordinatorClient::new(http, url.clone(), token.clone()),
                    fetcher,
                ))
            }
            JobSource::Spool(_) => None,
        };
        // Held while the worker runs: the downloaded miner stays pinned.
        let mut _miner_blob = None;
        let mining = match mining::requirements(&config, &nvml) {
            Err(reason) => Eligibility::Off(reason),
            Ok(MinerSource::File(path)) => mining::plan(&config, &path, &runtime),
            Ok(MinerSource::Coordinator(digest)) => match &network {
                None => Eligibility::Off("`mining.plugin_sha256` needs `coordinator.url`".into()),
                Some((client, fetcher)) => {
                    eprintln!(
                        "Mining: downloading the mining plugin {digest} from the coordinator…"
                    );
                    match tokio.block_on(miner_from_coordinator(client, fetcher, digest)) {
                        Ok(blob) => {
                            let plan = mining::plan(&config, blob.path(), &runtime);
                            _miner_blob = Some(blob);
                            plan
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "mining off");
                            Eligibility::Off(reason)
                        }
                    }
                }
            },
        };
        let mining_mode = match &mining {
            Eligibility::Off(reason) => {
                eprintln!("Mining: off ({reason})");
                MiningMode::Off(reason.clone())
            }
            Eligibility::Mine(plan) => {
                let m = config.mining.as_ref();
                eprintln!(
                    "Mining: on after {} s idle: {} on {}:{}",
                    plan.idle_delay.as_secs_f64(),
                    m.map_or("", |m| m.coin.as_str()),
                    m.map_or("", |m| m.pool_host.as_str()),
                    m.map_or(0, |m| m.pool_port)
                );
                if m.is_some_and(|m| !m.require_nvidia) {
                    eprintln!(
                        "WARNING: mining.require_nvidia is false: mining on a non-NVIDIA adapter (for testing only)"
                    );
                }
                MiningMode::On {
                    idle_delay: plan.idle_delay,
                }
            }
        };
        let gpus: Vec<Arc<GpuProvider>> = config
            .gpus
            .iter()
            .map(|g| Arc::new(GpuProvider::new(g.clone())))
            .collect();
        eprintln!(
            "Scheduling: {} GPU slot group(s) × {} job(s) per GPU",
            gpus.len(),
            config.jobs_per_gpu
        );
        let slots = gpus.len() as u32 * config.jobs_per_gpu;
        let registration = network
            .as_ref()
            .map(|_| registration(&config, &adapters, &nvml, slots));
        let worker_id = config.worker_id.clone();
        let coordinator_url = match &config.source {
            JobSource::Coordinator { url, .. } => Some(url.to_string()),
            JobSource::Spool(_) => None,
        };
        let status_parts = status_listener.is_some().then(|| StatusParts {
            worker_id: config.worker_id.clone(),
            name: config.name.clone(),
            prices: config.prices.clone(),
            coordinator: coordinator_url.clone(),
            spool: spool_dir.display().to_string(),
            adapters: adapters
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    Adapter {
                        name: info.name,
                        backend: format!("{:?}", info.backend),
                        device_type: format!("{:?}", info.device_type),
                    }
                })
                .collect(),
        });
        let mut worker = Worker::new(config, runtime, gpus.clone(), spool.clone())?;
        if let Eligibility::Mine(plan) = mining {
            worker = worker.with_mining(*plan);
        }
        let activity = worker.activity();
        let mining_stats = worker.mining_stats();

        let (summary, unreported, revoked) = tokio.block_on(async {
            let (stop_tx, stop_rx) = watch::channel(false);
            let source = match (network, registration) {
                (Some((client, fetcher)), Some(mut registration)) => {
                    registration.public_key = worker.public_key();
                    Some(NetworkSource::new(SourceParts {
                        client,
                        fetcher,
                        spool,
                        journal: worker.journal(),
                        registration,
                        running: worker.running_jobs(),
                        mining: worker.mining_stats(),
                        activity: activity.clone(),
                        finished: worker.finished_jobs(),
                        wake_worker: worker.waker(),
                        gpu_slots: worker.gpu_slots(),
                        spool_usage: worker.spool_usage(),
                    })?)
                }
                _ => None,
            };
            let net_status = source.as_ref().map(|s| s.status());
            // The status page, serving until everything else has stopped.
            let (server_stop, server_stop_rx) = watch::channel(false);
            let server = match (status_listener, status_parts) {
                (Some(listener), Some(parts)) => {
                    let url = status::server::url(listener.local_addr()?);
                    let hub = StatusHub::new(parts.sources(
                        &worker,
                        mining_mode,
                        net_status.clone(),
                        activity.clone(),
                    ));
                    let follow = tokio::spawn(Arc::clone(&hub).follow(worker.ended_jobs()));
                    let serve = tokio::spawn(status::server::serve(listener, hub, server_stop_rx));
                    println!("Status page: {url}");
                    let _ = std::io::stdout().flush();
                    tracing::info!(%url, "status page and /metrics");
                    Some((serve, follow))
                }
                _ => None,
            };
            let signals = tokio::spawn({
                let stop_tx = stop_tx.clone();
                async move {
                    wait_for_signal().await;
                    eprintln!("\nstopping: the running job is asked to stop and checkpoint");
                    let _ = stop_tx.send(true);
                }
            });
            // The owner's "Worker <id> · Connected" once the coordinator
            // first accepts the worker; a revoked credential stops the
            // worker like a signal does.
            let revocation = net_status.clone().map(|mut net| {
                let stop_tx = stop_tx.clone();
                let (worker_id, url) = (
                    worker_id.clone(),
                    coordinator_url.clone().unwrap_or_default(),
                );
                tokio::spawn(async move {
                    let first = net
                        .wait_for(|s| {
                            matches!(s.connection, Connection::Connected | Connection::Revoked(_))
                        })
                        .await
                        .map(|s| s.connection.clone());
                    if let Ok(Connection::Connected) = first {
                        eprintln!("Worker {worker_id} · Connected to {url}");
                    }
                    if let Ok(status) = net
                        .wait_for(|s| matches!(s.connection, Connection::Revoked(_)))
                        .await
                    {
                        eprintln!(
                            "\n{}: stopping (no new jobs, the miner stops, results are kept)",
                            status.connection.describe()
                        );
                        let _ = stop_tx.send(true);
                    }
                })
            });
            let bar = std::io::stderr()
                .is_terminal()
                .then(|| tokio::spawn(show_status(activity, mining_stats, net_status.clone())));
            let (summary, unreported) = match source {
                None => (worker.run(self.until_idle, stop_rx).await, Ok(0)),
                Some(source) => {
                    // The worker serves until stopped; with --until-idle the
                    // network source stops it once the coordinator has
                    // nothing more and every result is reported.
                    let (idle_tx, mut idle_rx) = watch::channel(false);
                    let idle = tokio::spawn(async move {
                        if idle_rx.wait_for(|idle| *idle).await.is_ok() {
                            let _ = stop_tx.send(true);
                        }
                    });
                    let net = source.run(self.until_idle, stop_rx.clone(), idle_tx);
                    let (summary, unreported) = tokio::join!(worker.run(false, stop_rx), net);
                    idle.abort();
                    (summary, unreported.map_err(anyhow::Error::from))
                }
            };
            signals.abort();
            if let Some(revocation) = revocation {
                revocation.abort();
            }
            if let Some(bar) = bar {
                bar.abort();
                eprint!("\r\x1b[2K");
            }
            if let Some((serve, follow)) = server {
                server_stop.send_replace(true);
                match tokio::time::timeout(Duration::from_secs(3), serve).await {
                    Ok(Ok(Err(e))) => tracing::warn!(error = %e, "status page"),
                    Err(_) => tracing::warn!("status page did not stop within 3 s"),
                    _ => {}
                }
                follow.abort();
            }
            let revoked = net_status.and_then(|n| match &n.borrow().connection {
                Connection::Revoked(message) => Some(message.clone()),
                _ => None,
            });
            anyhow::Ok((summary?, unreported?, revoked))
        })?;
        tokio.shutdown_timeout(Duration::from_secs(10));
        drop(gpus);
        eprintln!(
            "Worker stopped: {} job(s) finished ({} failed), {} interrupted (they resume on the next start)",
            summary.finished, summary.failed, summary.interrupted
        );
        if unreported > 0 {
            eprintln!(
                "{unreported} result(s) not yet reported to the coordinator: they are kept and reported on the next start"
            );
        }
        if let Some(message) = revoked {
            let error = format!(
                "worker {worker_id}: the coordinator revoked this worker's credential ({message}); import a new worker.json from the portal"
            );
            tracing::error!(worker = %worker_id, %message, "credential revoked");
            eprintln!("error: {error}");
            return Ok(ExitCode::from(super::EXIT_REVOKED));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What the status page needs from the config and the start-up probes.
struct StatusParts {
    worker_id: String,
    name: String,
    prices: std::collections::BTreeMap<String, f64>,
    coordinator: Option<String>,
    spool: String,
    adapters: Vec<Adapter>,
}

impl StatusParts {
    /// The status page's sources, with the worker's channels; NVML is
    /// sampled every 2 s on its own thread for as long as the page lives.
    fn sources(
        self,
        worker: &Worker,
        mining: MiningMode,
        net: Option<watch::Receiver<NetStatus>>,
        activity: watch::Receiver<Option<Activity>>,
    ) -> StatusSources {
        let sampler = NvmlSampler::start(Duration::from_secs(2));
        let source = match (self.coordinator, net) {
            (Some(url), Some(net)) => SourceView::Coordinator(url, net),
            _ => SourceView::Spool(self.spool),
        };
        StatusSources {
            worker_id: self.worker_id,
            name: self.name,
            source,
            prices: self.prices,
            adapters: self.adapters,
            nvml: sampler.subscribe(),
            running: worker.running_jobs(),
            activity,
            mining,
            mining_stats: worker.mining_stats(),
            history: worker.job_history().to_vec(),
            slots: worker.gpu_slots(),
            spool_usage: worker.spool_usage(),
            sampler: Some(sampler),
        }
    }
}

/// How this worker introduces itself to the coordinator (the public key
/// is filled in once the worker key is loaded).
fn registration(
    config: &WorkerConfig,
    adapters: &[wgpu::Adapter],
    nvml: &nvml::NvmlStatus,
    slots: u32,
) -> RegisterRequest {
    let nvml_memory = |name: &str| match nvml {
        nvml::NvmlStatus::Available { gpus, .. } => gpus
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.memory_total)
            .map(|b| b >> 20),
        nvml::NvmlStatus::Unavailable { .. } => None,
    };
    RegisterRequest {
        worker_id: config.worker_id.clone(),
        name: config.name.clone(),
        public_key: String::new(),
        host_version: concat!("pictor-host ", env!("CARGO_PKG_VERSION")).to_string(),
        gpus: adapters
            .iter()
            .map(|a| {
                let info = a.get_info();
                GpuDescription {
                    memory_mib: nvml_memory(&info.name),
                    name: info.name,
                    backend: format!("{:?}", info.backend),
                }
            })
            .collect(),
        kinds: config.job_kinds.clone().unwrap_or_default(),
        prices: config.prices.clone(),
        slots,
    }
}

/// One live status line on a terminal: job, kind, progress bar, ETA and
/// message; or the miner's hashrate, shares and pool; or idle; then, with
/// a coordinator, the connection, the download in progress and results
/// waiting to be reported. Redrawn every second.
async fn show_status(
    mut rx: watch::Receiver<Option<Activity>>,
    mining: watch::Receiver<Option<MiningSummary>>,
    net: Option<watch::Receiver<NetStatus>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let line = match rx.borrow_and_update().clone() {
            None => "idle".to_string(),
            Some(a) if a.label == "mining" => match mining.borrow().as_ref() {
                Some(m) if m.connected => format!(
                    "mining {} · {} · {} accepted, {} rejected · pool {}",
                    m.coin,
                    format_hashrate(m.hashrate_hps),
                    m.accepted,
                    m.rejected,
                    m.pool
                ),
                // Not connected: the miner's own words (connecting, retrying in …).
                _ => format!("mining · {}", a.progress.message),
            },
            Some(a) => {
                let f = a.progress.fraction;
                let filled = (f * 20.0).round() as usize;
                let elapsed = a.since.elapsed().as_secs_f64();
                let eta = if f > 0.01 && f < 1.0 {
                    format!(
                        " · ETA {:.0} s",
                        elapsed * f64::from(1.0 - f) / f64::from(f)
                    )
                } else {
                    String::new()
                };
                format!(
                    "{} [{}{}] {:>3.0}%{eta} · {}",
                    a.label,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    f * 100.0,
                    a.progress.message
                )
            }
        };
        let net = net
            .as_ref()
            .map(|n| network_status(&n.borrow()))
            .unwrap_or_default();
        eprint!("\r\x1b[2K{line}{net}");
        let _ = std::io::stderr().flush();
    }
}

/// The network part of the status line.
fn network_status(status: &NetStatus) -> String {
    let mut line = match &status.connection {
        // The reason is in the log; the line stays short.
        Connection::Offline(_) => {
            " · coordinator: Offline (retrying; results are kept)".to_string()
        }
        other => format!(" · coordinator: {}", other.describe()),
    };
    if let Some(d) = &status.download {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let f = if d.bytes_total > 0 {
            d.bytes_done as f64 / d.bytes_total as f64
        } else {
            0.0
        };
        let filled = (f * 10.0).round() as usize;
        line.push_str(&format!(
            " · ↓ [{}{}] {:.1}/{:.1} MiB",
            "#".repeat(filled.min(10)),
            "-".repeat(10 - filled.min(10)),
            mib(d.bytes_done),
            mib(d.bytes_total)
        ));
    }
    if status.unreported > 0 {
        line.push_str(&format!(" · {} to report", status.unreported));
    }
    line
}
