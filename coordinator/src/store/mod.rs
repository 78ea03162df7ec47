//! The coordinator's durable state — workers (registered and issued), their
//! last heartbeats, jobs, leases, job outputs, per-kind failure counts and
//! the record of each blob (owner, references) —
//! behind the [`Store`] trait, and its records.
//!
//! The trait is deliberately small and synchronous: a backend offers
//! [`Store::transact`], which runs a closure against a [`Tx`] (a handful of
//! row-level reads and writes) inside one serializable transaction, and
//! commits it when the closure returns `Ok`. All the rules (who gets which
//! job, when a lease expires, when a job is done) live in
//! [`crate::scheduler`], written once against [`Tx`]; the async server calls
//! the store through `tokio::task::spawn_blocking`
//! ([`crate::state::AppState::transact`]).
//!
//! The default backend is [`sqlite::SqliteStore`]: one file, WAL mode, one
//! connection behind a mutex (transactions are serialized, which a
//! reference coordinator with a few hundred workers does not notice). A
//! PostgreSQL backend for a large farm implements the same trait with a
//! connection pool: `transact` opens a `SERIALIZABLE` (or `REPEATABLE READ`
//! plus `SELECT … FOR UPDATE`) transaction and **may call the closure again**
//! after a serialization failure, which is why the closure is `FnMut` and
//! must have no effect outside the transaction. Records are plain values
//! (JSON columns for lists), so the schema maps one to one.

pub mod sqlite;

use std::collections::BTreeMap;

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{
    BlobRef, GpuDescription, GpuSlotHealth, InputBlob, JobState, MiningFigures, MiningSettings,
};
use pictor_protocol::proof::{OutputDigest, SignedProof};
use serde::{Deserialize, Serialize};

/// A storage failure (the database, not the request, is at fault).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed.
    #[error("database error: {0}")]
    Backend(String),
    /// A stored row cannot be decoded (a bug or a hand-edited database).
    #[error("corrupt row in `{table}`: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database was written by a newer coordinator.
    #[error(
        "the database schema is version {found}, this coordinator reads version {expected}; upgrade pictor-coordinator"
    )]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The version this build writes.
        expected: i64,
    },
    /// The transaction's closure asked for a rollback (it carries its own
    /// error out by other means).
    #[error("transaction rolled back")]
    RolledBack,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// Its id.
    pub id: String,
    /// The owner's name for it.
    pub name: String,
    /// Its ed25519 public key, 64 lowercase hex digits; proofs must be signed with it.
    pub public_key: String,
    /// `pictor-host x.y.z`.
    pub host_version: String,
    /// Its GPUs.
    pub gpus: Vec<GpuDescription>,
    /// Kinds it accepts (empty: all).
    pub kinds: Vec<String>,
    /// Its prices by kind.
    pub prices: BTreeMap<String, f64>,
    /// Jobs it runs at once.
    pub slots: u32,
    /// First registration (ms since the Unix epoch).
    pub registered_at_ms: u64,
    /// Last request from it.
    pub last_seen_ms: u64,
}

/// A worker issued by this coordinator, with its own credential.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedWorkerRecord {
    /// Its id (`wkr-` and 10 hex digits).
    pub id: String,
    /// The owner's name for it.
    pub name: String,
    /// The network reward wallet.
    pub wallet: String,
    /// Mining settings (payout wallet resolved), if it mines.
    pub mining: Option<MiningSettings>,
    /// Its prices by kind.
    pub prices: BTreeMap<String, f64>,
    /// sha256 of its credential, 64 lowercase hex digits (the token itself
    /// is never stored).
    pub token_sha256: String,
    /// When it was issued (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When its credential was revoked.
    pub revoked_at_ms: Option<u64>,
}

/// A worker's last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatRecord {
    /// The worker.
    pub worker_id: String,
    /// When it came (ms since the Unix epoch).
    pub at_ms: u64,
    /// `idle`, `mining` or `job`.
    pub activity: String,
    /// The miner's figures, while mining.
    pub mining: Option<MiningFigures>,
    /// The GPU slots it called not healthy.
    pub gpu_health: Vec<GpuSlotHealth>,
}

/// One output of a completed lease, as listed in its accepted proof.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    /// The lease.
    pub lease_id: String,
    /// Its path under `/output`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its blob.
    pub sha256: Sha256Digest,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The plugin blob.
    pub plugin: BlobRef,
    /// Input blobs.
    pub inputs: Vec<InputBlob>,
    /// Parameters (never JSON `null`: an absent value is stored as `{}`).
    pub params: serde_json::Value,
    /// Seed.
    pub seed: u64,
    /// The job spec's `limits` object.
    pub limits: serde_json::Value,
    /// What it pays.
    pub price: Option<f64>,
    /// Distinct workers that must complete it with agreeing outputs.
    pub replicas: u32,
    /// Unsuccessful leases (failed or expired) before it fails for good.
    pub max_attempts: u32,
    /// Where it is.
    pub state: JobState,
    /// Leases granted so far.
    pub attempts: u32,
    /// Submission time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it became final.
    pub finished_at_ms: Option<u64>,
    /// Why it failed, was cancelled or disputed.
    pub error: Option<String>,
}

/// Where a lease is, as stored (finer than the wire's
/// [`pictor_protocol::api::LeaseState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseRecordState {
    /// Granted and not expired.
    Active,
    /// Its worker completed it; the proof was accepted.
    Completed,
    /// Its worker reported a failure.
    Failed,
    /// No sign of life within the TTL.
    Expired,
    /// The creator cancelled the job while it ran.
    Cancelled,
    /// Its job reached a final state through other leases.
    Superseded,
}

impl LeaseRecordState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseRecordState::Active => "active",
            LeaseRecordState::Completed => "completed",
            LeaseRecordState::Failed => "failed",
            LeaseRecordState::Expired => "expired",
            LeaseRecordState::Cancelled => "cancelled",
            LeaseRecordState::Superseded => "superseded",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => LeaseRecordState::Active,
            "completed" => LeaseRecordState::Completed,
            "failed" => LeaseRecordState::Failed,
            "expired" => LeaseRecordState::Expired,
            "cancelled" => LeaseRecordState::Cancelled,
            "superseded" => LeaseRecordState::Superseded,
            _ => return None,
        })
    }

    /// Whether the lease counts against the job's `max_attempts`.
    pub fn is_unsuccessful(self) -> bool {
        matches!(self, LeaseRecordState::Failed | LeaseRecordState::Expired)
    }
}

/// A failure report as stored on its lease (to answer repeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The failure kind.
    pub kind: String,
    /// What went wrong.
    pub message: String,
    /// Whether another attempt might succeed.
    pub retryable: bool,
    /// The proof of the failed run, if any.
    pub proof: Option<SignedProof>,
}

/// One lease of a job to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    /// `<job id>.<attempt>`.
    pub id: String,
    /// The job.
    pub job_id: String,
    /// The worker.
    pub worker_id: String,
    /// 0 for the job's first lease.
    pub attempt: u32,
    /// Where it is.
    pub state: LeaseRecordState,
    /// When it was granted (ms since the Unix epoch).
    pub granted_at_ms: u64,
    /// When it expires unless extended.
    pub expires_at_ms: u64,
    /// Last reported fraction done.
    pub fraction: f32,
    /// Last reported message.
    pub message: String,
    /// The accepted proof, once completed.
    pub proof: Option<SignedProof>,
    /// The failure report, once failed.
    pub failure: Option<FailureReport>,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
    /// Once completed: the worker's price for the job's kind at that time
    /// (what it earned), if it had one.
    pub price: Option<f64>,
    /// When it expires however often it is extended (granted + the job's
    /// timeout + a margin); `None` for leases granted before deadlines
    /// existed.
    pub deadline_at_ms: Option<u64>,
}

/// A blob in the blob folder, as the store knows it: who uploaded it and
/// whether anything names it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobRecord {
    /// Its digest.
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Who it is charged to ([`crate::limits::quota::Owner::key`]).
    pub owner: String,
    /// When it was uploaded, or last uploaded again while unreferenced (ms
    /// since the Unix epoch): the garbage collector's clock.
    pub created_at_ms: u64,
    /// Whether a job (plugin, inputs) or an accepted result (outputs)
    /// names it, or the coordinator serves it (the miner plugin).
    /// Referenced blobs are kept for good and charged to nobody.
    pub referenced: bool,
}

/// Row-level access inside one transaction. Every method sees the
/// transaction's own writes.
pub trait Tx {
    /// The worker with this id.
    fn worker(&mut self, id: &str) -> Result<Option<WorkerRecord>, StoreError>;
    /// Inserts or replaces a worker.
    fn put_worker(&mut self, worker: &WorkerRecord) -> Result<(), StoreError>;
    /// Every registered worker, in registration order.
    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError>;

    /// The issued worker with this id.
    fn issued_worker(&mut self, id: &str) -> Result<Option<IssuedWorkerRecord>, StoreError>;
    /// The issued worker whose credential hashes to `token_sha256` (hex).
    fn issued_worker_by_token(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<IssuedWorkerRecord>, StoreError>;
    /// Inserts a newly issued worker.
    fn insert_issued_worker(&mut self, worker: &IssuedWorkerRecord) -> Result<(), StoreError>;
    /// Updates an issued worker's mutable field (`revoked_at_ms`).
    fn update_issued_worker(&mut self, worker: &IssuedWorkerRecord) -> Result<(), StoreError>;
    /// Every issued worker, oldest first.
    fn list_issued_workers(&mut self) -> Result<Vec<IssuedWorkerRecord>, StoreError>;

    /// Records a worker's latest heartbeat (replacing the one before).
    fn put_beat(&mut self, beat: &BeatRecord) -> Result<(), StoreError>;
    /// A worker's latest heartbeat.
    fn beat(&mut self, worker_id: &str) -> Result<Option<BeatRecord>, StoreError>;

    /// The job with this id.
    fn job(&mut self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Inserts a new job (after every existing one in submission order).
    fn insert_job(&mut self, job: &JobRecord) -> Result<(), StoreError>;
    /// Updates a job's mutable fields (state, attempts, finished time, error).
    fn update_job(&mut self, job: &JobRecord) -> Result<(), StoreError>;
    /// Jobs, newest first, optionally only in `state`, at most `limit`.
    fn list_jobs(
        &mut self,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError>;
    /// Queued or running jobs, oldest first, whose kind is in `kinds`
    /// (`None`: any kind) and not in `excluded`.
    fn open_jobs(
        &mut self,
        kinds: Option<&[String]>,
        excluded: &[String],
    ) -> Result<Vec<JobRecord>, StoreError>;

    /// The lease with this id.
    fn lease(&mut self, id: &str) -> Result<Option<LeaseRecord>, StoreError>;
    /// Inserts a new lease.
    fn insert_lease(&mut self, lease: &LeaseRecord) -> Result<(), StoreError>;
    /// Updates a lease's mutable fields.
    fn update_lease(&mut self, lease: &LeaseRecord) -> Result<(), StoreError>;
    /// Every lease of a job, in the order granted.
    fn leases_of_job(&mut self, job_id: &str) -> Result<Vec<LeaseRecord>, StoreError>;
    /// Active leases whose `expires_at_ms` is at or before `now_ms`.
    fn due_leases(&mut self, now_ms: u64) -> Result<Vec<LeaseRecord>, StoreError>;
    /// A worker's leases in `state`, in the order granted.
    fn leases_of_worker(
        &mut self,
        worker_id: &str,
        state: LeaseRecordState,
    ) -> Result<Vec<LeaseRecord>, StoreError>;
    /// A worker's completed leases and the sum of their prices.
    fn worker_totals(&mut self, worker_id: &str) -> Result<(u64, f64), StoreError>;

    /// Records the outputs of a completed lease (from its accepted proof).
    fn insert_outputs(
        &mut self,
        lease_id: &str,
        outputs: &[OutputDigest],
    ) -> Result<(), StoreError>;
    /// Some output whose blob is `sha256`, if any job has one.
    fn output_by_blob(&mut self, sha256: &Sha256Digest)
    -> Result<Option<OutputRecord>, StoreError>;

    /// The blob record of `sha256`.
    fn blob(&mut self, sha256: &Sha256Digest) -> Result<Option<BlobRecord>, StoreError>;
    /// Inserts or replaces a blob record.
    fn put_blob(&mut self, blob: &BlobRecord) -> Result<(), StoreError>;
    /// Deletes a blob record.
    fn delete_blob(&mut self, sha256: &Sha256Digest) -> Result<(), StoreError>;
    /// Every blob record's digest.
    fn blob_digests(&mut self) -> Result<Vec<Sha256Digest>, StoreError>;
    /// Bytes of `owner`'s blobs that are not referenced.
    fn unreferenced_bytes(&mut self, owner: &str) -> Result<u64, StoreError>;
    /// Marks these blobs referenced (those without a record are skipped).
    fn mark_referenced(&mut self, digests: &[Sha256Digest]) -> Result<(), StoreError>;
    /// Marks referenced every blob a job or a completed lease's outputs
    /// name; returns how many changed.
    fn mark_all_referenced(&mut self) -> Result<usize, StoreError>;
    /// Unreferenced blobs uploaded at or before `before_ms`, oldest first,
    /// at most `limit`.
    fn collectable_blobs(
        &mut self,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<BlobRecord>, StoreError>;

    /// Consecutive failures of `worker_id` on `kind` (0 if none).
    fn kind_failures(&mut self, worker_id: &str, kind: &str) -> Result<u32, StoreError>;
    /// Sets that count.
    fn set_kind_failures(
        &mut self,
        worker_id: &str,
        kind: &str,
        count: u32,
    ) -> Result<(), StoreError>;
    /// Kinds on which `worker_id` has at least `threshold` consecutive failures.
    fn skipped_kinds(&mut self, worker_id: &str, threshold: u32)
    -> Result<Vec<String>, StoreError>;
}

/// A transactional store (see the module docs).
pub trait Store: Send + Sync + 'static {
    /// Runs `f` in one transaction: commits if it returns `Ok`, rolls back
    /// if it returns `Err`. A backend may run `f` again after a transient
    /// conflict, so `f` must only act through the [`Tx`].
    fn transact(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// Runs `f` in a transaction of `store`, carrying its result (or its own
/// error type, which rolls the transaction back) out.
pub fn transaction<R, E: From<StoreError>>(
    store: &dyn Store,
    mut f: impl FnMut(&mut dyn Tx) -> Result<R, E>,
) -> Result<R, E> {
    let mut outcome: Option<Result<R, E>> = None;
    let result = store.transact(&mut |tx| match f(tx) {
        Ok(value) => {
            outcome = Some(Ok(value));
            Ok(())
        }
        Err(e) => {
            outcome = Some(Err(e));
            Err(StoreError::RolledBack)
        }
    });
    match (result, outcome) {
        (Ok(()), Some(outcome)) => outcome,
        (Err(StoreError::RolledBack), Some(Err(e))) => Err(e),
        (Err(e), _) => Err(e.into()),
        (Ok(()), None) => {
            Err(StoreError::Backend("transaction ended without running".into()).into())
        }
    }
}
