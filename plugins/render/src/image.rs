//! Image outputs: tone mapping to 8-bit sRGB PNG, linear PFM, and the
//! comparison metric used against references.

use pictor_sdk::JobError;

/// The display value in [0, 1] of a linear value: clamp, then the sRGB
/// transfer function (no other tone curve).
pub fn tone_map(linear: f32) -> f32 {
    let c = if linear.is_finite() {
        linear.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

/// 8-bit sRGB bytes (RGB, rows top to bottom) of linear pixels.
pub fn to_srgb8(pixels: &[[f32; 3]]) -> Vec<u8> {
    pixels
        .iter()
        .flat_map(|p| p.map(|c| (tone_map(c) * 255.0).round() as u8))
        .collect()
}

/// Encodes linear pixels as an 8-bit sRGB RGB PNG.
pub fn encode_png(width: u32, height: u32, pixels: &[[f32; 3]]) -> Result<Vec<u8>, JobError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let fail = |e: png::EncodingError| JobError::Failed(format!("PNG encoding failed: {e}"));
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(&to_srgb8(pixels)).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

/// Decodes an 8-bit RGB or RGBA PNG to display values in [0, 1] (tests,
/// references).
pub fn decode_png_display(bytes: &[u8]) -> Result<(u32, u32, Vec<[f32; 3]>), String> {
    let texture = crate::scene::decode_png(bytes).map_err(|e| format!("{e:?}"))?;
    let px = texture
        .texels
        .iter()
        .map(|t| {
            let [r, g, b, _] = t.to_le_bytes();
            [r, g, b].map(|c| f32::from(c) / 255.0)
        })
        .collect();
    Ok((texture.width, texture.height, px))
}

/// Encodes linear pixels as a little-endian PFM (`PF`, rows bottom to top).
pub fn encode_pfm(width: u32, height: u32, pixels: &[[f32; 3]]) -> Vec<u8> {
    let mut out = format!("PF\n{width} {height}\n-1.0\n").into_bytes();
    for row in pixels.chunks(width as usize).rev() {
        for p in row {
            for c in p {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
    out
}

/// Decodes a PFM written by [`encode_pfm`] (rows returned top to bottom).
pub fn decode_pfm(bytes: &[u8]) -> Result<(u32, u32, Vec<[f32; 3]>), String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(
            std::str::from_utf8(&bytes[start..pos])
                .map_err(|e| e.to_string())?
                .to_string(),
        );
        pos += 1;
    }
    let (w, h): (u32, u32) = (
        fields[1].parse().map_err(|_| "bad width")?,
        fields[2].parse().map_err(|_| "bad height")?,
    );
    if fields[0] != "PF" || fields[3] != "-1.0" {
        return Err("not a little-endian RGB PFM".into());
    }
    let data = bytes.get(pos..).ok_or("truncated")?;
    if data.len() != (w * h * 12) as usize {
        return Err(format!(
            "{} bytes of pixel data, expected {}",
            data.len(),
            w * h * 12
        ));
    }
    let px: Vec<[f32; 3]> = data
        .chunks_exact(12)
        .map(|c| [0, 4, 8].map(|i| f32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]])))
        .collect();
    let mut rows: Vec<&[[f32; 3]]> = px.chunks(w as usize).collect();
    rows.reverse();
    Ok((w, h, rows.concat()))
}

/// Root-mean-square difference of two images' tone-mapped values
/// (display values in [0, 1], over all channels).
pub fn rmse_display(a: &[[f32; 3]], b: &[[f32; 3]]) -> f32 {
    rmse(
        &a.iter().map(|p| p.map(tone_map)).collect::<Vec<_>>(),
        &b.iter().map(|p| p.map(tone_map)).collect::<Vec<_>>(),
    )
}

/// Root-mean-square difference of two equally long images.
pub fn rmse(a: &[[f32; 3]], b: &[[f32; 3]]) -> f32 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |i| f64::from(p[i] - q[i]).powi(2)))
        .sum();
    (sum / (a.len().max(1) * 3) as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_pfm_round_trip() {
        let px: Vec<[f32; 3]> = (0..12).map(|i| [i as f32 / 11.0, 0.5, 2.0]).collect();
        let (w, h, back) = decode_pfm(&encode_pfm(4, 3, &px)).unwrap();
        assert_eq!((w, h), (4, 3));
        assert_eq!(back, px);
        let (w, h, shown) = decode_png_display(&encode_png(4, 3, &px).unwrap()).unwrap();
        assert_eq!((w, h), (4, 3));
        let expected: Vec<[f32; 3]> = px.iter().map(|p| p.map(tone_map)).collect();
        assert!(rmse(&shown, &expected) < 1.0 / 255.0);
        assert!((tone_map(1.0) - 1.0).abs() < 1e-6);
        assert!((tone_map(0.214) - 0.5).abs() < 0.01);
    }
}
