//! Mining preemption latency: the time from the stop request the worker
//! makes when it claims a job to "miner gone and GPU drained", over many
//! mining→job cycles with a miner hashing on the GPU: the `testminer`
//! plugin (default), or with `--plugin mine` the real Stratum miner mining
//! on the e2e tests' pool (in this process, on loopback), each stop landing
//! mid-search once it is hashing.
//!
//! Run: `cargo bench -p pictor-host --bench preemption -- [--cycles 100] [--plugin mine]`

mod common;
use pictor_test_support::pool;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::pictor_plugins;
use pictor_host::config::{WorkerConfig, parse};
use pictor_host::mining::{self, Eligibility};
use pictor_host::telemetry::nvml;
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::{Runtime, RuntimeConfig};
use tokio::sync::watch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cycles = 100usize;
    let mut miner = "testminer".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cycles" => cycles = args.next().ok_or("--cycles needs a value")?.parse()?,
            "--plugin" => miner = args.next().ok_or("--plugin needs testminer or mine")?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let work = tempfile::tempdir()?;
    if !["testminer", "mine"].contains(&miner.as_str()) {
        return Err(format!("--plugin {miner}: use testminer or mine").into());
    }
    // The real miner needs a pool to get work from (2^-12 share difficulty:
    // a few shares a second, so the stop also races share traffic).
    let pool = pool::TestPool::start(pool::PoolOptions {
        difficulty: 1.0 / 4096.0,
        ..pool::PoolOptions::default()
    });
    let config_json = serde_json::json!({
        "version": 1, "worker": {"id": "wkr-bench"}, "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "mining": {"enabled": true, "pool": pool.url(), "coin": "btc",
                   "plugin": plugins.join(format!("{miner}.wasm")), "idle_delay_s": 0, "require_nvidia": false, "allow_private_pool": true}
    });
    let config = WorkerConfig::validate(
        parse(&config_json.to_string())?,
        work.path(),
        &work.path().join("worker.json"),
    )?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let Eligibility::Mine(plan) = mining::eligibility(&config, &nvml::sample(), &runtime) else {
        return Err("mining is not eligible".into());
    };
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let miner_is_real = miner == "mine";
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut latencies = Vec::with_capacity(cycles);
    tokio.block_on(async {
        for _ in 0..cycles {
            let (status, mut seen) = watch::channel(None);
            let mut stats = plan.stats();
            let before = stats.borrow().as_ref().map_or(0, |s| s.hashes);
            let miner = plan.start(0, &work.path().join("mining"), Arc::clone(&gpu), status)?;
            // Wait until it is really mining (the testminer's first hashrate
            // report; the real miner's first hashes after connecting to the
            // pool), then let it run a little so the stop lands mid-work.
            if miner_is_real {
                while stats
                    .borrow_and_update()
                    .as_ref()
                    .is_none_or(|s| s.hashes <= before)
                {
                    stats.changed().await?;
                }
            } else {
                while seen.borrow_and_update().is_none() {
                    seen.changed().await?;
                }
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
    println!(
        "adapter: {} ({:?})",
        device.info.name, device.info.device_type
    );
    println!(
        "mining preemption of `{miner}` over {cycles} cycles (stop request → miner gone and GPU drained)"
    );
    println!("  p50 {:>8.3} ms", pick(0.5));
    println!(
        "  p99 {:>8.3} ms   goal ≤ 20 ms: {}",
        pick(0.99),
        if pick(0.99) <= 20.0 { "met" } else { "NOT met" }
    );
    println!("  max {:>8.3} ms", latencies[latencies.len() - 1]);
    Ok(())
}
