//! Every bound the coordinator puts on its callers, in one place: how long
//! a request, a header, an idle connection or a stalled transfer may take,
//! how many long polls a worker may hold, how many unreferenced bytes a
//! caller may upload, how long a lease may be hoarded. Each has a default
//! here, a `serve` flag where an operator would want another value, and a
//! clear refusal (`docs/security.md`, "Coordinator side", lists them with
//! their tests).
//!
//! - [`polls`] — the per-worker cap on long polls in flight;
//! - [`quota`] — who owns an upload, and the bytes in flight per owner;
//! - [`pace`] — stall and minimum-rate bounds on blob bodies;
//! - [`stall`] — a connection whose writes make no progress is closed.

pub mod pace;
pub mod polls;
pub mod quota;
pub mod stall;

use std::time::Duration;

/// The bounds (see the module docs). [`Limits::default`] is what `serve`
/// uses without flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest a request may take until its reply's headers, except the
    /// lease long poll (which gets `max_wait` on top) and a blob upload
    /// (bounded by [`Limits::stall_timeout`] and
    /// [`Limits::min_transfer_rate`] instead): 503 `timed_out`.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers; also how long
    /// an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// A blob body that moves no byte for this long is cut, and a
    /// connection whose writes make no progress for this long is closed.
    pub stall_timeout: Duration,
    /// Slowest average rate of a blob transfer, bytes per second, measured
    /// after a first [`Limits::stall_timeout`] of grace.
    pub min_transfer_rate: u64,
    /// Long polls one worker id may have in flight at once; more are
    /// answered 429 `too_many_requests` at once.
    pub max_polls_per_worker: u32,
    /// Bytes of blobs the creator token may hold that no job names yet.
    pub creator_quota: u64,
    /// Bytes of blobs each worker (an issued worker, or the farm token as
    /// a whole) may hold that no accepted result names yet.
    pub worker_quota: u64,
    /// An unreferenced blob (named by no job and no accepted result) is
    /// deleted once it is this old.
    pub blob_grace: Duration,
    /// How often the background task looks for such blobs.
    pub blob_gc_interval: Duration,
    /// A job's `limits.timeout_s` when it gives none (the host's default).
    pub default_job_timeout: Duration,
    /// Added to a job's timeout to make its lease's deadline: downloads,
    /// uploads and a restart of the worker fit in it. A lease is expired at
    /// its deadline however often it is extended.
    pub deadline_margin: Duration,
}

/// Default of [`Limits::request_timeout`], seconds.
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;
/// Default of [`Limits::header_timeout`], seconds.
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 30;
/// Default of [`Limits::stall_timeout`], seconds.
pub const DEFAULT_STALL_TIMEOUT_S: u64 = 60;
/// Default of [`Limits::min_transfer_rate`], KiB per second.
pub const DEFAULT_MIN_TRANSFER_KIB_S: u64 = 16;
/// Default of [`Limits::max_polls_per_worker`].
pub const DEFAULT_MAX_POLLS_PER_WORKER: u32 = 2;
/// Default of [`Limits::creator_quota`], MiB (256 GiB).
pub const DEFAULT_CREATOR_QUOTA_MIB: u64 = 256 << 10;
/// Default of [`Limits::worker_quota`], MiB (32 GiB).
pub const DEFAULT_WORKER_QUOTA_MIB: u64 = 32 << 10;
/// Default of [`Limits::blob_grace`], seconds (a day).
pub const DEFAULT_BLOB_GRACE_S: u64 = 24 * 3600;
/// Default of [`Limits::default_job_timeout`], seconds (the host's).
pub const DEFAULT_JOB_TIMEOUT_S: u64 = 3600;
/// Default of [`Limits::deadline_margin`], seconds.
pub const DEFAULT_DEADLINE_MARGIN_S: u64 = 1800;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_S),
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_S),
            min_transfer_rate: DEFAULT_MIN_TRANSFER_KIB_S << 10,
            max_polls_per_worker: DEFAULT_MAX_POLLS_PER_WORKER,
            creator_quota: DEFAULT_CREATOR_QUOTA_MIB << 20,
            worker_quota: DEFAULT_WORKER_QUOTA_MIB << 20,
            blob_grace: Duration::from_secs(DEFAULT_BLOB_GRACE_S),
            blob_gc_interval: gc_interval(Duration::from_secs(DEFAULT_BLOB_GRACE_S)),
            default_job_timeout: Duration::from_secs(DEFAULT_JOB_TIMEOUT_S),
            deadline_margin: Duration::from_secs(DEFAULT_DEADLINE_MARGIN_S),
        }
    }
}

/// How often to look for unreferenced blobs with this grace period: a
/// quarter of it, between 1 s and 10 min.
pub fn gc_interval(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Milliseconds in `d`, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
