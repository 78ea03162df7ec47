//! Lease endpoints: progress, complete, fail.

use std::sync::Arc;

use axum::extract::State;
use pictor_protocol::api::{
    CompleteReply, CompleteRequest, FailRequest, LeaseStatus, ProgressUpdate,
};

use super::extract::{Json, PathParam, WorkerAuth};
use super::{AppState, now_ms};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::scheduler;
use crate::store::Tx;

/// Checks that `principal` may report on lease `lease_id` (404 if there is none).
fn check_holder(tx: &mut dyn Tx, principal: &Principal, lease_id: &str) -> Result<(), ApiError> {
    let lease = scheduler::lease_record(tx, lease_id)?;
    if !principal.may_act_as_worker(&lease.worker_id) {
        return Err(ApiError::unauthorized(format!(
            "lease {lease_id} belongs to another worker"
        )));
    }
    Ok(())
}

/// `POST /leases/{id}/progress`.
pub async fn progress(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(lease_id): PathParam,
    Json(update): Json<ProgressUpdate>,
) -> Result<axum::Json<LeaseStatus>, ApiError> {
    let rules = state.rules;
    let status = state
        .transact(move |tx| {
            check_holder(tx, &principal, &lease_id)?;
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
    let blobs = state.blobs.clone();
    let reply = state
        .transact(move |tx| {
            check_holder(tx, &principal, &lease_id)?;
            scheduler::complete(tx, &blobs, &lease_id, &request, now_ms())
        })
        .await?;
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
    let reply = state
        .transact(move |tx| {
            check_holder(tx, &principal, &lease_id)?;
            scheduler::fail(tx, &rules, &lease_id, &request, now_ms())
        })
        .await?;
    if !reply.duplicate {
        // The job may be queued again.
        state.jobs_changed.notify_waiters();
    }
    Ok(axum::Json(reply))
}
