//! Issued workers: their worker.json, per-worker credentials, revocation,
//! validation, earnings, and the miner plugin named in the config.

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, ErrorCode, JobState, WorkerList};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    BTC_ADDRESS, Farm, TestResult, expect_error, key, new_worker_body, register_body, signed,
};

#[tokio::test]
async fn an_issued_config_has_the_host_shape_and_its_token_acts_for_its_worker_only() -> TestResult
{
    let farm = Farm::start().await;
    let issued = farm.issue(new_worker_body("Rig 1")).await;
    let id = issued.worker_id.clone();
    assert!(
        id.starts_with("wkr-") && id.len() == 14 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let config = &issued.config;
    assert_eq!(config["version"], 1);
    assert_eq!(config["worker"], json!({"id": id, "name": "Rig 1"}));
    assert_eq!(config["wallet"], BTC_ADDRESS);
    assert_eq!(config["coordinator"]["url"], farm.url.as_str());
    let token = config["coordinator"]["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert_ne!(token, farm.worker);
    // No miner plugin served: the settings are there, mining is off.
    assert_eq!(
        config["mining"],
        json!({"enabled": false, "pool": "stratum+tcp://pool.example:3333", "coin": "btc", "wallet": BTC_ADDRESS})
    );
    assert_eq!(config["prices"], json!({"hello": 0.25, "render": 1.5}));
    let mut keys: Vec<&String> = config.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "coordinator",
            "mining",
            "prices",
            "version",
            "wallet",
            "worker"
        ]
    );

    // The token works for its own worker …
    let response = farm
        .as_token(
            &token,
            &api::paths::register(),
            &register_body(&id, &key(1), &["hello"]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = farm
        .as_token(
            &token,
            &api::paths::heartbeat(&id),
            &json!({"activity": "idle", "leases": []}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // … and for no other (403: a valid token, the wrong worker).
    farm.register("wkr-farm-1", &key(2), &["hello"]).await;
    let body = expect_error(
        farm.as_token(
            &token,
            &api::paths::heartbeat("wkr-farm-1"),
            &json!({"activity": "idle", "leases": []}),
        )
        .await,
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
    )
    .await;
    assert!(
        body.message.contains(&format!(
            "this token belongs to worker {id}, not to worker wkr-farm-1"
        )),
        "{}",
        body.message
    );
    expect_error(
        farm.as_token(
            &token,
            &api::paths::lease("wkr-farm-1"),
            &json!({"wait_s": 0}),
        )
        .await,
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
    )
    .await;
    expect_error(
        farm.as_token(
            &token,
            &api::paths::register(),
            &register_body("wkr-other", &key(3), &[]),
        )
        .await,
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
    )
    .await;
    // Nor for the creator's API.
    expect_error(
        farm.request(Method::GET, &api::paths::jobs(), &token)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    // The farm token cannot speak for an issued worker.
    let body = expect_error(
        farm.as_worker(
            &api::paths::register(),
            &register_body(&id, &key(1), &["hello"]),
        )
        .await,
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
    )
    .await;
    assert!(
        body.message.contains("was issued its own credential"),
        "{}",
        body.message
    );

    // The list has both workers; the token is stored nowhere.
    let list: WorkerList = farm
        .as_creator(Method::GET, &api::paths::workers(), None)
        .await
        .json()
        .await?;
    let ids: Vec<(&str, bool)> = list
        .workers
        .iter()
        .map(|w| (w.id.as_str(), w.issued))
        .collect();
    assert_eq!(ids, [(id.as_str(), true), ("wkr-farm-1", false)]);
    let summary = farm.worker_summary(&id).await;
    assert_eq!(
        (
            summary.name.as_str(),
            summary.online,
            summary.revoked,
            summary.activity.as_deref()
        ),
        ("Rig 1", true, false, Some("idle"))
    );
    assert_eq!(summary.gpus.len(), 1);
    for entry in std::fs::read_dir(farm.config.data_dir.clone())? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token is in {}",
                path.display()
            );
        }
    }
    expect_error(
        farm.as_creator(Method::GET, &api::paths::worker("wkr-nobody"), None)
            .await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn a_revoked_credential_is_refused_everywhere_and_its_lease_goes_back() -> TestResult {
    let farm = Farm::start().await;
    let (id, token) = farm.issue_registered("Rig 2", &key(1), &["hello"]).await;
    farm.submit("job-r", "hello", json!({})).await;
    let response = farm
        .as_token(&token, &api::paths::lease(&id), &json!({"wait_s": 0}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let lease: api::Lease = response.json().await?;
    assert_eq!(farm.job("job-r").await.state, JobState::Running);

    let response = farm
        .as_creator(Method::POST, &api::paths::revoke_worker(&id), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary: api::WorkerSummary = response.json().await?;
    assert!(summary.revoked && !summary.online && summary.revoked_at_ms.is_some());
    // Its lease ended at once: the job is queued for another worker.
    assert_eq!(farm.job("job-r").await.state, JobState::Queued);

    let expected = format!(
        "worker {id}'s credential was revoked; import a new worker.json from the coordinator's portal"
    );
    let proof = signed(&key(1), &id, &lease, &[]);
    let posts = [
        (api::paths::register(), register_body(&id, &key(1), &[])),
        (
            api::paths::heartbeat(&id),
            json!({"activity": "idle", "leases": []}),
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
            json!({"kind": "plugin-error", "message": "m", "retryable": true}),
        ),
    ];
    for (path, body) in posts {
        let error = expect_error(
            farm.as_token(&token, &path, &body).await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::Revoked,
        )
        .await;
        assert_eq!(error.message, expected, "{path}");
    }
    let response = farm
        .request(Method::GET, &api::paths::blob(&lease.plugin.sha256), &token)
        .send()
        .await?;
    expect_error(response, StatusCode::UNAUTHORIZED, ErrorCode::Revoked).await;

    // Revoking again changes nothing; farm workers and strangers cannot be revoked.
    let response = farm
        .as_creator(Method::POST, &api::paths::revoke_worker(&id), None)
        .await;
    let again: api::WorkerSummary = response.json().await?;
    assert_eq!(again.revoked_at_ms, summary.revoked_at_ms);
    farm.register("wkr-farm-2", &key(4), &[]).await;
    expect_error(
        farm.as_creator(Method::POST, &api::paths::revoke_worker("wkr-farm-2"), None)
            .await,
        StatusCode::CONFLICT,
        ErrorCode::Conflict,
    )
    .await;
    expect_error(
        farm.as_creator(Method::POST, &api::paths::revoke_worker("wkr-nobody"), None)
            .await,
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
    )
    .await;
    // Only the creator may revoke.
    expect_error(
        farm.as_worker(&api::paths::revoke_worker(&id), &json!({}))
            .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn each_field_of_a_new_worker_is_checked_and_named() -> TestResult {
    let farm = Farm::start().await;
    let cases = [
        (
            json!({"name": ""}),
            "`name` \"\" must be 1-64 printable characters",
        ),
        (json!({"name": "x".repeat(65)}), "`name`"),
        (
            json!({"wallet": "no"}),
            "`wallet` \"no\" is not a wallet address (8-128 letters, digits, : . _ -)",
        ),
        (
            json!({"mining": {"pool": "pool.example:3333", "coin": "btc"}}),
            "`mining.pool` \"pool.example:3333\" must start with stratum+tcp://",
        ),
        (
            json!({"mining": {"pool": "stratum+tcp://pool.example", "coin": "btc"}}),
            "`mining.pool` \"stratum+tcp://pool.example\" has no port",
        ),
        (
            json!({"mining": {"pool": "stratum+tcp://pool.example:3333", "coin": "doge"}}),
            "`mining.coin` \"doge\" is not supported",
        ),
        (
            json!({"mining": {"pool": "stratum+tcp://pool.example:3333", "coin": "btc", "wallet": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"}}),
            "`mining.wallet` \"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3\" is not a btc address:",
        ),
        (
            json!({"prices": {"Render": 1.0}}),
            "`prices`: job kind \"Render\" must be 1-64 characters from a-z 0-9 -",
        ),
        (
            json!({"prices": {"render": -0.5}}),
            "`prices.render` must be a number ≥ 0, got -0.5",
        ),
        (json!({"prices": {"render": "free"}}), "`prices.render`"),
        (json!({"colour": "red"}), "unknown field `colour`"),
    ];
    for (change, expected) in cases {
        let mut body = new_worker_body("Rig");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let error = expect_error(
            farm.as_creator(Method::POST, &api::paths::workers(), Some(&body))
                .await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
        )
        .await;
        assert!(
            error.message.contains(expected),
            "{expected}: {}",
            error.message
        );
    }
    // Without mining, any wallet the host accepts will do.
    let issued = farm
        .issue(json!({"name": "Render box", "wallet": "farm-wallet-01"}))
        .await;
    assert!(issued.config.get("mining").is_none());
    assert_eq!(issued.config["prices"], json!({}));
    // The worker token cannot issue workers.
    expect_error(
        farm.as_worker(&api::paths::workers(), &new_worker_body("Rig"))
            .await,
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthorized,
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn earnings_are_the_price_of_each_completed_job_when_it_completed() -> TestResult {
    let farm = Farm::start().await;
    let (id, token) = farm.issue_registered("Earner", &key(7), &["hello"]).await;
    for n in 0..3 {
        farm.submit(&format!("job-{n}"), "hello", json!({})).await;
        let response = farm
            .as_token(&token, &api::paths::lease(&id), &json!({"wait_s": 0}))
            .await;
        let lease: api::Lease = response.json().await?;
        let output = format!("result {n}");
        farm.put_blob(output.as_bytes()).await;
        let proof = signed(&key(7), &id, &lease, &[("out.txt", output.as_bytes())]);
        let response = farm
            .as_token(
                &token,
                &api::paths::complete(&lease.lease_id),
                &json!({ "proof": proof }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // A job held now shows as the worker's lease.
    farm.submit("job-held", "hello", json!({})).await;
    let response = farm
        .as_token(&token, &api::paths::lease(&id), &json!({"wait_s": 0}))
        .await;
    let held: api::Lease = response.json().await?;
    let mining = json!({"coin": "btc", "pool": "pool.example:3333", "hashrate": 6.41e6, "accepted": 3, "rejected": 1});
    let response = farm
        .as_token(
            &token,
            &api::paths::heartbeat(&id),
            &json!({"activity": "job", "leases": [{"lease_id": held.lease_id, "fraction": 0.4, "message": "tile 4"}], "mining": mining}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary = farm.worker_summary(&id).await;
    assert_eq!(summary.jobs_completed, 3);
    assert!(
        (summary.earnings - 0.75).abs() < 1e-9,
        "{}",
        summary.earnings
    );
    assert_eq!(summary.leases.len(), 1);
    assert_eq!(
        (
            summary.leases[0].job_id.as_str(),
            summary.leases[0].fraction,
            summary.leases[0].kind.as_str()
        ),
        ("job-held", 0.4, "hello")
    );
    assert_eq!(summary.activity.as_deref(), Some("job"));
    let figures = summary.mining.unwrap();
    assert_eq!((figures.coin.as_str(), figures.accepted), ("btc", 3));
    assert!(summary.last_heartbeat_ms.is_some() && summary.online);

    // A farm worker earns its registered price.
    farm.register("wkr-farm-3", &key(8), &["hello"]).await;
    farm.submit("job-farm", "hello", json!({})).await;
    let lease = farm.lease("wkr-farm-3", 0).await.unwrap();
    farm.put_blob(b"farm").await;
    let proof = signed(&key(8), "wkr-farm-3", &lease, &[("out.txt", b"farm")]);
    assert_eq!(
        farm.complete(&lease.lease_id, &proof).await.status(),
        StatusCode::OK
    );
    let farm_worker = farm.worker_summary("wkr-farm-3").await;
    assert!(!farm_worker.issued);
    assert_eq!(farm_worker.jobs_completed, 1);
    assert!((farm_worker.earnings - 0.01).abs() < 1e-9);
    Ok(())
}

#[tokio::test]
async fn with_a_miner_plugin_issued_workers_mine_with_it() -> TestResult {
    let plugin_dir = tempfile::tempdir()?;
    let plugin = plugin_dir.path().join("mine.wasm");
    std::fs::write(&plugin, b"\0asm the miner")?;
    let path = plugin.clone();
    let farm = Farm::start_with(move |c| c.miner_plugin = Some(path)).await;
    let issued = farm.issue(new_worker_body("Miner")).await;
    let digest = Sha256Digest::of(b"\0asm the miner");
    assert_eq!(issued.config["mining"]["enabled"], true);
    assert_eq!(
        issued.config["mining"]["plugin_sha256"],
        digest.to_string().as_str()
    );
    // The worker fetches it with its own token.
    let token = issued.config["coordinator"]["token"].as_str().unwrap();
    let response = farm
        .request(Method::GET, &api::paths::blob(&digest), token)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(&response.bytes().await?[..], b"\0asm the miner");
    Ok(())
}
