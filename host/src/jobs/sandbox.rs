//! A job's folders on the host, and what the plugin left in `/output`.
//!
//! The plugin sees `input` as `/input` (read-only) and `output` as `/output`
//! (read-write) through WASI preopens; the two must be separate folders, not
//! nested, so write access to one never reaches the other. After the run,
//! every entry in `output` is checked without following links: outputs are
//! regular files and folders only, within the job's size and count quota.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Sha256Digest;
use crate::jobs::limits::JobLimits;

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
    /// The plugin left something in `/output` that is not a regular file or folder.
    #[error("the plugin created `{0}` in /output, which is not a regular file or folder (removed)")]
    NotRegular(String),
    /// The plugin wrote more than its quota.
    #[error("output quota exceeded: {0}")]
    Quota(String),
    /// An input named by the spec is missing or does not match its digest.
    #[error("{0}")]
    Input(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io { path: path.to_path_buf(), source }
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
        if std::fs::read_dir(&output).map_err(io_err(&output))?.next().is_some() {
            return Err(SandboxError::OutputNotEmpty(output));
        }
        Ok(JobDirs { input, output })
    }
}

/// Places each input of `spec` in `dir` under its name (hard-linked when
/// possible, else copied), after checking every digest: a mismatch refuses
/// the job before anything runs or is copied.
pub fn stage_inputs(spec: &crate::jobs::spec::JobSpec, dir: &Path) -> Result<(), SandboxError> {
    spec.verify_files().map_err(|e| SandboxError::Input(e.to_string()))?;
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

/// How much is in an output folder.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Sum of apparent file sizes (a sparse file counts at its full length).
    pub bytes: u64,
    /// Files, folders and other entries.
    pub entries: u64,
}

impl Usage {
    /// Which quota this usage breaks, if any.
    pub fn over(&self, limits: &JobLimits) -> Option<String> {
        if self.bytes > limits.output_bytes {
            Some(format!("{} bytes written, the limit is {} bytes", self.bytes, limits.output_bytes))
        } else if self.entries > limits.output_files {
            Some(format!("{} files and folders created, the limit is {}", self.entries, limits.output_files))
        } else {
            None
        }
    }
}

/// Measures `dir` without following links, stopping early once `stop_after`
/// is exceeded (so a file bomb cannot make the walk itself expensive).
pub fn usage(dir: &Path, stop_after: &JobLimits) -> std::io::Result<Usage> {
    let mut usage = Usage::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            usage.entries += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                usage.bytes = usage.bytes.saturating_add(meta.len());
            }
            if usage.over(stop_after).is_some() {
                return Ok(usage);
            }
        }
    }
    Ok(usage)
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

/// Lists and hashes every output file, sorted by path. Symlinks, devices and
/// other non-regular entries are removed and reported as an error, so nothing
/// downstream can be tricked into reading outside the sandbox.
pub fn collect_outputs(dir: &Path, limits: &JobLimits) -> Result<Vec<OutputFile>, SandboxError> {
    let used = usage(dir, limits).map_err(io_err(dir))?;
    if let Some(what) = used.over(limits) {
        return Err(SandboxError::Quota(what));
    }
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io_err(&folder))? {
            let entry = entry.map_err(io_err(&folder))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let meta = path.symlink_metadata().map_err(io_err(&path))?;
            if meta.is_dir() {
                pending.push((path, relative));
            } else if meta.is_file() {
                let sha256 = Sha256Digest::of_file(&path).map_err(io_err(&path))?;
                files.push(OutputFile { path: relative, size: meta.len(), sha256 });
            } else {
                let _ = std::fs::remove_file(&path);
                return Err(SandboxError::NotRegular(relative));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_refuses_overlap_missing_input_and_non_empty_output() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let input = root.path().join("in");
        std::fs::create_dir(&input)?;
        assert!(matches!(JobDirs::prepare(&root.path().join("nope"), &root.path().join("o")), Err(SandboxError::NoInput(_))));
        assert!(matches!(JobDirs::prepare(&input, &input.join("out")), Err(SandboxError::Overlap { .. })));
        assert!(matches!(JobDirs::prepare(&input, root.path()), Err(SandboxError::Overlap { .. })));
        let out = root.path().join("out");
        std::fs::create_dir(&out)?;
        std::fs::write(out.join("old"), "x")?;
        assert!(matches!(JobDirs::prepare(&input, &out), Err(SandboxError::OutputNotEmpty(_))));
        assert!(JobDirs::prepare(&input, &root.path().join("fresh")).is_ok());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_hashed_and_symlinks_are_removed_not_followed() -> Result<(), Box<dyn std::error::Error>> {
        let out = tempfile::tempdir()?;
        std::fs::create_dir(out.path().join("d"))?;
        std::fs::write(out.path().join("d/a"), "abc")?;
        let files = collect_outputs(out.path(), &JobLimits::default())?;
        assert_eq!(files, vec![OutputFile { path: "d/a".into(), size: 3, sha256: Sha256Digest::of(b"abc") }]);

        std::os::unix::fs::symlink("/etc/passwd", out.path().join("leak"))?;
        let err = collect_outputs(out.path(), &JobLimits::default()).unwrap_err();
        assert!(matches!(err, SandboxError::NotRegular(ref p) if p == "leak"), "{err}");
        assert!(out.path().join("leak").symlink_metadata().is_err(), "symlink must be removed");
        Ok(())
    }

    #[test]
    fn quota_counts_sparse_files_at_full_length() -> Result<(), Box<dyn std::error::Error>> {
        let out = tempfile::tempdir()?;
        let f = std::fs::File::create(out.path().join("sparse"))?;
        f.set_len(10 << 30)?;
        let err = collect_outputs(out.path(), &JobLimits::default()).unwrap_err();
        assert!(matches!(err, SandboxError::Quota(_)), "{err}");
        Ok(())
    }
}
