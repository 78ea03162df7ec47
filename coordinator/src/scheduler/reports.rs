//! Reports: `complete` with its proof checked and replicas compared, and
//! `fail`, signed once the job ran; both idempotent.

use std::collections::{BTreeMap, BTreeSet};

use pictor_protocol::api::{
    self, CompleteReply, CompleteRequest, FailRequest, JobState, NOT_RUN_FAILURE_KINDS,
};
use pictor_protocol::proof::{OutputDigest, PROOF_VERSION, SignedProof};

use crate::blobs::BlobStore;
use crate::error::ApiError;
use crate::store::{FailureReport, JobRecord, LeaseRecord, LeaseRecordState, Tx, WorkerRecord};

use super::*;

/// The lease `lease_id`, or 404.
pub fn lease_record(tx: &mut dyn Tx, lease_id: &str) -> Result<LeaseRecord, ApiError> {
    tx.lease(lease_id)?
        .ok_or_else(|| ApiError::not_found(format!("no lease {lease_id}")))
}

/// Refuses a report on a lease that can take none; `Ok` for active and
/// (for completes) expired leases.
pub(super) fn gone_unless_open(
    tx: &mut dyn Tx,
    lease: &LeaseRecord,
) -> Result<JobRecord, ApiError> {
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
pub(super) fn check_proof(
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
pub(super) fn price_of(
    tx: &mut dyn Tx,
    worker: &WorkerRecord,
    kind: &str,
) -> Result<Option<f64>, ApiError> {
    let issued = tx
        .issued_worker(&worker.id)?
        .and_then(|w| w.prices.get(kind).copied());
    Ok(issued.or_else(|| worker.prices.get(kind).copied()))
}

/// After a completion: succeed (or dispute) the job once enough distinct
/// workers completed it.
pub(super) fn settle_completions(
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
pub(super) fn disagreement(results: &[(&str, &[OutputDigest])]) -> Option<String> {
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
            "`kind` {:?} must be {} (e.g. `timed-out`)",
            pictor_protocol::text::one_line(&req.kind, 80),
            api::JOB_KIND_RULE
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
