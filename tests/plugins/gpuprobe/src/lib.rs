//! `gpuprobe`: a test plugin for the GPU capability. Each check does one
//! thing and reports what the host answered, so tests see both sides.
//!
//! Params: `{"check": NAME, "iterations": N}`:
//!
//! | check | what it does | success message |
//! |---|---|---|
//! | `info` | writes `info.json` with the adapter | `adapter <name>` |
//! | `quota-memory` | allocates 1 MiB buffers until refused | the refusal |
//! | `quota-buffers` | allocates 4-byte buffers until refused | the refusal |
//! | `quota-commands` | submits 1 + 2×quota trivial dispatches at once | the refusal |
//! | `quota-workgroups` | dispatches 65535×65535 workgroups | the refusal |
//! | `invalid-wgsl` | compiles WGSL with a type error on line 3 | the error |
//! | `out-of-bounds` | a kernel writes far past its buffer; checks its neighbour | `neighbour intact` |
//! | `long-kernel` | 4096 invocations looping `iterations` times each (default: seconds of work on this adapter) | `finished in …` unless the quota ends the job |
//! | `leak` | creates buffers, kernels and bind groups and forgets them | `leaked` |
//! | `transfer` | writes `mib` MiB to a buffer and reads them back, timed | metrics `write_ms`, `read_ms` |
//! | `endless-loop` | a kernel whose loop never ends (hours on llvmpipe, which cuts loops off; the host must end the job and keep the GPU slot usable) | never |
//! | `write-no-submit` | writes `mib` MiB to a buffer again and again without ever submitting | never |
//! | `deep-shader` | compiles WGSL with a 200,000-term expression | the refusal |

use pictor_sdk::gpu::{self, Buffer, GpuError, Kernel, Usage};
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    check: String,
    /// Loop count of `long-kernel`; default: long enough to run for
    /// seconds on this adapter (2^22 on a software adapter, 2^24 on a GPU).
    #[serde(default)]
    iterations: Option<u32>,
    #[serde(default = "default_mib")]
    mib: u32,
}

fn default_mib() -> u32 {
    64
}

const TOUCH: &str = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
@compute @workgroup_size(1) fn main() { v[0] = v[0] + 1u; }";

const OUT_OF_BOUNDS: &str = "@group(0) @binding(0) var<storage, read_write> small: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    small[id.x + 4096u] = 99u;
    small[id.x * 1000000u] = 98u;
}";

// The loop count is read at run time and the body is not affine, so no
// compiler can fold the loop away.
const LONG: &str = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x + 1u;
    let n = v[4095];
    for (var i = 0u; i < n; i++) { x = (x ^ v[4032u + (x & 63u)]) * 1664525u + 1013904223u; }
    if (id.x < 64u) { v[id.x] = x; }
}";

// The loop ends only if the buffer holds a value nobody writes; atomics
// keep any compiler from hoisting the check or dropping the loop. On a GPU
// it never ends; llvmpipe cuts every loop off after 65,535 iterations, so
// the check dispatches 4096 × 4096 workgroups of 64: hours of work there.
const ENDLESS: &str = "struct State { flag: atomic<u32>, spins: atomic<u32> }
@group(0) @binding(0) var<storage, read_write> s: State;
@compute @workgroup_size(64)
fn main() {
    loop {
        atomicAdd(&s.spins, 1u);
        if (atomicLoad(&s.flag) == 0xdeadbeefu) { break; }
    }
}";

/// Turns a refusal the check expects into the job's success message.
fn refused(result: Result<(), GpuError>, what: &str) -> Result<Summary, JobError> {
    match result {
        Err(e) => Ok(Summary::new(e.to_string())),
        Ok(()) => Err(JobError::Failed(format!("{what} was not refused"))),
    }
}

/// The `gpuprobe` plugin.
pub struct GpuProbe;

impl Plugin for GpuProbe {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let p: Params = job.params()?;
        match p.check.as_str() {
            "info" => {
                let info = gpu::adapter()?;
                let json = format!(
                    "{{\"name\": {:?}, \"backend\": {:?}, \"device_type\": {:?}}}",
                    info.name, info.backend, info.device_type
                );
                job.write_output("info.json", json.as_bytes())?;
                Ok(Summary::new(format!("adapter {}", info.name)))
            }
            "quota-memory" => {
                let mut held = Vec::new();
                refused(
                    (0..100_000).try_for_each(|_| {
                        Buffer::<u8>::zeroed(1 << 20, Usage::STORAGE).map(|b| held.push(b))
                    }),
                    "allocating without end",
                )
            }
            "quota-buffers" => {
                let mut held = Vec::new();
                refused(
                    (0..100_000).try_for_each(|_| {
                        Buffer::<u32>::zeroed(1, Usage::STORAGE).map(|b| held.push(b))
                    }),
                    "allocating without end",
                )
            }
            "quota-objects" => {
                let v = Buffer::<u32>::zeroed(1, Usage::STORAGE)?;
                let kernel = Kernel::new(TOUCH, "main")?;
                let mut held = Vec::new();
                refused(
                    (0..100_000)
                        .try_for_each(|_| kernel.bind(0, &[v.binding()]).map(|g| held.push(g))),
                    "binding without end",
                )
            }
            "quota-commands" => {
                let v = Buffer::<u32>::zeroed(1, Usage::STORAGE)?;
                let kernel = Kernel::new(TOUCH, "main")?;
                let group = kernel.bind(0, &[v.binding()])?;
                let quota = 1 + 2 * 1024;
                let commands: Vec<_> = (0..quota)
                    .map(|_| kernel.dispatch(&[&group], [1, 1, 1]))
                    .collect();
                refused(gpu::submit(&commands).map(|_| ()), "an over-long batch")
            }
            "quota-workgroups" => {
                let v = Buffer::<u32>::zeroed(1, Usage::STORAGE)?;
                let kernel = Kernel::new(TOUCH, "main")?;
                let group = kernel.bind(0, &[v.binding()])?;
                refused(
                    gpu::submit(&[kernel.dispatch(&[&group], [65535, 65535, 1])]).map(|_| ()),
                    "a huge dispatch",
                )
            }
            "invalid-wgsl" => refused(
                Kernel::new(
                    "@compute @workgroup_size(1)\nfn main() {\n    let x: u32 = 1.5;\n}",
                    "main",
                )
                .map(|_| ()),
                "invalid WGSL",
            ),
            "out-of-bounds" => {
                let small = Buffer::<u32>::zeroed(4, Usage::STORAGE)?;
                let neighbour = Buffer::from_slice(&[7u32; 1024], Usage::STORAGE)?;
                let kernel = Kernel::new(OUT_OF_BOUNDS, "main")?;
                let group = kernel.bind(0, &[small.binding()])?;
                gpu::submit(&[kernel.dispatch(&[&group], [64, 1, 1])])?;
                if neighbour.read()?.iter().any(|&v| v != 7) {
                    return Err(JobError::Failed(
                        "out-of-bounds writes reached the neighbouring buffer".into(),
                    ));
                }
                Ok(Summary::new("neighbour intact"))
            }
            "long-kernel" => {
                let v = Buffer::<u32>::zeroed(4096, Usage::STORAGE)?;
                let iterations = match p.iterations {
                    Some(n) => n,
                    None if gpu::adapter()?.device_type == "cpu" => 1 << 22,
                    None => 1 << 24,
                };
                v.write(4095, &[iterations])?;
                let kernel = Kernel::new(LONG, "main")?;
                let group = kernel.bind(0, &[v.binding()])?;
                let took = gpu::submit(&[kernel.dispatch(&[&group], [64, 1, 1])])?;
                Ok(Summary::new(format!("finished in {took:?}")))
            }
            "leak" => {
                for _ in 0..16 {
                    let v = Buffer::<u32>::zeroed(1024, Usage::STORAGE)?;
                    let kernel = Kernel::new(TOUCH, "main")?;
                    let group = kernel.bind(0, &[v.binding()])?;
                    gpu::submit(&[kernel.dispatch(&[&group], [1, 1, 1])])?;
                    // On wasm these own host resources; forgetting them
                    // leaves them for the host to free with the store.
                    #[allow(clippy::forget_non_drop)]
                    std::mem::forget((v, kernel, group));
                }
                Ok(Summary::new("leaked"))
            }
            "transfer" => {
                let data: Vec<u32> = (0..p.mib << 18).collect();
                let buffer = Buffer::<u32>::zeroed(data.len(), Usage::STORAGE)?;
                let started = std::time::Instant::now();
                buffer.write(0, &data)?;
                let write_ms = started.elapsed().as_secs_f64() * 1e3;
                let started = std::time::Instant::now();
                let back = buffer.read_bytes()?;
                let read_ms = started.elapsed().as_secs_f64() * 1e3;
                if back != gpu::as_bytes(&data) {
                    return Err(JobError::Failed(
                        "data read back differs from data written".into(),
                    ));
                }
                Ok(Summary::new(format!("moved {} MiB each way", p.mib))
                    .metric("write_ms", write_ms)
                    .metric("read_ms", read_ms))
            }
            "endless-loop" => {
                let v = Buffer::<u32>::zeroed(4, Usage::STORAGE)?;
                let kernel = Kernel::new(ENDLESS, "main")?;
                let group = kernel.bind(0, &[v.binding()])?;
                job.progress(0.5, "submitting a kernel that never ends");
                let took = gpu::submit(&[kernel.dispatch(&[&group], [4096, 4096, 1])])?;
                let state = v.read()?;
                Err(JobError::Failed(format!(
                    "the endless kernel ended after {took:?} ({} spins)",
                    state[1]
                )))
            }
            "write-no-submit" => {
                let data = vec![0x5Au8; (p.mib as usize) << 20];
                let buffer = Buffer::<u8>::zeroed(data.len(), Usage::STORAGE)?;
                loop {
                    buffer.write(0, &data)?;
                }
            }
            "deep-shader" => {
                let chain = vec!["1"; 200_000].join("+");
                let source =
                    format!("@compute @workgroup_size(1)\nfn main() {{\n    let x = {chain};\n}}");
                refused(
                    Kernel::new(&source, "main").map(|_| ()),
                    "a 200,000-term expression",
                )
            }
            other => Err(JobError::InvalidParams(format!("unknown check `{other}`"))),
        }
    }
}

pictor_sdk::export_plugin!(GpuProbe);

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_sdk::testing::TestHost;

    #[test]
    fn without_a_host_gpu_checks_fail_cleanly() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        let err = GpuProbe::run(&host.job(r#"{"check": "info"}"#)).unwrap_err();
        assert!(err.to_string().contains("no GPU"), "{err}");
        Ok(())
    }
}
