//! The analyzer's figures as another thread reads them: what the metrics endpoint of
//! `sim analyze --metrics` scrapes.
//!
//! The [`Analyzer`] belongs to the run loop's thread, and a scrape must not stop it. So the two
//! counts that change with every message (events, poison) are relaxed atomics the loop adds to,
//! and the rest (alerts and scores by rule, windows, the assignment) is a [`FiguresSnapshot`]
//! the loop publishes a few times a second and once more at the end: a scrape reads the latest
//! one and never waits for the loop. librdkafka's statistics of the consumer (lag per partition,
//! broker states) are recorded here by the consumer's context as they come.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::analyzer::Analyzer;
use super::window::Lateness;
use rdkafka::statistics::Statistics;

use crate::kafka::stats::{ClientStats, StatsSnapshot};
use crate::sync::lock;

/// Where the consumer is in its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsumerState {
    /// Connecting and subscribing: nothing is read yet.
    #[default]
    Starting,
    /// Subscribed and polling.
    Consuming,
    /// The run loop ended (caught up, stopped, or failed): the figures are final.
    Stopped,
}

/// A rule's precision and recall against the ground truth; `None` while undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuleRates {
    /// Of the events it flagged, the share that are fraud (`None`: it flagged nothing).
    pub precision: Option<f64>,
    /// Of the fraud events, the share it flagged (`None`: no fraud seen yet).
    pub recall: Option<f64>,
}

/// The figures that do not change with every message, as the run loop last published them.
#[derive(Debug, Clone, Default)]
pub struct FiguresSnapshot {
    /// Where the consumer is.
    pub state: ConsumerState,
    /// The partitions this member holds; `None` before its first assignment and during a
    /// rebalance (an empty list is an assignment too: more members than partitions).
    pub assigned: Option<Vec<i32>>,
    /// Alerts raised per rule, every rule listed (a rule that never fired at 0).
    pub alerts_by_rule: BTreeMap<String, u64>,
    /// Rule failures (Rhai runtime errors) per rule.
    pub rule_errors: BTreeMap<String, u64>,
    /// Whether any message carried the ground truth (`fraud_pattern`): only then are precision
    /// and recall meaningful.
    pub labelled: bool,
    /// Per rule, precision and recall against the ground truth; either is `None` while it is
    /// undefined (a rule that flagged nothing, a stream with no fraud yet).
    pub scores: BTreeMap<String, RuleRates>,
    /// Tumbling and sliding windows closed so far.
    pub windows_closed: (u64, u64),
    /// Tumbling and sliding windows open now.
    pub windows_open: (u64, u64),
    /// The watermark, milliseconds since the epoch (none before the first event).
    pub watermark_ms: Option<i64>,
    /// Late events accepted and dropped.
    pub lateness: Lateness,
    /// Batches committed.
    pub commits: u64,
}

impl FiguresSnapshot {
    /// The figures of `analyzer` now; `state`, `assigned` and `commits` are the run loop's.
    pub fn of(
        analyzer: &Analyzer,
        state: ConsumerState,
        assigned: Option<Vec<i32>>,
        commits: u64,
    ) -> Self {
        let scores = analyzer
            .score
            .rule_scores()
            .into_iter()
            .map(|(rule, s)| {
                let rates = RuleRates {
                    precision: s.precision,
                    recall: s.recall,
                };
                (rule, rates)
            })
            .collect();
        Self {
            state,
            assigned,
            alerts_by_rule: analyzer.score.alerts_by_rule(),
            rule_errors: analyzer.rule_errors.clone(),
            labelled: analyzer.score.labelled(),
            scores,
            windows_closed: analyzer.windows.closed_totals(),
            windows_open: analyzer.windows.open_counts(),
            watermark_ms: analyzer.windows.watermark(),
            lateness: analyzer.windows.lateness(),
            commits,
        }
    }
}

/// The handle the run loop writes and a scrape reads (see the module doc).
#[derive(Debug, Default)]
pub struct AnalyzeFigures {
    events: AtomicU64,
    poison: AtomicU64,
    client: Arc<ClientStats>,
    /// The latest statistics report with the events read when it came.
    read_at_report: Mutex<Option<(StatsSnapshot, u64)>>,
    snapshot: Mutex<FiguresSnapshot>,
}

impl AnalyzeFigures {
    /// Counts a message read as a transaction.
    pub fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message that could not be read as a transaction.
    pub fn poison(&self) {
        self.poison.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages read as transactions so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Poison messages so far.
    pub fn poison_total(&self) -> u64 {
        self.poison.load(Ordering::Relaxed)
    }

    /// Where the consumer's context records librdkafka's statistics.
    pub fn client_stats(&self) -> Arc<ClientStats> {
        self.client.clone()
    }

    /// The consumer's latest statistics report, if one came.
    pub fn latest_stats(&self) -> Option<StatsSnapshot> {
        self.client.latest()
    }

    /// Records librdkafka's report of the consumer with the events read so far. The consumer's
    /// context records it from the run loop's own poll, between two messages, so the count
    /// agrees with the offsets the report gives as read.
    pub fn record_stats(&self, statistics: &Statistics) {
        let snapshot = StatsSnapshot::from_statistics(statistics);
        *lock(&self.read_at_report) = Some((snapshot.clone(), self.events()));
        self.client.keep(snapshot);
    }

    /// The latest statistics report and the events read when it came, if one came.
    pub fn latest_stats_with_events(&self) -> Option<(StatsSnapshot, u64)> {
        lock(&self.read_at_report).clone()
    }

    /// The figures the run loop last published.
    pub fn snapshot(&self) -> FiguresSnapshot {
        lock(&self.snapshot).clone()
    }

    /// Replaces the published figures.
    pub fn publish(&self, snapshot: FiguresSnapshot) {
        *lock(&self.snapshot) = snapshot;
    }

    /// Sets where the consumer is, keeping the other figures.
    pub fn set_state(&self, state: ConsumerState) {
        lock(&self.snapshot).state = state;
    }
}
