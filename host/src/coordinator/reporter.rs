//! The reporter: for every lease whose job has its result in the spool,
//! upload the outputs the coordinator lacks, then `complete` (or `fail`)
//! with the signed proof; retried with backoff until the coordinator
//! answers. The ledger entry goes only after an answer, so a report is
//! never lost, and the coordinator's idempotent complete makes a retry
//! after a lost reply count once.

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use pictor_protocol::api::{CompleteReply, CompleteRequest, ErrorCode, FailRequest};
use pictor_protocol::proof::SignedProof;

use super::backoff::Backoff;
use super::client::ClientError;
use super::leaser::not_run;
use super::ledger::{LeaseStep, LedgerEntry};
use super::{Connection, NetworkError, NetworkSource};
use crate::journal::Event;

/// How often the reporter looks for finished jobs (it is also woken
/// whenever the worker stores a result).
const SCAN_INTERVAL: Duration = Duration::from_millis(500);

/// How long a stopping worker keeps trying to report.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// What one report attempt came to.
enum Reported {
    /// The coordinator answered; the entry is settled.
    Settled,
    /// Nothing to do yet (the job is still running).
    NotYet,
}

impl NetworkSource {
    /// The report loop; returns the number of results left unreported
    /// when `stop` fires (after a short final flush).
    pub(super) async fn report_loop(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> Result<usize, NetworkError> {
        let mut backoff = Backoff::coordinator();
        let mut flush_until = None;
        let mut finished = self.worker.finished.clone();
        loop {
            let stopping = stop.is_cancelled();
            if stopping && self.revoked() {
                // No report can pass any more: keep every result for the
                // next credential.
                let kept = self
                    .entries()?
                    .iter()
                    .filter(|e| {
                        e.step != LeaseStep::Fetching
                            && (e.step != LeaseStep::Queued || self.is_done(&e.lease.lease_id))
                    })
                    .count();
                self.status.send_modify(|s| s.unreported = kept);
                return Ok(kept);
            }
            if stopping && flush_until.is_none() {
                flush_until = Some(tokio::time::Instant::now() + FINAL_FLUSH);
            }
            let mut failed = false;
            let mut unreported = 0;
            for entry in self.entries()? {
                match self.report(entry).await {
                    Ok(Reported::Settled) => {}
                    Ok(Reported::NotYet) => {}
                    Err(ReportError::Network(e)) => {
                        self.note_error(&e);
                        failed = true;
                        unreported += 1;
                        break;
                    }
                    Err(ReportError::Local(e)) => return Err(e),
                }
            }
            let waiting = self
                .entries()?
                .iter()
                .filter(|e| {
                    e.step != LeaseStep::Fetching
                        && (e.step != LeaseStep::Queued || self.is_done(&e.lease.lease_id))
                })
                .count();
            self.status.send_modify(|s| s.unreported = waiting);
            if stopping
                && (waiting == 0 || flush_until.is_some_and(|t| tokio::time::Instant::now() >= t))
            {
                return Ok(waiting.max(unreported));
            }
            let delay = if failed {
                backoff.next_delay()
            } else {
                backoff.reset();
                SCAN_INTERVAL
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = finished.changed(), if !failed => {}
                () = stop.cancelled(), if !stopping => {}
            }
        }
    }

    /// Reports `entry` if its job has ended.
    async fn report(&self, entry: LedgerEntry) -> Result<Reported, ReportError> {
        let id = entry.lease.lease_id.clone();
        match entry.step {
            LeaseStep::Fetching => Ok(Reported::NotYet),
            LeaseStep::Dropped => {
                if self.is_pending(&id) {
                    return Ok(Reported::NotYet); // its cancel is under way
                }
                self.unpin(&id);
                self.log(Event::Dropped {
                    job: id.clone(),
                    reason: entry.reason.unwrap_or_default(),
                })?;
                self.ledger.remove(&id).map_err(|e| self.ledger_error(e))?;
                Ok(Reported::Settled)
            }
            LeaseStep::FetchFailed | LeaseStep::Invalid => {
                let request = not_run(entry.step, entry.reason.as_deref().unwrap_or("not run"));
                let reply = self.client.fail(&id, &request).await;
                self.settle(&id, "failed", reply)
            }
            LeaseStep::Queued => {
                if !self.is_done(&id) {
                    return Ok(Reported::NotYet);
                }
                self.unpin(&id);
                let done = self.spool.done_dir(&id);
                let proof: SignedProof =
                    read_json(&done.join("proof.json")).map_err(|e| self.ledger_error(e))?;
                if proof.manifest.status == "succeeded" {
                    if let Err(e) = self.upload_outputs(&proof, &done.join("output")).await {
                        return match e {
                            ReportError::Network(e) => self.settle(&id, "completed", Err(e)),
                            local => Err(local),
                        };
                    }
                    let request = CompleteRequest { proof };
                    let mut reply = self.client.complete(&id, &request).await;
                    if let Err(ClientError::Api { body, .. }) = &reply
                        && body.error == ErrorCode::MissingBlobs
                    {
                        // Outputs vanished at the coordinator between the
                        // check and the complete: upload all, once more.
                        tracing::warn!(lease = %id, missing = body.missing.len(), "coordinator lacks outputs; uploading again");
                        self.upload_outputs(&request.proof, &done.join("output"))
                            .await?;
                        reply = self.client.complete(&id, &request).await;
                    }
                    self.settle(&id, "completed", reply)
                } else {
                    let result: serde_json::Value =
                        read_json(&done.join("result.json")).map_err(|e| self.ledger_error(e))?;
                    let failure = &result["failure"];
                    let request = FailRequest {
                        kind: failure["kind"].as_str().unwrap_or("unknown").to_string(),
                        message: failure["message"].as_str().unwrap_or("failed").to_string(),
                        retryable: failure["retryable"].as_bool().unwrap_or(false),
                        proof: Some(proof),
                    };
                    let reply = self.client.fail(&id, &request).await;
                    self.settle(&id, "failed", reply)
                }
            }
        }
    }

    /// Uploads each output of `proof` the coordinator does not have.
    async fn upload_outputs(
        &self,
        proof: &SignedProof,
        dir: &std::path::Path,
    ) -> Result<(), ReportError> {
        for output in &proof.manifest.outputs {
            if !self.client.has_blob(&output.sha256).await? {
                self.client
                    .upload_blob(&output.sha256, &dir.join(&output.path))
                    .await?;
                tracing::debug!(output = %output.path, bytes = output.size, "output uploaded");
            }
        }
        Ok(())
    }

    /// Settles a report by the coordinator's answer: accepted (maybe as a
    /// duplicate) → journaled and forgotten; refused for good → dropped
    /// with the reason; transient → retried later.
    fn settle(
        &self,
        id: &str,
        report: &str,
        reply: Result<CompleteReply, ClientError>,
    ) -> Result<Reported, ReportError> {
        match reply {
            Ok(reply) => {
                tracing::info!(lease = %id, job = %reply.job_id, %report, duplicate = reply.duplicate, state = ?reply.job_state, "result reported");
                self.set_connection(Connection::Connected);
                self.log(Event::Reported {
                    job: id.to_string(),
                    report: report.to_string(),
                    duplicate: reply.duplicate,
                })?;
                // The coordinator holds the outputs now; keep the small
                // records (spec, result, proof) and free the disk.
                let outputs = self.spool.done_dir(id).join("output");
                if let Err(e) = pictor_runtime::jobs::tree::remove_all(&outputs)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %outputs.display(), error = %e, "could not remove reported outputs");
                }
            }
            // Transient (a server fault, 429, a 507 upload quota that frees
            // up), or the owner must fix the config (token, version, a
            // revoked credential, a token that may not act for this
            // worker): keep the result and retry.
            Err(e)
                if e.is_retryable()
                    || matches!(e, ClientError::Version { .. })
                    || matches!(
                        e.code(),
                        Some(ErrorCode::Unauthorized | ErrorCode::Revoked | ErrorCode::Forbidden)
                    ) =>
            {
                return Err(ReportError::Network(e));
            }
            Err(e) => {
                let reason = match e.code() {
                    Some(ErrorCode::LeaseGone) => format!("report refused, the lease is over: {e}"),
                    _ => format!("report refused for good: {e}"),
                };
                tracing::error!(lease = %id, %reason, "result not accepted");
                self.log(Event::Dropped {
                    job: id.to_string(),
                    reason,
                })?;
            }
        }
        self.ledger.remove(id).map_err(|e| self.ledger_error(e))?;
        Ok(Reported::Settled)
    }
}

/// A report that could not be made now.
#[derive(Debug, thiserror::Error)]
enum ReportError {
    /// The coordinator is not answering: retry later.
    #[error(transparent)]
    Network(#[from] ClientError),
    /// The worker's own state failed: stop.
    #[error(transparent)]
    Local(#[from] NetworkError),
}

impl From<crate::journal::JournalError> for ReportError {
    fn from(e: crate::journal::JournalError) -> Self {
        ReportError::Local(e.into())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
}
