//! `pictor-host verify-proof`: check a signed result proof (and, with
//! `--outputs`, that the files are the ones it names).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pictor_host::proof::SignedProof;

/// Verify a result proof's signature, signer and outputs.
#[derive(Args)]
pub struct VerifyProofCommand {
    /// The proof (`proof.json` beside a job's result).
    proof: PathBuf,
    /// Also check every output's sha256 against the files in this folder.
    #[arg(long, value_name = "DIR")]
    outputs: Option<PathBuf>,
    /// Require the proof to be signed by this public key (hex).
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
}

impl VerifyProofCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let text = std::fs::read_to_string(&self.proof)
            .with_context(|| format!("cannot read {}", self.proof.display()))?;
        let proof: SignedProof = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a result proof", self.proof.display()))?;
        let checked = proof
            .verify(self.public_key.as_deref())
            .and_then(|()| match &self.outputs {
                Some(dir) => proof.verify_outputs(dir),
                None => Ok(()),
            });
        if let Err(e) = checked {
            eprintln!("INVALID {}: {e}", self.proof.display());
            return Ok(ExitCode::from(super::EXIT_JOB_FAILED));
        }
        let m = &proof.manifest;
        println!(
            "valid proof: job {} attempt {} {} by worker {} (key {})",
            m.job_id, m.attempt, m.status, m.worker_id, proof.public_key
        );
        println!(
            "  plugin {} · {} input(s) · {} output(s){}",
            m.plugin_sha256,
            m.inputs.len(),
            m.outputs.len(),
            if self.outputs.is_some() {
                " checked on disk"
            } else {
                ""
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}
