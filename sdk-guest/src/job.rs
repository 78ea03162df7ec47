//! The [`Plugin`] trait and the [`Job`] handle a plugin works through.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::JobError;
use crate::host::Backend;

/// A job plugin. Implement it once and export it with
/// [`export_plugin!`](crate::export_plugin).
///
/// ```
/// use pictor_sdk::{Job, JobError, Plugin, Summary};
///
/// struct Echo;
/// impl Plugin for Echo {
///     fn run(job: &Job) -> Result<Summary, JobError> {
///         Ok(Summary::new(format!("job {} says {}", job.id(), job.params_json())))
///     }
/// }
/// ```
pub trait Plugin {
    /// Runs one job to the end. Outputs are the files written under
    /// [`Job::output_dir`]; the returned [`Summary`] is a one-line report.
    fn run(job: &Job) -> Result<Summary, JobError>;
}

/// What the host says about a job (the WIT `job-info` record).
///
/// ```
/// let info = pictor_sdk::JobInfo {
///     id: "job-1".into(),
///     kind: "hello".into(),
///     params: r#"{"suffix": "!"}"#.into(),
///     attempt: 0,
///     seed: 42,
/// };
/// assert_eq!(info.kind, "hello");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The job kind.
    pub kind: String,
    /// Params as JSON text; parse them with [`Job::params`].
    pub params: String,
    /// 0 on the first try, then incremented on each retry or resume.
    pub attempt: u32,
    /// Seed for everything random in the job.
    pub seed: u64,
}

/// A successful job's report (the WIT `job-summary` record).
///
/// ```
/// let s = pictor_sdk::Summary::new("rendered 1 frame").metric("samples-per-second", 1.5e6);
/// assert_eq!(s.metrics, vec![("samples-per-second".to_string(), 1.5e6)]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// One human-readable line.
    pub message: String,
    /// Named figures measured by the plugin.
    pub metrics: Vec<(String, f64)>,
}

impl Summary {
    /// A summary with a message and no metrics.
    ///
    /// ```
    /// assert_eq!(pictor_sdk::Summary::new("done").message, "done");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Summary {
            message: message.into(),
            metrics: Vec::new(),
        }
    }

    /// Adds a metric and returns the summary (builder style).
    ///
    /// ```
    /// let s = pictor_sdk::Summary::new("done").metric("files", 3.0);
    /// assert_eq!(s.metrics.len(), 1);
    /// ```
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.push((name.into(), value));
        self
    }
}

/// The running job: its info, its folders, and the host's progress,
/// cancellation and checkpoint services.
///
/// Inside the sandbox the folders are `/input` (read-only) and `/output`;
/// under [`testing::TestHost`](crate::testing::TestHost) they are temporary
/// folders on the build machine.
pub struct Job {
    info: JobInfo,
    backend: Backend,
}

impl Job {
    pub(crate) fn new(info: JobInfo, backend: Backend) -> Self {
        Job { info, backend }
    }

    /// Everything the host said about the job.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let job = host.job("{}");
    /// assert_eq!(job.info().attempt, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn info(&self) -> &JobInfo {
        &self.info
    }

    /// The job's id.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert_eq!(host.job("{}").id(), "test-job");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The job's seed: derive every random choice from it.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let seed = host.job("{}").seed();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn seed(&self) -> u64 {
        self.info.seed
    }

    /// The params exactly as sent, as JSON text.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert_eq!(host.job(r#"{"a":1}"#).params_json(), r#"{"a":1}"#);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn params_json(&self) -> &str {
        &self.info.params
    }

    /// Parses the params into `T` with serde. A parse failure becomes
    /// [`JobError::InvalidParams`] naming the field and position. Use
    /// `#[serde(deny_unknown_fields)]` so a typo in a param is an error, and
    /// `#[serde(default)]` for optional ones.
    ///
    /// ```
    /// #[derive(Debug, serde::Deserialize)]
    /// #[serde(deny_unknown_fields)]
    /// struct Params { width: u32, #[serde(default)] suffix: String }
    ///
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let p: Params = host.job(r#"{"width": 64}"#).params()?;
    /// assert_eq!(p.width, 64);
    ///
    /// let err = host.job(r#"{"widht": 64}"#).params::<Params>().unwrap_err();
    /// assert!(err.to_string().contains("unknown field `widht`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        let text = if self.info.params.trim().is_empty() {
            "{}"
        } else {
            &self.info.params
        };
        serde_json::from_str(text).map_err(|e| JobError::InvalidParams(e.to_string()))
    }

    /// The folder holding the job's inputs (`/input` in the sandbox).
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert!(host.job("{}").input_dir().is_dir());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn input_dir(&self) -> &Path {
        self.backend.input_dir()
    }

    /// The folder the job writes its outputs to (`/output` in the sandbox).
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert!(host.job("{}").output_dir().is_dir());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn output_dir(&self) -> &Path {
        self.backend.output_dir()
    }

    /// Reports progress: a fraction in [0, 1] and a short message.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// host.job("{}").progress(0.5, "half way");
    /// assert_eq!(host.progress_reports(), vec![(0.5, "half way".to_string())]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn progress(&self, fraction: f32, message: impl AsRef<str>) {
        self.backend.report(fraction, message.as_ref());
    }

    /// True once the host wants the job to stop.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let job = host.job("{}");
    /// assert!(!job.cancelled());
    /// host.cancel();
    /// assert!(job.cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.backend.cancelled()
    }

    /// `Err(JobError::Cancelled)` once the host wants the job to stop, so a
    /// loop can say `job.check_cancelled()?;` between units of work.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let job = host.job("{}");
    /// host.cancel();
    /// assert_eq!(job.check_cancelled(), Err(pictor_sdk::JobError::Cancelled));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Saves a checkpoint (replacing the last one). Once this returns `Ok`,
    /// a later attempt of the job gets these bytes from
    /// [`load_checkpoint`](Self::load_checkpoint).
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let job = host.job("{}");
    /// job.save_checkpoint(b"step=10")?;
    /// assert_eq!(job.load_checkpoint(), Some(b"step=10".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_checkpoint(&self, data: &[u8]) -> Result<(), JobError> {
        self.backend.save_checkpoint(data)
    }

    /// The last checkpoint saved by this job (by this or an earlier
    /// attempt), or `None` on a fresh start.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert_eq!(host.job("{}").load_checkpoint(), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn load_checkpoint(&self) -> Option<Vec<u8>> {
        self.backend.load_checkpoint()
    }
}
