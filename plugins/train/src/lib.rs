//! `train`: trains the ESPCN-class super-resolution network of [`nn`] on
//! the GPU — forward pass, backward pass and Adam all in WGSL kernels —
//! on the images in `/input`.
//!
//! Inputs: PNG/JPEG training images anywhere in `/input`; images under
//! `/input/eval/` are held out and measured at the end (network vs
//! bicubic, PSNR/SSIM). Params ([`Params`], all optional):
//!
//! ```json
//! {"scale": 2, "steps": 2000, "batch": 16, "patch": 24, "learning_rate": 0.003,
//!  "seed": 1, "features": [32, 16], "activation": "tanh", "checkpoint_every": 100}
//! ```
//!
//! `epochs` may replace `steps` (one epoch = as many patches as the images
//! hold LR pixels). Each step trains on `batch` random `patch`×`patch` LR
//! crops (HR = `scale`× that); LR images are made by box-downscaling (the
//! mean of each `scale`×`scale` block), and the network learns the residual
//! over bicubic upsampling of the luma (BT.601). The learning rate follows
//! a cosine from `learning_rate` down to a tenth of it.
//!
//! Checkpoints go through the host's `checkpoint` interface every
//! `checkpoint_every` steps and when the job is cancelled or preempted; a
//! later attempt resumes from the last one. A batch depends only on (seed,
//! step) and every GPU sum runs in a fixed order, so a resumed run ends
//! with the same weights, bit for bit, as an uninterrupted one on the same
//! adapter.
//!
//! Outputs: `weights.safetensors` (see [`nn::weights`]), `loss.csv`
//! (`step,loss`), `loss.png`, `report.json`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checkpoint;
pub mod data;
pub mod plot;

use std::collections::BTreeMap;
use std::time::Instant;

use nn::cpu::Adam;
use nn::eval::{self, Comparison};
use nn::graph::TrainingGraph;
use nn::model::{Activation, Architecture};
use nn::upscaler::Upscaler;
use nn::weights;
use pictor_sdk::gpu;
use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::checkpoint::State;
use crate::data::Dataset;

/// Most training steps a job may ask for.
pub const MAX_STEPS: u64 = 10_000_000;

/// The job's params.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Upscaling factor: 2, 3 or 4.
    #[serde(default = "default_scale")]
    pub scale: u32,
    /// Training steps (default 1000 unless `epochs` is given).
    #[serde(default)]
    pub steps: Option<u64>,
    /// Passes over the data instead of `steps`.
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Patches per step.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// LR patch side in pixels.
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Adam's starting learning rate.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Seed of the initial weights and the batches; the job's seed by default.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Channels of the hidden layers.
    #[serde(default = "default_features")]
    pub features: Vec<u32>,
    /// Hidden-layer activation: `tanh` or `relu`.
    #[serde(default = "default_activation")]
    pub activation: String,
    /// Steps between checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Largest image, in megapixels.
    #[serde(default = "default_max_mpx")]
    pub max_image_megapixels: f64,
}

fn default_scale() -> u32 {
    2
}
fn default_batch() -> usize {
    16
}
fn default_patch() -> usize {
    24
}
fn default_lr() -> f64 {
    3e-3
}
fn default_features() -> Vec<u32> {
    vec![32, 16]
}
fn default_activation() -> String {
    "tanh".into()
}
fn default_checkpoint_every() -> u64 {
    100
}
fn default_max_mpx() -> f64 {
    16.0
}

/// What `report.json` holds.
#[derive(Debug, Serialize)]
struct Report {
    params: Params,
    seed: u64,
    steps: u64,
    resumed_at_step: u64,
    checkpoint_note: Option<String>,
    parameters: usize,
    dispatches_per_step: usize,
    final_loss: f32,
    duration_s: f64,
    steps_per_s: f64,
    gpu_ms_per_step: f64,
    adapter: String,
    dataset: DatasetReport,
    evaluation: Option<EvalReport>,
}

#[derive(Debug, Serialize)]
struct DatasetReport {
    images: Vec<String>,
    lr_pixels: u64,
    sha256: String,
    downscale: &'static str,
}

#[derive(Debug, Serialize)]
struct EvalReport {
    images: Vec<Comparison>,
    mean_psnr_network: f64,
    mean_psnr_bicubic: f64,
    mean_ssim_network: f64,
    mean_ssim_bicubic: f64,
}

/// The checked settings of a run.
struct Run {
    arch: Architecture,
    steps: u64,
    seed: u64,
}

fn invalid(msg: impl Into<String>) -> JobError {
    JobError::InvalidParams(msg.into())
}

/// Checks every param that does not depend on the images, and returns the
/// network they describe.
fn check_params(params: &Params) -> Result<Architecture, JobError> {
    let activation = Activation::parse(&params.activation).ok_or_else(|| {
        invalid(format!(
            "`activation` {:?}: use \"tanh\" or \"relu\"",
            params.activation
        ))
    })?;
    let arch = Architecture::espcn(params.scale, &params.features, activation);
    arch.validate()
        .map_err(|e| invalid(format!("`scale`/`features`/`activation`: {e}")))?;
    if !(1..=256).contains(&params.batch) {
        return Err(invalid(format!(
            "`batch` {} must be 1 to 256",
            params.batch
        )));
    }
    if !(8..=256).contains(&params.patch) {
        return Err(invalid(format!(
            "`patch` {} must be 8 to 256 (LR pixels)",
            params.patch
        )));
    }
    if !(params.learning_rate > 0.0 && params.learning_rate <= 1.0) {
        return Err(invalid(format!(
            "`learning_rate` {} must be in (0, 1]",
            params.learning_rate
        )));
    }
    if params.checkpoint_every == 0 {
        return Err(invalid("`checkpoint_every` must be at least 1"));
    }
    if !(params.max_image_megapixels > 0.0 && params.max_image_megapixels <= 256.0) {
        return Err(invalid("`max_image_megapixels` must be in (0, 256]"));
    }
    match (params.steps, params.epochs) {
        (Some(_), Some(_)) => Err(invalid("give `steps` or `epochs`, not both")),
        (None, Some(e)) if !(e > 0.0 && e.is_finite()) => {
            Err(invalid(format!("`epochs` {e} must be positive")))
        }
        _ => Ok(arch),
    }
}

/// The checked settings of a run on images holding `lr_pixels` LR pixels
/// (what `epochs` counts in).
fn check(params: &Params, job: &Job, lr_pixels: u64) -> Result<Run, JobError> {
    let arch = check_params(params)?;
    let steps = match (params.steps, params.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => {
            let per_step = (params.batch * params.patch * params.patch) as f64;
            (lr_pixels as f64 * e / per_step).ceil() as u64
        }
        (None, None) => 1000,
    };
    if steps == 0 || steps > MAX_STEPS {
        return Err(invalid(format!("{steps} steps; use 1 to {MAX_STEPS}")));
    }
    Ok(Run {
        arch,
        steps,
        seed: params.seed.unwrap_or_else(|| job.seed()),
    })
}

/// Identifies a run: params that shape the weights, and the data.
fn fingerprint(params: &Params, run: &Run, dataset: &Dataset) -> [u8; 32] {
    let key = json!({
        "scale": params.scale, "steps": run.steps, "batch": params.batch, "patch": params.patch,
        "learning_rate": params.learning_rate, "seed": run.seed, "features": params.features,
        "activation": params.activation, "dataset": dataset.digest,
    });
    Sha256::digest(key.to_string().as_bytes()).into()
}

/// Learning rate at `step` (from 0) of `total`: cosine from `lr` to `lr`/10.
fn learning_rate(lr: f64, step: u64, total: u64) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

fn gpu_failed(e: gpu::GpuError) -> JobError {
    JobError::Failed(e.to_string())
}

/// The `train` plugin.
pub struct Train;

impl Plugin for Train {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let started = Instant::now();
        let params: Params = job.params()?;
        check_params(&params)?;
        let max_pixels = (params.max_image_megapixels * 1e6) as u64;
        let scale = params.scale as usize;
        job.progress(0.0, "loading images");
        let dataset = Dataset::load(job, scale, params.patch, max_pixels)?;
        let run = check(&params, job, dataset.lr_pixels)?;
        let fp = fingerprint(&params, &run, &dataset);
        let n = run.arch.param_count();

        let mut note = None;
        let state = match job
            .load_checkpoint()
            .map(|b| checkpoint::decode(&b, &fp, n))
        {
            Some(Ok(state)) if state.step <= run.steps => state,
            Some(Ok(state)) => {
                note = Some(format!(
                    "checkpoint at step {} is past the run's {} steps; started over",
                    state.step, run.steps
                ));
                fresh(&run)
            }
            Some(Err(why)) => {
                note = Some(format!("checkpoint not resumed: {why}; started over"));
                fresh(&run)
            }
            None => fresh(&run),
        };
        let resumed_at = state.step;
        let graph = TrainingGraph::new(&run.arch, params.batch, params.patch, &state.params)
            .map_err(gpu_failed)?;
        if resumed_at > 0 {
            // The graph starts from the parameters with zero moments; a
            // resumed run also needs its moments back.
            graph
                .restore(&state.params, &state.m, &state.v)
                .map_err(gpu_failed)?;
        }
        let dispatches = graph.dispatches();
        let adam = Adam {
            lr: params.learning_rate,
            ..Adam::default()
        };
        let mut losses = state.losses;
        let save = |step: u64, losses: &[f32]| -> Result<(), JobError> {
            let [p, m, v] = graph.state().map_err(gpu_failed)?;
            job.save_checkpoint(&checkpoint::encode(
                &fp,
                &State {
                    step,
                    params: p,
                    m,
                    v,
                    losses: losses.to_vec(),
                },
            ))
        };

        let train_started = Instant::now();
        let mut gpu_time = std::time::Duration::ZERO;
        let mut last_report = Instant::now();
        for step in resumed_at..run.steps {
            if job.cancelled() {
                save(step, &losses)?;
                return Err(JobError::Cancelled);
            }
            let batch = dataset.batch(run.seed, step, params.batch, params.patch, scale);
            let lr = learning_rate(params.learning_rate, step, run.steps);
            let (loss, took) = graph
                .step(
                    &batch.input,
                    &batch.base,
                    &batch.target,
                    adam.hyper(lr, step + 1),
                )
                .map_err(gpu_failed)?;
            gpu_time += took;
            if !loss.is_finite() {
                return Err(JobError::Failed(format!(
                    "training diverged at step {} (loss {loss}); lower `learning_rate` (now {})",
                    step + 1,
                    params.learning_rate
                )));
            }
            losses.push(loss);
            let done = step + 1;
            if done % params.checkpoint_every == 0 && done < run.steps {
                save(done, &losses)?;
            }
            if last_report.elapsed().as_millis() >= 250 || done == run.steps {
                let rate =
                    (done - resumed_at) as f64 / train_started.elapsed().as_secs_f64().max(1e-9);
                job.progress(
                    done as f32 / run.steps as f32 * 0.95,
                    format!(
                        "step {done}/{} · loss {loss:.3e} · {rate:.1} steps/s",
                        run.steps
                    ),
                );
                last_report = Instant::now();
            }
        }
        let trained_s = train_started.elapsed().as_secs_f64();
        let [final_params, _, _] = graph.state().map_err(gpu_failed)?;
        drop(graph);

        let tail = &losses[losses.len().saturating_sub((losses.len() / 20).max(1))..];
        let final_loss = tail.iter().sum::<f32>() / tail.len().max(1) as f32;
        let extra = BTreeMap::from([
            ("trained_by".to_string(), json!("pictor train plugin")),
            ("steps".to_string(), json!(run.steps)),
            ("seed".to_string(), json!(run.seed)),
            ("batch".to_string(), json!(params.batch)),
            ("patch".to_string(), json!(params.patch)),
            ("learning_rate".to_string(), json!(params.learning_rate)),
            ("dataset_sha256".to_string(), json!(dataset.digest)),
            ("downscale".to_string(), json!("box")),
        ]);
        let bytes = weights::save(&run.arch, &final_params, &extra).map_err(JobError::Failed)?;
        job.write_output("weights.safetensors", &bytes)?;
        let mut csv = String::from("step,loss\n");
        for (i, l) in losses.iter().enumerate() {
            csv.push_str(&format!("{},{l}\n", i + 1));
        }
        job.write_output("loss.csv", csv.as_bytes())?;
        job.write_output(
            "loss.png",
            &plot::loss_png(&losses).map_err(JobError::Failed)?,
        )?;

        job.progress(0.96, "evaluating on held-out images");
        let evaluation = evaluate(job, &run.arch, &final_params, max_pixels)?;
        let adapter = gpu::adapter().map(|a| a.name).unwrap_or_default();
        let trained = run.steps - resumed_at;
        let report = Report {
            params: params.clone(),
            seed: run.seed,
            steps: run.steps,
            resumed_at_step: resumed_at,
            checkpoint_note: note,
            parameters: n,
            dispatches_per_step: dispatches,
            final_loss,
            duration_s: started.elapsed().as_secs_f64(),
            steps_per_s: trained as f64 / trained_s.max(1e-9),
            gpu_ms_per_step: gpu_time.as_secs_f64() * 1e3 / trained.max(1) as f64,
            adapter,
            dataset: DatasetReport {
                images: dataset.examples.iter().map(|e| e.name.clone()).collect(),
                lr_pixels: dataset.lr_pixels,
                sha256: dataset.digest.clone(),
                downscale: "box (mean of each scale×scale block)",
            },
            evaluation,
        };
        let report_json =
            serde_json::to_vec_pretty(&report).map_err(|e| JobError::Failed(e.to_string()))?;
        job.write_output("report.json", &report_json)?;

        let mut summary = Summary::new(format!(
            "trained ×{} for {} steps (resumed at {resumed_at}); final loss {final_loss:.3e}",
            params.scale, run.steps
        ))
        .metric("final_loss", f64::from(final_loss))
        .metric("steps_per_s", report.steps_per_s)
        .metric("resumed_at_step", resumed_at as f64);
        if let Some(e) = &report.evaluation {
            summary = summary
                .metric("eval_psnr_network", e.mean_psnr_network)
                .metric("eval_psnr_bicubic", e.mean_psnr_bicubic)
                .metric("eval_ssim_network", e.mean_ssim_network)
                .metric("eval_ssim_bicubic", e.mean_ssim_bicubic);
        }
        Ok(summary)
    }
}

fn fresh(run: &Run) -> State {
    let n = run.arch.param_count();
    State {
        step: 0,
        params: run.arch.init(run.seed),
        m: vec![0.0; n],
        v: vec![0.0; n],
        losses: Vec::new(),
    }
}

/// PSNR/SSIM of the trained network and of bicubic on `/input/eval/`.
fn evaluate(
    job: &Job,
    arch: &Architecture,
    params: &[f32],
    max_pixels: u64,
) -> Result<Option<EvalReport>, JobError> {
    let names = data::image_names(job, true)?;
    if names.is_empty() {
        return Ok(None);
    }
    let upscaler = Upscaler::new(arch, params, 128).map_err(gpu_failed)?;
    let mut images = Vec::new();
    for name in names {
        let bytes = job.read_input(&name)?;
        let hr = nn::image::decode(&bytes, max_pixels)
            .map_err(|e| JobError::InvalidInput(format!("{name}: {e}")))?;
        let (comparison, _) = eval::compare(&name, &hr, &upscaler).map_err(gpu_failed)?;
        images.push(comparison);
    }
    let mean =
        |f: &dyn Fn(&Comparison) -> f64| images.iter().map(f).sum::<f64>() / images.len() as f64;
    Ok(Some(EvalReport {
        mean_psnr_network: mean(&|c| c.network.psnr),
        mean_psnr_bicubic: mean(&|c| c.bicubic.psnr),
        mean_ssim_network: mean(&|c| c.network.ssim),
        mean_ssim_bicubic: mean(&|c| c.bicubic.ssim),
        images,
    }))
}

pictor_sdk::export_plugin!(Train);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_falls_from_full_to_a_tenth() {
        assert!((learning_rate(1.0, 0, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 50, 100) - 0.55).abs() < 1e-12);
        assert!((learning_rate(1.0, 100, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn params_are_checked_with_the_field_named() {
        let host = pictor_sdk::testing::TestHost::new().unwrap();
        let job = host.job("{}");
        use serde_json::Value;
        let p = |v: Value| serde_json::from_value::<Params>(v).unwrap();
        let err = |v: Value| match check(&p(v), &job, 1000) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(err(json!({"scale": 5})).contains("scale 5"));
        assert!(err(json!({"batch": 0})).contains("`batch` 0"));
        assert!(err(json!({"steps": 10, "epochs": 1.0})).contains("not both"));
        assert!(err(json!({"activation": "gelu"})).contains("`activation` \"gelu\""));
        assert!(err(json!({"learning_rate": -1.0})).contains("learning_rate"));
        assert_eq!(
            check(
                &p(json!({"epochs": 2.0, "batch": 10, "patch": 10})),
                &job,
                10_000
            )
            .unwrap()
            .steps,
            20
        );
        assert!(serde_json::from_value::<Params>(json!({"stpes": 10})).is_err());
        // Params are checked before the images are read: `epochs` must pass
        // then (it becomes steps once the images' size is known).
        assert!(check_params(&p(json!({"epochs": 2.0}))).is_ok());
        assert!(check_params(&p(json!({"epochs": 0.0}))).is_err());
    }
}
