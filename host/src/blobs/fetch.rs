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

use std::fmt;
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use pictor_protocol::api::{PROTOCOL_VERSION, VERSION_HEADER};
use reqwest::header::{CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::blobs::cache::{BlobCache, CacheError, Lookup, PinnedBlob, Reservation};
use crate::digest::Sha256Digest;

/// Where a blob is downloaded from: a URL, with the bearer token to send
/// (coordinator blobs) or none (plain `http(s)://` URLs from job specs).
#[derive(Clone)]
pub struct BlobSource {
    url: Url,
    token: Option<String>,
    name: Option<String>,
}

impl BlobSource {
    /// A plain URL, fetched without credentials.
    pub fn new(url: Url) -> Self {
        BlobSource {
            url,
            token: None,
            name: None,
        }
    }

    /// `blob` on the coordinator at `base` (e.g. `https://coord.example/`),
    /// fetched with the worker's `token`.
    pub fn coordinator(
        base: &Url,
        token: impl Into<String>,
        blob: &Sha256Digest,
    ) -> Result<Self, url::ParseError> {
        let path = pictor_protocol::api::paths::blob(blob);
        let url = Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))?;
        Ok(BlobSource {
            url,
            token: Some(token.into()),
            name: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` (and the protocol version header).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Names the blob in errors and logs, e.g. `plugin` or `input "scene.glb"`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn label(&self, blob: &Sha256Digest) -> String {
        match &self.name {
            Some(name) => format!("{name} (blob {blob})"),
            None => format!("blob {blob}"),
        }
    }
}

impl fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSource")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .finish()
    }
}

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

/// Counters of a [`Fetcher`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Body bytes received (not counting cache hits).
    pub bytes_downloaded: u64,
    /// Downloads continued from a partial file with a `206` reply.
    pub resumes: u64,
    /// Attempts repeated after a transport error or a retryable status.
    pub retries: u64,
    /// Downloads that did not match their digest or size.
    pub digest_mismatches: u64,
    /// Fetches answered from the cache.
    pub cache_hits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    bytes_downloaded: AtomicU64,
    resumes: AtomicU64,
    retries: AtomicU64,
    digest_mismatches: AtomicU64,
    cache_hits: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Download progress over one [`Fetcher::fetch`] or [`Fetcher::fetch_all`]
/// (or several sharing a sink).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchProgress {
    /// Bytes downloaded or found (cache hits and resumed parts count).
    pub bytes_done: u64,
    /// Total bytes, as far as known (sizes given, else `Content-Length`).
    pub bytes_total: u64,
    /// Blobs ready.
    pub blobs_done: usize,
    /// Blobs asked for.
    pub blobs_total: usize,
}

/// Where progress goes: a `watch` channel, published at most every
/// 100 ms (and once more when every blob is done), for a status line.
#[derive(Debug)]
pub struct ProgressSink {
    tx: Option<watch::Sender<FetchProgress>>,
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    now: FetchProgress,
    last_sent: Option<Instant>,
}

/// How often a [`ProgressSink`] publishes, at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

impl ProgressSink {
    /// Publishes into `tx`.
    pub fn new(tx: watch::Sender<FetchProgress>) -> Self {
        ProgressSink {
            tx: Some(tx),
            state: Mutex::default(),
        }
    }

    /// A sink and the receiver that watches it.
    pub fn channel() -> (Self, watch::Receiver<FetchProgress>) {
        let (tx, rx) = watch::channel(FetchProgress::default());
        (Self::new(tx), rx)
    }

    /// A sink that only counts (see [`ProgressSink::snapshot`]).
    pub fn discard() -> Self {
        ProgressSink {
            tx: None,
            state: Mutex::default(),
        }
    }

    /// The progress now, published or not.
    pub fn snapshot(&self) -> FetchProgress {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now
    }

    fn update(&self, change: impl FnOnce(&mut FetchProgress)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state.now);
        let all_done = state.now.blobs_total > 0 && state.now.blobs_done == state.now.blobs_total;
        let due = state
            .last_sent
            .is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
        if let Some(tx) = &self.tx
            && (due || all_done)
        {
            tx.send_replace(state.now);
            state.last_sent = Some(Instant::now());
        }
    }

    fn add_blobs(&self, blobs: usize, known_bytes: u64) {
        self.update(|p| {
            p.blobs_total += blobs;
            p.bytes_total += known_bytes;
        });
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self::discard()
    }
}

/// One blob's share of a [`ProgressSink`].
struct BlobProgress<'a> {
    sink: &'a ProgressSink,
    /// What this blob added to `bytes_total`.
    total: u64,
    done: u64,
}

impl<'a> BlobProgress<'a> {
    fn new(sink: &'a ProgressSink, counted_total: u64) -> Self {
        BlobProgress {
            sink,
            total: counted_total,
            done: 0,
        }
    }

    fn set_total(&mut self, total: u64) {
        if total != self.total {
            let old = std::mem::replace(&mut self.total, total);
            self.sink
                .update(|p| p.bytes_total = (p.bytes_total + total).saturating_sub(old));
        }
    }

    fn add(&mut self, bytes: u64) {
        self.done += bytes;
        self.sink.update(|p| p.bytes_done += bytes);
    }

    fn reset(&mut self) {
        let done = std::mem::take(&mut self.done);
        self.sink
            .update(|p| p.bytes_done = p.bytes_done.saturating_sub(done));
    }

    fn finish(mut self, size: u64) {
        self.set_total(size);
        let rest = size.saturating_sub(self.done);
        self.sink.update(|p| {
            p.bytes_done += rest;
            p.blobs_done += 1;
        });
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

fn transport_failure(ctx: &Ctx, error: &reqwest::Error) -> Failure {
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
fn check_version(ctx: &Ctx, response: &reqwest::Response) -> Result<(), FetchError> {
    let header = response.headers().get(VERSION_HEADER);
    match pictor_protocol::reply::version_mismatch(header.map(|v| v.as_bytes())) {
        Some(version) => Err(ctx.protocol(format!(
            "the server speaks protocol version {version:?}, this worker speaks {PROTOCOL_VERSION}"
        ))),
        None => Ok(()),
    }
}

/// The failure for an error status, with the server's message.
async fn status_failure(ctx: &Ctx, response: reqwest::Response) -> Failure {
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
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((start, total))
}

/// Bytes per batch handed to the writer and hasher threads.
const BATCH_BYTES: usize = 256 << 10;
/// Batches queued per thread (8 MiB): deep enough that a hasher or writer
/// thread descheduled for a moment does not stall the socket reads.
const QUEUE_BATCHES: usize = 32;

/// Appends chunks to a file on one blocking thread while another hashes
/// them, so hashing overlaps both the network and the disk.
struct PartWriter<B> {
    batch: Vec<B>,
    batch_bytes: usize,
    to_file: mpsc::Sender<Arc<Vec<B>>>,
    to_hasher: Option<mpsc::Sender<Arc<Vec<B>>>>,
    file_task: JoinHandle<io::Result<u64>>,
    hash_task: Option<JoinHandle<Sha256>>,
}

impl<B: AsRef<[u8]> + Send + Sync + 'static> PartWriter<B> {
    /// Writes `path` from `offset` on (truncating anything after it),
    /// hashing into `hasher` if given. The writer thread holds `flight`
    /// until its last write, so that if the download is cancelled the
    /// next one for the digest waits for the file to settle.
    fn start(path: PathBuf, offset: u64, hasher: Option<Sha256>, flight: Option<Flight>) -> Self {
        let (to_file, mut file_rx) = mpsc::channel::<Arc<Vec<B>>>(QUEUE_BATCHES);
        let file_task = tokio::task::spawn_blocking(move || {
            let _flight = flight;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut len = offset;
            while let Some(batch) = file_rx.blocking_recv() {
                len += write_batch(&mut file, &batch)?;
            }
            Ok(len)
        });
        let (to_hasher, hash_task) = match hasher {
            None => (None, None),
            Some(mut hasher) => {
                let (tx, mut rx) = mpsc::channel::<Arc<Vec<B>>>(QUEUE_BATCHES);
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(batch) = rx.blocking_recv() {
                        for chunk in batch.iter() {
                            hasher.update(chunk.as_ref());
                        }
                    }
                    hasher
                });
                (Some(tx), Some(task))
            }
        };
        PartWriter {
            batch: Vec::new(),
            batch_bytes: 0,
            to_file,
            to_hasher,
            file_task,
            hash_task,
        }
    }

    /// Queues a chunk; false if the writer thread has stopped (an I/O
    /// error that [`PartWriter::finish`] returns).
    async fn push(&mut self, chunk: B) -> bool {
        self.batch_bytes += chunk.as_ref().len();
        self.batch.push(chunk);
        if self.batch_bytes < BATCH_BYTES {
            return true;
        }
        self.send().await
    }

    async fn send(&mut self) -> bool {
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batch_bytes = 0;
        let mut alive = self.to_file.send(Arc::clone(&batch)).await.is_ok();
        if let Some(to_hasher) = &self.to_hasher {
            alive &= to_hasher.send(batch).await.is_ok();
        }
        alive
    }

    /// Writes what is queued and returns the file's length and the hash
    /// state.
    async fn finish(mut self) -> io::Result<(u64, Option<Sha256>)> {
        if !self.batch.is_empty() {
            self.send().await;
        }
        let PartWriter {
            to_file,
            to_hasher,
            file_task,
            hash_task,
            ..
        } = self;
        drop((to_file, to_hasher));
        let len = file_task.await.map_err(io::Error::other)??;
        let hasher = match hash_task {
            Some(task) => Some(task.await.map_err(io::Error::other)?),
            None => None,
        };
        Ok((len, hasher))
    }
}

/// Writes a batch of chunks with vectored writes (no copy); returns its
/// length.
fn write_batch<B: AsRef<[u8]>>(file: &mut std::fs::File, batch: &[B]) -> io::Result<u64> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .map(|chunk| IoSlice::new(chunk.as_ref()))
        .collect();
    let total = slices.iter().map(|s| s.len() as u64).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::testserver::{Fault, TestServer};

    fn quick() -> FetchOptions {
        FetchOptions {
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(5),
            ..Default::default()
        }
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    struct Setup {
        server: TestServer,
        fetcher: Fetcher,
        dir: tempfile::TempDir,
    }

    async fn setup(limit: u64, options: FetchOptions) -> Setup {
        let server = TestServer::start(Some("worker-token")).await;
        let dir = tempfile::tempdir().unwrap();
        let fetcher = fetcher_in(dir.path(), limit, options);
        Setup {
            server,
            fetcher,
            dir,
        }
    }

    fn fetcher_in(root: &Path, limit: u64, options: FetchOptions) -> Fetcher {
        let cache = Arc::new(BlobCache::open(root, limit).unwrap());
        Fetcher::new(
            crate::blobs::http_client("pictor-host-test").unwrap(),
            cache,
            options,
        )
    }

    const MIB: u64 = 1 << 20;

    #[tokio::test]
    async fn downloads_verifies_caches_and_hits() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(3 << 20, 1);
        let d = s.server.add(bytes.clone());
        let (sink, rx) = ProgressSink::channel();
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, Some(bytes.len() as u64), &sink)
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!((blob.digest(), blob.size()), (d, bytes.len() as u64));
        assert!(blob.path().starts_with(s.dir.path()));
        let full = FetchProgress {
            bytes_done: 3 << 20,
            bytes_total: 3 << 20,
            blobs_done: 1,
            blobs_total: 1,
        };
        assert_eq!(*rx.borrow(), full, "the last update is always published");
        let served = s.server.served(&d);
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].range, None);
        // Second fetch: from the cache, no request; size unknown is fine.
        let again = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(again.path(), blob.path());
        assert_eq!(s.server.served(&d).len(), 1);
        let stats = s.fetcher.stats();
        assert_eq!(
            (
                stats.bytes_downloaded,
                stats.cache_hits,
                stats.retries,
                stats.resumes
            ),
            (3 << 20, 1, 0, 0)
        );
        assert!(!s.fetcher.cache().partial_path(&d).exists());
    }

    #[tokio::test]
    async fn connection_cut_mid_body_resumes_with_range() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(2 << 20, 2);
        let d = s.server.add(bytes.clone());
        s.server.fault(&d, Fault::CutAfter(700_000));
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        let served = s.server.served(&d);
        assert_eq!(served.len(), 2);
        assert_eq!(served[1].range.as_deref(), Some("bytes=700000-"));
        assert_eq!(served[1].status, 206);
        let stats = s.fetcher.stats();
        assert_eq!(
            (stats.resumes, stats.retries, stats.digest_mismatches),
            (1, 1, 0)
        );
        assert_eq!(
            stats.bytes_downloaded,
            bytes.len() as u64,
            "no byte downloaded twice"
        );
    }

    #[tokio::test]
    async fn cancelled_fetch_keeps_its_bytes_for_the_next_one() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(2 << 20, 14);
        let d = s.server.add(bytes.clone());
        s.server.fault(&d, Fault::Stall(1_000_000));
        let (source, sink) = (s.server.source(&d), ProgressSink::discard());
        let first = tokio::time::timeout(
            Duration::from_millis(500),
            s.fetcher.fetch(&source, d, None, &sink),
        )
        .await;
        assert!(first.is_err(), "the stalled fetch is cancelled");
        let blob = s.fetcher.fetch(&source, d, None, &sink).await.unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        let served = s.server.served(&d);
        let range = served[1].range.as_deref().unwrap();
        let offset: u64 = range
            .strip_prefix("bytes=")
            .unwrap()
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(
            offset > 0 && offset <= 1_000_000,
            "resumed from what the cancelled fetch wrote: {range}"
        );
        assert_eq!(
            (
                s.fetcher.stats().resumes,
                s.fetcher.stats().digest_mismatches
            ),
            (1, 0)
        );
    }

    #[tokio::test]
    async fn partial_left_by_a_previous_run_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(None).await;
        let bytes = data(1 << 20, 3);
        let d = server.add(bytes.clone());
        let source = BlobSource::new(server.url(&d));
        {
            // A run that dies after 400 000 bytes (one attempt allowed).
            server.fault(&d, Fault::CutAfter(400_000));
            let fetcher = fetcher_in(
                dir.path(),
                64 * MIB,
                FetchOptions {
                    max_attempts: 1,
                    ..quick()
                },
            );
            let err = fetcher
                .fetch(&source, d, None, &ProgressSink::discard())
                .await
                .err()
                .unwrap();
            assert!(
                matches!(err, FetchError::Transport { attempts: 1, .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains(&d.to_string())
                    && err.to_string().contains(source.url().as_str())
            );
        }
        assert_eq!(
            std::fs::metadata(dir.path().join(format!("partial/{d}.part")))
                .unwrap()
                .len(),
            400_000
        );
        let fetcher = fetcher_in(dir.path(), 64 * MIB, quick());
        assert_eq!(fetcher.cache().usage().partial_bytes, 400_000);
        let (sink, _rx) = ProgressSink::channel();
        let blob = fetcher
            .fetch(&source, d, Some(1 << 20), &sink)
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(
            server.served(&d).last().unwrap().range.as_deref(),
            Some("bytes=400000-")
        );
        let stats = fetcher.stats();
        assert_eq!(
            (stats.resumes, stats.bytes_downloaded),
            (1, (1 << 20) - 400_000)
        );
        assert_eq!(
            sink.snapshot().bytes_done,
            1 << 20,
            "resumed bytes count as done once"
        );
        assert_eq!(fetcher.cache().usage().partial_bytes, 0);
    }

    #[tokio::test]
    async fn server_ignoring_range_restarts_from_zero() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(1 << 20, 4);
        let d = s.server.add(bytes.clone());
        std::fs::write(s.fetcher.cache().partial_path(&d), &bytes[..300_000]).unwrap();
        s.server.fault(&d, Fault::IgnoreRange);
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        let served = s.server.served(&d);
        assert_eq!((served.len(), served[0].status), (1, 200));
        assert_eq!(served[0].range.as_deref(), Some("bytes=300000-"));
        assert_eq!(
            (
                s.fetcher.stats().resumes,
                s.fetcher.stats().bytes_downloaded
            ),
            (0, 1 << 20)
        );
    }

    #[tokio::test]
    async fn complete_partial_gets_416_and_verifies() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(100_000, 5);
        let d = s.server.add(bytes.clone());
        std::fs::write(s.fetcher.cache().partial_path(&d), &bytes).unwrap();
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(s.server.served(&d)[0].status, 416);
        assert_eq!(s.fetcher.stats().bytes_downloaded, 0);
    }

    #[tokio::test]
    async fn stale_partial_that_does_not_match_is_redone_from_scratch() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(500_000, 6);
        let d = s.server.add(bytes.clone());
        std::fs::write(s.fetcher.cache().partial_path(&d), vec![0u8; 100_000]).unwrap();
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        let ranges: Vec<_> = s.server.served(&d).into_iter().map(|r| r.range).collect();
        assert_eq!(ranges, [Some("bytes=100000-".to_string()), None]);
        assert_eq!(s.fetcher.stats().digest_mismatches, 1);
    }

    #[tokio::test]
    async fn corrupted_once_is_redownloaded() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(1 << 20, 7);
        let d = s.server.add(bytes.clone());
        s.server.fault(&d, Fault::Corrupt);
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(s.server.served(&d).len(), 2);
        assert_eq!(s.fetcher.stats().digest_mismatches, 1);
    }

    #[tokio::test]
    async fn always_corrupt_is_a_clear_digest_mismatch() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(200_000, 8);
        let d = s.server.add(bytes.clone());
        s.server.always(&d, Fault::Corrupt);
        let source = s.server.source(&d).named("input \"scene.glb\"");
        let err = s
            .fetcher
            .fetch(&source, d, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        let FetchError::DigestMismatch {
            expected, actual, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*expected, d);
        let mut corrupt = bytes.clone();
        corrupt[bytes.len() / 2] ^= 0xff;
        assert_eq!(*actual, Sha256Digest::of(&corrupt));
        let text = err.to_string();
        for needle in [
            &d.to_string(),
            &actual.to_string(),
            source.url().as_str(),
            "input \"scene.glb\"",
            "sha256 mismatch",
        ] {
            assert!(text.contains(needle), "{text} lacks {needle}");
        }
        assert_eq!(
            s.server.served(&d).len(),
            3,
            "first try and two retries from scratch"
        );
        assert_eq!(s.fetcher.stats().digest_mismatches, 3);
        assert!(!s.fetcher.cache().contains(&d));
        assert!(
            !s.fetcher.cache().partial_path(&d).exists(),
            "no corrupt partial kept"
        );
        let usage = s.fetcher.cache().usage();
        assert_eq!(
            (usage.blob_bytes, usage.partial_bytes, usage.reserved_bytes),
            (0, 0, 0)
        );
    }

    #[tokio::test]
    async fn wrong_size_aborts_early() {
        let s = setup(
            64 * MIB,
            FetchOptions {
                mismatch_retries: 0,
                ..quick()
            },
        )
        .await;
        let bytes = data(300_000, 9);
        let d = s.server.add(bytes.clone());
        let err = s
            .fetcher
            .fetch(
                &s.server.source(&d),
                d,
                Some(1000),
                &ProgressSink::discard(),
            )
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                FetchError::SizeMismatch {
                    expected: 1000,
                    actual: 300_000,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&d.to_string()), "{err}");
        assert_eq!(
            s.fetcher.stats().bytes_downloaded,
            0,
            "refused from Content-Length, before the body"
        );
    }

    #[tokio::test]
    async fn not_found_and_unauthorized_fail_fast_with_clear_errors() {
        let s = setup(64 * MIB, quick()).await;
        let missing = Sha256Digest::of(b"missing");
        let source = s.server.source(&missing);
        let err = s
            .fetcher
            .fetch(&source, missing, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, FetchError::NotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("blob {missing} not found at {}", source.url())
        );
        assert_eq!(s.server.served(&missing).len(), 1, "no retry");

        let d = s.server.add(data(1000, 10));
        let wrong = BlobSource::new(s.server.url(&d)).with_token("stolen");
        let err = s
            .fetcher
            .fetch(&wrong, d, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, FetchError::Unauthorized { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("the coordinator refused the worker token (wrong worker token)"),
            "{text}"
        );
        assert!(
            text.contains(&d.to_string()) && text.contains(wrong.url().as_str()),
            "{text}"
        );
        assert_eq!(s.server.served(&d).len(), 1, "no retry");
        assert_eq!(s.fetcher.stats().retries, 0);
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_other_4xx_are_not() {
        let s = setup(
            64 * MIB,
            FetchOptions {
                max_attempts: 3,
                ..quick()
            },
        )
        .await;
        let bytes = data(10_000, 11);
        let d = s.server.add(bytes.clone());
        s.server.fault(&d, Fault::Status(503));
        s.server.fault(&d, Fault::Status(429));
        let blob = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(s.server.served(&d).len(), 3);
        assert_eq!(s.fetcher.stats().retries, 2);

        let e = s.server.add(data(10_000, 12));
        s.server.always(&e, Fault::Status(500));
        let err = s
            .fetcher
            .fetch(&s.server.source(&e), e, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FetchError::Status { status: 500, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("injected fault"),
            "the ErrorBody message: {err}"
        );
        assert_eq!(s.server.served(&e).len(), 3, "max_attempts");

        let f = s.server.add(data(10_000, 13));
        s.server.always(&f, Fault::Status(403));
        let err = s
            .fetcher
            .fetch(&s.server.source(&f), f, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FetchError::Status { status: 403, .. }),
            "{err:?}"
        );
        assert_eq!(s.server.served(&f).len(), 1);
    }

    #[tokio::test]
    async fn fetch_all_downloads_in_parallel_and_returns_in_order() {
        let s = setup(
            64 * MIB,
            FetchOptions {
                parallel: 3,
                ..quick()
            },
        )
        .await;
        let blobs: Vec<Vec<u8>> = (0..7)
            .map(|i| data(100_000 + i * 50_000, 20 + i as u8))
            .collect();
        let items: Vec<FetchItem> = blobs
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let d = s.server.add(bytes.clone());
                s.server.fault(&d, Fault::Delay(Duration::from_millis(20)));
                // Half with sizes known up front, half learnt from the reply.
                FetchItem {
                    source: s.server.source(&d),
                    blob: d,
                    size: (i % 2 == 0).then_some(bytes.len() as u64),
                }
            })
            .collect();
        let total: u64 = blobs.iter().map(|b| b.len() as u64).sum();
        let (sink, rx) = ProgressSink::channel();
        let fetched = s.fetcher.fetch_all(items.clone(), &sink).await.unwrap();
        assert_eq!(fetched.len(), blobs.len());
        for ((blob, item), bytes) in fetched.iter().zip(&items).zip(&blobs) {
            assert_eq!(blob.digest(), item.blob);
            assert_eq!(&std::fs::read(blob.path()).unwrap(), bytes);
            assert_eq!(s.server.served(&item.blob).len(), 1);
        }
        let max = s.server.max_in_flight();
        assert!(
            (1..=3).contains(&max),
            "at most `parallel` requests at once, got {max}"
        );
        let full = FetchProgress {
            bytes_done: total,
            bytes_total: total,
            blobs_done: 7,
            blobs_total: 7,
        };
        assert_eq!(*rx.borrow(), full);
        assert_eq!(
            s.fetcher.cache().usage().pinned_bytes,
            total,
            "all pinned while held"
        );
        drop(fetched);
        assert_eq!(s.fetcher.cache().usage().pinned_bytes, 0);
    }

    #[tokio::test]
    async fn fetch_all_returns_the_first_error() {
        let s = setup(64 * MIB, quick()).await;
        let good = s.server.add(data(1000, 30));
        let missing = Sha256Digest::of(b"nope");
        let items = [good, missing].map(|d| FetchItem {
            source: s.server.source(&d),
            blob: d,
            size: None,
        });
        let err = s
            .fetcher
            .fetch_all(items, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, FetchError::NotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn concurrent_fetches_of_one_blob_download_once() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(1 << 20, 40);
        let d = s.server.add(bytes.clone());
        // Slow enough that both fetches are under way together.
        s.server.fault(&d, Fault::Delay(Duration::from_millis(50)));
        let source = s.server.source(&d);
        let sink = ProgressSink::discard();
        let (a, b) = tokio::join!(
            s.fetcher.fetch(&source, d, None, &sink),
            s.fetcher.fetch(&source, d, None, &sink)
        );
        assert_eq!(a.unwrap().path(), b.unwrap().path());
        assert_eq!(s.server.served(&d).len(), 1, "one download");
        let stats = s.fetcher.stats();
        assert_eq!((stats.cache_hits, stats.bytes_downloaded), (1, 1 << 20));
    }

    #[tokio::test]
    async fn cache_limits_surface_before_any_request() {
        let s = setup(MIB, quick()).await;
        let d = s.server.add(data(1000, 50));
        let err = s
            .fetcher
            .fetch(
                &s.server.source(&d),
                d,
                Some(2 * MIB),
                &ProgressSink::discard(),
            )
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                FetchError::Cache {
                    source: CacheError::TooLarge { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("larger than the whole download cache (1 MiB)"),
            "{err}"
        );
        assert!(s.server.served(&d).is_empty());

        // The size is learnt from the reply: refused there, before the body.
        let big = s.server.add(data(1_100_000, 51));
        let err = s
            .fetcher
            .fetch(&s.server.source(&big), big, None, &ProgressSink::discard())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                FetchError::Cache {
                    source: CacheError::TooLarge { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(s.fetcher.stats().bytes_downloaded, 0);
    }

    #[tokio::test]
    async fn blob_corrupted_in_the_cache_folder_is_caught_and_refetched() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(100_000, 60);
        let d = s.server.add(bytes.clone());
        let path = s
            .fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap()
            .path()
            .to_path_buf();
        std::fs::write(&path, vec![1u8; bytes.len()]).unwrap();
        // A restart: blobs found on open are re-hashed on first use.
        let fetcher = fetcher_in(s.dir.path(), 64 * MIB, quick());
        let blob = fetcher
            .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
            .await
            .unwrap();
        assert_eq!(std::fs::read(blob.path()).unwrap(), bytes);
        assert_eq!(s.server.served(&d).len(), 2);
        // Verified now: the next hit does not hash or download.
        drop(
            fetcher
                .fetch(&s.server.source(&d), d, None, &ProgressSink::discard())
                .await
                .unwrap(),
        );
        assert_eq!(fetcher.stats().cache_hits, 1);
    }

    #[tokio::test]
    async fn unverified_download_for_benchmarks_writes_the_bytes() {
        let s = setup(64 * MIB, quick()).await;
        let bytes = data(1 << 20, 70);
        let d = s.server.add(bytes.clone());
        let dest = s.dir.path().join("plain");
        let n = s
            .fetcher
            .download_unverified(&s.server.source(&d), &dest)
            .await
            .unwrap();
        assert_eq!(
            (n, std::fs::read(&dest).unwrap()),
            (bytes.len() as u64, bytes)
        );
    }

    /// The worker spawns fetches on the multi-threaded runtime.
    #[test]
    fn fetch_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let dir = tempfile::tempdir().unwrap();
        let fetcher = fetcher_in(dir.path(), MIB, quick());
        let (source, sink) = (
            BlobSource::new(Url::parse("http://127.0.0.1:1/").unwrap()),
            ProgressSink::discard(),
        );
        let d = Sha256Digest::of(b"");
        assert_send(fetcher.fetch(&source, d, None, &sink));
        assert_send(fetcher.fetch_all(Vec::new(), &sink));
        assert_send(fetcher.download_unverified(&source, dir.path()));
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 100-999/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let f = fetcher_in(dir.path(), 1, FetchOptions::default());
        for failures in 1..=10 {
            let d = f.backoff(failures, None);
            let nominal =
                (Duration::from_millis(200) * 2u32.pow(failures - 1)).min(Duration::from_secs(10));
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{failures}: {d:?} vs {nominal:?}"
            );
        }
        assert!(f.backoff(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert_eq!(
            f.backoff(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn source_debug_hides_the_token() {
        let base = Url::parse("https://coord.example/").unwrap();
        let d = Sha256Digest::of(b"x");
        let source = BlobSource::coordinator(&base, "secret-token", &d).unwrap();
        assert_eq!(
            source.url().as_str(),
            format!("https://coord.example/api/v1/blobs/{d}")
        );
        assert!(!format!("{source:?}").contains("secret-token"));
    }
}
