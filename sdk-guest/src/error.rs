//! The error a plugin returns when a job fails.

use std::fmt;

/// Why a job failed. Mirrors the WIT `job-error` variant; the host records it
/// on the job, and tells the network whether a retry can help.
///
/// ```
/// use pictor_sdk::JobError;
/// let err = JobError::InvalidParams("`width` must be at least 1".into());
/// assert_eq!(err.to_string(), "invalid params: `width` must be at least 1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// The params are not valid for this plugin; retrying will not help.
    InvalidParams(String),
    /// An input file is missing or malformed; retrying will not help.
    InvalidInput(String),
    /// The job asks for something this plugin does not support.
    Unsupported(String),
    /// Reading an input or writing an output failed.
    Io(String),
    /// The job stopped because the host asked it to.
    Cancelled,
    /// Any other failure.
    Failed(String),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::InvalidParams(m) => write!(f, "invalid params: {m}"),
            JobError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            JobError::Unsupported(m) => write!(f, "unsupported: {m}"),
            JobError::Io(m) => write!(f, "i/o error: {m}"),
            JobError::Cancelled => f.write_str("cancelled"),
            JobError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for JobError {}

/// A failed file operation is the job's [`JobError::Io`], so plugins can use
/// `?` on `std::fs` calls. The error's kind and text are kept; the SDK's own
/// file helpers ([`Job::read_input`](crate::Job::read_input), …) say which
/// file as well.
///
/// ```
/// fn read(path: &str) -> Result<Vec<u8>, pictor_sdk::JobError> {
///     Ok(std::fs::read(path)?)
/// }
/// assert!(read("/no/such/file").unwrap_err().to_string().starts_with("i/o error: "));
/// ```
impl From<std::io::Error> for JobError {
    fn from(error: std::io::Error) -> Self {
        JobError::Io(error.to_string())
    }
}
