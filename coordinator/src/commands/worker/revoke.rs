//! `pictor-coordinator worker revoke`: revoke an issued worker's credential.

use std::process::ExitCode;

use clap::Args;

use crate::commands::Target;

/// Revoke an issued worker's credential.
#[derive(Args)]
pub struct RevokeCommand {
    #[command(flatten)]
    target: Target,
    /// The worker id (wkr-…).
    id: String,
}

impl RevokeCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        let summary = crate::commands::runtime()?.block_on(client.revoke_worker(&self.id))?;
        println!(
            "revoked worker {}: its host is refused from its next request (its leases went back to the queue)",
            summary.id
        );
        Ok(ExitCode::SUCCESS)
    }
}
