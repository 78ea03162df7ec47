//! A whole worker node, composed: everything `pictor-host run` starts and
//! stops, so the CLI only maps flags in and errors out.
//!
//! [`Node::build`] opens the spool (and, with a coordinator, its client and
//! blob cache), finds the GPUs, samples NVML, builds the wasm runtime,
//! decides whether to mine (downloading the miner when the config names it
//! by digest) and makes the worker. [`Node::run`] then runs the worker with
//! its job source, the status server, the terminal status line, signal
//! handling and revocation, all under one [`CancellationToken`] and one
//! [`TaskTracker`]: whatever stops the node (a signal, a revoked
//! credential, `until_idle`) cancels the token, and every task ends
//! through it before `run` returns. The node's own tokio runtime is shut
//! down before its GPU devices are dropped, on the calling thread.
//!
//! What the owner should hear comes out as [`NodeEvent`]s, in order.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pictor_protocol::api::{GpuDescription, RegisterRequest};
use pictor_protocol::digest::Sha256Digest;
use pictor_runtime::capabilities::gpu::{GpuProvider, device};
use pictor_runtime::{Runtime, RuntimeConfig, RuntimeError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blobs::cache::{BlobCache, CacheError, PinnedBlob};
use crate::blobs::fetch::{FetchOptions, Fetcher};
use crate::config::{JobSource, WorkerConfig};
use crate::coordinator::client::CoordinatorClient;
use crate::coordinator::{Connection, NetStatus, NetworkError, NetworkSource, SourceParts};
use crate::mining::{self, Eligibility, MinerSource};
use crate::spool::{Spool, SpoolError};
use crate::status::server::StatusError;
use crate::status::{self, Adapter, MiningMode, SourceView, StatusHub, StatusSources};
use crate::telemetry::nvml::{self, NvmlSampler, NvmlStatus};
use crate::worker::{RunSummary, Worker, WorkerError};

/// How long the status server may take to finish its requests at the end.
const SERVER_STOP: Duration = Duration::from_secs(3);
/// How long the node's tasks may take to end once it stops.
const RUNTIME_STOP: Duration = Duration::from_secs(10);
/// How often the status page's NVML reading is refreshed.
const NVML_PERIOD: Duration = Duration::from_secs(2);

/// What a node is started with.
pub struct NodeOptions {
    /// The validated `worker.json`.
    pub config: WorkerConfig,
    /// A bound loopback listener for the status page and `/metrics`.
    pub status_listener: Option<TcpListener>,
    /// Stop once no job is queued (and, with a coordinator, everything is
    /// reported); otherwise serve until stopped.
    pub until_idle: bool,
    /// Stop on Ctrl-C or SIGTERM.
    pub stop_on_signals: bool,
    /// Draw the live status line on stderr (for a terminal).
    pub status_line: bool,
    /// The compiled-component cache folder; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl NodeOptions {
    /// Options for `config` with the defaults of `pictor-host run`: no
    /// status page, serve until stopped, stop on signals, no status line,
    /// the default component cache.
    pub fn new(config: WorkerConfig) -> Self {
        NodeOptions {
            config,
            status_listener: None,
            until_idle: false,
            stop_on_signals: true,
            status_line: false,
            cache_dir: RuntimeConfig::default_cache_dir(),
        }
    }
}

/// Something the owner should hear about, in the order it happens.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeEvent<'a> {
    /// The working folder is open; jobs come from it, or from the
    /// coordinator at `coordinator` through it.
    SpoolOpened {
        /// The spool folder.
        spool: &'a Path,
        /// The coordinator's URL, if jobs come from one.
        coordinator: Option<&'a str>,
    },
    /// The GPU adapters found (none: GPU jobs fail with `no GPU`).
    Adapters(&'a [Adapter]),
    /// The miner named by `mining.plugin_sha256` is being downloaded.
    DownloadingMiner(&'a Sha256Digest),
    /// Whether the node mines when idle, and why not.
    Mining(&'a MiningMode),
    /// The scheduling: GPU slot groups × jobs per GPU.
    Scheduling {
        /// Slot groups, one per configured GPU.
        gpus: usize,
        /// Jobs each GPU runs at once.
        jobs_per_gpu: u32,
    },
    /// The status page and `/metrics` are served at this URL.
    StatusPage(&'a str),
    /// The coordinator accepted the worker for the first time.
    Connected {
        /// The coordinator's URL.
        url: &'a str,
    },
    /// The node is stopping, and why.
    Stopping(StopCause<'a>),
}

/// Why a node stops before it is done.
#[derive(Debug, Clone, Copy)]
pub enum StopCause<'a> {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// The coordinator revoked the credential (its connection line).
    Revoked(&'a str),
}

/// Where a node's events go.
pub type EventSink = Arc<dyn Fn(NodeEvent<'_>) + Send + Sync>;

/// Why a node could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The spool folder could not be opened or used.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The wasm runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The node's async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Tokio(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The download cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The worker could not start or stopped on an error.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The coordinator side could not start or stopped on an error.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The status server could not start.
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// How a node's run ended.
#[derive(Debug)]
pub struct NodeReport {
    /// Jobs finished, failed and interrupted.
    pub summary: RunSummary,
    /// Results not yet reported to the coordinator (kept for the next start).
    pub unreported: usize,
    /// The coordinator's message, if it revoked the credential.
    pub revoked: Option<String>,
}

/// The coordinator client and download cache, made once (the miner may
/// come from the coordinator too).
struct Remote {
    client: CoordinatorClient,
    fetcher: Arc<Fetcher>,
    url: String,
}

/// A node, built and ready to run.
pub struct Node {
    tokio: tokio::runtime::Runtime,
    parts: Parts,
    gpus: Vec<Arc<GpuProvider>>,
    /// Held while the node runs: the downloaded miner stays pinned.
    _miner_blob: Option<PinnedBlob>,
}

impl Node {
    /// Starts everything up to the worker loop; `events` hears each step.
    pub fn build(options: NodeOptions, events: EventSink) -> Result<Node, NodeError> {
        let NodeOptions {
            config,
            status_listener,
            until_idle,
            stop_on_signals,
            status_line,
            cache_dir,
        } = options;
        let spool_dir = config.source.spool().to_path_buf();
        let spool = Spool::open(&spool_dir)?;
        let coordinator_url = match &config.source {
            JobSource::Coordinator { url, .. } => Some(url.to_string()),
            JobSource::Spool(_) => None,
        };
        events(NodeEvent::SpoolOpened {
            spool: &spool_dir,
            coordinator: coordinator_url.as_deref(),
        });

        let adapters: Vec<Adapter> = device::adapters(&device::instance())
            .iter()
            .map(|a| {
                let info = a.get_info();
                Adapter {
                    name: info.name,
                    backend: format!("{:?}", info.backend),
                    device_type: format!("{:?}", info.device_type),
                }
            })
            .collect();
        events(NodeEvent::Adapters(&adapters));
        let nvml = nvml::sample();
        let runtime = Arc::new(Runtime::new(&RuntimeConfig { cache_dir })?);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(NodeError::Tokio)?;
        let remote = match &config.source {
            JobSource::Coordinator { url, token, .. } => {
                let http =
                    crate::blobs::http_client(concat!("pictor-host/", env!("CARGO_PKG_VERSION")))?;
                let cache = Arc::new(BlobCache::open(
                    spool_dir.join("cache"),
                    config.cache_bytes,
                )?);
                let fetcher = Arc::new(Fetcher::new(http.clone(), cache, FetchOptions::default()));
                Some(Remote {
                    client: CoordinatorClient::new(http, url.clone(), token.clone()),
                    fetcher,
                    url: url.to_string(),
                })
            }
            JobSource::Spool(_) => None,
        };

        // A miner named by digest is downloaded first; everything else is
        // what `mining::eligibility` decides.
        let mut miner_blob = None;
        let eligibility = match mining::requirements(&config, &nvml) {
            Ok(MinerSource::Coordinator(digest)) => match &remote {
                None => Eligibility::Off("`mining.plugin_sha256` needs `coordinator.url`".into()),
                Some(remote) => {
                    events(NodeEvent::DownloadingMiner(&digest));
                    let download = mining::download::miner_from_coordinator(
                        &remote.client,
                        &remote.fetcher,
                        digest,
                    );
                    match tokio.block_on(download) {
                        Ok(blob) => {
                            let plan = mining::plan(&config, blob.path(), &runtime);
                            miner_blob = Some(blob);
                            plan
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "mining off");
                            Eligibility::Off(reason.to_string())
                        }
                    }
                }
            },
            _ => mining::eligibility(&config, &nvml, &runtime),
        };
        let mining_mode = match &eligibility {
            Eligibility::Off(reason) => MiningMode::Off(reason.clone()),
            Eligibility::Mine(plan) => MiningMode::On {
                idle_delay: plan.idle_delay,
            },
        };
        events(NodeEvent::Mining(&mining_mode));

        let gpus: Vec<Arc<GpuProvider>> = config
            .gpus
            .iter()
            .map(|g| Arc::new(GpuProvider::new(g.clone())))
            .collect();
        events(NodeEvent::Scheduling {
            gpus: gpus.len(),
            jobs_per_gpu: config.jobs_per_gpu,
        });
        let slots = gpus.len() as u32 * config.jobs_per_gpu;
        let registration = remote
            .as_ref()
            .map(|_| registration(&config, &adapters, &nvml, slots));
        // What the status page shows that the worker does not publish.
        let page = status_listener.map(|listener| {
            let facts = PageFacts {
                worker_id: config.worker_id.to_string(),
                name: config.name.clone(),
                prices: config.prices.clone(),
                adapters,
                mining: mining_mode,
                coordinator: coordinator_url.clone(),
                spool: spool_dir.display().to_string(),
            };
            (listener, facts)
        });
        let mut worker = Worker::new(config, runtime, gpus.clone(), spool.clone())?;
        if let Eligibility::Mine(plan) = eligibility {
            worker = worker.with_mining(*plan);
        }
        Ok(Node {
            tokio,
            parts: Parts {
                worker,
                spool,
                remote,
                registration,
                page,
                until_idle,
                stop_on_signals,
                status_line,
                events,
            },
            gpus,
            _miner_blob: miner_blob,
        })
    }

    /// Runs the node until it is stopped (or, with `until_idle`, until it
    /// is idle), then stops every part of it in order.
    pub fn run(self) -> Result<NodeReport, NodeError> {
        let Node {
            tokio,
            parts,
            gpus,
            _miner_blob,
        } = self;
        let report = tokio.block_on(run_parts(parts));
        tokio.shutdown_timeout(RUNTIME_STOP);
        // The GPU devices go last, once nothing can use them.
        drop(gpus);
        report
    }
}

/// What [`run_parts`] runs: everything the node made but its async
/// runtime, its GPU devices and the pinned miner.
struct Parts {
    worker: Worker,
    spool: Spool,
    remote: Option<Remote>,
    registration: Option<RegisterRequest>,
    page: Option<(TcpListener, PageFacts)>,
    until_idle: bool,
    stop_on_signals: bool,
    status_line: bool,
    events: EventSink,
}

async fn run_parts(parts: Parts) -> Result<NodeReport, NodeError> {
    let Parts {
        worker,
        spool,
        remote,
        registration,
        page,
        until_idle,
        stop_on_signals,
        status_line,
        events,
    } = parts;
    // Cancelled by whatever stops the node; every task ends through it.
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let source = match (remote, registration) {
        (Some(remote), Some(mut registration)) => {
            registration.public_key = worker.public_key();
            let source = NetworkSource::new(SourceParts {
                client: remote.client,
                fetcher: remote.fetcher,
                spool,
                journal: worker.journal(),
                registration,
                worker: worker.watch(),
                wake_worker: worker.waker(),
            })?;
            Some((source, remote.url))
        }
        _ => None,
    };
    let net_status = source.as_ref().map(|(s, _)| s.status());

    // The status page, serving until everything else has stopped.
    let server_stop = CancellationToken::new();
    let server = match page {
        Some((listener, page)) => {
            let url = status::server::url(listener.local_addr().map_err(StatusError::Serve)?);
            let hub = StatusHub::new(page.sources(&worker, net_status.clone()));
            let (follow, ended, stop) =
                (Arc::clone(&hub), worker.ended_jobs(), server_stop.clone());
            tasks.spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = follow.follow(ended) => {}
                }
            });
            let serve = tokio::spawn(status::server::serve(listener, hub, server_stop.clone()));
            events(NodeEvent::StatusPage(&url));
            tracing::info!(%url, "status page and /metrics");
            Some(serve)
        }
        None => None,
    };
    if stop_on_signals {
        let (shutdown, events) = (shutdown.clone(), Arc::clone(&events));
        tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = pictor_cli::wait_for_signal() => {
                    events(NodeEvent::Stopping(StopCause::Signal));
                    shutdown.cancel();
                }
            }
        });
    }
    // "Connected" once the coordinator first accepts the worker; a revoked
    // credential stops the node as a signal does.
    if let (Some(net), Some((_, url))) = (net_status.clone(), &source) {
        let (shutdown, events, url) = (shutdown.clone(), Arc::clone(&events), url.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = follow_connection(net, &url, &events, &shutdown) => {}
            }
        });
    }
    if status_line {
        let (watch, net, shutdown) = (worker.watch(), net_status.clone(), shutdown.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = status::line::show(watch, net) => {}
            }
            status::line::clear();
        });
    }

    let (summary, unreported) = match source {
        None => (worker.run(until_idle, shutdown.clone()).await, Ok(0)),
        Some((source, _)) => {
            // The worker serves until stopped; with `until_idle` the
            // coordinator side says when it is idle, and that stops the node.
            let (idle_tx, mut idle_rx) = watch::channel(false);
            let idle = shutdown.clone();
            tasks.spawn(async move {
                tokio::select! {
                    () = idle.cancelled() => {}
                    done = idle_rx.wait_for(|idle| *idle) => if done.is_ok() { idle.cancel() },
                }
            });
            let net = source.run(until_idle, shutdown.clone(), idle_tx);
            let (summary, unreported) = tokio::join!(worker.run(false, shutdown.clone()), net);
            (summary, unreported.map_err(NodeError::from))
        }
    };
    // The worker has stopped: everything else stops with it, the status
    // page last (it answers until then).
    shutdown.cancel();
    server_stop.cancel();
    if let Some(serve) = server {
        match tokio::time::timeout(SERVER_STOP, serve).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "status page"),
            Err(_) => tracing::warn!("status page did not stop within 3 s"),
            _ => {}
        }
    }
    tasks.close();
    tasks.wait().await;
    let revoked = net_status.and_then(|n| match &n.borrow().connection {
        Connection::Revoked(message) => Some(message.clone()),
        _ => None,
    });
    Ok(NodeReport {
        summary: summary?,
        unreported: unreported?,
        revoked,
    })
}

/// Tells the owner when the coordinator first accepts the worker, and stops
/// the node when it revokes the credential.
async fn follow_connection(
    mut net: watch::Receiver<NetStatus>,
    url: &str,
    events: &EventSink,
    shutdown: &CancellationToken,
) {
    let first = net
        .wait_for(|s| matches!(s.connection, Connection::Connected | Connection::Revoked(_)))
        .await
        .map(|s| s.connection.clone());
    if let Ok(Connection::Connected) = first {
        events(NodeEvent::Connected { url });
    }
    let revoked = net
        .wait_for(|s| matches!(s.connection, Connection::Revoked(_)))
        .await
        .map(|s| s.connection.describe());
    if let Ok(line) = revoked {
        events(NodeEvent::Stopping(StopCause::Revoked(&line)));
        shutdown.cancel();
    }
}

/// What the status page shows that the worker does not publish.
struct PageFacts {
    worker_id: String,
    name: String,
    prices: std::collections::BTreeMap<String, f64>,
    adapters: Vec<Adapter>,
    mining: MiningMode,
    coordinator: Option<String>,
    spool: String,
}

impl PageFacts {
    /// The page's sources, with the worker's channels; NVML is sampled on
    /// its own thread for as long as the page lives.
    fn sources(self, worker: &Worker, net: Option<watch::Receiver<NetStatus>>) -> StatusSources {
        let sampler = NvmlSampler::start(NVML_PERIOD);
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
            worker: worker.watch(),
            mining: self.mining,
            history: worker.job_history().to_vec(),
            sampler: Some(sampler),
        }
    }
}

/// How this worker introduces itself to the coordinator (the public key
/// is filled in once the worker key is loaded).
fn registration(
    config: &WorkerConfig,
    adapters: &[Adapter],
    nvml: &NvmlStatus,
    slots: u32,
) -> RegisterRequest {
    let nvml_memory = |name: &str| match nvml {
        NvmlStatus::Available { gpus, .. } => gpus
            .iter()
            .find(|g| g.name == name)
            .and_then(|g| g.memory_total)
            .map(|b| b >> 20),
        NvmlStatus::Unavailable { .. } => None,
    };
    RegisterRequest {
        worker_id: config.worker_id.to_string(),
        name: config.name.clone(),
        public_key: String::new(),
        host_version: concat!("pictor-host ", env!("CARGO_PKG_VERSION")).to_string(),
        gpus: adapters
            .iter()
            .map(|a| GpuDescription {
                memory_mib: nvml_memory(&a.name),
                name: a.name.clone(),
                backend: a.backend.clone(),
            })
            .collect(),
        kinds: config
            .job_kinds
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
        prices: config.prices.clone(),
        slots,
    }
}
