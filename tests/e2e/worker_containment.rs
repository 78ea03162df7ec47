//! A worker that jobs cannot take down for good: a kill at each step of
//! claiming, checkpointing, finishing and publishing loses nothing and runs
//! nothing twice; a job that kills the worker every time is failed after
//! three tries; a job cannot ask for more than the owner allows; a hostile
//! output tree leaves nothing behind in `done/`; a full spool stops claims.

use std::os::unix::process::ExitStatusExt;

use serde_json::json;

use crate::worker::{Farm, steps_job};

/// Runs the worker with `PICTOR_FAULT=point` and checks it died there.
fn run_until_killed_at(farm: &Farm, point: &str) {
    let out = farm.run(true).env("PICTOR_FAULT", point).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: the worker was not killed there:\n{stderr}"
    );
    assert!(
        stderr.contains("test fault: killing the process"),
        "{point}:\n{stderr}"
    );
}

/// The names in `folder` of the spool, sorted.
fn listed(farm: &Farm, folder: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(farm.spool().join(folder))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_kill_at_each_crash_point_then_a_restart_finishes_every_job_exactly_once() {
    for point in [
        "claim-after-mkdir",
        "claim-after-rename",
        "checkpoint-after-write",
        "finish-after-result",
        "publish-after-rename",
    ] {
        let farm = Farm::new();
        farm.submit("probe", steps_job("first", 3));
        farm.submit("probe", steps_job("second", 2));
        run_until_killed_at(&farm, point);
        let out = farm.run(true).output().unwrap();
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for job in ["first", "second"] {
            assert_eq!(
                farm.events(job, "finished").len(),
                1,
                "{point}: {job} must finish exactly once: {:#?}",
                farm.journal()
            );
            assert_eq!(farm.result(job)["status"], "succeeded", "{point}: {job}");
        }
        assert_eq!(
            listed(&farm, "done"),
            ["first", "second"],
            "{point}: nothing else is left in done/"
        );
        assert!(
            listed(&farm, "running").is_empty() && listed(&farm, "incoming").is_empty(),
            "{point}"
        );
        // Published jobs keep their result and outputs, not their inputs.
        assert!(
            !farm.spool().join("done/first/checkpoint").exists(),
            "{point}"
        );
    }
}

#[test]
fn a_job_that_takes_the_worker_down_three_times_is_failed_and_the_next_job_runs() {
    let farm = Farm::new();
    farm.submit("probe", steps_job("killer", 5));
    farm.submit("probe", steps_job("next", 1));
    for _ in 0..3 {
        run_until_killed_at(&farm, "checkpoint-after-write");
    }
    let out = farm.run(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let failure = &farm.result("killer")["failure"];
    assert_eq!(failure["kind"], "worker-crash", "{failure}");
    assert_eq!(failure["retryable"], false, "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .starts_with("3 attempts of this job ended with the worker itself stopping"),
        "{failure}"
    );
    assert_eq!(
        farm.events("killer", "started").len(),
        4,
        "three crashes and the refusal"
    );
    assert_eq!(farm.result("next")["status"], "succeeded");
    assert!(
        stderr.contains("the job stopped this worker every time it ran"),
        "{stderr}"
    );
}

#[test]
fn a_job_asking_for_more_than_the_owner_allows_is_given_back_for_another_worker() {
    let farm = Farm::with(
        json!({"limits": {"job_kinds": ["hello", "probe"], "job": {"memory_mib": 128, "timeout_s": 30}}}),
    );
    let mut greedy = steps_job("greedy", 1);
    greedy["limits"] = json!({"memory_mib": 4096});
    let mut slow = steps_job("slow", 1);
    slow["limits"] = json!({"timeout_s": 3600});
    let mut modest = steps_job("modest", 1);
    modest["limits"] = json!({"memory_mib": 64, "timeout_s": 10});
    for spec in [greedy, slow, modest] {
        farm.submit("probe", spec);
    }
    assert!(farm.run(true).output().unwrap().status.success());
    for (job, field, allowed) in [("greedy", "memory_mib", "128"), ("slow", "timeout_s", "30")] {
        let failure = &farm.result(job)["failure"];
        assert_eq!(failure["kind"], "unsupported", "{failure}");
        assert_eq!(
            failure["retryable"], true,
            "another worker may allow it: {failure}"
        );
        let message = failure["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("limits.{field}"))
                && message.contains(&format!("at most {allowed}")),
            "{message}"
        );
        assert_eq!(farm.events(job, "started").len(), 1);
    }
    assert_eq!(farm.result("modest")["status"], "succeeded");
}

#[test]
fn a_hostile_output_tree_fails_its_job_for_good_and_leaves_nothing_in_done() {
    let farm = Farm::with(json!({"limits": {"job_kinds": ["adversary", "probe"]}}));
    farm.submit(
        "adversary",
        json!({"version": 1, "id": "deep", "kind": "adversary", "params": {"attack": "deep-output", "depth": 5000, "stop_after_folders": true}}),
    );
    farm.submit("probe", steps_job("after", 1));
    let out = farm.run(true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failure = &farm.result("deep")["failure"];
    assert_eq!(failure["kind"], "bad-output", "{failure}");
    assert_eq!(failure["retryable"], false, "{failure}");
    assert!(
        std::fs::read_dir(farm.spool().join("done/deep/output"))
            .unwrap()
            .next()
            .is_none(),
        "the refused tree was removed: done/deep/output is empty"
    );
    assert_eq!(farm.result("after")["status"], "succeeded");
}

#[test]
fn a_full_spool_claims_nothing_until_there_is_room_again() {
    let farm = Farm::with(json!({"limits": {"job_kinds": ["hello", "probe"], "spool_mib": 64}}));
    farm.submit("probe", steps_job("waiting", 1));
    // Results nobody collected: 80 MiB of real (not sparse) bytes in done/.
    let filler = farm.spool().join("done/old-results");
    std::fs::create_dir_all(&filler).unwrap();
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    for i in 0..80 {
        std::fs::write(filler.join(format!("{i}.bin")), &block).unwrap();
    }
    let out = farm.run(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the spool is full (limits.spool_mib)"),
        "{stderr}"
    );
    assert_eq!(listed(&farm, "incoming").len(), 1, "the job stays queued");
    assert!(farm.events("waiting", "claimed").is_empty());

    std::fs::remove_dir_all(&filler).unwrap();
    assert!(farm.run(true).output().unwrap().status.success());
    assert_eq!(farm.result("waiting")["status"], "succeeded");
}

#[test]
fn a_kernel_that_never_ends_does_not_wedge_the_worker_or_the_jobs_behind_it() {
    let farm = Farm::with(json!({"limits": {"job_kinds": ["gpuprobe", "probe"]}}));
    let endless = |id: &str| {
        json!({"version": 1, "id": id, "kind": "gpuprobe", "params": {"check": "endless-loop"},
               "limits": {"gpu_submission_ms": 1000, "timeout_s": 60}})
    };
    let transfer = |id: &str| json!({"version": 1, "id": id, "kind": "gpuprobe", "params": {"check": "transfer", "mib": 1}});
    // Jobs are claimed in submission order, one at a time on one GPU slot.
    farm.submit("gpuprobe", endless("endless-1"));
    farm.submit("gpuprobe", transfer("gpu-recovered"));
    farm.submit("gpuprobe", endless("endless-2"));
    farm.submit("gpuprobe", transfer("gpu-unhealthy"));
    farm.submit("probe", steps_job("cpu-after", 2));
    let started = std::time::Instant::now();
    let out = farm.run(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(150),
        "five jobs took {took:?}"
    );
    for job in ["endless-1", "endless-2"] {
        let failure = &farm.result(job)["failure"];
        assert_eq!(failure["kind"], "gpu-timeout", "{job}: {failure}");
        assert_eq!(failure["retryable"], false, "{job}: {failure}");
    }
    // After one abandoned device the slot opens a fresh one and works.
    assert_eq!(
        farm.result("gpu-recovered")["status"],
        "succeeded",
        "{}",
        farm.result("gpu-recovered")
    );
    // After the second it is unhealthy: GPU jobs are given back
    // (retryable), jobs without the GPU still run.
    let failure = &farm.result("gpu-unhealthy")["failure"];
    assert_eq!(failure["kind"], "gpu-lost", "{failure}");
    assert_eq!(failure["retryable"], true, "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("GPU is unhealthy"),
        "{failure}"
    );
    assert_eq!(farm.result("cpu-after")["status"], "succeeded");
}

#[test]
fn a_job_of_a_kind_the_owner_does_not_accept_is_refused_for_good_and_the_next_runs() {
    let farm = Farm::with(json!({"limits": {"job_kinds": ["probe"]}}));
    farm.submit(
        "hello",
        json!({"version": 1, "id": "unwanted", "kind": "hello"}),
    );
    farm.submit("probe", steps_job("wanted", 1));
    let out = farm.run(true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failure = &farm.result("unwanted")["failure"];
    assert_eq!(failure["kind"], "unsupported", "{failure}");
    assert_eq!(failure["retryable"], false, "{failure}");
    assert!(
        failure["message"].as_str().unwrap().contains("`hello`"),
        "{failure}"
    );
    assert_eq!(farm.result("wanted")["status"], "succeeded");
}
