//! The embedded broker: librdkafka's mock cluster, in process, with its log limit raised to a
//! memory budget; and the watch that reports when any broker deletes what `sim` wrote.
//!
//! The mock cluster speaks the real Kafka wire protocol on a local port (kcat, the Python client,
//! `sim analyze`, consumer groups and transactions all work against it), starts in a millisecond
//! and costs nothing to build. Left as librdkafka ships it, it keeps only the newest 5 MiB (and
//! 100,000 message sets) of each partition and deletes the oldest silently, which is under an
//! hour of the default scenario's traffic. So `sim` raises that limit to a budget
//! (`embedded_max_bytes`, by default half the memory available when it starts), says what the
//! budget is when the broker starts, and the [`history`] watch reports any deletion when it
//! happens: nothing is dropped without the person running `sim` being told.
//!
//! It lives as long as this value; dropping it stops the broker, after a short grace in which
//! attached consumers can still fetch the last messages.

pub mod history;

use std::ffi::{c_char, c_int, CString};
use std::time::Duration;

use rdkafka::bindings::{rd_kafka_handle_mock_cluster, rd_kafka_mock_cluster_t};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::sink::{SinkError, TopicSpec};

/// How long the broker keeps serving once dropped. It is dropped right after the producer's final
/// flush, so the last messages were delivered only moments before; without a grace, a consumer
/// that is a little behind, or waiting out librdkafka's default `fetch.wait.max.ms` (500 ms, as
/// kcat does), loses messages the final account reports as delivered.
pub const DRAIN_GRACE: Duration = Duration::from_millis(1500);

/// The budget when memory cannot be read (not Linux): 2 GiB.
const FALLBACK_BUDGET: u64 = 2 << 30;

/// The smallest log a partition keeps, whatever the budget: one large batch.
const MIN_PARTITION_LOG: u64 = 64 << 10;

extern "C" {
    /// `src/broker/mock_log_limits.c`: sets `max_size` and `max_cnt` of every partition of
    /// `topic`; returns the partition count, or -1 when there is no such topic.
    fn sim_mock_set_log_limits(
        cluster: *mut rd_kafka_mock_cluster_t,
        topic: *const c_char,
        max_bytes: usize,
        max_message_sets: usize,
    ) -> c_int;
}

/// What the embedded broker keeps before it deletes a partition's oldest messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBudget {
    /// Bytes of record batches each partition keeps (as produced: compressed when the producer
    /// compresses). The process holds somewhat more: about 60 bytes of bookkeeping a batch.
    pub per_partition: u64,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Whether the budget was chosen from the memory available (`embedded_max_bytes` = 0).
    pub from_available_memory: bool,
}

impl LogBudget {
    /// The budget for `partitions` partitions: `max_bytes` in all, or half the memory available
    /// now when it is 0.
    pub fn new(max_bytes: u64, partitions: i32) -> Self {
        let from_available_memory = max_bytes == 0;
        let total = if from_available_memory {
            available_memory().map_or(FALLBACK_BUDGET, |bytes| bytes / 2)
        } else {
            max_bytes
        };
        Self {
            per_partition: (total / partitions.max(1) as u64).max(MIN_PARTITION_LOG),
            partitions,
            from_available_memory,
        }
    }

    /// The whole topic's budget, bytes.
    pub fn total(&self) -> u64 {
        self.per_partition * self.partitions.max(1) as u64
    }
}

/// `MemAvailable` from `/proc/meminfo`, bytes.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A one-broker Kafka cluster inside this process.
pub struct EmbeddedBroker {
    // The mock cluster belongs to this client (`test.mock.num.brokers`) and stops with it.
    _client: BaseProducer,
    address: String,
    budget: LogBudget,
}

impl EmbeddedBroker {
    /// Starts the broker and creates `topic` on it, with the default budget: half the memory
    /// available now, split between the partitions.
    pub fn start(topic: &TopicSpec) -> Result<Self, SinkError> {
        Self::with_budget(topic, LogBudget::new(0, topic.partitions))
    }

    /// Starts the broker and creates `topic` on it, each partition keeping up to
    /// `budget.per_partition` bytes.
    pub fn with_budget(topic: &TopicSpec, budget: LogBudget) -> Result<Self, SinkError> {
        let fail = |e: &dyn std::fmt::Display| SinkError::Embedded(e.to_string());
        let client: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .map_err(|e| fail(&e))?;
        let cluster = client
            .client()
            .mock_cluster()
            .ok_or_else(|| fail(&"librdkafka started no mock cluster"))?;
        // One broker holds every replica, so the replication factor is 1 whatever was asked.
        cluster
            .create_topic(&topic.name, topic.partitions, 1)
            .map_err(|e| fail(&format!("creating topic {}: {e}", topic.name)))?;
        let name = CString::new(topic.name.as_str()).map_err(|e| fail(&e))?;
        let max_bytes = usize::try_from(budget.per_partition).unwrap_or(usize::MAX);
        // SAFETY: the cluster belongs to `client`, alive here; the topic was created above and
        // no client has produced to it yet, so the mock cluster's thread is not appending.
        let partitions = unsafe {
            let raw = rd_kafka_handle_mock_cluster(client.client().native_ptr());
            sim_mock_set_log_limits(raw, name.as_ptr(), max_bytes, usize::MAX)
        };
        if partitions != topic.partitions {
            return Err(fail(&format!(
                "setting the log limit of {}: {partitions} partitions found",
                topic.name
            )));
        }
        // A synchronous request to the cluster's thread, so it sees the limits before any append.
        cluster
            .broker_round_trip_time(1, Duration::ZERO)
            .map_err(|e| fail(&e))?;
        let address = cluster.bootstrap_servers();
        drop(cluster);
        Ok(Self {
            _client: client,
            address,
            budget,
        })
    }

    /// The bootstrap address clients connect to, e.g. `127.0.0.1:39341`.
    pub fn bootstrap_servers(&self) -> String {
        self.address.clone()
    }

    /// What each partition keeps before the oldest messages are deleted.
    pub fn budget(&self) -> LogBudget {
        self.budget
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // Everything delivered is in the broker's log by now; let consumers take it before the
        // cluster (dropped with the client after this) closes its port. A second Ctrl-C still
        // exits at once.
        std::thread::sleep(DRAIN_GRACE);
    }
}
