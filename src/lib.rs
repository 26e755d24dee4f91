//! `sim`: a scriptable real-time event simulator for Kafka.
//!
//! The engine owns time, randomness and delivery; a Rhai scenario script owns the business (the
//! event's shape, the pools of merchants and customers, the rules). A non-homogeneous Poisson
//! timeline decides when events happen, the script decides what they are, and a sink delivers
//! them: Kafka through librdkafka (an embedded broker by default), or JSON lines.
//!
//! # Layout
//!
//! The modules form a stack, listed here from the bottom up; each uses only those above it in
//! this list (`tests/layers.rs` holds the code to it).
//!
//! - Shared pieces: [`sync`] (locks that survive a panic), [`rng`] (the seeded random streams),
//!   [`watch`] (saves to files), [`shutdown`] (the stop signal), [`http`] (a local HTTP server
//!   on its own thread), and [`clock`] (what the
//!   simulator takes as now, `--now`, on the wall clock or on paused virtual time in tests).
//! - [`settings`]: flags > environment > config file > `config()` > defaults.
//! - [`schema`], [`avro`], [`encode`] and [`labels`]: the declared event schema, the Avro schema
//!   derived from it and the Avro writer, an event map into a key and a JSON or Avro value, and
//!   the ground truth (`_fraud`, the `fraud_pattern` header, `--labels`).
//! - [`script`]: the scenario (compiled once, called per arrival) and its native API.
//! - [`rate`] and [`timeline`]: when events happen (arrivals in real or virtual time).
//! - [`registry`]: the Confluent Schema Registry API, as a client (register the schema at
//!   start) and as the embedded registry `sim run` serves beside the embedded broker.
//! - [`delivery`] (the account: produced = delivered + failed), [`kafka`] (the Kafka client
//!   set-up both sides share, and why a first contact failed: unreachable, SASL or TLS), [`sink`] (Kafka, stdout and file
//!   sinks, with delivery accounting), [`metrics`] (the running figures) and [`broker`] (the
//!   embedded broker, and the watch that reports what a broker deletes).
//! - [`pipeline`]: the one module that joins timeline, script and sink, with the follow-ups a
//!   script schedules and the workers that make events on every core, in one worker's order.
//!   Beside it, [`analyze`]: the consumer side, `sim analyze` (aggregates, windows, detection).
//! - [`exporter`]: the metrics endpoint (`--metrics`): Prometheus's `/metrics`, `/healthz` and
//!   `/readyz`, read from the running figures at each scrape.
//! - [`scenario`]: how a script becomes runnable (`prepare`) and the checked sample every check
//!   runs (`sample_checked`).
//! - [`reload`] (hot reload: watch, prepare and check off the stream, swap between events),
//!   [`check`] (`sim check`, also a library call) and [`report`] (`sim report` and `sim analyze
//!   --report`: the analyzer's summary drawn as one self-contained HTML page, with the
//!   scenario's rate curve).
//! - [`error`] and [`app`]: the producer's commands as library calls, and their error; beside
//!   `app`, [`bench`]: `sim bench`, a scenario's speed and where its script spends the time.
//! - [`cli`]: the command line on top, the only module that prints.

pub mod analyze;
pub mod app;
pub mod avro;
pub mod bench;
pub mod broker;
pub mod check;
pub mod cli;
pub mod clock;
pub mod delivery;
pub mod encode;
pub mod error;
pub mod exporter;
pub mod group;
pub mod http;
pub mod kafka;
pub mod labels;
pub mod metrics;
pub mod pipeline;
pub mod rate;
pub mod registry;
pub mod reload;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod schema;
pub mod script;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub mod sync;
pub mod timeline;
pub mod watch;

pub use error::SimError;
