//! Blob upload, download with ranges, and the fault-injection hooks.

use futures_util::StreamExt;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, ErrorCode};
use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};

use crate::support::{Farm, TestResult, expect_error};

fn data() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn uploads_are_checked_against_their_address() -> TestResult {
    let farm = Farm::start().await;
    let bytes = data();
    let sha = Sha256Digest::of(&bytes);
    let put = |token: &str, body: Vec<u8>, sha: Sha256Digest| {
        farm.request(Method::PUT, &api::paths::blob(&sha), token)
            .body(body)
            .send()
    };
    let wrong = Sha256Digest::of(b"something else");
    let body = expect_error(
        put(&farm.creator, bytes.clone(), wrong).await?,
        StatusCode::BAD_REQUEST,
        ErrorCode::DigestMismatch,
    )
    .await;
    assert!(
        body.message.contains(&sha.to_string()) && body.message.contains(&wrong.to_string()),
        "{}",
        body.message
    );
    assert_eq!(
        put(&farm.worker, bytes.clone(), sha).await?.status(),
        StatusCode::CREATED,
        "workers upload outputs"
    );
    assert_eq!(
        put(&farm.creator, bytes.clone(), sha).await?.status(),
        StatusCode::OK
    );
    let head = farm
        .request(Method::HEAD, &api::paths::blob(&sha), &farm.worker)
        .send()
        .await?;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()),
        Some("100000")
    );
    assert_eq!(
        head.headers()
            .get(ACCEPT_RANGES)
            .and_then(|v| v.to_str().ok()),
        Some("bytes")
    );
    let absent = farm
        .request(Method::HEAD, &api::paths::blob(&wrong), &farm.worker)
        .send()
        .await?;
    assert_eq!(absent.status(), StatusCode::NOT_FOUND);
    let bad_address = farm
        .request(Method::GET, "/api/v1/blobs/xyz", &farm.worker)
        .send()
        .await?;
    expect_error(
        bad_address,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn blobs_over_the_limit_are_413() -> TestResult {
    let farm = Farm::start_with(|c| c.max_blob_bytes = 1000).await;
    let bytes = vec![7u8; 5000];
    let response = farm
        .request(
            Method::PUT,
            &api::paths::blob(&Sha256Digest::of(&bytes)),
            &farm.creator,
        )
        .body(bytes)
        .send()
        .await?;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge).await;
    Ok(())
}

#[tokio::test]
async fn downloads_serve_whole_blobs_and_ranges() -> TestResult {
    let farm = Farm::start().await;
    let bytes = data();
    let sha = farm.put_blob(&bytes).await;
    let get = |range: Option<&str>| {
        let request = farm.request(Method::GET, &api::paths::blob(&sha), &farm.worker);
        match range {
            Some(range) => request.header(RANGE, range),
            None => request,
        }
        .send()
    };
    let full = get(None).await?;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(
        full.headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()),
        Some("100000")
    );
    assert_eq!(full.bytes().await?.as_ref(), bytes.as_slice());

    let cases = [
        ("bytes=10-19", 10..20, "bytes 10-19/100000"),
        ("bytes=99990-", 99_990..100_000, "bytes 99990-99999/100000"),
        ("bytes=-5", 99_995..100_000, "bytes 99995-99999/100000"),
        (
            "bytes=99999-200000",
            99_999..100_000,
            "bytes 99999-99999/100000",
        ),
    ];
    for (range, slice, content_range) in cases {
        let response = get(Some(range)).await?;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok()),
            Some(content_range)
        );
        assert_eq!(response.bytes().await?.as_ref(), &bytes[slice], "{range}");
    }
    let response = get(Some("bytes=100000-")).await?;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok()),
        Some("bytes */100000")
    );
    let response = get(None).await?;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "faults are off by default"
    );
    assert_eq!(response.bytes().await?.len(), bytes.len());
    let missing = farm
        .request(
            Method::GET,
            &api::paths::blob(&Sha256Digest::of(b"none")),
            &farm.worker,
        )
        .send()
        .await?;
    expect_error(missing, StatusCode::NOT_FOUND, ErrorCode::NotFound).await;
    Ok(())
}

/// Reads a body until it ends or breaks: (bytes, whether it broke).
async fn read_until_break(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

#[tokio::test]
async fn a_cut_download_can_be_resumed_with_a_range() -> TestResult {
    let farm = Farm::start_with(|c| c.faults.cut_blob_after_bytes = Some(4096)).await;
    let bytes = data();
    let sha = farm.put_blob(&bytes).await;
    let first = farm
        .request(Method::GET, &api::paths::blob(&sha), &farm.worker)
        .send()
        .await?;
    assert_eq!(first.status(), StatusCode::OK);
    let (received, broke) = read_until_break(first).await;
    assert!(broke, "the connection is cut short of Content-Length");
    assert_eq!(received, bytes[..4096]);
    let rest = farm
        .request(Method::GET, &api::paths::blob(&sha), &farm.worker)
        .header(RANGE, "bytes=4096-")
        .send()
        .await?;
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    let (tail, broke) = read_until_break(rest).await;
    assert!(!broke);
    assert_eq!([received, tail].concat(), bytes);
    // Only the first full download of each blob is cut.
    let (again, broke) = read_until_break(
        farm.request(Method::GET, &api::paths::blob(&sha), &farm.worker)
            .send()
            .await?,
    )
    .await;
    assert!(!broke);
    assert_eq!(again, bytes);
    Ok(())
}

#[tokio::test]
async fn a_blob_marked_for_corruption_is_served_wrong_exactly_once() -> TestResult {
    let bytes = data();
    let sha = Sha256Digest::of(&bytes);
    let farm = Farm::start_with(|c| c.faults.corrupt_blob_once = vec![sha]).await;
    farm.put_blob(&bytes).await;
    let get = || {
        farm.request(Method::GET, &api::paths::blob(&sha), &farm.worker)
            .send()
    };
    let first = get().await?.bytes().await?;
    assert_eq!(first.len(), bytes.len());
    assert_ne!(Sha256Digest::of(&first), sha);
    assert_eq!(first.iter().zip(&bytes).filter(|(a, b)| a != b).count(), 1);
    assert_eq!(Sha256Digest::of(&get().await?.bytes().await?), sha);
    Ok(())
}
