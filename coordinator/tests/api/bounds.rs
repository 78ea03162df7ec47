//! The coordinator under load from hostile clients: slow requests, slow
//! headers, idle connections, stalled and slow-reading transfers, too many
//! long polls, upload quotas, garbage collection of unreferenced blobs, and
//! unknown tokens refused before the body (issue 14, item 13).

use std::time::Duration;

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, ErrorCode, JobState};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    Farm, TestResult, expect_error, key, parse_reply, raw_connect, read_until_closed, signed,
};

/// A generous bound for a server-side timeout of about a second to show
/// (a failsafe, not a measurement).
const FAILSAFE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_request_whose_body_never_comes_is_cut_off_with_timed_out() -> TestResult {
    let farm = Farm::start_with(|c| c.limits.request_timeout = Duration::from_secs(1)).await;
    // Headers of a job submission promising 100 bytes, then 10 of them.
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"kind\": ",
        api::paths::jobs(),
        farm.creator
    );
    let mut stream = raw_connect(&farm, request.as_bytes()).await;
    let (status, body) = parse_reply(&read_until_closed(&mut stream, FAILSAFE).await);
    assert_eq!(status, 503);
    assert_eq!(body["error"], "timed_out");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("longer than 1 s") && message.contains("serve --request-timeout-s"),
        "{message}"
    );
    // The server is fine afterwards.
    assert_eq!(
        farm.as_creator(Method::GET, &api::paths::jobs(), None)
            .await
            .status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() -> TestResult {
    let farm = Farm::start_with(|c| c.limits.header_timeout = Duration::from_secs(1)).await;
    // Half a request line, and then nothing (slowloris).
    let mut slow = raw_connect(&farm, b"GET /api/v1/in").await;
    read_until_closed(&mut slow, FAILSAFE).await;
    // A whole request answered, then the connection left idle (keep-alive).
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", api::paths::info());
    let mut idle = raw_connect(&farm, request.as_bytes()).await;
    let reply = read_until_closed(&mut idle, FAILSAFE).await;
    let (status, body) = parse_reply(&reply);
    assert_eq!(
        (status, body["service"].as_str()),
        (200, Some("pictor-coordinator"))
    );
    Ok(())
}

#[tokio::test]
async fn a_stalled_upload_is_cut_and_leaves_nothing_behind() -> TestResult {
    // Only the stall bound: with the default minimum rate, the rate check
    // (due 1 s after the body started) can fire before the stall check (due
    // 1 s after its 10 bytes came), and on a loaded machine it did.
    let farm = Farm::start_with(|c| {
        c.limits.stall_timeout = Duration::from_secs(1);
        c.limits.min_transfer_rate = 1;
    })
    .await;
    let sha = Sha256Digest::of(b"never sent in full");
    // The blob route has no request timeout (large blobs take long): the
    // stall bound ends it.
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\nnever sent",
        api::paths::blob(&sha),
        farm.worker
    );
    let mut stream = raw_connect(&farm, request.as_bytes()).await;
    let (status, body) = parse_reply(&read_until_closed(&mut stream, FAILSAFE).await);
    assert_eq!(status, 503);
    assert_eq!(body["error"], "timed_out");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("stalled: no byte moved for 1 s") && message.contains("--stall-timeout-s"),
        "{message}"
    );
    assert_eq!(farm.blob_status(&sha).await, StatusCode::NOT_FOUND);
    let tmp = farm.config.data_dir.join("blobs/tmp");
    assert_eq!(
        std::fs::read_dir(tmp)?.count(),
        0,
        "the partial upload is deleted"
    );
    Ok(())
}

#[tokio::test]
async fn a_download_the_client_stops_reading_is_cut() -> TestResult {
    let farm = Farm::start_with(|c| c.limits.stall_timeout = Duration::from_secs(1)).await;
    // Larger than what the loopback socket buffers hold.
    let blob: Vec<u8> = (0..48u32 << 20).map(|i| (i % 253) as u8).collect();
    let sha = farm.put_blob(&blob).await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        api::paths::blob(&sha),
        farm.worker
    );
    let mut stream = raw_connect(&farm, request.as_bytes()).await;
    // Read nothing for a while: the server's writes stall, and it gives up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let received = read_until_closed(&mut stream, FAILSAFE).await;
    assert!(
        received.len() < blob.len(),
        "the server kept the stalled download open ({} bytes of {})",
        received.len(),
        blob.len()
    );
    // A reader that keeps up gets the whole blob.
    let response = farm
        .request(Method::GET, &api::paths::blob(&sha), &farm.worker)
        .send()
        .await?;
    assert_eq!(response.bytes().await?.len(), blob.len());
    Ok(())
}

#[tokio::test]
async fn a_worker_may_hold_two_long_polls_and_a_third_is_refused_at_once() -> TestResult {
    let farm = std::sync::Arc::new(Farm::start().await);
    farm.register("wkr-1", &key(1), &[]).await;
    // Two polls that wait; each asks again if the probe below took its
    // place for a moment.
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let farm = std::sync::Arc::clone(&farm);
            tokio::spawn(async move {
                loop {
                    let status = farm
                        .as_worker(&api::paths::lease("wkr-1"), &json!({"wait_s": 3}))
                        .await
                        .status();
                    if status != StatusCode::TOO_MANY_REQUESTS {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    // Ask until both polls are in (a third answered 204 means they are not yet).
    let deadline = tokio::time::Instant::now() + FAILSAFE;
    let refused = loop {
        let response = farm
            .as_worker(&api::paths::lease("wkr-1"), &json!({"wait_s": 0}))
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the third poll was never refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = expect_error(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
    )
    .await;
    assert!(
        body.message
            .contains("worker wkr-1 already has 2 lease requests waiting")
            && body.message.contains("--max-polls-per-worker"),
        "{}",
        body.message
    );
    // Another worker is not affected.
    farm.register("wkr-2", &key(2), &[]).await;
    assert_eq!(farm.lease("wkr-2", 0).await, None);
    // A job ends one of the two polls; its place is free again.
    farm.submit("job-a", "hello", json!({})).await;
    let mut statuses = Vec::new();
    for poll in polls {
        statuses.push(poll.await?);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::NO_CONTENT]);
    assert_eq!(farm.lease("wkr-1", 0).await, None);
    Ok(())
}

#[tokio::test]
async fn uploads_nothing_references_are_held_to_a_quota_per_caller() -> TestResult {
    let farm = Farm::start_with(|c| {
        c.limits.worker_quota = 1000;
        c.limits.creator_quota = 5000;
    })
    .await;
    let put = |token: &str, bytes: Vec<u8>| {
        let sha = Sha256Digest::of(&bytes);
        farm.request(Method::PUT, &api::paths::blob(&sha), token)
            .body(bytes)
            .send()
    };
    assert_eq!(
        put(&farm.worker, vec![1; 600]).await?.status(),
        StatusCode::CREATED
    );
    // Declared too large for what is left: refused before the body.
    let body = expect_error(
        put(&farm.worker, vec![2; 600]).await?,
        StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::QuotaExceeded,
    )
    .await;
    assert!(
        body.message
            .contains("the farm-wide worker token would hold 1200 bytes")
            && body.message.contains("quota of 1000 bytes")
            && body.message.contains("serve --worker-quota-mib"),
        "{}",
        body.message
    );
    // Without a length (chunked), refused once its bytes pass the quota.
    let chunks = futures_util::stream::iter(
        (0..6).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![3u8; 100]))),
    );
    let sha = Sha256Digest::of(&[3u8; 600]);
    let response = farm
        .request(Method::PUT, &api::paths::blob(&sha), &farm.worker)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await?;
    expect_error(
        response,
        StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::QuotaExceeded,
    )
    .await;
    assert_eq!(farm.blob_status(&sha).await, StatusCode::NOT_FOUND);
    // The creator has its own quota; an issued worker its own too.
    assert_eq!(
        put(&farm.creator, vec![4; 4000]).await?.status(),
        StatusCode::CREATED
    );
    let (_, token) = farm.issue_registered("Rig", &key(5), &["hello"]).await;
    assert_eq!(
        put(&token, vec![5; 900]).await?.status(),
        StatusCode::CREATED
    );
    expect_error(
        put(&token, vec![6; 200]).await?,
        StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::QuotaExceeded,
    )
    .await;

    // Once an accepted result names the farm's blob, it is not charged.
    farm.register("wkr-1", &key(1), &["hello"]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let output = vec![1u8; 600];
    let proof = signed(&key(1), "wkr-1", &lease, &[("out.bin", &output)]);
    assert_eq!(
        farm.complete(&lease.lease_id, &proof).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&farm.worker, vec![2; 600]).await?.status(),
        StatusCode::CREATED
    );
    Ok(())
}

#[tokio::test]
async fn blobs_nothing_references_are_collected_after_the_grace_period() -> TestResult {
    let plugin_dir = tempfile::tempdir()?;
    let miner = plugin_dir.path().join("mine.wasm");
    std::fs::write(&miner, b"\0asm the miner")?;
    let grace = Duration::from_secs(3);
    let farm = Farm::start_with(move |c| {
        c.miner_plugin = Some(miner);
        c.limits.blob_grace = grace;
        c.limits.blob_gc_interval = Duration::from_millis(100);
        c.limits.worker_quota = 1000;
    })
    .await;
    // Referenced: the job's plugin and input, the accepted output.
    farm.register("wkr-1", &key(1), &["hello"]).await;
    farm.submit("job-a", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let output = farm.put_blob(b"the output").await;
    let proof = signed(&key(1), "wkr-1", &lease, &[("out.txt", b"the output")]);
    assert_eq!(
        farm.complete(&lease.lease_id, &proof).await.status(),
        StatusCode::OK
    );
    assert_eq!(farm.job("job-a").await.state, JobState::Succeeded);
    // Not referenced: junk from a worker, filling its quota.
    let junk = vec![7u8; 900];
    let junk_sha = Sha256Digest::of(&junk);
    let response = farm
        .request(Method::PUT, &api::paths::blob(&junk_sha), &farm.worker)
        .body(junk)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);

    let deadline = tokio::time::Instant::now() + FAILSAFE;
    while farm.blob_status(&junk_sha).await == StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the junk blob was never collected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hex = junk_sha.to_string();
    let file = farm
        .config
        .data_dir
        .join("blobs")
        .join(&hex[..2])
        .join(&hex);
    assert!(!file.exists(), "{} is still there", file.display());
    for kept in [
        lease.plugin.sha256,
        lease.inputs[0].sha256,
        output,
        Sha256Digest::of(b"\0asm the miner"),
    ] {
        assert_eq!(
            farm.blob_status(&kept).await,
            StatusCode::OK,
            "{kept} was collected"
        );
    }
    // The worker's quota is free again.
    let again = vec![8u8; 900];
    let response = farm
        .request(
            Method::PUT,
            &api::paths::blob(&Sha256Digest::of(&again)),
            &farm.worker,
        )
        .body(again)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);
    Ok(())
}

#[tokio::test]
async fn unknown_and_absurd_tokens_are_refused_before_the_body() -> TestResult {
    let farm = Farm::start().await;
    // A promise of a gigabyte that never comes: the 401 comes at once.
    for (method, path) in [
        ("POST", api::paths::jobs()),
        ("PUT", api::paths::blob(&Sha256Digest::of(b"x"))),
        ("POST", api::paths::register()),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1073741824\r\n\r\n",
            "f".repeat(64)
        );
        let mut stream = raw_connect(&farm, request.as_bytes()).await;
        let (status, body) = parse_reply(&read_until_closed(&mut stream, FAILSAFE).await);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
    }
    // A token of 10 000 characters is not even hashed.
    let huge = "x".repeat(10_000);
    expect_error(
        farm.request(Method::GET, &api::paths::jobs(), &huge)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    // Many unknown tokens in a row: each refused, the server unaffected.
    for n in 0..200 {
        let token = format!("{n:064x}");
        let response = farm
            .request(Method::POST, &api::paths::heartbeat("w"), &token)
            .json(&json!({"activity": "idle", "leases": []}))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        farm.as_creator(Method::GET, &api::paths::jobs(), None)
            .await
            .status(),
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn params_past_their_bound_are_refused_at_submission() -> TestResult {
    let farm = Farm::start().await;
    // {"x":"…"} is the string plus 8 bytes: at the bound it is accepted.
    let fits = "a".repeat(api::MAX_PARAMS_BYTES - 8);
    farm.submit("job-fits", "hello", json!({"params": {"x": fits}}))
        .await;
    let over = "a".repeat(api::MAX_PARAMS_BYTES - 7);
    let body = farm
        .job_body("job-over", "hello", json!({"params": {"x": over}}))
        .await;
    let error = expect_error(
        farm.as_creator(Method::POST, &api::paths::jobs(), Some(&body))
            .await,
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
    )
    .await;
    assert!(
        error
            .message
            .contains("`params` is 1048577 bytes as JSON, the limit is 1048576"),
        "{}",
        error.message
    );
    Ok(())
}
