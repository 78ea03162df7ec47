//! Mining while idle: whether this worker may mine, and a running miner
//! that the worker can preempt at once when a job arrives.
//!
//! The miner is a plugin run like a job (same sandbox, same GPU capability,
//! its own quota). Preemption is hard: the miner's store is interrupted at
//! the next epoch tick (or dropped at once if it waits in a host call), and
//! the GPU work it left in flight is drained before the job gets the GPU.
//! The time from the stop request to "GPU free" is measured and journaled.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::capabilities::gpu::GpuProvider;
use crate::capabilities::progress::Progress;
use crate::config::WorkerConfig;
use crate::jobs::limits::JobLimits;
use crate::jobs::outcome::JobOutcome;
use crate::jobs::runner::{JobRun, run_job};
use crate::jobs::sandbox::JobDirs;
use crate::jobs::spec::JobSpec;
use crate::runtime::control::{Interruption, JobControl};
use crate::runtime::{LoadedPlugin, Runtime};
use crate::worker::Activity;
use crate::telemetry::nvml::NvmlStatus;

/// How long the worker waits for a preempted miner's GPU work to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to start the miner again and again.
pub struct MiningPlan {
    plugin: Arc<LoadedPlugin>,
    spec: JobSpec,
    /// Idle time before mining starts.
    pub idle_delay: Duration,
}

/// Whether this worker mines, and if not, why (for the owner's status).
pub enum Eligibility {
    /// Mining is set up.
    Mine(Box<MiningPlan>),
    /// Mining is off, for this reason.
    Off(String),
}

/// Decides whether the worker mines: configured, enabled, on an NVIDIA GPU
/// (unless `require_nvidia` is false), and its plugin loads.
pub fn eligibility(config: &WorkerConfig, nvml: &NvmlStatus, runtime: &Runtime) -> Eligibility {
    let Some(m) = &config.mining else { return Eligibility::Off("no `mining` in the config".into()) };
    if !m.enabled {
        return Eligibility::Off("`mining.enabled` is false".into());
    }
    if m.require_nvidia && !nvml.has_nvidia_gpu() {
        return Eligibility::Off(match nvml {
            NvmlStatus::Unavailable { reason } => format!("no NVIDIA GPU (NVML not available: {reason})"),
            NvmlStatus::Available { .. } => "NVML found no NVIDIA GPU".into(),
        });
    }
    let Some(path) = &m.plugin else { return Eligibility::Off("no `mining.plugin`".into()) };
    let plugin = match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| runtime.load(&b).map_err(|e| e.to_string())) {
        Ok(plugin) => plugin,
        Err(e) => return Eligibility::Off(format!("mining plugin {}: {e}", path.display())),
    };
    let params = serde_json::json!({
        "pool": format!("{}:{}", m.pool_host, m.pool_port), "coin": m.coin, "algorithm": m.algorithm,
        "wallet": m.wallet, "worker": config.worker_id,
    });
    let spec = JobSpec::from_json(&serde_json::json!({"version": 1, "id": "mining", "kind": "mine", "params": params}).to_string());
    match spec {
        Ok(spec) => Eligibility::Mine(Box::new(MiningPlan { plugin: Arc::new(plugin), spec, idle_delay: m.idle_delay })),
        Err(e) => Eligibility::Off(format!("mining job: {e}")),
    }
}

/// A running miner.
pub struct Miner {
    task: JoinHandle<JobOutcome>,
    control: Arc<JobControl>,
    last: watch::Receiver<Progress>,
}

/// How a miner ended.
pub struct Stopped {
    /// Stop request → miner gone and GPU drained, in milliseconds.
    pub latency_ms: f64,
    /// The miner's last progress message (its hashrate).
    pub last_report: String,
    /// Its outcome, if the task ended normally.
    pub outcome: Option<JobOutcome>,
}

impl MiningPlan {
    /// The mining plugin's sha256.
    pub fn plugin_digest(&self) -> String {
        self.plugin.digest.to_string()
    }

    /// Starts the miner on `gpu`, with its folders in `dir`; its progress
    /// is also sent to `status`.
    pub fn start(&self, dir: &Path, gpu: Arc<GpuProvider>, status: watch::Sender<Option<Activity>>) -> std::io::Result<Miner> {
        let (input, output) = (dir.join("input"), dir.join("output"));
        let _ = std::fs::remove_dir_all(&output);
        std::fs::create_dir_all(&input)?;
        let dirs = JobDirs::prepare(&input, &output).map_err(std::io::Error::other)?;
        let control = Arc::new(JobControl::default());
        let (progress_tx, last) = watch::channel(Progress::default());
        let (plugin, spec) = (Arc::clone(&self.plugin), self.spec.clone());
        let mut forward = progress_tx.subscribe();
        let task = tokio::spawn({
            let control = Arc::clone(&control);
            async move {
                let since = Instant::now();
                let relay = tokio::spawn(async move {
                    while forward.changed().await.is_ok() {
                        let progress = forward.borrow_and_update().clone();
                        status.send_replace(Some(Activity { label: "mining".into(), progress, since }));
                    }
                });
                let mut run = JobRun::new(&spec, &dirs).with_gpu(gpu);
                run.limits = JobLimits { timeout: Duration::from_secs(7 * 86_400), output_bytes: 16 << 20, ..JobLimits::default() };
                run.control = control;
                run.progress = progress_tx;
                let outcome = run_job(&plugin, run).await;
                relay.abort();
                outcome
            }
        });
        Ok(Miner { task, control, last })
    }
}

impl Miner {
    /// Whether the miner ended by itself (it failed).
    pub fn ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the miner now and waits until it is gone and the GPU drained.
    pub async fn stop(self, gpu: &Arc<GpuProvider>) -> Stopped {
        let started = Instant::now();
        self.control.stop(Interruption::Preempted);
        let outcome = self.task.await.ok();
        let provider = Arc::clone(gpu);
        let _ = tokio::task::spawn_blocking(move || provider.drain_current(DRAIN_TIMEOUT)).await;
        let last_report = self.last.borrow().message.clone();
        Stopped { latency_ms: started.elapsed().as_secs_f64() * 1e3, last_report, outcome }
    }
}
