//! Scenes shared by the render crate's test files.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use render::math::v3;
use render::scene::{Material, Triangle};

/// A gray Lambert material (no specular coat) of `albedo`.
pub fn lambert(albedo: f32) -> Material {
    Material {
        base_color: [albedo, albedo, albedo, 1.0],
        metallic: 0.0,
        roughness: 1.0,
        specular: 0.0,
        ..Material::default()
    }
}

/// `fixtures/scenes/` of the repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenes")
}

/// A scratch folder holding the Cornell box fixture as edited by `edit`.
pub fn cornell_variant(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("cornell.gltf")).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(dir.path().join("cornell.gltf"), doc.to_string()).unwrap();
    std::fs::copy(
        fixtures().join("cornell.bin"),
        dir.path().join("cornell.bin"),
    )
    .unwrap();
    dir
}

/// A unit sphere at the origin (48 × 24 segments, normals and winding
/// pointing out),
/// every triangle with `material`.
pub fn sphere(material: u32) -> Vec<Triangle> {
    let (seg, rings) = (48u32, 24u32);
    let at = |i: u32, j: u32| {
        let (t, p) = (
            std::f32::consts::PI * i as f32 / rings as f32,
            2.0 * std::f32::consts::PI * j as f32 / seg as f32,
        );
        v3(t.sin() * p.cos(), t.cos(), t.sin() * p.sin())
    };
    let mut tris = Vec::new();
    for i in 0..rings {
        for j in 0..seg {
            let (a, b, c, d) = (at(i, j), at(i, j + 1), at(i + 1, j), at(i + 1, j + 1));
            for p in [[a, b, c], [b, d, c]] {
                tris.push(Triangle::new(p, p, [[0.0; 2]; 3], material));
            }
        }
    }
    tris
}
