//! Who may act for whom, and what a worker can do to a job: the farm token
//! and issued workers, signed failures, the slot cap, lease deadlines, and
//! a replica's failure in a replicated job (issue 14, item 12).

use std::time::Duration;

use pictor_protocol::api::{self, CompleteReply, ErrorCode, JobState, Lease};
use pictor_protocol::proof;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    Farm, TestResult, expect_error, fail_body, key, manifest, register_body, signed, signed_failure,
};

#[tokio::test]
async fn the_farm_token_cannot_act_for_an_issued_worker_but_still_for_its_own() -> TestResult {
    let farm = Farm::start().await;
    let (id, token) = farm.issue_registered("Rig", &key(1), &["hello"]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let response = farm
        .as_token(&token, &api::paths::lease(&id), &json!({"wait_s": 0}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let lease: Lease = response.json().await?;

    // The farm token names the issued worker: refused on every worker
    // endpoint, lease endpoints included, with a message that says why.
    let proof = signed(&key(1), &id, &lease, &[]);
    let posts = [
        (api::paths::register(), register_body(&id, &key(1), &[])),
        (
            api::paths::heartbeat(&id),
            json!({"activity": "idle", "leases": [{"lease_id": lease.lease_id, "fraction": 0.5}]}),
        ),
        (api::paths::lease(&id), json!({"wait_s": 0})),
        (
            api::paths::progress(&lease.lease_id),
            json!({"fraction": 0.5}),
        ),
        (
            api::paths::complete(&lease.lease_id),
            json!({ "proof": proof }),
        ),
        (
            api::paths::fail(&lease.lease_id),
            fail_body(&key(1), &id, &lease, false),
        ),
    ];
    for (path, body) in posts {
        let error = expect_error(
            farm.as_worker(&path, &body).await,
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        )
        .await;
        assert!(
            error.message.contains(&format!(
                "worker {id} was issued its own credential; the farm-wide worker token cannot act for it"
            )),
            "{path}: {}",
            error.message
        );
    }
    // Nothing the farm token tried changed the lease.
    assert_eq!(farm.job("job-a").await.state, JobState::Running);
    let summary = farm.worker_summary(&id).await;
    assert_eq!(summary.leases.len(), 1);
    assert_eq!(summary.leases[0].fraction, 0.0);

    // Workers never issued (farm/worker.json) go on with the farm token.
    farm.register("farm-1", &key(2), &["hello"]).await;
    farm.submit("job-b", "hello", json!({})).await;
    let farm_lease = farm
        .lease("farm-1", 0)
        .await
        .expect("a lease for the farm worker");
    let reply = farm.heartbeat("farm-1", &[&farm_lease.lease_id]).await;
    assert_eq!(reply["leases"][0]["state"], "active");
    let response = farm
        .complete(
            &farm_lease.lease_id,
            &signed(&key(2), "farm-1", &farm_lease, &[]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The issued worker cannot touch the farm worker's lease either.
    expect_error(
        farm.as_token(
            &token,
            &api::paths::progress(&farm_lease.lease_id),
            &json!({"fraction": 0.1}),
        )
        .await,
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn a_fail_of_a_job_that_ran_needs_its_signed_proof() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({"max_attempts": 5}))
        .await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let path = api::paths::fail(&lease.lease_id);
    let unsigned = json!({"kind": "trap", "message": "boom", "retryable": false});
    let error = expect_error(
        farm.as_worker(&path, &unsigned).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(
        error.message.contains("has no `proof`")
            && error.message.contains("download and invalid-lease"),
        "{}",
        error.message
    );
    // Proofs that do not check: another key, the wrong status, other params.
    let stranger = fail_body(&key(9), "wkr-1", &lease, false);
    let error = expect_error(
        farm.as_worker(&path, &stranger).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(error.message.contains("wkr-1"), "{}", error.message);
    let succeeded = json!({"kind": "trap", "message": "boom", "retryable": false,
        "proof": signed(&key(1), "wkr-1", &lease, &[])});
    let error = expect_error(
        farm.as_worker(&path, &succeeded).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(
        error.message.contains("a fail needs \"failed\""),
        "{}",
        error.message
    );
    let mut other = manifest("wkr-1", &lease, &[]);
    other.status = "failed".into();
    other.params_sha256 = pictor_protocol::Sha256Digest::of(b"{}");
    let other = json!({"kind": "trap", "message": "boom", "retryable": false,
        "proof": proof::sign(&key(1), other)});
    let error = expect_error(
        farm.as_worker(&path, &other).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::BadProof,
    )
    .await;
    assert!(
        error.message.contains("`params_sha256`"),
        "{}",
        error.message
    );
    // None of that counted: the lease is still active.
    assert_eq!(farm.job("job-a").await.state, JobState::Running);

    // A lease that never ran may be failed unsigned, but such a report
    // cannot end the job: it is counted as retryable.
    let not_run = json!({"kind": "invalid-lease", "message": "cannot read it", "retryable": false});
    let reply: CompleteReply = farm.as_worker(&path, &not_run).await.json().await?;
    assert_eq!(reply.job_state, JobState::Queued);
    // The same report again is a duplicate.
    let again: CompleteReply = farm.as_worker(&path, &not_run).await.json().await?;
    assert!(again.duplicate);

    // A signed non-retryable failure ends a one-replica job.
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let body = json!({"kind": "invalid-params", "message": "no scene", "retryable": false,
        "proof": signed_failure(&key(1), "wkr-1", &lease)});
    let reply: CompleteReply = farm
        .as_worker(&api::paths::fail(&lease.lease_id), &body)
        .await
        .json()
        .await?;
    assert_eq!(reply.job_state, JobState::Failed);
    let error = farm.job("job-a").await.error.unwrap();
    assert!(error.contains("invalid-params: no scene"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_worker_gets_no_more_active_leases_than_its_slots() -> TestResult {
    let farm = Farm::start().await;
    let mut two_slots = register_body("wkr-2", &key(2), &[]);
    two_slots["slots"] = json!(2);
    assert_eq!(
        farm.as_worker(&api::paths::register(), &two_slots)
            .await
            .status(),
        StatusCode::OK
    );
    for n in 0..4 {
        farm.submit(&format!("job-{n}"), "hello", json!({})).await;
    }
    let first = farm.lease("wkr-2", 0).await.unwrap();
    let _second = farm.lease("wkr-2", 0).await.unwrap();
    // A third ask, however often: no lease while two are held and jobs wait.
    for _ in 0..3 {
        assert_eq!(farm.lease("wkr-2", 0).await, None);
    }
    assert_eq!(farm.job("job-2").await.state, JobState::Queued);
    // A long poll over the cap gets its lease as soon as a slot frees.
    let waiting = {
        let (http, url, token) = (farm.http.clone(), farm.url.clone(), farm.worker.clone());
        tokio::spawn(async move {
            http.post(format!("{url}{}", api::paths::lease("wkr-2")))
                .bearer_auth(token)
                .json(&json!({"wait_s": 10}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = farm
        .complete(&first.lease_id, &signed(&key(2), "wkr-2", &first, &[]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = waiting.await?;
    assert_eq!(response.status(), StatusCode::OK);
    let third: Lease = response.json().await?;
    assert_eq!(third.job_id, "job-2");
    Ok(())
}

#[tokio::test]
async fn a_hoarded_lease_is_taken_back_at_its_deadline_however_often_it_is_extended() -> TestResult
{
    let farm = Farm::start_with(|c| {
        c.lease_ttl = Duration::from_secs(60);
        c.limits.deadline_margin = Duration::ZERO;
    })
    .await;
    farm.register("wkr-hoard", &key(1), &[]).await;
    farm.register("wkr-2", &key(2), &[]).await;
    // Its timeout is bad: refused at submission.
    let body = farm
        .job_body("job-bad", "hello", json!({"limits": {"timeout_s": 0}}))
        .await;
    let error = expect_error(
        farm.as_creator(reqwest::Method::POST, &api::paths::jobs(), Some(&body))
            .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    assert!(
        error.message.contains("`limits.timeout_s`"),
        "{}",
        error.message
    );

    farm.submit("job-a", "hello", json!({"limits": {"timeout_s": 1}}))
        .await;
    let lease = farm.lease("wkr-hoard", 0).await.unwrap();
    assert!(
        lease.expires_in_s <= 1,
        "the TTL is capped by the deadline: {}",
        lease.expires_in_s
    );
    // The hoarder heartbeats (and reports progress) without ever finishing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = farm.heartbeat("wkr-hoard", &[&lease.lease_id]).await;
        if reply["leases"][0]["state"] == "gone" {
            break;
        }
        assert_eq!(reply["leases"][0]["state"], "active");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease was never taken back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = farm.job("job-a").await;
    assert_eq!((status.state, status.attempts), (JobState::Queued, 1));
    let progress: Value = farm
        .as_worker(
            &api::paths::progress(&lease.lease_id),
            &json!({"fraction": 0.9}),
        )
        .await
        .json()
        .await?;
    assert_eq!(progress["state"], "gone");
    // Another worker gets the job.
    let next = farm.lease("wkr-2", 0).await.unwrap();
    assert_eq!(next.lease_id, "job-a.1");
    Ok(())
}

#[tokio::test]
async fn one_replicas_permanent_failure_does_not_end_the_other_replicas() -> TestResult {
    let farm = Farm::start().await;
    for n in 1..=4u8 {
        farm.register(&format!("wkr-{n}"), &key(n), &[]).await;
    }
    farm.submit("job-r", "hello", json!({"replicas": 2, "max_attempts": 5}))
        .await;
    let a = farm.lease("wkr-1", 0).await.unwrap();
    let b = farm.lease("wkr-2", 0).await.unwrap();
    let reply: CompleteReply = farm.fail(&key(1), "wkr-1", &a, false).await.json().await?;
    assert_eq!(
        reply.job_state,
        JobState::Running,
        "the other replica goes on"
    );
    let reply = farm.heartbeat("wkr-2", &[&b.lease_id]).await;
    assert_eq!(reply["leases"][0]["state"], "active");
    // The refusing worker does not get the job again; another one does.
    assert_eq!(farm.lease("wkr-1", 0).await, None);
    let c = farm.lease("wkr-3", 0).await.unwrap();
    for (k, id, lease) in [(2, "wkr-2", &b), (3, "wkr-3", &c)] {
        let response = farm
            .complete(&lease.lease_id, &signed(&key(k), id, lease, &[]))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let status = farm.job("job-r").await;
    assert_eq!(status.state, JobState::Succeeded);
    assert_eq!(status.workers, ["wkr-2", "wkr-3"]);

    // As many workers as replicas refusing it: no replica can succeed.
    farm.submit("job-s", "hello", json!({"replicas": 2, "max_attempts": 5}))
        .await;
    let a = farm.lease("wkr-1", 0).await.unwrap();
    let b = farm.lease("wkr-2", 0).await.unwrap();
    let reply: CompleteReply = farm.fail(&key(1), "wkr-1", &a, false).await.json().await?;
    assert_eq!(reply.job_state, JobState::Running);
    let reply: CompleteReply = farm.fail(&key(2), "wkr-2", &b, false).await.json().await?;
    assert_eq!(reply.job_state, JobState::Failed);
    let error = farm.job("job-s").await.error.unwrap();
    assert!(
        error.starts_with("2 of 2 workers could not run it"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_workers_texts_are_kept_on_one_line_clipped_with_terminal_controls_escaped() -> TestResult
{
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    // OSC 52 (clipboard write), a screen clear and a megabyte of text: what
    // the operator's terminal would run if `jobs` / `job` printed it raw.
    let nasty = format!("\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J{}", "x".repeat(1 << 20));
    let response = farm
        .as_worker(
            &api::paths::heartbeat("wkr-1"),
            &json!({"activity": "job", "leases": [{"lease_id": lease.lease_id, "fraction": 0.5, "message": nasty}]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary = farm.worker_summary("wkr-1").await;
    let message = &summary.leases[0].message;
    assert!(
        message.starts_with("\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{1b}[2J"),
        "{message:.80}"
    );
    assert!(message.len() < 1100, "{} bytes", message.len());

    // A failure kind is a word; one with controls is refused, naming the field.
    let mut body = fail_body(&key(1), "wkr-1", &lease, false);
    body["kind"] = json!("trap\u{1b}[2J");
    let error = expect_error(
        farm.as_worker(&api::paths::fail(&lease.lease_id), &body)
            .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    assert!(
        error.message.contains("`kind`") && !error.message.contains('\u{1b}'),
        "{}",
        error.message
    );

    body["kind"] = json!("trap");
    body["message"] = json!(nasty);
    let response = farm
        .as_worker(&api::paths::fail(&lease.lease_id), &body)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let job = farm.job("job-a").await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap_or_default();
    assert!(!error.chars().any(char::is_control), "{error:.120}");
    assert!(
        error.contains("\\u{1b}[2J") && error.len() < 1300,
        "{} bytes: {error:.120}",
        error.len()
    );
    Ok(())
}
