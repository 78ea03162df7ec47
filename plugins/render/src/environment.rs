//! The environment: the radiance rays see when they leave the scene, a
//! constant color or an equirectangular HDR image (Radiance `.hdr`),
//! lit as a light: next-event estimation samples it in proportion to its
//! brightness through a table over blocks of the image.
//!
//! Mapping (Blender's, so the same `.hdr` lights a scene the same way in
//! Cycles; glTF's +Y is up): a direction d falls at
//! u = ½ + atan2(d.z, d.x) / 2π + rotation, v = acos(d.y) / π, with v = 0
//! the image's top row and u wrapping around. Camera rays see the image
//! filtered bilinearly; light on surfaces comes from its nearest texels,
//! which is what the sampling table draws from.

use crate::layout::alias_table;
use crate::math::{V3, v3};

/// Most pixels of an environment image (4096 × 2048).
pub const MAX_PIXELS: u64 = 4096 * 2048;
/// Most blocks per side of the sampling table (columns; rows are half).
pub const MAX_BLOCKS_U: u32 = 256;

const PI: f32 = std::f32::consts::PI;

/// An equirectangular image of linear radiance.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Linear RGB, row by row from the top.
    pub texels: Vec<[f32; 3]>,
}

/// What rays that leave the scene see.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Radiance multiplier (the color, or the image's strength per channel).
    pub radiance: [f32; 3],
    /// The image, if any (a constant color without).
    pub image: Option<EnvImage>,
    /// Turn about the up axis, in turns (0–1) added to u.
    pub rotation: f32,
}

impl Default for Environment {
    /// Black.
    fn default() -> Self {
        Environment::uniform([0.0; 3])
    }
}

impl Environment {
    /// A constant color.
    pub fn uniform(radiance: [f32; 3]) -> Self {
        Environment {
            radiance,
            image: None,
            rotation: 0.0,
        }
    }
}

/// Decodes a Radiance `.hdr` image, refusing ones above [`MAX_PIXELS`]
/// before reading their pixels; radiances that are not finite become 0.
pub fn decode_hdr(bytes: &[u8]) -> Result<EnvImage, String> {
    use image::ImageDecoder as _;
    let decoder = image::codecs::hdr::HdrDecoder::new(bytes)
        .map_err(|e| format!("not a Radiance HDR image: {e}"))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err("the image is empty".into());
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "{width}×{height} is more than {MAX_PIXELS} pixels (4096×2048); scale it down"
        ));
    }
    let mut raw = vec![0u8; width as usize * height as usize * 12];
    decoder
        .read_image(&mut raw)
        .map_err(|e| format!("corrupt Radiance HDR image: {e}"))?;
    let texels = raw
        .chunks_exact(12)
        .map(|p| {
            let c = |i: usize| {
                let x = f32::from_ne_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
                if x.is_finite() {
                    x.clamp(0.0, 1e9)
                } else {
                    0.0
                }
            };
            [c(0), c(4), c(8)]
        })
        .collect();
    Ok(EnvImage {
        width,
        height,
        texels,
    })
}

/// Linear RGB as RGBE (8-bit mantissas, rounded to nearest, and a shared
/// exponent; red in the low byte), as the tracers store environment
/// texels: 1 and other small powers of two stay exact.
pub fn pack_rgbe(c: [f32; 3]) -> u32 {
    let m = c[0].max(c[1]).max(c[2]);
    if m.is_nan() || m < 1e-30 {
        return 0;
    }
    let mut e = m.log2().floor() as i32 + 1;
    if (m * (-e as f32).exp2() * 256.0).round() >= 256.0 {
        e += 1;
    }
    let e = e.clamp(-127, 127);
    let scale = (-e as f32).exp2() * 256.0;
    let q = |x: f32| ((x * scale).round() as u32).min(255);
    q(c[0]) | q(c[1]) << 8 | q(c[2]) << 16 | ((e + 128) as u32) << 24
}

/// The color [`pack_rgbe`] packed (the same arithmetic as the kernel).
pub fn unpack_rgbe(t: u32) -> V3 {
    if t >> 24 == 0 {
        return V3::splat(0.0);
    }
    let scale = ((t >> 24) as f32 - 136.0).exp2();
    v3(
        (t & 255) as f32,
        ((t >> 8) & 255) as f32,
        ((t >> 16) & 255) as f32,
    ) * scale
}

/// The importance table of an image: blocks across and down, and per
/// block (row by row) its alias-table slot (keep probability, alias) and
/// the probability of picking it; plus the image's mean radiance over the
/// sphere (luminance, weighted by solid angle).
pub struct Table {
    /// Blocks across.
    pub blocks_u: u32,
    /// Blocks down.
    pub blocks_v: u32,
    /// Per block: keep probability, alias index, pick probability.
    pub entries: Vec<(f32, u32, f32)>,
    /// Mean luminance over the sphere.
    pub mean: f64,
}

/// Builds the table over blocks of at most `image.width / MAX_BLOCKS_U`
/// pixels, each weighted by its mean luminance × its solid angle. Light
/// reaching surfaces reads the image's nearest texel, so where blocks are
/// texels (images up to 256 wide) a light sample's value ÷ pdf is the
/// same all over a block: a small bright sun costs no noise.
pub fn table(image: &EnvImage) -> Table {
    let bu = image.width.min(MAX_BLOCKS_U);
    let bv = image.height.clamp(1, MAX_BLOCKS_U / 2);
    let (w, h) = (image.width as usize, image.height as usize);
    let lum = |c: [f32; 3]| {
        let l = crate::trace::LUMA;
        l[0] * f64::from(c[0]) + l[1] * f64::from(c[1]) + l[2] * f64::from(c[2])
    };
    let mut weights = Vec::with_capacity((bu * bv) as usize);
    let mut total_solid = 0.0;
    let mut total = 0.0;
    for j in 0..bv as usize {
        let (y0, y1) = (
            j * h / bv as usize,
            ((j + 1) * h / bv as usize).max(j * h / bv as usize + 1),
        );
        let theta0 = std::f64::consts::PI * j as f64 / f64::from(bv);
        let theta1 = std::f64::consts::PI * (j + 1) as f64 / f64::from(bv);
        let solid = 2.0 * std::f64::consts::PI / f64::from(bu) * (theta0.cos() - theta1.cos());
        for i in 0..bu as usize {
            let (x0, x1) = (
                i * w / bu as usize,
                ((i + 1) * w / bu as usize).max(i * w / bu as usize + 1),
            );
            let mut sum = 0.0;
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    sum += lum(image.texels[y * w + x]);
                }
            }
            let mean = sum / ((y1.min(h) - y0) * (x1.min(w) - x0)) as f64;
            weights.push(mean * solid);
            total += mean * solid;
            total_solid += solid;
        }
    }
    let entries = if total > 0.0 {
        alias_table(&weights)
            .into_iter()
            .zip(&weights)
            .map(|((keep, alias), w)| (keep, alias, (w / total) as f32))
            .collect()
    } else {
        // Black: nothing to sample (the light list leaves it out).
        vec![(1.0, 0, 0.0); weights.len()]
    };
    Table {
        blocks_u: bu,
        blocks_v: bv,
        entries,
        mean: total / total_solid,
    }
}

/// The image coordinates (u unwrapped, v in [0, 1]) of direction `d`.
pub fn uv_of(d: V3, rotation: f32) -> (f32, f32) {
    let u = 0.5 + d.z.atan2(d.x) * (0.5 / PI) + rotation;
    let v = d.y.clamp(-1.0, 1.0).acos() * (1.0 / PI);
    (u, v)
}

/// The direction at image coordinates (`u`, `v`), and sin θ there.
pub fn direction_at(u: f32, v: f32, rotation: f32) -> (V3, f32) {
    let phi = (u - 0.5 - rotation) * 2.0 * PI;
    let theta = v * PI;
    let (st, ct) = theta.sin_cos();
    (v3(st * phi.cos(), ct, st * phi.sin()), st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgbe_keeps_colors_to_a_half_percent() {
        assert_eq!(unpack_rgbe(pack_rgbe([1.0; 3])).to_array(), [1.0; 3]);
        for c in [
            [1.0, 0.5, 0.25],
            [1e-3, 2e-3, 0.0],
            [5e4, 1.0, 0.0],
            [0.999, 0.0, 0.0],
            [0.0; 3],
        ] {
            let back = unpack_rgbe(pack_rgbe(c)).to_array();
            let m = c[0].max(c[1]).max(c[2]);
            for k in 0..3 {
                assert!(
                    (back[k] - c[k]).abs() <= m / 256.0 + 1e-30,
                    "{c:?} → {back:?}"
                );
            }
        }
    }

    #[test]
    fn directions_and_image_coordinates_invert_each_other() {
        for (u, v) in [(0.1, 0.3), (0.75, 0.9), (0.5, 0.5)] {
            let (d, s) = direction_at(u, v, 0.2);
            assert!((d.length() - 1.0).abs() < 1e-5 && (s - (v * PI).sin()).abs() < 1e-6);
            let (u2, v2) = uv_of(d, 0.2);
            assert!(
                ((u2 - u).rem_euclid(1.0)).min((u - u2).rem_euclid(1.0)) < 1e-5,
                "{u} {u2}"
            );
            assert!((v2 - v).abs() < 1e-5);
        }
        // Up is the top row.
        assert!(uv_of(v3(0.0, 1.0, 0.0), 0.0).1 < 1e-6);
    }

    #[test]
    fn the_table_picks_bright_blocks_and_sums_to_one() {
        let (w, h) = (64, 32);
        let mut texels = vec![[0.1f32; 3]; w * h];
        texels[10 * w + 20] = [1000.0; 3];
        let t = table(&EnvImage {
            width: w as u32,
            height: h as u32,
            texels,
        });
        let sum: f64 = t.entries.iter().map(|e| f64::from(e.2)).sum();
        assert!((sum - 1.0).abs() < 1e-4);
        let brightest = t
            .entries
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.2.total_cmp(&b.1.2))
            .unwrap()
            .0;
        assert_eq!(brightest, 10 * w + 20);
    }

    #[test]
    fn hostile_hdr_files_are_errors() {
        assert!(decode_hdr(b"not an image").is_err());
        let huge = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 100000 +X 100000\n";
        let e = decode_hdr(huge).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        let truncated = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 4\n\x02\x02";
        assert!(decode_hdr(truncated).is_err());
    }
}
