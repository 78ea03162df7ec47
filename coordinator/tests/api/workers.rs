//! Registration and heartbeats.

use pictor_protocol::api::{self, ErrorCode, RegisterReply};
use reqwest::StatusCode;

use crate::support::{Farm, TestResult, expect_error, key, register_body};

#[tokio::test]
async fn register_is_idempotent_and_binds_the_id_to_its_key() -> TestResult {
    let farm = Farm::start_with(|c| c.lease_ttl = std::time::Duration::from_secs(30)).await;
    let response = farm
        .as_worker(
            &api::paths::register(),
            &register_body("wkr-1", &key(1), &["hello"]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: RegisterReply = response.json().await?;
    assert_eq!(
        (
            reply.worker_id.as_str(),
            reply.lease_ttl_s,
            reply.heartbeat_interval_s,
            reply.max_wait_s
        ),
        ("wkr-1", 30, 10, 10)
    );
    // Again with the same key (every start): fine.
    farm.register("wkr-1", &key(1), &["hello", "render"]).await;
    // Another key for the same id: refused.
    let response = farm
        .as_worker(
            &api::paths::register(),
            &register_body("wkr-1", &key(2), &[]),
        )
        .await;
    let body = expect_error(response, StatusCode::CONFLICT, ErrorCode::Conflict).await;
    assert!(
        body.message
            .starts_with("worker wkr-1 is registered with another key"),
        "{}",
        body.message
    );
    Ok(())
}

#[tokio::test]
async fn register_validates_every_field() -> TestResult {
    let farm = Farm::start().await;
    let cases = [
        ("worker_id", serde_json::json!("../x"), "`worker_id`"),
        ("public_key", serde_json::json!("abc"), "`public_key`"),
        ("kinds", serde_json::json!(["Render"]), "`kinds[0]`"),
        (
            "prices",
            serde_json::json!({"hello": -1.0}),
            "`prices.hello`",
        ),
        ("slots", serde_json::json!(0), "`slots`"),
    ];
    for (field, value, expected) in cases {
        let mut body = register_body("wkr-1", &key(1), &[]);
        body[field] = value;
        let error = expect_error(
            farm.as_worker(&api::paths::register(), &body).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
        )
        .await;
        assert!(
            error.message.contains(expected),
            "{field}: {}",
            error.message
        );
    }
    // 64 hex digits that are not a curve point.
    let not_a_point = (0..=255u8)
        .map(|n| [n; 32])
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    let mut body = register_body("wkr-1", &key(1), &[]);
    body["public_key"] = serde_json::json!(hex::encode(not_a_point));
    let error = expect_error(
        farm.as_worker(&api::paths::register(), &body).await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    assert!(error.message.contains("ed25519"), "{}", error.message);
    Ok(())
}

#[tokio::test]
async fn unregistered_workers_cannot_lease_or_heartbeat() -> TestResult {
    let farm = Farm::start().await;
    let response = farm
        .as_worker(
            &api::paths::lease("wkr-ghost"),
            &serde_json::json!({"wait_s": 0}),
        )
        .await;
    let body = expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    assert!(body.message.contains("not registered"), "{}", body.message);
    let response = farm
        .as_worker(
            &api::paths::heartbeat("wkr-ghost"),
            &serde_json::json!({"activity": "idle", "leases": []}),
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    Ok(())
}

#[tokio::test]
async fn heartbeats_say_which_gpu_slots_are_not_healthy_clipped_and_bounded() -> TestResult {
    let farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &["hello"]).await;
    let beat = |gpus: serde_json::Value| serde_json::json!({"activity": "idle", "leases": [], "gpus": gpus});
    // A hostile host: a detail of 100,000 characters with terminal controls.
    let detail = format!("\u{1b}[2J{}", "x".repeat(100_000));
    let response = farm
        .as_worker(
            &api::paths::heartbeat("wkr-1"),
            &beat(serde_json::json!([{"slot": 0, "state": "unhealthy", "detail": detail}])),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary = farm.worker_summary("wkr-1").await;
    assert_eq!(summary.gpu_health.len(), 1);
    let slot = &summary.gpu_health[0];
    assert_eq!((slot.slot, slot.state.as_str()), (0, "unhealthy"));
    assert_eq!(slot.detail.chars().count(), 300, "clipped");
    assert!(!slot.detail.contains('\u{1b}'), "controls dropped");

    // More slots than a machine has GPUs: refused, naming the field.
    let many: Vec<_> = (0..65)
        .map(|i| serde_json::json!({"slot": i, "state": "recovered"}))
        .collect();
    let body = expect_error(
        farm.as_worker(&api::paths::heartbeat("wkr-1"), &beat(many.into()))
            .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    assert!(body.message.contains("`gpus`"), "{}", body.message);

    // A heartbeat without the field (all healthy, or an older host) clears it.
    let response = farm
        .as_worker(
            &api::paths::heartbeat("wkr-1"),
            &serde_json::json!({"activity": "idle", "leases": []}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(farm.worker_summary("wkr-1").await.gpu_health.is_empty());
    Ok(())
}

#[tokio::test]
async fn registration_follows_the_worker_id_rule_of_worker_json() -> TestResult {
    let farm = Farm::start().await;
    // A dotted id was a valid job id but no host could run with it.
    for bad in ["a.b", "ab", "wkr 1"] {
        let error = expect_error(
            farm.as_worker(
                &api::paths::register(),
                &register_body(bad, &key(1), &["hello"]),
            )
            .await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
        )
        .await;
        assert!(
            error.message.contains(api::WORKER_ID_RULE) && error.message.contains("`worker_id`"),
            "{bad}: {}",
            error.message
        );
    }
    farm.register("wkr_rig-2", &key(2), &["hello"]).await;
    // A route naming an id outside the rule is not a worker.
    let response = farm
        .as_worker(
            &api::paths::heartbeat("a.b"),
            &serde_json::json!({"activity": "idle", "leases": []}),
        )
        .await;
    expect_error(response, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    Ok(())
}
