//! The metrics endpoint of `sim run`, `sim backfill` and `sim analyze` (`--metrics ADDR`):
//! `/metrics` in the Prometheus text format, `/healthz` and `/readyz`.
//!
//! The figures are the ones the status line and the final account read ([`crate::metrics`],
//! the analyzer's own), read at scrape time by a prometheus-client [`Collector`]: recording an
//! event costs the hot path nothing more than it did. librdkafka's statistics of the client
//! (`statistics.interval.ms`, set to a second unless the user set it) add the broker's view.
//!
//! [`Collector`]: prometheus_client::collector::Collector

mod analyzer;
mod client;
mod families;
mod producer;
mod rate;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;

pub use analyzer::{analyzer_readiness, AnalyzerCollector};
pub use client::client_families;
pub use families::{with, Families, Labels};
pub use producer::{producer_readiness, ProducerCollector, DELIVERY_STALL};
pub use rate::RateWindow;
pub use server::{Endpoint, Probe};

use crate::analyze::figures::AnalyzeFigures;
use crate::metrics::Metrics;
use crate::settings::{ListenAddress, Origin};

/// How long a command that ends waits for one more scrape, so the final figures are read.
pub const LAST_SCRAPE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// An error of the metrics endpoint.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExporterError {
    /// The address could not be listened on: taken, or not this machine's.
    #[error("cannot serve metrics on {address} (from {origin}): {source}")]
    #[diagnostic(
        code(sim::metrics::bind),
        help("choose another address with --metrics or METRICS_ADDR (port 0 picks a free one)")
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Where it was configured.
        origin: Origin,
        /// Why it could not be bound.
        source: std::io::Error,
    },
}

/// Serves the producer's metrics (`sim run`, `sim backfill`) on `listen`, labelled with the
/// scenario and the topic; ready while the scenario streams and the broker answers.
pub fn serve_producer(
    listen: &ListenAddress,
    metrics: Arc<Metrics>,
    scenario: &str,
    topic: &str,
) -> Result<Endpoint, ExporterError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProducerCollector::new(
        metrics.clone(),
        scenario,
        topic,
    )));
    Endpoint::start(
        listen,
        registry,
        Box::new(move || producer_readiness(&metrics)),
    )
}

/// Serves the analyzer's metrics (`sim analyze`) on `listen`, labelled with the topic and the
/// consumer group; ready while the consumer consumes.
pub fn serve_analyzer(
    listen: &ListenAddress,
    figures: Arc<AnalyzeFigures>,
    topic: &str,
    group: &str,
) -> Result<Endpoint, ExporterError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(AnalyzerCollector::new(
        figures.clone(),
        topic,
        group,
    )));
    Endpoint::start(
        listen,
        registry,
        Box::new(move || analyzer_readiness(&figures)),
    )
}
