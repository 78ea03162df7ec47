//! The flattened scene exactly as uploaded to the GPU, and the per-pass
//! parameters. The CPU tracer reads the same arrays, so both tracers see
//! identical data. Struct layouts match `render.wgsl`.

use bytemuck::{Pod, Zeroable};

use crate::bvh::{self, Node};
use crate::math::V3;
use crate::scene::{AlphaMode, Camera, LightKind, Scene};

/// Marks "no texture" in [`GpuMaterial::params`].
pub const NO_TEXTURE: u32 = u32::MAX;

/// A triangle (144 bytes): corners in `p*.xyz` (`p0.w` holds the material
/// index bits, `p1.w` is 1 where the material's alpha can hide it),
/// normals in `n*.xyz` with u in `n*.w`, v in `uv_v.xyz`, in `uv_v.w` the
/// probability that light sampling picks it (0 for a triangle that emits
/// nothing), its tangent, and its corners' vertex colors.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GpuTri {
    /// Corner 0; w = material index (`f32::from_bits`).
    pub p0: [f32; 4],
    /// Corner 1.
    pub p1: [f32; 4],
    /// Corner 2.
    pub p2: [f32; 4],
    /// Normal 0; w = u0.
    pub n0: [f32; 4],
    /// Normal 1; w = u1.
    pub n1: [f32; 4],
    /// Normal 2; w = u2.
    pub n2: [f32; 4],
    /// v0, v1, v2, light pick probability.
    pub uv_v: [f32; 4],
    /// Unit tangent (along increasing u) in xyz, bitangent sign in w.
    pub tangent: [f32; 4],
    /// Vertex colors of corners 0–2 as bits of [`pack_color`]; w = 1
    /// where any is not white.
    pub color: [f32; 4],
}

/// Linear RGB in [0, 1] as 10 bits per channel (red lowest).
pub fn pack_color(c: [f32; 3]) -> u32 {
    let q = |x: f32| (x.clamp(0.0, 1.0) * 1023.0).round() as u32;
    q(c[0]) | q(c[1]) << 10 | q(c[2]) << 20
}

/// The color [`pack_color`] packed.
pub fn unpack_color(bits: u32) -> [f32; 3] {
    [0, 10, 20].map(|s| ((bits >> s) & 1023) as f32 * (1.0 / 1023.0))
}

/// A unit tangent and bitangent sign for `t`: its own, or the direction
/// of increasing u from its texture coordinates (with the sign that makes
/// the bitangent point up the image, −v), or any perpendicular of the face.
fn tangent_of(t: &crate::scene::Triangle) -> [f32; 4] {
    let given = V3::from_array([t.tangent[0], t.tangent[1], t.tangent[2]]);
    if given.length() > 0.5 {
        return t.tangent;
    }
    let (e1, e2) = (t.p[1] - t.p[0], t.p[2] - t.p[0]);
    let face = e1.cross(e2).normalize();
    let (du1, dv1) = (t.uv[1][0] - t.uv[0][0], t.uv[1][1] - t.uv[0][1]);
    let (du2, dv2) = (t.uv[2][0] - t.uv[0][0], t.uv[2][1] - t.uv[0][1]);
    let det = du1 * dv2 - du2 * dv1;
    if det.abs() > 1e-12 && det.is_finite() {
        let r = 1.0 / det;
        let dpdu = (e1 * dv2 - e2 * dv1) * r;
        let dpdv = (e2 * du1 - e1 * du2) * r;
        let tangent = dpdu - face * face.dot(dpdu);
        if tangent.length() > 1e-20 && tangent.length().is_finite() {
            let tangent = tangent.normalize();
            let w = if face.cross(tangent).dot(-dpdv) < 0.0 {
                -1.0
            } else {
                1.0
            };
            return [tangent.x, tangent.y, tangent.z, w];
        }
    }
    let any = if face.x.abs() < 0.9 {
        crate::math::v3(1.0, 0.0, 0.0)
    } else {
        crate::math::v3(0.0, 1.0, 0.0)
    };
    let tangent = (any - face * face.dot(any)).normalize();
    [tangent.x, tangent.y, tangent.z, 1.0]
}

impl GpuTri {
    /// The corners.
    pub fn corners(&self) -> [V3; 3] {
        let c = |a: [f32; 4]| crate::math::v3(a[0], a[1], a[2]);
        [c(self.p0), c(self.p1), c(self.p2)]
    }
    /// The material index.
    pub fn material(&self) -> u32 {
        self.p0[3].to_bits()
    }
}

/// [`GpuLight`] kind: an emissive triangle.
pub const LIGHT_TRIANGLE: u32 = 0;
/// [`GpuLight`] kind: a point light.
pub const LIGHT_POINT: u32 = 1;
/// [`GpuLight`] kind: a spot light.
pub const LIGHT_SPOT: u32 = 2;
/// [`GpuLight`] kind: a directional light.
pub const LIGHT_DIRECTIONAL: u32 = 3;
/// [`GpuLight`] kind: the environment.
pub const LIGHT_ENVIRONMENT: u32 = 4;

/// One entry of the light list (64 bytes): an emissive triangle or a
/// punctual light, with its slot of the alias table that picks lights in
/// proportion to their estimated power.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GpuLight {
    /// Point and spot: position; directional: unit direction toward the
    /// light. w = kind bits (`LIGHT_*`).
    pub position: [f32; 4],
    /// Color × intensity (candela; lux for directional); unused (0) for an
    /// emissive triangle, whose material gives its emission. w = triangle
    /// index bits for an emissive triangle.
    pub intensity: [f32; 4],
    /// Spot: unit axis it shines along; w = cone scale
    /// 1 / max(cos inner − cos outer, 0.001).
    pub spot: [f32; 4],
    /// x: probability of keeping this slot in the alias table; y: the
    /// alias slot's index bits; z: spot cone offset −cos outer × scale;
    /// w: the probability of picking this light.
    pub table: [f32; 4],
}

/// Bits of [`GpuMaterial::uv_offset`]`[2]`: wrap mode along u (0 repeat,
/// 1 clamp, 2 mirror) in bits 0–1, along v in bits 2–3, bilinear in bit 4.
pub const SAMPLER_BILINEAR: u32 = 1 << 4;

/// A material (240 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GpuMaterial {
    /// Linear base color factor.
    pub base_color: [f32; 4],
    /// Emitted radiance in xyz (× the emissive texture); w = emissive
    /// texture index bits ([`NO_TEXTURE`]).
    pub emissive: [f32; 4],
    /// metallic, roughness, texture index bits ([`NO_TEXTURE`]), specular factor.
    pub params: [f32; 4],
    /// The texture transform's 2×2 matrix, row-major.
    pub uv_matrix: [f32; 4],
    /// Its offset in xy; z = sampler bits ([`SAMPLER_BILINEAR`], wrap
    /// modes); w = alpha: 0 opaque, > 0 mask cutoff, −1 blend.
    pub uv_offset: [f32; 4],
    /// The emissive texture's transform matrix, as `uv_matrix`.
    pub emit_uv_matrix: [f32; 4],
    /// The emissive texture's offset and sampler bits, as `uv_offset`.
    pub emit_uv_offset: [f32; 4],
    /// Transmission factor, dielectric reflectance at normal incidence
    /// F0 = ((ior − 1) / (ior + 1))², ior, and 1 for a refracting volume
    /// (0 thin-walled).
    pub glass: [f32; 4],
    /// The volume's absorption coefficients in xyz; w = the normal map's
    /// scale.
    pub absorption: [f32; 4],
    /// The metallic-roughness texture's transform matrix, as `uv_matrix`.
    pub mr_uv_matrix: [f32; 4],
    /// Its offset in xy, sampler bits in z, texture index bits in w
    /// ([`NO_TEXTURE`]).
    pub mr_uv_offset: [f32; 4],
    /// The normal map's transform matrix, as `uv_matrix`.
    pub normal_uv_matrix: [f32; 4],
    /// Its offset in xy, sampler bits in z, texture index bits in w
    /// ([`NO_TEXTURE`]).
    pub normal_uv_offset: [f32; 4],
    /// The transmission texture's transform matrix, as `uv_matrix`.
    pub trans_uv_matrix: [f32; 4],
    /// Its offset in xy, sampler bits in z, texture index bits in w
    /// ([`NO_TEXTURE`]).
    pub trans_uv_offset: [f32; 4],
}

/// Per-pass parameters (a uniform buffer, 144 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct FrameParams {
    /// frame width, frame height, tile x, tile y.
    pub frame: [u32; 4],
    /// tile width, tile height, first row of this pass (in the tile), rows in this pass.
    pub tile: [u32; 4],
    /// first sample, samples in this pass, max bounces, seed low bits.
    pub samples: [u32; 4],
    /// seed high bits, light count, the environment's texture (index
    /// into `tex_meta`), the bits of the probability that light sampling
    /// picks the environment (0: it is not in the light list).
    pub misc: [u32; 4],
    /// camera position; w = ray offset epsilon.
    pub cam_pos: [f32; 4],
    /// camera forward; w = tan(yfov / 2).
    pub cam_fwd: [f32; 4],
    /// camera right; w = aspect ratio.
    pub cam_right: [f32; 4],
    /// camera up.
    pub cam_up: [f32; 4],
    /// environment radiance multiplier; w = its rotation in turns.
    pub env: [f32; 4],
}

/// What one frame (or tile of a frame) renders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Full frame size.
    pub width: u32,
    /// Full frame size.
    pub height: u32,
    /// Tile rectangle inside the frame: x, y, width, height.
    pub tile: [u32; 4],
    /// Samples per pixel.
    pub spp: u32,
    /// Bounces after the camera ray (0 = emission seen directly only).
    pub max_bounces: u32,
    /// Seed.
    pub seed: u64,
    /// The camera.
    pub camera: Camera,
}

impl View {
    /// The parameters of a pass over rows `rows` of the tile and samples `samples`.
    pub fn params(
        &self,
        scene: &SceneData,
        rows: std::ops::Range<u32>,
        samples: std::ops::Range<u32>,
    ) -> FrameParams {
        let c = &self.camera;
        let v4 = |v: V3, w: f32| [v.x, v.y, v.z, w];
        FrameParams {
            frame: [self.width, self.height, self.tile[0], self.tile[1]],
            tile: [
                self.tile[2],
                self.tile[3],
                rows.start,
                rows.end - rows.start,
            ],
            samples: [
                samples.start,
                samples.end - samples.start,
                self.max_bounces,
                self.seed as u32,
            ],
            misc: [
                (self.seed >> 32) as u32,
                scene.light_count,
                scene.env_texture,
                scene.env_pick.to_bits(),
            ],
            cam_pos: v4(c.position, scene.epsilon),
            cam_fwd: v4(c.forward, (c.yfov * 0.5).tan()),
            cam_right: v4(c.right, self.width as f32 / self.height as f32),
            cam_up: v4(c.up, 0.0),
            env: scene.env,
        }
    }
}

/// The uploaded scene. Every array has at least one element (WGSL
/// bindings cannot be empty).
#[derive(Debug, Clone)]
pub struct SceneData {
    /// Triangles in BVH leaf order.
    pub tris: Vec<GpuTri>,
    /// BVH nodes, root first.
    pub nodes: Vec<Node>,
    /// Materials.
    pub materials: Vec<GpuMaterial>,
    /// Per texture: first texel, width, height, unused.
    pub tex_meta: Vec<[u32; 4]>,
    /// All texels, packed RGBA8 sRGB.
    pub texels: Vec<u32>,
    /// Lookup tables: sRGB byte → linear value (256 entries), then the
    /// GGX coat's albedo tables ([`crate::albedo`]) at
    /// [`TABLE_ALBEDO_A`] and [`TABLE_ALBEDO_B`].
    pub tables: Vec<f32>,
    /// Lights for next-event estimation, with their alias table.
    pub lights: Vec<GpuLight>,
    /// Entries of `lights` in use (`lights` has a dummy entry when 0).
    pub light_count: u32,
    /// Ray offset off surfaces, scaled to the scene's size.
    pub epsilon: f32,
    /// The environment's texture in `tex_meta` (RGBE texels; w of its
    /// meta: sampling blocks across | down << 16; its table at
    /// [`TABLE_ENV`] of `tables`).
    pub env_texture: u32,
    /// Probability that light sampling picks the environment (0: never).
    pub env_pick: f32,
    /// Its radiance multiplier and, in w, rotation in turns.
    pub env: [f32; 4],
}

/// Where the coat albedo table `A` starts in [`SceneData::tables`].
pub const TABLE_ALBEDO_A: usize = 256;
/// Where the coat albedo table `B` starts in [`SceneData::tables`].
pub const TABLE_ALBEDO_B: usize = TABLE_ALBEDO_A + crate::albedo::SIZE * crate::albedo::SIZE;
/// Where the environment's sampling table starts in
/// [`SceneData::tables`]: per block, its keep probability, alias index
/// bits and pick probability.
pub const TABLE_ENV: usize = TABLE_ALBEDO_AVG + crate::albedo::SIZE;
/// Where the lobe's average albedo per roughness starts in
/// [`SceneData::tables`].
pub const TABLE_ALBEDO_AVG: usize = TABLE_ALBEDO_B + crate::albedo::SIZE * crate::albedo::SIZE;

/// [`SceneData::tables`], computed once per process.
pub(crate) fn lookup_tables() -> Vec<f32> {
    static TABLES: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLES
        .get_or_init(|| {
            let mut t: Vec<f32> = (0..=255).map(srgb_to_linear).collect();
            t.extend(crate::albedo::tables());
            t
        })
        .clone()
}

/// The linear value of an sRGB-encoded byte.
pub fn srgb_to_linear(b: u8) -> f32 {
    let c = f32::from(b) / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Vose's alias table over `weights` (finite, ≥ 0, positive sum): per
/// slot, the probability of keeping it and its alias. Picking slot
/// ⌊ξ₀·n⌋ and keeping it if ξ₁ < keep, else taking its alias, draws slot
/// i with probability weights[i] / Σ weights.
pub fn alias_table(weights: &[f64]) -> Vec<(f32, u32)> {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
    let mut table: Vec<(f32, u32)> = (0..n as u32).map(|i| (1.0, i)).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        table[s] = (scaled[s] as f32, l as u32);
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // What is left holds probability 1 up to rounding: it keeps itself.
    table
}

/// Luminance in f64 (power sums over many lights).
fn luminance(c: [f32; 3]) -> f64 {
    let w = crate::trace::LUMA;
    w[0] * f64::from(c[0]) + w[1] * f64::from(c[1]) + w[2] * f64::from(c[2])
}

/// The light list of `scene` whose triangles are `tris` (in BVH order):
/// every emissive triangle and punctual light, weighted by an estimate of
/// its power: a two-sided Lambertian emitter radiates 2π·area·L (L its
/// emissive factor; an emissive texture's pattern is left to the light's
/// own sampling), a point light 4π·I, a spot the solid angle of its cone
/// × I, a directional light E over the scene's cross-section π·r². Sets
/// each emissive triangle's pick probability in `tris`.
fn light_list(
    scene: &Scene,
    tris: &mut [GpuTri],
    materials: &[GpuMaterial],
    radius: f32,
    env_luminance: f64,
) -> Vec<GpuLight> {
    let mut lights = Vec::new();
    let mut weights = Vec::new();
    let pi = std::f64::consts::PI;
    // The environment's flux into the scene's bounding sphere: 4πr² · πL.
    let env_power = 4.0 * pi * pi * f64::from(radius) * f64::from(radius) * env_luminance;
    if env_power > 0.0 && env_power.is_finite() {
        weights.push(env_power);
        lights.push(GpuLight {
            position: [0.0, 0.0, 0.0, f32::from_bits(LIGHT_ENVIRONMENT)],
            intensity: [0.0; 4],
            spot: [0.0; 4],
            table: [0.0; 4],
        });
    }
    for (i, t) in tris.iter().enumerate() {
        let e = materials[t.material() as usize].emissive;
        let [c0, c1, c2] = t.corners();
        let area = f64::from((c1 - c0).cross(c2 - c0).length()) * 0.5;
        let power = 2.0 * pi * area * luminance([e[0], e[1], e[2]]);
        if power > 0.0 && power.is_finite() {
            weights.push(power);
            lights.push(GpuLight {
                position: [0.0, 0.0, 0.0, f32::from_bits(LIGHT_TRIANGLE)],
                intensity: [0.0, 0.0, 0.0, f32::from_bits(i as u32)],
                spot: [0.0; 4],
                table: [0.0; 4],
            });
        }
    }
    for l in &scene.lights {
        let lum = luminance(l.intensity);
        let v4 = |v: V3, w: f32| [v.x, v.y, v.z, w];
        // Kind, position (or direction toward the light), solid angle
        // lit, spot axis + cone scale, and the cone offset.
        let (kind, position, solid, spot, offset) = match l.kind {
            LightKind::Point => (LIGHT_POINT, l.position, 4.0 * pi, [0.0; 4], 0.0),
            LightKind::Spot {
                cos_inner,
                cos_outer,
            } => {
                let scale = 1.0 / (cos_inner - cos_outer).max(1e-3);
                let mean_cos = 0.5 * f64::from(cos_inner + cos_outer);
                (
                    LIGHT_SPOT,
                    l.position,
                    2.0 * pi * (1.0 - mean_cos),
                    v4(l.direction, scale),
                    -cos_outer * scale,
                )
            }
            LightKind::Directional => (
                LIGHT_DIRECTIONAL,
                -l.direction,
                pi * f64::from(radius) * f64::from(radius),
                [0.0; 4],
                0.0,
            ),
        };
        let power = solid * lum;
        if power > 0.0 && power.is_finite() {
            weights.push(power);
            lights.push(GpuLight {
                position: v4(position, f32::from_bits(kind)),
                intensity: [l.intensity[0], l.intensity[1], l.intensity[2], 0.0],
                spot,
                table: [0.0, 0.0, offset, 0.0],
            });
        }
    }
    let total: f64 = weights.iter().sum();
    for ((light, (keep, alias)), w) in lights.iter_mut().zip(alias_table(&weights)).zip(&weights) {
        let pick = (w / total) as f32;
        light.table[0] = keep;
        light.table[1] = f32::from_bits(alias);
        light.table[3] = pick;
        if light.position[3].to_bits() == LIGHT_TRIANGLE {
            tris[light.intensity[3].to_bits() as usize].uv_v[3] = pick;
        }
    }
    lights
}

impl SceneData {
    /// Builds the BVH and flattens `scene`.
    pub fn build(scene: &Scene) -> SceneData {
        let corners: Vec<[V3; 3]> = scene.triangles.iter().map(|t| t.p).collect();
        let bvh = bvh::build(&corners);
        let mut lo = V3::splat(f32::INFINITY);
        let mut hi = V3::splat(f32::NEG_INFINITY);
        let mut tris = bvh
            .order
            .iter()
            .map(|&i| {
                let t = &scene.triangles[i as usize];
                for p in t.p {
                    lo = lo.min(p);
                    hi = hi.max(p);
                }
                let p = |k: usize, w: f32| [t.p[k].x, t.p[k].y, t.p[k].z, w];
                let n = |k: usize| [t.n[k].x, t.n[k].y, t.n[k].z, t.uv[k][0]];
                GpuTri {
                    p0: p(0, f32::from_bits(t.material)),
                    // p1.w = 1: the material's alpha can hide it.
                    p1: p(
                        1,
                        f32::from(u8::from(
                            scene
                                .materials
                                .get(t.material as usize)
                                .is_some_and(|m| m.alpha != AlphaMode::Opaque),
                        )),
                    ),
                    p2: p(2, 0.0),
                    n0: n(0),
                    n1: n(1),
                    n2: n(2),
                    uv_v: [t.uv[0][1], t.uv[1][1], t.uv[2][1], 0.0],
                    tangent: tangent_of(t),
                    color: [
                        f32::from_bits(pack_color(t.color[0])),
                        f32::from_bits(pack_color(t.color[1])),
                        f32::from_bits(pack_color(t.color[2])),
                        f32::from(u8::from(t.color.iter().flatten().any(|&c| c < 1.0))),
                    ],
                }
            })
            .collect::<Vec<_>>();
        // Offsets must beat f32 rounding of both the scene's size and its
        // distance from the origin.
        let magnitude =
            lo.x.abs()
                .max(lo.y.abs())
                .max(lo.z.abs())
                .max(hi.x.abs())
                .max(hi.y.abs())
                .max(hi.z.abs());
        let extent = (hi - lo).max_elem().max(magnitude).max(1e-3);
        let materials: Vec<GpuMaterial> = scene
            .materials
            .iter()
            .map(|m| {
                let bits = |t: &crate::scene::TextureSampling| {
                    t.wrap_u as u32
                        | (t.wrap_v as u32) << 2
                        | if t.bilinear { SAMPLER_BILINEAR } else { 0 }
                };
                let (t, e) = (&m.base_color_sampler, &m.emissive_sampler);
                let slot = |s: &crate::scene::TextureSampling, tex: Option<u32>| {
                    [
                        s.offset[0],
                        s.offset[1],
                        f32::from_bits(bits(s)),
                        f32::from_bits(tex.unwrap_or(NO_TEXTURE)),
                    ]
                };
                GpuMaterial {
                    base_color: m.base_color,
                    emissive: [
                        m.emissive[0],
                        m.emissive[1],
                        m.emissive[2],
                        f32::from_bits(m.emissive_texture.unwrap_or(NO_TEXTURE)),
                    ],
                    params: [
                        m.metallic,
                        m.roughness,
                        f32::from_bits(m.base_color_texture.unwrap_or(NO_TEXTURE)),
                        m.specular,
                    ],
                    uv_matrix: t.matrix,
                    uv_offset: [
                        t.offset[0],
                        t.offset[1],
                        f32::from_bits(bits(t)),
                        match m.alpha {
                            AlphaMode::Opaque => 0.0,
                            AlphaMode::Mask(cutoff) => cutoff,
                            AlphaMode::Blend => -1.0,
                        },
                    ],
                    emit_uv_matrix: e.matrix,
                    emit_uv_offset: [e.offset[0], e.offset[1], f32::from_bits(bits(e)), 0.0],
                    glass: [
                        m.transmission,
                        ((f64::from(m.ior) - 1.0) / (f64::from(m.ior) + 1.0)).powi(2) as f32,
                        m.ior,
                        f32::from(u8::from(m.volume.is_some())),
                    ],
                    absorption: m.volume.map_or([0.0, 0.0, 0.0, m.normal_scale], |v| {
                        [
                            v.absorption[0],
                            v.absorption[1],
                            v.absorption[2],
                            m.normal_scale,
                        ]
                    }),
                    mr_uv_matrix: m.metallic_roughness_sampler.matrix,
                    mr_uv_offset: slot(&m.metallic_roughness_sampler, m.metallic_roughness_texture),
                    normal_uv_matrix: m.normal_sampler.matrix,
                    normal_uv_offset: slot(&m.normal_sampler, m.normal_texture),
                    trans_uv_matrix: m.transmission_sampler.matrix,
                    trans_uv_offset: slot(&m.transmission_sampler, m.transmission_texture),
                }
            })
            .collect();
        let mut tex_meta = Vec::new();
        let mut texels = Vec::new();
        for t in &scene.textures {
            tex_meta.push([texels.len() as u32, t.width, t.height, 0]);
            texels.extend_from_slice(&t.texels);
        }
        // The environment (always there, so `tex_meta` and `texels` are
        // never empty): its texels (RGBE; one white texel for a
        // constant color) and its sampling table.
        let env = &scene.environment;
        let white = crate::environment::EnvImage {
            width: 1,
            height: 1,
            texels: vec![[1.0; 3]],
        };
        let image = env.image.as_ref().unwrap_or(&white);
        let table = crate::environment::table(image);
        let env_texture = tex_meta.len() as u32;
        tex_meta.push([
            texels.len() as u32,
            image.width,
            image.height,
            table.blocks_u | table.blocks_v << 16,
        ]);
        texels.extend(
            image
                .texels
                .iter()
                .map(|&c| crate::environment::pack_rgbe(c)),
        );
        let mut tables = lookup_tables();
        for (keep, alias, p) in &table.entries {
            tables.extend([*keep, f32::from_bits(*alias), *p]);
        }
        let radius = ((hi - lo) * 0.5).length().max(1e-3);
        // A constant color is left to BSDF sampling, which draws it
        // exactly as the surface weighs it (a white furnace has no noise);
        // an image is a light, drawn by its table.
        let env_luminance = if env.image.is_some() {
            table.mean * luminance(env.radiance)
        } else {
            0.0
        };
        let mut lights = light_list(scene, &mut tris, &materials, radius, env_luminance);
        let light_count = lights.len() as u32;
        let env_pick = lights
            .iter()
            .find(|l| l.position[3].to_bits() == LIGHT_ENVIRONMENT)
            .map_or(0.0, |l| l.table[3]);
        if lights.is_empty() {
            lights.push(GpuLight::zeroed());
        }
        SceneData {
            tris,
            nodes: bvh.nodes,
            materials,
            tex_meta,
            texels,
            tables,
            epsilon: extent * 5e-5,
            lights,
            light_count,
            env_texture,
            env_pick,
            env: [
                env.radiance[0],
                env.radiance[1],
                env.radiance[2],
                env.rotation,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::alias_table;

    /// The exact probability the table gives each slot: its own kept
    /// share plus the shares other slots hand it as their alias.
    fn probabilities(table: &[(f32, u32)]) -> Vec<f64> {
        let n = table.len() as f64;
        let mut p = vec![0.0; table.len()];
        for (i, &(keep, alias)) in table.iter().enumerate() {
            p[i] += f64::from(keep) / n;
            p[alias as usize] += (1.0 - f64::from(keep)) / n;
        }
        p
    }

    #[test]
    fn the_alias_table_draws_each_light_in_proportion_to_its_weight() {
        let skewed = [1.0, 0.0, 3.0, 1e-6, 6.0, 1e9];
        let random: Vec<f64> = (0..10_000u32)
            .map(|i| f64::from(crate::rng::pcg(i) % 1000) + 0.5)
            .collect();
        for weights in [&skewed[..], &[5.0], &random[..]] {
            let table = alias_table(weights);
            let total: f64 = weights.iter().sum();
            for (i, (got, w)) in probabilities(&table).iter().zip(weights).enumerate() {
                let want = w / total;
                assert!(
                    (got - want).abs() < 1e-6 * want.max(1.0 / weights.len() as f64),
                    "slot {i}: {got} for weight share {want}"
                );
            }
            assert!(
                table
                    .iter()
                    .all(|&(keep, alias)| (0.0..=1.0).contains(&keep)
                        && (alias as usize) < weights.len())
            );
        }
    }
}
