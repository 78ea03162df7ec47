//! The GPU capability through real plugins and the real binary, on whatever
//! adapter the machine has (lavapipe in CI).

use serde_json::{Value, json};

use crate::support::{JobFolders, Run, exec, host, plugin};

fn probe(check: &str, params: Value, limits: Value) -> Run {
    let mut params = params;
    params["check"] = json!(check);
    let spec = json!({"version": 1, "id": format!("gpu-{check}"), "kind": "gpuprobe", "params": params, "limits": limits});
    exec("gpuprobe", &spec, &JobFolders::new(), &[])
}

fn success_message(run: &Run) -> String {
    assert_eq!(run.code, 0, "job failed: {}\n{}", run.stdout, run.stderr);
    run.outcome()["success"]["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn matmul_on_the_gpu_matches_the_cpu_on_random_data() {
    for (n, seed) in [(128u32, 7u64), (100, 8)] {
        let f = JobFolders::new();
        let spec = json!({"version": 1, "id": format!("mm-{n}"), "kind": "matmul", "params": {"n": n, "repeat": 2}, "seed": seed});
        let run = exec("matmul", &spec, &f, &[]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        // Check the output file independently of the plugin's own check.
        let n = n as usize;
        let bytes = std::fs::read(f.output.join("c.f32")).unwrap();
        let gpu: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let cpu = matmul::cpu_matmul(
            &matmul::random_matrix(n, seed),
            &matmul::random_matrix(n, seed ^ 0xB),
            n,
        );
        let err = matmul::max_abs_error(&gpu, &cpu);
        assert!(err < 1e-3, "n={n}: max error {err}");
        assert!(
            run.outcome()["success"]["metrics"]["gpu_ms"]
                .as_f64()
                .unwrap()
                > 0.0
        );
    }
}

#[test]
fn adapter_info_reaches_the_plugin() {
    let run = probe("info", json!({}), json!({}));
    assert!(
        success_message(&run).starts_with("adapter "),
        "{}",
        run.stdout
    );
}

#[test]
fn memory_quota_is_a_typed_error_with_the_figures() {
    let run = probe("quota-memory", json!({}), json!({"gpu_memory_mib": 4}));
    let m = success_message(&run);
    assert!(
        m.starts_with(
            "GPU quota exceeded: a 1048576-byte buffer would bring the job to 5242880 bytes"
        ),
        "{m}"
    );
    assert!(m.ends_with("its quota is 4194304"), "{m}");
}

#[test]
fn buffer_count_quota() {
    let m = success_message(&probe(
        "quota-buffers",
        json!({}),
        json!({"gpu_buffers": 8}),
    ));
    assert_eq!(
        m,
        "GPU quota exceeded: the job already holds 8 buffers, its quota is 8"
    );
}

#[test]
fn gpu_objects_per_job_quota() {
    let m = success_message(&probe("quota-objects", json!({}), json!({})));
    assert_eq!(
        m,
        "GPU quota exceeded: a job may hold at most 4096 shader modules, pipelines and bind groups"
    );
}

#[test]
fn commands_per_submit_quota() {
    let m = success_message(&probe("quota-commands", json!({}), json!({})));
    assert_eq!(
        m,
        "GPU quota exceeded: 2049 commands in one submit, the quota is 1024"
    );
}

#[test]
fn workgroups_per_dispatch_quota() {
    let m = success_message(&probe(
        "quota-workgroups",
        json!({}),
        json!({"gpu_workgroups_per_dispatch": 100000}),
    ));
    assert!(
        m.contains("4294836225 workgroups in one dispatch, the quota is 100000"),
        "{m}"
    );
}

#[test]
fn invalid_wgsl_reports_line_and_column() {
    let m = success_message(&probe("invalid-wgsl", json!({}), json!({})));
    assert!(m.starts_with("invalid shader: line 3, column"), "{m}");
    assert!(m.contains("u32"), "{m}");
}

#[test]
fn out_of_bounds_writes_stay_inside_their_buffer() {
    assert_eq!(
        success_message(&probe("out-of-bounds", json!({}), json!({}))),
        "neighbour intact"
    );
}

#[test]
fn submission_past_its_gpu_time_quota_ends_the_job() {
    let run = probe("long-kernel", json!({}), json!({"gpu_submission_ms": 100}));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.failure_kind(), "gpu-timeout");
    assert!(
        run.failure_message().contains("100 ms quota"),
        "{}",
        run.failure_message()
    );
}

#[test]
fn without_a_gpu_the_plugin_gets_unavailable() {
    let spec =
        json!({"version": 1, "id": "nogpu", "kind": "gpuprobe", "params": {"check": "info"}});
    let run = exec("gpuprobe", &spec, &JobFolders::new(), &["--gpu", "none"]);
    assert_eq!(run.code, 1);
    assert!(
        run.failure_message().contains("no GPU: GPU disabled"),
        "{}",
        run.failure_message()
    );
}

#[test]
fn jobs_that_do_not_import_gpu_never_open_a_device() {
    let run = exec(
        "hello",
        &json!({"version": 1, "id": "cpu-only", "kind": "hello"}),
        &JobFolders::new(),
        &[],
    );
    assert_eq!(run.code, 0);
    assert!(!run.stderr.contains("GPU device opened"), "{}", run.stderr);
    let out = host()
        .args(["plugin", "inspect", "--json"])
        .arg(plugin("gpuprobe"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gpu_import = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "pictor:plugin/gpu@0.2.0");
    assert_eq!(
        gpu_import.map(|i| &i["granted"]),
        Some(&json!(true)),
        "{report}"
    );
}

#[test]
fn gpu_list_names_adapters_and_nvml() {
    let out = host().args(["gpu", "list"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.starts_with("[0] "), "{stdout}");
    assert!(
        stdout.contains("NVML not available: ") || stdout.contains("NVML: driver"),
        "{stdout}"
    );
    let out = host().args(["gpu", "list", "--json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list["adapters"][0]["limits"]["max_buffer_size"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn a_200000_term_expression_is_an_invalid_shader_not_a_crash() {
    let m = success_message(&probe("deep-shader", json!({}), json!({})));
    assert!(m.starts_with("invalid shader: line 3, column "), "{m}");
    assert!(m.contains("nested more than 256 levels deep"), "{m}");
}

#[test]
fn a_kernel_that_never_ends_fails_its_job_and_exec_still_exits() {
    let started = std::time::Instant::now();
    let run = probe(
        "endless-loop",
        json!({}),
        json!({"gpu_submission_ms": 1000, "timeout_s": 60}),
    );
    assert_eq!(run.failure_kind(), "gpu-timeout", "{}", run.stdout);
    // exec leaves the stuck device behind instead of waiting for it.
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(45),
        "exec took {took:?}"
    );
}

/// The peak resident memory of `child` (VmHWM), read until it exits.
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    let status = format!("/proc/{}/status", child.id());
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = peak.max(
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    peak
}

#[test]
fn writes_without_a_submit_cannot_grow_host_memory() {
    // 32 MiB written again and again, never submitted: before the host
    // flushed staged writes this grew the host by GiBs.
    let f = JobFolders::new();
    let spec = json!({"version": 1, "id": "no-submit", "kind": "gpuprobe", "params": {"check": "write-no-submit", "mib": 32},
                      "limits": {"timeout_s": 8, "memory_mib": 256, "gpu_memory_mib": 64}});
    let job = f.job(&spec);
    let mut child = crate::support::exec_command("gpuprobe", &job, &f)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let peak = peak_rss_kib(&mut child);
    let out = child.wait_with_output().unwrap();
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["failure"]["kind"], "timed-out", "{outcome}");
    // Guest memory (~70 MiB used of 256) + GPU buffer (64 MiB, in host RAM
    // on a software adapter) + staging (at most 64 MiB before a flush, plus
    // the write in hand) + the runtime and driver.
    assert!(peak < 900 << 10, "host peak RSS {} MiB", peak >> 10);
}
