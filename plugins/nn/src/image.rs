//! Images in and out: decoding PNG and JPEG with size limits checked
//! before any pixel is decoded, and BT.601 full-range luma/chroma planes
//! (the network works on luma; chroma and alpha are upscaled bicubically).

use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::resample::Plane;

/// An image as planes in [0, 1].
#[derive(Debug, Clone)]
pub struct Ycc {
    /// Luma, Y = 0.299 R + 0.587 G + 0.114 B.
    pub y: Plane,
    /// Cb and Cr (centred on 0.5), absent for grey images.
    pub chroma: Option<[Plane; 2]>,
    /// Alpha, when the image has it.
    pub alpha: Option<Plane>,
}

/// Why an image could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageError {
    /// Not a PNG or JPEG, or corrupt.
    Corrupt(String),
    /// Larger than the job allows.
    TooLarge(String),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Corrupt(m) | ImageError::TooLarge(m) => f.write_str(m),
        }
    }
}

/// Whether `name` looks like an image this module reads.
pub fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// The width and height in the header of a PNG or JPEG.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    header_dimensions(reader(Cursor::new(bytes))?)
}

/// The width and height of a PNG or JPEG file, reading only its header.
pub fn file_dimensions(path: &Path) -> Result<(u32, u32), ImageError> {
    let file =
        std::fs::File::open(path).map_err(|e| ImageError::Corrupt(format!("cannot open: {e}")))?;
    header_dimensions(reader(BufReader::new(file))?)
}

fn header_dimensions<R: BufRead + Seek>(reader: ImageReader<R>) -> Result<(u32, u32), ImageError> {
    reader
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt(format!("not a readable PNG or JPEG: {e}")))
}

/// Refuses a `w`×`h` image of more than `max_pixels` pixels.
pub fn check_size(w: u32, h: u32, max_pixels: u64) -> Result<(), ImageError> {
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(ImageError::TooLarge(format!(
            "{w}×{h} ({:.1} Mpx); this job takes at most {:.1} Mpx",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

fn reader<R: BufRead + Seek>(source: R) -> Result<ImageReader<R>, ImageError> {
    let reader = ImageReader::new(source)
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(format!("cannot read: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
        Some(other) => Err(ImageError::Corrupt(format!(
            "a {other:?} image; use PNG or JPEG"
        ))),
        None => Err(ImageError::Corrupt("not a PNG or JPEG file".into())),
    }
}

/// Decodes a PNG or JPEG of at most `max_pixels` pixels (checked from the
/// header first, so a huge or lying file is refused before it allocates).
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Ycc, ImageError> {
    let (w, h) = dimensions(bytes)?;
    check_size(w, h, max_pixels)?;
    let pixels = u64::from(w) * u64::from(h);
    if w == 0 || h == 0 {
        return Err(ImageError::Corrupt("the image is empty".into()));
    }
    let mut reader = reader(Cursor::new(bytes))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(pixels * 8 + (64 << 20));
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ImageError::Corrupt(format!("corrupt image: {e}")))?;
    Ok(from_dynamic(&img))
}

fn from_dynamic(img: &DynamicImage) -> Ycc {
    let color = img.color();
    let rgba = img.to_rgba8();
    from_rgba8(
        img.width() as usize,
        img.height() as usize,
        color.has_color(),
        color.has_alpha(),
        rgba.pixels().map(|p| p.0),
    )
}

/// Planes from 8-bit RGBA pixels (chroma kept when `color`, alpha when `alpha`).
fn from_rgba8(
    w: usize,
    h: usize,
    color: bool,
    alpha: bool,
    pixels: impl Iterator<Item = [u8; 4]>,
) -> Ycc {
    let mut y = Plane::new(w, h);
    let mut cb = Plane::new(w, h);
    let mut cr = Plane::new(w, h);
    let mut a_plane = Plane::new(w, h);
    for (i, px) in pixels.enumerate().take(w * h) {
        let [r, g, b, a] = px.map(|c| f32::from(c) / 255.0);
        let [yy, u, v] = rgb_to_ycc(r, g, b);
        y.data[i] = yy;
        cb.data[i] = u;
        cr.data[i] = v;
        a_plane.data[i] = a;
    }
    Ycc {
        y,
        chroma: color.then_some([cb, cr]),
        alpha: alpha.then_some(a_plane),
    }
}

/// Planes from interleaved 8-bit pixels of `channels` (1 grey, 2 grey +
/// alpha, 3 RGB, 4 RGBA): what decoding a PNG of those pixels gives.
pub fn from_pixels(w: usize, h: usize, channels: usize, px: &[u8]) -> Ycc {
    let rgba = px.chunks_exact(channels.clamp(1, 4)).map(|p| match p {
        [l] => [*l, *l, *l, 255],
        [l, a] => [*l, *l, *l, *a],
        [r, g, b] => [*r, *g, *b, 255],
        [r, g, b, a, ..] => [*r, *g, *b, *a],
        _ => [0, 0, 0, 255],
    });
    from_rgba8(w, h, channels >= 3, channels.is_multiple_of(2), rgba)
}

/// BT.601 full-range RGB → (Y, Cb, Cr), all in [0, 1].
pub fn rgb_to_ycc(r: f32, g: f32, b: f32) -> [f32; 3] {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 0.5 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 0.5 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr]
}

/// (Y, Cb, Cr) → 8-bit RGB, rounded and clamped.
pub fn ycc_to_rgb8(y: f32, cb: f32, cr: f32) -> [u8; 3] {
    let (u, v) = (cb - 0.5, cr - 0.5);
    let r = y + 1.402 * v;
    let g = y - 0.344_136 * u - 0.714_136 * v;
    let b = y + 1.772 * u;
    [r, g, b].map(to_u8)
}

/// A sample in [0, 1] as a byte, rounded and clamped.
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// The luma (0..=255) of 8-bit RGB, as the metrics use it.
pub fn luma8(rgb: [u8; 3]) -> f64 {
    0.299 * f64::from(rgb[0]) + 0.587 * f64::from(rgb[1]) + 0.114 * f64::from(rgb[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn color_round_trips_through_ycc() {
        for rgb in [[0u8, 0, 0], [255, 255, 255], [200, 30, 90], [12, 250, 130]] {
            let [y, cb, cr] = rgb_to_ycc(
                f32::from(rgb[0]) / 255.0,
                f32::from(rgb[1]) / 255.0,
                f32::from(rgb[2]) / 255.0,
            );
            assert_eq!(ycc_to_rgb8(y, cb, cr), rgb);
        }
    }

    #[test]
    fn decodes_grey_rgb_and_alpha() {
        let grey = decode(&png(2, 1, png::ColorType::Grayscale, &[0, 255]), 100).unwrap();
        assert!(grey.chroma.is_none() && grey.alpha.is_none());
        assert_eq!(grey.y.data, vec![0.0, 1.0]);
        let rgba = decode(&png(1, 1, png::ColorType::Rgba, &[255, 0, 0, 128]), 100).unwrap();
        assert!(rgba.chroma.is_some());
        assert!((rgba.alpha.unwrap().data[0] - 128.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn pixels_and_png_decode_to_the_same_planes() {
        let px: Vec<u8> = (0..2 * 3 * 4).map(|i| (i * 37 % 256) as u8).collect();
        for channels in 1..=4 {
            let data = &px[..6 * channels];
            let color = [
                png::ColorType::Grayscale,
                png::ColorType::GrayscaleAlpha,
                png::ColorType::Rgb,
                png::ColorType::Rgba,
            ][channels - 1];
            let decoded = decode(&png(3, 2, color, data), 100).unwrap();
            let direct = from_pixels(3, 2, channels, data);
            assert_eq!(decoded.y, direct.y, "{channels} channels");
            assert_eq!(decoded.chroma, direct.chroma);
            assert_eq!(decoded.alpha, direct.alpha);
        }
    }

    #[test]
    fn refuses_corrupt_foreign_and_huge_images() {
        let good = png(4, 4, png::ColorType::Rgb, &[7; 48]);
        assert!(matches!(
            decode(&good[..good.len() / 2], 100),
            Err(ImageError::Corrupt(_))
        ));
        assert!(
            matches!(decode(b"GIF89a......", 100), Err(ImageError::Corrupt(m)) if m.contains("Gif"))
        );
        assert!(matches!(decode(b"hello", 100), Err(ImageError::Corrupt(_))));
        assert!(matches!(decode(&good, 15), Err(ImageError::TooLarge(m)) if m.contains("4×4")));
    }
}
