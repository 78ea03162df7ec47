//! A small client of the creator side of the protocol — blobs, jobs and
//! issued workers — used by the `pictor-coordinator` CLI (and usable by any
//! Rust creator).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{
    self, BlobRef, CreateWorker, ErrorBody, IssuedWorker, JobList, JobState, JobStatus,
    PROTOCOL_VERSION, SubmitJob, VERSION_HEADER, WorkerList, WorkerSummary,
};
use pictor_protocol::reply;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::AsyncWriteExt;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator could not be reached, or the connection broke.
    #[error("cannot reach the coordinator at {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The error.
        source: reqwest::Error,
    },
    /// The coordinator refused the request.
    #[error("the coordinator answered {status}: {} ({:?})", body.message, body.error)]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// Its error body.
        body: ErrorBody,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A download did not hash to its address.
    #[error("sha256 mismatch for {}: expected {expected}, got {actual}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The address.
        expected: Sha256Digest,
        /// What it hashed to.
        actual: Sha256Digest,
    },
    /// The reply is not what the protocol says.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The protocol error code, if the coordinator refused the request.
    pub fn code(&self) -> Option<api::ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }
}

/// A client for one coordinator and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Client {
    /// A client of the coordinator at `base_url` with bearer `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Http {
                url: base_url.to_string(),
                source,
            })?;
        Ok(Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(VERSION_HEADER, PROTOCOL_VERSION.to_string())
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|source| ClientError::Http {
            url: self.base.clone(),
            source,
        })?;
        let header = response.headers().get(VERSION_HEADER);
        if let Some(version) = reply::version_mismatch(header.map(|v| v.as_bytes())) {
            return Err(ClientError::Protocol(format!(
                "the coordinator speaks protocol version {version:?}, this client version {PROTOCOL_VERSION}"
            )));
        }
        if response.status().is_client_error() || response.status().is_server_error() {
            let status = response.status();
            // At most 64 KiB of it: the message is clipped to 1000 bytes
            // and escaped anyway.
            let mut response = response;
            let mut bytes = Vec::new();
            while bytes.len() < 64 << 10 {
                match response.chunk().await {
                    Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            let body = reply::error_body(status.as_u16(), &status.to_string(), &bytes);
            return Err(ClientError::Api { status, body });
        }
        Ok(response)
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: self.base.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Whether the coordinator has blob `sha256`.
    pub async fn has_blob(&self, sha256: &Sha256Digest) -> Result<bool, ClientError> {
        match self
            .send(self.request(Method::HEAD, &api::paths::blob(sha256)))
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Api {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads `path` as a blob unless the coordinator has it; returns its address.
    pub async fn upload_file(&self, path: &Path) -> Result<BlobRef, ClientError> {
        let owned = path.to_path_buf();
        let (sha256, size) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&owned)?;
            Sha256Digest::of_reader(file)
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .map_err(io(path))?;
        if !self.has_blob(&sha256).await? {
            let file = tokio::fs::File::open(path).await.map_err(io(path))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
            let request = self
                .request(Method::PUT, &api::paths::blob(&sha256))
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body);
            self.send(request).await?;
        }
        Ok(BlobRef { sha256, size })
    }

    /// Downloads blob `sha256` into `dest` (via a temp file), verifying it.
    pub async fn download(&self, sha256: &Sha256Digest, dest: &Path) -> Result<(), ClientError> {
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        let tmp = dest.with_file_name(format!(
            ".{}.part",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let response = self
            .send(self.request(Method::GET, &api::paths::blob(sha256)))
            .await?;
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ClientError::Http {
                url: self.base.clone(),
                source,
            })?;
            sha2::Digest::update(&mut hasher, &chunk);
            file.write_all(&chunk).await.map_err(io(&tmp))?;
        }
        file.sync_all().await.map_err(io(&tmp))?;
        drop(file);
        let actual = Sha256Digest::from_bytes(sha2::Digest::finalize(hasher).into());
        if actual != *sha256 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ClientError::Mismatch {
                path: dest.to_path_buf(),
                expected: *sha256,
                actual,
            });
        }
        tokio::fs::rename(&tmp, dest).await.map_err(io(dest))
    }

    /// Submits a job.
    pub async fn submit(&self, job: &SubmitJob) -> Result<JobStatus, ClientError> {
        self.json(self.request(Method::POST, &api::paths::jobs()).json(job))
            .await
    }

    /// Submits a job given as JSON (a [`SubmitJob`], possibly with fields
    /// left out for the coordinator's defaults).
    pub async fn submit_json(&self, job: &serde_json::Value) -> Result<JobStatus, ClientError> {
        self.json(self.request(Method::POST, &api::paths::jobs()).json(job))
            .await
    }

    /// A job's status.
    pub async fn job(&self, job_id: &str) -> Result<JobStatus, ClientError> {
        self.json(self.request(Method::GET, &api::paths::job(job_id)))
            .await
    }

    /// Jobs, newest first, optionally in one state.
    pub async fn jobs(&self, state: Option<JobState>) -> Result<JobList, ClientError> {
        let mut path = api::paths::jobs();
        if let Some(state) = state {
            let name = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            path = format!("{path}?state={name}");
        }
        self.json(self.request(Method::GET, &path)).await
    }

    /// Issues a worker; the reply holds its `worker.json` (the only copy of
    /// its credential).
    pub async fn create_worker(&self, request: &CreateWorker) -> Result<IssuedWorker, ClientError> {
        self.json(
            self.request(Method::POST, &api::paths::workers())
                .json(request),
        )
        .await
    }

    /// Every worker, issued or registered.
    pub async fn workers(&self) -> Result<WorkerList, ClientError> {
        self.json(self.request(Method::GET, &api::paths::workers()))
            .await
    }

    /// One worker.
    pub async fn worker(&self, worker_id: &str) -> Result<WorkerSummary, ClientError> {
        self.json(self.request(Method::GET, &api::paths::worker(worker_id)))
            .await
    }

    /// Revokes an issued worker's credential.
    pub async fn revoke_worker(&self, worker_id: &str) -> Result<WorkerSummary, ClientError> {
        self.json(self.request(Method::POST, &api::paths::revoke_worker(worker_id)))
            .await
    }

    /// Cancels a job.
    pub async fn cancel(&self, job_id: &str) -> Result<JobStatus, ClientError> {
        self.json(self.request(Method::POST, &api::paths::cancel_job(job_id)))
            .await
    }
}
