//! Completing leases: proofs, idempotency, late results, replication.

use std::time::Duration;

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, CompleteReply, ErrorCode, JobState};
use pictor_protocol::proof;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Farm, TestResult, expect_error, key, manifest, signed};

#[tokio::test]
async fn a_complete_is_accepted_once_and_repeats_are_duplicates() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &["hello"]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    farm.put_blob(b"result").await;
    let proof = signed(&key(1), "wkr-1", &lease, &[("out/result.txt", b"result")]);
    let response = farm.complete(&lease.lease_id, &proof).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: CompleteReply = response.json().await?;
    assert_eq!(
        (reply.job_id.as_str(), reply.job_state, reply.duplicate),
        ("job-a", JobState::Succeeded, false)
    );

    let again: CompleteReply = farm.complete(&lease.lease_id, &proof).await.json().await?;
    assert_eq!(
        (again.job_state, again.duplicate),
        (JobState::Succeeded, true)
    );

    let mut other = manifest("wkr-1", &lease, &[("out/result.txt", b"result")]);
    other.finished_at_ms += 1;
    let other = proof::sign(&key(1), other);
    expect_error(
        farm.complete(&lease.lease_id, &other).await,
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
    )
    .await;

    let status = farm.job("job-a").await;
    assert_eq!(status.workers, ["wkr-1"]);
    assert_eq!(status.outputs.len(), 1);
    assert_eq!(status.outputs[0].sha256, Sha256Digest::of(b"result"));
    assert_eq!(status.proofs, [proof]);
    assert!(status.finished_at_ms.is_some());
    // A finished job cannot be cancelled.
    let response = farm
        .as_creator(Method::POST, &api::paths::cancel_job("job-a"), None)
        .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    Ok(())
}

#[tokio::test]
async fn proofs_that_do_not_check_are_refused_saying_why() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();

    // Signed with another key than the registered one.
    let stranger = signed(&key(9), "wkr-1", &lease, &[]);
    let body = expect_error(
        farm.complete(&lease.lease_id, &stranger).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(body.message.contains("expected"), "{}", body.message);

    // Right key, manifest changed after signing.
    let mut tampered = signed(&key(1), "wkr-1", &lease, &[]);
    tampered.manifest.seed += 1;
    let body = expect_error(
        farm.complete(&lease.lease_id, &tampered).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(
        body.message.contains("signature invalid"),
        "{}",
        body.message
    );

    type Change = Box<dyn Fn(&mut proof::ResultManifest)>;
    let cases: [(&str, Change); 6] = [
        (
            "`params_sha256`",
            Box::new(|m| m.params_sha256 = Sha256Digest::of(b"{}")),
        ),
        ("`job_id`", Box::new(|m| m.job_id = "job-a".into())),
        ("`worker_id`", Box::new(|m| m.worker_id = "wkr-2".into())),
        ("`status`", Box::new(|m| m.status = "failed".into())),
        (
            "`plugin_sha256`",
            Box::new(|m| m.plugin_sha256 = Sha256Digest::of(b"x")),
        ),
        ("`inputs`", Box::new(|m| m.inputs.clear())),
    ];
    for (expected, change) in cases {
        let mut m = manifest("wkr-1", &lease, &[]);
        change(&mut m);
        let response = farm
            .complete(&lease.lease_id, &proof::sign(&key(1), m))
            .await;
        let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::BadProof).await;
        assert!(
            body.message.contains(expected),
            "{expected}: {}",
            body.message
        );
    }
    assert_eq!(
        farm.job("job-a").await.state,
        JobState::Running,
        "nothing was recorded"
    );
    Ok(())
}

#[tokio::test]
async fn outputs_must_be_uploaded_before_the_complete() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    farm.put_blob(b"uploaded").await;
    let proof = signed(
        &key(1),
        "wkr-1",
        &lease,
        &[("a", b"uploaded"), ("b", b"not uploaded")],
    );
    let body = expect_error(
        farm.complete(&lease.lease_id, &proof).await,
        StatusCode::CONFLICT,
        ErrorCode::MissingBlobs,
    )
    .await;
    assert_eq!(body.missing, [Sha256Digest::of(b"not uploaded")]);
    farm.put_blob(b"not uploaded").await;
    assert_eq!(
        farm.complete(&lease.lease_id, &proof).await.status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn a_late_result_of_an_expired_lease_is_accepted_while_the_job_is_open() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(500)).await;
    farm.register("wkr-slow", &key(1), &[]).await;
    farm.register("wkr-2", &key(2), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let slow = farm.lease("wkr-slow", 0).await.unwrap();
    farm.wait_for_job("job-a", |s| s.state == JobState::Queued)
        .await;
    let second = farm.lease("wkr-2", 0).await.unwrap();

    let reply: CompleteReply = farm
        .complete(&slow.lease_id, &signed(&key(1), "wkr-slow", &slow, &[]))
        .await
        .json()
        .await?;
    assert_eq!(reply.job_state, JobState::Succeeded);
    assert_eq!(farm.job("job-a").await.workers, ["wkr-slow"]);
    // The other lease of the job is over.
    assert_eq!(
        farm.heartbeat("wkr-2", &[&second.lease_id]).await["leases"][0]["state"],
        "gone"
    );
    let response = farm
        .complete(&second.lease_id, &signed(&key(2), "wkr-2", &second, &[]))
        .await;
    expect_error(response, StatusCode::GONE, ErrorCode::LeaseGone).await;
    Ok(())
}

#[tokio::test]
async fn a_late_result_after_the_job_succeeded_elsewhere_is_gone() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(500)).await;
    farm.register("wkr-slow", &key(1), &[]).await;
    farm.register("wkr-2", &key(2), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let slow = farm.lease("wkr-slow", 0).await.unwrap();
    farm.wait_for_job("job-a", |s| s.state == JobState::Queued)
        .await;
    let second = farm.lease("wkr-2", 0).await.unwrap();
    assert_eq!(
        farm.complete(&second.lease_id, &signed(&key(2), "wkr-2", &second, &[]))
            .await
            .status(),
        StatusCode::OK
    );
    let response = farm
        .complete(&slow.lease_id, &signed(&key(1), "wkr-slow", &slow, &[]))
        .await;
    let body = expect_error(response, StatusCode::GONE, ErrorCode::LeaseGone).await;
    assert!(
        body.message.contains("already succeeded"),
        "{}",
        body.message
    );
    Ok(())
}

#[tokio::test]
async fn a_worker_back_from_a_blip_keeps_its_expired_lease_if_nobody_took_it() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = Duration::from_millis(500)).await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    farm.wait_for_job("job-a", |s| s.state == JobState::Queued)
        .await;
    assert_eq!(
        farm.heartbeat("wkr-1", &[&lease.lease_id]).await["leases"][0]["state"],
        "active"
    );
    assert_eq!(farm.job("job-a").await.state, JobState::Running);
    Ok(())
}

#[tokio::test]
async fn replicas_that_agree_succeed_and_replicas_that_differ_are_disputed() -> TestResult {
    let farm = Farm::start().await;
    for (n, id) in [(1, "wkr-1"), (2, "wkr-2"), (3, "wkr-3"), (4, "wkr-4")] {
        farm.register(id, &key(n), &[]).await;
    }
    farm.put_blob(b"same").await;
    farm.put_blob(b"different").await;

    farm.submit("job-agree", "hello", json!({"replicas": 2}))
        .await;
    let a = farm.lease("wkr-1", 0).await.unwrap();
    assert_eq!(farm.lease("wkr-1", 0).await, None, "one replica per worker");
    let b = farm.lease("wkr-2", 0).await.unwrap();
    assert_eq!(
        farm.lease("wkr-3", 0).await,
        None,
        "both replicas are taken"
    );
    let reply: CompleteReply = farm
        .complete(
            &a.lease_id,
            &signed(&key(1), "wkr-1", &a, &[("o", b"same")]),
        )
        .await
        .json()
        .await?;
    assert_eq!(
        reply.job_state,
        JobState::Running,
        "waiting for the second replica"
    );
    let reply: CompleteReply = farm
        .complete(
            &b.lease_id,
            &signed(&key(2), "wkr-2", &b, &[("o", b"same")]),
        )
        .await
        .json()
        .await?;
    assert_eq!(reply.job_state, JobState::Succeeded);
    let status = farm.job("job-agree").await;
    assert_eq!(
        (
            status.workers.len(),
            status.proofs.len(),
            status.outputs.len()
        ),
        (2, 2, 1)
    );

    farm.submit("job-differ", "hello", json!({"replicas": 2}))
        .await;
    let c = farm.lease("wkr-3", 0).await.unwrap();
    let d = farm.lease("wkr-4", 0).await.unwrap();
    farm.complete(
        &c.lease_id,
        &signed(&key(3), "wkr-3", &c, &[("o", b"same")]),
    )
    .await;
    let reply: CompleteReply = farm
        .complete(
            &d.lease_id,
            &signed(&key(4), "wkr-4", &d, &[("o", b"different")]),
        )
        .await
        .json()
        .await?;
    assert_eq!(reply.job_state, JobState::Disputed);
    let status = farm.job("job-differ").await;
    let error = status.error.unwrap();
    assert!(
        error.contains("`o`") && error.contains("wkr-3") && error.contains("wkr-4"),
        "{error}"
    );
    assert!(status.outputs.is_empty());
    Ok(())
}
