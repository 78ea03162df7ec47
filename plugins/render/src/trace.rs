//! The path tracing algorithm, in Rust: the CPU reference. `render.wgsl`
//! is a line-by-line port; keep the two in step.
//!
//! Model: camera rays jittered inside the pixel. The surface BSDF is GGX
//! specular (Smith G, Schlick Fresnel F = mix(s·F_d, F_m, metallic) with
//! the dielectric F_d = 0.04 + 0.96 (1 − c)^5 scaled by the specular
//! factor s and the metal F_m = base + (1 − base)(1 − c)^5) plus Lambert
//! diffuse (base × (1 − metallic) × (1 − s·F_d(n·v))). With s = 0 a
//! material is pure Lambert (the white furnace renders exactly 1); with
//! s = 1 it is glTF's metallic-roughness model, which, like any
//! single-scattering GGX, loses some energy at grazing angles.
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

use crate::bvh::{MAX_DEPTH, Node};
use crate::layout::{
    FrameParams, GpuMaterial, GpuTri, LIGHT_DIRECTIONAL, LIGHT_SPOT, LIGHT_TRIANGLE, NO_TEXTURE,
    SAMPLER_BILINEAR, SceneData,
};
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

/// Closest hit through the BVH (the same traversal order as the kernel),
/// skipping candidates where `present(triangle, u, v)` says the surface is
/// not there (alpha).
pub fn intersect_bvh<T: Corners>(
    nodes: &[Node],
    tris: &[T],
    ray: &Ray,
    present: impl Fn(u32, f32, f32) -> bool,
) -> Option<Hit> {
    let mut best: Option<Hit> = None;
    let mut t_max = f32::INFINITY;
    let mut stack = [0u32; MAX_DEPTH + 2];
    let mut sp = 1;
    while sp > 0 {
        sp -= 1;
        let node = &nodes[stack[sp] as usize];
        if hit_box(node, ray, t_max).is_none() {
            continue;
        }
        if node.count > 0 {
            for i in node.a..node.a + node.count {
                if let Some((t, u, v)) = hit_triangle(tris[i as usize].corners(), ray, t_max)
                    && present(i, u, v)
                {
                    t_max = t;
                    best = Some(Hit { t, u, v, tri: i });
                }
            }
        } else {
            let (l, r) = (node.a, node.a + 1);
            let tl = hit_box(&nodes[l as usize], ray, t_max);
            let tr = hit_box(&nodes[r as usize], ray, t_max);
            // Push the far child first so the near one is visited first.
            let (near, far, tn, tf) = if tr.unwrap_or(f32::INFINITY) < tl.unwrap_or(f32::INFINITY) {
                (r, l, tr, tl)
            } else {
                (l, r, tl, tr)
            };
            if tf.is_some() {
                stack[sp] = far;
                sp += 1;
            }
            if tn.is_some() {
                stack[sp] = near;
                sp += 1;
            }
        }
    }
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

fn smith_g1(alpha2: f32, c: f32) -> f32 {
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
    let lut = |shift: u32| scene.srgb_lut[((t >> shift) & 255) as usize];
    v3(lut(0), lut(8), lut(16))
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

/// Texture `tex` at (`u`, `v`) under the transform `m`, `o` and the
/// sampler bits in `o[2]`: wrapped, and filtered (bilinear in linear
/// space, or the nearest texel).
fn texel(scene: &SceneData, tex: u32, m: [f32; 4], o: [f32; 4], u: f32, v: f32) -> V3 {
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
    let mut stack = [0u32; MAX_DEPTH + 2];
    let mut sp = 1;
    while sp > 0 {
        sp -= 1;
        let node = &nodes[stack[sp] as usize];
        if hit_box(node, ray, t_max).is_none() {
            continue;
        }
        if node.count > 0 {
            for i in node.a..node.a + node.count {
                if let Some((_, u, v)) = hit_triangle(tris[i as usize].corners(), ray, t_max)
                    && present(i, u, v)
                {
                    return true;
                }
            }
        } else if sp + 2 <= stack.len() {
            stack[sp] = node.a;
            stack[sp + 1] = node.a + 1;
            sp += 2;
        }
    }
    false
}

/// Random numbers each bounce draws: lobe, direction ×2, light, alias
/// coin, point on the light ×2, Russian roulette, and the seed of the
/// stochastic alpha of the rays traced from this bounce's hit.
pub const DIMS_PER_BOUNCE: u32 = 9;

/// The alpha seed of rays traced in iteration `bounce` (the camera ray
/// for 0; a shadow ray uses its hash).
fn alpha_seed(rng: &SampleRng, bounce: u32) -> u32 {
    (rng.get(2 + DIMS_PER_BOUNCE * bounce + 8) * 16_777_216.0) as u32
}

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
    diffuse: V3,
    fd_v: f32,
    p_spec: f32,
}

/// Fresnel at cosine `c`: the dielectric's (scaled by the specular
/// factor) blended with the metal's.
fn fresnel(s: &Surface, c: f32) -> V3 {
    let fd = s.specular * (0.04 + 0.96 * pow5(1.0 - c));
    V3::splat(fd * (1.0 - s.metallic))
        + (s.base + (V3::splat(1.0) - s.base) * pow5(1.0 - c)) * s.metallic
}

fn ggx_d(alpha2: f32, nh: f32) -> f32 {
    let k = nh * nh * (alpha2 - 1.0) + 1.0;
    alpha2 / (PI * k * k)
}

/// BSDF × cosine toward `l`, and the pdf (solid angle) with which BSDF
/// sampling picks `l`; zeros below the shading surface.
fn eval_bsdf(s: &Surface, l: V3) -> (V3, f32) {
    let nl = s.ns.dot(l);
    if nl.is_nan() || nl <= 0.0 {
        return (V3::splat(0.0), 0.0);
    }
    let h = (s.view + l).normalize();
    let nh = s.ns.dot(h).max(0.0);
    let vh = s.view.dot(h).max(1e-6);
    let d = ggx_d(s.alpha2, nh);
    let g = smith_g1(s.alpha2, s.nv) * smith_g1(s.alpha2, nl);
    let spec = fresnel(s, vh) * (d * g / (4.0 * s.nv));
    let diff = s.diffuse * ((1.0 - s.fd_v) * nl / PI);
    let pdf = s.p_spec * d * nh / (4.0 * vh) + (1.0 - s.p_spec) * nl / PI;
    (spec + diff, pdf)
}

fn power_heuristic(a: f32, b: f32) -> f32 {
    let (a2, b2) = (a * a, b * b);
    if a2 + b2 > 0.0 { a2 / (a2 + b2) } else { 0.0 }
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
    xi: [f32; 4],
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

/// Radiance of one sample of full-frame pixel (`x`, `y`).
pub fn trace_sample(scene: &SceneData, p: &FrameParams, x: u32, y: u32, sample: u32) -> V3 {
    let rng = SampleRng::new(
        u64::from(p.samples[3]) | u64::from(p.misc[0]) << 32,
        y * p.frame[0] + x,
        sample,
    );
    let cam = |a: [f32; 4]| v3(a[0], a[1], a[2]);
    let (tan_half, aspect, eps) = (p.cam_fwd[3], p.cam_right[3], p.cam_pos[3]);
    let light_count = p.misc[1];
    let sx = ((x as f32 + rng.get(0)) / p.frame[0] as f32) * 2.0 - 1.0;
    let sy = 1.0 - ((y as f32 + rng.get(1)) / p.frame[1] as f32) * 2.0;
    let dir = (cam(p.cam_fwd)
        + cam(p.cam_right) * (sx * tan_half * aspect)
        + cam(p.cam_up) * (sy * tan_half))
        .normalize();
    let mut ray = Ray::new(cam(p.cam_pos), dir);
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
            radiance = radiance + throughput.mul_elem(cam(p.env));
            break;
        };
        let tri = &scene.tris[hit.tri as usize];
        let mat = &scene.materials[tri.material() as usize];
        let [c0, c1, c2] = tri.corners();
        let cross = (c1 - c0).cross(c2 - c0);
        let mut ng = cross.normalize();
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
        let mut ns = (cam(tri.n0) * w + cam(tri.n1) * hit.u + cam(tri.n2) * hit.v).normalize();
        if ns.dot(ng) < 0.0 {
            ns = -ns;
        }
        let view = -ray.d;
        let mut nv = ns.dot(view);
        if nv.is_nan() || nv <= 1e-6 {
            ns = ng;
            nv = ns.dot(view);
        }
        let mut base = cam(mat.base_color);
        let tex = mat.params[2].to_bits();
        if tex != NO_TEXTURE {
            base = base.mul_elem(texel(scene, tex, mat.uv_matrix, mat.uv_offset, u, v));
        }
        let (metallic, roughness, specular) = (mat.params[0], mat.params[1], mat.params[3]);
        let alpha = (roughness * roughness).max(1e-3);
        let mut s = Surface {
            ns,
            view,
            nv,
            base,
            metallic,
            specular,
            alpha2: alpha * alpha,
            diffuse: base * (1.0 - metallic),
            fd_v: specular * (0.04 + 0.96 * pow5(1.0 - nv)),
            p_spec: 1.0,
        };
        let ls = luminance(fresnel(&s, nv));
        let ld = luminance(s.diffuse) * (1.0 - s.fd_v);
        if ld > 0.0 {
            s.p_spec = if ls > 0.0 {
                (ls / (ls + ld)).max(0.05)
            } else {
                0.0
            };
        }
        let dim = 2 + DIMS_PER_BOUNCE * bounce;
        let origin = ray.o + ray.d * hit.t + ng * eps;

        // Next-event estimation.
        if light_count > 0 {
            let xi = [
                rng.get(dim + 3),
                rng.get(dim + 4),
                rng.get(dim + 5),
                rng.get(dim + 6),
            ];
            if let Some(light) = sample_light(scene, light_count, origin, xi, pcg(seed))
                && light.dir.dot(ng) > 0.0
            {
                let (f, bsdf_pdf) = eval_bsdf(&s, light.dir);
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
                        &Ray::new(origin, light.dir),
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
        let l = if xi0 < s.p_spec {
            let phi = 2.0 * PI * xi1;
            let cos_t = ((1.0 - xi2) / (1.0 + (s.alpha2 - 1.0) * xi2)).sqrt();
            let sin_t = (1.0 - cos_t * cos_t).max(0.0).sqrt();
            let h = to_world(ns, v3(sin_t * phi.cos(), sin_t * phi.sin(), cos_t));
            h * (2.0 * view.dot(h)) - view
        } else {
            let r = xi1.sqrt();
            let phi = 2.0 * PI * xi2;
            to_world(
                ns,
                v3(r * phi.cos(), r * phi.sin(), (1.0 - xi1).max(0.0).sqrt()),
            )
        };
        if l.dot(ng).is_nan() || l.dot(ng) <= 0.0 {
            break;
        }
        let (f, pdf) = eval_bsdf(&s, l);
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
        ray_pdf = pdf;
        ray = Ray::new(origin, l);
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

    /// A scene whose only material shows a 2×2 texture (red, green / blue,
    /// white; sRGB 255 and 0, so linear 1 and 0) sampled by `sampling`.
    fn with_texture(sampling: TextureSampling) -> SceneData {
        let px = |r: u8, g: u8, b: u8| u32::from_le_bytes([r, g, b, 255]);
        let scene = Scene {
            triangles: vec![Triangle {
                p: [v3(0.0, 0.0, 0.0), v3(1.0, 0.0, 0.0), v3(0.0, 1.0, 0.0)],
                n: [v3(0.0, 0.0, 1.0); 3],
                uv: [[0.0; 2]; 3],
                material: 0,
            }],
            materials: vec![Material {
                base_color: [1.0; 4],
                emissive: [0.0; 3],
                metallic: 0.0,
                roughness: 1.0,
                specular: 0.0,
                base_color_texture: Some(0),
                base_color_sampler: sampling,
                emissive_texture: None,
                emissive_sampler: TextureSampling::default(),
                alpha: Default::default(),
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
