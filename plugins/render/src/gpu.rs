//! The GPU renderer: uploads the scene, then runs `render.wgsl` in passes.
//!
//! A pass is one submission of one dispatch: a band of rows of the tile ×
//! a run of consecutive samples. Pass sizes adapt to the measured GPU time
//! so that each stays near [`TARGET_PASS_MS`] (the host can only stop a job
//! between submissions); between passes the job reports progress and checks
//! cancellation. Pixel values do not depend on pass sizes: every pixel
//! still adds its samples in order.

use std::time::Duration;

use pictor_sdk::gpu::{self, Buffer, Kernel, Usage};
use pictor_sdk::{Job, JobError};

use crate::layout::{FrameParams, SceneData, View};

/// The kernel.
pub const KERNEL: &str = include_str!("render.wgsl");
/// GPU time aimed at per pass.
pub const TARGET_PASS_MS: f64 = 40.0;
/// Pixel-samples in the first pass, before anything is measured.
const FIRST_PASS_WORK: u64 = 4096;
/// Most samples per pixel in one pass.
const MAX_SAMPLES_PER_PASS: u32 = 256;

fn gpu_err(what: &'static str) -> impl Fn(gpu::GpuError) -> JobError {
    move |e| JobError::Failed(format!("{what}: {e}"))
}

/// What a GPU render measured.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// GPU time of each pass, ms.
    pub pass_ms: Vec<f64>,
    /// The warm-up dispatch (zero samples: the driver's first-use shader
    /// compilation, which software adapters do lazily), ms.
    pub warmup_ms: f64,
}

/// Renders the view's tile on the GPU; returns linear RGB per pixel and
/// the pass timings. `part` = (index, count) of this render in the job,
/// for progress reports.
pub fn render(
    job: &Job,
    scene: &SceneData,
    view: &View,
    part: (u32, u32),
) -> Result<(Vec<[f32; 3]>, Timing), JobError> {
    let [_, _, tw, th] = view.tile;
    let params = Buffer::<FrameParams>::zeroed(1, Usage::UNIFORM)
        .map_err(gpu_err("creating the params buffer"))?;
    let tris =
        Buffer::from_slice(&scene.tris, Usage::STORAGE).map_err(gpu_err("uploading triangles"))?;
    let nodes =
        Buffer::from_slice(&scene.nodes, Usage::STORAGE).map_err(gpu_err("uploading the BVH"))?;
    let materials = Buffer::from_slice(&scene.materials, Usage::STORAGE)
        .map_err(gpu_err("uploading materials"))?;
    let tex_meta = Buffer::from_slice(&scene.tex_meta, Usage::STORAGE)
        .map_err(gpu_err("uploading textures"))?;
    let texels =
        Buffer::from_slice(&scene.texels, Usage::STORAGE).map_err(gpu_err("uploading textures"))?;
    let tables = Buffer::from_slice(&scene.tables, Usage::STORAGE)
        .map_err(gpu_err("uploading lookup tables"))?;
    let lights =
        Buffer::from_slice(&scene.lights, Usage::STORAGE).map_err(gpu_err("uploading lights"))?;
    let accum = Buffer::<[f32; 4]>::zeroed(tw as usize * th as usize, Usage::STORAGE)
        .map_err(gpu_err("creating the accumulation buffer"))?;
    let kernel = Kernel::new(KERNEL, "main").map_err(gpu_err("compiling render.wgsl"))?;
    let group = kernel
        .bind(
            0,
            &[
                params.binding(),
                tris.binding(),
                nodes.binding(),
                materials.binding(),
                tex_meta.binding(),
                texels.binding(),
                tables.binding(),
                accum.binding(),
                lights.binding(),
            ],
        )
        .map_err(gpu_err("binding buffers"))?;

    // Warm-up: one workgroup, no samples, so that lazy shader compilation
    // does not count as the cost of the first measured pass.
    params
        .write(0, &[view.params(scene, 0..1, 0..0)])
        .map_err(gpu_err("writing pass params"))?;
    let warmup =
        gpu::submit(&[kernel.dispatch(&[&group], [1, 1, 1])]).map_err(gpu_err("warming up"))?;
    job.check_cancelled()?;

    let total = u64::from(tw) * u64::from(th) * u64::from(view.spp);
    let mut done = 0u64;
    let mut timing = Timing {
        pass_ms: Vec::new(),
        warmup_ms: warmup.as_secs_f64() * 1e3,
    };
    // Measured GPU ms per pixel-sample; None until the first pass.
    let mut cost: Option<f64> = None;
    let mut s0 = 0;
    while s0 < view.spp {
        // Samples of this chunk, and rows per pass within it.
        let (samples, band) = match cost {
            None => (
                1,
                (FIRST_PASS_WORK / u64::from(tw)).clamp(1, u64::from(th)) as u32,
            ),
            Some(c) => {
                let work = (TARGET_PASS_MS / c.max(1e-9)).max(1.0);
                let whole = f64::from(tw) * f64::from(th);
                if work >= whole {
                    let k = (work / whole)
                        .floor()
                        .clamp(1.0, f64::from(MAX_SAMPLES_PER_PASS))
                        as u32;
                    (k.min(view.spp - s0), th)
                } else {
                    (1, ((work / f64::from(tw)).floor() as u32).clamp(1, th))
                }
            }
        };
        let mut row = 0;
        while row < th {
            job.check_cancelled()?;
            let rows = band.min(th - row);
            let p = view.params(scene, row..row + rows, s0..s0 + samples);
            params
                .write(0, &[p])
                .map_err(gpu_err("writing pass params"))?;
            let took: Duration =
                gpu::submit(&[kernel.dispatch(&[&group], [tw.div_ceil(8), rows.div_ceil(8), 1])])
                    .map_err(gpu_err("running a pass"))?;
            let ms = took.as_secs_f64() * 1e3;
            let work = u64::from(tw) * u64::from(rows) * u64::from(samples);
            timing.pass_ms.push(ms);
            // The most expensive region seen so far sets the pace (passes
            // stay short even where the scene is costly).
            let c = ms / work as f64;
            cost = Some(cost.map_or(c, |old: f64| old.max(c) * 0.5 + c * 0.5));
            done += work;
            row += rows;
            let fraction = (part.0 as f32 + done as f32 / total as f32) / part.1.max(1) as f32;
            let frame = if part.1 > 1 {
                format!("frame {}/{}, ", part.0 + 1, part.1)
            } else {
                String::new()
            };
            job.progress(
                fraction,
                format!(
                    "{frame}pass {}: samples {}..{}, rows {}..{} ({ms:.1} ms)",
                    timing.pass_ms.len(),
                    s0,
                    s0 + samples,
                    row - rows,
                    row
                ),
            );
        }
        s0 += samples;
    }
    let sums = accum.read().map_err(gpu_err("reading the image back"))?;
    let n = view.spp as f32;
    Ok((
        sums.iter()
            .map(|s| [s[0] / n, s[1] / n, s[2] / n])
            .collect(),
        timing,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_parses_and_validates_as_the_host_checks_it() {
        let module = naga::front::wgsl::parse_str(super::KERNEL)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(super::KERNEL)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{e:?}"));
    }

    #[test]
    fn the_kernels_constants_are_the_cpu_tracers() {
        use crate::layout::{TABLE_ALBEDO_A, TABLE_ALBEDO_B};
        for line in [
            format!("const ALBEDO_SIZE: u32 = {}u;", crate::albedo::SIZE),
            format!("const TABLE_ALBEDO_A: u32 = {TABLE_ALBEDO_A}u;"),
            format!("const TABLE_ALBEDO_B: u32 = {TABLE_ALBEDO_B}u;"),
            format!(
                "const TABLE_ALBEDO_AVG: u32 = {}u;",
                crate::layout::TABLE_ALBEDO_AVG
            ),
            format!("const TABLE_ENV: u32 = {}u;", crate::layout::TABLE_ENV),
            format!(
                "const DIMS_PER_BOUNCE: u32 = {}u;",
                crate::trace::DIMS_PER_BOUNCE
            ),
            format!("const COUNT_BITS: u32 = {}u;", crate::bvh::COUNT_BITS),
            format!(
                "const COUNT_MASK: u32 = {}u;",
                (1u32 << crate::bvh::COUNT_BITS) - 1
            ),
            format!("const END: u32 = {:#x}u;", crate::bvh::END),
        ] {
            assert!(super::KERNEL.contains(&line), "render.wgsl lacks `{line}`");
        }
    }
}
