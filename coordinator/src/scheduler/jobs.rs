//! Jobs: submission (every field checked, blobs present), cancel, status
//! and the job list.

use std::collections::BTreeSet;

use pictor_protocol::api::{self, BlobRef, JobList, JobState, JobStatus, SubmitJob};
use pictor_protocol::proof::SignedProof;

use crate::blobs::BlobStore;
use crate::error::ApiError;
use crate::store::{JobRecord, LeaseRecord, LeaseRecordState, Tx};

use super::*;

pub(super) fn relative_name(name: &str) -> bool {
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
pub(super) fn same_content(job: &JobRecord, new: &JobRecord) -> bool {
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

pub(super) fn check_blob(
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
            "`kind` {:?} must be {}",
            job.kind,
            api::JOB_KIND_RULE
        )));
    }
    api::check_job_size(&job.params, job.inputs.len())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
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

pub(super) fn status_of(tx: &mut dyn Tx, job: JobRecord) -> Result<JobStatus, ApiError> {
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
