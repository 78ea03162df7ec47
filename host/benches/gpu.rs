//! GPU capability overhead, measured in one run on one device:
//!
//! 1. the `matmul` WGSL kernel run (a) natively by host code with wgpu and
//!    (b) from the `matmul` plugin through the gpu capability — both time
//!    one submission of `repeat` dispatches, from submit to completion;
//! 2. moving data: `mib` MiB written into a GPU buffer and read back,
//!    natively vs through the capability (`gpuprobe` `transfer`).
//!
//! Run: `cargo bench -p pictor-host --bench gpu -- [--n 256] [--repeat 2] [--mib 64] [--runs 5]`
//! (builds the plugins first; pick n and repeat so a kernel takes ≥ 50 ms).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{median, parse_flags, pictor_plugins};
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuDevice, GpuProvider};
use pictor_runtime::jobs::outcome::JobOutcome;
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{Runtime, RuntimeConfig};

type Error = Box<dyn std::error::Error>;

struct Args {
    n: u32,
    repeat: u32,
    mib: u32,
    runs: usize,
}

fn args() -> Result<Args, Error> {
    let mut args = Args {
        n: 256,
        repeat: 2,
        mib: 64,
        runs: 5,
    };
    parse_flags(|flag, value| {
        match flag {
            "--n" => args.n = value.parse()?,
            "--repeat" => args.repeat = value.parse()?,
            "--mib" => args.mib = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(args)
}

fn wait(device: &GpuDevice, index: wgpu::SubmissionIndex) -> Result<(), Error> {
    device.device.poll(wgpu::PollType::Wait {
        submission_index: Some(index),
        timeout: Some(Duration::from_secs(600)),
    })?;
    Ok(())
}

/// Native wgpu: the same kernel, the same data, the same batch shape as the
/// capability records (one compute pass per dispatch). Returns ms.
fn native_matmul(
    device: &GpuDevice,
    a: &[f32],
    b: &[f32],
    n: u32,
    repeat: u32,
) -> Result<f64, Error> {
    let d = &device.device;
    let storage = |data: &[f32]| {
        let buffer = d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: std::mem::size_of_val(data) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        device
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        buffer
    };
    let (ga, gb, gc) = (storage(a), storage(b), storage(&vec![0.0; a.len()]));
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(matmul::KERNEL.into()),
    });
    let constants = [("n", f64::from(n))];
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        },
        cache: None,
    });
    let group = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ga.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: gb.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: gc.as_entire_binding(),
            },
        ],
    });
    // Upload and warm up outside the timed part, as the plugin does.
    wait(device, device.queue.submit([]))?;
    let tiles = n.div_ceil(16);
    let mut encoder = d.create_command_encoder(&Default::default());
    for _ in 0..repeat {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(tiles, tiles, 1);
    }
    let started = Instant::now();
    let index = device.queue.submit([encoder.finish()]);
    wait(device, index)?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Native wgpu: write `mib` MiB, then read them back through a staging buffer. Returns (write ms, read ms).
fn native_transfer(device: &GpuDevice, mib: u32) -> Result<(f64, f64), Error> {
    let data: Vec<u32> = (0..mib << 18).collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let size = bytes.len() as u64;
    let d = &device.device;
    let buffer = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let started = Instant::now();
    device.queue.write_buffer(&buffer, 0, bytes);
    let write_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let staging = d.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = d.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&buffer, 0, &staging, 0, size);
    let index = device.queue.submit([encoder.finish()]);
    staging.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    wait(device, index)?;
    let back = staging.slice(..).get_mapped_range()?.to_vec();
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    if back != bytes {
        return Err("native read-back differs".into());
    }
    Ok((write_ms, read_ms))
}

fn main() -> Result<(), Error> {
    let args = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let matmul_plugin = runtime.load(&std::fs::read(plugins.join("matmul.wasm"))?)?;
    let probe_plugin = runtime.load(&std::fs::read(plugins.join("gpuprobe.wasm"))?)?;
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let device = gpu.device()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    std::fs::create_dir(work.path().join("in"))?;
    let mut job_number = 0;
    let mut run = |plugin: &pictor_runtime::LoadedPlugin,
                   spec: serde_json::Value|
     -> Result<JobOutcome, Error> {
        job_number += 1;
        let spec = JobSpec::from_json(&spec.to_string())?;
        let dirs = JobDirs::prepare(
            &work.path().join("in"),
            &work.path().join(format!("out{job_number}")),
        )?;
        let outcome = tokio.block_on(run_job(
            plugin,
            JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&gpu)),
        ));
        if let Some(f) = &outcome.failure {
            return Err(format!("bench job failed: {}", f.message).into());
        }
        Ok(outcome)
    };
    let metric = |o: &JobOutcome, name: &str| {
        o.success
            .as_ref()
            .and_then(|s| s.metrics.get(name).copied())
            .unwrap_or(f64::NAN)
    };

    let (n, repeat) = (args.n, args.repeat);
    let a = matmul::random_matrix(n as usize, 1);
    let b = matmul::random_matrix(n as usize, 1 ^ 0xB);
    let limits = serde_json::json!({"gpu_submission_ms": 600_000, "timeout_s": 3600});
    // One warm-up of each path (pipeline compilation, first-use costs).
    native_matmul(&device, &a, &b, n, 1)?;
    run(
        &matmul_plugin,
        serde_json::json!({"version": 1, "id": "warm", "kind": "matmul", "seed": 1,
        "params": {"n": n, "repeat": 1, "verify": false}, "limits": limits}),
    )?;
    let mut native = Vec::new();
    let mut plugin = Vec::new();
    for _ in 0..args.runs {
        native.push(native_matmul(&device, &a, &b, n, repeat)?);
        let outcome = run(
            &matmul_plugin,
            serde_json::json!({"version": 1, "id": "mm", "kind": "matmul", "seed": 1,
            "params": {"n": n, "repeat": repeat, "verify": false}, "limits": limits}),
        )?;
        plugin.push(metric(&outcome, "gpu_ms"));
    }
    let (native_ms, plugin_ms) = (median(native), median(plugin));

    let mut native_moves = Vec::new();
    let mut plugin_moves = Vec::new();
    for _ in 0..args.runs {
        native_moves.push(native_transfer(&device, args.mib)?);
        let outcome = run(
            &probe_plugin,
            serde_json::json!({"version": 1, "id": "transfer", "kind": "gpuprobe",
            "params": {"check": "transfer", "mib": args.mib},
            "limits": {"memory_mib": 4 * args.mib + 256, "gpu_memory_mib": 2 * args.mib}}),
        )?;
        plugin_moves.push((metric(&outcome, "write_ms"), metric(&outcome, "read_ms")));
    }
    let nw = median(native_moves.iter().map(|m| m.0).collect());
    let nr = median(native_moves.iter().map(|m| m.1).collect());
    let pw = median(plugin_moves.iter().map(|m| m.0).collect());
    let pr = median(plugin_moves.iter().map(|m| m.1).collect());
    let mib = f64::from(args.mib);

    println!(
        "adapter: {} ({:?}, {:?})",
        device.info.name, device.info.backend, device.info.device_type
    );
    println!(
        "matmul {n}x{n}, {repeat} dispatches per submission, median of {} runs",
        args.runs
    );
    println!("  native wgpu           {native_ms:>10.2} ms");
    println!(
        "  plugin via capability {plugin_ms:>10.2} ms   native/plugin = {:.3}x",
        native_ms / plugin_ms
    );
    println!(
        "data movement, {} MiB each way, median of {} runs",
        args.mib, args.runs
    );
    println!(
        "  write  native {nw:>8.2} ms ({:.3} ms/MiB) · plugin {pw:>8.2} ms ({:.3} ms/MiB) · native/plugin = {:.3}x",
        nw / mib,
        pw / mib,
        nw / pw
    );
    println!(
        "  read   native {nr:>8.2} ms ({:.3} ms/MiB) · plugin {pr:>8.2} ms ({:.3} ms/MiB) · native/plugin = {:.3}x",
        nr / mib,
        pr / mib,
        nr / pr
    );
    Ok(())
}
