//! [`ApiError`]: a refusal as the protocol states it — an [`ErrorCode`],
//! a one-line message naming the field, id or digest, and for missing blobs
//! the list — with the HTTP status that goes with the code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{ErrorBody, ErrorCode};

use crate::store::StoreError;

/// A request the coordinator refuses (or cannot serve).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// One line for humans.
    pub message: String,
    /// With [`ErrorCode::MissingBlobs`]: the blobs to upload.
    pub missing: Vec<Sha256Digest>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            missing: Vec::new(),
        }
    }

    /// 400 invalid_request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// 404 not_found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409 conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 410 lease_gone.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LeaseGone, message)
    }

    /// 400 bad_proof.
    pub fn bad_proof(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadProof, message)
    }

    /// 401 unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 403 forbidden: a valid worker token that may not act for this worker.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 429 too_many_requests.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooManyRequests, message)
    }

    /// 507 quota_exceeded.
    pub fn quota_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::QuotaExceeded, message)
    }

    /// 503 timed_out.
    pub fn timed_out(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TimedOut, message)
    }

    /// 500 internal.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// 409 missing_blobs with the list.
    pub fn missing_blobs(message: impl Into<String>, missing: Vec<Sha256Digest>) -> Self {
        ApiError {
            code: ErrorCode::MissingBlobs,
            message: message.into(),
            missing,
        }
    }

    /// The HTTP status of this error's code.
    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::UnsupportedVersion
            | ErrorCode::InvalidRequest
            | ErrorCode::DigestMismatch
            | ErrorCode::BadProof => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized | ErrorCode::Revoked => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::MissingBlobs => StatusCode::CONFLICT,
            ErrorCode::LeaseGone => StatusCode::GONE,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::TimedOut => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The wire body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code,
            message: self.message.clone(),
            missing: self.missing.clone(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        ApiError::internal(format!("the coordinator's store failed ({e}); retry later"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        match self.code {
            ErrorCode::Unauthorized => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            ErrorCode::TooManyRequests | ErrorCode::TimedOut => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            _ => {}
        }
        response
    }
}
