//! The job spec: the JSON document a job arrives as.
//!
//! This is version 1 as read by `pictor-host exec` (the plugin comes from the
//! command line). See `docs/job-spec.md`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::jobs::limits::LimitOverrides;

/// The job spec version this host reads.
pub const SPEC_VERSION: u32 = 1;

/// A job, as its creator described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Spec format version; must be [`SPEC_VERSION`].
    pub version: u32,
    /// Unique job id: 1–128 characters from `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Job kind: 1–64 characters from `a-z 0-9 -` (e.g. `render`).
    pub kind: String,
    /// Parameters for the plugin, any JSON value (default `{}`).
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Seed for everything random in the job (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Limits that override the host's defaults.
    #[serde(default)]
    pub limits: LimitOverrides,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A job spec that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read job spec {}: {source}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The JSON is malformed or has a wrong, missing or unknown field.
    #[error("invalid job spec {}: {message}", path.display())]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// What is wrong, naming the field (and line and column for JSON errors).
        message: String,
    },
}

impl JobSpec {
    /// Reads and validates the spec in `path`.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
        Self::from_json(&text).map_err(|message| SpecError::Invalid { path: path.to_path_buf(), message })
    }

    /// Parses and validates a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        // Check the version before the shape, so a newer spec gets a clear
        // "unsupported version" instead of an unknown-field error.
        let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match raw.get("version").map(|v| v.as_u64()) {
            None => return Err(format!("missing field `version` (this host reads version {SPEC_VERSION})")),
            Some(Some(v)) if v == SPEC_VERSION as u64 => {}
            Some(_) => {
                return Err(format!(
                    "unsupported `version` {}: this host reads job spec version {SPEC_VERSION}",
                    raw["version"]
                ));
            }
        }
        let spec: JobSpec = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
            .map_err(|e| match e.path().to_string().as_str() {
                "." => e.inner().to_string(),
                path => format!("`{path}`: {}", e.inner()),
            })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every field's value.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.id.is_empty() || self.id.len() > 128 || !self.id.chars().all(id_ok) || self.id.starts_with('.') {
            return Err(format!(
                "`id` must be 1-128 characters from A-Z a-z 0-9 . _ - (not starting with .), got {:?}",
                self.id
            ));
        }
        let kind_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.kind.is_empty() || self.kind.len() > 64 || !self.kind.chars().all(kind_ok) {
            return Err(format!("`kind` must be 1-64 characters from a-z 0-9 -, got {:?}", self.kind));
        }
        self.limits.validate()
    }

    /// The params as the JSON text handed to the plugin.
    pub fn params_json(&self) -> String {
        self.params.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_gets_defaults() -> Result<(), String> {
        let spec = JobSpec::from_json(r#"{"version": 1, "id": "job-1", "kind": "hello"}"#)?;
        assert_eq!(spec.params_json(), "{}");
        assert_eq!(spec.seed, 0);
        Ok(())
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"id": "a", "kind": "k"}"#, "missing field `version`"),
            (r#"{"version": 2, "id": "a", "kind": "k"}"#, "unsupported `version` 2"),
            (r#"{"version": 1, "id": "../x", "kind": "k"}"#, "`id` must be"),
            (r#"{"version": 1, "id": "a", "kind": "Render"}"#, "`kind` must be"),
            (r#"{"version": 1, "id": "a", "kind": "k", "seeed": 1}"#, "unknown field `seeed`"),
            (r#"{"version": 1, "id": "a", "kind": "k", "limits": {"memory_mib": 0}}"#, "limits.memory_mib"),
            (r#"{"version": 1, "id": "a", "kind": "k", "seed": -1}"#, "seed"),
            (r#"{"version": 1, "id": "a""#, "EOF"),
        ];
        for (json, expected) in cases {
            let err = JobSpec::from_json(json).expect_err(json);
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
