//! Starting and stopping a coordinator: open the data folder, store and
//! blobs, bind, serve, expire leases and collect unreferenced blobs in the
//! background, and shut down gracefully (long polls end at once, in-flight
//! requests finish).
//!
//! Connections are served by hyper directly (HTTP/1.1) rather than through
//! `axum::serve`, for the bounds axum does not set: a header read timeout
//! (which also closes idle keep-alive connections) and a stall timeout on
//! writes ([`crate::limits::stall`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use pictor_protocol::Sha256Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::auth::{Auth, Credentials};
use crate::blobs::{BlobError, BlobStore};
use crate::config::Config;
use crate::datadir::{DataDir, DataDirError};
use crate::faults::Faults;
use crate::gc::{self, ReconcileError};
use crate::limits::millis;
use crate::limits::polls::PollSlots;
use crate::limits::quota::Uploads;
use crate::limits::stall::StallIo;
use crate::scheduler::{self, Rules};
use crate::state::{AppState, now_ms};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, transaction};

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder.
    #[error("data folder: {0}")]
    DataDir(#[from] DataDirError),
    /// The store.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The blob store.
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    /// The blob records could not be brought in line with the folder.
    #[error("blob records: {0}")]
    Reconcile(#[from] ReconcileError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The settings are inconsistent.
    #[error("{0}")]
    Config(String),
    /// The miner plugin could not be put into the blob store.
    #[error("miner plugin {}: {message}", path.display())]
    MinerPlugin {
        /// The file given with `--miner-plugin`.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A coordinator serving in the background.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The base URL clients use.
    pub url: String,
    /// The creator token.
    pub creator_token: String,
    /// The farm's worker token.
    pub worker_token: String,
    /// The data folder.
    pub data: DataDir,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving: long polls end, in-flight requests finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`Running::stop_handle`] fires).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = match self.server.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        };
        for task in self.background {
            let _ = task.await;
        }
        result
    }

    /// A handle that stops the server when cancelled.
    pub fn stop_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Opens everything in `config.data_dir` (creating it on first start),
/// binds, and serves in background tasks.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.lease_ttl < Duration::from_millis(100) {
        return Err(StartError::Config(
            "the lease TTL must be at least 100 ms".into(),
        ));
    }
    if !(1..=20).contains(&config.max_attempts_default) {
        return Err(StartError::Config(
            "the default max_attempts must be between 1 and 20".into(),
        ));
    }
    let limits = config.limits;
    if limits.request_timeout.is_zero()
        || limits.header_timeout.is_zero()
        || limits.stall_timeout.is_zero()
    {
        return Err(StartError::Config(
            "the request, header and stall timeouts must be more than 0 s".into(),
        ));
    }
    if limits.min_transfer_rate == 0 || limits.max_polls_per_worker == 0 {
        return Err(StartError::Config(
            "the minimum transfer rate and the long polls per worker must be at least 1".into(),
        ));
    }
    let data = DataDir::new(&config.data_dir);
    let (creator_token, worker_token) = data.create()?;
    let database = data.database();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&database))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    let blobs = BlobStore::open(&data.blobs(), config.max_blob_bytes)?;
    if config.faults.any() {
        tracing::warn!(faults = ?config.faults, "fault injection is ON: blob downloads will be broken on purpose");
    }
    let miner_plugin = match &config.miner_plugin {
        Some(path) => Some(import_miner_plugin(&blobs, path).await?),
        None => None,
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let credentials = {
        let (store, blobs) = (Arc::clone(&store), blobs.clone());
        let pinned: Vec<Sha256Digest> = miner_plugin.into_iter().collect();
        tokio::task::spawn_blocking(move || {
            gc::reconcile(&*store, &blobs, &pinned, now_ms())?;
            let issued = transaction(&*store, |tx| tx.list_issued_workers())?;
            Ok::<_, StartError>(Credentials::load(&issued)?)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??
    };
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let url = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
        None => format!("http://{addr}"),
    };
    let state = Arc::new(AppState {
        store,
        blobs,
        auth: Auth::new(&creator_token, &worker_token),
        credentials,
        limits,
        polls: PollSlots::new(limits.max_polls_per_worker),
        uploads: Uploads::default(),
        rules: Rules {
            lease_ttl_ms: millis(config.lease_ttl),
            skip_after_failures: config.skip_after_failures.max(1),
            default_job_timeout_ms: millis(limits.default_job_timeout),
            deadline_margin_ms: millis(limits.deadline_margin),
        },
        max_wait: config.max_wait,
        max_attempts_default: config.max_attempts_default,
        jobs_changed: Notify::new(),
        faults: Faults::new(&config.faults),
        shutdown: shutdown.clone(),
        public_url: url.clone(),
        miner_plugin,
        sessions: crate::portal::session::Sessions::new(),
    });
    data.write_endpoint(&url)?;
    data.write_worker_config(&url, &worker_token)?;

    let background = vec![
        tokio::spawn(expire_leases(Arc::clone(&state), config.lease_ttl)),
        tokio::spawn(gc::collect_periodically(Arc::clone(&state))),
    ];
    let router = api::router(
        Arc::clone(&state),
        config.max_json_bytes,
        crate::portal::router(),
    );
    let server = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
    Ok(Running {
        addr,
        url,
        creator_token,
        worker_token,
        data,
        shutdown,
        server,
        background,
    })
}

/// Accepts connections until `stop` fires, then waits for the open ones to
/// finish their requests (idle ones close at once).
async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: crate::limits::Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // TCP_NODELAY: a blob reply is headers then a streamed body, two
        // writes; with Nagle the second waits for the client's delayed ACK
        // (~40 ms on Linux) on every reused connection.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let io = TokioIo::new(StallIo::new(tcp, limits.stall_timeout));
        let connection = http.serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Puts the miner plugin at `path` into the blob store (if it is not there
/// yet) and returns its digest, which issued `worker.json` files name.
async fn import_miner_plugin(
    blobs: &BlobStore,
    path: &std::path::Path,
) -> Result<Sha256Digest, StartError> {
    let fail = |message: String| StartError::MinerPlugin {
        path: path.to_path_buf(),
        message,
    };
    let owned = path.to_path_buf();
    let (sha256, size) = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&owned).and_then(Sha256Digest::of_reader)
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(|e| fail(e.to_string()))?;
    if blobs.size(&sha256).is_none() {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        blobs
            .put(&sha256, tokio_util::io::ReaderStream::new(file))
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    tracing::info!(plugin = %sha256, size, path = %path.display(), "miner plugin served to issued workers");
    Ok(sha256)
}

/// Expires overdue leases a few times per TTL, waking long polls when jobs
/// were requeued.
async fn expire_leases(state: Arc<AppState>, ttl: Duration) {
    let period = (ttl / 6).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = state.shutdown.cancelled() => return,
        }
        match state
            .transact(|tx| scheduler::expire_due(tx, now_ms()))
            .await
        {
            Ok(0) => {}
            Ok(_) => state.jobs_changed.notify_waiters(),
            Err(e) => tracing::error!(error = %e.message, "lease expiry failed"),
        }
    }
}
