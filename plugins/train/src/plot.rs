//! The loss curve as a PNG: loss per step (light) and its moving average
//! (dark) on a log scale, with decade grid lines and numbered axes, drawn
//! with a built-in 3×5 pixel font (no font files in the sandbox).

/// Plot size in pixels.
const W: usize = 720;
const H: usize = 400;
const LEFT: usize = 64;
const RIGHT: usize = 16;
const TOP: usize = 28;
const BOTTOM: usize = 40;

struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            self.px[y as usize * W + x as usize] = c;
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text at (x, y) (top-left), 2× scaled 3×5 glyphs.
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (ry, row) in rows.iter().enumerate() {
                for rx in 0..3 {
                    if row & (4 >> rx) != 0 {
                        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(x + i as i64 * 8 + rx * 2 + ox, y + ry as i64 * 2 + oy, c);
                        }
                    }
                }
            }
        }
    }
}

/// 3×5 glyphs, one row per byte (bit 2 = left column).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'e' => [0, 7, 7, 4, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        's' => [0, 7, 4, 1, 7],
        't' => [4, 7, 4, 4, 3],
        'p' => [0, 7, 5, 7, 4],
        'l' => [6, 2, 2, 2, 7],
        'o' => [0, 7, 5, 5, 7],
        _ => [0; 5],
    }
}

/// The moving average of `v` over `window` values (trailing).
pub fn moving_average(v: &[f32], window: usize) -> Vec<f32> {
    let window = window.max(1);
    let mut out = Vec::with_capacity(v.len());
    let mut sum = 0.0f64;
    for i in 0..v.len() {
        sum += f64::from(v[i]);
        if i >= window {
            sum -= f64::from(v[i - window]);
        }
        out.push((sum / (i + 1).min(window) as f64) as f32);
    }
    out
}

/// A PNG of `losses` (one per step, from step 1).
pub fn loss_png(losses: &[f32]) -> Result<Vec<u8>, String> {
    let mut c = Canvas {
        px: vec![[255, 255, 255]; W * H],
    };
    let finite: Vec<f32> = losses
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let (lo, hi) = finite
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if finite.is_empty() {
        (1e-4f32, 1.0f32)
    } else {
        (lo, hi)
    };
    let (d0, d1) = (
        lo.log10().floor() as i32,
        (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
    );
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let px_x = |step: f64| LEFT as i64 + (step / losses.len().max(1) as f64 * pw) as i64;
    let px_y = |loss: f32| {
        let t = (f64::from(loss.max(1e-30)).log10() - f64::from(d0)) / f64::from(d1 - d0);
        TOP as i64 + ((1.0 - t) * ph) as i64
    };
    let (grid, axis, text) = ([225, 225, 225], [60, 60, 60], [40, 40, 40]);
    for d in d0..=d1 {
        let y = px_y(10f32.powi(d));
        c.line((LEFT as i64, y), ((W - RIGHT) as i64, y), grid);
        c.text(4, y - 5, &format!("1e{d}"), text);
    }
    for q in 0..=4 {
        let step = losses.len() * q / 4;
        let x = px_x(step as f64);
        c.line((x, TOP as i64), (x, (H - BOTTOM) as i64), grid);
        let label = step.to_string();
        c.text(
            x - label.len() as i64 * 4,
            (H - BOTTOM + 6) as i64,
            &label,
            text,
        );
    }
    c.text((W / 2 - 16) as i64, (H - 14) as i64, "step", text);
    c.text(4, 2, "loss", text);
    c.line(
        (LEFT as i64, TOP as i64),
        (LEFT as i64, (H - BOTTOM) as i64),
        axis,
    );
    c.line(
        (LEFT as i64, (H - BOTTOM) as i64),
        ((W - RIGHT) as i64, (H - BOTTOM) as i64),
        axis,
    );
    let smooth = moving_average(losses, (losses.len() / 50).max(1));
    for (series, color) in [(losses, [150, 190, 240]), (&smooth[..], [20, 70, 160])] {
        let mut prev: Option<(i64, i64)> = None;
        for (i, &v) in series.iter().enumerate() {
            if !v.is_finite() {
                prev = None;
                continue;
            }
            let p = (px_x(i as f64 + 1.0), px_y(v));
            if let Some(q) = prev {
                c.line(q, p, color);
            }
            prev = Some(p);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, W as u32, H as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&c.px.concat())
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_is_trailing() {
        assert_eq!(
            moving_average(&[1.0, 3.0, 5.0, 7.0], 2),
            vec![1.0, 2.0, 4.0, 6.0]
        );
    }

    #[test]
    fn plot_is_a_png_with_the_curve_drawn() {
        let losses: Vec<f32> = (1..=300).map(|i| 0.1 / i as f32).collect();
        let png = loss_png(&losses).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (reader.info().width, reader.info().height),
            (W as u32, H as u32)
        );
        // The dark smoothed curve is there.
        assert!(buf.chunks(3).any(|p| p == [20, 70, 160]));
        // An empty or NaN-only history still plots (axes only).
        assert!(loss_png(&[]).is_ok());
        assert!(loss_png(&[f32::NAN]).is_ok());
    }
}
