//! The JSON bodies of protocol version 1, endpoint by endpoint.
//!
//! Every request carries the [`VERSION_HEADER`] with [`PROTOCOL_VERSION`]
//! and every reply carries the version the server speaks; a server refuses
//! a version it does not speak with [`ErrorCode::UnsupportedVersion`], and a
//! client refuses a reply in another version. Paths start with
//! [`API_PREFIX`] and are built by [`paths`]. Errors are an [`ErrorBody`]
//! with an HTTP status from 400 up.
//!
//! Worker endpoints take `Authorization: Bearer <worker token>`, creator
//! endpoints (jobs) the creator token; blobs take either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::proof::{OutputDigest, SignedProof};

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;

/// The header that carries the protocol version on every request and reply.
pub const VERSION_HEADER: &str = "pictor-protocol";

/// The path prefix of every endpoint of this version.
pub const API_PREFIX: &str = "/api/v1";

/// Endpoint paths (ids are validated with [`valid_id`] before they are put
/// in a path, so they never need escaping).
pub mod paths {
    use super::API_PREFIX;
    use crate::digest::Sha256Digest;

    /// `GET`: [`super::Info`]; no authentication.
    pub fn info() -> String {
        format!("{API_PREFIX}/info")
    }
    /// `POST` [`super::RegisterRequest`] → [`super::RegisterReply`].
    pub fn register() -> String {
        format!("{API_PREFIX}/workers/register")
    }
    /// `POST` [`super::Heartbeat`] → [`super::HeartbeatReply`].
    pub fn heartbeat(worker_id: &str) -> String {
        format!("{API_PREFIX}/workers/{worker_id}/heartbeat")
    }
    /// `POST` [`super::LeaseRequest`] → 200 [`super::Lease`] or 204 (none
    /// within the wait).
    pub fn lease(worker_id: &str) -> String {
        format!("{API_PREFIX}/workers/{worker_id}/lease")
    }
    /// `POST` [`super::ProgressUpdate`] → [`super::LeaseStatus`].
    pub fn progress(lease_id: &str) -> String {
        format!("{API_PREFIX}/leases/{lease_id}/progress")
    }
    /// `POST` [`super::CompleteRequest`] → [`super::CompleteReply`].
    pub fn complete(lease_id: &str) -> String {
        format!("{API_PREFIX}/leases/{lease_id}/complete")
    }
    /// `POST` [`super::FailRequest`] → [`super::CompleteReply`].
    pub fn fail(lease_id: &str) -> String {
        format!("{API_PREFIX}/leases/{lease_id}/fail")
    }
    /// `GET` (with `Range`), `HEAD`, or `PUT` (raw bytes) one blob.
    pub fn blob(sha256: &Sha256Digest) -> String {
        format!("{API_PREFIX}/blobs/{sha256}")
    }
    /// `POST` [`super::SubmitJob`] → [`super::JobStatus`]; `GET` →
    /// [`super::JobList`].
    pub fn jobs() -> String {
        format!("{API_PREFIX}/jobs")
    }
    /// `GET` → [`super::JobStatus`].
    pub fn job(job_id: &str) -> String {
        format!("{API_PREFIX}/jobs/{job_id}")
    }
    /// `POST` (no body) → [`super::JobStatus`]: cancel a job.
    pub fn cancel_job(job_id: &str) -> String {
        format!("{API_PREFIX}/jobs/{job_id}/cancel")
    }
    /// `POST` [`super::CreateWorker`] → 201 [`super::IssuedWorker`]; `GET`
    /// → [`super::WorkerList`] (creator token).
    pub fn workers() -> String {
        format!("{API_PREFIX}/workers")
    }
    /// `GET` → [`super::WorkerSummary`] (creator token).
    pub fn worker(worker_id: &str) -> String {
        format!("{API_PREFIX}/workers/{worker_id}")
    }
    /// `POST` (no body) → [`super::WorkerSummary`]: revoke an issued
    /// worker's credential (creator token).
    pub fn revoke_worker(worker_id: &str) -> String {
        format!("{API_PREFIX}/workers/{worker_id}/revoke")
    }
}

/// The worker-id rule, as error messages state it.
pub const WORKER_ID_RULE: &str = "3-64 characters from A-Z a-z 0-9 - _";

/// Whether `id` is a valid worker id: 3–64 characters from
/// `A-Z a-z 0-9 - _` (no `.`: pools read `wallet.worker` as two parts).
/// The one rule for `worker.json`, registration and every worker route.
pub fn valid_worker_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The reward-wallet rule, as error messages state it.
pub const WALLET_RULE: &str = "8-128 letters, digits, : . _ -";

/// Whether `wallet` is a valid reward wallet: 8–128 characters from
/// `A-Z a-z 0-9 : . _ -`. The one rule for `worker.json` and for issuing
/// a worker.
pub fn valid_wallet(wallet: &str) -> bool {
    (8..=128).contains(&wallet.len())
        && wallet
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'))
}

/// The job-id rule, as error messages state it.
pub const JOB_ID_RULE: &str = "1-128 characters from A-Z a-z 0-9 . _ - (not starting with .)";

/// The job-kind rule, as error messages state it.
pub const JOB_KIND_RULE: &str = "1-64 characters from a-z 0-9 -";

/// Whether `id` is a valid job or lease id: 1–128 characters from
/// `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Most bytes a job's params may take as [`canonical_json`] (the text the
/// plugin gets). Bulk data belongs in inputs.
pub const MAX_PARAMS_BYTES: usize = 1 << 20;

/// Most input files one job may list.
pub const MAX_INPUTS: usize = 10_000;

/// A job larger than [`MAX_PARAMS_BYTES`] or [`MAX_INPUTS`] allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSizeError {
    /// The params take too many bytes as canonical JSON.
    #[error(
        "`params` is {0} bytes as JSON, the limit is {MAX_PARAMS_BYTES}; put bulk data in an input file"
    )]
    Params(usize),
    /// The job lists too many inputs.
    #[error("`inputs` lists {0} files, the limit is {MAX_INPUTS}")]
    Inputs(usize),
}

/// Checks a job's size: its `params` (as the plugin gets them) and how
/// many inputs it lists. The same rule at submission and on the worker.
pub fn check_job_size(params: &serde_json::Value, inputs: usize) -> Result<(), JobSizeError> {
    if inputs > MAX_INPUTS {
        return Err(JobSizeError::Inputs(inputs));
    }
    let bytes = canonical_json(params).len();
    if bytes > MAX_PARAMS_BYTES {
        return Err(JobSizeError::Params(bytes));
    }
    Ok(())
}

/// Whether `kind` is a valid job kind: 1–64 characters from `a-z 0-9 -`.
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The digest of a job's params as signed in a proof: sha256 of
/// [`canonical_json`] of the params, exactly the text the plugin gets.
pub fn params_digest(params: &serde_json::Value) -> Sha256Digest {
    Sha256Digest::of(canonical_json(params).as_bytes())
}

/// `value` as compact JSON with object keys sorted at every level, whatever
/// order it was parsed in (so both ends of the wire hash the same text).
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    write(item, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// What went wrong, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request's protocol version is not spoken here (HTTP 400).
    UnsupportedVersion,
    /// Missing or wrong credential (HTTP 401).
    Unauthorized,
    /// The worker's credential was revoked by the coordinator's operator
    /// (HTTP 401): the worker stops, keeping what it has not reported, and
    /// its owner imports a newly issued `worker.json`.
    Revoked,
    /// No such worker, job, lease or blob (HTTP 404).
    NotFound,
    /// The body or a parameter is malformed; the message names the field (HTTP 400/422).
    InvalidRequest,
    /// The request contradicts the state: e.g. a worker id registered with
    /// another key, a different result for the same lease (HTTP 409).
    Conflict,
    /// The lease ended (cancelled, or its job was completed by another
    /// lease); drop the work (HTTP 410). A lease that merely expired still
    /// accepts a result while its job is not done elsewhere.
    LeaseGone,
    /// An uploaded blob's bytes do not hash to its address (HTTP 400).
    DigestMismatch,
    /// Output blobs named in a proof were not uploaded first; `missing`
    /// lists them (HTTP 409).
    MissingBlobs,
    /// A proof's signature, signer or contents do not check (HTTP 400).
    BadProof,
    /// A body or blob is over the server's size limit (HTTP 413).
    TooLarge,
    /// A valid worker token that may not act for this worker or lease: an
    /// issued credential naming another worker, or the farm-wide token
    /// naming a worker that was issued its own credential (HTTP 403). The
    /// owner must fix the worker's config; retrying does not help.
    Forbidden,
    /// Too many requests of this kind at once, e.g. more long polls in
    /// flight for one worker than the server allows (HTTP 429); retry
    /// after a short wait.
    TooManyRequests,
    /// The caller's upload quota is used up: its blobs that no job or
    /// accepted result names yet would pass its limit (HTTP 507). Retry
    /// later (unreferenced blobs are collected after a grace period), or
    /// ask the operator for a larger quota.
    QuotaExceeded,
    /// The request took longer than the server allows (a body sent too
    /// slowly, or a busy server) and was cut off (HTTP 503); retry with
    /// backoff.
    TimedOut,
    /// A server fault (HTTP 500); retry later.
    Internal,
    /// A code this version does not know (from a newer server).
    #[serde(other)]
    Unknown,
}

/// The body of every error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorCode,
    /// One line for humans, naming the field, id or digest involved.
    pub message: String,
    /// With [`ErrorCode::MissingBlobs`]: the blobs to upload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Sha256Digest>,
}

/// `GET /api/v1/info`: who is serving, and which protocol versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The server software, e.g. `pictor-coordinator`.
    pub service: String,
    /// Its version.
    pub version: String,
    /// The protocol versions it speaks.
    pub protocol_versions: Vec<u32>,
}

/// One GPU of a worker, as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuDescription {
    /// Adapter name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Graphics API backend, e.g. `Vulkan`.
    pub backend: String,
    /// Its memory in MiB, where known (NVML).
    #[serde(default)]
    pub memory_mib: Option<u64>,
}

/// A worker introduces itself (at every start; idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The worker's id (from its config), a [`valid_worker_id`].
    pub worker_id: String,
    /// The owner's name for it.
    pub name: String,
    /// Its ed25519 public key, 64 hex digits: proofs must be signed with it.
    /// A worker id stays bound to the first key it registered.
    pub public_key: String,
    /// The host software and version, e.g. `pictor-host 0.1.0`.
    pub host_version: String,
    /// Its GPUs.
    pub gpus: Vec<GpuDescription>,
    /// Job kinds it accepts (empty: all).
    pub kinds: Vec<String>,
    /// Its price per job, by kind.
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
    /// How many jobs it runs at once.
    pub slots: u32,
}

/// The coordinator's timing rules for this worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterReply {
    /// The registered id.
    pub worker_id: String,
    /// A lease lives this long after it is granted or last extended.
    pub lease_ttl_s: u32,
    /// How often the worker should send a heartbeat (well under the TTL).
    pub heartbeat_interval_s: u32,
    /// The longest long-poll wait the server honours.
    pub max_wait_s: u32,
}

/// A lease's progress, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseProgress {
    /// The lease.
    pub lease_id: String,
    /// Fraction done, 0–1.
    pub fraction: f32,
    /// The plugin's latest message.
    #[serde(default)]
    pub message: String,
}

/// Periodic sign of life; extends every lease it lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `idle`, `mining` or `job`.
    pub activity: String,
    /// The leases the worker holds (queued locally, fetching or running).
    pub leases: Vec<LeaseProgress>,
    /// The miner's figures while the worker mines (absent otherwise, and
    /// from hosts that predate this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mining: Option<MiningFigures>,
    /// The GPU slots that are not healthy (absent: all are, or a host that
    /// predates this field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSlotHealth>,
}

/// A GPU slot whose kernels did not all finish: `recovered` (a stuck device
/// was replaced and the slot still runs GPU jobs) or `unhealthy` (it gives
/// GPU jobs back until the worker restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSlotHealth {
    /// The slot, as on the worker's status page (0-based).
    pub slot: u32,
    /// `recovered` or `unhealthy`.
    pub state: String,
    /// What happened, in words.
    #[serde(default)]
    pub detail: String,
}

/// What a worker's miner does, summed over its GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningFigures {
    /// The coin, e.g. `btc`.
    pub coin: String,
    /// The pool, `host:port`.
    pub pool: String,
    /// Hashes per second, over the last minute or so.
    pub hashrate: f64,
    /// Shares the pool accepted since the worker started.
    pub accepted: u64,
    /// Shares the pool rejected since the worker started.
    pub rejected: u64,
}

/// What the coordinator thinks of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Keep working; the lease was extended.
    Active,
    /// The creator cancelled the job: stop it and report nothing.
    Cancelled,
    /// The lease is over (expired and the job reassigned, or done
    /// elsewhere): stop it; a result for it would be refused.
    Gone,
}

/// One lease's state in a reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// The lease.
    pub lease_id: String,
    /// Its state.
    pub state: LeaseState,
    /// Seconds until it expires unless extended (0 unless active).
    pub expires_in_s: u32,
}

/// The reply to a heartbeat: the state of each lease it listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// One entry per listed lease.
    pub leases: Vec<LeaseStatus>,
}

/// Ask for a job; the server holds the request up to `wait_s` seconds
/// (capped at [`RegisterReply::max_wait_s`]) until one is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Longest wait, in seconds (0: answer at once).
    pub wait_s: u32,
}

/// A blob named by its digest, with its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Its sha256: the address to download it from, and what it must hash to.
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// An input file of a job: a blob and its name in `/input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputBlob {
    /// Its name in `/input` (relative, `/`-separated, no `..`).
    pub name: String,
    /// Its sha256.
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A job granted to a worker until `expires_in_s` from now (extended by
/// heartbeats and progress).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The lease; also the id under which the worker runs the job (its
    /// proof's `job_id`). Unique per job attempt, a [`valid_id`].
    pub lease_id: String,
    /// The creator's job.
    pub job_id: String,
    /// The job kind.
    pub kind: String,
    /// Which attempt of the job this is (0 first).
    pub attempt: u32,
    /// Seconds until the lease expires unless extended.
    pub expires_in_s: u32,
    /// The plugin component.
    pub plugin: BlobRef,
    /// The input files.
    pub inputs: Vec<InputBlob>,
    /// Parameters for the plugin.
    pub params: serde_json::Value,
    /// The job's seed.
    pub seed: u64,
    /// The job spec's `limits` object (default `{}`: host defaults).
    #[serde(default = "empty_object")]
    pub limits: serde_json::Value,
    /// What the job pays.
    #[serde(default)]
    pub price: Option<f64>,
}

/// Progress on one lease (also extends it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressUpdate {
    /// Fraction done, 0–1.
    pub fraction: f32,
    /// The plugin's latest message.
    #[serde(default)]
    pub message: String,
}

/// A successful result: the signed proof. Every output it names must have
/// been uploaded (`PUT` blob) first. Repeating a complete that was accepted
/// is answered the same way, with `duplicate: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// The proof: manifest with `job_id` = the lease id, status `succeeded`.
    pub proof: SignedProof,
}

/// A failed attempt. Idempotent like complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailRequest {
    /// The failure kind: the host's `FailureKind` (e.g. `timed-out`, `trap`,
    /// `gpu-lost`), or one of [`NOT_RUN_FAILURE_KINDS`] for a lease that
    /// never reached the sandbox.
    pub kind: String,
    /// One line saying what went wrong.
    pub message: String,
    /// Whether another attempt (elsewhere) might succeed.
    pub retryable: bool,
    /// The signed proof of the failed run (manifest `status` = `failed`).
    /// Required once the job reached the worker's sandbox, whatever stopped
    /// it; only a [`NOT_RUN_FAILURE_KINDS`] report may leave it out, and
    /// such an unsigned report counts as retryable.
    #[serde(default)]
    pub proof: Option<SignedProof>,
}

/// Failure kinds of a lease that never reached the worker's sandbox
/// (`download`: its plugin or inputs could not be fetched;
/// `invalid-lease`: the lease could not be turned into a job spec): the
/// only [`FailRequest`]s that may come without a proof.
pub const NOT_RUN_FAILURE_KINDS: &[&str] = &["download", "invalid-lease"];

/// The reply to complete and fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteReply {
    /// The job.
    pub job_id: String,
    /// Its state now.
    pub job_state: JobState,
    /// True when this exact report had been accepted before.
    pub duplicate: bool,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Leased to one or more workers.
    Running,
    /// Done; outputs and proofs available.
    Succeeded,
    /// Failed for good (non-retryable, or out of attempts).
    Failed,
    /// Cancelled by its creator.
    Cancelled,
    /// Replicas disagreed on the outputs' digests.
    Disputed,
}

impl JobState {
    /// Every state, in the order a job can pass through them.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Disputed,
    ];

    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The state's name on the wire (`queued`, `running`, `succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Disputed => "disputed",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`JobState`]; says which names are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a job state (queued, running, succeeded, failed, cancelled, disputed)")]
pub struct UnknownJobState(pub String);

impl std::str::FromStr for JobState {
    type Err = UnknownJobState;

    /// The state named `name` on the wire (`queued`, `running`, …).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| UnknownJobState(name.to_string()))
    }
}

/// A creator submits a job; plugin and inputs are uploaded as blobs first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The job id (a [`valid_id`]); the server makes one if absent.
    /// Submitting the same id with the same content again is a no-op.
    #[serde(default)]
    pub id: Option<String>,
    /// The job kind.
    pub kind: String,
    /// The plugin component.
    pub plugin: BlobRef,
    /// The input files.
    #[serde(default)]
    pub inputs: Vec<InputBlob>,
    /// Parameters for the plugin (default `{}`).
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Seed for everything random in the job.
    #[serde(default)]
    pub seed: u64,
    /// Limits overriding the workers' defaults (the job spec's `limits`; default `{}`).
    #[serde(default = "empty_object")]
    pub limits: serde_json::Value,
    /// What the job pays.
    #[serde(default)]
    pub price: Option<f64>,
    /// Run on this many different workers and compare output digests (1–4; default 1).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Attempts before the job fails for good (1–20; default 3).
    #[serde(default = "three")]
    pub max_attempts: u32,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn one() -> u32 {
    1
}

fn three() -> u32 {
    3
}

/// A job as its creator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job_id: String,
    /// Its kind.
    pub kind: String,
    /// Where it is.
    pub state: JobState,
    /// Leases granted so far.
    pub attempts: u32,
    /// Replicas asked for.
    pub replicas: u32,
    /// When it was submitted (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it reached a final state.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// The workers that completed it (one per replica).
    #[serde(default)]
    pub workers: Vec<String>,
    /// Why it failed, was cancelled or disputed.
    #[serde(default)]
    pub error: Option<String>,
    /// Its outputs (download each as a blob), once succeeded.
    #[serde(default)]
    pub outputs: Vec<OutputDigest>,
    /// The accepted proofs (one per replica).
    #[serde(default)]
    pub proofs: Vec<SignedProof>,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// Jobs, newest first.
    pub jobs: Vec<JobStatus>,
}

// ---------------------------------------------------------------- issued workers

/// `POST /api/v1/workers` (creator token): issue a worker — its id and
/// credential are made by the coordinator, and the reply carries the
/// complete `worker.json` for `pictor-host run --config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorker {
    /// The owner's name for it: 1–64 printable characters.
    pub name: String,
    /// The network reward wallet: 8–128 characters from `A-Z a-z 0-9 : . _ -`.
    pub wallet: String,
    /// Mining while idle (absent: the worker does not mine).
    #[serde(default)]
    pub mining: Option<MiningSettings>,
    /// The worker's price per job, by [`valid_kind`] (each a finite number ≥ 0).
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
}

/// Where and what an issued worker mines (checked with
/// [`crate::mining`]: the pool URL, the coin, the payout address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiningSettings {
    /// `stratum+tcp://host:port`.
    pub pool: String,
    /// A coin of [`crate::mining::SUPPORTED_COINS`], e.g. `btc`.
    pub coin: String,
    /// The payout address on the pool (default: the worker's `wallet`).
    #[serde(default)]
    pub wallet: Option<String>,
}

/// The reply to [`CreateWorker`]: the only time the credential is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedWorker {
    /// The new worker's id (`wkr-` and 10 hex digits).
    pub worker_id: String,
    /// The complete `worker.json`, credential included; keep it.
    pub config: serde_json::Value,
}

/// A lease a worker holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLease {
    /// The lease.
    pub lease_id: String,
    /// Its job.
    pub job_id: String,
    /// The job's kind.
    pub kind: String,
    /// Fraction done, 0–1, as last reported.
    pub fraction: f32,
    /// The plugin's last message.
    #[serde(default)]
    pub message: String,
}

/// A worker as the coordinator's operator sees it: issued here, registered
/// with the farm-wide token, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// The worker id.
    pub id: String,
    /// Its name (the issued name, else the registered one).
    pub name: String,
    /// The reward wallet it was issued with (absent for workers only
    /// registered with the farm token).
    #[serde(default)]
    pub wallet: Option<String>,
    /// Whether its credential was issued by this coordinator.
    pub issued: bool,
    /// Whether that credential was revoked.
    pub revoked: bool,
    /// When it was issued (ms since the Unix epoch).
    #[serde(default)]
    pub created_at_ms: Option<u64>,
    /// When its credential was revoked.
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
    /// Heard from (register, heartbeat, lease, progress) within
    /// max(3 × heartbeat interval, 15 s), and not revoked.
    pub online: bool,
    /// Its last heartbeat.
    #[serde(default)]
    pub last_heartbeat_ms: Option<u64>,
    /// Its last request of any kind.
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    /// `idle`, `mining` or `job`, from its last heartbeat.
    #[serde(default)]
    pub activity: Option<String>,
    /// Its miner's figures, from its last heartbeat while mining.
    #[serde(default)]
    pub mining: Option<MiningFigures>,
    /// Its GPU slots that are not healthy, from its last heartbeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_health: Vec<GpuSlotHealth>,
    /// The mining settings it was issued with.
    #[serde(default)]
    pub mining_settings: Option<MiningSettings>,
    /// `pictor-host x.y.z`, once registered.
    #[serde(default)]
    pub host_version: Option<String>,
    /// Its GPUs, once registered.
    #[serde(default)]
    pub gpus: Vec<GpuDescription>,
    /// Its prices by kind (the issued ones, else the registered ones).
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
    /// Leases it completed (its proof accepted).
    pub jobs_completed: u64,
    /// Earnings so far: over its completed leases, its price for the job's
    /// kind when it completed (0 for a kind it has no price for).
    pub earnings: f64,
    /// The leases it holds now.
    #[serde(default)]
    pub leases: Vec<WorkerLease>,
}

/// `GET /api/v1/workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerList {
    /// Every worker, issued or registered, oldest first.
    pub workers: Vec<WorkerSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_kinds() {
        assert!(valid_id("job-1.a_B"));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert!(valid_kind("render"));
        assert!(!valid_kind("Render"));
    }

    #[test]
    fn one_worker_id_rule_for_config_registration_and_routes() {
        for good in ["wkr", "wkr-7f3a9c", "studio_rig-1", &"x".repeat(64)] {
            assert!(valid_worker_id(good), "{good:?}");
        }
        // A dot would split `wallet.worker` for the pool; too short or too
        // long, spaces, slashes and non-ASCII are refused too.
        for bad in ["", "ab", "a.b", "a b", "a/b", "wkr-é", &"x".repeat(65)] {
            assert!(!valid_worker_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn job_state_names_are_the_wire_names() {
        use JobState::*;
        for state in [Queued, Running, Succeeded, Failed, Cancelled, Disputed] {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
            assert_eq!(state.to_string(), state.as_str());
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert_eq!(JobState::ALL.len(), 6);
        let error = "done".parse::<JobState>().unwrap_err().to_string();
        assert_eq!(
            error,
            r#""done" is not a job state (queued, running, succeeded, failed, cancelled, disputed)"#
        );
    }

    #[test]
    fn unknown_error_codes_from_newer_servers_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error": "payment_required", "message": "m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown);
        let body: ErrorBody =
            serde_json::from_str(r#"{"error": "lease_gone", "message": "m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::LeaseGone);
        for (code, name) in [
            (ErrorCode::Forbidden, "forbidden"),
            (ErrorCode::TooManyRequests, "too_many_requests"),
            (ErrorCode::QuotaExceeded, "quota_exceeded"),
            (ErrorCode::TimedOut, "timed_out"),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(name));
        }
    }

    #[test]
    fn params_digest_is_of_the_sorted_compact_text() {
        let params: serde_json::Value = serde_json::from_str(r#"{ "b": 1, "a": [1, 2] }"#).unwrap();
        assert_eq!(
            params_digest(&params),
            Sha256Digest::of(br#"{"a":[1,2],"b":1}"#)
        );
    }

    #[test]
    fn submit_defaults() {
        let plugin = Sha256Digest::of(b"p");
        let job: SubmitJob = serde_json::from_str(&format!(
            r#"{{"kind": "hello", "plugin": {{"sha256": "{plugin}", "size": 1}}}}"#
        ))
        .unwrap();
        assert_eq!((job.replicas, job.max_attempts, job.seed), (1, 3, 0));
    }
}
