//! Tiled super-resolution of a luma plane: the LR image is cut into tiles
//! of at most `tile`×`tile` pixels, each read with a halo of the network's
//! receptive radius, so every output pixel sees exactly the inputs it
//! would see in one whole-image pass (zero padding only at the image's
//! own edges). GPU memory stays bounded by the tile size, whatever the
//! image size, and the result does not depend on the tile size.

use pictor_sdk::gpu::GpuError;

use crate::graph::InferenceGraph;
use crate::model::Architecture;
use crate::resample::{Plane, bicubic_region};

/// A network ready to upscale tiles.
pub struct Upscaler {
    graph: InferenceGraph,
    tile: usize,
    halo: usize,
}

/// One rectangle of LR pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: usize,
    /// Top row.
    pub y: usize,
    /// Columns.
    pub w: usize,
    /// Rows.
    pub h: usize,
}

/// The largest GPU buffer a tile may need (WebGPU's default limit for a
/// storage binding, which every adapter offers).
pub const MAX_BUFFER_BYTES: usize = 128 << 20;

/// The largest tile side whose widest layer fits in [`MAX_BUFFER_BYTES`].
pub fn max_tile(arch: &Architecture) -> usize {
    let widest = arch
        .layers()
        .iter()
        .map(|l| l.shape.cout)
        .max()
        .unwrap_or(1)
        .max(1);
    let side = ((MAX_BUFFER_BYTES / 4 / widest) as f64).sqrt() as usize;
    side.saturating_sub(2 * arch.receptive_radius() as usize)
}

impl Upscaler {
    /// Sets up `arch` with `params` for tiles of `tile` LR pixels a side
    /// (at most [`max_tile`]).
    pub fn new(arch: &Architecture, params: &[f32], tile: usize) -> Result<Self, GpuError> {
        if tile == 0 || tile > max_tile(arch) {
            return Err(GpuError::InvalidArgument(format!(
                "tile {tile} is too large for this network: use at most {} LR pixels a side",
                max_tile(arch)
            )));
        }
        let halo = arch.receptive_radius() as usize;
        let side = tile + 2 * halo;
        Ok(Upscaler {
            graph: InferenceGraph::new(arch, params, side, side)?,
            tile,
            halo,
        })
    }

    /// The upscaling factor.
    pub fn scale(&self) -> usize {
        self.graph.arch.scale as usize
    }

    /// The tiles covering a `w`×`h` LR region starting at row `y0` (all
    /// columns), in raster order.
    pub fn tiles(&self, w: usize, y0: usize, h: usize) -> Vec<Rect> {
        let mut out = Vec::new();
        for y in (y0..y0 + h).step_by(self.tile) {
            for x in (0..w).step_by(self.tile) {
                out.push(Rect {
                    x,
                    y,
                    w: self.tile.min(w - x),
                    h: self.tile.min(y0 + h - y),
                });
            }
        }
        out
    }

    /// The network's residual for LR rectangle `r` of `lr` (`[r.h·s, r.w·s]`).
    pub fn residual(&self, lr: &Plane, r: Rect) -> Result<Plane, GpuError> {
        let s = self.scale();
        let x0 = r.x.saturating_sub(self.halo);
        let y0 = r.y.saturating_sub(self.halo);
        let x1 = (r.x + r.w + self.halo).min(lr.width);
        let y1 = (r.y + r.h + self.halo).min(lr.height);
        let padded = lr.crop(x0, y0, x1 - x0, y1 - y0);
        let out = self.graph.run(&padded.data, padded.width, padded.height)?;
        let full = Plane {
            width: padded.width * s,
            height: padded.height * s,
            data: out,
        };
        Ok(full.crop((r.x - x0) * s, (r.y - y0) * s, r.w * s, r.h * s))
    }

    /// The HR luma of LR rows `[y0, y0 + h)`: bicubic plus the network's
    /// residual, clamped to [0, 1]. `on_tile` is called after each tile.
    pub fn band(
        &self,
        lr: &Plane,
        y0: usize,
        h: usize,
        mut on_tile: impl FnMut(),
    ) -> Result<Plane, GpuError> {
        let s = self.scale();
        let mut out = bicubic_region(lr, s, 0, y0 * s, lr.width * s, h * s);
        for r in self.tiles(lr.width, y0, h) {
            let res = self.residual(lr, r)?;
            for ty in 0..res.height {
                let row = (r.y - y0) * s + ty;
                for tx in 0..res.width {
                    let i = row * out.width + r.x * s + tx;
                    out.data[i] = (out.data[i] + res.data[ty * res.width + tx]).clamp(0.0, 1.0);
                }
            }
            on_tile();
        }
        Ok(out)
    }

    /// The whole HR luma of `lr`.
    pub fn upscale(&self, lr: &Plane) -> Result<Plane, GpuError> {
        self.band(lr, 0, lr.height, || {})
    }
}
