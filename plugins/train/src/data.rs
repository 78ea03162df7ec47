//! The training set: every PNG/JPEG in `/input` outside `eval/`, as luma
//! planes at three resolutions (HR; LR = HR box-downscaled by the scale;
//! base = LR bicubic-upscaled), and batches of random aligned crops with
//! random flips and transposes, drawn from (seed, step) alone.

use nn::image;
use nn::resample::{Plane, bicubic, box_downscale};
use nn::rng::Counter;
use pictor_sdk::{Job, JobError};
use sha2::{Digest, Sha256};

/// One training image at the three resolutions.
pub struct Example {
    /// Its name in `/input`.
    pub name: String,
    hr: Plane,
    lr: Plane,
    base: Plane,
}

/// The training images.
pub struct Dataset {
    /// The images, in name order.
    pub examples: Vec<Example>,
    /// sha256 over every file's name and bytes.
    pub digest: String,
    /// LR pixels in all.
    pub lr_pixels: u64,
}

/// One batch, `[batch, 1, ·, ·]` each.
pub struct Batch {
    /// LR luma patches.
    pub input: Vec<f32>,
    /// Their bicubic upsample.
    pub base: Vec<f32>,
    /// The HR luma they should become.
    pub target: Vec<f32>,
}

/// Names of the images in `/input` for training (`eval == false`) or
/// held out for evaluation (under `eval/`).
pub fn image_names(job: &Job, eval: bool) -> Result<Vec<String>, JobError> {
    Ok(job
        .input_files()?
        .into_iter()
        .filter(|n| image::is_image_name(n) && n.starts_with("eval/") == eval)
        .collect())
}

impl Dataset {
    /// Loads the training images; each must hold at least one HR patch.
    pub fn load(job: &Job, scale: usize, patch: usize, max_pixels: u64) -> Result<Self, JobError> {
        let names = image_names(job, false)?;
        if names.is_empty() {
            return Err(JobError::InvalidInput(
                "no training images in /input: add PNG or JPEG files (images under eval/ are held out for evaluation)".into(),
            ));
        }
        let mut hasher = Sha256::new();
        let mut examples = Vec::new();
        let mut lr_pixels = 0;
        for name in names {
            let bytes = job.read_input(&name)?;
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            let img = image::decode(&bytes, max_pixels)
                .map_err(|e| JobError::InvalidInput(format!("{name}: {e}")))?;
            let need = scale * patch;
            if img.y.width < need || img.y.height < need {
                return Err(JobError::InvalidInput(format!(
                    "{name} is {}×{}; training crops {need}×{need} HR patches (patch {patch} × scale {scale}): use a larger image or a smaller `patch`",
                    img.y.width, img.y.height
                )));
            }
            let hr = img.y.crop_to_multiple(scale);
            let lr = box_downscale(&hr, scale);
            let base = bicubic(&lr, scale);
            lr_pixels += (lr.width * lr.height) as u64;
            examples.push(Example { name, hr, lr, base });
        }
        Ok(Dataset {
            examples,
            digest: hex::encode(hasher.finalize()),
            lr_pixels,
        })
    }

    /// The batch of `step`: `batch` crops of `patch` LR pixels a side.
    pub fn batch(&self, seed: u64, step: u64, batch: usize, patch: usize, scale: usize) -> Batch {
        let rng = Counter::new(seed, 1 + step);
        let hp = patch * scale;
        let mut out = Batch {
            input: Vec::with_capacity(batch * patch * patch),
            base: Vec::with_capacity(batch * hp * hp),
            target: Vec::with_capacity(batch * hp * hp),
        };
        for s in 0..batch as u64 {
            let ex = &self.examples[rng.below(4 * s, self.examples.len() as u64) as usize];
            let x0 = rng.below(4 * s + 1, (ex.lr.width - patch + 1) as u64) as usize;
            let y0 = rng.below(4 * s + 2, (ex.lr.height - patch + 1) as u64) as usize;
            let aug = rng.below(4 * s + 3, 8) as u8;
            crop(&ex.lr, x0, y0, patch, aug, &mut out.input);
            crop(&ex.base, x0 * scale, y0 * scale, hp, aug, &mut out.base);
            crop(&ex.hr, x0 * scale, y0 * scale, hp, aug, &mut out.target);
        }
        out
    }
}

/// Appends the `side`² crop at (x0, y0) of `p`, transformed by `aug`
/// (bit 0: transpose, bit 1: mirror x, bit 2: mirror y).
fn crop(p: &Plane, x0: usize, y0: usize, side: usize, aug: u8, out: &mut Vec<f32>) {
    for i in 0..side {
        for j in 0..side {
            let (mut u, mut v) = if aug & 1 != 0 { (i, j) } else { (j, i) };
            if aug & 2 != 0 {
                u = side - 1 - u;
            }
            if aug & 4 != 0 {
                v = side - 1 - v;
            }
            out.push(p.at(x0 + u, y0 + v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_transform_lr_and_hr_alike() {
        // An LR plane and its 2× nearest-neighbour HR: any augmented crop of
        // the HR must be the same augmentation of the LR crop, upsampled.
        let lr = Plane {
            width: 6,
            height: 5,
            data: (0..30).map(|i| i as f32).collect(),
        };
        let mut hr = Plane::new(12, 10);
        for y in 0..10 {
            for x in 0..12 {
                hr.data[y * 12 + x] = lr.at(x / 2, y / 2);
            }
        }
        for aug in 0..8 {
            let (mut small, mut big) = (Vec::new(), Vec::new());
            crop(&lr, 1, 2, 3, aug, &mut small);
            crop(&hr, 2, 4, 6, aug, &mut big);
            for i in 0..6 {
                for j in 0..6 {
                    assert_eq!(
                        big[i * 6 + j],
                        small[(i / 2) * 3 + j / 2],
                        "aug {aug} at ({i}, {j})"
                    );
                }
            }
        }
    }
}
