//! Creating (and for `EVENT_INIT_MODE=flush`, recreating) the topic on a real cluster.
//!
//! Some brokers (Tansu among them) do not create topics on first produce, so `sim` always creates
//! its topic before producing. Deletion is asynchronous in Kafka: right after a delete, a create
//! can fail with "already exists" while the old topic is being removed, so the create is retried
//! for a while.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;

use super::{SinkError, KAFKA_HINTS};
use crate::kafka::KafkaClientError;

/// How long a topic may take to go away and come back, or to show up in metadata.
const TOPIC_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The topic to set up.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Partitions when created.
    pub partitions: i32,
    /// Replication factor when created (-1: the broker's default).
    pub replication: i32,
}

/// Makes sure the topic exists; with `recreate`, deletes it first so it starts empty.
pub fn ensure_topic(
    config: &ClientConfig,
    spec: &TopicSpec,
    recreate: bool,
) -> Result<(), SinkError> {
    let fail = |reason: String| SinkError::Topic {
        topic: spec.name.clone(),
        reason,
    };
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| KafkaClientError::config(e, &KAFKA_HINTS))?;
    // A topic that is there needs no admin request: some brokers (librdkafka's mock cluster,
    // when it is not the embedded one) do not answer CreateTopics at all.
    if !recreate && wait_for_leaders(&admin, spec, Duration::ZERO).is_ok() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    runtime.block_on(async {
        if recreate {
            let results = admin
                .delete_topics(&[spec.name.as_str()], &options)
                .await
                .map_err(|e| fail(format!("delete failed: {e}")))?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                    Err((_, code)) => return Err(fail(format!("delete failed: {code}"))),
                }
            }
        }
        let deadline = Instant::now() + TOPIC_SETTLE_TIMEOUT;
        loop {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            );
            let results = admin
                .create_topics([&topic], &options)
                .await
                .map_err(|e| fail(format!("create failed: {e}")))?;
            match results.into_iter().next() {
                Some(Ok(_)) | None => break,
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) if !recreate => break,
                Some(Err((_, code)))
                    if recreate
                        && matches!(
                            code,
                            RDKafkaErrorCode::TopicAlreadyExists
                                | RDKafkaErrorCode::UnknownTopicOrPartition
                        )
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Some(Err((_, code))) => return Err(fail(format!("create failed: {code}"))),
            }
        }
        Ok(())
    })?;
    wait_for_leaders(&admin, spec, TOPIC_SETTLE_TIMEOUT).map_err(fail)
}

/// Waits up to `patience` until every partition of the topic has a leader, so the first produce
/// finds it.
fn wait_for_leaders(
    admin: &AdminClient<DefaultClientContext>,
    spec: &TopicSpec,
    patience: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + patience;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(&spec.name), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let ready = metadata.topics().iter().any(|topic| {
            topic.name() == spec.name
                && topic.error().is_none()
                && !topic.partitions().is_empty()
                && topic.partitions().iter().all(|p| p.leader() >= 0)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the topic did not show up in the brokers' metadata".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
