//! The `render` plugin through the real binary on whatever adapter the
//! machine has (lavapipe in CI): determinism, tile stitching, agreement with
//! the CPU reference tracer and the committed reference images, and job
//! errors for bad input. Small frames (≤ 96×64) keep each test to seconds.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{JobFolders, Run, exec, repo_root};

/// GPU vs CPU reference tracer with the same seed and samples: both draw
/// the same random numbers, so only float rounding (sin/cos/sqrt, fused
/// ops) separates them; the odd path that diverges at a grazing hit adds
/// a little noise. RMSE of tone-mapped values in [0, 1]; measured on
/// lavapipe at 32 spp: 0.00000 (Cornell, textured), 0.0016 (glossy), 0.0006
/// (lights, with its alpha-blended box), 0.0001 (studio, with glass).
const SAME_SAMPLES_RMSE: f32 = 0.002;
/// GPU at 256 spp (another seed) vs the 4096-spp reference PNG, both
/// noisy independently: per pixel, and after averaging 4×4 blocks (which
/// leaves mostly bias). Measured on lavapipe (next-event estimation):
/// per pixel 0.014 (Cornell), 0.008 (textured), 0.008 (glossy), 0.025
/// (lights), 0.019 (studio); 4×4 blocks 0.0038, 0.0020, 0.0018, 0.0071,
/// 0.0049. Block tolerances
/// are ~1.6× those, per scene: tight enough that the glossy scene with
/// one sphere's roughness 0.25 → 0.4 fails (block RMSE 0.0081;
/// `plugins/render/tests/native.rs`).
const REFERENCE_RMSE: f32 = 0.045;
fn block_tolerance(scene: &str) -> f32 {
    match scene {
        "cornell" => 0.0055,
        "textured" => 0.0037,
        "lights" => 0.012,
        "studio" => 0.008,
        _ => 0.0035,
    }
}

/// Means of `n`×`n` blocks of a `w`-wide image.
fn blocks(px: &[[f32; 3]], w: usize, n: usize) -> Vec<[f32; 3]> {
    let h = px.len() / w;
    let mut out = Vec::new();
    for by in (0..h).step_by(n) {
        for bx in (0..w).step_by(n) {
            let mut sum = [0.0f32; 3];
            for y in by..by + n {
                for x in bx..bx + n {
                    for c in 0..3 {
                        sum[c] += px[y * w + x][c] / (n * n) as f32;
                    }
                }
            }
            out.push(sum);
        }
    }
    out
}

fn scenes() -> PathBuf {
    repo_root().join("fixtures/scenes")
}

/// The reference params of fixture `name` and its scene file.
fn reference(name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(scenes().join(format!("{name}.ref.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    (
        v["scene"].as_str().unwrap().to_string(),
        v["params"].clone(),
    )
}

/// Job folders with the files of scene `file` (and its `.bin`) as inputs.
fn folders_with(file: &str) -> JobFolders {
    let f = JobFolders::new();
    std::fs::copy(scenes().join(file), f.input.join(file)).unwrap();
    let bin = file.replace(".gltf", ".bin");
    if bin != file {
        std::fs::copy(scenes().join(&bin), f.input.join(&bin)).unwrap();
    }
    f
}

fn render(f: &JobFolders, id: &str, params: Value) -> Run {
    let spec = json!({"version": 1, "id": id, "kind": "render", "params": params, "seed": 1});
    exec("render", &spec, f, &[])
}

fn succeeded(run: &Run) -> &Run {
    assert_eq!(
        run.code, 0,
        "render failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run
}

fn read_pfm(path: &Path) -> (u32, u32, Vec<[f32; 3]>) {
    render::image::decode_pfm(&std::fs::read(path).unwrap()).unwrap()
}

/// The CPU reference tracer's result for the same params, in-process.
fn cpu_reference(file: &str, params: &Value) -> Vec<[f32; 3]> {
    let p = render::Params::from_json(&params.to_string()).unwrap();
    let dir = scenes();
    let read = render::scene::dir_reader(&dir);
    let prepared = render::prepare(&p, 1, file, &read).unwrap();
    render::cpu::render(&prepared.data, &prepared.view)
}

#[test]
fn gpu_matches_the_cpu_reference_tracer_sample_for_sample() {
    for name in ["cornell", "textured", "glossy", "lights", "studio"] {
        let (file, mut params) = reference(name);
        params["spp"] = json!(32);
        params["outputs"] = json!(["pfm"]);
        let f = folders_with(&file);
        succeeded(&render(&f, &format!("same-{name}"), params.clone()));
        let (_, _, gpu) = read_pfm(&f.output.join("image.pfm"));
        let cpu = cpu_reference(&file, &params);
        let rmse = render::image::rmse_display(&gpu, &cpu);
        println!("{name}: GPU vs CPU, same samples: tone-mapped RMSE {rmse:.5}");
        assert!(
            rmse < SAME_SAMPLES_RMSE,
            "{name}: RMSE {rmse} ≥ {SAME_SAMPLES_RMSE}"
        );
    }
}

#[test]
fn an_environment_image_lights_the_scene_alike_on_gpu_and_cpu() {
    // The Blender scene under `sky.hdr` (a sky with a small bright sun,
    // sampled as a light), turned 40° and at strength 0.5.
    let (file, mut params) = reference("studio");
    params["spp"] = json!(32);
    params["outputs"] = json!(["pfm"]);
    params["environment"] = json!({"image": "sky.hdr", "strength": 0.5, "rotation_deg": 40});
    let f = folders_with(&file);
    std::fs::copy(scenes().join("sky.hdr"), f.input.join("sky.hdr")).unwrap();
    succeeded(&render(&f, "sky", params.clone()));
    let (_, _, gpu) = read_pfm(&f.output.join("image.pfm"));
    let cpu = cpu_reference(&file, &params);
    let rmse = render::image::rmse_display(&gpu, &cpu);
    let mean = |px: &[[f32; 3]]| px.iter().flatten().sum::<f32>() / (px.len() * 3) as f32;
    println!(
        "studio under sky.hdr: GPU vs CPU tone-mapped RMSE {rmse:.5}; mean radiance {:.4} / {:.4}",
        mean(&gpu),
        mean(&cpu)
    );
    // The same samples, but a sun of 20 000 seen through a perfectly
    // smooth glass ball turns the last bit of a rounding difference
    // between the GPU's and the CPU's sin/cos into a different path for
    // a few samples (measured: 3 of 6144 pixels differ by more than 0.05,
    // RMSE 0.0058); every other pixel agrees as on the other scenes.
    let far_off = gpu
        .iter()
        .zip(&cpu)
        .filter(|(g, c)| (0..3).any(|k| (g[k] - c[k]).abs() > 0.05))
        .count();
    assert!(far_off <= 12, "{far_off} pixels differ by more than 0.05");
    assert!(rmse < 0.01, "RMSE {rmse}");
    // The sky lights it: brighter than the studio's own lights alone.
    let (_, mut dark) = reference("studio");
    dark["spp"] = json!(32);
    let unlit = mean(&cpu_reference(&file, &dark));
    println!("without the sky: mean radiance {unlit:.4}");
    assert!(mean(&cpu) > 1.5 * unlit);
}

#[test]
fn denoising_on_a_worker_writes_the_filtered_image_and_its_guides() {
    let (file, mut params) = reference("cornell");
    params["spp"] = json!(16);
    params["outputs"] = json!(["png", "pfm", "guides"]);
    let f = folders_with(&file);
    succeeded(&render(&f, "noisy", params.clone()));
    let (_, _, noisy) = read_pfm(&f.output.join("image.pfm"));
    params["denoise"] = json!(true);
    let g = folders_with(&file);
    succeeded(&render(&g, "denoised", params));
    let (w, h, denoised) = read_pfm(&g.output.join("image.pfm"));
    let (_, _, albedo) = read_pfm(&g.output.join("albedo.pfm"));
    let (_, _, normal) = read_pfm(&g.output.join("normal.pfm"));
    assert_eq!(
        (albedo.len(), normal.len()),
        ((w * h) as usize, (w * h) as usize)
    );
    let reference = read_pfm(&scenes().join("cornell.ref.pfm")).2;
    let (before, after) = (
        render::image::rmse_display(&noisy, &reference),
        render::image::rmse_display(&denoised, &reference),
    );
    println!("cornell 16 spp on the GPU: RMSE {before:.4} noisy, {after:.4} denoised");
    assert!(after * 1.5 < before, "{after} vs {before}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(g.output.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["denoised"], json!(true));
    // The guides came from the same scene: the back wall's white.
    assert!(
        albedo[w as usize / 2]
            .iter()
            .all(|c| (c - 0.73).abs() < 1e-3),
        "{:?}",
        albedo[w as usize / 2]
    );
}

#[test]
fn gpu_matches_the_committed_reference_images() {
    for name in ["cornell", "textured", "glossy", "lights", "studio"] {
        let (file, mut params) = reference(name);
        params["spp"] = json!(256);
        params["seed"] = json!(2);
        let f = folders_with(&file);
        succeeded(&render(&f, &format!("ref-{name}"), params));
        let (w, h, gpu) =
            render::image::decode_png_display(&std::fs::read(f.output.join("image.png")).unwrap())
                .unwrap();
        let (rw, rh, reference) = render::image::decode_png_display(
            &std::fs::read(scenes().join(format!("{name}.ref.png"))).unwrap(),
        )
        .unwrap();
        assert_eq!((w, h), (rw, rh));
        let rmse = render::image::rmse(&gpu, &reference);
        let block_rmse = render::image::rmse(
            &blocks(&gpu, w as usize, 4),
            &blocks(&reference, w as usize, 4),
        );
        println!(
            "{name}: GPU 256 spp vs 4096-spp reference: RMSE {rmse:.5}, of 4×4 block means {block_rmse:.5}"
        );
        assert!(
            rmse < REFERENCE_RMSE,
            "{name}: RMSE {rmse} ≥ {REFERENCE_RMSE}"
        );
        let tolerance = block_tolerance(name);
        assert!(
            block_rmse < tolerance,
            "{name}: block RMSE {block_rmse} ≥ {tolerance}"
        );
    }
}

#[test]
fn same_scene_params_and_seed_give_the_same_bytes_twice() {
    let params = json!({"width": 40, "height": 32, "spp": 16, "environment": [0.3, 0.3, 0.3], "outputs": ["png", "pfm"]});
    let (a, b) = (folders_with("textured.glb"), folders_with("textured.glb"));
    succeeded(&render(&a, "twice-a", params.clone()));
    succeeded(&render(&b, "twice-b", params.clone()));
    for file in ["image.png", "image.pfm"] {
        let (x, y) = (
            std::fs::read(a.output.join(file)).unwrap(),
            std::fs::read(b.output.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two runs");
    }
    // Another seed gives another image.
    let c = folders_with("textured.glb");
    let mut other = params;
    other["seed"] = json!(99);
    succeeded(&render(&c, "twice-c", other));
    assert_ne!(
        std::fs::read(a.output.join("image.pfm")).unwrap(),
        std::fs::read(c.output.join("image.pfm")).unwrap()
    );
}

#[test]
fn tiles_rendered_separately_stitch_into_the_whole_frame() {
    let (w, h) = (48u32, 40u32);
    let base = json!({"width": w, "height": h, "spp": 8, "environment": [0.3, 0.35, 0.4], "outputs": ["pfm"]});
    let whole_f = folders_with("glossy.gltf");
    succeeded(&render(&whole_f, "whole", base.clone()));
    let (_, _, whole) = read_pfm(&whole_f.output.join("image.pfm"));
    // Uneven tiles, not multiples of the kernel's 8×8 workgroups.
    let mut stitched = vec![[f32::NAN; 3]; (w * h) as usize];
    for (i, (x, y, tw, th)) in [
        (0, 0, 20, 17),
        (20, 0, 28, 17),
        (0, 17, 20, 23),
        (20, 17, 28, 23),
    ]
    .into_iter()
    .enumerate()
    {
        let mut params = base.clone();
        params["tile"] = json!({"x": x, "y": y, "width": tw, "height": th});
        let f = folders_with("glossy.gltf");
        succeeded(&render(&f, &format!("tile-{i}"), params));
        let (pw, ph, px) = read_pfm(&f.output.join("image.pfm"));
        assert_eq!((pw, ph), (tw, th));
        for row in 0..th {
            for col in 0..tw {
                stitched[((y + row) * w + x + col) as usize] = px[(row * tw + col) as usize];
            }
        }
    }
    let same = whole
        .iter()
        .zip(&stitched)
        .all(|(a, b)| a.map(f32::to_bits) == b.map(f32::to_bits));
    assert!(same, "stitched tiles differ from the whole frame");
}

#[test]
fn report_and_metrics_describe_the_passes() {
    let f = folders_with("cornell.gltf");
    let run = render(&f, "report", json!({"width": 64, "height": 48, "spp": 8}));
    let outcome = succeeded(&run).outcome();
    let metrics = &outcome["success"]["metrics"];
    assert!(
        metrics["msamples_per_s"].as_f64().unwrap() > 0.0,
        "{outcome}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(f.output.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["samples"], 64 * 48 * 8);
    assert_eq!(
        report["passes"].as_u64().unwrap() as usize,
        report["pass_ms"].as_array().unwrap().len()
    );
    assert!(report["passes"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(outcome["progress"]["fraction"], 1.0);
    assert!(f.output.join("image.png").is_file());
    assert!(!f.output.join("image.pfm").exists(), "PFM only on request");
}

#[test]
fn a_long_render_stops_promptly_at_the_job_timeout() {
    let f = folders_with("cornell.gltf");
    let spec = json!({"version": 1, "id": "long", "kind": "render", "params": {"width": 256, "height": 256, "spp": 65536},
        "limits": {"timeout_s": 1}});
    let run = exec("render", &spec, &f, &[]);
    assert_eq!(run.failure_kind(), "timed-out", "{}", run.stdout);
    let secs = run.outcome()["duration_s"].as_f64().unwrap();
    // Passes are kept near 40 ms, so the host regains control quickly.
    assert!(secs < 5.0, "stopped after {secs} s");
}

/// Runs a job on `inputs` (name, bytes) and returns its failure message.
fn failure(inputs: &[(&str, Vec<u8>)], params: Value) -> String {
    let f = JobFolders::new();
    for (name, bytes) in inputs {
        std::fs::write(f.input.join(name), bytes).unwrap();
    }
    let run = render(&f, "bad", params);
    assert_eq!(
        run.code, 1,
        "expected a job error:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert_ne!(run.failure_kind(), "trap", "{}", run.stdout);
    run.failure_message()
}

#[test]
fn bad_input_gives_a_job_error_naming_the_problem() {
    let gltf = std::fs::read_to_string(scenes().join("cornell.gltf")).unwrap();
    let bin = std::fs::read(scenes().join("cornell.bin")).unwrap();
    let small = json!({"width": 8, "height": 8, "spp": 1});

    let m = failure(&[("scene.gltf", b"{ not json".to_vec())], small.clone());
    assert!(m.contains("`scene.gltf`: not a valid glTF 2.0 file"), "{m}");

    let m = failure(
        &[("cornell.gltf", gltf.clone().into_bytes())],
        small.clone(),
    );
    assert!(
        m.contains("buffer 0") && m.contains("cornell.bin") && m.contains("not found"),
        "{m}"
    );

    let m = failure(
        &[
            ("cornell.gltf", gltf.clone().into_bytes()),
            ("cornell.bin", bin[..100].to_vec()),
        ],
        small.clone(),
    );
    assert!(
        m.contains("buffer 0 has 100 bytes, the glTF says 1680"),
        "{m}"
    );

    let mut points: Value = serde_json::from_str(&gltf).unwrap();
    points["meshes"][0]["primitives"][0]["mode"] = json!(0);
    let m = failure(
        &[
            ("cornell.gltf", points.to_string().into_bytes()),
            ("cornell.bin", bin.clone()),
        ],
        small.clone(),
    );
    assert!(
        m.starts_with("unsupported: `cornell.gltf`: mesh 0 primitive 0 draws Points"),
        "{m}"
    );

    let mut draco: Value = serde_json::from_str(&gltf).unwrap();
    draco["extensionsRequired"] = json!(["KHR_draco_mesh_compression"]);
    let m = failure(
        &[
            ("cornell.gltf", draco.to_string().into_bytes()),
            ("cornell.bin", bin.clone()),
        ],
        small.clone(),
    );
    assert!(m.contains("extensionsRequired"), "{m}");

    let mut escape: Value = serde_json::from_str(&gltf).unwrap();
    escape["buffers"][0]["uri"] = json!("../../etc/passwd");
    let m = failure(
        &[("cornell.gltf", escape.to_string().into_bytes())],
        small.clone(),
    );
    assert!(m.contains("without `..`"), "{m}");

    let scene = || {
        vec![
            ("cornell.gltf", gltf.clone().into_bytes()),
            ("cornell.bin", bin.clone()),
        ]
    };
    let m = failure(
        &scene(),
        json!({"width": 8, "height": 8, "denoise": true, "tile": {"x": 0, "y": 0, "width": 4, "height": 4}}),
    );
    assert!(
        m.starts_with("invalid params: `denoise` filters whole frames"),
        "{m}"
    );
    let m = failure(&scene(), json!({"width": 100000, "height": 8}));
    assert_eq!(m, "invalid params: `width` must be in 1..=8192, got 100000");
    let m = failure(&scene(), json!({"width": 8192, "height": 8192}));
    assert!(
        m.starts_with("invalid params: `width` × `height` is 67108864 pixels"),
        "{m}"
    );
    let m = failure(
        &scene(),
        json!({"width": 64, "height": 64, "tile": {"x": 60, "y": 0, "width": 8, "height": 8}}),
    );
    assert!(
        m.contains("`tile` 8×8 at (60, 0) is not a non-empty rectangle inside the 64×64 frame"),
        "{m}"
    );
    let m = failure(&scene(), json!({"sp": 4}));
    assert!(m.contains("unknown field `sp`"), "{m}");
    let m = failure(&[], small.clone());
    assert_eq!(m, "invalid input: no `.gltf` or `.glb` scene in the input");
}

#[test]
fn frame_ranges_render_the_animation_and_split_across_jobs() {
    // The Cornell box with its short block moving +1 in x over one second
    // (keys in a second buffer file).
    let f = folders_with("cornell.gltf");
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(f.input.join("cornell.gltf")).unwrap()).unwrap();
    let keys: Vec<u8> = [0.0f32, 1.0, 0.35, 0.0, 0.3, 1.35, 0.0, 0.3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(f.input.join("anim.bin"), &keys).unwrap();
    doc["buffers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"byteLength": 32, "uri": "anim.bin"}));
    let views = doc["bufferViews"].as_array_mut().unwrap();
    views.push(json!({"buffer": 1, "byteOffset": 0, "byteLength": 8}));
    views.push(json!({"buffer": 1, "byteOffset": 8, "byteLength": 24}));
    let v = views.len();
    let accessors = doc["accessors"].as_array_mut().unwrap();
    accessors.push(json!({"bufferView": v - 2, "componentType": 5126, "count": 2, "type": "SCALAR", "min": [0.0], "max": [1.0]}));
    accessors.push(json!({"bufferView": v - 1, "componentType": 5126, "count": 2, "type": "VEC3"}));
    let a = accessors.len();
    doc["animations"] = json!([{"samplers": [{"input": a - 2, "output": a - 1}],
        "channels": [{"sampler": 0, "target": {"node": 4, "path": "translation"}}]}]);
    std::fs::write(f.input.join("cornell.gltf"), doc.to_string()).unwrap();

    let params = |first: u32, last: u32| json!({"width": 32, "height": 32, "spp": 4, "frames": {"first": first, "last": last, "fps": 2}});
    succeeded(&render(&f, "frames-all", params(0, 2)));
    let read = |dir: &Path, n: u32| std::fs::read(dir.join(format!("frame_{n:04}.png"))).unwrap();
    let all: Vec<Vec<u8>> = (0..3).map(|n| read(&f.output, n)).collect();
    assert!(
        all[0] != all[1] && all[1] != all[2],
        "the frames do not differ"
    );
    // The middle frame alone, as another worker would render it.
    let g = JobFolders::new();
    for file in ["cornell.gltf", "cornell.bin", "anim.bin"] {
        std::fs::copy(f.input.join(file), g.input.join(file)).unwrap();
    }
    let run = render(&g, "frames-one", params(1, 1));
    succeeded(&run);
    assert!(
        read(&g.output, 1) == all[1],
        "frame 1 differs when rendered alone"
    );
    assert!(!g.output.join("frame_0000.png").exists());
}

#[test]
fn a_scene_without_a_camera_is_framed_and_rendered_saying_so() {
    // The Cornell box with its camera taken out, as most sample models come.
    let f = folders_with("cornell.gltf");
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(f.input.join("cornell.gltf")).unwrap()).unwrap();
    for node in doc["nodes"].as_array_mut().unwrap() {
        node.as_object_mut().unwrap().remove("camera");
    }
    std::fs::write(f.input.join("cornell.gltf"), doc.to_string()).unwrap();
    let run = render(
        &f,
        "framed",
        json!({"width": 48, "height": 32, "spp": 4, "environment": [1, 1, 1], "outputs": ["png", "pfm"]}),
    );
    succeeded(&run);
    let report: Value =
        serde_json::from_slice(&std::fs::read(f.output.join("report.json")).unwrap()).unwrap();
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("framed automatically")),
        "{report}"
    );
    // In a white environment, rays that miss are exactly 1 and the box's
    // walls are darker: the box fills the middle of the frame and the
    // corners show the environment around it (nothing cropped).
    let (w, h, px) = read_pfm(&f.output.join("image.pfm"));
    assert_eq!((w, h), (48, 32));
    let at = |x: u32, y: u32| px[(y * w + x) as usize];
    let background = |p: [f32; 3]| p.iter().all(|c| (c - 1.0).abs() < 1e-4);
    for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)] {
        assert!(background(at(x, y)), "corner ({x}, {y}) is {:?}", at(x, y));
    }
    assert!(
        !background(at(w / 2, h / 2)),
        "the middle is {:?}",
        at(w / 2, h / 2)
    );
    let covered = px.iter().filter(|p| !background(**p)).count();
    assert!(
        covered > px.len() / 5,
        "the box covers only {covered} of {} pixels",
        px.len()
    );
}
