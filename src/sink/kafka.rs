//! The Kafka sink: one idempotent producer, delivery observed per message.
//!
//! A `ThreadedProducer` with a delivery callback rather than a future per message: the callback
//! only bumps counters, and librdkafka's own thread runs it, so the generating thread never waits
//! on a delivery. When librdkafka's queue is full, `send` waits for room (back-pressure) instead
//! of dropping. Defaults are `acks=all`, `enable.idempotence=true` and a bounded queue
//! ([`PRODUCER_DEFAULTS`]); every property can be overridden with `-X` or the `[kafka]` table,
//! so SASL, TLS, compression and batching work as in kcat.
//!
//! While the broker is away, the queue fills to its bound and `send` waits: memory stays flat,
//! the timeline falls behind (the status line says for how long), and what is queued is either
//! delivered when the broker is back or failed by librdkafka after `message.timeout.ms`, each
//! counted; `close` waits as long as librdkafka would (`message.timeout.ms`), so a broker that
//! comes back in time gets everything. A stop ([`Sink::stop_on`]) ends the wait once the queue
//! stops draining: the record then waiting is counted failed, and `close` purges rather than
//! waiting out the timeout: what was still queued fails, what was already sent stays
//! unaccounted (the broker may have written it), so `failed` never counts a message the topic
//! holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig, ThreadedProducer};
use rdkafka::TopicPartitionList;

use super::{
    DeliveryAccount, DeliveryCounters, Extra, Progress, Record, Sink, SinkError, Transactions,
    KAFKA_HINTS,
};
use crate::kafka::stats::ClientStats;
use crate::kafka::{send_waiting, Cluster, DeliveryContext, GiveUp, Unsent, PRODUCER_DEFAULTS};
use crate::settings::Origin;
use crate::shutdown::Shutdown;

/// How long to wait for the brokers to answer before calling them unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `send` waits for room in a full queue before trying again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_micros(500);
/// Once stopping, how long a queue that does not drain (no delivery report at all) is waited
/// for, by `send` and by `close`: a broker that is up reports deliveries many times a second.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long one flush of `close` waits before it looks at the stop signal again.
const FLUSH_SLICE: Duration = Duration::from_millis(100);
/// librdkafka's default `message.timeout.ms`.
const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

/// `transaction.timeout.ms` of `--exactly-once`, lower than librdkafka's default (60 s): the
/// broker aborts a dead member's open transaction after it, and until then `read_committed`
/// readers of the partitions it wrote wait. A member commits every second.
pub const TRANSACTION_TIMEOUT_MS: &str = "20000";
/// How long registering the transactional producer, or one commit, may take.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long librdkafka keeps trying a message before failing it: `message.timeout.ms` (or its
/// alias `delivery.timeout.ms`) of the user's properties, librdkafka's default otherwise.
fn message_timeout(properties: &BTreeMap<String, String>) -> Duration {
    ["message.timeout.ms", "delivery.timeout.ms"]
        .iter()
        .find_map(|key| properties.get(*key)?.trim().parse::<u64>().ok())
        .map_or(DEFAULT_MESSAGE_TIMEOUT, Duration::from_millis)
}

/// What the Kafka sink needs to know.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Where they were configured, for errors.
    pub brokers_origin: Origin,
    /// The topic to produce to.
    pub topic: String,
    /// User properties (`-X`, `[kafka]`), applied over the defaults.
    pub properties: BTreeMap<String, String>,
    /// Headers on every message, e.g. the scenario's name.
    pub headers: Vec<(String, String)>,
    /// With `--exactly-once`: the producer's `transactional.id`, and every record is sent in a
    /// transaction a group's member commits (see [`Sink::transactions`]).
    pub transactional_id: Option<String>,
}

impl KafkaSinkConfig {
    /// The cluster, with the sink's error hints.
    pub fn cluster(&self) -> Cluster<'_> {
        let (brokers, origin) = (&self.brokers, &self.brokers_origin);
        Cluster::new(brokers, origin, &self.properties, &KAFKA_HINTS)
    }

    /// The librdkafka configuration: defaults, then the user's properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = self.cluster().config(PRODUCER_DEFAULTS);
        if let Some(id) = &self.transactional_id {
            config.set("transactional.id", id);
            if config.get("transaction.timeout.ms").is_none() {
                config.set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
            }
        }
        config
    }
}

/// Produces records to one topic.
pub struct KafkaSink {
    /// Shared with a group's member, which waits on it before committing (see [`Sink::settler`]).
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    topic: String,
    fixed_headers: Vec<(String, String)>,
    /// Headers of the current revision, rebuilt only when the revision changes.
    headers: (u64, OwnedHeaders),
    counters: Arc<DeliveryCounters>,
    /// The stop signal, which ends a wait for a queue that does not drain.
    stop: Option<Shutdown>,
    /// A send already gave up after a stop: the next ones do not wait again.
    gave_up: bool,
    /// How long librdkafka keeps trying a message (`message.timeout.ms`).
    message_timeout: Duration,
    /// Every record is sent in a transaction (`--exactly-once`), one of which is open.
    transactional: bool,
}

fn headers_for(fixed: &[(String, String)], revision: u64) -> OwnedHeaders {
    let revision = revision.to_string();
    fixed
        .iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
        .insert(Header {
            key: "scenario_revision",
            value: Some(revision.as_bytes()),
        })
}

impl KafkaSink {
    /// Creates the producer and checks that the brokers answer within a few seconds.
    pub fn connect(
        config: &KafkaSinkConfig,
        counters: Arc<DeliveryCounters>,
    ) -> Result<Self, SinkError> {
        let cluster = config.cluster();
        let producer: ThreadedProducer<DeliveryContext> = cluster.create(
            &config.client_config(),
            DeliveryContext::new(counters.clone()),
        )?;
        cluster.reach(None, CONNECT_TIMEOUT)?;
        let transactional = config.transactional_id.is_some();
        if transactional {
            let failed = |what| {
                move |err: rdkafka::error::KafkaError| SinkError::Transaction {
                    what,
                    reason: err.to_string(),
                }
            };
            producer
                .init_transactions(TRANSACTION_CALL_TIMEOUT)
                .map_err(failed("registering the transactional producer"))?;
            producer
                .begin_transaction()
                .map_err(failed("beginning the first transaction"))?;
        }
        Ok(Self {
            producer: Arc::new(producer),
            topic: config.topic.clone(),
            headers: (1, headers_for(&config.headers, 1)),
            fixed_headers: config.headers.clone(),
            counters,
            stop: None,
            gave_up: false,
            message_timeout: message_timeout(&config.properties),
            transactional,
        })
    }

    /// librdkafka's latest statistics of the producer (with `statistics.interval.ms` set).
    pub fn client_stats(&self) -> Arc<ClientStats> {
        self.producer.context().stats()
    }

    /// Whether a stop was asked for.
    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(Shutdown::is_triggered)
    }

    /// Flushes for up to `timeout`, or, once stopping, until no delivery report came for
    /// [`STOP_GRACE`]. Whether everything accepted was settled.
    fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut progress = (Instant::now(), self.counters.account().settled());
        loop {
            let slice = deadline.saturating_duration_since(Instant::now());
            if self.producer.flush(slice.min(FLUSH_SLICE)).is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let settled = self.counters.account().settled();
            if settled != progress.1 {
                progress = (Instant::now(), settled);
            } else if self.stopping() && progress.0.elapsed() >= STOP_GRACE {
                return false;
            }
        }
    }
}

/// The producer's deliveries, by the numbers it gives records.
struct ProducerProgress(Arc<ThreadedProducer<DeliveryContext>>);

impl Progress for ProducerProgress {
    fn mark(&self) -> u64 {
        self.0.context().mark()
    }

    fn reached(&self, mark: u64) -> bool {
        self.0.context().reached(mark)
    }

    fn settle(&self, timeout: Duration) -> bool {
        self.0.flush(timeout).is_ok()
    }
}

/// The transactions of a transactional producer, committed by a group's member between batches
/// (on the thread that sends, so no record is sent while one commits).
struct ProducerTransactions(Arc<ThreadedProducer<DeliveryContext>>);

impl ProducerTransactions {
    fn end(
        &self,
        extra: &[Extra<'_>],
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), KafkaError> {
        for record in extra {
            let message = BaseRecord::<(), [u8], usize>::with_opaque_to(
                record.topic,
                DeliveryContext::NOT_AN_EVENT,
            )
            .partition(record.partition)
            .payload(record.payload);
            send_waiting(&self.0, message, QUEUE_FULL_PAUSE, None).map_err(
                |unsent| match unsent {
                    Unsent::Refused(err) => err,
                    Unsent::Stopped => KafkaError::Canceled,
                },
            )?;
        }
        if let Some(group) = group.filter(|_| offsets.count() > 0) {
            self.0
                .send_offsets_to_transaction(offsets, group, TRANSACTION_CALL_TIMEOUT)?;
        }
        self.0.commit_transaction(TRANSACTION_CALL_TIMEOUT)
    }
}

impl Transactions for ProducerTransactions {
    fn commit(
        &self,
        extra: &[Extra<'_>],
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), String> {
        if let Err(err) = self.end(extra, offsets, group) {
            let _ = self.0.abort_transaction(TRANSACTION_CALL_TIMEOUT);
            return Err(err.to_string());
        }
        self.0.begin_transaction().map_err(|err| err.to_string())
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        if self.headers.0 != record.revision {
            self.headers = (
                record.revision,
                headers_for(&self.fixed_headers, record.revision),
            );
        }
        let mut headers = self.headers.1.clone();
        if let Some(pattern) = record.fraud_pattern {
            headers = headers.insert(Header {
                key: "fraud_pattern",
                value: Some(pattern.as_bytes()),
            });
        }
        let number = self.producer.context().number();
        let mut message = BaseRecord::with_opaque_to(&self.topic, number)
            .payload(record.payload)
            .timestamp(record.timestamp_ms)
            .headers(headers);
        if let Some(key) = record.key {
            message = message.key(key);
        }
        let give_up = self.stop.as_ref().map(|stop| GiveUp {
            stop,
            after: if self.gave_up {
                Duration::ZERO
            } else {
                STOP_GRACE
            },
        });
        match send_waiting(&self.producer, message, QUEUE_FULL_PAUSE, give_up) {
            Ok(()) => self.counters.produced(),
            // Refused outright (too large, unknown partition), or given up on a stop while the
            // broker took nothing: accounted as failed, with the reason.
            Err(unsent) => {
                self.gave_up |= matches!(unsent, Unsent::Stopped);
                self.producer.context().refused(&unsent, number);
            }
        }
        Ok(())
    }

    fn close(&mut self, timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        // A broker that comes back within librdkafka's own patience gets what is queued: giving
        // up sooner would fail messages a fault that heals would have delivered. A stop still
        // ends the wait once nothing drains (see `flush`).
        let timeout = timeout.max(self.message_timeout + Duration::from_secs(5));
        let flushed = self.flush(timeout);
        if !flushed {
            // Whatever is still queued or in flight fails now, through its delivery report.
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
        }
        let mut committed = Ok(());
        if self.transactional {
            // What was sent since the member's last commit (follow-ups after a backfill's end).
            committed = if flushed {
                self.producer.commit_transaction(TRANSACTION_CALL_TIMEOUT)
            } else {
                self.producer.abort_transaction(TRANSACTION_CALL_TIMEOUT)
            };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.counters.account().in_flight() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(50));
        }
        committed.map_err(|err| SinkError::Transaction {
            what: "committing the last transaction",
            reason: err.to_string(),
        })?;
        Ok(self.counters.account())
    }

    fn failure_reasons(&self) -> Vec<(String, u64)> {
        self.producer.context().failure_reasons()
    }

    fn progress(&self) -> Option<Arc<dyn Progress>> {
        self.producer.context().track_order();
        Some(Arc::new(ProducerProgress(self.producer.clone())))
    }

    fn transactions(&self) -> Option<Arc<dyn Transactions>> {
        self.transactional
            .then(|| Arc::new(ProducerTransactions(self.producer.clone())) as Arc<dyn Transactions>)
    }

    /// A stop during an outage then takes seconds, not librdkafka's `message.timeout.ms`: the
    /// waits for room in a full queue and for deliveries in `close` end once the queue stops
    /// draining.
    fn stop_on(&mut self, stop: &Shutdown) {
        self.stop = Some(stop.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_waits_as_long_as_librdkafka_keeps_trying() {
        let mut properties = BTreeMap::new();
        assert_eq!(message_timeout(&properties), DEFAULT_MESSAGE_TIMEOUT);
        properties.insert("delivery.timeout.ms".into(), "90000".into());
        assert_eq!(message_timeout(&properties), Duration::from_secs(90));
        properties.insert("message.timeout.ms".into(), "20000".into());
        assert_eq!(message_timeout(&properties), Duration::from_secs(20));
    }
}
