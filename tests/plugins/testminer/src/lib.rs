//! `testminer`: a stand-in miner for the worker's scheduler tests and the
//! preemption benchmark. It hashes on the GPU (a 32-bit mixing function, not
//! a real coin) in short batches, reports its hashrate through `progress`,
//! and never returns by itself: the worker stops it when a job arrives.
//! Params: `{"batch_workgroups": 256}` (workgroups of 64 per dispatch).
//!
//! As a hostile miner, `{"hoard_sockets": n}` instead makes up to `n` TCP
//! sockets without connecting them, holding each, and fails with what the
//! host allowed: `made 4 sockets, then new-socket-limit; one dropped, one
//! more made` (the host's per-miner socket cap, and that a dropped socket
//! frees its place).

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
    hoard_sockets: Option<u32>,
}

/// The `testminer` plugin.
pub struct TestMiner;

impl Plugin for TestMiner {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = serde_json::from_str(job.params_json()).unwrap_or_default();
        if let Some(n) = params.hoard_sockets {
            return Err(JobError::Failed(hoard_sockets(n)));
        }
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

/// Makes up to `n` sockets and says how far it got.
#[cfg(target_arch = "wasm32")]
fn hoard_sockets(n: u32) -> String {
    use wasip2::sockets::network::{ErrorCode, IpAddressFamily};
    use wasip2::sockets::tcp_create_socket::create_tcp_socket;
    let name = |e: ErrorCode| match e {
        ErrorCode::NewSocketLimit => "new-socket-limit".to_string(),
        ErrorCode::AccessDenied => "access-denied".to_string(),
        other => format!("{other:?}"),
    };
    let mut held = Vec::new();
    for _ in 0..n {
        match create_tcp_socket(IpAddressFamily::Ipv4) {
            Ok(socket) => held.push(socket),
            Err(e) => {
                let made = held.len();
                held.pop();
                let again = match create_tcp_socket(IpAddressFamily::Ipv4) {
                    Ok(_) => "one dropped, one more made".to_string(),
                    Err(e) => format!("one dropped, still {}", name(e)),
                };
                return format!("made {made} sockets, then {}; {again}", name(e));
            }
        }
    }
    format!("made {} sockets", held.len())
}

#[cfg(not(target_arch = "wasm32"))]
fn hoard_sockets(_n: u32) -> String {
    "sockets are a wasm32 attack".into()
}

pictor_sdk::export_plugin!(TestMiner);
