//! The bounds every job runs under.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capabilities::gpu::GpuQuota;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Limits a job may set in its spec (`limits` object); each absent field
/// falls back to the host's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Wall-clock limit in seconds.
    pub timeout_s: Option<f64>,
    /// Linear memory limit in MiB.
    pub memory_mib: Option<u64>,
    /// Total size of `/output` in MiB.
    pub output_mib: Option<u64>,
    /// Number of files and folders in `/output`.
    pub output_files: Option<u64>,
    /// Files the plugin may hold open at once.
    pub open_files: Option<u32>,
    /// Checkpoint size in MiB.
    pub checkpoint_mib: Option<u64>,
    /// GPU memory (all live buffers) in MiB.
    pub gpu_memory_mib: Option<u64>,
    /// Live GPU buffers.
    pub gpu_buffers: Option<u32>,
    /// Commands in one GPU submit.
    pub gpu_commands_per_submit: Option<u32>,
    /// Workgroups (x × y × z) in one dispatch.
    pub gpu_workgroups_per_dispatch: Option<u64>,
    /// Milliseconds one GPU submission may take.
    pub gpu_submission_ms: Option<u64>,
}

/// The resolved limits of one job run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobLimits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Linear memory limit, all of the plugin's memories together.
    pub memory_bytes: u64,
    /// Total bytes the plugin may write to `/output` (apparent file sizes).
    pub output_bytes: u64,
    /// Files and folders the plugin may create in `/output`.
    pub output_files: u64,
    /// OS file descriptors the plugin may hold open at once (files and
    /// folders it opened, and the streams made from them).
    pub open_files: u32,
    /// Largest checkpoint.
    pub checkpoint_bytes: u64,
    /// Bytes of stdout and of stderr logged per job (the rest is dropped).
    pub log_bytes: u64,
    /// GPU quota.
    #[serde(skip)]
    pub gpu: GpuQuota,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            timeout: Duration::from_secs(3600),
            memory_bytes: 2048 * MIB,
            output_bytes: 2048 * MIB,
            output_files: 10_000,
            open_files: 256,
            checkpoint_bytes: 256 * MIB,
            log_bytes: MIB,
            gpu: GpuQuota::default(),
        }
    }
}

impl JobLimits {
    /// These limits with `overrides` applied.
    pub fn with(mut self, overrides: &LimitOverrides) -> Self {
        if let Some(s) = overrides.timeout_s {
            self.timeout = Duration::from_secs_f64(s);
        }
        if let Some(m) = overrides.memory_mib {
            self.memory_bytes = m * MIB;
        }
        if let Some(m) = overrides.output_mib {
            self.output_bytes = m * MIB;
        }
        if let Some(n) = overrides.output_files {
            self.output_files = n;
        }
        if let Some(n) = overrides.open_files {
            self.open_files = n;
        }
        if let Some(m) = overrides.checkpoint_mib {
            self.checkpoint_bytes = m * MIB;
        }
        if let Some(m) = overrides.gpu_memory_mib {
            self.gpu.memory_bytes = m * MIB;
        }
        if let Some(n) = overrides.gpu_buffers {
            self.gpu.buffers = n;
        }
        if let Some(n) = overrides.gpu_commands_per_submit {
            self.gpu.commands_per_submit = n;
        }
        if let Some(n) = overrides.gpu_workgroups_per_dispatch {
            self.gpu.workgroups_per_dispatch = n;
        }
        if let Some(ms) = overrides.gpu_submission_ms {
            self.gpu.submission = Duration::from_millis(ms);
        }
        self
    }
}

/// A job limit out of its range, or over the owner's ceiling.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// `limits.timeout_s` is not a number of seconds in (0, 7 days].
    #[error("limits.timeout_s must be between 0 and 604800 seconds, got {0}")]
    Timeout(f64),
    /// A count or size out of its range.
    #[error("limits.{name} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field, e.g. `memory_mib`.
        name: &'static str,
        /// What was asked.
        value: u64,
        /// The least allowed.
        min: u64,
        /// The most allowed.
        max: u64,
    },
    /// More than the owner's `limits.job` allows (another worker may).
    #[error(
        "the job asks for limits.{name} = {asked}, but this worker allows at most {allowed} \
         (its owner's limits.job.{name}); send it to a worker that allows more"
    )]
    OverCeiling {
        /// The field, e.g. `memory_mib`.
        name: &'static str,
        /// What the job asks for.
        asked: String,
        /// The owner's ceiling.
        allowed: String,
    },
}

impl JobLimits {
    /// The limits of a job asking for `asked` on a worker whose owner's
    /// limits are `ceiling`: every value the job asks for must be within
    /// the owner's (a creator cannot give itself more time, memory or GPU
    /// than the owner allows); values it leaves out are the owner's.
    pub fn within(ceiling: &JobLimits, asked: &LimitOverrides) -> Result<JobLimits, LimitError> {
        let over = |name: &'static str, asked: String, allowed: String| {
            Err(LimitError::OverCeiling {
                name,
                asked,
                allowed,
            })
        };
        if let Some(s) = asked.timeout_s
            && Duration::from_secs_f64(s.max(0.0)) > ceiling.timeout
        {
            return over(
                "timeout_s",
                s.to_string(),
                ceiling.timeout.as_secs_f64().to_string(),
            );
        }
        let g = &ceiling.gpu;
        let checks = [
            ("memory_mib", asked.memory_mib, ceiling.memory_bytes / MIB),
            ("output_mib", asked.output_mib, ceiling.output_bytes / MIB),
            ("output_files", asked.output_files, ceiling.output_files),
            (
                "open_files",
                asked.open_files.map(u64::from),
                u64::from(ceiling.open_files),
            ),
            (
                "checkpoint_mib",
                asked.checkpoint_mib,
                ceiling.checkpoint_bytes / MIB,
            ),
            ("gpu_memory_mib", asked.gpu_memory_mib, g.memory_bytes / MIB),
            (
                "gpu_buffers",
                asked.gpu_buffers.map(u64::from),
                u64::from(g.buffers),
            ),
            (
                "gpu_commands_per_submit",
                asked.gpu_commands_per_submit.map(u64::from),
                u64::from(g.commands_per_submit),
            ),
            (
                "gpu_workgroups_per_dispatch",
                asked.gpu_workgroups_per_dispatch,
                g.workgroups_per_dispatch,
            ),
            (
                "gpu_submission_ms",
                asked.gpu_submission_ms,
                u64::try_from(g.submission.as_millis()).unwrap_or(u64::MAX),
            ),
        ];
        for (name, value, allowed) in checks {
            if let Some(v) = value
                && v > allowed
            {
                return over(name, v.to_string(), allowed.to_string());
            }
        }
        Ok(ceiling.clone().with(asked))
    }
}

impl LimitOverrides {
    /// Checks each given value is in range; the error names the field.
    pub fn validate(&self) -> Result<(), LimitError> {
        if let Some(s) = self.timeout_s
            && !(s.is_finite() && s > 0.0 && s <= 7.0 * 86400.0)
        {
            return Err(LimitError::Timeout(s));
        }
        let ranges = [
            ("memory_mib", self.memory_mib, 1, 64 * 1024),
            ("output_mib", self.output_mib, 1, 1024 * 1024),
            ("output_files", self.output_files, 1, 10_000_000),
            ("open_files", self.open_files.map(u64::from), 1, 65_536),
            ("checkpoint_mib", self.checkpoint_mib, 1, 64 * 1024),
            ("gpu_memory_mib", self.gpu_memory_mib, 1, 1024 * 1024),
            ("gpu_buffers", self.gpu_buffers.map(u64::from), 1, 65_536),
            (
                "gpu_commands_per_submit",
                self.gpu_commands_per_submit.map(u64::from),
                1,
                1 << 20,
            ),
            (
                "gpu_workgroups_per_dispatch",
                self.gpu_workgroups_per_dispatch,
                1,
                1 << 48,
            ),
            ("gpu_submission_ms", self.gpu_submission_ms, 1, 600_000),
        ];
        for (name, value, min, max) in ranges {
            if let Some(v) = value
                && !(min..=max).contains(&v)
            {
                return Err(LimitError::OutOfRange {
                    name,
                    value: v,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_out_of_range_values_name_the_field() {
        let o = LimitOverrides {
            timeout_s: Some(2.5),
            memory_mib: Some(64),
            ..Default::default()
        };
        assert_eq!(o.validate(), Ok(()));
        let l = JobLimits::default().with(&o);
        assert_eq!(l.timeout, Duration::from_millis(2500));
        assert_eq!(l.memory_bytes, 64 * MIB);
        assert_eq!(l.output_files, JobLimits::default().output_files);

        let bad = LimitOverrides {
            memory_mib: Some(0),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("limits.memory_mib")
        );
        let bad = LimitOverrides {
            timeout_s: Some(f64::NAN),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("limits.timeout_s")
        );
    }

    #[test]
    fn the_owners_limits_are_ceilings_a_job_cannot_raise() {
        let owner = JobLimits::default().with(&LimitOverrides {
            memory_mib: Some(512),
            timeout_s: Some(600.0),
            ..Default::default()
        });
        // Asking for less, or nothing, is fine.
        let asked = LimitOverrides {
            memory_mib: Some(256),
            ..Default::default()
        };
        let limits = JobLimits::within(&owner, &asked).unwrap();
        assert_eq!(
            (limits.memory_bytes, limits.timeout),
            (256 * MIB, Duration::from_secs(600))
        );
        assert_eq!(
            JobLimits::within(&owner, &LimitOverrides::default()).unwrap(),
            owner
        );
        // Asking for more is refused, naming the field and both figures.
        for (asked, field) in [
            (
                LimitOverrides {
                    memory_mib: Some(64 * 1024),
                    ..Default::default()
                },
                "limits.memory_mib = 65536, but this worker allows at most 512",
            ),
            (
                LimitOverrides {
                    timeout_s: Some(7.0 * 86400.0),
                    ..Default::default()
                },
                "limits.timeout_s = 604800",
            ),
            (
                LimitOverrides {
                    gpu_submission_ms: Some(600_000),
                    ..Default::default()
                },
                "limits.gpu_submission_ms = 600000, but this worker allows at most 10000",
            ),
            (
                LimitOverrides {
                    open_files: Some(100_000),
                    ..Default::default()
                },
                "limits.open_files",
            ),
        ] {
            let err = JobLimits::within(&owner, &asked).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
