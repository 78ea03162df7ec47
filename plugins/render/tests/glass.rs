//! Transmission (`KHR_materials_transmission`, `_ior`, `_volume`) against
//! closed-form answers: a smooth glass ball in a uniform environment
//! neither gains nor loses light, a tinted slab lets through what
//! Fresnel and Beer–Lambert say, and the extensions load with their
//! values checked.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cornell_variant, sphere};

use render::environment::Environment;
use render::layout::{SceneData, View};
use render::math::{V3, v3};
use render::scene::{self, Camera, Material, Scene, Triangle, Volume};

fn glass(roughness: f32, volume: Option<Volume>) -> Material {
    Material {
        base_color: [1.0; 4],
        metallic: 0.0,
        roughness,
        transmission: 1.0,
        volume,
        ..Material::default()
    }
}

fn clear() -> Option<Volume> {
    Some(Volume {
        absorption: [0.0; 3],
    })
}

fn render(scene: &Scene, size: u32, spp: u32, camera: Camera) -> Vec<[f32; 3]> {
    let view = View {
        width: size,
        height: size,
        tile: [0, 0, size, size],
        spp,
        max_bounces: 32,
        seed: 3,
        camera,
    };
    let mut scene = scene.clone();
    scene.environment = Environment::uniform([1.0; 3]);
    render::cpu::render(&SceneData::build(&scene), &view)
}

fn mean(px: &[[f32; 3]]) -> f32 {
    px.iter().flatten().sum::<f32>() / (px.len() * 3) as f32
}

#[test]
fn the_test_sphere_is_wound_outward() {
    // Entering and leaving a volume is told by the winding.
    for t in sphere(0) {
        let n = (t.p[1] - t.p[0]).cross(t.p[2] - t.p[0]);
        let centre = (t.p[0] + t.p[1] + t.p[2]) * (1.0 / 3.0);
        assert!(n.dot(centre) > 0.0 || n.length() < 1e-6, "{t:?}: {n:?}");
    }
}

#[test]
fn a_glass_ball_in_a_uniform_environment_keeps_its_light() {
    let camera =
        Camera::look_at(v3(0.0, 0.0, 3.0), V3::splat(0.0), v3(0.0, 1.0, 0.0), 0.8).unwrap();
    // Smooth glass reflects F and refracts 1 − F at each interface, with
    // total internal reflection inside: every path ends in the
    // environment with all of its light. A thin wall passes it straight.
    for (what, material, tolerance) in [
        ("smooth glass ball", glass(0.0, clear()), 0.01),
        ("thin smooth shell", glass(0.0, None), 0.01),
    ] {
        let scene = Scene {
            triangles: sphere(0),
            materials: vec![material],
            ..Scene::default()
        };
        let px = render(&scene, 24, 256, camera);
        let m = mean(&px);
        println!("{what}: mean {m:.5}");
        assert!((m - 1.0).abs() < tolerance, "{what}: mean {m}");
    }
    // Rough glass: single-scattering GGX loses some light, never gains;
    // inside, where total internal reflection repeats, the most
    // (measured: mean 0.813 at roughness 0.5, background included).
    let scene = Scene {
        triangles: sphere(0),
        materials: vec![glass(0.5, clear())],
        ..Scene::default()
    };
    let m = mean(&render(&scene, 24, 256, camera));
    println!("rough glass ball: mean {m:.5}");
    assert!(m < 1.0 + 0.005 && m > 0.78, "rough glass: mean {m}");
}

/// An axis-aligned box from `lo` to `hi`, wound outward.
fn block(lo: V3, hi: V3, material: u32) -> Vec<Triangle> {
    let c = |x: bool, y: bool, z: bool| {
        v3(
            if x { hi.x } else { lo.x },
            if y { hi.y } else { lo.y },
            if z { hi.z } else { lo.z },
        )
    };
    let faces = [
        // (corners counter-clockwise seen from outside, normal)
        (
            [
                c(false, false, true),
                c(true, false, true),
                c(true, true, true),
                c(false, true, true),
            ],
            v3(0.0, 0.0, 1.0),
        ),
        (
            [
                c(true, false, false),
                c(false, false, false),
                c(false, true, false),
                c(true, true, false),
            ],
            v3(0.0, 0.0, -1.0),
        ),
        (
            [
                c(true, false, true),
                c(true, false, false),
                c(true, true, false),
                c(true, true, true),
            ],
            v3(1.0, 0.0, 0.0),
        ),
        (
            [
                c(false, false, false),
                c(false, false, true),
                c(false, true, true),
                c(false, true, false),
            ],
            v3(-1.0, 0.0, 0.0),
        ),
        (
            [
                c(false, true, true),
                c(true, true, true),
                c(true, true, false),
                c(false, true, false),
            ],
            v3(0.0, 1.0, 0.0),
        ),
        (
            [
                c(false, false, false),
                c(true, false, false),
                c(true, false, true),
                c(false, false, true),
            ],
            v3(0.0, -1.0, 0.0),
        ),
    ];
    let mut tris = Vec::new();
    for (q, n) in faces {
        for p in [[q[0], q[1], q[2]], [q[0], q[2], q[3]]] {
            assert!((p[1] - p[0]).cross(p[2] - p[0]).dot(n) > 0.0);
            tris.push(Triangle::new(p, [n; 3], [[0.0; 2]; 3], material));
        }
    }
    tris
}

#[test]
fn a_tinted_slab_transmits_what_fresnel_and_beer_lambert_say() {
    // A 4 × 4 × d slab of smooth glass whose attenuation color is c at
    // distance d, seen head-on from far away, in an environment of 1 on
    // both sides: with F = 0.04 at each face, the slab reflects
    // R = F + (1 − F)² F c² / (1 − F² c²) and transmits
    // T = (1 − F)² c / (1 − F² c²); the centre shows R + T.
    let (d, c) = (0.5f32, [0.5f32, 0.8, 1.0]);
    let scene = Scene {
        triangles: block(v3(-2.0, -2.0, -d / 2.0), v3(2.0, 2.0, d / 2.0), 0),
        materials: vec![glass(
            0.0,
            Some(Volume {
                absorption: c.map(|c| -c.ln() / d),
            }),
        )],
        ..Scene::default()
    };
    let camera =
        Camera::look_at(v3(0.0, 0.0, 40.0), V3::splat(0.0), v3(0.0, 1.0, 0.0), 0.02).unwrap();
    let px = render(&scene, 8, 512, camera);
    let f = 0.04f32;
    for (channel, c) in c.iter().enumerate() {
        let r = f + (1.0 - f).powi(2) * f * c * c / (1.0 - f * f * c * c);
        let t = (1.0 - f).powi(2) * c / (1.0 - f * f * c * c);
        let got = px.iter().map(|p| p[channel]).sum::<f32>() / px.len() as f32;
        println!("channel {channel}: {got:.4}, closed form {:.4}", r + t);
        assert!(
            (got - (r + t)).abs() < 0.01 * (r + t),
            "channel {channel}: {got} vs {}",
            r + t
        );
    }
}

fn load(dir: &std::path::Path) -> Result<Scene, pictor_sdk::JobError> {
    scene::load("cornell.gltf", &scene::dir_reader(dir))
}

/// The Cornell box with material 0 given `extensions`.
fn with_extensions(extensions: serde_json::Value) -> tempfile::TempDir {
    cornell_variant(|d| {
        let used: Vec<String> = extensions.as_object().unwrap().keys().cloned().collect();
        d["extensionsUsed"] = serde_json::json!(used);
        d["materials"][0]["extensions"] = extensions.clone();
    })
}

#[test]
fn transmission_ior_and_volume_load_and_bad_values_are_errors() {
    let d = with_extensions(serde_json::json!({
        "KHR_materials_transmission": {"transmissionFactor": 0.75},
        "KHR_materials_ior": {"ior": 1.33},
        "KHR_materials_volume": {"thicknessFactor": 0.2, "attenuationColor": [0.5, 1.0, 1.0], "attenuationDistance": 2.0},
    }));
    let m = load(d.path()).unwrap().materials[0];
    assert_eq!((m.transmission, m.ior), (0.75, 1.33));
    let a = m.volume.unwrap().absorption;
    assert!(
        (a[0] - 0.5f32.ln().abs() / 2.0).abs() < 1e-6 && a[1] == 0.0,
        "{a:?}"
    );

    // No volume (or thickness 0): a thin wall.
    let d = with_extensions(serde_json::json!({
        "KHR_materials_transmission": {"transmissionFactor": 1.0},
        "KHR_materials_volume": {"thicknessFactor": 0.0},
    }));
    let m = load(d.path()).unwrap().materials[0];
    assert_eq!((m.transmission, m.volume), (1.0, None));

    // A volume of ior 1 bends nothing: thin, and said so.
    let d = with_extensions(serde_json::json!({
        "KHR_materials_transmission": {"transmissionFactor": 1.0},
        "KHR_materials_ior": {"ior": 1.0},
        "KHR_materials_volume": {"thicknessFactor": 1.0},
    }));
    let s = load(d.path()).unwrap();
    assert_eq!(s.materials[0].volume, None);
    assert!(s.notes.iter().any(|n| n.contains("ior 1")), "{:?}", s.notes);

    for (extensions, says) in [
        (
            serde_json::json!({"KHR_materials_ior": {"ior": 0.5}}),
            "material 0: KHR_materials_ior ior 0.5",
        ),
        (
            serde_json::json!({"KHR_materials_ior": {"ior": 1e9}}),
            "outside 1–5",
        ),
        (
            serde_json::json!({"KHR_materials_transmission": {"transmissionFactor": 2.0}}),
            "material 0: transmissionFactor 2 must be in 0–1",
        ),
        (
            serde_json::json!({
                "KHR_materials_transmission": {"transmissionFactor": 1.0},
                "KHR_materials_volume": {"thicknessFactor": 1.0, "attenuationDistance": 0.0},
            }),
            "attenuationDistance 0 above 0",
        ),
        (
            serde_json::json!({
                "KHR_materials_transmission": {"transmissionFactor": 1.0},
                "KHR_materials_volume": {"thicknessFactor": 1.0, "attenuationColor": [2.0, 1.0, 1.0]},
            }),
            "attenuationColor [2.0, 1.0, 1.0] must be in 0–1",
        ),
    ] {
        let e = load(with_extensions(extensions).path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cornell.gltf") && e.contains(says), "{e}");
    }
}

#[test]
fn a_transmission_texture_scales_how_much_passes_through() {
    // A thin smooth pane (transmission factor 1) between the camera and
    // a panel emitting 1, no environment: where the texture's R is 255
    // the pane passes the panel's light (1 − F ≈ 0.96), where it is 0
    // the pane is an opaque white wall lit only from behind (black).
    let quad = |z: f32, material: u32| {
        let c = |x: f32, y: f32| v3(x, y, z);
        let n = v3(0.0, 0.0, 1.0);
        vec![
            Triangle::new(
                [c(-2.0, -2.0), c(2.0, -2.0), c(2.0, 2.0)],
                [n; 3],
                [[0.0; 2]; 3],
                material,
            ),
            Triangle::new(
                [c(-2.0, -2.0), c(2.0, 2.0), c(-2.0, 2.0)],
                [n; 3],
                [[0.0; 2]; 3],
                material,
            ),
        ]
    };
    let through = |r: u8| {
        let mut pane = glass(0.0, None);
        pane.transmission_texture = Some(0);
        let panel = Material {
            base_color: [0.0, 0.0, 0.0, 1.0],
            emissive: [1.0; 3],
            ..Material::default()
        };
        let mut triangles = quad(0.0, 0);
        triangles.extend(quad(-1.0, 1));
        let scene = Scene {
            triangles,
            materials: vec![pane, panel],
            textures: vec![render::scene::Texture {
                width: 1,
                height: 1,
                texels: vec![u32::from_le_bytes([r, 0, 0, 255])],
            }],
            ..Scene::default()
        };
        let camera =
            Camera::look_at(v3(0.0, 0.0, 5.0), V3::splat(0.0), v3(0.0, 1.0, 0.0), 0.3).unwrap();
        let view = View {
            width: 8,
            height: 8,
            tile: [0, 0, 8, 8],
            spp: 16,
            max_bounces: 4,
            seed: 3,
            camera,
        };
        mean(&render::cpu::render(&SceneData::build(&scene), &view))
    };
    let (open, closed, half) = (through(255), through(0), through(128));
    println!("through the pane: R=255 {open:.4}, R=128 {half:.4}, R=0 {closed:.4}");
    assert!((open - 0.96).abs() < 0.01, "{open}");
    assert!(closed < 0.01, "{closed}");
    assert!((half / open - 128.0 / 255.0).abs() < 0.03, "{half}");
}
