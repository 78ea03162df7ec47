//! The coordinator API client: one method per endpoint of protocol v1,
//! typed with `pictor_protocol::api`, every request carrying the protocol
//! version and the worker token, every reply's version checked.

use std::path::Path;
use std::time::Duration;

use pictor_protocol::api::{
    self, CompleteReply, CompleteRequest, ErrorBody, ErrorCode, FailRequest, Heartbeat,
    HeartbeatReply, Info, Lease, LeaseRequest, PROTOCOL_VERSION, RegisterReply, RegisterRequest,
    VERSION_HEADER,
};
use pictor_protocol::digest::Sha256Digest;
use pictor_protocol::reply;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest reply body read from the coordinator: a lease (a job's inputs
/// and params) is a few KiB; anything past this is refused unread.
pub const MAX_REPLY_BYTES: usize = 8 << 20;

/// Largest error body read from the coordinator; a longer one is shown as
/// its first bytes.
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// A coordinator call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No reply: connection refused or cut, timeout, DNS.
    #[error("cannot reach the coordinator at {url}: {message}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// The coordinator answered with an error.
    #[error("coordinator refused {url} (HTTP {status}, {code}): {message}", code = error_code_name(body.error), message = body.message)]
    Api {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Its error body.
        body: ErrorBody,
    },
    /// The coordinator speaks another protocol version.
    #[error(
        "the coordinator at {url} speaks protocol version {version}, this host speaks version {PROTOCOL_VERSION}: update pictor-host (or point it at a coordinator of its version)"
    )]
    Version {
        /// The request URL.
        url: String,
        /// The version it announced.
        version: String,
    },
    /// A reply that is not what the protocol says.
    #[error("coordinator reply to {url} is malformed: {message}")]
    Malformed {
        /// The request URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A local file to upload could not be read.
    #[error("cannot read {path} to upload it: {source}")]
    File {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn error_code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

impl ClientError {
    /// Whether trying again later may succeed (no reply, a server fault —
    /// 503 `timed_out` and 507 `quota_exceeded` included —, or the server
    /// asking to slow down: 429 `too_many_requests`).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, body, .. } => {
                *status >= 500 || *status == 429 || body.error == ErrorCode::Internal
            }
            ClientError::Malformed { .. } => true,
            ClientError::Version { .. } | ClientError::File { .. } => false,
        }
    }

    /// The protocol error code, if the coordinator sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }
}

/// A client for one coordinator, authenticated as one worker.
#[derive(Clone)]
pub struct CoordinatorClient {
    http: reqwest::Client,
    base: url::Url,
    token: String,
}

impl std::fmt::Debug for CoordinatorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl CoordinatorClient {
    /// A client for the coordinator at `base` with the worker `token`.
    pub fn new(http: reqwest::Client, base: url::Url, token: String) -> Self {
        CoordinatorClient { http, base, token }
    }

    /// The worker token (for blob downloads from this coordinator).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The absolute URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// The URL of a blob.
    pub fn blob_url(&self, sha256: &Sha256Digest) -> String {
        self.url(&api::paths::blob(sha256))
    }

    /// Where the fetcher downloads a blob from, with this worker's token.
    pub fn blob_source(
        &self,
        sha256: &Sha256Digest,
        name: &str,
    ) -> Result<crate::blobs::fetch::BlobSource, url::ParseError> {
        Ok(
            crate::blobs::fetch::BlobSource::coordinator(&self.base, self.token.clone(), sha256)?
                .named(name),
        )
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
    }

    /// Sends `request`, checks the reply's version and maps error replies.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            message: transport_message(&e),
        })?;
        let header = response.headers().get(VERSION_HEADER);
        if let Some(version) = reply::version_mismatch(header.map(|v| v.as_bytes())) {
            return Err(ClientError::Version {
                url: url.to_string(),
                version,
            });
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let (bytes, _) = read_at_most(url, response, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        // The coordinator's words reach the owner's terminal and logs: the
        // message comes back clipped and escaped.
        let body = reply::error_body(status.as_u16(), &status.to_string(), &bytes);
        if body.error == ErrorCode::UnsupportedVersion {
            return Err(ClientError::Version {
                url: url.to_string(),
                version: body.message,
            });
        }
        Err(ClientError::Api {
            url: url.to_string(),
            status: status.as_u16(),
            body,
        })
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let url = self.url(path);
        let response = self
            .send(&url, self.request(reqwest::Method::POST, &url).json(body))
            .await?;
        parse(&url, response).await
    }

    /// `GET /info` (no credential needed, but sent anyway).
    pub async fn info(&self) -> Result<Info, ClientError> {
        let url = self.url(&api::paths::info());
        let response = self
            .send(&url, self.request(reqwest::Method::GET, &url))
            .await?;
        parse(&url, response).await
    }

    /// Registers (or re-registers) this worker.
    pub async fn register(&self, request: &RegisterRequest) -> Result<RegisterReply, ClientError> {
        self.call(&api::paths::register(), request).await
    }

    /// Sends a heartbeat listing the leases in hand.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatReply, ClientError> {
        self.call(&api::paths::heartbeat(worker_id), heartbeat)
            .await
    }

    /// Long-polls for a job for up to `wait_s` seconds; `None` if none came.
    pub async fn lease(&self, worker_id: &str, wait_s: u32) -> Result<Option<Lease>, ClientError> {
        let url = self.url(&api::paths::lease(worker_id));
        let request = self
            .request(reqwest::Method::POST, &url)
            .json(&LeaseRequest { wait_s })
            // The server holds the request up to wait_s: allow for it.
            .timeout(Duration::from_secs(u64::from(wait_s) + 30));
        let response = self.send(&url, request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        parse(&url, response).await.map(Some)
    }

    /// Reports a successful lease.
    pub async fn complete(
        &self,
        lease_id: &str,
        request: &CompleteRequest,
    ) -> Result<CompleteReply, ClientError> {
        self.call(&api::paths::complete(lease_id), request).await
    }

    /// Reports a failed lease.
    pub async fn fail(
        &self,
        lease_id: &str,
        request: &FailRequest,
    ) -> Result<CompleteReply, ClientError> {
        self.call(&api::paths::fail(lease_id), request).await
    }

    /// Whether the coordinator has a blob.
    pub async fn has_blob(&self, sha256: &Sha256Digest) -> Result<bool, ClientError> {
        let url = self.blob_url(sha256);
        match self
            .send(&url, self.request(reqwest::Method::HEAD, &url))
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads the file at `path` as blob `sha256`, streaming it.
    pub async fn upload_blob(&self, sha256: &Sha256Digest, path: &Path) -> Result<(), ClientError> {
        let url = self.blob_url(sha256);
        let file_err = |source| ClientError::File {
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let size = file.metadata().await.map_err(file_err)?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 << 10,
        ));
        let request = self
            .request(reqwest::Method::PUT, &url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        self.send(&url, request).await.map(drop)
    }
}

async fn parse<R: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<R, ClientError> {
    let too_large = || ClientError::Malformed {
        url: url.to_string(),
        message: format!("the reply is larger than {MAX_REPLY_BYTES} bytes; refused unread"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(too_large());
    }
    let (bytes, whole) = read_at_most(url, response, MAX_REPLY_BYTES).await?;
    if !whole {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Malformed {
        url: url.to_string(),
        message: e.to_string(),
    })
}

/// The reply body, read up to `limit` bytes; false when there was more
/// (what was read is returned, the rest never is).
async fn read_at_most(
    url: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), ClientError> {
    let unreachable = |e: reqwest::Error| ClientError::Unreachable {
        url: url.to_string(),
        message: transport_message(&e),
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The transport error with its causes, on one line.
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coordinator stand-in on loopback that speaks `version` and
    /// refuses registrations with `status` and an error body.
    async fn server(version: &'static str, status: u16) -> url::Url {
        use axum::http::StatusCode as Status;
        let app = axum::Router::new()
            .route(
                "/api/v1/info",
                axum::routing::get(move || async move {
                    (
                        [(VERSION_HEADER, version)],
                        axum::Json(Info {
                            service: "stub".into(),
                            version: "0".into(),
                            protocol_versions: vec![2],
                        }),
                    )
                }),
            )
            .route(
                "/api/v1/workers/register",
                axum::routing::post(move || async move {
                    let body = ErrorBody {
                        error: ErrorCode::Unauthorized,
                        message: "unknown token".into(),
                        missing: Vec::new(),
                    };
                    (
                        Status::from_u16(status).unwrap(),
                        [(VERSION_HEADER, "1")],
                        axum::Json(body),
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://{addr}")).unwrap()
    }

    fn client(base: url::Url) -> CoordinatorClient {
        CoordinatorClient::new(
            crate::blobs::http_client("test").unwrap(),
            base,
            "t".repeat(16),
        )
    }

    /// A hostile coordinator: `/info` answers 64 MiB with no length
    /// announced, `/workers/register` an error whose message carries
    /// terminal escapes.
    async fn hostile_server() -> url::Url {
        use axum::http::StatusCode as Status;
        let app = axum::Router::new()
            .route(
                "/api/v1/info",
                axum::routing::get(|| async {
                    let chunks = futures_util::stream::iter(
                        (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1 << 20])),
                    );
                    (
                        [(VERSION_HEADER, "1")],
                        axum::body::Body::from_stream(chunks),
                    )
                }),
            )
            .route(
                "/api/v1/workers/register",
                axum::routing::post(|| async {
                    let message =
                        format!("\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J{}", "x".repeat(50_000));
                    let body = ErrorBody {
                        error: ErrorCode::Forbidden,
                        message,
                        missing: Vec::new(),
                    };
                    (Status::FORBIDDEN, [(VERSION_HEADER, "1")], axum::Json(body))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://{addr}")).unwrap()
    }

    #[tokio::test]
    async fn a_hostile_coordinators_replies_are_bounded_and_its_words_escaped() {
        let client = client(hostile_server().await);
        let err = client.info().await.unwrap_err();
        assert!(matches!(err, ClientError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().contains("larger than 8388608 bytes"),
            "{err}"
        );

        let request = RegisterRequest {
            worker_id: "w".into(),
            name: String::new(),
            public_key: "00".repeat(32),
            host_version: "0".into(),
            gpus: Vec::new(),
            kinds: Vec::new(),
            prices: Default::default(),
            slots: 1,
        };
        let err = client.register(&request).await.unwrap_err();
        let text = err.to_string();
        assert!(!text.chars().any(char::is_control), "{text:.120}");
        assert!(
            text.contains("\\u{1b}[2J") && text.len() < 1400,
            "{} bytes: {text:.120}",
            text.len()
        );
    }

    #[tokio::test]
    async fn a_coordinator_of_another_version_is_refused_clearly() {
        let client = client(server("2", 401).await);
        let err = client.info().await.unwrap_err();
        assert!(matches!(err, ClientError::Version { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("speaks protocol version 2, this host speaks version 1"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn error_replies_keep_their_code_and_message() {
        let client = client(server("1", 401).await);
        let request = RegisterRequest {
            worker_id: "w".into(),
            name: "w".into(),
            public_key: "00".repeat(32),
            host_version: "test".into(),
            gpus: Vec::new(),
            kinds: Vec::new(),
            prices: Default::default(),
            slots: 1,
        };
        let err = client.register(&request).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
        assert!(
            err.to_string()
                .contains("HTTP 401, unauthorized): unknown token"),
            "{err}"
        );
        assert!(!err.is_retryable());
        let client = self::client(server("1", 503).await);
        assert!(
            client.register(&request).await.unwrap_err().is_retryable(),
            "5xx is retried"
        );
        // Too many long polls (429) and an upload quota used up (507): later.
        for status in [429, 507] {
            let client = self::client(server("1", status).await);
            assert!(
                client.register(&request).await.unwrap_err().is_retryable(),
                "{status} is retried"
            );
        }
        let client = self::client(server("1", 403).await);
        assert!(
            !client.register(&request).await.unwrap_err().is_retryable(),
            "403 is the owner's to fix"
        );
        let unreachable = self::client(url::Url::parse("http://127.0.0.1:9").unwrap());
        let err = unreachable.info().await.unwrap_err();
        assert!(
            matches!(err, ClientError::Unreachable { .. }) && err.is_retryable(),
            "{err}"
        );
    }
}
