//! The local spool: a folder that is the embedded default job source, so a
//! worker runs jobs without any server.
//!
//! ```text
//! spool/
//!   incoming/<seq>-<id>.json   queued specs, taken in name (= submit) order
//!   tmp/                       where `submit` writes before renaming in
//!   running/<id>/              a claimed job: spec.json, input/, output/, checkpoint
//!   done/<id>/                 a finished job: spec.json, output/, result.json
//!   cancel/<id>                a request to cancel that job
//!   journal.jsonl              every state change (see `journal`)
//! ```
//!
//! Every move is a rename inside the spool (atomic on one file system), and
//! a job is finished by writing `result.json` in `running/<id>/` and then
//! renaming the folder to `done/<id>/`: a job is in exactly one place, and a
//! result is never half there.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pictor_runtime::jobs::outcome::JobOutcome;
use pictor_runtime::jobs::spec::{JobSpec, SpecError};

/// A spool operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file or folder could not be read or written.
    #[error("spool {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The submitted spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `--plugin` is not the plugin the spec names.
    #[error("sha256 mismatch for plugin {}: the spec names {expected}, the file is {actual}", path.display())]
    PluginMismatch {
        /// The plugin file.
        path: PathBuf,
        /// The spec's digest.
        expected: crate::digest::Sha256Digest,
        /// The file's digest.
        actual: crate::digest::Sha256Digest,
    },
    /// A job with this id is already queued, running or done.
    #[error("a job with id `{0}` is already in the spool; give the new job another id")]
    Duplicate(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A spool folder.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// A job claimed from the spool, with its folders.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job.
    pub spec: JobSpec,
    /// `running/<id>/`.
    pub dir: PathBuf,
}

impl Claimed {
    /// The job's input folder.
    pub fn input(&self) -> PathBuf {
        self.dir.join("input")
    }

    /// The job's output folder.
    pub fn output(&self) -> PathBuf {
        self.dir.join("output")
    }

    /// The job's checkpoint file.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
}

impl Spool {
    /// Opens the spool at `root`, creating its folders.
    pub fn open(root: &Path) -> Result<Self, SpoolError> {
        for sub in ["incoming", "tmp", "running", "done", "cancel"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(Spool {
            root: root.to_path_buf(),
        })
    }

    /// The spool folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The journal's path.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }

    /// Asks the worker to cancel job `id` (queued or running); false if no
    /// such job is queued or running.
    pub fn cancel(&self, id: &str) -> Result<bool, SpoolError> {
        let known = self.contains(id)? && !self.done_dir(id).exists();
        if known {
            let marker = self.root.join("cancel").join(id);
            std::fs::write(&marker, b"").map_err(io_err(&marker))?;
        }
        Ok(known)
    }

    /// Whether a cancel was requested for `id`.
    pub fn cancel_requested(&self, id: &str) -> bool {
        self.root.join("cancel").join(id).exists()
    }

    /// Forgets a cancel request once the job has ended.
    pub fn clear_cancel(&self, id: &str) {
        let _ = std::fs::remove_file(self.root.join("cancel").join(id));
    }

    /// `done/<id>/`.
    pub fn done_dir(&self, id: &str) -> PathBuf {
        self.root.join("done").join(id)
    }

    /// Whether a job with this id is queued, running or done.
    pub fn contains(&self, id: &str) -> Result<bool, SpoolError> {
        if self.root.join("running").join(id).exists() || self.done_dir(id).exists() {
            return Ok(true);
        }
        let incoming = self.root.join("incoming");
        for entry in std::fs::read_dir(&incoming).map_err(io_err(&incoming))? {
            let name = entry.map_err(io_err(&incoming))?.file_name();
            if name
                .to_string_lossy()
                .split_once('-')
                .is_some_and(|(_, rest)| rest == format!("{id}.json"))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Queues the spec in `spec_file` (validated, with its plugin and input
    /// paths made absolute) and returns where it was queued. With `plugin`,
    /// the spec's `plugin` is set to that file and its sha256 (a spec that
    /// names another digest is refused). The spec appears in `incoming/`
    /// whole or not at all.
    pub fn submit(&self, spec_file: &Path, plugin: Option<&Path>) -> Result<PathBuf, SpoolError> {
        let mut spec = JobSpec::from_file(spec_file)?;
        if let Some(path) = plugin {
            let path = path.canonicalize().map_err(io_err(path))?;
            let sha256 = crate::digest::Sha256Digest::of_file(&path).map_err(io_err(&path))?;
            if let Some(named) = &spec.plugin
                && named.sha256 != sha256
            {
                return Err(SpoolError::PluginMismatch {
                    path,
                    expected: named.sha256,
                    actual: sha256,
                });
            }
            spec.plugin = Some(pictor_runtime::jobs::spec::FileRef { path, sha256 });
        }
        self.enqueue(&spec)
    }

    /// Queues a validated spec whose plugin and input paths are absolute
    /// (how the network source hands the worker a leased job).
    pub fn enqueue(&self, spec: &JobSpec) -> Result<PathBuf, SpoolError> {
        if self.contains(&spec.id)? {
            return Err(SpoolError::Duplicate(spec.id.clone()));
        }
        let seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let target = self
            .root
            .join("incoming")
            .join(format!("{seq:024}-{}.json", spec.id));
        let tmp_dir = self.root.join("tmp");
        write_atomic(&tmp_dir, &target, &pretty_json(spec, &tmp_dir)?)?;
        Ok(target)
    }

    /// The oldest queued spec file, if any.
    pub fn next_incoming(&self) -> Result<Option<PathBuf>, SpoolError> {
        let incoming = self.root.join("incoming");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&incoming)
            .map_err(io_err(&incoming))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        Ok(names.into_iter().next())
    }

    /// Moves a queued spec to `running/<id>/` and returns the claimed job.
    /// A spec that does not parse is moved to `done/` as failed instead,
    /// and `None` is returned.
    pub fn claim(&self, incoming: &Path) -> Result<Option<Claimed>, SpoolError> {
        let spec = match JobSpec::from_file(incoming) {
            Ok(spec) => spec,
            Err(e) => {
                let name = incoming
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = self.root.join("done").join(format!("invalid-{name}"));
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                std::fs::write(dir.join("error.txt"), e.to_string()).map_err(io_err(&dir))?;
                std::fs::rename(incoming, dir.join("spec.json")).map_err(io_err(incoming))?;
                tracing::warn!(error = %e, "invalid job spec moved to {}", dir.display());
                return Ok(None);
            }
        };
        let dir = self.root.join("running").join(&spec.id);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        sync_dir(&self.root.join("running"));
        pictor_runtime::faults::crash_point("claim-after-mkdir");
        std::fs::rename(incoming, dir.join("spec.json")).map_err(io_err(incoming))?;
        sync_dir(&dir);
        sync_dir(&self.root.join("incoming"));
        pictor_runtime::faults::crash_point("claim-after-rename");
        Ok(Some(Claimed { spec, dir }))
    }

    /// Jobs left in `running/` (by a crash or a stop), to resume. A folder
    /// a crash left without its spec (killed between creating it and moving
    /// the spec in: the spec is still queued) is removed; one whose spec
    /// cannot be read is moved to `done/broken-<name>/` with the error: it
    /// never blocks start-up.
    pub fn running(&self) -> Result<Vec<Claimed>, SpoolError> {
        let running = self.root.join("running");
        let mut jobs = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&running)
            .map_err(io_err(&running))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        dirs.sort();
        for dir in dirs {
            let spec_file = dir.join("spec.json");
            if !spec_file.exists() {
                tracing::warn!(folder = %dir.display(), "removing a job folder a crash left without its spec (the spec is still queued)");
                pictor_runtime::jobs::tree::remove_all(&dir).map_err(io_err(&dir))?;
                continue;
            }
            match JobSpec::from_file(&spec_file) {
                Ok(spec) => jobs.push(Claimed { spec, dir }),
                Err(e) => {
                    let name = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let broken = self.root.join("done").join(format!("broken-{name}"));
                    tracing::warn!(folder = %dir.display(), error = %e, "unreadable job spec moved to {}", broken.display());
                    std::fs::rename(&dir, &broken).map_err(io_err(&dir))?;
                    std::fs::write(broken.join("error.txt"), e.to_string())
                        .map_err(io_err(&broken))?;
                }
            }
        }
        Ok(jobs)
    }

    /// Stores `outcome` as the job's result (and `proof`, if any, as
    /// `proof.json`) and moves the job to `done/<id>/`.
    pub fn finish(
        &self,
        job: &Claimed,
        outcome: &JobOutcome,
        proof: Option<&crate::proof::SignedProof>,
    ) -> Result<PathBuf, SpoolError> {
        if let Some(proof) = proof {
            write_atomic(
                &job.dir,
                &job.dir.join("proof.json"),
                &pretty_json(proof, &job.dir)?,
            )?;
        }
        write_atomic(
            &job.dir,
            &job.dir.join("result.json"),
            &pretty_json(outcome, &job.dir)?,
        )?;
        pictor_runtime::faults::crash_point("finish-after-result");
        self.publish(job)
    }

    /// Moves a job whose `result.json` is written to `done/<id>/`. Its
    /// staged inputs and its checkpoint go: the job has its result.
    pub fn publish(&self, job: &Claimed) -> Result<PathBuf, SpoolError> {
        let done = self.done_dir(&job.spec.id);
        let _ = pictor_runtime::jobs::tree::remove_all(&job.input());
        let _ = std::fs::remove_file(job.checkpoint());
        std::fs::rename(&job.dir, &done).map_err(io_err(&done))?;
        sync_dir(&self.root.join("done"));
        sync_dir(&self.root.join("running"));
        pictor_runtime::faults::crash_point("publish-after-rename");
        Ok(done)
    }

    /// Bytes the spool's jobs and journal take on disk now (the download
    /// cache in `cache/` has its own limit and is not counted).
    pub fn disk_usage(&self) -> u64 {
        let journal = std::fs::metadata(self.journal_path()).map_or(0, |m| m.len());
        ["incoming", "tmp", "running", "done", "cancel", "mining"]
            .iter()
            .map(|sub| pictor_runtime::jobs::tree::disk_usage(&self.root.join(sub)))
            .sum::<u64>()
            + journal
    }
}

/// `value` as pretty JSON, for a file in `dir`.
fn pretty_json<T: serde::Serialize>(value: &T, dir: &Path) -> Result<Vec<u8>, SpoolError> {
    serde_json::to_vec_pretty(value).map_err(|e| io_err(dir)(std::io::Error::other(e)))
}

/// Writes `bytes` to `target` through a temporary file in `tmp_dir`,
/// fsync'd before the rename.
pub(crate) fn write_atomic(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    use std::io::Write;
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).map_err(io_err(tmp_dir))?;
    tmp.write_all(bytes).map_err(io_err(target))?;
    tmp.as_file().sync_all().map_err(io_err(target))?;
    tmp.persist(target).map_err(|e| io_err(target)(e.error))?;
    if let Some(parent) = target.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Makes a rename in `dir` durable (best effort where unsupported).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_its_spec_never_blocks_start_up() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(&dir.path().join("spool"))?;
        std::fs::create_dir_all(spool.root().join("running/half-claimed"))?;
        std::fs::create_dir_all(spool.root().join("running/garbled"))?;
        std::fs::write(
            spool.root().join("running/garbled/spec.json"),
            "{not a spec",
        )?;
        assert!(spool.running()?.is_empty());
        assert!(!spool.root().join("running/half-claimed").exists());
        assert!(spool.root().join("done/broken-garbled/error.txt").exists());
        Ok(())
    }

    #[test]
    fn submit_claim_and_duplicate_ids() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(&dir.path().join("spool"))?;
        let spec = dir.path().join("job.json");
        std::fs::write(&spec, r#"{"version": 1, "id": "j1", "kind": "hello"}"#)?;
        let queued = spool.submit(&spec, None)?;
        assert!(matches!(
            spool.submit(&spec, None),
            Err(SpoolError::Duplicate(_))
        ));
        assert_eq!(spool.next_incoming()?, Some(queued.clone()));
        let claimed = spool.claim(&queued)?.ok_or("claim")?;
        assert_eq!(claimed.spec.id, "j1");
        assert_eq!(spool.next_incoming()?, None);
        assert_eq!(spool.running()?.len(), 1);
        assert!(
            matches!(spool.submit(&spec, None), Err(SpoolError::Duplicate(_))),
            "running ids are known too"
        );
        Ok(())
    }
}
