//! Mining preemption latency: the time from the stop request the worker
//! makes when it claims a job to "miner gone and GPU drained", over many
//! mining→job cycles with the `testminer` plugin hashing on the GPU.
//!
//! Run: `cargo bench -p pictor-host --bench preemption -- [--cycles 100]`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::pictor_plugins;
use pictor_host::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_host::config::{WorkerConfig, parse};
use pictor_host::mining::{self, Eligibility};
use pictor_host::runtime::{Runtime, RuntimeConfig};
use pictor_host::telemetry::nvml;
use tokio::sync::watch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cycles = 100usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cycles" => cycles = args.next().ok_or("--cycles needs a value")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let work = tempfile::tempdir()?;
    let config_json = serde_json::json!({
        "version": 1, "worker": {"id": "wkr-bench"}, "wallet": "bc1qbenchwallet000000",
        "mining": {"enabled": true, "pool": "stratum+tcp://127.0.0.1:3333", "coin": "btc",
                   "plugin": plugins.join("testminer.wasm"), "idle_delay_s": 0, "require_nvidia": false}
    });
    let config = WorkerConfig::validate(parse(&config_json.to_string())?, work.path(), &work.path().join("worker.json"))?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let Eligibility::Mine(plan) = mining::eligibility(&config, &nvml::sample(), &runtime) else {
        return Err("mining is not eligible".into());
    };
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut latencies = Vec::with_capacity(cycles);
    tokio.block_on(async {
        for _ in 0..cycles {
            let (status, mut seen) = watch::channel(None);
            let miner = plan.start(0, &work.path().join("mining"), Arc::clone(&gpu), status)?;
            // Wait until it is really mining (its first hashrate report),
            // then let it run a little so the stop lands mid-work.
            while seen.borrow_and_update().is_none() {
                seen.changed().await?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let stopped = miner.stop(&gpu).await;
            latencies.push(stopped.latency_ms);
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    tokio.shutdown_timeout(Duration::from_secs(10));
    let device = gpu.device()?;
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!("adapter: {} ({:?})", device.info.name, device.info.device_type);
    println!("mining preemption over {cycles} cycles (stop request → miner gone and GPU drained)");
    println!("  p50 {:>8.3} ms", pick(0.5));
    println!("  p99 {:>8.3} ms   goal ≤ 20 ms: {}", pick(0.99), if pick(0.99) <= 20.0 { "met" } else { "NOT met" });
    println!("  max {:>8.3} ms", latencies[latencies.len() - 1]);
    Ok(())
}
