//! Throughput of the AI plugins: `upscale` in megapixels/s (network on the
//! GPU capability vs bicubic in the same plugin, and vs the network's CPU
//! reference), and `train` in steps/s (GPU vs the CPU reference's forward,
//! backward and Adam), in one run.
//!
//! Run: `cargo bench -p pictor-host --bench ai -- [--image coffee] [--runs 3] [--steps 20]`
//! (`--image` is one of `fixtures/datasets/sr/eval/`; builds the plugins
//! first, or takes them from `PICTOR_PLUGINS_DIR`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{median, parse_flags, pictor_plugins};
use nn::cpu::{Adam, Dims};
use nn::model::{self, Architecture};
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{LoadedPlugin, Runtime, RuntimeConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    image: String,
    runs: usize,
    steps: u64,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        image: "coffee".into(),
        runs: 3,
        steps: 20,
    };
    parse_flags(|flag, value| {
        match flag {
            "--image" => args.image = value,
            "--runs" => args.runs = value.parse()?,
            "--steps" => args.steps = value.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(args)
}

struct Bench {
    tokio: tokio::runtime::Runtime,
    gpu: Arc<GpuProvider>,
    work: tempfile::TempDir,
    jobs: usize,
}

impl Bench {
    /// Runs one job; returns its metric `metric`.
    fn run(
        &mut self,
        plugin: &LoadedPlugin,
        kind: &str,
        params: serde_json::Value,
        input: &Path,
        metric: &str,
    ) -> Result<f64, Error> {
        self.jobs += 1;
        let spec = serde_json::json!({"version": 1, "id": format!("{kind}-{}", self.jobs), "kind": kind, "params": params,
            "seed": 1, "limits": {"timeout_s": 3600}});
        let spec = JobSpec::from_json(&spec.to_string())?;
        let dirs = JobDirs::prepare(input, &self.work.path().join(format!("out{}", self.jobs)))?;
        let outcome = self.tokio.block_on(run_job(
            plugin,
            JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&self.gpu)),
        ));
        if let Some(f) = &outcome.failure {
            return Err(format!("bench job failed: {}", f.message).into());
        }
        outcome
            .success
            .as_ref()
            .and_then(|s| s.metrics.get(metric).copied())
            .ok_or_else(|| format!("no metric {metric}").into())
    }
}

fn main() -> Result<(), Error> {
    let args = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let upscale = runtime.load(&std::fs::read(plugins.join("upscale.wasm"))?)?;
    let train = runtime.load(&std::fs::read(plugins.join("train.wasm"))?)?;
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let device = gpu.device()?;
    let mut bench = Bench {
        tokio: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        gpu,
        work: tempfile::tempdir()?,
        jobs: 0,
    };

    // Upscaling one image, ×2.
    let image = root.join(format!("fixtures/datasets/sr/eval/{}.png", args.image));
    let input = bench.work.path().join("upscale-in");
    std::fs::create_dir(&input)?;
    std::fs::copy(&image, input.join("image.png"))?;
    let lr = nn::image::decode(&std::fs::read(&image)?, 1 << 26).map_err(|e| e.to_string())?;
    let out_mpx = (lr.y.width * lr.y.height * 4) as f64 / 1e6;
    bench.run(
        &upscale,
        "upscale",
        serde_json::json!({}),
        &input,
        "output_megapixels_per_s",
    )?; // warm-up
    let mut net = Vec::new();
    let mut bic = Vec::new();
    for _ in 0..args.runs {
        net.push(bench.run(
            &upscale,
            "upscale",
            serde_json::json!({}),
            &input,
            "output_megapixels_per_s",
        )?);
        bic.push(bench.run(
            &upscale,
            "upscale",
            serde_json::json!({"mode": "bicubic"}),
            &input,
            "output_megapixels_per_s",
        )?);
    }
    // The network's f64 CPU reference on the luma (one thread), for scale.
    let arch = Architecture::default_for(2);
    let params: Vec<f64> = arch.init(1).iter().map(|&p| f64::from(p)).collect();
    let x: Vec<f64> = lr.y.data.iter().map(|&v| f64::from(v)).collect();
    let started = Instant::now();
    std::hint::black_box(model::cpu_forward(
        &arch,
        &params,
        &x,
        Dims {
            n: 1,
            h: lr.y.height,
            w: lr.y.width,
        },
    ));
    let cpu_mpx_s = out_mpx / started.elapsed().as_secs_f64();

    // Training steps, default network, batch 16 of 24×24.
    let train_in = bench.work.path().join("train-in");
    std::fs::create_dir(&train_in)?;
    for name in ["brick.png", "coins.png"] {
        std::fs::copy(
            root.join("fixtures/datasets/sr/train").join(name),
            train_in.join(name),
        )?;
    }
    let mut gpu_steps = Vec::new();
    for _ in 0..args.runs {
        gpu_steps.push(bench.run(
            &train,
            "train",
            serde_json::json!({"steps": args.steps}),
            &train_in,
            "steps_per_s",
        )?);
    }
    let (batch, patch) = (16usize, 24usize);
    let d = Dims {
        n: batch,
        h: patch,
        w: patch,
    };
    let hr = batch * patch * patch * 4;
    let (xb, base, target) = (
        vec![0.5; batch * patch * patch],
        vec![0.4; hr],
        vec![0.6; hr],
    );
    let adam = Adam::default();
    let (mut p, mut m, mut v) = (
        params.clone(),
        vec![0.0; params.len()],
        vec![0.0; params.len()],
    );
    let cpu_steps = 3;
    let started = Instant::now();
    for t in 1..=cpu_steps {
        let (_, g) = model::cpu_loss_and_grads(&arch, &p, &xb, &base, &target, d);
        adam.step(1e-3, t, &mut p, &g, &mut m, &mut v);
    }
    let cpu_steps_s = cpu_steps as f64 / started.elapsed().as_secs_f64();

    let (net, bic, gpu_steps) = (median(net), median(bic), median(gpu_steps));
    println!(
        "adapter: {} ({:?}, {:?})",
        device.info.name, device.info.backend, device.info.device_type
    );
    println!(
        "upscale ×2 of {} ({}×{} → {:.2} Mpx), median of {} runs:",
        args.image, lr.y.width, lr.y.height, out_mpx, args.runs
    );
    println!("  network on the GPU (plugin)   {net:>8.3} Mpx/s");
    println!("  bicubic (plugin, CPU)         {bic:>8.3} Mpx/s");
    println!("  network, f64 CPU reference    {cpu_mpx_s:>8.3} Mpx/s (1 thread)");
    println!(
        "  network/bicubic = {:.2}x, network GPU/CPU reference = {:.2}x",
        net / bic,
        net / cpu_mpx_s
    );
    println!(
        "train ×2, batch {batch} of {patch}×{patch}, {} steps per run:",
        args.steps
    );
    println!("  GPU (plugin)                  {gpu_steps:>8.3} steps/s");
    println!("  f64 CPU reference             {cpu_steps_s:>8.3} steps/s (1 thread)");
    println!("  GPU/CPU = {:.2}x", gpu_steps / cpu_steps_s);
    Ok(())
}
