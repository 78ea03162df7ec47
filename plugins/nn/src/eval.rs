//! Upscaling whole images and measuring them: low-resolution inputs made by
//! the stated box downscale, the network (or bicubic) on luma, bicubic on
//! chroma and alpha, 8-bit RGB out, and PSNR/SSIM on 8-bit luma with a
//! border of `scale` pixels left out.

use pictor_sdk::gpu::GpuError;
use serde::Serialize;

use crate::image::{Ycc, luma8, to_u8, ycc_to_rgb8};
use crate::metrics;
use crate::resample::{Plane, bicubic, bicubic_region, box_downscale};
use crate::upscaler::Upscaler;

/// PSNR (dB) and SSIM of one image against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    /// Peak signal-to-noise ratio, dB.
    pub psnr: f64,
    /// Structural similarity.
    pub ssim: f64,
}

/// The low-resolution version of `hr` at scale `r`: cropped to multiples of
/// `r`, every plane box-downscaled, then rounded to 8-bit pixels as a
/// low-resolution image file would be.
pub fn low_res(hr: &Ycc, r: usize) -> Ycc {
    let down = |p: &Plane| box_downscale(&p.crop_to_multiple(r), r);
    let lr = Ycc {
        y: down(&hr.y),
        chroma: hr.chroma.as_ref().map(|[a, b]| [down(a), down(b)]),
        alpha: hr.alpha.as_ref().map(down),
    };
    crate::image::from_pixels(lr.y.width, lr.y.height, channels(&lr), &pixels(&lr))
}

/// `hr` cropped to multiples of `r` (the part [`low_res`] covers).
pub fn crop_to_multiple(hr: &Ycc, r: usize) -> Ycc {
    let c = |p: &Plane| p.crop_to_multiple(r);
    Ycc {
        y: c(&hr.y),
        chroma: hr.chroma.as_ref().map(|[a, b]| [c(a), c(b)]),
        alpha: hr.alpha.as_ref().map(c),
    }
}

/// Upscales `lr` by `r`: luma by `network` when given (else bicubic),
/// chroma and alpha bicubically.
pub fn upscale(lr: &Ycc, r: usize, network: Option<&Upscaler>) -> Result<Ycc, GpuError> {
    let y = match network {
        Some(n) => n.upscale(&lr.y)?,
        None => clamp01(bicubic(&lr.y, r)),
    };
    Ok(Ycc {
        y,
        chroma: lr
            .chroma
            .as_ref()
            .map(|[a, b]| [bicubic(a, r), bicubic(b, r)]),
        alpha: lr.alpha.as_ref().map(|a| bicubic(a, r)),
    })
}

fn clamp01(mut p: Plane) -> Plane {
    p.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    p
}

/// Channels of the 8-bit pixels of an image: 1 (grey), 2 (grey + alpha),
/// 3 (RGB) or 4 (RGBA).
pub fn channels(img: &Ycc) -> usize {
    match (img.chroma.is_some(), img.alpha.is_some()) {
        (false, false) => 1,
        (false, true) => 2,
        (true, false) => 3,
        (true, true) => 4,
    }
}

/// Interleaved 8-bit pixels of rows `[y0, y0 + h)` of planes of one width.
pub fn pixels_of(
    y: &Plane,
    chroma: Option<[&Plane; 2]>,
    alpha: Option<&Plane>,
    y0: usize,
    h: usize,
) -> Vec<u8> {
    let n = 1 + if chroma.is_some() { 2 } else { 0 } + usize::from(alpha.is_some());
    let mut out = Vec::with_capacity(y.width * h * n);
    for row in y0..y0 + h {
        for x in 0..y.width {
            let i = row * y.width + x;
            match chroma {
                Some([cb, cr]) => {
                    out.extend_from_slice(&ycc_to_rgb8(y.data[i], cb.data[i], cr.data[i]))
                }
                None => out.push(to_u8(y.data[i])),
            }
            if let Some(a) = alpha {
                out.push(to_u8(a.data[i]));
            }
        }
    }
    out
}

/// Interleaved 8-bit pixels of a whole image.
pub fn pixels(img: &Ycc) -> Vec<u8> {
    let chroma = img.chroma.as_ref().map(|[a, b]| [a, b]);
    pixels_of(&img.y, chroma, img.alpha.as_ref(), 0, img.y.height)
}

/// 8-bit luma of interleaved pixels with `n` channels.
pub fn luma_of_pixels(px: &[u8], n: usize) -> Vec<f64> {
    px.chunks_exact(n)
        .map(|p| {
            if n >= 3 {
                luma8([p[0], p[1], p[2]])
            } else {
                f64::from(p[0])
            }
        })
        .collect()
}

/// PSNR and SSIM of `output` against `reference` (same size), on the 8-bit
/// luma of their 8-bit pixels, leaving out a `border`-pixel frame.
pub fn quality(reference: &Ycc, output: &Ycc, border: usize) -> Quality {
    let (w, h) = (reference.y.width, reference.y.height);
    let a = luma_of_pixels(&pixels(reference), channels(reference));
    let b = luma_of_pixels(&pixels(output), channels(output));
    let (a, iw, ih) = metrics::trim(&a, w, h, border);
    let (b, _, _) = metrics::trim(&b, w, h, border);
    Quality {
        psnr: metrics::psnr(&a, &b),
        ssim: metrics::ssim(&a, &b, iw, ih),
    }
}

/// Network and bicubic quality on one held-out HR image.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The image's name.
    pub name: String,
    /// HR width used (a multiple of the scale).
    pub width: usize,
    /// HR height used.
    pub height: usize,
    /// The network's output.
    pub network: Quality,
    /// Bicubic's output.
    pub bicubic: Quality,
}

/// Downscales `hr`, upscales it both ways, and measures both.
pub fn compare(name: &str, hr: &Ycc, network: &Upscaler) -> Result<(Comparison, Ycc), GpuError> {
    let r = network.scale();
    let reference = crop_to_multiple(hr, r);
    let lr = low_res(hr, r);
    let net = upscale(&lr, r, Some(network))?;
    let bic = upscale(&lr, r, None)?;
    let comparison = Comparison {
        name: name.to_string(),
        width: reference.y.width,
        height: reference.y.height,
        network: quality(&reference, &net, r),
        bicubic: quality(&reference, &bic, r),
    };
    Ok((comparison, net))
}

/// The bicubic chroma and alpha of HR rows `[y0, y0 + h)` (full width).
pub fn bicubic_band(
    lr: &Ycc,
    r: usize,
    y0: usize,
    h: usize,
) -> (Option<[Plane; 2]>, Option<Plane>) {
    let band = |p: &Plane| bicubic_region(p, r, 0, y0, p.width * r, h);
    (
        lr.chroma.as_ref().map(|[a, b]| [band(a), band(b)]),
        lr.alpha.as_ref().map(band),
    )
}
