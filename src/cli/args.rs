//! The flags every producing command takes, and how they become [`Options`]: flags are the
//! highest layer of settings, above the environment and the config file.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, Utc};
use clap::Args;

use super::CliError;
use crate::scenario::Options;
use crate::settings::{split_assignment, UserInput};
use crate::sink::SinkSpec;

/// Flags every producing command takes.
#[derive(Debug, Args)]
pub(super) struct CommonArgs {
    /// Kafka bootstrap servers (overrides KAFKA_BROKER). Without either, an embedded broker runs.
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// Topic to produce to (overrides TOPIC).
    #[arg(long)]
    topic: Option<String>,
    /// Seed for every random draw; with --now, output is byte-identical across runs.
    #[arg(long)]
    seed: Option<u64>,
    /// What the simulator takes as the current time (RFC 3339, e.g. 2024-01-15T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// Where events go: kafka, stdout or file:PATH (JSON lines).
    #[arg(long, value_name = "SINK")]
    sink: Option<String>,
    /// TOML config file: settings, and librdkafka properties in a [kafka] table.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any librdkafka property: -X linger.ms=10 (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// Set any setting: --set fraud_rate=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Add the ground truth to each event as `_label` = {"fraud": bool, "pattern": name or null}.
    #[arg(long)]
    labels: bool,
    /// Add each event's provenance as `_meta` = {"revision", "seq", "function"}: which revision
    /// of the script made it, as which event, in `event` or which follow-up.
    #[arg(long)]
    meta: bool,
    /// Script workers making events (default: one a core; SIM_WORKERS). The events are the same
    /// for any number: workers change the speed, not the output.
    #[arg(long, value_name = "N")]
    workers: Option<String>,
    /// How message values are encoded: json, or avro (the Confluent wire format, the schema
    /// registered in a schema registry; overrides ENCODING).
    #[arg(long, value_name = "json|avro")]
    encoding: Option<String>,
    /// The schema registry for --encoding avro (overrides SCHEMA_REGISTRY_URL; basic auth from
    /// SCHEMA_REGISTRY_AUTH=user:password, or schema_registry_auth in the config file). Without
    /// either, an embedded registry runs.
    #[arg(long, value_name = "URL")]
    schema_registry: Option<String>,
    /// The subject the schema is registered under: topic (<topic>-value), record (the record's
    /// full name) or topic_record (<topic>-<record>); overrides SUBJECT_STRATEGY.
    #[arg(long, value_name = "topic|record|topic_record")]
    subject_strategy: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz (overrides
    /// METRICS_ADDR), e.g. 127.0.0.1:9464 or :9464 for every interface.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// `--group` and `--shards`, for the commands that have them.
    #[arg(skip)]
    group: Option<GroupArgs>,
}

/// Flags of the commands that can share a stream with other instances (`run`, `backfill`).
#[derive(Debug, Args)]
pub(super) struct GroupArgs {
    /// Make one stream with every instance started with the same group name (overrides
    /// SIM_GROUP): each makes a share of the arrivals, handed over through Kafka's consumer group
    /// protocol. See docs/scaling.md.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Shards a group's timeline is cut into, fixed for the group's life (default 64; overrides
    /// SIM_SHARDS).
    #[arg(long, value_name = "N")]
    shards: Option<String>,
    /// Commit a group's events and shard positions in Kafka transactions, so a hand-over or a
    /// crash makes nothing twice for `read_committed` readers (overrides SIM_EXACTLY_ONCE; needs
    /// --group and a broker with transactions).
    #[arg(long)]
    exactly_once: bool,
}

pub(super) fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()))
        .map_err(|_| format!("`{text}` is not a time like 2024-01-15T10:00:00Z"))
}

pub(super) fn user_input(
    config: Option<PathBuf>,
    set: &[String],
    kafka: &[String],
    topic: Option<&String>,
    brokers: Option<&String>,
    workers: Option<&String>,
) -> Result<UserInput, CliError> {
    let mut input = UserInput::from_process_env();
    input.config_file = config;
    for text in set {
        let (key, value) = split_assignment(text, "--set")?;
        input.flags.push((key, value, format!("--set {text}")));
    }
    for text in kafka {
        input.kafka_flags.push(split_assignment(text, "-X")?);
    }
    if let Some(topic) = topic {
        input
            .flags
            .push(("topic".into(), topic.clone(), "--topic".into()));
    }
    if let Some(brokers) = brokers {
        input
            .flags
            .push(("brokers".into(), brokers.clone(), "--brokers".into()));
    }
    if let Some(workers) = workers {
        input
            .flags
            .push(("workers".into(), workers.clone(), "--workers".into()));
    }
    Ok(input)
}

impl CommonArgs {
    /// These flags with a command's `--group` and `--shards`.
    pub(super) fn grouped(mut self, group: GroupArgs) -> Self {
        self.group = Some(group);
        self
    }

    pub(super) fn options(self, script: PathBuf, default_sink: &str) -> Result<Options, CliError> {
        let mut input = user_input(
            self.config,
            &self.set,
            &self.kafka,
            self.topic.as_ref(),
            self.brokers.as_ref(),
            self.workers.as_ref(),
        )?;
        let more = [
            ("encoding", self.encoding, "--encoding"),
            ("schema_registry", self.schema_registry, "--schema-registry"),
            (
                "subject_strategy",
                self.subject_strategy,
                "--subject-strategy",
            ),
            ("metrics", self.metrics, "--metrics"),
        ];
        let (group, shards, exactly_once) = self.group.map_or((None, None, None), |g| {
            (
                g.group,
                g.shards,
                g.exactly_once.then(|| "true".to_string()),
            )
        });
        let more = more.into_iter().chain([
            ("group", group, "--group"),
            ("shards", shards, "--shards"),
            ("exactly_once", exactly_once, "--exactly-once"),
        ]);
        for (key, value, flag) in more {
            if let Some(value) = value {
                input.flags.push((key.into(), value, flag.into()));
            }
        }
        let sink = SinkSpec::parse(self.sink.as_deref().unwrap_or(default_sink))?;
        Ok(Options {
            script,
            input,
            seed: self.seed,
            now: self.now,
            sink,
            labels: self.labels,
            meta: self.meta,
            time: crate::clock::TimeSource::real(),
        })
    }
}
