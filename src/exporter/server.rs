//! The HTTP endpoint: `/metrics` (the Prometheus text format, version 0.0.4), `/healthz` (the
//! process serves) and `/readyz` (what the command's probe says), on its own thread and
//! single-threaded runtime, for as long as the command runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use super::ExporterError;
use crate::http::Server;
use crate::settings::ListenAddress;

/// Whether the command is ready, or why not.
pub type Probe = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the handlers share.
struct Shared {
    registry: Registry,
    probe: Probe,
    scrapes: AtomicU64,
}

/// A running metrics endpoint; dropping it stops the server.
pub struct Endpoint {
    server: Server,
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Serves `registry` and `probe` on `listen`. A taken port or an address that cannot be
    /// bound is an error naming the address and where it was configured.
    pub fn start(
        listen: &ListenAddress,
        registry: Registry,
        probe: Probe,
    ) -> Result<Self, ExporterError> {
        let bind_error = |source: std::io::Error| ExporterError::Bind {
            address: listen.address,
            origin: listen.origin.clone(),
            source,
        };
        let shared = Arc::new(Shared {
            registry,
            probe,
            scrapes: AtomicU64::new(0),
        });
        let server =
            Server::start(listen.address, "metrics", router(shared.clone())).map_err(bind_error)?;
        Ok(Self { server, shared })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// The URL of the metrics, `http://ADDRESS/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.address())
    }

    /// Scrapes of `/metrics` answered so far.
    pub fn scrapes(&self) -> u64 {
        self.shared.scrapes.load(Ordering::Relaxed)
    }

    /// Waits until `/metrics` is scraped once more than `seen` times, for up to `timeout`;
    /// whether it was. At exit, this lets a scraper read the final figures.
    pub fn wait_for_scrape_after(&self, seen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.scrapes() <= seen {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn index() -> &'static str {
    "sim: /metrics (Prometheus), /healthz, /readyz\n"
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = String::new();
    if prometheus_text::encode(&mut text, &shared.registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response();
    }
    shared.scrapes.fetch_add(1, Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match (shared.probe)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}
