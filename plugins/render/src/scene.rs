//! glTF 2.0 → a flat scene: world-space triangles, materials, decoded
//! textures and the camera.
//!
//! Supported: `.gltf` (buffers and images as files beside it or `data:`
//! URIs) and `.glb`; triangle meshes (lists, strips, fans) with node
//! transforms; PBR metallic-roughness materials (base color factor and PNG
//! or JPEG texture with its sampler's wrap modes and nearest or bilinear
//! magnification and `KHR_texture_transform`, vertex colors, metallic and
//! roughness factors and texture, normal maps (with `TANGENT`s when the
//! mesh has them), emissive factor and texture with
//! `KHR_materials_emissive_strength`, the specular factor of
//! `KHR_materials_specular`, alpha mask and blend); every perspective camera (the first is the
//! default); `KHR_lights_punctual` point, spot and directional lights
//! (intensity in candela, or lux for directional lights; `range` ignored).
//! Node animations (translation, rotation, scale; step and linear
//! interpolation, cubic splines sampled linearly between their keys) are
//! evaluated at the time given to [`load_at`].
//! `KHR_materials_transmission`, `_ior` and `_volume` (glass).
//! Ignored, and listed in [`Scene::notes`]: occlusion textures, vertex
//! color alpha, minification filters (no
//! mipmaps), skins, morph targets and animations.
//! Refused with an error naming the problem: anything else that changes
//! the picture (points and lines, orthographic cameras, required
//! extensions other than the ones above).

use std::collections::BTreeSet;

use base64::Engine as _;
use pictor_sdk::JobError;

use crate::math::{self, M4, V3, v3};

/// Most triangles in one scene.
pub const MAX_TRIANGLES: usize = 4_000_000;
/// Most texels of all textures together (256 MiB as RGBA8).
pub const MAX_TEXELS: u64 = 64 << 20;

/// One world-space triangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triangle {
    /// Corners.
    pub p: [V3; 3],
    /// Shading normals at the corners (the face normal when the mesh has none).
    pub n: [V3; 3],
    /// Texture coordinates at the corners.
    pub uv: [[f32; 2]; 3],
    /// Index into [`Scene::materials`].
    pub material: u32,
    /// The mesh's tangent (`TANGENT`, world space, averaged over the
    /// corners) with its bitangent sign in w; all 0 where the mesh has
    /// none (the tracer then derives one from the texture coordinates).
    pub tangent: [f32; 4],
    /// Linear vertex colors (`COLOR_0`, RGB) at the corners; white where
    /// the mesh has none.
    pub color: [[f32; 3]; 3],
}

impl Triangle {
    /// A triangle with no tangent and white vertex colors.
    pub fn new(p: [V3; 3], n: [V3; 3], uv: [[f32; 2]; 3], material: u32) -> Triangle {
        Triangle {
            p,
            n,
            uv,
            material,
            tangent: [0.0; 4],
            color: [[1.0; 3]; 3],
        }
    }
}

/// A metallic-roughness material (see the crate docs for the model).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Material {
    /// Linear RGBA base color factor (alpha unused).
    pub base_color: [f32; 4],
    /// Emitted radiance (emissive factor × strength).
    pub emissive: [f32; 3],
    /// 0 = dielectric, 1 = metal.
    pub metallic: f32,
    /// Perceptual roughness in [0, 1].
    pub roughness: f32,
    /// Strength of the dielectric specular layer (`KHR_materials_specular`
    /// `specularFactor`; 1 by default, 0 leaves pure Lambert diffuse).
    pub specular: f32,
    /// Index into [`Scene::textures`] of the base color texture.
    pub base_color_texture: Option<u32>,
    /// How that texture is looked up.
    pub base_color_sampler: TextureSampling,
    /// Index into [`Scene::textures`] of the emissive texture (sRGB,
    /// multiplied by `emissive`).
    pub emissive_texture: Option<u32>,
    /// How that texture is looked up.
    pub emissive_sampler: TextureSampling,
    /// How base color alpha (factor × texture) hides the surface.
    pub alpha: AlphaMode,
    /// Index into [`Scene::textures`] of the metallic-roughness texture
    /// (linear; roughness × G, metallic × B).
    pub metallic_roughness_texture: Option<u32>,
    /// How that texture is looked up.
    pub metallic_roughness_sampler: TextureSampling,
    /// Index into [`Scene::textures`] of the tangent-space normal map.
    pub normal_texture: Option<u32>,
    /// How that texture is looked up.
    pub normal_sampler: TextureSampling,
    /// The normal map's `scale` (of its x and y).
    pub normal_scale: f32,
    /// Index into [`Scene::textures`] of the transmission texture
    /// (linear; its R scales the transmission factor).
    pub transmission_texture: Option<u32>,
    /// How that texture is looked up.
    pub transmission_sampler: TextureSampling,
    /// Share of the dielectric base that transmits light instead of
    /// scattering it diffusely (`KHR_materials_transmission`), in [0, 1].
    pub transmission: f32,
    /// Index of refraction (`KHR_materials_ior`; 1.5 by default): sets the
    /// dielectric Fresnel reflectance and, for a volume, the bending.
    pub ior: f32,
    /// The material bounds a refracting volume (`KHR_materials_volume`
    /// with a thickness above 0); `None` is thin-walled: light passes
    /// through without bending.
    pub volume: Option<Volume>,
}

/// The medium inside a closed transmissive surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Volume {
    /// Absorption coefficient per unit of distance (Beer–Lambert), from
    /// `attenuationColor` and `attenuationDistance`: −ln(color) / distance.
    pub absorption: [f32; 3],
}

impl Default for Material {
    /// glTF's default material: white, metallic 1, roughness 1, opaque.
    fn default() -> Self {
        Material {
            base_color: [1.0; 4],
            emissive: [0.0; 3],
            metallic: 1.0,
            roughness: 1.0,
            specular: 1.0,
            base_color_texture: None,
            base_color_sampler: TextureSampling::default(),
            emissive_texture: None,
            emissive_sampler: TextureSampling::default(),
            alpha: AlphaMode::Opaque,
            metallic_roughness_texture: None,
            metallic_roughness_sampler: TextureSampling::default(),
            normal_texture: None,
            normal_sampler: TextureSampling::default(),
            normal_scale: 1.0,
            transmission_texture: None,
            transmission_sampler: TextureSampling::default(),
            transmission: 0.0,
            ior: 1.5,
            volume: None,
        }
    }
}

/// glTF's alpha modes, as a path tracer honours them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum AlphaMode {
    /// Alpha is ignored.
    #[default]
    Opaque,
    /// The surface is there where alpha ≥ the cutoff, absent elsewhere.
    Mask(f32),
    /// The surface is there with probability alpha (stochastic
    /// transparency: converges to glTF's blend over many samples).
    Blend,
}

/// How a material looks up its texture: glTF's sampler (wrap modes, and
/// bilinear or nearest magnification) and `KHR_texture_transform`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextureSampling {
    /// `uv' = [m0 m1; m2 m3]·uv + offset`.
    pub matrix: [f32; 4],
    /// Added after the matrix.
    pub offset: [f32; 2],
    /// Wrap mode along u.
    pub wrap_u: Wrap,
    /// Wrap mode along v.
    pub wrap_v: Wrap,
    /// Bilinear filtering (glTF `LINEAR`, and the default); else nearest.
    pub bilinear: bool,
}

impl Default for TextureSampling {
    fn default() -> Self {
        TextureSampling {
            matrix: [1.0, 0.0, 0.0, 1.0],
            offset: [0.0; 2],
            wrap_u: Wrap::Repeat,
            wrap_v: Wrap::Repeat,
            bilinear: true,
        }
    }
}

/// A texture wrap mode (glTF sampler `wrapS` / `wrapT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// Tile.
    Repeat = 0,
    /// Stop at the edge texel.
    Clamp = 1,
    /// Tile, every other copy mirrored.
    Mirror = 2,
}

/// `KHR_texture_transform`'s rotation, scale and offset.
type UvTransform = (f32, [f32; 2], [f32; 2]);

/// The transform of a texture reference whose typed accessor the `gltf`
/// crate lacks (normal textures), read from its extension JSON.
fn uv_transform_json(value: Option<&serde_json::Value>) -> Option<UvTransform> {
    let v = value?;
    let pair = |key: &str, default: [f32; 2]| {
        v.get(key)
            .and_then(|a| a.as_array())
            .filter(|a| a.len() == 2)
            .map_or(default, |a| {
                [0, 1].map(|i| a[i].as_f64().map_or(default[i], |x| x as f32))
            })
    };
    let rotation = v.get("rotation").and_then(|r| r.as_f64()).unwrap_or(0.0) as f32;
    Some((
        rotation,
        pair("scale", [1.0, 1.0]),
        pair("offset", [0.0, 0.0]),
    ))
}

impl TextureSampling {
    /// The sampling of `info` (its texture's sampler and transform).
    fn of(info: &gltf::texture::Info<'_>) -> TextureSampling {
        let transform = info
            .texture_transform()
            .map(|t| (t.rotation(), t.scale(), t.offset()));
        TextureSampling::of_texture(&info.texture(), transform)
    }

    /// The sampling of `texture` under `transform`.
    fn of_texture(texture: &gltf::Texture<'_>, transform: Option<UvTransform>) -> TextureSampling {
        use gltf::texture::{MagFilter, WrappingMode};
        let sampler = texture.sampler();
        let wrap = |w: WrappingMode| match w {
            WrappingMode::Repeat => Wrap::Repeat,
            WrappingMode::ClampToEdge => Wrap::Clamp,
            WrappingMode::MirroredRepeat => Wrap::Mirror,
        };
        let mut out = TextureSampling {
            wrap_u: wrap(sampler.wrap_s()),
            wrap_v: wrap(sampler.wrap_t()),
            bilinear: sampler.mag_filter() != Some(MagFilter::Nearest),
            ..TextureSampling::default()
        };
        if let Some((rotation, scale, offset)) = transform {
            let finite = |v: f32| {
                if v.is_finite() {
                    v.clamp(-1e6, 1e6)
                } else {
                    0.0
                }
            };
            let (r, [sx, sy], [tx, ty]) = (finite(rotation), scale, offset);
            let (sx, sy) = (finite(sx), finite(sy));
            let (sin, cos) = r.sin_cos();
            // glTF: uv' = T · R · S · uv with R = [cos sin; −sin cos].
            out.matrix = [cos * sx, sin * sy, -sin * sx, cos * sy];
            out.offset = [finite(tx), finite(ty)];
        }
        out
    }
}

/// A decoded texture: RGBA8, sRGB-encoded as stored in the file, rows top
/// to bottom, packed `r | g << 8 | b << 16 | a << 24`.
#[derive(Debug, Clone, PartialEq)]
pub struct Texture {
    /// Width in texels.
    pub width: u32,
    /// Height in texels.
    pub height: u32,
    /// `width × height` packed texels.
    pub texels: Vec<u32>,
}

/// A pinhole camera in world space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Eye position.
    pub position: V3,
    /// Unit view direction.
    pub forward: V3,
    /// Unit right vector.
    pub right: V3,
    /// Unit up vector.
    pub up: V3,
    /// Vertical field of view in radians.
    pub yfov: f32,
}

impl Camera {
    /// A camera at `position` looking at `target`, `up` roughly up.
    pub fn look_at(position: V3, target: V3, up: V3, yfov: f32) -> Option<Camera> {
        let forward = (target - position).normalize();
        let right = forward.cross(up).normalize();
        let up = right.cross(forward);
        let ok = [forward, right, up]
            .iter()
            .all(|v| v.x.is_finite() && v.y.is_finite() && v.z.is_finite());
        (ok && yfov > 0.0 && yfov < std::f32::consts::PI).then_some(Camera {
            position,
            forward,
            right,
            up,
            yfov,
        })
    }

    /// A camera that frames the box `min`..`max` for a frame of `aspect`
    /// (width / height), as viewers do for a scene without a camera: a
    /// three-quarter view from the front (+Z, glTF's front), 30° to the
    /// right and 20° above, far enough that the box's bounding sphere fits
    /// the narrower field of view, `y` up.
    pub fn framing(min: V3, max: V3, yfov: f32, aspect: f32) -> Option<Camera> {
        let center = (min + max) * 0.5;
        let radius = ((max - min) * 0.5).length().max(1e-3);
        let (azimuth, elevation) = (30f32.to_radians(), 20f32.to_radians());
        let toward_camera = v3(
            azimuth.sin() * elevation.cos(),
            elevation.sin(),
            azimuth.cos() * elevation.cos(),
        );
        let half_y = yfov * 0.5;
        let half_x = (half_y.tan() * aspect).atan();
        let distance = radius / half_y.min(half_x).sin();
        let position = center + toward_camera * distance;
        Camera::look_at(position, center, v3(0.0, 1.0, 0.0), yfov)
    }
}

/// A perspective camera of the scene, with the names it can be picked by.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneCamera {
    /// The camera.
    pub camera: Camera,
    /// The name of the node that holds it, if any.
    pub node_name: Option<String>,
    /// The name of the glTF camera, if any.
    pub camera_name: Option<String>,
    /// Its `aspectRatio` (width / height), if the file gives one.
    pub aspect_ratio: Option<f32>,
}

impl SceneCamera {
    /// Whether `name` is its node's or its camera's name.
    pub fn is_named(&self, name: &str) -> bool {
        self.node_name.as_deref() == Some(name) || self.camera_name.as_deref() == Some(name)
    }
}

/// The shape of a punctual light (`KHR_lights_punctual`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LightKind {
    /// Emits equally in every direction from a point.
    Point,
    /// Emits in a cone around its axis, fading from the inner to the
    /// outer cone angle (cosines kept).
    Spot {
        /// Cosine of the inner cone angle (full intensity inside).
        cos_inner: f32,
        /// Cosine of the outer cone angle (dark outside).
        cos_outer: f32,
    },
    /// Parallel light from infinitely far away.
    Directional,
}

/// A punctual light in world space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PunctualLight {
    /// Its shape.
    pub kind: LightKind,
    /// Position (unused for directional lights).
    pub position: V3,
    /// Unit direction the light points along (its node's −Z).
    pub direction: V3,
    /// Color × intensity: candela for point and spot lights, lux for
    /// directional lights.
    pub intensity: [f32; 3],
}

/// Most punctual lights kept from one scene.
pub const MAX_PUNCTUAL_LIGHTS: usize = 65_536;

/// A loaded scene.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    /// All triangles, in world space.
    pub triangles: Vec<Triangle>,
    /// Materials; the last one is glTF's default material.
    pub materials: Vec<Material>,
    /// Base color and emissive textures.
    pub textures: Vec<Texture>,
    /// The scene's perspective cameras, in the order its nodes are visited
    /// (the first is the default).
    pub cameras: Vec<SceneCamera>,
    /// Its punctual lights.
    pub lights: Vec<PunctualLight>,
    /// Features present in the file that the renderer ignores.
    pub notes: Vec<String>,
    /// What rays leaving the scene see (glTF has no environment: the
    /// job's params give it; black by default).
    pub environment: crate::environment::Environment,
}

/// Most cameras kept from one scene (the rest are ignored).
const MAX_CAMERAS: usize = 1024;

impl Scene {
    /// The smallest box holding every triangle: `(min, max)`.
    pub fn bounds(&self) -> (V3, V3) {
        let mut min = V3::splat(f32::INFINITY);
        let mut max = V3::splat(f32::NEG_INFINITY);
        for corner in self.triangles.iter().flat_map(|t| t.p) {
            min = min.min(corner);
            max = max.max(corner);
        }
        (min, max)
    }
}

/// Reads a file of the job's input by its relative `/`-separated name.
pub type ReadInput<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, JobError>;

fn invalid(file: &str, what: impl std::fmt::Display) -> JobError {
    JobError::InvalidInput(format!("`{file}`: {what}"))
}

fn unsupported(file: &str, what: impl std::fmt::Display) -> JobError {
    JobError::Unsupported(format!("`{file}`: {what}"))
}

/// Highest index of refraction a material may have (diamond is 2.42).
const MAX_IOR: f32 = 5.0;

/// A material's transmission factor, index of refraction and volume
/// (`KHR_materials_transmission`, `_ior`, `_volume`), checked.
fn glass(
    material: &gltf::Material<'_>,
    name: &str,
    notes: &mut BTreeSet<String>,
) -> Result<(f32, f32, Option<Volume>), JobError> {
    let which = material
        .index()
        .map_or("the default material".to_string(), |i| {
            format!("material {i}")
        });
    let ior = material.ior().unwrap_or(1.5);
    if !(1.0..=MAX_IOR).contains(&ior) {
        return Err(unsupported(
            name,
            format_args!("{which}: KHR_materials_ior ior {ior} is outside 1–{MAX_IOR}"),
        ));
    }
    let Some(t) = material.transmission() else {
        return Ok((0.0, ior, None));
    };
    let transmission = t.transmission_factor();
    if !(0.0..=1.0).contains(&transmission) {
        return Err(invalid(
            name,
            format_args!("{which}: transmissionFactor {transmission} must be in 0–1"),
        ));
    }
    let Some(v) = material.volume().filter(|v| v.thickness_factor() > 0.0) else {
        return Ok((transmission, ior, None));
    };
    if ior < 1.001 {
        notes.insert(
            "a volume of ior 1 bends no light: it is rendered thin-walled, without absorption"
                .to_string(),
        );
        return Ok((transmission, ior, None));
    }
    let (color, distance) = (v.attenuation_color(), v.attenuation_distance());
    if distance.is_nan() || distance <= 0.0 || !color.iter().all(|c| (0.0..=1.0).contains(c)) {
        return Err(invalid(
            name,
            format_args!(
                "{which}: KHR_materials_volume attenuationColor {color:?} must be in 0–1 and attenuationDistance {distance} above 0"
            ),
        ));
    }
    // −ln(0) is infinite: a black attenuation color absorbs all but
    // what a hair's breadth of the medium lets through.
    let absorption = color.map(|c| (-(c.max(1e-30)).ln() / distance).min(1e30));
    Ok((transmission, ior, Some(Volume { absorption })))
}

/// Loads scene file `name` (`.gltf` or `.glb`), reading referenced files
/// through `read` relative to its folder, at animation time 0.
pub fn load(name: &str, read: ReadInput<'_>) -> Result<Scene, JobError> {
    load_at(name, read, 0.0)
}

/// Like [`load`], with node animations evaluated at `time` seconds.
pub fn load_at(name: &str, read: ReadInput<'_>, time: f32) -> Result<Scene, JobError> {
    let bytes = read(name)?;
    let gltf = gltf::Gltf::from_slice(&bytes)
        .map_err(|e| invalid(name, format_args!("not a valid glTF 2.0 file: {e}")))?;
    let folder = name
        .rsplit_once('/')
        .map(|(dir, _)| format!("{dir}/"))
        .unwrap_or_default();
    let resolve = |uri: &str, what: &str| -> Result<Vec<u8>, JobError> {
        if let Some(data) = uri.strip_prefix("data:") {
            let (_, payload) = data.split_once(";base64,").ok_or_else(|| {
                unsupported(
                    name,
                    format_args!("{what}: only base64 `data:` URIs are supported"),
                )
            })?;
            return base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|e| invalid(name, format_args!("{what}: bad base64 in data URI: {e}")));
        }
        if uri.contains("://") || uri.starts_with('/') {
            return Err(unsupported(
                name,
                format_args!("{what}: URI `{uri}` is not a file beside the scene"),
            ));
        }
        let file = format!("{folder}{}", percent_decode(uri));
        read(&file).map_err(|e| match e {
            JobError::InvalidInput(m) => invalid(name, format_args!("{what}: {m}")),
            other => other,
        })
    };

    let mut buffers = Vec::new();
    for buffer in gltf.buffers() {
        let what = format!("buffer {}", buffer.index());
        let data = match buffer.source() {
            gltf::buffer::Source::Bin => gltf.blob.clone().ok_or_else(|| {
                invalid(
                    name,
                    format_args!("{what} refers to the GLB binary chunk, which is missing"),
                )
            })?,
            gltf::buffer::Source::Uri(uri) => resolve(uri, &what)?,
        };
        if data.len() < buffer.length() {
            return Err(invalid(
                name,
                format_args!(
                    "{what} has {} bytes, the glTF says {}",
                    data.len(),
                    buffer.length()
                ),
            ));
        }
        buffers.push(data);
    }

    let mut notes = BTreeSet::new();
    let animated = animate(&gltf, &buffers, name, time, &mut notes)?;
    if gltf.skins().next().is_some() {
        notes.insert("skins are ignored".to_string());
    }

    // Materials, and the textures they use.
    let mut materials = Vec::new();
    let mut texture_of_image: Vec<Option<u32>> = vec![None; gltf.images().len()];
    let mut textures = Vec::new();
    let mut texels_total = 0u64;
    // Decodes each image once, however many materials use it.
    let mut load_texture = |texture: gltf::Texture<'_>| -> Result<u32, JobError> {
        let image = texture.source();
        if let Some(slot) = texture_of_image[image.index()] {
            return Ok(slot);
        }
        let what = format!("image {}", image.index());
        let encoded = match image.source() {
            gltf::image::Source::View { view, .. } => {
                let buffer = &buffers[view.buffer().index()];
                buffer
                    .get(view.offset()..view.offset() + view.length())
                    .ok_or_else(|| invalid(name, format_args!("{what}: buffer view out of range")))?
                    .to_vec()
            }
            gltf::image::Source::Uri { uri, .. } => resolve(uri, &what)?,
        };
        let texture = decode_image(&encoded).map_err(|e| match e {
            ImageError::Other(m) => invalid(name, format_args!("{what}: {m}")),
        })?;
        texels_total += u64::from(texture.width) * u64::from(texture.height);
        if texels_total > MAX_TEXELS {
            return Err(unsupported(
                name,
                format_args!("textures exceed {MAX_TEXELS} texels in all"),
            ));
        }
        let slot = textures.len() as u32;
        texture_of_image[image.index()] = Some(slot);
        textures.push(texture);
        Ok(slot)
    };
    for material in gltf.materials() {
        let pbr = material.pbr_metallic_roughness();
        let strength = material.emissive_strength().unwrap_or(1.0);
        let e = material.emissive_factor();
        let specular = material.specular().map_or(1.0, |s| {
            if s.specular_color_factor() != [1.0; 3] || s.specular_texture().is_some() || s.specular_color_texture().is_some() {
                notes.insert("specular color and specular textures are ignored (the specular factor is used)".to_string());
            }
            s.specular_factor().clamp(0.0, 1.0)
        });
        let emissive = [e[0] * strength, e[1] * strength, e[2] * strength];
        if !emissive
            .iter()
            .all(|c| c.is_finite() && (0.0..=1e9).contains(c))
        {
            return Err(invalid(
                name,
                format_args!(
                    "material {}: emissive factor {e:?} × strength {strength} must be finite, ≥ 0 and ≤ 1e9",
                    material
                        .index()
                        .map_or("default".to_string(), |i| i.to_string())
                ),
            ));
        }
        let mut base_color_texture = None;
        let mut base_color_sampler = TextureSampling::default();
        if let Some(info) = pbr.base_color_texture() {
            base_color_sampler = TextureSampling::of(&info);
            base_color_texture = Some(load_texture(info.texture())?);
        }
        let base_set = pbr.base_color_texture().map_or(0, |t| t.tex_coord());
        // Every texture reads the base color's texCoord set; one meant for
        // another set is said in the notes.
        let other_set = |set: u32, kind: &str, notes: &mut BTreeSet<String>| {
            if set != base_set {
                notes.insert(format!(
                    "{kind} texture on another texCoord set than the base color's reads the base color's set"
                ));
            }
        };
        let mut emissive_texture = None;
        let mut emissive_sampler = TextureSampling::default();
        if let Some(info) = material.emissive_texture() {
            emissive_sampler = TextureSampling::of(&info);
            emissive_texture = Some(load_texture(info.texture())?);
            other_set(info.tex_coord(), "an emissive", &mut notes);
        }
        let overrides = [
            pbr.base_color_texture(),
            material.emissive_texture(),
            pbr.metallic_roughness_texture(),
        ]
        .iter()
        .flatten()
        .any(|info| {
            info.texture_transform()
                .and_then(|t| t.tex_coord())
                .is_some()
        });
        if overrides {
            notes.insert(
                "KHR_texture_transform texCoord overrides are ignored (the texture's texCoord is used)"
                    .to_string(),
            );
        }
        if material.occlusion_texture().is_some() {
            // A path tracer computes occlusion itself.
            notes.insert("occlusion textures are ignored".to_string());
        }
        let mut metallic_roughness_texture = None;
        let mut metallic_roughness_sampler = TextureSampling::default();
        if let Some(info) = pbr.metallic_roughness_texture() {
            metallic_roughness_sampler = TextureSampling::of(&info);
            metallic_roughness_texture = Some(load_texture(info.texture())?);
            other_set(info.tex_coord(), "a metallic-roughness", &mut notes);
        }
        let mut transmission_texture = None;
        let mut transmission_sampler = TextureSampling::default();
        if let Some(info) = material
            .transmission()
            .and_then(|t| t.transmission_texture())
        {
            transmission_sampler = TextureSampling::of(&info);
            transmission_texture = Some(load_texture(info.texture())?);
            other_set(info.tex_coord(), "a transmission", &mut notes);
        }
        let mut normal_texture = None;
        let mut normal_sampler = TextureSampling::default();
        let mut normal_scale = 1.0;
        if let Some(normal) = material.normal_texture() {
            let transform = uv_transform_json(normal.extension_value("KHR_texture_transform"));
            normal_sampler = TextureSampling::of_texture(&normal.texture(), transform);
            normal_texture = Some(load_texture(normal.texture())?);
            normal_scale = if normal.scale().is_finite() {
                normal.scale().clamp(-100.0, 100.0)
            } else {
                1.0
            };
            other_set(normal.tex_coord(), "a normal", &mut notes);
        }
        let (transmission, ior, volume) = glass(&material, name, &mut notes)?;
        materials.push(Material {
            transmission,
            ior,
            volume,
            metallic_roughness_texture,
            metallic_roughness_sampler,
            normal_texture,
            normal_sampler,
            normal_scale,
            transmission_texture,
            transmission_sampler,
            base_color: pbr.base_color_factor(),
            emissive,
            metallic: pbr.metallic_factor().clamp(0.0, 1.0),
            roughness: pbr.roughness_factor().clamp(0.0, 1.0),
            specular,
            base_color_texture,
            base_color_sampler,
            emissive_texture,
            emissive_sampler,
            alpha: match material.alpha_mode() {
                gltf::material::AlphaMode::Opaque => AlphaMode::Opaque,
                gltf::material::AlphaMode::Mask => {
                    let cutoff = material.alpha_cutoff().unwrap_or(0.5);
                    if !(cutoff.is_finite() && cutoff >= 0.0) {
                        return Err(invalid(
                            name,
                            format_args!("material alphaCutoff {cutoff} must be finite and ≥ 0"),
                        ));
                    }
                    // A cutoff of 0 keeps every texel: opaque.
                    if cutoff > 0.0 {
                        AlphaMode::Mask(cutoff)
                    } else {
                        AlphaMode::Opaque
                    }
                }
                gltf::material::AlphaMode::Blend => AlphaMode::Blend,
            },
        });
    }
    let default_material = materials.len() as u32;
    materials.push(Material::default());

    let scene = gltf
        .default_scene()
        .or_else(|| gltf.scenes().next())
        .ok_or_else(|| invalid(name, "the file has no scene"))?;
    let mut out = Scene {
        materials,
        textures,
        ..Scene::default()
    };
    let mut walker = Walker {
        file: name,
        buffers: &buffers,
        default_material,
        animated: &animated,
        notes: &mut notes,
        out: &mut out,
    };
    for node in scene.nodes() {
        walker.node(&node, &math::IDENTITY, 0)?;
    }
    if out.triangles.is_empty() {
        return Err(invalid(name, "the scene has no triangles"));
    }
    out.notes = notes.into_iter().collect();
    Ok(out)
}

struct Walker<'a> {
    file: &'a str,
    buffers: &'a [Vec<u8>],
    default_material: u32,
    animated: &'a [Trs],
    notes: &'a mut BTreeSet<String>,
    out: &'a mut Scene,
}

impl Walker<'_> {
    fn node(&mut self, node: &gltf::Node<'_>, parent: &M4, depth: u32) -> Result<(), JobError> {
        if depth > 64 {
            return Err(invalid(self.file, "node hierarchy deeper than 64 levels"));
        }
        let local = match self.animated.get(node.index()) {
            Some(a) if a.0.is_some() || a.1.is_some() || a.2.is_some() => {
                let (t, r, s) = node.transform().decomposed();
                math::trs_matrix(a.0.unwrap_or(t), a.1.unwrap_or(r), a.2.unwrap_or(s))
            }
            _ => node.transform().matrix(),
        };
        let world = math::mul_m4(parent, &local);
        if node.skin().is_some() || node.weights().is_some() {
            self.notes
                .insert("skins and morph weights are ignored".to_string());
        }
        if let Some(camera) = node.camera()
            && self.out.cameras.len() < MAX_CAMERAS
        {
            match camera.projection() {
                gltf::camera::Projection::Perspective(p) => {
                    let position = math::transform_point(&world, v3(0.0, 0.0, 0.0));
                    let forward = math::transform_dir(&world, v3(0.0, 0.0, -1.0)).normalize();
                    let up = math::transform_dir(&world, v3(0.0, 1.0, 0.0));
                    let Some(looking) = Camera::look_at(position, position + forward, up, p.yfov())
                    else {
                        return Err(invalid(
                            self.file,
                            format_args!(
                                "camera {} has a degenerate transform or yfov",
                                camera.index()
                            ),
                        ));
                    };
                    let aspect_ratio = p.aspect_ratio();
                    if let Some(a) = aspect_ratio
                        && !(a.is_finite() && (1e-3..=1e3).contains(&a))
                    {
                        return Err(invalid(
                            self.file,
                            format_args!(
                                "camera {} has aspectRatio {a}; it must be in 0.001..=1000",
                                camera.index()
                            ),
                        ));
                    }
                    self.out.cameras.push(SceneCamera {
                        camera: looking,
                        aspect_ratio,
                        node_name: node.name().map(str::to_string),
                        camera_name: camera.name().map(str::to_string),
                    });
                }
                gltf::camera::Projection::Orthographic(_) => {
                    return Err(unsupported(
                        self.file,
                        format_args!("camera {} is orthographic", camera.index()),
                    ));
                }
            }
        }
        if let Some(light) = node.light() {
            self.light(&light, &world)?;
        }
        if let Some(mesh) = node.mesh() {
            self.mesh(&mesh, &world)?;
        }
        for child in node.children() {
            self.node(&child, &world, depth + 1)?;
        }
        Ok(())
    }

    fn light(
        &mut self,
        light: &gltf::khr_lights_punctual::Light<'_>,
        world: &M4,
    ) -> Result<(), JobError> {
        let what = format!("light {}", light.index());
        if self.out.lights.len() >= MAX_PUNCTUAL_LIGHTS {
            return Err(unsupported(
                self.file,
                format_args!("{what}: more than {MAX_PUNCTUAL_LIGHTS} punctual lights"),
            ));
        }
        let (color, intensity) = (light.color(), light.intensity());
        let color_ok = color
            .iter()
            .all(|c| c.is_finite() && (0.0..=1e6).contains(c));
        if !(color_ok && intensity.is_finite() && (0.0..=1e12).contains(&intensity)) {
            return Err(invalid(
                self.file,
                format_args!(
                    "{what}: color {color:?} and intensity {intensity} must be finite and ≥ 0"
                ),
            ));
        }
        use gltf::khr_lights_punctual::Kind;
        let kind = match light.kind() {
            Kind::Point => LightKind::Point,
            Kind::Directional => LightKind::Directional,
            Kind::Spot {
                inner_cone_angle,
                outer_cone_angle,
            } => {
                let half_pi = std::f32::consts::FRAC_PI_2;
                if !(0.0 <= inner_cone_angle
                    && inner_cone_angle < outer_cone_angle
                    && outer_cone_angle <= half_pi)
                {
                    return Err(invalid(
                        self.file,
                        format_args!(
                            "{what}: spot cone angles must have 0 ≤ inner ({inner_cone_angle}) < outer ({outer_cone_angle}) ≤ π/2"
                        ),
                    ));
                }
                LightKind::Spot {
                    cos_inner: inner_cone_angle.cos(),
                    cos_outer: outer_cone_angle.cos(),
                }
            }
        };
        if light.range().is_some() {
            self.notes.insert(
                "light ranges are ignored (light falls off with the inverse square of distance everywhere)"
                    .to_string(),
            );
        }
        let direction = math::transform_dir(world, v3(0.0, 0.0, -1.0)).normalize();
        let position = math::transform_point(world, v3(0.0, 0.0, 0.0));
        let finite = |v: V3| v.x.is_finite() && v.y.is_finite() && v.z.is_finite();
        if !finite(direction) || !finite(position) {
            // A singular transform: the light has no direction to shine in.
            self.notes
                .insert("lights under a degenerate node transform are ignored".to_string());
            return Ok(());
        }
        self.out.lights.push(PunctualLight {
            kind,
            position,
            direction,
            intensity: color.map(|c| c * intensity),
        });
        Ok(())
    }

    fn mesh(&mut self, mesh: &gltf::Mesh<'_>, world: &M4) -> Result<(), JobError> {
        let file = self.file;
        let normal_m = math::normal_matrix(world);
        for primitive in mesh.primitives() {
            let what = format!("mesh {} primitive {}", mesh.index(), primitive.index());
            use gltf::mesh::Mode;
            let mode = primitive.mode();
            if !matches!(
                mode,
                Mode::Triangles | Mode::TriangleStrip | Mode::TriangleFan
            ) {
                return Err(unsupported(
                    file,
                    format_args!("{what} draws {mode:?}; only triangles are supported"),
                ));
            }
            if primitive.morph_targets().next().is_some() {
                self.notes.insert("morph targets are ignored".to_string());
            }
            let Some(normal_m) = normal_m else {
                // A singular transform flattens the mesh to nothing visible.
                continue;
            };
            let buffers = self.buffers;
            let reader = primitive.reader(|b| buffers.get(b.index()).map(Vec::as_slice));
            for (semantic, accessor) in primitive.attributes() {
                if accessor.count() == 0 {
                    return Err(invalid(
                        file,
                        format_args!("{what}: attribute {semantic:?} has no elements"),
                    ));
                }
                if let Some(sparse) = accessor.sparse()
                    && sparse.count() == 0
                {
                    return Err(invalid(
                        file,
                        format_args!("{what}: sparse attribute {semantic:?} has no elements"),
                    ));
                }
            }
            let uv_set = primitive
                .material()
                .pbr_metallic_roughness()
                .base_color_texture()
                .map_or(0, |t| t.tex_coord());
            use gltf::accessor::{DataType as T, Dimensions as D};
            let check = |accessor: Option<gltf::Accessor<'_>>,
                         name: &str,
                         dims: D,
                         types: &[T]|
             -> Result<(), JobError> {
                let Some(a) = accessor else { return Ok(()) };
                if a.dimensions() != dims || !types.contains(&a.data_type()) {
                    return Err(invalid(
                        file,
                        format_args!(
                            "{what}: {name} (accessor {}) is {:?} of {:?}, expected {dims:?} of {types:?}",
                            a.index(),
                            a.dimensions(),
                            a.data_type()
                        ),
                    ));
                }
                if let Some(stride) = a.view().and_then(|v| v.stride())
                    && stride < a.size()
                {
                    return Err(invalid(
                        file,
                        format_args!(
                            "{what}: {name} (accessor {}) has a byte stride shorter than its elements",
                            a.index()
                        ),
                    ));
                }
                Ok(())
            };
            check(
                primitive.get(&gltf::Semantic::Positions),
                "POSITION",
                D::Vec3,
                &[T::F32],
            )?;
            check(
                primitive.get(&gltf::Semantic::Normals),
                "NORMAL",
                D::Vec3,
                &[T::F32],
            )?;
            check(
                primitive.get(&gltf::Semantic::TexCoords(uv_set)),
                "TEXCOORD",
                D::Vec2,
                &[T::F32, T::U8, T::U16],
            )?;
            check(
                primitive.get(&gltf::Semantic::Tangents),
                "TANGENT",
                D::Vec4,
                &[T::F32],
            )?;
            if let Some(colors) = primitive.get(&gltf::Semantic::Colors(0))
                && !matches!(colors.dimensions(), D::Vec3 | D::Vec4)
            {
                return Err(invalid(
                    file,
                    format_args!(
                        "{what}: COLOR_0 (accessor {}) is {:?}, expected Vec3 or Vec4",
                        colors.index(),
                        colors.dimensions()
                    ),
                ));
            }
            check(
                primitive.indices(),
                "indices",
                D::Scalar,
                &[T::U8, T::U16, T::U32],
            )?;
            let positions: Vec<V3> = reader
                .read_positions()
                .ok_or_else(|| invalid(file, format_args!("{what} has no readable POSITION data")))?
                .map(|p| math::transform_point(world, V3::from_array(p)))
                .collect();
            let normals: Option<Vec<V3>> = reader.read_normals().map(|it| {
                it.map(|n| math::transform_normal(&normal_m, V3::from_array(n)))
                    .collect()
            });
            let material_index = primitive
                .material()
                .index()
                .map_or(self.default_material, |i| i as u32);
            let uvs: Option<Vec<[f32; 2]>> = reader
                .read_tex_coords(uv_set)
                .map(|t| t.into_f32().collect());
            // A mirroring transform flips the bitangent with the winding.
            let m = world;
            let det = m[0][0] * (m[1][1] * m[2][2] - m[2][1] * m[1][2])
                - m[1][0] * (m[0][1] * m[2][2] - m[2][1] * m[0][2])
                + m[2][0] * (m[0][1] * m[1][2] - m[1][1] * m[0][2]);
            let mirror = if det < 0.0 { -1.0 } else { 1.0 };
            let tangents: Option<Vec<[f32; 4]>> = reader.read_tangents().map(|it| {
                it.map(|t| {
                    let d = math::transform_dir(world, v3(t[0], t[1], t[2]));
                    [d.x, d.y, d.z, mirror * if t[3] < 0.0 { -1.0 } else { 1.0 }]
                })
                .collect()
            });
            let colors: Option<Vec<[f32; 3]>> =
                reader.read_colors(0).map(|c| c.into_rgb_f32().collect());
            if primitive
                .get(&gltf::Semantic::Colors(0))
                .is_some_and(|c| c.dimensions() == gltf::accessor::Dimensions::Vec4)
            {
                self.notes
                    .insert("vertex color alpha is ignored".to_string());
            }
            let indices: Vec<u32> = match primitive.indices() {
                Some(accessor) => {
                    if accessor.count() == 0 {
                        continue;
                    }
                    reader
                        .read_indices()
                        .ok_or_else(|| {
                            invalid(file, format_args!("{what}: indices out of their buffer"))
                        })?
                        .into_u32()
                        .collect()
                }
                None => (0..positions.len() as u32).collect(),
            };
            let corners: Vec<[u32; 3]> = match mode {
                Mode::Triangles => indices
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect(),
                Mode::TriangleStrip => indices
                    .windows(3)
                    .enumerate()
                    .map(|(i, w)| {
                        if i % 2 == 0 {
                            [w[0], w[1], w[2]]
                        } else {
                            [w[1], w[0], w[2]]
                        }
                    })
                    .collect(),
                _ => indices
                    .iter()
                    .skip(1)
                    .zip(indices.iter().skip(2))
                    .map(|(&b, &c)| [indices[0], b, c])
                    .collect(),
            };
            for tri in corners {
                let get = |i: u32| {
                    positions.get(i as usize).copied().ok_or_else(|| {
                        invalid(
                            file,
                            format_args!(
                                "{what}: index {i} is past the {} vertices",
                                positions.len()
                            ),
                        )
                    })
                };
                let p = [get(tri[0])?, get(tri[1])?, get(tri[2])?];
                if p.iter()
                    .any(|q| !(q.x.is_finite() && q.y.is_finite() && q.z.is_finite()))
                {
                    return Err(invalid(
                        file,
                        format_args!("{what}: a vertex position is not finite"),
                    ));
                }
                let face = (p[1] - p[0]).cross(p[2] - p[0]);
                if face.length().partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                    continue; // degenerate: never hit
                }
                let face = face.normalize();
                let n = tri.map(|i| {
                    let n = normals
                        .as_ref()
                        .and_then(|ns| ns.get(i as usize))
                        .copied()
                        .unwrap_or(face);
                    let len = n.length();
                    if len > 1e-12 && len.is_finite() {
                        n * (1.0 / len)
                    } else {
                        face
                    }
                });
                let uv = tri.map(|i| {
                    let t = uvs
                        .as_ref()
                        .and_then(|t| t.get(i as usize))
                        .copied()
                        .unwrap_or([0.0, 0.0]);
                    if t[0].is_finite() && t[1].is_finite() {
                        t
                    } else {
                        [0.0, 0.0]
                    }
                });
                if self.out.triangles.len() >= MAX_TRIANGLES {
                    return Err(unsupported(
                        file,
                        format_args!("the scene has more than {MAX_TRIANGLES} triangles"),
                    ));
                }
                let tangent = tangents.as_ref().map_or([0.0; 4], |ts| {
                    let mut sum = V3::splat(0.0);
                    for &i in &tri {
                        if let Some(t) = ts.get(i as usize) {
                            sum = sum + v3(t[0], t[1], t[2]);
                        }
                    }
                    let w = ts.get(tri[0] as usize).map_or(1.0, |t| t[3]);
                    let len = sum.length();
                    if len > 1e-12 && len.is_finite() {
                        let t = sum * (1.0 / len);
                        [t.x, t.y, t.z, w]
                    } else {
                        [0.0; 4]
                    }
                });
                let color = tri.map(|i| {
                    colors
                        .as_ref()
                        .and_then(|c| c.get(i as usize))
                        .map_or([1.0; 3], |c| {
                            c.map(|x| {
                                if x.is_finite() {
                                    x.clamp(0.0, 1.0)
                                } else {
                                    1.0
                                }
                            })
                        })
                });
                self.out.triangles.push(Triangle {
                    p,
                    n,
                    uv,
                    material: material_index,
                    tangent,
                    color,
                });
            }
        }
        Ok(())
    }
}

/// Animated translation, rotation and scale of a node (`None`: as in the node).
type Trs = (Option<[f32; 3]>, Option<[f32; 4]>, Option<[f32; 3]>);

/// The animated parts of every node's transform at `time`.
fn animate(
    gltf: &gltf::Gltf,
    buffers: &[Vec<u8>],
    file: &str,
    time: f32,
    notes: &mut BTreeSet<String>,
) -> Result<Vec<Trs>, JobError> {
    use gltf::accessor::{DataType as T, Dimensions as D};
    use gltf::animation::util::ReadOutputs;
    use gltf::animation::{Interpolation, Property};
    let mut out: Vec<Trs> = vec![(None, None, None); gltf.nodes().len()];
    for animation in gltf.animations() {
        for channel in animation.channels() {
            let what = format!(
                "animation {} channel {}",
                animation.index(),
                channel.index()
            );
            let sampler = channel.sampler();
            let property = channel.target().property();
            if property == Property::MorphTargetWeights {
                notes.insert("morph target weight animations are ignored".to_string());
                continue;
            }
            let (input, output) = (sampler.input(), sampler.output());
            let expected_output = match property {
                Property::Rotation => (D::Vec4, &[T::F32, T::I8, T::U8, T::I16, T::U16][..]),
                _ => (D::Vec3, &[T::F32][..]),
            };
            let stride_ok = |a: &gltf::Accessor<'_>| {
                a.view()
                    .and_then(|v| v.stride())
                    .is_none_or(|s| s >= a.size())
            };
            let ok = input.dimensions() == D::Scalar
                && input.data_type() == T::F32
                && output.dimensions() == expected_output.0
                && expected_output.1.contains(&output.data_type())
                && input.count() > 0
                && output.count() > 0
                && input.sparse().is_none()
                && output.sparse().is_none()
                && stride_ok(&input)
                && stride_ok(&output);
            if !ok {
                return Err(invalid(
                    file,
                    format_args!(
                        "{what}: input or output accessor has the wrong type, count or stride"
                    ),
                ));
            }
            let reader = channel.reader(|b| buffers.get(b.index()).map(Vec::as_slice));
            let times: Vec<f32> = reader
                .read_inputs()
                .ok_or_else(|| {
                    invalid(file, format_args!("{what}: key times out of their buffer"))
                })?
                .collect();
            let cubic = sampler.interpolation() == Interpolation::CubicSpline;
            if cubic {
                notes.insert(
                    "cubic-spline animations are sampled linearly between their keys".to_string(),
                );
            }
            let per_key = if cubic { 3 } else { 1 };
            let step = sampler.interpolation() == Interpolation::Step;
            let outputs = reader.read_outputs().ok_or_else(|| {
                invalid(file, format_args!("{what}: key values out of their buffer"))
            })?;
            let check = |n: usize| {
                if n != times.len() * per_key
                    || times.is_empty()
                    || times.iter().any(|t| !t.is_finite())
                {
                    Err(invalid(
                        file,
                        format_args!("{what}: {} key times for {n} values", times.len()),
                    ))
                } else {
                    Ok(())
                }
            };
            let slot = &mut out[channel.target().node().index()];
            match outputs {
                ReadOutputs::Translations(v) => {
                    let v: Vec<[f32; 3]> = v.collect();
                    check(v.len())?;
                    slot.0 = Some(sample(&times, &v, per_key, step, time, false));
                }
                ReadOutputs::Scales(v) => {
                    let v: Vec<[f32; 3]> = v.collect();
                    check(v.len())?;
                    slot.2 = Some(sample(&times, &v, per_key, step, time, false));
                }
                ReadOutputs::Rotations(v) => {
                    let v: Vec<[f32; 4]> = v.into_f32().collect();
                    check(v.len())?;
                    slot.1 = Some(sample(&times, &v, per_key, step, time, true));
                }
                ReadOutputs::MorphTargetWeights(_) => {}
            }
        }
    }
    Ok(out)
}

/// A keyframed value at `time`: clamped outside the keys, step or linear
/// between them (normalized linear for quaternions, shortest arc).
/// `per_key` is 3 for cubic splines (in-tangent, value, out-tangent).
fn sample<const N: usize>(
    times: &[f32],
    values: &[[f32; N]],
    per_key: usize,
    step: bool,
    time: f32,
    quaternion: bool,
) -> [f32; N] {
    let value = |i: usize| values[i * per_key + per_key / 2];
    let last = times.len() - 1;
    if time <= times[0] {
        return value(0);
    }
    if time >= times[last] {
        return value(last);
    }
    let i = times
        .partition_point(|&t| t <= time)
        .saturating_sub(1)
        .min(last.saturating_sub(1));
    let (a, mut b) = (value(i), value(i + 1));
    let span = times[i + 1] - times[i];
    let u = if step || span.is_nan() || span <= 0.0 {
        0.0
    } else {
        ((time - times[i]) / span).clamp(0.0, 1.0)
    };
    if quaternion && (0..N).map(|k| a[k] * b[k]).sum::<f32>() < 0.0 {
        b = b.map(|c| -c);
    }
    let mut r = [0.0; N];
    for k in 0..N {
        r[k] = a[k] + (b[k] - a[k]) * u;
    }
    if quaternion {
        let len = r.iter().map(|c| c * c).sum::<f32>().sqrt();
        if len > 0.0 {
            r = r.map(|c| c / len);
        }
    }
    r
}

/// Decodes `%XX` escapes of a relative URI.
fn percent_decode(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why an image did not decode.
#[derive(Debug)]
pub enum ImageError {
    /// What is wrong with it, described.
    Other(String),
}

/// Decodes a texture image: JPEG (by its signature) or PNG.
pub fn decode_image(bytes: &[u8]) -> Result<Texture, ImageError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes)
    } else {
        decode_png(bytes)
    }
}

/// Decodes a baseline or progressive JPEG (grayscale, YCbCr, CMYK) to
/// RGBA8; its size is checked against [`MAX_TEXELS`] from the header,
/// before any pixel is decoded.
pub fn decode_jpeg(bytes: &[u8]) -> Result<Texture, ImageError> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGBA)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| ImageError::Other(format!("not a JPEG image: {e}")))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| ImageError::Other("JPEG without a size".into()))?;
    let texels_in = width as u64 * height as u64;
    if texels_in == 0 || texels_in > MAX_TEXELS {
        return Err(ImageError::Other(format!(
            "{width}×{height} texels is empty or too large"
        )));
    }
    let data = decoder
        .decode()
        .map_err(|e| ImageError::Other(format!("corrupt JPEG: {e}")))?;
    if data.len() as u64 != texels_in * 4 {
        return Err(ImageError::Other(
            "JPEG data is shorter than its size".into(),
        ));
    }
    let texels = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 255]))
        .collect();
    Ok(Texture {
        width: width as u32,
        height: height as u32,
        texels,
    })
}

/// Decodes a PNG of any color type and depth to RGBA8.
pub fn decode_png(bytes: &[u8]) -> Result<Texture, ImageError> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Other(format!("not a PNG image: {e}")))?;
    let (width, height) = (reader.info().width, reader.info().height);
    if u64::from(width) * u64::from(height) > MAX_TEXELS {
        return Err(ImageError::Other(format!(
            "{width}×{height} texels is too large"
        )));
    }
    let mut data = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut data)
        .map_err(|e| ImageError::Other(format!("corrupt PNG: {e}")))?;
    let data = &data[..frame.buffer_size()];
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ImageError::Other("indexed PNG was not expanded".into()));
        }
    };
    let texels = data
        .chunks_exact(channels)
        .map(|c| {
            let [r, g, b, a] = match *c {
                [l] => [l, l, l, 255],
                [l, a] => [l, l, l, a],
                [r, g, b] => [r, g, b, 255],
                [r, g, b, a, ..] => [r, g, b, a],
                _ => [0, 0, 0, 255],
            };
            u32::from_le_bytes([r, g, b, a])
        })
        .collect::<Vec<_>>();
    if texels.len() as u64 != u64::from(width) * u64::from(height) {
        return Err(ImageError::Other(
            "PNG data is shorter than its size".into(),
        ));
    }
    Ok(Texture {
        width,
        height,
        texels,
    })
}

/// Reads inputs from a folder on the build machine (tests, the fixture
/// generator), refusing names that leave it.
#[cfg(not(target_arch = "wasm32"))]
pub fn dir_reader(dir: &std::path::Path) -> impl Fn(&str) -> Result<Vec<u8>, JobError> + '_ {
    move |name: &str| {
        if name.split('/').any(|part| part == "..") || name.starts_with('/') {
            return Err(JobError::InvalidInput(format!(
                "`{name}` must be a relative path without `..`"
            )));
        }
        std::fs::read(dir.join(name))
            .map_err(|e| JobError::InvalidInput(format!("input `{name}` not found: {e}")))
    }
}
