//! The analyzer's metrics (`sim analyze --metrics`), read from [`AnalyzeFigures`] at each
//! scrape, and its readiness.
//!
//! The run loop adds to two atomics per message and publishes the rest a few times a second
//! (see [`crate::analyze::figures`]); a scrape reads what is there and never waits for the loop.
//! Every series is labelled with the topic and the consumer group, so several analyzers (or
//! groups) scraped by one Prometheus stay apart.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::client::client_families;
use super::families::{with, Families, Labels};
use crate::analyze::figures::{AnalyzeFigures, ConsumerState, RuleRates};

/// What a scrape of `sim analyze` reads.
#[derive(Debug)]
pub struct AnalyzerCollector {
    figures: Arc<AnalyzeFigures>,
    labels: Labels,
}

impl AnalyzerCollector {
    /// Reads `figures`, labelling every series with the topic and the consumer group.
    pub fn new(figures: Arc<AnalyzeFigures>, topic: &str, group: &str) -> Self {
        Self {
            figures,
            labels: vec![("topic", topic.into()), ("group", group.into())],
        }
    }

    fn families(&self, out: &mut Families<'_>) -> fmt::Result {
        let figures = &self.figures;
        let labels = &self.labels;
        let snapshot = figures.snapshot();
        out.counter(
            "sim_analyze_events",
            "Messages consumed and read as transactions.",
            &[(labels.clone(), figures.events())],
        )?;
        out.counter(
            "sim_analyze_poison",
            "Messages consumed that could not be read as transactions (skipped).",
            &[(labels.clone(), figures.poison_total())],
        )?;
        let per_rule = |values: &mut dyn Iterator<Item = (&String, u64)>| -> Vec<(Labels, u64)> {
            values
                .map(|(rule, n)| (with(labels, "rule", rule.as_str()), n))
                .collect()
        };
        out.counter(
            "sim_analyze_alerts",
            "Alerts raised, by detection rule.",
            &per_rule(&mut snapshot.alerts_by_rule.iter().map(|(r, n)| (r, *n))),
        )?;
        // Every rule at 0 until it fails, so an alert on its rate has a series from the start.
        let mut errors = snapshot.rule_errors.clone();
        for rule in snapshot.alerts_by_rule.keys() {
            errors.entry(rule.clone()).or_default();
        }
        out.counter(
            "sim_analyze_rule_errors",
            "Events a detection rule failed on (Rhai runtime errors), by rule.",
            &per_rule(&mut errors.iter().map(|(r, n)| (r, *n))),
        )?;
        // Scores only mean something against the ground truth; without it the families are
        // left out rather than shown as 0, which would read as "detects nothing".
        if snapshot.labelled {
            let score = |pick: fn(&RuleRates) -> Option<f64>| {
                snapshot
                    .scores
                    .iter()
                    .filter_map(|(rule, s)| Some((with(labels, "rule", rule.as_str()), pick(s)?)))
                    .collect::<Vec<_>>()
            };
            out.gauge(
                "sim_analyze_precision",
                "Of the events a rule flagged, the share that are fraud (per the fraud_pattern header).",
                &score(|s| s.precision),
            )?;
            out.gauge(
                "sim_analyze_recall",
                "Of the fraud events (per the fraud_pattern header), the share a rule flagged.",
                &score(|s| s.recall),
            )?;
        }
        let kinds = |(tumbling, sliding): (u64, u64)| {
            [
                (with(labels, "kind", "tumbling"), tumbling),
                (with(labels, "kind", "sliding"), sliding),
            ]
        };
        out.counter(
            "sim_analyze_windows_closed",
            "Event-time windows closed (final), by kind.",
            &kinds(snapshot.windows_closed),
        )?;
        let open = kinds(snapshot.windows_open).map(|(l, n)| (l, n as f64));
        out.gauge(
            "sim_analyze_windows_open",
            "Event-time windows open now (still taking events), by kind.",
            &open,
        )?;
        if let Some(watermark) = snapshot.watermark_ms {
            out.gauge(
                "sim_analyze_watermark_seconds",
                "The event-time watermark, seconds since the Unix epoch.",
                &[(labels.clone(), watermark as f64 / 1000.0)],
            )?;
        }
        out.counter(
            "sim_analyze_late_events",
            "Events behind the watermark: still counted in their window (accepted) or too late (dropped).",
            &[
                (with(labels, "result", "accepted"), snapshot.lateness.accepted),
                (with(labels, "result", "dropped"), snapshot.lateness.dropped),
            ],
        )?;
        out.counter(
            "sim_analyze_commits",
            "Batches committed (outputs published, then offsets; or one transaction).",
            &[(labels.clone(), snapshot.commits)],
        )?;
        let assigned = snapshot.assigned.as_ref().map_or(0, Vec::len);
        out.gauge(
            "sim_analyze_assigned_partitions",
            "Partitions of the topic this member of the group holds.",
            &[(labels.clone(), assigned as f64)],
        )?;
        client_families(out, labels, figures.latest_stats().as_ref())
    }
}

impl Collector for AnalyzerCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.families(&mut Families::new(encoder))
    }
}

/// Whether the analyzer is ready, or why not: it is consuming, and either holds partitions or
/// reaches a broker (a member given no partition, with more members than partitions, is
/// healthy and waits for a rebalance).
pub fn analyzer_readiness(figures: &AnalyzeFigures) -> Result<(), String> {
    let snapshot = figures.snapshot();
    match snapshot.state {
        ConsumerState::Starting => return Err("the consumer has not subscribed yet".into()),
        ConsumerState::Stopped => return Err("the consumer has stopped".into()),
        ConsumerState::Consuming => {}
    }
    if snapshot.assigned.as_ref().is_some_and(|p| !p.is_empty()) {
        return Ok(());
    }
    match figures.latest_stats() {
        Some(stats) if stats.any_broker_up() => Ok(()),
        Some(stats) => {
            let states: Vec<String> = stats
                .brokers
                .iter()
                .map(|b| format!("{} {}", b.name, b.state))
                .collect();
            Err(format!(
                "no partition assigned and no broker connection is up ({})",
                states.join(", ")
            ))
        }
        None => Err("no partition assigned yet, and no statistics from librdkafka yet".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::figures::FiguresSnapshot;

    #[test]
    fn ready_only_while_consuming_with_partitions_and_the_reason_otherwise() {
        let figures = AnalyzeFigures::default();
        assert!(analyzer_readiness(&figures)
            .unwrap_err()
            .contains("not subscribed"));
        figures.publish(FiguresSnapshot {
            state: ConsumerState::Consuming,
            ..FiguresSnapshot::default()
        });
        assert!(analyzer_readiness(&figures)
            .unwrap_err()
            .contains("no partition assigned"));
        figures.publish(FiguresSnapshot {
            state: ConsumerState::Consuming,
            assigned: Some(vec![0, 2]),
            ..FiguresSnapshot::default()
        });
        assert_eq!(analyzer_readiness(&figures), Ok(()));
        figures.set_state(ConsumerState::Stopped);
        assert!(analyzer_readiness(&figures)
            .unwrap_err()
            .contains("stopped"));
    }

    fn rates(precision: Option<f64>, recall: Option<f64>) -> RuleRates {
        RuleRates { precision, recall }
    }

    fn exposition(figures: Arc<AnalyzeFigures>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(AnalyzerCollector::new(figures, "t", "g")));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn scores_are_shown_only_against_the_ground_truth_and_undefined_ones_left_out() {
        let figures = Arc::new(AnalyzeFigures::default());
        let mut snapshot = FiguresSnapshot {
            alerts_by_rule: [("velocity".to_string(), 2)].into(),
            scores: [
                ("velocity".to_string(), rates(Some(0.5), Some(0.25))),
                ("quiet".to_string(), rates(None, Some(0.0))),
            ]
            .into(),
            ..FiguresSnapshot::default()
        };
        figures.publish(snapshot.clone());
        figures.event();
        let text = exposition(figures.clone());
        assert!(text.contains(r#"sim_analyze_events_total{topic="t",group="g"} 1"#));
        assert!(text.contains(r#"sim_analyze_alerts_total{topic="t",group="g",rule="velocity"} 2"#));
        assert!(text
            .contains(r#"sim_analyze_rule_errors_total{topic="t",group="g",rule="velocity"} 0"#));
        assert!(!text.contains("sim_analyze_precision"), "{text}");
        snapshot.labelled = true;
        figures.publish(snapshot);
        let text = exposition(figures);
        assert!(text.contains(r#"sim_analyze_precision{topic="t",group="g",rule="velocity"} 0.5"#));
        assert!(!text.contains(r#"sim_analyze_precision{topic="t",group="g",rule="quiet"}"#));
        assert!(text.contains(r#"sim_analyze_recall{topic="t",group="g",rule="quiet"} 0.0"#));
    }
}
