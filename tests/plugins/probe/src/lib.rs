//! `probe`: a test plugin that looks at its own sandbox and exercises the
//! host capabilities, so the tests check them from the inside.
//!
//! Params: `{"check": NAME}`:
//!
//! | check | what it does |
//! |---|---|
//! | `environment` | counts env vars and args, reads stdin, lists `/`; writes `environment.json` |
//! | `checkpoint` | loads a counter from the checkpoint (0 if none), saves counter + 1, writes `count.txt` |
//! | `wait-for-cancel` | reports progress every 10 ms until `cancelled()`, then returns `cancelled` |
//! | `steps` | `steps` steps of `step_ms` each, checkpointing after each one and resuming from the checkpoint; writes `steps.txt` |

use std::io::Read;
use std::time::Duration;

use pictor_sdk::{Job, JobError, Plugin, Summary};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    check: String,
    #[serde(default = "default_steps")]
    steps: u32,
    #[serde(default = "default_step_ms")]
    step_ms: u64,
}

fn default_steps() -> u32 {
    10
}

fn default_step_ms() -> u64 {
    100
}

/// The `probe` plugin.
pub struct Probe;

impl Plugin for Probe {
    fn run(job: &Job) -> Result<Summary, JobError> {
        let params: Params = job.params()?;
        match params.check.as_str() {
            "environment" => environment(job),
            "checkpoint" => checkpoint(job),
            "wait-for-cancel" => wait_for_cancel(job),
            "steps" => steps(job, params.steps, params.step_ms),
            other => Err(JobError::InvalidParams(format!("unknown check `{other}`"))),
        }
    }
}

fn environment(job: &Job) -> Result<Summary, JobError> {
    let vars = std::env::vars_os().count();
    let args = std::env::args_os().count();
    let mut stdin = Vec::new();
    let stdin_read = std::io::stdin()
        .read_to_end(&mut stdin)
        .map(|_| stdin.len());
    let mut root: Vec<String> = std::fs::read_dir("/")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    root.sort();
    let report = format!(
        "{{\"vars\": {vars}, \"args\": {args}, \"stdin_bytes\": {}, \"root\": {:?}}}",
        stdin_read.unwrap_or(0),
        root
    );
    job.write_output("environment.json", report.as_bytes())?;
    Ok(Summary::new("environment probed")
        .metric("vars", vars as f64)
        .metric("args", args as f64))
}

fn checkpoint(job: &Job) -> Result<Summary, JobError> {
    let previous = match job.load_checkpoint() {
        Some(bytes) => u64::from_le_bytes(
            bytes
                .try_into()
                .map_err(|_| JobError::Failed("checkpoint is not an 8-byte counter".into()))?,
        ),
        None => 0,
    };
    let count = previous + 1;
    job.save_checkpoint(&count.to_le_bytes())?;
    job.write_output("count.txt", count.to_string().as_bytes())?;
    Ok(Summary::new(format!("run {count}")).metric("count", count as f64))
}

fn steps(job: &Job, total: u32, step_ms: u64) -> Result<Summary, JobError> {
    let resumed_at = match job.load_checkpoint() {
        Some(bytes) => u32::from_le_bytes(
            bytes
                .try_into()
                .map_err(|_| JobError::Failed("checkpoint is not a 4-byte step count".into()))?,
        ),
        None => 0,
    };
    for step in resumed_at..total {
        job.check_cancelled()?;
        std::thread::sleep(Duration::from_millis(step_ms));
        job.save_checkpoint(&(step + 1).to_le_bytes())?;
        job.progress(
            (step + 1) as f32 / total as f32,
            format!("step {}/{total}", step + 1),
        );
    }
    let report = format!(
        "steps {total} resumed_at {resumed_at} attempt {}\n",
        job.info().attempt
    );
    job.write_output("steps.txt", report.as_bytes())?;
    Ok(Summary::new(report.trim()).metric("resumed_at", f64::from(resumed_at)))
}

fn wait_for_cancel(job: &Job) -> Result<Summary, JobError> {
    let mut ticks = 0u32;
    loop {
        job.check_cancelled()?;
        ticks += 1;
        job.progress(0.0, format!("waited {ticks} ticks"));
        std::thread::sleep(Duration::from_millis(10));
    }
}

pictor_sdk::export_plugin!(Probe);

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_sdk::testing::TestHost;

    #[test]
    fn checkpoint_counts_runs() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        let job = host.job(r#"{"check": "checkpoint"}"#);
        assert_eq!(Probe::run(&job)?.message, "run 1");
        std::fs::remove_file(host.output_dir().join("count.txt"))?;
        assert_eq!(Probe::run(&job)?.message, "run 2");
        Ok(())
    }

    #[test]
    fn wait_for_cancel_returns_cancelled() -> Result<(), Box<dyn std::error::Error>> {
        let host = TestHost::new()?;
        host.cancel();
        assert_eq!(
            Probe::run(&host.job(r#"{"check": "wait-for-cancel"}"#)),
            Err(JobError::Cancelled)
        );
        Ok(())
    }
}
