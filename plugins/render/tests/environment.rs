//! Environment images (`params.environment = {"image": "sky.hdr", …}`)
//! against closed-form answers: a white sphere under an image of 1 still
//! renders 1, a Lambert floor under a sky with a small, very bright sun
//! shows ρ/π times the irradiance integrated from the image (and with
//! little noise: the sun is sampled as a light), rotation moves the sun,
//! and the params and files are checked.

#![allow(clippy::unwrap_used)]

mod common;

use common::{lambert, sphere};

use render::environment::{EnvImage, Environment, direction_at};
use render::layout::{SceneData, View};
use render::math::{V3, v3};
use render::scene::{self, Camera, Scene, Triangle};

/// A 64×32 sky of 0.2 with a 2×2-texel sun of 5000 at (`u`, `v`).
fn sunny(u: f32, v: f32) -> EnvImage {
    let (w, h) = (64usize, 32usize);
    let mut texels = vec![[0.2f32; 3]; w * h];
    let (x, y) = ((u * w as f32) as usize, (v * h as f32) as usize);
    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        texels[(y + dy) * w + x + dx] = [5000.0, 4500.0, 4000.0];
    }
    EnvImage {
        width: w as u32,
        height: h as u32,
        texels,
    }
}

fn view(size: u32, spp: u32, camera: Camera) -> View {
    View {
        width: size,
        height: size,
        tile: [0, 0, size, size],
        spp,
        max_bounces: 1,
        seed: 8,
        camera,
    }
}

#[test]
fn a_white_sphere_under_an_image_of_one_renders_one() {
    let scene = Scene {
        triangles: sphere(0),
        materials: vec![lambert(1.0)],
        environment: Environment {
            radiance: [1.0; 3],
            image: Some(EnvImage {
                width: 16,
                height: 8,
                texels: vec![[1.0; 3]; 128],
            }),
            rotation: 0.3,
        },
        ..Scene::default()
    };
    let camera =
        Camera::look_at(v3(0.0, 0.0, 3.0), V3::splat(0.0), v3(0.0, 1.0, 0.0), 0.8).unwrap();
    let mut v = view(24, 256, camera);
    v.max_bounces = 16;
    let px = render::cpu::render(&SceneData::build(&scene), &v);
    let mean = px.iter().flatten().sum::<f32>() / (px.len() * 3) as f32;
    println!("image furnace: mean {mean:.5}");
    assert!((mean - 1.0).abs() < 2e-3, "mean {mean}");
}

/// ρ/π × the irradiance of `env` on an upward floor, by quadrature of
/// the tracer's own environment lookup over the upper hemisphere.
fn floor_radiance(data: &SceneData, albedo: f32) -> [f32; 3] {
    let (nu, nv) = (1024, 512);
    let mut e = [0.0f64; 3];
    for j in 0..nv / 2 {
        for i in 0..nu {
            let (u, v) = ((i as f32 + 0.5) / nu as f32, (j as f32 + 0.5) / nv as f32);
            let (d, sin_theta) = direction_at(u, v, 0.0);
            let solid = 2.0 * std::f64::consts::PI * std::f64::consts::PI * f64::from(sin_theta)
                / f64::from(nu * nv);
            let l = render::trace::env_radiance(data, d, false).to_array();
            for (e, l) in e.iter_mut().zip(l) {
                *e += f64::from(l) * f64::from(d.y) * solid;
            }
        }
    }
    e.map(|e| (e * f64::from(albedo) / std::f64::consts::PI) as f32)
}

fn floor_scene(env: Environment) -> Scene {
    let c = |x: f32, z: f32| v3(x, 0.0, z);
    let up = v3(0.0, 1.0, 0.0);
    Scene {
        triangles: [
            [c(-50.0, -50.0), c(50.0, 50.0), c(50.0, -50.0)],
            [c(-50.0, -50.0), c(-50.0, 50.0), c(50.0, 50.0)],
        ]
        .iter()
        .map(|&p| Triangle::new(p, [up; 3], [[0.0; 2]; 3], 0))
        .collect(),
        materials: vec![lambert(0.5)],
        environment: env,
        ..Scene::default()
    }
}

#[test]
fn a_floor_under_a_sunny_sky_shows_the_integrated_irradiance_with_little_noise() {
    let camera =
        Camera::look_at(v3(0.0, 3.0, 0.0), V3::splat(0.0), v3(0.0, 0.0, -1.0), 0.2).unwrap();
    let mut previous: Option<f32> = None;
    for rotation in [0.0, 0.25] {
        let scene = floor_scene(Environment {
            radiance: [1.0; 3],
            image: Some(sunny(0.3, 0.2)),
            rotation,
        });
        let data = SceneData::build(&scene);
        let want = floor_radiance(&data, 0.5);
        let px = render::cpu::render(&data, &view(8, 64, camera));
        for c in 0..3 {
            let mean = px.iter().map(|p| p[c]).sum::<f32>() / px.len() as f32;
            let worst = px
                .iter()
                .map(|p| (p[c] / want[c] - 1.0).abs())
                .fold(0.0, f32::max);
            println!(
                "rotation {rotation}, channel {c}: mean {mean:.4}, closed form {:.4}, worst pixel off by {worst:.3}",
                want[c]
            );
            assert!((mean / want[c] - 1.0).abs() < 0.01, "{mean} vs {}", want[c]);
            // The sun carries most of the light from 1/500 of the sky:
            // found by chance it would leave pixels far apart.
            assert!(worst < 0.1, "a pixel is off by {worst}");
        }
        // Turning the sky about the up axis changes the sun's height above
        // the floor not at all: the same light arrives.
        if let Some(p) = previous {
            assert!((px_mean(&px) / p - 1.0).abs() < 0.01);
        }
        previous = Some(px_mean(&px));
    }
}

fn px_mean(px: &[[f32; 3]]) -> f32 {
    px.iter().flatten().sum::<f32>() / (px.len() * 3) as f32
}

#[test]
fn rotation_turns_the_sky_about_the_up_axis() {
    // The image's column u shows in the direction at angle
    // 2π(u − ½ − rotation) about the up axis from +x: the sun at u = 0.3
    // faces a wall facing +x at rotation 0.8 (−0.2) and is behind it at
    // rotation 0.3.
    let c = |y: f32, z: f32| v3(0.0, y, z);
    let facing = v3(1.0, 0.0, 0.0);
    let wall = |rotation: f32| {
        let scene = Scene {
            triangles: [
                [c(-50.0, -50.0), c(50.0, 50.0), c(50.0, -50.0)],
                [c(-50.0, -50.0), c(-50.0, 50.0), c(50.0, 50.0)],
            ]
            .iter()
            .map(|&p| Triangle::new(p, [facing; 3], [[0.0; 2]; 3], 0))
            .collect(),
            materials: vec![lambert(0.5)],
            environment: Environment {
                radiance: [1.0; 3],
                image: Some(sunny(0.3, 0.45)),
                rotation,
            },
            ..Scene::default()
        };
        let camera =
            Camera::look_at(v3(3.0, 0.0, 0.0), V3::splat(0.0), v3(0.0, 1.0, 0.0), 0.2).unwrap();
        px_mean(&render::cpu::render(
            &SceneData::build(&scene),
            &view(4, 64, camera),
        ))
    };
    let (away, toward) = (wall(0.3), wall(0.8));
    println!("wall facing +x: sun away {away:.3}, turned toward {toward:.3}");
    assert!(toward > 20.0 * away, "{toward} vs {away}");
}

/// A scratch folder with the Cornell box and `sky.hdr` (`sunny`).
fn with_sky() -> tempfile::TempDir {
    let d = common::cornell_variant(|_| {});
    let image = sunny(0.3, 0.2);
    let rgb: Vec<image::Rgb<f32>> = image.texels.iter().map(|&c| image::Rgb(c)).collect();
    let mut bytes = Vec::new();
    image::codecs::hdr::HdrEncoder::new(&mut bytes)
        .encode(&rgb, image.width as usize, image.height as usize)
        .unwrap();
    std::fs::write(d.path().join("sky.hdr"), bytes).unwrap();
    d
}

#[test]
fn environment_params_load_the_image_and_bad_ones_are_errors() {
    let d = with_sky();
    let read = scene::dir_reader(d.path());
    let params = |json: &str| render::Params::from_json(json);
    let p = params(r#"{"width": 8, "height": 8, "environment": {"image": "sky.hdr", "strength": 2, "rotation_deg": 90}}"#).unwrap();
    let prepared = render::prepare(&p, 0, "cornell.gltf", &read).unwrap();
    assert_eq!(prepared.data.env[..3], [2.0; 3]);
    assert!((prepared.data.env[3] - 0.25).abs() < 1e-6);
    assert!(prepared.data.env_pick > 0.0, "the sky is a light");
    // The sun survives the RGBE round trip.
    let meta = prepared.data.tex_meta[prepared.data.env_texture as usize];
    assert_eq!((meta[1], meta[2]), (64, 32));

    for (json, says) in [
        (
            r#"{"environment": {"image": "sky.hdr", "strength": -1}}"#,
            "`strength`",
        ),
        (
            r#"{"environment": {"image": "sky.hdr", "rotation_deg": 1e40}}"#,
            "environment",
        ),
        (r#"{"environment": {"image": ""}}"#, "`image`"),
        (
            r#"{"environment": {"image": "sky.hdr", "brightness": 2}}"#,
            "brightness",
        ),
        (r#"{"environment": [1, 2]}"#, "three numbers"),
        (r#"{"environment": "sky.hdr"}"#, "a color [r, g, b] or"),
    ] {
        let e = params(json).unwrap_err().to_string();
        assert!(e.contains(says), "{json}: {e}");
    }
    let missing = params(r#"{"environment": {"image": "none.hdr"}}"#).unwrap();
    let e = render::prepare(&missing, 0, "cornell.gltf", &read)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("none.hdr"), "{e}");
    std::fs::write(d.path().join("bad.hdr"), b"#?RADIANCE\nnot really").unwrap();
    let bad = params(r#"{"environment": {"image": "bad.hdr"}}"#).unwrap();
    let e = render::prepare(&bad, 0, "cornell.gltf", &read)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("environment `bad.hdr`"), "{e}");
}
