//! Light transport of the CPU reference tracer against closed-form
//! answers: next-event estimation with MIS over emissive triangles, and
//! point, spot and directional lights (`KHR_lights_punctual` units) on a
//! Lambert floor; and loading those lights from glTF.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cornell_variant, sphere};

use std::f32::consts::PI;
use std::path::Path;

use render::layout::{SceneData, View};
use render::math::{V3, v3};
use render::scene::{self, Camera, LightKind, Material, PunctualLight, Scene, Triangle};

fn lambert(albedo: f32, emissive: f32) -> Material {
    Material {
        base_color: [albedo, albedo, albedo, 1.0],
        emissive: [emissive; 3],
        metallic: 0.0,
        roughness: 1.0,
        specular: 0.0,
        ..Material::default()
    }
}

fn mean(px: &[[f32; 3]]) -> f32 {
    px.iter().flatten().sum::<f32>() / (px.len() * 3) as f32
}

#[test]
fn an_emissive_enclosure_renders_the_sum_of_its_bounces() {
    // Inside a closed sphere that emits L and reflects ρ everywhere, a
    // path of at most B bounces gathers L (1 + ρ + … + ρ^B). Every surface
    // is a light here, so both strategies find every emitter: MIS weights
    // that do not sum to one, a wrong light pdf or a biased roulette all
    // move the mean away from the series.
    let (albedo, emitted) = (0.6f32, 0.5f32);
    let scene = Scene {
        triangles: sphere(0),
        materials: vec![lambert(albedo, emitted)],
        ..Scene::default()
    };
    let data = SceneData::build(&scene);
    let with_area = scene
        .triangles
        .iter()
        .filter(|t| (t.p[1] - t.p[0]).cross(t.p[2] - t.p[0]).length() > 0.0)
        .count();
    assert_eq!(
        data.light_count as usize, with_area,
        "every triangle with an area is a light"
    );
    for bounces in [0, 1, 2, 8] {
        let view = View {
            width: 16,
            height: 16,
            tile: [0, 0, 16, 16],
            spp: 64,
            max_bounces: bounces,
            seed: 3,
            camera: Camera::look_at(V3::splat(0.1), v3(0.0, 0.0, 1.0), v3(0.0, 1.0, 0.0), 1.2)
                .unwrap(),
        };
        let px = render::cpu::render(&data, &view);
        let expected: f32 = (0..=bounces).map(|k| emitted * albedo.powi(k as i32)).sum();
        let got = mean(&px);
        println!("enclosure, {bounces} bounces: mean {got:.5}, expected {expected:.5}");
        assert!(
            (got / expected - 1.0).abs() < 0.005,
            "{bounces} bounces: mean {got}, expected {expected}"
        );
    }
}

#[test]
fn an_emissive_texture_scales_what_both_strategies_find() {
    // The enclosure again, its emission now factor × a uniform sRGB-128
    // texture: light samples and BSDF samples must both read the texture
    // (one that used the bare factor would gather 1/0.216 too much).
    let (albedo, factor) = (0.5f32, 2.0f32);
    let texture = render::scene::Texture {
        width: 2,
        height: 2,
        texels: vec![u32::from_le_bytes([128, 128, 128, 255]); 4],
    };
    let gray = render::layout::srgb_to_linear(128);
    let mut material = lambert(albedo, factor);
    material.emissive_texture = Some(0);
    let scene = Scene {
        triangles: sphere(0),
        materials: vec![material],
        textures: vec![texture],
        ..Scene::default()
    };
    let data = SceneData::build(&scene);
    let view = View {
        width: 16,
        height: 16,
        tile: [0, 0, 16, 16],
        spp: 64,
        max_bounces: 4,
        seed: 4,
        camera: Camera::look_at(V3::splat(0.1), v3(0.0, 0.0, 1.0), v3(0.0, 1.0, 0.0), 1.2).unwrap(),
    };
    let got = mean(&render::cpu::render(&data, &view));
    let expected: f32 = (0..=4).map(|k| factor * gray * albedo.powi(k)).sum();
    println!("textured enclosure: mean {got:.5}, expected {expected:.5}");
    assert!((got / expected - 1.0).abs() < 0.005, "{got} vs {expected}");
}

/// A 6×6 Lambert floor at y = 0 seen from straight above.
fn floor_scene(albedo: f32, lights: Vec<PunctualLight>) -> Scene {
    let c = |x: f32, z: f32| v3(x, 0.0, z);
    let up = v3(0.0, 1.0, 0.0);
    let quad = [
        [c(-3.0, -3.0), c(3.0, 3.0), c(3.0, -3.0)],
        [c(-3.0, -3.0), c(-3.0, 3.0), c(3.0, 3.0)],
    ];
    Scene {
        triangles: quad
            .iter()
            .map(|&p| Triangle::new(p, [up; 3], [[0.0; 2]; 3], 0))
            .collect(),
        materials: vec![lambert(albedo, 0.0)],
        lights,
        ..Scene::default()
    }
}

const SIDE: u32 = 16;

fn top_view() -> View {
    View {
        width: SIDE,
        height: SIDE,
        tile: [0, 0, SIDE, SIDE],
        spp: 256,
        max_bounces: 1,
        seed: 11,
        camera: Camera::look_at(v3(0.0, 4.0, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 0.9)
            .unwrap(),
    }
}

/// The analytic image: each pixel the mean over an 8×8 grid inside it of
/// `radiance` at the floor point its camera ray hits.
fn expected_image(view: &View, radiance: impl Fn(V3) -> f32) -> Vec<f32> {
    let c = view.camera;
    let tan_half = (c.yfov * 0.5).tan();
    let mut out = Vec::new();
    for y in 0..view.height {
        for x in 0..view.width {
            let mut sum = 0.0;
            for (jx, jy) in (0..64).map(|k| (k % 8, k / 8)) {
                let sx = ((x as f32 + (jx as f32 + 0.5) / 8.0) / view.width as f32) * 2.0 - 1.0;
                let sy = 1.0 - ((y as f32 + (jy as f32 + 0.5) / 8.0) / view.height as f32) * 2.0;
                let d =
                    (c.forward + c.right * (sx * tan_half) + c.up * (sy * tan_half)).normalize();
                let p = c.position + d * (-c.position.y / d.y);
                sum += radiance(p);
            }
            out.push(sum / 64.0);
        }
    }
    out
}

/// Renders `lights` over the floor and compares each pixel with `radiance`.
fn check_floor(what: &str, lights: Vec<PunctualLight>, radiance: impl Fn(V3) -> f32) {
    let view = top_view();
    let px = render::cpu::render(&SceneData::build(&floor_scene(0.8, lights)), &view);
    let want = expected_image(&view, radiance);
    let scale = want.iter().copied().fold(0.0, f32::max);
    assert!(scale > 0.0, "{what}: the analytic image is black");
    let mut worst = 0f32;
    for (got, want) in px.iter().zip(&want) {
        for c in got {
            worst = worst.max((c - want).abs() / scale);
        }
    }
    let (got_mean, want_mean) = (mean(&px), want.iter().sum::<f32>() / want.len() as f32);
    println!(
        "{what}: mean {got_mean:.5} vs {want_mean:.5}, worst pixel off by {worst:.4} of the peak"
    );
    assert!(
        (got_mean / want_mean - 1.0).abs() < 0.01,
        "{what}: mean {got_mean} vs {want_mean}"
    );
    assert!(
        worst < 0.03,
        "{what}: a pixel is off by {worst} of the peak"
    );
}

#[test]
fn point_spot_and_directional_lights_follow_their_units_on_a_lambert_floor() {
    let albedo = 0.8f32;
    let brdf = albedo / PI;
    // Point light: I candela at distance d lights the floor with
    // E = I cos θ / d² lux; the floor's radiance is ρ/π E.
    let at = v3(0.7, 1.5, -0.4);
    let point = PunctualLight {
        kind: LightKind::Point,
        position: at,
        direction: v3(0.0, -1.0, 0.0),
        intensity: [3.0; 3],
    };
    check_floor("point", vec![point], |p| {
        let to = at - p;
        let d2 = to.dot(to);
        brdf * 3.0 * (to.y / d2.sqrt()) / d2
    });

    // Spot: the same, scaled by glTF's smooth cone falloff.
    let (inner, outer) = (0.3f32, 0.6f32);
    let axis = v3(0.2, -1.0, 0.1).normalize();
    let spot = PunctualLight {
        kind: LightKind::Spot {
            cos_inner: inner.cos(),
            cos_outer: outer.cos(),
        },
        position: v3(0.0, 2.0, 0.0),
        ..point
    };
    let spot = PunctualLight {
        direction: axis,
        ..spot
    };
    check_floor("spot", vec![spot], |p| {
        let to = spot.position - p;
        let d2 = to.dot(to);
        let angle = axis.dot(-to.normalize()).clamp(-1.0, 1.0).acos();
        let t = ((angle.cos() - outer.cos()) / (inner.cos() - outer.cos())).clamp(0.0, 1.0);
        brdf * 3.0 * t * t * (to.y / d2.sqrt()) / d2
    });

    // Directional: E lux on a surface facing the light, E cos θ otherwise.
    let shining = v3(0.3, -1.0, 0.2).normalize();
    let sun = PunctualLight {
        kind: LightKind::Directional,
        direction: shining,
        intensity: [2.0; 3],
        ..point
    };
    check_floor("directional", vec![sun], |_| brdf * 2.0 * -shining.y);

    // All three at once: one light picked per hit, by power; the sum
    // is unchanged (only noisier).
    let view = top_view();
    let mut many = top_view();
    many.spp = 256;
    let both = render::cpu::render(
        &SceneData::build(&floor_scene(albedo, vec![point, spot, sun])),
        &many,
    );
    let alone: f32 = [point, spot, sun]
        .iter()
        .map(|&l| {
            mean(&render::cpu::render(
                &SceneData::build(&floor_scene(albedo, vec![l])),
                &view,
            ))
        })
        .sum();
    let together = mean(&both);
    println!("three lights: mean {together:.5}, sum of each alone {alone:.5}");
    assert!(
        (together / alone - 1.0).abs() < 0.01,
        "{together} vs {alone}"
    );
}

/// A 0.5 × 0.5 square of `material` at height 1, over the floor's centre
/// (under a point light at height 2 its shadow spans ±0.5).
fn add_occluder(scene: &mut Scene, material: u32) {
    let c = |x: f32, z: f32| v3(x, 1.0, z);
    for p in [
        [c(-0.25, -0.25), c(0.25, 0.25), c(0.25, -0.25)],
        [c(-0.25, -0.25), c(-0.25, 0.25), c(0.25, 0.25)],
    ] {
        scene.triangles.push(Triangle::new(
            p,
            [v3(0.0, 1.0, 0.0); 3],
            [[0.0; 2]; 3],
            material,
        ));
    }
}

#[test]
fn a_light_behind_a_wall_casts_a_shadow() {
    // A square occluder between the point light and the floor (its
    // shadow spans ±0.5): the point under its middle gets nothing, one
    // far to the side is lit.
    let mut scene = floor_scene(
        0.8,
        vec![PunctualLight {
            kind: LightKind::Point,
            position: v3(0.0, 2.0, 0.0),
            direction: v3(0.0, -1.0, 0.0),
            intensity: [3.0; 3],
        }],
    );
    add_occluder(&mut scene, 0);
    let mut view = top_view();
    // Seen from below the occluder's height, looking at the floor.
    view.camera =
        Camera::look_at(v3(0.0, 0.9, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 1.6).unwrap();
    let px = render::cpu::render(&SceneData::build(&scene), &view);
    let center = px[(SIDE / 2 * SIDE + SIDE / 2) as usize][0];
    let edge = px[(SIDE / 2 * SIDE) as usize][0];
    println!("shadowed center {center}, lit edge {edge}");
    assert!(
        center < 1e-3,
        "the center under the occluder is lit: {center}"
    );
    assert!(edge > 0.05, "the edge is dark: {edge}");
}

/// The Cornell box with `lights` and nodes holding them (translated by
/// `(1, 2, 3)` and rotated 90° about x, so −Z points down).
fn cornell_with_lights(lights: serde_json::Value) -> tempfile::TempDir {
    cornell_variant(|doc| {
        let count = lights.as_array().unwrap().len();
        doc["extensionsUsed"]
            .as_array_mut()
            .unwrap()
            .push("KHR_lights_punctual".into());
        doc["extensions"] = serde_json::json!({"KHR_lights_punctual": {"lights": lights}});
        let half = std::f32::consts::FRAC_1_SQRT_2;
        for i in 0..count {
            let node = doc["nodes"].as_array().unwrap().len();
            doc["nodes"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "translation": [1.0, 2.0, 3.0],
                    "rotation": [-half, 0.0, 0.0, half],
                    "extensions": {"KHR_lights_punctual": {"light": i}}
                }));
            doc["scenes"][0]["nodes"]
                .as_array_mut()
                .unwrap()
                .push(node.into());
        }
    })
}

fn load(dir: &Path) -> Result<Scene, pictor_sdk::JobError> {
    let read = scene::dir_reader(dir);
    scene::load("cornell.gltf", &read)
}

#[test]
fn gltf_punctual_lights_load_in_world_space_with_their_units() {
    let d = cornell_with_lights(serde_json::json!([
        {"type": "point", "color": [1.0, 0.5, 0.25], "intensity": 4.0, "range": 10.0},
        {"type": "spot", "intensity": 2.0, "spot": {"innerConeAngle": 0.2, "outerConeAngle": 0.5}},
        {"type": "directional", "intensity": 3.0}
    ]));
    let scene = load(d.path()).unwrap();
    assert_eq!(scene.lights.len(), 3);
    let [point, spot, sun] = [scene.lights[0], scene.lights[1], scene.lights[2]];
    assert_eq!(point.kind, LightKind::Point);
    assert_eq!(point.intensity, [4.0, 2.0, 1.0]);
    assert!((point.position - v3(1.0, 2.0, 3.0)).length() < 1e-5);
    // −Z rotated by −90° about x points down.
    assert!(
        (point.direction - v3(0.0, -1.0, 0.0)).length() < 1e-5,
        "{:?}",
        point.direction
    );
    assert_eq!(
        spot.kind,
        LightKind::Spot {
            cos_inner: 0.2f32.cos(),
            cos_outer: 0.5f32.cos()
        }
    );
    assert_eq!(sun.kind, LightKind::Directional);
    assert_eq!(sun.intensity, [3.0; 3]);
    assert!(
        scene
            .notes
            .iter()
            .any(|n| n.contains("light ranges are ignored")),
        "{:?}",
        scene.notes
    );
    // They light the box: the render is brighter than without them.
    let data = SceneData::build(&scene);
    assert_eq!(
        data.light_count,
        3 + 2,
        "three punctual lights and the two ceiling triangles"
    );
}

#[test]
fn hostile_lights_are_errors_naming_the_light() {
    for (light, says) in [
        (
            serde_json::json!({"type": "spot", "spot": {"innerConeAngle": 0.5, "outerConeAngle": 0.4}}),
            "light 0: spot cone angles must have 0 ≤ inner (0.5) < outer (0.4) ≤ π/2",
        ),
        (
            serde_json::json!({"type": "spot", "spot": {"outerConeAngle": 2.0}}),
            "light 0: spot cone angles",
        ),
        (
            serde_json::json!({"type": "point", "intensity": -1.0}),
            "light 0: color [1.0, 1.0, 1.0] and intensity -1 must be finite and ≥ 0",
        ),
        (
            serde_json::json!({"type": "point", "color": [1.0, -2.0, 0.0]}),
            "must be finite and ≥ 0",
        ),
        (serde_json::json!({"type": "area"}), "not a valid glTF"),
    ] {
        let d = cornell_with_lights(serde_json::json!([light]));
        let error = load(d.path()).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains(says), "{light}: {error}");
    }
}

/// A camera above a white emissive floor, looking down through a black
/// quad at height 1 whose material has `alpha` and base color alpha
/// `factor`, textured by `texture` if given: the mean radiance is the
/// fraction of rays that pass the quad.
fn seen_through(
    alpha: scene::AlphaMode,
    factor: f32,
    texture: Option<render::scene::Texture>,
) -> f32 {
    let up = v3(0.0, 1.0, 0.0);
    let quad = |y: f32, material: u32| {
        let c = |x: f32, z: f32| v3(x, y, z);
        [
            [c(-3.0, -3.0), c(3.0, 3.0), c(3.0, -3.0)],
            [c(-3.0, -3.0), c(-3.0, 3.0), c(3.0, 3.0)],
        ]
        .map(|p| Triangle::new(p, [up; 3], [[0.0; 2]; 3], material))
    };
    let mut cover = quad(1.0, 1);
    // UVs spanning the texture once over the quad.
    for t in &mut cover {
        for (k, p) in t.p.iter().enumerate() {
            t.uv[k] = [(p.x + 3.0) / 6.0, (p.z + 3.0) / 6.0];
        }
    }
    let mut black = lambert(0.0, 0.0);
    black.base_color[3] = factor;
    black.alpha = alpha;
    black.base_color_texture = texture.as_ref().map(|_| 0);
    black.base_color_sampler.bilinear = false;
    let scene = Scene {
        triangles: quad(0.0, 0).into_iter().chain(cover).collect(),
        materials: vec![lambert(0.0, 1.0), black],
        textures: texture.into_iter().collect(),
        ..Scene::default()
    };
    let mut view = top_view();
    view.max_bounces = 0;
    view.spp = 64;
    view.camera =
        Camera::look_at(v3(0.0, 3.0, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 1.2).unwrap();
    mean(&render::cpu::render(&SceneData::build(&scene), &view))
}

#[test]
fn alpha_mask_and_blend_let_rays_through() {
    use scene::AlphaMode::{Blend, Mask, Opaque};
    assert_eq!(seen_through(Opaque, 0.3, None), 0.0);
    // Mask: alpha 0.3 under a cutoff of 0.5 is a hole; over 0.2, a wall.
    assert_eq!(seen_through(Mask(0.5), 0.3, None), 1.0);
    assert_eq!(seen_through(Mask(0.2), 0.3, None), 0.0);
    // Blend: alpha 0.3 stops 30 % of the rays.
    let blend = seen_through(Blend, 0.3, None);
    println!("blend 0.3: {blend:.4} passes");
    assert!((blend - 0.7).abs() < 0.01, "{blend}");
    // A mask from texture alpha: a 2×2 checker of opaque and clear
    // texels, half the view seen through.
    let texel = |a: u8| u32::from_le_bytes([0, 0, 0, a]);
    let checker = render::scene::Texture {
        width: 2,
        height: 2,
        texels: vec![texel(255), texel(0), texel(0), texel(255)],
    };
    let half = seen_through(Mask(0.5), 1.0, Some(checker));
    println!("checker mask: {half:.4} passes");
    assert!((half - 0.5).abs() < 0.03, "{half}");
}

#[test]
fn a_blended_occluder_lets_its_share_of_light_through() {
    // The shadow test's occluder, at alpha 0.25 (blend): the floor under
    // it gets 75 % of the light.
    let light = PunctualLight {
        kind: LightKind::Point,
        position: v3(0.0, 2.0, 0.0),
        direction: v3(0.0, -1.0, 0.0),
        intensity: [3.0; 3],
    };
    let render_with = |occluder: Option<scene::AlphaMode>| {
        let mut scene = floor_scene(0.8, vec![light]);
        if let Some(alpha) = occluder {
            let mut m = lambert(0.8, 0.0);
            m.base_color[3] = 0.25;
            m.alpha = alpha;
            scene.materials.push(m);
            add_occluder(&mut scene, 1);
        }
        let mut view = top_view();
        view.spp = 256;
        view.camera =
            Camera::look_at(v3(0.0, 0.9, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 0.5).unwrap();
        mean(&render::cpu::render(&SceneData::build(&scene), &view))
    };
    let open = render_with(None);
    let blended = render_with(Some(scene::AlphaMode::Blend));
    println!("under the occluder: open {open:.4}, blend 0.25 {blended:.4}");
    assert!((blended / open - 0.75).abs() < 0.02, "{blended} / {open}");
}
