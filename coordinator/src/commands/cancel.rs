//! `pictor-coordinator cancel`: cancel a job; its workers are told to stop.

use std::process::ExitCode;

use clap::Args;

use super::Target;

/// Cancel a job.
#[derive(Args)]
pub struct CancelCommand {
    #[command(flatten)]
    target: Target,
    /// The job id.
    job: String,
}

impl CancelCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        let status = super::runtime()?.block_on(client.cancel(&self.job))?;
        println!(
            "{}: {} (workers running it are told at their next heartbeat)",
            status.job_id, status.state
        );
        Ok(ExitCode::SUCCESS)
    }
}
