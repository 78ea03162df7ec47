//! Leases: granting the next one, extending on heartbeat and progress,
//! expiring those not extended or past their deadline, and settling a
//! job after a lease is lost.

use pictor_protocol::api::{
    GpuSlotHealth, Heartbeat, HeartbeatReply, JobState, Lease, LeaseState, LeaseStatus,
    MiningFigures, ProgressUpdate,
};

use crate::error::ApiError;
use crate::store::{BeatRecord, JobRecord, LeaseRecord, LeaseRecordState, Tx};

use super::*;

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
pub(super) fn settle_after_loss(
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
pub(super) fn open_state(leases: &[LeaseRecord]) -> JobState {
    if leases.iter().any(|l| l.state == LeaseRecordState::Active) {
        JobState::Running
    } else {
        JobState::Queued
    }
}

/// Moves `job` to a final state; its active leases become `cancelled`
/// (for a cancelled job) or `superseded`.
pub(super) fn finalize(
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
pub(super) fn extend(
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

pub(super) fn check_fraction(fraction: f32, field: &str) -> Result<f32, ApiError> {
    if !fraction.is_finite() {
        return Err(ApiError::invalid(format!(
            "`{field}` must be a number between 0 and 1"
        )));
    }
    Ok(fraction.clamp(0.0, 1.0))
}

/// A worker's message as stored and shown (the operator's CLI prints it):
/// at most 1000 bytes on one line, terminal controls escaped.
pub(super) fn clip(message: &str) -> String {
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
pub(super) fn beat_record(worker_id: &str, hb: &Heartbeat, now_ms: u64) -> BeatRecord {
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
