//! Issuing and revoking workers, and the list of them, against the shared
//! state: what the API's workers endpoints and the portal's forms both call.

use pictor_protocol::api::{self, CreateWorker, IssuedWorker, WorkerSummary};

use crate::error::ApiError;
use crate::issuing::{self, Credential};
use crate::state::{AppState, now_ms};
use crate::{roster, scheduler};

/// Issues a worker: checks `request`, stores the worker with the sha256 of
/// a new credential, and returns its `worker.json` (the only copy of the
/// credential).
pub async fn issue(state: &AppState, request: CreateWorker) -> Result<IssuedWorker, ApiError> {
    let checked = issuing::check(&request)?;
    // A fresh id that no worker has (issued or registered); ten hex digits
    // make a clash rare, so a few tries suffice.
    let mut tries = 0;
    let (record, credential) = loop {
        tries += 1;
        let credential = Credential::generate()?;
        let record = issuing::record(checked.clone(), &credential, now_ms());
        let candidate = record.clone();
        let inserted = state
            .transact(move |tx| {
                if tx.issued_worker(&candidate.id)?.is_some() || tx.worker(&candidate.id)?.is_some()
                {
                    return Ok(false);
                }
                tx.insert_issued_worker(&candidate)?;
                Ok(true)
            })
            .await?;
        if inserted {
            state.credentials.add(&record)?;
            break (record, credential);
        }
        if tries >= 5 {
            return Err(ApiError::internal(
                "could not find a free worker id after 5 tries",
            ));
        }
    };
    tracing::info!(worker = %record.id, name = %record.name, mining = record.mining.is_some(), "worker issued");
    let config = issuing::worker_config(
        &record,
        &credential.token,
        &state.public_url,
        state.miner_plugin.as_ref(),
    );
    Ok(IssuedWorker {
        worker_id: record.id,
        config,
    })
}

/// Revokes issued worker `worker_id`'s credential (again: no change) and
/// ends the leases it holds, so their jobs go to other workers at once.
pub async fn revoke(state: &AppState, worker_id: String) -> Result<WorkerSummary, ApiError> {
    if !api::valid_worker_id(&worker_id) {
        return Err(ApiError::not_found(format!(
            "{worker_id:?} is not a worker id"
        )));
    }
    let rules = state.rules;
    // Refused from this moment on, before the store is told.
    state.credentials.revoke(&worker_id);
    let (summary, ended) = state
        .transact(move |tx| {
            let now = now_ms();
            let Some(mut issued) = tx.issued_worker(&worker_id)? else {
                if tx.worker(&worker_id)?.is_some() {
                    return Err(ApiError::conflict(format!(
                        "worker {worker_id} uses the farm-wide worker token, which cannot be revoked for one worker; \
                         replace the data folder's worker.token to cut off every farm worker"
                    )));
                }
                return Err(ApiError::not_found(format!("no worker {worker_id}")));
            };
            let mut ended = 0;
            if issued.revoked_at_ms.is_none() {
                issued.revoked_at_ms = Some(now);
                tx.update_issued_worker(&issued)?;
                ended = scheduler::end_leases_of(tx, &worker_id, now)?;
            }
            let summary = roster::summary(tx, &rules, &worker_id, now)?
                .ok_or_else(|| ApiError::not_found(format!("no worker {worker_id}")))?;
            Ok((summary, ended))
        })
        .await?;
    tracing::info!(worker = %summary.id, leases_ended = ended, "worker credential revoked");
    if ended > 0 {
        state.jobs_changed.notify_waiters();
    }
    Ok(summary)
}

/// Every worker, oldest first.
pub async fn list_workers(state: &AppState) -> Result<Vec<WorkerSummary>, ApiError> {
    let rules = state.rules;
    state
        .transact(move |tx| roster::summaries(tx, &rules, now_ms()))
        .await
}
