//! Lease endpoints: progress, complete, fail.

use std::sync::Arc;

use axum::extract::State;
use pictor_protocol::api::{
    CompleteReply, CompleteRequest, FailRequest, LeaseStatus, ProgressUpdate,
};

use super::extract::{Json, PathParam, WorkerAuth};
use crate::auth::{Credentials, Principal};
use crate::error::ApiError;
use crate::scheduler;
use crate::state::{AppState, now_ms};
use crate::store::Tx;

/// Checks that `principal` may report on lease `lease_id` (404 if there is
/// none, 403 if it may not act for the worker holding it).
fn check_holder(
    tx: &mut dyn Tx,
    credentials: &Credentials,
    principal: &Principal,
    lease_id: &str,
) -> Result<(), ApiError> {
    let lease = scheduler::lease_record(tx, lease_id)?;
    credentials
        .authorize(principal, &lease.worker_id)
        .map_err(|e| ApiError {
            message: format!("lease {lease_id}: {}", e.message),
            ..e
        })
}

/// `POST /leases/{id}/progress`.
pub async fn progress(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(lease_id): PathParam,
    Json(update): Json<ProgressUpdate>,
) -> Result<axum::Json<LeaseStatus>, ApiError> {
    let rules = state.rules;
    let shared = Arc::clone(&state);
    let status = state
        .transact(move |tx| {
            check_holder(tx, &shared.credentials, &principal, &lease_id)?;
            scheduler::progress(tx, &rules, &lease_id, &update, now_ms())
        })
        .await?;
    Ok(axum::Json(status))
}

/// `POST /leases/{id}/complete`.
pub async fn complete(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(lease_id): PathParam,
    Json(request): Json<CompleteRequest>,
) -> Result<axum::Json<CompleteReply>, ApiError> {
    let shared = Arc::clone(&state);
    // The outputs found present stay until the result that names them is in.
    let keep = state.blobs.keep().await;
    let reply = state
        .transact(move |tx| {
            check_holder(tx, &shared.credentials, &principal, &lease_id)?;
            scheduler::complete(tx, &shared.blobs, &lease_id, &request, now_ms())
        })
        .await?;
    drop(keep);
    if !reply.duplicate {
        // A slot of the worker is free again.
        state.jobs_changed.notify_waiters();
    }
    Ok(axum::Json(reply))
}

/// `POST /leases/{id}/fail`.
pub async fn fail(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(lease_id): PathParam,
    Json(request): Json<FailRequest>,
) -> Result<axum::Json<CompleteReply>, ApiError> {
    let rules = state.rules;
    let shared = Arc::clone(&state);
    let reply = state
        .transact(move |tx| {
            check_holder(tx, &shared.credentials, &principal, &lease_id)?;
            scheduler::fail(tx, &rules, &lease_id, &request, now_ms())
        })
        .await?;
    if !reply.duplicate {
        // The job may be queued again, and a slot of the worker is free.
        state.jobs_changed.notify_waiters();
    }
    Ok(axum::Json(reply))
}
