//! Downloads blobs into the [`BlobCache`], verified while they stream.
//!
//! A download writes to `partial/<sha256>.part` and hashes the same bytes
//! on another thread, so verification overlaps the transfer and no blob is
//! ever whole in memory. When the body ends, the digest (and the size, if
//! given) must match before the file moves into the cache; on a mismatch
//! the partial file is deleted and the blob downloaded again from scratch
//! ([`FetchOptions::mismatch_retries`] times) before failing with
//! [`FetchError::DigestMismatch`].
//!
//! Interrupted downloads resume: an existing partial file is hashed first
//! and the rest requested with `Range: bytes=<len>-` (a `206` whose
//! `Content-Range` starts there is appended; a `200` restarts from zero;
//! a `416` means the file may be complete, and verification decides). A
//! connection cut mid-body keeps what arrived and resumes after a backoff.
//!
//! Retries: connection errors, cut bodies, `429` and `5xx` are retried
//! with exponential backoff and jitter, up to
//! [`FetchOptions::max_attempts`] attempts in a row that bring no new
//! bytes; `404`, `401` and other `4xx` fail at once. Every error names
//! the blob and the URL.
//!
//! One digest downloads once at a time (a per-digest lock in the cache):
//! a second fetch of it waits and then gets the cache hit.

mod error;
mod progress;
mod reply;
mod source;
#[cfg(test)]
mod tests;
mod writer;

pub use error::FetchError;
pub use progress::{FetchProgress, FetchStats, ProgressSink};
pub use source::BlobSource;

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use pictor_protocol::api::{PROTOCOL_VERSION, VERSION_HEADER};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use sha2::{Digest as _, Sha256};

use crate::blobs::cache::{BlobCache, CacheError, Lookup, PinnedBlob, Reservation};
use crate::digest::Sha256Digest;

use progress::{BlobProgress, Counters, bump};
use reply::{check_version, parse_content_range, status_failure, transport_failure};
use writer::PartWriter;

/// How a [`Fetcher`] retries and how many blobs it downloads at once.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Attempts in a row without a new byte before a blob fails (default 8).
    pub max_attempts: u32,
    /// First backoff delay; it doubles per failed attempt (default 200 ms).
    pub backoff_base: Duration,
    /// Longest backoff delay, also the cap on a server's `Retry-After`
    /// (default 10 s).
    pub backoff_max: Duration,
    /// Downloads from scratch after a digest or size mismatch before
    /// failing (default 2).
    pub mismatch_retries: u32,
    /// Blobs [`Fetcher::fetch_all`] downloads at once (default 4).
    pub parallel: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_attempts: 8,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            mismatch_retries: 2,
            parallel: 4,
        }
    }
}

/// One blob to fetch with [`Fetcher::fetch_all`].
#[derive(Debug, Clone)]
pub struct FetchItem {
    /// Where from.
    pub source: BlobSource,
    /// Its digest.
    pub blob: Sha256Digest,
    /// Its size, if known (checked, and used for progress and room).
    pub size: Option<u64>,
}

/// Downloads blobs into a [`BlobCache`]; share it by reference or `Arc`.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    cache: Arc<BlobCache>,
    options: FetchOptions,
    counters: Counters,
}

/// How an attempt ended, short of an error.
enum Done {
    /// The body ended: verify what the partial file holds.
    Complete,
    /// The server serves a blob of this size (or at least this many
    /// bytes), not the size asked for.
    WrongSize(u64),
}

/// How an attempt failed.
enum Failure {
    /// Try again after a backoff (`Retry-After`, if the server said).
    Retry {
        error: FetchError,
        retry_after: Option<Duration>,
    },
    /// Give up.
    Fatal(FetchError),
}

/// The blob and URL that errors name.
struct Ctx {
    blob: String,
    url: String,
}

impl Ctx {
    fn io(
        &self,
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(io::Error) -> FetchError + use<> {
        let (blob, path) = (self.blob.clone(), path.to_path_buf());
        move |source| FetchError::Io {
            blob,
            action,
            path,
            source,
        }
    }

    fn cache(&self) -> impl FnOnce(CacheError) -> FetchError + use<> {
        let blob = self.blob.clone();
        move |source| FetchError::Cache { blob, source }
    }

    fn transport(&self, error: &reqwest::Error) -> FetchError {
        let mut detail = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(c) = cause {
            detail = format!("{detail}: {c}");
            cause = c.source();
        }
        FetchError::Transport {
            blob: self.blob.clone(),
            url: self.url.clone(),
            attempts: 1,
            detail,
        }
    }

    fn protocol(&self, message: String) -> FetchError {
        FetchError::Protocol {
            blob: self.blob.clone(),
            url: self.url.clone(),
            message,
        }
    }
}

/// The digest's download lock, shared by a fetch and its writer thread.
type Flight = Arc<tokio::sync::OwnedMutexGuard<()>>;

/// The file a download attempt writes, and what guards it.
struct Target<'a> {
    path: &'a Path,
    flight: &'a Flight,
    reservation: &'a mut Reservation,
}

/// What a partial file holds: its length and the hash state of those bytes.
struct Part {
    len: u64,
    hasher: Sha256,
}

impl Part {
    fn empty() -> Self {
        Part {
            len: 0,
            hasher: Sha256::new(),
        }
    }

    /// Hashes an existing partial file (blocking; streaming).
    fn load(path: &Path) -> io::Result<Part> {
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Part::empty()),
            Err(e) => return Err(e),
        };
        let mut part = Part::empty();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(part);
            }
            part.hasher.update(&buf[..n]);
            part.len += n as u64;
        }
    }

    fn digest(&self) -> Sha256Digest {
        Sha256Digest::from_bytes(self.hasher.clone().finalize().into())
    }
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

impl Fetcher {
    /// A fetcher that downloads with `client` (see [`crate::blobs::http_client`])
    /// into `cache`.
    pub fn new(client: reqwest::Client, cache: Arc<BlobCache>, options: FetchOptions) -> Self {
        Fetcher {
            client,
            cache,
            options,
            counters: Counters::default(),
        }
    }

    /// The cache it fills.
    pub fn cache(&self) -> &Arc<BlobCache> {
        &self.cache
    }

    /// Its counters so far.
    pub fn stats(&self) -> FetchStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FetchStats {
            bytes_downloaded: get(&c.bytes_downloaded),
            resumes: get(&c.resumes),
            retries: get(&c.retries),
            digest_mismatches: get(&c.digest_mismatches),
            cache_hits: get(&c.cache_hits),
        }
    }

    /// The blob `expected` from the cache, or downloaded from `source` into
    /// it and verified; pinned until the returned value drops. `size`, if
    /// given, is checked too and reserves room up front.
    pub async fn fetch(
        &self,
        source: &BlobSource,
        expected: Sha256Digest,
        size: Option<u64>,
        progress: &ProgressSink,
    ) -> Result<PinnedBlob, FetchError> {
        progress.add_blobs(1, size.unwrap_or(0));
        self.fetch_one(source, expected, size, progress).await
    }

    /// Fetches every item, [`FetchOptions::parallel`] at a time, and returns
    /// them in the items' order. The first error is returned at once and
    /// the other downloads are dropped: their partial files stay, to resume
    /// on the next try; blobs already fetched stay cached (unpinned).
    pub async fn fetch_all(
        &self,
        items: impl IntoIterator<Item = FetchItem>,
        progress: &ProgressSink,
    ) -> Result<Vec<PinnedBlob>, FetchError> {
        let items: Vec<FetchItem> = items.into_iter().collect();
        progress.add_blobs(items.len(), items.iter().filter_map(|i| i.size).sum());
        let mut slots: Vec<Option<PinnedBlob>> = vec![None; items.len()];
        // Futures made up front (not in a stream's closure) so the whole
        // future stays `Send`.
        let futures: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.fetch_nth(i, item, progress))
            .collect();
        let mut downloads =
            futures_util::stream::iter(futures).buffer_unordered(self.options.parallel.max(1));
        while let Some((i, result)) = downloads.next().await {
            slots[i] = Some(result?);
        }
        Ok(slots.into_iter().flatten().collect())
    }

    async fn fetch_nth(
        &self,
        i: usize,
        item: &FetchItem,
        progress: &ProgressSink,
    ) -> (usize, Result<PinnedBlob, FetchError>) {
        (
            i,
            self.fetch_one(&item.source, item.blob, item.size, progress)
                .await,
        )
    }

    #[tracing::instrument(name = "fetch", skip_all, fields(blob = %blob))]
    async fn fetch_one(
        &self,
        source: &BlobSource,
        blob: Sha256Digest,
        size: Option<u64>,
        progress: &ProgressSink,
    ) -> Result<PinnedBlob, FetchError> {
        let mut tracker = BlobProgress::new(progress, size.unwrap_or(0));
        let ctx = Ctx {
            blob: source.label(&blob),
            url: source.url.to_string(),
        };
        let pinned = match self.cached(&ctx, blob, size, false).await? {
            Some(pinned) => pinned,
            None => {
                // Held by this fetch and by its file writer thread, which
                // may outlive a cancelled fetch by a few writes.
                let flight = Arc::new(self.cache.download_lock(&blob).lock_owned().await);
                match self.cached(&ctx, blob, size, true).await? {
                    Some(pinned) => pinned,
                    None => {
                        self.download(source, &ctx, blob, size, &flight, &mut tracker)
                            .await?
                    }
                }
            }
        };
        tracker.finish(pinned.size());
        Ok(pinned)
    }

    /// A cache hit, pinned. A blob found when the cache was opened is
    /// hashed first, only with `may_verify` (under the download lock).
    async fn cached(
        &self,
        ctx: &Ctx,
        blob: Sha256Digest,
        size: Option<u64>,
        may_verify: bool,
    ) -> Result<Option<PinnedBlob>, FetchError> {
        let Some(Lookup {
            blob: pinned,
            verified,
        }) = self.cache.lookup(&blob)
        else {
            return Ok(None);
        };
        if !verified {
            if !may_verify {
                return Ok(None);
            }
            let path = pinned.path().to_path_buf();
            let actual = blocking(move || Sha256Digest::of_file(&path)).await;
            if !self.cache.finish_verify(&pinned, actual) {
                return Ok(None);
            }
        }
        if let Some(expected) = size
            && expected != pinned.size()
        {
            let url = ctx.url.clone();
            return Err(FetchError::SizeMismatch {
                blob: ctx.blob.clone(),
                expected,
                actual: pinned.size(),
                url,
            });
        }
        bump(&self.counters.cache_hits, 1);
        tracing::debug!("cache hit");
        Ok(Some(pinned))
    }

    /// Downloads into the partial file, resuming and retrying, until it
    /// verifies; then moves it into the cache.
    async fn download(
        &self,
        source: &BlobSource,
        ctx: &Ctx,
        blob: Sha256Digest,
        size: Option<u64>,
        flight: &Flight,
        tracker: &mut BlobProgress<'_>,
    ) -> Result<PinnedBlob, FetchError> {
        let mut reservation = self
            .cache
            .reserve(blob, size.unwrap_or(0))
            .map_err(ctx.cache())?;
        let part_path = self.cache.partial_path(&blob);
        let load_path = part_path.clone();
        let mut part = blocking(move || Part::load(&load_path))
            .await
            .map_err(ctx.io("hash", &part_path))?;
        if size.is_some_and(|s| part.len > s) {
            part = Part::empty();
        }
        reservation.ensure(part.len).map_err(ctx.cache())?;
        tracker.add(part.len);
        let (mut failures, mut mismatches) = (0u32, 0u32);
        loop {
            let before = part.len;
            let target = Target {
                path: &part_path,
                flight,
                reservation: &mut reservation,
            };
            let outcome = self
                .attempt(source, ctx, size, target, &mut part, tracker)
                .await;
            let mismatch = match outcome {
                Ok(Done::Complete) => match (size, part.digest()) {
                    (Some(expected), _) if expected != part.len => {
                        let (blob, url) = (ctx.blob.clone(), ctx.url.clone());
                        FetchError::SizeMismatch {
                            blob,
                            expected,
                            actual: part.len,
                            url,
                        }
                    }
                    (_, actual) if actual != blob => {
                        let (name, url) = (ctx.blob.clone(), ctx.url.clone());
                        FetchError::DigestMismatch {
                            blob: name,
                            expected: blob,
                            actual,
                            url,
                        }
                    }
                    _ => return reservation.commit().map_err(ctx.cache()),
                },
                Ok(Done::WrongSize(actual)) => {
                    let (blob, url) = (ctx.blob.clone(), ctx.url.clone());
                    FetchError::SizeMismatch {
                        blob,
                        expected: size.unwrap_or(0),
                        actual,
                        url,
                    }
                }
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry {
                    mut error,
                    retry_after,
                }) => {
                    if part.len > before {
                        failures = 0;
                    }
                    failures += 1;
                    if let FetchError::Transport { attempts, .. } = &mut error {
                        *attempts = failures;
                    }
                    if failures >= self.options.max_attempts {
                        return Err(error);
                    }
                    bump(&self.counters.retries, 1);
                    let delay = self.backoff(failures, retry_after);
                    tracing::warn!(delay_ms = delay.as_millis() as u64, "{error}; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            bump(&self.counters.digest_mismatches, 1);
            mismatches += 1;
            part = Part::empty();
            tracker.reset();
            let remove = part_path.clone();
            blocking(move || match std::fs::remove_file(&remove) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await
            .map_err(ctx.io("delete", &part_path))?;
            if mismatches > self.options.mismatch_retries {
                return Err(mismatch);
            }
            tracing::warn!("{mismatch}; downloading it again from scratch");
        }
    }

    /// One request: appends what arrives to the partial file.
    async fn attempt(
        &self,
        source: &BlobSource,
        ctx: &Ctx,
        size: Option<u64>,
        target: Target<'_>,
        part: &mut Part,
        tracker: &mut BlobProgress<'_>,
    ) -> Result<Done, Failure> {
        let Target {
            path: part_path,
            flight,
            reservation,
        } = target;
        let offset = part.len;
        let mut request = self.client.get(source.url.clone());
        if let Some(token) = &source.token {
            request = request
                .bearer_auth(token)
                .header(VERSION_HEADER, PROTOCOL_VERSION.to_string());
        }
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_failure(ctx, &e))?;
        check_version(ctx, &response).map_err(Failure::Fatal)?;
        let status = response.status();
        let total = match status {
            StatusCode::OK => {
                if offset > 0 {
                    tracing::info!("server ignored the range request; restarting from zero");
                    *part = Part::empty();
                    tracker.reset();
                }
                response.content_length()
            }
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                match range.and_then(parse_content_range) {
                    Some((start, total)) if start == offset => {
                        if offset > 0 {
                            bump(&self.counters.resumes, 1);
                            tracing::info!("resumed download of {} at {offset} bytes", ctx.blob);
                        }
                        total.or_else(|| response.content_length().map(|n| offset + n))
                    }
                    _ => {
                        *part = Part::empty();
                        tracker.reset();
                        let message =
                            format!("asked for bytes from {offset}, got Content-Range {range:?}");
                        return Err(Failure::Retry {
                            error: ctx.protocol(message),
                            retry_after: None,
                        });
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => return Ok(Done::Complete),
            _ => return Err(status_failure(ctx, response).await),
        };
        if let Some(total) = total {
            if size.is_some_and(|s| s != total) {
                return Ok(Done::WrongSize(total));
            }
            tracker.set_total(total);
            reservation
                .ensure(total)
                .map_err(|e| Failure::Fatal(ctx.cache()(e)))?;
        }

        let hasher = Some(std::mem::take(&mut part.hasher));
        let mut writer = PartWriter::start(
            part_path.to_path_buf(),
            part.len,
            hasher,
            Some(Arc::clone(flight)),
        );
        let mut body = response.bytes_stream();
        let limit = self.cache.limit();
        let outcome = loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let n = chunk.len() as u64;
                    let len = part.len + n;
                    if size.is_some_and(|s| len > s) {
                        break Ok(Done::WrongSize(len));
                    }
                    // Grow the room in steps while the total is unknown.
                    let room = match total {
                        Some(total) if len <= total => total,
                        _ => len.next_multiple_of(8 << 20).min(limit).max(len),
                    };
                    if let Err(e) = reservation.ensure(room) {
                        break Err(Failure::Fatal(ctx.cache()(e)));
                    }
                    if !writer.push(chunk).await {
                        break Ok(Done::Complete); // the writer failed: `finish` says why
                    }
                    part.len = len;
                    bump(&self.counters.bytes_downloaded, n);
                    tracker.add(n);
                }
                Some(Err(e)) => break Err(transport_failure(ctx, &e)),
                None => break Ok(Done::Complete),
            }
        };
        let (len, hasher) = writer
            .finish()
            .await
            .map_err(|e| Failure::Fatal(ctx.io("write", part_path)(e)))?;
        part.len = len;
        part.hasher = hasher.unwrap_or_default();
        outcome
    }

    /// The delay before retry number `failures` (from 1): exponential,
    /// capped, with jitter; at least what the server asked for (capped).
    fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .options
            .backoff_base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let capped = exp.min(self.options.backoff_max);
        let unit = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / u32::MAX as f64;
        let delay = capped / 2 + capped.mul_f64(0.5 * unit);
        retry_after.map_or(delay, |asked| {
            asked.min(self.options.backoff_max).max(delay)
        })
    }

    /// For benchmarks only: downloads `source` into `dest` the same way as
    /// a fetch (streaming, same file writer) but without hashing, cache,
    /// resume or retries; returns the bytes written. The baseline that
    /// verified [`Fetcher::fetch`] is measured against.
    pub async fn download_unverified(
        &self,
        source: &BlobSource,
        dest: &Path,
    ) -> Result<u64, FetchError> {
        let ctx = Ctx {
            blob: source.name.clone().unwrap_or_else(|| "blob".to_string()),
            url: source.url.to_string(),
        };
        let mut request = self.client.get(source.url.clone());
        if let Some(token) = &source.token {
            request = request
                .bearer_auth(token)
                .header(VERSION_HEADER, PROTOCOL_VERSION.to_string());
        }
        let response = request.send().await.map_err(|e| ctx.transport(&e))?;
        if response.status() != StatusCode::OK {
            return Err(match status_failure(&ctx, response).await {
                Failure::Retry { error, .. } | Failure::Fatal(error) => error,
            });
        }
        let mut writer = PartWriter::start(dest.to_path_buf(), 0, None, None);
        let mut body = response.bytes_stream();
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    if !writer.push(chunk).await {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(ctx.transport(&e));
                    break;
                }
            }
        }
        let (len, _) = writer.finish().await.map_err(ctx.io("write", dest))?;
        failed.map_or(Ok(len), Err)
    }
}
