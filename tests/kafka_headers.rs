//! The Kafka sink's headers, read back from the embedded broker with a plain rdkafka consumer:
//! every message names its scenario and the revision of the script that made it, and events a
//! fraud pattern made carry `fraud_pattern` (legitimate ones do not).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sim::broker::EmbeddedBroker;
use sim::settings::Origin;
use sim::sink::{DeliveryCounters, KafkaSink, KafkaSinkConfig, Record, Sink, TopicSpec};

#[test]
fn messages_carry_scenario_revision_and_fraud_pattern_headers() {
    let topic = TopicSpec {
        name: "headers.test".into(),
        partitions: 1,
        replication: 1,
    };
    let broker = EmbeddedBroker::start(&topic).unwrap();
    let config = KafkaSinkConfig {
        brokers: broker.bootstrap_servers(),
        brokers_origin: Origin::Default,
        topic: topic.name.clone(),
        properties: BTreeMap::new(),
        headers: vec![("scenario".into(), "darooghe".into())],
        transactional_id: None,
    };
    let mut sink = KafkaSink::connect(&config, Arc::new(DeliveryCounters::default())).unwrap();
    let sent = [
        (1, None),
        (1, Some("card_testing")),
        (2, None),
        (2, Some("velocity_burst")),
    ];
    for (i, (revision, pattern)) in sent.iter().enumerate() {
        sink.send(Record {
            key: Some(b"cust_1"),
            payload: format!("{{\"n\":{i}}}").as_bytes(),
            timestamp_ms: 1_705_312_800_000 + i as i64,
            revision: *revision,
            fraud_pattern: *pattern,
        })
        .unwrap();
    }
    let account = sink.close(Duration::from_secs(10)).unwrap();
    assert_eq!(account.delivered, 4);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "headers-test")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic.name, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < sent.len() && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let headers: BTreeMap<String, String> = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_string(), value.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            read.push(headers);
        }
    }
    assert_eq!(read.len(), sent.len(), "read back {read:?}");
    for ((revision, pattern), headers) in sent.iter().zip(&read) {
        assert_eq!(headers["scenario"], "darooghe");
        assert_eq!(headers["scenario_revision"], revision.to_string());
        assert_eq!(headers.get("fraud_pattern").map(String::as_str), *pattern);
    }
}
