//! `pictor-host submit` and `cancel`: queue a job in a local spool, or ask
//! the worker to cancel one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use pictor_host::spool::Spool;

/// Queue a job spec in a spool folder (atomically: it appears whole or not at all).
#[derive(Args)]
pub struct SubmitCommand {
    /// The spool folder (the `coordinator.spool` of worker.json).
    #[arg(long, value_name = "DIR")]
    spool: PathBuf,
    /// Set the job's plugin to this component (path and sha256).
    #[arg(long, value_name = "P.wasm")]
    plugin: Option<PathBuf>,
    /// The job spec (see docs/job-spec.md).
    job: PathBuf,
}

impl SubmitCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let spool = Spool::open(&self.spool)?;
        let queued = spool.submit(&self.job, self.plugin.as_deref())?;
        println!("queued {}", queued.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// Ask the worker to cancel a queued or running job in a spool.
#[derive(Args)]
pub struct CancelCommand {
    /// The spool folder.
    #[arg(long, value_name = "DIR")]
    spool: PathBuf,
    /// The job's id.
    job: String,
}

impl CancelCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let spool = Spool::open(&self.spool)?;
        anyhow::ensure!(
            spool.cancel(&self.job)?,
            "no job `{}` is queued or running in {}",
            self.job,
            self.spool.display()
        );
        println!(
            "cancel requested for {} (the plugin is asked to stop, and stopped 10 s later)",
            self.job
        );
        Ok(ExitCode::SUCCESS)
    }
}
