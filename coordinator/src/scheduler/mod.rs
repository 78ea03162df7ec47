//! The rules: who gets which job, when a lease ends, when a job is done.
//!
//! Every function runs inside one store transaction ([`Tx`]) and takes the
//! current time, so the rules are deterministic and tested without a
//! server. In short:
//!
//! - **Leasing** gives a worker the oldest open job whose kind it accepts,
//!   that it is not skipped for (too many consecutive failures of that
//!   kind), of which it holds or completed no replica yet and which it has
//!   not refused (a signed, non-retryable failure), while it holds fewer
//!   active leases than its registered `slots`. Lease ids are
//!   `<job id>.<attempt>`.
//! - **Expiry**: an active lease not extended (heartbeat, progress) within
//!   the TTL expires, and so does one past its **deadline** (granted + the
//!   job's timeout + a margin) however often it was extended; its job is
//!   requeued, or fails once `max_attempts` leases ended unsuccessfully
//!   (failed or expired). A worker that shows up again with an expired
//!   lease of a job still open gets it back, unless its deadline passed.
//! - **Completion** checks the signed proof against the job and the
//!   worker's registered key and needs every output uploaded. A job
//!   succeeds when `replicas` distinct workers completed it with the same
//!   output digests, and is `disputed` when they differ. A late complete (of
//!   an expired lease) is accepted while the job is still open.
//! - **Failure** needs a signed proof once the job ran (only a `download`
//!   or `invalid-lease` report may come without one, and then counts as
//!   retryable). It requeues the replica while attempts remain, and counts
//!   consecutive failures per (worker, kind). A non-retryable failure fails
//!   the job only once as many distinct workers as the job has `replicas`
//!   reported one (so with one replica, at once); until then the other
//!   replicas go on and the failed one goes to another worker.
//! - Complete and fail are idempotent: the same report again is answered
//!   `duplicate: true`, a different one for a finished lease is a conflict.
//!
//! One file per concern: `workers` (registration, being seen), `leasing`
//! (leases granted, extended and expired; heartbeats, progress), `reports`
//! (complete and fail, with their proofs), `jobs` (submission, cancel,
//! status). Every public rule is re-exported here.

mod jobs;
mod leasing;
mod reports;
mod workers;

pub use jobs::*;
pub use leasing::*;
pub use reports::*;
pub use workers::*;

use crate::store::{JobRecord, LeaseRecord, LeaseRecordState};

/// Longest job id accepted, so that lease ids (`<job id>.<attempt>`) stay
/// valid ids (≤ 128 characters).
pub const MAX_JOB_ID_LEN: usize = 100;

/// Longest job timeout accepted in `limits.timeout_s`, in seconds (the
/// host's bound, `docs/job-spec.md`).
pub const MAX_JOB_TIMEOUT_S: f64 = 604_800.0;

/// Timing and policy knobs of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A lease lives this long after it is granted or last extended.
    pub lease_ttl_ms: u64,
    /// A worker stops getting a kind after this many consecutive failures on it.
    pub skip_after_failures: u32,
    /// A job's run time limit when its `limits.timeout_s` gives none.
    pub default_job_timeout_ms: u64,
    /// Added to the job's timeout to make a lease's deadline.
    pub deadline_margin_ms: u64,
}

impl Rules {
    /// The rules with `lease_ttl_ms`, skipping after 3 failures, and the
    /// default deadline settings ([`crate::limits::Limits::default`]).
    pub fn with_ttl(lease_ttl_ms: u64) -> Self {
        let limits = crate::limits::Limits::default();
        Rules {
            lease_ttl_ms,
            skip_after_failures: 3,
            default_job_timeout_ms: crate::limits::millis(limits.default_job_timeout),
            deadline_margin_ms: crate::limits::millis(limits.deadline_margin),
        }
    }

    /// The deadline of a lease of `job` granted at `now_ms`.
    fn deadline(&self, job: &JobRecord, now_ms: u64) -> u64 {
        now_ms
            .saturating_add(job_timeout_ms(&job.limits).unwrap_or(self.default_job_timeout_ms))
            .saturating_add(self.deadline_margin_ms)
    }

    /// When a lease extended at `now_ms` expires: a TTL from now, never
    /// past its deadline.
    fn expiry(&self, lease: &LeaseRecord, now_ms: u64) -> u64 {
        let by_ttl = now_ms.saturating_add(self.lease_ttl_ms);
        lease
            .deadline_at_ms
            .map_or(by_ttl, |deadline| by_ttl.min(deadline))
    }
}

/// A job's `limits.timeout_s` in milliseconds, if it gives a valid one.
pub(super) fn job_timeout_ms(limits: &serde_json::Value) -> Option<u64> {
    let seconds = limits.get("timeout_s")?.as_f64()?;
    (seconds.is_finite() && seconds > 0.0 && seconds <= MAX_JOB_TIMEOUT_S)
        .then(|| (seconds * 1000.0).ceil() as u64)
}

/// Whether `lease` holds one of its job's replicas (running or done).
pub(super) fn holds_replica(lease: &LeaseRecord) -> bool {
    matches!(
        lease.state,
        LeaseRecordState::Active | LeaseRecordState::Completed
    )
}

/// Whether `lease` ended in a signed, non-retryable failure: its worker
/// says the job cannot run there.
pub(super) fn refused(lease: &LeaseRecord) -> bool {
    lease.state == LeaseRecordState::Failed
        && lease
            .failure
            .as_ref()
            .is_some_and(|f| !f.retryable && f.proof.is_some())
}

/// Whether `worker_id` may take a replica of a job wanting `replicas`,
/// whose leases are `leases`: a replica is free, and the worker holds,
/// completed or refused none.
pub(super) fn may_take(leases: &[LeaseRecord], replicas: u32, worker_id: &str) -> bool {
    leases.iter().filter(|l| holds_replica(l)).count() < replicas as usize
        && !leases
            .iter()
            .any(|l| l.worker_id == worker_id && (holds_replica(l) || refused(l)))
}

pub(super) fn expires_in_s(lease: &LeaseRecord, now_ms: u64) -> u32 {
    u32::try_from(lease.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_protocol::Sha256Digest;
    use pictor_protocol::proof::OutputDigest;

    fn outputs(items: &[(&str, &[u8])]) -> Vec<OutputDigest> {
        items
            .iter()
            .map(|(p, b)| OutputDigest {
                path: p.to_string(),
                size: b.len() as u64,
                sha256: Sha256Digest::of(b),
            })
            .collect()
    }

    #[test]
    fn disagreement_names_each_differing_output() {
        let a = outputs(&[("x.png", b"1"), ("y.txt", b"2")]);
        let b = outputs(&[("x.png", b"1"), ("y.txt", b"3"), ("z", b"4")]);
        assert_eq!(disagreement(&[("w1", &a), ("w2", &a)]), None);
        let message = disagreement(&[("w1", &a), ("w2", &b)]).unwrap();
        assert!(message.contains("`y.txt` (w1: "), "{message}");
        assert!(message.contains("`z` (w1: absent, w2: "), "{message}");
        assert!(!message.contains("x.png"), "{message}");
    }

    #[test]
    fn names_must_stay_inside() {
        for good in ["a", "a/b.txt", "scene/x.glb"] {
            assert!(relative_name(good), "{good}");
        }
        for bad in ["", "/abs", "../x", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(!relative_name(bad), "{bad}");
        }
    }
}
