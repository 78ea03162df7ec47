//! Stopping a running job: a soft cancel the plugin can see and act on, and
//! a hard stop that the host enforces at the next epoch tick.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Why the host stopped a job before the plugin returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Interruption {
    /// The job ran past its wall-clock limit.
    #[error("timed out after {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The job was cancelled and did not stop by itself in its grace period.
    #[error("cancelled")]
    Cancelled,
    /// The worker took the GPU back for a job (mining is preempted this way).
    #[error("preempted by a job")]
    Preempted,
    /// The plugin wrote more to `/output` than its quota allows.
    #[error("output quota exceeded: {what}")]
    OutputQuota {
        /// What went over: bytes or files, with the figures.
        what: String,
    },
    /// The plugin held more of a host resource than its limit: open files,
    /// directory listings, host resources (descriptors, streams, GPU
    /// objects) or network connections.
    #[error("resource limit exceeded: {what}")]
    ResourceLimit {
        /// Which resource, with the figures.
        what: String,
    },
    /// The plugin asked for more linear memory than its limit.
    #[error(
        "memory limit exceeded: the plugin asked for {desired} bytes, the limit is {limit} bytes"
    )]
    MemoryLimit {
        /// Bytes the plugin's memory would have grown to.
        desired: u64,
        /// The job's memory limit in bytes.
        limit: u64,
    },
}

/// Shared between a running job and whoever may stop it (a clone of the
/// `Arc` is the cancel handle).
#[derive(Default)]
pub struct JobControl {
    cancel_requested: AtomicBool,
    stop: OnceLock<Interruption>,
    stopped: Notify,
}

impl JobControl {
    /// Asks the plugin to stop: `progress.cancelled()` returns true from now on.
    pub fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
    }

    /// Whether a cancel was requested.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    /// Stops the job for `reason` at the next epoch tick (or at once if it is
    /// waiting in a host call). The first reason given wins.
    pub fn stop(&self, reason: Interruption) {
        if self.stop.set(reason).is_ok() {
            self.stopped.notify_waiters();
        }
    }

    /// The reason the job was stopped, if it was.
    pub fn stop_reason(&self) -> Option<&Interruption> {
        self.stop.get()
    }

    /// Resolves once [`stop`](Self::stop) has been called.
    pub async fn stopped(&self) -> Interruption {
        loop {
            let notified = self.stopped.notified();
            if let Some(reason) = self.stop.get() {
                return reason.clone();
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_stop_reason_wins_and_wakes_waiters() {
        let control = std::sync::Arc::new(JobControl::default());
        let waiter = tokio::spawn({
            let control = control.clone();
            async move { control.stopped().await }
        });
        tokio::task::yield_now().await;
        control.stop(Interruption::Cancelled);
        control.stop(Interruption::TimedOut(Duration::from_secs(1)));
        assert_eq!(waiter.await.ok(), Some(Interruption::Cancelled));
        assert_eq!(control.stop_reason(), Some(&Interruption::Cancelled));
    }
}
