//! Runs one job in a fresh store and turns whatever happens into a
//! [`JobOutcome`]: the plugin's answer, a trap, a timeout, a quota breach.
//!
//! The plugin is stopped, whichever comes first, when: its wall-clock limit
//! passes, its memory would grow past its limit, a write would take its
//! files past their quota or it holds too many files open (both counted by
//! [`capabilities::filesystem`](crate::capabilities::filesystem) before the
//! call goes through), or someone calls [`JobControl::stop`]. Running wasm is interrupted at the next epoch tick;
//! a plugin blocked in a host call (a WASI sleep, say) is dropped at once.
//! The store, and every resource the job created, is freed on return.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::LoadedPlugin;
use crate::bindings::{JobInfo, JobSummary};
use crate::capabilities::checkpoint::{CheckpointState, CheckpointStore};
use crate::capabilities::filesystem::{FsLimits, OutputLedger};
use crate::capabilities::gpu::{GpuFault, GpuProvider, GpuSession};
use crate::capabilities::mining::{MinerReport, MiningState};
use crate::capabilities::progress::{Progress, ProgressState};
use crate::capabilities::sockets::SocketGrant;
use crate::control::{Interruption, JobControl};
use crate::jobs::limits::JobLimits;
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, JobSuccess};
use crate::jobs::sandbox::JobDirs;
use crate::jobs::spec::JobSpec;
use crate::jobs::tree::{self, TreeError, TreeLimits};
use crate::stdio::{CapturedOutput, StreamName};
use crate::store::{JobLimiter, StoreState};
use crate::text;

/// Host resources (WASI descriptors and streams, pollables, GPU objects)
/// a job may hold at once besides its GPU quota's buffers and objects.
pub const MAX_HOST_RESOURCES: usize = 4096;

/// Everything a run needs besides the plugin.
pub struct JobRun<'a> {
    /// The job.
    pub spec: &'a JobSpec,
    /// Its folders.
    pub dirs: &'a JobDirs,
    /// Its resolved limits.
    pub limits: JobLimits,
    /// Which attempt this is (0 first).
    pub attempt: u32,
    /// Where its checkpoint lives.
    pub checkpoint: CheckpointStore,
    /// Cancel / stop handle, shared with whoever may stop the job.
    pub control: Arc<JobControl>,
    /// Receives each progress report.
    pub progress: watch::Sender<Progress>,
    /// Where GPU jobs get their device; `None` runs them without a GPU.
    pub gpu: Option<Arc<GpuProvider>>,
    /// What it may reach over the network (nothing, except for a miner).
    pub network: SocketGrant,
    /// Receives a miner's figures (`pictor:plugin/mining`).
    pub mining: Option<watch::Sender<MinerReport>>,
}

impl<'a> JobRun<'a> {
    /// A first attempt of `spec` in `dirs`: limits from the spec over the
    /// defaults, checkpoint in memory, a fresh control handle, no GPU, and a
    /// progress channel nobody listens to. Set the public fields to change any.
    pub fn new(spec: &'a JobSpec, dirs: &'a JobDirs) -> Self {
        JobRun {
            spec,
            dirs,
            limits: JobLimits::default().with(&spec.limits),
            attempt: 0,
            checkpoint: CheckpointStore::Memory(None),
            control: Arc::default(),
            progress: watch::channel(Progress::default()).0,
            gpu: None,
            network: SocketGrant::none(),
            mining: None,
        }
    }

    /// The same run with GPU jobs getting their device from `provider`.
    pub fn with_gpu(mut self, provider: Arc<GpuProvider>) -> Self {
        self.gpu = Some(provider);
        self
    }
}

/// Runs `run.spec` with `plugin` to its end, however it ends.
pub async fn run_job(plugin: &LoadedPlugin, run: JobRun<'_>) -> JobOutcome {
    let span = tracing::info_span!("job", id = %run.spec.id, kind = %run.spec.kind);
    run_job_inner(plugin, run).instrument(span).await
}

async fn run_job_inner(plugin: &LoadedPlugin, run: JobRun<'_>) -> JobOutcome {
    let JobRun {
        spec,
        dirs,
        limits,
        attempt,
        checkpoint,
        control,
        progress,
        gpu,
        network,
        mining,
    } = run;
    tracing::info!(plugin = %plugin.digest, attempt, "job started");
    let stdout = CapturedOutput::new(StreamName::Stdout, &spec.id, limits.log_bytes);
    let stderr = CapturedOutput::new(StreamName::Stderr, &spec.id, limits.log_bytes);
    let progress_rx = progress.subscribe();

    // Opening the device may itself find the slot unhealthy (the job
    // before left a kernel that never ends): checked after it.
    let provider = gpu.clone();
    let gpu = gpu_session(plugin, gpu, &limits).await;
    let unhealthy = provider
        .filter(|_| plugin.uses_gpu)
        .and_then(|p| match p.health() {
            crate::capabilities::gpu::GpuHealth::Unhealthy { reason } => Some(reason),
            _ => None,
        });
    if let Some(reason) = unhealthy {
        // Another worker can run it: a retryable failure gives it back.
        let failure = JobFailure::new(
            FailureKind::GpuLost,
            format!("this worker's GPU is unhealthy: {reason}"),
        );
        return refused_outcome(plugin, spec, attempt, failure);
    }
    let started = Instant::now();
    let (result, checkpoints_saved, adapter) = match new_store(
        plugin, spec, dirs, &limits, checkpoint, &control, progress, gpu, &stdout, &stderr,
        &network, mining,
    ) {
        Ok(mut store) => {
            let result = call_plugin(plugin, &mut store, spec, attempt, &limits, &control).await;
            let data = store.data();
            (result, data.checkpoint.saves(), data.gpu.adapter_name())
        }
        Err(failure) => (Err(failure), 0, None),
    };
    let duration = started.elapsed();
    stdout.finish();
    stderr.finish();

    let result = result.map_err(|failure| match failure.kind {
        FailureKind::Trap | FailureKind::Failed => failure_with_stderr(failure, &stderr),
        _ => failure,
    });

    // Outputs are checked whatever happened: a bad entry fails an otherwise
    // successful job, and partial outputs of a failed job are still listed.
    let collected = {
        let dir = dirs.output.clone();
        let quota = TreeLimits {
            entries: limits.output_files,
            bytes: limits.output_bytes,
        };
        tokio::task::spawn_blocking(move || tree::collect(&dir, quota)).await
    };
    let (outputs, result) = match collected {
        Ok(Ok(outputs)) => (outputs, result),
        Ok(Err(error)) => {
            let kind = match error {
                TreeError::Quota(_) => FailureKind::OutputQuota,
                TreeError::NotRegular(_)
                | TreeError::BadName { .. }
                | TreeError::TooDeep { .. } => FailureKind::BadOutput,
                TreeError::Io { .. } => FailureKind::Sandbox,
            };
            let result = match result {
                Ok(_) => Err(JobFailure::new(kind, error.to_string())),
                Err(earlier) => {
                    tracing::warn!(%error, "outputs of the failed job not collected");
                    Err(earlier)
                }
            };
            (Vec::new(), result)
        }
        Err(join) => (
            Vec::new(),
            Err(JobFailure::new(
                FailureKind::Sandbox,
                format!("output scan failed: {join}"),
            )),
        ),
    };

    let (success, failure) = match result {
        Ok(summary) => (Some(success_of(summary)), None),
        Err(failure) => (None, Some(clean_failure(failure))),
    };
    match &failure {
        None => tracing::info!(
            secs = duration.as_secs_f64(),
            outputs = outputs.len(),
            "job succeeded"
        ),
        Some(f) if f.kind == FailureKind::Preempted => {
            tracing::info!(secs = duration.as_secs_f64(), "job preempted")
        }
        Some(f) => {
            tracing::warn!(secs = duration.as_secs_f64(), kind = ?f.kind, reason = %f.message, "job failed")
        }
    }
    let last_progress = progress_rx.borrow().clone();
    JobOutcome {
        job_id: spec.id.clone(),
        kind: spec.kind.clone(),
        plugin: plugin.digest,
        attempt,
        status: if failure.is_none() {
            "succeeded"
        } else {
            "failed"
        },
        success,
        failure,
        duration_s: duration.as_secs_f64(),
        outputs,
        progress: last_progress.into(),
        checkpoints_saved,
        adapter,
    }
}

/// The outcome of a run that never started.
fn refused_outcome(
    plugin: &LoadedPlugin,
    spec: &JobSpec,
    attempt: u32,
    failure: JobFailure,
) -> JobOutcome {
    tracing::warn!(reason = %failure.message, "job not started");
    JobOutcome::not_run(
        spec.id.clone(),
        spec.kind.clone(),
        plugin.digest,
        attempt,
        failure,
    )
}

/// The plugin's summary as the host keeps it: message clipped and escaped,
/// at most [`text::MAX_METRICS`] metrics with clean, short names.
fn success_of(summary: JobSummary) -> JobSuccess {
    let given = summary.metrics.len();
    if given > text::MAX_METRICS {
        tracing::warn!(
            given,
            kept = text::MAX_METRICS,
            "plugin reported too many metrics; the rest are dropped"
        );
    }
    JobSuccess {
        message: text::one_line(&summary.message, text::MAX_MESSAGE_BYTES),
        metrics: summary
            .metrics
            .into_iter()
            .take(text::MAX_METRICS)
            .map(|m| {
                (
                    text::one_line(&m.name, text::MAX_METRIC_NAME_BYTES),
                    m.value,
                )
            })
            .collect(),
    }
}

/// A failure as the host keeps it: one clean, clipped line and detail.
fn clean_failure(mut failure: JobFailure) -> JobFailure {
    if !text::is_clean_line(&failure.message, text::MAX_MESSAGE_BYTES) {
        failure.message = text::one_line(&failure.message, text::MAX_MESSAGE_BYTES);
    }
    failure.detail = failure
        .detail
        .map(|d| text::lines(&d, 4 * text::MAX_MESSAGE_BYTES));
    failure
}

/// The job's GPU session: a device from `provider` if the plugin uses the
/// GPU, else (or if there is none) a session that answers `unavailable`.
async fn gpu_session(
    plugin: &LoadedPlugin,
    provider: Option<Arc<GpuProvider>>,
    limits: &JobLimits,
) -> GpuSession {
    if !plugin.uses_gpu {
        return GpuSession::unavailable("the plugin does not import pictor:plugin/gpu");
    }
    let Some(provider) = provider else {
        return GpuSession::unavailable("this host runs jobs without a GPU");
    };
    let device = match tokio::task::spawn_blocking(move || provider.device()).await {
        Ok(device) => device.map_err(|e| e.to_string()),
        Err(e) => Err(format!("GPU set-up failed: {e}")),
    };
    if let Err(reason) = &device {
        tracing::warn!(%reason, "GPU job runs without a GPU");
    }
    GpuSession::new(device, limits.gpu.clone())
}

#[allow(clippy::too_many_arguments)]
fn new_store(
    plugin: &LoadedPlugin,
    spec: &JobSpec,
    dirs: &JobDirs,
    limits: &JobLimits,
    checkpoint: CheckpointStore,
    control: &Arc<JobControl>,
    progress: watch::Sender<Progress>,
    gpu: GpuSession,
    stdout: &CapturedOutput,
    stderr: &CapturedOutput,
    network: &SocketGrant,
    mining: Option<watch::Sender<MinerReport>>,
) -> Result<Store<StoreState>, JobFailure> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .insecure_random_seed(u128::from(spec.seed));
    network.apply(&mut wasi);
    let sandbox_err = |e: wasmtime::Error| {
        JobFailure::new(
            FailureKind::Sandbox,
            format!("cannot preopen job folder: {e:#}"),
        )
    };
    wasi.preopened_dir(&dirs.input, "/input", FsPerms::ReadOnly)
        .map_err(sandbox_err)?;
    wasi.preopened_dir(&dirs.output, "/output", FsPerms::ReadWrite)
        .map_err(sandbox_err)?;

    let mut table = wasmtime::component::ResourceTable::new();
    let gpu_resources =
        limits.gpu.buffers as usize + crate::capabilities::gpu::session::MAX_OBJECTS as usize;
    table.set_max_capacity(MAX_HOST_RESOURCES + gpu_resources);
    let fs_limits = FsLimits {
        output_bytes: limits.output_bytes,
        output_entries: limits.output_files,
        open_files: limits.open_files,
    };
    let state = StoreState {
        wasi: wasi.build(),
        table,
        output: OutputLedger::new(fs_limits, Arc::clone(control)),
        limiter: JobLimiter::new(limits.memory_bytes, Arc::clone(control)),
        progress: ProgressState::new(Arc::clone(control), progress),
        checkpoint: CheckpointState::new(checkpoint, limits.checkpoint_bytes),
        gpu,
        mining: mining.map(MiningState::new).unwrap_or_default(),
        network: network.clone(),
        sockets_made: Vec::new(),
    };
    let mut store = Store::new(plugin.component.engine(), state);
    store.limiter(|state| &mut state.limiter);

    let deadline = Instant::now() + limits.timeout;
    let timeout = limits.timeout;
    let control = Arc::clone(control);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if let Some(reason) = control.stop_reason() {
            return Err(wasmtime::Error::new(reason.clone()));
        }
        if Instant::now() >= deadline {
            let reason = Interruption::TimedOut(timeout);
            control.stop(reason.clone());
            return Err(wasmtime::Error::new(reason));
        }
        // Yield every tick so other tasks (and the stop watchers) run.
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

async fn call_plugin(
    plugin: &LoadedPlugin,
    store: &mut Store<StoreState>,
    spec: &JobSpec,
    attempt: u32,
    limits: &JobLimits,
    control: &Arc<JobControl>,
) -> Result<JobSummary, JobFailure> {
    let info = JobInfo {
        id: spec.id.clone(),
        kind: spec.kind.clone(),
        params: spec.params_json(),
        attempt,
        seed: spec.seed,
    };
    let deadline = tokio::time::Instant::now() + limits.timeout;

    let call = async {
        let job = plugin
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| (true, e))?;
        job.call_run(&mut *store, &info)
            .await
            .map_err(|e| (false, e))
    };
    let result = tokio::select! {
        result = call => result,
        reason = control.stopped() => Err((false, wasmtime::Error::new(reason))),
        () = tokio::time::sleep_until(deadline) => {
            control.stop(Interruption::TimedOut(limits.timeout));
            Err((false, wasmtime::Error::new(Interruption::TimedOut(limits.timeout))))
        }
    };

    // A plugin that returns after the host stopped it (a write refused for
    // the quota, say) ended because of the stop, whatever it returned.
    if let (Ok(_), Some(reason)) = (&result, control.stop_reason()) {
        return Err(JobFailure::from_interruption(reason));
    }
    match result {
        Ok(Ok(summary)) => Ok(summary),
        Ok(Err(error)) => Err(JobFailure::from_plugin(error)),
        Err((instantiating, error)) => Err(classify(instantiating, &error, control)),
    }
}

/// Turns a wasmtime error into the job's failure.
fn classify(instantiating: bool, error: &wasmtime::Error, control: &JobControl) -> JobFailure {
    if let Some(reason) = control
        .stop_reason()
        .or_else(|| error.downcast_ref::<Interruption>())
    {
        return JobFailure::from_interruption(reason);
    }
    if let Some(wasmtime::component::ResourceTableError::Full) =
        error.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        let what = "the plugin holds too many host resources (files, streams, GPU objects) at once"
            .to_string();
        return JobFailure::from_interruption(&Interruption::ResourceLimit { what });
    }
    if let Some(fault) = error.downcast_ref::<GpuFault>() {
        let kind = match fault {
            GpuFault::SubmissionTimeout { .. } | GpuFault::CompileTimeout { .. } => {
                FailureKind::GpuTimeout
            }
            GpuFault::DeviceLost(_) => FailureKind::GpuLost,
        };
        return JobFailure::new(kind, fault.to_string());
    }
    let wasm_backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>();
    let backtrace = wasm_backtrace.map(|bt| bt.to_string());
    let message = if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!(
            "plugin called exit({}) instead of returning from run",
            exit.0
        )
    } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        match wasm_backtrace.and_then(runaway_recursion) {
            Some(hint) => format!("plugin trapped: {trap} ({hint})"),
            None => format!("plugin trapped: {trap}"),
        }
    } else if instantiating {
        return JobFailure::new(
            FailureKind::Instantiate,
            format!("plugin could not start: {error:#}"),
        )
        .with_detail(backtrace);
    } else {
        format!("plugin trapped: {error:#}")
    };
    JobFailure::new(FailureKind::Trap, message).with_detail(backtrace)
}

/// A hint when every captured frame of a trap's backtrace (wasmtime keeps
/// the innermost 20) is the same function: Rust and C guests keep their
/// stack in linear memory, so running out of it shows up as an
/// out-of-bounds access rather than a wasm stack overflow.
fn runaway_recursion(backtrace: &wasmtime::WasmBacktrace) -> Option<String> {
    let frames = backtrace.frames();
    let name = frames.first()?.func_name()?;
    let recursive = frames.len() >= 16 && frames.iter().all(|f| f.func_name() == Some(name));
    let name = format!("{:#}", rustc_demangle::demangle(name));
    recursive.then(|| format!("likely a stack overflow: runaway recursion in `{name}`"))
}

/// Adds the end of the plugin's stderr to a failure; a Rust panic message
/// found there becomes the failure's one-line message.
fn failure_with_stderr(mut failure: JobFailure, stderr: &CapturedOutput) -> JobFailure {
    let tail = stderr.tail();
    if tail.is_empty() {
        return failure;
    }
    if failure.kind == FailureKind::Trap
        && let Some(at) = tail.rfind("panicked at ")
    {
        let panic: Vec<&str> = tail[at..]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(2)
            .collect();
        if !panic.is_empty() {
            failure.message = format!("plugin {}", panic.join(" "));
        }
    }
    let detail = match failure.detail.take() {
        Some(d) => format!("{d}\nplugin stderr (end):\n{tail}"),
        None => format!("plugin stderr (end):\n{tail}"),
    };
    failure.with_detail(Some(detail))
}
