//! Each attack of the `adversary` plugin, tried for real through the binary.
//! Every one must end as a failed job with a clear reason, touch nothing
//! outside the job's folders, and leave the host able to run the next job.

use serde_json::{Value, json};

use crate::support::{JobFolders, Run, exec};

fn attack(f: &JobFolders, name: &str, target: &str, limits: Value) -> Run {
    let spec = json!({
        "version": 1, "id": format!("attack-{name}"), "kind": "adversary",
        "params": {"attack": name, "target": target}, "limits": limits,
    });
    let run = exec("adversary", &spec, f, &[]);
    assert_ne!(run.code, 0, "attack {name} must fail the job:\n{}", run.stdout);
    assert!(!run.stdout.contains("ESCAPED"), "attack {name} escaped the sandbox:\n{}", run.stdout);
    run
}

#[test]
fn infinite_loop_times_out() {
    let f = JobFolders::new();
    let run = attack(&f, "infinite-loop", "", json!({"timeout_s": 1}));
    assert_eq!(run.failure_kind(), "timed-out");
    assert_eq!(run.failure_message(), "timed out after 1 s");
}

#[test]
fn blocking_host_call_times_out_too() {
    let f = JobFolders::new();
    let run = attack(&f, "sleep-forever", "", json!({"timeout_s": 1}));
    assert_eq!(run.failure_kind(), "timed-out");
    let secs = run.outcome()["duration_s"].as_f64().unwrap();
    assert!((1.0..5.0).contains(&secs), "stopped after {secs} s");
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let f = JobFolders::new();
    let run = attack(&f, "memory-bomb", "", json!({"memory_mib": 64}));
    assert_eq!(run.failure_kind(), "memory-limit");
    assert!(run.failure_message().contains("the limit is 67108864 bytes"), "{}", run.failure_message());
}

#[test]
fn deep_recursion_traps_with_a_backtrace() {
    let f = JobFolders::new();
    let run = attack(&f, "deep-recursion", "", json!({}));
    assert_eq!(run.failure_kind(), "trap");
    assert!(run.failure_message().contains("stack overflow"), "{}", run.failure_message());
    let detail = run.outcome()["failure"]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("recurse"), "{detail}");
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let f = JobFolders::new();
    let run = attack(&f, "panic", "", json!({}));
    assert_eq!(run.failure_kind(), "trap");
    assert!(run.failure_message().contains("panicked on purpose (job attack-panic)"), "{}", run.failure_message());
}

#[test]
fn writing_outside_output_with_dotdot_is_blocked() {
    let f = JobFolders::new();
    let run = attack(&f, "write-dotdot", "escaped.txt", json!({}));
    assert!(run.failure_message().starts_with("blocked:"), "{}", run.failure_message());
    assert!(!f.root.path().join("escaped.txt").exists());
}

#[test]
fn writing_to_an_absolute_host_path_is_blocked() {
    let f = JobFolders::new();
    let target = f.root.path().join("absolute.txt");
    let run = attack(&f, "write-absolute", target.to_str().unwrap(), json!({}));
    assert!(run.failure_message().starts_with("blocked:"), "{}", run.failure_message());
    assert!(!target.exists());
}

#[test]
fn symlink_planted_in_input_leads_nowhere() {
    let f = JobFolders::new();
    let victim = f.root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("secret.txt"), "owner's file").unwrap();
    std::os::unix::fs::symlink(&victim, f.input.join("link")).unwrap();
    std::os::unix::fs::symlink("../victim/secret.txt", f.input.join("relative-link")).unwrap();

    let run = attack(&f, "write-through-symlink", "link", json!({}));
    assert!(run.failure_message().starts_with("blocked:"), "{}", run.failure_message());
    assert!(!victim.join("pwned.txt").exists());

    for link in ["link/secret.txt", "relative-link"] {
        let f2 = JobFolders { root: tempfile::tempdir().unwrap(), input: f.input.clone(), output: f.root.path().join(format!("out-{}", link.len())) };
        let run = attack(&f2, "read-through-symlink", link, json!({}));
        assert!(run.failure_message().starts_with("blocked:"), "{link}: {}", run.failure_message());
    }
}

#[test]
fn etc_passwd_cannot_be_read() {
    let f = JobFolders::new();
    let run = attack(&f, "read-passwd", "", json!({}));
    assert!(run.failure_message().starts_with("blocked:"), "{}", run.failure_message());
}

#[test]
fn symlinks_left_in_output_are_never_followed() {
    for target in ["/etc/passwd", "../../../../../../etc/passwd"] {
        let f = JobFolders::new();
        let run = attack(&f, "output-symlink", target, json!({}));
        // Either WASI refuses to create it, or the host finds and removes it.
        let kind = run.failure_kind();
        assert!(kind == "failed" || kind == "bad-output", "{target}: {kind}: {}", run.failure_message());
        assert!(f.output.join("leak").symlink_metadata().is_err(), "{target}: symlink left in output");
        assert!(run.outcome()["outputs"].as_array().unwrap().is_empty());
    }
}

#[test]
fn output_bomb_is_stopped_at_the_quota() {
    let f = JobFolders::new();
    let run = attack(&f, "output-bomb", "", json!({"output_mib": 16, "timeout_s": 60}));
    assert_eq!(run.failure_kind(), "output-quota");
    assert!(run.failure_message().contains("the limit is 16777216 bytes"), "{}", run.failure_message());
    let written = std::fs::metadata(f.output.join("bomb.bin")).unwrap().len();
    // Checked every 25 ms: the overshoot is what the disk takes in that time.
    assert!(written < 16 * (1 << 20) + 512 * (1 << 20), "{written} bytes written");
}

#[test]
fn stdout_flood_is_capped_in_the_log_and_the_job_still_succeeds() {
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "flood", "kind": "adversary", "params": {"attack": "stdout-flood"}});
    let run = exec("adversary", &spec, &f, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("log cap was dropped"), "{}", &run.stderr[..run.stderr.len().min(2000)]);
    assert!(run.stderr.len() < 3 << 20, "log is {} bytes", run.stderr.len());
}
