//! `pictor-coordinator job`: one job's details.

use std::process::ExitCode;

use clap::Args;

use super::Target;

/// Show one job.
#[derive(Args)]
pub struct JobCommand {
    #[command(flatten)]
    target: Target,
    /// Print the full status as JSON (outputs and proofs included).
    #[arg(long)]
    json: bool,
    /// The job id.
    job: String,
}

impl JobCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        let status = super::runtime()?.block_on(client.job(&self.job))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("job:      {}", status.job_id);
        println!("kind:     {}", status.kind);
        println!("state:    {}", status.state);
        println!("attempts: {}", status.attempts);
        println!("replicas: {}", status.replicas);
        if !status.workers.is_empty() {
            println!("workers:  {}", status.workers.join(", "));
        }
        if let Some(error) = &status.error {
            println!("error:    {error}");
        }
        for output in &status.outputs {
            println!(
                "output:   {} ({} bytes, sha256 {})",
                output.path, output.size, output.sha256
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
