//! The operator's view of workers: one [`WorkerSummary`] per worker,
//! issued here or registered with the farm token, assembled from the store
//! inside one transaction — online or not, last heartbeat, activity and
//! mining figures, GPUs, prices, jobs completed, earnings, leases held.

use std::collections::BTreeMap;

use pictor_protocol::api::{WorkerLease, WorkerSummary};

use crate::error::ApiError;
use crate::scheduler::Rules;
use crate::store::{IssuedWorkerRecord, LeaseRecordState, Tx, WorkerRecord};

/// A worker counts as online this long after its last request at least.
pub const MIN_ONLINE_WINDOW_MS: u64 = 15_000;

/// How long after its last request a worker still counts as online:
/// three heartbeat intervals (a third of the lease TTL each, as
/// `register` tells the worker), and at least [`MIN_ONLINE_WINDOW_MS`].
pub fn online_window_ms(rules: &Rules) -> u64 {
    let ttl_s = rules.lease_ttl_ms.div_ceil(1000);
    let interval_s = (ttl_s / 3).max(1);
    (3 * interval_s * 1000).max(MIN_ONLINE_WINDOW_MS)
}

/// Every worker, issued or registered, oldest first.
pub fn summaries(
    tx: &mut dyn Tx,
    rules: &Rules,
    now_ms: u64,
) -> Result<Vec<WorkerSummary>, ApiError> {
    let mut registered: BTreeMap<String, WorkerRecord> = tx
        .list_workers()?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let mut entries: Vec<(u64, Option<IssuedWorkerRecord>, Option<WorkerRecord>)> = Vec::new();
    for issued in tx.list_issued_workers()? {
        let worker = registered.remove(&issued.id);
        entries.push((issued.created_at_ms, Some(issued), worker));
    }
    for worker in registered.into_values() {
        entries.push((worker.registered_at_ms, None, Some(worker)));
    }
    entries.sort_by_key(|e| e.0);
    entries
        .into_iter()
        .map(|(_, issued, worker)| summarize(tx, rules, issued, worker, now_ms))
        .collect()
}

/// Worker `worker_id`, if it was issued or registered.
pub fn summary(
    tx: &mut dyn Tx,
    rules: &Rules,
    worker_id: &str,
    now_ms: u64,
) -> Result<Option<WorkerSummary>, ApiError> {
    let issued = tx.issued_worker(worker_id)?;
    let worker = tx.worker(worker_id)?;
    if issued.is_none() && worker.is_none() {
        return Ok(None);
    }
    summarize(tx, rules, issued, worker, now_ms).map(Some)
}

fn summarize(
    tx: &mut dyn Tx,
    rules: &Rules,
    issued: Option<IssuedWorkerRecord>,
    worker: Option<WorkerRecord>,
    now_ms: u64,
) -> Result<WorkerSummary, ApiError> {
    let id = issued
        .as_ref()
        .map(|i| i.id.clone())
        .or_else(|| worker.as_ref().map(|w| w.id.clone()))
        .unwrap_or_default();
    let beat = tx.beat(&id)?;
    let (jobs_completed, earnings) = tx.worker_totals(&id)?;
    let mut leases = Vec::new();
    for lease in tx.leases_of_worker(&id, LeaseRecordState::Active)? {
        let kind = tx.job(&lease.job_id)?.map(|j| j.kind).unwrap_or_default();
        leases.push(WorkerLease {
            lease_id: lease.id,
            job_id: lease.job_id,
            kind,
            fraction: lease.fraction,
            message: lease.message,
        });
    }
    let revoked_at_ms = issued.as_ref().and_then(|i| i.revoked_at_ms);
    let last_seen_ms = worker.as_ref().map(|w| w.last_seen_ms);
    let online = revoked_at_ms.is_none()
        && last_seen_ms.is_some_and(|seen| now_ms.saturating_sub(seen) <= online_window_ms(rules));
    let prices = match (&issued, &worker) {
        (Some(i), _) => i.prices.clone(),
        (None, Some(w)) => w.prices.clone(),
        (None, None) => BTreeMap::new(),
    };
    Ok(WorkerSummary {
        name: issued
            .as_ref()
            .map(|i| i.name.clone())
            .or_else(|| worker.as_ref().map(|w| w.name.clone()))
            .unwrap_or_default(),
        wallet: issued.as_ref().map(|i| i.wallet.clone()),
        issued: issued.is_some(),
        revoked: revoked_at_ms.is_some(),
        created_at_ms: issued.as_ref().map(|i| i.created_at_ms),
        revoked_at_ms,
        online,
        last_heartbeat_ms: beat.as_ref().map(|b| b.at_ms),
        last_seen_ms,
        activity: beat.as_ref().map(|b| b.activity.clone()),
        gpu_health: beat
            .as_ref()
            .map(|b| b.gpu_health.clone())
            .unwrap_or_default(),
        mining: beat.and_then(|b| b.mining),
        mining_settings: issued.as_ref().and_then(|i| i.mining.clone()),
        host_version: worker.as_ref().map(|w| w.host_version.clone()),
        gpus: worker.map(|w| w.gpus).unwrap_or_default(),
        prices,
        jobs_completed,
        earnings,
        leases,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_online_window_is_three_heartbeats_and_at_least_15_s() {
        let rules = Rules::with_ttl;
        assert_eq!(online_window_ms(&rules(60_000)), 60_000);
        assert_eq!(online_window_ms(&rules(3_000)), 15_000);
        assert_eq!(online_window_ms(&rules(90_000)), 90_000);
    }
}
