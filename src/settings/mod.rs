//! Resolved settings and their precedence.
//!
//! Highest first: command-line flags, environment variables, the TOML config file (`--config`),
//! the scenario's `config()`, built-in defaults. The engine's own settings are typed fields of
//! [`Settings`]; every setting, the scenario's own included, is also kept as a typed value for the
//! script (`ctx.settings`). A value that does not parse names the setting, the value and where it
//! came from.
//!
//! Environment variables keep the original producer's names (`EVENT_RATE`, `KAFKA_BROKER`, ...);
//! any other setting a scenario declares is read from its name in upper case (`fraud_rate` from
//! `FRAUD_RATE`).

mod kafka_target;
mod sources;
mod value;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use chrono_tz::Tz;

pub use kafka_target::{kafka_target, kafka_target_env, KafkaTarget};
pub use sources::{split_assignment, ConfigFile, UserInput};
pub use value::{Origin, RawValue, Sourced};

/// The seed's names for the environment variables of engine settings; others are upper-cased.
const ENV_NAMES: &[(&str, &str)] = &[
    ("brokers", "KAFKA_BROKER"),
    ("rate", "EVENT_RATE"),
    ("init_mode", "EVENT_INIT_MODE"),
    ("workers", "SIM_WORKERS"),
    ("schema_registry", "SCHEMA_REGISTRY_URL"),
    ("metrics", "METRICS_ADDR"),
    ("group", "SIM_GROUP"),
    ("shards", "SIM_SHARDS"),
    ("exactly_once", "SIM_EXACTLY_ONCE"),
];

/// The most shards a group's timeline may be cut into: partitions of its coordination topic.
pub const MAX_SHARDS: u32 = 10_000;

/// Keys that are not settings in a script's `config()` map.
const NON_SETTING_KEYS: &[&str] = &["schema", "name", "description"];

/// What the topic is set up as before live events: the seed's `EVENT_INIT_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// Delete and recreate the topic, then backfill historical events.
    Flush,
    /// Leave the topic as it is and backfill nothing.
    Skip,
}

/// What happens to an event whose script fails (`on_error`, env `ON_ERROR`): a runtime error in
/// `event` or a follow-up, or a value the event cannot be encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Skip the event, count it, report it, and go on (the default of `sim run`). After a
    /// reload, a revision that fails too often is rolled back to the one it replaced.
    Skip,
    /// Stop at the first failing event, with its diagnostic (the default of `sim backfill`,
    /// `sim sample` and `sim check`).
    Stop,
}

/// How message values are encoded (`encoding`, env `ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON object (the default).
    Json,
    /// Avro in the Confluent wire format, its schema registered in a schema registry.
    Avro,
}

/// The subject a schema is registered under (`subject_strategy`, env `SUBJECT_STRATEGY`), as
/// Confluent's serializers name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-value` (TopicNameStrategy, the default).
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

/// A typed setting value, as the script sees it in `ctx.settings`.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<TypedValue>),
}

/// Every setting, resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Topic to produce to.
    pub topic: String,
    /// Bootstrap servers; `None` runs the embedded broker.
    pub brokers: Option<String>,
    /// Where `brokers` came from, for connection errors.
    pub brokers_origin: Origin,
    /// Event field whose value is the message key.
    pub key_field: String,
    /// Base rate, events per minute (`EVENT_RATE`).
    pub rate_per_minute: f64,
    /// Multiplier inside peak hours (`PEAK_FACTOR`).
    pub peak_factor: f64,
    /// Peak hours `[start, end)` in local time.
    pub peak_hours: (u32, u32),
    /// Time zone of the peak hours.
    pub timezone: Tz,
    /// Partitions of a topic `sim` creates.
    pub partitions: i32,
    /// Replication factor of a topic `sim` creates.
    pub replication: i32,
    /// Historical events before the live stream (`BACKFILL`).
    pub backfill: u64,
    /// Length of the backfill window in days.
    pub backfill_days: f64,
    /// Whether to recreate the topic and backfill (`EVENT_INIT_MODE`).
    pub init_mode: InitMode,
    /// What a failing event does (`ON_ERROR`); `None` (`auto`): each command's default, see
    /// [`OnError`].
    pub on_error: Option<OnError>,
    /// Script workers making events (`--workers`); the events are the same for any number.
    pub workers: usize,
    /// The most follow-ups that may wait at once (`MAX_FOLLOW_UPS`): scenario state is bounded.
    pub max_follow_ups: usize,
    /// The most keys the scenario's memory may hold (`MAX_REMEMBERED`).
    pub max_remembered: usize,
    /// Bytes of messages the embedded broker keeps in all before it deletes a partition's oldest
    /// (`EMBEDDED_MAX_BYTES`); 0: half the memory available when it starts.
    pub embedded_max_bytes: u64,
    /// How message values are encoded (`--encoding`, `ENCODING`).
    pub encoding: Encoding,
    /// The schema registry's URL (`--schema-registry`, `SCHEMA_REGISTRY_URL`); `None` runs the
    /// embedded registry when the encoding needs one.
    pub schema_registry: Option<String>,
    /// Where `schema_registry` came from, for connection errors.
    pub schema_registry_origin: Origin,
    /// The subject the schema is registered under (`SUBJECT_STRATEGY`).
    pub subject_strategy: SubjectStrategy,
    /// Where the metrics endpoint listens (`--metrics`, `METRICS_ADDR`); `None`: no endpoint.
    pub metrics: Option<ListenAddress>,
    /// The group this instance makes one stream with (`--group`, `SIM_GROUP`); `None`: alone.
    pub group: Option<String>,
    /// Shards a group's timeline is cut into (`--shards`, `SIM_SHARDS`), fixed for its life.
    pub shards: u32,
    /// A group's events and shard positions are committed in Kafka transactions
    /// (`--exactly-once`, `SIM_EXACTLY_ONCE`): a hand-over makes nothing twice.
    pub exactly_once: bool,
    /// librdkafka properties from the `[kafka]` table and `-X`, `-X` last.
    pub kafka: BTreeMap<String, String>,
    /// Every setting as the script sees it.
    pub values: BTreeMap<String, TypedValue>,
}

/// An error in a setting.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SettingsError {
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for setting `{key}` (from {origin}): expected {expected}")]
    #[diagnostic(code(sim::settings::invalid))]
    Invalid {
        /// The setting.
        key: String,
        /// The value as given.
        value: String,
        /// Where it came from.
        origin: Origin,
        /// What was expected.
        expected: String,
    },
    /// A setting that neither the engine nor the scenario knows.
    #[error("unknown setting `{key}` (from {origin})")]
    #[diagnostic(code(sim::settings::unknown), help("known settings: {known}"))]
    Unknown {
        /// The setting.
        key: String,
        /// Where it came from.
        origin: Origin,
        /// The settings that exist.
        known: String,
    },
    /// A flag that needs `key=value`.
    #[error("{flag} expects key=value, got `{text}`")]
    #[diagnostic(code(sim::settings::assignment))]
    BadAssignment {
        /// The flag.
        flag: String,
        /// What was given.
        text: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    #[diagnostic(code(sim::settings::config_read))]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {}{} is not valid TOML: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    #[diagnostic(code(sim::settings::config_parse))]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
        /// 1-based line of the error.
        line: Option<usize>,
    },
}

/// The defaults a scenario's `config()` declares.
#[derive(Debug, Clone, Default)]
pub struct ScriptDefaults {
    /// The script, named as the origin of these values.
    pub path: PathBuf,
    /// Key and value of each setting.
    pub values: Vec<(String, RawValue)>,
    /// The range each of its settings must fall in, from `config().limits`.
    pub limits: Vec<(String, Limit)>,
}

/// The range a scenario declares for one of its numeric settings (`limits: #{ fraud_rate:
/// [0.0, 1.0], customer_count: [1] }` in `config()`): a value outside it is refused with where it
/// came from, before the script sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limit {
    /// The least value allowed.
    pub min: Option<f64>,
    /// The greatest value allowed.
    pub max: Option<f64>,
}

impl Limit {
    /// Whether `x` is within the range.
    pub fn allows(&self, x: f64) -> bool {
        self.min.is_none_or(|min| x >= min) && self.max.is_none_or(|max| x <= max)
    }

    /// The range in words, after "a number" or "an integer".
    fn describe(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!(" between {min} and {max}"),
            (Some(min), None) => format!(" of at least {min}"),
            (None, Some(max)) => format!(" of at most {max}"),
            (None, None) => String::new(),
        }
    }
}

fn builtin_defaults() -> Vec<(&'static str, RawValue)> {
    vec![
        ("topic", RawValue::Str("sim.events".into())),
        ("key_field", RawValue::Str("customer_id".into())),
        ("rate", RawValue::Float(100.0)),
        ("peak_factor", RawValue::Float(2.5)),
        (
            "peak_hours",
            RawValue::List(vec![RawValue::Int(9), RawValue::Int(18)]),
        ),
        ("timezone", RawValue::Str("UTC".into())),
        ("partitions", RawValue::Int(3)),
        ("replication", RawValue::Int(1)),
        ("backfill", RawValue::Int(20_000)),
        ("backfill_days", RawValue::Float(7.0)),
        ("init_mode", RawValue::Str("flush".into())),
        // auto: skip for `sim run`, stop for the others.
        ("on_error", RawValue::Str("auto".into())),
        // 0: one a core.
        ("workers", RawValue::Int(0)),
        ("max_follow_ups", RawValue::Int(1_000_000)),
        ("max_remembered", RawValue::Int(1_000_000)),
        // 0: half the memory available when the embedded broker starts.
        ("embedded_max_bytes", RawValue::Int(0)),
        ("encoding", RawValue::Str("json".into())),
        ("subject_strategy", RawValue::Str("topic".into())),
        // Fixed for the life of a group: a few per instance the group may grow to.
        ("shards", RawValue::Int(64)),
        ("exactly_once", RawValue::Bool(false)),
    ]
}

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    ENV_NAMES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, env)| env.to_string())
        .unwrap_or_else(|| key.to_ascii_uppercase())
}

/// Layers the user's input over the script's defaults and checks every value.
pub fn resolve(input: &UserInput, script: &ScriptDefaults) -> Result<Settings, SettingsError> {
    let file = match &input.config_file {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let mut layered: BTreeMap<String, Sourced> = BTreeMap::new();
    for (key, value) in builtin_defaults() {
        layered.insert(
            key.to_string(),
            Sourced {
                value,
                origin: Origin::Default,
            },
        );
    }
    for (key, value) in &script.values {
        if NON_SETTING_KEYS.contains(&key.as_str()) {
            continue;
        }
        layered.insert(
            key.clone(),
            Sourced {
                value: value.clone(),
                origin: Origin::Script(script.path.clone()),
            },
        );
    }
    // Only settings someone declared can be set; `brokers`, `schema_registry` and `metrics` have
    // no default but are always known.
    let mut known: Vec<String> = layered.keys().cloned().collect();
    known.push("brokers".into());
    known.push("schema_registry".into());
    known.push("metrics".into());
    known.push("group".into());
    known.sort();
    let check_known = |key: &str, origin: &Origin| {
        if known.iter().any(|k| k == key) {
            Ok(())
        } else {
            Err(SettingsError::Unknown {
                key: key.to_string(),
                origin: origin.clone(),
                known: known.join(", "),
            })
        }
    };
    for (key, sourced) in file.settings {
        check_known(&key, &sourced.origin)?;
        layered.insert(key, sourced);
    }
    for key in &known {
        let var = env_name(key);
        if let Some(text) = input.env.get(&var) {
            layered.insert(
                key.clone(),
                Sourced {
                    value: RawValue::Text(text.clone()),
                    origin: Origin::Env(var),
                },
            );
        }
    }
    for (key, text, flag) in &input.flags {
        let origin = Origin::Flag(flag.clone());
        check_known(key, &origin)?;
        layered.insert(
            key.clone(),
            Sourced {
                value: RawValue::Text(text.clone()),
                origin,
            },
        );
    }
    let mut kafka = file.kafka;
    kafka.extend(input.kafka_flags.iter().cloned());
    build(layered, script, kafka)
}

fn build(
    layered: BTreeMap<String, Sourced>,
    script: &ScriptDefaults,
    kafka: BTreeMap<String, String>,
) -> Result<Settings, SettingsError> {
    let get = |key: &str| layered.get(key).expect("every engine key has a default");
    let brokers = layered.get("brokers");
    let registry = layered.get("schema_registry");
    let metrics = layered.get("metrics");
    let group = layered.get("group");
    let mut values = BTreeMap::new();
    for (key, sourced) in &layered {
        let declared = script.values.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let limit = script.limits.iter().find(|(k, _)| k == key).map(|(_, l)| l);
        values.insert(key.clone(), typed(key, sourced, declared, limit)?);
    }
    let settings = Settings {
        topic: checked::topic("topic", get("topic"))?,
        brokers: brokers.map(|b| checked::text("brokers", b)).transpose()?,
        brokers_origin: brokers.map_or(Origin::Default, |b| b.origin.clone()),
        key_field: checked::text("key_field", get("key_field"))?,
        rate_per_minute: checked::positive("rate", get("rate"))?,
        peak_factor: checked::positive("peak_factor", get("peak_factor"))?,
        peak_hours: checked::hours("peak_hours", get("peak_hours"))?,
        timezone: checked::timezone("timezone", get("timezone"))?,
        partitions: checked::at_least("partitions", get("partitions"), 1)? as i32,
        replication: checked::replication("replication", get("replication"))?,
        backfill: checked::at_least("backfill", get("backfill"), 0)? as u64,
        backfill_days: checked::positive("backfill_days", get("backfill_days"))?,
        init_mode: checked::init_mode("init_mode", get("init_mode"))?,
        on_error: checked::on_error("on_error", get("on_error"))?,
        max_follow_ups: checked::at_least("max_follow_ups", get("max_follow_ups"), 1)? as usize,
        max_remembered: checked::at_least("max_remembered", get("max_remembered"), 1)? as usize,
        workers: match checked::at_least("workers", get("workers"), 0)? {
            0 => one_a_core(),
            n => n as usize,
        },
        embedded_max_bytes: checked::at_least("embedded_max_bytes", get("embedded_max_bytes"), 0)?
            as u64,
        encoding: checked::encoding("encoding", get("encoding"))?,
        schema_registry: registry
            .map(|r| checked::text("schema_registry", r))
            .transpose()?,
        schema_registry_origin: registry.map_or(Origin::Default, |r| r.origin.clone()),
        subject_strategy: checked::subject_strategy("subject_strategy", get("subject_strategy"))?,
        metrics: metrics
            .map(|m| checked::listen_address("metrics", m))
            .transpose()?,
        group: group.map(|g| checked::group("group", g)).transpose()?,
        shards: checked::between("shards", get("shards"), 1, i64::from(MAX_SHARDS))? as u32,
        exactly_once: checked::boolean("exactly_once", get("exactly_once"))?,
        kafka,
        values,
    };
    Ok(settings)
}

/// An address to listen on, and where it was configured (for the error when it is taken).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenAddress {
    /// The address.
    pub address: SocketAddr,
    /// Where it came from.
    pub origin: Origin,
}

/// Reads an address to listen on: `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`, or
/// `:9464` for every interface, as Prometheus exporters write it. `None` when it is none of
/// these (no port, a name that does not resolve).
pub fn parse_listen_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        return port
            .parse::<u16>()
            .ok()
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(address);
    }
    // A host name: its first address. `to_socket_addrs` wants a port, which it checks.
    text.to_socket_addrs().ok()?.next()
}

/// The number of script workers when none is asked for (`workers = 0`): one a core.
pub fn one_a_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The script's view of a setting: typed and checked as the engine checks its own keys, and for
/// the rest by the type of the script's default and the range it declares.
fn typed(
    key: &str,
    sourced: &Sourced,
    declared: Option<&RawValue>,
    limit: Option<&Limit>,
) -> Result<TypedValue, SettingsError> {
    match key {
        "rate" | "peak_factor" | "backfill_days" => {
            checked::positive(key, sourced).map(TypedValue::Float)
        }
        "workers" | "backfill" | "embedded_max_bytes" => {
            checked::at_least(key, sourced, 0).map(TypedValue::Int)
        }
        "max_follow_ups" | "max_remembered" => {
            checked::at_least(key, sourced, 1).map(TypedValue::Int)
        }
        "partitions" | "shards" => checked::at_least(key, sourced, 1).map(TypedValue::Int),
        "replication" => checked::replication(key, sourced).map(|r| TypedValue::Int(i64::from(r))),
        "exactly_once" => checked::boolean(key, sourced).map(TypedValue::Bool),
        _ => checked::like(key, sourced, declared.unwrap_or(&sourced.value), limit),
    }
}

mod checked {
    //! Parsing and range checks, each naming what it expected.

    use super::*;

    fn invalid(key_hint: &str, sourced: &Sourced, expected: &str) -> SettingsError {
        SettingsError::Invalid {
            key: key_hint.to_string(),
            value: sourced.value.to_string(),
            origin: sourced.origin.clone(),
            expected: expected.to_string(),
        }
    }

    pub(super) fn positive(key: &str, s: &Sourced) -> Result<f64, SettingsError> {
        match s.value.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(invalid(key, s, "a positive number")),
        }
    }

    pub(super) fn at_least(key: &str, s: &Sourced, min: i64) -> Result<i64, SettingsError> {
        match s.value.as_i64() {
            Some(i) if i >= min => Ok(i),
            _ => Err(invalid(key, s, &format!("an integer of at least {min}"))),
        }
    }

    pub(super) fn between(
        key: &str,
        s: &Sourced,
        min: i64,
        max: i64,
    ) -> Result<i64, SettingsError> {
        match s.value.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(i),
            _ => Err(invalid(
                key,
                s,
                &format!("an integer between {min} and {max}"),
            )),
        }
    }

    pub(super) fn replication(key: &str, s: &Sourced) -> Result<i32, SettingsError> {
        match s.value.as_i64() {
            Some(i) if i >= 1 || i == -1 => Ok(i as i32),
            _ => Err(invalid(
                key,
                s,
                "a replication factor of at least 1 (or -1 for the broker's default)",
            )),
        }
    }

    pub(super) fn boolean(key: &str, s: &Sourced) -> Result<bool, SettingsError> {
        s.value
            .as_bool()
            .ok_or_else(|| invalid(key, s, "true or false"))
    }

    pub(super) fn text(key: &str, s: &Sourced) -> Result<String, SettingsError> {
        match s.value.as_str().map(str::trim) {
            Some(text) if !text.is_empty() => Ok(text.to_string()),
            _ => Err(invalid(key, s, "a non-empty string")),
        }
    }

    pub(super) fn listen_address(key: &str, s: &Sourced) -> Result<ListenAddress, SettingsError> {
        let text = text(key, s)?;
        let address = super::parse_listen_address(&text)
            .ok_or_else(|| invalid(key, s, "an address to listen on, like 127.0.0.1:9464"))?;
        Ok(ListenAddress {
            address,
            origin: s.origin.clone(),
        })
    }

    /// A group name: it names a consumer group and a topic (`sim.<group>.shards`).
    pub(super) fn group(key: &str, s: &Sourced) -> Result<String, SettingsError> {
        let name = text(key, s)?;
        let legal = name.len() <= 200
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if legal {
            Ok(name)
        } else {
            Err(invalid(
                key,
                s,
                "a group name: up to 200 of a-z A-Z 0-9 . _ -",
            ))
        }
    }

    pub(super) fn topic(key: &str, s: &Sourced) -> Result<String, SettingsError> {
        let name = text(key, s)?;
        let legal = name.len() <= 249
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if legal && name != "." && name != ".." {
            Ok(name)
        } else {
            Err(invalid(
                key,
                s,
                "a Kafka topic name: up to 249 of a-z A-Z 0-9 . _ -",
            ))
        }
    }

    pub(super) fn hours(key: &str, s: &Sourced) -> Result<(u32, u32), SettingsError> {
        let expected = "two hours [start, end) between 0 and 24, e.g. [9, 18] or 9-18";
        let list = s.value.as_list().ok_or_else(|| invalid(key, s, expected))?;
        let hours: Option<Vec<i64>> = list.iter().map(RawValue::as_i64).collect();
        match hours.as_deref() {
            Some(&[start, end])
                if (0..24).contains(&start) && (1..=24).contains(&end) && start != end =>
            {
                Ok((start as u32, end as u32))
            }
            _ => Err(invalid(key, s, expected)),
        }
    }

    pub(super) fn timezone(key: &str, s: &Sourced) -> Result<Tz, SettingsError> {
        s.value
            .as_str()
            .and_then(|name| name.trim().parse::<Tz>().ok())
            .ok_or_else(|| invalid(key, s, "an IANA time zone such as UTC or Asia/Tehran"))
    }

    pub(super) fn init_mode(key: &str, s: &Sourced) -> Result<InitMode, SettingsError> {
        match s
            .value
            .as_str()
            .map(|t| t.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("flush") => Ok(InitMode::Flush),
            Some("skip") => Ok(InitMode::Skip),
            _ => Err(invalid(key, s, "flush or skip")),
        }
    }

    pub(super) fn encoding(key: &str, s: &Sourced) -> Result<Encoding, SettingsError> {
        match s
            .value
            .as_str()
            .map(|t| t.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("json") => Ok(Encoding::Json),
            Some("avro") => Ok(Encoding::Avro),
            _ => Err(invalid(key, s, "json or avro")),
        }
    }

    pub(super) fn subject_strategy(
        key: &str,
        s: &Sourced,
    ) -> Result<SubjectStrategy, SettingsError> {
        match s
            .value
            .as_str()
            .map(|t| t.trim().to_ascii_lowercase().replace('-', "_"))
            .as_deref()
        {
            Some("topic") => Ok(SubjectStrategy::Topic),
            Some("record") => Ok(SubjectStrategy::Record),
            Some("topic_record") => Ok(SubjectStrategy::TopicRecord),
            _ => Err(invalid(key, s, "topic, record or topic_record")),
        }
    }

    pub(super) fn on_error(key: &str, s: &Sourced) -> Result<Option<OnError>, SettingsError> {
        match s
            .value
            .as_str()
            .map(|t| t.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("skip") => Ok(Some(OnError::Skip)),
            Some("stop") => Ok(Some(OnError::Stop)),
            Some("auto") => Ok(None),
            _ => Err(invalid(
                key,
                s,
                "skip, stop or auto (skip for sim run, stop for the other commands)",
            )),
        }
    }

    /// A scenario setting, typed like the script's default for it.
    pub(super) fn like(
        key: &str,
        s: &Sourced,
        declared: &RawValue,
        limit: Option<&Limit>,
    ) -> Result<TypedValue, SettingsError> {
        let limit = limit.copied().unwrap_or_default();
        let value = match declared {
            RawValue::Int(_) => s
                .value
                .as_i64()
                .filter(|&i| limit.allows(i as f64))
                .map(TypedValue::Int),
            RawValue::Float(_) => s
                .value
                .as_f64()
                .filter(|&x| limit.allows(x))
                .map(TypedValue::Float),
            RawValue::Bool(_) => s.value.as_bool().map(TypedValue::Bool),
            RawValue::List(_) => s
                .value
                .as_list()
                .map(|items| TypedValue::List(items.iter().map(untyped).collect())),
            RawValue::Str(_) | RawValue::Text(_) => {
                s.value.as_str().map(|t| TypedValue::Str(t.to_string()))
            }
        };
        value.ok_or_else(|| {
            let kind = match declared {
                RawValue::Int(_) => format!("an integer{}", limit.describe()),
                RawValue::Float(_) => format!("a number{}", limit.describe()),
                RawValue::Bool(_) => "true or false".into(),
                RawValue::List(_) => "a list".into(),
                _ => "a string".into(),
            };
            invalid(key, s, &kind)
        })
    }

    fn untyped(value: &RawValue) -> TypedValue {
        match value {
            RawValue::Int(i) => TypedValue::Int(*i),
            RawValue::Float(x) => TypedValue::Float(*x),
            RawValue::Bool(b) => TypedValue::Bool(*b),
            RawValue::Str(t) => TypedValue::Str(t.clone()),
            RawValue::Text(t) => t
                .parse()
                .map(TypedValue::Int)
                .or_else(|_| t.parse().map(TypedValue::Float))
                .unwrap_or_else(|_| TypedValue::Str(t.clone())),
            RawValue::List(items) => TypedValue::List(items.iter().map(untyped).collect()),
        }
    }
}

#[cfg(test)]
mod tests;
