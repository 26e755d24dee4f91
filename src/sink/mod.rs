//! Where events go: a small [`Sink`] trait with Kafka and JSON-lines behind it.
//!
//! Every sink accounts for what it was given in one [`DeliveryCounters`]: `produced` counts
//! records accepted by `send`, and each ends up `delivered` or `failed` by the time `close`
//! returns, so produced = delivered + failed is the final account.

mod json_lines;
mod kafka;
mod topic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::delivery::{DeliveryAccount, DeliveryCounters};
pub use json_lines::JsonLinesSink;
pub use kafka::{KafkaSink, KafkaSinkConfig, TRANSACTION_TIMEOUT_MS};
pub use topic::{ensure_topic, TopicSpec};

use crate::kafka::{ErrorHints, KafkaClientError};
use crate::shutdown::Shutdown;

/// Codes and help of the sink's Kafka errors: without a broker address it runs its own, and
/// properties also come from the config file.
pub const KAFKA_HINTS: ErrorHints = ErrorHints {
    unreachable_code: "sim::sink::unreachable",
    unreachable_help: "check the address and that the broker is up; without --brokers and KAFKA_BROKER, sim runs an embedded broker",
    config_code: "sim::sink::config",
    config_help: "properties come from -X key=value and the [kafka] table of the config file",
    authentication_code: "sim::sink::authentication",
    tls_code: "sim::sink::tls",
};

/// One message: key, JSON payload and event time.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Message key, if the event has one.
    pub key: Option<&'a [u8]>,
    /// The encoded event.
    pub payload: &'a [u8],
    /// Event time, milliseconds since the epoch (the Kafka message timestamp).
    pub timestamp_ms: i64,
    /// Revision of the script that made the event: 1, then one more per hot reload.
    pub revision: u64,
    /// The fraud pattern that made the event, if one did (ground truth).
    pub fraud_pattern: Option<&'a str>,
}

/// A destination for records.
pub trait Sink {
    /// Accepts one record for delivery, waiting if the sink's queue is full.
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError>;
    /// Waits up to `timeout` for everything accepted to be delivered; whatever is still pending
    /// then is counted failed. Returns the final account.
    fn close(&mut self, timeout: Duration) -> Result<DeliveryAccount, SinkError>;
    /// The stream has nothing due for a while: hand on what is buffered, so a reader sees it
    /// now rather than when the buffer fills (called before every sleep of the live stream,
    /// never during a backfill, which writes in large blocks).
    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Why deliveries failed, with a count for each reason.
    fn failure_reasons(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Lets `stop` cut short a wait on a destination that takes nothing (a broker that is
    /// away): what could not be handed over is then counted failed, not waited for. Sinks that
    /// never wait that long ignore it.
    fn stop_on(&mut self, _stop: &Shutdown) {}
    /// How far the sink's deliveries have come, readable from any thread: what a member of a
    /// group (`--group`) waits on before it records its shards' positions. Asking starts the
    /// bookkeeping (a Kafka sink keeps which records are settled only from then on), so ask
    /// before the first record. `None` for sinks that write at once.
    fn progress(&self) -> Option<Arc<dyn Progress>> {
        None
    }
    /// The sink's transactions, when it writes in them (`--exactly-once`): a group's member
    /// commits its shards' positions in the same transaction as the events they cover. `None`
    /// for sinks that do not.
    fn transactions(&self) -> Option<Arc<dyn Transactions>> {
        None
    }
}

/// A record a transaction adds at its commit, beside the events: a shard's position.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its value.
    pub payload: &'a [u8],
}

/// A sink that writes in transactions: what it sent since the last commit becomes visible to
/// `read_committed` readers with the commit, or never.
pub trait Transactions: Send + Sync {
    /// Commits the open transaction: the records sent since the last commit, `extra`, and
    /// `offsets` as the committed offsets of the consumer group `group` (its metadata fences a
    /// member the group has replaced). Then begins the next transaction. On an error the
    /// transaction is aborted, none of it visible, and no transaction is open.
    fn commit(
        &self,
        extra: &[Extra<'_>],
        offsets: &rdkafka::TopicPartitionList,
        group: Option<&rdkafka::consumer::ConsumerGroupMetadata>,
    ) -> Result<(), String>;
}

/// How far a sink's deliveries have come.
pub trait Progress: Send + Sync {
    /// A mark: every record accepted so far is before it.
    fn mark(&self) -> u64;
    /// Whether every record before `mark` was delivered (or failed for good), without waiting.
    fn reached(&self, mark: u64) -> bool;
    /// Waits up to `timeout` for everything accepted so far; `true` when nothing is outstanding.
    fn settle(&self, timeout: Duration) -> bool;
}

/// A sink that accepts and forgets: for checks and benchmarks of generation alone.
#[derive(Debug, Default)]
pub struct DiscardSink {
    account: DeliveryAccount,
}

impl Sink for DiscardSink {
    fn send(&mut self, _record: Record<'_>) -> Result<(), SinkError> {
        self.account.produced += 1;
        self.account.delivered += 1;
        Ok(())
    }

    fn close(&mut self, _timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        Ok(self.account)
    }
}

/// Which sink `--sink` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Kafka: the configured brokers or the embedded broker.
    Kafka,
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines in a file.
    File(PathBuf),
}

impl SinkSpec {
    /// Parses `kafka`, `stdout` or `file:PATH`.
    pub fn parse(text: &str) -> Result<Self, SinkError> {
        match text {
            "kafka" => Ok(SinkSpec::Kafka),
            "stdout" | "-" => Ok(SinkSpec::Stdout),
            _ => match text.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SinkSpec::File(path.into())),
                _ => Err(SinkError::UnknownSink(text.to_string())),
            },
        }
    }
}

/// A sink that failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SinkError {
    /// `--sink` named no known sink.
    #[error("unknown sink `{0}` (from flag --sink)")]
    #[diagnostic(
        code(sim::sink::unknown),
        help("use --sink kafka, --sink stdout or --sink file:PATH")
    )]
    UnknownSink(String),
    /// The brokers did not answer, or librdkafka refused the configuration.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Kafka(#[from] KafkaClientError),
    /// Creating or deleting the topic failed.
    #[error("cannot set up topic {topic}: {reason}")]
    #[diagnostic(code(sim::sink::topic))]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A transaction of `--exactly-once` failed: the producer could not be registered, or the
    /// last transaction not committed.
    #[error("--exactly-once: {what} failed: {reason}")]
    #[diagnostic(
        code(sim::sink::transaction),
        help("exactly once needs brokers with Kafka transactions (Apache Kafka, Redpanda, ...); without --exactly-once a group hands shards over at least once")
    )]
    Transaction {
        /// What was tried.
        what: &'static str,
        /// librdkafka's reason.
        reason: String,
    },
    /// The embedded broker could not start.
    #[error("cannot start the embedded broker: {0}")]
    #[diagnostic(code(sim::sink::embedded))]
    Embedded(String),
    /// Writing JSON lines failed.
    #[error("cannot write to {target}: {source}")]
    #[diagnostic(code(sim::sink::io))]
    Io {
        /// The file or stream.
        target: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The reader of standard output or a pipe went away (`sim sample ... | head -1`): nothing
    /// more can be written, and, as for any Unix tool, that is no failure of `sim`.
    #[error("the reader of {target} went away")]
    #[diagnostic(code(sim::sink::closed))]
    ReaderGone {
        /// The stream.
        target: String,
    },
}

impl SinkError {
    /// Whether the sink stopped because its reader went away, which ends a command quietly.
    pub fn reader_gone(&self) -> bool {
        matches!(self, SinkError::ReaderGone { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_specs_parse_and_unknown_ones_are_refused() {
        assert_eq!(SinkSpec::parse("kafka").unwrap(), SinkSpec::Kafka);
        assert_eq!(SinkSpec::parse("stdout").unwrap(), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("file:/tmp/x.jsonl").unwrap(),
            SinkSpec::File("/tmp/x.jsonl".into())
        );
        let err = SinkSpec::parse("s3://bucket").unwrap_err();
        assert!(err.to_string().contains("unknown sink `s3://bucket`"));
        assert!(SinkSpec::parse("file:").is_err());
    }
}
