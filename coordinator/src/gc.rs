//! Garbage collection of unreferenced blobs.
//!
//! Each blob has a record in the store ([`crate::store::BlobRecord`]): who
//! uploaded it, when, and whether anything references it — a job's plugin
//! or inputs (marked when the job is submitted), an accepted result's
//! outputs (marked when the complete is accepted), or the miner plugin the
//! coordinator serves. Jobs and results are kept for good, so a referenced
//! blob stays referenced. An unreferenced blob older than the grace period
//! (`serve --blob-gc-grace-s`) was uploaded for nothing — a submit that
//! never came, the output of a report that was refused, or junk — and the
//! background task ([`collect`]) deletes it, which also frees its owner's
//! upload quota ([`crate::limits::quota`]).
//!
//! [`reconcile`] runs at start: folder files without a record (blobs of a
//! coordinator older than records, or put there by hand) get one, charged to
//! nobody and dated now; records whose file is gone are dropped; every blob
//! a job or result names is marked referenced.

use std::collections::BTreeSet;
use std::sync::Arc;

use pictor_protocol::Sha256Digest;

use crate::blobs::{BlobError, BlobStore};
use crate::error::ApiError;
use crate::limits::millis;
use crate::limits::quota::Owner;
use crate::state::AppState;
use crate::store::{BlobRecord, Store, StoreError, transaction};

/// Blobs deleted per store transaction.
const BATCH: u32 = 1000;

/// What [`reconcile`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Files that got a record.
    pub recorded: usize,
    /// Records dropped because their file is gone.
    pub dropped: usize,
}

/// Why the blob records could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The blob folder.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Brings the blob records in line with the folder (see the module docs);
/// `pinned` blobs (the miner plugin) are marked referenced.
pub fn reconcile(
    store: &dyn Store,
    blobs: &BlobStore,
    pinned: &[Sha256Digest],
    now_ms: u64,
) -> Result<Reconciled, ReconcileError> {
    let on_disk: BTreeSet<Sha256Digest> = blobs.digests()?.into_iter().collect();
    let reconciled = transaction(store, |tx| {
        let known: BTreeSet<Sha256Digest> = tx.blob_digests()?.into_iter().collect();
        let mut reconciled = Reconciled::default();
        for digest in on_disk.difference(&known) {
            let Some(size) = blobs.size(digest) else {
                continue;
            };
            tx.put_blob(&BlobRecord {
                sha256: *digest,
                size,
                owner: Owner::Operator.key(),
                created_at_ms: now_ms,
                referenced: false,
            })?;
            reconciled.recorded += 1;
        }
        for digest in known.difference(&on_disk) {
            tx.delete_blob(digest)?;
            reconciled.dropped += 1;
        }
        tx.mark_referenced(pinned)?;
        tx.mark_all_referenced()?;
        Ok::<_, StoreError>(reconciled)
    })?;
    if reconciled != Reconciled::default() {
        tracing::info!(
            recorded = reconciled.recorded,
            dropped = reconciled.dropped,
            "blob records reconciled with the blob folder"
        );
    }
    Ok(reconciled)
}

/// Deletes every unreferenced blob uploaded at least the grace period
/// before `now_ms`; returns how many went.
pub async fn collect(state: &AppState, now_ms: u64) -> Result<usize, ApiError> {
    let before = now_ms.saturating_sub(millis(state.limits.blob_grace));
    let mut deleted = 0;
    loop {
        // Nothing can start to reference a blob while this is held.
        let _collecting = state.blobs.collecting().await;
        let victims = state
            .transact(move |tx| {
                let victims = tx.collectable_blobs(before, BATCH)?;
                for blob in &victims {
                    tx.delete_blob(&blob.sha256)?;
                }
                Ok(victims)
            })
            .await?;
        for blob in &victims {
            match state.blobs.delete(&blob.sha256) {
                Ok(()) => {
                    tracing::info!(blob = %blob.sha256, size = blob.size, owner = %blob.owner, "unreferenced blob deleted")
                }
                Err(e) => tracing::error!(error = %e, "unreferenced blob not deleted"),
            }
        }
        deleted += victims.len();
        if victims.len() < BATCH as usize {
            return Ok(deleted);
        }
    }
}

/// Collects unreferenced blobs every `blob_gc_interval` until shutdown.
pub async fn collect_periodically(state: Arc<AppState>) {
    let period = state
        .limits
        .blob_gc_interval
        .max(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = state.shutdown.cancelled() => return,
        }
        if let Err(e) = collect(&state, crate::state::now_ms()).await {
            tracing::error!(error = %e.message, "blob garbage collection failed");
        }
    }
}
