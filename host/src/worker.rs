//! The worker loop over a local spool: resume what a crash or a stop left
//! running, then take queued jobs in order, run each once, store its result,
//! and record every step in the journal first.
//!
//! Exactly-once: a job's result is written and published (`running/` →
//! `done/`, one rename) before `finished` is journaled; on start, a job found
//! in `running/` with a `result.json` is published without running again,
//! and any other is run again as the next attempt, resuming from its
//! checkpoint file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::capabilities::checkpoint::CheckpointStore;
use crate::capabilities::gpu::GpuProvider;
use crate::capabilities::progress::Progress;
use crate::config::WorkerConfig;
use crate::jobs::limits::JobLimits;
use crate::jobs::outcome::{FailureKind, JobFailure, JobOutcome, ProgressReport};
use crate::jobs::runner::{JobRun, run_job};
use crate::jobs::sandbox::{JobDirs, stage_inputs};
use crate::journal::{self, Event, Journal, Record};
use crate::mining::{Miner, MiningPlan};
use crate::runtime::Runtime;
use crate::runtime::control::{Interruption, JobControl};
use crate::spool::{Claimed, Spool, SpoolError};

/// How often an idle worker looks for new jobs in the spool.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long a job may take to stop by itself when the worker is stopping.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the worker is doing, for the owner's status line.
#[derive(Debug, Clone)]
pub struct Activity {
    /// `job <id> (<kind>)` or `mining`.
    pub label: String,
    /// The latest progress report.
    pub progress: Progress,
    /// When the activity started.
    pub since: Instant,
}

/// What the worker loop did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunSummary {
    /// Jobs finished (succeeded or failed) in this run.
    pub finished: u32,
    /// Jobs among them that failed.
    pub failed: u32,
    /// Jobs interrupted by a stop (they resume on the next start).
    pub interrupted: u32,
}

/// A failure of the worker itself (not of a job).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The spool could not be used.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The journal could not be written: the worker stops rather than run
    /// jobs it could not account for.
    #[error("journal {path}: {source}")]
    Journal {
        /// The journal file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// How one attempt ended, for the loop.
enum Ran {
    /// The job has its result (stored now, or found from before a crash).
    Finished {
        /// Whether it failed.
        failed: bool,
    },
    /// The worker stopped it; it stays queued.
    Interrupted,
}

/// The worker: config, runtime, GPU, spool and journal.
pub struct Worker {
    config: WorkerConfig,
    runtime: Arc<Runtime>,
    gpu: Arc<GpuProvider>,
    spool: Spool,
    journal: Journal,
    history: Vec<Record>,
    progress: watch::Sender<Option<Activity>>,
    mining: Option<MiningPlan>,
}

impl Worker {
    /// Opens the spool and its journal.
    pub fn new(config: WorkerConfig, runtime: Arc<Runtime>, gpu: Arc<GpuProvider>, spool: Spool) -> Result<Self, WorkerError> {
        let path = spool.journal_path();
        let journal_err = |source| WorkerError::Journal { path: path.display().to_string(), source };
        let (mut journal, history) = Journal::open(&path).map_err(journal_err)?;
        journal.append(Event::WorkerStarted { worker: config.worker_id.clone() }).map_err(journal_err)?;
        Ok(Worker { config, runtime, gpu, spool, journal, history, progress: watch::channel(None).0, mining: None })
    }

    /// Mines with `plan` whenever the worker has been idle for its delay.
    pub fn with_mining(mut self, plan: MiningPlan) -> Self {
        self.mining = Some(plan);
        self
    }

    async fn stop_miner(&mut self, miner: Miner, reason: &str) -> Result<(), WorkerError> {
        let stopped = miner.stop(&self.gpu).await;
        let reason = match stopped.outcome.as_ref().and_then(|o| o.failure.as_ref()) {
            Some(f) if reason == "ended" => format!("failed: {}", f.message),
            _ => reason.to_string(),
        };
        tracing::info!(%reason, latency_ms = stopped.latency_ms, "mining stopped");
        self.progress.send_replace(None);
        self.log(Event::MiningStopped { reason, latency_ms: stopped.latency_ms, last_report: stopped.last_report })
    }

    /// What the worker is doing (`None`: idle), for the status line.
    pub fn activity(&self) -> watch::Receiver<Option<Activity>> {
        self.progress.subscribe()
    }

    fn log(&mut self, event: Event) -> Result<(), WorkerError> {
        let path = self.journal.path().display().to_string();
        self.journal.append(event).map_err(|source| WorkerError::Journal { path, source })
    }

    /// Runs until `stop` fires, or, with `until_idle`, until nothing is queued.
    pub async fn run(mut self, until_idle: bool, mut stop: watch::Receiver<bool>) -> Result<RunSummary, WorkerError> {
        let mut summary = RunSummary::default();
        let mut resume = self.spool.running()?;
        let mut miner: Option<Miner> = None;
        let mut idle_since = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let job = match resume.pop() {
                Some(job) => Some(job),
                None => match self.spool.next_incoming()? {
                    Some(path) => match self.spool.claim(&path)? {
                        Some(job) => {
                            self.log(Event::Claimed { job: job.spec.id.clone(), kind: job.spec.kind.clone() })?;
                            Some(job)
                        }
                        None => continue,
                    },
                    None => None,
                },
            };
            let Some(job) = job else {
                if until_idle {
                    break;
                }
                if miner.as_ref().is_some_and(Miner::ended) {
                    if let Some(ended) = miner.take() {
                        self.stop_miner(ended, "ended").await?;
                    }
                    idle_since = Instant::now();
                }
                if let Some(plan) = &self.mining
                    && miner.is_none()
                    && idle_since.elapsed() >= plan.idle_delay
                {
                    let dir = self.spool.root().join("mining");
                    match plan.start(Arc::clone(&self.gpu), self.progress.clone()) {
                        Ok(started) => {
                            miner = Some(started);
                            tracing::info!(dir = %dir.display(), "mining started");
                            let plugin = plan.plugin_digest();
                            self.log(Event::MiningStarted { plugin })?;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "mining not started");
                            idle_since = Instant::now();
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            if let Some(running) = miner.take() {
                self.stop_miner(running, "preempted").await?;
            }
            let ran = self.run_one(job, &mut stop).await?;
            idle_since = Instant::now();
            match ran {
                Ran::Finished { failed } => {
                    summary.finished += 1;
                    summary.failed += u32::from(failed);
                }
                Ran::Interrupted => {
                    summary.interrupted += 1;
                    break;
                }
            }
        }
        if let Some(running) = miner.take() {
            self.stop_miner(running, "stopping").await?;
        }
        self.log(Event::WorkerStopped)?;
        Ok(summary)
    }

    /// Runs one attempt of `job` (or publishes a result a crash left behind).
    async fn run_one(&mut self, job: Claimed, stop: &mut watch::Receiver<bool>) -> Result<Ran, WorkerError> {
        let id = job.spec.id.clone();
        if job.dir.join("result.json").exists() {
            // Finished before a crash, not yet published: publish, do not rerun.
            self.spool.publish(&job)?;
            let attempt = journal::last_attempt(&self.history, &id).unwrap_or(0);
            self.log(Event::Finished { job: id, attempt, status: "recovered".into(), reason: None })?;
            return Ok(Ran::Finished { failed: false });
        }
        let attempt = journal::last_attempt(&self.history, &id).map_or(0, |a| a + 1);
        self.log(Event::Started { job: id.clone(), attempt })?;
        self.history.push(Record { at_ms: 0, event: Event::Started { job: id.clone(), attempt } });
        tracing::info!(job = %id, kind = %job.spec.kind, attempt, "job started");

        let prepared = if self.spool.cancel_requested(&id) {
            Err(JobFailure::new(FailureKind::Cancelled, "cancelled before it started"))
        } else {
            self.prepare(&job)
        };
        let outcome = match prepared {
            Err(failure) => refused(&job, attempt, failure),
            Ok((dirs, plugin)) => {
                let control = Arc::new(JobControl::default());
                let (progress_tx, mut progress_rx) = watch::channel(Progress::default());
                let mut run = JobRun::new(&job.spec, &dirs).with_gpu(Arc::clone(&self.gpu));
                run.limits = JobLimits::default().with(&self.config.job_limits).with(&job.spec.limits);
                run.attempt = attempt;
                run.checkpoint = CheckpointStore::File(job.checkpoint());
                run.control = Arc::clone(&control);
                run.progress = progress_tx;
                let forward = tokio::spawn({
                    let (status, label, since) = (self.progress.clone(), format!("job {id} ({})", job.spec.kind), Instant::now());
                    status.send_replace(Some(Activity { label: label.clone(), progress: Progress::default(), since }));
                    async move {
                        while progress_rx.changed().await.is_ok() {
                            let progress = progress_rx.borrow_and_update().clone();
                            status.send_replace(Some(Activity { label: label.clone(), progress, since }));
                        }
                    }
                });
                // On a worker stop or a cancel request for this job: ask the
                // plugin to stop (it may checkpoint), then force it.
                let stopper = tokio::spawn({
                    let (control, mut stop, spool, id) = (Arc::clone(&control), stop.clone(), self.spool.clone(), id.clone());
                    async move {
                        while !*stop.borrow() && !spool.cancel_requested(&id) {
                            tokio::select! {
                                changed = stop.changed() => if changed.is_err() { return },
                                () = tokio::time::sleep(POLL_INTERVAL) => {}
                            }
                        }
                        control.request_cancel();
                        tokio::time::sleep(STOP_GRACE).await;
                        control.stop(Interruption::Cancelled);
                    }
                });
                let outcome = run_job(&plugin, run).await;
                forward.abort();
                stopper.abort();
                self.progress.send_replace(None);
                outcome
            }
        };

        let stopping = *stop.borrow();
        let cancelled = outcome.failure.as_ref().is_some_and(|f| f.kind == FailureKind::Cancelled);
        if stopping && cancelled {
            self.log(Event::Interrupted { job: id.clone(), attempt, reason: "worker stopping".into() })?;
            tracing::info!(job = %id, "job interrupted; it resumes from its checkpoint on the next start");
            return Ok(Ran::Interrupted);
        }
        self.spool.finish(&job, &outcome)?;
        self.spool.clear_cancel(&id);
        let reason = outcome.failure.as_ref().map(|f| f.message.clone());
        self.log(Event::Finished { job: id.clone(), attempt, status: outcome.status.to_string(), reason })?;
        match &outcome.failure {
            None => tracing::info!(job = %id, secs = outcome.duration_s, outputs = outcome.outputs.len(), "job succeeded"),
            Some(f) => tracing::warn!(job = %id, reason = %f.message, "job failed"),
        }
        Ok(Ran::Finished { failed: !outcome.succeeded() })
    }

    /// Checks the job is accepted, its files match their digests, stages
    /// its inputs into a fresh folder and loads its plugin.
    fn prepare(&self, job: &Claimed) -> Result<(JobDirs, crate::runtime::LoadedPlugin), JobFailure> {
        let spec = &job.spec;
        if let Some(kinds) = &self.config.job_kinds
            && !kinds.contains(&spec.kind)
        {
            return Err(JobFailure::new(FailureKind::Unsupported, format!("this worker does not accept `{}` jobs", spec.kind)));
        }
        let plugin = spec
            .plugin
            .as_ref()
            .ok_or_else(|| JobFailure::new(FailureKind::InvalidParams, "the job spec names no `plugin`"))?;
        let sandbox = |e: &dyn std::fmt::Display| JobFailure::new(FailureKind::Sandbox, e.to_string());
        for dir in [job.input(), job.output()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| sandbox(&e))?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| sandbox(&e))?;
        }
        stage_inputs(spec, &job.input()).map_err(|e| JobFailure::new(FailureKind::InvalidInput, e.to_string()))?;
        let dirs = JobDirs::prepare(&job.input(), &job.output()).map_err(|e| sandbox(&e))?;
        let bytes = std::fs::read(&plugin.path).map_err(|e| {
            JobFailure::new(FailureKind::InvalidInput, format!("cannot read plugin {}: {e}", plugin.path.display()))
        })?;
        let loaded = self.runtime.load(&bytes).map_err(|e| JobFailure::new(FailureKind::Instantiate, e.to_string()))?;
        if loaded.digest != plugin.sha256 {
            return Err(JobFailure::new(
                FailureKind::InvalidInput,
                format!("sha256 mismatch for plugin {}: expected {}, got {}", plugin.path.display(), plugin.sha256, loaded.digest),
            ));
        }
        Ok((dirs, loaded))
    }
}

/// The outcome of a job refused before it ran.
fn refused(job: &Claimed, attempt: u32, failure: JobFailure) -> JobOutcome {
    JobOutcome {
        job_id: job.spec.id.clone(),
        kind: job.spec.kind.clone(),
        plugin: job.spec.plugin.as_ref().map(|p| p.sha256).unwrap_or_else(|| crate::digest::Sha256Digest::of(b"")),
        attempt,
        status: "failed",
        success: None,
        failure: Some(failure),
        duration_s: 0.0,
        outputs: Vec::new(),
        progress: ProgressReport::default(),
        checkpoints_saved: 0,
    }
}
