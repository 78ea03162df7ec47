//! The HTTP side of the status page: `GET /` (HTML), `GET /status.json`
//! and `GET /metrics`, served by axum on a loopback listener until the
//! worker stops.
//!
//! Loopback only (checked by the config), and requests must name a
//! loopback host (`127.0.0.1`, `[::1]`, `localhost`) in `Host`, so a web
//! page elsewhere cannot read the status through DNS rebinding.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::metrics::{self, Format};
use super::{StatusHub, page};

/// The status page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The address is taken, or not ours.
    #[error(
        "cannot listen on {address} for the status page: {source}; choose another port with `status.listen` or --status-listen (port 0 takes any free one)"
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("status page server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Binds `address` now (so a taken port is an error at start, and port 0
/// gets its real port before the URL is printed).
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, StatusError> {
    let bind_err = |source| StatusError::Bind { address, source };
    let listener = std::net::TcpListener::bind(address).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}

/// `http://127.0.0.1:9187/` or `http://[::1]:9187/`.
pub fn url(address: SocketAddr) -> String {
    format!("http://{address}/")
}

/// The routes over `hub`.
pub fn router(hub: Arc<StatusHub>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn(loopback_host_only))
        .with_state(hub)
}

/// Serves `hub` on `listener` until `stop` is cancelled; requests in
/// flight finish first.
pub async fn serve(
    listener: std::net::TcpListener,
    hub: Arc<StatusHub>,
    stop: CancellationToken,
) -> Result<(), StatusError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(StatusError::Serve)?;
    axum::serve(listener, router(hub))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(StatusError::Serve)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn index(State(hub): State<Arc<StatusHub>>) -> Response {
    no_store(page::render(&hub.snapshot()).into_response())
}

async fn status_json(State(hub): State<Arc<StatusHub>>) -> Response {
    no_store(axum::Json(hub.snapshot()).into_response())
}

async fn metrics_text(State(hub): State<Arc<StatusHub>>, request: Request) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match metrics::render(Arc::new(hub.snapshot()), format) {
        Ok(text) => {
            no_store(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
                .into_response()
        }
    }
}

/// Whether `host` (a `Host` header: name or address, maybe a port) is a
/// loopback name.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn loopback_host_only(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_loopback_host(host) {
        next.run(request).await
    } else {
        tracing::warn!(host, "status page request for another host refused");
        (
            StatusCode::MISDIRECTED_REQUEST,
            "the status page answers only to 127.0.0.1, [::1] or localhost\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::{h100, hub};

    #[test]
    fn only_loopback_host_names_pass() {
        for ok in [
            "127.0.0.1:9187",
            "127.0.0.1",
            "localhost:1",
            "LOCALHOST",
            "[::1]:9187",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for refused in [
            "",
            "evil.example",
            "evil.example:9187",
            "10.0.0.1:9187",
            "[::]:1",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(refused), "{refused}");
        }
        assert_eq!(url("[::1]:9187".parse().unwrap()), "http://[::1]:9187/");
    }

    #[tokio::test]
    async fn it_serves_the_three_views_and_stops_when_asked() {
        let (hub, _, _) = hub(h100());
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, hub, stop.clone()));
        crate::blobs::install_crypto_provider();
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("http://{address}{path}")).send();
        let page = get("/").await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(page.text().await.unwrap().contains(r#"id="worker-id""#));
        let json: serde_json::Value = get("/status.json").await.unwrap().json().await.unwrap();
        assert_eq!(json["worker"]["id"], "wkr-7f3a9c");
        let metrics = get("/metrics").await.unwrap();
        assert_eq!(
            metrics.headers()[header::CONTENT_TYPE],
            metrics::PROMETHEUS_CONTENT_TYPE
        );
        assert!(
            metrics
                .text()
                .await
                .unwrap()
                .contains("pictor_worker_info{")
        );
        let open = http
            .get(format!("http://{address}/metrics"))
            .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(
            open.headers()[header::CONTENT_TYPE],
            metrics::OPENMETRICS_CONTENT_TYPE
        );
        let rebound = http
            .get(format!("http://{address}/status.json"))
            .header(header::HOST, "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(get("/nope").await.unwrap().status(), 404);
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(taken.local_addr().unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("choose another port with `status.listen` or --status-listen"),
            "{err}"
        );
    }
}
