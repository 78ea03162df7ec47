//! GPU jobs in one host process on one shared device: nothing leaks across
//! jobs, and a job that overruns its GPU time or loses the device does not
//! stop the next one.

use std::sync::Arc;

use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::jobs::outcome::JobOutcome;
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{LoadedPlugin, Runtime, RuntimeConfig};

use crate::support::plugin;

async fn run(
    plugin: &LoadedPlugin,
    gpu: &Arc<GpuProvider>,
    params: serde_json::Value,
    limits: serde_json::Value,
) -> JobOutcome {
    let spec = JobSpec::from_json(
        &serde_json::json!({"version": 1, "id": "gpu-job", "kind": "gpuprobe", "params": params, "limits": limits}).to_string(),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    let dirs = JobDirs::prepare(&root.path().join("in"), &root.path().join("out")).unwrap();
    run_job(plugin, JobRun::new(&spec, &dirs).with_gpu(Arc::clone(gpu))).await
}

fn setup() -> (Runtime, LoadedPlugin, Arc<GpuProvider>) {
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None }).unwrap();
    let plugin = runtime
        .load(&std::fs::read(plugin("gpuprobe")).unwrap())
        .unwrap();
    (
        runtime,
        plugin,
        Arc::new(GpuProvider::new(AdapterChoice::Auto)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_leaky_jobs_leave_no_buffer_behind() {
    let (_runtime, plugin, gpu) = setup();
    let device = gpu.device().unwrap();
    for i in 0..100 {
        let outcome = run(
            &plugin,
            &gpu,
            serde_json::json!({"check": "leak"}),
            serde_json::json!({}),
        )
        .await;
        assert!(outcome.succeeded(), "job {i}: {:?}", outcome.failure);
        assert_eq!(
            (device.live_buffers(), device.live_bytes()),
            (0, 0),
            "after job {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_after_a_gpu_timeout_runs_fine() {
    let (_runtime, plugin, gpu) = setup();
    let timed_out = run(
        &plugin,
        &gpu,
        serde_json::json!({"check": "long-kernel"}),
        serde_json::json!({"gpu_submission_ms": 100}),
    )
    .await;
    assert_eq!(
        timed_out.failure.map(|f| f.message).unwrap_or_default(),
        "GPU submission ran past the job's 100 ms quota (split the work into shorter submissions)"
    );
    let next = run(
        &plugin,
        &gpu,
        serde_json::json!({"check": "out-of-bounds"}),
        serde_json::json!({}),
    )
    .await;
    assert!(next.succeeded(), "{:?}", next.failure);
    assert_eq!(gpu.device().unwrap().live_buffers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_device_is_reopened_for_the_next_job() {
    let (_runtime, plugin, gpu) = setup();
    let first = gpu.device().unwrap();
    first.device.destroy();
    let _ = first.device.poll(wgpu::PollType::Poll);
    assert!(
        first.lost_reason().is_some(),
        "destroy() must mark the device lost"
    );
    let outcome = run(
        &plugin,
        &gpu,
        serde_json::json!({"check": "info"}),
        serde_json::json!({}),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.failure);
    assert!(
        !Arc::ptr_eq(&first, &gpu.device().unwrap()),
        "a new device must have been opened"
    );
}
