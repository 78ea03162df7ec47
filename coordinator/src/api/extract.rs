//! Extractors whose refusals are protocol [`ApiError`]s (JSON bodies that
//! name the field) instead of axum's plain-text rejections, and the
//! authentication extractors, which handlers list first so a caller without
//! a valid token gets 401 before its body is looked at. Authenticating never
//! touches the store: one sha256 of the token, two constant-time compares
//! and a lookup in the in-memory [`crate::auth::Credentials`].

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use pictor_protocol::api::ErrorCode;
use serde::de::DeserializeOwned;

use crate::auth::{Access, Auth, Presented, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body, parsed with the failing field named.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::TooLarge,
                    "the request body is over this coordinator's size limit",
                )
            } else {
                ApiError::invalid(format!("cannot read the request body: {e}"))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses `bytes` as `T`, naming the field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => ApiError::invalid(format!("invalid JSON body: {inner}")),
            path => ApiError::invalid(format!("invalid JSON body: `{path}`: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Converts an already parsed JSON `value` into `T`, naming the field that
/// does not fit.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." => ApiError::invalid(format!("invalid JSON body: {inner}")),
            path => ApiError::invalid(format!("invalid JSON body: `{path}`: {inner}")),
        }
    })
}

/// The one path parameter of a route, as text.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::invalid(format!("bad path parameter: {e}")))
    }
}

/// The caller, authenticated before the body is read: the creator token.
pub struct CreatorAuth;

/// The caller, authenticated before the body is read: a worker token.
pub struct WorkerAuth(pub Principal);

/// The caller, authenticated before the body is read: either token.
pub struct AnyAuth(pub Principal);

/// The caller for `access`: a folder token, or an issued worker's
/// credential found in the credentials index (a revoked one is refused
/// with `revoked` on every endpoint).
fn authenticate(parts: &Parts, state: &AppState, access: Access) -> Result<Principal, ApiError> {
    let principal = match state.auth.identify(&parts.headers) {
        Presented::Nothing => None,
        Presented::Known(principal) => Some(principal),
        Presented::Other { token_sha256 } => state.credentials.principal(&token_sha256)?,
    };
    Auth::admit(principal, access)
}

impl FromRequestParts<Arc<AppState>> for CreatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        authenticate(parts, state, Access::Creator).map(|_| CreatorAuth)
    }
}

impl FromRequestParts<Arc<AppState>> for WorkerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        authenticate(parts, state, Access::Worker).map(WorkerAuth)
    }
}

impl FromRequestParts<Arc<AppState>> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        authenticate(parts, state, Access::Any).map(AnyAuth)
    }
}
