//! `matmul`: the example GPU plugin. Multiplies two n×n matrices of
//! pseudo-random numbers (from the job's seed) on the GPU with a tiled WGSL
//! kernel, checks the product against a CPU computation, and writes it.
//!
//! Params: `{"n": 256, "repeat": 1, "verify": true}` — `n` in 1..=4096,
//! `repeat` dispatches of the kernel (1..=64, all in one submission, so the
//! GPU time can be measured over several runs), `verify` compares with the
//! CPU (only for n ≤ 1024).
//!
//! Outputs: `c.f32` (row-major little-endian f32) and `report.json`.
//! Metrics: `gpu_ms`, `gflops`, `max_abs_error`.

use pictor_sdk::gpu::{self, Buffer, Kernel, Usage};
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

/// The WGSL kernel (also used by the host's native benchmark).
pub const KERNEL: &str = include_str!("matmul.wgsl");

/// Largest error tolerated against the CPU product, relative to √n
/// (f32 sums of n products of numbers in [-1, 1)).
const TOLERANCE_PER_SQRT_N: f32 = 1e-5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_n")]
    n: u32,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default = "yes")]
    verify: bool,
}

fn default_n() -> u32 {
    256
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Deterministic pseudo-random matrix entries in [-1, 1) (splitmix64).
pub fn random_matrix(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n * n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// C = A × B on the CPU (row-major n×n), the reference for the GPU result.
pub fn cpu_matmul(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            let row = &b[k * n..(k + 1) * n];
            for (cj, bj) in c[i * n..(i + 1) * n].iter_mut().zip(row) {
                *cj += aik * bj;
            }
        }
    }
    c
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_error(x: &[f32], y: &[f32]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

/// The `matmul` plugin.
pub struct Matmul;

impl Plugin for Matmul {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let p: Params = job.params()?;
        if !(1..=4096).contains(&p.n) {
            return Err(JobError::InvalidParams(format!(
                "`n` must be in 1..=4096, got {}",
                p.n
            )));
        }
        if !(1..=64).contains(&p.repeat) {
            return Err(JobError::InvalidParams(format!(
                "`repeat` must be in 1..=64, got {}",
                p.repeat
            )));
        }
        let n = p.n as usize;
        let a = random_matrix(n, job.seed());
        let b = random_matrix(n, job.seed() ^ 0xB);
        job.progress(0.1, "uploading");

        let adapter = gpu::adapter()?;
        let ga = Buffer::from_slice(&a, Usage::STORAGE)?;
        let gb = Buffer::from_slice(&b, Usage::STORAGE)?;
        let gc = Buffer::<f32>::zeroed(n * n, Usage::STORAGE)?;
        let kernel = Kernel::with_constants(KERNEL, "main", &[("n", f64::from(p.n))])
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let group = kernel.bind(0, &[ga.binding(), gb.binding(), gc.binding()])?;
        let tiles = p.n.div_ceil(16);
        let dispatches: Vec<_> = (0..p.repeat)
            .map(|_| kernel.dispatch(&[&group], [tiles, tiles, 1]))
            .collect();
        job.check_cancelled()?;
        job.progress(0.3, "multiplying");
        let took = gpu::submit(&dispatches)?;
        let c = gc.read()?;
        job.progress(0.7, "checking");

        let gpu_ms = took.as_secs_f64() * 1e3;
        let gflops =
            2.0 * (n as f64).powi(3) * f64::from(p.repeat) / took.as_secs_f64().max(1e-9) / 1e9;
        let max_error = if p.verify && n <= 1024 {
            let expected = cpu_matmul(&a, &b, n);
            let err = max_abs_error(&c, &expected);
            let tolerance = TOLERANCE_PER_SQRT_N * (n as f32).sqrt() * 10.0;
            if err.is_nan() || err > tolerance {
                return Err(JobError::Failed(format!(
                    "GPU product differs from the CPU one by {err} (tolerance {tolerance}) on {}",
                    adapter.name
                )));
            }
            Some(err)
        } else {
            None
        };
        job.write_output("c.f32", gpu::as_bytes(&c))?;
        let report = serde_json::json!({
            "n": p.n, "repeat": p.repeat, "adapter": adapter.name, "backend": adapter.backend,
            "gpu_ms": gpu_ms, "gflops": gflops, "max_abs_error": max_error,
        });
        job.write_output("report.json", report.to_string().as_bytes())?;
        job.progress(1.0, "done");
        let mut summary = Summary::new(format!(
            "{n}×{n} product in {gpu_ms:.2} ms on {}",
            adapter.name
        ))
        .metric("gpu_ms", gpu_ms)
        .metric("gflops", gflops);
        if let Some(e) = max_error {
            summary = summary.metric("max_abs_error", f64::from(e));
        }
        Ok(summary)
    }
}

pictor_sdk::export_plugin!(Matmul);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reference_matches_a_hand_computed_product() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        assert_eq!(cpu_matmul(&a, &b, 2), vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn random_matrices_are_deterministic_and_in_range() {
        let m = random_matrix(8, 42);
        assert_eq!(m, random_matrix(8, 42));
        assert_ne!(m, random_matrix(8, 43));
        assert!(m.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    #[test]
    fn kernel_is_valid_wgsl_for_the_host() {
        assert!(KERNEL.contains("override n: u32"));
    }
}
