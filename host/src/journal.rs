//! The worker's journal: an append-only file of JSON lines, one per state
//! change, each written and fsync'd before the change is acted on, so that
//! after a crash (even `kill -9`) the worker knows what was claimed, started
//! and finished. A torn last line (a crash mid-write) is dropped on open.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The worker started (or restarted).
    WorkerStarted {
        /// Worker id.
        worker: String,
    },
    /// A job was taken from the queue.
    Claimed {
        /// Job id.
        job: String,
        /// Job kind.
        kind: String,
    },
    /// An attempt of a job started.
    Started {
        /// Job id.
        job: String,
        /// Attempt number (0 first).
        attempt: u32,
        /// Which configured GPU it runs on.
        #[serde(default)]
        gpu: usize,
    },
    /// A job ended and its result is stored; it will not run again.
    Finished {
        /// Job id.
        job: String,
        /// Attempt that finished it.
        attempt: u32,
        /// `succeeded` or `failed`.
        status: String,
        /// Failure reason, if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An attempt stopped without a result (worker stopping); the job stays
    /// queued and resumes from its checkpoint.
    Interrupted {
        /// Job id.
        job: String,
        /// The attempt that stopped.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Mining started (the worker was idle for the configured delay).
    MiningStarted {
        /// Which configured GPU mines.
        gpu: usize,
        /// The mining plugin's sha256.
        plugin: String,
    },
    /// Mining stopped.
    MiningStopped {
        /// Which configured GPU stopped mining.
        gpu: usize,
        /// `preempted` (a job was claimed), `stopping` (the worker stops) or
        /// `failed: <reason>`.
        reason: String,
        /// Milliseconds from the stop request (a job claimed) until the
        /// miner was gone and its GPU work drained.
        latency_ms: f64,
        /// The miner's last report (e.g. its hashrate).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        last_report: String,
        /// The run's hashrate when it stopped, in hashes per second.
        #[serde(default)]
        hashrate_hps: f64,
        /// Shares the pool accepted during the run.
        #[serde(default)]
        accepted: u64,
        /// Shares the pool rejected during the run.
        #[serde(default)]
        rejected: u64,
    },
    /// The worker stopped cleanly.
    WorkerStopped,
    /// A job was leased from the coordinator (its local id is the lease id).
    Leased {
        /// Lease id = local job id.
        job: String,
        /// The coordinator's job id.
        job_id: String,
        /// Job kind.
        kind: String,
    },
    /// A leased job's result was accepted by the coordinator.
    Reported {
        /// Lease id = local job id.
        job: String,
        /// `completed` or `failed` (the report sent).
        report: String,
        /// True if the coordinator had it already (a retry after a lost reply).
        #[serde(default)]
        duplicate: bool,
    },
    /// A leased job was dropped without a report: cancelled by its creator,
    /// its lease gone, or its report refused for good.
    Dropped {
        /// Lease id = local job id.
        job: String,
        /// Why.
        reason: String,
    },
}

/// A journal line: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The change.
    #[serde(flatten)]
    pub event: Event,
}

/// An open journal.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns its records.
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<Record>)> {
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let mut records = Vec::new();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            match serde_json::from_str::<Record>(line.trim_end()) {
                Ok(record) if line.ends_with('\n') => {
                    records.push(record);
                    good_len += n as u64;
                }
                _ => {
                    tracing::warn!(path = %path.display(), "dropping a torn or unreadable journal line (crash while writing)");
                    break;
                }
            }
        }
        drop(reader);
        if good_len < file.metadata()?.len() {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        file.seek(std::io::SeekFrom::End(0))?;
        Ok((Journal { file, path: path.to_path_buf() }, records))
    }

    /// Appends `event` and waits until it is on disk.
    pub fn append(&mut self, event: Event) -> std::io::Result<()> {
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut line = serde_json::to_vec(&Record { at_ms, event }).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A journal shared by the tasks of one worker process.
#[derive(Clone)]
pub struct SharedJournal(std::sync::Arc<std::sync::Mutex<Journal>>);

impl SharedJournal {
    /// Shares `journal`.
    pub fn new(journal: Journal) -> Self {
        SharedJournal(std::sync::Arc::new(std::sync::Mutex::new(journal)))
    }

    /// Appends `event` and waits until it is on disk; the error names the file.
    pub fn append(&self, event: Event) -> Result<(), JournalError> {
        let mut journal = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        journal.append(event).map_err(|source| JournalError { path: journal.path().to_path_buf(), source })
    }
}

/// The journal could not be written.
#[derive(Debug, thiserror::Error)]
#[error("journal {}: {source}", path.display())]
pub struct JournalError {
    /// The journal file.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

/// The last attempt number recorded for each job.
pub fn last_attempts(records: &[Record]) -> std::collections::HashMap<String, u32> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Started { job, attempt, .. } | Event::Interrupted { job, attempt, .. } => Some((job.clone(), *attempt)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_a_torn_line_is_dropped() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("journal.jsonl");
        let (mut journal, records) = Journal::open(&path)?;
        assert!(records.is_empty());
        journal.append(Event::Started { job: "a".into(), attempt: 0, gpu: 0 })?;
        journal.append(Event::Interrupted { job: "a".into(), attempt: 0, reason: "stopping".into() })?;
        drop(journal);
        std::fs::OpenOptions::new().append(true).open(&path)?.write_all(b"{\"at_ms\": 1, \"event\": \"sta")?;

        let (mut journal, records) = Journal::open(&path)?;
        assert_eq!(records.len(), 2);
        assert_eq!(last_attempts(&records).get("a"), Some(&0));
        journal.append(Event::Started { job: "a".into(), attempt: 1, gpu: 0 })?;
        let (_, records) = Journal::open(&path)?;
        assert_eq!(records.len(), 3, "the torn line was cut off before appending");
        assert_eq!(last_attempts(&records).get("a"), Some(&1));
        Ok(())
    }
}
