//! The families of librdkafka's own view of a client ([`StatsSnapshot`]), shared by the
//! producer's and the analyzer's endpoints: per broker, its state, round-trip time, request
//! queues and latencies; the client's message queue; a consumer's lag per partition.

use std::fmt;

use super::families::{with, Families, Labels};
use crate::kafka::stats::{BrokerView, Latency, StatsSnapshot};

/// Writes the client families from the latest statistics report; nothing before the first.
pub fn client_families(
    out: &mut Families<'_>,
    labels: &Labels,
    stats: Option<&StatsSnapshot>,
) -> fmt::Result {
    let Some(stats) = stats else {
        return Ok(());
    };
    let per_broker = |value: &dyn Fn(&BrokerView) -> Option<f64>| -> Vec<(Labels, f64)> {
        stats
            .brokers
            .iter()
            .filter_map(|b| Some((with(labels, "broker", &b.name), value(b)?)))
            .collect()
    };
    let avg = |latency: Option<Latency>| latency.map(|l| l.avg);
    out.gauge(
        "sim_kafka_broker_up",
        "Whether librdkafka's connection to the broker is up (1) or not (0).",
        &per_broker(&|b| Some(f64::from(u8::from(b.is_up())))),
    )?;
    out.gauge(
        "sim_kafka_broker_rtt_seconds",
        "Request round-trip time to the broker, mean over librdkafka's last statistics interval.",
        &per_broker(&|b| avg(b.rtt)),
    )?;
    out.gauge(
        "sim_kafka_broker_rtt_p99_seconds",
        "Request round-trip time to the broker, 99th percentile over the last interval.",
        &per_broker(&|b| b.rtt.map(|l| l.p99)),
    )?;
    out.gauge(
        "sim_kafka_broker_request_latency_seconds",
        "How long a request waits in the send buffer before it goes to the broker (mean).",
        &per_broker(&|b| avg(b.request_latency)),
    )?;
    out.gauge(
        "sim_kafka_broker_queue_latency_seconds",
        "How long a message waits in the producer's queue before it is sent (mean).",
        &per_broker(&|b| avg(b.queue_latency)),
    )?;
    out.gauge(
        "sim_kafka_broker_outbuf_requests",
        "Requests waiting to be sent to the broker.",
        &per_broker(&|b| Some(b.outbuf_requests as f64)),
    )?;
    out.gauge(
        "sim_kafka_broker_waiting_requests",
        "Requests sent to the broker and waiting for its answer.",
        &per_broker(&|b| Some(b.waiting_requests as f64)),
    )?;
    let timeouts: Vec<(Labels, u64)> = stats
        .brokers
        .iter()
        .map(|b| (with(labels, "broker", &b.name), b.request_timeouts))
        .collect();
    out.counter(
        "sim_kafka_broker_request_timeouts",
        "Requests to the broker that timed out.",
        &timeouts,
    )?;
    out.gauge(
        "sim_kafka_queue_messages",
        "Messages in librdkafka's queue (waiting or in flight).",
        &[(labels.clone(), stats.queue_messages as f64)],
    )?;
    out.gauge(
        "sim_kafka_queue_bytes",
        "Bytes of the messages in librdkafka's queue.",
        &[(labels.clone(), stats.queue_bytes as f64)],
    )?;
    out.gauge(
        "sim_kafka_stats_age_seconds",
        "How old librdkafka's latest statistics report is (it comes every statistics.interval.ms).",
        &[(labels.clone(), stats.taken.elapsed().as_secs_f64())],
    )?;
    // Each partition names its own topic.
    let base: Labels = labels
        .iter()
        .filter(|(k, _)| *k != "topic")
        .cloned()
        .collect();
    let lags: Vec<(Labels, f64)> = stats
        .partitions
        .iter()
        .filter_map(|p| {
            let labels = with(
                &with(&base, "topic", &p.topic),
                "partition",
                p.partition.to_string(),
            );
            Some((labels, p.lag? as f64))
        })
        .collect();
    if !lags.is_empty() {
        out.gauge(
            "sim_kafka_consumer_lag",
            "Messages between the consumer's position and the end of the partition.",
            &lags,
        )?;
    }
    Ok(())
}
