//! `pictor-coordinator worker …`: issue, list and revoke workers (one file
//! per subcommand).

mod create;
mod list;
mod revoke;

use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Issue, list and revoke workers.
#[derive(Args)]
pub struct WorkerCommand {
    #[command(subcommand)]
    command: WorkerSubcommand,
}

#[derive(Subcommand)]
enum WorkerSubcommand {
    /// Issue a worker: its own id and credential, and its worker.json.
    Create(create::CreateCommand),
    /// List workers, issued or registered, with status and earnings.
    List(list::ListCommand),
    /// Revoke an issued worker's credential (its host stops with a message).
    Revoke(revoke::RevokeCommand),
}

impl WorkerCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self.command {
            WorkerSubcommand::Create(c) => c.execute(),
            WorkerSubcommand::List(c) => c.execute(),
            WorkerSubcommand::Revoke(c) => c.execute(),
        }
    }
}
