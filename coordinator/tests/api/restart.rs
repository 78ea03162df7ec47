//! The store survives a restart.

use pictor_protocol::api::JobState;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Farm, TestResult, key, signed};

#[tokio::test]
async fn jobs_leases_and_tokens_survive_a_restart() -> TestResult {
    let mut farm = Farm::start().await;
    farm.register("wkr-1", &key(1), &[]).await;
    farm.submit("job-a", "hello", json!({})).await;
    farm.submit("job-b", "hello", json!({})).await;
    let lease = farm.lease("wkr-1", 0).await.unwrap();
    let (creator, worker) = (farm.creator.clone(), farm.worker.clone());

    farm.restart().await;
    assert_eq!(
        (farm.creator.as_str(), farm.worker.as_str()),
        (creator.as_str(), worker.as_str())
    );
    assert!(farm.dir.path().join("data/coordinator.sqlite").is_file());
    let status = farm.job("job-a").await;
    assert_eq!((status.state, status.attempts), (JobState::Running, 1));
    assert_eq!(
        farm.heartbeat("wkr-1", &[&lease.lease_id]).await["leases"][0]["state"],
        "active"
    );
    // The old lease can still complete, and the queue goes on where it was.
    let response = farm
        .complete(&lease.lease_id, &signed(&key(1), "wkr-1", &lease, &[]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(farm.job("job-a").await.state, JobState::Succeeded);
    assert_eq!(
        farm.lease("wkr-1", 0).await.map(|l| l.job_id),
        Some("job-b".into())
    );
    Ok(())
}
