//! The real binary: `serve`, then `submit --wait --out` while the test plays
//! the worker named in the generated worker.json, then the other commands.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, Lease};
use pictor_protocol::proof::SignedProof;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestResult, key, register_body, signed};

const BIN: &str = env!("CARGO_BIN_EXE_pictor-coordinator");

/// Kills the server if a test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_farm_from_the_command_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--data",
                data_arg,
                "--listen",
                "127.0.0.1:0",
                "--lease-ttl-s",
                "5",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = wait_for_server(&http, &data).await;

    // The generated worker config points at this coordinator with the worker token.
    let worker_json: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("worker.json"))?)?;
    assert_eq!(worker_json["coordinator"]["url"], url.as_str());
    assert_eq!(worker_json["coordinator"]["spool"], "worker-data");
    let worker_id = worker_json["worker"]["id"].as_str().unwrap().to_string();
    let token = worker_json["coordinator"]["token"]
        .as_str()
        .unwrap()
        .to_string();

    // A job spec with relative paths, like fixtures/jobs.
    let spec_dir = tmp.path().join("spec");
    std::fs::create_dir_all(&spec_dir)?;
    std::fs::write(spec_dir.join("plugin.wasm"), b"\0asm a plugin")?;
    std::fs::write(spec_dir.join("greeting.txt"), b"hello")?;
    let spec = json!({
        "version": 1, "id": "cli-job", "kind": "hello", "params": {"suffix": "!"}, "seed": 3,
        "limits": {"timeout_s": 30},
        "plugin": {"path": "plugin.wasm", "sha256": Sha256Digest::of(b"\0asm a plugin")},
        "inputs": [{"name": "greeting.txt", "path": "greeting.txt", "sha256": Sha256Digest::of(b"hello")}],
    });
    std::fs::write(spec_dir.join("job.json"), spec.to_string())?;
    let out = tmp.path().join("out");
    let mut submit = Command::new(BIN)
        .args([
            "submit",
            "--data",
            data_arg,
            spec_dir.join("job.json").to_str().unwrap(),
            "--wait",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    // Play the worker.
    let post = |path: String, body: Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let response = post(
        api::paths::register(),
        register_body(&worker_id, &key(5), &["hello"]),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let response = post(api::paths::lease(&worker_id), json!({"wait_s": 20})).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let lease: Lease = response.json().await?;
    assert_eq!(
        (lease.job_id.as_str(), lease.seed, lease.inputs.len()),
        ("cli-job", 3, 1)
    );
    let result = b"hello!";
    let put = http
        .put(format!(
            "{url}{}",
            api::paths::blob(&Sha256Digest::of(result))
        ))
        .bearer_auth(&token)
        .body(result.to_vec())
        .send()
        .await?;
    assert_eq!(put.status(), StatusCode::CREATED);
    let proof = signed(&key(5), &worker_id, &lease, &[("greeting.txt", result)]);
    let response = post(
        api::paths::complete(&lease.lease_id),
        json!({ "proof": proof }),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);

    let status = tokio::task::spawn_blocking(move || {
        let status = wait_exit(&mut submit, Duration::from_secs(30));
        let mut stdout = String::new();
        std::io::Read::read_to_string(submit.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        (status, stdout)
    })
    .await?;
    assert!(status.0.success(), "submit failed: {}", status.1);
    assert!(status.1.contains("cli-job: succeeded"), "{}", status.1);
    assert_eq!(std::fs::read(out.join("greeting.txt"))?, result);
    let saved: SignedProof = serde_json::from_str(&std::fs::read_to_string(
        out.join(format!("proof-{worker_id}.json")),
    )?)?;
    assert_eq!(saved, proof);

    // The other commands.
    let jobs = run(&["jobs", "--data", data_arg]);
    assert!(jobs.status.success());
    assert!(
        text(&jobs.stdout)
            .lines()
            .any(|l| l.starts_with("cli-job") && l.contains("succeeded")),
        "{}",
        text(&jobs.stdout)
    );
    let job = run(&["job", "--data", data_arg, "cli-job"]);
    assert!(
        text(&job.stdout).contains("state:    succeeded"),
        "{}",
        text(&job.stdout)
    );
    let again = tmp.path().join("again");
    let results = run(&[
        "results",
        "--data",
        data_arg,
        "--out",
        again.to_str().unwrap(),
        "cli-job",
    ]);
    assert!(results.status.success(), "{}", text(&results.stderr));
    assert_eq!(std::fs::read(again.join("greeting.txt"))?, result);
    let cancel = run(&["cancel", "--data", data_arg, "cli-job"]);
    assert_eq!(cancel.status.code(), Some(2));
    assert!(
        text(&cancel.stderr).contains("already succeeded"),
        "{}",
        text(&cancel.stderr)
    );

    // SIGTERM stops it gracefully.
    let term = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()?;
    assert!(term.success());
    assert!(wait_exit(&mut server.0, Duration::from_secs(10)).success());
    Ok(())
}

#[test]
fn submit_refuses_a_file_that_does_not_match_its_spec() -> TestResult {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("plugin.wasm"), b"\0asm")?;
    let wrong = Sha256Digest::of(b"another plugin");
    let spec = json!({"version": 1, "id": "j", "kind": "hello", "plugin": {"path": "plugin.wasm", "sha256": wrong}});
    std::fs::write(tmp.path().join("job.json"), spec.to_string())?;
    // A coordinator is needed for the upload; a tiny one in-process serves.
    let runtime = tokio::runtime::Runtime::new()?;
    let running = runtime.block_on(async {
        let mut config = pictor_coordinator::Config::new(tmp.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        pictor_coordinator::start(config).await
    })?;
    let output = run(&[
        "submit",
        "--data",
        tmp.path().join("data").to_str().unwrap(),
        tmp.path().join("job.json").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("sha256 mismatch for plugin") && stderr.contains(&wrong.to_string()),
        "{stderr}"
    );
    runtime.block_on(running.shutdown())?;
    Ok(())
}

async fn wait_for_server(http: &reqwest::Client, data: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join("coordinator.json"))
            && let Ok(endpoint) = serde_json::from_str::<Value>(&text)
            && let Some(url) = endpoint["url"].as_str()
            && http
                .get(format!("{url}{}", api::paths::info()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            return url.to_string();
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_are_issued_listed_and_revoked_from_the_command_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let data_arg = data.to_str().unwrap();
    let miner = tmp.path().join("mine.wasm");
    std::fs::write(&miner, b"\0asm a miner")?;
    let _server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--data",
                data_arg,
                "--listen",
                "127.0.0.1:0",
                "--miner-plugin",
                miner.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = wait_for_server(&http, &data).await;

    let out = tmp.path().join("rig.json");
    let create = run(&[
        "worker",
        "create",
        "--data",
        data_arg,
        "--name",
        "CLI rig",
        "--wallet",
        crate::support::BTC_ADDRESS,
        "--pool",
        "stratum+tcp://pool.example:3333",
        "--coin",
        "btc",
        "--price",
        "render=0.05",
        "--price",
        "train=2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(create.status.success(), "{}", text(&create.stderr));
    let stderr = text(&create.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("issued worker "))
        .unwrap()
        .to_string();
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    assert_eq!(config["worker"]["id"], id.as_str());
    assert_eq!(config["coordinator"]["url"], url.as_str());
    assert_eq!(config["prices"], json!({"render": 0.05, "train": 2.0}));
    assert_eq!(config["mining"]["enabled"], true);
    assert_eq!(
        config["mining"]["plugin_sha256"],
        Sha256Digest::of(b"\0asm a miner").to_string().as_str()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&out)?.permissions().mode() & 0o777, 0o600);
    }
    // An existing file is never overwritten (and nothing is issued).
    let again = run(&[
        "worker",
        "create",
        "--data",
        data_arg,
        "--name",
        "x",
        "--wallet",
        "wallet-123",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
    // To stdout; a refused field is named.
    let plain = run(&[
        "worker",
        "create",
        "--data",
        data_arg,
        "--name",
        "Plain",
        "--wallet",
        "wallet-123",
    ]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let plain_config: Value = serde_json::from_slice(&plain.stdout)?;
    assert!(plain_config.get("mining").is_none());
    let bad = run(&[
        "worker",
        "create",
        "--data",
        data_arg,
        "--name",
        "Bad",
        "--wallet",
        "wallet-123",
        "--pool",
        "http://pool:1",
        "--coin",
        "btc",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("`mining.pool`"),
        "{}",
        text(&bad.stderr)
    );

    let list = run(&["worker", "list", "--data", data_arg]);
    assert!(list.status.success());
    let table = text(&list.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("CLI rig") && l.contains("offline")),
        "{table}"
    );
    let revoke = run(&["worker", "revoke", "--data", data_arg, &id]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    let list = run(&["worker", "list", "--data", data_arg, "--json"]);
    let list: api::WorkerList = serde_json::from_slice(&list.stdout)?;
    assert_eq!(list.workers.len(), 2);
    let revoked = list.workers.iter().find(|w| w.id == id).unwrap();
    assert!(revoked.revoked && revoked.issued);
    let missing = run(&["worker", "revoke", "--data", data_arg, "wkr-nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    Ok(())
}

#[test]
fn fault_injection_flags_are_hidden_from_help_but_still_parsed() {
    let help = run(&["serve", "--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    let help = text(&help.stdout);
    assert!(help.contains("--lease-ttl-s"), "{help}");
    assert!(
        !help.contains("--fault-"),
        "test-only flags in help:\n{help}"
    );
    // Still accepted: a bad value is a parse error about the value, not an
    // unknown flag.
    let bad = run(&[
        "serve",
        "--data",
        "x",
        "--fault-cut-blob-after-bytes",
        "many",
    ]);
    let stderr = text(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("invalid value 'many'"), "{stderr}");
}
