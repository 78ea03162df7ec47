//! `pictor-host run`: the worker. Reads worker.json, says who it is and
//! what it has, then runs jobs from its source until stopped (Ctrl-C or
//! SIGTERM: the running job is asked to stop and checkpoint, the journal is
//! flushed, exit 0). With `status.listen` (or `--status-listen`) it also
//! serves the owner's status page and metrics. If the coordinator revokes
//! the worker's credential it stops the same way, keeps every result, and
//! exits with [`EXIT_REVOKED`](super::EXIT_REVOKED).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use pictor_host::config::{self as worker_config, MiningConfig, WorkerConfig};
use pictor_host::node::{Node, NodeEvent, NodeOptions, StopCause};
use pictor_host::status::{self, MiningMode};

/// Run the worker.
#[derive(Args)]
pub struct RunCommand {
    /// The worker's config file.
    #[arg(long, value_name = "worker.json")]
    config: PathBuf,
    /// Exit once no job is queued (for demos and scripts); without it, serve until stopped.
    #[arg(long)]
    until_idle: bool,
    /// Serve the status page and /metrics on this loopback address, e.g.
    /// 127.0.0.1:9187 (port 0: any free port); overrides `status.listen`.
    #[arg(long, value_name = "ADDR")]
    status_listen: Option<String>,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let config = WorkerConfig::load(&self.config)?;
        pictor_runtime::engine::raise_open_file_limit();
        let status_listen = match &self.status_listen {
            Some(text) => Some(worker_config::status_listen("--status-listen", text)?),
            None => config.status_listen,
        };
        // Bound first: a taken port is an error before anything starts.
        let status_listener = status_listen.map(status::server::bind).transpose()?;
        let worker_id = config.worker_id.clone();
        eprintln!("Worker {worker_id} ({}) · Connecting…", config.name);
        let say = {
            let (worker_id, mining) = (worker_id.clone(), config.mining.clone());
            move |event: NodeEvent<'_>| tell(&worker_id, mining.as_ref(), event)
        };
        let options = NodeOptions {
            status_listener,
            until_idle: self.until_idle,
            status_line: std::io::stderr().is_terminal(),
            ..NodeOptions::new(config)
        };
        let report = Node::build(options, Arc::new(say))?.run()?;
        let summary = report.summary;
        eprintln!(
            "Worker stopped: {} job(s) finished ({} failed), {} interrupted (they resume on the next start)",
            summary.finished, summary.failed, summary.interrupted
        );
        if report.unreported > 0 {
            eprintln!(
                "{} result(s) not yet reported to the coordinator: they are kept and reported on the next start",
                report.unreported
            );
        }
        if let Some(message) = report.revoked {
            let error = format!(
                "worker {worker_id}: the coordinator revoked this worker's credential ({message}); import a new worker.json from the portal"
            );
            tracing::error!(worker = %worker_id, %message, "credential revoked");
            eprintln!("error: {error}");
            return Ok(ExitCode::from(super::EXIT_REVOKED));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What the owner reads on stderr (and, for the status page's address, on
/// stdout, where scripts look for it) as the node starts, runs and stops.
fn tell(worker_id: &str, mining: Option<&MiningConfig>, event: NodeEvent<'_>) {
    match event {
        NodeEvent::SpoolOpened {
            spool,
            coordinator: None,
        } => eprintln!(
            "Worker {worker_id} · Connected (local spool {})",
            spool.display()
        ),
        NodeEvent::SpoolOpened {
            spool,
            coordinator: Some(url),
        } => eprintln!(
            "Worker {worker_id} · coordinator {url} (working folder {})",
            spool.display()
        ),
        NodeEvent::Adapters([]) => {
            eprintln!("GPUs: none found (GPU jobs will fail with `no GPU`)")
        }
        NodeEvent::Adapters(adapters) => {
            for (i, adapter) in adapters.iter().enumerate() {
                eprintln!(
                    "GPU [{i}] {} ({}, {})",
                    adapter.name, adapter.backend, adapter.device_type
                );
            }
        }
        NodeEvent::DownloadingMiner(digest) => {
            eprintln!("Mining: downloading the mining plugin {digest} from the coordinator…")
        }
        NodeEvent::Mining(MiningMode::Off(reason)) => eprintln!("Mining: off ({reason})"),
        NodeEvent::Mining(MiningMode::On { idle_delay }) => {
            eprintln!(
                "Mining: on after {} s idle: {} on {}:{}",
                idle_delay.as_secs_f64(),
                mining.map_or("", |m| m.coin.as_str()),
                mining.map_or("", |m| m.pool_host.as_str()),
                mining.map_or(0, |m| m.pool_port)
            );
            if mining.is_some_and(|m| !m.require_nvidia) {
                eprintln!(
                    "WARNING: mining.require_nvidia is false: mining on a non-NVIDIA adapter (for testing only)"
                );
            }
        }
        NodeEvent::Scheduling { gpus, jobs_per_gpu } => {
            eprintln!("Scheduling: {gpus} GPU slot group(s) × {jobs_per_gpu} job(s) per GPU")
        }
        NodeEvent::StatusPage(url) => {
            println!("Status page: {url}");
            let _ = std::io::stdout().flush();
        }
        NodeEvent::Connected { url } => eprintln!("Worker {worker_id} · Connected to {url}"),
        NodeEvent::Stopping(StopCause::Signal) => {
            eprintln!("\nstopping: the running job is asked to stop and checkpoint")
        }
        NodeEvent::Stopping(StopCause::Revoked(line)) => {
            eprintln!("\n{line}: stopping (no new jobs, the miner stops, results are kept)")
        }
        _ => {}
    }
}
