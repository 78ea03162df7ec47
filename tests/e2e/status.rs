//! The owner's status page, `/status.json` and `/metrics` of a real
//! `pictor-host run` (found through the `Status page: <url>` line it
//! prints), scraped while it runs jobs and mines; `status.listen` refused
//! off loopback; a revoked credential stopping the worker with every
//! result kept.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse as _;
use pictor_protocol::api::{
    BlobRef, ErrorBody, ErrorCode, HeartbeatReply, InputBlob, Lease, PROTOCOL_VERSION,
    RegisterReply, VERSION_HEADER,
};
use pictor_protocol::digest::Sha256Digest;
use serde_json::{Value, json};

use crate::network::block;
use crate::support::{host, plugin, sha256_hex};
use pictor_test_support::pool::{PoolOptions, TestPool};

const WALLET: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

/// A worker folder with its worker.json.
struct Farm {
    dir: tempfile::TempDir,
}

impl Farm {
    fn with(extra: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = json!({
            "version": 1,
            "worker": {"id": "wkr-status-01", "name": "status test rig"},
            "wallet": WALLET,
            "coordinator": {"spool": "spool"},
            "limits": {"job_kinds": ["hello", "probe"]},
            "prices": {"hello": 0.5, "probe": 0.25},
            "status": {"listen": "127.0.0.1:0"}
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        std::fs::write(dir.path().join("worker.json"), config.to_string()).unwrap();
        Farm { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn submit(&self, plugin_name: &str, spec: Value) {
        let path = self.path(&format!("{}.json", spec["id"].as_str().unwrap()));
        std::fs::write(&path, spec.to_string()).unwrap();
        let out = host()
            .args(["submit", "--spool"])
            .arg(self.path("spool"))
            .arg("--plugin")
            .arg(plugin(plugin_name))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn journal(&self, spool: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(spool).join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn run(&self) -> Command {
        let mut cmd = host();
        cmd.args(["run", "--config"]).arg(self.path("worker.json"));
        cmd
    }
}

/// A running `pictor-host run` and its status page.
struct Worker {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Worker {
    /// Starts `cmd` and waits for its `Status page: <url>` line.
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Status page: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "no `Status page:` line; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with('/') && !url.ends_with(":0/"),
            "{url}"
        );
        Worker {
            child,
            url,
            http: pictor_host::blobs::http_client("e2e").unwrap(),
        }
    }

    fn get(&self, path: &str) -> (reqwest::StatusCode, String, String) {
        let url = format!("{}{}", self.url, path.trim_start_matches('/'));
        block(|| async {
            let response = self.http.get(&url).send().await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, content_type, response.text().await.unwrap())
        })
    }

    fn status(&self) -> Value {
        let (status, content_type, body) = self.get("/status.json");
        assert_eq!(status, 200, "{body}");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        serde_json::from_str(&body).unwrap()
    }

    /// `/metrics`, parsed by `prometheus-parse` (not by the code that wrote it).
    fn metrics(&self) -> Metrics {
        let (status, content_type, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let scrape =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        Metrics {
            samples: scrape.samples,
            text: body,
        }
    }

    fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = ready(self) {
                return value;
            }
            assert!(started.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, and what it printed on stderr.
    fn stop(self) -> String {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    }
}

struct Metrics {
    samples: Vec<prometheus_parse::Sample>,
    text: String,
}

impl Metrics {
    /// The value of `name` with (at least) `labels`; `None` if no sample matches.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is not a number"),
            })
    }

    fn count(&self, name: &str) -> usize {
        self.samples.iter().filter(|s| s.metric == name).count()
    }
}

fn steps_job(id: &str, steps: u32, step_ms: u32) -> Value {
    json!({"version": 1, "id": id, "kind": "probe", "params": {"check": "steps", "steps": steps, "step_ms": step_ms}})
}

#[test]
fn the_status_page_and_metrics_follow_the_jobs_and_survive_a_restart() {
    let farm = Farm::with(json!({}));
    let worker = Worker::start(farm.run());
    let m = worker.metrics();
    assert_eq!(
        m.value(
            "pictor_worker_info",
            &[("worker_id", "wkr-status-01"), ("name", "status test rig")]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(m.value("pictor_worker_connected", &[]), Some(1.0));
    assert_eq!(m.value("pictor_jobs_running", &[]), Some(0.0));
    assert_eq!(m.count("pictor_jobs_total"), 0, "nothing finished yet");
    assert_eq!(m.value("pictor_earnings_total", &[]), Some(0.0));
    assert_eq!(m.value("pictor_mining_active", &[]), Some(0.0));
    assert!(
        m.count("pictor_gpu_info") >= 1,
        "the CI machine has lavapipe: {}",
        m.text
    );

    // A job in progress shows with its kind and progress.
    farm.submit("probe", steps_job("slow", 30, 100));
    let running = worker.wait_for(
        "the running job on the page",
        Duration::from_secs(60),
        |w| {
            let status = w.status();
            let job = status["jobs"].as_array().unwrap().first().cloned()?;
            (job["fraction"].as_f64().unwrap() > 0.0).then_some(job)
        },
    );
    assert_eq!(
        (running["id"].as_str(), running["kind"].as_str()),
        (Some("slow"), Some("probe")),
        "{running}"
    );
    let m = worker.metrics();
    assert_eq!(m.value("pictor_jobs_running", &[]), Some(1.0));
    let progress = m
        .value(
            "pictor_job_progress_ratio",
            &[("job_id", "slow"), ("kind", "probe")],
        )
        .unwrap();
    assert!(progress > 0.0 && progress < 1.0, "{progress}");
    let (_, content_type, page) = worker.get("/");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        page.contains(r#"<div class="job" data-job-id="slow">"#) && page.contains("<progress"),
        "{page}"
    );

    // Then: one more success, a failure, and a kind this worker refuses.
    let input = farm.path("a.txt");
    std::fs::write(&input, "alpha").unwrap();
    farm.submit(
        "hello",
        json!({"version": 1, "id": "greeting", "kind": "hello",
        "inputs": [{"name": "a.txt", "path": input, "sha256": sha256_hex(&input)}]}),
    );
    farm.submit("probe", json!({"version": 1, "id": "broken", "kind": "probe", "params": {"check": "no-such-check"}}));
    farm.submit(
        "hello",
        json!({"version": 1, "id": "refused", "kind": "render", "params": {}}),
    );
    let m = worker.wait_for(
        "four finished jobs in the metrics",
        Duration::from_secs(120),
        |w| {
            let m = w.metrics();
            let total: f64 = m
                .samples
                .iter()
                .filter(|s| s.metric == "pictor_jobs_total")
                .map(|s| {
                    if let prometheus_parse::Value::Counter(v) = s.value {
                        v
                    } else {
                        0.0
                    }
                })
                .sum();
            (total >= 4.0).then_some(m)
        },
    );
    assert_eq!(
        m.value(
            "pictor_jobs_total",
            &[("kind", "probe"), ("outcome", "succeeded")]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    assert_eq!(
        m.value(
            "pictor_jobs_total",
            &[("kind", "hello"), ("outcome", "succeeded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "pictor_jobs_total",
            &[("kind", "probe"), ("outcome", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "pictor_jobs_total",
            &[("kind", "render"), ("outcome", "failed")]
        ),
        Some(1.0)
    );
    // Earnings = prices × succeeded jobs: one probe (0.25) and one hello (0.5).
    assert_eq!(m.value("pictor_earnings_total", &[]), Some(0.75));
    assert_eq!(m.value("pictor_jobs_running", &[]), Some(0.0));
    assert_eq!(
        m.count("pictor_job_progress_ratio"),
        0,
        "no stale progress series"
    );

    let status = worker.status();
    assert_eq!(status["worker"]["id"], "wkr-status-01");
    assert_eq!(status["worker"]["name"], "status test rig");
    assert!(
        status["connection"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Connected (local spool "),
        "{status}"
    );
    assert!(!status["gpus"].as_array().unwrap().is_empty(), "{status}");
    assert_eq!(status["mining"]["state"], "off");
    assert_eq!(status["earnings"], 0.75);
    let recent: HashMap<String, (String, f64)> = status["recent_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                (
                    r["outcome"].as_str().unwrap().to_string(),
                    r["reward"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(recent["slow"], ("succeeded".to_string(), 0.25));
    assert_eq!(recent["greeting"], ("succeeded".to_string(), 0.5));
    assert!(
        recent["broken"].0.starts_with("failed: "),
        "{:?}",
        recent["broken"]
    );
    assert_eq!(recent["refused"], ("failed: unsupported".to_string(), 0.0));

    let (status_code, _, page) = worker.get("/");
    assert_eq!(status_code, 200);
    for needle in [
        r#"<meta http-equiv="refresh" content="2">"#,
        r#"<code id="worker-id">wkr-status-01</code>"#,
        r#"<span id="worker-name">status test rig</span>"#,
        r#"id="connection">Connected (local spool "#,
        r#"<table id="gpus">"#,
        r#"<tr class="gpu" data-gpu="0">"#,
        r#"<div id="current-jobs">"#,
        r#"<p class="off" id="mining">off (no `mining` in the config)</p>"#,
        r#"<table id="recent-jobs">"#,
        r#"<tr data-job-id="greeting">"#,
        r#"<strong id="earnings">0.75</strong>"#,
    ] {
        assert!(page.contains(needle), "{needle} not in:\n{page}");
    }
    let stderr = worker.stop();
    assert!(
        stderr.contains("Worker stopped: 4 job(s) finished"),
        "{stderr}"
    );

    // After a restart: the history is still listed, the counters start again.
    let worker = Worker::start(farm.run());
    let status = worker.status();
    let ids: Vec<&str> = status["recent_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["refused", "broken", "greeting", "slow"],
        "newest first: {status}"
    );
    assert_eq!(status["recent_jobs"][2]["reward"], 0.5);
    assert_eq!(status["earnings"], 0.0);
    assert_eq!(worker.metrics().count("pictor_jobs_total"), 0);
    worker.stop();
}

#[test]
fn a_status_address_off_loopback_is_refused_naming_the_key() {
    let farm = Farm::with(json!({"status": {"listen": "0.0.0.0:9187"}}));
    let out = farm.run().arg("--until-idle").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`status.listen` \"0.0.0.0:9187\" is not a loopback address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the status page is for the owner's machine only")
            && stderr.contains("SSH tunnel"),
        "{stderr}"
    );

    let farm = Farm::with(json!({}));
    let out = farm
        .run()
        .args(["--until-idle", "--status-listen", "192.168.1.10:80"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`--status-listen` \"192.168.1.10:80\" is not a loopback address"),
        "{stderr}"
    );

    // --status-listen overrides the config (whose port is taken here).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let farm = Farm::with(json!({"status": {"listen": taken.local_addr().unwrap().to_string()}}));
    let out = farm.run().arg("--until-idle").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {} for the status page",
            taken.local_addr().unwrap()
        )),
        "{stderr}"
    );
    let worker = Worker::start({
        let mut cmd = farm.run();
        cmd.args(["--status-listen", "127.0.0.1:0"]);
        cmd
    });
    assert_eq!(worker.status()["worker"]["id"], "wkr-status-01");
    worker.stop();

    // Without `status` (or --status-listen) there is no page.
    let farm = Farm::with(json!({}));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(farm.path("worker.json")).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("status");
    std::fs::write(farm.path("worker.json"), config.to_string()).unwrap();
    let out = farm.run().arg("--until-idle").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Status page:"),
        "off unless asked for"
    );
}

#[test]
fn the_status_page_shows_the_real_miners_hashrate_and_shares() {
    let pool = TestPool::start(PoolOptions {
        difficulty: 1.0 / 4096.0,
        ..PoolOptions::default()
    });
    let farm = Farm::with(json!({"mining": {
        "enabled": true, "pool": pool.url(), "coin": "btc",
        "plugin": plugin("mine"), "idle_delay_s": 0.2, "require_nvidia": false, "allow_private_pool": true,
    }}));
    let worker = Worker::start(farm.run());
    let (mining, tally) = pool.wait_for(Duration::from_secs(90), |t| t.accepted >= 2);
    assert!(mining, "no shares while idle: {tally:?}");
    let m = worker.wait_for(
        "accepted shares in /metrics",
        Duration::from_secs(60),
        |w| {
            let m = w.metrics();
            (m.value("pictor_mining_shares_total", &[("result", "accepted")])
                .unwrap_or(0.0)
                >= 1.0)
                .then_some(m)
        },
    );
    assert_eq!(
        m.value("pictor_mining_active", &[]),
        Some(1.0),
        "{}",
        m.text
    );
    assert!(
        m.value("pictor_mining_hashrate_hashes_per_second", &[])
            .unwrap()
            > 0.0,
        "{}",
        m.text
    );
    assert!(
        m.value("pictor_mining_shares_total", &[("result", "accepted")])
            .unwrap()
            <= pool.tally().accepted as f64
    );
    assert_eq!(
        m.value("pictor_mining_shares_total", &[("result", "rejected")]),
        Some(0.0)
    );
    let status = worker.status();
    assert_eq!(status["mining"]["state"], "mining", "{status}");
    let text = status["mining"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("mining btc · ") && text.contains(&format!("· pool {}", pool.addr())),
        "{text}"
    );
    let (_, _, page) = worker.get("/");
    assert!(
        page.contains(r#"<p class="mining" id="mining">mining btc · "#),
        "{page}"
    );
    worker.stop();
}

/// A coordinator stand-in that leases one `hello` job, serves its blobs,
/// and answers the result's `complete` with `revoked`: the worker must
/// stop, keep the result, and exit 3 with the coordinator's message.
struct RevokingCoordinator {
    base: String,
    completes: Arc<Mutex<u32>>,
    _task: tokio::task::JoinHandle<()>,
}

const REVOKED_MESSAGE: &str = "credential revoked by the owner on the portal";

impl RevokingCoordinator {
    fn start(lease: Lease, blobs: HashMap<Sha256Digest, Vec<u8>>) -> Self {
        use axum::extract::Path as UrlPath;
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        let completes = Arc::new(Mutex::new(0));
        let leased = Arc::new(Mutex::new(Some(lease)));
        let blobs = Arc::new(blobs);
        let app = axum::Router::new()
            .route(
                "/api/v1/workers/register",
                post(move || async move {
                    let reply = RegisterReply {
                        worker_id: "wkr-status-01".into(),
                        lease_ttl_s: 60,
                        heartbeat_interval_s: 1,
                        max_wait_s: 1,
                    };
                    (
                        [(VERSION_HEADER, PROTOCOL_VERSION.to_string())],
                        axum::Json(reply),
                    )
                }),
            )
            .route(
                "/api/v1/workers/{id}/heartbeat",
                post(|| async {
                    (
                        [(VERSION_HEADER, PROTOCOL_VERSION.to_string())],
                        axum::Json(HeartbeatReply { leases: Vec::new() }),
                    )
                }),
            )
            .route(
                "/api/v1/workers/{id}/lease",
                post({
                    let leased = Arc::clone(&leased);
                    move || async move {
                        let lease = leased.lock().unwrap().take();
                        let version = [(VERSION_HEADER, PROTOCOL_VERSION.to_string())];
                        match lease {
                            Some(lease) => (version, axum::Json(lease)).into_response(),
                            None => {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                                (StatusCode::NO_CONTENT, version).into_response()
                            }
                        }
                    }
                }),
            )
            .route(
                "/api/v1/blobs/{sha}",
                get({
                    let blobs = Arc::clone(&blobs);
                    move |UrlPath(sha): UrlPath<String>| async move {
                        let digest: Sha256Digest = sha.parse().unwrap();
                        match blobs.get(&digest) {
                            Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                })
                // The outputs are "already there": the worker goes on to `complete`.
                .head(|| async {
                    (
                        [(VERSION_HEADER, PROTOCOL_VERSION.to_string())],
                        StatusCode::OK,
                    )
                }),
            )
            .route(
                "/api/v1/leases/{id}/complete",
                post({
                    let completes = Arc::clone(&completes);
                    move || async move {
                        *completes.lock().unwrap() += 1;
                        let body = ErrorBody {
                            error: ErrorCode::Revoked,
                            message: REVOKED_MESSAGE.into(),
                            missing: Vec::new(),
                        };
                        (
                            StatusCode::UNAUTHORIZED,
                            [(VERSION_HEADER, PROTOCOL_VERSION.to_string())],
                            axum::Json(body),
                        )
                    }
                }),
            );
        let listener =
            block(|| async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
        let base = format!("http://{}", listener.local_addr().unwrap());
        // The server task is spawned inside the shared runtime and its
        // handle kept (awaiting it would block until the server stops).
        #[allow(clippy::async_yields_async)]
        let task = block(|| async {
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() })
        });
        RevokingCoordinator {
            base,
            completes,
            _task: task,
        }
    }
}

fn blob_of(path: &Path) -> (Sha256Digest, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    (Sha256Digest::of(&bytes), bytes)
}

#[test]
fn a_revoked_worker_stops_with_the_reason_and_keeps_its_result() {
    let (plugin_digest, plugin_bytes) = blob_of(&plugin("hello"));
    let input = b"alpha".to_vec();
    let input_digest = Sha256Digest::of(&input);
    let lease = Lease {
        lease_id: "lease-revoked-1".into(),
        job_id: "job-1".into(),
        kind: "hello".into(),
        attempt: 0,
        expires_in_s: 60,
        plugin: BlobRef {
            sha256: plugin_digest,
            size: plugin_bytes.len() as u64,
        },
        inputs: vec![InputBlob {
            name: "a.txt".into(),
            sha256: input_digest,
            size: input.len() as u64,
        }],
        params: json!({}),
        seed: 0,
        limits: json!({}),
        price: Some(0.5),
    };
    let coordinator = RevokingCoordinator::start(
        lease,
        HashMap::from([(plugin_digest, plugin_bytes), (input_digest, input)]),
    );
    let farm = Farm::with(
        json!({"coordinator": {"url": coordinator.base, "token": "worker-token-0123456789"}}),
    );
    let worker = Worker::start(farm.run());
    let started = Instant::now();
    let out = worker.child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it stopped by itself"
    );
    assert!(
        stderr.contains(&format!(
            "error: worker wkr-status-01: the coordinator revoked this worker's credential ({REVOKED_MESSAGE}); import a new worker.json from the portal"
        )),
        "{stderr}"
    );
    assert!(*coordinator.completes.lock().unwrap() >= 1);
    // Nothing lost: the result, its outputs and the ledger entry stay for
    // a next credential; nothing was journaled as reported or dropped.
    let data = farm.path("worker-data");
    let done = data.join("done/lease-revoked-1");
    let result: Value =
        serde_json::from_slice(&std::fs::read(done.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded");
    assert!(done.join("output/a.txt.hello").is_file());
    assert!(data.join("network/leases/lease-revoked-1.json").is_file());
    let journal = farm.journal("worker-data");
    assert!(
        journal
            .iter()
            .any(|r| r["event"] == "finished" && r["job"] == "lease-revoked-1")
    );
    assert!(
        !journal
            .iter()
            .any(|r| r["event"] == "reported" || r["event"] == "dropped"),
        "{journal:?}"
    );
    assert!(
        stderr.contains("1 result(s) not yet reported to the coordinator: they are kept"),
        "{stderr}"
    );
}

/// The real path: a coordinator issues the worker (its miner served by
/// digest), the host downloads the miner and mines with the issued
/// worker.json, then the coordinator revokes the worker: the host stops
/// its miner and exits 3 with the coordinator's reason.
#[test]
fn a_revoked_worker_stops_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let miner = plugin("mine");
    let coordinator = crate::network::Coordinator::start(
        root.path(),
        &["--miner-plugin", miner.to_str().unwrap()],
    );
    let pool = TestPool::start(PoolOptions {
        difficulty: 1.0 / 4096.0,
        ..PoolOptions::default()
    });
    let issued = root.path().join("issued/worker.json");
    std::fs::create_dir_all(issued.parent().unwrap()).unwrap();
    let out = Command::new(crate::support::coordinator_bin())
        .args(["worker", "create", "--data"])
        .arg(coordinator.data())
        .args([
            "--name",
            "issued rig",
            "--wallet",
            WALLET,
            "--pool",
            &pool.url(),
            "--coin",
            "btc",
            "--price",
            "hello=0.5",
            "--out",
        ])
        .arg(&issued)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&issued).unwrap()).unwrap();
    let digest = sha256_hex(&miner);
    assert_eq!(config["mining"]["plugin_sha256"], digest, "{config}");
    assert!(config["mining"].get("plugin").is_none(), "{config}");
    let worker_id = config["worker"]["id"].as_str().unwrap().to_string();
    // For this machine: no NVIDIA GPU, and a test need not wait 30 s.
    config["mining"]["require_nvidia"] = json!(false);
    config["mining"]["idle_delay_s"] = json!(0.2);
    config["mining"]["allow_private_pool"] = json!(true);
    config["status"] = json!({"listen": "127.0.0.1:0"});
    std::fs::write(&issued, config.to_string()).unwrap();

    let mut cmd = host();
    cmd.args(["run", "--config"]).arg(&issued);
    let worker = Worker::start(cmd);
    let (mining, tally) = pool.wait_for(Duration::from_secs(90), |t| t.accepted >= 1);
    assert!(mining, "the downloaded miner found no share: {tally:?}");
    let status = worker.wait_for(
        "the connection and the miner on the page",
        Duration::from_secs(30),
        |w| {
            let s = w.status();
            (s["connection"]["state"] == "connected" && s["mining"]["state"] == "mining")
                .then_some(s)
        },
    );
    assert!(
        status["connection"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Connected to http://127.0.0.1:"),
        "{status}"
    );
    assert_eq!(status["worker"]["id"], worker_id.as_str());

    let out = Command::new(crate::support::coordinator_bin())
        .args(["worker", "revoke", "--data"])
        .arg(coordinator.data())
        .arg(&worker_id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let mut child = worker.child;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker did not stop after its credential was revoked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Mining: on after 0.2 s idle: btc on {}",
            pool.addr()
        )),
        "{stderr}"
    );
    let expected =
        format!("error: worker {worker_id}: the coordinator revoked this worker's credential (");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&expected))
        .unwrap_or_else(|| panic!("no revocation line in:\n{stderr}"));
    assert!(
        line.ends_with("); import a new worker.json from the portal"),
        "{line}"
    );
    // The miner stopped with the worker (journaled), and its shares were real.
    let journal: Vec<Value> =
        std::fs::read_to_string(issued.parent().unwrap().join("worker-data/journal.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let stopped = journal
        .iter()
        .rev()
        .find(|r| r["event"] == "mining-stopped")
        .expect("mining-stopped journaled");
    assert_eq!(stopped["reason"], "stopping");
    assert_eq!(journal.last().unwrap()["event"], "worker-stopped");
    assert!(
        pool.shares()
            .iter()
            .all(|s| s.accepted && s.user == format!("{WALLET}.{worker_id}"))
    );
}
