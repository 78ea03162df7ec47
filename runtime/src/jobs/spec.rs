//! The job spec: the JSON document a job arrives as.
//!
//! This is version 1 as read by `pictor-host exec` (the plugin comes from the
//! command line). See `docs/job-spec.md`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::jobs::limits::LimitOverrides;
use pictor_protocol::api::{JOB_ID_RULE, JOB_KIND_RULE};
use pictor_protocol::digest::Sha256Digest;

/// Longest error message about a bad file, in bytes: a hostile value
/// echoed back is clipped there, its control characters escaped.
const ERROR_BYTES: usize = 2048;

/// Largest job spec file read (params and the input list fit well within).
pub const MAX_SPEC_FILE_BYTES: u64 = 4 << 20;

/// The UTF-8 text of `path`, refused if longer than `max` bytes.
fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {max} bytes"),
        ));
    }
    Ok(text)
}

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
    /// The plugin that runs the job (required by the worker; `exec` may
    /// take it from `--plugin` instead).
    #[serde(default)]
    pub plugin: Option<FileRef>,
    /// The job's input files, placed in `/input` under their names.
    #[serde(default)]
    pub inputs: Vec<InputRef>,
    /// What the job pays, in the network's unit (informational here).
    #[serde(default)]
    pub price: Option<f64>,
}

/// A file given by path (URLs come with the network side) and its sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Path of the file; relative paths are relative to the spec's folder.
    pub path: PathBuf,
    /// Its content digest: a file that does not match is refused.
    pub sha256: Sha256Digest,
}

/// One input file of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRef {
    /// Its name in `/input` (relative, `/`-separated, no `..`).
    pub name: String,
    /// Where it is, and its digest.
    #[serde(flatten)]
    pub file: FileRef,
}

/// A referenced file that is missing or does not match its digest.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// The file cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// `plugin` or `input "name"`.
        what: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's digest is not the one the spec names.
    #[error("sha256 mismatch for {what} {}: expected {expected}, got {actual}", path.display())]
    Mismatch {
        /// `plugin` or `input "name"`.
        what: String,
        /// The file.
        path: PathBuf,
        /// The digest in the spec.
        expected: Sha256Digest,
        /// The file's digest.
        actual: Sha256Digest,
    },
}

impl FileRef {
    /// Checks the file's digest (streaming, never whole in memory).
    pub fn verify(&self, what: &str) -> Result<(), RefError> {
        let actual = Sha256Digest::of_file(&self.path).map_err(|source| RefError::Read {
            what: what.to_string(),
            path: self.path.clone(),
            source,
        })?;
        if actual != self.sha256 {
            return Err(RefError::Mismatch {
                what: what.to_string(),
                path: self.path.clone(),
                expected: self.sha256,
                actual,
            });
        }
        Ok(())
    }
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
    #[error("invalid job spec {}: {reason}", path.display())]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// What is wrong, naming the field (and line and column for JSON errors).
        reason: SpecInvalid,
    },
}

/// What is wrong with a job spec's JSON or one of its fields. It shows as
/// one message naming the field; a hostile value echoed back is clipped to
/// 2 KiB with its control characters escaped.
#[derive(Debug, Clone, PartialEq)]
pub enum SpecInvalid {
    /// Not JSON, or a field of the wrong shape, missing or unknown (serde's
    /// words, with the field's path).
    Shape(String),
    /// No `version` field.
    MissingVersion,
    /// A `version` this host does not read (as written in the spec).
    Version(String),
    /// An `id` outside the job-id rule.
    Id(String),
    /// A `kind` outside the job-kind rule.
    Kind(String),
    /// Too many params bytes or inputs.
    Size(pictor_protocol::api::JobSizeError),
    /// An input name that is not a plain relative path.
    InputName {
        /// Its index in `inputs`.
        index: usize,
        /// The name.
        name: String,
    },
    /// An input name listed twice.
    DuplicateInput {
        /// The index of the second one in `inputs`.
        index: usize,
        /// The name.
        name: String,
    },
    /// A negative or non-finite `price`.
    Price(f64),
    /// A `limits` value out of its range (the message names it).
    Limits(crate::jobs::limits::LimitError),
}

impl SpecInvalid {
    fn unclipped(&self) -> String {
        match self {
            SpecInvalid::Shape(message) => message.clone(),
            SpecInvalid::Limits(error) => error.to_string(),
            SpecInvalid::MissingVersion => {
                format!("missing field `version` (this host reads version {SPEC_VERSION})")
            }
            SpecInvalid::Version(version) => format!(
                "unsupported `version` {version}: this host reads job spec version {SPEC_VERSION}"
            ),
            SpecInvalid::Id(id) => format!("`id` must be {JOB_ID_RULE}, got {id:?}"),
            SpecInvalid::Kind(kind) => format!("`kind` must be {JOB_KIND_RULE}, got {kind:?}"),
            SpecInvalid::Size(error) => error.to_string(),
            SpecInvalid::InputName { index, name } => {
                format!("`inputs[{index}].name` {name:?} must be a relative path without `..`")
            }
            SpecInvalid::DuplicateInput { index, name } => {
                format!("`inputs[{index}].name` {name:?} appears twice")
            }
            SpecInvalid::Price(price) => format!("`price` must be a number ≥ 0, got {price}"),
        }
    }
}

impl std::fmt::Display for SpecInvalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::text::lines(&self.unclipped(), ERROR_BYTES))
    }
}

impl std::error::Error for SpecInvalid {}

impl JobSpec {
    /// Reads and validates the spec in `path`; relative plugin and input
    /// paths become absolute, against the spec's folder.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = read_bounded(path, MAX_SPEC_FILE_BYTES).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Self::from_json(&text).map_err(|reason| SpecError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let files = spec
            .plugin
            .iter_mut()
            .chain(spec.inputs.iter_mut().map(|i| &mut i.file));
        for file in files {
            if file.path.is_relative() {
                file.path = dir.join(&file.path);
            }
        }
        Ok(spec)
    }

    /// Checks the plugin's and every input's sha256, before anything runs.
    pub fn verify_files(&self) -> Result<(), RefError> {
        if let Some(plugin) = &self.plugin {
            plugin.verify("plugin")?;
        }
        for input in &self.inputs {
            input.file.verify(&format!("input {:?}", input.name))?;
        }
        Ok(())
    }

    /// Parses and validates a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Self, SpecInvalid> {
        // Check the version before the shape, so a newer spec gets a clear
        // "unsupported version" instead of an unknown-field error.
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SpecInvalid::Shape(e.to_string()))?;
        match raw.get("version").map(|v| v.as_u64()) {
            None => return Err(SpecInvalid::MissingVersion),
            Some(Some(v)) if v == SPEC_VERSION as u64 => {}
            Some(_) => return Err(SpecInvalid::Version(raw["version"].to_string())),
        }
        let spec: JobSpec =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(|e| {
                    SpecInvalid::Shape(match e.path().to_string().as_str() {
                        "." => e.inner().to_string(),
                        path => format!("`{path}`: {}", e.inner()),
                    })
                })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every field's value: the id and kind against the protocol's
    /// rules, the job's size, input names, price and limits.
    pub fn validate(&self) -> Result<(), SpecInvalid> {
        if !pictor_protocol::api::valid_id(&self.id) {
            return Err(SpecInvalid::Id(self.id.clone()));
        }
        if !pictor_protocol::api::valid_kind(&self.kind) {
            return Err(SpecInvalid::Kind(self.kind.clone()));
        }
        pictor_protocol::api::check_job_size(&self.params, self.inputs.len())
            .map_err(SpecInvalid::Size)?;
        let mut names = std::collections::BTreeSet::new();
        for (index, input) in self.inputs.iter().enumerate() {
            let path = Path::new(&input.name);
            let plain = path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if input.name.is_empty() || !plain {
                return Err(SpecInvalid::InputName {
                    index,
                    name: input.name.clone(),
                });
            }
            if !names.insert(&input.name) {
                return Err(SpecInvalid::DuplicateInput {
                    index,
                    name: input.name.clone(),
                });
            }
        }
        if let Some(price) = self.price
            && !(price.is_finite() && price >= 0.0)
        {
            return Err(SpecInvalid::Price(price));
        }
        self.limits.validate().map_err(SpecInvalid::Limits)
    }

    /// The params as the JSON text handed to the plugin (compact, keys
    /// sorted: the text whose digest a proof signs).
    pub fn params_json(&self) -> String {
        pictor_protocol::api::canonical_json(&self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_test_support::hostile;

    #[test]
    fn minimal_spec_gets_defaults() -> Result<(), SpecInvalid> {
        let spec = JobSpec::from_json(r#"{"version": 1, "id": "job-1", "kind": "hello"}"#)?;
        assert_eq!(spec.params_json(), "{}");
        assert_eq!(spec.seed, 0);
        Ok(())
    }

    /// The sample jobs the quickstart submits name their files by digest; a
    /// fixture regenerated without its job updated breaks the README's first
    /// command, so every digest is held to the file it names.
    #[test]
    fn every_sample_job_matches_the_files_it_names() -> Result<(), Box<dyn std::error::Error>> {
        let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/jobs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&jobs)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let spec = JobSpec::from_file(&path)?;
                spec.verify_files()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                checked += spec.inputs.len();
            }
        }
        assert!(
            checked >= 10,
            "only {checked} inputs found under {}",
            jobs.display()
        );
        Ok(())
    }

    #[test]
    fn referenced_files_are_checked_against_their_sha256() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("scene.txt"), "abc")?;
        let spec_path = dir.path().join("job.json");
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let json = |digest: &str| {
            format!(
                r#"{{"version": 1, "id": "a", "kind": "k", "inputs": [{{"name": "s.txt", "path": "scene.txt", "sha256": "{digest}"}}]}}"#
            )
        };
        std::fs::write(&spec_path, json(good))?;
        let spec = JobSpec::from_file(&spec_path)?;
        assert!(spec.inputs[0].file.path.is_absolute());
        spec.verify_files()?;
        std::fs::write(&spec_path, json(&"0".repeat(64)))?;
        let err = JobSpec::from_file(&spec_path)?
            .verify_files()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sha256 mismatch for input \"s.txt\""),
            "{err}"
        );
        assert!(
            err.contains(&format!("expected {}, got {good}", "0".repeat(64))),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"id": "a", "kind": "k"}"#, "missing field `version`"),
            (
                r#"{"version": 2, "id": "a", "kind": "k"}"#,
                "unsupported `version` 2",
            ),
            (
                r#"{"version": 1, "id": "../x", "kind": "k"}"#,
                "`id` must be",
            ),
            (
                r#"{"version": 1, "id": "a", "kind": "Render"}"#,
                "`kind` must be",
            ),
            (
                r#"{"version": 1, "id": "a", "kind": "k", "seeed": 1}"#,
                "unknown field `seeed`",
            ),
            (
                r#"{"version": 1, "id": "a", "kind": "k", "limits": {"memory_mib": 0}}"#,
                "limits.memory_mib",
            ),
            (
                r#"{"version": 1, "id": "a", "kind": "k", "seed": -1}"#,
                "seed",
            ),
            (r#"{"version": 1, "id": "a""#, "EOF"),
            (
                r#"{"version": 1, "id": "a", "kind": "k", "plugin": {"path": "p.wasm", "sha256": "xyz"}}"#,
                "`plugin.sha256`",
            ),
            (
                r#"{"version": 1, "id": "a", "kind": "k", "inputs": [{"name": "../x", "path": "x", "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]}"#,
                "`inputs[0].name`",
            ),
        ];
        for (json, expected) in cases {
            let err = JobSpec::from_json(json).expect_err(json).to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    /// Fields of the render sample (and ones it lacks) a hostile spec may change.
    const SPEC_FIELDS: &[&str] = &[
        "version",
        "id",
        "kind",
        "params",
        "params/width",
        "seed",
        "inputs",
        "inputs/0",
        "inputs/0/name",
        "inputs/0/path",
        "inputs/0/sha256",
        "inputs/1/name",
        "limits",
        "limits/timeout_s",
        "limits/memory_mib",
        "limits/output_mib",
        "limits/output_files",
        "limits/open_files",
        "limits/gpu_memory_mib",
        "limits/gpu_submission_ms",
        "limits/log_bytes",
        "plugin",
        "plugin/path",
        "plugin/sha256",
        "price",
        "unknown_key",
    ];

    proptest::proptest! {
        #![proptest_config(hostile::config())]

        #[test]
        fn a_hostile_job_spec_is_refused_readably_never_a_panic((path, value) in hostile::mutation(SPEC_FIELDS)) {
            let sample: serde_json::Value = serde_json::from_str(include_str!("../../../fixtures/jobs/render.json")).unwrap();
            let text = hostile::with_field(&sample, path, value).to_string();
            match JobSpec::from_json(&text) {
                Ok(spec) => proptest::prop_assert!(spec.validate().is_ok()),
                Err(error) => hostile::assert_readable(&error.to_string()),
            }
        }
    }

    #[test]
    fn params_inputs_and_the_file_are_held_to_their_bounds() {
        use pictor_protocol::api::{MAX_INPUTS, MAX_PARAMS_BYTES};
        let with_params = |n: usize| {
            format!(
                r#"{{"version": 1, "id": "big", "kind": "hello", "params": {{"x": "{}"}}}}"#,
                "a".repeat(n)
            )
        };
        // {"x":"…"} is the string plus 8 bytes.
        assert!(JobSpec::from_json(&with_params(MAX_PARAMS_BYTES - 8)).is_ok());
        let error = JobSpec::from_json(&with_params(MAX_PARAMS_BYTES - 7))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`params` is 1048577 bytes as JSON, the limit is 1048576"),
            "{error}"
        );

        let inputs: Vec<String> = (0..=MAX_INPUTS)
            .map(|i| {
                format!(
                    r#"{{"name": "f{i}", "path": "f", "sha256": "{}"}}"#,
                    "0".repeat(64)
                )
            })
            .collect();
        let text = format!(
            r#"{{"version": 1, "id": "many", "kind": "hello", "inputs": [{}]}}"#,
            inputs.join(",")
        );
        let error = JobSpec::from_json(&text).unwrap_err().to_string();
        assert!(
            error.contains("`inputs` lists 10001 files, the limit is 10000"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.json");
        std::fs::write(&path, " ".repeat(MAX_SPEC_FILE_BYTES as usize + 1)).unwrap();
        let error = JobSpec::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("larger than 4194304 bytes"), "{error}");
    }

    #[test]
    fn a_spec_nested_100000_deep_is_refused_not_a_stack_overflow() {
        let text = format!(
            r#"{{"version": 1, "id": "deep", "kind": "hello", "params": {}}}"#,
            hostile::deeply_nested(100_000)
        );
        hostile::assert_readable(
            &JobSpec::from_json(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
    }
}
