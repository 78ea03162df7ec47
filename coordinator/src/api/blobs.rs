//! Blob endpoints (either token): `PUT` streams an upload into the store,
//! `GET` streams a file (whole, or one `Range`), `HEAD` tells the size.
//!
//! Both bodies are held to the transfer bounds ([`Paced`]). An upload is
//! charged to its caller ([`Owner`]) until something references it: over
//! the caller's quota it is refused with 507 `quota_exceeded` — at once
//! when its `Content-Length` cannot fit, else as soon as its bytes pass
//! it, and for certain in the store transaction that records the blob.

use std::io::SeekFrom;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{BlobRef, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::extract::{AnyAuth, PathParam};
use crate::blobs::{BlobError, RangeChoice, parse_range};
use crate::error::ApiError;
use crate::faults::BlobFault;
use crate::limits::pace::{Pace, Paced};
use crate::limits::quota::{self, Owner};
use crate::state::{AppState, now_ms};
use crate::store::BlobRecord;

fn digest(text: &str) -> Result<Sha256Digest, ApiError> {
    text.parse()
        .map_err(|e| ApiError::invalid(format!("blob address: {e}")))
}

/// The pace an upload (`idle` checked) or a download (its stalls are the
/// connection's, [`crate::limits::stall`]) is held to.
fn pace(state: &AppState, upload: bool) -> Pace {
    Pace {
        idle: upload.then_some(state.limits.stall_timeout),
        grace: state.limits.stall_timeout,
        min_rate: state.limits.min_transfer_rate,
    }
}

fn upload_error(sha: &Sha256Digest, e: BlobError) -> ApiError {
    match e {
        BlobError::TooLarge { .. } => {
            ApiError::new(ErrorCode::TooLarge, format!("blob {sha}: {e}"))
        }
        BlobError::DigestMismatch { .. } => ApiError::new(ErrorCode::DigestMismatch, e.to_string()),
        BlobError::TimedOut(_) => ApiError::timed_out(format!("blob {sha}: {e}")),
        BlobError::Body(_) => ApiError::invalid(e.to_string()),
        BlobError::Io { .. } => {
            tracing::error!(error = %e, "blob store failure");
            ApiError::internal(e.to_string())
        }
    }
}

/// `PUT /blobs/{sha256}`: 201 when stored, 200 when it was already there.
pub async fn put(
    AnyAuth(principal): AnyAuth,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PathParam(sha): PathParam,
    body: Body,
) -> Result<Response, ApiError> {
    let sha = digest(&sha)?;
    let limit = state.blobs.max_bytes();
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "blob {sha} is larger than this coordinator's limit of {limit} bytes (serve --max-blob-mib)"
            ),
        ));
    }
    let limits = state.limits;
    let owner = Owner::of(&principal);
    // A blob already stored costs nothing more: it is verified and dropped.
    let quota = owner
        .quota(&limits)
        .filter(|_| state.blobs.size(&sha).is_none());
    let mut reservation = match quota {
        Some(quota) => {
            let key = owner.key();
            let held = state
                .transact(move |tx| Ok(tx.unreferenced_bytes(&key)?))
                .await?;
            Some(
                state
                    .uploads
                    .begin(&owner, quota, held, declared, &limits)?,
            )
        }
        None => None,
    };
    let refusal: Arc<Mutex<Option<ApiError>>> = Arc::default();
    let stream = {
        let refusal = Arc::clone(&refusal);
        Paced::new(body.into_data_stream(), pace(&state, true)).map(move |chunk| {
            let bytes = chunk?;
            if let Some(reservation) = reservation.as_mut()
                && let Err(e) = reservation.grow(bytes.len() as u64, &limits)
            {
                *refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                return Err(std::io::Error::other("upload quota exceeded"));
            }
            Ok(bytes)
        })
    };
    let received = state.blobs.receive(&sha, stream).await;
    if let Some(refused) = refusal
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    {
        return Err(refused);
    }
    let received = received.map_err(|e| upload_error(&sha, e))?;
    let size = received.size;
    let record = BlobRecord {
        sha256: sha,
        size,
        owner: owner.key(),
        created_at_ms: now_ms(),
        referenced: false,
    };
    // From the check that it is stored to its record: not collected.
    let _keep = state.blobs.keep().await;
    if state.blobs.size(&sha).is_some() {
        // Uploaded again while nothing references it: its uploader still
        // wants it, so its grace period starts again.
        state
            .transact(move |tx| {
                match tx.blob(&record.sha256)? {
                    Some(mut known) if !known.referenced => {
                        known.created_at_ms = record.created_at_ms;
                        tx.put_blob(&known)?;
                    }
                    Some(_) => {}
                    None => tx.put_blob(&record)?,
                }
                Ok(())
            })
            .await?;
        return Ok((StatusCode::OK, axum::Json(BlobRef { sha256: sha, size })).into_response());
    }
    let quota = owner.quota(&limits);
    let recorded = record.clone();
    state
        .transact(move |tx| {
            if let Some(quota) = quota {
                let held = tx.unreferenced_bytes(&recorded.owner)?;
                if held.saturating_add(recorded.size) > quota {
                    return Err(quota::exceeded(&owner, quota, held, recorded.size, &limits));
                }
            }
            tx.put_blob(&recorded)?;
            Ok(())
        })
        .await?;
    if let Err(e) = received.persist().await {
        let sha256 = record.sha256;
        let _ = state.transact(move |tx| Ok(tx.delete_blob(&sha256)?)).await;
        return Err(upload_error(&sha, e));
    }
    tracing::debug!(blob = %sha, size, owner = %record.owner, "blob stored");
    Ok((
        StatusCode::CREATED,
        axum::Json(BlobRef { sha256: sha, size }),
    )
        .into_response())
}

/// `HEAD /blobs/{sha256}`: the size, without the bytes.
pub async fn head(
    _: AnyAuth,
    State(state): State<Arc<AppState>>,
    PathParam(sha): PathParam,
) -> Result<Response, ApiError> {
    let sha = digest(&sha)?;
    let size = state
        .blobs
        .size(&sha)
        .ok_or_else(|| ApiError::not_found(format!("no blob {sha}")))?;
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// `GET /blobs/{sha256}`, with an optional single `Range`.
pub async fn get(
    _: AnyAuth,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PathParam(sha): PathParam,
) -> Result<Response, ApiError> {
    let sha = digest(&sha)?;
    let path = state.blobs.path(&sha);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no blob {sha}")));
        }
        Err(e) => return Err(ApiError::internal(format!("cannot open blob {sha}: {e}"))),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("cannot read blob {sha}: {e}")))?
        .len();
    let range = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|h| parse_range(h, len))
        .unwrap_or(RangeChoice::Full);
    let (status, start, count) = match range {
        RangeChoice::Full => (StatusCode::OK, 0, len),
        RangeChoice::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeChoice::Unsatisfiable => {
            let error = ApiError::invalid(format!(
                "the requested range lies outside blob {sha} ({len} bytes)"
            ));
            let mut response =
                (StatusCode::RANGE_NOT_SATISFIABLE, axum::Json(error.body())).into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::internal(format!("cannot read blob {sha}: {e}")))?;
    }
    let fault = state.faults.for_get(&sha, status == StatusCode::OK, count);
    let mut response = Response::new(body_stream(file, count, fault, pace(&state, false)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        h.insert(ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        h.insert(CONTENT_RANGE, value);
    }
    Ok(response)
}

/// `count` bytes of `file` as a body, in 64 KiB chunks, with `fault`
/// applied, held to `pace`.
fn body_stream(file: tokio::fs::File, count: u64, fault: BlobFault, pace: Pace) -> Body {
    let sent = fault.cut_after.map_or(count, |n| n.min(count));
    let mut flip = fault.flip_first_byte;
    let chunks = ReaderStream::with_capacity(file.take(sent), 64 << 10).map(move |chunk| {
        chunk.map(|bytes| {
            if flip && !bytes.is_empty() {
                flip = false;
                let mut changed = bytes.to_vec();
                changed[0] ^= 0xff;
                Bytes::from(changed)
            } else {
                bytes
            }
        })
    });
    let stream: BoxStream<'static, std::io::Result<Bytes>> = if fault.cut_after.is_some() {
        // Give the server a moment to flush what was sent, then break the
        // response off short of its Content-Length.
        let cut = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::other("fault injection: download cut"))
        });
        chunks.chain(cut).boxed()
    } else {
        chunks.boxed()
    };
    Body::from_stream(Paced::new(stream, pace))
}
