//! Reading the server's answer: transport and status failures (retry or
//! give up), the protocol version, error bodies and `Content-Range`.

use std::time::Duration;

use pictor_protocol::api::{PROTOCOL_VERSION, VERSION_HEADER};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;

use super::{Ctx, Failure, FetchError};

pub(super) fn transport_failure(ctx: &Ctx, error: &reqwest::Error) -> Failure {
    let fetch_error = ctx.transport(error);
    if error.is_builder() || error.is_redirect() {
        Failure::Fatal(fetch_error)
    } else {
        Failure::Retry {
            error: fetch_error,
            retry_after: None,
        }
    }
}

/// Refuses a reply in another protocol version (a reply without the
/// header, e.g. from object storage, is fine).
pub(super) fn check_version(ctx: &Ctx, response: &reqwest::Response) -> Result<(), FetchError> {
    let header = response.headers().get(VERSION_HEADER);
    match pictor_protocol::reply::version_mismatch(header.map(|v| v.as_bytes())) {
        Some(version) => Err(ctx.protocol(format!(
            "the server speaks protocol version {version:?}, this worker speaks {PROTOCOL_VERSION}"
        ))),
        None => Ok(()),
    }
}

/// The failure for an error status, with the server's message.
pub(super) async fn status_failure(ctx: &Ctx, response: reqwest::Response) -> Failure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let message = error_message(response).await;
    let (blob, url) = (ctx.blob.clone(), ctx.url.clone());
    match status {
        StatusCode::NOT_FOUND => Failure::Fatal(FetchError::NotFound { blob, url }),
        StatusCode::UNAUTHORIZED => Failure::Fatal(FetchError::Unauthorized { blob, url, message }),
        s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Failure::Retry {
            error: FetchError::Status {
                blob,
                url,
                status: s.as_u16(),
                message,
            },
            retry_after,
        },
        s => Failure::Fatal(FetchError::Status {
            blob,
            url,
            status: s.as_u16(),
            message,
        }),
    }
}

/// The message of an error reply (first 16 KiB read): its JSON
/// [`ErrorBody`](pictor_protocol::api::ErrorBody), else the status and the
/// start of its text ([`pictor_protocol::reply::error_body`]).
async fn error_message(mut response: reqwest::Response) -> String {
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < 16 << 10 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    // The server's words reach the owner's terminal: clipped and escaped.
    pictor_protocol::reply::error_body(status.as_u16(), &status.to_string(), &body).message
}

/// `bytes <start>-<end>/<total or *>` → start and total.
pub(super) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((start, total))
}
