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
    let path = dir.path().join("wants-sockets.wasm");
    let wat = r#"(component
        (import "wasi:sockets/tcp@0.2.6" (instance))
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
            .contains("`wasi:sockets/tcp@0.2.6` which the host does not grant")
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
