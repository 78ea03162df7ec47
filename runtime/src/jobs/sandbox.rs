//! A job's folders on the host, and what the plugin left in `/output`.
//!
//! The plugin sees `input` as `/input` (read-only) and `output` as `/output`
//! (read-write) through WASI preopens; the two must be separate folders, not
//! nested, so write access to one never reaches the other. After the run,
//! [`tree::collect`](crate::jobs::tree::collect) checks and hashes what the
//! plugin left in `output`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use pictor_protocol::digest::Sha256Digest;

/// The two host folders of a job.
#[derive(Debug, Clone)]
pub struct JobDirs {
    /// Shown to the plugin as `/input`, read-only.
    pub input: PathBuf,
    /// Shown to the plugin as `/output`.
    pub output: PathBuf,
}

/// Problems with a job's folders or outputs.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The input folder is missing or not a folder.
    #[error("input folder {} does not exist or is not a folder", .0.display())]
    NoInput(PathBuf),
    /// The output folder already holds files.
    #[error("output folder {} is not empty: choose a new or empty folder so results are not mixed", .0.display())]
    OutputNotEmpty(PathBuf),
    /// Input and output overlap.
    #[error("input folder {} and output folder {} must be separate, not one inside the other", .input.display(), .output.display())]
    Overlap {
        /// The input folder.
        input: PathBuf,
        /// The output folder.
        output: PathBuf,
    },
    /// A folder could not be created or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An input named by the spec is missing or does not match its digest.
    #[error("{0}")]
    Input(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl JobDirs {
    /// Checks `input` exists, creates `output` (which must be empty if it
    /// exists), and checks the two do not overlap.
    pub fn prepare(input: &Path, output: &Path) -> Result<Self, SandboxError> {
        if !input.is_dir() {
            return Err(SandboxError::NoInput(input.to_path_buf()));
        }
        std::fs::create_dir_all(output).map_err(io_err(output))?;
        let input = input.canonicalize().map_err(io_err(input))?;
        let output = output.canonicalize().map_err(io_err(output))?;
        if input.starts_with(&output) || output.starts_with(&input) {
            return Err(SandboxError::Overlap { input, output });
        }
        if std::fs::read_dir(&output)
            .map_err(io_err(&output))?
            .next()
            .is_some()
        {
            return Err(SandboxError::OutputNotEmpty(output));
        }
        Ok(JobDirs { input, output })
    }
}

/// Places each input of `spec` in `dir` under its name (hard-linked when
/// possible, else copied), after checking every digest: a mismatch refuses
/// the job before anything runs or is copied.
pub fn stage_inputs(spec: &crate::jobs::spec::JobSpec, dir: &Path) -> Result<(), SandboxError> {
    spec.verify_files()
        .map_err(|e| SandboxError::Input(e.to_string()))?;
    for input in &spec.inputs {
        let target = dir.join(&input.name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if std::fs::hard_link(&input.file.path, &target).is_err() {
            std::fs::copy(&input.file.path, &target).map_err(io_err(&target))?;
        }
    }
    Ok(())
}

/// One file a job produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputFile {
    /// Path relative to the output folder, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Content digest.
    pub sha256: Sha256Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_refuses_overlap_missing_input_and_non_empty_output()
    -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let input = root.path().join("in");
        std::fs::create_dir(&input)?;
        assert!(matches!(
            JobDirs::prepare(&root.path().join("nope"), &root.path().join("o")),
            Err(SandboxError::NoInput(_))
        ));
        assert!(matches!(
            JobDirs::prepare(&input, &input.join("out")),
            Err(SandboxError::Overlap { .. })
        ));
        assert!(matches!(
            JobDirs::prepare(&input, root.path()),
            Err(SandboxError::Overlap { .. })
        ));
        let out = root.path().join("out");
        std::fs::create_dir(&out)?;
        std::fs::write(out.join("old"), "x")?;
        assert!(matches!(
            JobDirs::prepare(&input, &out),
            Err(SandboxError::OutputNotEmpty(_))
        ));
        assert!(JobDirs::prepare(&input, &root.path().join("fresh")).is_ok());
        Ok(())
    }
}
