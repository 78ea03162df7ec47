//! The worker's side of signed result proofs: its ed25519 key and the
//! manifest of a finished job. The proof types and their verification are
//! in [`pictor_protocol::proof`] (re-exported here), shared with the
//! coordinator.
//!
//! The key is created on first use (32 random bytes, file mode 0600, written
//! atomically) and reused afterwards; its public half identifies the worker
//! and is registered with the coordinator.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
pub use pictor_protocol::proof::{
    InputDigest, OutputDigest, PROOF_VERSION, ProofError, ResultManifest, SignedProof,
};

use crate::digest::Sha256Digest;
use pictor_runtime::jobs::outcome::JobOutcome;
use pictor_runtime::jobs::spec::JobSpec;

const KEY_PREFIX: &str = "pictor-worker-key-v1:";

/// The worker key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or created.
    #[error("worker key {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file is not a worker key.
    #[error("worker key {}: not a pictor worker key (expected `{KEY_PREFIX}<64 hex digits>`); move it away to create a new key", .0.display())]
    Format(PathBuf),
}

/// A worker's signing key.
pub struct WorkerKey {
    key: SigningKey,
}

impl WorkerKey {
    /// Loads the key at `path`, creating it (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let hex_part = text
                    .trim()
                    .strip_prefix(KEY_PREFIX)
                    .ok_or_else(|| KeyError::Format(path.to_path_buf()))?;
                let mut seed = [0u8; 32];
                hex::decode_to_slice(hex_part, &mut seed)
                    .map_err(|_| KeyError::Format(path.to_path_buf()))?;
                Ok(WorkerKey {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| io(std::io::Error::other(e)))?;
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(io)?;
                let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    tmp.as_file()
                        .set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                writeln!(tmp, "{KEY_PREFIX}{}", hex::encode(seed)).map_err(io)?;
                tmp.as_file().sync_all().map_err(io)?;
                // Never replace a key another process created meanwhile.
                tmp.persist_noclobber(path).map_err(|e| io(e.error))?;
                tracing::info!(path = %path.display(), "created the worker key");
                Ok(WorkerKey {
                    key: SigningKey::from_bytes(&seed),
                })
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
        pictor_protocol::proof::sign(&self.key, manifest)
    }
}

/// The manifest of `outcome` for `spec`, run by `worker_id`.
pub fn manifest(worker_id: &str, spec: &JobSpec, outcome: &JobOutcome) -> ResultManifest {
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
        inputs: spec
            .inputs
            .iter()
            .map(|i| InputDigest {
                name: i.name.clone(),
                sha256: i.file.sha256,
            })
            .collect(),
        params_sha256: Sha256Digest::of(spec.params_json().as_bytes()),
        seed: spec.seed,
        outputs: outcome
            .outputs
            .iter()
            .map(|o| OutputDigest {
                path: o.path.clone(),
                size: o.size,
                sha256: o.sha256,
            })
            .collect(),
        finished_at_ms,
        duration_s: outcome.duration_s,
        adapter: outcome.adapter.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_then_reused_and_signs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keys/worker.key");
        let key = WorkerKey::load_or_create(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            WorkerKey::load_or_create(&path)?.public_hex(),
            key.public_hex()
        );
        let spec = JobSpec::from_json(
            r#"{"version": 1, "id": "j", "kind": "k", "seed": 9, "params": {"a": 1}}"#,
        )?;
        let outcome = JobOutcome {
            job_id: "j".into(),
            kind: "k".into(),
            plugin: Sha256Digest::of(b"plugin"),
            attempt: 2,
            status: "succeeded",
            success: None,
            failure: None,
            duration_s: 1.5,
            outputs: Vec::new(),
            progress: Default::default(),
            checkpoints_saved: 0,
            adapter: Some("lavapipe".into()),
        };
        let proof = key.sign(manifest("w1", &spec, &outcome));
        proof.verify(Some(&key.public_hex()))?;
        let m = &proof.manifest;
        assert_eq!(
            (m.job_id.as_str(), m.worker_id.as_str(), m.attempt, m.seed),
            ("j", "w1", 2, 9)
        );
        assert_eq!(m.params_sha256, Sha256Digest::of(br#"{"a":1}"#));
        std::fs::write(dir.path().join("bad.key"), "nope")?;
        assert!(matches!(
            WorkerKey::load_or_create(&dir.path().join("bad.key")),
            Err(KeyError::Format(_))
        ));
        Ok(())
    }
}
