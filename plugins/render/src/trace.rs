//! The path tracing algorithm, in Rust: the CPU reference. `render.wgsl`
//! is a line-by-line port; keep the two in step.
//!
//! Model: camera rays jittered inside the pixel. The surface BSDF is GGX
//! specular (Smith G, Schlick Fresnel F = mix(s·F_d, F_m, metallic) with
//! the dielectric F_d = 0.04 + 0.96 (1 − c)^5 scaled by the specular
//! factor s and the metal F_m = base + (1 − base)(1 − c)^5) plus Lambert
//! diffuse (base × (1 − metallic) × (1 − s·F_d(n·v))). With s = 0 a
//! material is pure Lambert (the white furnace renders exactly 1); with
//! s = 1 it is glTF's metallic-roughness model, with the diffuse base
//! scaled by what the coat's tabulated albedo leaves (energy conserving)
//! and metals given a multiple-scattering lobe ([`crate::albedo`]);
//! transmission adds GGX refraction for glass.
//!
//! Estimator: at each hit, next-event estimation picks one light from the
//! light list (emissive triangles and punctual lights, by estimated
//! power through an alias table), samples a point on it uniformly by
//! area, and traces a shadow ray; then the BSDF is sampled (one lobe,
//! chosen by their estimated weights; the weight uses the full BSDF and
//! the mixture pdf) to continue the path. Emission found by light samples
//! and by BSDF samples is combined with multiple importance sampling (the
//! power heuristic); punctual lights are found by light samples only, the
//! environment by BSDF samples only. After three bounces Russian roulette
//! ends paths with probability 1 − min(1, max throughput). A path ends
//! after `max_bounces` bounces, on a miss (adding the environment), or
//! when a sampled direction goes below the surface.

use crate::albedo;
use crate::bvh::{END, Node};
use crate::environment::{direction_at, unpack_rgbe, uv_of};
use crate::layout::{
    FrameParams, GpuMaterial, GpuTri, LIGHT_DIRECTIONAL, LIGHT_ENVIRONMENT, LIGHT_SPOT,
    LIGHT_TRIANGLE, NO_TEXTURE, SAMPLER_BILINEAR, SceneData, TABLE_ENV,
};
use crate::layout::{TABLE_ALBEDO_A, TABLE_ALBEDO_AVG, TABLE_ALBEDO_B, unpack_color};
use crate::math::{V3, v3};
use crate::rng::{SampleRng, pcg};

/// Directions closer to zero than this per component are nudged (no
/// infinities in the slab test, on both tracers).
const MIN_DIR: f32 = 1e-12;
const PI: f32 = std::f32::consts::PI;

/// A ray with its precomputed inverse direction.
#[derive(Debug, Clone, Copy)]
pub struct Ray {
    /// Origin.
    pub o: V3,
    /// Unit direction.
    pub d: V3,
    inv: V3,
}

impl Ray {
    /// A ray from `o` along `d`.
    pub fn new(o: V3, d: V3) -> Ray {
        let safe = |c: f32| {
            if c.abs() < MIN_DIR {
                if c < 0.0 { -MIN_DIR } else { MIN_DIR }
            } else {
                c
            }
        };
        Ray {
            o,
            d,
            inv: v3(1.0 / safe(d.x), 1.0 / safe(d.y), 1.0 / safe(d.z)),
        }
    }
}

/// The closest hit of a ray.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Distance along the ray.
    pub t: f32,
    /// Barycentric coordinates of corners 1 and 2.
    pub u: f32,
    /// See `u`.
    pub v: f32,
    /// Triangle index.
    pub tri: u32,
}

/// Something with three corners.
pub trait Corners {
    /// The corners.
    fn corners(&self) -> [V3; 3];
}
impl Corners for [V3; 3] {
    fn corners(&self) -> [V3; 3] {
        *self
    }
}
impl Corners for GpuTri {
    fn corners(&self) -> [V3; 3] {
        GpuTri::corners(self)
    }
}

/// Möller–Trumbore, two-sided; `Some((t, u, v))` for 0 < t < `t_max`.
fn hit_triangle(c: [V3; 3], ray: &Ray, t_max: f32) -> Option<(f32, f32, f32)> {
    let e1 = c[1] - c[0];
    let e2 = c[2] - c[0];
    let pv = ray.d.cross(e2);
    let det = e1.dot(pv);
    if det.abs() < 1e-20 {
        return None;
    }
    let inv_det = 1.0 / det;
    let tv = ray.o - c[0];
    let u = tv.dot(pv) * inv_det;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let qv = tv.cross(e1);
    let v = ray.d.dot(qv) * inv_det;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = e2.dot(qv) * inv_det;
    (t > 0.0 && t < t_max).then_some((t, u, v))
}

/// Entry distance of the ray into a node's box, if it enters before `t_max`.
fn hit_box(n: &Node, ray: &Ray, t_max: f32) -> Option<f32> {
    let t0 = (V3::from_array(n.min) - ray.o).mul_elem(ray.inv);
    let t1 = (V3::from_array(n.max) - ray.o).mul_elem(ray.inv);
    let lo = t0.min(t1);
    let hi = t0.max(t1);
    let enter = lo.x.max(lo.y).max(lo.z).max(0.0);
    let exit = hi.x.min(hi.y).min(hi.z);
    (enter <= exit && enter < t_max).then_some(enter)
}

/// What a BVH walk does after meeting a triangle.
enum Step {
    /// Keep looking.
    Go,
    /// Keep looking, but only nearer than this.
    Nearer(f32),
    /// Done.
    Stop,
}

/// Walks the BVH for `ray` without a stack (the same walk as the kernel):
/// a node whose box the ray enters before `t_max` leads to its first
/// child (a leaf's triangles are met), one it misses (and a finished
/// leaf) to its miss link; SIMD lanes on a CPU adapter keep no per-ray
/// stack in memory. `meet(triangle, t, u, v)` is called for each
/// triangle the ray crosses before `t_max`.
fn walk<T: Corners>(
    nodes: &[Node],
    tris: &[T],
    ray: &Ray,
    mut t_max: f32,
    mut meet: impl FnMut(u32, f32, f32, f32) -> Step,
) {
    let mut i = 0u32;
    while i != END {
        let node = &nodes[i as usize];
        if hit_box(node, ray, t_max).is_none() {
            i = node.miss();
            continue;
        }
        let count = node.leaf_count();
        if count == 0 {
            i = node.a;
            continue;
        }
        for k in node.a..node.a + count {
            if let Some((t, u, v)) = hit_triangle(tris[k as usize].corners(), ray, t_max) {
                match meet(k, t, u, v) {
                    Step::Go => {}
                    Step::Nearer(t) => t_max = t,
                    Step::Stop => return,
                }
            }
        }
        i = node.miss();
    }
}

/// Closest hit through the BVH, skipping candidates where
/// `present(triangle, u, v)` says the surface is not there (alpha).
pub fn intersect_bvh<T: Corners>(
    nodes: &[Node],
    tris: &[T],
    ray: &Ray,
    present: impl Fn(u32, f32, f32) -> bool,
) -> Option<Hit> {
    let mut best: Option<Hit> = None;
    walk(nodes, tris, ray, f32::INFINITY, |k, t, u, v| {
        if present(k, u, v) {
            best = Some(Hit { t, u, v, tri: k });
            Step::Nearer(t)
        } else {
            Step::Go
        }
    });
    best
}

/// Closest hit by testing every triangle (for tests).
pub fn intersect_brute<T: Corners>(tris: &[T], ray: &Ray) -> Option<Hit> {
    let mut best: Option<Hit> = None;
    for (i, tri) in tris.iter().enumerate() {
        if let Some((t, u, v)) =
            hit_triangle(tri.corners(), ray, best.map_or(f32::INFINITY, |h| h.t))
        {
            best = Some(Hit {
                t,
                u,
                v,
                tri: i as u32,
            });
        }
    }
    best
}

fn pow5(x: f32) -> f32 {
    let x2 = x * x;
    x2 * x2 * x
}

/// Rec. 709 luminance weights of linear RGB.
pub const LUMA: [f64; 3] = [0.2126, 0.7152, 0.0722];

fn luminance(c: V3) -> f32 {
    c.dot(v3(LUMA[0] as f32, LUMA[1] as f32, LUMA[2] as f32))
}

/// Tangent frame around unit `n` (Duff et al. 2017); returns `x·t + y·b + z·n`.
fn to_world(n: V3, l: V3) -> V3 {
    let s = if n.z >= 0.0 { 1.0 } else { -1.0 };
    let a = -1.0 / (s + n.z);
    let b = n.x * n.y * a;
    let t = v3(1.0 + s * n.x * n.x * a, s * b, -s * n.x);
    let bt = v3(b, s + n.y * n.y * a, -n.y);
    t * l.x + bt * l.y + n * l.z
}

pub(crate) fn smith_g1(alpha2: f32, c: f32) -> f32 {
    2.0 * c / (c + (alpha2 + (1.0 - alpha2) * c * c).sqrt())
}

/// Texel coordinate `i` of a side of `n` texels under wrap mode `mode`
/// (0 repeat, 1 clamp, 2 mirror).
fn wrap(i: i32, n: u32, mode: u32) -> u32 {
    let n = n as i32;
    let k = match mode {
        1 => i.clamp(0, n - 1),
        2 => {
            let m = i.rem_euclid(2 * n);
            if m < n { m } else { 2 * n - 1 - m }
        }
        _ => i.rem_euclid(n),
    };
    k as u32
}

/// The linear color of packed sRGB texel `t`.
fn decode(scene: &SceneData, t: u32) -> V3 {
    let lut = |shift: u32| scene.tables[((t >> shift) & 255) as usize];
    v3(lut(0), lut(8), lut(16))
}

/// The values of packed texel `t` of a linear (data) texture, in [0, 1].
fn decode_linear(_: &SceneData, t: u32) -> V3 {
    let c = |shift: u32| ((t >> shift) & 255) as f32 * (1.0 / 255.0);
    v3(c(0), c(8), c(16))
}

/// Where texture `tex`'s lookup at (`u`, `v`) lands: its meta, the point in
/// texel space under the transform `m`, `o` (clamped far inside i32 for
/// hostile transforms), and the sampler bits in `o[2]`.
fn texel_space(
    scene: &SceneData,
    tex: u32,
    m: [f32; 4],
    o: [f32; 4],
    u: f32,
    v: f32,
) -> ([u32; 4], f32, f32, u32) {
    let meta = scene.tex_meta[tex as usize];
    let tu = m[0] * u + m[1] * v + o[0];
    let tv = m[2] * u + m[3] * v + o[1];
    let x = (tu * meta[1] as f32).clamp(-1e9, 1e9);
    let y = (tv * meta[2] as f32).clamp(-1e9, 1e9);
    (meta, x, y, o[2].to_bits())
}

/// The packed texel under texel-space point (`x`, `y`), wrapped.
fn nearest(scene: &SceneData, meta: [u32; 4], x: f32, y: f32, bits: u32) -> u32 {
    let xi = wrap(x.floor() as i32, meta[1], bits & 3);
    let yi = wrap(y.floor() as i32, meta[2], (bits >> 2) & 3);
    scene.texels[(meta[0] + yi * meta[1] + xi) as usize]
}

/// Color texture `tex` at (`u`, `v`) under the transform `m`, `o` and
/// the sampler bits in `o[2]`: wrapped, and filtered (bilinear in linear
/// space, or the nearest texel).
fn texel(scene: &SceneData, tex: u32, m: [f32; 4], o: [f32; 4], u: f32, v: f32) -> V3 {
    lookup(scene, tex, m, o, u, v, decode)
}

/// Like [`texel`], for a texture of linear data (metallic-roughness,
/// normals).
fn texel_linear(scene: &SceneData, tex: u32, m: [f32; 4], o: [f32; 4], u: f32, v: f32) -> V3 {
    lookup(scene, tex, m, o, u, v, decode_linear)
}

fn lookup(
    scene: &SceneData,
    tex: u32,
    m: [f32; 4],
    o: [f32; 4],
    u: f32,
    v: f32,
    decode: fn(&SceneData, u32) -> V3,
) -> V3 {
    let (meta, x, y, bits) = texel_space(scene, tex, m, o, u, v);
    if bits & SAMPLER_BILINEAR == 0 {
        return decode(scene, nearest(scene, meta, x, y, bits));
    }
    let (wu, wv) = (bits & 3, (bits >> 2) & 3);
    let (x, y) = (x - 0.5, y - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i32, y0 as i32);
    let (xa, xb) = (wrap(x0, meta[1], wu), wrap(x0 + 1, meta[1], wu));
    let (ya, yb) = (wrap(y0, meta[2], wv), wrap(y0 + 1, meta[2], wv));
    let at = |x: u32, y: u32| decode(scene, scene.texels[(meta[0] + y * meta[1] + x) as usize]);
    let top = at(xa, ya) * (1.0 - fx) + at(xb, ya) * fx;
    let bottom = at(xa, yb) * (1.0 - fx) + at(xb, yb) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Texture coordinates at barycentrics (`b1`, `b2`) of corners 1 and 2.
fn uv_at(tri: &GpuTri, b1: f32, b2: f32) -> (f32, f32) {
    let w = 1.0 - b1 - b2;
    (
        tri.n0[3] * w + tri.n1[3] * b1 + tri.n2[3] * b2,
        tri.uv_v[0] * w + tri.uv_v[1] * b1 + tri.uv_v[2] * b2,
    )
}

/// Radiance `mat` emits at texture coordinates (`u`, `v`).
fn emitted(scene: &SceneData, mat: &GpuMaterial, u: f32, v: f32) -> V3 {
    let e = v3(mat.emissive[0], mat.emissive[1], mat.emissive[2]);
    let tex = mat.emissive[3].to_bits();
    if tex == NO_TEXTURE || e.max_elem() <= 0.0 {
        return e;
    }
    e.mul_elem(texel(
        scene,
        tex,
        mat.emit_uv_matrix,
        mat.emit_uv_offset,
        u,
        v,
    ))
}

/// Alpha of texture `tex` at (`u`, `v`) (nearest texel; alpha is
/// stored linear).
fn texel_alpha(scene: &SceneData, tex: u32, m: [f32; 4], o: [f32; 4], u: f32, v: f32) -> f32 {
    let (meta, x, y, bits) = texel_space(scene, tex, m, o, u, v);
    (nearest(scene, meta, x, y, bits) >> 24) as f32 * (1.0 / 255.0)
}

/// Whether triangle `i`'s surface is there at barycentrics (`u`, `v`) for
/// the ray drawing `seed`: always, unless its material's alpha (factor ×
/// texture) is under the mask cutoff, or, for blend, under a number drawn
/// from `seed` and the triangle.
pub fn surface_present(scene: &SceneData, i: u32, u: f32, v: f32, seed: u32) -> bool {
    let tri = &scene.tris[i as usize];
    if tri.p1[3] == 0.0 {
        return true;
    }
    let mat = &scene.materials[tri.material() as usize];
    let mut alpha = mat.base_color[3];
    let tex = mat.params[2].to_bits();
    if tex != NO_TEXTURE {
        let (tu, tv) = uv_at(tri, u, v);
        alpha *= texel_alpha(scene, tex, mat.uv_matrix, mat.uv_offset, tu, tv);
    }
    let cutoff = mat.uv_offset[3];
    if cutoff > 0.0 {
        return alpha >= cutoff;
    }
    let xi = (pcg(seed ^ pcg(i)) >> 8) as f32 * (1.0 / 16_777_216.0);
    alpha > xi
}

/// Whether anything present blocks the ray before `t_max` (any hit, no
/// ordering).
pub fn occluded<T: Corners>(
    nodes: &[Node],
    tris: &[T],
    ray: &Ray,
    t_max: f32,
    present: impl Fn(u32, f32, f32) -> bool,
) -> bool {
    let mut blocked = false;
    walk(nodes, tris, ray, t_max, |k, _, u, v| {
        if present(k, u, v) {
            blocked = true;
            Step::Stop
        } else {
            Step::Go
        }
    });
    blocked
}

/// Random numbers each bounce draws: lobe, direction ×2, light, alias
/// coin, point on the light ×2 (a direction in an environment block),
/// Russian roulette, the seed of the stochastic alpha of the rays traced
/// from this bounce's hit, and an environment block and its alias coin.
pub const DIMS_PER_BOUNCE: u32 = 11;

/// The alpha seed of rays traced in iteration `bounce` (the camera ray
/// for 0; a shadow ray uses its hash).
fn alpha_seed(rng: &SampleRng, bounce: u32) -> u32 {
    (rng.get(2 + DIMS_PER_BOUNCE * bounce + 8) * 16_777_216.0) as u32
}

/// GGX α² at or below which a surface counts as perfectly smooth: the
/// smallest α the tracer uses (1e-3, reached at roughness 0.032),
/// squared, with room for rounding.
const SINGULAR_ALPHA2: f32 = 1.5e-6;

/// Bounces before Russian roulette may end a path.
const ROULETTE_AFTER: u32 = 3;

/// The shading inputs at a hit, as the BSDF sees them.
struct Surface {
    ns: V3,
    view: V3,
    nv: f32,
    base: V3,
    metallic: f32,
    specular: f32,
    alpha2: f32,
    /// The diffuse lobe's color: base × (1 − metallic) × (1 − transmission).
    diffuse: V3,
    /// The transmission lobe's color: base × (1 − metallic) × transmission.
    trans: V3,
    /// Dielectric reflectance at normal incidence.
    f0: f32,
    /// Index of refraction beyond the surface over that on the view's
    /// side (ior entering a volume, 1 / ior leaving it); 0 thin-walled.
    eta: f32,
    /// The share of light from `view` the dielectric coat reflects (its
    /// directional albedo); the layer under it gets the rest.
    coat_v: f32,
    p_spec: f32,
    p_trans: f32,
    /// Perceptual roughness (for the multiple-scattering tables).
    roughness: f32,
    /// The metal's multiple-scattering lobe: metallic × F_ms ÷
    /// (π (1 − A_avg)), and 1 − A(n·v) (see [`crate::albedo`]).
    ms: V3,
    ms_v: f32,
}

/// Schlick's dielectric Fresnel reflectance for reflectance `f0` at
/// normal incidence and cosine `c` on the view's side, where the medium
/// beyond has `eta` times its index: leaving a denser medium
/// (`eta` < 1), the cosine on the rarer side is used, and beyond the
/// critical angle all is reflected.
fn fresnel_dielectric(f0: f32, c: f32, eta: f32) -> f32 {
    let mut c = c;
    if eta > 0.0 && eta < 1.0 {
        let sin2 = (1.0 - c * c) / (eta * eta);
        if sin2 >= 1.0 {
            return 1.0;
        }
        c = (1.0 - sin2).sqrt();
    }
    f0 + (1.0 - f0) * pow5(1.0 - c)
}

/// Fresnel at cosine `c`: the dielectric's (scaled by the specular
/// factor) blended with the metal's.
fn fresnel(s: &Surface, c: f32) -> V3 {
    let fd = s.specular * fresnel_dielectric(s.f0, c, s.eta);
    V3::splat(fd * (1.0 - s.metallic))
        + (s.base + (V3::splat(1.0) - s.base) * pow5(1.0 - c)) * s.metallic
}

fn ggx_d(alpha2: f32, nh: f32) -> f32 {
    let k = nh * nh * (alpha2 - 1.0) + 1.0;
    alpha2 / (PI * k * k)
}

/// BSDF × |cosine| toward `l`, and the pdf (solid angle) with which BSDF
/// sampling picks `l`. Above the shading surface: GGX reflection and
/// Lambert diffuse. Below it, for a transmissive material: GGX
/// transmission, thin-walled (the reflection lobe mirrored through the
/// surface) or refracted (Walter et al. 2007; radiance is not rescaled
/// by η², which cancels for closed objects seen from outside).
fn eval_bsdf(tables: &[f32], s: &Surface, l: V3) -> (V3, f32) {
    let nl = s.ns.dot(l);
    let zero = (V3::splat(0.0), 0.0);
    if nl.is_nan() || nl == 0.0 {
        return zero;
    }
    if nl > 0.0 {
        let h = (s.view + l).normalize();
        let nh = s.ns.dot(h).max(0.0);
        let vh = s.view.dot(h).max(1e-6);
        let d = ggx_d(s.alpha2, nh);
        let g = smith_g1(s.alpha2, s.nv) * smith_g1(s.alpha2, nl);
        let spec = fresnel(s, vh) * (d * g / (4.0 * s.nv));
        let diff = s.diffuse * ((1.0 - s.coat_v) * nl / PI);
        let ms_l = 1.0 - albedo::lookup(tables, TABLE_ALBEDO_A, nl, s.roughness);
        let multiple = s.ms * (s.ms_v * ms_l * nl);
        let p_diff = 1.0 - s.p_spec - s.p_trans;
        let pdf = s.p_spec * d * nh / (4.0 * vh) + p_diff * nl / PI;
        return (spec + diff + multiple, pdf);
    }
    if s.p_trans <= 0.0 {
        return zero;
    }
    let g = smith_g1(s.alpha2, s.nv) * smith_g1(s.alpha2, -nl);
    if s.eta == 0.0 {
        let mirrored = l - s.ns * (2.0 * nl);
        let h = (s.view + mirrored).normalize();
        let nh = s.ns.dot(h).max(0.0);
        let vh = s.view.dot(h).max(1e-6);
        let d = ggx_d(s.alpha2, nh);
        let f = 1.0 - s.specular * fresnel_dielectric(s.f0, vh, 1.0);
        let value = s.trans * (f * d * g / (4.0 * s.nv));
        return (value, s.p_trans * d * nh / (4.0 * vh));
    }
    let mut h = (s.view + l * s.eta).normalize();
    if s.ns.dot(h) < 0.0 {
        h = -h;
    }
    let (vh, lh, nh) = (s.view.dot(h), l.dot(h), s.ns.dot(h));
    let denom = vh + s.eta * lh;
    if vh.is_nan() || vh <= 0.0 || lh >= 0.0 || denom * denom < 1e-12 {
        return zero;
    }
    let d = ggx_d(s.alpha2, nh);
    let f = 1.0 - s.specular * fresnel_dielectric(s.f0, vh, s.eta);
    let jacobian = s.eta * s.eta * -lh / (denom * denom);
    let value = s.trans * (f * d * g * vh * jacobian / s.nv);
    (value, s.p_trans * d * nh * jacobian)
}

/// A GGX microfacet normal around `ns` for random numbers `xi1`, `xi2`
/// (pdf D(h)·(n·h)).
pub(crate) fn sample_ggx(ns: V3, alpha2: f32, xi1: f32, xi2: f32) -> V3 {
    let phi = 2.0 * PI * xi1;
    let cos_t = ((1.0 - xi2) / (1.0 + (alpha2 - 1.0) * xi2)).sqrt();
    let sin_t = (1.0 - cos_t * cos_t).max(0.0).sqrt();
    to_world(ns, v3(sin_t * phi.cos(), sin_t * phi.sin(), cos_t))
}

/// `view` (unit, on the side `h` faces) refracted through a surface of
/// normal `h` into a medium `1 / k` times as dense as the view's (k = the
/// view side's index over the far side's); `None` past the critical angle.
fn refract(view: V3, h: V3, k: f32) -> Option<V3> {
    let c = view.dot(h);
    let sin2 = k * k * (1.0 - c * c);
    if c.is_nan() || c <= 0.0 || sin2 >= 1.0 {
        return None;
    }
    Some(-view * k + h * (k * c - (1.0 - sin2).sqrt()))
}

/// The direction BSDF sampling continues in for random numbers `xi0`
/// (which lobe), `xi1`, `xi2`; `None` where the lobe's microfacet sends
/// it to the other side of the surface than the lobe's (reflections
/// stay above, transmissions below) or reflects all (total internal
/// reflection).
fn sample_bsdf(s: &Surface, xi0: f32, xi1: f32, xi2: f32) -> Option<V3> {
    let view = s.view;
    let side = |l: V3, above: bool| {
        let nl = s.ns.dot(l);
        (if above { nl > 0.0 } else { nl < 0.0 }).then_some(l)
    };
    if xi0 < s.p_spec {
        let h = sample_ggx(s.ns, s.alpha2, xi1, xi2);
        return side(h * (2.0 * view.dot(h)) - view, true);
    }
    if xi0 < s.p_spec + s.p_trans {
        let h = sample_ggx(s.ns, s.alpha2, xi1, xi2);
        let c = view.dot(h);
        if s.eta == 0.0 {
            let r = side(h * (2.0 * c) - view, true)?;
            return Some(r - s.ns * (2.0 * s.ns.dot(r)));
        }
        return side(refract(view, h, 1.0 / s.eta)?, false);
    }
    let r = xi1.sqrt();
    let phi = 2.0 * PI * xi2;
    Some(to_world(
        s.ns,
        v3(r * phi.cos(), r * phi.sin(), (1.0 - xi1).max(0.0).sqrt()),
    ))
}

fn power_heuristic(a: f32, b: f32) -> f32 {
    let (a2, b2) = (a * a, b * b);
    if a2 + b2 > 0.0 { a2 / (a2 + b2) } else { 0.0 }
}

/// The environment's radiance toward direction `d`: its image's nearest
/// texel, or filtered bilinearly (wrapping around, clamped at the poles)
/// for what the camera sees directly.
pub fn env_radiance(scene: &SceneData, d: V3, filtered: bool) -> V3 {
    let meta = scene.tex_meta[scene.env_texture as usize];
    let (u, v) = uv_of(d, scene.env[3]);
    let (w, h) = (meta[1], meta[2]);
    let multiplier = v3(scene.env[0], scene.env[1], scene.env[2]);
    if !filtered {
        return env_nearest(scene, u, v);
    }
    let x = (u * w as f32 - 0.5).clamp(-1e9, 1e9);
    let y = (v * h as f32 - 0.5).clamp(-1e9, 1e9);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (xa, xb) = (wrap(x0 as i32, w, 0), wrap(x0 as i32 + 1, w, 0));
    let (ya, yb) = (wrap(y0 as i32, h, 1), wrap(y0 as i32 + 1, h, 1));
    let at = |x: u32, y: u32| unpack_rgbe(scene.texels[(meta[0] + y * w + x) as usize]);
    let top = at(xa, ya) * (1.0 - fx) + at(xb, ya) * fx;
    let bottom = at(xa, yb) * (1.0 - fx) + at(xb, yb) * fx;
    (top * (1.0 - fy) + bottom * fy).mul_elem(multiplier)
}

/// The environment's nearest texel at image coordinates (`u`, `v`),
/// times its multiplier.
fn env_nearest(scene: &SceneData, u: f32, v: f32) -> V3 {
    let meta = scene.tex_meta[scene.env_texture as usize];
    let (w, h) = (meta[1], meta[2]);
    let x = wrap((u * w as f32).clamp(-1e9, 1e9).floor() as i32, w, 0);
    let y = wrap((v * h as f32).floor() as i32, h, 1);
    unpack_rgbe(scene.texels[(meta[0] + y * w + x) as usize]).mul_elem(v3(
        scene.env[0],
        scene.env[1],
        scene.env[2],
    ))
}

/// The solid-angle pdf with which the environment's table draws
/// direction `d` (given that the environment is picked).
fn env_pdf(scene: &SceneData, d: V3) -> f32 {
    let meta = scene.tex_meta[scene.env_texture as usize];
    let (bu, bv) = (meta[3] & 0xffff, meta[3] >> 16);
    let (u, v) = uv_of(d, scene.env[3]);
    let i = ((u.rem_euclid(1.0) * bu as f32) as u32).min(bu - 1);
    let j = ((v * bv as f32) as u32).min(bv - 1);
    let p = scene.tables[TABLE_ENV + 3 * (j * bu + i) as usize + 2];
    let sin_theta = (1.0 - d.y * d.y).max(0.0).sqrt().max(1e-6);
    p * (bu * bv) as f32 / (2.0 * PI * PI * sin_theta)
}

/// A direction drawn from the environment's table for random numbers
/// `xi` (block, its alias coin, u and v in the block), with its pdf and
/// the radiance from there (read at the drawn image coordinates, so it
/// is the texel of the drawn block even where rounding the direction
/// back would land beside it).
fn sample_env(scene: &SceneData, xi: [f32; 4]) -> Option<(V3, f32, V3)> {
    let meta = scene.tex_meta[scene.env_texture as usize];
    let (bu, bv) = (meta[3] & 0xffff, meta[3] >> 16);
    let n = bu * bv;
    let slot = ((xi[0] * n as f32) as u32).min(n - 1);
    let entry = TABLE_ENV + 3 * slot as usize;
    let block = if xi[1] < scene.tables[entry] {
        slot
    } else {
        scene.tables[entry + 1].to_bits().min(n - 1)
    };
    let p = scene.tables[TABLE_ENV + 3 * block as usize + 2];
    let (i, j) = (block % bu, block / bu);
    let u = (i as f32 + xi[2]) / bu as f32;
    let v = (j as f32 + xi[3]) / bv as f32;
    let (d, sin_theta) = direction_at(u, v, scene.env[3]);
    let pdf = p * n as f32 / (2.0 * PI * PI * sin_theta.max(1e-6));
    (pdf > 0.0 && pdf.is_finite()).then(|| (d, pdf, env_nearest(scene, u, v)))
}

/// A sampled light: direction from the shadow ray's origin, the distance
/// the shadow ray must cover, radiance ÷ pdf arriving, and the pdf in
/// solid angle (0 for punctual lights, which BSDF samples never find).
struct LightSample {
    dir: V3,
    t_max: f32,
    value: V3,
    pdf: f32,
}

/// Picks a light by power and samples it as seen from `origin`; `seed`
/// draws the stochastic alpha of an emitter's sampled point.
fn sample_light(
    scene: &SceneData,
    count: u32,
    origin: V3,
    xi: [f32; 6],
    seed: u32,
) -> Option<LightSample> {
    let n = count as f32;
    let slot = ((xi[0] * n) as u32).min(count - 1);
    let entry = &scene.lights[slot as usize];
    let index = if xi[1] < entry.table[0] {
        slot
    } else {
        entry.table[1].to_bits()
    };
    let light = &scene.lights[index.min(count - 1) as usize];
    let pick = light.table[3];
    let xyz = |a: [f32; 4]| v3(a[0], a[1], a[2]);
    let kind = light.position[3].to_bits();
    if kind == LIGHT_TRIANGLE {
        let index = light.intensity[3].to_bits();
        let tri = &scene.tris[index as usize];
        let [c0, c1, c2] = tri.corners();
        let su = xi[2].sqrt();
        let (b1, b2) = (su * (1.0 - xi[3]), su * xi[3]);
        if !surface_present(scene, index, b1, b2, seed) {
            return None;
        }
        let y = c0 * (1.0 - su) + c1 * b1 + c2 * b2;
        let to = y - origin;
        let dist = to.length();
        let dir = to * (1.0 / dist);
        let cross = (c1 - c0).cross(c2 - c0);
        let cos_area = cross.dot(dir).abs(); // = 2·area·|cos θ_light|
        if !(dist > 0.0 && cos_area > 0.0) {
            return None;
        }
        let pdf = pick * dist * dist * 2.0 / cos_area;
        let (u, v) = uv_at(tri, b1, b2);
        let emission = emitted(scene, &scene.materials[tri.material() as usize], u, v);
        let value = emission * (1.0 / pdf);
        return Some(LightSample {
            dir,
            t_max: dist - scene.epsilon,
            value,
            pdf,
        });
    }
    if kind == LIGHT_ENVIRONMENT {
        let (dir, pdf, radiance) = sample_env(scene, [xi[4], xi[5], xi[2], xi[3]])?;
        let pdf = pick * pdf;
        return Some(LightSample {
            dir,
            t_max: f32::INFINITY,
            value: radiance * (1.0 / pdf),
            pdf,
        });
    }
    if kind == LIGHT_DIRECTIONAL {
        return Some(LightSample {
            dir: xyz(light.position),
            t_max: f32::INFINITY,
            value: xyz(light.intensity) * (1.0 / pick),
            pdf: 0.0,
        });
    }
    let to = xyz(light.position) - origin;
    let dist2 = to.dot(to);
    if dist2.is_nan() || dist2 <= 0.0 {
        return None;
    }
    let dist = dist2.sqrt();
    let dir = to * (1.0 / dist);
    let mut falloff = 1.0 / (dist2 * pick);
    if kind == LIGHT_SPOT {
        let cd = xyz(light.spot).dot(-dir);
        let a = (cd * light.spot[3] + light.table[2]).clamp(0.0, 1.0);
        falloff *= a * a;
    }
    Some(LightSample {
        dir,
        t_max: dist,
        value: xyz(light.intensity) * falloff,
        pdf: 0.0,
    })
}

/// A material's textured inputs at a hit.
#[derive(Debug, Clone, Copy)]
struct Look {
    /// Base color × vertex color × texture.
    base: V3,
    metallic: f32,
    roughness: f32,
    /// Transmission factor × texture (R).
    transmission: f32,
}

/// The look of material `mat` on triangle `tri` at barycentrics (`b1`,
/// `b2`) and texture coordinates (`u`, `v`).
fn look_at(
    scene: &SceneData,
    tri: &GpuTri,
    mat: &GpuMaterial,
    b1: f32,
    b2: f32,
    u: f32,
    v: f32,
) -> Look {
    let mut base = v3(mat.base_color[0], mat.base_color[1], mat.base_color[2]);
    let tex = mat.params[2].to_bits();
    if tex != NO_TEXTURE {
        base = base.mul_elem(texel(scene, tex, mat.uv_matrix, mat.uv_offset, u, v));
    }
    if tri.color[3] > 0.0 {
        let c = |k: usize| V3::from_array(unpack_color(tri.color[k].to_bits()));
        base = base.mul_elem(c(0) * (1.0 - b1 - b2) + c(1) * b1 + c(2) * b2);
    }
    let (mut metallic, mut roughness) = (mat.params[0], mat.params[1]);
    let tex = mat.mr_uv_offset[3].to_bits();
    if tex != NO_TEXTURE {
        let mr = texel_linear(scene, tex, mat.mr_uv_matrix, mat.mr_uv_offset, u, v);
        roughness *= mr.y;
        metallic *= mr.z;
    }
    let mut transmission = mat.glass[0];
    let tex = mat.trans_uv_offset[3].to_bits();
    if tex != NO_TEXTURE && transmission > 0.0 {
        transmission *= texel_linear(scene, tex, mat.trans_uv_matrix, mat.trans_uv_offset, u, v).x;
    }
    Look {
        base,
        metallic,
        roughness,
        transmission,
    }
}

/// The shading normal `n` (unit, interpolated, on the triangle's front
/// side as authored) bent by `mat`'s normal map at (`u`, `v`), in the
/// frame of the triangle's tangent.
fn mapped_normal(scene: &SceneData, tri: &GpuTri, mat: &GpuMaterial, n: V3, u: f32, v: f32) -> V3 {
    let tex = mat.normal_uv_offset[3].to_bits();
    if tex == NO_TEXTURE {
        return n;
    }
    let c = texel_linear(scene, tex, mat.normal_uv_matrix, mat.normal_uv_offset, u, v);
    let scale = mat.absorption[3];
    let local = v3(
        (2.0 * c.x - 1.0) * scale,
        (2.0 * c.y - 1.0) * scale,
        2.0 * c.z - 1.0,
    );
    let t = v3(tri.tangent[0], tri.tangent[1], tri.tangent[2]);
    let t = (t - n * n.dot(t)).normalize();
    let b = n.cross(t) * tri.tangent[3];
    let bent = (t * local.x + b * local.y + n * local.z).normalize();
    if bent.x.is_finite() && bent.y.is_finite() && bent.z.is_finite() {
        bent
    } else {
        n
    }
}

/// The index of refraction beyond a surface of `mat` over that on the
/// ray's side, where the ray hit its front (`entering`) or back: ior
/// going into a volume, 1 / ior coming out, 0 for a thin wall.
fn interface_eta(mat: &GpuMaterial, entering: bool) -> f32 {
    let ior = mat.glass[2];
    match (mat.glass[3] > 0.0, entering) {
        (false, _) => 0.0,
        (true, true) => ior,
        (true, false) => 1.0 / ior,
    }
}

/// The BSDF of material `mat` (base color `base`, textures applied) at
/// a hit with shading normal `ns` seen from `view` (`nv` = ns·view),
/// with its lobe-picking probabilities, for the interface `eta`
/// ([`interface_eta`]).
fn surface(
    tables: &[f32],
    mat: &GpuMaterial,
    look: Look,
    ns: V3,
    view: V3,
    nv: f32,
    eta: f32,
) -> Surface {
    let (base, metallic, roughness, specular) =
        (look.base, look.metallic, look.roughness, mat.params[3]);
    let (transmission, f0) = (look.transmission, mat.glass[1]);
    let alpha = (roughness * roughness).max(1e-3);
    let dielectric = base * (1.0 - metallic);
    let mut s = Surface {
        ns,
        view,
        nv,
        base,
        metallic,
        specular,
        alpha2: alpha * alpha,
        diffuse: dielectric * (1.0 - transmission),
        trans: dielectric * transmission,
        f0,
        eta,
        coat_v: specular
            * if eta > 0.0 && eta < 1.0 {
                // Leaving a volume: Fresnel with total internal reflection.
                fresnel_dielectric(f0, nv, eta)
            } else {
                f0 * albedo::lookup(tables, TABLE_ALBEDO_A, nv, roughness)
                    + (1.0 - f0) * albedo::lookup(tables, TABLE_ALBEDO_B, nv, roughness)
            },
        p_spec: 1.0,
        p_trans: 0.0,
        roughness,
        ms: V3::splat(0.0),
        ms_v: 0.0,
    };
    // The metal's multiple scattering, tinted by F_ms.
    let mut ms_albedo = V3::splat(0.0);
    if metallic > 0.0 {
        // Schlick's Fresnel averaged over the hemisphere: F0 + (1 − F0) / 21.
        let e_avg = albedo::lookup_average(tables, TABLE_ALBEDO_AVG, roughness).min(0.999);
        let f_ms = |f0: f32| {
            let f_avg = f0 + (1.0 - f0) * (1.0 / 21.0);
            f_avg * f_avg * e_avg / (1.0 - f_avg * (1.0 - e_avg))
        };
        let tint = v3(f_ms(base.x), f_ms(base.y), f_ms(base.z)) * metallic;
        s.ms = tint * (1.0 / (PI * (1.0 - e_avg)));
        s.ms_v = 1.0 - albedo::lookup(tables, TABLE_ALBEDO_A, nv, roughness);
        ms_albedo = tint * s.ms_v;
    }
    let ls = luminance(fresnel(&s, nv));
    let ld = luminance(s.diffuse) * (1.0 - s.coat_v) + luminance(ms_albedo);
    let lt = luminance(s.trans) * (1.0 - s.coat_v);
    if ld + lt > 0.0 {
        s.p_spec = if ls > 0.0 {
            (ls / (ls + ld + lt)).max(0.05)
        } else {
            0.0
        };
        s.p_trans = (1.0 - s.p_spec) * (lt / (ld + lt));
    }
    s
}

/// The random stream of one sample of full-frame pixel (`x`, `y`), and
/// its camera ray (jittered in the pixel by dimensions 0 and 1).
fn camera_ray(p: &FrameParams, x: u32, y: u32, sample: u32) -> (SampleRng, Ray) {
    let rng = SampleRng::new(
        u64::from(p.samples[3]) | u64::from(p.misc[0]) << 32,
        y * p.frame[0] + x,
        sample,
    );
    let cam = |a: [f32; 4]| v3(a[0], a[1], a[2]);
    let (tan_half, aspect) = (p.cam_fwd[3], p.cam_right[3]);
    let sx = ((x as f32 + rng.get(0)) / p.frame[0] as f32) * 2.0 - 1.0;
    let sy = 1.0 - ((y as f32 + rng.get(1)) / p.frame[1] as f32) * 2.0;
    let dir = (cam(p.cam_fwd)
        + cam(p.cam_right) * (sx * tan_half * aspect)
        + cam(p.cam_up) * (sy * tan_half))
        .normalize();
    (rng, Ray::new(cam(p.cam_pos), dir))
}

/// Perfectly smooth surfaces with nothing diffuse a guide ray follows
/// before it takes the next surface's albedo and normal.
const GUIDE_DELTA_BOUNCES: u32 = 4;

/// What sample `sample` of pixel (`x`, `y`) first meets, for the
/// denoiser's guides: the surface's base color (clamped to 1; the
/// environment's, clamped, where the ray leaves) and its shading normal
/// turned toward the camera (0 where the ray leaves). Through clear glass
/// and in mirrors (deltas) the ray goes on, refracted through glass and
/// reflected by mirrors, and takes what it meets there, tinted: what the
/// pixel shows is that surface's lighting.
pub fn first_hit(scene: &SceneData, p: &FrameParams, x: u32, y: u32, sample: u32) -> (V3, V3) {
    let (rng, mut ray) = camera_ray(p, x, y, sample);
    let seed = alpha_seed(&rng, 0);
    let present = |i, u, v| surface_present(scene, i, u, v, seed);
    let ok = |c: V3| {
        if c.x.is_finite() && c.y.is_finite() && c.z.is_finite() {
            c
        } else {
            V3::splat(0.0)
        }
    };
    let mut tint = V3::splat(1.0);
    for _ in 0..=GUIDE_DELTA_BOUNCES {
        let Some(hit) = intersect_bvh(&scene.nodes, &scene.tris, &ray, present) else {
            let env = env_radiance(scene, ray.d, true).min(V3::splat(1.0));
            return (ok(env.mul_elem(tint)), V3::splat(0.0));
        };
        let tri = &scene.tris[hit.tri as usize];
        let mat = &scene.materials[tri.material() as usize];
        let xyz = |a: [f32; 4]| v3(a[0], a[1], a[2]);
        let w = 1.0 - hit.u - hit.v;
        let (u, v) = uv_at(tri, hit.u, hit.v);
        let smooth = (xyz(tri.n0) * w + xyz(tri.n1) * hit.u + xyz(tri.n2) * hit.v).normalize();
        let mut n = mapped_normal(scene, tri, mat, smooth, u, v);
        let [c0, c1, c2] = tri.corners();
        let entering = (c1 - c0).cross(c2 - c0).dot(ray.d) < 0.0;
        if n.dot(ray.d) > 0.0 {
            n = -n;
        }
        let look = look_at(scene, tri, mat, hit.u, hit.v, u, v);
        let alpha = (look.roughness * look.roughness).max(1e-3);
        let transmission = look.transmission * (1.0 - look.metallic);
        let delta =
            alpha * alpha <= SINGULAR_ALPHA2 && (look.metallic >= 1.0 || transmission >= 1.0);
        if !delta {
            return (ok(look.base.min(V3::splat(1.0)).mul_elem(tint)), ok(n));
        }
        tint = tint.mul_elem(look.base.min(V3::splat(1.0)));
        let at = ray.o + ray.d * hit.t;
        let eta = interface_eta(mat, entering);
        let mirrored = ray.d + n * (2.0 * -ray.d.dot(n));
        let next = if transmission >= 1.0 && eta > 0.0 {
            refract(-ray.d, n, 1.0 / eta).unwrap_or(mirrored)
        } else if transmission >= 1.0 {
            ray.d
        } else {
            mirrored
        };
        let side = if next.dot(n) > 0.0 { 1.0 } else { -1.0 };
        ray = Ray::new(at + n * (side * p.cam_pos[3]), next.normalize());
    }
    (ok(tint), V3::splat(0.0))
}

/// Radiance of one sample of full-frame pixel (`x`, `y`).
pub fn trace_sample(scene: &SceneData, p: &FrameParams, x: u32, y: u32, sample: u32) -> V3 {
    let (rng, mut ray) = camera_ray(p, x, y, sample);
    let cam = |a: [f32; 4]| v3(a[0], a[1], a[2]);
    let eps = p.cam_pos[3];
    let light_count = p.misc[1];
    let mut throughput = V3::splat(1.0);
    let mut radiance = V3::splat(0.0);
    let max_bounces = p.samples[2];
    let mut bounce = 0u32;
    // The BSDF pdf of the direction the current ray was sampled with
    // (0 for the camera ray: its emission is taken whole).
    let mut ray_pdf = 0.0f32;
    loop {
        let seed = alpha_seed(&rng, bounce);
        let present = |i, u, v| surface_present(scene, i, u, v, seed);
        let Some(hit) = intersect_bvh(&scene.nodes, &scene.tris, &ray, present) else {
            // The environment, weighted against light sampling where
            // that could have drawn this direction too.
            let mut w_env = 1.0;
            if ray_pdf > 0.0 && scene.env_pick > 0.0 {
                w_env = power_heuristic(ray_pdf, scene.env_pick * env_pdf(scene, ray.d));
            }
            let seen = env_radiance(scene, ray.d, bounce == 0);
            radiance = radiance + throughput.mul_elem(seen) * w_env;
            break;
        };
        let tri = &scene.tris[hit.tri as usize];
        let mat = &scene.materials[tri.material() as usize];
        let [c0, c1, c2] = tri.corners();
        let cross = (c1 - c0).cross(c2 - c0);
        let mut ng = cross.normalize();
        // The ray left a volume through its boundary's back: absorption
        // along the way.
        let entering = cross.dot(ray.d) < 0.0;
        let volume = mat.glass[3] > 0.0;
        if volume && !entering {
            let a = mat.absorption;
            throughput = throughput.mul_elem(v3(
                (-a[0] * hit.t).exp(),
                (-a[1] * hit.t).exp(),
                (-a[2] * hit.t).exp(),
            ));
        }
        // Emission: weighted against light sampling, which could have
        // found this triangle too.
        let pick = tri.uv_v[3];
        let mut w_emit = 1.0;
        if ray_pdf > 0.0 && pick > 0.0 {
            let light_pdf = pick * hit.t * hit.t * 2.0 / cross.dot(ray.d).abs();
            w_emit = power_heuristic(ray_pdf, light_pdf);
        }
        let (u, v) = uv_at(tri, hit.u, hit.v);
        radiance = radiance + throughput.mul_elem(emitted(scene, mat, u, v)) * w_emit;
        if bounce >= max_bounces {
            break;
        }
        let w = 1.0 - hit.u - hit.v;
        if ng.dot(ray.d) > 0.0 {
            ng = -ng;
        }
        let smooth = (cam(tri.n0) * w + cam(tri.n1) * hit.u + cam(tri.n2) * hit.v).normalize();
        let mut ns = mapped_normal(scene, tri, mat, smooth, u, v);
        if ns.dot(ng) < 0.0 {
            ns = -ns;
        }
        let view = -ray.d;
        let mut nv = ns.dot(view);
        if nv.is_nan() || nv <= 1e-6 {
            ns = ng;
            nv = ns.dot(view);
        }
        let look = look_at(scene, tri, mat, hit.u, hit.v, u, v);
        let eta = interface_eta(mat, entering);
        let s = surface(&scene.tables, mat, look, ns, view, nv, eta);
        let dim = 2 + DIMS_PER_BOUNCE * bounce;
        let at = ray.o + ray.d * hit.t;
        let origin = at + ng * eps;
        // Where rays leaving toward `l` start: on the side `l` is on, so
        // transmitted rays start beyond the surface.
        let start = |l: V3| {
            if l.dot(ng) > 0.0 {
                origin
            } else {
                at - ng * eps
            }
        };
        // A direction the geometric and the shading normal agree on (and
        // that is above the surface unless the material transmits).
        let usable = |l: V3| {
            let (g, n) = (l.dot(ng), l.dot(ns));
            (g > 0.0 && n > 0.0) || (g < 0.0 && n < 0.0 && s.p_trans > 0.0)
        };

        // A perfectly smooth surface with nothing diffuse (clear glass, a
        // mirror) is a delta: light samples could only find it by chance
        // (fireflies: a point light through a glass ball), so it gets
        // none, and emission its BSDF samples reach counts whole.
        let singular = s.alpha2 <= SINGULAR_ALPHA2 && s.diffuse.max_elem() <= 0.0;

        // Next-event estimation.
        if light_count > 0 && !singular {
            let xi = [
                rng.get(dim + 3),
                rng.get(dim + 4),
                rng.get(dim + 5),
                rng.get(dim + 6),
                rng.get(dim + 9),
                rng.get(dim + 10),
            ];
            if let Some(light) = sample_light(scene, light_count, origin, xi, pcg(seed))
                && usable(light.dir)
            {
                let (f, bsdf_pdf) = eval_bsdf(&scene.tables, &s, light.dir);
                let weight = if light.pdf > 0.0 {
                    power_heuristic(light.pdf, bsdf_pdf)
                } else {
                    1.0
                };
                let contribution = throughput.mul_elem(f).mul_elem(light.value) * weight;
                if contribution.max_elem() > 0.0
                    && !occluded(
                        &scene.nodes,
                        &scene.tris,
                        &Ray::new(start(light.dir), light.dir),
                        light.t_max,
                        |i, u, v| surface_present(scene, i, u, v, pcg(seed)),
                    )
                {
                    radiance = radiance + contribution;
                }
            }
        }

        // BSDF sampling continues the path.
        let (xi0, xi1, xi2) = (rng.get(dim), rng.get(dim + 1), rng.get(dim + 2));
        let Some(l) = sample_bsdf(&s, xi0, xi1, xi2).filter(|&l| usable(l)) else {
            break;
        };
        let (f, pdf) = eval_bsdf(&scene.tables, &s, l);
        if pdf.is_nan() || pdf <= 0.0 {
            break;
        }
        throughput = throughput.mul_elem(f) * (1.0 / pdf);
        if bounce >= ROULETTE_AFTER {
            let survive = throughput.max_elem().min(1.0);
            if rng.get(dim + 7) >= survive {
                break;
            }
            throughput = throughput * (1.0 / survive);
        }
        ray_pdf = if singular { 0.0 } else { pdf };
        ray = Ray::new(start(l), l);
        bounce += 1;
    }
    // A non-finite or negative sample (never expected) counts as black.
    let ok = |c: f32| (0.0..1e30).contains(&c);
    if ok(radiance.x) && ok(radiance.y) && ok(radiance.z) {
        radiance
    } else {
        V3::splat(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{Material, Scene, Texture, TextureSampling, Triangle, Wrap};
    use bytemuck::Zeroable;

    /// A scene whose only material shows a 2×2 texture (red, green / blue,
    /// white; sRGB 255 and 0, so linear 1 and 0) sampled by `sampling`.
    fn with_texture(sampling: TextureSampling) -> SceneData {
        let px = |r: u8, g: u8, b: u8| u32::from_le_bytes([r, g, b, 255]);
        let scene = Scene {
            triangles: vec![Triangle::new(
                [v3(0.0, 0.0, 0.0), v3(1.0, 0.0, 0.0), v3(0.0, 1.0, 0.0)],
                [v3(0.0, 0.0, 1.0); 3],
                [[0.0; 2]; 3],
                0,
            )],
            materials: vec![Material {
                base_color: [1.0; 4],
                emissive: [0.0; 3],
                metallic: 0.0,
                roughness: 1.0,
                specular: 0.0,
                base_color_texture: Some(0),
                base_color_sampler: sampling,
                ..Material::default()
            }],
            textures: vec![Texture {
                width: 2,
                height: 2,
                texels: vec![
                    px(255, 0, 0),
                    px(0, 255, 0),
                    px(0, 0, 255),
                    px(255, 255, 255),
                ],
            }],
            ..Scene::default()
        };
        SceneData::build(&scene)
    }

    fn at(data: &SceneData, u: f32, v: f32) -> [f32; 3] {
        let m = &data.materials[0];
        texel(data, 0, m.uv_matrix, m.uv_offset, u, v).to_array()
    }

    /// The BSDF of a white material (metallic, roughness, transmission)
    /// seen at `angle` (radians) off the normal +z, as a thin wall
    /// (`volume` false) or a volume boundary entered or left.
    fn bsdf(
        metallic: f32,
        roughness: f32,
        transmission: f32,
        volume: bool,
        entering: bool,
        angle: f32,
    ) -> Surface {
        let mut mat = GpuMaterial::zeroed();
        mat.params = [metallic, roughness, f32::from_bits(NO_TEXTURE), 1.0];
        mat.glass = [transmission, 0.04, 1.5, f32::from(u8::from(volume))];
        let view = v3(angle.sin(), 0.0, angle.cos());
        surface(
            &crate::layout::lookup_tables(),
            &mat,
            Look {
                base: V3::splat(1.0),
                metallic,
                roughness,
                transmission,
            },
            v3(0.0, 0.0, 1.0),
            view,
            view.z,
            interface_eta(&mat, entering),
        )
    }

    /// A reproducible stream of uniform numbers in [0, 1).
    fn uniform(i: u32, k: u32) -> f32 {
        (pcg(pcg(i) ^ k.wrapping_mul(0x9e37_79b9)) >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// (∫ f·|cos| by sampling the BSDF, the same by uniform directions,
    /// ∫ pdf by uniform directions, share of BSDF samples that exist).
    fn integrals(s: &Surface) -> (f64, f64, f64, f64) {
        let tables = crate::layout::lookup_tables();
        let n = 400_000u32;
        let (mut by_bsdf, mut by_sphere, mut pdf_mass, mut made) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            if let Some(l) = sample_bsdf(s, uniform(i, 0), uniform(i, 1), uniform(i, 2)) {
                let (f, pdf) = eval_bsdf(&tables, s, l);
                if pdf > 0.0 {
                    by_bsdf += f64::from(f.x / pdf);
                    made += 1.0;
                }
            }
            let z = 1.0 - 2.0 * uniform(i, 3);
            let r = (1.0 - z * z).max(0.0).sqrt();
            let phi = 2.0 * PI * uniform(i, 4);
            let (f, pdf) = eval_bsdf(&tables, s, v3(r * phi.cos(), r * phi.sin(), z));
            by_sphere += f64::from(f.x) * 4.0 * std::f64::consts::PI;
            pdf_mass += f64::from(pdf) * 4.0 * std::f64::consts::PI;
        }
        let n = f64::from(n);
        (by_bsdf / n, by_sphere / n, pdf_mass / n, made / n)
    }

    #[test]
    fn sampling_the_bsdf_matches_evaluating_it_for_every_lobe() {
        let cases = [
            ("rough dielectric", bsdf(0.0, 0.6, 0.0, false, true, 0.7)),
            ("rough metal", bsdf(1.0, 0.6, 0.0, false, true, 0.7)),
            (
                "half-transmissive thin wall",
                bsdf(0.0, 0.6, 0.5, false, true, 0.7),
            ),
            ("rough glass entered", bsdf(0.0, 0.6, 1.0, true, true, 0.7)),
            ("rough glass left", bsdf(0.0, 0.6, 1.0, true, false, 0.5)),
        ];
        for (what, s) in &cases {
            let (by_bsdf, by_sphere, pdf_mass, made) = integrals(s);
            println!(
                "{what}: ∫f {by_bsdf:.4} (sampled) {by_sphere:.4} (uniform); ∫pdf {pdf_mass:.4}, samples made {made:.4}"
            );
            // Both estimators see the same integral: the pdf is the
            // density sampling really has.
            assert!(
                (by_bsdf - by_sphere).abs() < 0.02 * by_sphere.max(0.1),
                "{what}: {by_bsdf} vs {by_sphere}"
            );
            assert!(
                (pdf_mass - made).abs() < 0.02,
                "{what}: pdf integrates to {pdf_mass}, {made} of samples made"
            );
            // Single-scattering GGX never gains energy.
            assert!(by_bsdf < 1.0 + 0.01, "{what}: albedo {by_bsdf}");
        }
    }

    #[test]
    fn a_white_coated_dielectric_reflects_everything() {
        for roughness in [0.0, 0.3, 0.6, 1.0] {
            for angle in [0.0f32, 0.6, 1.2, 1.5] {
                let (by_bsdf, by_sphere, ..) =
                    integrals(&bsdf(0.0, roughness, 0.0, false, true, angle));
                println!("roughness {roughness} at {angle}: {by_bsdf:.4} {by_sphere:.4}");
                assert!(
                    (by_bsdf - 1.0).abs() < 0.005,
                    "roughness {roughness} at {angle}: {by_bsdf}"
                );
            }
        }
    }

    #[test]
    fn a_white_rough_metal_reflects_everything_with_multiple_scattering() {
        // Within the tables' resolution (32 × 32, 16² strata a cell).
        for roughness in [0.3, 0.6, 1.0] {
            for angle in [0.0f32, 0.8, 1.3] {
                let (by_bsdf, by_sphere, ..) =
                    integrals(&bsdf(1.0, roughness, 0.0, false, true, angle));
                println!("metal roughness {roughness} at {angle}: {by_bsdf:.4} {by_sphere:.4}");
                assert!(
                    (by_bsdf - 1.0).abs() < 0.015,
                    "roughness {roughness} at {angle}: {by_bsdf}"
                );
            }
        }
    }

    #[test]
    fn smooth_glass_refracts_by_snells_law_and_keeps_all_energy() {
        for (entering, angle) in [(true, 0.3f32), (true, 1.2), (false, 0.3), (false, 0.6)] {
            let s = bsdf(0.0, 0.0, 1.0, true, entering, angle);
            // Reflected and transmitted, nothing lost, even past the
            // critical angle (41.8° leaving glass of ior 1.5).
            let (by_bsdf, ..) = integrals(&s);
            assert!(
                (by_bsdf - 1.0).abs() < 0.01,
                "entering {entering} at {angle}: {by_bsdf}"
            );
            let (mut refracted, mut checked, mut off) = (0, 0, 0);
            for i in 0..2000 {
                let Some(l) = sample_bsdf(&s, uniform(i, 0), uniform(i, 1), uniform(i, 2)) else {
                    continue;
                };
                if l.z < 0.0 {
                    refracted += 1;
                    let sin_out = (1.0 - l.z * l.z).sqrt();
                    let want = angle.sin() / s.eta;
                    checked += 1;
                    // GGX's long tail leaves a few microfacets far off
                    // the normal even at the smallest roughness.
                    if (sin_out - want).abs() > 0.01 {
                        off += 1;
                    }
                    assert!(l.x < 0.0, "the refracted ray keeps going the same way");
                }
            }
            assert!(off * 100 <= checked, "{off} of {checked} off Snell's law");
            let critical = !entering && angle.sin() * 1.5 > 1.0;
            assert_eq!(
                refracted == 0,
                critical,
                "entering {entering} at {angle}: {refracted} refracted"
            );
            assert!(critical || checked > 1000);
        }
    }

    const RED: [f32; 3] = [1.0, 0.0, 0.0];
    const GREEN: [f32; 3] = [0.0, 1.0, 0.0];

    #[test]
    fn nearest_texels_wrap_by_repeat_clamp_and_mirror() {
        let nearest = |wrap_u| TextureSampling {
            wrap_u,
            bilinear: false,
            ..TextureSampling::default()
        };
        let repeat = with_texture(nearest(Wrap::Repeat));
        assert_eq!(at(&repeat, 0.25, 0.25), RED);
        assert_eq!(at(&repeat, 0.75, 0.25), GREEN);
        assert_eq!(at(&repeat, 1.25, 0.25), RED);
        assert_eq!(at(&repeat, -0.25, 0.25), GREEN);
        let clamp = with_texture(nearest(Wrap::Clamp));
        assert_eq!(at(&clamp, 1.75, 0.25), GREEN);
        assert_eq!(at(&clamp, -3.0, 0.25), RED);
        // Mirrored: texels 0 1 | 1 0 | 0 1 …
        let mirror = with_texture(nearest(Wrap::Mirror));
        assert_eq!(at(&mirror, 1.25, 0.25), GREEN);
        assert_eq!(at(&mirror, 1.75, 0.25), RED);
        assert_eq!(at(&mirror, -0.25, 0.25), RED);
        // Hostile coordinates stay in the texture.
        for u in [f32::MAX, f32::MIN, 1e30, f32::NAN] {
            for data in [&repeat, &clamp, &mirror] {
                let c = at(data, u, 0.25);
                assert!(c.iter().all(|x| (0.0..=1.0).contains(x)), "{u}: {c:?}");
            }
        }
    }

    #[test]
    fn bilinear_filtering_blends_neighbours_in_linear_space() {
        let data = with_texture(TextureSampling {
            wrap_u: Wrap::Clamp,
            wrap_v: Wrap::Clamp,
            ..TextureSampling::default()
        });
        // At a texel's centre, that texel; halfway between red and green,
        // half of each (linear values, not sRGB bytes).
        assert_eq!(at(&data, 0.25, 0.25), RED);
        assert_eq!(at(&data, 0.5, 0.25), [0.5, 0.5, 0.0]);
        // The middle of all four: their mean.
        assert_eq!(at(&data, 0.5, 0.5), [0.5, 0.5, 0.5]);
    }

    #[test]
    fn the_texture_transform_scales_rotates_and_offsets_uv() {
        let nearest = |matrix, offset| TextureSampling {
            matrix,
            offset,
            bilinear: false,
            ..TextureSampling::default()
        };
        // Scale ×2: u = 0.3 reads 0.6 (green).
        let scaled = with_texture(nearest([2.0, 0.0, 0.0, 2.0], [0.0; 2]));
        assert_eq!(at(&scaled, 0.3, 0.1), GREEN);
        // Offset +0.5 in u.
        let moved = with_texture(nearest([1.0, 0.0, 0.0, 1.0], [0.5, 0.0]));
        assert_eq!(at(&moved, 0.25, 0.25), GREEN);
        // A quarter turn swaps the axes: u' = v, v' = −u.
        let turned = with_texture(nearest([0.0, 1.0, -1.0, 0.0], [0.0; 2]));
        assert_eq!(at(&turned, 0.75, 0.75), GREEN);
        assert_eq!(at(&turned, 0.25, 0.75), [1.0, 1.0, 1.0]);
    }
}
