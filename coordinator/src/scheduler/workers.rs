//! Workers: registration (bound to the first key), being seen, and ending
//! every lease of a worker whose credential is revoked.

use pictor_protocol::api::{self, RegisterRequest};

use crate::error::ApiError;
use crate::store::{LeaseRecordState, Tx, WorkerRecord};

use super::*;

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
                "`kinds[{i}]` {kind:?} must be {}",
                api::JOB_KIND_RULE
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
