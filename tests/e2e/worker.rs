//! `pictor-host run` over a local spool: jobs run once each, in order;
//! results and the journal survive `kill -9` and Ctrl-C; a file that does
//! not match its digest is refused before anything runs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{host, plugin, sha256_hex};
use pictor_test_support::pool::{PoolOptions, TestPool};

pub(crate) struct Farm {
    pub(crate) dir: tempfile::TempDir,
}

impl Farm {
    pub(crate) fn new() -> Self {
        Self::with(json!({}))
    }

    /// A farm whose worker.json has `extra` merged in.
    pub(crate) fn with(extra: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = json!({
            "version": 1,
            "worker": {"id": "wkr-test-01"},
            "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "coordinator": {"spool": "spool"},
            "limits": {"job_kinds": ["hello", "probe"]}
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        std::fs::write(dir.path().join("worker.json"), config.to_string()).unwrap();
        Farm { dir }
    }

    pub(crate) fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub(crate) fn submit(&self, plugin_name: &str, spec: Value) {
        self.submit_component(&plugin(plugin_name), spec);
    }

    /// Queues `spec` with the component at `component`.
    pub(crate) fn submit_component(&self, component: &std::path::Path, spec: Value) {
        let path = self
            .dir
            .path()
            .join(format!("{}.json", spec["id"].as_str().unwrap()));
        std::fs::write(&path, spec.to_string()).unwrap();
        let out = host()
            .args(["submit", "--spool"])
            .arg(self.spool())
            .arg("--plugin")
            .arg(component)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn run(&self, until_idle: bool) -> Command {
        let mut cmd = host();
        cmd.args(["run", "--config"])
            .arg(self.dir.path().join("worker.json"));
        if until_idle {
            cmd.arg("--until-idle");
        }
        cmd
    }

    pub(crate) fn journal(&self) -> Vec<Value> {
        std::fs::read_to_string(self.spool().join("journal.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn events(&self, job: &str, event: &str) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|r| r["job"] == job && r["event"] == event)
            .collect()
    }

    pub(crate) fn result(&self, job: &str) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.spool().join("done").join(job).join("result.json")).unwrap(),
        )
        .unwrap()
    }

    pub(crate) fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        while !ready() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub(crate) fn steps_job(id: &str, steps: u32) -> Value {
    json!({"version": 1, "id": id, "kind": "probe", "params": {"check": "steps", "steps": steps, "step_ms": 100}})
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn queued_jobs_run_once_each_in_order_with_results_beside_them() {
    let farm = Farm::new();
    let input = farm.dir.path().join("a.txt");
    std::fs::write(&input, "alpha").unwrap();
    farm.submit(
        "hello",
        json!({"version": 1, "id": "first", "kind": "hello",
        "inputs": [{"name": "a.txt", "path": input, "sha256": sha256_hex(&input)}]}),
    );
    farm.submit("probe", steps_job("second", 2));
    farm.submit(
        "probe",
        json!({"version": 1, "id": "third", "kind": "probe", "params": {"check": "environment"}}),
    );
    let out = farm.run(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Worker wkr-test-01 · Connected"),
        "{stderr}"
    );
    assert!(stderr.contains("Mining: off"), "{stderr}");

    let finished: Vec<String> = farm
        .journal()
        .iter()
        .filter(|r| r["event"] == "finished")
        .map(|r| r["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(finished, ["first", "second", "third"]);
    for job in ["first", "second", "third"] {
        assert_eq!(farm.result(job)["status"], "succeeded", "{job}");
    }
    let out_file = farm.spool().join("done/first/output/a.txt.hello");
    assert_eq!(
        farm.result("first")["outputs"][0]["sha256"],
        sha256_hex(&out_file)
    );
    // Running again finds nothing to do: nothing runs twice.
    assert!(farm.run(true).output().unwrap().status.success());
    assert_eq!(farm.events("first", "started").len(), 1);
}

#[test]
fn a_digest_mismatch_is_refused_before_the_plugin_runs() {
    let farm = Farm::new();
    let input = farm.dir.path().join("a.txt");
    std::fs::write(&input, "alpha").unwrap();
    farm.submit(
        "hello",
        json!({"version": 1, "id": "tampered", "kind": "hello",
        "inputs": [{"name": "a.txt", "path": input, "sha256": sha256_hex(&input)}]}),
    );
    std::fs::write(&input, "ALPHA, changed after submit").unwrap();
    assert!(farm.run(true).output().unwrap().status.success());
    let result = farm.result("tampered");
    assert_eq!(result["failure"]["kind"], "invalid-input");
    assert!(
        result["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("sha256 mismatch for input \"a.txt\""),
        "{result}"
    );
    assert_eq!(result["outputs"], json!([]));
    assert!(
        !farm
            .spool()
            .join("done/tampered/output/a.txt.hello")
            .exists()
    );
}

#[test]
fn kill_9_mid_job_then_restart_completes_every_job_exactly_once() {
    let farm = Farm::new();
    farm.submit("probe", steps_job("long", 20));
    farm.submit("probe", steps_job("after", 2));
    let mut worker = farm
        .run(false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = farm.spool().join("running/long/checkpoint");
    farm.wait_for("a few checkpointed steps", || {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
            >= 3
    });
    worker.kill().unwrap(); // SIGKILL: no chance to clean up
    worker.wait().unwrap();
    assert!(farm.events("long", "finished").is_empty());

    let out = farm.run(true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for job in ["long", "after"] {
        assert_eq!(
            farm.events(job, "finished").len(),
            1,
            "{job} must finish exactly once"
        );
        assert_eq!(farm.result(job)["status"], "succeeded", "{job}");
    }
    let report = std::fs::read_to_string(farm.spool().join("done/long/output/steps.txt")).unwrap();
    let resumed_at: u32 = report.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(
        resumed_at >= 3,
        "the second attempt must resume from the checkpoint: {report}"
    );
    assert!(report.trim_end().ends_with("attempt 1"), "{report}");
}

#[test]
fn ctrl_c_stops_cleanly_and_the_job_resumes_on_the_next_start() {
    let farm = Farm::new();
    farm.submit("probe", steps_job("stopped", 30));
    let worker = farm
        .run(false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let checkpoint = farm.spool().join("running/stopped/checkpoint");
    farm.wait_for("the first checkpoint", || checkpoint.exists());
    interrupt(&worker);
    let out = worker.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(farm.events("stopped", "interrupted").len(), 1);
    assert_eq!(farm.journal().last().unwrap()["event"], "worker-stopped");

    assert!(farm.run(true).output().unwrap().status.success());
    assert_eq!(farm.events("stopped", "finished").len(), 1);
    let report =
        std::fs::read_to_string(farm.spool().join("done/stopped/output/steps.txt")).unwrap();
    assert!(!report.contains("resumed_at 0 "), "{report}");
}

#[test]
fn mining_starts_when_idle_is_preempted_by_a_job_and_resumes() {
    let farm = Farm::with(json!({"mining": {
        "enabled": true, "pool": "stratum+tcp://127.0.0.1:3333", "coin": "btc",
        "plugin": plugin("testminer"), "idle_delay_s": 0.2, "require_nvidia": false, "allow_private_pool": true,
    }}));
    let worker = farm
        .run(false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    farm.wait_for("mining to start", || {
        farm.journal()
            .iter()
            .any(|r| r["event"] == "mining-started")
    });
    std::thread::sleep(Duration::from_millis(300)); // let the miner report a hashrate
    farm.submit("probe", steps_job("job-while-mining", 3));
    farm.submit("probe", steps_job("second-job", 2));
    farm.wait_for("mining to resume after the job", || {
        farm.journal()
            .iter()
            .filter(|r| r["event"] == "mining-started")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    interrupt(&worker);
    let out = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Mining: on after 0.2 s idle: btc on 127.0.0.1:3333"),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARNING: mining.require_nvidia is false"),
        "{stderr}"
    );

    let events: Vec<String> = farm
        .journal()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    let expected = [
        "worker-started",
        "mining-started",
        "claimed",
        "mining-stopped",
        "started",
        "finished",
        "claimed",
        "started",
        "finished",
        "mining-started",
        "mining-stopped",
        "worker-stopped",
    ];
    assert_eq!(
        events, expected,
        "mining must stay off while jobs are queued, and resume after"
    );
    let stops: Vec<Value> = farm
        .journal()
        .into_iter()
        .filter(|r| r["event"] == "mining-stopped")
        .collect();
    assert_eq!(stops[0]["reason"], "preempted");
    assert_eq!(stops[1]["reason"], "stopping");
    for stop in &stops {
        assert!(stop["latency_ms"].as_f64().unwrap() < 2000.0, "{stop}");
        assert!(
            stop["last_report"]
                .as_str()
                .unwrap()
                .starts_with("hashrate"),
            "{stop}"
        );
    }
    assert_eq!(farm.result("job-while-mining")["status"], "succeeded");
    assert_eq!(farm.result("second-job")["status"], "succeeded");
}

#[test]
fn the_real_miner_earns_shares_while_idle_and_yields_to_jobs() {
    let pool = TestPool::start(PoolOptions {
        difficulty: 1.0 / 4096.0,
        ..PoolOptions::default()
    });
    let farm = Farm::with(json!({"mining": {
        "enabled": true, "pool": pool.url(), "coin": "btc",
        "plugin": plugin("mine"), "idle_delay_s": 0.2, "require_nvidia": false, "allow_private_pool": true,
    }}));
    let worker = farm
        .run(false)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mining, tally) = pool.wait_for(Duration::from_secs(90), |t| t.accepted >= 2);
    assert!(mining, "no shares while idle: {tally:?}");
    farm.submit("probe", steps_job("job-while-mining", 3));
    farm.wait_for("mining to resume after the job", || {
        farm.journal()
            .iter()
            .filter(|r| r["event"] == "mining-started")
            .count()
            >= 2
    });
    let before = pool.tally().accepted;
    let (resumed, tally) = pool.wait_for(Duration::from_secs(90), |t| t.accepted > before);
    assert!(resumed, "no shares after the job: {tally:?}");
    std::thread::sleep(Duration::from_millis(300)); // let the miner hear the answer
    interrupt(&worker);
    let out = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Mining: on after 0.2 s idle: btc on {}",
            pool.addr()
        )),
        "{stderr}"
    );

    let events: Vec<String> = farm
        .journal()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    let expected = [
        "worker-started",
        "mining-started",
        "claimed",
        "mining-stopped",
        "started",
        "finished",
        "mining-started",
        "mining-stopped",
        "worker-stopped",
    ];
    assert_eq!(events, expected);
    let stops: Vec<Value> = farm
        .journal()
        .into_iter()
        .filter(|r| r["event"] == "mining-stopped")
        .collect();
    assert_eq!(
        (stops[0]["reason"].as_str(), stops[1]["reason"].as_str()),
        (Some("preempted"), Some("stopping"))
    );
    for stop in &stops {
        assert!(stop["latency_ms"].as_f64().unwrap() < 2000.0, "{stop}");
        assert!(stop["accepted"].as_u64().unwrap() >= 1, "{stop}");
        assert!(stop["hashrate_hps"].as_f64().unwrap() > 0.0, "{stop}");
    }
    // What the worker journaled, the pool accepted: real shares from this worker.
    let journaled: u64 = stops
        .iter()
        .map(|s| s["accepted"].as_u64().unwrap() + s["rejected"].as_u64().unwrap())
        .sum();
    let shares = pool.shares();
    assert!(
        journaled <= shares.len() as u64,
        "{journaled} > {}",
        shares.len()
    );
    assert!(
        shares
            .iter()
            .all(|s| s.accepted
                && s.user == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.wkr-test-01"),
        "{shares:?}"
    );
    assert_eq!(farm.result("job-while-mining")["status"], "succeeded");
}

#[test]
fn mining_stays_off_without_an_nvidia_gpu_unless_the_test_override_is_set() {
    let farm = Farm::with(json!({"mining": {
        "enabled": true, "pool": "stratum+tcp://127.0.0.1:3333", "coin": "btc", "plugin": plugin("testminer"), "idle_delay_s": 0, "allow_private_pool": true,
    }}));
    let out = farm.run(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // CI has no NVIDIA GPU; on a machine with one, mining would be on.
    let has_nvidia = !stderr.contains("Mining: off (no NVIDIA GPU");
    if has_nvidia {
        assert!(stderr.contains("Mining: on"), "{stderr}");
    } else {
        assert!(
            stderr.contains("Mining: off (no NVIDIA GPU (NVML not available:"),
            "{stderr}"
        );
    }
}

#[test]
fn a_cancelled_job_stops_and_the_next_one_runs() {
    let farm = Farm::new();
    farm.submit("probe", steps_job("doomed", 200));
    farm.submit("probe", steps_job("next", 1));
    let worker = farm
        .run(true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    farm.wait_for("the job to checkpoint", || {
        farm.spool().join("running/doomed/checkpoint").exists()
    });
    let out = host()
        .args(["cancel", "--spool"])
        .arg(farm.spool())
        .arg("doomed")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = worker.wait_with_output().unwrap();
    assert!(out.status.success());
    let result = farm.result("doomed");
    assert_eq!(result["failure"]["kind"], "cancelled", "{result}");
    assert_eq!(farm.result("next")["status"], "succeeded");
    let unknown = host()
        .args(["cancel", "--spool"])
        .arg(farm.spool())
        .arg("no-such-job")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

/// Whether the two jobs' attempts overlapped in time, by the journal.
fn overlapped(farm: &Farm, a: &str, b: &str) -> bool {
    let at = |job: &str, event: &str| farm.events(job, event)[0]["at_ms"].as_u64().unwrap();
    at(a, "started") < at(b, "finished") && at(b, "started") < at(a, "finished")
}

#[test]
fn jobs_per_gpu_runs_that_many_jobs_at_once() {
    let farm = Farm::with(json!({"limits": {"job_kinds": ["probe"], "jobs_per_gpu": 2}}));
    for id in ["p1", "p2", "p3"] {
        farm.submit("probe", steps_job(id, 5));
    }
    assert!(farm.run(true).output().unwrap().status.success());
    assert!(overlapped(&farm, "p1", "p2"), "{:?}", farm.journal());
    // At most two at once: the third starts only after one of the first two finished.
    let at = |job: &str, event: &str| farm.events(job, event)[0]["at_ms"].as_u64().unwrap();
    assert!(at("p3", "started") >= at("p1", "finished").min(at("p2", "finished")));
    for id in ["p1", "p2", "p3"] {
        assert_eq!(farm.result(id)["status"], "succeeded");
    }
}

#[test]
fn each_configured_gpu_gets_its_own_jobs() {
    // Two slot groups; on a one-adapter machine both name the same adapter.
    let farm = Farm::with(
        json!({"gpu": ["0", "llvmpipe"], "limits": {"job_kinds": ["probe"], "jobs_per_gpu": 1}}),
    );
    let gpu_list = host().args(["gpu", "list"]).output().unwrap();
    if !String::from_utf8_lossy(&gpu_list.stdout).contains("llvmpipe") {
        // On a machine with a real GPU, name its first adapter twice instead.
        let farm_config = farm.dir.path().join("worker.json");
        let text = std::fs::read_to_string(&farm_config)
            .unwrap()
            .replace("\"llvmpipe\"", "\"0 \"");
        std::fs::write(farm_config, text).unwrap();
    }
    farm.submit("probe", steps_job("g1", 5));
    farm.submit("probe", steps_job("g2", 5));
    let out = farm.run(true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gpus: Vec<u64> = ["g1", "g2"]
        .iter()
        .map(|j| farm.events(j, "started")[0]["gpu"].as_u64().unwrap())
        .collect();
    assert_eq!(gpus, [0, 1]);
    assert!(overlapped(&farm, "g1", "g2"));
}

#[test]
fn each_result_has_a_proof_signed_by_the_worker_key() {
    let farm = Farm::new();
    farm.submit(
        "probe",
        json!({"version": 1, "id": "proved", "kind": "probe", "params": {"check": "environment"}}),
    );
    assert!(farm.run(true).output().unwrap().status.success());
    let key_file = farm.dir.path().join("worker.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let done = farm.spool().join("done/proved");
    let proof_file = done.join("proof.json");
    let proof: Value = serde_json::from_slice(&std::fs::read(&proof_file).unwrap()).unwrap();
    assert_eq!(proof["manifest"]["job_id"], "proved");
    assert_eq!(proof["manifest"]["worker_id"], "wkr-test-01");
    assert_eq!(
        proof["manifest"]["plugin_sha256"],
        sha256_hex(&plugin("probe"))
    );
    assert_eq!(
        proof["manifest"]["outputs"][0]["sha256"],
        sha256_hex(&done.join("output/environment.json"))
    );
    let key = proof["public_key"].as_str().unwrap().to_string();

    let verify = |extra: &[&str]| {
        host()
            .arg("verify-proof")
            .arg(&proof_file)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&[
        "--outputs",
        done.join("output").to_str().unwrap(),
        "--public-key",
        &key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("valid proof: job proved attempt 0 succeeded")
    );

    // A changed output, a changed manifest, another signer: all refused.
    std::fs::write(done.join("output/environment.json"), "{}").unwrap();
    let out = verify(&["--outputs", done.join("output").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("output `environment.json`: sha256 mismatch")
    );
    let forged = std::fs::read_to_string(&proof_file)
        .unwrap()
        .replace("\"attempt\": 0", "\"attempt\": 5");
    std::fs::write(&proof_file, forged).unwrap();
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature invalid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify(&["--public-key", &"ab".repeat(32)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected abab"));
}
