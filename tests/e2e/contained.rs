//! One host process, one engine: every attack in a row, then a normal job.
//! The process must survive all of them and the last job must succeed.

use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{Runtime, RuntimeConfig};

use crate::support::plugin;

async fn run(
    runtime: &Runtime,
    plugin_name: &str,
    params: serde_json::Value,
) -> pictor_runtime::jobs::outcome::JobOutcome {
    let bytes = std::fs::read(plugin(plugin_name)).unwrap();
    let loaded = runtime.load(&bytes).unwrap();
    let spec = JobSpec::from_json(
        &serde_json::json!({"version": 1, "id": "in-process", "kind": plugin_name, "params": params,
                            "limits": {"timeout_s": 1, "memory_mib": 64, "output_mib": 8}})
        .to_string(),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    std::fs::write(root.path().join("in/x.txt"), "x").unwrap();
    let dirs = JobDirs::prepare(&root.path().join("in"), &root.path().join("out")).unwrap();
    run_job(&loaded, JobRun::new(&spec, &dirs)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_survives_every_attack_and_runs_the_next_job() {
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None }).unwrap();
    let attacks = [
        "infinite-loop",
        "sleep-forever",
        "memory-bomb",
        "deep-recursion",
        "panic",
        "write-dotdot",
        "write-absolute",
        "read-passwd",
        "output-symlink",
        "output-bomb",
    ];
    for attack in attacks {
        let outcome = run(
            &runtime,
            "adversary",
            serde_json::json!({"attack": attack, "target": "/tmp/x"}),
        )
        .await;
        assert!(!outcome.succeeded(), "{attack} succeeded: {outcome:?}");
        let failure = outcome.failure.as_ref().unwrap();
        assert!(!failure.message.is_empty(), "{attack}: empty reason");
    }
    let outcome = run(&runtime, "hello", serde_json::json!({})).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.outputs.len(), 1);
}
