//! The output topics and the dead-letter topic: one producer, idempotent, transactional in
//! exactly-once mode.
//!
//! What is published for one committed batch of one source partition:
//!
//! - `darooghe.merchant_counts`, keyed by merchant:
//!   `{"merchant_id", "count", "source_partition", "from_offset", "to_offset"}`, the merchant's
//!   transactions among that partition's offsets `from_offset..=to_offset`;
//! - `darooghe.category_revenue`, keyed by category:
//!   `{"category", "approved_revenue", "approved_count", "source_partition", "from_offset",
//!   "to_offset"}`;
//! - `darooghe.alerts`, keyed by customer: the alert (rule, customer, time, reason, events);
//! - exactly once only, `darooghe.analyze_progress`, keyed by `GROUP/TOPIC/PARTITION`:
//!   `{"group", "source_topic", "source_partition", "from_offset", "to_offset"}`, one record per
//!   batch and source partition, whatever else the batch published, in the same transaction; a
//!   restarted member resumes after the highest committed `to_offset` (see [`super::progress`]).
//!
//! Counts are *deltas*, not running totals: each source offset is counted in exactly one
//! published batch (exactly once) or at least one (at least once), whichever member of the group
//! owned the partition, so summing every message of a key gives the total for that key, and the
//! sums over what several members published equal what one member alone publishes. A running
//! total would need the state of the partition's previous owner; a delta needs nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;
use serde_json::json;

use super::batch::PartitionBatch;
use super::progress::ProgressRecord;
use super::summary::alert_json;
use super::{
    AnalyzeError, AnalyzeOptions, ALERTS_TOPIC, CATEGORY_REVENUE_TOPIC, MERCHANT_COUNTS_TOPIC,
    PROGRESS_TOPIC,
};
use crate::kafka::{send_waiting, DeliveryContext, PRODUCER_DEFAULTS};
use crate::sink::{ensure_topic, DeliveryCounters, TopicSpec};

/// How long a flush or a transaction may take before the run stops.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a send waits for room in a full queue before trying again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

/// The producer of outputs and dead letters.
pub struct Publisher {
    producer: ThreadedProducer<DeliveryContext>,
    outputs: bool,
    dead_letter: Option<String>,
    transactional: bool,
    /// The consumer group, named in the progress records.
    group: String,
}

fn kafka(what: &'static str) -> impl Fn(KafkaError) -> AnalyzeError {
    move |err| AnalyzeError::Kafka {
        what,
        reason: err.to_string(),
    }
}

impl Publisher {
    /// Creates the topics it writes (brokers such as Tansu do not create them on first produce)
    /// with the input's `partitions` and `replication`, then the producer; in exactly-once mode,
    /// registers its `transactional.id`, which aborts whatever a dead predecessor left open.
    pub fn connect(
        options: &AnalyzeOptions,
        partitions: i32,
        replication: i32,
    ) -> Result<Self, AnalyzeError> {
        let cluster = options.cluster();
        let mut topics = Vec::new();
        if options.output_topics {
            topics.extend(
                [MERCHANT_COUNTS_TOPIC, CATEGORY_REVENUE_TOPIC, ALERTS_TOPIC].map(String::from),
            );
        }
        topics.extend(options.dead_letter_topic.clone());
        if options.exactly_once {
            topics.push(PROGRESS_TOPIC.to_string());
        }
        for name in topics {
            let spec = TopicSpec {
                name,
                partitions,
                replication,
            };
            ensure_topic(&cluster.config(&[]), &spec, false)?;
        }
        let transactional_id = options.transactional_id();
        let mut defaults = PRODUCER_DEFAULTS.to_vec();
        if options.exactly_once {
            defaults.push(("transactional.id", &transactional_id));
        }
        // Its own counters: only failures matter here, and they stop the run.
        let context = DeliveryContext::new(Arc::new(DeliveryCounters::default()));
        let producer: ThreadedProducer<DeliveryContext> =
            cluster.create(&cluster.config(&defaults), context)?;
        if options.exactly_once {
            producer
                .init_transactions(PUBLISH_TIMEOUT)
                .map_err(kafka("registering the transactional producer"))?;
        }
        Ok(Self {
            producer,
            outputs: options.output_topics,
            dead_letter: options.dead_letter_topic.clone(),
            transactional: options.exactly_once,
            group: options.group.clone(),
        })
    }

    fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), AnalyzeError> {
        // Numbered like the sink's records, though nothing here waits on their order.
        let number = self.producer.context().number();
        let mut record = BaseRecord::with_opaque_to(topic, number)
            .key(key)
            .payload(value);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        // A refusal stops the run: the batch is not committed, so a restart publishes it again.
        send_waiting(&self.producer, record, QUEUE_FULL_PAUSE, None).map_err(|unsent| {
            AnalyzeError::Kafka {
                what: "publishing",
                reason: unsent.to_string(),
            }
        })
    }

    fn send_batch(
        &self,
        topic: &str,
        batches: &BTreeMap<i32, PartitionBatch>,
    ) -> Result<(), AnalyzeError> {
        for (&partition, batch) in batches {
            let (from, to) = (batch.first_offset, batch.next_offset - 1);
            if self.transactional {
                // Progress, even for a batch that published nothing else: what a restarted
                // member resumes after when the broker did not keep the transaction's offsets.
                let record = ProgressRecord {
                    from_offset: from,
                    group: &self.group,
                    source_partition: partition,
                    source_topic: topic,
                    to_offset: to,
                };
                self.send(
                    PROGRESS_TOPIC,
                    record.key().as_bytes(),
                    record.to_json().as_bytes(),
                    None,
                )?;
            }
            if self.outputs {
                for (merchant, count) in &batch.delta.merchant_counts {
                    let value = json!({
                        "merchant_id": merchant, "count": count, "source_partition": partition,
                        "from_offset": from, "to_offset": to,
                    });
                    self.send(
                        MERCHANT_COUNTS_TOPIC,
                        merchant.as_bytes(),
                        value.to_string().as_bytes(),
                        None,
                    )?;
                }
                for (category, revenue) in &batch.delta.category_revenue {
                    let value = json!({
                        "category": category, "approved_revenue": revenue,
                        "approved_count": batch.delta.category_approved.get(category).copied().unwrap_or(0),
                        "source_partition": partition, "from_offset": from, "to_offset": to,
                    });
                    self.send(
                        CATEGORY_REVENUE_TOPIC,
                        category.as_bytes(),
                        value.to_string().as_bytes(),
                        None,
                    )?;
                }
                for alert in &batch.alerts {
                    let value = alert_json(alert).to_string();
                    self.send(
                        ALERTS_TOPIC,
                        alert.customer_id.as_bytes(),
                        value.as_bytes(),
                        None,
                    )?;
                }
            }
            if let Some(dead_letter) = &self.dead_letter {
                for dead in &batch.dead_letters {
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "dead_letter_reason",
                            value: Some(dead.poison.reason.as_bytes()),
                        })
                        .insert(Header {
                            key: "source_topic",
                            value: Some(topic.as_bytes()),
                        })
                        .insert(Header {
                            key: "source_partition",
                            value: Some(partition.to_string().as_bytes()),
                        })
                        .insert(Header {
                            key: "source_offset",
                            value: Some(dead.poison.offset.to_string().as_bytes()),
                        });
                    let key = dead.key.as_deref().unwrap_or_default();
                    let value = dead.payload.as_deref().unwrap_or_default();
                    self.send(dead_letter, key, value, Some(headers))?;
                }
            }
        }
        Ok(())
    }

    /// At least once: publishes the batches and waits until every message is acknowledged;
    /// only then may the caller commit the offsets.
    pub fn publish(
        &self,
        topic: &str,
        batches: &BTreeMap<i32, PartitionBatch>,
    ) -> Result<(), AnalyzeError> {
        self.send_batch(topic, batches)?;
        self.producer
            .flush(PUBLISH_TIMEOUT)
            .map_err(kafka("flushing the outputs"))?;
        let context = self.producer.context();
        if context.counters().account().failed > 0 {
            let reason = context.first_failure().unwrap_or_default();
            return Err(AnalyzeError::Kafka {
                what: "publishing the outputs",
                reason,
            });
        }
        Ok(())
    }

    /// Exactly once: publishes the batches and commits `offsets` for `group` in one transaction.
    pub fn publish_in_transaction(
        &self,
        topic: &str,
        batches: &BTreeMap<i32, PartitionBatch>,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), AnalyzeError> {
        debug_assert!(self.transactional);
        self.producer
            .begin_transaction()
            .map_err(kafka("beginning a transaction"))?;
        let result = self.send_batch(topic, batches).and_then(|()| {
            self.producer
                .send_offsets_to_transaction(offsets, group, PUBLISH_TIMEOUT)
                .map_err(kafka("adding the offsets to the transaction"))?;
            self.producer
                .commit_transaction(PUBLISH_TIMEOUT)
                .map_err(kafka("committing the transaction"))
        });
        if result.is_err() {
            // Leave nothing half-done behind: the next run resumes from the last commit.
            let _ = self.producer.abort_transaction(PUBLISH_TIMEOUT);
        }
        result
    }

    /// Whether outputs and offsets commit together.
    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// Flushes what is queued (at exit).
    pub fn close(&self) {
        let _ = self.producer.flush(PUBLISH_TIMEOUT);
    }
}
