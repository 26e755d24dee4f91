//! `sim analyze`: the consumer side. Reads `darooghe.transactions` in a consumer group and turns
//! it into the figures and alerts an operator watches, scored against the ground truth the
//! simulator writes.
//!
//! # Layout
//!
//! - [`transaction`]: a message into a transaction, or poison (with partition and offset).
//! - [`avro`]: a message in the Confluent wire format into the JSON event, with the writer
//!   schema from the registry.
//! - [`aggregate`]: transactions per merchant, approved revenue by category and method.
//! - [`window`]: tumbling and sliding event-time windows, watermark, allowed lateness.
//! - [`detect`]: the default native rules and Rhai rules (`scripts/detect/*.rhai`).
//! - [`score`]: precision, recall and detection delay against the `fraud_pattern` header.
//! - [`shape`]: the stream's shape for the report (events over time, hours, amounts, delays),
//!   in bounded memory.
//! - [`analyzer`]: the above joined; one transaction in, every figure updated.
//! - [`consume`]: the run loop: poll, process, commit when due, draw, summarise.
//! - [`batch`]: what was read of each partition since its last commit, and the committed totals.
//! - [`group`]: the consumer group's rebalance callbacks and the commits (at least once, or
//!   exactly once in transactions).
//! - [`progress`]: exactly once, the progress records a batch writes and a member resumes from.
//! - [`publish`]: the output topics and the dead-letter topic.
//! - [`view`] and [`summary`]: the live terminal view and the summary at exit.
//! - [`figures`]: the figures a metrics scrape reads, shared with the run loop.
//!
//! Delivery guarantees and the published formats are described in `docs/analyze.md`.

pub mod aggregate;
pub mod analyzer;
pub mod avro;
pub mod batch;
pub mod consume;
pub mod detect;
pub mod figures;
pub mod group;
pub mod history;
pub mod progress;
pub mod publish;
pub mod score;
pub mod shape;
pub mod summary;
pub mod transaction;
pub mod view;
pub mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use consume::{run, run_observed};
pub use summary::Summary;

use crate::kafka::{Cluster, ErrorHints, KafkaClientError};
use crate::script::ScriptError;
use crate::settings::Origin;

/// Codes and help of `sim analyze`'s Kafka errors: its properties come from `-X` alone.
pub const KAFKA_HINTS: ErrorHints = ErrorHints {
    unreachable_code: "sim::analyze::unreachable",
    unreachable_help: "check the address and that the broker is up",
    config_code: "sim::analyze::config",
    config_help: "properties come from -X key=value",
    authentication_code: "sim::analyze::authentication",
    tls_code: "sim::analyze::tls",
};

/// The topic of per-merchant transaction counts.
pub const MERCHANT_COUNTS_TOPIC: &str = "darooghe.merchant_counts";
/// The topic of approved revenue per category.
pub const CATEGORY_REVENUE_TOPIC: &str = "darooghe.category_revenue";
/// The topic of fraud alerts.
pub const ALERTS_TOPIC: &str = "darooghe.alerts";
/// The topic of exactly-once progress: per committed batch and source partition, the offsets it
/// covered, written in the batch's transaction (see `docs/analyze.md`, delivery guarantees).
pub const PROGRESS_TOPIC: &str = "darooghe.analyze_progress";

/// What `sim analyze` is asked to do.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Bootstrap servers.
    pub brokers: String,
    /// Where they were configured, for errors.
    pub brokers_origin: Origin,
    /// The input topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// Start from the beginning of each partition when the group has no committed offset.
    pub from_beginning: bool,
    /// Stop once every assigned partition is caught up.
    pub until_idle: bool,
    /// Commit outputs and offsets in one producer transaction.
    pub exactly_once: bool,
    /// Publish aggregates and alerts to the output topics.
    pub output_topics: bool,
    /// Forward poison messages here.
    pub dead_letter_topic: Option<String>,
    /// Folder of Rhai detection rules; `None`: the native rules only.
    pub rules_dir: Option<PathBuf>,
    /// Reload the rules when their files change.
    pub reload_rules: bool,
    /// Threads the detection rules run on, customers split between them (see
    /// [`detect::pool`]); 1: on the run loop's own thread. Alerts are the same either way.
    pub detect_workers: usize,
    /// Window sizes, watermark delay and allowed lateness.
    pub windows: window::WindowSpec,
    /// Commit after this many messages...
    pub commit_every: u64,
    /// ...or this long after the batch's first message, whichever comes first.
    pub commit_interval: Duration,
    /// With `until_idle`: how long every partition must have been at its end.
    pub idle_grace: Duration,
    /// Distinguishes group members in exactly-once mode (part of the `transactional.id`).
    pub instance: String,
    /// librdkafka properties (`-X`), applied to the consumer and the producer.
    pub properties: BTreeMap<String, String>,
    /// Render a live view frame about once a second.
    pub live_view: bool,
    /// The schema registry Avro messages' schemas are fetched from, and where it was
    /// configured; `None`: Avro messages are poison.
    pub schema_registry: Option<(String, Origin)>,
    /// Basic-auth credentials for the registry (`SCHEMA_REGISTRY_AUTH`).
    pub registry_credentials: Option<crate::registry::Credentials>,
}

impl AnalyzeOptions {
    /// Options with the defaults of the command line, for `brokers`.
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            brokers_origin: Origin::Default,
            topic: "darooghe.transactions".into(),
            group: "transaction-analyzer".into(),
            from_beginning: false,
            until_idle: false,
            exactly_once: false,
            output_topics: false,
            dead_letter_topic: None,
            rules_dir: None,
            reload_rules: false,
            detect_workers: 1,
            windows: window::WindowSpec::default(),
            commit_every: 5_000,
            commit_interval: Duration::from_secs(1),
            idle_grace: Duration::from_millis(500),
            instance: "0".into(),
            properties: BTreeMap::new(),
            live_view: false,
            schema_registry: None,
            registry_credentials: None,
        }
    }

    /// The cluster every client of the run talks to, with `sim analyze`'s error hints.
    pub fn cluster(&self) -> Cluster<'_> {
        let (brokers, origin) = (&self.brokers, &self.brokers_origin);
        Cluster::new(brokers, origin, &self.properties, &KAFKA_HINTS)
    }

    /// The `transactional.id` of exactly-once mode: stable per group and instance, so a
    /// restarted analyzer fences its dead predecessor and aborts its open transaction at once.
    pub fn transactional_id(&self) -> String {
        format!("sim-analyze.{}.{}", self.group, self.instance)
    }
}

/// Something worth telling the person running `sim analyze`.
#[derive(Debug)]
pub enum AnalyzeNotice {
    /// Partitions assigned to this member.
    Assigned(Vec<i32>),
    /// Partitions taken away (what was processed of them was committed first).
    Revoked(Vec<i32>),
    /// A message that is not a transaction was skipped.
    Poison(transaction::Poison),
    /// A detection rule file was loaded, removed or rejected.
    Rule(detect::script::RuleChange),
    /// A rule failed on an event (reported once per rule and version).
    RuleFailed(ScriptError),
    /// Something went wrong that does not stop the run (a commit refused during a rebalance, a
    /// broker briefly unreachable): the batch's events may be processed again.
    Warning(String),
    /// A frame of the live view's figures.
    Frame(Box<view::Frame>),
    /// `--from-beginning` on a topic that no longer holds its oldest messages.
    MissingHistory(history::MissingHistory),
}

/// Why `sim analyze` stopped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AnalyzeError {
    /// No broker address.
    #[error("sim analyze needs a Kafka cluster to read from, and none is configured")]
    #[diagnostic(
        code(sim::analyze::no_brokers),
        help("pass --brokers HOST:PORT or set KAFKA_BROKER; the embedded broker lives only inside `sim run`, which prints its address")
    )]
    NoBrokers,
    /// The input topic does not exist.
    #[error("topic {topic} does not exist on {brokers}")]
    #[diagnostic(
        code(sim::analyze::no_topic),
        help("produce into it first (sim run, sim backfill), or name another with --topic")
    )]
    NoTopic {
        /// The topic.
        topic: String,
        /// The brokers asked.
        brokers: String,
    },
    /// The brokers did not answer, or librdkafka refused the configuration.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Client(#[from] KafkaClientError),
    /// The rules folder cannot be read.
    #[error("cannot read detection rules in {}: {source}", path.display())]
    #[diagnostic(code(sim::analyze::rules))]
    Rules {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A detection rule does not compile.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// Setting up an output topic failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Topic(#[from] crate::sink::SinkError),
    /// The schema registry could not be asked for an Avro message's schema.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Publishing or committing failed: the process stops so that a restart resumes from the
    /// last commit.
    #[error("{what} failed: {reason}")]
    #[diagnostic(
        code(sim::analyze::kafka),
        help("nothing after the last commit counts as done; run again with the same --group to resume from it")
    )]
    Kafka {
        /// The step.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// The value of `key` in `map`, inserted as the default when absent. The key is copied into
/// the map only then, where `entry(key.to_owned())` would copy it for every transaction.
fn value_for<'m, V: Default>(map: &'m mut foldhash::HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}
