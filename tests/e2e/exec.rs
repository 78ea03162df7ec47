//! `pictor-host exec`: running a job, its outputs, the cache, bad input.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{JobFolders, exec, host, plugin, sha256_hex};

#[test]
fn hello_writes_every_output_and_lists_it_with_its_sha256() {
    let f = JobFolders::new();
    std::fs::create_dir(f.input.join("nested")).unwrap();
    std::fs::write(f.input.join("a.txt"), "alpha").unwrap();
    std::fs::write(f.input.join("nested/b.txt"), "beta").unwrap();
    let spec = json!({"version": 1, "id": "hello-1", "kind": "hello", "params": {"suffix": "!"}});
    let run = exec("hello", &spec, &f, &[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let outcome = run.outcome();
    assert_eq!(outcome["status"], "succeeded");
    assert_eq!(outcome["plugin"], sha256_hex(&plugin("hello")));
    assert_eq!(outcome["success"]["metrics"]["files"], 2.0);
    assert_eq!(outcome["progress"]["fraction"], 1.0);

    assert_eq!(
        std::fs::read_to_string(f.output.join("a.txt.hello")).unwrap(),
        "alpha!"
    );
    assert_eq!(
        std::fs::read_to_string(f.output.join("nested/b.txt.hello")).unwrap(),
        "beta!"
    );
    let outputs = outcome["outputs"].as_array().unwrap();
    let paths: Vec<&str> = outputs
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt.hello", "nested/b.txt.hello"]);
    for o in outputs {
        let on_disk = f.output.join(o["path"].as_str().unwrap());
        assert_eq!(o["sha256"], sha256_hex(&on_disk));
        assert_eq!(o["size"], std::fs::metadata(&on_disk).unwrap().len());
    }
    // The plugin's stdout went to the log, tagged with the job.
    assert!(
        run.stderr.contains("hello: 2 files for job hello-1"),
        "{}",
        run.stderr
    );
}

#[test]
fn human_output_names_status_duration_and_each_output() {
    let f = JobFolders::new();
    std::fs::write(f.input.join("x"), "1").unwrap();
    let job = f.job(&json!({"version": 1, "id": "human", "kind": "hello"}));
    let out = host()
        .args(["exec", "--plugin"])
        .arg(plugin("hello"))
        .arg("--job")
        .arg(&job)
        .arg("--input")
        .arg(&f.input)
        .arg("--output")
        .arg(&f.output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.starts_with("succeeded in "), "{stdout}");
    assert!(
        stdout.contains(&sha256_hex(&f.output.join("x.hello"))),
        "{stdout}"
    );
    assert!(stdout.contains("x.hello"), "{stdout}");
}

#[test]
fn second_run_loads_the_compiled_plugin_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("components");
    let mut banners = Vec::new();
    for i in 0..2 {
        let f = JobFolders::new();
        let job = f.job(&json!({"version": 1, "id": format!("cache-{i}"), "kind": "hello"}));
        let out = host()
            .args(["exec", "--plugin"])
            .arg(plugin("hello"))
            .arg("--job")
            .arg(&job)
            .arg("--output")
            .arg(&f.output)
            .arg("--cache-dir")
            .arg(&cache_dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        banners.push(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(banners[0].contains("compiled in"), "{}", banners[0]);
    assert!(banners[1].contains("loaded from cache"), "{}", banners[1]);
}

#[test]
fn invalid_spec_names_the_file_and_the_field() {
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "bad", "kind": "hello", "seeed": 1});
    let run = exec("hello", &spec, &f, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("job.json"), "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown field `seeed`"),
        "{}",
        run.stderr
    );

    let run = exec(
        "hello",
        &json!({"version": 1, "id": "bad", "kind": "hello", "seed": "x"}),
        &f,
        &[],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("`seed`"), "{}", run.stderr);

    let run = exec(
        "hello",
        &json!({"version": 9, "id": "bad", "kind": "hello"}),
        &f,
        &[],
    );
    assert!(
        run.stderr.contains("unsupported `version` 9"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_plugin_not_a_component_and_non_empty_output_are_refused() {
    let f = JobFolders::new();
    let job = f.job(&json!({"version": 1, "id": "j", "kind": "hello"}));
    let run = |plugin_path: &std::path::Path| -> crate::support::Run {
        host()
            .args(["exec", "--plugin"])
            .arg(plugin_path)
            .arg("--job")
            .arg(&job)
            .arg("--output")
            .arg(&f.output)
            .output()
            .unwrap()
            .into()
    };
    let missing = f.root.path().join("nope.wasm");
    let r = run(&missing);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("cannot read plugin") && r.stderr.contains("nope.wasm"),
        "{}",
        r.stderr
    );

    let garbage = f.root.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm but not really").unwrap();
    let r = run(&garbage);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not a valid WebAssembly component"),
        "{}",
        r.stderr
    );

    std::fs::create_dir_all(&f.output).unwrap();
    std::fs::write(f.output.join("precious.txt"), "keep me").unwrap();
    let r = run(&plugin("hello"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(f.output.join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn plugin_errors_are_typed_and_exit_1() {
    let f = JobFolders::new();
    let run = exec(
        "hello",
        &json!({"version": 1, "id": "p", "kind": "hello", "params": {"sufix": 1}}),
        &f,
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.failure_kind(), "invalid-params");
    assert!(
        run.failure_message().contains("unknown field `sufix`"),
        "{}",
        run.failure_message()
    );
    assert_eq!(run.outcome()["failure"]["retryable"], false);
}

#[test]
fn sandbox_has_no_env_no_args_no_stdin_and_only_its_two_folders() {
    let f = JobFolders::new();
    let run = exec(
        "probe",
        &json!({"version": 1, "id": "env", "kind": "probe", "params": {"check": "environment"}}),
        &f,
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.output.join("environment.json")).unwrap()).unwrap();
    assert_eq!(report["vars"], 0);
    assert_eq!(report["args"], 0);
    assert_eq!(report["stdin_bytes"], 0);
    // `/` itself is not a preopen: nothing can be listed there.
    assert_eq!(report["root"], json!([]));
}

#[test]
fn checkpoint_file_carries_state_to_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("probe.ckpt");
    for expected in 1..=2 {
        let f = JobFolders::new();
        let spec =
            json!({"version": 1, "id": "ck", "kind": "probe", "params": {"check": "checkpoint"}});
        let run = exec(
            "probe",
            &spec,
            &f,
            &["--checkpoint", ckpt.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            std::fs::read_to_string(f.output.join("count.txt")).unwrap(),
            expected.to_string()
        );
        assert_eq!(run.outcome()["checkpoints_saved"], 1);
    }
    assert_eq!(std::fs::read(&ckpt).unwrap(), 2u64.to_le_bytes());
}

#[test]
fn ctrl_c_asks_the_plugin_to_stop_and_it_returns_cancelled() {
    let f = JobFolders::new();
    let checkpoint = f.root.path().join("steps.ckpt");
    let job = f.job(&json!({"version": 1, "id": "cancel", "kind": "probe", "params": {"check": "steps", "steps": 600, "step_ms": 100}}));
    let child = host()
        .args(["exec", "--json", "--plugin"])
        .arg(plugin("probe"))
        .arg("--job")
        .arg(&job)
        .arg("--output")
        .arg(&f.output)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first checkpoint proves the job (and the signal handler) is running.
    let waiting = Instant::now();
    while !checkpoint.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the job never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let run: crate::support::Run = child.wait_with_output().unwrap().into();
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "the plugin should stop well inside the grace period"
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.failure_kind(), "cancelled");
    assert!(
        run.outcome()["progress"]["message"]
            .as_str()
            .unwrap()
            .starts_with("step "),
        "{}",
        run.stdout
    );
}

/// Plugins built against an earlier `pictor:plugin` contract keep running
/// (`fixtures/plugins/README.md`): a published plugin's bytes never change.
#[test]
fn a_plugin_built_against_an_earlier_contract_still_runs() {
    let old = crate::support::repo_root().join("fixtures/plugins/hello-pictor-0.2.0.wasm");
    let f = JobFolders::new();
    std::fs::write(f.input.join("a.txt"), "alpha").unwrap();
    let spec = json!({"version": 1, "id": "old-hello", "kind": "hello", "params": {"suffix": "!"}});
    let out = crate::support::exec_component_command(&old, &f.job(&spec), &f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(f.output.join("a.txt.hello")).unwrap(),
        "alpha!"
    );
    let inspect = host()
        .args(["plugin", "inspect"])
        .arg(&old)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        stdout.contains("instance wasi:io/streams@0.2.6"),
        "an older WASI minor: {stdout}"
    );
}
