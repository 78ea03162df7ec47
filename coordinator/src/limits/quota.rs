//! Upload quotas: who an uploaded blob is charged to ([`Owner`]) and the
//! bytes each owner has arriving right now ([`Uploads`]).
//!
//! A quota bounds the bytes of an owner's blobs that **nothing references
//! yet**: no job names them (plugin, inputs) and no accepted result lists
//! them (outputs). Referenced blobs are the network's data and are not
//! charged; unreferenced ones are what a hostile or broken caller could pile
//! up, and the garbage collector deletes them after a grace period
//! ([`crate::gc`]). The store keeps each blob's owner and whether it is
//! referenced; the bytes still streaming in live here, so that parallel
//! uploads of one owner cannot together pass its quota. The check at the
//! end of an upload, in the store transaction that records the blob, is the
//! exact one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::limits::Limits;

/// Who a blob is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The creator token.
    Creator,
    /// The farm-wide worker token (all farm workers together).
    Farm,
    /// One issued worker.
    Worker(String),
    /// The operator: blobs put in place by `serve` itself (the miner
    /// plugin) or found in the folder without a record. Never charged.
    Operator,
}

impl Owner {
    /// The owner of an upload by `principal`.
    pub fn of(principal: &Principal) -> Owner {
        match principal {
            Principal::Creator => Owner::Creator,
            Principal::FarmWorker => Owner::Farm,
            Principal::Worker(id) => Owner::Worker(id.clone()),
        }
    }

    /// The name stored in the database.
    pub fn key(&self) -> String {
        match self {
            Owner::Creator => "creator".into(),
            Owner::Farm => "farm".into(),
            Owner::Worker(id) => format!("worker:{id}"),
            Owner::Operator => "operator".into(),
        }
    }

    /// Parses [`Owner::key`].
    pub fn parse(key: &str) -> Option<Owner> {
        match key {
            "creator" => Some(Owner::Creator),
            "farm" => Some(Owner::Farm),
            "operator" => Some(Owner::Operator),
            other => other
                .strip_prefix("worker:")
                .map(|id| Owner::Worker(id.to_string())),
        }
    }

    /// Its quota under `limits` (`None`: not limited).
    pub fn quota(&self, limits: &Limits) -> Option<u64> {
        match self {
            Owner::Creator => Some(limits.creator_quota),
            Owner::Farm | Owner::Worker(_) => Some(limits.worker_quota),
            Owner::Operator => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Owner::Creator => "the creator token".into(),
            Owner::Farm => "the farm-wide worker token".into(),
            Owner::Worker(id) => format!("worker {id}"),
            Owner::Operator => "the operator".into(),
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            Owner::Creator => "serve --creator-quota-mib",
            _ => "serve --worker-quota-mib",
        }
    }
}

/// The refusal of an upload that would take `owner` past `quota`.
pub fn exceeded(owner: &Owner, quota: u64, held: u64, adding: u64, limits: &Limits) -> ApiError {
    ApiError::quota_exceeded(format!(
        "{who} would hold {total} bytes of uploads that no job or accepted result names, over its quota of {quota} bytes \
         ({held} held, {adding} more in this upload); unreferenced blobs are deleted {grace} s after their upload — \
         retry later, or raise {flag}",
        who = owner.describe(),
        total = held.saturating_add(adding),
        grace = limits.blob_grace.as_secs(),
        flag = owner.flag(),
    ))
}

/// Bytes arriving now, per owner.
#[derive(Debug, Default)]
pub struct Uploads {
    in_flight: Arc<Mutex<HashMap<Owner, u64>>>,
}

/// One upload's share of its owner's quota while it streams in; released
/// when dropped.
#[derive(Debug)]
pub struct Reservation {
    owner: Owner,
    quota: u64,
    /// The owner's unreferenced bytes in the store when the upload began.
    stored: u64,
    held: u64,
    in_flight: Arc<Mutex<HashMap<Owner, u64>>>,
}

impl Uploads {
    /// Starts an upload by `owner`, who holds `stored` unreferenced bytes
    /// already and may hold `quota`; `declared` is its `Content-Length`, if
    /// given (refused at once when it cannot fit).
    pub fn begin(
        &self,
        owner: &Owner,
        quota: u64,
        stored: u64,
        declared: Option<u64>,
        limits: &Limits,
    ) -> Result<Reservation, ApiError> {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let arriving = in_flight.get(owner).copied().unwrap_or(0);
        let held = stored.saturating_add(arriving);
        let adding = declared.unwrap_or(0);
        if held.saturating_add(adding) > quota {
            return Err(exceeded(owner, quota, held, adding, limits));
        }
        drop(in_flight);
        Ok(Reservation {
            owner: owner.clone(),
            quota,
            stored,
            held: 0,
            in_flight: Arc::clone(&self.in_flight),
        })
    }
}

impl Reservation {
    /// Counts `n` more bytes of this upload; refused when the owner's
    /// stored and arriving bytes would pass its quota.
    pub fn grow(&mut self, n: u64, limits: &Limits) -> Result<(), ApiError> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let arriving = in_flight.entry(self.owner.clone()).or_insert(0);
        let held = self.stored.saturating_add(*arriving);
        if held.saturating_add(n) > self.quota {
            return Err(exceeded(&self.owner, self.quota, held, n, limits));
        }
        *arriving += n;
        self.held += n;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(arriving) = in_flight.get_mut(&self.owner) {
            *arriving = arriving.saturating_sub(self.held);
            if *arriving == 0 {
                in_flight.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pictor_protocol::api::ErrorCode;

    #[test]
    fn owners_round_trip_and_have_their_quota() {
        let limits = Limits::default();
        for owner in [
            Owner::Creator,
            Owner::Farm,
            Owner::Worker("wkr-1".into()),
            Owner::Operator,
        ] {
            assert_eq!(Owner::parse(&owner.key()), Some(owner.clone()));
        }
        assert_eq!(Owner::Creator.quota(&limits), Some(limits.creator_quota));
        assert_eq!(
            Owner::Worker("w".into()).quota(&limits),
            Some(limits.worker_quota)
        );
        assert_eq!(Owner::Operator.quota(&limits), None);
        assert_eq!(Owner::parse("someone"), None);
    }

    #[test]
    fn parallel_uploads_of_one_owner_share_its_quota() {
        let limits = Limits::default();
        let uploads = Uploads::default();
        let owner = Owner::Worker("w".into());
        let mut a = uploads.begin(&owner, 100, 40, None, &limits).unwrap();
        let mut b = uploads.begin(&owner, 100, 40, Some(10), &limits).unwrap();
        a.grow(30, &limits).unwrap();
        let error = b.grow(31, &limits).unwrap_err();
        assert_eq!(error.code, ErrorCode::QuotaExceeded);
        assert!(
            error.message.contains("worker w would hold 101 bytes"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("--worker-quota-mib"),
            "{}",
            error.message
        );
        b.grow(30, &limits).unwrap();
        // Another owner is not affected; a declared length that cannot fit is refused at once.
        uploads
            .begin(&Owner::Creator, 100, 0, Some(100), &limits)
            .unwrap();
        assert!(uploads.begin(&owner, 100, 40, Some(1), &limits).is_err());
        drop(a);
        drop(b);
        assert!(uploads.in_flight.lock().unwrap().is_empty());
        uploads.begin(&owner, 100, 40, Some(60), &limits).unwrap();
    }
}
