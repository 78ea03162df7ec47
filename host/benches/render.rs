//! Path tracing throughput of the `render` plugin: Msamples/s of the GPU
//! path (the plugin's WGSL kernel through the gpu capability) vs the CPU
//! reference tracer (native Rust, all cores) on the same scene, frame and
//! samples, in one run.
//!
//! With `--compare cycles`, the same scene is also rendered by Blender Cycles (CPU,
//! all cores, through `scripts/cycles/render.py`) at the same size, spp and
//! bounces, and both images are compared with a high-spp Cycles reference
//! (`--ref-spp`, cached under `target/cycles/`): time, tone-mapped RMSE and
//! the efficiency 1 / (MSE × time), ours over Cycles. Needs `blender`
//! (Debian's package).
//!
//! Run: `cargo bench -p pictor-host --bench render -- [--scene cornell] [--size 128] [--spp 64] [--runs 3]
//! [--bounces 8] [--compare cycles] [--ref-spp 4096]`
//! (`--scene` is a fixture of `fixtures/scenes/`: cornell, textured, glossy, lights;
//! builds the plugins first; prebuilt ones can be given with `PICTOR_PLUGINS_DIR`).

use std::path::{Path, PathBuf};
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
    bounces: Option<u32>,
    cycles: bool,
    ref_spp: u32,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        scene: "cornell".into(),
        size: 128,
        spp: 64,
        runs: 3,
        bounces: None,
        cycles: false,
        ref_spp: 4096,
    };
    parse_flags(|flag, value| {
        match flag {
            "--scene" => args.scene = value,
            "--size" => args.size = value.parse()?,
            "--spp" => args.spp = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            "--bounces" => args.bounces = Some(value.parse()?),
            "--compare" if value == "cycles" => args.cycles = true,
            "--ref-spp" => args.ref_spp = value.parse()?,
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
    if let Some(b) = args.bounces {
        params["max_bounces"] = b.into();
    }
    if args.cycles {
        params["outputs"] = serde_json::json!(["pfm"]);
    }

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
    let out_dir = |n: u32| work.path().join(format!("out{n}"));
    let mut run_gpu = |params: &serde_json::Value| -> Result<(f64, f64, f64), Error> {
        job_number += 1;
        let spec = serde_json::json!({"version": 1, "id": format!("render-{job_number}"), "kind": "render", "params": params,
            "limits": {"timeout_s": 3600}});
        let spec = JobSpec::from_json(&spec.to_string())?;
        let dirs = JobDirs::prepare(&input, &out_dir(job_number))?;
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
    if args.cycles {
        // The last GPU job's image and its time from scene file to pixels.
        let last = out_dir(job_number);
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(last.join("report.json"))?)?;
        let ours_s = (report["load_ms"].as_f64().unwrap_or(f64::NAN)
            + report["render_ms"].as_f64().unwrap_or(f64::NAN))
            / 1e3;
        let (_, _, ours) = render::image::decode_pfm(&std::fs::read(last.join("image.pfm"))?)?;
        compare_with_cycles(root, &input.join(&file), &args, p.max_bounces, ours, ours_s)?;
    }
    Ok(())
}

/// Renders with Cycles through `scripts/cycles/render.py`; returns the
/// image and Cycles' own render time.
fn cycles(
    root: &Path,
    scene: &Path,
    out: &Path,
    size: u32,
    spp: u32,
    bounces: u32,
) -> Result<(Vec<[f32; 3]>, f64), Error> {
    // Cycles counts bounces after the first hit, direct light included;
    // the plugin counts every scattering event.
    let cycles_bounces = bounces.saturating_sub(1);
    let output = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "-noaudio", "--python"])
        .arg(root.join("scripts/cycles/render.py"))
        .arg("--")
        .arg(scene)
        .arg(out)
        .args(["--width", &size.to_string(), "--height", &size.to_string()])
        .args([
            "--spp",
            &spp.to_string(),
            "--bounces",
            &cycles_bounces.to_string(),
        ])
        .output()
        .map_err(|e| format!("running blender (apt-get install blender): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let seconds = text
        .lines()
        .find_map(|l| l.strip_prefix("CYCLES render_s="))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| {
            format!(
                "blender printed no CYCLES line:\n{}\n{}",
                text,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let (_, _, pixels) = render::image::decode_pfm(&std::fs::read(out)?)?;
    Ok((pixels, seconds))
}

fn compare_with_cycles(
    root: &Path,
    scene: &Path,
    args: &Args,
    bounces: u32,
    ours: Vec<[f32; 3]>,
    ours_s: f64,
) -> Result<(), Error> {
    let cache = root.join("target/cycles");
    std::fs::create_dir_all(&cache)?;
    let reference_file: PathBuf = cache.join(format!(
        "{}-{}px-{}b-{}spp.pfm",
        args.scene, args.size, bounces, args.ref_spp
    ));
    let reference = if reference_file.exists() {
        render::image::decode_pfm(&std::fs::read(&reference_file)?)?.2
    } else {
        println!(
            "rendering the Cycles reference at {} spp (cached in {})",
            args.ref_spp,
            reference_file.display()
        );
        cycles(
            root,
            scene,
            &reference_file,
            args.size,
            args.ref_spp,
            bounces,
        )?
        .0
    };
    let mut times = Vec::new();
    let mut image = Vec::new();
    let scratch = tempfile::tempdir()?;
    for run in 0..args.runs {
        let (pixels, seconds) = cycles(
            root,
            scene,
            &scratch.path().join(format!("c{run}.pfm")),
            args.size,
            args.spp,
            bounces,
        )?;
        times.push(seconds);
        image = pixels;
    }
    let cycles_s = median(times);
    let mse = |px: &[[f32; 3]]| render::image::rmse_display(px, &reference).powi(2);
    let (ours_mse, cycles_mse) = (mse(&ours), mse(&image));
    let efficiency = |mse: f64, s: f64| 1.0 / (mse * s);
    let (ours_eff, cycles_eff) = (
        efficiency(f64::from(ours_mse), ours_s),
        efficiency(f64::from(cycles_mse), cycles_s),
    );
    println!(
        "against Cycles ({} spp reference; RMSE of tone-mapped sRGB in [0, 1]):",
        args.ref_spp
    );
    println!(
        "  ours (GPU plugin)  {ours_s:>7.2} s   RMSE {:.4}   1/(MSE·s) {ours_eff:>9.1}",
        ours_mse.sqrt()
    );
    println!(
        "  Blender Cycles CPU {cycles_s:>7.2} s   RMSE {:.4}   1/(MSE·s) {cycles_eff:>9.1}",
        cycles_mse.sqrt()
    );
    println!("  efficiency ours/Cycles = {:.2}x", ours_eff / cycles_eff);
    Ok(())
}
