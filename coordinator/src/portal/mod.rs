//! The worker portal: server-rendered pages for the coordinator's operator
//! (log in with the creator token; see workers and jobs; issue and revoke
//! workers; preview image outputs).
//!
//! - [`session`] — the login cookie and the live sessions;
//! - [`forms`] — the HTML forms as typed values;
//! - [`board`] — the job table's data, read from the store;
//! - [`pages`] — the views (maud).
//!
//! Every page but the login form needs a session; without one a page
//! redirects to `/portal/login`. State-changing requests are POSTs from the
//! portal's own forms: the cookie is `SameSite=Strict`, and a POST whose
//! `Origin` header (when the browser sends one) is not this host is
//! refused. Pages are sent with `Cache-Control: no-store` (the page after
//! creating a worker holds its credential) and a Content-Security-Policy
//! that allows no scripts and nothing from elsewhere.

pub mod board;
pub mod forms;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use maud::Markup;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::ErrorCode;
use tokio_util::io::ReaderStream;

use crate::admin;
use crate::error::ApiError;
use crate::roster;
use crate::state::{AppState, now_ms};

use self::forms::{LoginForm, WorkerForm};

/// Jobs shown on the dashboard.
pub const JOBS_SHOWN: u32 = 100;

const PAGE_CSP: &str = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The portal's routes (under `/portal`, plus `/` → `/portal`).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal") }))
        .route("/portal", get(dashboard))
        .route("/portal/", get(|| async { Redirect::to("/portal") }))
        .route("/portal/login", get(login_form).post(login))
        .route("/portal/logout", post(logout))
        .route("/portal/workers", post(create_worker))
        .route("/portal/workers/new", get(new_worker_form))
        .route("/portal/workers/{worker_id}", get(worker_page))
        .route("/portal/workers/{worker_id}/revoke", post(revoke_worker))
        .route("/portal/blobs/{sha256}", get(blob))
}

/// An HTML page with the portal's headers.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `no-referrer` would make browsers send `Origin: null` on the portal's own
    // form posts, which the same-origin check refuses.
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

fn ok(markup: Markup) -> Response {
    page(StatusCode::OK, markup)
}

/// A store or server failure, as a page.
fn failure(e: ApiError) -> Response {
    let status = e.status();
    page(status, pages::problem("Something went wrong", &e.message))
}

/// A logged-in operator (a live session cookie); without one, the request
/// is answered with a redirect to the login form.
pub struct Operator {
    /// The session id.
    pub session: String,
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        match session::from_headers(&parts.headers) {
            Some(id) if state.sessions.is_live(&id, now_ms()) => Ok(Operator { session: id }),
            _ => Err(Redirect::to("/portal/login").into_response()),
        }
    }
}

/// The refusal of a POST whose `Origin` is neither this request's host nor
/// the coordinator's public URL (a cross-site form); `None` when it may
/// proceed.
fn cross_site(headers: &HeaderMap, public_url: &str) -> Option<Response> {
    let origin = headers.get(ORIGIN)?;
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public = public_url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    if !authority.is_empty()
        && (authority.eq_ignore_ascii_case(host) || authority.eq_ignore_ascii_case(public))
    {
        return None;
    }
    tracing::warn!(origin, host, "portal: cross-origin form post refused");
    Some(page(
        StatusCode::FORBIDDEN,
        pages::problem(
            "Refused",
            "this form was posted from another site; use the portal's own pages",
        ),
    ))
}

fn secure_cookie(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

async fn login_form(headers: HeaderMap, State(state): State<Arc<AppState>>) -> Response {
    if session::from_headers(&headers).is_some_and(|id| state.sessions.is_live(&id, now_ms())) {
        return Redirect::to("/portal").into_response();
    }
    ok(pages::login(None))
}

async fn login(
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if let Some(refused) = cross_site(&headers, &state.public_url) {
        return refused;
    }
    let token = form.map(|Form(f)| f.token).unwrap_or_default();
    if !state.auth.is_creator_token(&token) {
        tracing::warn!("portal: login with a wrong token");
        return page(
            StatusCode::UNAUTHORIZED,
            pages::login(Some(
                "That is not the creator token. Copy it from creator.token in the coordinator's data folder.",
            )),
        );
    }
    let id = match state.sessions.create(now_ms()) {
        Ok(id) => id,
        Err(e) => return failure(ApiError::internal(e.to_string())),
    };
    tracing::info!("portal: operator logged in");
    let cookie = session::set_cookie(&id, secure_cookie(&state));
    let mut response = Redirect::to("/portal").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

async fn logout(
    operator: Result<Operator, Response>,
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
) -> Response {
    if let Some(refused) = cross_site(&headers, &state.public_url) {
        return refused;
    }
    if let Ok(operator) = operator {
        state.sessions.end(&operator.session);
    }
    let mut response = Redirect::to("/portal/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie()).unwrap_or(HeaderValue::from_static("")),
    );
    response
}

async fn dashboard(_: Operator, State(state): State<Arc<AppState>>) -> Response {
    let rules = state.rules;
    let read = state
        .transact(move |tx| {
            let now = now_ms();
            Ok((
                roster::summaries(tx, &rules, now)?,
                board::job_rows(tx, JOBS_SHOWN)?,
                now,
            ))
        })
        .await;
    match read {
        Ok((workers, jobs, now)) => ok(pages::dashboard(&workers, &jobs, now)),
        Err(e) => failure(e),
    }
}

async fn new_worker_form(_: Operator, State(state): State<Arc<AppState>>) -> Response {
    ok(pages::new_worker(
        &WorkerForm::default(),
        None,
        state.miner_plugin.is_some(),
    ))
}

async fn create_worker(
    _: Operator,
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
    form: Result<Form<WorkerForm>, FormRejection>,
) -> Response {
    if let Some(refused) = cross_site(&headers, &state.public_url) {
        return refused;
    }
    let mining_served = state.miner_plugin.is_some();
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::new_worker(&WorkerForm::default(), Some(&e.body_text()), mining_served),
            );
        }
    };
    let request = match form.to_request() {
        Ok(request) => request,
        Err(message) => {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::new_worker(&form, Some(&message.to_string()), mining_served),
            );
        }
    };
    let issued = match admin::issue(&state, request).await {
        Ok(issued) => issued,
        Err(e) if e.code == ErrorCode::InvalidRequest => {
            return page(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::new_worker(&form, Some(&e.message), mining_served),
            );
        }
        Err(e) => return failure(e),
    };
    let text = serde_json::to_string_pretty(&issued.config).unwrap_or_default() + "\n";
    let data_url = format!(
        "data:application/json;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    );
    let mining_off = issued.config["mining"]["enabled"] == false;
    ok(pages::issued(
        &issued.worker_id,
        &text,
        &data_url,
        mining_off,
    ))
}

async fn worker_page(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(worker_id): Path<String>,
) -> Response {
    let rules = state.rules;
    let id = worker_id.clone();
    let read = state
        .transact(move |tx| {
            let now = now_ms();
            Ok((roster::summary(tx, &rules, &id, now)?, now))
        })
        .await;
    match read {
        Ok((Some(summary), now)) => ok(pages::worker(&summary, now)),
        Ok((None, _)) => page(
            StatusCode::NOT_FOUND,
            pages::problem("No such worker", &format!("no worker {worker_id}")),
        ),
        Err(e) => failure(e),
    }
}

async fn revoke_worker(
    _: Operator,
    headers: HeaderMap,
    State(state): State<Arc<AppState>>,
    Path(worker_id): Path<String>,
) -> Response {
    if let Some(refused) = cross_site(&headers, &state.public_url) {
        return refused;
    }
    match admin::revoke(&state, worker_id).await {
        Ok(_) => Redirect::to("/portal").into_response(),
        Err(e) => page(e.status(), pages::problem("Cannot revoke", &e.message)),
    }
}

/// `GET /portal/blobs/{sha256}`: an image output of some job (PNG or
/// JPEG by its name, at most 16 MiB), for the previews; any other blob is
/// 404 here.
async fn blob(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(sha256): Path<String>,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "no such image output",
        )
            .into_response()
    };
    let Ok(sha256) = sha256.parse::<Sha256Digest>() else {
        return not_found();
    };
    let output = match state
        .transact(move |tx| Ok(tx.output_by_blob(&sha256)?))
        .await
    {
        Ok(Some(output)) => output,
        Ok(None) => return not_found(),
        Err(e) => return failure(e),
    };
    let Some(content_type) = board::preview_type(&output.path, output.size) else {
        return not_found();
    };
    let file = match tokio::fs::File::open(state.blobs.path(&sha256)).await {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(blob = %sha256, error = %e, "portal: output blob missing from the blob store");
            return not_found();
        }
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut response = Body::from_stream(ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_posts_from_this_site_pass() {
        let public = "https://coord.example/";
        assert!(cross_site(&headers(None, "127.0.0.1:8700"), public).is_none());
        assert!(
            cross_site(
                &headers(Some("http://127.0.0.1:8700"), "127.0.0.1:8700"),
                public
            )
            .is_none()
        );
        // Behind a proxy that rewrites Host: the public URL counts.
        assert!(
            cross_site(
                &headers(Some("https://coord.example"), "127.0.0.1:8700"),
                public
            )
            .is_none()
        );
        assert!(
            cross_site(
                &headers(Some("http://evil.example"), "127.0.0.1:8700"),
                public
            )
            .is_some()
        );
        assert!(cross_site(&headers(Some("null"), "127.0.0.1:8700"), public).is_some());
    }
}
