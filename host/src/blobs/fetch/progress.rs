//! Download progress for the status line, and a fetcher's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
pub(super) struct Counters {
    pub(super) bytes_downloaded: AtomicU64,
    pub(super) resumes: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) digest_mismatches: AtomicU64,
    pub(super) cache_hits: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64, n: u64) {
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

    pub(super) fn update(&self, change: impl FnOnce(&mut FetchProgress)) {
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

    pub(super) fn add_blobs(&self, blobs: usize, known_bytes: u64) {
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
pub(super) struct BlobProgress<'a> {
    sink: &'a ProgressSink,
    /// What this blob added to `bytes_total`.
    total: u64,
    done: u64,
}

impl<'a> BlobProgress<'a> {
    pub(super) fn new(sink: &'a ProgressSink, counted_total: u64) -> Self {
        BlobProgress {
            sink,
            total: counted_total,
            done: 0,
        }
    }

    pub(super) fn set_total(&mut self, total: u64) {
        if total != self.total {
            let old = std::mem::replace(&mut self.total, total);
            self.sink
                .update(|p| p.bytes_total = (p.bytes_total + total).saturating_sub(old));
        }
    }

    pub(super) fn add(&mut self, bytes: u64) {
        self.done += bytes;
        self.sink.update(|p| p.bytes_done += bytes);
    }

    pub(super) fn reset(&mut self) {
        let done = std::mem::take(&mut self.done);
        self.sink
            .update(|p| p.bytes_done = p.bytes_done.saturating_sub(done));
    }

    pub(super) fn finish(mut self, size: u64) {
        self.set_total(size);
        let rest = size.saturating_sub(self.done);
        self.sink.update(|p| {
            p.bytes_done += rest;
            p.blobs_done += 1;
        });
    }
}
