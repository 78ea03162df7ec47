//! Signed result proofs: what a worker claims it computed, signed with its
//! ed25519 key, so the coordinator (and checker nodes re-running a job) can
//! verify who produced which outputs from which plugin and inputs.
//!
//! A proof is a [`ResultManifest`] plus the signer's public key and an
//! ed25519 signature over the manifest's canonical JSON bytes. Workers sign
//! (`pictor-host`'s `proof` module holds the key); anyone verifies.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// The proof format version.
pub const PROOF_VERSION: u32 = 1;

/// A proof or key problem.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
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

/// Signs `manifest` with `key`.
pub fn sign(key: &SigningKey, manifest: ResultManifest) -> SignedProof {
    let signature = key.sign(&manifest.canonical_bytes());
    SignedProof {
        manifest,
        public_key: hex::encode(key.verifying_key().as_bytes()),
        signature: hex::encode(signature.to_bytes()),
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
            return Err(ProofError::WrongKey {
                expected: expected.to_string(),
                actual: self.public_key.clone(),
            });
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.public_key, &mut key)
            .map_err(|_| ProofError::Malformed("`public_key` is not 64 hex digits".into()))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|e| ProofError::Malformed(format!("`public_key`: {e}")))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| ProofError::Malformed("`signature` is not 128 hex digits".into()))?;
        key.verify(
            &self.manifest.canonical_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| ProofError::BadSignature(self.public_key.clone()))
    }

    /// Checks that the files in `dir` are exactly the manifest's outputs.
    pub fn verify_outputs(&self, dir: &Path) -> Result<(), ProofError> {
        for output in &self.manifest.outputs {
            let problem = |problem: String| ProofError::Output {
                path: output.path.clone(),
                problem,
            };
            let path = dir.join(&output.path);
            let actual = Sha256Digest::of_file(&path)
                .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
            if actual != output.sha256 {
                return Err(problem(format!(
                    "sha256 mismatch: expected {}, got {actual}",
                    output.sha256
                )));
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
            outputs: vec![OutputDigest {
                path: "a".into(),
                size: 3,
                sha256: Sha256Digest::of(b"abc"),
            }],
            finished_at_ms: 1,
            duration_s: 0.5,
            adapter: None,
        }
    }

    #[test]
    fn proofs_verify_and_tampering_is_caught() -> Result<(), Box<dyn std::error::Error>> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().as_bytes());
        let proof = sign(&key, manifest());
        proof.verify(Some(&public))?;
        let mut tampered = proof.clone();
        tampered.manifest.outputs[0].sha256 = Sha256Digest::of(b"other");
        assert!(matches!(
            tampered.verify(None),
            Err(ProofError::BadSignature(_))
        ));
        let other = hex::encode(SigningKey::from_bytes(&[8; 32]).verifying_key().as_bytes());
        assert!(matches!(
            proof.verify(Some(&other)),
            Err(ProofError::WrongKey { .. })
        ));

        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), "abc")?;
        proof.verify_outputs(dir.path())?;
        std::fs::write(dir.path().join("a"), "abd")?;
        assert!(matches!(
            proof.verify_outputs(dir.path()),
            Err(ProofError::Output { .. })
        ));
        Ok(())
    }

    /// A proof travels as JSON text: the worker signs the manifest's bytes,
    /// the coordinator parses the text and serializes the manifest again to
    /// check them. Every f64 must come back bit for bit (serde_json's
    /// `float_roundtrip`): a duration like 1.5827933060000001 s once came
    /// back as 1.582793306 and a good proof was refused as forged.
    #[test]
    fn a_proof_still_verifies_after_a_trip_through_json_text()
    -> Result<(), Box<dyn std::error::Error>> {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut bits: u64 = 0x3ff9_5000_0000_0000;
        for _ in 0..2000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let duration_s = f64::from_bits(0x3ff0_0000_0000_0000 | (bits >> 12));
            let proof = sign(
                &key,
                ResultManifest {
                    duration_s,
                    ..manifest()
                },
            );
            let parsed: SignedProof = serde_json::from_str(&serde_json::to_string(&proof)?)?;
            parsed
                .verify(None)
                .map_err(|e| format!("duration {duration_s}: {e}"))?;
        }
        let parsed: SignedProof = serde_json::from_str(&serde_json::to_string(&sign(
            &key,
            ResultManifest {
                duration_s: 1.5827933060000001,
                ..manifest()
            },
        ))?)?;
        assert_eq!(
            parsed.manifest.duration_s.to_bits(),
            1.5827933060000001f64.to_bits()
        );
        Ok(())
    }
}
