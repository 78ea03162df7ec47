//! The rules: who gets which job, when a lease ends, when a job is done.
//!
//! Every function runs inside one store transaction ([`Tx`]) and takes the
//! current time, so the rules are deterministic and tested without a
//! server. In short:
//!
//! - **Leasing** gives a worker the oldest open job whose kind it accepts,
//!   that it is not skipped for (too many consecutive failures of that
//!   kind), of which it holds or completed no replica yet and which it has
//!   not refused (a signed, non-retryable failure), while it holds fewer
//!   active leases than its registered `slots`. Lease ids are
//!   `<job id>.<attempt>`.
//! - **Expiry**: an active lease not extended (heartbeat, progress) within
//!   the TTL expires, and so does one past its **deadline** (granted + the
//!   job's timeout + a margin) however often it was extended; its job is
//!   requeued, or fails once `max_attempts` leases ended unsuccessfully
//!   (failed or expired). A worker that shows up again with an expired
//!   lease of a job still open gets it back, unless its deadline passed.
//! - **Completion** checks the signed proof against the job and the
//!   worker's registered key and needs every output uploaded. A job
//!   succeeds when `replicas` distinct workers completed it with the same
//!   output digests, and is `disputed` when they differ. A late complete (of
//!   an expired lease) is accepted while the job is still open.
//! - **Failure** needs a signed proof once the job ran (only a `download`
//!   or `invalid-lease` report may come without one, and then counts as
//!   retryable). It requeues the replica while attempts remain, and counts
//!   consecutive failures per (worker, kind). A non-retryable failure fails
//!   the job only once as many distinct workers as the job has `replicas`
//!   reported one (so with one replica, at once); until then the other
//!   replicas go on and the failed one goes to another worker.
//! - Complete and fail are idempotent: the same report again is answered
//!   `duplicate: true`, a different one for a finished lease is a conflict.

use std::collections::{BTreeMap, BTreeSet};

use pictor_protocol::api::{
    self, BlobRef, CompleteReply, CompleteRequest, FailRequest, GpuSlotHealth, Heartbeat,
    HeartbeatReply, JobList, JobState, JobStatus, Lease, LeaseState, LeaseStatus, MiningFigures,
    NOT_RUN_FAILURE_KINDS, ProgressUpdate, RegisterRequest, SubmitJob,
};
use pictor_protocol::proof::{OutputDigest, PROOF_VERSION, SignedProof};

use crate::blobs::BlobStore;
use crate::error::ApiError;
use crate::store::{
    BeatRecord, FailureReport, JobRecord, LeaseRecord, LeaseRecordState, Tx, WorkerRecord,
};

/// Longest job id accepted, so that lease ids (`<job id>.<attempt>`) stay
/// valid ids (≤ 128 characters).
pub const MAX_JOB_ID_LEN: usize = 100;

/// Longest job timeout accepted in `limits.timeout_s`, in seconds (the
/// host's bound, `docs/job-spec.md`).
pub const MAX_JOB_TIMEOUT_S: f64 = 604_800.0;

/// Timing and policy knobs of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A lease lives this long after it is granted or last extended.
    pub lease_ttl_ms: u64,
    /// A worker stops getting a kind after this many consecutive failures on it.
    pub skip_after_failures: u32,
    /// A job's run time limit when its `limits.timeout_s` gives none.
    pub default_job_timeout_ms: u64,
    /// Added to the job's timeout to make a lease's deadline.
    pub deadline_margin_ms: u64,
}

impl Rules {
    /// The rules with `lease_ttl_ms`, skipping after 3 failures, and the
    /// default deadline settings ([`crate::limits::Limits::default`]).
    pub fn with_ttl(lease_ttl_ms: u64) -> Self {
        let limits = crate::limits::Limits::default();
        Rules {
            lease_ttl_ms,
            skip_after_failures: 3,
            default_job_timeout_ms: crate::limits::millis(limits.default_job_timeout),
            deadline_margin_ms: crate::limits::millis(limits.deadline_margin),
        }
    }

    /// The deadline of a lease of `job` granted at `now_ms`.
    fn deadline(&self, job: &JobRecord, now_ms: u64) -> u64 {
        now_ms
            .saturating_add(job_timeout_ms(&job.limits).unwrap_or(self.default_job_timeout_ms))
            .saturating_add(self.deadline_margin_ms)
    }

    /// When a lease extended at `now_ms` expires: a TTL from now, never
    /// past its deadline.
    fn expiry(&self, lease: &LeaseRecord, now_ms: u64) -> u64 {
        let by_ttl = now_ms.saturating_add(self.lease_ttl_ms);
        lease
            .deadline_at_ms
            .map_or(by_ttl, |deadline| by_ttl.min(deadline))
    }
}

/// A job's `limits.timeout_s` in milliseconds, if it gives a valid one.
fn job_timeout_ms(limits: &serde_json::Value) -> Option<u64> {
    let seconds = limits.get("timeout_s")?.as_f64()?;
    (seconds.is_finite() && seconds > 0.0 && seconds <= MAX_JOB_TIMEOUT_S)
        .then(|| (seconds * 1000.0).ceil() as u64)
}

/// Whether `lease` holds one of its job's replicas (running or done).
fn holds_replica(lease: &LeaseRecord) -> bool {
    matches!(
        lease.state,
        LeaseRecordState::Active | LeaseRecordState::Completed
    )
}

/// Whether `lease` ended in a signed, non-retryable failure: its worker
/// says the job cannot run there.
fn refused(lease: &LeaseRecord) -> bool {
    lease.state == LeaseRecordState::Failed
        && lease
            .failure
            .as_ref()
            .is_some_and(|f| !f.retryable && f.proof.is_some())
}

/// Whether `worker_id` may take a replica of a job wanting `replicas`,
/// whose leases are `leases`: a replica is free, and the worker holds,
/// completed or refused none.
fn may_take(leases: &[LeaseRecord], replicas: u32, worker_id: &str) -> bool {
    leases.iter().filter(|l| holds_replica(l)).count() < replicas as usize
        && !leases
            .iter()
            .any(|l| l.worker_id == worker_id && (holds_replica(l) || refused(l)))
}

fn expires_in_s(lease: &LeaseRecord, now_ms: u64) -> u32 {
    u32::try_from(lease.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------- workers

/// Registers (or re-registers) a worker.
pub fn register(
    tx: &mut dyn Tx,
    req: &RegisterRequest,
    now_ms: u64,
) -> Result<WorkerRecord, ApiError> {
    if !api::valid_worker_id(&req.worker_id) {
        return Err(ApiError::invalid(format!(
            "`worker_id` {:?} must be {}",
            req.worker_id,
            api::WORKER_ID_RULE
        )));
    }
    if req.name.chars().count() > 200 || req.name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "`name` must be at most 200 printable characters",
        ));
    }
    if req.host_version.chars().count() > 200 || req.host_version.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "`host_version` must be at most 200 printable characters",
        ));
    }
    let public_key = req.public_key.to_ascii_lowercase();
    let mut key = [0u8; 32];
    hex::decode_to_slice(&public_key, &mut key).map_err(|_| {
        ApiError::invalid(format!(
            "`public_key` {:?} is not 64 hex digits",
            req.public_key
        ))
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|e| ApiError::invalid(format!("`public_key` is not a valid ed25519 key: {e}")))?;
    if req.gpus.len() > 64 {
        return Err(ApiError::invalid("`gpus` lists more than 64 GPUs"));
    }
    if req.kinds.len() > 256 {
        return Err(ApiError::invalid("`kinds` lists more than 256 kinds"));
    }
    for (i, kind) in req.kinds.iter().enumerate() {
        if !api::valid_kind(kind) {
            return Err(ApiError::invalid(format!(
                "`kinds[{i}]` {kind:?} must be 1-64 characters from a-z 0-9 -"
            )));
        }
    }
    crate::issuing::check_prices(&req.prices)?;
    if req.slots == 0 || req.slots > 4096 {
        return Err(ApiError::invalid(format!(
            "`slots` must be between 1 and 4096, got {}",
            req.slots
        )));
    }
    let existing = tx.worker(&req.worker_id)?;
    if let Some(existing) = &existing
        && existing.public_key != public_key
    {
        return Err(ApiError::conflict(format!(
            "worker {} is registered with another key ({}…); run it with its original worker.key, or give this machine a new worker id",
            req.worker_id,
            &existing.public_key[..existing.public_key.len().min(16)]
        )));
    }
    let worker = WorkerRecord {
        id: req.worker_id.clone(),
        name: req.name.clone(),
        public_key,
        host_version: req.host_version.clone(),
        gpus: req.gpus.clone(),
        kinds: req.kinds.clone(),
        prices: req.prices.clone(),
        slots: req.slots,
        registered_at_ms: existing.map(|w| w.registered_at_ms).unwrap_or(now_ms),
        last_seen_ms: now_ms,
    };
    tx.put_worker(&worker)?;
    Ok(worker)
}

/// The registered worker `worker_id`, marked as seen now.
pub fn touch_worker(
    tx: &mut dyn Tx,
    worker_id: &str,
    now_ms: u64,
) -> Result<WorkerRecord, ApiError> {
    let mut worker = tx.worker(worker_id)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "worker {worker_id} is not registered; register it first"
        ))
    })?;
    worker.last_seen_ms = now_ms;
    tx.put_worker(&worker)?;
    Ok(worker)
}

/// Ends every active lease of `worker_id` at once, as if they had expired
/// (their jobs are requeued, or fail when out of attempts): used when the
/// worker's credential is revoked, so its jobs need not wait for the TTL.
/// Returns how many leases ended.
pub fn end_leases_of(tx: &mut dyn Tx, worker_id: &str, now_ms: u64) -> Result<usize, ApiError> {
    let active = tx.leases_of_worker(worker_id, LeaseRecordState::Active)?;
    for mut lease in active.iter().cloned() {
        lease.state = LeaseRecordState::Expired;
        lease.finished_at_ms = Some(now_ms);
        tx.update_lease(&lease)?;
        tracing::info!(lease = %lease.id, worker = worker_id, "lease ended: worker revoked");
        if let Some(job) = tx.job(&lease.job_id)?
            && !job.state.is_final()
        {
            let reason = format!(
                "lease {} ended: worker {worker_id}'s credential was revoked",
                lease.id
            );
            settle_after_loss(tx, job, &reason, now_ms)?;
        }
    }
    Ok(active.len())
}

// ---------------------------------------------------------------- leases

/// Expires every active lease past its time; returns how many expired.
pub fn expire_due(tx: &mut dyn Tx, now_ms: u64) -> Result<usize, ApiError> {
    let due = tx.due_leases(now_ms)?;
    for mut lease in due.iter().cloned() {
        lease.state = LeaseRecordState::Expired;
        lease.finished_at_ms = Some(now_ms);
        tx.update_lease(&lease)?;
        tracing::info!(lease = %lease.id, worker = %lease.worker_id, "lease expired");
        if let Some(job) = tx.job(&lease.job_id)?
            && !job.state.is_final()
        {
            let reason = format!(
                "last lease {} expired on worker {}",
                lease.id, lease.worker_id
            );
            settle_after_loss(tx, job, &reason, now_ms)?;
        }
    }
    Ok(due.len())
}

/// After a lease of `job` ended unsuccessfully: requeue it, or fail it when
/// it is out of attempts.
fn settle_after_loss(
    tx: &mut dyn Tx,
    mut job: JobRecord,
    reason: &str,
    now_ms: u64,
) -> Result<(), ApiError> {
    let leases = tx.leases_of_job(&job.id)?;
    let unsuccessful = leases.iter().filter(|l| l.state.is_unsuccessful()).count();
    if unsuccessful >= job.max_attempts as usize {
        let error = format!(
            "out of attempts ({unsuccessful} of {}): {reason}",
            job.max_attempts
        );
        tracing::warn!(job = %job.id, %error, "job failed");
        return finalize(tx, job, JobState::Failed, Some(error), now_ms);
    }
    job.state = open_state(&leases);
    tx.update_job(&job)?;
    tracing::info!(job = %job.id, %reason, "job requeued");
    Ok(())
}

/// The state of a job that is not final: running while any lease is active.
fn open_state(leases: &[LeaseRecord]) -> JobState {
    if leases.iter().any(|l| l.state == LeaseRecordState::Active) {
        JobState::Running
    } else {
        JobState::Queued
    }
}

/// Moves `job` to a final state; its active leases become `cancelled`
/// (for a cancelled job) or `superseded`.
fn finalize(
    tx: &mut dyn Tx,
    mut job: JobRecord,
    state: JobState,
    error: Option<String>,
    now_ms: u64,
) -> Result<(), ApiError> {
    job.state = state;
    job.error = error;
    job.finished_at_ms = Some(now_ms);
    tx.update_job(&job)?;
    let ended = if state == JobState::Cancelled {
        LeaseRecordState::Cancelled
    } else {
        LeaseRecordState::Superseded
    };
    for mut lease in tx.leases_of_job(&job.id)? {
        if lease.state == LeaseRecordState::Active {
            lease.state = ended;
            lease.finished_at_ms = Some(now_ms);
            tx.update_lease(&lease)?;
        }
    }
    Ok(())
}

/// Grants `worker_id` the next job it may take, if any.
pub fn lease_next(
    tx: &mut dyn Tx,
    rules: &Rules,
    worker_id: &str,
    now_ms: u64,
) -> Result<Option<Lease>, ApiError> {
    expire_due(tx, now_ms)?;
    let worker = touch_worker(tx, worker_id, now_ms)?;
    let held = tx
        .leases_of_worker(worker_id, LeaseRecordState::Active)?
        .len();
    if held >= worker.slots as usize {
        tracing::debug!(
            worker = worker_id,
            held,
            slots = worker.slots,
            "no lease: the worker holds as many as its slots"
        );
        return Ok(None);
    }
    let skipped = tx.skipped_kinds(worker_id, rules.skip_after_failures)?;
    let kinds = (!worker.kinds.is_empty()).then_some(worker.kinds.as_slice());
    for mut job in tx.open_jobs(kinds, &skipped)? {
        let leases = tx.leases_of_job(&job.id)?;
        if !may_take(&leases, job.replicas, worker_id) {
            continue;
        }
        let attempt = u32::try_from(leases.len()).unwrap_or(u32::MAX);
        let deadline = rules.deadline(&job, now_ms);
        let lease = LeaseRecord {
            id: format!("{}.{attempt}", job.id),
            job_id: job.id.clone(),
            worker_id: worker_id.to_string(),
            attempt,
            state: LeaseRecordState::Active,
            granted_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(rules.lease_ttl_ms).min(deadline),
            fraction: 0.0,
            message: String::new(),
            proof: None,
            failure: None,
            finished_at_ms: None,
            price: None,
            deadline_at_ms: Some(deadline),
        };
        tx.insert_lease(&lease)?;
        job.attempts += 1;
        job.state = JobState::Running;
        tx.update_job(&job)?;
        tracing::info!(lease = %lease.id, worker = worker_id, kind = %job.kind, "job leased");
        return Ok(Some(Lease {
            expires_in_s: expires_in_s(&lease, now_ms),
            lease_id: lease.id,
            job_id: job.id,
            kind: job.kind,
            attempt,
            plugin: job.plugin,
            inputs: job.inputs,
            params: job.params,
            seed: job.seed,
            limits: job.limits,
            price: job.price,
        }));
    }
    Ok(None)
}

/// Extends `lease` (held by `worker_id`) and says what state it is in, never
/// past its deadline. An expired lease whose job still needs it is revived,
/// unless its deadline passed or its worker holds all its slots meanwhile.
fn extend(
    tx: &mut dyn Tx,
    rules: &Rules,
    mut lease: LeaseRecord,
    now_ms: u64,
) -> Result<LeaseStatus, ApiError> {
    let status = |lease: &LeaseRecord, state: LeaseState| LeaseStatus {
        lease_id: lease.id.clone(),
        state,
        expires_in_s: if state == LeaseState::Active {
            expires_in_s(lease, now_ms)
        } else {
            0
        },
    };
    match lease.state {
        LeaseRecordState::Active => {
            lease.expires_at_ms = rules.expiry(&lease, now_ms);
            tx.update_lease(&lease)?;
            Ok(status(&lease, LeaseState::Active))
        }
        LeaseRecordState::Cancelled => Ok(status(&lease, LeaseState::Cancelled)),
        LeaseRecordState::Expired => {
            let Some(mut job) = tx.job(&lease.job_id)?.filter(|j| !j.state.is_final()) else {
                return Ok(status(&lease, LeaseState::Gone));
            };
            if lease.deadline_at_ms.is_some_and(|d| d <= now_ms) {
                return Ok(status(&lease, LeaseState::Gone));
            }
            let leases = tx.leases_of_job(&job.id)?;
            if !may_take(&leases, job.replicas, &lease.worker_id) {
                return Ok(status(&lease, LeaseState::Gone));
            }
            let slots = tx.worker(&lease.worker_id)?.map_or(0, |w| w.slots);
            if tx
                .leases_of_worker(&lease.worker_id, LeaseRecordState::Active)?
                .len()
                >= slots as usize
            {
                return Ok(status(&lease, LeaseState::Gone));
            }
            lease.state = LeaseRecordState::Active;
            lease.expires_at_ms = rules.expiry(&lease, now_ms);
            lease.finished_at_ms = None;
            tx.update_lease(&lease)?;
            job.state = JobState::Running;
            tx.update_job(&job)?;
            tracing::info!(lease = %lease.id, worker = %lease.worker_id, "expired lease revived by its worker");
            Ok(status(&lease, LeaseState::Active))
        }
        LeaseRecordState::Completed | LeaseRecordState::Failed | LeaseRecordState::Superseded => {
            Ok(status(&lease, LeaseState::Gone))
        }
    }
}

fn check_fraction(fraction: f32, field: &str) -> Result<f32, ApiError> {
    if !fraction.is_finite() {
        return Err(ApiError::invalid(format!(
            "`{field}` must be a number between 0 and 1"
        )));
    }
    Ok(fraction.clamp(0.0, 1.0))
}

/// A worker's message as stored and shown (the operator's CLI prints it):
/// at most 1000 bytes on one line, terminal controls escaped.
fn clip(message: &str) -> String {
    pictor_protocol::text::one_line(message, 1000)
}

/// A heartbeat: extends every listed lease of this worker.
pub fn heartbeat(
    tx: &mut dyn Tx,
    rules: &Rules,
    worker_id: &str,
    hb: &Heartbeat,
    now_ms: u64,
) -> Result<HeartbeatReply, ApiError> {
    touch_worker(tx, worker_id, now_ms)?;
    // Leases past their deadline end here, so a heartbeat cannot keep them.
    expire_due(tx, now_ms)?;
    if hb.leases.len() > 4096 {
        return Err(ApiError::invalid("`leases` lists more than 4096 leases"));
    }
    if hb.gpus.len() > MAX_GPU_SLOTS {
        return Err(ApiError::invalid(format!(
            "`gpus` lists more than {MAX_GPU_SLOTS} GPU slots"
        )));
    }
    tx.put_beat(&beat_record(worker_id, hb, now_ms))?;
    let mut replies = Vec::with_capacity(hb.leases.len());
    for (i, item) in hb.leases.iter().enumerate() {
        let fraction = check_fraction(item.fraction, &format!("leases[{i}].fraction"))?;
        let lease = tx
            .lease(&item.lease_id)?
            .filter(|l| l.worker_id == worker_id);
        let Some(mut lease) = lease else {
            replies.push(LeaseStatus {
                lease_id: item.lease_id.clone(),
                state: LeaseState::Gone,
                expires_in_s: 0,
            });
            continue;
        };
        if lease.state == LeaseRecordState::Active {
            lease.fraction = fraction;
            lease.message = clip(&item.message);
        }
        replies.push(extend(tx, rules, lease, now_ms)?);
    }
    Ok(HeartbeatReply { leases: replies })
}

/// GPU slots one heartbeat may list (a worker has one per GPU).
pub const MAX_GPU_SLOTS: usize = 64;

/// What the operator's views keep of a heartbeat: the activity (an
/// unknown word from a newer host is kept, clipped), the miner's figures
/// (clipped texts; a hashrate that is not a finite number ≥ 0 reads 0) and
/// the GPU slots that are not healthy (clipped texts).
fn beat_record(worker_id: &str, hb: &Heartbeat, now_ms: u64) -> BeatRecord {
    let clipped = |text: &str, chars: usize| -> String {
        text.chars()
            .filter(|c| !c.is_control())
            .take(chars)
            .collect()
    };
    let short = |text: &str| clipped(text, 64);
    BeatRecord {
        worker_id: worker_id.to_string(),
        at_ms: now_ms,
        activity: short(&hb.activity),
        mining: hb.mining.as_ref().map(|m| MiningFigures {
            coin: short(&m.coin),
            pool: short(&m.pool),
            hashrate: if m.hashrate.is_finite() && m.hashrate >= 0.0 {
                m.hashrate
            } else {
                0.0
            },
            accepted: m.accepted,
            rejected: m.rejected,
        }),
        gpu_health: hb
            .gpus
            .iter()
            .map(|g| GpuSlotHealth {
                slot: g.slot,
                state: short(&g.state),
                detail: clipped(&g.detail, 300),
            })
            .collect(),
    }
}

/// Progress on one lease (also extends it).
pub fn progress(
    tx: &mut dyn Tx,
    rules: &Rules,
    lease_id: &str,
    update: &ProgressUpdate,
    now_ms: u64,
) -> Result<LeaseStatus, ApiError> {
    let fraction = check_fraction(update.fraction, "fraction")?;
    expire_due(tx, now_ms)?;
    let mut lease = tx
        .lease(lease_id)?
        .ok_or_else(|| ApiError::not_found(format!("no lease {lease_id}")))?;
    touch_worker(tx, &lease.worker_id, now_ms)?;
    if lease.state == LeaseRecordState::Active {
        lease.fraction = fraction;
        lease.message = clip(&update.message);
    }
    extend(tx, rules, lease, now_ms)
}

/// The lease `lease_id`, or 404.
pub fn lease_record(tx: &mut dyn Tx, lease_id: &str) -> Result<LeaseRecord, ApiError> {
    tx.lease(lease_id)?
        .ok_or_else(|| ApiError::not_found(format!("no lease {lease_id}")))
}

/// Refuses a report on a lease that can take none; `Ok` for active and
/// (for completes) expired leases.
fn gone_unless_open(tx: &mut dyn Tx, lease: &LeaseRecord) -> Result<JobRecord, ApiError> {
    let job = tx.job(&lease.job_id)?.ok_or_else(|| {
        ApiError::internal(format!(
            "lease {} names job {} which is not in the store",
            lease.id, lease.job_id
        ))
    })?;
    if job.state == JobState::Cancelled || lease.state == LeaseRecordState::Cancelled {
        return Err(ApiError::gone(format!(
            "job {} was cancelled by its creator; drop lease {}",
            job.id, lease.id
        )));
    }
    if job.state.is_final() || lease.state == LeaseRecordState::Superseded {
        return Err(ApiError::gone(format!(
            "job {} is already {} through other leases; drop lease {}",
            job.id, job.state, lease.id
        )));
    }
    Ok(job)
}

/// Checks a proof against the lease, its job and its worker's key; its
/// manifest must say `status` (`succeeded` for a complete, `failed` for a
/// fail).
fn check_proof(
    proof: &SignedProof,
    lease: &LeaseRecord,
    job: &JobRecord,
    worker: &WorkerRecord,
    status: &str,
) -> Result<(), ApiError> {
    let bad = |what: String| ApiError::bad_proof(format!("proof for lease {}: {what}", lease.id));
    proof
        .verify(Some(&worker.public_key))
        .map_err(|e| bad(format!("{e} (the key registered for worker {})", worker.id)))?;
    let m = &proof.manifest;
    if m.version != PROOF_VERSION {
        return Err(bad(format!(
            "manifest `version` is {}, this coordinator reads {PROOF_VERSION}",
            m.version
        )));
    }
    if m.job_id != lease.id {
        return Err(bad(format!(
            "manifest `job_id` is {:?}, expected the lease id {:?}",
            m.job_id, lease.id
        )));
    }
    if m.worker_id != lease.worker_id {
        return Err(bad(format!(
            "manifest `worker_id` is {:?}, but the lease is held by {:?}",
            m.worker_id, lease.worker_id
        )));
    }
    if m.status != status {
        let hint = if status == "succeeded" {
            "a complete needs \"succeeded\" (report failures with fail)"
        } else {
            "a fail needs \"failed\" (report successes with complete)"
        };
        return Err(bad(format!("manifest `status` is {:?}; {hint}", m.status)));
    }
    if m.plugin_sha256 != job.plugin.sha256 {
        return Err(bad(format!(
            "`plugin_sha256` is {}, the job's plugin is {}",
            m.plugin_sha256, job.plugin.sha256
        )));
    }
    let signed: BTreeSet<(&str, _)> = m
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.sha256))
        .collect();
    let given: BTreeSet<(&str, _)> = job
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.sha256))
        .collect();
    if signed != given || m.inputs.len() != job.inputs.len() {
        let differing: Vec<&str> = signed
            .symmetric_difference(&given)
            .map(|(name, _)| *name)
            .collect();
        return Err(bad(format!(
            "`inputs` differ from the job's inputs (at {})",
            differing.join(", ")
        )));
    }
    let params = api::params_digest(&job.params);
    if m.params_sha256 != params {
        return Err(bad(format!(
            "`params_sha256` is {}, the job's params digest is {params}",
            m.params_sha256
        )));
    }
    if m.seed != job.seed {
        return Err(bad(format!(
            "`seed` is {}, the job's seed is {}",
            m.seed, job.seed
        )));
    }
    let mut paths = BTreeSet::new();
    for output in &m.outputs {
        if !relative_name(&output.path) {
            return Err(bad(format!(
                "output path {:?} is not a relative path without `..`",
                output.path
            )));
        }
        if !paths.insert(&output.path) {
            return Err(bad(format!("output {:?} is listed twice", output.path)));
        }
    }
    Ok(())
}

/// A complete: checks the proof and records the result.
pub fn complete(
    tx: &mut dyn Tx,
    blobs: &BlobStore,
    lease_id: &str,
    req: &CompleteRequest,
    now_ms: u64,
) -> Result<CompleteReply, ApiError> {
    let mut lease = lease_record(tx, lease_id)?;
    match lease.state {
        LeaseRecordState::Completed => {
            let job = tx
                .job(&lease.job_id)?
                .map(|j| j.state)
                .unwrap_or(JobState::Failed);
            if lease.proof.as_ref() == Some(&req.proof) {
                return Ok(CompleteReply {
                    job_id: lease.job_id,
                    job_state: job,
                    duplicate: true,
                });
            }
            return Err(ApiError::conflict(format!(
                "lease {lease_id} was already completed with a different proof"
            )));
        }
        LeaseRecordState::Failed => {
            return Err(ApiError::conflict(format!(
                "lease {lease_id} was reported failed; a lease reports once"
            )));
        }
        _ => {}
    }
    let job = gone_unless_open(tx, &lease)?;
    let worker = tx.worker(&lease.worker_id)?.ok_or_else(|| {
        ApiError::internal(format!(
            "lease {lease_id} is held by unknown worker {}",
            lease.worker_id
        ))
    })?;
    check_proof(&req.proof, &lease, &job, &worker, "succeeded")?;
    let leases = tx.leases_of_job(&job.id)?;
    if lease.state == LeaseRecordState::Expired
        && leases
            .iter()
            .any(|l| l.state == LeaseRecordState::Completed && l.worker_id == lease.worker_id)
    {
        return Err(ApiError::gone(format!(
            "worker {} already completed job {} through another lease; drop lease {lease_id}",
            lease.worker_id, job.id
        )));
    }
    let missing = blobs.missing(req.proof.manifest.outputs.iter().map(|o| &o.sha256));
    if !missing.is_empty() {
        return Err(ApiError::missing_blobs(
            format!(
                "{} output blob(s) of lease {lease_id} were not uploaded; PUT them first",
                missing.len()
            ),
            missing,
        ));
    }
    if lease.state == LeaseRecordState::Expired {
        tracing::info!(lease = lease_id, "late result of an expired lease accepted");
    }
    lease.state = LeaseRecordState::Completed;
    lease.proof = Some(req.proof.clone());
    lease.fraction = 1.0;
    lease.finished_at_ms = Some(now_ms);
    lease.price = price_of(tx, &worker, &job.kind)?;
    tx.update_lease(&lease)?;
    tx.insert_outputs(&lease.id, &req.proof.manifest.outputs)?;
    let outputs: Vec<_> = req
        .proof
        .manifest
        .outputs
        .iter()
        .map(|o| o.sha256)
        .collect();
    tx.mark_referenced(&outputs)?;
    tx.set_kind_failures(&lease.worker_id, &job.kind, 0)?;
    // This worker's replica is in: its other active leases of the job end.
    for mut other in tx.leases_of_job(&job.id)? {
        if other.state == LeaseRecordState::Active && other.worker_id == lease.worker_id {
            other.state = LeaseRecordState::Superseded;
            other.finished_at_ms = Some(now_ms);
            tx.update_lease(&other)?;
        }
    }
    let state = settle_completions(tx, job, now_ms)?;
    tracing::info!(lease = lease_id, worker = %lease.worker_id, job_state = %state, "lease completed");
    Ok(CompleteReply {
        job_id: lease.job_id,
        job_state: state,
        duplicate: false,
    })
}

/// What `worker` charges for a job of `kind` now: its issued price, else
/// the price it registered with.
fn price_of(tx: &mut dyn Tx, worker: &WorkerRecord, kind: &str) -> Result<Option<f64>, ApiError> {
    let issued = tx
        .issued_worker(&worker.id)?
        .and_then(|w| w.prices.get(kind).copied());
    Ok(issued.or_else(|| worker.prices.get(kind).copied()))
}

/// After a completion: succeed (or dispute) the job once enough distinct
/// workers completed it.
fn settle_completions(
    tx: &mut dyn Tx,
    mut job: JobRecord,
    now_ms: u64,
) -> Result<JobState, ApiError> {
    let leases = tx.leases_of_job(&job.id)?;
    let mut by_worker: BTreeMap<&str, &[OutputDigest]> = BTreeMap::new();
    let mut order = Vec::new();
    for lease in leases
        .iter()
        .filter(|l| l.state == LeaseRecordState::Completed)
    {
        if let Some(proof) = &lease.proof
            && !by_worker.contains_key(lease.worker_id.as_str())
        {
            by_worker.insert(&lease.worker_id, &proof.manifest.outputs);
            order.push(lease.worker_id.as_str());
        }
    }
    if by_worker.len() < job.replicas as usize {
        job.state = open_state(&leases);
        tx.update_job(&job)?;
        return Ok(job.state);
    }
    let results: Vec<(&str, &[OutputDigest])> = order.iter().map(|w| (*w, by_worker[w])).collect();
    match disagreement(&results) {
        None => {
            finalize(tx, job, JobState::Succeeded, None, now_ms)?;
            Ok(JobState::Succeeded)
        }
        Some(error) => {
            tracing::warn!(job = %job.id, %error, "replicas disagree");
            finalize(tx, job, JobState::Disputed, Some(error), now_ms)?;
            Ok(JobState::Disputed)
        }
    }
}

/// Which outputs the replicas disagree on, as one line; `None` if they agree.
fn disagreement(results: &[(&str, &[OutputDigest])]) -> Option<String> {
    let maps: Vec<(&str, BTreeMap<&str, String>)> = results
        .iter()
        .map(|(worker, outputs)| {
            (
                *worker,
                outputs
                    .iter()
                    .map(|o| (o.path.as_str(), o.sha256.to_string()))
                    .collect(),
            )
        })
        .collect();
    let paths: BTreeSet<&str> = maps.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let mut problems = Vec::new();
    for path in paths {
        let versions: Vec<String> = maps
            .iter()
            .map(|(worker, m)| match m.get(path) {
                Some(sha) => format!("{worker}: {}…", &sha[..12]),
                None => format!("{worker}: absent"),
            })
            .collect();
        let distinct: BTreeSet<Option<&String>> = maps.iter().map(|(_, m)| m.get(path)).collect();
        if distinct.len() > 1 {
            problems.push(format!("`{path}` ({})", versions.join(", ")));
        }
    }
    (!problems.is_empty()).then(|| format!("replicas disagree on outputs: {}", problems.join("; ")))
}

/// A failure report.
pub fn fail(
    tx: &mut dyn Tx,
    rules: &Rules,
    lease_id: &str,
    req: &FailRequest,
    now_ms: u64,
) -> Result<CompleteReply, ApiError> {
    let mut lease = lease_record(tx, lease_id)?;
    let report = FailureReport {
        kind: req.kind.clone(),
        message: clip(&req.message),
        retryable: req.retryable,
        proof: req.proof.clone(),
    };
    match lease.state {
        LeaseRecordState::Failed => {
            let job = tx
                .job(&lease.job_id)?
                .map(|j| j.state)
                .unwrap_or(JobState::Failed);
            if lease.failure.as_ref() == Some(&report) {
                return Ok(CompleteReply {
                    job_id: lease.job_id,
                    job_state: job,
                    duplicate: true,
                });
            }
            return Err(ApiError::conflict(format!(
                "lease {lease_id} was already reported failed with another report"
            )));
        }
        LeaseRecordState::Completed => {
            return Err(ApiError::conflict(format!(
                "lease {lease_id} was completed; a lease reports once"
            )));
        }
        LeaseRecordState::Expired => {
            return Err(ApiError::gone(format!(
                "lease {lease_id} expired before this report; its job was requeued"
            )));
        }
        _ => {}
    }
    let job = gone_unless_open(tx, &lease)?;
    if !api::valid_kind(&req.kind) {
        return Err(ApiError::invalid(format!(
            "`kind` {:?} must be 1-64 characters from a-z 0-9 - (e.g. `timed-out`)",
            pictor_protocol::text::one_line(&req.kind, 80)
        )));
    }
    let worker = tx.worker(&lease.worker_id)?.ok_or_else(|| {
        ApiError::internal(format!(
            "lease {lease_id} is held by unknown worker {}",
            lease.worker_id
        ))
    })?;
    let signed = match &req.proof {
        Some(proof) => {
            check_proof(proof, &lease, &job, &worker, "failed")?;
            true
        }
        None if NOT_RUN_FAILURE_KINDS.contains(&req.kind.as_str()) => false,
        None => {
            return Err(ApiError::bad_proof(format!(
                "fail of lease {lease_id} has no `proof`: a job that reached the worker's sandbox is reported with \
                 its signed proof (manifest `status` \"failed\"); only {} failures, of a lease that never ran, may leave it out",
                NOT_RUN_FAILURE_KINDS.join(" and ")
            )));
        }
    };
    lease.state = LeaseRecordState::Failed;
    lease.failure = Some(report);
    lease.finished_at_ms = Some(now_ms);
    tx.update_lease(&lease)?;
    let failures = tx
        .kind_failures(&lease.worker_id, &job.kind)?
        .saturating_add(1);
    tx.set_kind_failures(&lease.worker_id, &job.kind, failures)?;
    if failures == rules.skip_after_failures {
        tracing::warn!(
            worker = %lease.worker_id,
            kind = %job.kind,
            failures,
            "worker failed this kind {failures} times in a row; it gets no more jobs of this kind until it completes one"
        );
    }
    let reason = format!(
        "lease {lease_id} failed on worker {}: {}: {}",
        lease.worker_id,
        req.kind,
        clip(&req.message)
    );
    // Only a signed failure can end a job for good; an unsigned one (the
    // lease never ran) costs an attempt, as an expiry does.
    let permanent = signed && !req.retryable;
    tracing::info!(lease = lease_id, retryable = !permanent, %reason, "lease failed");
    let job_id = job.id.clone();
    if permanent {
        let leases = tx.leases_of_job(&job.id)?;
        let refusers: BTreeSet<&str> = leases
            .iter()
            .filter(|l| refused(l))
            .map(|l| l.worker_id.as_str())
            .collect();
        if refusers.len() >= job.replicas as usize {
            let reason = if job.replicas > 1 {
                format!(
                    "{} of {} workers could not run it; last: {reason}",
                    refusers.len(),
                    job.replicas
                )
            } else {
                reason
            };
            finalize(tx, job, JobState::Failed, Some(reason), now_ms)?;
        } else {
            // The other replicas go on; this one goes to another worker.
            settle_after_loss(tx, job, &reason, now_ms)?;
        }
    } else {
        settle_after_loss(tx, job, &reason, now_ms)?;
    }
    let state = tx
        .job(&job_id)?
        .map(|j| j.state)
        .unwrap_or(JobState::Failed);
    Ok(CompleteReply {
        job_id,
        job_state: state,
        duplicate: false,
    })
}

// ---------------------------------------------------------------- jobs

fn relative_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The content of a submission that must match for a resubmission to be a no-op.
fn same_content(job: &JobRecord, new: &JobRecord) -> bool {
    (
        &job.kind,
        &job.plugin,
        &job.inputs,
        &job.params,
        job.seed,
        &job.limits,
        job.price,
        job.replicas,
        job.max_attempts,
    ) == (
        &new.kind,
        &new.plugin,
        &new.inputs,
        &new.params,
        new.seed,
        &new.limits,
        new.price,
        new.replicas,
        new.max_attempts,
    )
}

fn check_blob(
    blobs: &BlobStore,
    field: &str,
    blob: &BlobRef,
    missing: &mut Vec<pictor_protocol::Sha256Digest>,
) -> Result<(), ApiError> {
    match blobs.size(&blob.sha256) {
        None => {
            if !missing.contains(&blob.sha256) {
                missing.push(blob.sha256);
            }
            Ok(())
        }
        Some(size) if size != blob.size => Err(ApiError::invalid(format!(
            "`{field}.size` is {}, but blob {} has {size} bytes",
            blob.size, blob.sha256
        ))),
        Some(_) => Ok(()),
    }
}

/// Validates a submission and stores it (or finds it, when the same job was
/// submitted before); `true` if it is new.
pub fn submit(
    tx: &mut dyn Tx,
    blobs: &BlobStore,
    job: &SubmitJob,
    generated_id: &str,
    now_ms: u64,
) -> Result<(JobStatus, bool), ApiError> {
    let id = job.id.clone().unwrap_or_else(|| generated_id.to_string());
    if !api::valid_id(&id) || id.len() > MAX_JOB_ID_LEN {
        return Err(ApiError::invalid(format!(
            "`id` {id:?} must be 1-{MAX_JOB_ID_LEN} characters from A-Z a-z 0-9 . _ - (not starting with .)"
        )));
    }
    if !api::valid_kind(&job.kind) {
        return Err(ApiError::invalid(format!(
            "`kind` {:?} must be 1-64 characters from a-z 0-9 -",
            job.kind
        )));
    }
    if job.inputs.len() > api::MAX_INPUTS {
        return Err(ApiError::invalid(format!(
            "`inputs` lists {} files, the limit is {}",
            job.inputs.len(),
            api::MAX_INPUTS
        )));
    }
    let params_bytes = api::canonical_json(&job.params).len();
    if params_bytes > api::MAX_PARAMS_BYTES {
        return Err(ApiError::invalid(format!(
            "`params` is {params_bytes} bytes as JSON, the limit is {}; put bulk data in an input file",
            api::MAX_PARAMS_BYTES
        )));
    }
    let mut names = BTreeSet::new();
    for (i, input) in job.inputs.iter().enumerate() {
        if !relative_name(&input.name) {
            return Err(ApiError::invalid(format!(
                "`inputs[{i}].name` {:?} must be a relative `/`-separated path without `..`",
                input.name
            )));
        }
        if !names.insert(&input.name) {
            return Err(ApiError::invalid(format!(
                "`inputs[{i}].name` {:?} appears twice",
                input.name
            )));
        }
    }
    if !(1..=4).contains(&job.replicas) {
        return Err(ApiError::invalid(format!(
            "`replicas` must be between 1 and 4, got {}",
            job.replicas
        )));
    }
    if !(1..=20).contains(&job.max_attempts) {
        return Err(ApiError::invalid(format!(
            "`max_attempts` must be between 1 and 20, got {}",
            job.max_attempts
        )));
    }
    if let Some(price) = job.price
        && !(price.is_finite() && price >= 0.0)
    {
        return Err(ApiError::invalid(format!(
            "`price` must be a number ≥ 0, got {price}"
        )));
    }
    let object_or_empty = |value: &serde_json::Value| {
        if value.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            value.clone()
        }
    };
    let limits = object_or_empty(&job.limits);
    if !limits.is_object() {
        return Err(ApiError::invalid(
            "`limits` must be an object (see docs/job-spec.md)",
        ));
    }
    if let Some(timeout) = limits.get("timeout_s").filter(|t| !t.is_null())
        && job_timeout_ms(&limits).is_none()
    {
        return Err(ApiError::invalid(format!(
            "`limits.timeout_s` must be a number of seconds, 0 < s ≤ {MAX_JOB_TIMEOUT_S}, got {timeout} (see docs/job-spec.md)"
        )));
    }
    let record = JobRecord {
        id: id.clone(),
        kind: job.kind.clone(),
        plugin: job.plugin.clone(),
        inputs: job.inputs.clone(),
        params: object_or_empty(&job.params),
        seed: job.seed,
        limits,
        price: job.price,
        replicas: job.replicas,
        max_attempts: job.max_attempts,
        state: JobState::Queued,
        attempts: 0,
        created_at_ms: now_ms,
        finished_at_ms: None,
        error: None,
    };
    if let Some(existing) = tx.job(&id)? {
        if same_content(&existing, &record) {
            return Ok((status_of(tx, existing)?, false));
        }
        return Err(ApiError::conflict(format!(
            "job {id} exists with different content; submit under another id"
        )));
    }
    let mut missing = Vec::new();
    check_blob(blobs, "plugin", &job.plugin, &mut missing)?;
    for (i, input) in job.inputs.iter().enumerate() {
        let blob = BlobRef {
            sha256: input.sha256,
            size: input.size,
        };
        check_blob(blobs, &format!("inputs[{i}]"), &blob, &mut missing)?;
    }
    if !missing.is_empty() {
        return Err(ApiError::missing_blobs(
            format!(
                "{} blob(s) of job {id} were not uploaded; PUT the plugin and inputs first",
                missing.len()
            ),
            missing,
        ));
    }
    tx.insert_job(&record)?;
    let named: Vec<_> = std::iter::once(record.plugin.sha256)
        .chain(record.inputs.iter().map(|i| i.sha256))
        .collect();
    tx.mark_referenced(&named)?;
    tracing::info!(job = %id, kind = %record.kind, replicas = record.replicas, "job submitted");
    Ok((status_of(tx, record)?, true))
}

/// Cancels a job; cancelling a cancelled job again is a no-op.
pub fn cancel(tx: &mut dyn Tx, job_id: &str, now_ms: u64) -> Result<JobStatus, ApiError> {
    let job = tx
        .job(job_id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {job_id}")))?;
    match job.state {
        JobState::Cancelled => {}
        state if state.is_final() => {
            return Err(ApiError::conflict(format!(
                "job {job_id} already {}; nothing to cancel",
                state
            )));
        }
        _ => {
            finalize(
                tx,
                job,
                JobState::Cancelled,
                Some("cancelled by its creator".into()),
                now_ms,
            )?;
            tracing::info!(job = job_id, "job cancelled");
        }
    }
    job_status(tx, job_id)
}

/// A job as its creator sees it.
pub fn job_status(tx: &mut dyn Tx, job_id: &str) -> Result<JobStatus, ApiError> {
    let job = tx
        .job(job_id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {job_id}")))?;
    status_of(tx, job)
}

fn status_of(tx: &mut dyn Tx, job: JobRecord) -> Result<JobStatus, ApiError> {
    let completed: Vec<LeaseRecord> = tx
        .leases_of_job(&job.id)?
        .into_iter()
        .filter(|l| l.state == LeaseRecordState::Completed)
        .collect();
    let proofs: Vec<SignedProof> = completed.iter().filter_map(|l| l.proof.clone()).collect();
    let outputs = match (job.state, proofs.first()) {
        (JobState::Succeeded, Some(proof)) => proof.manifest.outputs.clone(),
        _ => Vec::new(),
    };
    Ok(JobStatus {
        job_id: job.id,
        kind: job.kind,
        state: job.state,
        attempts: job.attempts,
        replicas: job.replicas,
        created_at_ms: job.created_at_ms,
        finished_at_ms: job.finished_at_ms,
        workers: completed.into_iter().map(|l| l.worker_id).collect(),
        error: job.error,
        outputs,
        proofs,
    })
}

/// Jobs, newest first.
pub fn list_jobs(
    tx: &mut dyn Tx,
    state: Option<JobState>,
    limit: u32,
) -> Result<JobList, ApiError> {
    let jobs = tx.list_jobs(state, limit)?;
    let mut list = Vec::with_capacity(jobs.len());
    for job in jobs {
        list.push(status_of(tx, job)?);
    }
    Ok(JobList { jobs: list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_protocol::Sha256Digest;

    fn outputs(items: &[(&str, &[u8])]) -> Vec<OutputDigest> {
        items
            .iter()
            .map(|(p, b)| OutputDigest {
                path: p.to_string(),
                size: b.len() as u64,
                sha256: Sha256Digest::of(b),
            })
            .collect()
    }

    #[test]
    fn disagreement_names_each_differing_output() {
        let a = outputs(&[("x.png", b"1"), ("y.txt", b"2")]);
        let b = outputs(&[("x.png", b"1"), ("y.txt", b"3"), ("z", b"4")]);
        assert_eq!(disagreement(&[("w1", &a), ("w2", &a)]), None);
        let message = disagreement(&[("w1", &a), ("w2", &b)]).unwrap();
        assert!(message.contains("`y.txt` (w1: "), "{message}");
        assert!(message.contains("`z` (w1: absent, w2: "), "{message}");
        assert!(!message.contains("x.png"), "{message}");
    }

    #[test]
    fn names_must_stay_inside() {
        for good in ["a", "a/b.txt", "scene/x.glb"] {
            assert!(relative_name(good), "{good}");
        }
        for bad in ["", "/abs", "../x", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(!relative_name(bad), "{bad}");
        }
    }
}
