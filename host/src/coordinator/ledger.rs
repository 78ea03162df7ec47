//! The lease ledger: one small JSON file per lease in hand, in
//! `<spool>/network/leases/<lease id>.json`, replaced atomically at each
//! step. With the spool and the journal it tells a restarted worker what
//! it owes the coordinator: leases still to fetch, jobs to run, results to
//! report. An entry is removed only once its report was accepted (or the
//! lease was dropped and its job is no longer running).

use std::path::{Path, PathBuf};

use pictor_protocol::api::Lease;
use serde::{Deserialize, Serialize};

use crate::spool::write_atomic;

/// Where a lease is in its life on this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseStep {
    /// Granted; plugin and inputs are being downloaded.
    Fetching,
    /// In the spool (queued, running, or done and not yet reported).
    Queued,
    /// Cancelled by its creator or gone at the coordinator: its job is
    /// cancelled locally and nothing is reported.
    Dropped,
    /// Its plugin or inputs could not be downloaded: reported as a
    /// retryable failure (another worker may succeed).
    FetchFailed,
    /// The lease itself is invalid (bad limits, input names): reported as a
    /// failure that no retry fixes.
    Invalid,
}

/// One lease in hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The lease as granted.
    pub lease: Lease,
    /// Its step.
    pub step: LeaseStep,
    /// Why it was dropped, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The ledger folder.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Ledger {
    /// Opens (creating) the ledger of the spool at `spool_root`.
    pub fn open(spool_root: &Path) -> std::io::Result<Self> {
        let dir = spool_root.join("network").join("leases");
        let tmp = spool_root.join("tmp");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&tmp)?;
        Ok(Ledger { dir, tmp })
    }

    fn path(&self, lease_id: &str) -> PathBuf {
        self.dir.join(format!("{lease_id}.json"))
    }

    /// Writes `entry` (durably, whole or not at all).
    pub fn put(&self, entry: &LedgerEntry) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
        write_atomic(&self.tmp, &self.path(&entry.lease.lease_id), &bytes)
            .map_err(std::io::Error::other)
    }

    /// The entry of `lease_id`, if any.
    pub fn get(&self, lease_id: &str) -> std::io::Result<Option<LedgerEntry>> {
        match std::fs::read(self.path(lease_id)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every entry, in lease-id order; unreadable files are skipped with a
    /// warning (they are never ours to delete silently).
    pub fn entries(&self) -> std::io::Result<Vec<LedgerEntry>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut entries = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                // Settled and removed since the listing: not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable lease ledger entry skipped");
                    continue;
                }
            };
            match serde_json::from_slice(&bytes) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "malformed lease ledger entry skipped")
                }
            }
        }
        Ok(entries)
    }

    /// Forgets `lease_id`.
    pub fn remove(&self, lease_id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(lease_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_protocol::api::BlobRef;
    use pictor_protocol::digest::Sha256Digest;

    #[test]
    fn entries_round_trip_and_are_removed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ledger = Ledger::open(dir.path())?;
        let lease = Lease {
            lease_id: "job-1.0".into(),
            job_id: "job-1".into(),
            kind: "hello".into(),
            attempt: 0,
            expires_in_s: 60,
            plugin: BlobRef {
                sha256: Sha256Digest::of(b"p"),
                size: 1,
            },
            inputs: Vec::new(),
            params: serde_json::json!({"a": 1}),
            seed: 3,
            limits: serde_json::json!({}),
            price: None,
        };
        let mut entry = LedgerEntry {
            lease,
            step: LeaseStep::Fetching,
            reason: None,
        };
        ledger.put(&entry)?;
        entry.step = LeaseStep::Queued;
        ledger.put(&entry)?;
        assert_eq!(Ledger::open(dir.path())?.entries()?, vec![entry.clone()]);
        assert_eq!(ledger.get("job-1.0")?, Some(entry));
        ledger.remove("job-1.0")?;
        ledger.remove("job-1.0")?;
        assert!(ledger.entries()?.is_empty());
        Ok(())
    }
}
