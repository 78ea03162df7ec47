//! Property tests of the host's untrusted inputs: `worker.json`, job specs
//! and coordinator leases, each a valid document with one field replaced by
//! a hostile value (wrong types, huge or negative numbers, control
//! characters, 100 KB strings, nesting), plus raw bytes and deep nesting.
//!
//! What must hold for every input: no panic, and a refusal is an error an
//! owner can read — at most [`MAX_ERROR_BYTES`], no raw control character
//! but newlines and tabs. The case count is fixed (`PROPTEST_CASES` raises it), so
//! the run is bounded in the test command.

use proptest::prelude::*;
use serde_json::Value;

/// Longest error message a hostile input may produce.
pub const MAX_ERROR_BYTES: usize = 4096;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Asserts `error` is readable: bounded, and no control character but
/// `\n` and `\t` (which no terminal takes for an escape).
pub fn assert_readable(error: &str) {
    assert!(!error.is_empty(), "an empty error");
    assert!(
        error.len() <= MAX_ERROR_BYTES,
        "a {}-byte error: {}…",
        error.len(),
        error.chars().take(200).collect::<String>()
    );
    assert!(
        !error
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "raw control characters in the error: {error:?}"
    );
}

/// A short string of any characters, controls and bidi overrides included.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        Just("\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("a\u{202e}b\u{0}c".to_string()),
        Just(String::new()),
    ]
}

/// Any JSON value a hostile writer might put in a field.
pub fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(-1)),
        Just(Value::from(0)),
        nasty_string().prop_map(Value::from),
        // 5–15 KB, escapes included: echoed back whole, it would flood a terminal.
        (1usize..4).prop_map(|n| Value::from("\u{1b}[2Jxxxxxxxx".repeat(n * 400))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `base` with the field at `path` (object keys and array indexes, `/`
/// separated) set to `value`, or removed when `value` is `None`; missing
/// objects on the way are created.
pub fn with_field(base: &Value, path: &str, value: Option<Value>) -> Value {
    let mut doc = base.clone();
    let parts: Vec<&str> = path.split('/').collect();
    let (last, parents) = parts.split_last().expect("a path has a last part");
    let mut at = &mut doc;
    for part in parents {
        at = match array_index(at, part) {
            Some(i) => &mut at.as_array_mut().expect("an array")[i],
            None => object(at).entry(part.to_string()).or_insert(Value::Null),
        };
    }
    match (array_index(at, last), value) {
        (Some(i), Some(v)) => at.as_array_mut().expect("an array")[i] = v,
        (Some(i), None) => {
            at.as_array_mut().expect("an array").remove(i);
        }
        (None, Some(v)) => {
            object(at).insert(last.to_string(), v);
        }
        (None, None) => {
            object(at).remove(*last);
        }
    }
    doc
}

/// `part` as an index into `value`, if `value` is an array that long.
fn array_index(value: &Value, part: &str) -> Option<usize> {
    part.parse()
        .ok()
        .filter(|&i| value.as_array().is_some_and(|a| i < a.len()))
}

/// `value` as an object, replacing it with an empty one if it is not.
fn object(value: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(serde_json::Map::new());
    }
    value.as_object_mut().expect("made an object")
}

/// A hostile change to one of `paths`: a new value, or the field removed.
pub fn mutation(
    paths: &'static [&'static str],
) -> impl Strategy<Value = (&'static str, Option<Value>)> {
    (
        prop::sample::select(paths),
        prop::option::weighted(0.9, hostile_value()),
    )
}

/// JSON text nested `depth` arrays deep.
pub fn deeply_nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn with_field_sets_removes_and_creates() {
    let base = serde_json::json!({"a": {"b": 1}, "list": [{"x": 1}, {"x": 2}]});
    assert_eq!(with_field(&base, "a/b", Some(Value::from(2)))["a"]["b"], 2);
    assert!(with_field(&base, "a/b", None)["a"].get("b").is_none());
    assert_eq!(
        with_field(&base, "list/1/x", Some(Value::from("y")))["list"][1]["x"],
        "y"
    );
    assert_eq!(
        with_field(&base, "new/deep", Some(Value::from(3)))["new"]["deep"],
        3
    );
    assert_eq!(
        with_field(&base, "list/0", None)["list"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
