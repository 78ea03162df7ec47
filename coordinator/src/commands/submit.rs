//! `pictor-coordinator submit`: upload a job spec's plugin and inputs as
//! blobs (skipping those the coordinator has), submit it, and optionally
//! wait for it and download its results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use pictor_coordinator::client::Client;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{InputBlob, JobState, JobStatus, SubmitJob};
use serde::Deserialize;

use super::Target;

/// A job spec file, version 1 (docs/job-spec.md): the coordinator reads
/// what it submits and leaves `limits` to the workers to check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobSpecFile {
    version: u32,
    id: String,
    kind: String,
    #[serde(default)]
    params: Option<serde_json::Value>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    limits: Option<serde_json::Value>,
    #[serde(default)]
    plugin: Option<FileRef>,
    #[serde(default)]
    inputs: Vec<InputRef>,
    #[serde(default)]
    price: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRef {
    path: PathBuf,
    sha256: Sha256Digest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputRef {
    name: String,
    path: PathBuf,
    sha256: Sha256Digest,
}

/// Upload a job's files and submit it.
#[derive(Args)]
pub struct SubmitCommand {
    #[command(flatten)]
    target: Target,
    /// Use this plugin component (instead of the spec's `plugin`).
    #[arg(long, value_name = "P.wasm")]
    plugin: Option<PathBuf>,
    /// Run the job on this many different workers and compare outputs (1-4).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
    replicas: u32,
    /// Unsuccessful attempts before the job fails for good (1-20) [default: the coordinator's].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    max_attempts: Option<u32>,
    /// Wait until the job is final and print its state (exit 1 unless it succeeded).
    #[arg(long)]
    wait: bool,
    /// With --wait: download the outputs (and proofs) into DIR.
    #[arg(long, value_name = "DIR", requires = "wait")]
    out: Option<PathBuf>,
    /// The job spec (see docs/job-spec.md).
    job: PathBuf,
}

impl SubmitCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        super::runtime()?.block_on(self.run(client))
    }

    async fn run(self, client: Client) -> anyhow::Result<ExitCode> {
        let text = std::fs::read_to_string(&self.job)
            .with_context(|| format!("cannot read job spec {}", self.job.display()))?;
        let spec: JobSpecFile =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "invalid job spec {}: `{}`: {}",
                        self.job.display(),
                        e.path(),
                        e.inner()
                    )
                })?;
        anyhow::ensure!(
            spec.version == 1,
            "job spec {}: unsupported `version` {}: this reads version 1",
            self.job.display(),
            spec.version
        );
        let dir = self
            .job
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_relative() {
                dir.join(p)
            } else {
                p.to_path_buf()
            }
        };

        let (plugin_path, plugin_sha) = match (&self.plugin, &spec.plugin) {
            (Some(path), _) => (path.clone(), None),
            (None, Some(plugin)) => (resolve(&plugin.path), Some(plugin.sha256)),
            (None, None) => anyhow::bail!(
                "job spec {} names no `plugin`; give --plugin FILE",
                self.job.display()
            ),
        };
        let plugin = client.upload_file(&plugin_path).await?;
        check_digest("plugin", &plugin_path, plugin_sha, plugin.sha256)?;
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            let path = resolve(&input.path);
            let blob = client.upload_file(&path).await?;
            check_digest(
                &format!("input {:?}", input.name),
                &path,
                Some(input.sha256),
                blob.sha256,
            )?;
            inputs.push(InputBlob {
                name: input.name.clone(),
                sha256: blob.sha256,
                size: blob.size,
            });
        }
        let job = SubmitJob {
            id: Some(spec.id),
            kind: spec.kind,
            plugin,
            inputs,
            params: spec.params.unwrap_or_else(|| serde_json::json!({})),
            seed: spec.seed,
            limits: spec.limits.unwrap_or_else(|| serde_json::json!({})),
            price: spec.price,
            replicas: self.replicas,
            max_attempts: self.max_attempts.unwrap_or(0),
        };
        // Without --max-attempts the field is left out, so the coordinator's default applies.
        let mut body = serde_json::to_value(&job)?;
        if self.max_attempts.is_none()
            && let Some(fields) = body.as_object_mut()
        {
            fields.remove("max_attempts");
        }
        let status = client.submit_json(&body).await?;
        println!("submitted {} ({})", status.job_id, status.state);
        if !self.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let status = wait_until_final(&client, &status.job_id).await?;
        print_final(&status);
        if let Some(out) = &self.out
            && status.state == JobState::Succeeded
        {
            super::results::download(&client, &status, out).await?;
        }
        Ok(if status.state == JobState::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_JOB_FAILED)
        })
    }
}

/// Checks a file's digest against the one its spec names (both sides in the error).
fn check_digest(
    what: &str,
    path: &Path,
    expected: Option<Sha256Digest>,
    actual: Sha256Digest,
) -> anyhow::Result<()> {
    match expected {
        Some(expected) if expected != actual => {
            anyhow::bail!(
                "sha256 mismatch for {what} {}: expected {expected}, got {actual}",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

/// Polls a job until it is final.
pub async fn wait_until_final(client: &Client, job_id: &str) -> anyhow::Result<JobStatus> {
    let mut last = None;
    loop {
        let status = client.job(job_id).await?;
        if status.state.is_final() {
            return Ok(status);
        }
        if last != Some(status.state) {
            eprintln!("{job_id}: {}", status.state);
            last = Some(status.state);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints a final job's state, workers and error.
pub fn print_final(status: &JobStatus) {
    println!("{}: {}", status.job_id, status.state);
    if !status.workers.is_empty() {
        println!("  workers: {}", status.workers.join(", "));
    }
    if let Some(error) = &status.error {
        println!("  error: {error}");
    }
}
