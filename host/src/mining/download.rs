//! The miner component named by `mining.plugin_sha256`: downloaded from
//! the coordinator's blob store when the worker starts (verified against
//! the digest, kept in the download cache, pinned while the worker runs).
//! A failed download turns mining off for this run, with the reason; the
//! next start tries again (resuming a partial download).

use std::time::Duration;

use crate::blobs::cache::PinnedBlob;
use crate::blobs::fetch::{BlobSource, FetchError, Fetcher, ProgressSink};
use crate::coordinator::client::CoordinatorClient;
use crate::digest::Sha256Digest;

/// How long the download may take before mining is given up for this run.
pub const MINER_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// Why the miner could not be had: mining is off for this run, and the
/// next start tries again (resuming a partial download).
#[derive(Debug, thiserror::Error)]
pub enum MinerDownloadError {
    /// The coordinator's URL and the digest make no blob URL.
    #[error("mining plugin URL: {0}")]
    Url(#[from] url::ParseError),
    /// The download failed (not found, refused, or not the digest).
    #[error(
        "cannot download the mining plugin {digest} from the coordinator: {error}; it is tried again at the next start"
    )]
    Fetch {
        /// The miner's digest.
        digest: Sha256Digest,
        /// Why.
        error: FetchError,
    },
    /// No complete download within the time allowed.
    #[error(
        "cannot download the mining plugin {digest} from the coordinator: no complete download within {:.1} s; it is tried again at the next start",
        .limit.as_secs_f64()
    )]
    Timeout {
        /// The miner's digest.
        digest: Sha256Digest,
        /// The time allowed.
        limit: Duration,
    },
}

/// The miner `digest` from `client`'s coordinator, within
/// [`MINER_DOWNLOAD_TIMEOUT`]; `Err` is the reason mining is off, for the owner.
pub async fn miner_from_coordinator(
    client: &CoordinatorClient,
    fetcher: &Fetcher,
    digest: Sha256Digest,
) -> Result<PinnedBlob, MinerDownloadError> {
    let source = client.blob_source(&digest, "mining plugin")?;
    fetch_miner(fetcher, source, digest, MINER_DOWNLOAD_TIMEOUT).await
}

/// The miner `digest` from `source` (the cache first), verified and
/// pinned; `Err` is the reason mining is off, for the owner.
pub async fn fetch_miner(
    fetcher: &Fetcher,
    source: BlobSource,
    digest: Sha256Digest,
    timeout: Duration,
) -> Result<PinnedBlob, MinerDownloadError> {
    let source = source.named("mining plugin");
    match tokio::time::timeout(
        timeout,
        fetcher.fetch(&source, digest, None, &ProgressSink::discard()),
    )
    .await
    {
        Ok(Ok(blob)) => {
            tracing::info!(plugin = %digest, path = %blob.path().display(), "mining plugin ready");
            Ok(blob)
        }
        Ok(Err(error)) => Err(MinerDownloadError::Fetch { digest, error }),
        Err(_) => Err(MinerDownloadError::Timeout {
            digest,
            limit: timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blobs::cache::BlobCache;
    use crate::blobs::fetch::FetchOptions;
    use crate::blobs::testserver::{Fault, TestServer};

    fn fetcher(dir: &std::path::Path) -> Fetcher {
        let cache = Arc::new(BlobCache::open(dir.join("cache"), 64 << 20).unwrap());
        let options = FetchOptions {
            max_attempts: 2,
            backoff_base: Duration::from_millis(10),
            mismatch_retries: 0,
            ..FetchOptions::default()
        };
        Fetcher::new(crate::blobs::http_client("test").unwrap(), cache, options)
    }

    #[tokio::test]
    async fn the_miner_is_downloaded_verified_and_pinned_or_mining_is_off_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(Some("worker-token-0123456789")).await;
        let digest = server.add(b"\0asm a miner".to_vec());
        let fetcher = fetcher(dir.path());
        let blob = fetch_miner(
            &fetcher,
            server.source(&digest),
            digest,
            MINER_DOWNLOAD_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), b"\0asm a miner");
        assert!(fetcher.cache().contains(&digest));

        let missing = Sha256Digest::of(b"not on the server");
        let err = fetch_miner(
            &fetcher,
            server.source(&missing),
            missing,
            MINER_DOWNLOAD_TIMEOUT,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.starts_with(&format!("cannot download the mining plugin {missing} from the coordinator: mining plugin (blob {missing}) not found")), "{err}");
        assert!(
            err.ends_with("it is tried again at the next start"),
            "{err}"
        );

        let corrupt = server.add(b"\0asm another miner".to_vec());
        server.always(&corrupt, Fault::Corrupt);
        let err = fetch_miner(
            &fetcher,
            server.source(&corrupt),
            corrupt,
            MINER_DOWNLOAD_TIMEOUT,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("sha256 mismatch"), "{err}");
        assert!(
            !fetcher.cache().contains(&corrupt),
            "nothing unverified is kept"
        );

        let slow = server.add(b"\0asm a slow miner".to_vec());
        server.always(&slow, Fault::Delay(Duration::from_secs(5)));
        let err = fetch_miner(
            &fetcher,
            server.source(&slow),
            slow,
            Duration::from_millis(200),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("no complete download within 0.2 s"), "{err}");
    }
}
