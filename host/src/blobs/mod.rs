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
    http_client_within(user_agent, CONNECT_TIMEOUT, READ_TIMEOUT)
}

/// [`http_client`] with the given connect and read timeouts.
fn http_client_within(
    user_agent: &str,
    connect: Duration,
    read: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(connect)
        .read_timeout(read)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_that_goes_silent_is_given_up_after_the_read_timeout()
    -> Result<(), Box<dyn std::error::Error>> {
        // Accepts, answers the headers and part of a body, then says nothing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
                    .await;
                held.push(socket);
            }
        });
        let client =
            http_client_within("test", Duration::from_secs(5), Duration::from_millis(300))?;
        let response = client.get(format!("http://{address}/blob")).send().await?;
        let body = tokio::time::timeout(Duration::from_secs(30), response.bytes()).await?;
        let error = body.err().ok_or("a silent server must fail the read")?;
        assert!(error.is_timeout(), "{error:?}");
        server.abort();
        Ok(())
    }
}
