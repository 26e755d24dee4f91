//! What librdkafka says of its own client, every `statistics.interval.ms`: the state of each
//! broker connection, its round-trip time and request queues, the producer's message queue and a
//! consumer's lag per partition. A client's context records the latest report here; the metrics
//! endpoint reads it at each scrape and `/readyz` asks it whether a broker is up.

use std::sync::Mutex;
use std::time::Instant;

use rdkafka::statistics::{Statistics, Window};

use crate::sync::lock;

/// How often librdkafka reports its statistics when a metrics endpoint reads them and the user
/// set no `statistics.interval.ms`: once a second, as often as a scrape needs.
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// A latency window of librdkafka, in seconds (it reports microseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The mean over the last interval.
    pub avg: f64,
    /// The 99th percentile over the last interval.
    pub p99: f64,
}

impl Latency {
    fn of(window: &Option<Window>) -> Option<Self> {
        window.as_ref().filter(|w| w.cnt > 0).map(|w| Self {
            avg: w.avg as f64 / 1e6,
            p99: w.p99 as f64 / 1e6,
        })
    }
}

/// One broker connection as librdkafka saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    /// `host:port/id`, librdkafka's name for it.
    pub name: String,
    /// Its node id.
    pub node_id: i32,
    /// `UP`, `DOWN`, `CONNECT`, ...
    pub state: String,
    /// Request round-trip time.
    pub rtt: Option<Latency>,
    /// How long a message waits in the producer's queue before it is sent.
    pub queue_latency: Option<Latency>,
    /// How long a request waits in the send buffer.
    pub request_latency: Option<Latency>,
    /// Requests waiting to be sent.
    pub outbuf_requests: i64,
    /// Requests sent and waiting for their answer.
    pub waiting_requests: i64,
    /// Requests that timed out, since the client started.
    pub request_timeouts: u64,
}

impl BrokerView {
    /// Whether the connection is up and carries requests.
    pub fn is_up(&self) -> bool {
        self.state == "UP"
    }
}

/// One partition a consumer reads, as librdkafka saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// librdkafka's consumer lag: messages between the group's committed offset and the end of
    /// the partition; `None` until librdkafka knows both.
    pub lag: Option<i64>,
    /// Messages the consumer has still to read: from the next one it will hand to the
    /// application (the log's start before the first) to the end of what is stable; `None`
    /// until librdkafka knows the end.
    pub unread: Option<i64>,
}

/// Messages of a partition the consumer has still to read, as of this report.
fn unread(p: &rdkafka::statistics::Partition) -> Option<i64> {
    // The last stable offset is the end a consumer reads to (the high watermark when no
    // transaction is open).
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    let from = [p.app_offset, p.lo_offset].into_iter().find(|&o| o >= 0)?;
    (end >= 0).then(|| (end - from).max(0))
}

/// One statistics report.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// When it arrived.
    pub taken: Instant,
    /// Messages in the producer's queue (or a consumer's fetch queue), sent or not.
    pub queue_messages: u64,
    /// Their bytes.
    pub queue_bytes: u64,
    /// The cluster's brokers (librdkafka's bootstrap and internal entries left out).
    pub brokers: Vec<BrokerView>,
    /// The partitions a consumer reads.
    pub partitions: Vec<PartitionView>,
}

impl StatsSnapshot {
    /// Reads librdkafka's report.
    pub fn from_statistics(stats: &Statistics) -> Self {
        let mut brokers: Vec<BrokerView> = stats
            .brokers
            .values()
            // Node -1 is a bootstrap address or librdkafka's internal queue, not a broker.
            .filter(|b| b.nodeid >= 0)
            .map(|b| BrokerView {
                name: b.name.clone(),
                node_id: b.nodeid,
                state: b.state.clone(),
                rtt: Latency::of(&b.rtt),
                queue_latency: Latency::of(&b.int_latency),
                request_latency: Latency::of(&b.outbuf_latency),
                outbuf_requests: b.outbuf_cnt,
                waiting_requests: b.waitresp_cnt,
                request_timeouts: b.req_timeouts,
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        let mut partitions: Vec<PartitionView> = stats
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .values()
                    // -1 is librdkafka's unassigned partition; only the ones read have a lag.
                    .filter(|p| p.partition >= 0 && p.desired)
                    .map(|p| PartitionView {
                        topic: topic.topic.clone(),
                        partition: p.partition,
                        lag: (p.consumer_lag >= 0).then_some(p.consumer_lag),
                        unread: unread(p),
                    })
            })
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Self {
            taken: Instant::now(),
            queue_messages: stats.msg_cnt,
            queue_bytes: stats.msg_size,
            brokers,
            partitions,
        }
    }

    /// Whether a broker connection is up. A client that knows no broker yet counts as down.
    pub fn any_broker_up(&self) -> bool {
        self.brokers.iter().any(BrokerView::is_up)
    }
}

/// The latest statistics report of one client, shared between librdkafka's thread (which
/// records) and the metrics endpoint (which reads).
#[derive(Debug, Default)]
pub struct ClientStats {
    latest: Mutex<Option<StatsSnapshot>>,
}

impl ClientStats {
    /// Keeps `stats` as the latest report.
    pub fn record(&self, stats: &Statistics) {
        self.keep(StatsSnapshot::from_statistics(stats));
    }

    /// Keeps `snapshot`, a report already read, as the latest.
    pub fn keep(&self, snapshot: StatsSnapshot) {
        *lock(&self.latest) = Some(snapshot);
    }

    /// The latest report, if one came.
    pub fn latest(&self) -> Option<StatsSnapshot> {
        lock(&self.latest).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as librdkafka writes it (trimmed to what is read, and what `Statistics` needs).
    fn report(state: &str) -> Statistics {
        let json = serde_json::json!({
            "name": "rdkafka#producer-1", "client_id": "rdkafka", "type": "producer",
            "ts": 1, "time": 1, "age": 1, "replyq": 0, "msg_cnt": 42, "msg_size": 4200,
            "msg_max": 100000, "msg_size_max": 268435456, "simple_cnt": 0, "metadata_cache_cnt": 1,
            "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0, "txmsgs": 0, "txmsg_bytes": 0,
            "rxmsgs": 0, "rxmsg_bytes": 0,
            "brokers": {
                "127.0.0.1:9092/1": broker("127.0.0.1:9092/1", 1, state),
                "127.0.0.1:9092/bootstrap": broker("127.0.0.1:9092/bootstrap", -1, "UP"),
            },
            "topics": {},
        });
        serde_json::from_value(json).unwrap()
    }

    fn broker(name: &str, id: i32, state: &str) -> serde_json::Value {
        let window = serde_json::json!({
            "min": 100, "max": 9000, "avg": 2500, "sum": 25000, "cnt": 10, "stddev": 1,
            "hdrsize": 1, "p50": 2000, "p75": 3000, "p90": 5000, "p95": 7000, "p99": 9000,
            "p99_99": 9000, "outofrange": 0,
        });
        serde_json::json!({
            "name": name, "nodeid": id, "nodename": "127.0.0.1:9092", "source": "learned",
            "state": state, "stateage": 1, "outbuf_cnt": 3, "outbuf_msg_cnt": 3,
            "waitresp_cnt": 2, "waitresp_msg_cnt": 2, "tx": 1, "txbytes": 1, "txerrs": 0,
            "txretries": 0, "txidle": 0, "rxidle": 0, "req_timeouts": 4, "rx": 1, "rxbytes": 1, "rxerrs": 0,
            "rxcorriderrs": 0, "rxpartial": 0, "zbuf_grow": 0, "buf_grow": 0, "req": {},
            "toppars": {}, "rtt": window, "int_latency": window, "outbuf_latency": window,
        })
    }

    #[test]
    fn brokers_are_read_without_bootstrap_entries_and_latencies_in_seconds() {
        let snapshot = StatsSnapshot::from_statistics(&report("UP"));
        assert_eq!(snapshot.queue_messages, 42);
        assert_eq!(snapshot.brokers.len(), 1);
        let broker = &snapshot.brokers[0];
        assert_eq!(broker.node_id, 1);
        assert_eq!(
            broker.rtt,
            Some(Latency {
                avg: 0.0025,
                p99: 0.009
            })
        );
        assert_eq!((broker.outbuf_requests, broker.waiting_requests), (3, 2));
        assert_eq!(broker.request_timeouts, 4);
        assert!(snapshot.any_broker_up());
    }

    #[test]
    fn a_client_whose_brokers_are_down_has_none_up_even_with_a_bootstrap_entry_up() {
        assert!(!StatsSnapshot::from_statistics(&report("DOWN")).any_broker_up());
        let stats = ClientStats::default();
        assert!(stats.latest().is_none());
        stats.record(&report("CONNECT"));
        assert!(!stats.latest().unwrap().any_broker_up());
    }
}
