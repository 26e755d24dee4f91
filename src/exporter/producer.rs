//! The producer's metrics (`sim run`, `sim backfill`), read from [`Metrics`] at each scrape, and
//! its readiness.
//!
//! Nothing here runs per event: the pipeline and the sink update atomics as they do for the
//! status line, and a scrape reads them. So the counters are the ones the final account is made
//! of, and agree with it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::client::client_families;
use super::families::{with, Families, Labels};
use super::rate::RateWindow;
use crate::metrics::Metrics;

/// How long records may wait with no delivery report at all before the producer is not ready:
/// a broker that is up answers within milliseconds.
pub const DELIVERY_STALL: Duration = Duration::from_secs(5);

/// The failure kind every scrape shows, at 0 until it happens: a broker that takes nothing
/// fails messages this way, and a dashboard's query then has a series to draw from the start.
const TIMED_OUT: &str = "message_timed_out";

/// What a scrape of `sim run` or `sim backfill` reads.
#[derive(Debug)]
pub struct ProducerCollector {
    metrics: Arc<Metrics>,
    labels: Labels,
    achieved: RateWindow,
}

impl ProducerCollector {
    /// Reads `metrics`, labelling every series with the scenario and the topic. Events are
    /// timed from now on, for `sim_event_seconds`.
    pub fn new(metrics: Arc<Metrics>, scenario: &str, topic: &str) -> Self {
        metrics.timings.time_events();
        let achieved = RateWindow::starting_at(metrics.events());
        Self {
            metrics,
            labels: vec![("scenario", scenario.into()), ("topic", topic.into())],
            achieved,
        }
    }

    fn families(&self, out: &mut Families<'_>) -> fmt::Result {
        let m = &self.metrics;
        let labels = &self.labels;
        let one = |value: u64| [(labels.clone(), value)];
        let gauge = |value: f64| [(labels.clone(), value)];
        let account = m.delivery.account();
        out.counter(
            "sim_events",
            "Events made and handed to the sink.",
            &one(m.events()),
        )?;
        out.counter(
            "sim_delivered",
            "Events the broker (or the file) confirmed.",
            &one(account.delivered),
        )?;
        let mut kinds = m.delivery.failures_by_kind();
        if !kinds.iter().any(|(kind, _)| kind == TIMED_OUT) {
            kinds.push((TIMED_OUT.into(), 0));
        }
        let failed: Vec<(Labels, u64)> = kinds
            .into_iter()
            .map(|(kind, count)| (with(labels, "reason", kind), count))
            .collect();
        out.counter(
            "sim_failed",
            "Events whose delivery failed, by reason (librdkafka's error code).",
            &failed,
        )?;
        out.gauge(
            "sim_in_flight",
            "Events handed to the producer and not yet delivered or failed.",
            &gauge(account.in_flight() as f64),
        )?;
        out.gauge(
            "sim_target_rate",
            "Events per second the rate curve asks for now.",
            &gauge(m.target_per_second()),
        )?;
        out.gauge(
            "sim_achieved_rate",
            "Events per second made over the last 10 seconds.",
            &gauge(self.achieved.rate(m.events())),
        )?;
        out.histogram(
            "sim_schedule_lag_seconds",
            "How late live events are handed to the sink against their deadlines.",
            labels,
            &m.timings.lag.snapshot(),
        )?;
        out.histogram(
            "sim_event_seconds",
            "Time in the script (and encoding) per event made.",
            labels,
            &m.timings.event.snapshot(),
        )?;
        out.counter(
            "sim_script_errors",
            "Events skipped because their script failed (on_error = skip).",
            &one(m.script_errors()),
        )?;
        out.counter(
            "sim_reloads",
            "Edits of the script: accepted (swapped in) or rejected (the running revision kept).",
            &[
                (with(labels, "result", "accepted"), m.reloads()),
                (with(labels, "result", "rejected"), m.rejections()),
            ],
        )?;
        out.counter(
            "sim_rollbacks",
            "Reloaded revisions rolled back because their events failed.",
            &one(m.rollbacks()),
        )?;
        out.gauge(
            "sim_script_revision",
            "The revision of the script now running: 1, then one more per accepted reload.",
            &gauge(m.revision() as f64),
        )?;
        out.gauge(
            "sim_follow_ups_pending",
            "Follow-ups the scenario scheduled that are not made yet.",
            &gauge(m.pending_follow_ups() as f64),
        )?;
        out.gauge(
            "sim_workers",
            "Script workers making events.",
            &gauge(m.workers() as f64),
        )?;
        let (_, again) = m.ahead_and_again();
        out.counter(
            "sim_remade",
            "Events made ahead by a worker and made again in turn (they read memory an earlier event changed).",
            &one(again),
        )?;
        out.counter(
            "sim_deleted_by_broker",
            "Delivered messages the broker deleted from the start of the topic (size cap or retention).",
            &one(m.deleted()),
        )?;
        if let Some(group) = m.group.snapshot() {
            let labels = with(labels, "group", group.name.clone());
            let gauge = |value: u64| [(labels.clone(), value as f64)];
            let one = |value: u64| [(labels.clone(), value)];
            out.gauge(
                "sim_group_shards",
                "Shards the group's timeline is cut into (--group).",
                &gauge(group.shards),
            )?;
            out.gauge(
                "sim_group_shards_owned",
                "Shards of the group's timeline this instance makes now.",
                &gauge(group.owned),
            )?;
            out.counter(
                "sim_group_arrivals_made",
                "Arrivals of the group's timeline this instance made.",
                &one(group.made),
            )?;
            out.gauge(
                "sim_group_timeline_arrivals",
                "Arrivals of the group's timeline so far, made by the whole group.",
                &gauge(group.timeline),
            )?;
            out.counter(
                "sim_group_rebalances",
                "Rebalances that moved shards to or from this instance.",
                &one(group.rebalances),
            )?;
        }
        client_families(out, labels, m.client_stats().as_ref())
    }
}

impl Collector for ProducerCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.families(&mut Families::new(encoder))
    }
}

/// Whether the producer is ready, or why not: the scenario streams and the broker takes what
/// it is given.
pub fn producer_readiness(metrics: &Metrics) -> Result<(), String> {
    if !metrics.streaming() {
        return Err("the scenario is not streaming yet".into());
    }
    if let Some(stats) = metrics.client_stats() {
        if !stats.any_broker_up() {
            let states: Vec<String> = stats
                .brokers
                .iter()
                .map(|b| format!("{} {}", b.name, b.state))
                .collect();
            return Err(format!(
                "no broker connection is up ({})",
                states.join(", ")
            ));
        }
    }
    let in_flight = metrics.delivery.account().in_flight();
    if let Some(silent) = metrics.delivery.unanswered_for() {
        if in_flight > 0 && silent >= DELIVERY_STALL {
            return Err(format!(
                "the broker answered nothing for {} s, {in_flight} events in flight",
                silent.as_secs()
            ));
        }
    }
    if let Some(waited) = metrics.delivery.waiting_for() {
        if waited >= DELIVERY_STALL {
            return Err(format!(
                "the producer's queue is full: waiting {} s for the broker",
                waited.as_secs()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_is_ready_once_it_streams_and_every_record_was_answered() {
        let metrics = Metrics::default();
        assert_eq!(
            producer_readiness(&metrics),
            Err("the scenario is not streaming yet".into())
        );
        metrics.set_streaming(true);
        metrics.delivery.produced();
        // Sent a moment ago: a broker has milliseconds to answer before it counts as silent.
        assert_eq!(producer_readiness(&metrics), Ok(()));
        metrics.delivery.delivered();
        assert_eq!(producer_readiness(&metrics), Ok(()));
        metrics.set_streaming(false);
        assert!(producer_readiness(&metrics).is_err());
    }
}
