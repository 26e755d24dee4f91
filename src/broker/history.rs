//! Whether a broker still holds what `sim` wrote: a watch that reports the moment a partition's
//! first offset moves (a size cap or retention deleted its oldest messages), and a check of a
//! topic's retention against the backfill window.
//!
//! Brokers delete from the start of a partition: librdkafka's mock cluster beyond its log limit,
//! Kafka when `retention.ms` or `retention.bytes` is passed. The producer is not told (its
//! messages were delivered), so the watch asks the broker for each partition's first offset
//! every second and reports each move as a [`Deletion`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use crate::kafka::KafkaClientError;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::sink::{SinkError, KAFKA_HINTS};

/// How often the watch asks for first offsets (and counts deletions in the metrics).
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// After the first report, deletions are gathered and reported at most this often (the status
/// line counts them every second), so a broker deleting all the time does not flood the terminal.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);

/// How long one request for offsets may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The partition.
    pub partition: i32,
    /// Its first offset: the oldest message the broker still holds (0 when it deleted none).
    pub first: i64,
    /// Its end offset: the next message's.
    pub end: i64,
}

impl PartitionOffsets {
    /// Partitions 0, 1, ... with these first offsets and one end offset: test topics.
    #[cfg(test)]
    pub(crate) fn numbered(first: &[i64], end: i64) -> Vec<Self> {
        first
            .iter()
            .enumerate()
            .map(|(p, &first)| Self {
                partition: p as i32,
                first,
                end,
            })
            .collect()
    }
}

/// First and end offsets of every partition of `topic`, in partition order.
pub fn partition_offsets<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<Vec<PartitionOffsets>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions.sort_unstable();
    partitions
        .into_iter()
        .map(|partition| {
            let (first, end) = client.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
            Ok(PartitionOffsets {
                partition,
                first,
                end,
            })
        })
        .collect()
}

/// Messages deleted from the start of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionDeletion {
    /// The partition.
    pub partition: i32,
    /// Messages deleted since the last report (offsets the first offset moved by).
    pub deleted: u64,
    /// The partition's first offset now.
    pub first_offset: i64,
}

/// Messages a broker deleted from the start of a topic's partitions while `sim` was writing to
/// it: delivered, and gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The topic.
    pub topic: String,
    /// The partitions that lost messages since the last report.
    pub partitions: Vec<PartitionDeletion>,
    /// Messages deleted from the topic since `sim` started, all partitions.
    pub deleted_in_run: u64,
    /// Whether this is the first report of the run (later ones gather [`REPORT_EVERY`]).
    pub first: bool,
    /// The embedded broker's log limit a partition, bytes; `None` for a real cluster, whose
    /// topic's retention decides.
    pub log_limit: Option<u64>,
}

impl Deletion {
    /// Messages deleted since the last report, all partitions.
    pub fn deleted(&self) -> u64 {
        self.partitions.iter().map(|p| p.deleted).sum()
    }
}

/// Receives each [`Deletion`] as the watch reports it, on the watch's thread.
pub type DeletionReporter = Box<dyn FnMut(Deletion) + Send>;

/// A thread that reports deletions from a topic until dropped.
pub struct HistoryWatch {
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWatch {
    /// Starts watching `topic` through a client made from `config` (see [`watch_config`]),
    /// counting deletions in `metrics` every [`WATCH_EVERY`] and reporting them: at once the
    /// first time, then gathered every [`REPORT_EVERY`], and once more when dropped. The first
    /// offsets seen now (or at the broker's first answer) are the baseline: only later moves
    /// are deletions.
    pub fn start(
        config: &ClientConfig,
        topic: &str,
        log_limit: Option<u64>,
        metrics: Arc<Metrics>,
        mut report: DeletionReporter,
    ) -> Result<Self, SinkError> {
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| SinkError::from(KafkaClientError::config(e, &KAFKA_HINTS)))?;
        // When the broker does not answer now, the first answer in the thread is the baseline.
        let baseline = partition_offsets(consumer.client(), topic).unwrap_or_default();
        let stop = Shutdown::new();
        let signal = stop.clone();
        let topic = topic.to_string();
        let thread = std::thread::spawn(move || {
            let mut seen = FirstOffsets::new(baseline);
            let mut gathered: BTreeMap<i32, PartitionDeletion> = BTreeMap::new();
            let (mut deleted_in_run, mut reports, mut last_report) = (0, 0, Instant::now());
            loop {
                let stopping = signal.wait(WATCH_EVERY);
                // A failed request is retried at the next tick: first offsets only grow, so a
                // missed tick's deletions are seen at the next one.
                if let Ok(now) = partition_offsets(consumer.client(), &topic) {
                    for d in seen.update(&now) {
                        metrics.deleted_by_broker(d.deleted);
                        deleted_in_run += d.deleted;
                        let entry = gathered
                            .entry(d.partition)
                            .or_insert(PartitionDeletion { deleted: 0, ..d });
                        entry.deleted += d.deleted;
                        entry.first_offset = d.first_offset;
                    }
                }
                let due = reports == 0 || stopping || last_report.elapsed() >= REPORT_EVERY;
                if due && !gathered.is_empty() {
                    report(Deletion {
                        topic: topic.clone(),
                        partitions: std::mem::take(&mut gathered).into_values().collect(),
                        deleted_in_run,
                        first: reports == 0,
                        log_limit,
                    });
                    reports += 1;
                    last_report = Instant::now();
                }
                if stopping {
                    break;
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for HistoryWatch {
    fn drop(&mut self) {
        // One last look (the thread looks once more after the signal), so deletions up to the
        // final flush are reported before the account.
        self.stop.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The first offsets last seen.
struct FirstOffsets {
    last: BTreeMap<i32, i64>,
}

impl FirstOffsets {
    fn new(baseline: Vec<PartitionOffsets>) -> Self {
        // A partition missing here (added later, or no answer yet) takes its first look as its
        // baseline in `update`.
        Self {
            last: baseline.iter().map(|p| (p.partition, p.first)).collect(),
        }
    }

    /// How far each partition's first offset moved since the last look.
    fn update(&mut self, now: &[PartitionOffsets]) -> Vec<PartitionDeletion> {
        let mut moved = Vec::new();
        for current in now {
            let last = self.last.entry(current.partition).or_insert(current.first);
            if current.first > *last {
                moved.push(PartitionDeletion {
                    partition: current.partition,
                    deleted: (current.first - *last) as u64,
                    first_offset: current.first,
                });
                *last = current.first;
            }
        }
        moved
    }
}

/// A client configuration for watching: `brokers`, and those of the user's librdkafka
/// `properties` that are about reaching the cluster (security, SASL, TLS, sockets), not the
/// producer's own.
pub fn watch_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    let connection = [
        "security.",
        "sasl.",
        "ssl.",
        "client.",
        "socket.",
        "broker.",
    ];
    for (key, value) in properties {
        if connection.iter().any(|prefix| key.starts_with(prefix)) {
            config.set(key, value);
        }
    }
    config
}

/// A topic whose retention is shorter than the backfill window written into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortRetention {
    /// The topic.
    pub topic: String,
    /// Its `retention.ms`.
    pub retention_ms: i64,
    /// The backfill window, milliseconds.
    pub window_ms: i64,
}

/// Checks `topic`'s `retention.ms` against a backfill `window_ms`: `Some` when the broker will
/// delete backfilled events because they are older than its retention (at the latest when it
/// rolls the segment holding them). `None` when the retention covers the window, or when the
/// broker does not say (the watch still reports deletions).
pub fn check_retention(
    config: &ClientConfig,
    topic: &str,
    window_ms: i64,
) -> Option<ShortRetention> {
    let admin: AdminClient<DefaultClientContext> = config.create().ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok()?;
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let results = runtime
        .block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options))
        .ok()?;
    let resource = results.into_iter().next()?.ok()?;
    let retention_ms: i64 = resource
        .get("retention.ms")?
        .value
        .as_deref()?
        .parse()
        .ok()?;
    // -1: kept for ever.
    (retention_ms >= 0 && retention_ms <= window_ms).then(|| ShortRetention {
        topic: topic.to_string(),
        retention_ms,
        window_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(first: &[i64]) -> Vec<PartitionOffsets> {
        PartitionOffsets::numbered(first, 10_000)
    }

    #[test]
    fn a_moved_first_offset_is_counted_once() {
        let mut seen = FirstOffsets::new(offsets(&[0, 5, 0]));
        assert!(seen.update(&offsets(&[0, 5, 0])).is_empty());
        let moved = seen.update(&offsets(&[0, 15, 0]));
        assert_eq!(
            moved,
            vec![PartitionDeletion {
                partition: 1,
                deleted: 10,
                first_offset: 15
            }]
        );
        assert!(seen.update(&offsets(&[0, 15, 0])).is_empty());
        let moved: Vec<(i32, u64)> = seen
            .update(&offsets(&[3, 20, 0]))
            .iter()
            .map(|d| (d.partition, d.deleted))
            .collect();
        assert_eq!(moved, vec![(0, 3), (1, 5)]);
    }
}
