//! What has finished: the last [`RECENT`] jobs for the page (seeded from
//! the journal, so a restart still shows them), and counts and earnings
//! since the worker started (for the page and the metrics' counters).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::JobCount;
use crate::journal::FinishedJob;

/// How many finished jobs the page lists.
pub const RECENT: usize = 50;

/// A finished job as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// Job id.
    pub id: String,
    /// Job kind.
    pub kind: String,
    /// `succeeded`, `cancelled` or `failed: <failure kind>`.
    pub outcome: String,
    /// The failure's message, if it failed.
    pub reason: Option<String>,
    /// How long it ran, in seconds, if known.
    pub duration_s: Option<f64>,
    /// The config's price for its kind if it succeeded, else 0.
    pub reward: f64,
    /// When it finished, milliseconds since the Unix epoch.
    pub finished_at_ms: u64,
}

/// The finished jobs.
#[derive(Debug, Default)]
pub struct JobTally {
    recent: VecDeque<JobRow>,
    totals: BTreeMap<(String, &'static str), u64>,
    earnings: f64,
}

/// The metrics' outcome label: `succeeded`, `failed` or `cancelled`.
pub fn outcome_label(job: &FinishedJob) -> &'static str {
    if job.succeeded() {
        "succeeded"
    } else if job.failure.as_deref() == Some("cancelled") {
        "cancelled"
    } else {
        "failed"
    }
}

fn row(job: &FinishedJob, prices: &BTreeMap<String, f64>) -> JobRow {
    let outcome = match (outcome_label(job), &job.failure) {
        ("failed", Some(kind)) => format!("failed: {kind}"),
        (label, _) => label.to_string(),
    };
    let reward = if job.succeeded() {
        prices
            .get(&job.kind)
            .copied()
            .filter(|p| p.is_finite())
            .unwrap_or(0.0)
    } else {
        0.0
    };
    JobRow {
        id: job.job.clone(),
        kind: job.kind.clone(),
        outcome,
        reason: job.reason.clone(),
        duration_s: job.duration_s,
        reward,
        finished_at_ms: job.at_ms,
    }
}

impl JobTally {
    /// A tally listing `history` (oldest first), with nothing counted yet.
    pub fn new(history: &[FinishedJob], prices: &BTreeMap<String, f64>) -> Self {
        let skip = history.len().saturating_sub(RECENT);
        JobTally {
            recent: history[skip..].iter().map(|j| row(j, prices)).collect(),
            ..JobTally::default()
        }
    }

    /// Lists and counts `job`.
    pub fn record(&mut self, job: &FinishedJob, prices: &BTreeMap<String, f64>) {
        let row = row(job, prices);
        self.earnings += row.reward;
        *self
            .totals
            .entry((job.kind.clone(), outcome_label(job)))
            .or_default() += 1;
        self.recent.push_back(row);
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// The listed jobs, newest first.
    pub fn recent(&self) -> Vec<JobRow> {
        self.recent.iter().rev().cloned().collect()
    }

    /// Jobs counted since start, by kind and outcome.
    pub fn totals(&self) -> Vec<JobCount> {
        self.totals
            .iter()
            .map(|((kind, outcome), count)| JobCount {
                kind: kind.clone(),
                outcome: (*outcome).to_string(),
                count: *count,
            })
            .collect()
    }

    /// The rewards of jobs that succeeded since start.
    pub fn earnings(&self) -> f64 {
        self.earnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::finished;

    #[test]
    fn the_list_keeps_the_last_fifty_and_counts_since_start() {
        let prices = BTreeMap::from([("hello".to_string(), 0.5)]);
        let history: Vec<FinishedJob> = (0..60)
            .map(|i| finished(&format!("old-{i}"), "hello", None))
            .collect();
        let mut tally = JobTally::new(&history, &prices);
        assert_eq!(tally.recent().len(), RECENT);
        assert_eq!(tally.recent()[0].id, "old-59");
        assert_eq!((tally.earnings(), tally.totals()), (0.0, vec![]));
        tally.record(&finished("new", "hello", None), &prices);
        tally.record(&finished("unpriced", "probe", None), &prices);
        tally.record(&finished("bad", "hello", Some("trap")), &prices);
        assert_eq!(tally.recent().len(), RECENT);
        assert_eq!(tally.recent()[0].outcome, "failed: trap");
        assert_eq!(tally.recent()[1].reward, 0.0, "no price for probe jobs");
        assert_eq!(tally.earnings(), 0.5);
        let totals: Vec<(String, String, u64)> = tally
            .totals()
            .into_iter()
            .map(|c| (c.kind, c.outcome, c.count))
            .collect();
        assert_eq!(
            totals,
            [
                ("hello".into(), "failed".into(), 1),
                ("hello".into(), "succeeded".into(), 1),
                ("probe".into(), "succeeded".into(), 1)
            ]
        );
    }
}
