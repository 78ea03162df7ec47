//! `pictor-coordinator results`: download a succeeded job's outputs
//! (verified against their sha256) and its proofs.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pictor_coordinator::client::Client;
use pictor_protocol::api::{JobState, JobStatus};

use super::Target;

/// Download a job's outputs and proofs.
#[derive(Args)]
pub struct ResultsCommand {
    #[command(flatten)]
    target: Target,
    /// Folder to write the outputs and `proof-<worker>.json` files into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The job id.
    job: String,
}

impl ResultsCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let client = self.target.client()?;
        super::runtime()?.block_on(async {
            let status = client.job(&self.job).await?;
            if status.state != JobState::Succeeded {
                super::submit::print_final(&status);
                anyhow::bail!("job {} has no results: it is {}", self.job, status.state);
            }
            download(&client, &status, &self.out).await?;
            Ok(ExitCode::SUCCESS)
        })
    }
}

/// Downloads every output of `status` into `out` and writes each proof as
/// `proof-<worker>.json`.
pub async fn download(client: &Client, status: &JobStatus, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for output in &status.outputs {
        let relative = Path::new(&output.path);
        anyhow::ensure!(
            relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "output path {:?} is not a plain relative path; refusing to write it",
            output.path
        );
        let dest = out.join(relative);
        client.download(&output.sha256, &dest).await?;
        println!(
            "  {} ({} bytes, sha256 {})",
            dest.display(),
            output.size,
            output.sha256
        );
    }
    for proof in &status.proofs {
        let dest = out.join(format!("proof-{}.json", proof.manifest.worker_id));
        let text = serde_json::to_string_pretty(proof)? + "\n";
        std::fs::write(&dest, text).with_context(|| format!("cannot write {}", dest.display()))?;
        println!("  {}", dest.display());
    }
    Ok(())
}
