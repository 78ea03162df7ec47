//! Text a plugin hands the host (its result message, error, metric names,
//! progress, what it prints), made safe once, where it enters, for every
//! place it goes next: the journal, `result.json`, reports to the
//! coordinator, the status page, logs and the owner's terminal.
//!
//! - clipped to a stated size (at a character boundary, with a note of what
//!   was cut), so a 100 MB error string is a few KiB everywhere after;
//! - control characters (C0, DEL, C1: terminal escapes such as OSC 52 or
//!   CSI 2J, a bell) and bidirectional overrides shown escaped (`\u{1b}`),
//!   never passed on raw.

/// Longest result message or error text kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Longest progress message kept, in bytes.
pub const MAX_PROGRESS_BYTES: usize = 256;

/// Metrics kept from one result (the rest are dropped, with a warning).
pub const MAX_METRICS: usize = 64;

/// Longest metric name kept, in bytes.
pub const MAX_METRIC_NAME_BYTES: usize = 64;

/// Longest line of a plugin's stdout or stderr logged, in bytes.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

pub use pictor_protocol::text::{is_clean_line, lines, one_line};
