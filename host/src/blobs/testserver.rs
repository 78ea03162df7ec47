//! A real HTTP blob server on loopback for the network tests: blobs from a
//! map at the protocol's blob path, `Range` requests, bearer auth, and
//! fault switches (cut connections, corrupt bytes, error statuses,
//! delays). It records every request it answers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt as _;
use pictor_protocol::api::{API_PREFIX, ErrorBody, ErrorCode, VERSION_HEADER};
use reqwest::Url;

use crate::blobs::fetch::BlobSource;
use crate::digest::Sha256Digest;

/// Something to do wrong on a request.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Send this many bytes of the body, then cut the connection.
    CutAfter(usize),
    /// Flip the middle byte of what is served.
    Corrupt,
    /// Answer this status with an [`ErrorBody`] saying "injected fault".
    Status(u16),
    /// Wait this long before answering.
    Delay(Duration),
    /// Answer `200` with the whole blob even when asked for a range.
    IgnoreRange,
    /// Send this many bytes of the body, then nothing more, ever.
    Stall(usize),
}

/// One answered request.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// Its `Range` header.
    pub(crate) range: Option<String>,
    /// The status answered.
    pub(crate) status: u16,
}

#[derive(Default)]
struct ServerState {
    token: Option<String>,
    blobs: Mutex<HashMap<Sha256Digest, Bytes>>,
    /// Faults for the next requests, one each.
    next: Mutex<HashMap<Sha256Digest, VecDeque<Fault>>>,
    /// Faults for every request.
    always: Mutex<HashMap<Sha256Digest, Fault>>,
    served: Mutex<HashMap<Sha256Digest, Vec<Served>>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The running server; stops when dropped.
pub(crate) struct TestServer {
    base: Url,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts on `127.0.0.1:0`; with a `token`, requests must carry it.
    pub(crate) async fn start(token: Option<&str>) -> TestServer {
        let state = Arc::new(ServerState {
            token: token.map(str::to_string),
            ..Default::default()
        });
        let app = Router::new()
            .route(&format!("{API_PREFIX}/blobs/{{sha}}"), get(serve_blob))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { base, state, task }
    }

    /// Serves `bytes`; returns their digest.
    pub(crate) fn add(&self, bytes: Vec<u8>) -> Sha256Digest {
        let d = Sha256Digest::of(&bytes);
        self.state
            .blobs
            .lock()
            .unwrap()
            .insert(d, Bytes::from(bytes));
        d
    }

    /// Applies `fault` to the next request for `blob` not yet given one.
    pub(crate) fn fault(&self, blob: &Sha256Digest, fault: Fault) {
        self.state
            .next
            .lock()
            .unwrap()
            .entry(*blob)
            .or_default()
            .push_back(fault);
    }

    /// Applies `fault` to every request for `blob` (after the queued ones).
    pub(crate) fn always(&self, blob: &Sha256Digest, fault: Fault) {
        self.state.always.lock().unwrap().insert(*blob, fault);
    }

    /// The requests answered for `blob`, in order.
    pub(crate) fn served(&self, blob: &Sha256Digest) -> Vec<Served> {
        self.state
            .served
            .lock()
            .unwrap()
            .get(blob)
            .cloned()
            .unwrap_or_default()
    }

    /// The most requests it was answering at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// The blob's URL.
    pub(crate) fn url(&self, blob: &Sha256Digest) -> Url {
        BlobSource::coordinator(&self.base, "", blob)
            .unwrap()
            .url()
            .clone()
    }

    /// The blob as the worker fetches it from its coordinator: with the
    /// token (or without one if the server takes none).
    pub(crate) fn source(&self, blob: &Sha256Digest) -> BlobSource {
        let token = self.state.token.clone().unwrap_or_default();
        match token.is_empty() {
            true => BlobSource::new(self.url(blob)),
            false => BlobSource::coordinator(&self.base, token, blob).unwrap(),
        }
    }
}

/// Counts a request in flight while alive.
struct InFlight<'a>(&'a ServerState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a ServerState) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_blob(
    State(state): State<Arc<ServerState>>,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> Response {
    let _in_flight = InFlight::enter(&state);
    let Ok(blob) = sha.parse::<Sha256Digest>() else {
        return error(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "not a digest",
        );
    };
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap().to_string());
    let queued = state
        .next
        .lock()
        .unwrap()
        .get_mut(&blob)
        .and_then(VecDeque::pop_front);
    let fault = queued.or_else(|| state.always.lock().unwrap().get(&blob).cloned());
    let response = respond(&state, blob, &headers, range.as_deref(), fault).await;
    let served = Served {
        range,
        status: response.status().as_u16(),
    };
    state
        .served
        .lock()
        .unwrap()
        .entry(blob)
        .or_default()
        .push(served);
    response
}

async fn respond(
    state: &ServerState,
    blob: Sha256Digest,
    headers: &HeaderMap,
    range: Option<&str>,
    fault: Option<Fault>,
) -> Response {
    if let Some(token) = &state.token {
        let expected = format!("Bearer {token}");
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(expected.as_str())
        {
            return error(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "wrong worker token",
            );
        }
    }
    match &fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Status(code)) => {
            return error(
                StatusCode::from_u16(*code).unwrap(),
                ErrorCode::Internal,
                "injected fault",
            );
        }
        _ => {}
    }
    let Some(data) = state.blobs.lock().unwrap().get(&blob).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            &format!("no blob {blob}"),
        );
    };
    let len = data.len();
    let start = match (range, &fault) {
        (_, Some(Fault::IgnoreRange)) | (None, _) => None,
        (Some(range), _) => {
            let start: usize = range
                .strip_prefix("bytes=")
                .unwrap()
                .trim_end_matches('-')
                .parse()
                .unwrap();
            Some(start)
        }
    };
    let mut response = Response::builder().header(VERSION_HEADER, "1");
    if let Some(start) = start {
        if start >= len {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap();
        }
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", len - 1),
        );
    }
    let mut body = data.slice(start.unwrap_or(0)..);
    if matches!(fault, Some(Fault::Corrupt)) {
        let mut bytes = body.to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        body = Bytes::from(bytes);
    }
    let response = response.header(header::CONTENT_LENGTH, body.len());
    match fault {
        Some(Fault::CutAfter(n)) => {
            // The first bytes, a pause so that they go out (hyper flushes
            // while the body is pending), then the connection is cut.
            let first = body.slice(..n.min(body.len()));
            let parts = futures_util::stream::iter([Ok(first), Err(())]).then(|part| async move {
                if part.is_err() {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                part.map_err(|()| std::io::Error::other("connection cut by the test server"))
            });
            response.body(Body::from_stream(parts)).unwrap()
        }
        Some(Fault::Stall(n)) => {
            let first = futures_util::stream::iter([Ok::<_, std::io::Error>(
                body.slice(..n.min(body.len())),
            )]);
            response
                .body(Body::from_stream(
                    first.chain(futures_util::stream::pending()),
                ))
                .unwrap()
        }
        _ => response.body(Body::from(body)).unwrap(),
    }
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = ErrorBody {
        error: code,
        message: message.to_string(),
        missing: Vec::new(),
    };
    Response::builder()
        .status(status)
        .header(VERSION_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}
