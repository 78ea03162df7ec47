//! SHA-256d throughput of the miner: hashes/s of its WGSL kernel on the
//! GPU vs the `sha2` crate on the CPU, in one run on one machine.
//!
//! - **plugin**: the `mine` plugin's bench mode through the real host
//!   (miner linker, gpu capability, ~10 ms submissions as when mining):
//!   wall clock, and GPU time only;
//! - **native**: the same WGSL natively with wgpu, large dispatches (the
//!   kernel's ceiling on this device, without the plugin's short batches);
//! - **CPU**: `sha2` with the same midstate trick (one compression of the
//!   header's second block, then SHA-256 of the digest), on one thread and
//!   on every core.
//!
//! Run: `cargo bench -p pictor-host --bench mining -- [--seconds 5]`
//! (builds the plugins first; prebuilt ones with `PICTOR_PLUGINS_DIR`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pictor_plugins;
use mine::algorithm::Header;
use mine::sha256d::{self, WORK_WORDS};
use mine::target::Target;
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuDevice, GpuProvider};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{Runtime, RuntimeConfig};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

type Error = Box<dyn std::error::Error>;

fn args() -> Result<f64, Error> {
    let mut seconds = 5.0;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => seconds = it.next().ok_or("--seconds needs a value")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(seconds)
}

/// A fixed, ordinary header.
fn header() -> Header {
    std::array::from_fn(|i| (i as u8).wrapping_mul(151).wrapping_add(7))
}

/// CPU: hashes/s of `threads` threads for `seconds`, each on its own
/// nonce range, with the midstate computed once per header as the GPU does.
fn cpu(threads: usize, seconds: f64) -> f64 {
    let header = header();
    let midstate = sha256d::midstate(&header);
    let started = Instant::now();
    let hashes: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut block = [0u8; 64];
                    block[..16].copy_from_slice(&header[64..]);
                    block[16] = 0x80;
                    block[62..].copy_from_slice(&640u16.to_be_bytes());
                    let mut nonce = (t as u32) << 28;
                    let mut done = 0u64;
                    let mut best = [0xffu8; 32];
                    while started.elapsed().as_secs_f64() < seconds {
                        for _ in 0..4096 {
                            block[12..16].copy_from_slice(&nonce.to_le_bytes());
                            let mut state = midstate;
                            sha2::compress256(
                                &mut state,
                                std::slice::from_ref(GenericArray::from_slice(&block)),
                            );
                            let mut first = [0u8; 32];
                            for (i, w) in state.iter().enumerate() {
                                first[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
                            }
                            let digest: [u8; 32] = Sha256::digest(first).into();
                            if digest.iter().rev().lt(best.iter().rev()) {
                                best = digest; // keep the work observable
                            }
                            nonce = nonce.wrapping_add(1);
                        }
                        done += 4096;
                    }
                    std::hint::black_box(best);
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    hashes as f64 / started.elapsed().as_secs_f64()
}

/// Native wgpu: the plugin's search kernel, dispatches of 2^22 nonces
/// (one submission each), at a target nothing meets.
fn native(device: &GpuDevice, seconds: f64) -> Result<f64, Error> {
    let d = &device.device;
    let header = header();
    let count: u32 = 1 << 22;
    let (words, workgroups) = sha256d::work(
        &sha256d::midstate(&header),
        &header,
        &Target::from_be_bytes([0; 32]),
        0,
        count,
    );
    let buffer = |size: u64| {
        d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (work, found) = (buffer((WORK_WORDS * 4) as u64), buffer(64 * 4));
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(sha256d::search_wgsl().into()),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("search"),
        compilation_options: Default::default(),
        cache: None,
    });
    let group = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: work.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: found.as_entire_binding(),
            },
        ],
    });
    let mut first = 0u32;
    let mut run = || -> Result<(), Error> {
        let mut w = words;
        w[11] = first;
        first = first.wrapping_add(count);
        device
            .queue
            .write_buffer(&work, 0, bytemuck::cast_slice(&w));
        let mut encoder = d.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(workgroups, 1, 1);
        }
        let index = device.queue.submit([encoder.finish()]);
        d.poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(Duration::from_secs(600)),
        })?;
        Ok(())
    };
    run()?; // warm-up: pipeline compilation
    let started = Instant::now();
    let mut hashes = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        run()?;
        hashes += u64::from(count);
    }
    Ok(hashes as f64 / started.elapsed().as_secs_f64())
}

fn rate(hps: f64) -> String {
    pictor_host::mining::format_hashrate(hps)
}

fn main() -> Result<(), Error> {
    let seconds = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repo root")?;
    let plugins = pictor_plugins(root)?;
    let runtime = Runtime::new(&RuntimeConfig { cache_dir: None })?;
    let plugin = runtime.load_miner(&std::fs::read(plugins.join("mine.wasm"))?)?;
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let device = gpu.device()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Through the plugin, as the miner mines (~10 ms submissions).
    let work = tempfile::tempdir()?;
    std::fs::create_dir(work.path().join("in"))?;
    let dirs = JobDirs::prepare(&work.path().join("in"), &work.path().join("out"))?;
    let params = serde_json::json!({"mode": "bench", "seconds": seconds});
    let spec = JobSpec::from_json(
        &serde_json::json!({"version": 1, "id": "bench", "kind": "mine", "params": params})
            .to_string(),
    )?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = tokio.block_on(run_job(
        &plugin,
        JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&gpu)),
    ));
    tokio.shutdown_timeout(Duration::from_secs(10));
    let success = outcome
        .success
        .ok_or_else(|| format!("plugin bench failed: {:?}", outcome.failure))?;
    let metric = |name: &str| success.metrics.get(name).copied().unwrap_or(0.0);
    let (plugin_wall, plugin_gpu) = (metric("hashes-per-second"), metric("gpu-hashes-per-second"));

    let native = native(&device, seconds)?;
    let cpu_one = cpu(1, seconds);
    let cpu_all = cpu(cores, seconds);

    println!(
        "adapter: {} ({:?}, {:?})",
        device.info.name, device.info.device_type, device.info.backend
    );
    println!("SHA-256d, {seconds} s each, midstate on the CPU for both sides");
    println!(
        "  GPU, through the plugin (~10 ms batches)  {:>14}   GPU time only {}",
        rate(plugin_wall),
        rate(plugin_gpu)
    );
    println!(
        "  GPU, native wgpu (2^22-nonce dispatches)   {:>14}",
        rate(native)
    );
    println!(
        "  CPU, sha2, 1 thread                        {:>14}",
        rate(cpu_one)
    );
    println!(
        "  CPU, sha2, {cores} threads{}                       {:>14}",
        if cores < 10 { " " } else { "" },
        rate(cpu_all)
    );
    println!(
        "ratios: plugin / CPU 1 thread {:.2}x · plugin / CPU {cores} threads {:.2}x · plugin / native {:.2}x",
        plugin_wall / cpu_one,
        plugin_wall / cpu_all,
        plugin_wall / native
    );
    Ok(())
}
