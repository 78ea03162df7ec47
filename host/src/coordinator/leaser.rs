//! Registration and leasing: introduce the worker, then long-poll for a
//! job whenever a slot is free, download its plugin and inputs (verified,
//! into the cache, pinned) and queue it in the spool under the lease id.

use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use pictor_protocol::api::{self, ErrorCode, FailRequest, Lease};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::backoff::Backoff;
use super::client::ClientError;
use super::ledger::{LeaseStep, LedgerEntry};
use super::{Connection, NetworkError, NetworkSource};
use crate::blobs::fetch::FetchItem;
use crate::journal::Event;
use pictor_runtime::jobs::limits::LimitOverrides;
use pictor_runtime::jobs::spec::{FileRef, InputRef, JobSpec, SPEC_VERSION, SpecInvalid};

/// How long one lease request waits at the coordinator when the worker
/// runs `--until-idle` (it stops at the first empty answer).
const IDLE_PROBE_WAIT_S: u32 = 1;

/// How often a worker with no free slot looks again (it is also woken
/// whenever a job finishes).
const FULL_RECHECK: Duration = Duration::from_millis(500);

impl NetworkSource {
    /// Registers, with backoff, until it works or `stop` fires; false if stopped.
    async fn register(&self, stop: &CancellationToken) -> bool {
        let mut backoff = Backoff::coordinator();
        loop {
            if stop.is_cancelled() || self.revoked() {
                return false;
            }
            match self.client.register(&self.registration).await {
                Ok(reply) => {
                    tracing::info!(
                        worker = %reply.worker_id,
                        lease_ttl_s = reply.lease_ttl_s,
                        heartbeat_s = reply.heartbeat_interval_s,
                        "registered with the coordinator"
                    );
                    self.timing.send_replace(Some(reply));
                    self.set_connection(Connection::Connected);
                    return true;
                }
                Err(e) => {
                    self.note_error(&e);
                    if !e.is_retryable() {
                        // The owner must act (token, key, version); keep
                        // trying slowly so a fix on the coordinator side is
                        // picked up without a restart.
                        backoff = Backoff::new(Duration::from_secs(30), Duration::from_secs(60));
                    }
                    tokio::select! {
                        () = backoff.wait() => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Records a failed call in the connection state.
    pub(super) fn note_error(&self, error: &ClientError) {
        match error {
            ClientError::Api { body, .. } if body.error == ErrorCode::Revoked => self.set_connection(Connection::Revoked(body.message.clone())),
            e if e.is_retryable() => self.set_connection(Connection::Offline(e.to_string())),
            ClientError::Api { status: 401, .. } => self.set_connection(Connection::Refused(format!(
                "{error}; the worker token in worker.json is not valid here: download this worker's config again"
            ))),
            e => self.set_connection(Connection::Refused(e.to_string())),
        }
    }

    /// Leases in hand that take a slot: fetching, or queued and not done.
    fn held(&self) -> Result<usize, NetworkError> {
        Ok(self
            .entries()?
            .iter()
            .filter(|e| match e.step {
                LeaseStep::Fetching => true,
                LeaseStep::Queued => !self.is_done(&e.lease.lease_id),
                LeaseStep::Dropped | LeaseStep::FetchFailed | LeaseStep::Invalid => false,
            })
            .count())
    }

    /// Nothing leased is left to fetch, run or report.
    fn nothing_in_hand(&self) -> Result<bool, NetworkError> {
        Ok(self.entries()?.is_empty()
            && self.spool.next_incoming()?.is_none()
            && self.spool.running()?.is_empty())
    }

    /// The lease loop; see the module doc.
    pub(super) async fn lease_loop(
        self: Arc<Self>,
        until_idle: bool,
        stop: CancellationToken,
        idle: watch::Sender<bool>,
    ) -> Result<(), NetworkError> {
        if !self.register(&stop).await {
            return Ok(());
        }
        let mut fetches = JoinSet::new();
        // Leases a crash or stop left mid-download: fetch them again
        // (partial downloads resume).
        for entry in self.entries()? {
            if entry.step == LeaseStep::Fetching {
                if self.spool.contains(&entry.lease.lease_id)? {
                    self.put(&LedgerEntry {
                        step: LeaseStep::Queued,
                        ..entry
                    })?;
                } else {
                    fetches.spawn(Arc::clone(&self).fetch_and_queue(entry.lease));
                }
            }
        }
        let mut backoff = Backoff::coordinator();
        let mut finished = self.worker.finished.clone();
        let mut short_of_slots = None;
        while !stop.is_cancelled() {
            while let Some(done) = fetches.try_join_next() {
                if let Ok(Err(e)) = done {
                    return Err(e);
                }
            }
            let (capacity, why) = self.capacity();
            if why != short_of_slots {
                match why {
                    Some(why) => tracing::warn!(
                        capacity,
                        slots = self.slots,
                        reason = why,
                        "taking fewer leases"
                    ),
                    None => {
                        tracing::info!(slots = self.slots, "taking leases for every slot again")
                    }
                }
                short_of_slots = why;
            }
            let held = self.held()?;
            if capacity == 0
                && held == 0
                && until_idle
                && fetches.is_empty()
                && self.nothing_in_hand()?
            {
                tracing::info!(
                    reason = why.unwrap_or_default(),
                    "this worker can take no lease and everything is reported: idle"
                );
                idle.send_replace(true);
                break;
            }
            if held >= capacity {
                tokio::select! {
                    _ = finished.changed() => {}
                    () = tokio::time::sleep(FULL_RECHECK) => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            let max_wait = self.timing.borrow().as_ref().map_or(30, |t| t.max_wait_s);
            let wait_s = if until_idle {
                IDLE_PROBE_WAIT_S
            } else {
                max_wait
            };
            let leased = tokio::select! {
                leased = self.client.lease(&self.registration.worker_id, wait_s) => leased,
                () = stop.cancelled() => break,
            };
            match leased {
                Ok(Some(lease)) => {
                    backoff.reset();
                    self.set_connection(Connection::Connected);
                    if let Some(entry) = self.accept(lease).await? {
                        fetches.spawn(Arc::clone(&self).fetch_and_queue(entry.lease));
                    }
                }
                Ok(None) => {
                    backoff.reset();
                    self.set_connection(Connection::Connected);
                    if until_idle && fetches.is_empty() && self.nothing_in_hand()? {
                        tracing::info!(
                            "the coordinator has no job for this worker and everything is reported: idle"
                        );
                        idle.send_replace(true);
                        break;
                    }
                }
                Err(e)
                    if e.code() == Some(ErrorCode::NotFound)
                        || e.code() == Some(ErrorCode::Unauthorized) =>
                {
                    // The coordinator forgot us (a new database) or the
                    // token changed: register again.
                    self.note_error(&e);
                    if !self.register(&stop).await {
                        break;
                    }
                }
                Err(e) => {
                    self.note_error(&e);
                    tokio::select! {
                        () = backoff.wait() => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
        }
        // Downloads in flight stop here; their ledger entries stay
        // `fetching` and resume on the next start.
        fetches.shutdown().await;
        Ok(())
    }

    /// Journals and records a new lease; refuses (reports as failed) one
    /// that is malformed.
    async fn accept(&self, lease: Lease) -> Result<Option<LedgerEntry>, NetworkError> {
        if !api::valid_id(&lease.lease_id) {
            tracing::error!(lease = %lease.lease_id, "coordinator sent a lease id that is not a valid id; ignored");
            return Ok(None);
        }
        tracing::info!(lease = %lease.lease_id, kind = %lease.kind, inputs = lease.inputs.len(), "job leased");
        self.log(Event::Leased {
            job: lease.lease_id.clone(),
            job_id: lease.job_id.clone(),
            kind: lease.kind.clone(),
        })?;
        if let Err(problem) = spec_of(&lease, std::path::Path::new("/"), &[]) {
            let entry = LedgerEntry {
                lease,
                step: LeaseStep::Invalid,
                reason: Some(format!("invalid lease: {problem}")),
            };
            self.put(&entry)?;
            return Ok(None);
        }
        let entry = LedgerEntry {
            lease,
            step: LeaseStep::Fetching,
            reason: None,
        };
        self.put(&entry)?;
        Ok(Some(entry))
    }

    /// Downloads a lease's plugin and inputs and queues its job.
    async fn fetch_and_queue(self: Arc<Self>, lease: Lease) -> Result<(), NetworkError> {
        let id = lease.lease_id.clone();
        let mut items = Vec::with_capacity(lease.inputs.len() + 1);
        let named = std::iter::once((
            "plugin".to_string(),
            &lease.plugin.sha256,
            lease.plugin.size,
        ))
        .chain(
            lease
                .inputs
                .iter()
                .map(|i| (format!("input {:?}", i.name), &i.sha256, i.size)),
        );
        for (name, sha256, size) in named {
            match self.client.blob_source(sha256, &name) {
                Ok(source) => items.push(FetchItem {
                    source,
                    blob: *sha256,
                    size: Some(size),
                }),
                Err(e) => tracing::error!(lease = %id, error = %e, "blob URL"),
            }
        }
        let progress = self.download_progress();
        let fetched = self.fetcher.fetch_all(items, &progress).await;
        self.status.send_modify(|s| s.download = None);
        let Some(entry) = self.ledger.get(&id).map_err(|e| self.ledger_error(e))? else {
            return Ok(());
        };
        if entry.step != LeaseStep::Fetching {
            return Ok(()); // dropped while downloading
        }
        let blobs = match fetched {
            Ok(blobs) => blobs,
            Err(e) => {
                tracing::warn!(lease = %id, error = %e, "download failed; the lease is reported as failed");
                return self.put(&LedgerEntry {
                    step: LeaseStep::FetchFailed,
                    reason: Some(format!("download failed: {e}")),
                    ..entry
                });
            }
        };
        let paths: Vec<std::path::PathBuf> = blobs.iter().map(|b| b.path().to_path_buf()).collect();
        let spec = match spec_of(&lease, &paths[0], &paths[1..]) {
            Ok(spec) => spec,
            Err(problem) => {
                return self.put(&LedgerEntry {
                    step: LeaseStep::Invalid,
                    reason: Some(format!("invalid lease: {problem}")),
                    ..entry
                });
            }
        };
        self.pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), blobs.iter().map(|b| b.pin().clone()).collect());
        if !self.spool.contains(&id)? {
            self.spool.enqueue(&spec)?;
            self.wake_worker.notify_one();
        }
        self.put(&LedgerEntry {
            step: LeaseStep::Queued,
            ..entry
        })?;
        tracing::info!(lease = %id, "job queued");
        Ok(())
    }

    /// A progress sink whose updates show on the status line.
    fn download_progress(&self) -> crate::blobs::fetch::ProgressSink {
        let (sink, mut rx) = crate::blobs::fetch::ProgressSink::channel();
        let status = self.status.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let progress = *rx.borrow_and_update();
                status.send_modify(|s| s.download = Some(progress));
            }
        });
        sink
    }
}

/// The job spec of `lease`, with its plugin and inputs at `plugin` and
/// `inputs` (cache paths); an error says what in the lease is invalid
/// (validated as any job spec, its message clipped).
fn spec_of(
    lease: &Lease,
    plugin: &std::path::Path,
    inputs: &[std::path::PathBuf],
) -> Result<JobSpec, SpecInvalid> {
    let limits: LimitOverrides = match &lease.limits {
        serde_json::Value::Null => LimitOverrides::default(),
        value => serde_json::from_value(value.clone())
            .map_err(|e| SpecInvalid::Shape(format!("`limits`: {e}")))?,
    };
    let spec = JobSpec {
        version: SPEC_VERSION,
        id: lease.lease_id.clone(),
        kind: lease.kind.clone(),
        params: lease.params.clone(),
        seed: lease.seed,
        limits,
        plugin: Some(FileRef {
            path: plugin.to_path_buf(),
            sha256: lease.plugin.sha256,
        }),
        inputs: lease
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| InputRef {
                name: input.name.clone(),
                file: FileRef {
                    path: inputs.get(i).cloned().unwrap_or_default(),
                    sha256: input.sha256,
                },
            })
            .collect(),
        price: lease.price,
    };
    spec.validate()?;
    Ok(spec)
}

/// The report for a lease that never ran: `download` failures may work
/// elsewhere, an `invalid-lease` never does.
pub(super) fn not_run(step: LeaseStep, reason: &str) -> FailRequest {
    let (kind, retryable) = if step == LeaseStep::Invalid {
        ("invalid-lease", false)
    } else {
        ("download", true)
    };
    FailRequest {
        kind: kind.into(),
        message: reason.to_string(),
        retryable,
        proof: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_test_support::hostile;

    /// Fields of a lease a hostile coordinator may change.
    const LEASE_FIELDS: &[&str] = &[
        "lease_id",
        "job_id",
        "kind",
        "attempt",
        "expires_in_s",
        "plugin",
        "plugin/sha256",
        "plugin/size",
        "inputs",
        "inputs/0",
        "inputs/0/name",
        "inputs/0/sha256",
        "inputs/0/size",
        "params",
        "seed",
        "limits",
        "limits/timeout_s",
        "limits/memory_mib",
        "limits/output_mib",
        "limits/open_files",
        "price",
        "unknown_key",
    ];

    fn good_lease() -> serde_json::Value {
        let digest = crate::digest::Sha256Digest::of(b"x").to_string();
        serde_json::json!({
            "lease_id": "job-1.0", "job_id": "job-1", "kind": "render", "attempt": 1, "expires_in_s": 60,
            "plugin": {"sha256": digest, "size": 1},
            "inputs": [{"name": "scene.gltf", "sha256": digest, "size": 1}],
            "params": {"spp": 64}, "seed": 7, "limits": {"timeout_s": 60}, "price": 0.5
        })
    }

    #[test]
    fn the_good_lease_makes_a_spec() {
        let lease: Lease = serde_json::from_value(good_lease()).unwrap();
        let spec = spec_of(
            &lease,
            std::path::Path::new("/cache/plugin"),
            &["/cache/input".into()],
        )
        .unwrap();
        assert_eq!((spec.id.as_str(), spec.inputs.len()), ("job-1.0", 1));
    }

    proptest::proptest! {
        #![proptest_config(hostile::config())]

        #[test]
        fn a_hostile_lease_is_refused_readably_never_a_panic((path, value) in hostile::mutation(LEASE_FIELDS)) {
            let text = hostile::with_field(&good_lease(), path, value).to_string();
            // What the client does with a reply, then what the leaser does with a lease.
            let Ok(lease) = serde_json::from_str::<Lease>(&text) else {
                return Ok(());
            };
            let inputs: Vec<std::path::PathBuf> = lease.inputs.iter().map(|_| "/cache/input".into()).collect();
            match spec_of(&lease, std::path::Path::new("/cache/plugin"), &inputs) {
                Ok(spec) => proptest::prop_assert!(spec.validate().is_ok()),
                Err(error) => hostile::assert_readable(&error.to_string()),
            }
        }
    }
}
