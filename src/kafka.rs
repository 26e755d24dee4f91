//! What every Kafka client of `sim` shares: its configuration, the first contact with the
//! cluster, sending through a full queue, delivery accounting, and the errors of all of these.
//!
//! The sink ([`crate::sink`]) and `sim analyze` ([`crate::analyze`]) are both clients of a
//! cluster the user named (`--brokers`, `KAFKA_BROKER`) and configured (`-X`, the `[kafka]`
//! table). This module is below both: it knows librdkafka and [`crate::settings::Origin`], not
//! its callers, which pass in their own [`ErrorHints`] so an error still says where *their*
//! settings come from. A first contact that fails says why (`kafka/contact.rs`):
//! authentication, TLS, or no answer at all.

mod contact;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

pub use contact::Cause;
use contact::{probe_config, ContactLog};

use crate::delivery::DeliveryCounters;
use crate::settings::Origin;
use crate::shutdown::Shutdown;
use crate::sync::lock;

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

/// When a send waiting for room in a full queue gives its record up: once `stop` was asked for
/// and no delivery report came for `after`. The broker then takes nothing, so waiting on would
/// only keep the stop waiting (for `message.timeout.ms`, 5 minutes by default, until librdkafka
/// fails what it queued); while the queue drains, the wait goes on.
#[derive(Debug, Clone, Copy)]
pub struct GiveUp<'a> {
    /// The stop signal.
    pub stop: &'a Shutdown,
    /// How long, once stopping, a queue that does not drain is waited for.
    pub after: Duration,
}

/// Why [`send_waiting`] did not hand a record to librdkafka.
#[derive(Debug, thiserror::Error)]
pub enum Unsent {
    /// The producer refused it: too large, an unknown partition.
    #[error(transparent)]
    Refused(KafkaError),
    /// A stop was asked for while the queue was full and did not drain ([`GiveUp`]).
    #[error(
        "not sent: sim was stopped while the producer's queue was full and the broker took nothing"
    )]
    Stopped,
}

/// Sends `record`, waiting `pause` at a time while librdkafka's queue is full (back-pressure:
/// its own thread drains the queue meanwhile, and the caller, the timeline, waits). The queue's
/// bound ([`PRODUCER_DEFAULTS`]) is what keeps memory bounded while a broker is away. With
/// `give_up`, a stop ends the wait for a queue that does not drain. The counters show how long
/// a send has been waiting ([`DeliveryCounters::waiting_for`]).
pub fn send_waiting<K, P>(
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, K, P>,
    pause: Duration,
    give_up: Option<GiveUp<'_>>,
) -> Result<(), Unsent>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let counters = producer.context().counters();
    let mut waiting = false;
    // Since when the stopping send saw no delivery report, and how many were settled then.
    let mut stalled: Option<(Instant, u64)> = None;
    let sent = loop {
        match producer.send(record) {
            Ok(()) => break Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if !waiting {
                    counters.waiting(true);
                    waiting = true;
                }
                if let Some(give_up) = give_up.filter(|g| g.stop.is_triggered()) {
                    let settled = counters.account().settled();
                    match stalled {
                        Some((since, seen)) if seen == settled => {
                            if since.elapsed() >= give_up.after {
                                break Err(Unsent::Stopped);
                            }
                        }
                        _ => stalled = Some((Instant::now(), settled)),
                    }
                }
                std::thread::sleep(pause);
            }
            Err((err, _)) => break Err(Unsent::Refused(err)),
        }
    };
    if waiting {
        counters.waiting(false);
    }
    sent
}

/// Failed deliveries: how many for each reason, and the first reason of all.
#[derive(Debug, Default)]
struct Failures {
    by_reason: BTreeMap<String, u64>,
    first: Option<String>,
}

/// A producer's delivery callback: counts every delivery report in [`DeliveryCounters`] and
/// keeps why failures failed. librdkafka's thread runs it, so it only bumps counters.
pub struct DeliveryContext {
    counters: Arc<DeliveryCounters>,
    failures: Mutex<Failures>,
}

impl DeliveryContext {
    /// A context that counts into `counters`.
    pub fn new(counters: Arc<DeliveryCounters>) -> Self {
        Self {
            counters,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// The counters it updates.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// Counts a failed delivery and its reason.
    pub fn failed(&self, reason: String) {
        self.counters.failed();
        let mut failures = lock(&self.failures);
        failures.first.get_or_insert_with(|| reason.clone());
        *failures.by_reason.entry(reason).or_default() += 1;
    }

    /// Counts a record the producer refused outright: accepted and failed at once, so that
    /// produced = delivered + failed still holds.
    pub fn refused(&self, reason: String) {
        self.counters.produced();
        self.failed(reason);
    }

    /// Why deliveries failed, with a count for each reason.
    pub fn failure_reasons(&self) -> Vec<(String, u64)> {
        let failures = lock(&self.failures);
        failures
            .by_reason
            .iter()
            .map(|(reason, count)| (reason.clone(), *count))
            .collect()
    }

    /// The reason of the first failed delivery, if one failed.
    pub fn first_failure(&self) -> Option<String> {
        lock(&self.failures).first.clone()
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.counters.delivered(),
            Err((err, _)) => self.failed(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn failures_are_counted_by_reason_and_the_first_is_kept() {
        let counters = Arc::new(DeliveryCounters::default());
        let context = DeliveryContext::new(counters.clone());
        context.refused("too large".into());
        context.failed("timed out".into());
        context.failed("timed out".into());
        assert_eq!(counters.account().produced, 1);
        assert_eq!(counters.account().failed, 3);
        assert_eq!(context.first_failure().as_deref(), Some("too large"));
        assert_eq!(
            context.failure_reasons(),
            vec![("timed out".to_string(), 2), ("too large".to_string(), 1)]
        );
    }
}
