//! Tiny jobs through the network: a real `pictor-coordinator` on loopback,
//! `--workers` real `pictor-host run` workers (one job at a time each) and
//! `--jobs` `hello` jobs with one small input each, all submitted before
//! the workers start.
//!
//! From the workers' journals: jobs/s from the first `leased` to the last
//! `reported` record across workers, and per job the overhead from lease
//! to completion acknowledged (`reported − leased`), split into lease →
//! start, the plugin run (`started → finished`) and finish → acknowledged.
//!
//! Baseline, same run: the same jobs through one worker's local spool
//! (`run --until-idle`, no coordinator), per job `claimed → finished`.
//! Printed: network jobs/s ÷ (local jobs/s × workers), and the network's
//! per-job overhead against the local per-job time. Every job must have
//! succeeded exactly once, with the expected output.
//!
//! Run: `cargo bench -p pictor-host --bench farm -- [--jobs 1000] [--workers 2] [--keep]`
//! (`--keep` leaves the working folder, with journals and logs, in place).

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{BoxError, Coordinator, host_command, log_tail, pictor_plugins, terminate};
use futures_util::StreamExt as _;
use pictor_host::journal::{Event, Record};
use pictor_host::spool::Spool;
use pictor_protocol::api::{self, InputBlob, JobList, JobState, SubmitJob};
use pictor_protocol::digest::Sha256Digest;
use serde_json::json;

const WALLET: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
const SUFFIX: &str = "\n-- processed\n";

fn main() -> Result<(), BoxError> {
    let (mut jobs, mut workers, mut keep) = (1000usize, 2usize, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => jobs = args.next().ok_or("--jobs needs a value")?.parse()?,
            "--workers" => workers = args.next().ok_or("--workers needs a value")?.parse()?,
            "--keep" => keep = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if jobs == 0 || workers == 0 {
        return Err("--jobs and --workers must be at least 1".into());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let hello = pictor_plugins(root)?.join("hello.wasm");
    let work = tempfile::Builder::new()
        .prefix("pictor-farm-")
        .disable_cleanup(keep)
        .tempdir()?;
    if keep {
        eprintln!("working folder (kept): {}", work.path().display());
    }
    let inputs: Vec<Vec<u8>> = (0..jobs)
        .map(|i| format!("tiny job number {i}\n").into_bytes())
        .collect();

    let local = run_local(work.path(), &hello, &inputs)?;
    let network = run_network(work.path(), &hello, &inputs, workers)?;

    let local_rate = jobs as f64 / local.span_s();
    let network_rate = jobs as f64 / network.span_s();
    println!("{jobs} tiny jobs (hello, one input of ~20 bytes each)");
    println!(
        "  local spool, 1 worker:       {:>7.3} s   {local_rate:>7.1} jobs/s",
        local.span_s()
    );
    println!(
        "  coordinator, {workers} worker(s):    {:>7.3} s   {network_rate:>7.1} jobs/s   jobs per worker {:?}",
        network.span_s(),
        network.per_worker
    );
    println!();
    println!("  per job (ms)                      p50      p99      max");
    row("  local claimed → finished", &local.per_job);
    row("    of which started → finished", &local.run);
    row("  network leased → reported", &network.per_job);
    row("    leased → started", &network.to_start);
    row("    started → finished (plugin)", &network.run);
    row("    finished → reported", &network.to_report);
    let run_share =
        network.run.iter().sum::<u64>() as f64 / network.per_job.iter().sum::<u64>().max(1) as f64;
    println!(
        "  plugin run share of leased → reported: {:.1} %",
        100.0 * run_share
    );
    println!();
    println!(
        "  scaling: network jobs/s ÷ (local jobs/s × {workers}) = {:.3}",
        network_rate / (local_rate * workers as f64)
    );
    println!(
        "  per-job overhead: network p50 leased → reported ÷ local p50 claimed → finished = {:.1}x",
        pct(&network.per_job, 0.5) as f64 / pct(&local.per_job, 0.5).max(1) as f64
    );
    Ok(())
}

/// Per-job times (ms, sorted) and the span of a run from its journals.
struct Timings {
    first_ms: u64,
    last_ms: u64,
    /// Claimed → finished (local) or leased → reported (network).
    per_job: Vec<u64>,
    /// Leased → started (network only).
    to_start: Vec<u64>,
    /// Started → finished: the plugin run.
    run: Vec<u64>,
    /// Finished → reported (network only).
    to_report: Vec<u64>,
    /// Jobs each worker completed (network only).
    per_worker: Vec<usize>,
}

impl Timings {
    fn span_s(&self) -> f64 {
        (self.last_ms.saturating_sub(self.first_ms)).max(1) as f64 / 1e3
    }
}

fn row(label: &str, sorted: &[u64]) {
    println!(
        "{label:<32} {:>8} {:>8} {:>8}",
        pct(sorted, 0.5),
        pct(sorted, 0.99),
        sorted.last().copied().unwrap_or(0)
    );
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn job_id(i: usize) -> String {
    format!("tiny-{i:05}")
}

/// The records of a journal; a torn last line (a worker mid-write) is skipped.
fn journal(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The baseline: every job queued in one local spool, then one
/// `run --until-idle` (after a warm-up `exec` so the compiled plugin is
/// cached for both runs alike).
fn run_local(work: &Path, hello: &Path, inputs: &[Vec<u8>]) -> Result<Timings, BoxError> {
    let dir = work.join("local");
    std::fs::create_dir_all(dir.join("specs"))?;
    let spool = Spool::open(&dir.join("spool"))?;
    let mut specs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let input_path = dir.join("specs").join(format!("{i}.txt"));
        std::fs::write(&input_path, input)?;
        let spec = json!({
            "version": 1, "id": job_id(i), "kind": "hello", "params": {"suffix": SUFFIX}, "seed": 1,
            "inputs": [{"name": "in.txt", "path": input_path, "sha256": Sha256Digest::of(input).to_string()}],
            "limits": {"timeout_s": 60}
        });
        let spec_path = dir.join("specs").join(format!("{i}.json"));
        std::fs::write(&spec_path, spec.to_string())?;
        specs.push(spec_path);
    }
    let warm_up = host_command(work)
        .arg("exec")
        .arg("--plugin")
        .arg(hello)
        .arg("--job")
        .arg(&specs[0])
        .arg("--output")
        .arg(dir.join("warm-up"))
        .arg("--json")
        .output()?;
    if !warm_up.status.success() {
        return Err(format!(
            "warm-up exec failed:\n{}",
            String::from_utf8_lossy(&warm_up.stderr)
        )
        .into());
    }
    for spec in &specs {
        spool.submit(spec, Some(hello))?;
    }
    let config = json!({
        "version": 1, "worker": {"id": "wkr-local"}, "wallet": WALLET, "coordinator": {"spool": "spool"},
        "limits": {"job_kinds": ["hello"], "jobs_per_gpu": 1}
    });
    std::fs::write(dir.join("worker.json"), config.to_string())?;
    let log_path = dir.join("worker.log");
    let status = host_command(work)
        .args(["run", "--until-idle", "--config"])
        .arg(dir.join("worker.json"))
        .stdout(Stdio::null())
        .stderr(File::create(&log_path)?)
        .status()?;
    if !status.success() {
        return Err(format!(
            "the local worker exited with {status}:\n{}",
            log_tail(&log_path, 30)
        )
        .into());
    }

    let records = journal(&dir.join("spool/journal.jsonl"));
    let (mut claimed, mut started, mut finished) = (HashMap::new(), HashMap::new(), HashMap::new());
    for r in &records {
        match &r.event {
            Event::Claimed { job, .. } => {
                claimed.insert(job.clone(), r.at_ms);
            }
            Event::Started { job, .. } => {
                started.insert(job.clone(), r.at_ms);
            }
            Event::Finished { job, status, .. } if status == "succeeded" => {
                finished.insert(job.clone(), r.at_ms);
            }
            _ => {}
        }
    }
    if finished.len() != inputs.len() {
        return Err(format!(
            "{} of {} local jobs succeeded:\n{}",
            finished.len(),
            inputs.len(),
            log_tail(&log_path, 30)
        )
        .into());
    }
    let mut t = Timings {
        first_ms: claimed.values().copied().min().unwrap_or(0),
        last_ms: finished.values().copied().max().unwrap_or(0),
        per_job: Vec::new(),
        to_start: Vec::new(),
        run: Vec::new(),
        to_report: Vec::new(),
        per_worker: vec![finished.len()],
    };
    for (job, &end) in &finished {
        let (Some(&claim), Some(&start)) = (claimed.get(job), started.get(job)) else {
            return Err(format!("local job {job} finished without claimed/started records").into());
        };
        t.per_job.push(end - claim);
        t.run.push(end - start);
    }
    t.per_job.sort_unstable();
    t.run.sort_unstable();
    Ok(t)
}

/// A `pictor-host run` worker of the coordinator, stopped when dropped.
struct Worker {
    dir: PathBuf,
    child: Child,
}

impl Worker {
    fn start(work: &Path, dir: PathBuf, coordinator: &Coordinator) -> Result<Self, BoxError> {
        std::fs::create_dir_all(&dir)?;
        let id = dir
            .file_name()
            .ok_or("worker folder has no name")?
            .to_string_lossy()
            .into_owned();
        let config = json!({
            "version": 1, "worker": {"id": id, "name": format!("bench {id}")}, "wallet": WALLET,
            "coordinator": {"url": coordinator.url, "token": coordinator.token("worker")?, "spool": "data"},
            "limits": {"job_kinds": ["hello"], "jobs_per_gpu": 1},
            "prices": {"hello": 0.01}
        });
        std::fs::write(dir.join("worker.json"), config.to_string())?;
        let child = host_command(work)
            .args(["run", "--config"])
            .arg(dir.join("worker.json"))
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("worker.log"))?)
            .spawn()?;
        Ok(Worker { dir, child })
    }

    fn journal(&self) -> Vec<Record> {
        journal(&self.dir.join("data/journal.jsonl"))
    }

    fn log_tail(&self) -> String {
        log_tail(&self.dir.join("worker.log"), 30)
    }

    /// An error if it has exited (it should serve until stopped).
    fn check_alive(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                Err(format!("a worker exited with {status}:\n{}", self.log_tail()).into())
            }
        }
    }

    /// SIGTERM; an error unless it exits cleanly.
    fn stop(mut self) -> Result<(), BoxError> {
        match terminate(&mut self.child, Duration::from_secs(30)) {
            Some(status) if status.success() => Ok(()),
            status => Err(format!(
                "a worker did not stop cleanly ({status:?}):\n{}",
                self.log_tail()
            )
            .into()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(30));
    }
}

/// Submits every job (plugin uploaded once, one input blob per job), then
/// starts the workers and waits until every job is final and reported.
fn run_network(
    work: &Path,
    hello: &Path,
    inputs: &[Vec<u8>],
    workers: usize,
) -> Result<Timings, BoxError> {
    let dir = work.join("network");
    std::fs::create_dir_all(&dir)?;
    let coordinator = Coordinator::start(&dir.join("coordinator"), &[])?;
    let creator = coordinator.creator()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let t = Instant::now();
    tokio.block_on(async {
        let plugin = creator.put_blob(std::fs::read(hello)?).await?;
        let submissions = inputs.iter().enumerate().map(|(i, input)| {
            let (creator, plugin) = (&creator, plugin.clone());
            async move {
                let blob = creator.put_blob(input.clone()).await?;
                let job = SubmitJob {
                    id: Some(job_id(i)),
                    kind: "hello".into(),
                    plugin,
                    inputs: vec![InputBlob {
                        name: "in.txt".into(),
                        sha256: blob.sha256,
                        size: blob.size,
                    }],
                    params: json!({"suffix": SUFFIX}),
                    seed: 1,
                    limits: json!({"timeout_s": 60}),
                    price: Some(0.01),
                    replicas: 1,
                    max_attempts: 3,
                };
                let response = creator
                    .request(reqwest::Method::POST, &api::paths::jobs())
                    .json(&job)
                    .send()
                    .await?;
                let status = response.status();
                if !status.is_success() {
                    return Err(format!(
                        "submitting {}: HTTP {status}: {}",
                        job_id(i),
                        response.text().await?
                    )
                    .into());
                }
                Ok::<(), BoxError>(())
            }
        });
        let mut submitted = futures_util::stream::iter(submissions).buffer_unordered(8);
        while let Some(result) = submitted.next().await {
            result?;
        }
        Ok::<(), BoxError>(())
    })?;
    eprintln!(
        "submitted {} jobs in {:.1} s; starting {workers} worker(s)",
        inputs.len(),
        t.elapsed().as_secs_f64()
    );

    let mut farm = (0..workers)
        .map(|n| Worker::start(work, dir.join(format!("wkr-{n}")), &coordinator))
        .collect::<Result<Vec<_>, _>>()?;
    let limit =
        Duration::from_secs(120) + Duration::from_secs(inputs.len() as u64 * 2 / workers as u64);
    let (t, mut last_note) = (Instant::now(), Instant::now());
    let list = |query: &str| {
        let request = creator.request(
            reqwest::Method::GET,
            &format!("{}?{query}", api::paths::jobs()),
        );
        tokio.block_on(async {
            Ok::<JobList, BoxError>(request.send().await?.error_for_status()?.json().await?)
        })
    };
    let reported = |farm: &[Worker]| {
        farm.iter()
            .flat_map(Worker::journal)
            .filter(|r| matches!(r.event, Event::Reported { .. }))
            .count()
    };
    // Every job final and its report journalled (the journal line follows
    // the coordinator's reply).
    let jobs = loop {
        for worker in &mut farm {
            worker.check_alive()?;
        }
        if list("state=queued&limit=1")?.jobs.is_empty()
            && list("state=running&limit=1")?.jobs.is_empty()
        {
            let all = list("limit=100000")?.jobs;
            if all.iter().all(|j| j.state.is_final()) && reported(&farm) >= all.len() {
                break all;
            }
        }
        if t.elapsed() > limit {
            let logs: Vec<String> = farm.iter().map(Worker::log_tail).collect();
            return Err(format!(
                "jobs not done after {limit:?}\n{}\n{}",
                coordinator.log_tail(30),
                logs.join("\n")
            )
            .into());
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {} of {} jobs reported after {:.0} s",
                reported(&farm),
                inputs.len(),
                t.elapsed().as_secs_f64()
            );
            last_note = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let journals: Vec<Vec<Record>> = farm.iter().map(Worker::journal).collect();
    for worker in farm {
        worker.stop()?;
    }
    coordinator.stop()?;

    // Every job succeeded exactly once, with the expected output.
    if jobs.len() != inputs.len() {
        return Err(format!(
            "the coordinator lists {} jobs, {} were submitted",
            jobs.len(),
            inputs.len()
        )
        .into());
    }
    let mut retried = 0;
    for job in &jobs {
        let i: usize = job
            .job_id
            .strip_prefix("tiny-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unknown job {}", job.job_id))?;
        let expected = Sha256Digest::of(&[&inputs[i][..], SUFFIX.as_bytes()].concat());
        let output_ok = job
            .outputs
            .iter()
            .any(|o| o.path == "in.txt.hello" && o.sha256 == expected);
        if job.state != JobState::Succeeded || job.proofs.len() != 1 || !output_ok {
            return Err(format!(
                "{}: {:?}, {} proof(s), expected output: {output_ok}, error {:?}",
                job.job_id,
                job.state,
                job.proofs.len(),
                job.error
            )
            .into());
        }
        retried += usize::from(job.attempts > 1);
    }
    let mut reports: HashMap<&str, usize> = HashMap::new();
    for r in journals.iter().flatten() {
        if let Event::Reported {
            job,
            report,
            duplicate: false,
        } = &r.event
            && report == "completed"
        {
            let job_id = job.rsplit_once('.').map_or(job.as_str(), |(id, _)| id);
            *reports.entry(job_id).or_default() += 1;
        }
    }
    if let Some(job) = jobs
        .iter()
        .find(|j| reports.get(j.job_id.as_str()) != Some(&1))
    {
        return Err(format!(
            "{} was reported {} times",
            job.job_id,
            reports.get(job.job_id.as_str()).unwrap_or(&0)
        )
        .into());
    }
    if retried > 0 {
        eprintln!("note: {retried} job(s) took more than one attempt");
    }

    let mut t = Timings {
        first_ms: u64::MAX,
        last_ms: 0,
        per_job: Vec::new(),
        to_start: Vec::new(),
        run: Vec::new(),
        to_report: Vec::new(),
        per_worker: Vec::new(),
    };
    for records in &journals {
        let mut at: HashMap<(&str, &str), u64> = HashMap::new();
        for r in records {
            let (job, event) = match &r.event {
                Event::Leased { job, .. } => (job, "leased"),
                Event::Started { job, .. } => (job, "started"),
                Event::Finished { job, .. } => (job, "finished"),
                Event::Reported {
                    job,
                    duplicate: false,
                    ..
                } => (job, "reported"),
                _ => continue,
            };
            at.entry((job.as_str(), event)).or_insert(r.at_ms);
        }
        let mut done = 0;
        for (&(job, event), &reported) in &at {
            if event != "reported" {
                continue;
            }
            let get = |e| {
                at.get(&(job, e))
                    .copied()
                    .ok_or_else(|| format!("lease {job} was reported without a {e} record"))
            };
            let (leased, started, finished) = (get("leased")?, get("started")?, get("finished")?);
            t.first_ms = t.first_ms.min(leased);
            t.last_ms = t.last_ms.max(reported);
            t.per_job.push(reported - leased);
            t.to_start.push(started - leased);
            t.run.push(finished - started);
            t.to_report.push(reported - finished);
            done += 1;
        }
        t.per_worker.push(done);
    }
    for samples in [
        &mut t.per_job,
        &mut t.to_start,
        &mut t.run,
        &mut t.to_report,
    ] {
        samples.sort_unstable();
    }
    Ok(t)
}
