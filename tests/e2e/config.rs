//! `pictor-host config check`.

use crate::support::{host, repo_root};

#[test]
fn sample_config_is_valid_and_a_typo_is_named_with_a_suggestion() {
    let sample = repo_root().join("fixtures/worker.json");
    let out = host()
        .args(["config", "check"])
        .arg(&sample)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("worker       wkr-sample-0001 (Sample worker)"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("worker.json");
    let text = std::fs::read_to_string(&sample)
        .unwrap()
        .replace("\"wallet\": \"bc1q", "\"walet\": \"bc1q");
    std::fs::write(&bad, text).unwrap();
    let out = host().args(["config", "check"]).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("worker.json"), "{stderr}");
    assert!(
        stderr.contains("unknown field `walet`") && stderr.contains("did you mean `wallet`?"),
        "{stderr}"
    );
}
