//! The worker: a scheduler over a local spool. One owner of all state (the
//! loop in [`Worker::run`]); events come in as job tasks finishing, the
//! spool poll, and the stop signal.
//!
//! Per GPU: idle → mining → job(s). Each configured GPU runs at most
//! `limits.jobs_per_gpu` jobs at once; a GPU with no job for
//! `mining.idle_delay_s` mines; claiming a job for a GPU first preempts
//! that GPU's miner (hard stop, GPU drained, latency journaled).
//!
//! Exactly-once: a job's result is written and published (`running/` →
//! `done/`, one rename) before `finished` is journaled; on start, a job found
//! in `running/` with a `result.json` is published without running again,
//! and any other is run again as the next attempt, resuming from its
//! checkpoint file. Every state change is journaled (fsync'd) first.
//! Each result comes with `proof.json`, signed with the worker key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use crate::activity::{Activity, RunningJob, SpoolUsage};
use crate::config::WorkerConfig;
use crate::journal::{self, Event, FinishedJob, Journal, JournalError, SharedJournal};
use crate::mining::{Miner, MiningPlan, MiningSummary, format_hashrate};
use crate::proof::{KeyError, WorkerKey};
use crate::spool::{Claimed, Spool, SpoolError};
use pictor_runtime::Runtime;
use pictor_runtime::capabilities::checkpoint::CheckpointStore;
use pictor_runtime::capabilities::gpu::GpuProvider;
use pictor_runtime::capabilities::progress::Progress;
use pictor_runtime::control::{Interruption, JobControl};
use pictor_runtime::jobs::limits::JobLimits;
use pictor_runtime::jobs::outcome::{FailureKind, JobFailure, JobOutcome};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::{JobDirs, stage_inputs};

/// How often an idle worker looks for new jobs in the spool.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long a job may take to stop by itself when the worker is stopping.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Wait before restarting a miner that ended by itself, after its first
/// failure in a row; it doubles with each further failure.
pub const MINER_RETRY: Duration = Duration::from_secs(15);

/// Attempts of one job that may end with the worker itself dying (a
/// crash, a hang the owner killed) before the job is failed instead of
/// started again: a job that takes the worker down must not do it forever.
pub const MAX_LOCAL_CRASHES: u32 = 3;

/// Longest wait before restarting a failed miner.
pub const MINER_RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// The wait before starting a miner again after `failures` failed runs in a row.
fn miner_retry_delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => MINER_RETRY
            .saturating_mul(1 << (n - 1).min(10))
            .min(MINER_RETRY_MAX),
    }
}

/// How many finished jobs a new worker remembers from its journal
/// ([`Worker::job_history`]).
pub const HISTORY_LEN: usize = 50;

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
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The worker key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A job task panicked or was lost (a host bug).
    #[error("job task failed: {0}")]
    Task(String),
}

/// How one attempt ended.
enum Ran {
    /// The job has its result (stored now, or found from before a crash).
    Finished {
        /// Whether it failed.
        failed: bool,
    },
    /// The worker stopped it; it stays queued.
    Interrupted,
}

/// What job tasks share with the loop.
struct Shared {
    config: WorkerConfig,
    key: WorkerKey,
    runtime: Arc<Runtime>,
    spool: Spool,
    journal: SharedJournal,
    /// Last attempt number per job, from the journal and this run.
    attempts: Mutex<HashMap<String, u32>>,
    /// Attempts per job that never ended, from the journal.
    crashes: HashMap<String, u32>,
    activity: watch::Sender<Option<Activity>>,
    /// Every running job, by id.
    running: watch::Sender<BTreeMap<String, RunningJob>>,
    /// Each job's end, as it is journaled.
    ended: broadcast::Sender<FinishedJob>,
    /// Counts results stored (for whoever reports them).
    finished: watch::Sender<u64>,
    /// Wakes the loop when a job was queued (instead of waiting for the poll).
    wake: Arc<Notify>,
}

impl Shared {
    fn log(&self, event: Event) -> Result<(), WorkerError> {
        Ok(self.journal.append(event)?)
    }

    /// Journals a job's end and tells the owner's status about it.
    fn log_finished(&self, job: FinishedJob, attempt: u32) -> Result<(), WorkerError> {
        self.log(Event::Finished {
            job: job.job.clone(),
            attempt,
            status: job.status.clone(),
            reason: job.reason.clone(),
            kind: Some(job.kind.clone()),
            failure: job.failure.clone(),
            duration_s: job.duration_s,
        })?;
        // Nobody listening is fine.
        let _ = self.ended.send(job);
        Ok(())
    }

    fn next_attempt(&self, job: &str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let next = attempts.get(job).map_or(0, |a| a + 1);
        attempts.insert(job.to_string(), next);
        next
    }

    fn last_attempt(&self, job: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job)
            .copied()
            .unwrap_or(0)
    }
}

/// One GPU's share of the scheduler.
struct Slot {
    gpu: Arc<GpuProvider>,
    running: usize,
    miner: Option<Miner>,
    idle_since: Instant,
    /// Miner runs in a row that ended by themselves without hashing.
    miner_failures: u32,
}

/// The worker's live state as `watch` channels: the one bundle the
/// coordinator side, the status page and the status line read
/// ([`Worker::watch`]).
#[derive(Clone)]
pub struct WorkerWatch {
    /// What the worker does: a job, mining, or nothing.
    pub activity: watch::Receiver<Option<Activity>>,
    /// Running jobs by id, with their progress.
    pub running: watch::Receiver<BTreeMap<String, RunningJob>>,
    /// The miner's figures while it mines.
    pub mining: watch::Receiver<Option<MiningSummary>>,
    /// Count of results stored, bumped on each.
    pub finished: watch::Receiver<u64>,
    /// The spool's disk use.
    pub spool_usage: watch::Receiver<SpoolUsage>,
    /// Each GPU slot's device provider, for its health.
    pub gpu_slots: Vec<Arc<GpuProvider>>,
}

/// The worker: config, runtime, GPUs, spool and journal.
pub struct Worker {
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    mining: Option<MiningPlan>,
    /// `None` for ever, for a worker that does not mine.
    no_mining: watch::Sender<Option<MiningSummary>>,
    /// The last finished jobs in the journal when the worker opened it.
    history: Vec<FinishedJob>,
    /// The spool's disk use, measured every [`SPOOL_MEASURE_INTERVAL`].
    spool_usage: watch::Sender<SpoolUsage>,
    measured: Option<Instant>,
}

/// How often the worker measures the spool's disk use.
pub const SPOOL_MEASURE_INTERVAL: Duration = Duration::from_secs(10);

impl Worker {
    /// Opens the spool's journal; `gpus` has one provider per configured GPU.
    pub fn new(
        config: WorkerConfig,
        runtime: Arc<Runtime>,
        gpus: Vec<Arc<GpuProvider>>,
        spool: Spool,
    ) -> Result<Self, WorkerError> {
        let path = spool.journal_path();
        let (journal, history) = Journal::open(&path).map_err(|source| JournalError {
            path: path.clone(),
            source,
        })?;
        let attempts = journal::last_attempts(&history);
        let journal::AttemptEnds {
            crashes,
            unfinished,
        } = journal::attempt_ends(&history);
        let finished_history = journal::finished_jobs(&history, HISTORY_LEN);
        let key = WorkerKey::load_or_create(&config.key_file)?;
        tracing::info!(public_key = %key.public_hex(), "worker key");
        let mut shared = Shared {
            key,
            config,
            runtime,
            spool,
            journal: SharedJournal::new(journal),
            attempts: Mutex::new(attempts),
            crashes,
            activity: watch::channel(None).0,
            running: watch::channel(BTreeMap::new()).0,
            ended: broadcast::channel(256).0,
            finished: watch::channel(0).0,
            wake: Arc::new(Notify::new()),
        };
        shared.log(Event::WorkerStarted {
            worker: shared.config.worker_id.to_string(),
        })?;
        // Killed after a job was published to done/ but before `finished`
        // was journaled: the result is there, so the attempt ended.
        for id in unfinished {
            let result = shared.spool.done_dir(&id).join("result.json");
            if shared.spool.root().join("running").join(&id).exists() || !result.exists() {
                continue;
            }
            let kind = pictor_runtime::jobs::spec::JobSpec::from_file(
                &shared.spool.done_dir(&id).join("spec.json"),
            )
            .map(|s| s.kind)
            .unwrap_or_default();
            let attempt = shared.last_attempt(&id);
            shared.log_finished(recovered_end(&id, kind, &result), attempt)?;
            if let Some(n) = shared.crashes.get_mut(&id) {
                *n = n.saturating_sub(1);
            }
        }
        let slots = gpus
            .into_iter()
            .map(|gpu| Slot {
                gpu,
                running: 0,
                miner: None,
                idle_since: Instant::now(),
                miner_failures: 0,
            })
            .collect();
        let mut worker = Worker {
            shared: Arc::new(shared),
            slots,
            mining: None,
            no_mining: watch::channel(None).0,
            history: finished_history,
            spool_usage: watch::channel(SpoolUsage::default()).0,
            measured: None,
        };
        // Measured before anything leases or claims a job.
        worker.spool_has_room();
        Ok(worker)
    }

    /// Mines with `plan` on each GPU that has been idle for its delay.
    pub fn with_mining(mut self, plan: MiningPlan) -> Self {
        self.mining = Some(plan);
        self
    }

    /// The worker's live state, as one bundle of channels.
    pub fn watch(&self) -> WorkerWatch {
        WorkerWatch {
            activity: self.activity(),
            running: self.running_jobs(),
            mining: self.mining_stats(),
            finished: self.finished_jobs(),
            spool_usage: self.spool_usage(),
            gpu_slots: self.gpu_slots(),
        }
    }

    /// The mining figures (hashrate, shares, pool), for the status line,
    /// the status page and metrics; `None` when this worker does not mine.
    /// Call it after [`with_mining`](Self::with_mining).
    pub fn mining_stats(&self) -> watch::Receiver<Option<MiningSummary>> {
        match &self.mining {
            Some(plan) => plan.stats(),
            None => self.no_mining.subscribe(),
        }
    }

    /// What the worker is doing (`None`: idle), for the status line.
    pub fn activity(&self) -> watch::Receiver<Option<Activity>> {
        self.shared.activity.subscribe()
    }

    /// Each running job with its progress, by job id (for lease
    /// heartbeats and the status page).
    pub fn running_jobs(&self) -> watch::Receiver<BTreeMap<String, RunningJob>> {
        self.shared.running.subscribe()
    }

    /// The last finished jobs of earlier runs (up to [`HISTORY_LEN`], oldest
    /// first), from the journal.
    pub fn job_history(&self) -> &[FinishedJob] {
        &self.history
    }

    /// Each job's end from now on, as it is journaled.
    pub fn ended_jobs(&self) -> broadcast::Receiver<FinishedJob> {
        self.shared.ended.subscribe()
    }

    /// Changes each time a job's result is stored in `done/`.
    pub fn finished_jobs(&self) -> watch::Receiver<u64> {
        self.shared.finished.subscribe()
    }

    /// Notify it after queueing a job so the worker claims it at once
    /// (without, it looks every [`POLL_INTERVAL`]).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.shared.wake)
    }

    /// Each GPU slot's device provider (for its health).
    pub fn gpu_slots(&self) -> Vec<Arc<GpuProvider>> {
        self.slots.iter().map(|s| Arc::clone(&s.gpu)).collect()
    }

    /// The worker's public key, hex (registered with the coordinator).
    pub fn public_key(&self) -> String {
        self.shared.key.public_hex()
    }

    /// The worker's journal, for other parts of the process (the network
    /// source) to record their state changes in the same file.
    pub fn journal(&self) -> SharedJournal {
        self.shared.journal.clone()
    }

    async fn stop_miner(&mut self, slot: usize, reason: &str) -> Result<(), WorkerError> {
        let Some(miner) = self.slots[slot].miner.take() else {
            return Ok(());
        };
        let stopped = miner.stop(&self.slots[slot].gpu).await;
        let report = &stopped.report;
        let reason = match stopped.outcome.as_ref().and_then(|o| o.failure.as_ref()) {
            Some(f) if reason == "ended" => {
                // A miner only ends by itself when it cannot mine: wait
                // longer before each new try unless it got to hash.
                let s = &mut self.slots[slot];
                s.miner_failures = if report.hashes > 0 {
                    1
                } else {
                    s.miner_failures + 1
                };
                let retry = self
                    .mining
                    .as_ref()
                    .map_or(Duration::ZERO, |p| p.idle_delay)
                    .max(miner_retry_delay(s.miner_failures));
                tracing::warn!(gpu = slot, reason = %f.message, retry_s = retry.as_secs_f64(), "miner ended by itself; it starts again later");
                format!("failed: {}", f.message)
            }
            _ => {
                if report.hashes > 0 {
                    self.slots[slot].miner_failures = 0;
                }
                reason.to_string()
            }
        };
        tracing::info!(
            gpu = slot,
            %reason,
            latency_ms = stopped.latency_ms,
            hashrate = %format_hashrate(report.hashrate_hps),
            accepted = report.accepted,
            rejected = report.rejected,
            "mining stopped"
        );
        self.shared.activity.send_replace(None);
        self.shared.log(Event::MiningStopped {
            gpu: slot,
            reason,
            latency_ms: stopped.latency_ms,
            last_report: stopped.last_report,
            hashrate_hps: report.hashrate_hps,
            accepted: report.accepted,
            rejected: report.rejected,
        })
    }

    fn start_miner(&mut self, slot: usize) -> Result<(), WorkerError> {
        let Some(plan) = &self.mining else {
            return Ok(());
        };
        let dir = self
            .shared
            .spool
            .root()
            .join("mining")
            .join(slot.to_string());
        match plan.start(
            slot,
            &dir,
            Arc::clone(&self.slots[slot].gpu),
            self.shared.activity.clone(),
        ) {
            Ok(miner) => {
                self.slots[slot].miner = Some(miner);
                tracing::info!(gpu = slot, "mining started");
                self.shared.log(Event::MiningStarted {
                    gpu: slot,
                    plugin: plan.plugin_digest(),
                })
            }
            Err(e) => {
                tracing::warn!(gpu = slot, error = %e, "mining not started");
                self.slots[slot].idle_since = Instant::now();
                Ok(())
            }
        }
    }

    /// The spool's disk use (measured by the worker loop).
    pub fn spool_usage(&self) -> watch::Receiver<SpoolUsage> {
        self.spool_usage.subscribe()
    }

    /// Measures the spool if it is time; true if a new job may be claimed.
    fn spool_has_room(&mut self) -> bool {
        if self
            .measured
            .is_none_or(|t| t.elapsed() >= SPOOL_MEASURE_INTERVAL)
        {
            let usage = SpoolUsage {
                bytes: self.shared.spool.disk_usage(),
                limit: self.shared.config.spool_bytes,
            };
            let was_full = self.spool_usage.borrow().full();
            if usage.full() && !was_full {
                tracing::warn!(
                    bytes = usage.bytes,
                    limit = usage.limit,
                    "the spool is full (limits.spool_mib): no new job is claimed until results are reported or done/ is cleared"
                );
            } else if was_full && !usage.full() {
                tracing::info!(bytes = usage.bytes, "the spool has room again");
            }
            self.spool_usage.send_replace(usage);
            self.measured = Some(Instant::now());
        }
        !self.spool_usage.borrow().full()
    }

    /// The next job to run: resumed ones first, then queued ones in order
    /// (while the spool has room).
    fn next_job(&mut self, resume: &mut Vec<Claimed>) -> Result<Option<Claimed>, WorkerError> {
        if let Some(job) = resume.pop() {
            return Ok(Some(job));
        }
        if !self.spool_has_room() {
            return Ok(None);
        }
        while let Some(path) = self.shared.spool.next_incoming()? {
            if let Some(job) = self.shared.spool.claim(&path)? {
                self.shared.log(Event::Claimed {
                    job: job.spec.id.clone(),
                    kind: job.spec.kind.clone(),
                })?;
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// Runs until `stop` fires, or, with `until_idle`, until nothing is
    /// queued or running.
    pub async fn run(
        mut self,
        until_idle: bool,
        stop: CancellationToken,
    ) -> Result<RunSummary, WorkerError> {
        let mut summary = RunSummary::default();
        let mut resume = self.shared.spool.running()?;
        resume.reverse();
        let mut tasks: JoinSet<(usize, Result<Ran, WorkerError>)> = JoinSet::new();
        let per_gpu = self.shared.config.jobs_per_gpu as usize;
        loop {
            let stopping = stop.is_cancelled();
            // Fill free slots (least busy GPU first), preempting its miner.
            while !stop.is_cancelled() {
                let Some(slot) = (0..self.slots.len())
                    .filter(|&s| self.slots[s].running < per_gpu)
                    .min_by_key(|&s| self.slots[s].running)
                else {
                    break;
                };
                let Some(job) = self.next_job(&mut resume)? else {
                    break;
                };
                self.stop_miner(slot, "preempted").await?;
                self.slots[slot].running += 1;
                let (shared, gpu, stop) = (
                    Arc::clone(&self.shared),
                    Arc::clone(&self.slots[slot].gpu),
                    stop.clone(),
                );
                tasks.spawn(async move { (slot, run_one(&shared, slot, gpu, job, stop).await) });
            }
            if tasks.is_empty() && (until_idle || stopping) {
                break;
            }
            // Mining on idle GPUs.
            for slot in 0..self.slots.len() {
                if self.slots[slot].miner.as_ref().is_some_and(Miner::ended) {
                    self.stop_miner(slot, "ended").await?;
                    self.slots[slot].idle_since = Instant::now();
                }
                let idle = self.slots[slot].running == 0 && self.slots[slot].miner.is_none();
                let wait = |p: &MiningPlan| {
                    p.idle_delay
                        .max(miner_retry_delay(self.slots[slot].miner_failures))
                };
                let due = self
                    .mining
                    .as_ref()
                    .is_some_and(|p| self.slots[slot].idle_since.elapsed() >= wait(p));
                if idle && due && !stopping && !until_idle {
                    self.start_miner(slot)?;
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let (slot, ran) = joined.map_err(|e| WorkerError::Task(e.to_string()))?;
                    self.slots[slot].running -= 1;
                    if self.slots[slot].running == 0 {
                        self.slots[slot].idle_since = Instant::now();
                    }
                    match ran? {
                        Ran::Finished { failed } => {
                            summary.finished += 1;
                            summary.failed += u32::from(failed);
                        }
                        Ran::Interrupted => summary.interrupted += 1,
                    }
                }
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = self.shared.wake.notified() => {}
                () = stop.cancelled(), if !stopping => {}
            }
        }
        for slot in 0..self.slots.len() {
            self.stop_miner(slot, "stopping").await?;
        }
        self.shared.log(Event::WorkerStopped)?;
        Ok(summary)
    }
}

/// Runs one attempt of `job` on GPU `slot` (or publishes a result a crash
/// left behind).
async fn run_one(
    shared: &Shared,
    slot: usize,
    gpu: Arc<GpuProvider>,
    job: Claimed,
    stop: CancellationToken,
) -> Result<Ran, WorkerError> {
    let id = job.spec.id.clone();
    if job.dir.join("result.json").exists() {
        shared.spool.publish(&job)?;
        let attempt = shared.last_attempt(&id);
        let end = recovered_end(
            &id,
            job.spec.kind.clone(),
            &shared.spool.done_dir(&id).join("result.json"),
        );
        shared.log_finished(end, attempt)?;
        shared.finished.send_modify(|n| *n += 1);
        return Ok(Ran::Finished { failed: false });
    }
    let attempt = shared.next_attempt(&id);
    shared.log(Event::Started {
        job: id.clone(),
        attempt,
        gpu: slot,
    })?;
    tracing::info!(job = %id, kind = %job.spec.kind, attempt, gpu = slot, "job started");

    let crashes = shared.crashes.get(&id).copied().unwrap_or(0);
    let prepared = if crashes >= MAX_LOCAL_CRASHES {
        tracing::error!(job = %id, crashes, "the job stopped this worker every time it ran; failing it instead of running it again");
        Err(JobFailure::new(
            FailureKind::WorkerCrash,
            format!(
                "{crashes} attempts of this job ended with the worker itself stopping (crash, hang or kill); not run again here"
            ),
        ))
    } else if shared.spool.cancel_requested(&id) {
        Err(JobFailure::new(
            FailureKind::Cancelled,
            "cancelled before it started",
        ))
    } else {
        prepare(shared, &job)
    };
    let outcome = match prepared {
        Err(failure) => refused(&job, attempt, failure),
        Ok((dirs, plugin, limits)) => {
            let control = Arc::new(JobControl::default());
            let (progress_tx, mut progress_rx) = watch::channel(Progress::default());
            let provider = Arc::clone(&gpu);
            let mut run = JobRun::new(&job.spec, &dirs).with_gpu(gpu);
            run.limits = limits;
            run.attempt = attempt;
            run.checkpoint = CheckpointStore::File(job.checkpoint());
            run.control = Arc::clone(&control);
            run.progress = progress_tx;
            let since = Instant::now();
            shared.running.send_modify(|jobs| {
                jobs.insert(
                    id.clone(),
                    RunningJob {
                        kind: job.spec.kind.clone(),
                        gpu: slot,
                        since,
                        progress: Progress::default(),
                    },
                );
            });
            let forward = tokio::spawn({
                let (status, label) = (
                    shared.activity.clone(),
                    format!("job {id} ({})", job.spec.kind),
                );
                let (running, id) = (shared.running.clone(), id.clone());
                status.send_replace(Some(Activity {
                    label: label.clone(),
                    progress: Progress::default(),
                    since,
                }));
                async move {
                    while progress_rx.changed().await.is_ok() {
                        let progress = progress_rx.borrow_and_update().clone();
                        running.send_modify(|jobs| {
                            if let Some(job) = jobs.get_mut(&id) {
                                job.progress = progress.clone();
                            }
                        });
                        status.send_replace(Some(Activity {
                            label: label.clone(),
                            progress,
                            since,
                        }));
                    }
                }
            });
            // On a worker stop or a cancel request for this job: ask the
            // plugin to stop (it may checkpoint), then force it.
            let stopper = tokio::spawn({
                let (control, stop, spool, id) = (
                    Arc::clone(&control),
                    stop.clone(),
                    shared.spool.clone(),
                    id.clone(),
                );
                async move {
                    while !stop.is_cancelled() && !spool.cancel_requested(&id) {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = tokio::time::sleep(POLL_INTERVAL) => {}
                        }
                    }
                    control.request_cancel();
                    tokio::time::sleep(STOP_GRACE).await;
                    control.stop(Interruption::Cancelled);
                }
            });
            let outcome = run_job(&plugin, run).await;
            if provider.overran() {
                // A kernel outlived its GPU time: settle the slot now, so its
                // health (status page, heartbeat, leasing) is current before
                // the next GPU job asks for the device.
                tokio::task::spawn_blocking(move || provider.settle());
            }
            forward.abort();
            stopper.abort();
            shared.running.send_modify(|jobs| {
                jobs.remove(&id);
            });
            shared.activity.send_replace(None);
            outcome
        }
    };

    let cancelled = outcome
        .failure
        .as_ref()
        .is_some_and(|f| f.kind == FailureKind::Cancelled);
    if stop.is_cancelled() && cancelled && !shared.spool.cancel_requested(&id) {
        shared.log(Event::Interrupted {
            job: id.clone(),
            attempt,
            reason: "worker stopping".into(),
        })?;
        tracing::info!(job = %id, "job interrupted; it resumes from its checkpoint on the next start");
        return Ok(Ran::Interrupted);
    }
    if outcome.outputs.is_empty() {
        // Nothing in it is an output (a refused tree, say): none of it stays.
        let emptied = pictor_runtime::jobs::tree::remove_all(&job.output())
            .and_then(|()| std::fs::create_dir_all(job.output()));
        if let Err(error) = emptied {
            tracing::warn!(job = %id, %error, "output folder not removed");
        }
    }
    let proof = shared.key.sign(crate::proof::manifest(
        &shared.config.worker_id,
        &job.spec,
        &outcome,
    ));
    shared.spool.finish(&job, &outcome, Some(&proof))?;
    shared.spool.clear_cancel(&id);
    let end = FinishedJob {
        job: id.clone(),
        kind: job.spec.kind.clone(),
        status: outcome.status.to_string(),
        failure: outcome
            .failure
            .as_ref()
            .and_then(|f| serde_json::to_value(f.kind).ok())
            .and_then(|v| v.as_str().map(str::to_string)),
        reason: outcome.failure.as_ref().map(|f| f.message.clone()),
        duration_s: Some(outcome.duration_s),
        at_ms: journal::now_ms(),
    };
    shared.log_finished(end, attempt)?;
    shared.finished.send_modify(|n| *n += 1);
    match &outcome.failure {
        None => {
            tracing::info!(job = %id, secs = outcome.duration_s, outputs = outcome.outputs.len(), "job succeeded")
        }
        Some(f) => tracing::warn!(job = %id, reason = %f.message, "job failed"),
    }
    Ok(Ran::Finished {
        failed: !outcome.succeeded(),
    })
}

/// Checks the job is accepted, its files match their digests, stages its
/// inputs into a fresh folder and loads its plugin.
fn prepare(
    shared: &Shared,
    job: &Claimed,
) -> Result<(JobDirs, pictor_runtime::LoadedPlugin, JobLimits), JobFailure> {
    let spec = &job.spec;
    if let Some(kinds) = &shared.config.job_kinds
        && !kinds.iter().any(|kind| *kind == spec.kind.as_str())
    {
        return Err(JobFailure::new(
            FailureKind::Unsupported,
            format!("this worker does not accept `{}` jobs", spec.kind),
        ));
    }
    let ceiling = JobLimits::default().with(&shared.config.job_limits);
    let limits = JobLimits::within(&ceiling, &spec.limits).map_err(|reason| {
        // Another worker may allow more: give it back.
        let mut failure = JobFailure::new(FailureKind::Unsupported, reason.to_string());
        failure.retryable = true;
        failure
    })?;
    let plugin = spec.plugin.as_ref().ok_or_else(|| {
        JobFailure::new(FailureKind::InvalidParams, "the job spec names no `plugin`")
    })?;
    let sandbox = |e: &dyn std::fmt::Display| JobFailure::new(FailureKind::Sandbox, e.to_string());
    for dir in [job.input(), job.output()] {
        // A crashed attempt's output may be any shape a plugin made.
        pictor_runtime::jobs::tree::remove_all(&dir).map_err(|e| sandbox(&e))?;
        std::fs::create_dir_all(&dir).map_err(|e| sandbox(&e))?;
    }
    stage_inputs(spec, &job.input())
        .map_err(|e| JobFailure::new(FailureKind::InvalidInput, e.to_string()))?;
    let dirs = JobDirs::prepare(&job.input(), &job.output()).map_err(|e| sandbox(&e))?;
    let bytes = std::fs::read(&plugin.path).map_err(|e| {
        JobFailure::new(
            FailureKind::InvalidInput,
            format!("cannot read plugin {}: {e}", plugin.path.display()),
        )
    })?;
    let loaded = shared
        .runtime
        .load(&bytes)
        .map_err(|e| JobFailure::new(FailureKind::Instantiate, e.to_string()))?;
    if loaded.digest != plugin.sha256 {
        return Err(JobFailure::new(
            FailureKind::InvalidInput,
            format!(
                "sha256 mismatch for plugin {}: expected {}, got {}",
                plugin.path.display(),
                plugin.sha256,
                loaded.digest
            ),
        ));
    }
    Ok((dirs, loaded, limits))
}

/// The end of a job whose `result.json` (at `result`) a crash left
/// behind: what the file says, as far as it can be read.
fn recovered_end(id: &str, kind: String, result: &std::path::Path) -> FinishedJob {
    let recovered: Option<serde_json::Value> = std::fs::read(result)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let text = |key: &str| {
        recovered
            .as_ref()
            .and_then(|r| r["failure"][key].as_str().map(str::to_string))
    };
    FinishedJob {
        job: id.to_string(),
        kind,
        status: "recovered".into(),
        failure: text("kind"),
        reason: text("message"),
        duration_s: recovered.as_ref().and_then(|r| r["duration_s"].as_f64()),
        at_ms: journal::now_ms(),
    }
}

/// The outcome of a job refused before it ran.
fn refused(job: &Claimed, attempt: u32, failure: JobFailure) -> JobOutcome {
    let plugin = job
        .spec
        .plugin
        .as_ref()
        .map(|p| p.sha256)
        .unwrap_or_else(|| crate::digest::Sha256Digest::of(b""));
    JobOutcome::not_run(
        job.spec.id.clone(),
        job.spec.kind.clone(),
        plugin,
        attempt,
        failure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_miner_waits_longer_each_time_up_to_a_ceiling() {
        let delays: Vec<u64> = (0..8).map(|n| miner_retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 15, 30, 60, 120, 240, 480, 900]);
        assert_eq!(miner_retry_delay(u32::MAX), MINER_RETRY_MAX);
    }
}
