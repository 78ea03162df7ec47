//! Who is calling: bearer tokens checked in constant time, and who may act
//! for which worker.
//!
//! Three credentials: the creator token (jobs API, workers API, blobs, the
//! portal's login) and the farm-wide worker token, both created in the data
//! folder on first start; and a credential per **issued worker** (created
//! by `POST /api/v1/workers`), of which the store keeps only the sha256.
//! A [`Principal`] says who a token belongs to and
//! [`Credentials::authorize`] whether it may speak for a given worker id:
//! an issued credential for its own worker only, the farm token for any
//! worker that was **not** issued its own credential (an issued worker is
//! reachable with its own token and nothing else).
//!
//! Refusing a caller is cheap: a token longer than [`MAX_TOKEN_LEN`] is
//! refused unhashed; any other token costs one sha256, two constant-time
//! compares with the folder tokens and one lookup in [`Credentials`], the
//! in-memory index of issued credentials (loaded from the store at start,
//! kept current by issuing and revoking). No request, known token or not,
//! opens a store transaction to be authenticated. A revoked credential is
//! refused with [`ErrorCode::Revoked`].

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use pictor_protocol::api::ErrorCode;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::store::{IssuedWorkerRecord, StoreError};

/// Longest bearer token looked at; a longer one is refused without
/// hashing it (every token this coordinator makes is 64 characters).
pub const MAX_TOKEN_LEN: usize = 256;

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The creator (jobs API).
    Creator,
    /// Any worker of the farm (the shared worker token).
    FarmWorker,
    /// One issued worker (its own credential), by id.
    Worker(String),
}

impl Principal {
    /// Whether this is a worker's credential (farm-wide or issued).
    pub fn is_worker(&self) -> bool {
        matches!(self, Principal::FarmWorker | Principal::Worker(_))
    }
}

/// Which callers an endpoint admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The creator only.
    Creator,
    /// Workers only.
    Worker,
    /// Creator or worker (blobs).
    Any,
}

/// What the `Authorization` header presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No bearer token (or one longer than [`MAX_TOKEN_LEN`]).
    Nothing,
    /// One of the data folder's tokens.
    Known(Principal),
    /// Another bearer token: maybe an issued worker's credential, found by
    /// this sha256 in [`Credentials`].
    Other {
        /// sha256 of the token.
        token_sha256: [u8; 32],
    },
}

/// The coordinator's folder credentials.
pub struct Auth {
    creator: [u8; 32],
    farm_worker: [u8; 32],
}

/// Tokens are compared through their sha256, so the comparison has the same
/// length (and time) whatever the token's length.
fn fingerprint(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// sha256 of `token` as 64 lowercase hex digits: how the store keeps an
/// issued worker's credential.
pub fn token_sha256(token: &str) -> String {
    hex::encode(fingerprint(token))
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token in `headers`, if any (and not absurdly long).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?;
    if value.len() > MAX_TOKEN_LEN + 16 {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
}

/// The refusal of a revoked credential.
pub fn revoked(worker_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Revoked,
        format!(
            "worker {worker_id}'s credential was revoked; import a new worker.json from the coordinator's portal"
        ),
    )
}

impl Auth {
    /// Credentials from the two folder tokens.
    pub fn new(creator_token: &str, worker_token: &str) -> Self {
        Auth {
            creator: fingerprint(creator_token),
            farm_worker: fingerprint(worker_token),
        }
    }

    /// Whether `token` is the creator token (the portal's login).
    pub fn is_creator_token(&self, token: &str) -> bool {
        let token = token.trim();
        token.len() <= MAX_TOKEN_LEN && same(&fingerprint(token), &self.creator)
    }

    /// What `headers` present.
    pub fn identify(&self, headers: &HeaderMap) -> Presented {
        let Some(token) = bearer(headers) else {
            return Presented::Nothing;
        };
        let presented = fingerprint(token);
        // Both comparisons always run.
        let creator = same(&presented, &self.creator);
        let worker = same(&presented, &self.farm_worker);
        if creator {
            Presented::Known(Principal::Creator)
        } else if worker {
            Presented::Known(Principal::FarmWorker)
        } else {
            Presented::Other {
                token_sha256: presented,
            }
        }
    }

    /// The principal, if it is one that `access` admits (`None`: no valid
    /// token was presented).
    pub fn admit(principal: Option<Principal>, access: Access) -> Result<Principal, ApiError> {
        let principal = principal.ok_or_else(|| {
            ApiError::unauthorized(match access {
                Access::Creator => "missing or wrong bearer token: send `Authorization: Bearer <creator.token>`",
                Access::Worker => "missing or wrong bearer token: send `Authorization: Bearer <worker token>` from worker.json",
                Access::Any => "missing or wrong bearer token: send the creator or worker token as `Authorization: Bearer …`",
            })
        })?;
        let admitted = match access {
            Access::Any => true,
            Access::Creator => principal == Principal::Creator,
            Access::Worker => principal.is_worker(),
        };
        if !admitted {
            return Err(ApiError::unauthorized(match access {
                Access::Creator => "this endpoint takes the creator token, not a worker token",
                _ => "this endpoint takes a worker token, not the creator token",
            }));
        }
        Ok(principal)
    }

    /// The principal of `headers` for `access`, when only the folder tokens
    /// count (tests and callers without issued workers).
    pub fn require(&self, headers: &HeaderMap, access: Access) -> Result<Principal, ApiError> {
        match self.identify(headers) {
            Presented::Known(principal) => Self::admit(Some(principal), access),
            Presented::Nothing | Presented::Other { .. } => Self::admit(None, access),
        }
    }
}

/// An issued worker as the index knows it.
#[derive(Debug, Clone)]
struct IssuedEntry {
    revoked: bool,
}

#[derive(Debug, Default)]
struct Index {
    /// Credential sha256 → worker id.
    by_token: HashMap<[u8; 32], String>,
    /// Worker id → whether its credential was revoked.
    workers: HashMap<String, IssuedEntry>,
}

/// The in-memory index of issued workers' credentials: every lookup an
/// authenticated request needs, without the store. It is loaded from the
/// store at start ([`Credentials::load`]) and changed only through
/// [`Credentials::add`] and [`Credentials::revoke`], which the issuing and
/// revoking code calls (every issue and revoke goes through this process:
/// the CLI and the portal use its API).
#[derive(Debug, Default)]
pub struct Credentials {
    index: RwLock<Index>,
}

fn token_bytes(record: &IssuedWorkerRecord) -> Result<[u8; 32], StoreError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(&record.token_sha256, &mut bytes).map_err(|e| StoreError::Corrupt {
        table: "issued_workers",
        message: format!("`token_sha256` of {}: {e}", record.id),
    })?;
    Ok(bytes)
}

impl Credentials {
    /// The index of `records` (every issued worker in the store).
    pub fn load(records: &[IssuedWorkerRecord]) -> Result<Self, StoreError> {
        let credentials = Credentials::default();
        for record in records {
            credentials.insert(record)?;
        }
        Ok(credentials)
    }

    fn insert(&self, record: &IssuedWorkerRecord) -> Result<(), StoreError> {
        let token_sha256 = token_bytes(record)?;
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        index.by_token.insert(token_sha256, record.id.clone());
        index.workers.insert(
            record.id.clone(),
            IssuedEntry {
                revoked: record.revoked_at_ms.is_some(),
            },
        );
        Ok(())
    }

    /// Adds a newly issued worker (after its row is committed).
    pub fn add(&self, record: &IssuedWorkerRecord) -> Result<(), StoreError> {
        self.insert(record)
    }

    /// Marks issued worker `worker_id`'s credential revoked (before the
    /// store is told, so no request slips in between); no-op for any
    /// other id.
    pub fn revoke(&self, worker_id: &str) {
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = index.workers.get_mut(worker_id) {
            entry.revoked = true;
        }
    }

    /// The issued worker whose credential hashes to `token_sha256`: its
    /// principal, [`ErrorCode::Revoked`] if that credential was revoked, or
    /// `None` if no issued worker has it.
    pub fn principal(&self, token_sha256: &[u8; 32]) -> Result<Option<Principal>, ApiError> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = index.by_token.get(token_sha256) else {
            return Ok(None);
        };
        match index.workers.get(id) {
            Some(entry) if entry.revoked => Err(revoked(id)),
            _ => Ok(Some(Principal::Worker(id.clone()))),
        }
    }

    /// Whether `worker_id` was issued its own credential here.
    pub fn is_issued(&self, worker_id: &str) -> bool {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index.workers.contains_key(worker_id)
    }

    /// Whether `principal` may act for worker `worker_id` (register,
    /// heartbeat, lease, or report on a lease it holds): 403 `forbidden`
    /// naming the worker when not.
    pub fn authorize(&self, principal: &Principal, worker_id: &str) -> Result<(), ApiError> {
        match principal {
            Principal::Worker(own) if own == worker_id => Ok(()),
            Principal::Worker(own) => Err(ApiError::forbidden(format!(
                "this token belongs to worker {own}, not to worker {worker_id}; run each worker with its own worker.json"
            ))),
            Principal::FarmWorker if self.is_issued(worker_id) => {
                Err(ApiError::forbidden(format!(
                    "worker {worker_id} was issued its own credential; the farm-wide worker token cannot act for it — use the token in its worker.json"
                )))
            }
            Principal::FarmWorker => Ok(()),
            Principal::Creator => Err(ApiError::unauthorized(
                "this endpoint takes a worker token, not the creator token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_map_to_principals() {
        let auth = Auth::new("creator-token-123456", "worker-token-123456");
        assert_eq!(
            auth.identify(&headers("Bearer creator-token-123456")),
            Presented::Known(Principal::Creator)
        );
        assert_eq!(
            auth.identify(&headers("bearer worker-token-123456")),
            Presented::Known(Principal::FarmWorker)
        );
        assert_eq!(
            auth.identify(&headers("Bearer worker-token-12345")),
            Presented::Other {
                token_sha256: fingerprint("worker-token-12345")
            }
        );
        assert_eq!(
            auth.identify(&headers("Basic worker-token-123456")),
            Presented::Nothing
        );
        assert_eq!(auth.identify(&HeaderMap::new()), Presented::Nothing);
        // Absurdly long tokens are not even hashed.
        let long = format!("Bearer {}", "x".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(auth.identify(&headers(&long)), Presented::Nothing);
        assert!(
            auth.require(&headers("Bearer worker-token-123456"), Access::Creator)
                .is_err()
        );
        assert!(
            auth.require(&headers("Bearer worker-token-123456"), Access::Any)
                .is_ok()
        );
        assert!(auth.is_creator_token("creator-token-123456\n"));
        assert!(!auth.is_creator_token("worker-token-123456"));
    }

    #[test]
    fn an_issued_credential_acts_for_its_own_worker_until_revoked() {
        let record = IssuedWorkerRecord {
            id: "wkr-0123456789".into(),
            name: "rig".into(),
            wallet: "wallet-123".into(),
            mining: None,
            prices: Default::default(),
            token_sha256: token_sha256("issued-token-123456"),
            created_at_ms: 1,
            revoked_at_ms: None,
        };
        let credentials = Credentials::load(&[]).unwrap();
        credentials.add(&record).unwrap();
        let found = credentials
            .principal(&fingerprint("issued-token-123456"))
            .unwrap();
        assert_eq!(found, Some(Principal::Worker("wkr-0123456789".into())));
        let principal = found.unwrap();
        assert!(credentials.authorize(&principal, "wkr-0123456789").is_ok());
        let error = credentials.authorize(&principal, "wkr-other").unwrap_err();
        assert_eq!(error.code, ErrorCode::Forbidden);
        // The farm token acts for any worker but an issued one.
        assert!(
            credentials
                .authorize(&Principal::FarmWorker, "farm-1")
                .is_ok()
        );
        let error = credentials
            .authorize(&Principal::FarmWorker, "wkr-0123456789")
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Forbidden);
        assert!(
            error.message.contains("was issued its own credential"),
            "{}",
            error.message
        );
        assert!(Auth::admit(Some(principal.clone()), Access::Worker).is_ok());
        assert!(Auth::admit(Some(principal), Access::Creator).is_err());
        assert_eq!(credentials.principal(&fingerprint("other")).unwrap(), None);
        credentials.revoke("wkr-0123456789");
        let error = credentials
            .principal(&fingerprint("issued-token-123456"))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Revoked);
        assert_eq!(
            error.message,
            "worker wkr-0123456789's credential was revoked; import a new worker.json from the coordinator's portal"
        );
        // Loading the store's rows gives the same answers.
        let revoked = IssuedWorkerRecord {
            revoked_at_ms: Some(2),
            ..record
        };
        let loaded = Credentials::load(&[revoked]).unwrap();
        assert!(loaded.is_issued("wkr-0123456789"));
        assert_eq!(
            loaded
                .principal(&fingerprint("issued-token-123456"))
                .unwrap_err()
                .code,
            ErrorCode::Revoked
        );
    }
}
