//! How a job ended: what the owner sees, what is reported to the network.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bindings::JobError;
use crate::capabilities::progress::Progress;
use crate::control::Interruption;
use crate::jobs::sandbox::OutputFile;
use pictor_protocol::digest::Sha256Digest;

/// Why a job failed, by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The plugin said its params are invalid.
    InvalidParams,
    /// The plugin said an input is missing or malformed.
    InvalidInput,
    /// The plugin does not support what the job asks.
    Unsupported,
    /// The plugin hit an I/O error.
    Io,
    /// The job was cancelled.
    Cancelled,
    /// The worker stopped it to run a job (mining).
    Preempted,
    /// The plugin reported another failure.
    Failed,
    /// The job ran past its time limit.
    TimedOut,
    /// The plugin asked for more memory than its limit.
    MemoryLimit,
    /// The plugin wrote more than its output quota.
    OutputQuota,
    /// The plugin held more open files, listings, host resources or
    /// connections than its limits.
    ResourceLimit,
    /// The plugin trapped (panic, stack overflow, unreachable, …).
    Trap,
    /// The plugin left something other than regular files in `/output`.
    BadOutput,
    /// The plugin could not be instantiated.
    Instantiate,
    /// The host could not set up or read the job's folders.
    Sandbox,
    /// A GPU submission ran past the job's quota.
    GpuTimeout,
    /// The GPU device was lost during the job.
    GpuLost,
    /// Earlier attempts stopped the worker itself (it was killed, crashed
    /// or hung while they ran), too often to try again here.
    WorkerCrash,
}

/// A failed job's cause, one-line reason and optional detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFailure {
    /// The cause.
    pub kind: FailureKind,
    /// One line, e.g. `timed out after 2 s`.
    pub message: String,
    /// Whether running the same job again could succeed.
    pub retryable: bool,
    /// More lines: a wasm backtrace, the end of the plugin's stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl JobFailure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            FailureKind::Cancelled
                | FailureKind::Preempted
                | FailureKind::Io
                | FailureKind::Sandbox
                | FailureKind::GpuLost
        );
        JobFailure {
            kind,
            message: message.into(),
            retryable,
            detail: None,
        }
    }

    /// Adds detail lines.
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail.filter(|d| !d.trim().is_empty());
        self
    }

    /// The failure for an error the plugin returned.
    pub fn from_plugin(error: JobError) -> Self {
        let (kind, message) = match error {
            JobError::InvalidParams(m) => {
                (FailureKind::InvalidParams, format!("invalid params: {m}"))
            }
            JobError::InvalidInput(m) => (FailureKind::InvalidInput, format!("invalid input: {m}")),
            JobError::Unsupported(m) => (FailureKind::Unsupported, format!("unsupported: {m}")),
            JobError::Io(m) => (FailureKind::Io, format!("i/o error: {m}")),
            JobError::Cancelled => (FailureKind::Cancelled, "cancelled".to_string()),
            JobError::Failed(m) => (FailureKind::Failed, m),
        };
        Self::new(kind, message)
    }

    /// The failure for a host interruption.
    pub fn from_interruption(reason: &Interruption) -> Self {
        let kind = match reason {
            Interruption::TimedOut(_) => FailureKind::TimedOut,
            Interruption::Cancelled => FailureKind::Cancelled,
            Interruption::Preempted => FailureKind::Preempted,
            Interruption::OutputQuota { .. } => FailureKind::OutputQuota,
            Interruption::ResourceLimit { .. } => FailureKind::ResourceLimit,
            Interruption::MemoryLimit { .. } => FailureKind::MemoryLimit,
        };
        Self::new(kind, reason.to_string())
    }
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A successful job's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSuccess {
    /// The plugin's one-line message.
    pub message: String,
    /// The plugin's metrics by name.
    pub metrics: BTreeMap<String, f64>,
}

/// Everything known about one run of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    /// The job's id.
    pub job_id: String,
    /// The job's kind.
    pub kind: String,
    /// The plugin's sha256.
    pub plugin: Sha256Digest,
    /// Which attempt this was.
    pub attempt: u32,
    /// `succeeded` or `failed`.
    pub status: &'static str,
    /// Present when the job succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<JobSuccess>,
    /// Present when the job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// Wall-clock time of the run (instantiate to return), in seconds.
    pub duration_s: f64,
    /// Output files, hashed (also listed for failed jobs, as partial results).
    pub outputs: Vec<OutputFile>,
    /// The last progress report.
    pub progress: ProgressReport,
    /// Checkpoints the plugin saved during this run.
    pub checkpoints_saved: u64,
    /// The GPU adapter the job ran on, if it used the GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// A progress report, serializable.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgressReport {
    /// Fraction done.
    pub fraction: f32,
    /// The plugin's message.
    pub message: String,
}

impl From<Progress> for ProgressReport {
    fn from(p: Progress) -> Self {
        ProgressReport {
            fraction: p.fraction,
            message: p.message,
        }
    }
}

impl JobOutcome {
    /// The outcome of a job that failed before it ran: no time, no
    /// outputs, no progress.
    pub fn not_run(
        job_id: String,
        kind: String,
        plugin: Sha256Digest,
        attempt: u32,
        failure: JobFailure,
    ) -> Self {
        JobOutcome {
            job_id,
            kind,
            plugin,
            attempt,
            status: "failed",
            success: None,
            failure: Some(failure),
            duration_s: 0.0,
            outputs: Vec::new(),
            progress: ProgressReport::default(),
            checkpoints_saved: 0,
            adapter: None,
        }
    }

    /// Whether the job succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}
