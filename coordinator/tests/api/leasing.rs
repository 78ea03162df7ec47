//! Leases: long polls, expiry, failures, per-kind skipping, cancellation.

use std::time::{Duration, Instant};

use pictor_protocol::api::{self, CompleteReply, ErrorCode, JobState, LeaseState, LeaseStatus};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Farm, TestResult, expect_error, key, signed};

#[tokio::test]
async fn a_long_poll_returns_when_a_job_is_submitted_mid_wait() -> TestResult {
    let farm = std::sync::Arc::new(Farm::start().await);
    farm.register("wkr-1", &key(1), &[]).await;
    let waiting = {
        let farm = std::sync::Arc::clone(&farm);
        tokio::spawn(async move {
            let started = Instant::now();
            (farm.lease("wkr-1", 10).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    farm.submit("job-a", "hello", json!({})).await;
    let (lease, waited) = waiting.await?;
    let lease = lease.expect("the waiting worker gets the job");
    assert_eq!(
        (
            lease.lease_id.as_str(),
            lease.job_id.as_str(),
            lease.attempt
        ),
        ("job-a.0", "job-a", 0)
    );
    assert_eq!(lease.params, json!({"a": [1, 2], "b": 1}));
    assert!(
        waited < Duration::from_secs(5),
        "woken by the submit, not by the timeout: {waited:?}"
    );
    assert_eq!(farm.job("job-a").await.state, JobState::Running);
    Ok(())
}

#[tokio::test]
async fn a_long_poll_with_nothing_to_do_ends_in_204_after_the_wait() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    let started = Instant::now();
    assert!(farm.lease("wkr-1", 1).await.is_none());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn workers_get_only_kinds_they_accept_oldest_first() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-render", &key(1), &["render"]).await;
    farm.register("wkr-any", &key(2), &[]).await;
    farm.submit("job-hello", "hello", json!({})).await;
    farm.submit("job-render", "render", json!({})).await;
    assert_eq!(
        farm.lease("wkr-render", 0).await.map(|l| l.job_id),
        Some("job-render".into())
    );
    assert_eq!(farm.lease("wkr-render", 0).await, None);
    assert_eq!(
        farm.lease("wkr-any", 0).await.map(|l| l.job_id),
        Some("job-hello".into())
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_lease_requeues_its_job() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(800)).await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.register("wkr-2", &key(2), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let first = farm.lease("wkr-1", 0).await.unwrap();
    // No heartbeat: the background task expires it and requeues the job.
    let status = farm
        .wait_for_job("job-a", |s| s.state == JobState::Queued)
        .await;
    assert_eq!(status.attempts, 1);
    let second = farm.lease("wkr-2", 0).await.unwrap();
    assert_eq!((second.lease_id.as_str(), second.attempt), ("job-a.1", 1));
    // The first worker is told its lease is gone.
    let reply = farm.heartbeat("wkr-1", &[&first.lease_id]).await;
    assert_eq!(reply["leases"][0]["state"], "gone");
    Ok(())
}

#[tokio::test]
async fn heartbeats_keep_a_lease_alive() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(600)).await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = farm
            .heartbeat("wkr-1", &[&lease.lease_id, "job-unknown.0"])
            .await;
        assert_eq!(reply["leases"][0]["state"], "active");
        assert_eq!(reply["leases"][1]["state"], "gone");
    }
    let progress = farm
        .as_worker(
            &api::paths::progress(&lease.lease_id),
            &json!({"fraction": 0.7, "message": "tile 7"}),
        )
        .await;
    let status: LeaseStatus = progress.json().await?;
    assert_eq!(status.state, LeaseState::Active);
    assert_eq!(farm.job("job-a").await.state, JobState::Running);
    Ok(())
}

#[tokio::test]
async fn the_last_expiry_fails_the_job_out_of_attempts() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(500)).await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({"max_attempts": 1}))
        .await;
    farm.lease("wkr-1", 0).await.unwrap();
    let status = farm.wait_for_job("job-a", |s| s.state.is_final()).await;
    assert_eq!(status.state, JobState::Failed);
    let error = status.error.unwrap();
    assert!(
        error.contains("out of attempts") && error.contains("expired on worker wkr-1"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn retryable_failures_requeue_and_permanent_ones_fail_the_job() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-retry", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let response = farm.fail(&key(1), "wkr-1", &lease, true).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: CompleteReply = response.json().await?;
    assert_eq!(
        (reply.job_state, reply.duplicate),
        (JobState::Queued, false)
    );
    // The same report again: a duplicate; another one: a conflict.
    let again: CompleteReply = farm
        .fail(&key(1), "wkr-1", &lease, true)
        .await
        .json()
        .await?;
    assert!(again.duplicate);
    expect_error(
        farm.fail(&key(1), "wkr-1", &lease, false).await,
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
    )
    .await;

    let lease = farm.lease("wkr-1", 0).await.unwrap();
    assert_eq!(lease.lease_id, "job-retry.1");
    let reply: CompleteReply = farm
        .fail(&key(1), "wkr-1", &lease, false)
        .await
        .json()
        .await?;
    assert_eq!(reply.job_state, JobState::Failed);
    let error = farm.job("job-retry").await.error.unwrap();
    assert!(
        error.contains("plugin-error: boom") && error.contains("wkr-1"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_worker_failing_a_kind_three_times_is_skipped_for_it() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-bad", &key(1), &[]).await;
    farm.register("wkr-good", &key(2), &[]).await;
    farm.submit("job-a", "hello", json!({"max_attempts": 20}))
        .await;
    farm.submit("job-b", "render", json!({})).await;
    for attempt in 0..3 {
        let lease = farm.lease("wkr-bad", 0).await.unwrap();
        assert_eq!(lease.lease_id, format!("job-a.{attempt}"));
        assert_eq!(
            farm.fail(&key(1), "wkr-bad", &lease, true).await.status(),
            StatusCode::OK
        );
    }
    // No more `hello` for it; other kinds still come.
    assert_eq!(
        farm.lease("wkr-bad", 0).await.map(|l| l.job_id),
        Some("job-b".into())
    );
    assert_eq!(farm.lease("wkr-bad", 0).await, None);
    assert_eq!(
        farm.lease("wkr-good", 0).await.map(|l| l.lease_id),
        Some("job-a.3".into())
    );
    Ok(())
}

#[tokio::test]
async fn a_success_resets_the_failure_count() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({"max_attempts": 20}))
        .await;
    for _ in 0..2 {
        let lease = farm.lease("wkr-1", 0).await.unwrap();
        farm.fail(&key(1), "wkr-1", &lease, true).await;
    }
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let proof = signed(&key(1), "wkr-1", &lease, &[]);
    assert_eq!(
        farm.complete(&lease.lease_id, &proof).await.status(),
        StatusCode::OK
    );
    farm.submit("job-b", "hello", json!({"max_attempts": 20}))
        .await;
    for _ in 0..2 {
        let lease = farm.lease("wkr-1", 0).await.unwrap();
        farm.fail(&key(1), "wkr-1", &lease, true).await;
    }
    assert!(
        farm.lease("wkr-1", 0).await.is_some(),
        "two failures after a success do not skip"
    );
    Ok(())
}

#[tokio::test]
async fn cancelling_a_job_tells_its_worker_and_refuses_its_result() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let response = farm
        .as_creator(
            reqwest::Method::POST,
            &api::paths::cancel_job("job-a"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(farm.job("job-a").await.state, JobState::Cancelled);
    let reply = farm.heartbeat("wkr-1", &[&lease.lease_id]).await;
    assert_eq!(reply["leases"][0]["state"], "cancelled");
    let progress: LeaseStatus = farm
        .as_worker(
            &api::paths::progress(&lease.lease_id),
            &json!({"fraction": 0.5}),
        )
        .await
        .json()
        .await?;
    assert_eq!(progress.state, LeaseState::Cancelled);
    let proof = signed(&key(1), "wkr-1", &lease, &[]);
    expect_error(
        farm.complete(&lease.lease_id, &proof).await,
        StatusCode::GONE,
        ErrorCode::LeaseGone,
    )
    .await;
    expect_error(
        farm.fail(&key(1), "wkr-1", &lease, true).await,
        StatusCode::GONE,
        ErrorCode::LeaseGone,
    )
    .await;
    assert_eq!(farm.lease("wkr-1", 0).await, None);
    // Cancelling again is a no-op; a finished job cannot be cancelled.
    assert_eq!(
        farm.as_creator(
            reqwest::Method::POST,
            &api::paths::cancel_job("job-a"),
            None
        )
        .await
        .status(),
        StatusCode::OK
    );
    Ok(())
}
