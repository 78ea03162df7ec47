//! The plugin's logic natively: the WGSL kernels validate, and the whole
//! mining loop (connect, subscribe, authorize, search, check, submit,
//! count answers, reconnect on request, stop on cancel) against a scripted
//! pool on loopback, with the CPU searcher standing in for the GPU.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use mine::algorithm::{Algorithm, CpuSearch, with_nonce};
use mine::hex;
use mine::miner::{Miner, Settings};
use mine::sha256d::{Sha256d, hash_wgsl, search_wgsl};
use mine::target::Target;
use mine::work::JobTemplate;
use pictor_sdk::JobError;
use pictor_sdk::testing::TestHost;
use serde_json::{Value, json};

#[test]
fn kernels_are_valid_wgsl() {
    for (name, source) in [("search", search_wgsl()), ("hash", hash_wgsl())] {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(module.entry_points.iter().any(|e| e.name == name));
    }
}

struct ScriptedPool {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl ScriptedPool {
    fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        ScriptedPool {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn send(&mut self, message: Value) {
        writeln!(self.writer, "{message}").unwrap();
    }

    /// Answers subscribe (extranonce1 f000000f, 4-byte extranonce2) and authorize.
    fn handshake(&mut self) {
        let subscribe = self.read();
        assert_eq!(subscribe["method"], "mining.subscribe");
        self.send(json!({"id": subscribe["id"], "result": [[["mining.notify", "1"]], "f000000f", 4], "error": null}));
        let authorize = self.read();
        assert_eq!(authorize["method"], "mining.authorize");
        assert_eq!(authorize["params"], json!(["bc1qwallet.wkr-1", "x"]));
        self.send(json!({"id": authorize["id"], "result": true, "error": null}));
    }
}

/// Cancels the job when dropped, so a failing pool script still ends the miner.
struct CancelOnDrop<'a>(&'a TestHost);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Waits until the miner has reported a message containing `text`.
fn wait_for(host: &TestHost, text: &str) {
    let started = std::time::Instant::now();
    while !host
        .progress_reports()
        .iter()
        .any(|(_, m)| m.contains(text))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no report with {text:?}: {:?}",
            host.progress_reports()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A job: the coinbase parts of the Stratum documentation's example.
fn notify() -> Value {
    json!([
        "job-1",
        "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
        "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
        ["ae23055e00f0f697cc3640124812d96d4fe8bdfa03484c1c638ce5a1c0e9aa81"],
        "20000000",
        "1705ae3a",
        "647025b5",
        true
    ])
}

#[test]
fn mines_shares_on_a_scripted_pool_reconnects_and_stops_when_cancelled() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = TestHost::new().unwrap();
    let job = host.job("{}");
    let mut settings = Settings::new(
        "scripted".into(),
        vec![listener.local_addr().unwrap()],
        "bc1qwallet.wkr-1".into(),
    );
    settings.backoff = (Duration::from_millis(10), Duration::from_millis(50));
    let difficulty = 1.0 / f64::from(1 << 18);
    let target = Target::from_difficulty(&Sha256d.diff1(), difficulty).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _stop = CancelOnDrop(&host);
            let mut pool = ScriptedPool::accept(&listener);
            pool.handshake();
            pool.send(json!({"id": null, "method": "mining.set_difficulty", "params": [difficulty]}));
            pool.send(json!({"id": null, "method": "mining.notify", "params": notify()}));
            let job = JobTemplate::from_notify(&notify()).unwrap();
            for i in 0..3 {
                let submit = pool.read();
                assert_eq!(submit["method"], "mining.submit");
                let p = &submit["params"];
                assert_eq!((p[0].as_str(), p[1].as_str(), p[3].as_str()), (Some("bc1qwallet.wkr-1"), Some("job-1"), Some("647025b5")));
                let en2 = hex::decode(p[2].as_str().unwrap()).unwrap();
                let nonce = hex::decode_u32(p[4].as_str().unwrap()).unwrap();
                let header = with_nonce(&job.header_for(&[0xf0, 0, 0, 0x0f], &en2), nonce);
                assert!(target.is_met_by(&Sha256d.hash(&header)), "share {i} is not a share");
                // Accept two, reject the third.
                let answer = if i < 2 { json!({"id": submit["id"], "result": true, "error": null}) } else {
                    json!({"id": submit["id"], "result": null, "error": [23, "Low difficulty share", null]})
                };
                pool.send(answer);
            }
            pool.send(json!({"id": null, "method": "client.reconnect", "params": ["", 0, 0]}));
            // Read on until the miner hangs up (closing with unread data
            // would reset the connection and could discard our answers).
            let mut rest = String::new();
            while pool.reader.read_line(&mut rest).is_ok_and(|n| n > 0) {}
            drop(pool);
            // Mining goes on after the reconnection: one more share, accepted.
            let mut again = ScriptedPool::accept(&listener);
            again.handshake();
            again.send(json!({"id": null, "method": "mining.set_difficulty", "params": [difficulty]}));
            again.send(json!({"id": null, "method": "mining.notify", "params": notify()}));
            let submit = again.read();
            assert_eq!(submit["method"], "mining.submit");
            again.send(json!({"id": submit["id"], "result": true, "error": null}));
            wait_for(&host, "3 accepted, 1 rejected");
        });
        let mut search = CpuSearch(&Sha256d);
        let mut miner = Miner::new(&job, &settings, &Sha256d, &mut search);
        assert_eq!(miner.run(), Err(JobError::Cancelled));
        let stats = miner.stats();
        assert_eq!(
            (stats.accepted, stats.rejected, stats.connected),
            (3, 1, true),
            "{stats:?}"
        );
        assert_eq!(stats.difficulty, difficulty);
        assert!(stats.hashes > 0);
    });
}

#[test]
fn an_unreachable_pool_is_retried_until_cancelled() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free); // nothing listens there now
    let host = TestHost::new().unwrap();
    let job = host.job("{}");
    let mut settings = Settings::new("gone".into(), vec![addr], "w.x".into());
    settings.backoff = (Duration::from_millis(5), Duration::from_millis(20));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _stop = CancelOnDrop(&host);
            let started = std::time::Instant::now();
            while host
                .progress_reports()
                .iter()
                .filter(|(_, m)| m.contains("unreachable"))
                .count()
                < 3
            {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{:?}",
                    host.progress_reports()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let mut search = CpuSearch(&Sha256d);
        assert_eq!(
            Miner::new(&job, &settings, &Sha256d, &mut search).run(),
            Err(JobError::Cancelled)
        );
    });
    let reports = host.progress_reports();
    assert!(
        reports
            .iter()
            .any(|(_, m)| m.starts_with("pool gone unreachable (cannot connect:")),
        "{reports:?}"
    );
}
