//! Portal sessions: after the operator logs in with the creator token, the
//! browser holds a random session id in the `pictor_portal` cookie
//! (HttpOnly, SameSite=Strict, path `/portal`); the token itself never
//! goes into a cookie. Sessions live in memory (a restart logs everyone
//! out) for [`SESSION_TTL_MS`], and are looked up by the sha256 of their id.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use sha2::{Digest as _, Sha256};

/// The cookie's name.
pub const COOKIE_NAME: &str = "pictor_portal";

/// How long a session lasts after login.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

/// Most sessions kept at once; the oldest goes first.
pub const MAX_SESSIONS: usize = 1024;

/// Why no session could be made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a portal session: {0}")]
pub struct SessionError(String);

/// The live sessions.
#[derive(Default)]
pub struct Sessions {
    /// sha256 of a session id → when it expires (ms since the Unix epoch).
    live: Mutex<HashMap<[u8; 32], u64>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a session at `now_ms`; returns its id (64 hex digits) for the cookie.
    pub fn create(&self, now_ms: u64) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SessionError(e.to_string()))?;
        let id = hex::encode(bytes);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, expires| *expires > now_ms);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(key(&id), now_ms + SESSION_TTL_MS);
        Ok(id)
    }

    /// Whether `id` is a live session at `now_ms`.
    pub fn is_live(&self, id: &str, now_ms: u64) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&key(id)).is_some_and(|expires| *expires > now_ms)
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&key(id));
    }
}

/// The session id in the request's cookies, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that starts session `id` (`Secure` when the
/// portal is served over https).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/portal; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::new();
        let id = sessions.create(1_000).unwrap();
        assert_eq!(id.len(), 64);
        assert!(sessions.is_live(&id, 2_000));
        assert!(!sessions.is_live("other", 2_000));
        assert!(!sessions.is_live(&id, 1_000 + SESSION_TTL_MS));
        sessions.end(&id);
        assert!(!sessions.is_live(&id, 2_000));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; pictor_portal=abc ; b=2".parse().unwrap());
        assert_eq!(from_headers(&headers).as_deref(), Some("abc"));
        assert!(set_cookie("abc", false).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
    }
}
