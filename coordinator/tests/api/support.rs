//! A coordinator on loopback in a temp folder, and a raw HTTP client that
//! plays creator and workers (so every status code is visible).

use std::time::Duration;

use ed25519_dalek::SigningKey;
use pictor_coordinator::{Config, Running};
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{
    self, ErrorBody, ErrorCode, IssuedWorker, JobStatus, Lease, PROTOCOL_VERSION, VERSION_HEADER,
    WorkerSummary,
};
use pictor_protocol::proof::{self, OutputDigest, ResultManifest, SignedProof};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub struct Farm {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub http: reqwest::Client,
    pub url: String,
    pub creator: String,
    pub worker: String,
}

impl Farm {
    /// A coordinator with a 60 s lease TTL.
    pub async fn start() -> Farm {
        Self::start_with(|_| {}).await
    }

    /// A coordinator whose config `adjust` changes.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.max_wait = Duration::from_secs(10);
        adjust(&mut config);
        let running = pictor_coordinator::start(config.clone()).await.unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        Farm {
            dir,
            config,
            url: running.url.clone(),
            creator: running.creator_token.clone(),
            worker: running.worker_token.clone(),
            running: Some(running),
            http: reqwest::Client::new(),
        }
    }

    /// Stops the coordinator and starts it again on the same data folder
    /// (and, where it is free, the same port).
    pub async fn restart(&mut self) {
        let running = self.running.take().unwrap();
        let addr = running.addr;
        running.shutdown().await.unwrap();
        let mut config = self.config.clone();
        config.listen = addr;
        let running = pictor_coordinator::start(config).await.unwrap();
        self.url = running.url.clone();
        self.creator = running.creator_token.clone();
        self.worker = running.worker_token.clone();
        self.running = Some(running);
    }

    /// The address the coordinator listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    /// The status of `HEAD /blobs/{sha}` with the creator token.
    pub async fn blob_status(&self, sha: &Sha256Digest) -> StatusCode {
        self.request(Method::HEAD, &api::paths::blob(sha), &self.creator)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
    }

    pub async fn as_worker(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path, &self.worker)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn as_creator(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let request = self.request(method, path, &self.creator);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// POSTs `body` to `path` with bearer `token`.
    pub async fn as_token(&self, token: &str, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Issues a worker (asserting 201).
    pub async fn issue(&self, body: Value) -> IssuedWorker {
        let response = self
            .as_creator(Method::POST, &api::paths::workers(), Some(&body))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }

    /// Issues a worker named `name` and registers it with its own token
    /// and `key`; returns its id and token.
    pub async fn issue_registered(
        &self,
        name: &str,
        key: &SigningKey,
        kinds: &[&str],
    ) -> (String, String) {
        let issued = self.issue(new_worker_body(name)).await;
        let id = issued.worker_id.clone();
        let token = issued.config["coordinator"]["token"]
            .as_str()
            .expect("the issued config holds a token")
            .to_string();
        let response = self
            .as_token(
                &token,
                &api::paths::register(),
                &register_body(&id, key, kinds),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "register {id}");
        (id, token)
    }

    /// The operator's view of worker `id` (asserting 200).
    pub async fn worker_summary(&self, id: &str) -> WorkerSummary {
        let response = self
            .as_creator(Method::GET, &api::paths::worker(id), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn put_blob(&self, bytes: &[u8]) -> Sha256Digest {
        let sha = Sha256Digest::of(bytes);
        let response = self
            .request(Method::PUT, &api::paths::blob(&sha), &self.creator)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        sha
    }

    pub async fn register(&self, worker_id: &str, key: &SigningKey, kinds: &[&str]) {
        let response = self
            .as_worker(
                &api::paths::register(),
                &register_body(worker_id, key, kinds),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// Uploads a plugin and one input and submits job `id` with `extra` fields.
    pub async fn submit(&self, id: &str, kind: &str, extra: Value) -> JobStatus {
        let response = self
            .as_creator(
                Method::POST,
                &api::paths::jobs(),
                Some(&self.job_body(id, kind, extra).await),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }

    pub async fn job_body(&self, id: &str, kind: &str, extra: Value) -> Value {
        let plugin = self.put_blob(b"\0asm plugin bytes").await;
        let input = self.put_blob(b"an input file").await;
        let mut body = json!({
            "id": id,
            "kind": kind,
            "plugin": {"sha256": plugin, "size": 17},
            "inputs": [{"name": "in/scene.txt", "sha256": input, "size": 13}],
            "params": {"b": 1, "a": [1, 2]},
            "seed": 42,
        });
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            body[key] = value;
        }
        body
    }

    pub async fn lease(&self, worker_id: &str, wait_s: u32) -> Option<Lease> {
        let response = self
            .as_worker(&api::paths::lease(worker_id), &json!({"wait_s": wait_s}))
            .await;
        match response.status() {
            StatusCode::OK => Some(response.json().await.unwrap()),
            StatusCode::NO_CONTENT => None,
            other => panic!("lease: {other}: {}", response.text().await.unwrap()),
        }
    }

    pub async fn job(&self, id: &str) -> JobStatus {
        let response = self
            .as_creator(Method::GET, &api::paths::job(id), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Polls job `id` until `done` holds (or panics after 15 s).
    pub async fn wait_for_job(&self, id: &str, done: impl Fn(&JobStatus) -> bool) -> JobStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let status = self.job(id).await;
            if done(&status) {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} stuck at {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn complete(&self, lease_id: &str, proof: &SignedProof) -> Response {
        self.as_worker(&api::paths::complete(lease_id), &json!({ "proof": proof }))
            .await
    }

    /// Reports `lease` failed (kind `plugin-error`) with the proof an
    /// honest worker signs, using the farm token.
    pub async fn fail(
        &self,
        key: &SigningKey,
        worker_id: &str,
        lease: &Lease,
        retryable: bool,
    ) -> Response {
        self.as_worker(
            &api::paths::fail(&lease.lease_id),
            &fail_body(key, worker_id, lease, retryable),
        )
        .await
    }

    pub async fn heartbeat(&self, worker_id: &str, lease_ids: &[&str]) -> Value {
        let leases: Vec<Value> = lease_ids
            .iter()
            .map(|id| json!({"lease_id": id, "fraction": 0.5, "message": "m"}))
            .collect();
        let response = self
            .as_worker(
                &api::paths::heartbeat(worker_id),
                &json!({"activity": "job", "leases": leases}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// A valid Bitcoin (segwit) address.
pub const BTC_ADDRESS: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

/// A worker to issue: mining btc on a test pool, priced for `hello` jobs.
pub fn new_worker_body(name: &str) -> Value {
    json!({
        "name": name,
        "wallet": BTC_ADDRESS,
        "mining": {"pool": "stratum+tcp://pool.example:3333", "coin": "btc"},
        "prices": {"hello": 0.25, "render": 1.5},
    })
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn register_body(worker_id: &str, key: &SigningKey, kinds: &[&str]) -> Value {
    json!({
        "worker_id": worker_id,
        "name": format!("test {worker_id}"),
        "public_key": hex::encode(key.verifying_key().as_bytes()),
        "host_version": "pictor-host 0.1.0",
        "gpus": [{"name": "Test GPU", "backend": "Vulkan", "memory_mib": 8192}],
        "kinds": kinds,
        "prices": {"hello": 0.01},
        "slots": 1,
    })
}

/// The manifest an honest worker signs for `lease` with these outputs.
pub fn manifest(worker_id: &str, lease: &Lease, outputs: &[(&str, &[u8])]) -> ResultManifest {
    ResultManifest {
        version: proof::PROOF_VERSION,
        job_id: lease.lease_id.clone(),
        worker_id: worker_id.into(),
        attempt: lease.attempt,
        status: "succeeded".into(),
        plugin_sha256: lease.plugin.sha256,
        inputs: lease
            .inputs
            .iter()
            .map(|i| proof::InputDigest {
                name: i.name.clone(),
                sha256: i.sha256,
            })
            .collect(),
        params_sha256: api::params_digest(&lease.params),
        seed: lease.seed,
        outputs: outputs
            .iter()
            .map(|(path, bytes)| OutputDigest {
                path: path.to_string(),
                size: bytes.len() as u64,
                sha256: Sha256Digest::of(bytes),
            })
            .collect(),
        finished_at_ms: 1_700_000_000_000,
        duration_s: 0.25,
        adapter: Some("Test GPU".into()),
    }
}

/// The proof an honest worker signs for a failed run of `lease`.
pub fn signed_failure(key: &SigningKey, worker_id: &str, lease: &Lease) -> SignedProof {
    let mut manifest = manifest(worker_id, lease, &[]);
    manifest.status = "failed".into();
    proof::sign(key, manifest)
}

/// A `fail` body (kind `plugin-error`) with its signed proof.
pub fn fail_body(key: &SigningKey, worker_id: &str, lease: &Lease, retryable: bool) -> Value {
    json!({
        "kind": "plugin-error",
        "message": "boom",
        "retryable": retryable,
        "proof": signed_failure(key, worker_id, lease),
    })
}

pub fn signed(
    key: &SigningKey,
    worker_id: &str,
    lease: &Lease,
    outputs: &[(&str, &[u8])],
) -> SignedProof {
    proof::sign(key, manifest(worker_id, lease, outputs))
}

/// Asserts `response` is an error with `status` and `code`; returns its body.
pub async fn expect_error(response: Response, status: StatusCode, code: ErrorCode) -> ErrorBody {
    assert_eq!(response.status(), status);
    assert_eq!(
        response
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error, code, "{}", body.message);
    body
}

/// Opens a raw TCP connection to the coordinator and writes `bytes` (a
/// request, maybe cut short on purpose).
pub async fn raw_connect(farm: &Farm, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(farm.addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads from `stream` until the server closes it (or resets it); panics
/// if that takes longer than `bound` (a failsafe, not a measurement).
pub async fn read_until_closed(stream: &mut tokio::net::TcpStream, bound: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let read = tokio::time::timeout(bound, async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {bound:?}"
    );
    received
}

/// The status code and the JSON body of a raw HTTP/1.1 reply.
pub fn parse_reply(bytes: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| serde_json::from_str(body).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}
