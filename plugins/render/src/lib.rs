//! `render`: a path tracer for glTF 2.0 scenes whose inner loop runs as a
//! WGSL compute kernel through the host's `gpu` capability, with a CPU
//! reference tracer that runs the same algorithm on the same data.
//!
//! Input: one `.gltf` (with its buffers and images) or `.glb` in `/input`
//! (see [`scene`] for what is supported). Params ([`Params`], all
//! optional):
//!
//! ```json
//! {"scene": "cornell.gltf", "width": 256, "height": 256, "spp": 64, "max_bounces": 6,
//!  "seed": 1, "tile": {"x": 0, "y": 0, "width": 128, "height": 128},
//!  "frames": {"first": 0, "last": 23, "fps": 24},
//!  "camera": {"position": [0, 1, 3], "look_at": [0, 1, 0], "up": [0, 1, 0], "yfov_deg": 40},
//! ```
//!
//! Without `width` or `height` the frame takes the scene camera's
//! `aspectRatio` ([`Params::frame_size`]). `camera` may also be `"auto"` (frame the scene's bounds), a camera of
//! the scene by its node's or camera's name, or its index among the
//! scene's perspective cameras. Without `camera` the scene's first
//! perspective camera is used, and a scene without one is framed
//! automatically (noted in `report.json`).
//!
//! ```json
//! {"camera": "auto"}
//!  "environment": [0, 0, 0], "outputs": ["png", "pfm"], "device": "gpu"}
//! ```
//!
//! `environment` may instead be an equirectangular `.hdr` image in
//! `/input`, lighting the scene as a light ([`environment`]):
//!
//! ```json
//! {"environment": {"image": "sky.hdr", "strength": 1, "rotation_deg": 0}}
//! ```
//!
//! Outputs: `image.png` (8-bit sRGB, clamped), `image.pfm` (linear f32)
//! when asked, and `report.json` (sizes, passes, timings, samples/s, notes
//! on ignored features). With `frames`, frame f of the scene's animation
//! (time f / fps) is written as `frame_<ffff>.png` / `.pfm`; a frame's
//! pixels do not depend on which range it was rendered in, so a sequence
//! can be split across workers by frame ranges as well as by tiles. With `tile`, the images hold just that rectangle
//! of the frame; a pixel's value depends only on the scene, params, seed,
//! its position in the full frame and the adapter, so tiles rendered
//! separately stitch into exactly the whole frame.
//!
//! The shading model is documented in [`trace`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod albedo;
pub mod bvh;
pub mod cpu;
pub mod denoise;
pub mod environment;
pub mod gpu;
pub mod image;
pub mod layout;
pub mod math;
pub mod rng;
pub mod scene;
pub mod trace;

use std::time::Instant;

use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

use crate::layout::{SceneData, View};
use crate::math::V3;
use crate::scene::{Camera, ReadInput};

/// Largest frame side.
pub const MAX_SIDE: u32 = 8192;
/// Most pixels in a frame (16 Mpx).
pub const MAX_PIXELS: u64 = 1 << 24;

/// The job's params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Scene file in `/input`; by default the only `.gltf`/`.glb` there.
    #[serde(default)]
    pub scene: Option<String>,
    /// Frame width in pixels (1..=8192). Without it (or `height`) the
    /// frame takes the camera's glTF `aspectRatio` (see [`Params::frame_size`]).
    #[serde(default)]
    pub width: Option<u32>,
    /// Frame height in pixels (1..=8192).
    #[serde(default)]
    pub height: Option<u32>,
    /// Samples per pixel (1..=65536).
    #[serde(default = "default_spp")]
    pub spp: u32,
    /// Bounces after the camera ray (0..=64).
    #[serde(default = "default_bounces")]
    pub max_bounces: u32,
    /// Seed; the job's seed by default.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Render only this rectangle of the frame.
    #[serde(default)]
    pub tile: Option<Tile>,
    /// Render this range of animation frames.
    #[serde(default)]
    pub frames: Option<Frames>,
    /// Camera; the scene's first perspective camera by default (its
    /// bounds framed automatically if it has none).
    #[serde(default, deserialize_with = "camera_choice")]
    pub camera: Option<CameraChoice>,
    /// What rays that leave the scene see: a color `[r, g, b]` (black by
    /// default) or an equirectangular image `{"image": "sky.hdr",
    /// "strength": 1, "rotation_deg": 0}`.
    #[serde(default, deserialize_with = "environment_choice")]
    pub environment: EnvironmentParam,
    /// Image formats to write: `png`, `pfm`.
    #[serde(default = "default_outputs")]
    pub outputs: Vec<Format>,
    /// Where to trace: `gpu` (default) or `cpu` (the reference tracer).
    #[serde(default)]
    pub device: Device,
    /// Smooth the image's noise (off by default: a denoised image is no
    /// longer the estimate that tiles and other workers agree on).
    #[serde(default)]
    pub denoise: bool,
}

/// A rectangle of the frame.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tile {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A range of animation frames.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Frames {
    /// First frame (frame f is at time f / fps).
    pub first: u32,
    /// Last frame, inclusive (at most 10000 frames in one job).
    pub last: u32,
    /// Frames per second (0 < fps ≤ 1000).
    #[serde(default = "default_fps")]
    pub fps: f32,
}

/// Which camera renders the frame.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraChoice {
    /// `"auto"`: frame the scene's bounds.
    Auto,
    /// A camera of the scene by its node's or camera's name.
    Named(String),
    /// A camera of the scene by its index among its perspective cameras.
    Index(usize),
    /// A camera given in params.
    Given(CameraParams),
}

/// Reads `camera`: `"auto"`, a name, an index or a camera object (whose
/// own errors name its field).
fn camera_choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CameraChoice>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(name) if name == "auto" => Ok(Some(CameraChoice::Auto)),
        serde_json::Value::String(name) if name.is_empty() || name.len() > 256 => {
            Err(D::Error::custom("a camera name must be 1-256 bytes"))
        }
        serde_json::Value::String(name) => Ok(Some(CameraChoice::Named(name))),
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .map(|i| Some(CameraChoice::Index(i)))
            .ok_or_else(|| D::Error::custom("a camera index must be a whole number ≥ 0")),
        object @ serde_json::Value::Object(_) => serde_json::from_value(object)
            .map(|c| Some(CameraChoice::Given(c)))
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom(
            "must be \"auto\", a camera's name or index in the scene, or {position, look_at, up, yfov_deg}",
        )),
    }
}

/// The environment params ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvironmentParam {
    /// A constant radiance.
    Color([f32; 3]),
    /// A Radiance `.hdr` image in `/input`.
    Image(EnvironmentImage),
}

impl Default for EnvironmentParam {
    fn default() -> Self {
        EnvironmentParam::Color([0.0; 3])
    }
}

/// An environment image and how it is placed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentImage {
    /// The `.hdr` file in `/input`.
    pub image: String,
    /// Multiplies its radiance (0..=1e6; 1 by default).
    #[serde(default = "default_strength")]
    pub strength: f32,
    /// Turns it about the up axis, in degrees.
    #[serde(default)]
    pub rotation_deg: f32,
}

fn default_strength() -> f32 {
    1.0
}

/// Reads `environment`: a color or an image object (whose own errors
/// name its field).
fn environment_choice<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<EnvironmentParam, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(EnvironmentParam::default()),
        array @ serde_json::Value::Array(_) => serde_json::from_value(array)
            .map(EnvironmentParam::Color)
            .map_err(|_| D::Error::custom("a color must be three numbers [r, g, b]")),
        object @ serde_json::Value::Object(_) => serde_json::from_value(object)
            .map(EnvironmentParam::Image)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom(
            "must be a color [r, g, b] or {\"image\": \"sky.hdr\", \"strength\": 1, \"rotation_deg\": 0}",
        )),
    }
}

/// A camera given in params.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraParams {
    /// Eye position.
    pub position: [f32; 3],
    /// Point looked at.
    pub look_at: [f32; 3],
    /// Up direction.
    #[serde(default = "default_up")]
    pub up: [f32; 3],
    /// Vertical field of view in degrees (0 < f < 180).
    #[serde(default = "default_fov")]
    pub yfov_deg: f32,
}

/// An image output format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// 8-bit sRGB PNG.
    Png,
    /// Linear 32-bit float PFM.
    Pfm,
    /// The denoiser's guide buffers: `albedo.pfm` and `normal.pfm`.
    Guides,
}

/// Which tracer runs.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The WGSL kernel through the `gpu` capability.
    #[default]
    Gpu,
    /// The CPU reference tracer (one thread inside a component).
    Cpu,
}

/// A frame side when params and the camera leave it open.
pub const DEFAULT_SIDE: u32 = 256;
fn default_spp() -> u32 {
    64
}
fn default_bounces() -> u32 {
    6
}
fn default_fps() -> f32 {
    24.0
}
fn default_up() -> [f32; 3] {
    [0.0, 1.0, 0.0]
}
fn default_fov() -> f32 {
    45.0
}
fn default_outputs() -> Vec<Format> {
    vec![Format::Png]
}

fn bad(field: &str, why: impl std::fmt::Display) -> JobError {
    JobError::InvalidParams(format!("`{field}` {why}"))
}

impl Params {
    /// Parses and validates params JSON (as [`Job::params`] does).
    pub fn from_json(text: &str) -> Result<Params, JobError> {
        let p: Params =
            serde_json::from_str(text).map_err(|e| JobError::InvalidParams(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<(), JobError> {
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if let Some(v) = v
                && !(1..=MAX_SIDE).contains(&v)
            {
                return Err(bad(
                    name,
                    format_args!("must be in 1..={MAX_SIDE}, got {v}"),
                ));
            }
        }
        if !(1..=65536).contains(&self.spp) {
            return Err(bad(
                "spp",
                format_args!("must be in 1..=65536, got {}", self.spp),
            ));
        }
        if self.max_bounces > 64 {
            return Err(bad(
                "max_bounces",
                format_args!("must be in 0..=64, got {}", self.max_bounces),
            ));
        }
        if self.width.is_some() && self.height.is_some() {
            self.check_frame(self.frame_size(None))?;
        } else if let Some(t) = self.tile
            && (t.width == 0 || t.height == 0)
        {
            return Err(bad(
                "tile",
                format_args!("{}×{} is empty", t.width, t.height),
            ));
        }
        if let Some(f) = self.frames {
            if f.last < f.first || f.last - f.first >= 10_000 {
                return Err(bad(
                    "frames",
                    format_args!(
                        "must have first ≤ last and at most 10000 frames, got {}..={}",
                        f.first, f.last
                    ),
                ));
            }
            if !(f.fps.is_finite() && f.fps > 0.0 && f.fps <= 1000.0) {
                return Err(bad(
                    "frames",
                    format_args!("`fps` must be in (0, 1000], got {}", f.fps),
                ));
            }
        }
        match &self.environment {
            EnvironmentParam::Color(c)
                if !c.iter().all(|c| c.is_finite() && (0.0..=1e6).contains(c)) =>
            {
                return Err(bad(
                    "environment",
                    "must be three finite radiances in 0..=1e6",
                ));
            }
            EnvironmentParam::Image(i) => {
                if !(i.strength.is_finite() && (0.0..=1e6).contains(&i.strength)) {
                    return Err(bad(
                        "environment",
                        format_args!("`strength` must be in 0..=1e6, got {}", i.strength),
                    ));
                }
                if !i.rotation_deg.is_finite() {
                    return Err(bad("environment", "`rotation_deg` must be a finite angle"));
                }
                if i.image.is_empty() || i.image.len() > 256 {
                    return Err(bad(
                        "environment",
                        "`image` must name a file of /input (1-256 bytes)",
                    ));
                }
            }
            EnvironmentParam::Color(_) => {}
        }
        if self.denoise && self.tile.is_some() {
            return Err(bad(
                "denoise",
                "filters whole frames: render the tiles without it and denoise the stitched frame",
            ));
        }
        if self.outputs.is_empty() {
            return Err(bad(
                "outputs",
                "must name at least one format (`png`, `pfm`)",
            ));
        }
        if let Some(CameraChoice::Given(c)) = &self.camera
            && self.param_camera(c).is_none()
        {
            return Err(bad(
                "camera",
                "needs finite position ≠ look_at, an up not parallel to the view, and 0 < yfov_deg < 180",
            ));
        }
        Ok(())
    }

    /// The frame size: `width` and `height` as given; a missing side
    /// follows the camera's `aspect` (width / height, glTF's
    /// `aspectRatio`) from the other, or from a height of 256 when
    /// neither is given; without an aspect a missing side is 256.
    pub fn frame_size(&self, aspect: Option<f32>) -> (u32, u32) {
        let aspect = aspect.filter(|a| a.is_finite() && *a > 0.0);
        let side = |x: f32| (x.round() as u32).clamp(1, MAX_SIDE);
        match (self.width, self.height, aspect) {
            (Some(w), Some(h), _) => (w, h),
            (Some(w), None, Some(a)) => (w, side(w as f32 / a)),
            (None, Some(h), Some(a)) => (side(h as f32 * a), h),
            (None, None, Some(a)) => (side(DEFAULT_SIDE as f32 * a), DEFAULT_SIDE),
            (w, h, None) => (w.unwrap_or(DEFAULT_SIDE), h.unwrap_or(DEFAULT_SIDE)),
        }
    }

    /// Checks a frame of `size`: its pixel count, and that `tile` lies inside it.
    pub fn check_frame(&self, (width, height): (u32, u32)) -> Result<(), JobError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > MAX_PIXELS {
            return Err(bad(
                "width",
                format_args!(
                    "× `height` is {pixels} pixels ({width}×{height}), at most {MAX_PIXELS} are allowed"
                ),
            ));
        }
        if let Some(t) = self.tile {
            let inside = t.width >= 1
                && t.height >= 1
                && u64::from(t.x) + u64::from(t.width) <= u64::from(width)
                && u64::from(t.y) + u64::from(t.height) <= u64::from(height);
            if !inside {
                return Err(bad(
                    "tile",
                    format_args!(
                        "{}×{} at ({}, {}) is not a non-empty rectangle inside the {}×{} frame",
                        t.width, t.height, t.x, t.y, width, height
                    ),
                ));
            }
        }
        Ok(())
    }

    fn param_camera(&self, c: &CameraParams) -> Option<Camera> {
        let finite = c
            .position
            .iter()
            .chain(&c.look_at)
            .chain(&c.up)
            .all(|v| v.is_finite());
        if !finite || !c.yfov_deg.is_finite() || c.yfov_deg <= 0.0 || c.yfov_deg >= 180.0 {
            return None;
        }
        Camera::look_at(
            V3::from_array(c.position),
            V3::from_array(c.look_at),
            V3::from_array(c.up),
            c.yfov_deg.to_radians(),
        )
    }

    /// The tile rectangle in a frame of `size` (the whole frame without `tile`).
    pub fn tile_rect(&self, (width, height): (u32, u32)) -> [u32; 4] {
        self.tile
            .map_or([0, 0, width, height], |t| [t.x, t.y, t.width, t.height])
    }
}

/// A scene ready to render: uploaded data, the view, and notes.
pub struct Prepared {
    /// Flattened scene.
    pub data: SceneData,
    /// What to render.
    pub view: View,
    /// Triangle count.
    pub triangles: usize,
    /// Ignored features.
    pub notes: Vec<String>,
}

/// Loads scene `scene_file` through `read` and sets up the view for `params`
/// (a still image: animation time 0, the seed as given).
pub fn prepare(
    params: &Params,
    job_seed: u64,
    scene_file: &str,
    read: ReadInput<'_>,
) -> Result<Prepared, JobError> {
    let environment = load_environment(&params.environment, read)?;
    prepare_frame(params, job_seed, scene_file, read, None, &environment)
}

/// Like [`prepare`], for animation frame `frame` (at `frame / fps` seconds,
/// with a seed derived from the seed and the frame number; frame 0 keeps
/// the seed), lit by `environment` ([`load_environment`], read once per
/// job however many frames it renders).
pub fn prepare_frame(
    params: &Params,
    job_seed: u64,
    scene_file: &str,
    read: ReadInput<'_>,
    frame: Option<u32>,
    environment: &environment::Environment,
) -> Result<Prepared, JobError> {
    let fps = params.frames.map_or(24.0, |f| f.fps);
    let time = frame.map_or(0.0, |f| f as f32 / fps);
    let mut scene = scene::load_at(scene_file, read, time)?;
    scene.environment = environment.clone();
    let (camera, aspect) = pick_camera(params, &mut scene, scene_file)?;
    let (width, height) = params.frame_size(aspect);
    params.check_frame((width, height))?;
    let data = SceneData::build(&scene);
    let view = View {
        width,
        height,
        tile: params.tile_rect((width, height)),
        spp: params.spp,
        max_bounces: params.max_bounces,
        seed: params.seed.unwrap_or(job_seed)
            ^ u64::from(frame.unwrap_or(0)).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        camera,
    };
    Ok(Prepared {
        data,
        view,
        triangles: scene.triangles.len(),
        notes: scene.notes,
    })
}

/// The environment `param` asks for, its image read through `read`.
pub fn load_environment(
    param: &EnvironmentParam,
    read: ReadInput<'_>,
) -> Result<environment::Environment, JobError> {
    match param {
        EnvironmentParam::Color(c) => Ok(environment::Environment::uniform(*c)),
        EnvironmentParam::Image(i) => {
            let bytes = read(&i.image)?;
            let image = environment::decode_hdr(&bytes)
                .map_err(|e| JobError::InvalidInput(format!("environment `{}`: {e}", i.image)))?;
            Ok(environment::Environment {
                radiance: [i.strength; 3],
                image: Some(image),
                rotation: (i.rotation_deg / 360.0).rem_euclid(1.0),
            })
        }
    }
}

/// The camera `params.camera` picks in `scene`, with its aspect ratio if
/// the scene gives one; the scene's first camera by default, its bounds
/// framed when it has none (said in its notes).
fn pick_camera(
    params: &Params,
    scene: &mut scene::Scene,
    scene_file: &str,
) -> Result<(Camera, Option<f32>), JobError> {
    let (width, height) = params.frame_size(None);
    let aspect = width as f32 / height as f32;
    let framed = |scene: &scene::Scene| {
        let (min, max) = scene.bounds();
        Camera::framing(min, max, default_fov().to_radians(), aspect).ok_or_else(|| {
            JobError::InvalidInput(format!(
                "`{scene_file}`: the scene's bounds cannot be framed; give a camera in params `camera`"
            ))
        })
    };
    let count = scene.cameras.len();
    match &params.camera {
        Some(CameraChoice::Given(c)) => params
            .param_camera(c)
            .map(|c| (c, None))
            .ok_or_else(|| bad("camera", "is degenerate")),
        Some(CameraChoice::Auto) => framed(scene).map(|c| (c, None)),
        Some(CameraChoice::Named(name)) => scene
            .cameras
            .iter()
            .find(|c| c.is_named(name))
            .map(|c| (c.camera, c.aspect_ratio))
            .ok_or_else(|| {
                let names: Vec<String> = scene
                    .cameras
                    .iter()
                    .filter_map(|c| c.node_name.clone().or_else(|| c.camera_name.clone()))
                    .take(10)
                    .map(|n| format!("{n:?}"))
                    .collect();
                JobError::InvalidInput(format!(
                    "`{scene_file}`: no camera named {name:?}; its {count} perspective camera(s): [{}]",
                    names.join(", ")
                ))
            }),
        Some(CameraChoice::Index(i)) => scene.cameras.get(*i).map(|c| (c.camera, c.aspect_ratio)).ok_or_else(|| {
            JobError::InvalidInput(format!(
                "`{scene_file}`: camera index {i} does not exist; the scene has {count} perspective camera(s)"
            ))
        }),
        None => match scene.cameras.first() {
            Some(c) => Ok((c.camera, c.aspect_ratio)),
            None => {
                let camera = framed(scene)?;
                scene.notes.push(
                    "the scene has no perspective camera: its bounds are framed automatically (give params `camera` to choose)"
                        .to_string(),
                );
                Ok((camera, None))
            }
        },
    }
}

/// The scene file to render: `params.scene`, or the only glTF in the input.
fn pick_scene(params: &Params, files: &[String]) -> Result<String, JobError> {
    if let Some(s) = &params.scene {
        return Ok(s.clone());
    }
    let scenes: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".gltf") || f.ends_with(".glb"))
        .collect();
    match scenes.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(JobError::InvalidInput(
            "no `.gltf` or `.glb` scene in the input".into(),
        )),
        many => Err(bad(
            "scene",
            format_args!(
                "must choose between {} scenes in the input: {:?}",
                many.len(),
                many
            ),
        )),
    }
}

/// The `render` plugin.
pub struct Render;

impl Plugin for Render {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        params.validate()?;
        let scene_file = pick_scene(&params, &job.input_files()?)?;
        let frames: Vec<Option<u32>> = params
            .frames
            .map_or(vec![None], |f| (f.first..=f.last).map(Some).collect());
        let adapter = match params.device {
            Device::Gpu => {
                let a = pictor_sdk::gpu::adapter().map_err(|e| JobError::Failed(e.to_string()))?;
                format!("{}, {}", a.name, a.backend)
            }
            Device::Cpu => "CPU reference tracer".to_string(),
        };
        let read = |name: &str| job.read_input(name);
        let (mut load_ms, mut render_s, mut samples) = (0.0, 0.0, 0u64);
        let mut denoise_ms = 0.0;
        let (mut pass_ms, mut warmup_ms) = (Vec::new(), 0.0);
        let mut last = None;
        let environment = load_environment(&params.environment, &read)?;
        for (k, &frame) in frames.iter().enumerate() {
            let part = (k as u32, frames.len() as u32);
            job.progress(
                k as f32 / frames.len() as f32,
                format!("loading {scene_file}"),
            );
            let started = Instant::now();
            let prepared =
                prepare_frame(&params, job.seed(), &scene_file, &read, frame, &environment)?;
            load_ms += started.elapsed().as_secs_f64() * 1e3;
            job.check_cancelled()?;
            let view = prepared.view;
            let [_, _, tw, th] = view.tile;
            let started = Instant::now();
            let pixels = match params.device {
                Device::Gpu => {
                    let (pixels, timing) = gpu::render(job, &prepared.data, &view, part)?;
                    pass_ms.extend(timing.pass_ms);
                    warmup_ms += timing.warmup_ms;
                    pixels
                }
                Device::Cpu => cpu::render(&prepared.data, &view),
            };
            render_s += started.elapsed().as_secs_f64();
            samples += u64::from(tw) * u64::from(th) * u64::from(view.spp);
            let stem = frame.map_or_else(|| "image".to_string(), |f| format!("frame_{f:04}"));
            let want_guides = params.outputs.contains(&Format::Guides);
            let mut pixels = pixels;
            if params.denoise || want_guides {
                job.progress(
                    (k as f32 + 0.95) / frames.len() as f32,
                    "tracing the denoiser's guides",
                );
                let started = Instant::now();
                let (albedo, normal) = denoise::guides(&prepared.data, &view);
                job.check_cancelled()?;
                if params.denoise {
                    job.progress((k as f32 + 0.97) / frames.len() as f32, "denoising");
                    pixels = denoise::denoise(&pixels, &albedo, &normal, tw, th);
                }
                denoise_ms += started.elapsed().as_secs_f64() * 1e3;
                if want_guides {
                    let guide = |name: &str| {
                        frame.map_or_else(|| name.to_string(), |f| format!("{name}_{f:04}"))
                    };
                    job.write_output(
                        &format!("{}.pfm", guide("albedo")),
                        &image::encode_pfm(tw, th, &albedo),
                    )?;
                    job.write_output(
                        &format!("{}.pfm", guide("normal")),
                        &image::encode_pfm(tw, th, &normal),
                    )?;
                }
            }
            if params.outputs.contains(&Format::Png) {
                job.write_output(&format!("{stem}.png"), &image::encode_png(tw, th, &pixels)?)?;
            }
            if params.outputs.contains(&Format::Pfm) {
                job.write_output(&format!("{stem}.pfm"), &image::encode_pfm(tw, th, &pixels))?;
            }
            last = Some(prepared);
        }
        let Some(prepared) = last else {
            return Err(JobError::InvalidParams("`frames` is empty".into()));
        };
        let view = prepared.view;
        let [tx, ty, tw, th] = view.tile;
        let samples_per_s = samples as f64 / render_s.max(1e-9);
        let gpu_ms: f64 = pass_ms.iter().sum();
        let max_pass_ms = pass_ms.iter().copied().fold(0.0, f64::max);
        let report = serde_json::json!({
            "scene": scene_file, "frame": [view.width, view.height], "tile": [tx, ty, tw, th],
            "frames": params.frames.map(|f| [f.first, f.last]), "fps": params.frames.map(|f| f.fps),
            "spp": view.spp, "max_bounces": view.max_bounces, "seed": params.seed.unwrap_or(job.seed()),
            "device": adapter, "triangles": prepared.triangles, "bvh_nodes": prepared.data.nodes.len(),
            "load_ms": load_ms, "render_ms": render_s * 1e3, "samples": samples,
            "samples_per_s": samples_per_s, "passes": pass_ms.len(), "gpu_ms": gpu_ms,
            "max_pass_ms": max_pass_ms, "warmup_ms": warmup_ms, "pass_ms": pass_ms, "notes": prepared.notes,
            "denoised": params.denoise, "denoise_ms": denoise_ms,
        });
        job.write_output(
            "report.json",
            serde_json::to_string_pretty(&report)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        job.progress(1.0, "done");
        let what = if frames.len() > 1 {
            format!("{} frames of ", frames.len())
        } else {
            String::new()
        };
        Ok(Summary::new(format!(
            "{what}{tw}×{th} at {} spp of {scene_file} in {:.0} ms ({:.2} Msamples/s) on {adapter}",
            view.spp,
            render_s * 1e3,
            samples_per_s / 1e6
        ))
        .metric("samples_per_s", samples_per_s)
        .metric("msamples_per_s", samples_per_s / 1e6)
        .metric("render_ms", render_s * 1e3)
        .metric("gpu_ms", gpu_ms)
        .metric("passes", pass_ms.len() as f64)
        .metric("max_pass_ms", max_pass_ms))
    }
}

pictor_sdk::export_plugin!(Render);
