//! Helpers for the job's `/input` and `/output` folders.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::error::JobError;
use crate::job::Job;

impl Job {
    /// Every file under the input folder, as `/`-separated paths relative to
    /// it, sorted (so the order, and anything derived from it, is stable).
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// std::fs::create_dir(host.input_dir().join("sub"))?;
    /// std::fs::write(host.input_dir().join("sub/b.txt"), "b")?;
    /// std::fs::write(host.input_dir().join("a.txt"), "a")?;
    /// assert_eq!(host.job("{}").input_files()?, vec!["a.txt", "sub/b.txt"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input_files(&self) -> Result<Vec<String>, JobError> {
        let mut files = Vec::new();
        collect_files(self.input_dir(), "", &mut files)?;
        files.sort();
        Ok(files)
    }

    /// The path of input `name` (relative, `/`-separated, no `..`).
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let job = host.job("{}");
    /// assert!(job.input_path("scene.glb")?.ends_with("scene.glb"));
    /// assert!(job.input_path("../etc/passwd").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input_path(&self, name: &str) -> Result<PathBuf, JobError> {
        Ok(self
            .input_dir()
            .join(checked_relative(name).map_err(JobError::InvalidInput)?))
    }

    /// Reads input `name` whole. A missing file is
    /// [`JobError::InvalidInput`] naming it.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// std::fs::write(host.input_dir().join("a.txt"), "hello")?;
    /// let job = host.job("{}");
    /// assert_eq!(job.read_input("a.txt")?, b"hello");
    /// assert!(job.read_input("missing.txt").unwrap_err().to_string().contains("missing.txt"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_input(&self, name: &str) -> Result<Vec<u8>, JobError> {
        let path = self.input_path(name)?;
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                JobError::InvalidInput(format!("input `{name}` not found"))
            }
            _ => JobError::Io(format!("cannot read input `{name}`: {e}")),
        })
    }

    /// The path for output `name`, creating its parent folders.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// let path = host.job("{}").output_path("frames/0001.png")?;
    /// assert!(path.parent().unwrap().is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output_path(&self, name: &str) -> Result<PathBuf, JobError> {
        let relative = checked_relative(name).map_err(JobError::Io)?;
        let path = self.output_dir().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| {
                JobError::Io(format!("cannot create folder for output `{name}`: {e}"))
            })?;
        }
        Ok(path)
    }

    /// Writes output `name` whole, creating its parent folders.
    ///
    /// ```
    /// # let host = pictor_sdk::testing::TestHost::new()?;
    /// host.job("{}").write_output("out/result.txt", b"42")?;
    /// assert_eq!(std::fs::read(host.output_dir().join("out/result.txt"))?, b"42");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_output(&self, name: &str, data: &[u8]) -> Result<(), JobError> {
        let path = self.output_path(name)?;
        fs::write(&path, data)
            .map_err(|e| JobError::Io(format!("cannot write output `{name}`: {e}")))
    }
}

/// `name` as a relative path that stays inside its folder.
fn checked_relative(name: &str) -> Result<PathBuf, String> {
    let path = Path::new(name);
    if name.is_empty() {
        return Err("empty file name".to_string());
    }
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(format!("`{name}` must be a relative path without `..`")),
        }
    }
    Ok(path.to_path_buf())
}

fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), JobError> {
    let entries = fs::read_dir(dir)
        .map_err(|e| JobError::Io(format!("cannot list `{}`: {e}", dir.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| JobError::Io(format!("cannot list `{}`: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // Follows symlinks that stay inside the folder; the sandbox refuses
        // the others, and such entries are skipped rather than failing the job.
        let Ok(meta) = fs::metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            collect_files(&entry.path(), &relative, out)?;
        } else if meta.is_file() {
            out.push(relative);
        }
    }
    Ok(())
}
