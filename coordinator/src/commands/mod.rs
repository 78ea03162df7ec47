//! One module per subcommand; each is a clap struct with `execute()`.

mod cancel;
mod job;
mod jobs;
mod results;
mod serve;
mod submit;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pictor_coordinator::client::Client;
use pictor_coordinator::datadir::DataDir;

use pictor_cli::logging::LogFormat;

/// Exit code of a job that ended in another state than `succeeded`.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Exit code of an error: bad arguments, a missing file, a refused request.
pub const EXIT_ERROR: u8 = 2;

/// Reference coordinator of the Pictor GPU compute network: leases jobs to
/// pictor-host workers, stores blobs, checks signed result proofs.
#[derive(Parser)]
#[command(name = "pictor-coordinator", version, about)]
pub struct Cli {
    /// Log format on stderr (filter with PICTOR_LOG, e.g. `debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the protocol from a data folder (created on first start).
    Serve(serve::ServeCommand),
    /// Upload a job's plugin and inputs and submit it.
    Submit(submit::SubmitCommand),
    /// List jobs, newest first.
    Jobs(jobs::JobsCommand),
    /// Show one job.
    Job(job::JobCommand),
    /// Cancel a job.
    Cancel(cancel::CancelCommand),
    /// Download a succeeded job's outputs and proofs.
    Results(results::ResultsCommand),
    /// Issue, list and revoke workers (each with its own credential).
    Worker(worker::WorkerCommand),
}

impl Command {
    /// Runs the subcommand.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(c) => c.execute(),
            Command::Submit(c) => c.execute(),
            Command::Jobs(c) => c.execute(),
            Command::Job(c) => c.execute(),
            Command::Cancel(c) => c.execute(),
            Command::Results(c) => c.execute(),
            Command::Worker(c) => c.execute(),
        }
    }
}

/// Which coordinator a creator command talks to.
#[derive(clap::Args)]
pub struct Target {
    /// The coordinator's data folder: its URL (coordinator.json) and creator
    /// token are read from there.
    #[arg(long, value_name = "DIR", required_unless_present_all = ["url", "token"])]
    data: Option<PathBuf>,
    /// The coordinator's URL [default: from DIR/coordinator.json].
    #[arg(long)]
    url: Option<String>,
    /// The creator token [default: DIR/creator.token].
    #[arg(long)]
    token: Option<String>,
}

impl Target {
    /// A client for the chosen coordinator.
    pub fn client(&self) -> anyhow::Result<Client> {
        let data = self.data.as_deref().map(DataDir::new);
        let url = match (&self.url, &data) {
            (Some(url), _) => url.clone(),
            (None, Some(data)) => {
                data.read_endpoint()
                    .with_context(|| format!("no running coordinator recorded in {}; start `pictor-coordinator serve --data {}` or pass --url", data.root().display(), data.root().display()))?
                    .url
            }
            (None, None) => anyhow::bail!("give --data DIR or --url URL"),
        };
        let token = match (&self.token, &data) {
            (Some(token), _) => token.clone(),
            (None, Some(data)) => DataDir::read_token(&data.creator_token_file())?,
            (None, None) => anyhow::bail!("give --data DIR or --token TOKEN"),
        };
        Ok(Client::new(&url, &token)?)
    }
}

/// A current-thread runtime for a client command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub use pictor_cli::wait_for_signal;
