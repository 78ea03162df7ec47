//! Why a blob could not be fetched.

use std::io;
use std::path::PathBuf;

use crate::blobs::cache::CacheError;
use crate::digest::Sha256Digest;

/// A blob that could not be fetched. `blob` names it (with its name from
/// [`BlobSource::named`], if any), `url` is where it was fetched from.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server has no such blob (HTTP 404).
    #[error("{blob} not found at {url}")]
    NotFound {
        /// The blob.
        blob: String,
        /// Its URL.
        url: String,
    },
    /// The server refused the credential (HTTP 401).
    #[error(
        "the coordinator refused the worker token ({message}) for {blob} at {url}; check the worker's token in worker.json"
    )]
    Unauthorized {
        /// The blob.
        blob: String,
        /// Its URL.
        url: String,
        /// The server's message.
        message: String,
    },
    /// Any other error status (after retries, for `429` and `5xx`).
    #[error("cannot download {blob} from {url}: HTTP {status}: {message}")]
    Status {
        /// The blob.
        blob: String,
        /// Its URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message (from its JSON error body, if any).
        message: String,
    },
    /// The connection failed, timed out or was cut, too many times in a row.
    #[error("cannot download {blob} from {url} (attempt {attempts}): {detail}")]
    Transport {
        /// The blob.
        blob: String,
        /// Its URL.
        url: String,
        /// Attempts in a row that failed.
        attempts: u32,
        /// The error, with its causes.
        detail: String,
    },
    /// The downloaded bytes do not hash to the expected digest.
    #[error("sha256 mismatch for {blob} from {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob.
        blob: String,
        /// The digest asked for.
        expected: Sha256Digest,
        /// The digest of what was downloaded.
        actual: Sha256Digest,
        /// Its URL.
        url: String,
    },
    /// The blob is not the expected size (`actual` is where the download
    /// stopped when it went over).
    #[error("size mismatch for {blob} from {url}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        blob: String,
        /// The size asked for.
        expected: u64,
        /// The size served.
        actual: u64,
        /// Its URL.
        url: String,
    },
    /// The server's reply breaks the protocol (version, `Content-Range`).
    #[error("cannot download {blob} from {url}: {message}")]
    Protocol {
        /// The blob.
        blob: String,
        /// Its URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The cache cannot take the blob (full of pinned blobs, or too small).
    #[error("cannot cache {blob}: {source}")]
    Cache {
        /// The blob.
        blob: String,
        /// The cache's error.
        source: CacheError,
    },
    /// Writing or reading the partial file failed.
    #[error("cannot download {blob}: {} {}: {source}", action, path.display())]
    Io {
        /// The blob.
        blob: String,
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}
