//! `testminer`: a stand-in miner for the worker's scheduler tests and the
//! preemption benchmark. It hashes on the GPU (a 32-bit mixing function, not
//! a real coin) in short batches, reports its hashrate through `progress`,
//! and never returns by itself: the worker stops it when a job arrives.
//! Params: `{"batch_workgroups": 256}` (workgroups of 64 per dispatch).

use std::time::Instant;

use pictor_sdk::gpu::{self, Buffer, Kernel, Usage};
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

const KERNEL: &str = "@group(0) @binding(0) var<storage, read_write> best: array<u32>;
override rounds: u32 = 64u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var h = id.x ^ best[1];
    for (var i = 0u; i < rounds; i++) { h = (h ^ (h >> 15u)) * 2246822519u; h = (h ^ (h >> 13u)) * 3266489917u; }
    atomicMin_emulated(h);
}
fn atomicMin_emulated(h: u32) { if (h < best[0]) { best[0] = h; } }";

#[derive(Deserialize, Default)]
#[serde(default)]
struct Params {
    batch_workgroups: Option<u32>,
}

/// The `testminer` plugin.
pub struct TestMiner;

impl Plugin for TestMiner {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = serde_json::from_str(job.params_json()).unwrap_or_default();
        let workgroups = params.batch_workgroups.unwrap_or(256).clamp(1, 65535);
        let best = Buffer::from_slice(&[u32::MAX, 0], Usage::STORAGE)?;
        let kernel = Kernel::new(KERNEL, "main")?;
        let group = kernel.bind(0, &[best.binding()])?;
        let started = Instant::now();
        let mut hashes = 0u64;
        let mut reported: Option<Instant> = None;
        loop {
            job.check_cancelled()?;
            gpu::submit(&[kernel.dispatch(&[&group], [workgroups, 1, 1])])?;
            hashes += u64::from(workgroups) * 64;
            if reported.is_none_or(|at| at.elapsed().as_millis() >= 100) {
                let rate = hashes as f64 / started.elapsed().as_secs_f64();
                job.progress(0.0, format!("hashrate {:.1} MH/s", rate / 1e6));
                reported = Some(Instant::now());
            }
        }
    }
}

pictor_sdk::export_plugin!(TestMiner);
