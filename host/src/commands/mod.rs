//! One module per subcommand; each is a clap struct with `execute()`.

mod config;
mod exec;
mod gpu;
mod plugin;
mod proof;
mod run;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pictor_runtime::{Runtime, RuntimeConfig};

use pictor_cli::logging::LogFormat;

/// Exit code of a job that ran and failed.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Exit code of bad input: a missing file, an invalid spec or plugin.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `run` when the coordinator revoked the worker's credential.
pub const EXIT_REVOKED: u8 = 3;

/// Pictor worker node: runs GPU compute jobs as sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "pictor-host", version, about)]
pub struct Cli {
    /// Log format on stderr (filter with PICTOR_LOG, e.g. `debug` or `warn,plugin=info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the worker: take jobs from its spool (or coordinator) until stopped.
    Run(run::RunCommand),
    /// Queue a job in a local spool.
    Submit(submit::SubmitCommand),
    /// Cancel a queued or running job in a local spool.
    Cancel(submit::CancelCommand),
    /// Run one job locally with a plugin, and print its outputs.
    Exec(exec::ExecCommand),
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// GPU adapters and telemetry.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// Work with worker.json.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Check a signed result proof (exit 1 if invalid).
    VerifyProof(proof::VerifyProofCommand),
}

impl Command {
    /// Runs the subcommand; `Err` is a usage error (exit code 2).
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Run(c) => c.execute(),
            Command::Submit(c) => c.execute(),
            Command::Cancel(c) => c.execute(),
            Command::Exec(c) => c.execute(),
            Command::Plugin(c) => c.execute(),
            Command::Gpu(c) => c.execute(),
            Command::Config(c) => c.execute(),
            Command::VerifyProof(c) => c.execute(),
        }
    }
}

/// Where compiled components are cached.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// Folder of the compiled-component cache [default: ~/.cache/pictor/components].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the plugin every time; do not read or write the cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    /// Starts the runtime with this cache choice.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(RuntimeConfig::default_cache_dir)
        };
        Ok(Runtime::new(&RuntimeConfig { cache_dir })?)
    }
}

/// Reads a plugin file, naming it in the error.
pub fn read_plugin(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read plugin {}: {e}", path.display()))
}

pub use pictor_cli::wait_for_signal;
