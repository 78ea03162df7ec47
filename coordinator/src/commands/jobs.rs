//! `pictor-coordinator jobs`: a table of jobs, newest first.

use std::process::ExitCode;

use clap::Args;
use pictor_protocol::api::JobState;

use super::Target;

/// List jobs, newest first.
#[derive(Args)]
pub struct JobsCommand {
    #[command(flatten)]
    target: Target,
    /// Only jobs in this state (queued, running, succeeded, failed, cancelled, disputed).
    #[arg(long)]
    state: Option<JobState>,
}

impl JobsCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        let list = super::runtime()?.block_on(client.jobs(self.state))?;
        let now = pictor_coordinator::state::now_ms();
        println!(
            "{:<40} {:<12} {:<10} {:>8} {:>8} {:>9}  WORKERS",
            "ID", "KIND", "STATE", "ATTEMPTS", "REPLICAS", "AGE"
        );
        for job in &list.jobs {
            println!(
                "{:<40} {:<12} {:<10} {:>8} {:>8} {:>9}  {}",
                job.job_id,
                job.kind,
                job.state,
                job.attempts,
                job.replicas,
                age(now.saturating_sub(job.created_at_ms)),
                job.workers.join(",")
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
