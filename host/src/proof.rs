//! Signed result proofs: what a worker claims it computed, signed with its
//! ed25519 key, so the network (and checker nodes re-running a job) can
//! verify who produced which outputs from which plugin and inputs.
//!
//! The key is created on first use (32 random bytes, file mode 0600, written
//! atomically) and reused afterwards; its public half identifies the worker.
//! A proof is a [`ResultManifest`] plus the public key and a signature over
//! the manifest's canonical JSON bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::jobs::outcome::JobOutcome;
use crate::jobs::spec::JobSpec;

/// The proof format version.
pub const PROOF_VERSION: u32 = 1;

const KEY_PREFIX: &str = "pictor-worker-key-v1:";

/// A proof or key problem.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The key file could not be read or created.
    #[error("worker key {}: {source}", path.display())]
    KeyIo {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file is not a worker key.
    #[error("worker key {}: not a pictor worker key (expected `{KEY_PREFIX}<64 hex digits>`); move it away to create a new key", .0.display())]
    KeyFormat(PathBuf),
    /// The proof is malformed.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The signature does not match the manifest and key.
    #[error("signature invalid: the manifest was changed or not signed by key {0}")]
    BadSignature(String),
    /// The proof was signed by another key than the expected one.
    #[error("proof signed by key {actual}, expected {expected}")]
    WrongKey {
        /// The expected public key.
        expected: String,
        /// The key in the proof.
        actual: String,
    },
    /// An output on disk does not match the manifest.
    #[error("output `{path}`: {problem}")]
    Output {
        /// The output's path in the manifest.
        path: String,
        /// What differs.
        problem: String,
    },
}

/// A worker's signing key.
pub struct WorkerKey {
    key: SigningKey,
}

impl WorkerKey {
    /// Loads the key at `path`, creating it (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, ProofError> {
        let io = |source| ProofError::KeyIo { path: path.to_path_buf(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hex_part = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| ProofError::KeyFormat(path.to_path_buf()))?;
                let mut seed = [0u8; 32];
                hex::decode_to_slice(hex_part, &mut seed).map_err(|_| ProofError::KeyFormat(path.to_path_buf()))?;
                Ok(WorkerKey { key: SigningKey::from_bytes(&seed) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| io(std::io::Error::other(e)))?;
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(io)?;
                let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
                }
                writeln!(tmp, "{KEY_PREFIX}{}", hex::encode(seed)).map_err(io)?;
                tmp.as_file().sync_all().map_err(io)?;
                // Never replace a key another process created meanwhile.
                tmp.persist_noclobber(path).map_err(|e| io(e.error))?;
                tracing::info!(path = %path.display(), "created the worker key");
                Ok(WorkerKey { key: SigningKey::from_bytes(&seed) })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key, hex: what the worker registers with the network.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs `manifest`.
    pub fn sign(&self, manifest: ResultManifest) -> SignedProof {
        let signature = self.key.sign(&manifest.canonical_bytes());
        SignedProof { manifest, public_key: self.public_hex(), signature: hex::encode(signature.to_bytes()) }
    }
}

/// One input the job was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDigest {
    /// Its name in `/input`.
    pub name: String,
    /// Its digest.
    pub sha256: Sha256Digest,
}

/// One output the job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputDigest {
    /// Its path under `/output`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its digest.
    pub sha256: Sha256Digest,
}

/// What a worker claims about one run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultManifest {
    /// [`PROOF_VERSION`].
    pub version: u32,
    /// The job.
    pub job_id: String,
    /// The worker that ran it.
    pub worker_id: String,
    /// Which attempt.
    pub attempt: u32,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The plugin's digest.
    pub plugin_sha256: Sha256Digest,
    /// The inputs' digests.
    pub inputs: Vec<InputDigest>,
    /// Digest of the params JSON text exactly as given to the plugin.
    pub params_sha256: Sha256Digest,
    /// The seed.
    pub seed: u64,
    /// The outputs' digests.
    pub outputs: Vec<OutputDigest>,
    /// When the proof was made, in milliseconds since the Unix epoch.
    pub finished_at_ms: u64,
    /// How long the run took, in seconds.
    pub duration_s: f64,
    /// The GPU adapter the job ran on, if it used one.
    pub adapter: Option<String>,
}

impl ResultManifest {
    /// The manifest of `outcome` for `spec`, run by `worker_id`.
    pub fn new(worker_id: &str, spec: &JobSpec, outcome: &JobOutcome) -> Self {
        let finished_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        ResultManifest {
            version: PROOF_VERSION,
            job_id: outcome.job_id.clone(),
            worker_id: worker_id.to_string(),
            attempt: outcome.attempt,
            status: outcome.status.to_string(),
            plugin_sha256: outcome.plugin,
            inputs: spec.inputs.iter().map(|i| InputDigest { name: i.name.clone(), sha256: i.file.sha256 }).collect(),
            params_sha256: Sha256Digest::of(spec.params_json().as_bytes()),
            seed: spec.seed,
            outputs: outcome
                .outputs
                .iter()
                .map(|o| OutputDigest { path: o.path.clone(), size: o.size, sha256: o.sha256 })
                .collect(),
            finished_at_ms,
            duration_s: outcome.duration_s,
            adapter: outcome.adapter.clone(),
        }
    }

    /// The bytes that are signed: the manifest as compact JSON, fields in
    /// declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A manifest with its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedProof {
    /// What is claimed.
    pub manifest: ResultManifest,
    /// The signer's ed25519 public key, hex.
    pub public_key: String,
    /// The ed25519 signature of the manifest's canonical bytes, hex.
    pub signature: String,
}

impl SignedProof {
    /// Checks the signature (and, if given, that the signer is `expected_key`).
    pub fn verify(&self, expected_key: Option<&str>) -> Result<(), ProofError> {
        if let Some(expected) = expected_key
            && !expected.eq_ignore_ascii_case(&self.public_key)
        {
            return Err(ProofError::WrongKey { expected: expected.to_string(), actual: self.public_key.clone() });
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut key)
            .map_err(|_| ProofError::Malformed("`public_key` is not 64 hex digits".into()))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|e| ProofError::Malformed(format!("`public_key`: {e}")))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| ProofError::Malformed("`signature` is not 128 hex digits".into()))?;
        key.verify(&self.manifest.canonical_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| ProofError::BadSignature(self.public_key.clone()))
    }

    /// Checks that the files in `dir` are exactly the manifest's outputs.
    pub fn verify_outputs(&self, dir: &Path) -> Result<(), ProofError> {
        for output in &self.manifest.outputs {
            let problem = |problem: String| ProofError::Output { path: output.path.clone(), problem };
            let path = dir.join(&output.path);
            let actual = Sha256Digest::of_file(&path).map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
            if actual != output.sha256 {
                return Err(problem(format!("sha256 mismatch: expected {}, got {actual}", output.sha256)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ResultManifest {
        ResultManifest {
            version: PROOF_VERSION,
            job_id: "j".into(),
            worker_id: "w".into(),
            attempt: 0,
            status: "succeeded".into(),
            plugin_sha256: Sha256Digest::of(b"plugin"),
            inputs: vec![],
            params_sha256: Sha256Digest::of(b"{}"),
            seed: 1,
            outputs: vec![OutputDigest { path: "a".into(), size: 3, sha256: Sha256Digest::of(b"abc") }],
            finished_at_ms: 1,
            duration_s: 0.5,
            adapter: None,
        }
    }

    #[test]
    fn key_is_created_private_then_reused_and_proofs_verify() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keys/worker.key");
        let key = WorkerKey::load_or_create(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(WorkerKey::load_or_create(&path)?.public_hex(), key.public_hex());

        let proof = key.sign(manifest());
        proof.verify(Some(&key.public_hex()))?;
        let mut tampered = proof.clone();
        tampered.manifest.outputs[0].sha256 = Sha256Digest::of(b"other");
        assert!(matches!(tampered.verify(None), Err(ProofError::BadSignature(_))));
        let other = WorkerKey::load_or_create(&dir.path().join("other.key"))?;
        assert!(matches!(proof.verify(Some(&other.public_hex())), Err(ProofError::WrongKey { .. })));

        std::fs::write(dir.path().join("a"), "abc")?;
        proof.verify_outputs(dir.path())?;
        std::fs::write(dir.path().join("a"), "abd")?;
        assert!(matches!(proof.verify_outputs(dir.path()), Err(ProofError::Output { .. })));

        std::fs::write(dir.path().join("bad.key"), "nope")?;
        assert!(matches!(WorkerKey::load_or_create(&dir.path().join("bad.key")), Err(ProofError::KeyFormat(_))));
        Ok(())
    }
}
