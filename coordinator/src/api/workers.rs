//! Worker endpoints: register, heartbeat, lease (long poll). Each checks
//! first that the token may act for the worker it names
//! ([`crate::auth::Credentials::authorize`]); a long poll also takes one of
//! the worker's poll places ([`crate::limits::polls`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_protocol::api::{
    self, Heartbeat, HeartbeatReply, LeaseRequest, RegisterReply, RegisterRequest,
};

use super::extract::{Json, PathParam, WorkerAuth};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::scheduler;
use crate::state::{AppState, now_ms};

/// Checks that `principal` may speak for `worker_id`.
fn check_worker(state: &AppState, principal: &Principal, worker_id: &str) -> Result<(), ApiError> {
    if !api::valid_worker_id(worker_id) {
        return Err(ApiError::not_found(format!(
            "{worker_id:?} is not a worker id"
        )));
    }
    state.credentials.authorize(principal, worker_id)
}

/// `POST /workers/register`.
pub async fn register(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    Json(request): Json<RegisterRequest>,
) -> Result<axum::Json<RegisterReply>, ApiError> {
    state
        .credentials
        .authorize(&principal, &request.worker_id)?;
    let worker = state
        .transact(move |tx| scheduler::register(tx, &request, now_ms()))
        .await?;
    tracing::info!(worker = %worker.id, name = %worker.name, kinds = ?worker.kinds, "worker registered");
    let ttl_s = u32::try_from(state.rules.lease_ttl_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    Ok(axum::Json(RegisterReply {
        worker_id: worker.id,
        lease_ttl_s: ttl_s,
        heartbeat_interval_s: (ttl_s / 3).max(1),
        max_wait_s: u32::try_from(state.max_wait.as_secs()).unwrap_or(u32::MAX),
    }))
}

/// `POST /workers/{id}/heartbeat`.
pub async fn heartbeat(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(worker_id): PathParam,
    Json(beat): Json<Heartbeat>,
) -> Result<axum::Json<HeartbeatReply>, ApiError> {
    check_worker(&state, &principal, &worker_id)?;
    let rules = state.rules;
    let reply = state
        .transact(move |tx| scheduler::heartbeat(tx, &rules, &worker_id, &beat, now_ms()))
        .await?;
    Ok(axum::Json(reply))
}

/// `POST /workers/{id}/lease`: a lease (200), or 204 when none came within
/// the wait.
pub async fn lease(
    WorkerAuth(principal): WorkerAuth,
    State(state): State<Arc<AppState>>,
    PathParam(worker_id): PathParam,
    Json(request): Json<LeaseRequest>,
) -> Result<Response, ApiError> {
    check_worker(&state, &principal, &worker_id)?;
    // Held until the poll ends (or its client goes away and it is dropped).
    let _slot = state.polls.take(&worker_id)?;
    let wait = std::time::Duration::from_secs(u64::from(request.wait_s)).min(state.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before looking, so a job submitted in between still wakes us.
        let notified = state.jobs_changed.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let rules = state.rules;
        let id = worker_id.clone();
        if let Some(lease) = state
            .transact(move |tx| scheduler::lease_next(tx, &rules, &id, now_ms()))
            .await?
        {
            return Ok(axum::Json(lease).into_response());
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}
