//! The Kafka sink: one idempotent producer, delivery observed per message.
//!
//! A `ThreadedProducer` with a delivery callback rather than a future per message: the callback
//! only bumps counters, and librdkafka's own thread runs it, so the generating thread never waits
//! on a delivery. When librdkafka's queue is full, `send` waits for room (back-pressure) instead
//! of dropping. Defaults are `acks=all` and `enable.idempotence=true`; every property can be
//! overridden with `-X` or the `[kafka]` table, so SASL, TLS, compression and batching work as
//! in kcat.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::ClientContext;

use super::{DeliveryAccount, DeliveryCounters, Record, Sink, SinkError};
use crate::settings::Origin;

/// How long to wait for the brokers to answer before calling them unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
}

impl KafkaSinkConfig {
    /// The librdkafka configuration: defaults, then the user's properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Counts deliveries and remembers why failures failed.
pub struct DeliveryContext {
    counters: Arc<DeliveryCounters>,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.counters.delivered(),
            Err((err, _)) => {
                self.counters.failed();
                if let Ok(mut failures) = self.failures.lock() {
                    *failures.entry(err.to_string()).or_default() += 1;
                }
            }
        }
    }
}

/// Produces records to one topic.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    fixed_headers: Vec<(String, String)>,
    /// Headers of the current revision, rebuilt only when the revision changes.
    headers: (u64, OwnedHeaders),
    counters: Arc<DeliveryCounters>,
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
        let context = DeliveryContext {
            counters: counters.clone(),
            failures: Mutex::new(BTreeMap::new()),
        };
        let producer: ThreadedProducer<DeliveryContext> = config
            .client_config()
            .create_with_context(context)
            .map_err(|err| SinkError::Config(err.to_string()))?;
        producer
            .client()
            .fetch_metadata(None, CONNECT_TIMEOUT)
            .map_err(|err| SinkError::Unreachable {
                brokers: config.brokers.clone(),
                origin: config.brokers_origin.clone(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            producer,
            topic: config.topic.clone(),
            headers: (1, headers_for(&config.headers, 1)),
            fixed_headers: config.headers.clone(),
            counters,
        })
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
        let mut message = BaseRecord::to(&self.topic)
            .payload(record.payload)
            .timestamp(record.timestamp_ms)
            .headers(headers);
        if let Some(key) = record.key {
            message = message.key(key);
        }
        loop {
            match self.producer.send(message) {
                Ok(()) => {
                    self.counters.produced();
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Back-pressure: the polling thread drains delivery reports meanwhile.
                    message = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((err, _)) => {
                    // Refused outright (too large, unknown partition): accounted as failed.
                    self.counters.produced();
                    self.counters.failed();
                    if let Ok(mut failures) = self.producer.context().failures.lock() {
                        *failures.entry(err.to_string()).or_default() += 1;
                    }
                    return Ok(());
                }
            }
        }
    }

    fn close(&mut self, timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        if self.producer.flush(timeout).is_err() {
            // Whatever is still queued or in flight fails now, through its delivery report.
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.counters.account().in_flight() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(50));
        }
        Ok(self.counters.account())
    }

    fn failure_reasons(&self) -> Vec<(String, u64)> {
        self.producer
            .context()
            .failures
            .lock()
            .map(|f| f.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}
