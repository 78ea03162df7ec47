//! What every request handler shares — the store, blobs, credentials,
//! bounds and rules — used alike by the API ([`crate::api`]), the portal
//! ([`crate::portal`]) and the background tasks.

use std::sync::Arc;
use std::time::Duration;

use pictor_protocol::Sha256Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Credentials};
use crate::blobs::BlobStore;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::limits::Limits;
use crate::limits::polls::PollSlots;
use crate::limits::quota::Uploads;
use crate::scheduler::Rules;
use crate::store::{Store, Tx, transaction};

/// What every handler shares.
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The blob store.
    pub blobs: BlobStore,
    /// The folder's credentials.
    pub auth: Auth,
    /// Issued workers' credentials.
    pub credentials: Credentials,
    /// The bounds on callers.
    pub limits: Limits,
    /// Long polls in flight, per worker.
    pub polls: PollSlots,
    /// Upload bytes in flight, per owner.
    pub uploads: Uploads,
    /// Lease timing and skip policy.
    pub rules: Rules,
    /// Longest long-poll wait.
    pub max_wait: Duration,
    /// `max_attempts` of a submission that does not give one.
    pub max_attempts_default: u32,
    /// Woken when a job may have become leasable (submitted, requeued).
    pub jobs_changed: Notify,
    /// Fault injection.
    pub faults: Faults,
    /// Fired when the server shuts down (ends long polls).
    pub shutdown: CancellationToken,
    /// The URL workers reach this coordinator at (written into issued
    /// `worker.json` files).
    pub public_url: String,
    /// The miner plugin's blob, when `serve --miner-plugin` gave one:
    /// issued workers mine with it.
    pub miner_plugin: Option<Sha256Digest>,
    /// The portal's login sessions.
    pub sessions: crate::portal::session::Sessions,
}

impl AppState {
    /// Runs `f` in a store transaction on a blocking thread.
    pub async fn transact<R: Send + 'static>(
        &self,
        f: impl FnMut(&mut dyn Tx) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || transaction(&*store, f))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
