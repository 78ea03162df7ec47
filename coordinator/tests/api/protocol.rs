//! Version header, JSON errors, authentication.

use pictor_protocol::api::{self, ErrorCode, Info, VERSION_HEADER};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Farm, TestResult, expect_error};

#[tokio::test]
async fn info_needs_no_token_and_every_reply_carries_the_version() -> TestResult {
    let farm = Farm::start().await;
    let response = farm
        .http
        .get(format!("{}{}", farm.url, api::paths::info()))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let info: Info = response.json().await?;
    assert_eq!(
        (info.service.as_str(), info.protocol_versions),
        ("pictor-coordinator", vec![1])
    );
    Ok(())
}

#[tokio::test]
async fn another_protocol_version_is_refused_and_none_is_accepted() -> TestResult {
    let farm = Farm::start().await;
    let response = farm
        .http
        .get(format!("{}{}", farm.url, api::paths::jobs()))
        .bearer_auth(&farm.creator)
        .header(VERSION_HEADER, "2")
        .send()
        .await?;
    let body = expect_error(
        response,
        StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedVersion,
    )
    .await;
    assert!(
        body.message.contains("protocol version 1")
            && body.message.contains("the request used 2 —"),
        "{}",
        body.message
    );
    // No header at all (curl): served.
    let response = farm
        .http
        .get(format!("{}{}", farm.url, api::paths::jobs()))
        .bearer_auth(&farm.creator)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn unknown_paths_get_json_404s_naming_the_version() -> TestResult {
    let farm = Farm::start().await;
    let body = expect_error(
        farm.as_creator(Method::GET, "/api/v2/jobs", None).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    assert!(
        body.message.contains("protocol version 1") && body.message.contains("not version 2"),
        "{}",
        body.message
    );
    let body = expect_error(
        farm.as_creator(Method::GET, "/api/v1/nothing", None).await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    assert!(body.message.contains("/api/v1/nothing"), "{}", body.message);
    let response = farm
        .as_creator(Method::DELETE, &api::paths::jobs(), None)
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.json::<api::ErrorBody>().await?.error,
        ErrorCode::InvalidRequest
    );
    Ok(())
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_401_before_the_body_is_read() -> TestResult {
    let farm = Farm::start().await;
    let jobs = format!("{}{}", farm.url, api::paths::jobs());
    let missing = farm.http.post(&jobs).body("not json").send().await?;
    assert_eq!(
        missing
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    expect_error(missing, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    let wrong = farm
        .http
        .get(&jobs)
        .bearer_auth("0".repeat(64))
        .send()
        .await?;
    expect_error(wrong, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized).await;
    // Each token opens only its own side.
    let worker_on_jobs = farm
        .request(Method::GET, &api::paths::jobs(), &farm.worker)
        .send()
        .await?;
    expect_error(
        worker_on_jobs,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    let creator_on_lease = farm
        .request(Method::POST, &api::paths::lease("w"), &farm.creator)
        .json(&json!({"wait_s": 0}))
        .send()
        .await?;
    expect_error(
        creator_on_lease,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn malformed_bodies_name_the_field() -> TestResult {
    let farm = Farm::start().await;
    let response = farm
        .as_worker(&api::paths::lease("w"), &json!({"wait_s": "soon"}))
        .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest).await;
    assert!(body.message.contains("`wait_s`"), "{}", body.message);
    let response = farm
        .request(Method::POST, &api::paths::jobs(), &farm.creator)
        .body("{\"kind\": ")
        .send()
        .await?;
    let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest).await;
    assert!(body.message.contains("invalid JSON"), "{}", body.message);
    let response = farm
        .as_creator(
            Method::POST,
            &api::paths::jobs(),
            Some(&json!({"kind": "k", "plugin": {"sha256": "xyz", "size": 1}})),
        )
        .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest).await;
    assert!(body.message.contains("`plugin.sha256`"), "{}", body.message);
    Ok(())
}
