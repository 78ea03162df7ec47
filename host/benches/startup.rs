//! Start-up cost of a trivial job, three ways, in one run so the ratios
//! compare like with like:
//!
//! - cold: compile the component with Cranelift, link, instantiate, run;
//! - warm: load the compiled component from the on-disk cache, link,
//!   instantiate, run;
//! - instantiate-only: the plugin is already loaded; instantiate and run.
//!
//! For `hello` (Rust, one small input) and the plugins in other languages,
//! `py-scale` (Python, componentize-py) and `js-scale` (JavaScript,
//! componentize-qjs), each on an empty `/input`: their start-up is the
//! interpreter's.
//!
//! Run: `cargo bench -p pictor-host --bench startup` (builds the plugins first).

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{example_plugins, pictor_plugins};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{LoadedPlugin, Runtime, RuntimeConfig};

type Error = Box<dyn std::error::Error>;

/// One plugin's figures: size and median cold / warm / instantiate-only.
struct Startup {
    name: &'static str,
    size: usize,
    cold: Duration,
    warm: Duration,
    instantiate: Duration,
}

/// Times `cold` + `warm` + `warm` starts of the plugin in `bytes` running a
/// job of kind `name` on the files of `input`.
fn measure(
    name: &'static str,
    bytes: &[u8],
    input: &Path,
    (cold_runs, warm_runs): (usize, usize),
    tokio: &tokio::runtime::Runtime,
) -> Result<Startup, Error> {
    let spec = JobSpec::from_json(&format!(
        r#"{{"version": 1, "id": "bench", "kind": "{name}"}}"#
    ))?;
    let work = tempfile::tempdir()?;
    let mut job_number = 0u32;
    let mut run = |plugin: &LoadedPlugin| -> Result<(), Error> {
        job_number += 1;
        let dirs = JobDirs::prepare(input, &work.path().join(format!("out{job_number}")))?;
        let outcome = tokio.block_on(run_job(plugin, JobRun::new(&spec, &dirs)));
        if !outcome.succeeded() {
            return Err(format!("{name} bench job failed: {:?}", outcome.failure).into());
        }
        std::fs::remove_dir_all(&dirs.output)?;
        Ok(())
    };

    let uncached = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let cached = Runtime::new(&RuntimeConfig {
        cache_dir: Some(work.path().join("cache")),
    })?;
    cached.load(bytes)?; // fill the cache

    let mut cold = Vec::new();
    for _ in 0..cold_runs {
        let t = Instant::now();
        let plugin = uncached.load(bytes)?;
        run(&plugin)?;
        cold.push(t.elapsed());
    }
    let mut warm = Vec::new();
    for _ in 0..warm_runs {
        let t = Instant::now();
        let plugin = cached.load(bytes)?;
        run(&plugin)?;
        warm.push(t.elapsed());
    }
    let plugin = cached.load(bytes)?;
    let mut instantiate = Vec::new();
    for _ in 0..warm_runs {
        let t = Instant::now();
        run(&plugin)?;
        instantiate.push(t.elapsed());
    }
    Ok(Startup {
        name,
        size: bytes.len(),
        cold: median(&mut cold),
        warm: median(&mut warm),
        instantiate: median(&mut instantiate),
    })
}

fn main() -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let examples = example_plugins(root)?;
    let work = tempfile::tempdir()?;
    let small = work.path().join("small");
    std::fs::create_dir(&small)?;
    std::fs::write(small.join("a.txt"), "hello")?;
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    const HELLO_RUNS: (usize, usize) = (10, 200);
    const INTERPRETER_RUNS: (usize, usize) = (3, 50);
    let results = [
        measure(
            "hello",
            &std::fs::read(plugins.join("hello.wasm"))?,
            &small,
            HELLO_RUNS,
            &tokio,
        )?,
        measure(
            "py-scale",
            &std::fs::read(examples.join("py-scale.wasm"))?,
            &empty,
            INTERPRETER_RUNS,
            &tokio,
        )?,
        measure(
            "js-scale",
            &std::fs::read(examples.join("js-scale.wasm"))?,
            &empty,
            INTERPRETER_RUNS,
            &tokio,
        )?,
    ];
    println!(
        "start-up of a trivial job, median of {}/{}/{} runs (hello) and {}/{}/{} (py-scale, js-scale)",
        HELLO_RUNS.0,
        HELLO_RUNS.1,
        HELLO_RUNS.1,
        INTERPRETER_RUNS.0,
        INTERPRETER_RUNS.1,
        INTERPRETER_RUNS.1
    );
    println!(
        "  {:<10} {:>12} {:>12} {:>12} {:>14} {:>10} {:>12}",
        "plugin", "bytes", "cold ms", "warm ms", "instantiate ms", "cold/warm", "warm/inst."
    );
    for r in &results {
        println!(
            "  {:<10} {:>12} {:>12.3} {:>12.3} {:>14.3} {:>9.1}x {:>11.2}x",
            r.name,
            r.size,
            ms(r.cold),
            ms(r.warm),
            ms(r.instantiate),
            ratio(r.cold, r.warm),
            ratio(r.warm, r.instantiate)
        );
    }
    let hello = &results[0];
    for r in &results[1..] {
        println!(
            "  {} vs hello: cold {:.1}x, warm {:.1}x",
            r.name,
            ratio(r.cold, hello.cold),
            ratio(r.warm, hello.warm)
        );
    }
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
