// One pass of the path tracer: every invocation owns one pixel of a band
// of rows of the tile and adds `samples.y` samples, in sample order, to its
// accumulator. A port of `trace.rs` (the CPU reference); keep in step.

struct Params {
    frame: vec4<u32>,     // frame w, frame h, tile x, tile y
    tile: vec4<u32>,      // tile w, tile h, first row, rows
    samples: vec4<u32>,   // first sample, count, max bounces, seed lo
    misc: vec4<u32>,      // seed hi, light count, env texture, env pick probability bits
    cam_pos: vec4<f32>,   // w = epsilon
    cam_fwd: vec4<f32>,   // w = tan(yfov / 2)
    cam_right: vec4<f32>, // w = aspect
    cam_up: vec4<f32>,
    env: vec4<f32>,       // env radiance multiplier; w = rotation in turns
}

struct Tri {
    p0: vec4<f32>, p1: vec4<f32>, p2: vec4<f32>, n0: vec4<f32>, n1: vec4<f32>, n2: vec4<f32>, uv_v: vec4<f32>,
    tangent: vec4<f32>, color: vec4<f32>,
}
struct Node { bmin: vec3<f32>, a: u32, bmax: vec3<f32>, count: u32 }
struct Material {
    base_color: vec4<f32>, emissive: vec4<f32>, params: vec4<f32>,
    uv_matrix: vec4<f32>, uv_offset: vec4<f32>, emit_uv_matrix: vec4<f32>, emit_uv_offset: vec4<f32>,
    glass: vec4<f32>, absorption: vec4<f32>,
    mr_uv_matrix: vec4<f32>, mr_uv_offset: vec4<f32>, normal_uv_matrix: vec4<f32>, normal_uv_offset: vec4<f32>,
    trans_uv_matrix: vec4<f32>, trans_uv_offset: vec4<f32>,
}
struct Light { position: vec4<f32>, intensity: vec4<f32>, spot: vec4<f32>, table: vec4<f32> }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> tris: array<Tri>;
@group(0) @binding(2) var<storage, read> nodes: array<Node>;
@group(0) @binding(3) var<storage, read> materials: array<Material>;
@group(0) @binding(4) var<storage, read> tex_meta: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> texels: array<u32>;
@group(0) @binding(6) var<storage, read> tables: array<f32>; // sRGB LUT, coat albedo A, B
@group(0) @binding(7) var<storage, read_write> accum: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> lights: array<Light>;

const PI: f32 = 3.14159265358979;
const MIN_DIR: f32 = 1e-12;
const NO_TEXTURE: u32 = 0xffffffffu;
const SAMPLER_BILINEAR: u32 = 16u;
const COUNT_BITS: u32 = 5u; // bvh::COUNT_BITS
const COUNT_MASK: u32 = 31u;
const END: u32 = 0x7ffffffu; // bvh::END
const DIMS_PER_BOUNCE: u32 = 11u;
const ROULETTE_AFTER: u32 = 3u;
const SINGULAR_ALPHA2: f32 = 1.5e-6;
const LIGHT_TRIANGLE: u32 = 0u;
const ALBEDO_SIZE: u32 = 32u; // albedo::SIZE
const TABLE_ALBEDO_A: u32 = 256u;
const TABLE_ALBEDO_B: u32 = 1280u; // TABLE_ALBEDO_A + ALBEDO_SIZE²
const TABLE_ALBEDO_AVG: u32 = 2304u; // TABLE_ALBEDO_B + ALBEDO_SIZE²
const TABLE_ENV: u32 = 2336u; // TABLE_ALBEDO_AVG + ALBEDO_SIZE
const LIGHT_SPOT: u32 = 2u;
const LIGHT_DIRECTIONAL: u32 = 3u;
const LIGHT_ENVIRONMENT: u32 = 4u;

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn rand(key: u32, dim: u32) -> f32 {
    return f32(pcg(key ^ pcg(dim)) >> 8u) * (1.0 / 16777216.0);
}

struct Ray { o: vec3<f32>, d: vec3<f32>, inv: vec3<f32> }

fn safe(c: f32) -> f32 {
    if abs(c) < MIN_DIR {
        if c < 0.0 { return -MIN_DIR; }
        return MIN_DIR;
    }
    return c;
}

fn make_ray(o: vec3<f32>, d: vec3<f32>) -> Ray {
    return Ray(o, d, vec3<f32>(1.0 / safe(d.x), 1.0 / safe(d.y), 1.0 / safe(d.z)));
}

// Entry distance, or -1 when the box is missed or entered after t_max.
fn hit_box(n: Node, r: Ray, t_max: f32) -> f32 {
    let t0 = (n.bmin - r.o) * r.inv;
    let t1 = (n.bmax - r.o) * r.inv;
    let lo = min(t0, t1);
    let hi = max(t0, t1);
    let enter = max(max(max(lo.x, lo.y), lo.z), 0.0);
    let exit = min(min(hi.x, hi.y), hi.z);
    if enter <= exit && enter < t_max { return enter; }
    return -1.0;
}

struct Hit { t: f32, u: f32, v: f32, tri: u32, found: bool }

// Möller–Trumbore, two-sided: (t, u, v) for 0 < t < t_max, else t = -1.
fn hit_triangle(tri: Tri, r: Ray, t_max: f32) -> vec3<f32> {
    let miss = vec3<f32>(-1.0, 0.0, 0.0);
    let c0 = tri.p0.xyz;
    let e1 = tri.p1.xyz - c0;
    let e2 = tri.p2.xyz - c0;
    let pv = cross(r.d, e2);
    let det = dot(e1, pv);
    if abs(det) < 1e-20 { return miss; }
    let inv_det = 1.0 / det;
    let tv = r.o - c0;
    let u = dot(tv, pv) * inv_det;
    if u < 0.0 || u > 1.0 { return miss; }
    let qv = cross(tv, e1);
    let v = dot(r.d, qv) * inv_det;
    if v < 0.0 || u + v > 1.0 { return miss; }
    let t = dot(e2, qv) * inv_det;
    if t > 0.0 && t < t_max { return vec3<f32>(t, u, v); }
    return miss;
}

// Stackless BVH walk (bvh.rs, trace.rs): a box the ray enters leads to
// the first child or, for a leaf, its triangles; a miss or a finished leaf
// to the node's miss link (count >> COUNT_BITS).
fn intersect(r: Ray, seed: u32) -> Hit {
    var best = Hit(3.4e38, 0.0, 0.0, 0u, false);
    var i = 0u;
    while i != END {
        let node = nodes[i];
        let miss = node.count >> COUNT_BITS;
        if hit_box(node, r, best.t) < 0.0 { i = miss; continue; }
        let count = node.count & COUNT_MASK;
        if count == 0u { i = node.a; continue; }
        for (var k = node.a; k < node.a + count; k++) {
            let h = hit_triangle(tris[k], r, best.t);
            if h.x > 0.0 && surface_present(k, h.y, h.z, seed) {
                best = Hit(h.x, h.y, h.z, k, true);
            }
        }
        i = miss;
    }
    return best;
}

fn uv_at(tri: Tri, b1: f32, b2: f32) -> vec2<f32> {
    let w = 1.0 - b1 - b2;
    return vec2<f32>(tri.n0.w * w + tri.n1.w * b1 + tri.n2.w * b2, tri.uv_v.x * w + tri.uv_v.y * b1 + tri.uv_v.z * b2);
}

fn emitted(mat: Material, uv: vec2<f32>) -> vec3<f32> {
    let e = mat.emissive.xyz;
    let tex = bitcast<u32>(mat.emissive.w);
    if tex == NO_TEXTURE || !(max(max(e.x, e.y), e.z) > 0.0) { return e; }
    return e * texel(tex, mat.emit_uv_matrix, mat.emit_uv_offset, uv.x, uv.y, true);
}

fn texel_alpha(tex: u32, m: vec4<f32>, o: vec4<f32>, u: f32, v: f32) -> f32 {
    let tm = tex_meta[tex];
    return f32(nearest(tm, texel_point(tm, m, o, u, v), bitcast<u32>(o.z)) >> 24u) * (1.0 / 255.0);
}

fn surface_present(i: u32, u: f32, v: f32, seed: u32) -> bool {
    let tri = tris[i];
    if tri.p1.w == 0.0 { return true; }
    let mat = materials[bitcast<u32>(tri.p0.w)];
    var alpha = mat.base_color.w;
    let tex = bitcast<u32>(mat.params.z);
    if tex != NO_TEXTURE {
        let uv = uv_at(tri, u, v);
        alpha *= texel_alpha(tex, mat.uv_matrix, mat.uv_offset, uv.x, uv.y);
    }
    let cutoff = mat.uv_offset.w;
    if cutoff > 0.0 { return alpha >= cutoff; }
    let xi = f32(pcg(seed ^ pcg(i)) >> 8u) * (1.0 / 16777216.0);
    return alpha > xi;
}

fn occluded(r: Ray, t_max: f32, seed: u32) -> bool {
    var i = 0u;
    while i != END {
        let node = nodes[i];
        let miss = node.count >> COUNT_BITS;
        if hit_box(node, r, t_max) < 0.0 { i = miss; continue; }
        let count = node.count & COUNT_MASK;
        if count == 0u { i = node.a; continue; }
        for (var k = node.a; k < node.a + count; k++) {
            let h = hit_triangle(tris[k], r, t_max);
            if h.x > 0.0 && surface_present(k, h.y, h.z, seed) { return true; }
        }
        i = miss;
    }
    return false;
}

fn pow5(x: f32) -> f32 {
    let x2 = x * x;
    return x2 * x2 * x;
}

fn luminance(c: vec3<f32>) -> f32 {
    return dot(c, vec3<f32>(0.2126, 0.7152, 0.0722));
}

fn to_world(n: vec3<f32>, l: vec3<f32>) -> vec3<f32> {
    var s = 1.0;
    if n.z < 0.0 { s = -1.0; }
    let a = -1.0 / (s + n.z);
    let b = n.x * n.y * a;
    let t = vec3<f32>(1.0 + s * n.x * n.x * a, s * b, -s * n.x);
    let bt = vec3<f32>(b, s + n.y * n.y * a, -n.y);
    return t * l.x + bt * l.y + n * l.z;
}

fn smith_g1(alpha2: f32, c: f32) -> f32 {
    return 2.0 * c / (c + sqrt(alpha2 + (1.0 - alpha2) * c * c));
}

fn wrap(i: i32, n: u32, mode: u32) -> u32 {
    let m = i32(n);
    if mode == 1u { return u32(clamp(i, 0, m - 1)); }
    if mode == 2u {
        let k = ((i % (2 * m)) + 2 * m) % (2 * m);
        if k < m { return u32(k); }
        return u32(2 * m - 1 - k);
    }
    return u32(((i % m) + m) % m);
}

// The texel-space point of a lookup at (u, v) under the transform m, o,
// clamped far inside i32 (hostile transforms).
fn texel_point(tm: vec4<u32>, m: vec4<f32>, o: vec4<f32>, u: f32, v: f32) -> vec2<f32> {
    let tu = m.x * u + m.y * v + o.x;
    let tv = m.z * u + m.w * v + o.y;
    return vec2<f32>(clamp(tu * f32(tm.y), -1e9, 1e9), clamp(tv * f32(tm.z), -1e9, 1e9));
}

// The packed texel under texel-space point p, wrapped by the sampler bits.
fn nearest(tm: vec4<u32>, p: vec2<f32>, bits: u32) -> u32 {
    let xi = wrap(i32(floor(p.x)), tm.y, bits & 3u);
    let yi = wrap(i32(floor(p.y)), tm.z, (bits >> 2u) & 3u);
    return texels[tm.x + yi * tm.y + xi];
}

// A packed texel, sRGB-decoded (color) or as bytes / 255 (data).
fn decode(t: u32, srgb: bool) -> vec3<f32> {
    if srgb {
        return vec3<f32>(tables[t & 255u], tables[(t >> 8u) & 255u], tables[(t >> 16u) & 255u]);
    }
    return unpack4x8unorm(t).xyz;
}

fn fetch(tm: vec4<u32>, x: u32, y: u32, srgb: bool) -> vec3<f32> {
    return decode(texels[tm.x + y * tm.y + x], srgb);
}

fn texel(tex: u32, m: vec4<f32>, o: vec4<f32>, u: f32, v: f32, srgb: bool) -> vec3<f32> {
    let tm = tex_meta[tex];
    let p = texel_point(tm, m, o, u, v);
    let bits = bitcast<u32>(o.z);
    if (bits & SAMPLER_BILINEAR) == 0u {
        return decode(nearest(tm, p, bits), srgb);
    }
    let wu = bits & 3u;
    let wv = (bits >> 2u) & 3u;
    let xs = p.x - 0.5;
    let ys = p.y - 0.5;
    let x0 = floor(xs);
    let y0 = floor(ys);
    let fx = xs - x0;
    let fy = ys - y0;
    let xa = wrap(i32(x0), tm.y, wu);
    let xb = wrap(i32(x0) + 1, tm.y, wu);
    let ya = wrap(i32(y0), tm.z, wv);
    let yb = wrap(i32(y0) + 1, tm.z, wv);
    let top = fetch(tm, xa, ya, srgb) * (1.0 - fx) + fetch(tm, xb, ya, srgb) * fx;
    let bottom = fetch(tm, xa, yb, srgb) * (1.0 - fx) + fetch(tm, xb, yb, srgb) * fx;
    return top * (1.0 - fy) + bottom * fy;
}

struct Surface {
    ns: vec3<f32>, view: vec3<f32>, nv: f32, base: vec3<f32>, metallic: f32, specular: f32,
    alpha2: f32, diffuse: vec3<f32>, trans: vec3<f32>, f0: f32, eta: f32, coat_v: f32, p_spec: f32, p_trans: f32,
    roughness: f32, ms: vec3<f32>, ms_v: f32,
}

fn fresnel_dielectric(f0: f32, c_in: f32, eta: f32) -> f32 {
    var c = c_in;
    if eta > 0.0 && eta < 1.0 {
        let sin2 = (1.0 - c * c) / (eta * eta);
        if sin2 >= 1.0 { return 1.0; }
        c = sqrt(1.0 - sin2);
    }
    return f0 + (1.0 - f0) * pow5(1.0 - c);
}

fn fresnel(s: Surface, c: f32) -> vec3<f32> {
    let fd = s.specular * fresnel_dielectric(s.f0, c, s.eta);
    return vec3<f32>(fd * (1.0 - s.metallic)) + (s.base + (vec3<f32>(1.0) - s.base) * pow5(1.0 - c)) * s.metallic;
}

fn ggx_d(alpha2: f32, nh: f32) -> f32 {
    let k = nh * nh * (alpha2 - 1.0) + 1.0;
    return alpha2 / (PI * k * k);
}

// BSDF × |cosine| in xyz, BSDF-sampling pdf in w.
fn eval_bsdf(s: Surface, l: vec3<f32>) -> vec4<f32> {
    let nl = dot(s.ns, l);
    let zero = vec4<f32>(0.0);
    if !(nl != 0.0) { return zero; }
    if nl > 0.0 {
        let h = normalize(s.view + l);
        let nh = max(dot(s.ns, h), 0.0);
        let vh = max(dot(s.view, h), 1e-6);
        let d = ggx_d(s.alpha2, nh);
        let g = smith_g1(s.alpha2, s.nv) * smith_g1(s.alpha2, nl);
        let spec = fresnel(s, vh) * (d * g / (4.0 * s.nv));
        let diff = s.diffuse * ((1.0 - s.coat_v) * nl / PI);
        let ms_l = 1.0 - albedo(TABLE_ALBEDO_A, nl, s.roughness);
        let multiple = s.ms * (s.ms_v * ms_l * nl);
        let p_diff = 1.0 - s.p_spec - s.p_trans;
        let pdf = s.p_spec * d * nh / (4.0 * vh) + p_diff * nl / PI;
        return vec4<f32>(spec + diff + multiple, pdf);
    }
    if s.p_trans <= 0.0 { return zero; }
    let g = smith_g1(s.alpha2, s.nv) * smith_g1(s.alpha2, -nl);
    if s.eta == 0.0 {
        let mirrored = l - s.ns * (2.0 * nl);
        let h = normalize(s.view + mirrored);
        let nh = max(dot(s.ns, h), 0.0);
        let vh = max(dot(s.view, h), 1e-6);
        let d = ggx_d(s.alpha2, nh);
        let f = 1.0 - s.specular * fresnel_dielectric(s.f0, vh, 1.0);
        return vec4<f32>(s.trans * (f * d * g / (4.0 * s.nv)), s.p_trans * d * nh / (4.0 * vh));
    }
    var h = normalize(s.view + l * s.eta);
    if dot(s.ns, h) < 0.0 { h = -h; }
    let vh = dot(s.view, h);
    let lh = dot(l, h);
    let nh = dot(s.ns, h);
    let denom = vh + s.eta * lh;
    if !(vh > 0.0) || lh >= 0.0 || denom * denom < 1e-12 { return zero; }
    let d = ggx_d(s.alpha2, nh);
    let f = 1.0 - s.specular * fresnel_dielectric(s.f0, vh, s.eta);
    let jacobian = s.eta * s.eta * -lh / (denom * denom);
    return vec4<f32>(s.trans * (f * d * g * vh * jacobian / s.nv), s.p_trans * d * nh * jacobian);
}

fn sample_ggx(ns: vec3<f32>, alpha2: f32, xi1: f32, xi2: f32) -> vec3<f32> {
    let phi = 2.0 * PI * xi1;
    let cos_t = sqrt((1.0 - xi2) / (1.0 + (alpha2 - 1.0) * xi2));
    let sin_t = sqrt(max(1.0 - cos_t * cos_t, 0.0));
    return to_world(ns, vec3<f32>(sin_t * cos(phi), sin_t * sin(phi), cos_t));
}

// The continued direction in xyz, w = 1 where sampling made one.
fn sample_bsdf(s: Surface, xi0: f32, xi1: f32, xi2: f32) -> vec4<f32> {
    let view = s.view;
    let none = vec4<f32>(0.0);
    if xi0 < s.p_spec {
        let h = sample_ggx(s.ns, s.alpha2, xi1, xi2);
        let l = h * (2.0 * dot(view, h)) - view;
        if !(dot(s.ns, l) > 0.0) { return none; }
        return vec4<f32>(l, 1.0);
    }
    if xi0 < s.p_spec + s.p_trans {
        let h = sample_ggx(s.ns, s.alpha2, xi1, xi2);
        let c = dot(view, h);
        if s.eta == 0.0 {
            let r = h * (2.0 * c) - view;
            if !(dot(s.ns, r) > 0.0) { return none; }
            return vec4<f32>(r - s.ns * (2.0 * dot(s.ns, r)), 1.0);
        }
        let k = 1.0 / s.eta;
        let sin2 = k * k * (1.0 - c * c);
        if !(c > 0.0) || sin2 >= 1.0 { return none; }
        let l = -view * k + h * (k * c - sqrt(1.0 - sin2));
        if !(dot(s.ns, l) < 0.0) { return none; }
        return vec4<f32>(l, 1.0);
    }
    let r = sqrt(xi1);
    let phi = 2.0 * PI * xi2;
    return vec4<f32>(to_world(s.ns, vec3<f32>(r * cos(phi), r * sin(phi), sqrt(max(1.0 - xi1, 0.0)))), 1.0);
}

// Bilinear lookup of a coat albedo table (albedo::lookup).
fn albedo(offset: u32, mu: f32, roughness: f32) -> f32 {
    let last = f32(ALBEDO_SIZE - 1u);
    let x = min(clamp(mu, 0.0, 1.0) * last, last);
    let y = min(clamp(roughness, 0.0, 1.0) * last, last);
    let x0 = min(floor(x), last - 1.0);
    let y0 = min(floor(y), last - 1.0);
    let fx = x - x0;
    let fy = y - y0;
    let i = offset + u32(y0) * ALBEDO_SIZE + u32(x0);
    let top = tables[i] * (1.0 - fx) + tables[i + 1u] * fx;
    let bottom = tables[i + ALBEDO_SIZE] * (1.0 - fx) + tables[i + ALBEDO_SIZE + 1u] * fx;
    return top * (1.0 - fy) + bottom * fy;
}

struct Look { base: vec3<f32>, metallic: f32, roughness: f32, transmission: f32 }

fn unpack_color(bits: u32) -> vec3<f32> {
    return vec3<f32>(f32(bits & 1023u), f32((bits >> 10u) & 1023u), f32((bits >> 20u) & 1023u)) * (1.0 / 1023.0);
}

fn look_at(tri: Tri, mat: Material, b1: f32, b2: f32, uv: vec2<f32>) -> Look {
    var base = mat.base_color.xyz;
    let tex = bitcast<u32>(mat.params.z);
    if tex != NO_TEXTURE {
        base = base * texel(tex, mat.uv_matrix, mat.uv_offset, uv.x, uv.y, true);
    }
    if tri.color.w > 0.0 {
        let c0 = unpack_color(bitcast<u32>(tri.color.x));
        let c1 = unpack_color(bitcast<u32>(tri.color.y));
        let c2 = unpack_color(bitcast<u32>(tri.color.z));
        base = base * (c0 * (1.0 - b1 - b2) + c1 * b1 + c2 * b2);
    }
    var metallic = mat.params.x;
    var roughness = mat.params.y;
    let mr = bitcast<u32>(mat.mr_uv_offset.w);
    if mr != NO_TEXTURE {
        let t = texel(mr, mat.mr_uv_matrix, mat.mr_uv_offset, uv.x, uv.y, false);
        roughness *= t.y;
        metallic *= t.z;
    }
    var transmission = mat.glass.x;
    let tt = bitcast<u32>(mat.trans_uv_offset.w);
    if tt != NO_TEXTURE && transmission > 0.0 {
        transmission *= texel(tt, mat.trans_uv_matrix, mat.trans_uv_offset, uv.x, uv.y, false).x;
    }
    return Look(base, metallic, roughness, transmission);
}

fn mapped_normal(tri: Tri, mat: Material, n: vec3<f32>, uv: vec2<f32>) -> vec3<f32> {
    let tex = bitcast<u32>(mat.normal_uv_offset.w);
    if tex == NO_TEXTURE { return n; }
    let c = texel(tex, mat.normal_uv_matrix, mat.normal_uv_offset, uv.x, uv.y, false);
    let scale = mat.absorption.w;
    let local = vec3<f32>((2.0 * c.x - 1.0) * scale, (2.0 * c.y - 1.0) * scale, 2.0 * c.z - 1.0);
    let t = normalize(tri.tangent.xyz - n * dot(n, tri.tangent.xyz));
    let b = cross(n, t) * tri.tangent.w;
    let bent = normalize(t * local.x + b * local.y + n * local.z);
    if all(abs(bent) <= vec3<f32>(2.0)) { return bent; }
    return n;
}

fn interface_eta(mat: Material, entering: bool) -> f32 {
    let ior = mat.glass.z;
    if !(mat.glass.w > 0.0) { return 0.0; }
    if entering { return ior; }
    return 1.0 / ior;
}

// Linear lookup of the average-albedo table (albedo::lookup_average).
fn albedo_average(roughness: f32) -> f32 {
    let last = f32(ALBEDO_SIZE - 1u);
    let x = min(clamp(roughness, 0.0, 1.0) * last, last);
    let x0 = min(floor(x), last - 1.0);
    let f = x - x0;
    let i = TABLE_ALBEDO_AVG + u32(x0);
    return tables[i] * (1.0 - f) + tables[i + 1u] * f;
}

fn surface(mat: Material, look: Look, ns: vec3<f32>, view: vec3<f32>, nv: f32, eta: f32) -> Surface {
    let base = look.base;
    let metallic = look.metallic;
    let roughness = look.roughness;
    let specular = mat.params.w;
    let transmission = look.transmission;
    let f0 = mat.glass.y;
    let alpha = max(roughness * roughness, 1e-3);
    let dielectric = base * (1.0 - metallic);
    var coat_v: f32;
    if eta > 0.0 && eta < 1.0 {
        coat_v = fresnel_dielectric(f0, nv, eta);
    } else {
        coat_v = f0 * albedo(TABLE_ALBEDO_A, nv, roughness) + (1.0 - f0) * albedo(TABLE_ALBEDO_B, nv, roughness);
    }
    var s = Surface(ns, view, nv, base, metallic, specular, alpha * alpha, dielectric * (1.0 - transmission),
        dielectric * transmission, f0, eta, specular * coat_v, 1.0, 0.0, roughness, vec3<f32>(0.0), 0.0);
    var ms_albedo = vec3<f32>(0.0);
    if metallic > 0.0 {
        let e_avg = min(albedo_average(roughness), 0.999);
        let f_avg = base + (vec3<f32>(1.0) - base) * (1.0 / 21.0);
        let tint = f_avg * f_avg * e_avg / (vec3<f32>(1.0) - f_avg * (1.0 - e_avg)) * metallic;
        s.ms = tint * (1.0 / (PI * (1.0 - e_avg)));
        s.ms_v = 1.0 - albedo(TABLE_ALBEDO_A, nv, roughness);
        ms_albedo = tint * s.ms_v;
    }
    let ls = luminance(fresnel(s, nv));
    let ld = luminance(s.diffuse) * (1.0 - s.coat_v) + luminance(ms_albedo);
    let lt = luminance(s.trans) * (1.0 - s.coat_v);
    if ld + lt > 0.0 {
        s.p_spec = 0.0;
        if ls > 0.0 { s.p_spec = max(ls / (ls + ld + lt), 0.05); }
        s.p_trans = (1.0 - s.p_spec) * (lt / (ld + lt));
    }
    return s;
}

// A direction the geometric and the shading normal agree on (and that
// is above the surface unless the material transmits).
fn usable(l: vec3<f32>, ng: vec3<f32>, ns: vec3<f32>, p_trans: f32) -> bool {
    let g = dot(l, ng);
    let n = dot(l, ns);
    return (g > 0.0 && n > 0.0) || (g < 0.0 && n < 0.0 && p_trans > 0.0);
}

fn power_heuristic(a: f32, b: f32) -> f32 {
    let a2 = a * a;
    let b2 = b * b;
    if a2 + b2 > 0.0 { return a2 / (a2 + b2); }
    return 0.0;
}

fn unpack_rgbe(t: u32) -> vec3<f32> {
    if (t >> 24u) == 0u { return vec3<f32>(0.0); }
    let scale = exp2(f32(t >> 24u) - 136.0);
    return vec3<f32>(f32(t & 255u), f32((t >> 8u) & 255u), f32((t >> 16u) & 255u)) * scale;
}

// environment.rs: u = ½ + atan2(d.z, d.x) / 2π + rotation, v = acos(d.y) / π.
fn env_uv(d: vec3<f32>) -> vec2<f32> {
    return vec2<f32>(0.5 + atan2(d.z, d.x) * (0.5 / PI) + P.env.w, acos(clamp(d.y, -1.0, 1.0)) * (1.0 / PI));
}

fn env_nearest(uv: vec2<f32>) -> vec3<f32> {
    let tm = tex_meta[P.misc.z];
    let xn = wrap(i32(floor(clamp(uv.x * f32(tm.y), -1e9, 1e9))), tm.y, 0u);
    let yn = wrap(i32(floor(uv.y * f32(tm.z))), tm.z, 1u);
    return unpack_rgbe(texels[tm.x + yn * tm.y + xn]) * P.env.xyz;
}

// The nearest texel, or bilinear for what the camera sees (trace.rs).
fn env_radiance(d: vec3<f32>, filtered: bool) -> vec3<f32> {
    let tm = tex_meta[P.misc.z];
    let uv = env_uv(d);
    if !filtered { return env_nearest(uv); }
    let x = clamp(uv.x * f32(tm.y) - 0.5, -1e9, 1e9);
    let y = clamp(uv.y * f32(tm.z) - 0.5, -1e9, 1e9);
    let x0 = floor(x);
    let y0 = floor(y);
    let fx = x - x0;
    let fy = y - y0;
    let xa = wrap(i32(x0), tm.y, 0u);
    let xb = wrap(i32(x0) + 1, tm.y, 0u);
    let ya = wrap(i32(y0), tm.z, 1u);
    let yb = wrap(i32(y0) + 1, tm.z, 1u);
    let top = unpack_rgbe(texels[tm.x + ya * tm.y + xa]) * (1.0 - fx) + unpack_rgbe(texels[tm.x + ya * tm.y + xb]) * fx;
    let bottom = unpack_rgbe(texels[tm.x + yb * tm.y + xa]) * (1.0 - fx) + unpack_rgbe(texels[tm.x + yb * tm.y + xb]) * fx;
    return (top * (1.0 - fy) + bottom * fy) * P.env.xyz;
}

fn env_pdf(d: vec3<f32>) -> f32 {
    let tm = tex_meta[P.misc.z];
    let bu = tm.w & 0xffffu;
    let bv = tm.w >> 16u;
    let uv = env_uv(d);
    let fu = uv.x - floor(uv.x);
    let i = min(u32(fu * f32(bu)), bu - 1u);
    let j = min(u32(uv.y * f32(bv)), bv - 1u);
    let p = tables[TABLE_ENV + 3u * (j * bu + i) + 2u];
    let sin_theta = max(sqrt(max(1.0 - d.y * d.y, 0.0)), 1e-6);
    return p * f32(bu * bv) / (2.0 * PI * PI * sin_theta);
}

struct EnvSample { dir: vec3<f32>, pdf: f32, radiance: vec3<f32> }

// A direction from the environment's table, its pdf (0: none) and the
// radiance read at the drawn image coordinates (trace.rs).
fn sample_env(xi: vec4<f32>) -> EnvSample {
    let tm = tex_meta[P.misc.z];
    let bu = tm.w & 0xffffu;
    let bv = tm.w >> 16u;
    let n = bu * bv;
    let slot = min(u32(xi.x * f32(n)), n - 1u);
    var block = slot;
    if !(xi.y < tables[TABLE_ENV + 3u * slot]) {
        block = min(bitcast<u32>(tables[TABLE_ENV + 3u * slot + 1u]), n - 1u);
    }
    let p = tables[TABLE_ENV + 3u * block + 2u];
    let u = (f32(block % bu) + xi.z) / f32(bu);
    let v = (f32(block / bu) + xi.w) / f32(bv);
    let phi = (u - 0.5 - P.env.w) * 2.0 * PI;
    let theta = v * PI;
    let st = sin(theta);
    let d = vec3<f32>(st * cos(phi), cos(theta), st * sin(phi));
    let pdf = p * f32(n) / (2.0 * PI * PI * max(st, 1e-6));
    if !(pdf > 0.0 && pdf < 3.4e38) { return EnvSample(d, 0.0, vec3<f32>(0.0)); }
    return EnvSample(d, pdf, env_nearest(vec2<f32>(u, v)));
}

struct LightSample { dir: vec3<f32>, t_max: f32, value: vec3<f32>, pdf: f32, ok: bool }

fn sample_light(count: u32, origin: vec3<f32>, xi: vec4<f32>, xe: vec2<f32>, seed: u32) -> LightSample {
    var none = LightSample(vec3<f32>(0.0), 0.0, vec3<f32>(0.0), 0.0, false);
    let slot = min(u32(xi.x * f32(count)), count - 1u);
    let entry = lights[slot];
    var index = slot;
    if !(xi.y < entry.table.x) { index = bitcast<u32>(entry.table.y); }
    let light = lights[min(index, count - 1u)];
    let pick = light.table.w;
    let kind = bitcast<u32>(light.position.w);
    if kind == LIGHT_TRIANGLE {
        let index = bitcast<u32>(light.intensity.w);
        let tri = tris[index];
        let su = sqrt(xi.z);
        let b1 = su * (1.0 - xi.w);
        let b2 = su * xi.w;
        if !surface_present(index, b1, b2, seed) { return none; }
        let y = tri.p0.xyz * (1.0 - su) + tri.p1.xyz * b1 + tri.p2.xyz * b2;
        let to = y - origin;
        let dist = length(to);
        let dir = to * (1.0 / dist);
        let cr = cross(tri.p1.xyz - tri.p0.xyz, tri.p2.xyz - tri.p0.xyz);
        let cos_area = abs(dot(cr, dir));
        if !(dist > 0.0 && cos_area > 0.0) { return none; }
        let pdf = pick * dist * dist * 2.0 / cos_area;
        let emission = emitted(materials[bitcast<u32>(tri.p0.w)], uv_at(tri, b1, b2));
        return LightSample(dir, dist - P.cam_pos.w, emission * (1.0 / pdf), pdf, true);
    }
    if kind == LIGHT_ENVIRONMENT {
        let e = sample_env(vec4<f32>(xe.x, xe.y, xi.z, xi.w));
        if !(e.pdf > 0.0) { return none; }
        let pdf = pick * e.pdf;
        return LightSample(e.dir, 3.4e38, e.radiance * (1.0 / pdf), pdf, true);
    }
    if kind == LIGHT_DIRECTIONAL {
        return LightSample(light.position.xyz, 3.4e38, light.intensity.xyz * (1.0 / pick), 0.0, true);
    }
    let to = light.position.xyz - origin;
    let dist2 = dot(to, to);
    if !(dist2 > 0.0) { return none; }
    let dist = sqrt(dist2);
    let dir = to * (1.0 / dist);
    var falloff = 1.0 / (dist2 * pick);
    if kind == LIGHT_SPOT {
        let cd = dot(light.spot.xyz, -dir);
        let a = clamp(cd * light.spot.w + light.table.z, 0.0, 1.0);
        falloff *= a * a;
    }
    return LightSample(dir, dist, light.intensity.xyz * falloff, 0.0, true);
}

fn trace_sample(x: u32, y: u32, sample: u32) -> vec3<f32> {
    let key = pcg(pcg(pcg(pcg(P.samples.w) ^ P.misc.x) ^ (y * P.frame.x + x)) ^ sample);
    let tan_half = P.cam_fwd.w;
    let aspect = P.cam_right.w;
    let eps = P.cam_pos.w;
    let light_count = P.misc.y;
    let sx = ((f32(x) + rand(key, 0u)) / f32(P.frame.x)) * 2.0 - 1.0;
    let sy = 1.0 - ((f32(y) + rand(key, 1u)) / f32(P.frame.y)) * 2.0;
    let dir = normalize(P.cam_fwd.xyz + P.cam_right.xyz * (sx * tan_half * aspect) + P.cam_up.xyz * (sy * tan_half));
    var ray = make_ray(P.cam_pos.xyz, dir);
    var throughput = vec3<f32>(1.0);
    var radiance = vec3<f32>(0.0);
    let max_bounces = P.samples.z;
    var bounce = 0u;
    var ray_pdf = 0.0;
    loop {
        let seed = u32(rand(key, 2u + DIMS_PER_BOUNCE * bounce + 8u) * 16777216.0);
        let hit = intersect(ray, seed);
        if !hit.found {
            let env_pick = bitcast<f32>(P.misc.w);
            var w_env = 1.0;
            if ray_pdf > 0.0 && env_pick > 0.0 {
                w_env = power_heuristic(ray_pdf, env_pick * env_pdf(ray.d));
            }
            radiance += throughput * env_radiance(ray.d, bounce == 0u) * w_env;
            break;
        }
        let tri = tris[hit.tri];
        let mat = materials[bitcast<u32>(tri.p0.w)];
        let cr = cross(tri.p1.xyz - tri.p0.xyz, tri.p2.xyz - tri.p0.xyz);
        var ng = normalize(cr);
        let entering = dot(cr, ray.d) < 0.0;
        let volume = mat.glass.w > 0.0;
        if volume && !entering {
            throughput = throughput * exp(-mat.absorption.xyz * hit.t);
        }
        let pick = tri.uv_v.w;
        var w_emit = 1.0;
        if ray_pdf > 0.0 && pick > 0.0 {
            let light_pdf = pick * hit.t * hit.t * 2.0 / abs(dot(cr, ray.d));
            w_emit = power_heuristic(ray_pdf, light_pdf);
        }
        let uv = uv_at(tri, hit.u, hit.v);
        radiance += throughput * emitted(mat, uv) * w_emit;
        if bounce >= max_bounces { break; }
        let w = 1.0 - hit.u - hit.v;
        if dot(ng, ray.d) > 0.0 { ng = -ng; }
        let smooth_n = normalize(tri.n0.xyz * w + tri.n1.xyz * hit.u + tri.n2.xyz * hit.v);
        var ns = mapped_normal(tri, mat, smooth_n, uv);
        if dot(ns, ng) < 0.0 { ns = -ns; }
        let view = -ray.d;
        var nv = dot(ns, view);
        if !(nv > 1e-6) {
            ns = ng;
            nv = dot(ns, view);
        }
        let s = surface(mat, look_at(tri, mat, hit.u, hit.v, uv), ns, view, nv, interface_eta(mat, entering));
        let dim = 2u + DIMS_PER_BOUNCE * bounce;
        let at = ray.o + ray.d * hit.t;
        let origin = at + ng * eps;
        let behind = at - ng * eps;

        // A perfectly smooth surface with nothing diffuse is a delta: no
        // light samples, and emission its BSDF samples reach counts whole.
        let singular = s.alpha2 <= SINGULAR_ALPHA2 && max(max(s.diffuse.x, s.diffuse.y), s.diffuse.z) <= 0.0;

        // Next-event estimation.
        if light_count > 0u && !singular {
            let xi = vec4<f32>(rand(key, dim + 3u), rand(key, dim + 4u), rand(key, dim + 5u), rand(key, dim + 6u));
            let xe = vec2<f32>(rand(key, dim + 9u), rand(key, dim + 10u));
            let light = sample_light(light_count, origin, xi, xe, pcg(seed));
            if light.ok && usable(light.dir, ng, ns, s.p_trans) {
                let fb = eval_bsdf(s, light.dir);
                var weight = 1.0;
                if light.pdf > 0.0 { weight = power_heuristic(light.pdf, fb.w); }
                let contribution = throughput * fb.xyz * light.value * weight;
                if max(max(contribution.x, contribution.y), contribution.z) > 0.0
                    && !occluded(make_ray(select(behind, origin, dot(light.dir, ng) > 0.0), light.dir), light.t_max, pcg(seed)) {
                    radiance += contribution;
                }
            }
        }

        // BSDF sampling continues the path.
        let xi0 = rand(key, dim);
        let xi1 = rand(key, dim + 1u);
        let xi2 = rand(key, dim + 2u);
        let sampled = sample_bsdf(s, xi0, xi1, xi2);
        let l = sampled.xyz;
        if sampled.w == 0.0 || !usable(l, ng, ns, s.p_trans) { break; }
        let fb = eval_bsdf(s, l);
        if !(fb.w > 0.0) { break; }
        throughput = throughput * fb.xyz * (1.0 / fb.w);
        if bounce >= ROULETTE_AFTER {
            let survive = min(max(max(throughput.x, throughput.y), throughput.z), 1.0);
            if rand(key, dim + 7u) >= survive { break; }
            throughput = throughput * (1.0 / survive);
        }
        ray_pdf = select(fb.w, 0.0, singular);
        ray = make_ray(select(behind, origin, dot(l, ng) > 0.0), l);
        bounce += 1u;
    }
    let ok = all(radiance >= vec3<f32>(0.0)) && all(radiance < vec3<f32>(1e30));
    return select(vec3<f32>(0.0), radiance, ok);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = P.tile.z + id.y;
    if id.x >= P.tile.x || id.y >= P.tile.w || row >= P.tile.y { return; }
    let index = row * P.tile.x + id.x;
    var acc = accum[index].xyz;
    let first = P.samples.x;
    for (var s = first; s < first + P.samples.y; s++) {
        acc += trace_sample(P.frame.z + id.x, P.frame.w + row, s);
    }
    accum[index] = vec4<f32>(acc, 0.0);
}
