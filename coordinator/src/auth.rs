//! Who is calling: bearer tokens checked in constant time.
//!
//! Three credentials: the creator token (jobs API, workers API, blobs, the
//! portal's login) and the farm-wide worker token, both created in the data
//! folder on first start; and a credential per **issued worker** (created
//! by `POST /api/v1/workers`), of which the store keeps only the sha256.
//! A [`Principal`] says who a token belongs to and
//! [`Principal::may_act_as_worker`] whether it may speak for a given worker
//! id: the farm token for any worker, an issued credential for its own
//! worker only.
//!
//! The two folder tokens are compared through their sha256 in constant
//! time; an issued credential is found by its sha256 in the store (an index
//! lookup on a hash of 256 random bits, which tells a timing observer
//! nothing about the token). A revoked credential is refused with
//! [`ErrorCode::Revoked`].

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use pictor_protocol::api::ErrorCode;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;
use crate::store::Tx;

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
    /// Whether this caller may act for worker `worker_id`.
    pub fn may_act_as_worker(&self, worker_id: &str) -> bool {
        match self {
            Principal::FarmWorker => true,
            Principal::Worker(own) => own == worker_id,
            Principal::Creator => false,
        }
    }

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

/// What the `Authorization` header presents, before the store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No bearer token.
    Nothing,
    /// One of the data folder's tokens.
    Known(Principal),
    /// Another bearer token: maybe an issued worker's credential, found by
    /// this sha256 (lowercase hex) with [`issued_principal`].
    Other {
        /// sha256 of the token, hex.
        token_sha256: String,
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

/// The bearer token in `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The issued worker whose credential hashes to `token_sha256`: its
/// principal, [`ErrorCode::Revoked`] if that credential was revoked, or
/// `None` if no issued worker has it.
pub fn issued_principal(
    tx: &mut dyn Tx,
    token_sha256: &str,
) -> Result<Option<Principal>, ApiError> {
    let Some(worker) = tx.issued_worker_by_token(token_sha256)? else {
        return Ok(None);
    };
    if worker.revoked_at_ms.is_some() {
        return Err(revoked(&worker.id));
    }
    Ok(Some(Principal::Worker(worker.id)))
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
        same(&fingerprint(token.trim()), &self.creator)
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
                token_sha256: hex::encode(presented),
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
    /// count (tests and callers without a store).
    pub fn require(&self, headers: &HeaderMap, access: Access) -> Result<Principal, ApiError> {
        match self.identify(headers) {
            Presented::Known(principal) => Self::admit(Some(principal), access),
            Presented::Nothing | Presented::Other { .. } => Self::admit(None, access),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{IssuedWorkerRecord, transaction};

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
                token_sha256: token_sha256("worker-token-12345")
            }
        );
        assert_eq!(
            auth.identify(&headers("Basic worker-token-123456")),
            Presented::Nothing
        );
        assert_eq!(auth.identify(&HeaderMap::new()), Presented::Nothing);
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
        let store = SqliteStore::in_memory().unwrap();
        let mut record = IssuedWorkerRecord {
            id: "wkr-0123456789".into(),
            name: "rig".into(),
            wallet: "wallet-123".into(),
            mining: None,
            prices: Default::default(),
            token_sha256: token_sha256("issued-token-123456"),
            created_at_ms: 1,
            revoked_at_ms: None,
        };
        transaction(&store, |tx| tx.insert_issued_worker(&record)).unwrap();
        let found = transaction(&store, |tx| {
            issued_principal(tx, &token_sha256("issued-token-123456"))
        })
        .unwrap();
        assert_eq!(found, Some(Principal::Worker("wkr-0123456789".into())));
        let principal = found.unwrap();
        assert!(principal.may_act_as_worker("wkr-0123456789"));
        assert!(!principal.may_act_as_worker("wkr-other"));
        assert!(Auth::admit(Some(principal.clone()), Access::Worker).is_ok());
        assert!(Auth::admit(Some(principal), Access::Creator).is_err());
        assert_eq!(
            transaction(&store, |tx| issued_principal(tx, &token_sha256("other"))).unwrap(),
            None
        );
        record.revoked_at_ms = Some(2);
        transaction(&store, |tx| tx.update_issued_worker(&record)).unwrap();
        let error = transaction(&store, |tx| {
            issued_principal(tx, &token_sha256("issued-token-123456"))
        })
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::Revoked);
        assert_eq!(
            error.message,
            "worker wkr-0123456789's credential was revoked; import a new worker.json from the coordinator's portal"
        );
    }
}
