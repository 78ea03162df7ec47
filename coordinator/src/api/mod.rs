//! The HTTP API of protocol version 1 (`pictor_protocol::api`): the router,
//! shared state, the version check and JSON errors for everything axum
//! would otherwise answer in plain text.
//!
//! Every reply carries `pictor-protocol: 1`. A request whose
//! `pictor-protocol` header names another version is refused with
//! `unsupported_version`; a request without the header is served (so
//! `curl` works without ceremony). Every request is held to a time limit
//! ([`time_limit`]): the request timeout, the long-poll wait on top of it
//! for `lease`, and for a blob upload the transfer bounds of
//! [`crate::limits::pace`] instead. Handlers live in one module per area.

pub mod blobs;
pub mod extract;
pub mod issue;
pub mod jobs;
pub mod leases;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pictor_protocol::api::{API_PREFIX, ErrorCode, Info, PROTOCOL_VERSION, VERSION_HEADER};

use crate::error::ApiError;
use crate::state::AppState;

/// The router of every endpoint, with `pages` (the portal's) served under
/// the same bounds, version header and JSON errors.
pub fn router(state: Arc<AppState>, max_json_bytes: usize, pages: Router<Arc<AppState>>) -> Router {
    let v1 = Router::new()
        .route("/info", get(info))
        .route("/workers", post(issue::create).get(issue::list))
        .route("/workers/register", post(workers::register))
        .route("/workers/{worker_id}", get(issue::get))
        .route("/workers/{worker_id}/revoke", post(issue::revoke_handler))
        .route("/workers/{worker_id}/heartbeat", post(workers::heartbeat))
        .route("/workers/{worker_id}/lease", post(workers::lease))
        .route("/leases/{lease_id}/progress", post(leases::progress))
        .route("/leases/{lease_id}/complete", post(leases::complete))
        .route("/leases/{lease_id}/fail", post(leases::fail))
        .route(
            "/blobs/{sha256}",
            get(blobs::get).head(blobs::head).put(blobs::put),
        )
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/{job_id}", get(jobs::get))
        .route("/jobs/{job_id}/cancel", post(jobs::cancel));
    Router::new()
        .nest(API_PREFIX, v1)
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            time_limit,
        ))
        .layer(axum::middleware::from_fn(protocol_version))
        .with_state(state)
}

/// How long a request to `path` may take until its reply's headers:
/// `None` for a blob upload (its body is held to the transfer bounds
/// instead), the long-poll wait on top of the request timeout for `lease`.
pub fn request_limit(state: &AppState, method: &Method, path: &str) -> Option<Duration> {
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return Some(state.limits.request_timeout);
    };
    if method == Method::PUT && rest.starts_with("/blobs/") {
        return None;
    }
    if method == Method::POST && rest.starts_with("/workers/") && rest.ends_with("/lease") {
        return Some(state.max_wait + state.limits.request_timeout);
    }
    Some(state.limits.request_timeout)
}

/// Cuts off a request that takes longer than [`request_limit`] with 503
/// `timed_out` (a store transaction already running still finishes; the
/// reports it might have recorded are idempotent).
async fn time_limit(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(limit) = request_limit(&state, request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timed_out(format!(
            "the request took longer than {} s and was cut off (a body sent too slowly, or a busy coordinator; \
             serve --request-timeout-s); retry with backoff",
            limit.as_secs_f64()
        ))
        .into_response(),
    }
}

async fn info() -> axum::Json<Info> {
    axum::Json(Info {
        service: "pictor-coordinator".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol_versions: vec![PROTOCOL_VERSION],
    })
}

/// Refuses other protocol versions; stamps ours on every reply.
async fn protocol_version(request: Request, next: Next) -> Response {
    let asked = request
        .headers()
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_string());
    let mut response = match asked {
        Some(version) if version != PROTOCOL_VERSION.to_string() => {
            let shown: String = version
                .chars()
                .filter(|c| !c.is_control())
                .take(20)
                .collect();
            ApiError::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "this coordinator speaks protocol version {PROTOCOL_VERSION}; the request used {shown} — \
                     upgrade the coordinator, or use a client that speaks version {PROTOCOL_VERSION}"
                ),
            )
            .into_response()
        }
        _ => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from(PROTOCOL_VERSION));
    response
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    let other_version = path
        .strip_prefix("/api/v")
        .and_then(|rest| rest.split('/').next())
        .filter(|v| {
            !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit())
                && *v != PROTOCOL_VERSION.to_string()
        });
    match other_version {
        Some(version) => ApiError::not_found(format!(
            "this coordinator speaks protocol version {PROTOCOL_VERSION} (paths under {API_PREFIX}), not version {version}"
        )),
        None => ApiError::not_found(format!(
            "no endpoint {method} {path}; protocol version {PROTOCOL_VERSION} lives under {API_PREFIX} (see GET {API_PREFIX}/info)"
        )),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = ApiError::invalid(format!("{method} is not allowed on {}", uri.path()));
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(error.body())).into_response()
}
