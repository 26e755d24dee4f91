//! What every Kafka client of `sim` shares: its configuration, the first contact with the
//! cluster, sending through a full queue, delivery accounting, and the errors of all of these.
//!
//! The sink ([`crate::sink`]) and `sim analyze` ([`crate::analyze`]) are both clients of a
//! cluster the user named (`--brokers`, `KAFKA_BROKER`) and configured (`-X`, the `[kafka]`
//! table). This module is below both: it knows librdkafka and [`crate::settings::Origin`], not
//! its callers, which pass in their own [`ErrorHints`] so an error still says where *their*
//! settings come from. A first contact that fails says why (`kafka/contact.rs`):
//! authentication, TLS, or no answer at all. Sending and delivery reports are in [`send`].

mod contact;
pub mod send;
pub mod stats;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientContext;

pub use contact::Cause;
use contact::{probe_config, ContactLog};
pub use send::{send_waiting, DeliveryContext, GiveUp, Unsent};

use crate::settings::Origin;

/// How long the probe of a failed first contact is polled, at most, for what librdkafka said.
/// Its reports are mostly queued already; a connection setup that timed out near the end of
/// the request's time (see `kafka/contact.rs`) may be reported a moment later, on a busy machine.
const DRAIN: Duration = Duration::from_secs(2);
/// One poll of that drain.
const DRAIN_SLICE: Duration = Duration::from_millis(100);

/// The producer defaults `sim` applies under the user's properties: every message acknowledged
/// by all in-sync replicas, and written once even when librdkafka retries it; and a queue that
/// holds at most 100,000 messages or 256 MiB of them, whichever comes first. While a broker is
/// away the queue fills to that bound and sending waits ([`send_waiting`]): memory stays
/// bounded (librdkafka's own byte bound, 1 GiB, is the one lowered), and nothing is dropped.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("queue.buffering.max.messages", "100000"),
    ("queue.buffering.max.kbytes", "262144"),
];

/// How long `sim backfill` lets librdkafka gather a batch for an external broker (`linger.ms`;
/// librdkafka's default is 5 ms): a bulk load gains from fewer, larger produce requests, and no
/// one waits on a single event. Into Tansu, 300,000 darooghe events with two workers: 51,700
/// events/s against 47,900 with 5 ms, faster in each of five pairs (2026-11-28). The embedded
/// broker, in process, showed no gain and keeps librdkafka's default; so does `sim run`, whose
/// live events would each wait that long.
pub const BULK_LINGER_MS: &str = "50";

/// `properties` for a bulk load into an external broker: [`BULK_LINGER_MS`] unless the user set
/// how long batches are gathered (`linger.ms`, or its alias `queue.buffering.max.ms`).
pub fn bulk_load(properties: &mut BTreeMap<String, String>) {
    if !["linger.ms", "queue.buffering.max.ms"]
        .iter()
        .any(|key| properties.contains_key(*key))
    {
        properties.insert("linger.ms".into(), BULK_LINGER_MS.into());
    }
}

/// The error codes and help lines of one client of the cluster: the same failure is fixed in a
/// different place for the sink (which falls back to an embedded broker and reads a config file)
/// than for `sim analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorHints {
    /// Code of an unreachable cluster, e.g. `sim::sink::unreachable`.
    pub unreachable_code: &'static str,
    /// Help for an unreachable cluster.
    pub unreachable_help: &'static str,
    /// Code of a configuration librdkafka refused.
    pub config_code: &'static str,
    /// Help for a configuration librdkafka refused; it says where the client's properties come
    /// from, and ends the help of authentication and TLS failures too.
    pub config_help: &'static str,
    /// Code of a failed SASL authentication, e.g. `sim::sink::authentication`.
    pub authentication_code: &'static str,
    /// Code of a failed TLS handshake, e.g. `sim::sink::tls`.
    pub tls_code: &'static str,
}

/// What to check when SASL authentication failed, whichever the client.
const AUTHENTICATION_HELP: &str = "check sasl.mechanism, sasl.username and sasl.password, and \
     that security.protocol is what the broker's listener expects (SASL_PLAINTEXT or SASL_SSL)";
/// What to check when TLS failed, whichever the client.
const TLS_HELP: &str = "check security.protocol (SSL or SASL_SSL for a TLS listener, PLAINTEXT \
     or SASL_PLAINTEXT for a plain one) and ssl.ca.location (the CA that signed the broker's \
     certificate)";

/// A Kafka client that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// The brokers did not answer.
    #[error("cannot reach Kafka at {brokers} (from {origin}): {reason}")]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// Where they were configured.
        origin: Origin,
        /// What librdkafka said.
        reason: String,
        /// The client's code and help.
        hints: &'static ErrorHints,
    },
    /// The brokers answered, but SASL authentication failed.
    #[error("authentication with Kafka at {brokers} (from {origin}) failed: {reason}")]
    Authentication {
        /// The bootstrap servers tried.
        brokers: String,
        /// Where they were configured.
        origin: Origin,
        /// What librdkafka said.
        reason: String,
        /// The client's code and help.
        hints: &'static ErrorHints,
    },
    /// The brokers answered, but TLS failed: a handshake refused or never completed.
    #[error("TLS with Kafka at {brokers} (from {origin}) failed: {reason}")]
    Tls {
        /// The bootstrap servers tried.
        brokers: String,
        /// Where they were configured.
        origin: Origin,
        /// What librdkafka said.
        reason: String,
        /// The client's code and help.
        hints: &'static ErrorHints,
    },
    /// librdkafka refused the configuration.
    #[error("invalid Kafka configuration: {reason}")]
    Config {
        /// What librdkafka said.
        reason: String,
        /// The client's code and help.
        hints: &'static ErrorHints,
    },
}

impl KafkaClientError {
    /// A configuration librdkafka refused.
    pub fn config(reason: impl ToString, hints: &'static ErrorHints) -> Self {
        Self::Config {
            reason: reason.to_string(),
            hints,
        }
    }
}

// By hand rather than derived: the code and help come from the client's hints, which the
// derive only takes as literals.
impl miette::Diagnostic for KafkaClientError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(match self {
            Self::Unreachable { hints, .. } => hints.unreachable_code,
            Self::Authentication { hints, .. } => hints.authentication_code,
            Self::Tls { hints, .. } => hints.tls_code,
            Self::Config { hints, .. } => hints.config_code,
        }))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(match self {
            Self::Unreachable { hints, .. } => hints.unreachable_help.to_string(),
            Self::Authentication { hints, .. } => {
                format!("{AUTHENTICATION_HELP}; {}", hints.config_help)
            }
            Self::Tls { hints, .. } => format!("{TLS_HELP}; {}", hints.config_help),
            Self::Config { hints, .. } => hints.config_help.to_string(),
        }))
    }
}

/// The cluster a client talks to, as the user configured it.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// Bootstrap servers.
    pub brokers: &'a str,
    /// Where they were configured, for errors.
    pub origin: &'a Origin,
    /// The user's librdkafka properties (`-X`, `[kafka]`).
    pub properties: &'a BTreeMap<String, String>,
    /// The codes and help of the client's errors.
    pub hints: &'static ErrorHints,
}

impl<'a> Cluster<'a> {
    /// The cluster at `brokers` (configured in `origin`), with the user's `properties` and the
    /// client's error `hints`.
    pub fn new(
        brokers: &'a str,
        origin: &'a Origin,
        properties: &'a BTreeMap<String, String>,
        hints: &'static ErrorHints,
    ) -> Self {
        Self {
            brokers,
            origin,
            properties,
            hints,
        }
    }

    /// The bootstrap servers, then `defaults`, then the user's properties: whatever the user
    /// passed wins, so every librdkafka property works as it does in kcat.
    pub fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.properties {
            config.set(key, value);
        }
        config
    }

    /// Creates a client from `config`; librdkafka checks the properties here.
    pub fn create<T, C>(&self, config: &ClientConfig, context: C) -> Result<T, KafkaClientError>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        config
            .create_with_context(context)
            .map_err(|err| KafkaClientError::config(err, self.hints))
    }

    /// Asks the brokers for the metadata of `topic` (of every topic with `None`) within
    /// `timeout`: the first contact, where a wrong address, refused credentials or a TLS
    /// mismatch show, each as itself.
    ///
    /// A probe client of its own asks (with the user's properties), because librdkafka says
    /// why a request failed only to the client's context, and only when the client is polled:
    /// the probe's context keeps what it said (`kafka/contact.rs`).
    pub fn reach(
        &self,
        topic: Option<&str>,
        timeout: Duration,
    ) -> Result<Metadata, KafkaClientError> {
        let config = probe_config(self.config(&[]), timeout);
        let probe: BaseProducer<ContactLog> = self.create(&config, ContactLog::default())?;
        let err = match probe.client().fetch_metadata(topic, timeout) {
            Ok(metadata) => return Ok(metadata),
            Err(err) => err,
        };
        // What librdkafka said meanwhile waits in the probe's queue: serve it.
        let deadline = Instant::now() + DRAIN;
        let cause = loop {
            probe.poll(DRAIN_SLICE);
            match probe.context().cause() {
                Some(cause) => break cause,
                None if Instant::now() >= deadline => break Cause::Unreachable(err.to_string()),
                None => {}
            }
        };
        Err(self.failed(cause))
    }

    /// The error of a first contact that failed for `cause`.
    pub fn failed(&self, cause: Cause) -> KafkaClientError {
        let (brokers, origin, hints) = (self.brokers.to_string(), self.origin.clone(), self.hints);
        match cause {
            Cause::Authentication(reason) => KafkaClientError::Authentication {
                brokers,
                origin,
                reason,
                hints,
            },
            Cause::Tls(reason) => KafkaClientError::Tls {
                brokers,
                origin,
                reason,
                hints,
            },
            Cause::Unreachable(reason) => KafkaClientError::Unreachable {
                brokers,
                origin,
                reason,
                hints,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bulk_load_gathers_batches_longer_unless_the_user_said_how_long() {
        let mut none = BTreeMap::new();
        bulk_load(&mut none);
        assert_eq!(
            none.get("linger.ms").map(String::as_str),
            Some(BULK_LINGER_MS)
        );
        for key in ["linger.ms", "queue.buffering.max.ms"] {
            let mut set = BTreeMap::from([(key.to_string(), "0".to_string())]);
            bulk_load(&mut set);
            assert_eq!(set.len(), 1, "{key} set by the user is kept alone");
            assert_eq!(set[key], "0");
        }
    }

    use super::*;
    use miette::Diagnostic;

    const HINTS: ErrorHints = ErrorHints {
        unreachable_code: "sim::test::unreachable",
        unreachable_help: "is it up?",
        config_code: "sim::test::config",
        config_help: "see -X",
        authentication_code: "sim::test::authentication",
        tls_code: "sim::test::tls",
    };

    #[test]
    fn user_properties_override_the_defaults() {
        let origin = Origin::Flag("--brokers".into());
        let properties = BTreeMap::from([("acks".to_string(), "1".to_string())]);
        let cluster = Cluster::new("h:1", &origin, &properties, &HINTS);
        let config = cluster.config(PRODUCER_DEFAULTS);
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        // The queue is bounded, so an outage cannot grow memory without end.
        assert_eq!(config.get("queue.buffering.max.messages"), Some("100000"));
        assert_eq!(config.get("queue.buffering.max.kbytes"), Some("262144"));
    }

    #[test]
    fn errors_carry_their_clients_code_and_help() {
        let err = KafkaClientError::Unreachable {
            brokers: "h:1".into(),
            origin: Origin::Env("KAFKA_BROKER".into()),
            reason: "refused".into(),
            hints: &HINTS,
        };
        assert_eq!(
            err.to_string(),
            "cannot reach Kafka at h:1 (from environment variable KAFKA_BROKER): refused"
        );
        assert_eq!(err.code().unwrap().to_string(), "sim::test::unreachable");
        assert_eq!(err.help().unwrap().to_string(), "is it up?");
        let err = KafkaClientError::config("bad", &HINTS);
        assert_eq!(err.to_string(), "invalid Kafka configuration: bad");
        assert_eq!(err.code().unwrap().to_string(), "sim::test::config");
        assert_eq!(err.help().unwrap().to_string(), "see -X");
    }

    #[test]
    fn each_cause_of_a_failed_contact_has_its_own_code_and_help() {
        let origin = Origin::Flag("--brokers".into());
        let properties = BTreeMap::new();
        let cluster = Cluster::new("h:1", &origin, &properties, &HINTS);
        let err = cluster.failed(Cause::Authentication("SASL refused".into()));
        assert_eq!(
            err.to_string(),
            "authentication with Kafka at h:1 (from flag --brokers) failed: SASL refused"
        );
        assert_eq!(err.code().unwrap().to_string(), "sim::test::authentication");
        let help = err.help().unwrap().to_string();
        assert!(
            help.contains("sasl.username") && help.ends_with("; see -X"),
            "{help}"
        );
        let err = cluster.failed(Cause::Tls("handshake".into()));
        assert_eq!(
            err.to_string(),
            "TLS with Kafka at h:1 (from flag --brokers) failed: handshake"
        );
        assert_eq!(err.code().unwrap().to_string(), "sim::test::tls");
        let help = err.help().unwrap().to_string();
        assert!(
            help.contains("ssl.ca.location") && help.ends_with("; see -X"),
            "{help}"
        );
        let err = cluster.failed(Cause::Unreachable("refused".into()));
        assert_eq!(err.code().unwrap().to_string(), "sim::test::unreachable");
    }
}
