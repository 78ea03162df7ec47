//! `pictor-host config check`: parse and validate a `worker.json` without
//! starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use pictor_host::config::{JobSource, WorkerConfig};

/// Config subcommands.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a worker.json: exit 0 and a summary if valid, else the key, the problem and the fix.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

impl ConfigCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let ConfigCommand::Check { file } = self;
        let config = WorkerConfig::load(&file)?;
        println!("{} is valid", file.display());
        println!("  worker       {} ({})", config.worker_id, config.name);
        println!("  wallet       {}", config.wallet);
        match &config.source {
            JobSource::Spool(dir) => println!("  jobs from    local spool {}", dir.display()),
            JobSource::Coordinator { url, spool, .. } => {
                println!(
                    "  jobs from    coordinator {url} (working folder {})",
                    spool.display()
                );
                println!("  cache        {} MiB", config.cache_bytes >> 20);
            }
        }
        match &config.mining {
            Some(m) if m.enabled => println!(
                "  mining       on after {} s idle: {} ({}) on {}:{} to {}{}",
                m.idle_delay.as_secs_f64(),
                m.coin,
                m.algorithm,
                m.pool_host,
                m.pool_port,
                m.wallet,
                if m.require_nvidia {
                    ""
                } else {
                    " [require_nvidia: false]"
                }
            ),
            _ => println!("  mining       off"),
        }
        match &config.job_kinds {
            Some(kinds) => println!("  job kinds    {}", kinds.join(", ")),
            None => println!("  job kinds    all"),
        }
        println!("  jobs per GPU {}", config.jobs_per_gpu);
        println!("  GPUs         {:?}", config.gpus);
        for (kind, price) in &config.prices {
            println!("  price        {kind}: {price}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
