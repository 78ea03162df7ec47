//! A Stratum v1 pool for tests: loopback, real TCP, one thread per
//! connection. It issues real jobs (a coinbase split around the
//! extranonces, a merkle branch, a previous block hash, version, nbits,
//! ntime) at a low share difficulty and checks every submitted share the
//! way a pool does: it rebuilds the coinbase, the merkle root and the
//! 80-byte header from its own job data and the share's extranonce2, ntime
//! and nonce, hashes it with the `sha2` crate and compares the share's
//! difficulty with the job's. A share it accepts is proof of real SHA-256d
//! work; it shares no code with the miner.
//!
//! It can misbehave on purpose: check shares against a harder difficulty
//! than it announced (so some are rejected), drop every connection, or
//! ask miners to reconnect. Used by the e2e tests, the mining benchmarks
//! and `cargo run -p pictor-host --example testpool`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Bitcoin's difficulty-1 target, 0xffff × 2^208, as a float.
fn diff1() -> f64 {
    65535.0 * 2f64.powi(208)
}

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// The share difficulty it announces with `mining.set_difficulty`.
    pub difficulty: f64,
    /// The difficulty it really checks shares against (default: the
    /// announced one); higher makes some honest shares "low difficulty".
    pub check_difficulty: Option<f64>,
    /// Bytes of extranonce2 miners choose.
    pub extranonce2_size: usize,
    /// A user it refuses to authorize.
    pub refuse_user: Option<String>,
    /// Merkle branch hashes per job.
    pub branches: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            difficulty: 1.0 / 65536.0,
            check_difficulty: None,
            extranonce2_size: 4,
            refuse_user: None,
            branches: 3,
        }
    }
}

/// A job as the pool keeps it (header byte order).
#[derive(Debug, Clone)]
struct PoolJob {
    prevhash: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branches: Vec<[u8; 32]>,
    version: u32,
    nbits: u32,
    ntime: u32,
    difficulty: f64,
}

/// One share the pool judged.
#[derive(Debug, Clone)]
pub struct ShareRecord {
    /// Who submitted it.
    pub user: String,
    /// Its job.
    pub job_id: String,
    /// Whether it was accepted.
    pub accepted: bool,
    /// Why not.
    pub reason: Option<String>,
    /// The difficulty its hash achieves (0 when it could not be hashed).
    pub achieved: f64,
}

struct Connection {
    id: usize,
    writer: TcpStream,
    extranonce1: [u8; 4],
    user: Option<String>,
    open: bool,
    subscribed: bool,
}

struct State {
    options: PoolOptions,
    jobs: HashMap<String, PoolJob>,
    current: String,
    job_seq: u64,
    connections: Vec<Connection>,
    shares: Vec<ShareRecord>,
    seen: HashSet<(String, [u8; 4], String, String, String)>,
    authorizations: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// A running test pool; it stops accepting when dropped (open connections
/// are shut down).
pub struct TestPool {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The pool's tallies, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Shares accepted.
    pub accepted: usize,
    /// Shares rejected.
    pub rejected: usize,
    /// Connections that subscribed, ever.
    pub subscriptions: usize,
    /// Connections that authorized, ever.
    pub authorizations: usize,
    /// Connections open now.
    pub open: usize,
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The difficulty a hash achieves: diff1 / (hash as a little-endian number).
pub fn achieved_difficulty(hash: &[u8; 32]) -> f64 {
    let value = hash
        .iter()
        .rev()
        .fold(0.0, |acc, &b| acc * 256.0 + f64::from(b));
    diff1() / value
}

impl PoolJob {
    /// A fresh job: pseudo-random but realistic fields from `seq`.
    fn new(seq: u64, difficulty: f64, branches: usize) -> Self {
        let seed =
            |tag: &str, i: u64| sha256d(format!("pictor test pool {tag} {seq} {i}").as_bytes());
        let height = 800_000 + seq as u32;
        // Coinbase: version, one input spending nothing, a script starting
        // with the height, then the extranonces (8 bytes), a tag, one output.
        let mut coinb1 = hex_bytes(
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff",
        );
        let tag = b"/pictor test pool/";
        coinb1.push((4 + 8 + tag.len()) as u8);
        coinb1.push(3);
        coinb1.extend_from_slice(&height.to_le_bytes()[..3]);
        let mut coinb2 = tag.to_vec();
        coinb2.extend_from_slice(&hex_bytes("ffffffff0100f2052a010000001976a914"));
        coinb2.extend_from_slice(&seed("payout", 0)[..20]);
        coinb2.extend_from_slice(&hex_bytes("88ac00000000"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as u32;
        PoolJob {
            prevhash: {
                let mut h = seed("prev", 0);
                h[28..].fill(0); // like a real block hash: zeros at the top
                h
            },
            coinb1,
            coinb2,
            branches: (0..branches as u64).map(|i| seed("branch", i)).collect(),
            version: 0x2000_0000,
            nbits: 0x1705_ae3a,
            ntime: now,
            difficulty,
        }
    }

    fn notify(&self, id: &str, clean: bool) -> Value {
        // Stratum's prevhash: each 4-byte word of the header bytes reversed.
        let mut prev = self.prevhash;
        for word in prev.chunks_exact_mut(4) {
            word.reverse();
        }
        let branches: Vec<String> = self.branches.iter().map(|b| hex(b)).collect();
        json!({"id": null, "method": "mining.notify", "params": [
            id, hex(&prev), hex(&self.coinb1), hex(&self.coinb2), branches,
            format!("{:08x}", self.version), format!("{:08x}", self.nbits), format!("{:08x}", self.ntime), clean,
        ]})
    }

    /// The header of a share, rebuilt from the pool's own data.
    fn header(&self, extranonce1: &[u8], extranonce2: &[u8], ntime: u32, nonce: u32) -> [u8; 80] {
        let coinbase = [&self.coinb1[..], extranonce1, extranonce2, &self.coinb2[..]].concat();
        let mut root = sha256d(&coinbase);
        for branch in &self.branches {
            root = sha256d(&[&root[..], &branch[..]].concat());
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&self.version.to_le_bytes());
        header[4..36].copy_from_slice(&self.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        header[76..].copy_from_slice(&nonce.to_le_bytes());
        header
    }
}

fn hex_bytes(text: &str) -> Vec<u8> {
    unhex(text).unwrap_or_default()
}

impl State {
    fn new_job(&mut self) -> String {
        self.job_seq += 1;
        let id = format!("{:x}", self.job_seq);
        let job = PoolJob::new(self.job_seq, self.options.difficulty, self.options.branches);
        self.jobs.insert(id.clone(), job);
        self.current = id.clone();
        id
    }

    fn send(&mut self, conn: usize, message: &Value) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.id == conn && c.open)
            && writeln!(c.writer, "{message}").is_err()
        {
            c.open = false;
        }
    }

    fn send_work(&mut self, conn: usize, clean: bool) {
        let Some(job) = self.jobs.get(&self.current).cloned() else {
            return;
        };
        let current = self.current.clone();
        self.send(
            conn,
            &json!({"id": null, "method": "mining.set_difficulty", "params": [job.difficulty]}),
        );
        self.send(conn, &job.notify(&current, clean));
    }

    /// Judges a `mining.submit`.
    fn submit(&mut self, conn: usize, params: &Value) -> Result<f64, (i64, String)> {
        let c = self
            .connections
            .iter()
            .find(|c| c.id == conn)
            .ok_or((20, "no connection".to_string()))?;
        let p = params
            .as_array()
            .filter(|p| p.len() >= 5)
            .ok_or((20, "mining.submit needs 5 params".to_string()))?;
        let text = |i: usize| p[i].as_str().unwrap_or_default().to_string();
        let (user, job_id, en2, ntime, nonce) = (text(0), text(1), text(2), text(3), text(4));
        if c.user.as_deref() != Some(user.as_str()) {
            return Err((24, "Unauthorized worker".into()));
        }
        let job = self
            .jobs
            .get(&job_id)
            .cloned()
            .ok_or((21, "Job not found".to_string()))?;
        let en2_bytes = unhex(&en2)
            .filter(|b| b.len() == self.options.extranonce2_size)
            .ok_or((20, "Invalid extranonce2 size".to_string()))?;
        let ntime_value = unhex(&ntime)
            .filter(|b| b.len() == 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if ntime_value != Some(job.ntime) {
            return Err((20, "ntime out of range".into()));
        }
        let nonce_value = unhex(&nonce)
            .filter(|b| b.len() == 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let nonce_value = nonce_value.ok_or((20, "Invalid nonce".to_string()))?;
        let key = (
            job_id.clone(),
            c.extranonce1,
            en2.to_lowercase(),
            ntime.to_lowercase(),
            nonce.to_lowercase(),
        );
        if !self.seen.insert(key) {
            return Err((22, "Duplicate share".into()));
        }
        let extranonce1 = c.extranonce1;
        let hash = sha256d(&job.header(&extranonce1, &en2_bytes, job.ntime, nonce_value));
        let achieved = achieved_difficulty(&hash);
        let required = self.options.check_difficulty.unwrap_or(job.difficulty);
        if achieved < required {
            return Err((
                23,
                format!("Low difficulty share ({achieved:.3e} < {required:.3e})"),
            ));
        }
        Ok(achieved)
    }
}

impl TestPool {
    /// Starts a pool on 127.0.0.1 (a free port) with one job ready.
    pub fn start(options: PoolOptions) -> TestPool {
        Self::start_at("127.0.0.1:0", options).expect("bind the test pool")
    }

    /// Starts a pool listening on `address` with one job ready.
    pub fn start_at(address: &str, options: PoolOptions) -> std::io::Result<TestPool> {
        let listener = TcpListener::bind(address)?;
        let addr = listener.local_addr()?;
        let mut state = State {
            options,
            jobs: HashMap::new(),
            current: String::new(),
            job_seq: 0,
            connections: Vec::new(),
            shares: Vec::new(),
            seen: HashSet::new(),
            authorizations: 0,
        };
        state.new_job();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
        });
        let accept = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("test-pool".into())
            .spawn(move || {
                for (id, stream) in listener.incoming().enumerate() {
                    let Ok(stream) = stream else { continue };
                    if Arc::strong_count(&accept) == 1 {
                        return; // the pool was dropped
                    }
                    let shared = Arc::clone(&accept);
                    let _ = std::thread::Builder::new()
                        .name(format!("test-pool-{id}"))
                        .spawn(move || serve(&shared, id, stream));
                }
            })?;
        Ok(TestPool { addr, shared })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `stratum+tcp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts so far.
    pub fn tally(&self) -> Tally {
        tally(&self.state())
    }

    /// Every share judged so far.
    pub fn shares(&self) -> Vec<ShareRecord> {
        self.state().shares.clone()
    }

    /// Waits until `ready(tally)` or `timeout`; returns the last tally and
    /// whether it became ready.
    pub fn wait_for(&self, timeout: Duration, ready: impl Fn(&Tally) -> bool) -> (bool, Tally) {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            let t = tally(&state);
            if ready(&t) {
                return (true, t);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (false, t);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(100)))
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Issues a new job to every miner (clean: earlier jobs are void).
    pub fn new_job(&self, clean: bool) {
        let mut state = self.state();
        if clean {
            state.jobs.clear();
        }
        state.new_job();
        let ids: Vec<usize> = state
            .connections
            .iter()
            .filter(|c| c.open && c.subscribed)
            .map(|c| c.id)
            .collect();
        for id in ids {
            state.send_work(id, clean);
        }
    }

    /// Changes the share difficulty of later jobs.
    pub fn set_difficulty(&self, difficulty: f64) {
        self.state().options.difficulty = difficulty;
    }

    /// Closes every connection (a pool restart, a network cut).
    pub fn drop_connections(&self) {
        let mut state = self.state();
        for c in state.connections.iter_mut().filter(|c| c.open) {
            let _ = c.writer.shutdown(Shutdown::Both);
            c.open = false;
        }
        self.shared.changed.notify_all();
    }

    /// Sends `client.reconnect` (no host: the same pool) with `wait` seconds.
    pub fn ask_reconnect(&self, wait: u64) {
        let mut state = self.state();
        let ids: Vec<usize> = state
            .connections
            .iter()
            .filter(|c| c.open)
            .map(|c| c.id)
            .collect();
        for id in ids {
            state.send(
                id,
                &json!({"id": null, "method": "client.reconnect", "params": ["", 0, wait]}),
            );
        }
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        self.drop_connections();
        // Wake the accept loop so it sees it is alone and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn tally(state: &State) -> Tally {
    Tally {
        accepted: state.shares.iter().filter(|s| s.accepted).count(),
        rejected: state.shares.iter().filter(|s| !s.accepted).count(),
        subscriptions: state.connections.iter().filter(|c| c.subscribed).count(),
        authorizations: state.authorizations,
        open: state.connections.iter().filter(|c| c.open).count(),
    }
}

/// Serves one miner until it disconnects.
fn serve(shared: &Shared, id: usize, stream: TcpStream) {
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let extranonce1 = (0x5000_0000u32 + id as u32).to_be_bytes();
        state.connections.push(Connection {
            id,
            writer,
            extranonce1,
            user: None,
            open: true,
            subscribed: false,
        });
        shared.changed.notify_all();
    }
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            break;
        };
        let msg_id = message["id"].clone();
        let method = message["method"].as_str().unwrap_or_default().to_string();
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.connections.iter().any(|c| c.id == id && c.open) {
            break;
        }
        match method.as_str() {
            "mining.subscribe" => {
                let size = state.options.extranonce2_size;
                let Some(c) = state.connections.iter_mut().find(|c| c.id == id) else {
                    break;
                };
                c.subscribed = true;
                let en1 = hex(&c.extranonce1);
                state.send(id, &json!({"id": msg_id, "result": [[["mining.set_difficulty", "d1"], ["mining.notify", "n1"]], en1, size], "error": null}));
                state.send_work(id, true);
            }
            "mining.authorize" => {
                let user = message["params"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if state.options.refuse_user.as_deref() == Some(user.as_str()) {
                    state.send(id, &json!({"id": msg_id, "result": null, "error": [24, "Unauthorized worker", null]}));
                } else {
                    if let Some(c) = state.connections.iter_mut().find(|c| c.id == id) {
                        c.user = Some(user);
                    }
                    state.authorizations += 1;
                    state.send(id, &json!({"id": msg_id, "result": true, "error": null}));
                }
            }
            "mining.submit" => {
                let judged = state.submit(id, &message["params"]);
                let user = message["params"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let job_id = message["params"][1]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let (answer, record) = match judged {
                    Ok(achieved) => (
                        json!({"id": msg_id, "result": true, "error": null}),
                        ShareRecord {
                            user,
                            job_id,
                            accepted: true,
                            reason: None,
                            achieved,
                        },
                    ),
                    Err((code, reason)) => (
                        json!({"id": msg_id, "result": null, "error": [code, reason, null]}),
                        ShareRecord {
                            user,
                            job_id,
                            accepted: false,
                            reason: Some(reason),
                            achieved: 0.0,
                        },
                    ),
                };
                state.shares.push(record);
                state.send(id, &answer);
            }
            _ => state.send(
                id,
                &json!({"id": msg_id, "result": null, "error": [20, "Unsupported method", null]}),
            ),
        }
        shared.changed.notify_all();
    }
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = state.connections.iter_mut().find(|c| c.id == id) {
        c.open = false;
    }
    shared.changed.notify_all();
}

/// A raw Stratum client for poking the pool directly (no miner).
pub struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_id: u64,
    /// extranonce1 and the latest notify params, once subscribed.
    pub extranonce1: Vec<u8>,
    /// The latest `mining.notify` params.
    pub notify: Value,
    /// The latest difficulty.
    pub difficulty: f64,
}

impl RawClient {
    /// Connects, subscribes and authorizes as `user`.
    pub fn connect(addr: SocketAddr, user: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the test pool");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut c = RawClient {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            extranonce1: Vec::new(),
            notify: Value::Null,
            difficulty: 1.0,
        };
        let subscribed = c.call("mining.subscribe", json!(["raw-test"]));
        c.extranonce1 = unhex(subscribed["result"][1].as_str().expect("extranonce1")).expect("hex");
        let authorized = c.call("mining.authorize", json!([user, "x"]));
        assert_eq!(authorized["result"], true, "{authorized}");
        c
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read from the test pool");
        let message: Value = serde_json::from_str(&line).expect("JSON from the test pool");
        match message["method"].as_str() {
            Some("mining.notify") => self.notify = message["params"].clone(),
            Some("mining.set_difficulty") => {
                self.difficulty = message["params"][0].as_f64().unwrap_or(1.0)
            }
            _ => {}
        }
        message
    }

    /// Sends a request and returns its answer (handling notifications meanwhile).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        writeln!(
            self.writer,
            "{}",
            json!({"id": id, "method": method, "params": params})
        )
        .expect("write to the test pool");
        loop {
            let message = self.read();
            if message["id"] == id {
                return message;
            }
        }
    }

    /// The current job, rebuilt from its `mining.notify` (independently of
    /// the pool's own copy).
    fn job(&self) -> PoolJob {
        let p = &self.notify;
        let text = |i: usize| p[i].as_str().expect("notify field").to_string();
        let mut prev: Vec<u8> = unhex(&text(1)).expect("prevhash");
        for word in prev.chunks_exact_mut(4) {
            word.reverse();
        }
        PoolJob {
            prevhash: prev.try_into().expect("32 bytes"),
            coinb1: unhex(&text(2)).expect("coinb1"),
            coinb2: unhex(&text(3)).expect("coinb2"),
            branches: p[4]
                .as_array()
                .expect("branches")
                .iter()
                .map(|b| {
                    unhex(b.as_str().expect("branch"))
                        .expect("hex")
                        .try_into()
                        .expect("32")
                })
                .collect(),
            version: u32::from_str_radix(&text(5), 16).expect("version"),
            nbits: u32::from_str_radix(&text(6), 16).expect("nbits"),
            ntime: u32::from_str_radix(&text(7), 16).expect("ntime"),
            difficulty: self.difficulty,
        }
    }

    /// The difficulty the current job's header with `extranonce2` and
    /// `nonce` achieves.
    pub fn achieved(&self, extranonce2: &[u8], nonce: u32) -> f64 {
        let job = self.job();
        achieved_difficulty(&sha256d(&job.header(
            &self.extranonce1,
            extranonce2,
            job.ntime,
            nonce,
        )))
    }

    /// The first nonce for `extranonce2` whose hash meets (`meets`) or
    /// misses the pool's difficulty, found on the CPU.
    pub fn nonce(&self, extranonce2: &[u8], meets: bool) -> u32 {
        let job = self.job();
        let achieved = |n| {
            achieved_difficulty(&sha256d(&job.header(
                &self.extranonce1,
                extranonce2,
                job.ntime,
                n,
            )))
        };
        (0..u32::MAX)
            .find(|&n| (achieved(n) >= self.difficulty) == meets)
            .expect("a nonce")
    }
}
