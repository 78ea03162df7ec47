//! Job plugins written in other languages with their standard toolchains
//! (`examples/`, built by `scripts/build-examples.sh`), run as real jobs:
//! through `exec` and through a worker. Each reads `/input`, writes
//! `/output`, reports progress, keeps a checkpoint and makes one GPU
//! dispatch per file.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{JobFolders, Run, example_plugin, exec_component_command, host, sha256_hex};
use crate::worker::Farm;

/// The example plugins and their kinds.
const PLUGINS: &[&str] = &["py-scale", "js-scale"];

fn exec(name: &str, spec: &Value, f: &JobFolders, checkpoint: &std::path::Path) -> Run {
    exec_component_command(&example_plugin(name), &f.job(spec), f)
        .arg("--checkpoint")
        .arg(checkpoint)
        .output()
        .expect("run pictor-host")
        .into()
}

/// Runs each `(kind, component)` as a job of that kind on one worker, on
/// one input, and checks every result.
fn run_on_a_worker(components: &[(&str, PathBuf)]) {
    let kinds: Vec<&str> = components.iter().map(|(name, _)| *name).collect();
    let farm = Farm::with(json!({"limits": {"job_kinds": kinds}}));
    let input = farm.dir.path().join("values.txt");
    std::fs::write(&input, "0.5\n4\n").unwrap();
    for (name, component) in components {
        let mut spec = scale_job(name, 2.0);
        spec["inputs"] =
            json!([{"name": "values.txt", "path": input, "sha256": sha256_hex(&input)}]);
        farm.submit_component(component, spec);
    }
    let out = farm.run(true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, _) in components {
        let job = format!("{name}-job");
        let result = farm.result(&job);
        assert_eq!(result["status"], "succeeded", "{name}: {result}");
        let output = farm
            .spool()
            .join("done")
            .join(&job)
            .join("output/values.txt");
        assert_eq!(
            std::fs::read_to_string(&output).unwrap(),
            "1\n8\n",
            "{name}"
        );
        assert_eq!(result["outputs"][0]["sha256"], sha256_hex(&output));
    }
}

fn inputs(f: &JobFolders) {
    std::fs::write(f.input.join("a.txt"), "1\n2.5\n\n-3\n").unwrap();
    std::fs::write(f.input.join("b.txt"), "10\n").unwrap();
}

fn scale_job(name: &str, factor: f64) -> Value {
    json!({"version": 1, "id": format!("{name}-job"), "kind": name, "params": {"factor": factor}})
}

#[test]
fn each_language_scales_its_inputs_on_the_gpu_with_progress_and_a_checkpoint() {
    for &name in PLUGINS {
        let f = JobFolders::new();
        inputs(&f);
        let checkpoint = f.root.path().join("checkpoint.bin");
        let run = exec(name, &scale_job(name, 3.0), &f, &checkpoint);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stdout, run.stderr);
        let outcome = run.outcome();
        assert_eq!(
            std::fs::read_to_string(f.output.join("a.txt")).unwrap(),
            "3\n7.5\n-9\n",
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(f.output.join("b.txt")).unwrap(),
            "30\n"
        );
        assert_eq!(
            outcome["success"]["message"],
            "scaled 4 numbers in 2 files by 3"
        );
        assert_eq!(outcome["success"]["metrics"]["values"], 4.0);
        assert_eq!(outcome["progress"]["fraction"], 1.0);
        assert_eq!(outcome["progress"]["message"], "scaled b.txt");
        assert_eq!(outcome["checkpoints_saved"], 2, "{name}");
        assert!(
            outcome["adapter"].as_str().is_some_and(|a| !a.is_empty()),
            "{name} ran on a GPU adapter: {outcome}"
        );
        let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
        assert_eq!(saved, json!({"files": ["a.txt", "b.txt"], "values": 4}));
        assert!(
            run.stderr
                .contains(&format!("{name}: 2 files for job {name}-job")),
            "{}",
            run.stderr
        );

        // Resumed from a checkpoint that has a.txt done: only b.txt is redone.
        let again = JobFolders::new();
        inputs(&again);
        let checkpoint = again.root.path().join("checkpoint.bin");
        std::fs::write(&checkpoint, br#"{"files": ["a.txt"], "values": 3}"#).unwrap();
        let run = exec(name, &scale_job(name, 3.0), &again, &checkpoint);
        assert_eq!(run.code, 0, "{name}: {}\n{}", run.stdout, run.stderr);
        assert!(!again.output.join("a.txt").exists(), "{name} redid a.txt");
        assert_eq!(
            std::fs::read_to_string(again.output.join("b.txt")).unwrap(),
            "30\n"
        );
        assert_eq!(
            run.outcome()["success"]["message"],
            "scaled 4 numbers in 2 files by 3"
        );
    }
}

#[test]
fn bad_params_and_inputs_are_refused_with_what_is_wrong() {
    for &name in PLUGINS {
        let f = JobFolders::new();
        std::fs::write(f.input.join("a.txt"), "1\ntwo\n").unwrap();
        let run = exec(name, &scale_job(name, 2.0), &f, &f.root.path().join("c"));
        assert_eq!(
            run.failure_kind(),
            "invalid-input",
            "{name}: {}",
            run.stdout
        );
        assert_eq!(
            run.failure_message(),
            "invalid input: /input/a.txt line 2: `two` is not a number",
            "{name}"
        );

        let f = JobFolders::new();
        let spec = json!({"version": 1, "id": "p", "kind": name, "params": {"factor": "x"}});
        let run = exec(name, &spec, &f, &f.root.path().join("c"));
        assert_eq!(
            run.failure_kind(),
            "invalid-params",
            "{name}: {}",
            run.stdout
        );
        assert_eq!(
            run.failure_message(),
            "invalid params: `factor` must be a number",
            "{name}"
        );
    }
}

#[test]
fn each_language_runs_as_a_job_on_a_worker() {
    let components: Vec<(&str, PathBuf)> = PLUGINS
        .iter()
        .map(|&name| (name, example_plugin(name)))
        .collect();
    run_on_a_worker(&components);
}

/// `plugin new` writes a project outside the repository that builds with
/// its own `build.sh` (installing its toolchain from PyPI or npm as an
/// author's would), passes its own `test.sh`, and runs as a job on a
/// worker: in Rust (out of tree, with the vendored SDK), Python and
/// JavaScript.
#[test]
fn plugin_new_projects_build_pass_their_test_and_run_on_a_worker() {
    let projects = tempfile::tempdir().unwrap();
    let host_binary = env!("CARGO_BIN_EXE_pictor-host");
    let mut built = Vec::new();
    for (lang, name) in [
        ("rust", "demo-rust"),
        ("python", "demo-python"),
        ("js", "demo-js"),
    ] {
        let dir = projects.path().join(lang);
        let out = host()
            .args(["plugin", "new", name, "--lang", lang, "--into"])
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{lang}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("bash build.sh") && stdout.contains(&format!("{name}.wasm")),
            "{stdout}"
        );

        let out = std::process::Command::new("bash")
            .arg(dir.join("test.sh"))
            .env("PICTOR_HOST", host_binary)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            // Rust: std is built from source; keep it between test runs.
            .env(
                "CARGO_TARGET_DIR",
                crate::support::scratch().join("scaffold-target"),
            )
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{lang} test.sh failed:\n{log}");
        assert!(
            log.contains(&format!("ok: {name} scaled input/values.txt as expected")),
            "{log}"
        );
        built.push((name, dir.join(format!("{name}.wasm"))));
    }

    run_on_a_worker(&built);
}
