//! `pictor-coordinator worker list`: every worker with its status, jobs
//! and earnings (or the API's JSON).

use std::process::ExitCode;

use clap::Args;
use pictor_protocol::api::WorkerSummary;

use crate::commands::Target;

/// List workers, issued or registered.
#[derive(Args)]
pub struct ListCommand {
    #[command(flatten)]
    target: Target,
    /// Print the coordinator's JSON (a WorkerList) instead of a table.
    #[arg(long)]
    json: bool,
}

impl ListCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        let list = crate::commands::runtime()?.block_on(client.workers())?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(ExitCode::SUCCESS);
        }
        let now = pictor_coordinator::state::now_ms();
        println!(
            "{:<16} {:<24} {:<8} {:<8} {:>10} {:>6} {:>10}  ACTIVITY",
            "ID", "NAME", "ISSUED", "STATUS", "HEARTBEAT", "JOBS", "EARNINGS"
        );
        for worker in &list.workers {
            println!(
                "{:<16} {:<24} {:<8} {:<8} {:>10} {:>6} {:>10.4}  {}",
                worker.id,
                worker.name.chars().take(24).collect::<String>(),
                if worker.issued { "yes" } else { "no" },
                status(worker),
                worker
                    .last_heartbeat_ms
                    .map(|at| format!("{}s ago", now.saturating_sub(at) / 1000))
                    .unwrap_or_else(|| "never".into()),
                worker.jobs_completed,
                worker.earnings,
                activity(worker),
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn status(worker: &WorkerSummary) -> &'static str {
    match (worker.revoked, worker.online) {
        (true, _) => "revoked",
        (false, true) => "online",
        (false, false) => "offline",
    }
}

fn activity(worker: &WorkerSummary) -> String {
    if !worker.online {
        return "-".into();
    }
    if let Some(lease) = worker.leases.first() {
        return format!("job {} {:.0}%", lease.job_id, lease.fraction * 100.0);
    }
    worker.activity.clone().unwrap_or_else(|| "idle".into())
}
