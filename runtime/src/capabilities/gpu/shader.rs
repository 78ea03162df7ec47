//! WGSL checks before a shader reaches the driver: a cheap scan that bounds
//! how deeply expressions nest (naga's front end recurses once per operator
//! of a chain like `1 + 1 + … + 1`, so 200,000 terms overflow any thread's
//! stack and abort the process), then naga's parse and validation, with the
//! first problem reported by line and column.

/// Largest WGSL source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// Deepest expression accepted: operators in one chain plus enclosing
/// brackets and calls. Hand-written and generated kernels stay far below
/// (the shipped plugins' deepest is under 64); naga needs ~1 KiB of stack
/// per level, so this keeps parsing well inside a 2 MiB thread stack.
pub const MAX_EXPRESSION_DEPTH: usize = 256;

/// Why a WGSL source is refused. Every variant but `TooLarge` reads
/// `line L, column C: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShaderError {
    /// Longer than [`MAX_SOURCE_BYTES`] (its length).
    #[error("shader source is {0} bytes, the limit is {MAX_SOURCE_BYTES}")]
    TooLarge(usize),
    /// An expression nested deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error(
        "line {line}, column {column}: expression nested more than {MAX_EXPRESSION_DEPTH} levels deep \
         (split long operator chains into several statements)"
    )]
    TooDeep {
        /// Where the deepest point is (1-based).
        line: usize,
        /// Its column (1-based).
        column: usize,
    },
    /// Not WGSL (naga's parser's words, with line and column).
    #[error("{0}")]
    Syntax(String),
    /// WGSL that does not validate (naga's validator's words, with line
    /// and column when it gives one).
    #[error("{0}")]
    Invalid(String),
}

/// Parses and validates `source`; the error reads `line L, column C: …`.
pub fn validate_wgsl(source: &str) -> Result<(), ShaderError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ShaderError::TooLarge(source.len()));
    }
    check_nesting(source)?;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        let at = e
            .location(source)
            .map(|l| format!("line {}, column {}: ", l.line_number, l.line_position));
        ShaderError::Syntax(format!("{}{}", at.unwrap_or_default(), e.message()))
    })?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
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
        ShaderError::Invalid(format!("{}{message}", at.unwrap_or_default()))
    })?;
    Ok(())
}

/// The deepest expression in `source` by a conservative count, without
/// parsing: within one statement, every operator since the last comma of
/// each open bracket, plus one per open bracket. Comments are skipped.
pub fn expression_depth(source: &str) -> (usize, usize) {
    let bytes = source.as_bytes();
    // Operators since the last comma, per open bracket (the bottom entry is
    // the statement itself).
    let mut frames: Vec<usize> = vec![0];
    let (mut deepest, mut at) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // WGSL block comments nest.
                let mut level = 0usize;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        level += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        level -= 1;
                        i += 2;
                        if level == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'0'..=b'9' => {
                // A number literal, with its `.`, exponent sign and suffix.
                i += 1;
                while i < bytes.len() {
                    let d = bytes[i];
                    let signed_exponent = matches!(d, b'+' | b'-')
                        && matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P');
                    if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || signed_exponent {
                        i += 1;
                    } else {
                        break;
                    }
                }
                continue;
            }
            b';' | b'{' | b'}' => frames = vec![0],
            b'(' | b'[' => frames.push(0),
            b')' | b']' if frames.len() > 1 => {
                frames.pop();
            }
            b',' => {
                if let Some(ops) = frames.last_mut() {
                    *ops = 0;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'^' | b'~' | b'!' | b'<' | b'>'
            | b'=' | b'.' => {
                if let Some(ops) = frames.last_mut() {
                    *ops += 1;
                }
            }
            _ => {}
        }
        let depth = frames.iter().sum::<usize>() + frames.len() - 1;
        if depth > deepest {
            (deepest, at) = (depth, i);
        }
        i += 1;
    }
    (deepest, at)
}

/// Refuses expressions nested deeper than [`MAX_EXPRESSION_DEPTH`].
fn check_nesting(source: &str) -> Result<(), ShaderError> {
    let (depth, at) = expression_depth(source);
    if depth <= MAX_EXPRESSION_DEPTH {
        return Ok(());
    }
    let before = &source[..at.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    Err(ShaderError::TooDeep { line, column })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_and_type_errors_have_line_and_column() {
        assert_eq!(
            validate_wgsl("@compute @workgroup_size(1) fn main() {}"),
            Ok(())
        );
        let err = validate_wgsl("@compute @workgroup_size(1)\nfn main() {\n  let x = 1\n}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 4, column 1:") || err.starts_with("line 3"),
            "{err}"
        );
        let err = validate_wgsl("@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = 1.5;\n}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3,"), "{err}");
    }

    fn kernel(body: &str) -> String {
        format!("@compute @workgroup_size(1)\nfn main() {{\n  {body}\n}}")
    }

    #[test]
    fn a_source_over_a_mebibyte_is_refused_before_it_is_parsed() {
        let comment = format!("// {}\n", "x".repeat(1 << 20));
        let error = validate_wgsl(&kernel(&comment))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("the limit is 1048576"), "{error}");
        assert!(validate_wgsl(&kernel("")).is_ok());
    }

    #[test]
    fn long_operator_chains_are_refused_before_naga_recurses_on_them() {
        // 200,000 terms aborted the worker; on a 2 MiB stack a few thousand did.
        for body in [
            format!("let x = {};", vec!["1"; 200_000].join("+")),
            format!("let x = {}1.0;", "- ".repeat(100_000)),
            format!("let x = {}true;", "!".repeat(100_000)),
            format!(
                "let x = {}1.0{};",
                "abs(".repeat(10_000),
                ")".repeat(10_000)
            ),
        ] {
            let source = kernel(&body);
            let err = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || validate_wgsl(&source))
                .unwrap()
                .join()
                .unwrap()
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("line 3, column "), "{err}");
            assert!(err.contains("nested more than 256 levels"), "{err}");
        }
    }

    #[test]
    fn chains_up_to_the_limit_still_compile_on_a_small_stack() {
        let source = kernel(&format!(
            "let x = {};",
            vec!["1.0"; MAX_EXPRESSION_DEPTH].join(" + ")
        ));
        let result = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || validate_wgsl(&source))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, Ok(()));
        // A long but flat list is not deep.
        let list = (0..4096)
            .map(|i| format!("{i}u"))
            .collect::<Vec<_>>()
            .join(", ");
        let source = format!(
            "const T = array<u32, 4096>({list});\n{}",
            kernel("let x = T[7];")
        );
        assert_eq!(validate_wgsl(&source), Ok(()));
    }

    #[test]
    fn the_shipped_kernels_are_far_below_the_depth_limit() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut checked = 0;
        let kernels = walk(&repo.join("plugins"))
            .into_iter()
            .chain(walk(&repo.join("tests/plugins")));
        for entry in kernels {
            if entry.extension().is_some_and(|e| e == "wgsl") {
                let source = std::fs::read_to_string(&entry).unwrap();
                let (depth, _) = expression_depth(&source);
                assert!(depth < 64, "{}: depth {depth}", entry.display());
                checked += 1;
            }
        }
        assert!(checked >= 10, "found only {checked} WGSL files");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }
}
