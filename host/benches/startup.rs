//! Start-up cost of a trivial job (the `hello` plugin on one small input),
//! three ways, in one run so the ratios compare like with like:
//!
//! - cold: compile the component with Cranelift, link, instantiate, run;
//! - warm: load the compiled component from the on-disk cache, link,
//!   instantiate, run;
//! - instantiate-only: the plugin is already loaded; instantiate and run.
//!
//! Run: `cargo bench -p pictor-host --bench startup` (builds the plugins first).

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::pictor_plugins;
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{LoadedPlugin, Runtime, RuntimeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let bytes = std::fs::read(plugins.join("hello.wasm"))?;
    let spec = JobSpec::from_json(r#"{"version": 1, "id": "bench", "kind": "hello"}"#)?;
    let work = tempfile::tempdir()?;
    std::fs::create_dir(work.path().join("in"))?;
    std::fs::write(work.path().join("in/a.txt"), "hello")?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut job_number = 0u32;
    let mut run = |plugin: &LoadedPlugin| -> Result<(), Box<dyn std::error::Error>> {
        job_number += 1;
        let dirs = JobDirs::prepare(
            &work.path().join("in"),
            &work.path().join(format!("out{job_number}")),
        )?;
        let outcome = tokio.block_on(run_job(plugin, JobRun::new(&spec, &dirs)));
        if !outcome.succeeded() {
            return Err(format!("bench job failed: {:?}", outcome.failure).into());
        }
        std::fs::remove_dir_all(&dirs.output)?;
        Ok(())
    };

    let uncached = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let cache_dir = work.path().join("cache");
    let cached = Runtime::new(&RuntimeConfig {
        cache_dir: Some(cache_dir),
    })?;
    cached.load(&bytes)?; // fill the cache

    const COLD: usize = 10;
    const WARM: usize = 200;
    let mut cold = Vec::new();
    for _ in 0..COLD {
        let t = Instant::now();
        let plugin = uncached.load(&bytes)?;
        run(&plugin)?;
        cold.push(t.elapsed());
    }
    let mut warm = Vec::new();
    for _ in 0..WARM {
        let t = Instant::now();
        let plugin = cached.load(&bytes)?;
        run(&plugin)?;
        warm.push(t.elapsed());
    }
    let plugin = cached.load(&bytes)?;
    let mut instantiate = Vec::new();
    for _ in 0..WARM {
        let t = Instant::now();
        run(&plugin)?;
        instantiate.push(t.elapsed());
    }

    let (c, w, i) = (
        median(&mut cold),
        median(&mut warm),
        median(&mut instantiate),
    );
    println!(
        "start-up of a trivial job (hello, 1 input file), median of {COLD}/{WARM}/{WARM} runs"
    );
    println!("  plugin: {} bytes", bytes.len());
    println!("  cold (compile + run)        {:>9.3} ms", ms(c));
    println!(
        "  warm (cache load + run)     {:>9.3} ms   cold/warm = {:.1}x",
        ms(w),
        ratio(c, w)
    );
    println!(
        "  instantiate-only (+ run)    {:>9.3} ms   warm/instantiate = {:.2}x",
        ms(i),
        ratio(w, i)
    );
    Ok(())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
