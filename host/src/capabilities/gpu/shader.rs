//! WGSL checks before a shader reaches the driver: parse and validate with
//! naga, and report the first problem with its line and column.

/// Largest WGSL source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// Parses and validates `source`; the error reads `line L, column C: …`.
pub fn validate_wgsl(source: &str) -> Result<(), String> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(format!("shader source is {} bytes, the limit is {MAX_SOURCE_BYTES}", source.len()));
    }
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        let at = e.location(source).map(|l| format!("line {}, column {}: ", l.line_number, l.line_position));
        format!("{}{}", at.unwrap_or_default(), e.message())
    })?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
        .validate(&module)
        .map_err(|e| {
            let at = e
                .spans()
                .next()
                .map(|(span, _)| span.location(source))
                .map(|l| format!("line {}, column {}: ", l.line_number, l.line_position));
            let mut message = e.as_inner().to_string();
            let mut source_err = std::error::Error::source(e.as_inner());
            while let Some(inner) = source_err {
                message.push_str(": ");
                message.push_str(&inner.to_string());
                source_err = inner.source();
            }
            format!("{}{message}", at.unwrap_or_default())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_and_type_errors_have_line_and_column() {
        assert_eq!(validate_wgsl("@compute @workgroup_size(1) fn main() {}"), Ok(()));
        let err = validate_wgsl("@compute @workgroup_size(1)\nfn main() {\n  let x = 1\n}").unwrap_err();
        assert!(err.starts_with("line 4, column 1:") || err.starts_with("line 3"), "{err}");
        let err = validate_wgsl("@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = 1.5;\n}").unwrap_err();
        assert!(err.starts_with("line 3,"), "{err}");
    }
}
