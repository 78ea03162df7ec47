//! The `mine` plugin through the real host and GPU (lavapipe in CI) against
//! the test pool (`pool.rs`), which rebuilds and hashes every share itself:
//! the kernel's SHA-256d agrees with `sha2` on published blocks and random
//! headers; shares are found, checked and accepted; rejected shares are
//! counted; the miner stops at once when preempted, reconnects when the
//! pool drops it or asks, and cannot reach any address but the pool's.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pictor_host::config::{WorkerConfig, parse};
use pictor_host::mining::{self, Eligibility, MiningPlan};
use pictor_host::telemetry::nvml;
use pictor_runtime::capabilities::gpu::{AdapterChoice, GpuProvider};
use pictor_runtime::capabilities::mining::MinerReport;
use pictor_runtime::capabilities::progress::Progress;
use pictor_runtime::capabilities::sockets::SocketGrant;
use pictor_runtime::jobs::outcome::{FailureKind, JobOutcome};
use pictor_runtime::jobs::runner::{JobRun, run_job};
use pictor_runtime::jobs::sandbox::JobDirs;
use pictor_runtime::jobs::spec::JobSpec;
use pictor_runtime::{LoadedPlugin, Runtime, RuntimeConfig, World};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::support::{plugin, scratch};
use pictor_test_support::pool::{PoolOptions, RawClient, TestPool};

/// Share difficulty of the tests: 2^-12, one share per ~2^20 hashes — a
/// few a second on a software GPU (lavapipe does ~6 MH/s on 2 cores), each
/// one a real SHA-256d search.
const DIFFICULTY: f64 = 1.0 / 4096.0;

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn with_nonce(header: &[u8], nonce: u32) -> Vec<u8> {
    let mut h = header.to_vec();
    h[76..].copy_from_slice(&nonce.to_le_bytes());
    h
}

/// A runtime whose compiled-component cache is shared by this test binary
/// (the miner is compiled once per run).
fn runtime() -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: Some(scratch().join("mining-component-cache")),
    })
    .unwrap()
}

fn load_miner(runtime: &Runtime) -> LoadedPlugin {
    let plugin = runtime
        .load_miner(&std::fs::read(plugin("mine")).unwrap())
        .unwrap();
    assert_eq!(plugin.world, World::Miner);
    plugin
}

/// Runs the miner plugin once with `params` (no pool grant unless given).
async fn run_miner(
    plugin: &LoadedPlugin,
    gpu: &Arc<GpuProvider>,
    params: Value,
    dir: &Path,
) -> JobOutcome {
    let spec = JobSpec::from_json(
        &json!({"version": 1, "id": "mine-test", "kind": "mine", "params": params}).to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let dirs = JobDirs::prepare(&dir.join("in"), &dir.join("out")).unwrap();
    run_job(plugin, JobRun::new(&spec, &dirs).with_gpu(Arc::clone(gpu))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_hashes_known_blocks_and_random_headers_like_sha2() {
    // Published headers with their nonces: the genesis block and block 125552.
    let blocks = [
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695",
    ];
    let expected_hashes = [
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
    ];
    let nonce_of = |h: &str| {
        let b = unhex(h);
        u32::from_le_bytes([b[76], b[77], b[78], b[79]])
    };
    // Random headers: 32 of them, 64 nonces each, from a fixed seed.
    let random: Vec<String> = (0..32u32)
        .map(|i| {
            let a = sha256d(&i.to_le_bytes());
            let b = sha256d(&a);
            let c = sha256d(&b);
            hex::encode([&a[..], &b[..], &c[..16]].concat())
        })
        .collect();
    let mut hash_cases: Vec<Value> = blocks
        .iter()
        .map(|b| json!({"header": b, "first": nonce_of(b) - 2, "count": 5}))
        .collect();
    hash_cases.extend(
        random
            .iter()
            .enumerate()
            .map(|(i, h)| json!({"header": h, "first": (i as u32) * 1_000_003, "count": 64})),
    );
    // Searches: each block's real nonce in a window around it at the
    // block's own target; a random header at an easy target (2^244: ~16 hits
    // in 65536 nonces) compared with a CPU search.
    let easy = format!("000{}", "f".repeat(61));
    let mut search_cases: Vec<Value> = blocks
        .iter()
        .map(|b| json!({"header": b, "first": nonce_of(b) - 3000, "count": 6000}))
        .collect();
    search_cases.push(json!({"header": random[0], "first": 0, "count": 65536, "target": easy}));
    search_cases.push(
        json!({"header": random[1], "first": u32::MAX - 65535, "count": 65536, "target": easy}),
    );

    let runtime = runtime();
    let plugin = load_miner(&runtime);
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_miner(
        &plugin,
        &gpu,
        json!({"mode": "self-test", "hash": hash_cases, "search": search_cases}),
        dir.path(),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.failure);
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/self-test.json")).unwrap())
            .unwrap();

    // Every GPU digest equals sha2's; the blocks' equal their published hashes.
    let hashes = report["hash"].as_array().unwrap();
    assert_eq!(hashes.len(), hash_cases.len());
    for (case, digests) in hash_cases.iter().zip(hashes) {
        let header = unhex(case["header"].as_str().unwrap());
        let first = case["first"].as_u64().unwrap() as u32;
        let digests = digests.as_array().unwrap();
        assert_eq!(digests.len() as u64, case["count"].as_u64().unwrap());
        for (i, digest) in digests.iter().enumerate() {
            let expected = hex::encode(sha256d(&with_nonce(&header, first + i as u32)));
            assert_eq!(
                digest.as_str().unwrap(),
                expected,
                "header {} nonce {}",
                &case["header"].as_str().unwrap()[..16],
                first + i as u32
            );
        }
    }
    for (i, published) in expected_hashes.iter().enumerate() {
        let mut digest = unhex(hashes[i][2].as_str().unwrap());
        digest.reverse();
        assert_eq!(hex::encode(digest), *published, "block {i}");
    }

    // The search finds exactly the real nonce of each block, and exactly
    // the nonces a CPU search finds at the easy target.
    let found = report["search"].as_array().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(found[i], json!([nonce_of(block)]), "block {i}");
    }
    let target = unhex(&easy);
    for (case, found) in search_cases[2..].iter().zip(&found[2..]) {
        let header = unhex(case["header"].as_str().unwrap());
        let first = case["first"].as_u64().unwrap() as u32;
        let cpu: Vec<u32> = (0..65536u32)
            .map(|i| first.wrapping_add(i))
            .filter(|&n| {
                let mut h = sha256d(&with_nonce(&header, n));
                h.reverse();
                h.as_slice() <= target.as_slice()
            })
            .collect();
        assert!((4..=63).contains(&cpu.len()), "{} CPU hits", cpu.len());
        assert_eq!(found, &json!(cpu));
    }
    assert!(!report["adapter"].as_str().unwrap().is_empty());
}

/// The worker's mining plan for `pool`, from a real worker config.
fn plan(pool: &TestPool, runtime: &Runtime, dir: &Path) -> MiningPlan {
    let config = json!({
        "version": 1, "worker": {"id": "wkr-mine-1"}, "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "mining": {"enabled": true, "pool": pool.url(), "coin": "btc", "plugin": plugin("mine"), "idle_delay_s": 0, "require_nvidia": false, "allow_private_pool": true}
    });
    let config = WorkerConfig::validate(
        parse(&config.to_string()).unwrap(),
        dir,
        &dir.join("worker.json"),
    )
    .unwrap();
    match mining::eligibility(&config, &nvml::sample(), runtime) {
        Eligibility::Mine(plan) => *plan,
        Eligibility::Off(why) => panic!("mining is off: {why}"),
    }
}

/// Waits (without blocking the runtime) until `ready`, or fails with `what`.
async fn until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_finds_shares_the_pool_checks_and_stops_at_once_when_preempted() {
    let pool = TestPool::start(PoolOptions {
        difficulty: DIFFICULTY,
        ..PoolOptions::default()
    });
    let (runtime, dir) = (runtime(), tempfile::tempdir().unwrap());
    let plan = plan(&pool, &runtime, dir.path());
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let (status, activity) = watch::channel(None);
    let stats = plan.stats();
    let miner = plan
        .start(0, &dir.path().join("mining"), Arc::clone(&gpu), status)
        .unwrap();

    until("3 shares accepted by the pool", WAIT, || {
        pool.tally().accepted >= 3
    })
    .await;
    // Each one a real SHA-256d share, rebuilt and hashed by the pool, from
    // this worker's <wallet>.<worker id>.
    for share in pool.shares() {
        assert!(share.accepted, "{share:?}");
        assert!(share.achieved >= DIFFICULTY, "{share:?}");
        assert_eq!(
            share.user,
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.wkr-mine-1"
        );
    }
    // The owner's figures follow through the typed mining interface.
    until("the figures to show the shares", WAIT, || {
        stats.borrow().as_ref().is_some_and(|s| s.accepted >= 3)
    })
    .await;
    let now = stats.borrow().clone().unwrap();
    assert!(
        now.connected && now.hashrate_hps > 0.0 && now.miners == 1 && now.difficulty == DIFFICULTY,
        "{now:?}"
    );
    assert_eq!(
        (now.pool, now.coin),
        (pool.addr().to_string(), "btc".to_string())
    );
    let progress = activity
        .borrow()
        .clone()
        .map(|a| a.progress)
        .unwrap_or_default();
    assert!(progress.message.contains("accepted"), "{progress:?}");

    // Preempted mid-search: gone at once, GPU drained, connection closed.
    let stopped = miner.stop(&gpu).await;
    assert!(
        stopped.latency_ms < 2000.0,
        "stop took {} ms",
        stopped.latency_ms
    );
    let failure = stopped.outcome.and_then(|o| o.failure).unwrap();
    assert_eq!(failure.kind, FailureKind::Preempted, "{failure:?}");
    assert!(
        stopped.report.accepted >= 3 && stopped.report.hashes > 0,
        "{:?}",
        stopped.report
    );
    until("the pool to see the miner gone", WAIT, || {
        pool.tally().open == 0
    })
    .await;
    let after = stats.borrow().clone().unwrap();
    assert_eq!(
        (after.miners, after.hashrate_hps, after.connected),
        (0, 0.0, false)
    );
    assert!(after.accepted >= 3, "totals are kept: {after:?}");
    assert_eq!(
        gpu.device().unwrap().live_buffers(),
        0,
        "the miner's GPU buffers are freed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_the_pool_rejects_are_counted_as_rejected() {
    // The pool announces one difficulty but checks 4× harder: about three
    // shares in four are "low difficulty".
    let options = PoolOptions {
        difficulty: DIFFICULTY,
        check_difficulty: Some(4.0 * DIFFICULTY),
        ..PoolOptions::default()
    };
    let pool = TestPool::start(options);
    let (runtime, dir) = (runtime(), tempfile::tempdir().unwrap());
    let plan = plan(&pool, &runtime, dir.path());
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let stats = plan.stats();
    let miner = plan
        .start(
            0,
            &dir.path().join("mining"),
            Arc::clone(&gpu),
            watch::channel(None).0,
        )
        .unwrap();
    // The miner's counts equal the pool's, with both kinds present.
    until(
        "accepted and rejected shares, counted alike by miner and pool",
        WAIT,
        || {
            let (t, s) = (pool.tally(), stats.borrow().clone().unwrap_or_default());
            t.accepted >= 1
                && t.rejected >= 2
                && (s.accepted, s.rejected) == (t.accepted as u64, t.rejected as u64)
        },
    )
    .await;
    let reasons: Vec<String> = pool.shares().into_iter().filter_map(|s| s.reason).collect();
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with("Low difficulty share")),
        "{reasons:?}"
    );
    miner.stop(&gpu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_reconnects_when_the_pool_drops_it_or_asks_it_to() {
    let pool = TestPool::start(PoolOptions {
        difficulty: DIFFICULTY,
        ..PoolOptions::default()
    });
    let (runtime, dir) = (runtime(), tempfile::tempdir().unwrap());
    let plan = plan(&pool, &runtime, dir.path());
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let stats = plan.stats();
    let miner = plan
        .start(
            0,
            &dir.path().join("mining"),
            Arc::clone(&gpu),
            watch::channel(None).0,
        )
        .unwrap();
    until("a first share", WAIT, || pool.tally().accepted >= 1).await;

    // The pool goes away (connections cut): the miner comes back (after its
    // backoff, ~1 s) and mines on.
    pool.drop_connections();
    let before = pool.tally().accepted;
    until("a new subscription", WAIT, || {
        pool.tally().subscriptions >= 2
    })
    .await;
    until("shares on the new connection", WAIT, || {
        pool.tally().accepted > before
    })
    .await;

    // The pool asks for a reconnection (client.reconnect, no wait).
    let counted = stats.borrow().as_ref().map_or(0, |s| s.accepted);
    pool.ask_reconnect(0);
    until("a third subscription", WAIT, || {
        pool.tally().subscriptions >= 3
    })
    .await;
    let before = pool.tally().accepted;
    until("shares after the requested reconnection", WAIT, || {
        pool.tally().accepted > before
    })
    .await;
    // The miner's figures go on across connections. (They can trail the
    // pool's: an answer in flight when a connection ends is lost.)
    until(
        "the figures to count shares of the new connection",
        WAIT,
        || {
            stats.borrow().as_ref().is_some_and(|s| {
                s.connected && s.accepted > counted && s.accepted as usize <= pool.tally().accepted
            })
        },
    )
    .await;
    assert_eq!(pool.tally().authorizations, 3);
    miner.stop(&gpu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_can_reach_the_pool_and_nothing_else() {
    let pool = TestPool::start(PoolOptions {
        difficulty: DIFFICULTY,
        ..PoolOptions::default()
    });
    // A listener the miner is told to use but that the host does not grant.
    let decoy = TcpListener::bind("127.0.0.1:0").unwrap();
    decoy.set_nonblocking(true).unwrap();
    let runtime = runtime();
    let plugin = load_miner(&runtime);
    // The miner needs its world: as a job it is refused (its mining figures).
    let as_job = runtime
        .load(&std::fs::read(crate::support::plugin("mine")).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        as_job.contains("does not grant to jobs") && as_job.contains("pictor:plugin/mining"),
        "{as_job}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let dirs = JobDirs::prepare(&dir.path().join("in"), &dir.path().join("out")).unwrap();
    let params = json!({"pool": "decoy", "addresses": [decoy.local_addr().unwrap().to_string()], "user": "w.x", "backoff_ms": [20, 50]});
    let spec = JobSpec::from_json(
        &json!({"version": 1, "id": "m", "kind": "mine", "params": params}).to_string(),
    )
    .unwrap();
    let grant = SocketGrant::tcp_to(vec![pool.addr()]);
    let (progress_tx, progress) = watch::channel(Progress::default());
    let (report_tx, reports) = watch::channel(MinerReport::default());
    let mut run =
        JobRun::new(&spec, &dirs).with_gpu(Arc::new(GpuProvider::new(AdapterChoice::Auto)));
    run.network = grant.clone();
    run.progress = progress_tx;
    run.mining = Some(report_tx);
    let control = Arc::clone(&run.control);
    let watch_it = async {
        until("the host to refuse a few connection attempts", WAIT, || {
            grant.refused() >= 3
        })
        .await;
        let message = progress.borrow().message.clone();
        assert!(message.contains("access denied"), "{message}");
        assert!(!reports.borrow().connected);
        assert_eq!(
            decoy.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "the decoy was reached"
        );
        assert_eq!(pool.tally().subscriptions, 0);
        control.stop(pictor_runtime::control::Interruption::Preempted);
    };
    let (outcome, ()) = tokio::join!(run_job(&plugin, run), watch_it);
    assert_eq!(
        outcome.failure.map(|f| f.kind),
        Some(FailureKind::Preempted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_refuses_the_worker_ends_the_miner_with_the_reason() {
    let options = PoolOptions {
        refuse_user: Some("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.wkr-mine-1".into()),
        ..PoolOptions::default()
    };
    let pool = TestPool::start(options);
    let (runtime, dir) = (runtime(), tempfile::tempdir().unwrap());
    let plan = plan(&pool, &runtime, dir.path());
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let miner = plan
        .start(
            0,
            &dir.path().join("mining"),
            Arc::clone(&gpu),
            watch::channel(None).0,
        )
        .unwrap();
    until("the miner to end", WAIT, || miner.ended()).await;
    let stopped = miner.stop(&gpu).await;
    let failure = stopped.outcome.and_then(|o| o.failure).unwrap();
    let expected = format!(
        "pool {} refused worker \"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.wkr-mine-1\": Unauthorized worker (code 24)",
        pool.addr()
    );
    assert_eq!(failure.message, expected, "{failure:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_hoards_sockets_gets_new_socket_limit_past_four() {
    let runtime = runtime();
    let plugin = runtime
        .load_miner(&std::fs::read(crate::support::plugin("testminer")).unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    // A miner granted its pool (sockets are only made for a miner with a grant).
    let spec = JobSpec::from_json(
        &json!({"version": 1, "id": "hoard", "kind": "mine", "params": {"hoard_sockets": 10_000}})
            .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let dirs = JobDirs::prepare(&dir.path().join("in"), &dir.path().join("out")).unwrap();
    let mut run = JobRun::new(&spec, &dirs).with_gpu(Arc::clone(&gpu));
    run.network = SocketGrant::tcp_to(vec!["127.0.0.1:9".parse().unwrap()]);
    let outcome = run_job(&plugin, run).await;
    let failure = outcome.failure.unwrap();
    let expected = format!(
        "made {} sockets, then new-socket-limit; one dropped, one more made",
        pictor_runtime::capabilities::sockets::MAX_CONNECTIONS
    );
    assert_eq!(failure.message, expected, "{failure:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_on_a_private_address_is_refused_unless_the_owner_allows_it() {
    let pool = TestPool::start(PoolOptions {
        difficulty: DIFFICULTY,
        ..PoolOptions::default()
    });
    let (runtime, dir) = (runtime(), tempfile::tempdir().unwrap());
    // What a coordinator-issued worker.json could say: the pool is on loopback.
    let config = json!({
        "version": 1, "worker": {"id": "wkr-mine-1"}, "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "mining": {"enabled": true, "pool": pool.url(), "coin": "btc", "plugin": plugin("mine"), "idle_delay_s": 0, "require_nvidia": false}
    });
    let config = WorkerConfig::validate(
        parse(&config.to_string()).unwrap(),
        dir.path(),
        &dir.path().join("worker.json"),
    )
    .unwrap();
    let Eligibility::Mine(plan) = mining::eligibility(&config, &nvml::sample(), &runtime) else {
        panic!("mining is off")
    };
    let gpu = Arc::new(GpuProvider::new(AdapterChoice::Auto));
    let miner = plan
        .start(
            0,
            &dir.path().join("mining"),
            Arc::clone(&gpu),
            watch::channel(None).0,
        )
        .unwrap();
    until("the miner to end", WAIT, || miner.ended()).await;
    let failure = miner
        .stop(&gpu)
        .await
        .outcome
        .and_then(|o| o.failure)
        .unwrap();
    assert!(
        failure.message.contains(&pool.addr().to_string())
            && failure.message.contains("mining.allow_private_pool"),
        "{failure:?}"
    );
    assert_eq!(pool.tally().subscriptions, 0, "the pool was never reached");
}

#[test]
fn the_test_pool_accepts_real_shares_only() {
    let pool = TestPool::start(PoolOptions::default());
    let user = "bc1qraw.worker";
    let mut client = RawClient::connect(pool.addr(), user);
    let (job, ntime) = (
        client.notify[0].as_str().unwrap().to_string(),
        client.notify[7].as_str().unwrap().to_string(),
    );
    let en2 = [0u8, 0, 0, 1];
    // Found on the CPU, with the header rebuilt from the notify.
    let (valid, invalid) = (client.nonce(&en2, true), client.nonce(&en2, false));
    // The same nonce with another extranonce2 is another header: the pool
    // judges it by its own hash.
    let other_en2 = [0u8, 0, 0, 2];
    let other_is_share = client.achieved(&other_en2, valid) >= client.difficulty;
    let mut submit = |en2: &[u8], job: &str, ntime: &str, nonce: u32, user: &str| {
        let answer = client.call(
            "mining.submit",
            json!([user, job, hex::encode(en2), ntime, format!("{nonce:08x}")]),
        );
        answer["error"][1].as_str().map(str::to_string)
    };
    assert_eq!(
        submit(&en2, &job, &ntime, valid, user),
        None,
        "a real share is accepted"
    );
    assert_eq!(
        submit(&en2, &job, &ntime, valid, user).as_deref(),
        Some("Duplicate share")
    );
    assert!(
        submit(&en2, &job, &ntime, invalid, user)
            .unwrap()
            .starts_with("Low difficulty share")
    );
    assert_eq!(
        submit(&en2, "nope", &ntime, valid, user).as_deref(),
        Some("Job not found")
    );
    assert_eq!(
        submit(&en2[..3], &job, &ntime, valid, user).as_deref(),
        Some("Invalid extranonce2 size")
    );
    assert_eq!(
        submit(&en2, &job, "00000000", valid, user).as_deref(),
        Some("ntime out of range")
    );
    assert_eq!(
        submit(&en2, &job, &ntime, valid, "bc1qsomeone.else").as_deref(),
        Some("Unauthorized worker")
    );
    assert_eq!(
        submit(&other_en2, &job, &ntime, valid, user).is_none(),
        other_is_share
    );
    let t = pool.tally();
    assert_eq!(t.accepted + t.rejected, 8);
    assert!(t.accepted >= 1 && t.rejected >= 6, "{t:?}");
}
