//! The worker's journal: an append-only file of JSON lines, one per state
//! change, each written and fsync'd before the change is acted on, so that
//! after a crash (even `kill -9`) the worker knows what was claimed, started
//! and finished. A torn last line (a crash mid-write) is dropped on open; an
//! unreadable line elsewhere is skipped with a warning, never the records
//! after it.

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
        /// Job kind (absent in journals written before it was recorded here).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// The failure's kind (`timed-out`, `cancelled`, …), if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
        /// How long the attempt ran, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
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
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut records = Vec::new();
        let mut whole_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.last() != Some(&b'\n') {
                // Only the last line can lack its newline: a crash mid-write.
                tracing::warn!(path = %path.display(), line = number, "dropping a torn last journal line (crash while writing)");
                break;
            }
            whole_len += n as u64;
            match serde_json::from_slice::<Record>(&line) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::warn!(path = %path.display(), line = number, %error, "skipping an unreadable journal line")
                }
            }
        }
        drop(reader);
        if whole_len < file.metadata()?.len() {
            file.set_len(whole_len)?;
            file.sync_all()?;
        }
        file.seek(std::io::SeekFrom::End(0))?;
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            records,
        ))
    }

    /// Appends `event` and waits until it is on disk.
    pub fn append(&mut self, event: Event) -> std::io::Result<()> {
        let at_ms = now_ms();
        let mut line =
            serde_json::to_vec(&Record { at_ms, event }).map_err(std::io::Error::other)?;
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
        let mut journal = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        journal.append(event).map_err(|source| JournalError {
            path: journal.path().to_path_buf(),
            source,
        })
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

/// Milliseconds since the Unix epoch, now (the journal's clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A job that ended with a stored result, as the owner's status lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedJob {
    /// Job id (the lease id for leased jobs).
    pub job: String,
    /// Job kind (empty if the journal does not say).
    pub kind: String,
    /// `succeeded`, `failed`, or `recovered` (a result found after a crash).
    pub status: String,
    /// The failure's kind (`timed-out`, `cancelled`, …), if it failed.
    pub failure: Option<String>,
    /// The failure's message, if it failed.
    pub reason: Option<String>,
    /// How long it ran, in seconds, if known.
    pub duration_s: Option<f64>,
    /// When it finished, milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl FinishedJob {
    /// Whether it succeeded (a result found after a crash, `recovered`,
    /// counts by its failure).
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
            || (self.status == "recovered" && self.failure.is_none() && self.reason.is_none())
    }
}

/// The last `limit` finished jobs in `records`, oldest first. The kind
/// comes from the job's `claimed` (or `leased`) record and the duration
/// from its last `started` record where the `finished` record lacks them.
pub fn finished_jobs(records: &[Record], limit: usize) -> Vec<FinishedJob> {
    let mut kinds = std::collections::HashMap::new();
    let mut started = std::collections::HashMap::new();
    let mut finished = std::collections::VecDeque::new();
    for record in records {
        match &record.event {
            Event::Claimed { job, kind } | Event::Leased { job, kind, .. } => {
                kinds.insert(job.clone(), kind.clone());
            }
            Event::Started { job, .. } => {
                started.insert(job.clone(), record.at_ms);
            }
            Event::Finished {
                job,
                status,
                reason,
                kind,
                failure,
                duration_s,
                ..
            } => {
                let duration_s = duration_s.or_else(|| {
                    started
                        .get(job)
                        .map(|t: &u64| record.at_ms.saturating_sub(*t) as f64 / 1000.0)
                });
                finished.push_back(FinishedJob {
                    job: job.clone(),
                    kind: kind
                        .clone()
                        .or_else(|| kinds.get(job).cloned())
                        .unwrap_or_default(),
                    status: status.clone(),
                    failure: failure.clone(),
                    reason: reason.clone(),
                    duration_s,
                    at_ms: record.at_ms,
                });
                if finished.len() > limit {
                    finished.pop_front();
                }
            }
            _ => {}
        }
    }
    finished.into()
}

/// How the jobs' attempts ended, by the journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AttemptEnds {
    /// Per job, the attempts that never ended (the worker died while they
    /// ran: a crash, a kill, a power cut).
    pub crashes: std::collections::HashMap<String, u32>,
    /// The jobs whose last attempt is one of them.
    pub unfinished: Vec<String>,
}

/// Counts, per job, the attempts that started and never finished or were
/// interrupted, and names the jobs still open at the journal's end.
pub fn attempt_ends(records: &[Record]) -> AttemptEnds {
    let mut open = std::collections::BTreeMap::<&str, bool>::new();
    let mut ends = AttemptEnds::default();
    for record in records {
        match &record.event {
            Event::Started { job, .. } => {
                let was_open = open.insert(job, true) == Some(true);
                if was_open {
                    *ends.crashes.entry(job.clone()).or_insert(0) += 1;
                }
            }
            Event::Finished { job, .. } | Event::Interrupted { job, .. } => {
                open.insert(job, false);
            }
            _ => {}
        }
    }
    for (job, running) in open {
        if running {
            *ends.crashes.entry(job.to_string()).or_insert(0) += 1;
            ends.unfinished.push(job.to_string());
        }
    }
    ends
}

/// The last attempt number recorded for each job.
pub fn last_attempts(records: &[Record]) -> std::collections::HashMap<String, u32> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Started { job, attempt, .. } | Event::Interrupted { job, attempt, .. } => {
                Some((job.clone(), *attempt))
            }
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
        journal.append(Event::Started {
            job: "a".into(),
            attempt: 0,
            gpu: 0,
        })?;
        journal.append(Event::Interrupted {
            job: "a".into(),
            attempt: 0,
            reason: "stopping".into(),
        })?;
        drop(journal);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)?
            .write_all(b"{\"at_ms\": 1, \"event\": \"sta")?;

        let (mut journal, records) = Journal::open(&path)?;
        assert_eq!(records.len(), 2);
        assert_eq!(last_attempts(&records).get("a"), Some(&0));
        journal.append(Event::Started {
            job: "a".into(),
            attempt: 1,
            gpu: 0,
        })?;
        let (_, records) = Journal::open(&path)?;
        assert_eq!(
            records.len(),
            3,
            "the torn line was cut off before appending"
        );
        assert_eq!(last_attempts(&records).get("a"), Some(&1));
        Ok(())
    }

    #[test]
    fn attempts_that_never_ended_are_counted_as_crashes() {
        let record = |event| Record { at_ms: 0, event };
        let started = |job: &str, attempt| {
            record(Event::Started {
                job: job.into(),
                attempt,
                gpu: 0,
            })
        };
        let records = vec![
            started("a", 0),
            started("a", 1),
            record(Event::Interrupted {
                job: "a".into(),
                attempt: 1,
                reason: "stopping".into(),
            }),
            started("a", 2),
            started("b", 0),
            record(Event::Finished {
                job: "b".into(),
                attempt: 0,
                status: "succeeded".into(),
                reason: None,
                kind: None,
                failure: None,
                duration_s: None,
            }),
        ];
        let ends = attempt_ends(&records);
        assert_eq!(
            ends.crashes.get("a"),
            Some(&2),
            "attempt 0 and the last attempt never ended"
        );
        assert_eq!(ends.crashes.get("b"), None);
        assert_eq!(ends.unfinished, ["a"]);
    }

    #[test]
    fn a_bad_line_in_the_middle_loses_only_itself() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("journal.jsonl");
        let (mut journal, _) = Journal::open(&path)?;
        journal.append(Event::Started {
            job: "a".into(),
            attempt: 0,
            gpu: 0,
        })?;
        drop(journal);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)?
            .write_all(b"{not json at all\n\xff\xfe\n")?;
        let (mut journal, _) = Journal::open(&path)?;
        journal.append(Event::Interrupted {
            job: "a".into(),
            attempt: 0,
            reason: "stopping".into(),
        })?;
        drop(journal);
        let (_, records) = Journal::open(&path)?;
        assert_eq!(
            records.len(),
            2,
            "the records on both sides of the bad lines are kept"
        );
        assert!(matches!(records[1].event, Event::Interrupted { .. }));
        Ok(())
    }

    #[test]
    fn finished_jobs_take_kind_and_duration_from_earlier_records() {
        let record = |at_ms, event| Record { at_ms, event };
        let finished = |job: &str, kind: Option<&str>, status: &str, duration_s| Event::Finished {
            job: job.into(),
            attempt: 0,
            status: status.into(),
            reason: None,
            kind: kind.map(Into::into),
            failure: (status == "failed").then(|| "timed-out".to_string()),
            duration_s,
        };
        let records = vec![
            record(
                1_000,
                Event::Claimed {
                    job: "old".into(),
                    kind: "render".into(),
                },
            ),
            record(
                2_000,
                Event::Started {
                    job: "old".into(),
                    attempt: 0,
                    gpu: 0,
                },
            ),
            // A journal line from before `kind` and `duration_s` were written.
            record(4_500, finished("old", None, "succeeded", None)),
            record(
                5_000,
                Event::Claimed {
                    job: "new".into(),
                    kind: "hello".into(),
                },
            ),
            record(6_000, finished("new", Some("hello"), "failed", Some(0.25))),
            record(
                7_000,
                finished("third", Some("probe"), "succeeded", Some(1.0)),
            ),
        ];
        let all = finished_jobs(&records, 50);
        assert_eq!(all.len(), 3);
        assert_eq!(
            (all[0].kind.as_str(), all[0].duration_s, all[0].succeeded()),
            ("render", Some(2.5), true)
        );
        assert_eq!(
            (
                all[1].kind.as_str(),
                all[1].failure.as_deref(),
                all[1].at_ms
            ),
            ("hello", Some("timed-out"), 6_000)
        );
        let last_two = finished_jobs(&records, 2);
        assert_eq!(
            last_two.iter().map(|j| j.job.as_str()).collect::<Vec<_>>(),
            ["new", "third"]
        );
    }
}
