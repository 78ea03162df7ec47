//! Who is calling: bearer tokens checked in constant time.
//!
//! Two credentials today, both created in the data folder on first start:
//! the creator token (jobs API and blobs) and one farm-wide worker token
//! (worker endpoints and blobs). A [`Principal`] says who a token belongs
//! to and [`Principal::may_act_as_worker`] whether it may speak for a given
//! worker id; per-worker credentials become one more variant
//! (`Principal::Worker(id)`, looked up in a token table of the store) and
//! one more arm there, without touching the handlers.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The creator (jobs API).
    Creator,
    /// Any worker of the farm (the shared worker token).
    FarmWorker,
}

impl Principal {
    /// Whether this caller may act for worker `worker_id`.
    pub fn may_act_as_worker(&self, _worker_id: &str) -> bool {
        match self {
            Principal::FarmWorker => true,
            Principal::Creator => false,
        }
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

/// The coordinator's credentials.
pub struct Auth {
    creator: [u8; 32],
    farm_worker: [u8; 32],
}

/// Tokens are compared through their sha256, so the comparison has the same
/// length (and time) whatever the token's length.
fn fingerprint(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Credentials from the two tokens.
    pub fn new(creator_token: &str, worker_token: &str) -> Self {
        Auth {
            creator: fingerprint(creator_token),
            farm_worker: fingerprint(worker_token),
        }
    }

    /// The principal that `headers` authenticate, if any.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Principal> {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let presented = fingerprint(token.trim());
        // Both comparisons always run.
        let creator = same(&presented, &self.creator);
        let worker = same(&presented, &self.farm_worker);
        if creator {
            Some(Principal::Creator)
        } else if worker {
            Some(Principal::FarmWorker)
        } else {
            None
        }
    }

    /// The principal, if `headers` carry a token that `access` admits.
    pub fn require(&self, headers: &HeaderMap, access: Access) -> Result<Principal, ApiError> {
        let principal = self.authenticate(headers).ok_or_else(|| {
            ApiError::unauthorized(match access {
                Access::Creator => "missing or wrong bearer token: send `Authorization: Bearer <creator.token>`",
                Access::Worker => "missing or wrong bearer token: send `Authorization: Bearer <worker token>` from worker.json",
                Access::Any => "missing or wrong bearer token: send the creator or worker token as `Authorization: Bearer …`",
            })
        })?;
        let admitted = match (access, &principal) {
            (Access::Any, _)
            | (Access::Creator, Principal::Creator)
            | (Access::Worker, Principal::FarmWorker) => true,
            (Access::Creator, Principal::FarmWorker) | (Access::Worker, Principal::Creator) => {
                false
            }
        };
        if !admitted {
            return Err(ApiError::unauthorized(match access {
                Access::Creator => "this endpoint takes the creator token, not a worker token",
                _ => "this endpoint takes a worker token, not the creator token",
            }));
        }
        Ok(principal)
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
            auth.authenticate(&headers("Bearer creator-token-123456")),
            Some(Principal::Creator)
        );
        assert_eq!(
            auth.authenticate(&headers("bearer worker-token-123456")),
            Some(Principal::FarmWorker)
        );
        assert_eq!(
            auth.authenticate(&headers("Bearer worker-token-12345")),
            None
        );
        assert_eq!(
            auth.authenticate(&headers("Basic worker-token-123456")),
            None
        );
        assert_eq!(auth.authenticate(&HeaderMap::new()), None);
        assert!(
            auth.require(&headers("Bearer worker-token-123456"), Access::Creator)
                .is_err()
        );
        assert!(
            auth.require(&headers("Bearer worker-token-123456"), Access::Any)
                .is_ok()
        );
    }
}
