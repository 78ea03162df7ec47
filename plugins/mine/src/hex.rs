//! Hex text ⇄ bytes, as Stratum writes them (lowercase, no prefix).

/// Decodes hex text (either case) into bytes.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!(
            "hex {:?} has an odd number of digits",
            shorten(text)
        ));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!("{:?} is not hex", shorten(text))),
        })
        .collect()
}

/// Decodes exactly `N` bytes of hex.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = decode(text)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("hex {:?} is {len} bytes, expected {N}", shorten(text)))
}

/// A 32-bit number written as 8 hex digits, most significant first
/// (Stratum's `version`, `nbits`, `ntime` and `nonce`).
pub fn decode_u32(text: &str) -> Result<u32, String> {
    Ok(u32::from_be_bytes(decode_array::<4>(text)?))
}

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

/// The first 80 characters of `text`, for error messages.
fn shorten(text: &str) -> &str {
    text.get(..80).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_text() {
        assert_eq!(decode("00ffA0").unwrap(), vec![0, 255, 160]);
        assert_eq!(encode(&[0, 255, 160]), "00ffa0");
        assert_eq!(decode_u32("1d00ffff").unwrap(), 0x1d00_ffff);
        assert!(decode("abc").unwrap_err().contains("odd"));
        assert!(decode("zz").unwrap_err().contains("not hex"));
        assert!(decode_array::<4>("00").unwrap_err().contains("expected 4"));
    }
}
