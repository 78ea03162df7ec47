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
    assert_ne!(
        run.code, 0,
        "attack {name} must fail the job:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("ESCAPED"),
        "attack {name} escaped the sandbox:\n{}",
        run.stdout
    );
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
    assert!(
        run.failure_message()
            .contains("the limit is 67108864 bytes"),
        "{}",
        run.failure_message()
    );
}

#[test]
fn deep_recursion_traps_with_a_backtrace() {
    let f = JobFolders::new();
    let run = attack(&f, "deep-recursion", "", json!({}));
    assert_eq!(run.failure_kind(), "trap");
    assert!(
        run.failure_message().contains("stack overflow"),
        "{}",
        run.failure_message()
    );
    let detail = run.outcome()["failure"]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("recurse"), "{detail}");
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let f = JobFolders::new();
    let run = attack(&f, "panic", "", json!({}));
    assert_eq!(run.failure_kind(), "trap");
    assert!(
        run.failure_message()
            .contains("panicked on purpose (job attack-panic)"),
        "{}",
        run.failure_message()
    );
}

#[test]
fn writing_outside_output_with_dotdot_is_blocked() {
    let f = JobFolders::new();
    let run = attack(&f, "write-dotdot", "escaped.txt", json!({}));
    assert!(
        run.failure_message().starts_with("blocked:"),
        "{}",
        run.failure_message()
    );
    assert!(!f.root.path().join("escaped.txt").exists());
}

#[test]
fn writing_to_an_absolute_host_path_is_blocked() {
    let f = JobFolders::new();
    let target = f.root.path().join("absolute.txt");
    let run = attack(&f, "write-absolute", target.to_str().unwrap(), json!({}));
    assert!(
        run.failure_message().starts_with("blocked:"),
        "{}",
        run.failure_message()
    );
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
    assert!(
        run.failure_message().starts_with("blocked:"),
        "{}",
        run.failure_message()
    );
    assert!(!victim.join("pwned.txt").exists());

    for link in ["link/secret.txt", "relative-link"] {
        let f2 = JobFolders {
            root: tempfile::tempdir().unwrap(),
            input: f.input.clone(),
            output: f.root.path().join(format!("out-{}", link.len())),
        };
        let run = attack(&f2, "read-through-symlink", link, json!({}));
        assert!(
            run.failure_message().starts_with("blocked:"),
            "{link}: {}",
            run.failure_message()
        );
    }
}

#[test]
fn etc_passwd_cannot_be_read() {
    let f = JobFolders::new();
    let run = attack(&f, "read-passwd", "", json!({}));
    assert!(
        run.failure_message().starts_with("blocked:"),
        "{}",
        run.failure_message()
    );
}

#[test]
fn symlinks_left_in_output_are_never_followed() {
    for target in ["/etc/passwd", "../../../../../../etc/passwd"] {
        let f = JobFolders::new();
        let run = attack(&f, "output-symlink", target, json!({}));
        // Either WASI refuses to create it, or the host finds and removes it.
        let kind = run.failure_kind();
        assert!(
            kind == "failed" || kind == "bad-output",
            "{target}: {kind}: {}",
            run.failure_message()
        );
        assert!(
            f.output.join("leak").symlink_metadata().is_err(),
            "{target}: symlink left in output"
        );
        assert!(run.outcome()["outputs"].as_array().unwrap().is_empty());
    }
}

#[test]
fn output_bomb_is_stopped_at_the_quota() {
    let f = JobFolders::new();
    let run = attack(
        &f,
        "output-bomb",
        "",
        json!({"output_mib": 16, "timeout_s": 60}),
    );
    assert_eq!(run.failure_kind(), "output-quota");
    assert!(
        run.failure_message()
            .contains("the limit is 16777216 bytes"),
        "{}",
        run.failure_message()
    );
    let written = std::fs::metadata(f.output.join("bomb.bin")).unwrap().len();
    // Every write is counted before it happens: not one chunk past the quota.
    assert!(written <= 16 << 20, "{written} bytes written");
}

/// Bytes the files under `dir` take on disk (`du`, which walks any depth).
fn disk_use(dir: &std::path::Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "du: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn writing_on_through_an_unlinked_file_is_held_to_the_quota() {
    // A size poll never sees a file that is unlinked but still open; the
    // host counts the writes themselves.
    let f = JobFolders::new();
    let run = attack(
        &f,
        "unlinked-write",
        "",
        json!({"output_mib": 16, "timeout_s": 20}),
    );
    assert_eq!(
        run.failure_kind(),
        "output-quota",
        "{}",
        run.failure_message()
    );
    let secs = run.outcome()["duration_s"].as_f64().unwrap();
    assert!(secs < 15.0, "stopped after {secs} s, not at the quota");
    assert!(run.outcome()["outputs"].as_array().unwrap().is_empty());
}

#[test]
fn descriptors_are_capped_per_job_whether_held_as_files_or_streams() {
    for attack_name in ["fd-hoard", "stream-hoard"] {
        let f = JobFolders::new();
        std::fs::write(f.input.join("x.txt"), "x").unwrap();
        let run = attack(
            &f,
            attack_name,
            "x.txt",
            json!({"open_files": 64, "timeout_s": 20}),
        );
        assert_eq!(
            run.failure_kind(),
            "resource-limit",
            "{attack_name}: {}",
            run.failure_message()
        );
        assert_eq!(
            run.failure_message(),
            "resource limit exceeded: more than 64 files open at once"
        );
        assert_eq!(run.outcome()["failure"]["retryable"], false);
    }
}

#[test]
fn host_resources_held_at_once_are_capped_even_without_descriptors() {
    let f = JobFolders::new();
    let run = attack(&f, "pollable-hoard", "", json!({"timeout_s": 20}));
    assert_eq!(
        run.failure_kind(),
        "resource-limit",
        "{}",
        run.failure_message()
    );
    assert!(
        run.failure_message().contains("too many host resources"),
        "{}",
        run.failure_message()
    );
    assert_eq!(run.outcome()["failure"]["retryable"], false);
}

#[test]
fn a_tree_deeper_than_path_max_is_refused_named_and_never_retried() {
    let f = JobFolders::new();
    let run = attack(
        &f,
        "deep-output",
        "",
        json!({"output_mib": 16, "timeout_s": 60}),
    );
    // Writing at the bottom of 2,500 folders is counted like any write.
    assert_eq!(
        run.failure_kind(),
        "output-quota",
        "{}",
        run.failure_message()
    );
    assert!(
        disk_use(&f.output) < (16 << 20) + (64 << 20),
        "{} bytes on disk",
        disk_use(&f.output)
    );

    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "deep", "kind": "adversary",
                      "params": {"attack": "deep-output", "depth": 5000, "stop_after_folders": true}});
    let run = exec("adversary", &spec, &f, &[]);
    assert_eq!(
        run.failure_kind(),
        "bad-output",
        "{}",
        run.failure_message()
    );
    assert!(
        run.failure_message()
            .contains("nested 33 folders deep in /output; the limit is 32"),
        "{}",
        run.failure_message()
    );
    assert_eq!(run.outcome()["failure"]["retryable"], false);
}

#[test]
fn huge_plugin_text_is_clipped_before_it_is_printed_or_stored() {
    for (attack_name, path) in [
        ("long-error", "/failure/message"),
        ("long-summary", "/success/message"),
    ] {
        let f = JobFolders::new();
        let spec = json!({"version": 1, "id": "long", "kind": "adversary",
                          "params": {"attack": attack_name, "size": 50_000_000}, "limits": {"memory_mib": 512}});
        let run = exec("adversary", &spec, &f, &[]);
        let outcome = run.outcome();
        let text = outcome
            .pointer(path)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        assert!(
            text.len() < 5000 && text.contains("more bytes clipped]"),
            "{attack_name}: {} bytes",
            text.len()
        );
        assert!(
            run.stdout.len() < 64 << 10,
            "{attack_name}: {} bytes printed",
            run.stdout.len()
        );
        assert!(
            run.stderr.len() < 64 << 10,
            "{attack_name}: {} bytes logged",
            run.stderr.len()
        );
        if attack_name == "long-summary" {
            let metrics = outcome["success"]["metrics"].as_object().unwrap();
            assert_eq!(metrics.len(), 64);
            // Each name was 110 bytes; the host keeps 64 and says so.
            for name in metrics.keys() {
                assert!(
                    name.len() <= 64 + 40 && name.ends_with("more bytes clipped]"),
                    "metric name not clipped: {name}"
                );
            }
        }
    }
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "long", "kind": "adversary",
                      "params": {"attack": "long-progress", "size": 50_000_000}, "limits": {"memory_mib": 512}});
    let run = exec("adversary", &spec, &f, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.outcome()["progress"]["message"].as_str().unwrap().len() < 300);
}

#[test]
fn terminal_escapes_from_a_plugin_never_reach_the_terminal_raw() {
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "escapes", "kind": "adversary", "params": {"attack": "terminal-escapes"}});
    // Human output (not --json), as an owner sees it, and the log.
    let out = crate::support::host()
        .arg("exec")
        .arg("--plugin")
        .arg(crate::support::plugin("adversary"))
        .arg("--job")
        .arg(f.job(&spec))
        .arg("--input")
        .arg(&f.input)
        .arg("--output")
        .arg(&f.output)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let printed = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(
        !printed.contains(&0x1b) && !printed.contains(&0x07),
        "raw escape printed:\n{}",
        String::from_utf8_lossy(&printed)
    );
    let text = String::from_utf8_lossy(&printed);
    assert!(text.contains("error \\u{1b}]52;c;"), "{text}");
    assert!(text.contains("stdout \\u{1b}]52"), "{text}");
}

#[test]
fn stdout_flood_is_capped_in_the_log_and_the_job_still_succeeds() {
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "flood", "kind": "adversary", "params": {"attack": "stdout-flood"}});
    let run = exec("adversary", &spec, &f, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("log cap was dropped"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        run.stderr.len() < 3 << 20,
        "log is {} bytes",
        run.stderr.len()
    );
}

#[test]
fn listings_files_and_sparse_sizes_are_held_to_their_bounds() {
    let f = JobFolders::new();
    let run = attack(&f, "listing-hoard", "", json!({"timeout_s": 20}));
    assert_eq!(run.failure_kind(), "resource-limit", "{}", run.stdout);
    assert!(
        run.failure_message()
            .contains("more than 16 directory listings open at once"),
        "{}",
        run.failure_message()
    );

    let f = JobFolders::new();
    let run = attack(
        &f,
        "file-flood",
        "",
        json!({"output_files": 100, "timeout_s": 20}),
    );
    assert_eq!(run.failure_kind(), "output-quota", "{}", run.stdout);
    let created = std::fs::read_dir(&f.output).unwrap().count();
    assert!(created <= 100, "{created} files made it to /output");

    // set-size is charged at full length: a sparse 1 TiB file is over 16 MiB.
    let f = JobFolders::new();
    let run = attack(
        &f,
        "sparse-file",
        "",
        json!({"output_mib": 16, "timeout_s": 20}),
    );
    assert_eq!(run.failure_kind(), "output-quota", "{}", run.stdout);
}

#[test]
fn a_line_that_never_ends_is_logged_in_pieces_of_at_most_4_kib() {
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "endless-line", "kind": "adversary",
                      "params": {"attack": "endless-line", "size": 1 << 20}});
    let run = exec("adversary", &spec, &f, &[]);
    assert_eq!(run.code, 0, "{}", &run.stderr[..run.stderr.len().min(2000)]);
    let longest = run.stderr.lines().map(str::len).max().unwrap_or(0);
    // 4096 bytes of the plugin's text plus the log line's own prefix.
    assert!(longest < 4096 + 512, "a {longest}-byte log line");
    assert!(run.stderr.contains("yyyy"), "the text is logged");
}

#[test]
fn a_checkpoint_over_the_quota_is_refused_in_the_guest_and_the_job_goes_on() {
    let f = JobFolders::new();
    let checkpoint = f.root.path().join("big.ckpt");
    let spec = json!({"version": 1, "id": "big-checkpoint", "kind": "adversary",
                      "params": {"attack": "big-checkpoint", "size": (1 << 20) + 1},
                      "limits": {"checkpoint_mib": 1}});
    let run = exec(
        "adversary",
        &spec,
        &f,
        &["--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let message = run.outcome()["success"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(
            "big: refused (failed: checkpoint of 1048577 bytes is over the job's 1048576-byte quota)"
        ) && message.ends_with("small: saved"),
        "{message}"
    );
    assert_eq!(
        run.outcome()["checkpoints_saved"],
        1,
        "only the small save counts"
    );
    assert_eq!(
        std::fs::read(&checkpoint).unwrap_or_default(),
        b"tiny",
        "the refused blob never reached the file"
    );
}

/// Standard toolchains import `wasi:sockets` whether or not a plugin uses
/// it, so a job links it, and every call that would reach the network is
/// refused at run time, and logged.
#[test]
fn a_job_that_opens_sockets_is_denied_and_logged() {
    let f = JobFolders::new();
    let run = attack(&f, "network", "", json!({}));
    assert_eq!(run.failure_kind(), "failed", "{}", run.stderr);
    assert_eq!(
        run.failure_message(),
        "blocked: create-tcp-socket: access-denied; create-udp-socket: access-denied; \
         resolve-addresses: access-denied"
    );
    for attempt in [
        "attempt=create a TCP socket",
        "attempt=create a UDP socket",
        "attempt=look up the name `example.com`",
    ] {
        assert!(
            run.stderr.contains(attempt)
                && run
                    .stderr
                    .contains("plugin network access refused: jobs get no network"),
            "the host logs `{attempt}`:\n{}",
            run.stderr
        );
    }
}
