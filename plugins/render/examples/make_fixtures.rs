//! Writes the fixture scenes of `fixtures/scenes/` and their CPU reference
//! images: `cargo run --release -p render --example make_fixtures [-- DIR]`.
//!
//! Scenes: `cornell.gltf` (+ `.bin`), `glossy.gltf` (+ `.bin`),
//! `textured.glb` (a generated PNG texture embedded), `lights.gltf`
//! (+ `.bin`: point, spot and directional lights and a small panel), and
//! the reference of `studio.glb`, which Blender makes
//! (`scripts/cycles/build_scene.py`; skipped where absent). For each,
//! `<name>.ref.json` holds the params of its reference render and
//! `<name>.ref.png` / `<name>.ref.pfm` the CPU reference tracer's result.

use std::f32::consts::PI;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// Builds one glTF document and its binary buffer.
#[derive(Default)]
struct Gltf {
    bin: Vec<u8>,
    views: Vec<Value>,
    accessors: Vec<Value>,
    meshes: Vec<Value>,
    materials: Vec<Value>,
    nodes: Vec<Value>,
    images: Vec<Value>,
    lights: Vec<Value>,
}

struct Mesh {
    positions: Vec<[f32; 3]>,
    normals: Vec<[f32; 3]>,
    uvs: Vec<[f32; 2]>,
    indices: Vec<u32>,
}

impl Mesh {
    fn new() -> Mesh {
        Mesh {
            positions: vec![],
            normals: vec![],
            uvs: vec![],
            indices: vec![],
        }
    }
    /// A quad with corners a, b, c, d (counter-clockwise seen from the front).
    fn quad(mut self, a: [f32; 3], b: [f32; 3], c: [f32; 3], d: [f32; 3]) -> Mesh {
        let base = self.positions.len() as u32;
        let sub = |p: [f32; 3], q: [f32; 3]| [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
        let (e1, e2) = (sub(b, a), sub(d, a));
        let n = [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let n = [n[0] / len, n[1] / len, n[2] / len];
        self.positions.extend([a, b, c, d]);
        self.normals.extend([n; 4]);
        self.uvs
            .extend([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]);
        self.indices
            .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        self
    }
    /// A square floor at y = 0 from −`half` to `half` in x and z, facing up.
    fn floor(self, half: f32) -> Mesh {
        self.quad(
            [-half, 0.0, half],
            [half, 0.0, half],
            [half, 0.0, -half],
            [-half, 0.0, -half],
        )
    }
    /// An axis-aligned box from `lo` to `hi`, faces outward.
    fn cuboid(self, lo: [f32; 3], hi: [f32; 3]) -> Mesh {
        let [x0, y0, z0] = lo;
        let [x1, y1, z1] = hi;
        self.quad([x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]) // +z
            .quad([x1, y0, z0], [x0, y0, z0], [x0, y1, z0], [x1, y1, z0]) // -z
            .quad([x1, y0, z1], [x1, y0, z0], [x1, y1, z0], [x1, y1, z1]) // +x
            .quad([x0, y0, z0], [x0, y0, z1], [x0, y1, z1], [x0, y1, z0]) // -x
            .quad([x0, y1, z1], [x1, y1, z1], [x1, y1, z0], [x0, y1, z0]) // +y
            .quad([x0, y0, z0], [x1, y0, z0], [x1, y0, z1], [x0, y0, z1]) // -y
    }
    /// A UV sphere of radius `r` at `c`.
    fn sphere(mut self, c: [f32; 3], r: f32, segments: u32, rings: u32) -> Mesh {
        let base = self.positions.len() as u32;
        for i in 0..=rings {
            let theta = PI * i as f32 / rings as f32;
            for j in 0..=segments {
                let phi = 2.0 * PI * j as f32 / segments as f32;
                let n = [
                    theta.sin() * phi.cos(),
                    theta.cos(),
                    theta.sin() * phi.sin(),
                ];
                self.positions
                    .push([c[0] + r * n[0], c[1] + r * n[1], c[2] + r * n[2]]);
                self.normals.push(n);
                self.uvs
                    .push([j as f32 / segments as f32, i as f32 / rings as f32]);
            }
        }
        for i in 0..rings {
            for j in 0..segments {
                let a = base + i * (segments + 1) + j;
                let b = a + segments + 1;
                self.indices.extend([a, a + 1, b, a + 1, b + 1, b]);
            }
        }
        self
    }
}

impl Gltf {
    fn view(&mut self, bytes: &[u8], target: Option<u32>) -> usize {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        let mut v = json!({"buffer": 0, "byteOffset": self.bin.len(), "byteLength": bytes.len()});
        if let Some(t) = target {
            v["target"] = json!(t);
        }
        self.bin.extend_from_slice(bytes);
        self.views.push(v);
        self.views.len() - 1
    }

    fn accessor(&mut self, data: &[f32], width: usize, kind: &str, bounds: bool) -> usize {
        let bytes: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
        let view = self.view(&bytes, Some(34962));
        let mut a = json!({"bufferView": view, "componentType": 5126, "count": data.len() / width, "type": kind});
        if bounds {
            let lo: Vec<f32> = (0..width)
                .map(|k| {
                    data.iter()
                        .skip(k)
                        .step_by(width)
                        .copied()
                        .fold(f32::INFINITY, f32::min)
                })
                .collect();
            let hi: Vec<f32> = (0..width)
                .map(|k| {
                    data.iter()
                        .skip(k)
                        .step_by(width)
                        .copied()
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .collect();
            a["min"] = json!(lo);
            a["max"] = json!(hi);
        }
        self.accessors.push(a);
        self.accessors.len() - 1
    }

    fn mesh(&mut self, mesh: &Mesh, material: usize) -> usize {
        let pos = self.accessor(&mesh.positions.concat(), 3, "VEC3", true);
        let nrm = self.accessor(&mesh.normals.concat(), 3, "VEC3", false);
        let uv = self.accessor(&mesh.uvs.concat(), 2, "VEC2", false);
        let bytes: Vec<u8> = mesh
            .indices
            .iter()
            .flat_map(|i| (*i as u16).to_le_bytes())
            .collect();
        let view = self.view(&bytes, Some(34963));
        self.accessors.push(json!({"bufferView": view, "componentType": 5123, "count": mesh.indices.len(), "type": "SCALAR"}));
        let idx = self.accessors.len() - 1;
        self.meshes.push(json!({"primitives": [{"attributes": {"POSITION": pos, "NORMAL": nrm, "TEXCOORD_0": uv}, "indices": idx, "material": material}]}));
        self.meshes.len() - 1
    }

    fn material(&mut self, m: Value) -> usize {
        self.materials.push(m);
        self.materials.len() - 1
    }

    fn node(&mut self, n: Value) {
        self.nodes.push(n);
    }

    fn document(&self, buffer_uri: Option<&str>) -> Value {
        let mut buffer = json!({"byteLength": self.bin.len()});
        if let Some(uri) = buffer_uri {
            buffer["uri"] = json!(uri);
        }
        let mut doc = json!({
            "asset": {"version": "2.0", "generator": "pictor render make_fixtures"},
            "extensionsUsed": ["KHR_materials_emissive_strength"],
            "scene": 0,
            "scenes": [{"nodes": (0..self.nodes.len()).collect::<Vec<_>>()}],
            "nodes": self.nodes, "meshes": self.meshes, "materials": self.materials,
            "accessors": self.accessors, "bufferViews": self.views, "buffers": [buffer],
            "cameras": [{"type": "perspective", "perspective": {"yfov": 40f32.to_radians(), "znear": 0.01, "aspectRatio": 1.0}}],
        });
        if !self.lights.is_empty() {
            if let Some(used) = doc["extensionsUsed"].as_array_mut() {
                used.push(json!("KHR_lights_punctual"));
            }
            doc["extensions"] = json!({"KHR_lights_punctual": {"lights": self.lights}});
        }
        if !self.images.is_empty() {
            doc["images"] = json!(self.images);
            doc["textures"] = json!([{"source": 0, "sampler": 0}]);
            // Bilinear, mirrored along u, clamped along v.
            doc["samplers"] = json!([{"magFilter": 9729, "wrapS": 33648, "wrapT": 33071}]);
        }
        doc
    }

    fn write_gltf(&self, dir: &Path, name: &str) -> Result<(), Error> {
        let bin = format!("{name}.bin");
        std::fs::write(dir.join(&bin), &self.bin)?;
        std::fs::write(
            dir.join(format!("{name}.gltf")),
            serde_json::to_string_pretty(&self.document(Some(&bin)))?,
        )?;
        Ok(())
    }

    fn write_glb(&self, dir: &Path, name: &str) -> Result<(), Error> {
        let mut text = serde_json::to_vec(&self.document(None))?;
        while !text.len().is_multiple_of(4) {
            text.push(b' ');
        }
        let mut bin = self.bin.clone();
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        let total = 12 + 8 + text.len() + 8 + bin.len();
        let mut out = Vec::new();
        out.extend_from_slice(b"glTF");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(b"JSON");
        out.extend_from_slice(&text);
        out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
        out.extend_from_slice(b"BIN\0");
        out.extend_from_slice(&bin);
        std::fs::write(dir.join(format!("{name}.glb")), out)?;
        Ok(())
    }
}

fn pbr(color: [f32; 3], metallic: f32, roughness: f32) -> Value {
    json!({"pbrMetallicRoughness": {"baseColorFactor": [color[0], color[1], color[2], 1.0], "metallicFactor": metallic, "roughnessFactor": roughness}})
}

/// A pure Lambert surface (`KHR_materials_specular` factor 0), as the
/// walls of a real Cornell box are.
fn lambert(color: [f32; 3]) -> Value {
    let mut m = pbr(color, 0.0, 1.0);
    m["extensions"] = json!({"KHR_materials_specular": {"specularFactor": 0.0}});
    m
}

fn light(strength: f32) -> Value {
    json!({"pbrMetallicRoughness": {"baseColorFactor": [0.0, 0.0, 0.0, 1.0], "metallicFactor": 0.0},
           "emissiveFactor": [1.0, 0.85, 0.6],
           "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": strength}}})
}

/// A quaternion rotating `deg` degrees about +y.
fn about_y(deg: f32) -> [f32; 4] {
    let h = deg.to_radians() / 2.0;
    [0.0, h.sin(), 0.0, h.cos()]
}

fn cornell() -> Gltf {
    let mut g = Gltf::default();
    let white = g.material(lambert([0.73, 0.73, 0.73]));
    let red = g.material(lambert([0.65, 0.05, 0.05]));
    let green = g.material(lambert([0.12, 0.45, 0.15]));
    let lamp = g.material(light(5.0));
    let walls = Mesh::new()
        .quad(
            [-1.0, 0.0, 1.0],
            [1.0, 0.0, 1.0],
            [1.0, 0.0, -1.0],
            [-1.0, 0.0, -1.0],
        ) // floor
        .quad(
            [-1.0, 2.0, -1.0],
            [1.0, 2.0, -1.0],
            [1.0, 2.0, 1.0],
            [-1.0, 2.0, 1.0],
        ) // ceiling
        .quad(
            [-1.0, 0.0, -1.0],
            [1.0, 0.0, -1.0],
            [1.0, 2.0, -1.0],
            [-1.0, 2.0, -1.0],
        ); // back
    let m = g.mesh(&walls, white);
    g.node(json!({"mesh": m}));
    let m = g.mesh(
        &Mesh::new().quad(
            [-1.0, 0.0, 1.0],
            [-1.0, 0.0, -1.0],
            [-1.0, 2.0, -1.0],
            [-1.0, 2.0, 1.0],
        ),
        red,
    );
    g.node(json!({"mesh": m}));
    let m = g.mesh(
        &Mesh::new().quad(
            [1.0, 0.0, -1.0],
            [1.0, 0.0, 1.0],
            [1.0, 2.0, 1.0],
            [1.0, 2.0, -1.0],
        ),
        green,
    );
    g.node(json!({"mesh": m}));
    let m = g.mesh(
        &Mesh::new().quad(
            [-0.45, 1.98, -0.45],
            [0.45, 1.98, -0.45],
            [0.45, 1.98, 0.45],
            [-0.45, 1.98, 0.45],
        ),
        lamp,
    );
    g.node(json!({"mesh": m}));
    // The blocks: a unit cube scaled, rotated and placed by node transforms.
    let cube = g.mesh(
        &Mesh::new().cuboid([-0.5, 0.0, -0.5], [0.5, 1.0, 0.5]),
        white,
    );
    g.node(json!({"mesh": cube, "translation": [0.35, 0.0, 0.3], "rotation": about_y(-17.0), "scale": [0.6, 0.6, 0.6]}));
    g.node(json!({"mesh": cube, "translation": [-0.35, 0.0, -0.3], "rotation": about_y(18.0), "scale": [0.6, 1.2, 0.6]}));
    g.node(json!({"camera": 0, "translation": [0.0, 1.0, 3.7]}));
    g
}

fn glossy() -> Gltf {
    let mut g = Gltf::default();
    let floor = g.material(pbr([0.5, 0.5, 0.5], 0.0, 0.6));
    let gold = g.material(pbr([1.0, 0.78, 0.34], 1.0, 0.25));
    let mirror = g.material(pbr([0.95, 0.95, 0.95], 1.0, 0.02));
    let plastic = g.material(pbr([0.1, 0.2, 0.8], 0.0, 0.3));
    let lamp = g.material(light(6.0));
    let m = g.mesh(&Mesh::new().floor(4.0), floor);
    g.node(json!({"mesh": m}));
    for (x, material) in [(-1.1, gold), (0.0, mirror), (1.1, plastic)] {
        let m = g.mesh(&Mesh::new().sphere([x, 0.5, 0.0], 0.5, 24, 16), material);
        g.node(json!({"mesh": m}));
    }
    let m = g.mesh(
        &Mesh::new().quad(
            [-1.0, 3.0, 1.0],
            [-1.0, 3.0, -1.0],
            [1.0, 3.0, -1.0],
            [1.0, 3.0, 1.0],
        ),
        lamp,
    );
    g.node(json!({"mesh": m}));
    // Camera looking slightly down at the spheres: -10° about x.
    let h = (-10f32).to_radians() / 2.0;
    g.node(json!({"camera": 0, "translation": [0.0, 1.2, 4.2], "rotation": [h.sin(), 0.0, 0.0, h.cos()]}));
    g
}

/// `sky.hdr`: a 128×64 equirectangular sky, blue above the horizon
/// fading to white at it, a dark ground, and a small warm sun (radiance
/// 20 000) 35° up.
fn sky_hdr() -> Result<Vec<u8>, Error> {
    let (w, h) = (128usize, 64usize);
    let mut rgb = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let v = (y as f32 + 0.5) / h as f32;
            let elevation = (0.5 - v) * PI;
            let c = if elevation > 0.0 {
                let t = (elevation / (PI / 2.0)).powf(0.5);
                [0.9 - 0.6 * t, 0.95 - 0.45 * t, 1.0 - 0.1 * t]
            } else {
                [0.12, 0.1, 0.08]
            };
            let sun = (x as i32 - 40).abs() <= 1 && (y as i32 - 19).abs() <= 1;
            let c = if sun {
                [20_000.0, 17_000.0, 13_000.0]
            } else {
                c
            };
            rgb.push(image::Rgb(c));
        }
    }
    let mut bytes = Vec::new();
    image::codecs::hdr::HdrEncoder::new(&mut bytes).encode(&rgb, w, h)?;
    Ok(bytes)
}

fn checker_png() -> Result<Vec<u8>, Error> {
    let (w, h) = (32u32, 32u32);
    let mut rgb = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let on = ((x / 4) + (y / 4)) % 2 == 0;
            rgb.extend(if on { [230u8, 200, 40] } else { [30, 60, 160] });
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(out)
}

fn textured() -> Result<Gltf, Error> {
    let mut g = Gltf::default();
    let png_bytes = checker_png()?;
    let view = g.view(&png_bytes, None);
    g.images
        .push(json!({"bufferView": view, "mimeType": "image/png"}));
    let checker = g.material(json!({"pbrMetallicRoughness": {"baseColorTexture": {"index": 0,
        "extensions": {"KHR_texture_transform": {"offset": [0.1, 0.0], "rotation": 0.3, "scale": [1.5, 1.5]}}},
        "metallicFactor": 0.0, "roughnessFactor": 0.7}}));
    let floor = g.material(pbr([0.6, 0.6, 0.6], 0.0, 0.9));
    // The panel light's emission is patterned by the same checker.
    let mut lamp = light(8.0);
    lamp["emissiveTexture"] = json!({"index": 0});
    let lamp = g.material(lamp);
    let m = g.mesh(&Mesh::new().floor(3.0), floor);
    g.node(json!({"mesh": m}));
    let cube = g.mesh(
        &Mesh::new().cuboid([-0.5, 0.0, -0.5], [0.5, 1.0, 0.5]),
        checker,
    );
    g.node(json!({"mesh": cube, "rotation": about_y(30.0), "scale": [1.2, 1.2, 1.2]}));
    let m = g.mesh(
        &Mesh::new().quad(
            [-1.0, 3.0, 2.0],
            [-1.0, 3.0, 0.0],
            [1.0, 3.0, 0.0],
            [1.0, 3.0, 2.0],
        ),
        lamp,
    );
    g.node(json!({"mesh": m}));
    let h = (-20f32).to_radians() / 2.0;
    g.node(json!({"camera": 0, "translation": [0.0, 1.9, 3.4], "rotation": [h.sin(), 0.0, 0.0, h.cos()]}));
    Ok(g)
}

/// A floor, a white box and a glossy sphere lit by a warm point light, a
/// spot light aimed at the sphere, a dim blue directional light and a
/// small emissive panel: every kind of light next-event estimation
/// samples, with shadows from each.
fn lights() -> Gltf {
    let mut g = Gltf::default();
    let floor = g.material(pbr([0.55, 0.55, 0.5], 0.0, 0.8));
    // The box is half see-through (alpha blend), so its shadow is too.
    let mut white = pbr([0.8, 0.8, 0.8], 0.0, 0.9);
    white["pbrMetallicRoughness"]["baseColorFactor"][3] = json!(0.5);
    white["alphaMode"] = json!("BLEND");
    let white = g.material(white);
    let glossy = g.material(pbr([0.8, 0.15, 0.1], 0.0, 0.2));
    let lamp = g.material(light(20.0));
    let m = g.mesh(&Mesh::new().floor(4.0), floor);
    g.node(json!({"mesh": m}));
    let m = g.mesh(
        &Mesh::new().cuboid([-1.3, 0.0, -0.6], [-0.3, 1.0, 0.4]),
        white,
    );
    g.node(json!({"mesh": m, "rotation": about_y(-20.0)}));
    let m = g.mesh(&Mesh::new().sphere([0.8, 0.55, 0.2], 0.55, 24, 16), glossy);
    g.node(json!({"mesh": m}));
    let m = g.mesh(
        &Mesh::new().quad(
            [-0.3, 2.5, -1.2],
            [-0.3, 2.5, -1.6],
            [0.3, 2.5, -1.6],
            [0.3, 2.5, -1.2],
        ),
        lamp,
    );
    g.node(json!({"mesh": m}));
    g.lights.extend([
        json!({"type": "point", "color": [1.0, 0.8, 0.6], "intensity": 6.0}),
        json!({"type": "spot", "color": [0.7, 0.8, 1.0], "intensity": 25.0,
               "spot": {"innerConeAngle": 0.15, "outerConeAngle": 0.35}}),
        json!({"type": "directional", "color": [0.5, 0.6, 1.0], "intensity": 0.6}),
    ]);
    g.node(json!({"translation": [-1.5, 2.2, 1.5], "extensions": {"KHR_lights_punctual": {"light": 0}}}));
    // The spot hangs above and in front of the sphere, aimed at it: −Z
    // turned down by 60° about x.
    let h = (-60f32).to_radians() / 2.0;
    g.node(
        json!({"translation": [0.8, 3.0, 1.8], "rotation": [h.sin(), 0.0, 0.0, h.cos()],
                  "extensions": {"KHR_lights_punctual": {"light": 1}}}),
    );
    // The directional light comes from the upper right.
    let q = [-0.35, 0.3, 0.1, 0.88];
    g.node(json!({"rotation": q, "extensions": {"KHR_lights_punctual": {"light": 2}}}));
    let h = (-15f32).to_radians() / 2.0;
    g.node(json!({"camera": 0, "translation": [0.0, 1.6, 4.5], "rotation": [h.sin(), 0.0, 0.0, h.cos()]}));
    g
}

/// The params of each fixture's reference render.
fn reference_params(name: &str) -> Value {
    let environment = match name {
        "cornell" | "lights" | "studio" => [0.0, 0.0, 0.0],
        _ => [0.35, 0.4, 0.5],
    };
    let (width, height) = if name == "studio" { (96, 64) } else { (64, 64) };
    json!({"width": width, "height": height, "spp": 4096, "max_bounces": 6, "seed": 1, "environment": environment})
}

fn main() -> Result<(), Error> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenes"));
    std::fs::create_dir_all(&dir)?;
    cornell().write_gltf(&dir, "cornell")?;
    glossy().write_gltf(&dir, "glossy")?;
    textured()?.write_glb(&dir, "textured")?;
    lights().write_gltf(&dir, "lights")?;
    std::fs::write(dir.join("sky.hdr"), sky_hdr()?)?;
    for (name, file) in [
        ("cornell", "cornell.gltf"),
        ("glossy", "glossy.gltf"),
        ("textured", "textured.glb"),
        ("lights", "lights.gltf"),
        // Made by Blender (`scripts/cycles/build_scene.py`), not here.
        ("studio", "studio.glb"),
    ] {
        if !dir.join(file).exists() {
            println!("{name}: no {file} in {}, skipped", dir.display());
            continue;
        }
        let params_json = reference_params(name);
        let params = render::Params::from_json(&params_json.to_string())?;
        let read = render::scene::dir_reader(&dir);
        let prepared = render::prepare(&params, 0, file, &read)?;
        let started = std::time::Instant::now();
        let pixels = render::cpu::render(&prepared.data, &prepared.view);
        let secs = started.elapsed().as_secs_f64();
        let (w, h) = (prepared.view.width, prepared.view.height);
        std::fs::write(
            dir.join(format!("{name}.ref.png")),
            render::image::encode_png(w, h, &pixels)?,
        )?;
        std::fs::write(
            dir.join(format!("{name}.ref.pfm")),
            render::image::encode_pfm(w, h, &pixels),
        )?;
        std::fs::write(
            dir.join(format!("{name}.ref.json")),
            serde_json::to_string_pretty(&json!({"scene": file, "params": params_json}))? + "\n",
        )?;
        let samples = f64::from(w * h * params.spp);
        println!(
            "{name}: {} triangles, {w}×{h} at {} spp in {secs:.1} s ({:.2} Msamples/s)",
            prepared.triangles,
            params.spp,
            samples / secs / 1e6
        );
    }
    Ok(())
}
