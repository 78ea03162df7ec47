//! The CPU reference renderer: the same algorithm and sample order as the
//! GPU kernel (each pixel sums its samples in order, starting from 0), on
//! all cores natively and on one thread inside a component.

use crate::layout::{SceneData, View};
use crate::trace::trace_sample;

/// Renders the view's tile; returns linear RGB per pixel (rows top to
/// bottom), the mean of `spp` samples.
pub fn render(scene: &SceneData, view: &View) -> Vec<[f32; 3]> {
    let [tx, ty, tw, th] = view.tile;
    let params = view.params(scene, 0..th, 0..view.spp);
    let row = |y: u32| -> Vec<[f32; 3]> {
        (0..tw)
            .map(|x| {
                let mut acc = [0.0f32; 3];
                for s in 0..view.spp {
                    let c = trace_sample(scene, &params, tx + x, ty + y, s);
                    acc = [acc[0] + c.x, acc[1] + c.y, acc[2] + c.z];
                }
                let n = view.spp as f32;
                [acc[0] / n, acc[1] / n, acc[2] / n]
            })
            .collect()
    };
    let threads = if cfg!(target_arch = "wasm32") {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(th as usize)
            .max(1)
    };
    if threads == 1 {
        return (0..th).flat_map(row).collect();
    }
    // Rows interleaved across threads; the result does not depend on the split.
    let mut rows: Vec<(u32, Vec<[f32; 3]>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let row = &row;
                s.spawn(move || {
                    (t as u32..th)
                        .step_by(threads)
                        .map(|y| (y, row(y)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    rows.sort_by_key(|(y, _)| *y);
    rows.into_iter().flat_map(|(_, r)| r).collect()
}
