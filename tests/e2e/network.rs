//! The network end to end, on loopback with the real binaries: a
//! `pictor-coordinator`, one or two `pictor-host run` workers, the sample
//! plugins. Faults: the coordinator restarted mid-run, a download cut
//! mid-way (resumed with Range), a corrupted blob (refused, fetched again),
//! a worker `kill -9`ed mid-job (lease expires, job reassigned), a wrong
//! signature (rejected). Each ends with every job complete exactly once
//! and every output digest checked against content computed here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pictor_protocol::api::{
    self, BlobRef, CompleteRequest, InputBlob, JobState, JobStatus, Lease, PROTOCOL_VERSION,
    RegisterRequest, SubmitJob, VERSION_HEADER,
};
use pictor_protocol::digest::Sha256Digest;
use pictor_protocol::proof::{self, InputDigest, OutputDigest, ResultManifest, SignedProof};
use serde_json::{Value, json};

use pictor_test_support::farm::CoordinatorProcess;

use crate::support::{coordinator_bin, host, plugin, scratch};

/// Runs an async API call to completion (the tests are synchronous). The
/// future is made inside the runtime, one runtime shared by all tests so
/// that pooled connections stay usable.
pub(crate) fn block<F: std::future::Future>(make: impl FnOnce() -> F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    runtime.block_on(async { make().await })
}

/// A coordinator process serving one data folder on a fixed port, and
/// the creator's and workers' calls the tests make to it.
pub(crate) struct Coordinator {
    process: CoordinatorProcess,
    http: reqwest::Client,
}

impl Coordinator {
    pub(crate) fn start(root: &Path, args: &[&str]) -> Self {
        let data = root.join("coordinator");
        Coordinator {
            process: CoordinatorProcess::start(coordinator_bin(), &data, args).unwrap(),
            http: pictor_host::blobs::http_client("e2e").unwrap(),
        }
    }

    /// Its data folder (tokens, store, blobs).
    pub(crate) fn data(&self) -> &Path {
        self.process.data()
    }

    /// `kill -9`, as a crash would.
    fn kill(&mut self) {
        self.process.kill();
    }

    fn restart(&mut self) {
        self.process.restart().unwrap();
    }

    pub(crate) fn log(&self) -> String {
        self.process.log()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url())
    }

    pub(crate) fn token(&self, which: &str) -> String {
        self.process.token(which).unwrap()
    }

    fn request(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
    }

    /// Uploads `bytes` as a blob (creator token).
    fn put_blob(&self, bytes: &[u8]) -> Sha256Digest {
        let sha = Sha256Digest::of(bytes);
        let response = block(|| {
            self.request(
                reqwest::Method::PUT,
                &api::paths::blob(&sha),
                &self.token("creator"),
            )
            .body(bytes.to_vec())
            .send()
        })
        .unwrap();
        assert!(
            response.status().is_success(),
            "upload: {}",
            response.status()
        );
        sha
    }

    /// Downloads a blob (again if a fault cut the first download).
    fn get_blob(&self, sha: &Sha256Digest) -> Vec<u8> {
        for _ in 0..3 {
            let response = block(|| {
                self.request(
                    reqwest::Method::GET,
                    &api::paths::blob(sha),
                    &self.token("creator"),
                )
                .send()
            })
            .unwrap();
            assert!(
                response.status().is_success(),
                "download {sha}: {}",
                response.status()
            );
            if let Ok(bytes) = block(|| response.bytes()) {
                return bytes.to_vec();
            }
        }
        panic!("blob {sha} could not be downloaded")
    }

    /// Submits a job running the sample plugin `plugin_name`.
    pub(crate) fn submit(
        &self,
        id: &str,
        plugin_name: &str,
        kind: &str,
        params: Value,
        inputs: &[(&str, &[u8])],
    ) {
        self.submit_limited(
            id,
            plugin_name,
            kind,
            params,
            inputs,
            json!({"timeout_s": 60}),
        );
    }

    /// [`submit`](Self::submit) with the job's own `limits`.
    pub(crate) fn submit_limited(
        &self,
        id: &str,
        plugin_name: &str,
        kind: &str,
        params: Value,
        inputs: &[(&str, &[u8])],
        limits: Value,
    ) {
        let plugin_bytes = std::fs::read(plugin(plugin_name)).unwrap();
        let plugin = BlobRef {
            sha256: self.put_blob(&plugin_bytes),
            size: plugin_bytes.len() as u64,
        };
        let inputs = inputs
            .iter()
            .map(|(name, bytes)| InputBlob {
                name: name.to_string(),
                sha256: self.put_blob(bytes),
                size: bytes.len() as u64,
            })
            .collect();
        let job = SubmitJob {
            id: Some(id.into()),
            kind: kind.into(),
            plugin,
            inputs,
            params,
            seed: 7,
            limits,
            price: Some(0.01),
            replicas: 1,
            max_attempts: 5,
        };
        let response = block(|| {
            self.request(
                reqwest::Method::POST,
                &api::paths::jobs(),
                &self.token("creator"),
            )
            .json(&job)
            .send()
        })
        .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "submit {id}: {status} {}",
            block(|| response.text()).unwrap()
        );
    }

    /// `GET path` as the creator, parsed.
    fn creator_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = block(|| {
            self.request(reqwest::Method::GET, path, &self.token("creator"))
                .send()
        })
        .unwrap();
        block(|| response.json()).unwrap()
    }

    /// What the coordinator shows of a worker (creator's view).
    fn worker_summary(&self, id: &str) -> api::WorkerSummary {
        self.creator_get(&api::paths::worker(id))
    }

    pub(crate) fn job(&self, id: &str) -> JobStatus {
        self.creator_get(&api::paths::job(id))
    }

    /// Waits until every job is final (the coordinator may be down meanwhile).
    fn wait_final(&self, ids: &[&str], workers: &[&Worker]) -> Vec<JobStatus> {
        let started = Instant::now();
        loop {
            let jobs: Option<Vec<JobStatus>> = ids
                .iter()
                .map(|id| {
                    let response = block(|| {
                        self.request(
                            reqwest::Method::GET,
                            &api::paths::job(id),
                            &self.token("creator"),
                        )
                        .send()
                    })
                    .ok()?;
                    block(|| response.json::<JobStatus>()).ok()
                })
                .collect();
            if let Some(jobs) = jobs
                && jobs.iter().all(|j| j.state.is_final())
            {
                return jobs;
            }
            if started.elapsed() > Duration::from_secs(120) {
                let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
                panic!(
                    "jobs not final after 120 s\ncoordinator:\n{}\nworkers:\n{}",
                    self.log(),
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A worker process with its own folder and key.
struct Worker {
    dir: PathBuf,
    child: Option<Child>,
}

impl Worker {
    fn start(root: &Path, id: &str, coordinator: &Coordinator) -> Self {
        Self::start_with(
            root,
            id,
            coordinator,
            json!({"job_kinds": ["hello", "probe"]}),
        )
    }

    /// A worker that accepts the job kinds `kinds`.
    fn start_taking(root: &Path, id: &str, coordinator: &Coordinator, kinds: &[&str]) -> Self {
        Self::start_with(root, id, coordinator, json!({"job_kinds": kinds}))
    }

    /// A worker whose `limits` has `limits` merged in (`job_kinds` given),
    /// pricing each of its kinds.
    fn start_with(root: &Path, id: &str, coordinator: &Coordinator, limits: Value) -> Self {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let kinds = limits["job_kinds"].as_array().unwrap();
        let prices: serde_json::Map<String, Value> = kinds
            .iter()
            .map(|k| (k.as_str().unwrap().to_string(), json!(0.01)))
            .collect();
        let mut all_limits = json!({"jobs_per_gpu": 1, "cache_mib": 256});
        for (k, v) in limits.as_object().unwrap() {
            all_limits[k] = v.clone();
        }
        let config = json!({
            "version": 1,
            "worker": {"id": id, "name": format!("test {id}")},
            "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "coordinator": {"url": coordinator.url(""), "token": coordinator.token("worker"), "spool": "data"},
            "limits": all_limits,
            "prices": prices
        });
        std::fs::write(dir.join("worker.json"), config.to_string()).unwrap();
        let mut worker = Worker { dir, child: None };
        worker.spawn();
        worker
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("worker.log"))
            .unwrap();
        let child = host()
            .args(["run", "--config"])
            .arg(self.dir.join("worker.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            let status = child.wait().unwrap();
            assert!(status.success(), "worker exit {status}:\n{}", self.log());
        }
    }

    fn log(&self) -> String {
        format!(
            "[{}]\n{}",
            self.dir.display(),
            std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
        )
    }

    fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("data/journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The public key the worker signs with (from its key file).
    fn public_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("worker.key")).unwrap();
        let seed: [u8; 32] = hex::decode(text.trim().trim_start_matches("pictor-worker-key-v1:"))
            .unwrap()
            .try_into()
            .unwrap();
        hex::encode(SigningKey::from_bytes(&seed).verifying_key().as_bytes())
    }

    fn wait_for_log(&self, what: &str, text: &str) {
        let started = Instant::now();
        while !self.log().contains(text) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for(&self, what: &str, mut ready: impl FnMut(&[Value]) -> bool) {
        let started = Instant::now();
        while !ready(&self.journal()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn hello_output(input: &[u8]) -> Vec<u8> {
    [input, b"\n-- processed\n"].concat()
}

fn hello_params() -> Value {
    json!({"suffix": "\n-- processed\n"})
}

fn steps_params(steps: u32, step_ms: u64) -> Value {
    json!({"check": "steps", "steps": steps, "step_ms": step_ms})
}

/// Every job succeeded exactly once: one accepted proof, signed by the key
/// of the worker it names, whose outputs download from the coordinator
/// with the digests it claims (and, for `expected`, the content computed
/// here); across all workers' journals exactly one first report per job.
fn assert_done_exactly_once(
    coordinator: &Coordinator,
    jobs: &[JobStatus],
    workers: &[&Worker],
    expected: &[(&str, &str, Vec<u8>)],
) {
    for job in jobs {
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "{}: {:?}",
            job.job_id,
            job.error
        );
        assert_eq!(job.proofs.len(), 1, "{}: one accepted result", job.job_id);
        let proof = &job.proofs[0];
        let signer = workers
            .iter()
            .find(|w| w.public_key() == proof.public_key)
            .expect("signed by one of the workers");
        proof.verify(Some(&signer.public_key())).unwrap();
        assert!(
            proof
                .manifest
                .job_id
                .starts_with(&format!("{}.", job.job_id)),
            "the proof is for a lease of the job"
        );
        for output in &proof.manifest.outputs {
            let bytes = coordinator.get_blob(&output.sha256);
            assert_eq!(
                Sha256Digest::of(&bytes),
                output.sha256,
                "{} {}",
                job.job_id,
                output.path
            );
            assert_eq!(bytes.len() as u64, output.size);
        }
        // The coordinator may commit a result a moment before the worker
        // has its reply and journals it (seen under load): wait for the
        // record, then check there is exactly one.
        let reports = || -> usize {
            workers
                .iter()
                .flat_map(|w| w.journal())
                .filter(|r| {
                    r["event"] == "reported"
                        && r["report"] == "completed"
                        && r["duplicate"] == false
                        && r["job"]
                            .as_str()
                            .is_some_and(|l| l.starts_with(&format!("{}.", job.job_id)))
                })
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reports() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(reports(), 1, "{}: reported once", job.job_id);
    }
    for (job_id, path, content) in expected {
        let job = jobs.iter().find(|j| j.job_id == *job_id).unwrap();
        let output = job
            .outputs
            .iter()
            .find(|o| o.path == *path)
            .unwrap_or_else(|| panic!("{job_id} has {path}"));
        assert_eq!(
            output.sha256,
            Sha256Digest::of(content),
            "{job_id} {path} content"
        );
    }
}

pub(crate) fn farm_root(name: &str) -> PathBuf {
    let root = scratch().join("network").join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

#[test]
fn two_workers_share_the_jobs_and_each_result_arrives_once() {
    let root = farm_root("share");
    let coordinator = Coordinator::start(&root, &["--lease-ttl-s", "10"]);
    let (a, b) = (
        Worker::start(&root, "wkr-a", &coordinator),
        Worker::start(&root, "wkr-b", &coordinator),
    );
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = format!("hello-{i}");
        let input = format!("input number {i}\n").repeat(100 + i);
        coordinator.submit(
            &id,
            "hello",
            "hello",
            hello_params(),
            &[("in.txt", input.as_bytes())],
        );
        expected.push((id.clone(), hello_output(input.as_bytes())));
        ids.push(id);
    }
    for i in 0..4 {
        let id = format!("steps-{i}");
        coordinator.submit(&id, "probe", "probe", steps_params(5, 100), &[]);
        ids.push(id);
    }
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let jobs = coordinator.wait_final(&id_refs, &[&a, &b]);
    let expected: Vec<(&str, &str, Vec<u8>)> = expected
        .iter()
        .map(|(id, c)| (id.as_str(), "in.txt.hello", c.clone()))
        .collect();
    assert_done_exactly_once(&coordinator, &jobs, &[&a, &b], &expected);
    let by = |w: &Worker| {
        jobs.iter()
            .filter(|j| j.workers == [w.dir.file_name().unwrap().to_string_lossy().to_string()])
            .count()
    };
    assert!(
        by(&a) > 0 && by(&b) > 0,
        "both workers got jobs: a {} b {}",
        by(&a),
        by(&b)
    );
    // Reported outputs are freed locally; the records stay.
    for worker in [&a, &b] {
        for record in worker.journal().iter().filter(|r| r["event"] == "reported") {
            let done = worker
                .dir
                .join("data/done")
                .join(record["job"].as_str().unwrap());
            assert!(done.join("proof.json").is_file(), "{}", done.display());
            worker.wait_for("reported outputs removed", |_| {
                !done.join("output").exists()
            });
        }
    }
}

#[test]
fn a_coordinator_restarted_mid_run_loses_nothing() {
    let root = farm_root("restart");
    let mut coordinator = Coordinator::start(&root, &["--lease-ttl-s", "6"]);
    let (a, b) = (
        Worker::start(&root, "wkr-a", &coordinator),
        Worker::start(&root, "wkr-b", &coordinator),
    );
    let ids = ["slow-0", "slow-1", "slow-2", "slow-3"];
    for id in ids {
        coordinator.submit(id, "probe", "probe", steps_params(10, 150), &[]);
    }
    for worker in [&a, &b] {
        worker.wait_for("a job started", |j| {
            j.iter().any(|r| r["event"] == "started")
        });
    }
    coordinator.kill();
    // Jobs finish while the coordinator is down: their results wait.
    for worker in [&a, &b] {
        worker.wait_for("a job finished offline", |j| {
            j.iter().any(|r| r["event"] == "finished")
        });
        worker.wait_for_log("the outage noticed", "coordinator offline");
    }
    assert!(
        a.journal()
            .iter()
            .chain(&b.journal())
            .all(|r| r["event"] != "reported"),
        "nothing reported while down"
    );
    coordinator.restart();
    let jobs = coordinator.wait_final(&ids, &[&a, &b]);
    assert_done_exactly_once(&coordinator, &jobs, &[&a, &b], &[]);
}

#[test]
fn a_download_cut_midway_resumes_with_range() {
    let root = farm_root("cut");
    let coordinator = Coordinator::start(&root, &["--fault-cut-blob-after-bytes", "300000"]);
    let worker = Worker::start(&root, "wkr-a", &coordinator);
    let input: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    coordinator.submit(
        "big-input",
        "hello",
        "hello",
        hello_params(),
        &[("big.bin", &input)],
    );
    let jobs = coordinator.wait_final(&["big-input"], &[&worker]);
    assert_done_exactly_once(
        &coordinator,
        &jobs,
        &[&worker],
        &[("big-input", "big.bin.hello", hello_output(&input))],
    );
    assert!(
        worker.log().contains("resumed download"),
        "the cut download was resumed, not restarted:\n{}",
        worker.log()
    );
}

#[test]
fn a_corrupted_blob_is_refused_and_fetched_again() {
    let root = farm_root("corrupt");
    let input = b"bytes the coordinator will flip once".repeat(1000);
    let sha = Sha256Digest::of(&input).to_string();
    let coordinator = Coordinator::start(&root, &["--fault-corrupt-blob-once", &sha]);
    let worker = Worker::start(&root, "wkr-a", &coordinator);
    coordinator.submit(
        "corrupt-once",
        "hello",
        "hello",
        hello_params(),
        &[("data.txt", &input)],
    );
    let jobs = coordinator.wait_final(&["corrupt-once"], &[&worker]);
    assert_done_exactly_once(
        &coordinator,
        &jobs,
        &[&worker],
        &[("corrupt-once", "data.txt.hello", hello_output(&input))],
    );
    let log = worker.log();
    assert!(
        log.contains("mismatch") && log.contains(&sha),
        "the corrupted download was detected, naming the blob:\n{log}"
    );
}

#[test]
fn a_worker_killed_mid_job_loses_its_lease_and_another_completes_the_job_once() {
    let root = farm_root("kill9");
    let coordinator = Coordinator::start(&root, &["--lease-ttl-s", "3"]);
    let mut a = Worker::start(&root, "wkr-a", &coordinator);
    coordinator.submit("long", "probe", "probe", steps_params(20, 150), &[]);
    a.wait_for("the job started on a", |j| {
        j.iter().any(|r| r["event"] == "started")
    });
    a.kill();
    let b = Worker::start(&root, "wkr-b", &coordinator);
    let jobs = coordinator.wait_final(&["long"], &[&a, &b]);
    assert_eq!(
        jobs[0].workers,
        ["wkr-b"],
        "b completed it after a's lease expired"
    );
    assert!(jobs[0].attempts >= 2, "two leases: {}", jobs[0].attempts);
    // a comes back with the job in its spool: the coordinator says the
    // lease is gone, so a drops it instead of reporting a second result.
    a.spawn();
    a.wait_for("a drops its stale lease", |j| {
        j.iter()
            .any(|r| r["event"] == "dropped" && r["job"] == "long.0")
    });
    let jobs = coordinator.wait_final(&["long"], &[&a, &b]);
    assert_done_exactly_once(&coordinator, &jobs, &[&a, &b], &[]);
    a.stop();
}

#[test]
fn a_result_with_a_wrong_signature_is_rejected() {
    let root = farm_root("signature");
    let coordinator = Coordinator::start(&root, &[]);
    let worker_token = coordinator.token("worker");
    // A hand-made worker: it registers key A, then signs with key B.
    let (key, other) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let register = RegisterRequest {
        worker_id: "wkr-fake".into(),
        name: "fake".into(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        host_version: "test".into(),
        gpus: Vec::new(),
        kinds: vec!["hello".into()],
        prices: Default::default(),
        slots: 1,
    };
    let post = |path: &str, body: &Value| {
        let response = block(|| {
            coordinator
                .request(reqwest::Method::POST, path, &worker_token)
                .json(body)
                .send()
        })
        .unwrap();
        let status = response.status().as_u16();
        (status, block(|| response.text()).unwrap())
    };
    assert_eq!(
        post(
            &api::paths::register(),
            &serde_json::to_value(&register).unwrap()
        )
        .0,
        200
    );
    let input = b"hello".to_vec();
    coordinator.submit(
        "signed",
        "hello",
        "hello",
        hello_params(),
        &[("a.txt", &input)],
    );
    let (status, body) = post(&api::paths::lease("wkr-fake"), &json!({"wait_s": 5}));
    assert_eq!(status, 200, "{body}");
    let lease: Lease = serde_json::from_str(&body).unwrap();
    let output = hello_output(&input);
    let output_sha = coordinator.put_blob(&output);
    let manifest = ResultManifest {
        version: proof::PROOF_VERSION,
        job_id: lease.lease_id.clone(),
        worker_id: "wkr-fake".into(),
        attempt: 0,
        status: "succeeded".into(),
        plugin_sha256: lease.plugin.sha256,
        inputs: lease
            .inputs
            .iter()
            .map(|i| InputDigest {
                name: i.name.clone(),
                sha256: i.sha256,
            })
            .collect(),
        params_sha256: api::params_digest(&lease.params),
        seed: lease.seed,
        outputs: vec![OutputDigest {
            path: "a.txt.hello".into(),
            size: output.len() as u64,
            sha256: output_sha,
        }],
        finished_at_ms: 1,
        duration_s: 0.1,
        adapter: None,
    };
    let complete = |proof: SignedProof| {
        post(
            &api::paths::complete(&lease.lease_id),
            &serde_json::to_value(CompleteRequest { proof }).unwrap(),
        )
    };

    let (status, body) = complete(proof::sign(&other, manifest.clone()));
    assert_eq!(status, 400, "signed by another key: {body}");
    assert!(body.contains("bad_proof"), "{body}");
    let mut forged = proof::sign(&key, manifest.clone());
    forged.manifest.outputs[0].sha256 = Sha256Digest::of(b"something else");
    let (status, body) = complete(forged);
    assert_eq!(status, 400, "manifest changed after signing: {body}");
    assert_ne!(
        coordinator.job("signed").state,
        JobState::Succeeded,
        "nothing was accepted"
    );

    let (status, body) = complete(proof::sign(&key, manifest.clone()));
    assert_eq!(status, 200, "the honest proof is accepted: {body}");
    let (status, body) = complete(proof::sign(&key, manifest));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"duplicate\":true"),
        "a repeat is a duplicate: {body}"
    );
    let job = coordinator.job("signed");
    assert_eq!((job.state, job.proofs.len()), (JobState::Succeeded, 1));
    assert_eq!(job.outputs[0].sha256, Sha256Digest::of(&output));
}

#[test]
fn a_worker_with_a_wrong_token_says_so_and_keeps_its_work() {
    let root = farm_root("token");
    let coordinator = Coordinator::start(&root, &[]);
    let mut worker = Worker::start(&root, "wkr-a", &coordinator);
    worker.wait_for_log("registration", "registered with the coordinator");
    worker.stop();
    let config_path = worker.dir.join("worker.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["coordinator"]["token"] = json!("0123456789abcdef0123456789abcdef");
    std::fs::write(&config_path, config.to_string()).unwrap();
    worker.spawn();
    worker.wait_for_log(
        "the refusal",
        "the worker token in worker.json is not valid here",
    );
    worker.stop();
}

#[test]
fn a_worker_whose_gpu_turns_unhealthy_says_so_and_gives_its_gpu_jobs_back() {
    let root = farm_root("unhealthy-gpu");
    // Heartbeats every 2 s.
    let coordinator = Coordinator::start(&root, &["--lease-ttl-s", "6"]);
    let endless = json!({"gpu_submission_ms": 1000, "timeout_s": 60});
    for id in ["endless-1", "endless-2"] {
        coordinator.submit_limited(
            id,
            "gpuprobe",
            "gpuprobe",
            json!({"check": "endless-loop"}),
            &[],
            endless.clone(),
        );
    }
    let mut sick = Worker::start_taking(&root, "wkr-sick", &coordinator, &["gpuprobe"]);
    let jobs = coordinator.wait_final(&["endless-1", "endless-2"], &[&sick]);
    for job in &jobs {
        assert_eq!(job.state, JobState::Failed, "{job:?}");
        assert!(
            format!("{:?}", job.error).contains("gpu-timeout"),
            "{job:?}"
        );
    }
    // Two devices abandoned: the slot is unhealthy, and the heartbeat says so.
    let started = Instant::now();
    let health = loop {
        let summary = coordinator.worker_summary("wkr-sick");
        if let Some(slot) = summary.gpu_health.iter().find(|g| g.state == "unhealthy") {
            break slot.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no unhealthy slot in the heartbeat: {summary:?}\n{}",
            sick.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health.slot, 0);
    assert!(health.detail.contains("never finished"), "{health:?}");
    sick.wait_for_log("the leaser to stop", "taking fewer leases");

    // A GPU job now stays with the coordinator for a healthy worker.
    coordinator.submit(
        "after",
        "gpuprobe",
        "gpuprobe",
        json!({"check": "transfer", "mib": 1}),
        &[],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        coordinator.job("after").state,
        JobState::Queued,
        "{}",
        sick.log()
    );
    // Its stuck kernels spin on the CPU with lavapipe: stop it before the next.
    sick.kill();
    let healthy = Worker::start_taking(&root, "wkr-healthy", &coordinator, &["gpuprobe"]);
    let jobs = coordinator.wait_final(&["after"], &[&healthy]);
    assert_eq!(jobs[0].state, JobState::Succeeded, "{:?}", jobs[0]);
    assert_eq!(jobs[0].workers, ["wkr-healthy"]);
}

#[test]
fn a_worker_with_a_full_spool_takes_no_lease_until_it_has_room() {
    let root = farm_root("full-spool");
    let coordinator = Coordinator::start(&root, &["--lease-ttl-s", "10"]);
    coordinator.submit("waiting", "probe", "probe", steps_params(1, 10), &[]);
    // Results nobody collected: 80 MiB of real bytes in done/, past the 64 MiB limit.
    let dir = root.join("wkr-full");
    let filler = dir.join("data/done/old-results");
    std::fs::create_dir_all(&filler).unwrap();
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    for i in 0..80 {
        std::fs::write(filler.join(format!("{i}.bin")), &block).unwrap();
    }
    let worker = Worker::start_with(
        &root,
        "wkr-full",
        &coordinator,
        json!({"job_kinds": ["probe"], "spool_mib": 64}),
    );
    worker.wait_for_log("the leaser to hold back", "taking fewer leases");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        coordinator.job("waiting").state,
        JobState::Queued,
        "{}",
        worker.log()
    );
    assert!(
        worker
            .log()
            .contains("the spool is full (limits.spool_mib)"),
        "{}",
        worker.log()
    );

    // Room again (the owner cleared done/): at its next measurement the
    // worker leases the job and runs it, without a restart.
    std::fs::remove_dir_all(&filler).unwrap();
    let jobs = coordinator.wait_final(&["waiting"], &[&worker]);
    assert_eq!(jobs[0].state, JobState::Succeeded, "{:?}", jobs[0]);
}
