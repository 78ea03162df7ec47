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

/// Whether `c` must not reach a terminal or a log raw.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    let _ = write!(out, "\\u{{{:x}}}", c as u32);
}

/// `text` on one line: clipped to `max` bytes, every control character
/// (newlines included) and bidi override escaped.
pub fn one_line(text: &str, max: usize) -> String {
    clean(text, max, false)
}

/// `text` as lines: like [`one_line`] but newlines and tabs are kept.
pub fn lines(text: &str, max: usize) -> String {
    clean(text, max, true)
}

fn clean(text: &str, max: usize, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 32);
    for (at, c) in text.char_indices() {
        let before = out.len();
        if is_unsafe(c) && !(keep_lines && (c == '\n' || c == '\t')) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            out.push_str(&format!("… [{} more bytes clipped]", text.len() - at));
            return out;
        }
    }
    out
}

/// Whether `text` is already what [`one_line`] would make of it.
pub fn is_clean_line(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(is_unsafe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_nobody_raw() {
        let nasty = "a\u{1b}]52;c;cHduZWQ=\u{7}b\u{1b}[2Jc\u{9b}d\u{202e}e\r\n";
        let line = one_line(nasty, 1000);
        assert!(!line.chars().any(is_unsafe), "{line:?}");
        assert_eq!(
            line,
            "a\\u{1b}]52;c;cHduZWQ=\\u{7}b\\u{1b}[2Jc\\u{9b}d\\u{202e}e\\u{d}\\u{a}"
        );
        assert_eq!(lines("x\ny\tz\u{1b}", 100), "x\ny\tz\\u{1b}");
        assert!(is_clean_line(&line, 1000));
        assert!(!is_clean_line(nasty, 1000));
    }

    #[test]
    fn clips_at_a_character_boundary_and_says_how_much() {
        let big = "é".repeat(5_000_000);
        let clipped = one_line(&big, MAX_MESSAGE_BYTES);
        assert!(clipped.len() <= MAX_MESSAGE_BYTES + 40, "{}", clipped.len());
        assert!(
            clipped.ends_with("… [9995904 more bytes clipped]"),
            "{}",
            &clipped[clipped.len() - 40..]
        );
        assert_eq!(one_line("short", 10), "short");
        // An escape is never cut in half.
        assert_eq!(one_line("ab\u{1b}", 4), "ab… [1 more bytes clipped]");
    }
}
