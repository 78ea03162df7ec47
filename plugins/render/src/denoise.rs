//! The optional denoiser (`params.denoise`): an edge-avoiding à-trous
//! wavelet filter (Dammertz et al. 2010) guided by the first hit's albedo
//! and normal, on the illumination with the albedo divided out (as SVGF
//! does), so texture detail passes through untouched and only lighting
//! noise is smoothed. Off by default: a denoised image is no longer the
//! unbiased estimate the tests and other workers check against.

use crate::layout::{SceneData, View};
use crate::math::V3;
use crate::trace;

/// Filter passes: each doubles the step, 5 reach ±62 pixels.
const PASSES: u32 = 3;
/// B3-spline taps of one dimension of the 5×5 kernel.
const TAPS: [f32; 5] = [1.0 / 16.0, 1.0 / 4.0, 3.0 / 8.0, 1.0 / 4.0, 1.0 / 16.0];
/// Edge-stopping scales: normals (unit vectors), albedo, and luminance
/// steps in units of the local noise (SVGF's σ_l).
const SIGMA_NORMAL: f32 = 0.3;
const SIGMA_ALBEDO: f32 = 0.1;
const SIGMA_COLOR: f32 = 2.0;
/// Albedo below which a pixel's color is not divided by it.
const ALBEDO_FLOOR: f32 = 0.02;
/// Most samples per pixel of the guide buffers (they take the image's
/// first ones, so a pixel split by an edge mixes its sides as the image
/// does).
const GUIDE_SAMPLES: u32 = 16;

/// The albedo and normal buffers of the view's tile (rows top to
/// bottom): per pixel the mean over a few jittered camera rays of the
/// first surface's base color (the environment's radiance, clamped to 1,
/// where rays leave) and shading normal (0 where they leave).
pub fn guides(scene: &SceneData, view: &View) -> (Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let [tx, ty, tw, th] = view.tile;
    let samples = view.spp.clamp(1, GUIDE_SAMPLES);
    let params = view.params(scene, 0..th, 0..samples);
    let mut albedo = Vec::with_capacity((tw * th) as usize);
    let mut normal = Vec::with_capacity((tw * th) as usize);
    for y in 0..th {
        for x in 0..tw {
            let (mut a, mut n) = (V3::splat(0.0), V3::splat(0.0));
            for s in 0..samples {
                let (sa, sn) = trace::first_hit(scene, &params, tx + x, ty + y, s);
                a = a + sa;
                n = n + sn;
            }
            let k = 1.0 / samples as f32;
            albedo.push((a * k).to_array());
            normal.push((n * k).to_array());
        }
    }
    (albedo, normal)
}

fn distance2(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|k| (a[k] - b[k]) * (a[k] - b[k])).sum()
}

/// Denoises `color` (`width` × `height`, linear) under the guides. The
/// illumination's edge-stopping weight follows SVGF: a luminance step
/// counts against its local noise (the standard deviation of the
/// tone-mapped luminance over 5×5 pixels, which shrinks as passes smooth
/// it), so real edges stop the filter and noise does not.
pub fn denoise(
    color: &[[f32; 3]],
    albedo: &[[f32; 3]],
    normal: &[[f32; 3]],
    width: u32,
    height: u32,
) -> Vec<[f32; 3]> {
    let (w, h) = (width as i64, height as i64);
    // Illumination: the color with the albedo divided out, where there is
    // one to divide by (not on emitters and black surfaces).
    let divisor = |a: &[f32; 3]| {
        if a.iter().all(|&c| c >= ALBEDO_FLOOR) {
            *a
        } else {
            [1.0; 3]
        }
    };
    let mut light: Vec<[f32; 3]> = color
        .iter()
        .zip(albedo)
        .map(|(c, a)| {
            let d = divisor(a);
            [0, 1, 2].map(|k| c[k] / d[k])
        })
        .collect();
    let luma = |c: [f32; 3]| {
        let l = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        l / (1.0 + l)
    };
    // Local noise of the tone-mapped luminance.
    let at = |x: i64, y: i64| (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) as usize;
    let mut deviation = vec![0.0f32; light.len()];
    let mut means = vec![0.0f32; light.len()];
    for y in 0..h {
        for x in 0..w {
            let (mut sum, mut sum2) = (0.0f32, 0.0f32);
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let l = luma(light[at(x + dx, y + dy)]);
                    sum += l;
                    sum2 += l * l;
                }
            }
            let mean = sum / 25.0;
            deviation[(y * w + x) as usize] = (sum2 / 25.0 - mean * mean).max(0.0).sqrt();
            means[(y * w + x) as usize] = mean;
        }
    }
    // Fireflies (a rare sample far above its neighbours) would pass as
    // edges: their tone-mapped luminance is pulled down to the local mean
    // plus two deviations first.
    for p in 0..light.len() {
        let l = luma(light[p]);
        let cap = (means[p] + 2.0 * deviation[p]).min(0.999);
        if l > cap && l > 0.0 {
            let (lin, lin_cap) = (l / (1.0 - l), cap / (1.0 - cap));
            light[p] = light[p].map(|c| c * lin_cap / lin);
        }
    }
    for pass in 0..PASSES {
        let step = 1i64 << pass;
        // Each pass averages about four times as many samples.
        let shrink = 0.5f32.powi(pass as i32);
        let mut next = vec![[0.0f32; 3]; light.len()];
        for y in 0..h {
            for x in 0..w {
                let p = (y * w + x) as usize;
                let (lp, np, ap) = (luma(light[p]), normal[p], albedo[p]);
                let scale = SIGMA_COLOR * deviation[p] * shrink + 1e-4;
                let mut sum = [0.0f32; 3];
                let mut weight = 0.0f32;
                for (j, ty) in TAPS.iter().enumerate() {
                    let qy = y + (j as i64 - 2) * step;
                    if !(0..h).contains(&qy) {
                        continue;
                    }
                    for (i, tx) in TAPS.iter().enumerate() {
                        let qx = x + (i as i64 - 2) * step;
                        if !(0..w).contains(&qx) {
                            continue;
                        }
                        let q = (qy * w + qx) as usize;
                        let e = (lp - luma(light[q])).abs() / scale
                            + distance2(np, normal[q]) / (SIGMA_NORMAL * SIGMA_NORMAL)
                            + distance2(ap, albedo[q]) / (SIGMA_ALBEDO * SIGMA_ALBEDO);
                        let wq = tx * ty * (-e).exp();
                        for k in 0..3 {
                            sum[k] += wq * light[q][k];
                        }
                        weight += wq;
                    }
                }
                // The centre tap always counts (weight ≥ 9/64).
                next[p] = sum.map(|s| s / weight);
            }
        }
        light = next;
    }
    light
        .iter()
        .zip(albedo)
        .map(|(l, a)| {
            let d = divisor(a);
            [0, 1, 2].map(|k| l[k] * d[k])
        })
        .collect()
}
