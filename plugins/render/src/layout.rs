//! The flattened scene exactly as uploaded to the GPU, and the per-pass
//! parameters. The CPU tracer reads the same arrays, so both tracers see
//! identical data. Struct layouts match `render.wgsl`.

use bytemuck::{Pod, Zeroable};

use crate::bvh::{self, Node};
use crate::math::V3;
use crate::scene::{Camera, Scene};

/// Marks "no texture" in [`GpuMaterial::params`].
pub const NO_TEXTURE: u32 = u32::MAX;

/// A triangle (112 bytes): corners in `p*.xyz` (`p0.w` holds the material
/// index bits), normals in `n*.xyz` with u in `n*.w`, v in `uv_v.xyz`.
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
    /// v0, v1, v2, unused.
    pub uv_v: [f32; 4],
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

/// A material (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct GpuMaterial {
    /// Linear base color factor.
    pub base_color: [f32; 4],
    /// Emitted radiance in xyz.
    pub emissive: [f32; 4],
    /// metallic, roughness, texture index bits ([`NO_TEXTURE`]), specular factor.
    pub params: [f32; 4],
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
    /// seed high bits, unused ×3.
    pub misc: [u32; 4],
    /// camera position; w = ray offset epsilon.
    pub cam_pos: [f32; 4],
    /// camera forward; w = tan(yfov / 2).
    pub cam_fwd: [f32; 4],
    /// camera right; w = aspect ratio.
    pub cam_right: [f32; 4],
    /// camera up.
    pub cam_up: [f32; 4],
    /// environment radiance.
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
    /// Environment radiance.
    pub environment: [f32; 3],
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
            misc: [(self.seed >> 32) as u32, 0, 0, 0],
            cam_pos: v4(c.position, scene.epsilon),
            cam_fwd: v4(c.forward, (c.yfov * 0.5).tan()),
            cam_right: v4(c.right, self.width as f32 / self.height as f32),
            cam_up: v4(c.up, 0.0),
            env: [
                self.environment[0],
                self.environment[1],
                self.environment[2],
                0.0,
            ],
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
    /// sRGB byte → linear value.
    pub srgb_lut: Vec<f32>,
    /// Ray offset off surfaces, scaled to the scene's size.
    pub epsilon: f32,
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

impl SceneData {
    /// Builds the BVH and flattens `scene`.
    pub fn build(scene: &Scene) -> SceneData {
        let corners: Vec<[V3; 3]> = scene.triangles.iter().map(|t| t.p).collect();
        let bvh = bvh::build(&corners);
        let mut lo = V3::splat(f32::INFINITY);
        let mut hi = V3::splat(f32::NEG_INFINITY);
        let tris = bvh
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
                    p1: p(1, 0.0),
                    p2: p(2, 0.0),
                    n0: n(0),
                    n1: n(1),
                    n2: n(2),
                    uv_v: [t.uv[0][1], t.uv[1][1], t.uv[2][1], 0.0],
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
        let materials = scene
            .materials
            .iter()
            .map(|m| GpuMaterial {
                base_color: m.base_color,
                emissive: [m.emissive[0], m.emissive[1], m.emissive[2], 0.0],
                params: [
                    m.metallic,
                    m.roughness,
                    f32::from_bits(m.base_color_texture.unwrap_or(NO_TEXTURE)),
                    m.specular,
                ],
            })
            .collect();
        let mut tex_meta = Vec::new();
        let mut texels = Vec::new();
        for t in &scene.textures {
            tex_meta.push([texels.len() as u32, t.width, t.height, 0]);
            texels.extend_from_slice(&t.texels);
        }
        if tex_meta.is_empty() {
            tex_meta.push([0; 4]);
        }
        if texels.is_empty() {
            texels.push(0);
        }
        SceneData {
            tris,
            nodes: bvh.nodes,
            materials,
            tex_meta,
            texels,
            srgb_lut: (0..=255).map(srgb_to_linear).collect(),
            epsilon: extent * 5e-5,
        }
    }
}
