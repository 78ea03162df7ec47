//! Textured material inputs against closed-form answers: a normal map
//! tilts a Lambert floor's shading as its texels say (both tangent axes,
//! with the mesh's own tangents or ones derived from its texture
//! coordinates), a metallic-roughness texture and vertex colors change
//! what the surface reflects, and glTF files carrying them load.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cornell_variant, lambert};

use render::layout::{SceneData, View};
use render::math::{V3, v3};
use render::scene::{
    self, Camera, LightKind, Material, PunctualLight, Scene, Texture, TextureSampling, Triangle,
};

/// A 4×4 floor at y = 0 whose texture coordinates run u along +x and v
/// along +z (so the bitangent, up the image, is −z).
fn floor(material: u32, tangent: [f32; 4], color: [f32; 3]) -> Vec<Triangle> {
    let c = |x: f32, z: f32| v3(x, 0.0, z);
    let uv = |p: V3| [(p.x + 2.0) / 4.0, (p.z + 2.0) / 4.0];
    let up = v3(0.0, 1.0, 0.0);
    [
        [c(-2.0, -2.0), c(2.0, 2.0), c(2.0, -2.0)],
        [c(-2.0, -2.0), c(-2.0, 2.0), c(2.0, 2.0)],
    ]
    .iter()
    .map(|&p| {
        let mut t = Triangle::new(p, [up; 3], p.map(uv), material);
        t.tangent = tangent;
        t.color = [color; 3];
        t
    })
    .collect()
}

/// A 1×1 texture of one texel (RGBA bytes).
fn texel(rgba: [u8; 4]) -> Texture {
    Texture {
        width: 1,
        height: 1,
        texels: vec![u32::from_le_bytes(rgba)],
    }
}

/// A directional light arriving from direction `toward` (unit, pointing at
/// the light) with illuminance 1.
fn sun(toward: V3) -> PunctualLight {
    PunctualLight {
        kind: LightKind::Directional,
        position: V3::splat(0.0),
        direction: -toward,
        intensity: [1.0; 3],
    }
}

/// Mean radiance of the floor's middle seen from above.
fn render_mean(scene: &Scene) -> [f32; 3] {
    let view = View {
        width: 8,
        height: 8,
        tile: [0, 0, 8, 8],
        spp: 64,
        max_bounces: 1,
        seed: 2,
        camera: Camera::look_at(v3(0.0, 4.0, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 0.3)
            .unwrap(),
    };
    let px = render::cpu::render(&SceneData::build(scene), &view);
    let mut sum = [0.0f32; 3];
    for p in &px {
        for c in 0..3 {
            sum[c] += p[c] / px.len() as f32;
        }
    }
    sum
}

/// The normal map byte of a tangent-space component in [−1, 1].
fn byte(x: f32) -> u8 {
    ((x * 0.5 + 0.5) * 255.0).round() as u8
}

#[test]
fn a_normal_map_tilts_the_shading_as_its_texels_say() {
    let albedo = 0.5;
    let tilt = 30f32.to_radians();
    let (s, c) = tilt.sin_cos();
    // The light comes from 45° above +x, or above −z; the normal map tilts
    // the normal 30° toward tangent-space +x (world +x) or +y (world −z,
    // up the image): cos(15°) where it tilts toward the light, cos(75°)
    // where it tilts away.
    let lit = |toward_x: bool| {
        if toward_x {
            v3(1.0, 1.0, 0.0).normalize()
        } else {
            v3(0.0, 1.0, -1.0).normalize()
        }
    };
    for given_tangent in [[1.0, 0.0, 0.0, 1.0], [0.0; 4]] {
        for (map_x, light_x, cos) in [
            (true, true, 15f32.to_radians().cos()),
            (true, false, 45f32.to_radians().cos() * c),
            (false, false, 15f32.to_radians().cos()),
            (false, true, 45f32.to_radians().cos() * c),
        ] {
            let (nx, ny) = if map_x { (s, 0.0) } else { (0.0, s) };
            let mut material = lambert(albedo);
            material.normal_texture = Some(0);
            material.normal_sampler = TextureSampling {
                bilinear: false,
                ..TextureSampling::default()
            };
            let scene = Scene {
                triangles: floor(0, given_tangent, [1.0; 3]),
                materials: vec![material],
                textures: vec![texel([byte(nx), byte(ny), byte(c), 255])],
                lights: vec![sun(lit(light_x))],
                ..Scene::default()
            };
            let got = render_mean(&scene)[0];
            let want = albedo / std::f32::consts::PI * cos;
            println!(
                "tangent {given_tangent:?}, map toward {}, light toward {}: {got:.5} vs {want:.5}",
                if map_x { "x" } else { "y" },
                if light_x { "x" } else { "y" }
            );
            // 8-bit texels leave the normal within ~0.3°.
            assert!((got / want - 1.0).abs() < 0.01, "{got} vs {want}");
        }
    }
    // A flat texel (128, 128, 255) leaves the shading as it was.
    let mut material = lambert(albedo);
    material.normal_texture = Some(0);
    let scene = Scene {
        triangles: floor(0, [0.0; 4], [1.0; 3]),
        materials: vec![material],
        textures: vec![texel([128, 128, 255, 255])],
        lights: vec![sun(lit(true))],
        ..Scene::default()
    };
    let want = albedo / std::f32::consts::PI * 45f32.to_radians().cos();
    let got = render_mean(&scene)[0];
    assert!((got / want - 1.0).abs() < 0.01, "{got} vs {want}");
}

#[test]
fn metallic_roughness_textures_and_vertex_colors_change_what_is_reflected() {
    let light = sun(v3(0.0, 1.0, 0.0));
    let lambert_white = albedo_seen(lambert(1.0), [1.0; 3], None, &light);
    // Vertex colors multiply the base color, per channel.
    let colored = albedo_seen(lambert(1.0), [0.25, 0.5, 1.0], None, &light);
    for (c, want) in [0.25, 0.5, 1.0].iter().enumerate() {
        assert!(
            (colored[c] / lambert_white[c] - want).abs() < 0.01,
            "{colored:?}"
        );
    }
    // A metallic-roughness texel of B = 255 makes a metallic-1 material a
    // metal: at roughness 0.3 (G = 77) its highlight, seen from straight
    // above under a light from straight above, is several times the
    // Lambert floor's radiance; B = 0 leaves it a dielectric whose specular
    // factor 0 makes it Lambert.
    let metal = |b: u8| {
        let m = Material {
            base_color: [1.0; 4],
            metallic: 1.0,
            roughness: 1.0,
            specular: 0.0,
            metallic_roughness_texture: Some(0),
            ..Material::default()
        };
        albedo_seen(m, [1.0; 3], Some(texel([0, 77, b, 255])), &light)[0]
    };
    let (dielectric, metallic) = (metal(0), metal(255));
    println!(
        "white Lambert {:.4}, texel B=0 {dielectric:.4}, B=255 {metallic:.4}",
        lambert_white[0]
    );
    assert!((dielectric / lambert_white[0] - 1.0).abs() < 0.01);
    assert!(
        metallic > 2.0 * lambert_white[0],
        "no metal highlight: {metallic}"
    );
    // The roughness channel (G) scales roughness: G = 0 makes a smooth
    // mirror, which shows the black environment instead of the light.
    let m = Material {
        base_color: [1.0; 4],
        metallic: 1.0,
        roughness: 1.0,
        metallic_roughness_texture: Some(0),
        ..Material::default()
    };
    let mirror = albedo_seen(m, [1.0; 3], Some(texel([0, 0, 255, 255])), &light)[0];
    assert!(mirror < 1e-3, "a smooth mirror reflects {mirror}");
}

fn albedo_seen(
    material: Material,
    color: [f32; 3],
    texture: Option<Texture>,
    light: &PunctualLight,
) -> [f32; 3] {
    let scene = Scene {
        triangles: floor(0, [0.0; 4], color),
        materials: vec![material],
        textures: texture.into_iter().collect(),
        lights: vec![*light],
        ..Scene::default()
    };
    render_mean(&scene)
}

#[test]
fn normal_and_metallic_roughness_textures_tangents_and_colors_load() {
    use base64::Engine as _;
    let png = render::image::encode_png(1, 1, &[[0.5, 0.5, 1.0]]).unwrap();
    let uri = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    let d = cornell_variant(|d| {
        d["images"] = serde_json::json!([{ "uri": uri }]);
        d["textures"] = serde_json::json!([{"source": 0}]);
        let m = &mut d["materials"][0];
        m["normalTexture"] = serde_json::json!({"index": 0, "scale": 0.5,
            "extensions": {"KHR_texture_transform": {"scale": [2.0, 2.0]}}});
        m["pbrMetallicRoughness"]["metallicRoughnessTexture"] = serde_json::json!({"index": 0});
        m["extensions"] = serde_json::json!({"KHR_materials_transmission":
            {"transmissionFactor": 0.5, "transmissionTexture": {"index": 0}}});
        d["extensionsUsed"] =
            serde_json::json!(["KHR_texture_transform", "KHR_materials_transmission"]);
        // Mesh 0 (12 vertices) gains tangents along +z (bitangent sign −1)
        // and a red vertex color, from a second buffer.
        let n = d["accessors"][0]["count"].as_u64().unwrap() as usize;
        let mut bytes = Vec::new();
        for _ in 0..n {
            for x in [0.0f32, 0.0, 1.0, -1.0] {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        for _ in 0..n {
            for x in [1.0f32, 0.0, 0.0] {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        let buffer = d["buffers"].as_array().unwrap().len();
        d["buffers"].as_array_mut().unwrap().push(serde_json::json!({
            "byteLength": bytes.len(),
            "uri": format!("data:application/octet-stream;base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes)),
        }));
        let views = d["bufferViews"].as_array().unwrap().len();
        d["bufferViews"].as_array_mut().unwrap().extend([
            serde_json::json!({"buffer": buffer, "byteOffset": 0, "byteLength": n * 16}),
            serde_json::json!({"buffer": buffer, "byteOffset": n * 16, "byteLength": n * 12}),
        ]);
        let accessors = d["accessors"].as_array().unwrap().len();
        d["accessors"].as_array_mut().unwrap().extend([
            serde_json::json!({"bufferView": views, "componentType": 5126, "count": n, "type": "VEC4"}),
            serde_json::json!({"bufferView": views + 1, "componentType": 5126, "count": n, "type": "VEC3"}),
        ]);
        let attributes = &mut d["meshes"][0]["primitives"][0]["attributes"];
        attributes["TANGENT"] = serde_json::json!(accessors);
        attributes["COLOR_0"] = serde_json::json!(accessors + 1);
    });
    let s = scene::load("cornell.gltf", &scene::dir_reader(d.path())).unwrap();
    let m = &s.materials[0];
    assert_eq!(
        (
            m.normal_texture,
            m.metallic_roughness_texture,
            m.normal_scale
        ),
        (Some(0), Some(0), 0.5)
    );
    assert_eq!(m.normal_sampler.matrix, [2.0, 0.0, 0.0, 2.0]);
    assert_eq!((m.transmission, m.transmission_texture), (0.5, Some(0)));
    assert_eq!(s.textures.len(), 1, "one image, decoded once");
    assert!(
        !s.notes
            .iter()
            .any(|n| n.contains("normal") || n.contains("metallic") || n.contains("transmission")),
        "{:?}",
        s.notes
    );
    // Mesh 0 (the walls, 6 triangles, under an identity node) is red
    // with its tangents; nothing else is.
    let red: Vec<&Triangle> = s
        .triangles
        .iter()
        .filter(|t| t.color == [[1.0, 0.0, 0.0]; 3])
        .collect();
    assert_eq!(red.len(), 6);
    for t in red {
        assert_eq!(t.tangent, [0.0, 0.0, 1.0, -1.0]);
    }
    // Everything else has none: white, and no tangent.
    let other = s.triangles.iter().find(|t| t.material != 0).unwrap();
    assert_eq!((other.color, other.tangent), ([[1.0; 3]; 3], [0.0; 4]));
}

#[test]
fn mistyped_tangents_and_colors_are_errors_naming_the_attribute() {
    for (attribute, says) in [
        ("TANGENT", "TANGENT (accessor 3)"),
        ("COLOR_0", "COLOR_0 (accessor 3)"),
    ] {
        // Accessor 3 is the walls' indices: scalars.
        let d = cornell_variant(|d| {
            d["meshes"][0]["primitives"][0]["attributes"][attribute] = serde_json::json!(3);
        });
        let e = scene::load("cornell.gltf", &scene::dir_reader(d.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cornell.gltf") && e.contains("mesh 0 primitive 0") && e.contains(says),
            "{e}"
        );
    }
}
