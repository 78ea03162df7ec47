//! What every client of the protocol does with a reply, whatever HTTP
//! library it uses: check the version header, and turn an error reply into
//! an [`ErrorBody`] whose words are safe to show.

use crate::api::{ErrorBody, ErrorCode, PROTOCOL_VERSION};
use crate::text;

/// Longest error message from the other side that is shown or logged;
/// past it the message is clipped (with a note) and its controls escaped.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1000;

/// The version a reply's [`VERSION_HEADER`](crate::api::VERSION_HEADER)
/// names when it is not [`PROTOCOL_VERSION`], clipped and escaped for
/// showing; `None` when it matches or is absent (object storage and
/// proxies send none).
pub fn version_mismatch(header: Option<&[u8]>) -> Option<String> {
    let value = String::from_utf8_lossy(header?);
    if value.trim().parse::<u32>().ok() == Some(PROTOCOL_VERSION) {
        return None;
    }
    Some(text::one_line(&value, 32))
}

/// The [`ErrorBody`] of an error reply with HTTP `status` (e.g. `404 Not
/// Found`, as shown) and `bytes` (the body, or its first part). A body
/// that is not an `ErrorBody` becomes one (`internal` for a 5xx,
/// `unknown` otherwise) with the status and the start of the text. The
/// message is always one clean line of at most
/// [`MAX_ERROR_MESSAGE_BYTES`].
pub fn error_body(status: u16, status_text: &str, bytes: &[u8]) -> ErrorBody {
    let mut body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        ErrorBody {
            error: if (500..600).contains(&status) {
                ErrorCode::Internal
            } else {
                ErrorCode::Unknown
            },
            message: if text.is_empty() {
                status_text.to_string()
            } else {
                format!("{status_text}: {}", text::one_line(text, 200))
            },
            missing: Vec::new(),
        }
    });
    body.message = text::one_line(&body.message, MAX_ERROR_MESSAGE_BYTES);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_as_numbers_and_shown_clean() {
        assert_eq!(version_mismatch(None), None);
        assert_eq!(version_mismatch(Some(b"1")), None);
        assert_eq!(version_mismatch(Some(b" 1 ")), None);
        assert_eq!(version_mismatch(Some(b"2")).as_deref(), Some("2"));
        let shown = version_mismatch(Some("\u{1b}[2J9".as_bytes())).unwrap();
        assert!(!shown.contains('\u{1b}'), "{shown}");
        let long = version_mismatch(Some(&[b'7'; 500])).unwrap();
        assert!(long.len() < 80, "{}", long.len());
    }

    #[test]
    fn error_bodies_parse_or_are_made_and_always_come_out_clean() {
        let body = error_body(
            404,
            "404 Not Found",
            br#"{"error":"not_found","message":"no job x\u001b]52;c;AA==\u0007"}"#,
        );
        assert_eq!(body.error, ErrorCode::NotFound);
        assert!(!body.message.contains('\u{1b}') && body.message.starts_with("no job x"));

        let made = error_body(502, "502 Bad Gateway", b"<html>upstream down</html>\n");
        assert_eq!(made.error, ErrorCode::Internal);
        assert_eq!(made.message, "502 Bad Gateway: <html>upstream down</html>");
        let empty = error_body(418, "418 I'm a teapot", b"");
        assert_eq!(
            (empty.error, empty.message.as_str()),
            (ErrorCode::Unknown, "418 I'm a teapot")
        );

        let huge = format!(
            r#"{{"error":"internal","message":"{}"}}"#,
            "m".repeat(100_000)
        );
        let clipped = error_body(500, "500", huge.as_bytes());
        assert!(clipped.message.len() < MAX_ERROR_MESSAGE_BYTES + 64);
        assert!(clipped.message.ends_with("more bytes clipped]"));
    }
}
