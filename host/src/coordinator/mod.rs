//! The worker's coordinator side: jobs leased from a coordinator, run through
//! the local spool, reported back exactly once.
//!
//! ```text
//! coordinator ──lease──▶ leaser ─fetch (blobs::fetch, cache)─▶ spool/incoming ──▶ Worker
//!      ▲                   │ ledger: fetching → queued                                │
//!      │               heartbeat (extends leases, hears cancels) ◀── running progress ─┤
//!      └──── complete/fail ◀── reporter ◀── spool/done/<lease>/{result,proof}.json ◀───┘
//! ```
//!
//! Nothing is lost: a lease is written to the ledger before anything is
//! downloaded; a result is in the spool (and the journal) before it is
//! reported; a report is retried with backoff until the coordinator
//! answers, and the ledger entry is removed only then. Reports are
//! idempotent at the coordinator, so a reply lost on the way back makes the
//! retry a harmless duplicate. Offline, the worker finishes what it holds
//! and reports when the coordinator is back.

pub mod backoff;
pub mod client;
mod heartbeat;
mod leaser;
pub mod ledger;
mod reporter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

use pictor_protocol::api::RegisterRequest;
use tokio::sync::watch;

use crate::blobs::cache::PinGuard;
use crate::blobs::fetch::{FetchProgress, Fetcher};
use crate::journal::{Event, SharedJournal};
use crate::spool::Spool;
use crate::worker::WorkerWatch;
use client::CoordinatorClient;
use ledger::{LeaseStep, Ledger, LedgerEntry};
use pictor_runtime::capabilities::gpu::GpuHealth;

/// The connection to the coordinator, for the status line.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// Registering (first contact or after a restart of either side).
    Connecting,
    /// Registered and answering.
    Connected,
    /// Not answering; retrying with backoff. The reason is the last error.
    Offline(String),
    /// Answering, but refusing this worker (bad token, key conflict,
    /// protocol version): retried slowly; the owner must act.
    Refused(String),
    /// The coordinator revoked this worker's credential (the message is
    /// the coordinator's): the worker stops; the owner imports a new
    /// worker.json. Final: no later answer changes it.
    Revoked(String),
}

impl Connection {
    /// The words the owner sees on the status line and the status page:
    /// `Connected`, `Connecting…`, `Offline (…)`, `Refused: …`, `Revoked: …`.
    pub fn describe(&self) -> String {
        match self {
            Connection::Connecting => "Connecting…".into(),
            Connection::Connected => "Connected".into(),
            Connection::Offline(why) => format!("Offline (retrying; results are kept): {why}"),
            Connection::Refused(why) => format!("Refused: {why}"),
            Connection::Revoked(message) => format!("Revoked: {message}"),
        }
    }
}

/// What the network side is doing, for the owner.
#[derive(Debug, Clone)]
pub struct NetStatus {
    /// The connection.
    pub connection: Connection,
    /// The download in progress, if any.
    pub download: Option<FetchProgress>,
    /// Results waiting to be reported.
    pub unreported: usize,
}

/// Everything the network tasks share.
pub struct NetworkSource {
    client: CoordinatorClient,
    fetcher: Arc<Fetcher>,
    spool: Spool,
    ledger: Ledger,
    journal: SharedJournal,
    registration: RegisterRequest,
    /// Leases held at once (queued, fetching or running): the worker's slots.
    slots: usize,
    status: watch::Sender<NetStatus>,
    /// The worker's running jobs, miner figures, activity, stored
    /// results, GPU slots and spool use.
    worker: WorkerWatch,
    /// Tells the worker a job was queued.
    wake_worker: Arc<tokio::sync::Notify>,
    /// Cache pins held for each lease whose job is not finished.
    pins: Mutex<HashMap<String, Vec<PinGuard>>>,
    /// Set after registration: the coordinator's timing rules.
    timing: watch::Sender<Option<pictor_protocol::api::RegisterReply>>,
}

/// A failure of the network side that stops the worker.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The ledger could not be read or written.
    #[error("lease ledger in {path}: {source}")]
    Ledger {
        /// The spool.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The spool could not be used.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
}

/// The inputs of [`NetworkSource::new`].
pub struct SourceParts {
    /// The coordinator client.
    pub client: CoordinatorClient,
    /// The blob fetcher (its cache in the working folder).
    pub fetcher: Arc<Fetcher>,
    /// The spool leased jobs go through.
    pub spool: Spool,
    /// The worker's journal.
    pub journal: SharedJournal,
    /// How this worker introduces itself.
    pub registration: RegisterRequest,
    /// The worker's live state ([`crate::worker::Worker::watch`]).
    pub worker: WorkerWatch,
    /// The worker's waker ([`crate::worker::Worker::waker`]).
    pub wake_worker: Arc<tokio::sync::Notify>,
}

impl NetworkSource {
    /// Opens the ledger in the spool.
    pub fn new(parts: SourceParts) -> Result<Arc<Self>, NetworkError> {
        let ledger = Ledger::open(parts.spool.root()).map_err(|source| NetworkError::Ledger {
            path: parts.spool.root().display().to_string(),
            source,
        })?;
        let slots = parts.registration.slots.max(1) as usize;
        let status = NetStatus {
            connection: Connection::Connecting,
            download: None,
            unreported: 0,
        };
        Ok(Arc::new(NetworkSource {
            client: parts.client,
            fetcher: parts.fetcher,
            spool: parts.spool,
            ledger,
            journal: parts.journal,
            registration: parts.registration,
            slots,
            status: watch::channel(status).0,
            worker: parts.worker,
            wake_worker: parts.wake_worker,
            pins: Mutex::new(HashMap::new()),
            timing: watch::channel(None).0,
        }))
    }

    /// The network status, for the status line.
    pub fn status(&self) -> watch::Receiver<NetStatus> {
        self.status.subscribe()
    }

    /// Runs the leaser, heartbeat and reporter until `stop` fires; with
    /// `until_idle`, fires `idle` once the coordinator has nothing for this
    /// worker and everything in hand is reported. Returns the number of
    /// results still unreported (they are reported on the next start).
    ///
    /// A revoked credential ([`Connection::Revoked`]) stops the loops as
    /// `stop` does; the caller stops the worker when it sees it in
    /// [`status`](Self::status).
    pub async fn run(
        self: Arc<Self>,
        until_idle: bool,
        stop: CancellationToken,
        idle: watch::Sender<bool>,
    ) -> Result<usize, NetworkError> {
        self.repin()?;
        // The loops stop on `stop`, or at once when the credential is revoked.
        let stop = stop.child_token();
        let relay = tokio::spawn({
            let (stop, mut status) = (stop.clone(), self.status.subscribe());
            async move {
                let revoked = status.wait_for(|s| matches!(s.connection, Connection::Revoked(_)));
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = revoked => stop.cancel(),
                }
            }
        });
        let leaser = tokio::spawn(Arc::clone(&self).lease_loop(until_idle, stop.clone(), idle));
        let heartbeat = tokio::spawn(Arc::clone(&self).heartbeat_loop(stop.clone()));
        let reported = Arc::clone(&self).report_loop(stop).await;
        heartbeat.abort();
        relay.abort();
        let leased = leaser.await;
        let unreported = reported?;
        match leased {
            Ok(result) => result?,
            Err(e) if e.is_cancelled() => {}
            Err(e) => tracing::error!(error = %e, "lease task failed"),
        }
        Ok(unreported)
    }

    fn ledger_error(&self, source: std::io::Error) -> NetworkError {
        NetworkError::Ledger {
            path: self.spool.root().display().to_string(),
            source,
        }
    }

    fn entries(&self) -> Result<Vec<LedgerEntry>, NetworkError> {
        self.ledger.entries().map_err(|e| self.ledger_error(e))
    }

    fn put(&self, entry: &LedgerEntry) -> Result<(), NetworkError> {
        self.ledger.put(entry).map_err(|e| self.ledger_error(e))
    }

    /// Whether the coordinator revoked this worker's credential.
    fn revoked(&self) -> bool {
        matches!(self.status.borrow().connection, Connection::Revoked(_))
    }

    fn set_connection(&self, connection: Connection) {
        self.status.send_if_modified(|s| {
            // A revoked credential stays revoked whatever comes next.
            let changed = s.connection != connection && !matches!(s.connection, Connection::Revoked(_));
            if changed {
                match &connection {
                    Connection::Connected => tracing::info!("coordinator connected"),
                    Connection::Offline(why) => tracing::warn!(reason = %why, "coordinator offline; retrying"),
                    Connection::Refused(why) => tracing::error!(reason = %why, "coordinator refuses this worker"),
                    Connection::Revoked(message) => tracing::error!(
                        worker = %self.registration.worker_id,
                        %message,
                        "the coordinator revoked this worker's credential: no new jobs, the miner stops, results are kept"
                    ),
                    Connection::Connecting => {}
                }
                s.connection = connection;
            }
            changed
        });
    }

    /// Leases the worker takes now, and why fewer than its slots: none
    /// while the spool is full, and none for the slots of an unhealthy GPU
    /// (its GPU jobs would only be given back, each costing the job an
    /// attempt).
    fn capacity(&self) -> (usize, Option<&'static str>) {
        if self.worker.spool_usage.borrow().full() {
            return (0, Some("the spool is full (limits.spool_mib)"));
        }
        let health: Vec<GpuHealth> = self.worker.gpu_slots.iter().map(|g| g.health()).collect();
        match lease_capacity(self.slots, &health) {
            n if n < self.slots => (
                n,
                Some(
                    "a GPU slot is unhealthy (restart the worker once the GPU is known to be fine)",
                ),
            ),
            n => (n, None),
        }
    }

    /// The GPU slots that are not healthy, for the heartbeat.
    fn gpu_health(&self) -> Vec<pictor_protocol::api::GpuSlotHealth> {
        self.worker
            .gpu_slots
            .iter()
            .enumerate()
            .filter_map(|(slot, gpu)| {
                let health = gpu.health();
                health
                    .detail()
                    .map(|detail| pictor_protocol::api::GpuSlotHealth {
                        slot: u32::try_from(slot).unwrap_or(u32::MAX),
                        state: health.as_str().to_string(),
                        detail,
                    })
            })
            .collect()
    }

    /// Whether the lease's job has finished in the spool (result stored).
    fn is_done(&self, lease_id: &str) -> bool {
        self.spool.done_dir(lease_id).join("result.json").exists()
    }

    /// Whether the lease's job is queued or running in the spool.
    fn is_pending(&self, lease_id: &str) -> bool {
        !self.is_done(lease_id) && self.spool.contains(lease_id).unwrap_or(false)
    }

    /// Re-pins the blobs of leased jobs that are still to run (after a restart).
    fn repin(&self) -> Result<(), NetworkError> {
        for entry in self.entries()? {
            if entry.step == LeaseStep::Queued && self.is_pending(&entry.lease.lease_id) {
                let digests = std::iter::once(entry.lease.plugin.sha256)
                    .chain(entry.lease.inputs.iter().map(|i| i.sha256));
                let guards = digests.map(|d| self.fetcher.cache().pin(d)).collect();
                self.pins
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(entry.lease.lease_id.clone(), guards);
            }
        }
        Ok(())
    }

    fn unpin(&self, lease_id: &str) {
        self.pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(lease_id);
    }

    /// Drops a lease: its job is cancelled locally and nothing is reported.
    fn drop_lease(&self, mut entry: LedgerEntry, reason: String) -> Result<(), NetworkError> {
        let id = entry.lease.lease_id.clone();
        tracing::warn!(lease = %id, %reason, "lease dropped");
        if self.is_pending(&id) {
            self.spool.cancel(&id)?;
        }
        entry.step = LeaseStep::Dropped;
        entry.reason = Some(reason);
        self.put(&entry)
    }

    fn log(&self, event: Event) -> Result<(), NetworkError> {
        Ok(self.journal.append(event)?)
    }
}

/// The share of `slots` that healthy GPU slots make up (all of them when the
/// worker has no GPU slot).
fn lease_capacity(slots: usize, gpus: &[GpuHealth]) -> usize {
    if gpus.is_empty() {
        return slots;
    }
    let healthy = gpus
        .iter()
        .filter(|h| !matches!(h, GpuHealth::Unhealthy { .. }))
        .count();
    slots * healthy / gpus.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_gpu_slots_take_no_leases() {
        let unhealthy = || GpuHealth::Unhealthy {
            reason: "2 GPU kernels never finished".into(),
        };
        assert_eq!(lease_capacity(4, &[]), 4, "no GPU: every slot takes leases");
        assert_eq!(
            lease_capacity(
                2,
                &[GpuHealth::Healthy, GpuHealth::Recovered { abandoned: 1 }]
            ),
            2,
            "a recovered slot still works"
        );
        assert_eq!(
            lease_capacity(4, &[GpuHealth::Healthy, unhealthy()]),
            2,
            "two jobs per GPU, one GPU out"
        );
        assert_eq!(lease_capacity(1, &[unhealthy()]), 0);
    }
}
