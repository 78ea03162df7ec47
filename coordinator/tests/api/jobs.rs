//! The jobs API: submission checks, resubmission, listing.

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, ErrorCode, JobList, JobState, JobStatus};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Farm, TestResult, expect_error, key};

#[tokio::test]
async fn submissions_need_their_blobs_uploaded_first() -> TestResult {
    let farm = Farm::start().await;
    let plugin = Sha256Digest::of(b"plugin not uploaded");
    let input = Sha256Digest::of(b"input not uploaded");
    let body = json!({
        "id": "job-a", "kind": "hello",
        "plugin": {"sha256": plugin, "size": 19},
        "inputs": [{"name": "x", "sha256": input, "size": 18}],
    });
    let response = farm
        .as_creator(Method::POST, &api::paths::jobs(), Some(&body))
        .await;
    let error = expect_error(response, StatusCode::CONFLICT, ErrorCode::MissingBlobs).await;
    assert_eq!(error.missing, [plugin, input]);
    Ok(())
}

#[tokio::test]
async fn the_same_job_again_is_a_no_op_and_a_different_one_a_conflict() -> TestResult {
    let farm = Farm::start().await;
    let first = farm.submit("job-a", "hello", json!({})).await;
    let body = farm.job_body("job-a", "hello", json!({})).await;
    let again = farm
        .as_creator(Method::POST, &api::paths::jobs(), Some(&body))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<JobStatus>().await?, first);
    let other = farm.job_body("job-a", "hello", json!({"seed": 7})).await;
    let response = farm
        .as_creator(Method::POST, &api::paths::jobs(), Some(&other))
        .await;
    expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    Ok(())
}

#[tokio::test]
async fn submissions_are_validated_field_by_field() -> TestResult {
    let farm = Farm::start().await;
    let cases = [
        (json!({"id": "x".repeat(101)}), "`id`"),
        (json!({"kind": "Render"}), "`kind`"),
        (json!({"replicas": 5}), "`replicas`"),
        (json!({"max_attempts": 0}), "`max_attempts`"),
        (json!({"price": -1.0}), "`price`"),
        (json!({"limits": [1]}), "`limits`"),
        (
            json!({"inputs": [{"name": "../x", "sha256": Sha256Digest::of(b"an input file"), "size": 13}]}),
            "`inputs[0].name`",
        ),
        (
            json!({"plugin": {"sha256": Sha256Digest::of(b"\0asm plugin bytes"), "size": 3}}),
            "`plugin.size`",
        ),
        (json!({"surprise": 1}), "unknown field `surprise`"),
    ];
    for (extra, expected) in cases {
        let body = farm.job_body("job-a", "hello", extra.clone()).await;
        let response = farm
            .as_creator(Method::POST, &api::paths::jobs(), Some(&body))
            .await;
        let error =
            expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest).await;
        assert!(
            error.message.contains(expected),
            "{extra}: {}",
            error.message
        );
    }
    Ok(())
}

#[tokio::test]
async fn jobs_are_listed_newest_first_and_filtered_by_state() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-1", "hello", json!({})).await;
    farm.submit("job-2", "hello", json!({})).await;
    // An id is made up when none is given.
    let body = farm.job_body("unused", "hello", json!({"id": null})).await;
    let made: JobStatus = farm
        .as_creator(Method::POST, &api::paths::jobs(), Some(&body))
        .await
        .json()
        .await?;
    assert!(
        made.job_id.starts_with("job-") && api::valid_id(&made.job_id),
        "{}",
        made.job_id
    );
    farm.lease("wkr-1", 0).await.unwrap();

    let list: JobList = farm
        .as_creator(Method::GET, &api::paths::jobs(), None)
        .await
        .json()
        .await?;
    let ids: Vec<&str> = list.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, [made.job_id.as_str(), "job-2", "job-1"]);
    let running: JobList = farm
        .as_creator(
            Method::GET,
            &format!("{}?state=running", api::paths::jobs()),
            None,
        )
        .await
        .json()
        .await?;
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(
        (running.jobs[0].job_id.as_str(), running.jobs[0].state),
        ("job-1", JobState::Running)
    );
    let response = farm
        .as_creator(
            Method::GET,
            &format!("{}?state=sleeping", api::paths::jobs()),
            None,
        )
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest).await;
    let response = farm
        .as_creator(Method::GET, &api::paths::job("job-none"), None)
        .await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    Ok(())
}

#[tokio::test]
async fn a_submission_without_max_attempts_gets_the_coordinators_default() -> TestResult {
    let farm = Farm::start_with(|c| c.max_attempts_default = 1).await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-default", "hello", json!({})).await;
    farm.submit("job-explicit", "hello", json!({"max_attempts": 3}))
        .await;
    for job in ["job-default", "job-explicit"] {
        let lease = farm.lease("wkr-1", 0).await.unwrap();
        assert_eq!(lease.job_id, job);
        farm.fail(&key(1), "wkr-1", &lease, true).await;
    }
    assert_eq!(
        farm.job("job-default").await.state,
        JobState::Failed,
        "one attempt by default"
    );
    assert_eq!(
        farm.job("job-explicit").await.state,
        JobState::Queued,
        "three attempts when asked"
    );
    Ok(())
}
