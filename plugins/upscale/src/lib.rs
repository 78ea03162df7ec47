//! `upscale`: super-resolution of PNG/JPEG images with the ESPCN-class
//! network of [`nn`] on the GPU, or bicubic for comparison.
//!
//! Inputs: images anywhere in `/input` (PNG or JPEG; grey, RGB, with or
//! without alpha), and optionally a weights file written by the `train`
//! plugin. Params ([`Params`], all optional):
//!
//! ```json
//! {"mode": "network", "scale": 2, "weights": "model.safetensors", "tile": 192,
//!  "evaluate": false, "max_input_megapixels": 16}
//! ```
//!
//! Without `weights`, the bundled default weights for the scale are used
//! (×2 and ×4, trained by the `train` plugin on `fixtures/datasets/sr/train`).
//! The network upscales luma (BT.601); chroma and alpha are upscaled
//! bicubically. Images are processed in bands of tiles of `tile` LR pixels
//! with an overlap of the network's receptive radius, so memory on the GPU
//! is bounded by the tile and the result is the same for any tile size;
//! output rows stream into the PNG band by band.
//!
//! Outputs: `<name>.png` per input (8-bit, same channels as the input) and
//! `report.json` (sizes, timings, megapixels/s). With `evaluate`, each
//! input is taken as a high-resolution reference: it is box-downscaled by
//! the scale, upscaled by the network and by bicubic, and both are
//! measured (PSNR and SSIM on 8-bit luma, a `scale`-pixel border left out);
//! the network's output is written.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::time::Instant;

use nn::eval::{self, Comparison};
use nn::image::{self, ImageError, Ycc};
use nn::resample::bicubic_region;
use nn::upscaler::Upscaler;
use nn::weights::{self, Weights};
use pictor_sdk::gpu;
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::{Deserialize, Serialize};

/// Default ×2 weights (see fixtures/weights/README.md).
const DEFAULT_X2: &[u8] = include_bytes!("../../../fixtures/weights/espcn-x2.safetensors");
/// Default ×4 weights.
const DEFAULT_X4: &[u8] = include_bytes!("../../../fixtures/weights/espcn-x4.safetensors");

/// How luma is upscaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The network (bicubic plus its residual).
    Network,
    /// Bicubic alone (Keys, a = -0.5).
    Bicubic,
}

/// The job's params.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `network` (default) or `bicubic`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Upscaling factor; by default the weights' (2 without weights).
    #[serde(default)]
    pub scale: Option<u32>,
    /// Weights file in `/input`; the bundled defaults otherwise.
    #[serde(default)]
    pub weights: Option<String>,
    /// Tile side in LR pixels (16 to 1024, and small enough that the
    /// network's widest layer fits in one GPU buffer: 1016 for the defaults).
    #[serde(default = "default_tile")]
    pub tile: usize,
    /// Measure against the inputs as references (see the crate docs).
    #[serde(default)]
    pub evaluate: bool,
    /// Largest input, in megapixels.
    #[serde(default = "default_max_mpx")]
    pub max_input_megapixels: f64,
}

fn default_mode() -> Mode {
    Mode::Network
}
fn default_tile() -> usize {
    192
}
fn default_max_mpx() -> f64 {
    16.0
}

#[derive(Debug, Serialize)]
struct ImageReport {
    input: String,
    output: String,
    input_size: [usize; 2],
    output_size: [usize; 2],
    seconds: f64,
    output_megapixels_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: Mode,
    scale: u32,
    weights: String,
    tile: usize,
    images: Vec<ImageReport>,
    evaluation: Option<Vec<Comparison>>,
    output_megapixels_per_s: f64,
    adapter: String,
}

fn invalid_input(name: &str, e: ImageError) -> JobError {
    JobError::InvalidInput(format!("{name}: {e}"))
}

fn gpu_failed(e: gpu::GpuError) -> JobError {
    JobError::Failed(e.to_string())
}

/// The weights the job uses, and how to name them in the report.
fn load_weights(job: &Job, params: &Params) -> Result<(Weights, String), JobError> {
    let (bytes, label) = match &params.weights {
        Some(name) => (Cow::Owned(job.read_input(name)?), name.clone()),
        None => match params.scale.unwrap_or(2) {
            2 => (Cow::Borrowed(DEFAULT_X2), "bundled espcn-x2".to_string()),
            4 => (Cow::Borrowed(DEFAULT_X4), "bundled espcn-x4".to_string()),
            s => {
                return Err(JobError::InvalidParams(format!(
                    "no bundled weights for ×{s} (there are ×2 and ×4): train them with the `train` plugin and pass them as `weights`"
                )));
            }
        },
    };
    let w = weights::load(&bytes)
        .map_err(|e| JobError::InvalidInput(format!("weights {label}: {e}")))?;
    if let Some(s) = params.scale
        && s != w.arch.scale
    {
        return Err(JobError::InvalidParams(format!(
            "`scale` is {s} but weights {label} are for ×{}",
            w.arch.scale
        )));
    }
    Ok((w, label))
}

/// `a/b.jpg` → `a/b.png`.
fn output_name(input: &str) -> String {
    match input.rfind('.') {
        Some(dot) if !input[dot..].contains('/') => format!("{}.png", &input[..dot]),
        _ => format!("{input}.png"),
    }
}

/// A PNG encoder for `name` in `/output` that takes rows as they come.
fn png_writer(
    job: &Job,
    name: &str,
    w: usize,
    h: usize,
    channels: usize,
) -> Result<png::Writer<BufWriter<std::fs::File>>, JobError> {
    let path = job.output_path(name)?;
    let file = std::fs::File::create(&path).map_err(|e| JobError::Io(format!("{name}: {e}")))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .map_err(|e| JobError::Io(format!("{name}: {e}")))
}

/// Upscales `lr` into the PNG `name`, one band of tiles at a time.
fn upscale_streaming(
    job: &Job,
    name: &str,
    lr: &Ycc,
    r: usize,
    network: Option<&Upscaler>,
    band_rows: usize,
    on_tile: &mut dyn FnMut() -> Result<(), JobError>,
) -> Result<(), JobError> {
    let (w, h) = (lr.y.width, lr.y.height);
    let channels = eval::channels(lr);
    let mut writer = png_writer(job, name, w * r, h * r, channels)?;
    let mut stream = writer
        .stream_writer()
        .map_err(|e| JobError::Io(format!("{name}: {e}")))?;
    for y0 in (0..h).step_by(band_rows) {
        let rows = band_rows.min(h - y0);
        let luma = match network {
            Some(n) => {
                let mut cancelled = Ok(());
                let band = n
                    .band(&lr.y, y0, rows, || {
                        if cancelled.is_ok() {
                            cancelled = on_tile();
                        }
                    })
                    .map_err(gpu_failed)?;
                cancelled?;
                band
            }
            None => {
                let mut band = bicubic_region(&lr.y, r, 0, y0 * r, w * r, rows * r);
                band.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
                on_tile()?;
                band
            }
        };
        let (chroma, alpha) = eval::bicubic_band(lr, r, y0 * r, rows * r);
        let chroma_refs = chroma.as_ref().map(|[a, b]| [a, b]);
        let px = eval::pixels_of(&luma, chroma_refs, alpha.as_ref(), 0, rows * r);
        stream
            .write_all(&px)
            .map_err(|e| JobError::Io(format!("{name}: {e}")))?;
    }
    stream
        .finish()
        .map_err(|e| JobError::Io(format!("{name}: {e}")))?;
    Ok(())
}

/// The `upscale` plugin.
pub struct Upscale;

impl Plugin for Upscale {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        if !(16..=1024).contains(&params.tile) {
            return Err(JobError::InvalidParams(format!(
                "`tile` {} must be 16 to 1024 (LR pixels)",
                params.tile
            )));
        }
        if !(params.max_input_megapixels > 0.0 && params.max_input_megapixels <= 64.0) {
            return Err(JobError::InvalidParams(
                "`max_input_megapixels` must be in (0, 64]".into(),
            ));
        }
        let max_pixels = (params.max_input_megapixels * 1e6) as u64;
        let needs_network = params.mode == Mode::Network || params.evaluate;
        let (weights, label) = if needs_network {
            let (w, l) = load_weights(job, &params)?;
            (Some(w), l)
        } else {
            (None, "none (bicubic)".to_string())
        };
        let scale = weights
            .as_ref()
            .map_or(params.scale.unwrap_or(2), |w| w.arch.scale);
        if !nn::model::SCALES.contains(&scale) {
            return Err(JobError::InvalidParams(format!(
                "`scale` {scale}: use 2, 3 or 4"
            )));
        }
        let r = scale as usize;
        let names: Vec<String> = job
            .input_files()?
            .into_iter()
            .filter(|n| image::is_image_name(n) && Some(n) != params.weights.as_ref())
            .collect();
        if names.is_empty() {
            return Err(JobError::InvalidInput(
                "no PNG or JPEG images in /input".into(),
            ));
        }
        let mut outputs = std::collections::BTreeMap::new();
        for n in &names {
            if let Some(other) = outputs.insert(output_name(n), n.clone()) {
                return Err(JobError::InvalidInput(format!(
                    "{other} and {n} would both be written as {}",
                    output_name(n)
                )));
            }
        }
        // Check every image's size before any work, from its header.
        let mut total_tiles = 0usize;
        for n in &names {
            let (w, h) =
                image::file_dimensions(&job.input_path(n)?).map_err(|e| invalid_input(n, e))?;
            image::check_size(w, h, max_pixels).map_err(|e| {
                JobError::InvalidInput(format!("{n} is {e} (`max_input_megapixels`)"))
            })?;
            let lr = if params.evaluate {
                (w as usize / r, h as usize / r)
            } else {
                (w as usize, h as usize)
            };
            total_tiles += lr.0.div_ceil(params.tile) * lr.1.div_ceil(params.tile);
        }
        if let Some(w) = &weights
            && params.tile > nn::upscaler::max_tile(&w.arch)
        {
            return Err(JobError::InvalidParams(format!(
                "`tile` {} is too large for weights {label}: a layer would not fit in one GPU buffer; use at most {}",
                params.tile,
                nn::upscaler::max_tile(&w.arch)
            )));
        }
        let upscaler = match &weights {
            Some(w) => Some(Upscaler::new(&w.arch, &w.params, params.tile).map_err(gpu_failed)?),
            None => None,
        };
        let network = if params.mode == Mode::Network {
            upscaler.as_ref()
        } else {
            None
        };

        let started = Instant::now();
        let mut done_tiles = 0usize;
        let mut images = Vec::new();
        let mut evaluation = Vec::new();
        let mut out_pixels = 0u64;
        for n in &names {
            let t0 = Instant::now();
            let img =
                image::decode(&job.read_input(n)?, max_pixels).map_err(|e| invalid_input(n, e))?;
            let out = output_name(n);
            let mut on_tile = || -> Result<(), JobError> {
                done_tiles += 1;
                job.progress(
                    done_tiles as f32 / total_tiles.max(1) as f32,
                    format!("{n}: tile {done_tiles}/{total_tiles}"),
                );
                job.check_cancelled()
            };
            let (in_size, out_size) = if params.evaluate {
                let Some(up) = upscaler.as_ref() else {
                    return Err(JobError::Failed("evaluation needs the network".into()));
                };
                if img.y.width < 11 * r || img.y.height < 11 * r {
                    return Err(JobError::InvalidInput(format!(
                        "{n} is too small to evaluate at ×{r} (at least {0}×{0})",
                        11 * r
                    )));
                }
                let (comparison, upscaled) = eval::compare(n, &img, up).map_err(gpu_failed)?;
                let (w, h) = (upscaled.y.width, upscaled.y.height);
                let mut writer = png_writer(job, &out, w, h, eval::channels(&upscaled))?;
                writer
                    .write_image_data(&eval::pixels(&upscaled))
                    .map_err(|e| JobError::Io(format!("{out}: {e}")))?;
                writer
                    .finish()
                    .map_err(|e| JobError::Io(format!("{out}: {e}")))?;
                evaluation.push(comparison);
                on_tile()?;
                ([w / r, h / r], [w, h])
            } else {
                upscale_streaming(job, &out, &img, r, network, params.tile, &mut on_tile)?;
                (
                    [img.y.width, img.y.height],
                    [img.y.width * r, img.y.height * r],
                )
            };
            let seconds = t0.elapsed().as_secs_f64();
            let px = (out_size[0] * out_size[1]) as u64;
            out_pixels += px;
            images.push(ImageReport {
                input: n.clone(),
                output: out,
                input_size: in_size,
                output_size: out_size,
                seconds,
                output_megapixels_per_s: px as f64 / 1e6 / seconds.max(1e-9),
            });
        }
        let mpx_s = out_pixels as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-9);
        let report = Report {
            mode: params.mode,
            scale,
            weights: label,
            tile: params.tile,
            images,
            evaluation: params.evaluate.then_some(evaluation),
            output_megapixels_per_s: mpx_s,
            adapter: gpu::adapter()
                .map(|a| a.name)
                .unwrap_or_else(|_| "none".into()),
        };
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| JobError::Failed(e.to_string()))?;
        job.write_output("report.json", &json)?;
        let mut summary = Summary::new(format!(
            "upscaled {} image(s) ×{scale} ({:?}) at {mpx_s:.2} Mpx/s",
            names.len(),
            params.mode
        ))
        .metric("output_megapixels_per_s", mpx_s);
        if let Some(ev) = &report.evaluation {
            let mean = |f: &dyn Fn(&Comparison) -> f64| {
                ev.iter().map(f).sum::<f64>() / ev.len().max(1) as f64
            };
            summary = summary
                .metric("psnr_network", mean(&|c| c.network.psnr))
                .metric("psnr_bicubic", mean(&|c| c.bicubic.psnr))
                .metric("ssim_network", mean(&|c| c.network.ssim))
                .metric("ssim_bicubic", mean(&|c| c.bicubic.ssim));
        }
        Ok(summary)
    }
}

pictor_sdk::export_plugin!(Upscale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_swap_the_extension() {
        assert_eq!(output_name("a.jpg"), "a.png");
        assert_eq!(output_name("dir/b.JPEG"), "dir/b.png");
        assert_eq!(output_name("c.png"), "c.png");
        assert_eq!(output_name("x.d/noext"), "x.d/noext.png");
    }

    #[test]
    fn bundled_weights_load() {
        for (bytes, scale) in [(DEFAULT_X2, 2), (DEFAULT_X4, 4)] {
            assert_eq!(weights::load(bytes).unwrap().arch.scale, scale);
        }
    }
}
