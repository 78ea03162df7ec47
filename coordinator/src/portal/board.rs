//! What the portal's job table shows, read from the store in one
//! transaction: the newest jobs with their state, workers, timings,
//! progress and previewable image outputs.

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::JobState;

use crate::error::ApiError;
use crate::store::{LeaseRecordState, Tx};

/// Largest output shown as a preview.
pub const MAX_PREVIEW_BYTES: u64 = 16 << 20;

/// Most previews shown per job.
pub const MAX_PREVIEWS_PER_JOB: usize = 4;

/// The content type of an output the portal previews (by its name: PNG or
/// JPEG, at most [`MAX_PREVIEW_BYTES`]), or `None`.
pub fn preview_type(path: &str, size: u64) -> Option<&'static str> {
    if size > MAX_PREVIEW_BYTES {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if lower.ends_with(".png") {
        Some("image/png")
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        Some("image/jpeg")
    } else {
        None
    }
}

/// An image output to preview.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// Its path under `/output`.
    pub path: String,
    /// Its blob.
    pub sha256: Sha256Digest,
}

/// One row of the job table.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The job id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// The workers that completed it, or else that hold it now, or else
    /// that held it last.
    pub workers: Vec<String>,
    /// Submitted (ms since the Unix epoch).
    pub submitted_ms: u64,
    /// First leased.
    pub started_ms: Option<u64>,
    /// Reached a final state.
    pub finished_ms: Option<u64>,
    /// Fraction done of its most advanced active lease.
    pub fraction: Option<f32>,
    /// Why it failed, was cancelled or disputed.
    pub error: Option<String>,
    /// Image outputs of its first completed lease.
    pub previews: Vec<Preview>,
    /// How many more image outputs there are than previews shown.
    pub more_previews: usize,
}

/// The newest `limit` jobs, newest first.
pub fn job_rows(tx: &mut dyn Tx, limit: u32) -> Result<Vec<JobRow>, ApiError> {
    let mut rows = Vec::new();
    for job in tx.list_jobs(None, limit)? {
        let leases = tx.leases_of_job(&job.id)?;
        let completed: Vec<_> = leases
            .iter()
            .filter(|l| l.state == LeaseRecordState::Completed)
            .collect();
        let active: Vec<_> = leases
            .iter()
            .filter(|l| l.state == LeaseRecordState::Active)
            .collect();
        let mut workers: Vec<String> = if !completed.is_empty() {
            completed.iter().map(|l| l.worker_id.clone()).collect()
        } else if !active.is_empty() {
            active.iter().map(|l| l.worker_id.clone()).collect()
        } else {
            leases
                .last()
                .map(|l| l.worker_id.clone())
                .into_iter()
                .collect()
        };
        workers.dedup();
        let images: Vec<Preview> = completed
            .iter()
            .find_map(|l| l.proof.as_ref())
            .map(|proof| {
                proof
                    .manifest
                    .outputs
                    .iter()
                    .filter(|o| preview_type(&o.path, o.size).is_some())
                    .map(|o| Preview {
                        path: o.path.clone(),
                        sha256: o.sha256,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let more_previews = images.len().saturating_sub(MAX_PREVIEWS_PER_JOB);
        rows.push(JobRow {
            started_ms: leases.iter().map(|l| l.granted_at_ms).min(),
            fraction: active
                .iter()
                .map(|l| l.fraction)
                .max_by(|a, b| a.total_cmp(b)),
            previews: images.into_iter().take(MAX_PREVIEWS_PER_JOB).collect(),
            more_previews,
            id: job.id,
            kind: job.kind,
            state: job.state,
            workers,
            submitted_ms: job.created_at_ms,
            finished_ms: job.finished_at_ms,
            error: job.error,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_png_and_jpeg_outputs_are_previewed() {
        assert_eq!(preview_type("frames/0001.PNG", 10), Some("image/png"));
        assert_eq!(preview_type("loss.png", 10), Some("image/png"));
        assert_eq!(preview_type("a.jpeg", 10), Some("image/jpeg"));
        assert_eq!(preview_type("weights.safetensors", 10), None);
        assert_eq!(preview_type("huge.png", MAX_PREVIEW_BYTES + 1), None);
    }
}
