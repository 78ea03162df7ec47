//! Text from the other side (a plugin, a worker, a coordinator) made safe
//! to store and show: clipped to a stated size at a character boundary, with
//! a note of what was cut, and control characters (C0, DEL, C1: terminal
//! escapes such as OSC 52 or CSI 2J, a bell) and bidirectional overrides
//! shown escaped (`\u{1b}`), never passed on raw to a terminal or a log.

/// Whether `c` must not reach a terminal or a log raw.
pub fn is_unsafe(c: char) -> bool {
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
        let clipped = one_line(&big, 4096);
        assert!(clipped.len() <= 4096 + 40, "{}", clipped.len());
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
