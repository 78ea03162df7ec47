//! `pictor-host run`: the worker. Reads worker.json, says who it is and
//! what it has, then runs jobs from its source until stopped (Ctrl-C or
//! SIGTERM: the running job is asked to stop and checkpoint, the journal is
//! flushed, exit 0).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use pictor_host::capabilities::gpu::{GpuProvider, device};
use pictor_host::config::{JobSource, WorkerConfig};
use pictor_host::runtime::{Runtime, RuntimeConfig};
use pictor_host::spool::Spool;
use pictor_host::mining::{self, Eligibility};
use pictor_host::telemetry::nvml;
use pictor_host::worker::{Activity, Worker};
use tokio::sync::watch;

use super::wait_for_signal;

/// Run the worker.
#[derive(Args)]
pub struct RunCommand {
    /// The worker's config file.
    #[arg(long, value_name = "worker.json")]
    config: PathBuf,
    /// Exit once no job is queued (for demos and scripts); without it, serve until stopped.
    #[arg(long)]
    until_idle: bool,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let config = WorkerConfig::load(&self.config)?;
        eprintln!("Worker {} ({}) · Connecting…", config.worker_id, config.name);
        let spool_dir = match &config.source {
            JobSource::Spool(dir) => dir.clone(),
            JobSource::Coordinator { url, .. } => {
                anyhow::bail!("coordinator {url}: the network client is not built yet; use a local spool (`coordinator.spool`)")
            }
        };
        let spool = Spool::open(&spool_dir)?;
        eprintln!("Worker {} · Connected (local spool {})", config.worker_id, spool_dir.display());

        let adapters = device::adapters(&device::instance());
        if adapters.is_empty() {
            eprintln!("GPUs: none found (GPU jobs will fail with `no GPU`)");
        }
        for (i, adapter) in adapters.iter().enumerate() {
            let info = adapter.get_info();
            eprintln!("GPU [{i}] {} ({:?}, {:?})", info.name, info.backend, info.device_type);
        }
        let nvml = nvml::sample();
        let runtime = Arc::new(Runtime::new(&RuntimeConfig { cache_dir: RuntimeConfig::default_cache_dir() })?);
        let mining = mining::eligibility(&config, &nvml, &runtime);
        match &mining {
            Eligibility::Off(reason) => eprintln!("Mining: off ({reason})"),
            Eligibility::Mine(plan) => {
                let m = config.mining.as_ref();
                eprintln!(
                    "Mining: on after {} s idle: {} on {}:{}",
                    plan.idle_delay.as_secs_f64(),
                    m.map_or("", |m| m.coin.as_str()),
                    m.map_or("", |m| m.pool_host.as_str()),
                    m.map_or(0, |m| m.pool_port)
                );
                if m.is_some_and(|m| !m.require_nvidia) {
                    eprintln!("WARNING: mining.require_nvidia is false: mining on a non-NVIDIA adapter (for testing only)");
                }
            }
        }
        let gpus: Vec<Arc<GpuProvider>> = config.gpus.iter().map(|g| Arc::new(GpuProvider::new(g.clone()))).collect();
        eprintln!("Scheduling: {} GPU slot group(s) × {} job(s) per GPU", gpus.len(), config.jobs_per_gpu);
        let mut worker = Worker::new(config, runtime, gpus.clone(), spool)?;
        if let Eligibility::Mine(plan) = mining {
            worker = worker.with_mining(*plan);
        }
        let activity = worker.activity();

        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let summary = tokio.block_on(async {
            let (stop_tx, stop_rx) = watch::channel(false);
            let signals = tokio::spawn(async move {
                wait_for_signal().await;
                eprintln!("\nstopping: the running job is asked to stop and checkpoint");
                let _ = stop_tx.send(true);
            });
            let bar = std::io::stderr().is_terminal().then(|| tokio::spawn(show_status(activity)));
            let summary = worker.run(self.until_idle, stop_rx).await;
            signals.abort();
            if let Some(bar) = bar {
                bar.abort();
                eprint!("\r\x1b[2K");
            }
            summary
        })?;
        tokio.shutdown_timeout(Duration::from_secs(10));
        drop(gpus);
        eprintln!(
            "Worker stopped: {} job(s) finished ({} failed), {} interrupted (they resume on the next start)",
            summary.finished, summary.failed, summary.interrupted
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// One live status line on a terminal: job, kind, progress bar, ETA and
/// message; or the miner's hashrate; or idle. Redrawn every second.
async fn show_status(mut rx: watch::Receiver<Option<Activity>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let line = match rx.borrow_and_update().clone() {
            None => "idle".to_string(),
            Some(a) if a.label == "mining" => format!("mining · {}", a.progress.message),
            Some(a) => {
                let f = a.progress.fraction;
                let filled = (f * 20.0).round() as usize;
                let elapsed = a.since.elapsed().as_secs_f64();
                let eta = if f > 0.01 && f < 1.0 { format!(" · ETA {:.0} s", elapsed * f64::from(1.0 - f) / f64::from(f)) } else { String::new() };
                format!("{} [{}{}] {:>3.0}%{eta} · {}", a.label, "#".repeat(filled), "-".repeat(20 - filled), f * 100.0, a.progress.message)
            }
        };
        eprint!("\r\x1b[2K{line}");
        let _ = std::io::stderr().flush();
    }
}
