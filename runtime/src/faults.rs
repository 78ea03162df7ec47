//! Crash points for end-to-end tests: with `PICTOR_FAULT=<point>` in its
//! environment, the process kills itself (`SIGKILL`, as `kill -9` would) when
//! it reaches that point, so a test can prove the spool, journal and
//! checkpoints survive a crash at exactly that moment. Without the variable
//! every point is a no-op (one cached environment read).
//!
//! Points: `claim-after-mkdir`, `claim-after-rename`, `finish-after-result`,
//! `publish-after-rename`, `checkpoint-after-write`.

use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub const FAULT_VAR: &str = "PICTOR_FAULT";

/// Kills the process if `PICTOR_FAULT` names `point`.
pub fn crash_point(point: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(FAULT_VAR).ok());
    if chosen.as_deref() == Some(point) {
        tracing::warn!(point, "test fault: killing the process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; should delivery lag, never go on.
        std::process::abort();
    }
}
