//! The heartbeat: every `heartbeat_interval_s`, tell the coordinator what
//! the worker does and which leases it holds (with progress), which extends
//! them; a lease the coordinator calls `cancelled` or `gone` is dropped
//! (its job cancelled locally, nothing reported).

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use pictor_protocol::api::{Heartbeat, LeaseProgress, LeaseState, MiningFigures};

use super::backoff::Backoff;
use super::ledger::LeaseStep;
use super::{Connection, NetworkError, NetworkSource};

impl NetworkSource {
    /// The heartbeat loop; ends when `stop` fires.
    pub(super) async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut timing = self.timing.subscribe();
        let mut backoff = Backoff::coordinator();
        loop {
            let interval = timing
                .borrow_and_update()
                .as_ref()
                .map(|t| Duration::from_secs(u64::from(t.heartbeat_interval_s.max(1))));
            let Some(interval) = interval else {
                // Not registered yet.
                tokio::select! {
                    _ = timing.changed() => continue,
                    () = stop.cancelled() => return,
                }
            };
            let delay = match self.beat().await {
                Ok(()) => {
                    backoff.reset();
                    interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed");
                    backoff.next_delay().min(interval)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// One heartbeat.
    async fn beat(&self) -> Result<(), NetworkError> {
        let entries = self.entries()?;
        let running = self.worker.running.borrow().clone();
        let held: Vec<_> = entries
            .into_iter()
            .filter(|e| matches!(e.step, LeaseStep::Fetching | LeaseStep::Queued))
            .collect();
        let leases = held
            .iter()
            .map(|e| {
                let id = &e.lease.lease_id;
                let (fraction, message) = match running.get(id) {
                    Some(job) => (job.progress.fraction, job.progress.message.clone()),
                    None if self.is_done(id) => (1.0, "finished; reporting".to_string()),
                    None if e.step == LeaseStep::Fetching => (0.0, "downloading".to_string()),
                    None => (0.0, "queued".to_string()),
                };
                LeaseProgress {
                    lease_id: id.clone(),
                    fraction,
                    message,
                }
            })
            .collect();
        let activity = match self.worker.activity.borrow().as_ref() {
            None => "idle",
            Some(a) if a.label == "mining" => "mining",
            Some(_) => "job",
        };
        // Any GPU mining (with several GPUs, one may mine while another runs a job).
        let mining = self
            .worker
            .mining
            .borrow()
            .as_ref()
            .and_then(mining_figures);
        let heartbeat = Heartbeat {
            activity: activity.to_string(),
            leases,
            mining,
            gpus: self.gpu_health(),
        };
        let reply = match self
            .client
            .heartbeat(&self.registration.worker_id, &heartbeat)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                self.note_error(&e);
                // Transient or not, the other loops deal with it; the
                // heartbeat just tries again.
                return Ok(());
            }
        };
        if self.status.borrow().connection != Connection::Connected {
            self.set_connection(Connection::Connected);
        }
        for status in reply.leases {
            let reason = match status.state {
                LeaseState::Active => continue,
                LeaseState::Cancelled => "the creator cancelled the job",
                LeaseState::Gone => {
                    "the coordinator ended the lease (expired and reassigned, or done elsewhere)"
                }
            };
            if let Some(entry) = held.iter().find(|e| e.lease.lease_id == status.lease_id) {
                self.drop_lease(entry.clone(), reason.to_string())?;
            }
        }
        Ok(())
    }
}

/// The miner's figures for the coordinator, while a miner runs.
fn mining_figures(stats: &crate::mining::MiningSummary) -> Option<MiningFigures> {
    (stats.miners > 0).then(|| MiningFigures {
        coin: stats.coin.clone(),
        pool: stats.pool.clone(),
        hashrate: if stats.hashrate_hps.is_finite() {
            stats.hashrate_hps.max(0.0)
        } else {
            0.0
        },
        accepted: stats.accepted,
        rejected: stats.rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::MiningSummary;

    #[test]
    fn heartbeats_carry_the_miners_figures_only_while_one_runs() {
        let mut stats = MiningSummary {
            pool: "pool.example:3333".into(),
            coin: "btc".into(),
            accepted: 7,
            rejected: 1,
            ..MiningSummary::default()
        };
        assert_eq!(mining_figures(&stats), None, "no miner runs");
        stats.miners = 1;
        stats.hashrate_hps = 6.41e6;
        let figures = mining_figures(&stats).unwrap();
        assert_eq!(
            figures,
            MiningFigures {
                coin: "btc".into(),
                pool: "pool.example:3333".into(),
                hashrate: 6.41e6,
                accepted: 7,
                rejected: 1
            }
        );
        stats.hashrate_hps = f64::NAN;
        assert_eq!(mining_figures(&stats).unwrap().hashrate, 0.0);
    }
}
