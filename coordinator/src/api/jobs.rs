//! Jobs API (creator token): submit, list, status, cancel.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_protocol::api::{JobList, JobState, JobStatus, SubmitJob};

use super::extract::{CreatorAuth, Json, PathParam, parse_value};
use crate::error::ApiError;
use crate::scheduler;
use crate::state::{AppState, now_ms};

/// Most jobs one list returns unless `?limit=` says otherwise.
pub const DEFAULT_LIST_LIMIT: u32 = 1000;

/// `POST /jobs`: 201 with the new job, or 200 with the existing one when
/// the same job was submitted before. A body without `max_attempts` gets
/// the coordinator's default (`serve --max-attempts-default`), which the
/// typed [`SubmitJob`] cannot tell from an explicit 3, so the raw body is
/// looked at first.
pub async fn submit(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    Json(raw): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let gives_max_attempts = raw.get("max_attempts").is_some_and(|v| !v.is_null());
    let mut job: SubmitJob = parse_value(raw)?;
    if !gives_max_attempts {
        job.max_attempts = state.max_attempts_default;
    }
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce)
        .map_err(|e| ApiError::internal(format!("no randomness for a job id: {e}")))?;
    let generated = format!("job-{}-{}", now_ms(), hex::encode(nonce));
    let blobs = state.blobs.clone();
    // The blobs found present stay until the job that names them is in.
    let keep = state.blobs.keep().await;
    let (status, created) = state
        .transact(move |tx| scheduler::submit(tx, &blobs, &job, &generated, now_ms()))
        .await?;
    drop(keep);
    if created {
        state.jobs_changed.notify_waiters();
        Ok((StatusCode::CREATED, axum::Json(status)).into_response())
    } else {
        Ok(axum::Json(status).into_response())
    }
}

/// `GET /jobs[?state=S][&limit=N]`: newest first.
pub async fn list(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<JobList>, ApiError> {
    let mut filter = None;
    let mut limit = DEFAULT_LIST_LIMIT;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "state" => {
                filter = Some(
                    value
                        .parse::<JobState>()
                        .map_err(|e| ApiError::invalid(format!("query `state` {e}")))?,
                );
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100_000).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "query `limit` {value:?} must be a number from 1 to 100000"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{other}` (expected state, limit)"
                )));
            }
        }
    }
    let list = state
        .transact(move |tx| scheduler::list_jobs(tx, filter, limit))
        .await?;
    Ok(axum::Json(list))
}

/// `GET /jobs/{id}`.
pub async fn get(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    PathParam(job_id): PathParam,
) -> Result<axum::Json<JobStatus>, ApiError> {
    Ok(axum::Json(
        state
            .transact(move |tx| scheduler::job_status(tx, &job_id))
            .await?,
    ))
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    _: CreatorAuth,
    State(state): State<Arc<AppState>>,
    PathParam(job_id): PathParam,
) -> Result<axum::Json<JobStatus>, ApiError> {
    Ok(axum::Json(
        state
            .transact(move |tx| scheduler::cancel(tx, &job_id, now_ms()))
            .await?,
    ))
}
