//! The summary printed at exit: one JSON object (`--format json`) or a few lines of text.
//!
//! The JSON's top-level keys are `merchant_counts`, `category_revenue`, `windows`, `alerts` and
//! `detection` (the contract), plus `method_revenue`, `events`, `poison`, `run`, and
//! `shape` (what the report draws: see [`super::shape`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use super::aggregate::{sorted, Totals};
use super::analyzer::Analyzer;
use super::detect::Alert;
use super::score::Detection;
use super::shape::ShapeSummary;
use super::window::WindowStats;

/// How a run went, besides the figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunInfo {
    /// The input topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// Whether outputs and offsets were committed in transactions.
    pub exactly_once: bool,
    /// Messages consumed (transactions and poison).
    pub consumed: u64,
    /// Messages read as transactions, by the encoding of their value.
    pub encodings: super::avro::Encodings,
    /// Offset commits (or transactions) made.
    pub commits: u64,
    /// Seconds from start to exit.
    pub elapsed_s: f64,
    /// Seconds from the first message read to the last: the time spent reading, without the
    /// group's join before it nor, with `--until-idle`, the idle wait after it.
    pub reading_s: f64,
}

impl RunInfo {
    /// Messages read a second between the first message and the last; `None` with fewer than
    /// two messages.
    pub fn reading_rate(&self) -> Option<f64> {
        (self.consumed > 1 && self.reading_s > 0.0)
            .then(|| (self.consumed - 1) as f64 / self.reading_s)
    }
}

/// Everything `sim analyze` reports at exit.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Transactions per merchant.
    pub merchant_counts: BTreeMap<String, u64>,
    /// Approved revenue (rials) per merchant category.
    pub category_revenue: BTreeMap<String, i64>,
    /// Approved revenue (rials) per payment method.
    pub method_revenue: BTreeMap<String, i64>,
    /// Window figures, see [`windows_json`].
    pub windows: Value,
    /// Alert counts and the latest alerts.
    pub alerts: Value,
    /// Detection scored against the ground truth.
    pub detection: Detection,
    /// Transactions counted.
    pub events: u64,
    /// Poison messages: count and the first ones with partition, offset and reason.
    pub poison: Value,
    /// The run.
    pub run: RunInfo,
    /// The stream's shape: events and declines over time, hours, amounts, detection delays.
    pub shape: ShapeSummary,
}

fn window_json(w: &WindowStats, closed: bool) -> Value {
    json!({
        "start": iso(w.start_ms),
        "end": iso(w.end_ms),
        "count": w.count,
        "sum": w.amount_sum,
        "average_amount": w.average_amount(),
        "decline_share": w.decline_share(),
        "late": w.late,
        "closed": closed,
    })
}

/// Milliseconds since the epoch as RFC 3339.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The `windows` object: spec, watermark, late counters, and the tumbling and sliding windows
/// kept (each with count, sum, average amount, decline share, late arrivals, closed or not).
pub fn windows_json(analyzer: &Analyzer) -> Value {
    let w = &analyzer.windows;
    let spec = w.spec();
    let (tumbling_closed, sliding_closed) = w.closed_totals();
    json!({
        "size_s": spec.size_ms / 1000,
        "slide_s": spec.slide_ms / 1000,
        "watermark_delay_s": spec.watermark_delay_ms / 1000,
        "allowed_lateness_s": spec.allowed_lateness_ms / 1000,
        "watermark": w.watermark().map(iso),
        "late": w.lateness(),
        "tumbling_closed": tumbling_closed,
        "sliding_closed": sliding_closed,
        "tumbling": w.tumbling().map(|(s, c)| window_json(s, c)).collect::<Vec<_>>(),
        "sliding": w.sliding().map(|(s, c)| window_json(s, c)).collect::<Vec<_>>(),
    })
}

/// An alert as JSON: what `darooghe.alerts` carries too.
pub fn alert_json(alert: &Alert) -> Value {
    json!({
        "rule": alert.rule,
        "customer_id": alert.customer_id,
        "time": iso(alert.time_ms),
        "reason": alert.reason,
        "events": alert.events,
    })
}

impl Summary {
    /// The summary of `analyzer` and the committed `totals` after a run described by `run`.
    pub fn new(analyzer: &Analyzer, totals: &Totals, run: RunInfo) -> Self {
        Self {
            merchant_counts: sorted(&totals.merchant_counts),
            category_revenue: sorted(&totals.category_revenue),
            method_revenue: sorted(&totals.method_revenue),
            windows: windows_json(analyzer),
            alerts: json!({
                "total": analyzer.alerts_total,
                "by_rule": analyzer.score.alerts_by_rule(),
                "rule_errors": analyzer.rule_errors,
                "recent": analyzer.recent_alerts.iter().map(|a| alert_json(a)).collect::<Vec<_>>(),
            }),
            detection: analyzer.score.detection(),
            events: totals.transactions,
            poison: json!({ "count": analyzer.poison_total, "messages": analyzer.poison }),
            run,
            shape: analyzer.shape.summary(&analyzer.score.delays_by_pattern()),
        }
    }

    /// A few lines for people: totals, top merchants, revenue, alerts and scores.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = &self.run;
        let reading = r
            .reading_rate()
            .map(|rate| format!(" (reading {:.1} s, {rate:.0} messages/s)", r.reading_s))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} transactions from {} (group {}), {} poison, {} alerts, {:.1} s{reading}",
            self.events, r.topic, r.group, self.poison["count"], self.alerts["total"], r.elapsed_s
        );
        let mut merchants: Vec<_> = self.merchant_counts.iter().collect();
        merchants.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = merchants
            .iter()
            .take(5)
            .map(|(m, c)| format!("{m} {c}"))
            .collect();
        if r.encodings.avro > 0 {
            let e = &r.encodings;
            let _ = writeln!(out, "encodings: json {}, avro {}", e.json, e.avro);
        }
        let _ = writeln!(out, "top merchants: {}", top.join(", "));
        let revenue: Vec<String> = self
            .category_revenue
            .iter()
            .map(|(c, r)| format!("{c} {r}"))
            .collect();
        let _ = writeln!(out, "approved revenue by category: {}", revenue.join(", "));
        let d = &self.detection;
        if d.labelled {
            let _ = writeln!(
                out,
                "detection ({} fraud events of {}):",
                d.fraud_events, d.events
            );
            for (rule, s) in &d.rules {
                let _ = writeln!(
                    out,
                    "  {rule}: {} alerts, precision {}, recall {}",
                    s.alerts,
                    percent(s.precision),
                    percent(s.recall)
                );
            }
            for (pattern, p) in &d.patterns {
                let delay = p
                    .delay
                    .as_ref()
                    .map(|d| format!(", median delay {:.0} s", d.median_s))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  pattern {pattern}: recall {}{delay}",
                    percent(p.recall)
                );
            }
        }
        out
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}%", v * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(consumed: u64, reading_s: f64) -> RunInfo {
        RunInfo {
            topic: "t".into(),
            group: "g".into(),
            exactly_once: false,
            consumed,
            encodings: Default::default(),
            commits: 0,
            elapsed_s: 9.0,
            reading_s,
        }
    }

    #[test]
    fn the_reading_rate_counts_the_gaps_between_the_messages_read() {
        assert_eq!(run(1001, 2.0).reading_rate(), Some(500.0));
        // One message, or none, has no span to read over.
        assert_eq!(run(1, 0.0).reading_rate(), None);
        assert_eq!(run(0, 0.0).reading_rate(), None);
    }

    #[test]
    fn the_text_gives_the_reading_time_and_rate_when_there_is_one() {
        use crate::analyze::aggregate::Totals;
        use crate::analyze::detect::{script::ScriptRules, Detector};
        let analyzer = Analyzer::new(Default::default(), Detector::new(ScriptRules::none()));
        let first_line = |info: RunInfo| {
            let text = Summary::new(&analyzer, &Totals::default(), info).text();
            text.lines().next().unwrap().to_string()
        };
        assert!(
            first_line(run(1001, 2.0)).ends_with("9.0 s (reading 2.0 s, 500 messages/s)"),
            "{}",
            first_line(run(1001, 2.0))
        );
        assert!(first_line(run(1, 0.0)).ends_with("alerts, 9.0 s"));
    }
}
