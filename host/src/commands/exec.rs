//! `pictor-host exec`: run one job locally, the way a plugin author tests a
//! plugin before shipping it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pictor_runtime::CodeSource;
use pictor_runtime::capabilities::checkpoint::CheckpointStore;
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::capabilities::progress::Progress;
use pictor_runtime::control::{Interruption, JobControl};
use pictor_runtime::jobs::limits::JobLimits;
use pictor_runtime::jobs::outcome::JobOutcome;
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::{JobDirs, stage_inputs};
use pictor_runtime::jobs::spec::JobSpec;
use tokio::sync::watch;

use super::{CacheArgs, EXIT_JOB_FAILED, read_plugin, wait_for_signal};

/// How long a cancelled job may take to stop by itself before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Run one job locally.
#[derive(Args)]
pub struct ExecCommand {
    /// The plugin component (`.wasm`) [default: the job spec's `plugin`].
    #[arg(long, value_name = "P.wasm")]
    plugin: Option<PathBuf>,
    /// The job spec (JSON, see docs/job-spec.md).
    #[arg(long, value_name = "job.json")]
    job: PathBuf,
    /// Folder shown to the plugin as /input (read-only) [default: the spec's `inputs`, or an empty folder].
    #[arg(long, value_name = "DIR")]
    input: Option<PathBuf>,
    /// Folder for the outputs; created, must be empty [default: pictor-output/<job id>].
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Wall-clock limit in seconds (overrides the job's `limits.timeout_s`).
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
    /// Memory limit in MiB (overrides the job's `limits.memory_mib`).
    #[arg(long, value_name = "MIB")]
    memory: Option<u64>,
    /// Keep the job's checkpoint in this file (loaded on start, if present).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// GPU for the job: `auto` (best adapter), `none`, an index or a name from `gpu list`.
    #[arg(long, value_name = "ADAPTER", default_value = "auto")]
    gpu: AdapterChoice,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

impl ExecCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        pictor_runtime::engine::raise_open_file_limit();
        let mut spec = JobSpec::from_file(&self.job)?;
        if let Some(t) = self.timeout {
            spec.limits.timeout_s = Some(t);
        }
        if let Some(m) = self.memory {
            spec.limits.memory_mib = Some(m);
        }
        spec.limits
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid option: {e}"))?;
        let limits = JobLimits::default().with(&spec.limits);
        let plugin_path = match (&self.plugin, &spec.plugin) {
            (Some(path), _) => path.clone(),
            (None, Some(plugin)) => plugin.path.clone(),
            (None, None) => anyhow::bail!(
                "no plugin: give --plugin or a `plugin` in {}",
                self.job.display()
            ),
        };
        let bytes = read_plugin(&plugin_path)?;
        if let Some(expected) = spec.plugin.as_ref().map(|p| p.sha256) {
            let actual = pictor_host::digest::Sha256Digest::of(&bytes);
            anyhow::ensure!(
                actual == expected,
                "sha256 mismatch for plugin {}: expected {expected}, got {actual}",
                plugin_path.display()
            );
        }

        let staged_input;
        let input = match &self.input {
            Some(dir) => {
                anyhow::ensure!(
                    spec.inputs.is_empty(),
                    "the job spec lists `inputs`; do not also give --input"
                );
                dir.clone()
            }
            None => {
                staged_input = tempfile::tempdir().context("cannot create the input folder")?;
                stage_inputs(&spec, staged_input.path())?;
                staged_input.path().to_path_buf()
            }
        };
        let output = self
            .output
            .clone()
            .unwrap_or_else(|| Path::new("pictor-output").join(&spec.id));
        let dirs = JobDirs::prepare(&input, &output)?;

        let runtime = self.cache.runtime()?;
        let plugin = runtime.load(&bytes)?;
        let code = match plugin.source {
            CodeSource::Compiled(t) => format!("compiled in {} ms", t.as_millis()),
            CodeSource::Cached(t) => {
                format!("loaded from cache in {:.1} ms", t.as_secs_f64() * 1e3)
            }
        };
        if !self.json {
            eprintln!(
                "job {} ({}) · plugin {} · {code}",
                spec.id, spec.kind, plugin.digest
            );
        }

        let gpu = Arc::new(GpuProvider::new(self.gpu.clone()));
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let outcome = tokio.block_on(async {
            let control = Arc::new(JobControl::default());
            let (progress_tx, progress_rx) = watch::channel(Progress::default());
            let watcher = tokio::spawn(cancel_on_signal(Arc::clone(&control)));
            let bar = (!self.json && std::io::stderr().is_terminal())
                .then(|| tokio::spawn(show_progress(progress_rx)));
            let mut run = JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&gpu));
            run.limits = limits;
            run.control = control;
            run.progress = progress_tx;
            if let Some(path) = &self.checkpoint {
                run.checkpoint = CheckpointStore::File(path.clone());
            }
            let outcome = run_job(&plugin, run).await;
            watcher.abort();
            if let Some(bar) = bar {
                bar.abort();
                eprint!("\r\x1b[2K");
            }
            outcome
        });
        // Join every worker thread before the GPU device goes: some drivers
        // (NVIDIA's) crash at exit if a thread that used the device outlives it.
        tokio.shutdown_timeout(Duration::from_secs(10));
        drop(gpu);

        if self.json {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
        } else {
            print_outcome(&outcome, &dirs.output);
        }
        Ok(if outcome.succeeded() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_JOB_FAILED)
        })
    }
}

fn print_outcome(outcome: &JobOutcome, output_dir: &Path) {
    match (&outcome.success, &outcome.failure) {
        (Some(success), _) => {
            println!(
                "succeeded in {:.3} s: {}",
                outcome.duration_s, success.message
            );
            for (name, value) in &success.metrics {
                println!("  {name} = {value}");
            }
        }
        (None, Some(failure)) => {
            eprintln!(
                "error: job {} failed after {:.3} s: {}",
                outcome.job_id, outcome.duration_s, failure.message
            );
            if let Some(detail) = &failure.detail {
                eprintln!("{detail}");
            }
        }
        (None, None) => {}
    }
    if !outcome.outputs.is_empty() {
        println!("outputs in {}:", output_dir.display());
        for file in &outcome.outputs {
            println!("  {}  {:>10} B  {}", file.sha256, file.size, file.path);
        }
    }
}

/// On Ctrl-C or SIGTERM: ask the plugin to stop, and kill it after the grace period.
async fn cancel_on_signal(control: Arc<JobControl>) {
    wait_for_signal().await;
    eprintln!(
        "\ncancelling: the plugin has {} s to stop",
        CANCEL_GRACE.as_secs()
    );
    control.request_cancel();
    tokio::select! {
        () = tokio::time::sleep(CANCEL_GRACE) => control.stop(Interruption::Cancelled),
        () = wait_for_signal() => control.stop(Interruption::Cancelled),
    }
}

/// A live progress bar on stderr (terminals only).
async fn show_progress(mut rx: watch::Receiver<Progress>) {
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let filled = (p.fraction * 30.0).round() as usize;
        eprint!(
            "\r\x1b[2K[{}{}] {:>3.0}% {}",
            "#".repeat(filled),
            "-".repeat(30 - filled),
            p.fraction * 100.0,
            p.message
        );
        let _ = std::io::stderr().flush();
    }
}
