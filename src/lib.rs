//! `sim`: a scriptable real-time event simulator for Kafka.
//!
//! The engine owns time, randomness and delivery; a Rhai scenario script owns the business (the
//! event's shape, the pools of merchants and customers, the rules). A non-homogeneous Poisson
//! timeline decides when events happen, the script decides what they are, and a sink delivers
//! them: Kafka through librdkafka (an embedded broker by default), or JSON lines.
//!
//! # Layout
//!
//! - [`timeline`] and [`rate`]: when events happen (arrivals in real or virtual time).
//! - [`clock`]: what the simulator takes as now (`--now`), and how time passes (the wall clock,
//!   or virtual time in tests).
//! - [`script`]: the scenario (compiled once, called per arrival) and its native API.
//! - [`encode`]: an event map into a key and a JSON value.
//! - [`sink`]: Kafka, stdout and file sinks, with delivery accounting; [`broker`]: the
//!   embedded broker.
//! - [`pipeline`]: the one module that joins timeline, script and sink, with the follow-ups a
//!   script schedules and the workers that make events on every core, in one worker's order.
//! - [`reload`]: hot reload (watch, prepare and check off the stream, swap between events).
//! - [`schema`] and [`check`]: the declared event schema and `sim check`, also a library call.
//! - [`labels`]: ground truth (`_fraud`, the `fraud_pattern` header, `--labels`).
//! - [`settings`]: flags > environment > config file > `config()` > defaults.
//! - [`app`]: the commands as library calls; [`cli`]: the command line on top.
//! - [`analyze`]: the consumer side, `sim analyze` (aggregates, windows, fraud detection).
//! - [`metrics`], [`shutdown`], [`rng`], [`error`]: the shared pieces.

pub mod analyze;
pub mod app;
pub mod broker;
pub mod check;
pub mod cli;
pub mod clock;
pub mod encode;
pub mod error;
pub mod labels;
pub mod metrics;
pub mod pipeline;
pub mod rate;
pub mod reload;
pub mod rng;
pub mod schema;
pub mod script;
pub mod settings;
pub mod shutdown;
pub mod sink;
pub mod sync;
pub mod timeline;
pub mod watch;

pub use error::SimError;
