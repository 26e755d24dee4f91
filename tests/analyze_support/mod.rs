//! Helpers of the `sim analyze` tests: a broker (librdkafka's mock cluster in this process),
//! filling it with `sim backfill`, running `sim analyze`, reading topics back in process, and
//! counting the input independently of the analyzer.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::common::*;

pub const TOPIC: &str = "darooghe.transactions";
pub const NOW: &str = "2026-01-01T00:00:00Z";

/// A one-broker mock cluster with the transactions topic (3 partitions) created.
pub struct Mock {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub address: String,
}

impl Mock {
    /// A mock cluster whose consumer groups wait `delay` for members before their first
    /// generation (the mock's default is 3 s, as a broker's `group.initial.rebalance.delay.ms`).
    /// Members started together then join one generation even on a loaded machine: the mock
    /// refuses offset commits while a group rebalances, so a member that joins later, while
    /// another holds an uncommitted batch, makes that batch be processed twice (at least once).
    pub fn start_with_join_delay(delay: Duration) -> Self {
        use rdkafka::producer::BaseProducer;
        // Leaked: the cluster lives as long as the client that hosts it, for the whole test.
        let host: &'static BaseProducer = Box::leak(Box::new(
            ClientConfig::new()
                .set("test.mock.num.brokers", "1")
                .create()
                .expect("start the mock cluster"),
        ));
        let cluster = host.client().mock_cluster().expect("a mock cluster");
        // SAFETY: the handle is valid for the leaked client's lifetime (the whole process).
        unsafe {
            let mock = rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(
                mock,
                delay.as_millis() as i32,
            );
        }
        cluster.create_topic(TOPIC, 3, 1).expect("create the topic");
        let address = cluster.bootstrap_servers();
        Self { cluster, address }
    }

    /// A one-broker mock cluster whose transactions topic has 3 partitions.
    pub fn start() -> Self {
        Self::with_partitions(3)
    }

    /// A one-broker mock cluster whose transactions topic has `partitions` partitions. The mock
    /// keeps about 5 MB per partition (some 9,500 darooghe events) and deletes the oldest beyond.
    pub fn with_partitions(partitions: i32) -> Self {
        let cluster = MockCluster::new(1).expect("start the mock cluster");
        cluster
            .create_topic(TOPIC, partitions, 1)
            .expect("create the topic");
        let address = cluster.bootstrap_servers();
        Self { cluster, address }
    }
}

/// `sim backfill SCRIPT --count N --seed S --now NOW --brokers ADDR`; returns events delivered.
pub fn backfill(brokers: &str, script: &str, count: u64, seed: u64) -> u64 {
    let out = run(
        sim()
            .args(["backfill", script, "--brokers", brokers, "--now", NOW])
            .args(["--count", &count.to_string(), "--seed", &seed.to_string()]),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "backfill failed:\n{}", out.stderr);
    let account = final_account(&out.stderr);
    assert_eq!(account.failed, 0, "{}", out.stderr);
    account.delivered
}

/// A `sim analyze` command against `brokers`, JSON summary, native rules unless told otherwise.
pub fn analyze_cmd(brokers: &str, group: &str) -> std::process::Command {
    let mut cmd = sim();
    cmd.args(["analyze", "--brokers", brokers, "--group", group])
        .args(["--from-beginning", "--format", "json", "--no-view"]);
    cmd
}

/// Runs `cmd` to its end and returns its JSON summary.
pub fn summary_of(cmd: &mut std::process::Command) -> Value {
    let out = run(cmd, Duration::from_secs(300));
    // Shown only when the test fails: what the analyzer reported (rebalances, warnings).
    eprintln!("sim analyze stderr:\n{}", out.stderr);
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "sim analyze failed: {}\n{}",
        out.status,
        out.stderr
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the summary is not JSON ({e}):\n{}\n{}",
            out.stdout_text(),
            out.stderr
        )
    })
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Read {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap_or(Value::Null)
    }
}

/// Reads every partition of `topic` from the beginning until each is at its end and nothing new
/// came for `quiet`; `read_committed` hides aborted transactions' messages.
pub fn read_topic(brokers: &str, topic: &str, read_committed: bool, quiet: Duration) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut read = Vec::new();
    let mut at_end = BTreeSet::new();
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                last = Instant::now();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                                (h.key.to_string(), v.unwrap_or_default())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                read.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
        if at_end.len() == partitions.len() && last.elapsed() >= quiet {
            return read;
        }
    }
    panic!(
        "reading {topic} did not reach its end within 120 s ({} read)",
        read.len()
    );
}

/// The truth, counted from the topic's raw messages without the analyzer's code.
#[derive(Debug, Default, PartialEq)]
pub struct Truth {
    pub merchant_counts: BTreeMap<String, u64>,
    pub category_revenue: BTreeMap<String, i64>,
    pub transactions: u64,
}

pub fn count(messages: &[Read]) -> Truth {
    let mut truth = Truth::default();
    for m in messages {
        let event = m.json();
        let (Some(merchant), Some(category), Some(status), Some(amount)) = (
            event["merchant_id"].as_str(),
            event["merchant_category"].as_str(),
            event["status"].as_str(),
            event["amount"].as_i64(),
        ) else {
            continue; // poison
        };
        truth.transactions += 1;
        *truth.merchant_counts.entry(merchant.into()).or_default() += 1;
        if status == "approved" {
            *truth.category_revenue.entry(category.into()).or_default() += amount;
        }
    }
    truth
}

/// The summary's merchant counts and category revenue.
pub fn summary_totals(summary: &Value) -> Truth {
    let merchant_counts: BTreeMap<String, u64> =
        serde_json::from_value(summary["merchant_counts"].clone()).expect("merchant_counts");
    let category_revenue: BTreeMap<String, i64> =
        serde_json::from_value(summary["category_revenue"].clone()).expect("category_revenue");
    Truth {
        transactions: merchant_counts.values().sum(),
        merchant_counts,
        category_revenue,
    }
}

/// Adds up the deltas published to the output topics.
pub fn published_totals(brokers: &str, read_committed: bool) -> Truth {
    let mut truth = Truth::default();
    for m in read_topic(
        brokers,
        "darooghe.merchant_counts",
        read_committed,
        Duration::from_millis(500),
    ) {
        let v = m.json();
        let merchant = v["merchant_id"].as_str().expect("merchant_id").to_string();
        assert_eq!(
            m.key.as_deref(),
            Some(merchant.as_str()),
            "keyed by merchant"
        );
        let n = v["count"].as_u64().expect("count");
        *truth.merchant_counts.entry(merchant).or_default() += n;
        truth.transactions += n;
    }
    for m in read_topic(
        brokers,
        "darooghe.category_revenue",
        read_committed,
        Duration::from_millis(500),
    ) {
        let v = m.json();
        let category = v["category"].as_str().expect("category").to_string();
        assert_eq!(
            m.key.as_deref(),
            Some(category.as_str()),
            "keyed by category"
        );
        *truth.category_revenue.entry(category).or_default() +=
            v["approved_revenue"].as_i64().expect("revenue");
    }
    truth
}

/// Produces raw values to a partition of the topic (poison for the analyzer).
pub fn produce_raw(brokers: &str, partition: i32, values: &[&[u8]]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for value in values {
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(TOPIC)
                    .partition(partition)
                    .key(b"cust_x".as_slice())
                    .payload(value),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Offsets the group has committed on the transactions topic, summed over its partitions.
pub fn committed(brokers: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        // Without this the broker may answer "unstable offset" while a transaction that commits
        // offsets is open, which an exactly-once analyzer nearly always has.
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition(TOPIC, p);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .map(|l| {
            l.elements()
                .iter()
                .filter_map(|e| e.offset().to_raw())
                .filter(|o| *o > 0)
                .sum()
        })
        .unwrap_or(0)
}
