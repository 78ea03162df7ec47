//! The verified data pipeline: blobs downloaded by sha256 into a
//! content-addressed cache, verified while they stream, resumable.
//!
//! - [`cache`]: the cache folder ([`BlobCache`]) with its byte limit,
//!   LRU eviction and pins ([`PinnedBlob`]) for blobs a job is using;
//! - [`fetch`]: the downloader ([`Fetcher`]): streaming sha256, HTTP
//!   `Range` resume, retries with backoff, one download per digest at a
//!   time, several digests in parallel, progress for the status line.
//!
//! A worker opens one cache at start-up, makes one [`Fetcher`] with
//! [`http_client`], and for each job fetches its plugin and inputs with
//! [`Fetcher::fetch_all`], holding the returned [`PinnedBlob`]s until the
//! job has finished with the files.

use std::sync::Once;
use std::time::Duration;

pub mod cache;
pub mod fetch;
#[cfg(test)]
pub(crate) mod testserver;

pub use cache::{BlobCache, CacheError, CacheUsage, PinGuard, PinnedBlob};
pub use fetch::{
    BlobSource, FetchError, FetchItem, FetchOptions, FetchProgress, FetchStats, Fetcher,
    ProgressSink,
};

/// How long to wait for a connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay silent (per read, not in total: blobs
/// can be large).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Installs rustls' ring crypto provider as the process default, once
/// (reqwest is built without one). Harmless if one is installed already.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only if a provider is installed already: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP(S) client for the network side: rustls on ring, connect timeout
/// [`CONNECT_TIMEOUT`], read timeout [`READ_TIMEOUT`], no total timeout.
pub fn http_client(user_agent: &str) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
}
