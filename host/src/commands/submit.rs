//! `pictor-host submit`: queue a job in a local spool.

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
