//! What the worker is doing, as the owner's status line and page and the
//! coordinator's heartbeats see it: the current activity, the jobs
//! running now, the spool's disk use. Plain values sent on `watch`
//! channels; a leaf module, so the miner, the coordinator side and the
//! status page can name them without depending on the worker loop.

use std::time::Instant;

use pictor_runtime::capabilities::progress::Progress;

/// What the worker is doing, for the owner's status line.
#[derive(Debug, Clone)]
pub struct Activity {
    /// `job <id> (<kind>)` or `mining`.
    pub label: String,
    /// The latest progress report.
    pub progress: Progress,
    /// When the activity started.
    pub since: Instant,
}

/// A job running now, for lease heartbeats and the owner's status.
#[derive(Debug, Clone)]
pub struct RunningJob {
    /// Job kind.
    pub kind: String,
    /// Which configured GPU it runs on.
    pub gpu: usize,
    /// When this attempt started.
    pub since: Instant,
    /// The latest progress report.
    pub progress: Progress,
}

/// The spool's disk use against its limit (`limits.spool_mib`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolUsage {
    /// Bytes the spool takes now (without the download cache).
    pub bytes: u64,
    /// The limit in bytes.
    pub limit: u64,
}

impl SpoolUsage {
    /// Whether no new job may be claimed (never before the first
    /// measurement, whose limit is still 0).
    pub fn full(&self) -> bool {
        self.limit > 0 && self.bytes >= self.limit
    }
}
