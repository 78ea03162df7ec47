//! Planes of f32 samples and the two resamplers the plugins state:
//! box (area) downscaling, which makes the low-resolution training and
//! evaluation inputs, and bicubic upscaling (Keys, a = -0.5, pixel centres
//! aligned, edges clamped), the baseline and the base the network's
//! residual is added to.

/// One channel of an image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width × height` samples.
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane of zeros.
    pub fn new(width: usize, height: usize) -> Self {
        Plane {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// The sample at (x, y).
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// The sample at (x, y) with coordinates clamped to the edges.
    pub fn clamped(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.at(x, y)
    }

    /// The rectangle `[x0, x0 + w) × [y0, y0 + h)` (inside the plane).
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Plane {
        let mut data = Vec::with_capacity(w * h);
        for y in y0..y0 + h {
            data.extend_from_slice(&self.data[y * self.width + x0..y * self.width + x0 + w]);
        }
        Plane {
            width: w,
            height: h,
            data,
        }
    }

    /// The largest top-left part whose sides are multiples of `r`.
    pub fn crop_to_multiple(&self, r: usize) -> Plane {
        self.crop(0, 0, self.width / r * r, self.height / r * r)
    }
}

/// Each `r`×`r` block averaged into one sample (sides must be multiples
/// of `r`; see [`Plane::crop_to_multiple`]).
pub fn box_downscale(p: &Plane, r: usize) -> Plane {
    let (w, h) = (p.width / r, p.height / r);
    let mut out = Plane::new(w, h);
    let norm = 1.0 / (r * r) as f32;
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for dy in 0..r {
                for dx in 0..r {
                    sum += p.at(x * r + dx, y * r + dy);
                }
            }
            out.data[y * w + x] = sum * norm;
        }
    }
    out
}

/// Keys' cubic convolution kernel with a = -0.5.
fn cubic(t: f32) -> f32 {
    let t = t.abs();
    if t <= 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// For output index `o` at scale `r`: the first source index and the four
/// weights (source position (o + ½)/r − ½).
fn taps(o: usize, r: usize) -> (isize, [f32; 4]) {
    let s = (o as f32 + 0.5) / r as f32 - 0.5;
    let base = s.floor();
    let t = s - base;
    (
        base as isize - 1,
        [cubic(t + 1.0), cubic(t), cubic(1.0 - t), cubic(2.0 - t)],
    )
}

/// The bicubic ×`r` upsample of `p`, but only the output rectangle
/// `[x0, x0 + w) × [y0, y0 + h)`: the same samples as that part of the
/// whole upsampled plane, so bands and tiles can be made one at a time.
pub fn bicubic_region(p: &Plane, r: usize, x0: usize, y0: usize, w: usize, h: usize) -> Plane {
    // Horizontal pass over the source rows the output rows need.
    let (first_row, _) = taps(y0, r);
    let (last_row, _) = taps(y0 + h - 1, r);
    let rows = (last_row + 4 - first_row) as usize;
    let xtaps: Vec<(isize, [f32; 4])> = (x0..x0 + w).map(|x| taps(x, r)).collect();
    let mut horizontal = Plane::new(w, rows);
    for row in 0..rows {
        let sy = first_row + row as isize;
        for (i, (sx, k)) in xtaps.iter().enumerate() {
            let mut acc = 0.0;
            for (j, kj) in k.iter().enumerate() {
                acc += kj * p.clamped(sx + j as isize, sy);
            }
            horizontal.data[row * w + i] = acc;
        }
    }
    let mut out = Plane::new(w, h);
    for oy in 0..h {
        let (sy, k) = taps(y0 + oy, r);
        let row0 = (sy - first_row) as usize;
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kj) in k.iter().enumerate() {
                acc += kj * horizontal.data[(row0 + j) * w + x];
            }
            out.data[oy * w + x] = acc;
        }
    }
    out
}

/// The whole bicubic ×`r` upsample.
pub fn bicubic(p: &Plane, r: usize) -> Plane {
    bicubic_region(p, r, 0, 0, p.width * r, p.height * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Plane {
        Plane {
            width: w,
            height: h,
            data: (0..w * h)
                .map(|i| ((i * 37) % 101) as f32 / 100.0)
                .collect(),
        }
    }

    #[test]
    fn box_downscale_averages_blocks() {
        let p = Plane {
            width: 4,
            height: 2,
            data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        };
        assert_eq!(box_downscale(&p, 2).data, vec![2.5, 4.5]);
    }

    #[test]
    fn bicubic_keeps_constants_and_linear_ramps_inside() {
        let flat = Plane {
            width: 5,
            height: 4,
            data: vec![0.25; 20],
        };
        assert!(
            bicubic(&flat, 3)
                .data
                .iter()
                .all(|v| (v - 0.25).abs() < 1e-6)
        );
        // A linear ramp in x stays linear away from the clamped edges.
        let lin = Plane {
            width: 8,
            height: 3,
            data: (0..24).map(|i| (i % 8) as f32).collect(),
        };
        let up = bicubic(&lin, 2);
        for x in 4..12 {
            let expect = (x as f32 + 0.5) / 2.0 - 0.5;
            assert!((up.at(x, 2) - expect).abs() < 1e-5, "{x}: {}", up.at(x, 2));
        }
    }

    #[test]
    fn regions_equal_the_same_part_of_the_whole() {
        let p = ramp(13, 9);
        for r in [2, 3, 4] {
            let whole = bicubic(&p, r);
            let part = bicubic_region(&p, r, 5, 3, 7, 11);
            assert_eq!(part, whole.crop(5, 3, 7, 11), "r = {r}");
        }
    }

    #[test]
    fn the_cubic_weights_sum_to_one() {
        for r in [2, 3, 4] {
            for o in 0..r {
                let (_, k) = taps(o, r);
                assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
        }
    }
}
