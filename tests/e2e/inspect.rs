//! `pictor-host plugin inspect`.

use crate::support::{host, plugin, sha256_hex};

#[test]
fn inspect_prints_identity_world_imports_and_exports() {
    let out = host()
        .args(["plugin", "inspect"])
        .arg(plugin("hello"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256   {}", sha256_hex(&plugin("hello")))),
        "{stdout}"
    );
    assert!(
        stdout.contains("world    pictor:plugin/job@0.2.0 (runs on this host)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("instance pictor:plugin/progress@0.2.0"),
        "{stdout}"
    );
    assert!(stdout.contains("func run"), "{stdout}");
    assert!(!stdout.contains("NOT GRANTED"), "{stdout}");
}

#[test]
fn inspect_flags_imports_the_host_does_not_grant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wants-http.wasm");
    let wat = r#"(component
        (import "wasi:http/outgoing-handler@0.2.6" (instance))
        (core module $m (func (export "run")))
        (core instance $i (instantiate $m))
        (func (export "run") (canon lift (core func $i "run"))))"#;
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    let out = host()
        .args(["plugin", "inspect", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["world"], serde_json::Value::Null);
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("`wasi:http/outgoing-handler@0.2.6` which the host does not grant")
    );
    assert_eq!(report["imports"][0]["granted"], false);

    // And exec refuses to run it, with the same reason.
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"version": 1, "id": "s", "kind": "x"}"#).unwrap();
    let out = host()
        .args(["exec", "--plugin"])
        .arg(&path)
        .arg("--job")
        .arg(&job)
        .arg("--output")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not grant"));
}

/// What standard toolchains import beside what a plugin uses (sockets, the
/// environment) is linked, so the plugin runs, and marked inert. The
/// `adversary` imports `wasi:sockets` (its `network` attack).
#[test]
fn inspect_marks_linked_but_inert_imports() {
    let out = host()
        .args(["plugin", "inspect", "--json"])
        .arg(plugin("adversary"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["world"], "pictor:plugin/job@0.2.0");
    let imports = report["imports"].as_array().unwrap();
    assert!(imports.iter().all(|i| i["granted"] == true), "{imports:?}");
    let inert = |name: &str| {
        imports
            .iter()
            .find(|i| i["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no import {name}: {imports:?}"))["inert"]
            == true
    };
    assert!(inert("wasi:sockets/tcp-create-socket@"));
    assert!(inert("wasi:sockets/ip-name-lookup@"));
    assert!(!inert("wasi:filesystem/types@"));
    assert!(!inert("pictor:plugin/progress@"));

    let out = host()
        .args(["plugin", "inspect"])
        .arg(plugin("adversary"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("wasi:sockets/udp-create-socket@"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.ends_with("   (linked, inert: every call refused or empty)"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("wasi:filesystem/types@"))
        .unwrap();
    assert!(!line.contains("inert"), "{stdout}");
}
