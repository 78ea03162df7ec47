//! Path tracing throughput of the `render` plugin: Msamples/s of the GPU
//! path (the plugin's WGSL kernel through the gpu capability) vs the CPU
//! reference tracer (native Rust, all cores) on the same scene, frame and
//! samples, in one run.
//!
//! Run: `cargo bench -p pictor-host --bench render -- [--scene cornell] [--size 128] [--spp 64] [--runs 3]`
//! (`--scene` is a fixture of `fixtures/scenes/`: cornell, textured, glossy;
//! builds the plugins first; prebuilt ones can be given with `PICTOR_PLUGINS_DIR`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{median, parse_flags, pictor_plugins};
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{Runtime, RuntimeConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    scene: String,
    size: u32,
    spp: u32,
    runs: usize,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        scene: "cornell".into(),
        size: 128,
        spp: 64,
        runs: 3,
    };
    parse_flags(|flag, value| {
        match flag {
            "--scene" => args.scene = value,
            "--size" => args.size = value.parse()?,
            "--spp" => args.spp = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(args)
}

fn main() -> Result<(), Error> {
    let args = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let scenes = root.join("fixtures/scenes");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(
        scenes.join(format!("{}.ref.json", args.scene)),
    )?)?;
    let file = reference["scene"]
        .as_str()
        .ok_or("no scene in ref.json")?
        .to_string();
    let mut params = reference["params"].clone();
    params["width"] = args.size.into();
    params["height"] = args.size.into();
    params["spp"] = args.spp.into();

    let plugins = pictor_plugins(root)?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let plugin = runtime.load(&std::fs::read(plugins.join("render.wasm"))?)?;
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let device = gpu.device()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let input = work.path().join("in");
    std::fs::create_dir(&input)?;
    std::fs::copy(scenes.join(&file), input.join(&file))?;
    if file.ends_with(".gltf") {
        let bin = file.replace(".gltf", ".bin");
        std::fs::copy(scenes.join(&bin), input.join(&bin))?;
    }
    let mut job_number = 0;
    let mut run_gpu = |params: &serde_json::Value| -> Result<(f64, f64, f64), Error> {
        job_number += 1;
        let spec = serde_json::json!({"version": 1, "id": format!("render-{job_number}"), "kind": "render", "params": params,
            "limits": {"timeout_s": 3600}});
        let spec = JobSpec::from_json(&spec.to_string())?;
        let dirs = JobDirs::prepare(&input, &work.path().join(format!("out{job_number}")))?;
        let outcome = tokio.block_on(run_job(
            &plugin,
            JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&gpu)),
        ));
        let metric = |name: &str| {
            outcome
                .success
                .as_ref()
                .and_then(|s| s.metrics.get(name).copied())
                .unwrap_or(f64::NAN)
        };
        if let Some(f) = &outcome.failure {
            return Err(format!("bench job failed: {}", f.message).into());
        }
        Ok((
            metric("samples_per_s"),
            metric("gpu_ms"),
            metric("max_pass_ms"),
        ))
    };

    let samples = f64::from(args.size) * f64::from(args.size) * f64::from(args.spp);
    // Warm-up (pipeline compilation, driver caches).
    let mut warm = params.clone();
    warm["spp"] = 1.into();
    run_gpu(&warm)?;
    let mut gpu_rates = Vec::new();
    let mut kernel_rates = Vec::new();
    let mut max_pass = 0.0f64;
    for _ in 0..args.runs {
        let (rate, gpu_ms, pass) = run_gpu(&params)?;
        gpu_rates.push(rate);
        kernel_rates.push(samples / (gpu_ms / 1e3));
        max_pass = max_pass.max(pass);
    }

    let p = render::Params::from_json(&params.to_string())?;
    let read = render::scene::dir_reader(&input);
    let prepared = render::prepare(&p, 0, &file, &read)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cpu_rates = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let pixels = render::cpu::render(&prepared.data, &prepared.view);
        cpu_rates.push(samples / started.elapsed().as_secs_f64());
        std::hint::black_box(pixels);
    }
    let (gpu_rate, kernel_rate, cpu_rate) =
        (median(gpu_rates), median(kernel_rates), median(cpu_rates));

    println!(
        "adapter: {} ({:?}, {:?})",
        device.info.name, device.info.backend, device.info.device_type
    );
    println!(
        "scene {} ({} triangles), {}x{} at {} spp, {} bounces, median of {} runs",
        args.scene, prepared.triangles, args.size, args.size, args.spp, p.max_bounces, args.runs
    );
    println!(
        "  GPU plugin, whole render    {:>9.3} Msamples/s",
        gpu_rate / 1e6
    );
    println!(
        "  GPU plugin, passes only     {:>9.3} Msamples/s   (longest pass {max_pass:.1} ms)",
        kernel_rate / 1e6
    );
    println!(
        "  CPU reference, {threads} threads   {:>9.3} Msamples/s",
        cpu_rate / 1e6
    );
    println!("  GPU/CPU = {:.2}x", gpu_rate / cpu_rate);
    Ok(())
}
