//! Run a plugin natively in tests, without a host.
//!
//! [`TestHost`] gives a plugin temporary `/input` and `/output` folders and
//! records what it reports, so plugin logic is tested with `cargo test`:
//!
//! ```
//! use pictor_sdk::testing::TestHost;
//!
//! let host = TestHost::new()?;
//! let job = host.job(r#"{"n": 3}"#);
//! job.progress(1.0, "done");
//! assert_eq!(host.progress_reports().len(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::JobError;
use crate::host::Backend;
use crate::job::{Job, JobInfo};

/// A stand-in for the worker host, for native tests of plugin logic.
pub struct TestHost {
    state: Arc<TestState>,
    _dirs: Option<TempDirs>,
}

/// The shared state behind a [`TestHost`] and the [`Job`]s it made.
pub(crate) struct TestState {
    pub(crate) input_dir: PathBuf,
    pub(crate) output_dir: PathBuf,
    reports: Mutex<Vec<(f32, String)>>,
    cancelled: AtomicBool,
    checkpoint: Mutex<Option<Vec<u8>>>,
    checkpoint_limit: usize,
}

/// Two temporary folders removed on drop.
struct TempDirs {
    root: PathBuf,
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl TestHost {
    /// A host with fresh, empty temporary input and output folders.
    ///
    /// ```
    /// let host = pictor_sdk::testing::TestHost::new()?;
    /// assert!(host.input_dir().is_dir() && host.output_dir().is_dir());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> std::io::Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "pictor-sdk-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(unique);
        let (input, output) = (root.join("input"), root.join("output"));
        std::fs::create_dir_all(&input)?;
        std::fs::create_dir_all(&output)?;
        let mut host = Self::with_dirs(input, output);
        host._dirs = Some(TempDirs { root });
        Ok(host)
    }

    /// A host over existing folders (left in place when the host drops).
    ///
    /// ```
    /// let dir = std::env::temp_dir();
    /// let host = pictor_sdk::testing::TestHost::with_dirs(dir.clone(), dir);
    /// ```
    pub fn with_dirs(input_dir: PathBuf, output_dir: PathBuf) -> Self {
        TestHost {
            state: Arc::new(TestState {
                input_dir,
                output_dir,
                reports: Mutex::new(Vec::new()),
                cancelled: AtomicBool::new(false),
                checkpoint: Mutex::new(None),
                checkpoint_limit: 64 << 20,
            }),
            _dirs: None,
        }
    }

    /// A job with id `test-job`, kind `test`, attempt 0, seed 0 and the
    /// given params JSON.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert_eq!(host.job("{}").info().kind, "test");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn job(&self, params: &str) -> Job {
        self.job_with(JobInfo {
            id: "test-job".into(),
            kind: "test".into(),
            params: params.into(),
            attempt: 0,
            seed: 0,
        })
    }

    /// A job with the given info.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let info = pictor_sdk::JobInfo { id: "j".into(), kind: "k".into(), params: "{}".into(), attempt: 2, seed: 7 };
    /// assert_eq!(host.job_with(info).seed(), 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn job_with(&self, info: JobInfo) -> Job {
        Job::new(info, Backend::Test(Arc::clone(&self.state)))
    }

    /// The input folder.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// std::fs::write(host.input_dir().join("x"), "1")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn input_dir(&self) -> &Path {
        &self.state.input_dir
    }

    /// The output folder.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert_eq!(std::fs::read_dir(host.output_dir())?.count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn output_dir(&self) -> &Path {
        &self.state.output_dir
    }

    /// Every progress report so far, in order.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// assert!(host.progress_reports().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn progress_reports(&self) -> Vec<(f32, String)> {
        lock(&self.state.reports).clone()
    }

    /// Makes `cancelled()` return true from now on.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// host.cancel();
    /// assert!(host.job("{}").cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn cancel(&self) {
        self.state.cancelled.store(true, Ordering::SeqCst);
    }

    /// The checkpoint saved so far, if any.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// host.job("{}").save_checkpoint(b"x").unwrap();
    /// assert_eq!(host.checkpoint(), Some(b"x".to_vec()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn checkpoint(&self) -> Option<Vec<u8>> {
        lock(&self.state.checkpoint).clone()
    }
}

impl TestState {
    pub(crate) fn report(&self, fraction: f32, message: &str) {
        lock(&self.reports).push((fraction, message.to_string()));
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub(crate) fn save_checkpoint(&self, data: &[u8]) -> Result<(), JobError> {
        if data.len() > self.checkpoint_limit {
            return Err(JobError::Failed(format!(
                "checkpoint of {} bytes is over the {}-byte quota",
                data.len(),
                self.checkpoint_limit
            )));
        }
        *lock(&self.checkpoint) = Some(data.to_vec());
        Ok(())
    }

    pub(crate) fn load_checkpoint(&self) -> Option<Vec<u8>> {
        lock(&self.checkpoint).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
