//! Workers API (creator token): issue a worker with its own credential,
//! list and show workers, revoke an issued worker's credential — HTTP
//! over [`crate::admin`], which the portal's forms call too.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use pictor_protocol::api::{CreateWorker, IssuedWorker, WorkerList, WorkerSummary};

use super::extract::{CreatorAuth, Json, PathParam};
use crate::admin::{issue, list_workers, revoke};
use crate::error::ApiError;
use crate::roster;
use crate::state::{AppState, now_ms};

/// `POST /workers`: 201 with the new worker's id and `worker.json`.
pub async fn create(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    Json(request): Json<CreateWorker>,
) -> Result<(StatusCode, axum::Json<IssuedWorker>), ApiError> {
    let issued = issue(&state, request).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// `GET /workers`.
pub async fn list(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
) -> Result<axum::Json<WorkerList>, ApiError> {
    Ok(axum::Json(WorkerList {
        workers: list_workers(&state).await?,
    }))
}

/// `GET /workers/{id}`.
pub async fn get(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    PathParam(worker_id): PathParam,
) -> Result<axum::Json<WorkerSummary>, ApiError> {
    let rules = state.rules;
    let summary = state
        .transact(move |tx| {
            roster::summary(tx, &rules, &worker_id, now_ms())?
                .ok_or_else(|| ApiError::not_found(format!("no worker {worker_id}")))
        })
        .await?;
    Ok(axum::Json(summary))
}

/// `POST /workers/{id}/revoke`.
pub async fn revoke_handler(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    PathParam(worker_id): PathParam,
) -> Result<axum::Json<WorkerSummary>, ApiError> {
    Ok(axum::Json(revoke(&state, worker_id).await?))
}
