//! The analysis itself, without Kafka: one transaction in, every figure updated.
//!
//! [`Analyzer`] joins the aggregates, the windows, the detector, the score and the shape. The consumer
//! ([`super::consume`]) feeds it and decides when its effects count as recorded; tests and the
//! benchmark can feed it directly.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::detect::{Alert, Detector, Payload, Verdict};
use super::score::Score;
use super::shape::Shape;
use super::transaction::{Poison, Transaction};
use super::window::{WindowSpec, Windows};

/// Recent alerts kept for the summary and the live view.
pub const RECENT_ALERTS: usize = 20;
/// Poison messages listed (all are counted).
pub const POISON_LISTED: usize = 100;
/// Minutes of alert counts kept for the alerts-per-minute figure.
pub const ALERT_MINUTES: usize = 60;

/// Every figure the analyzer keeps.
pub struct Analyzer {
    /// Event-time windows.
    pub windows: Windows,
    /// Fraud detection.
    pub detector: Detector,
    /// Detection scored against the ground truth.
    pub score: Score,
    /// The stream's shape over time, hours, amounts: what the report draws.
    pub shape: Shape,
    /// Alerts raised, all told.
    pub alerts_total: u64,
    /// The latest alerts.
    pub recent_alerts: VecDeque<Arc<Alert>>,
    /// Alerts per minute of event time (minute start, ms), the latest [`ALERT_MINUTES`].
    pub alerts_per_minute: BTreeMap<i64, u64>,
    /// Poison messages, all told.
    pub poison_total: u64,
    /// The first [`POISON_LISTED`] of them.
    pub poison: Vec<Poison>,
    /// Rule failures (Rhai runtime errors) per rule.
    pub rule_errors: BTreeMap<String, u64>,
}

impl Analyzer {
    /// An empty analysis with windows cut by `spec` and rules of `detector`.
    pub fn new(spec: WindowSpec, detector: Detector) -> Self {
        let score = Score::new(&detector.rule_names());
        Self {
            windows: Windows::new(spec),
            detector,
            score,
            shape: Shape::default(),
            alerts_total: 0,
            recent_alerts: VecDeque::new(),
            alerts_per_minute: BTreeMap::new(),
            poison_total: 0,
            poison: Vec::new(),
            rule_errors: BTreeMap::new(),
        }
    }

    /// Applies one transaction to the windows, the detector and the score; returns the verdict
    /// (alerts and rule failures). Aggregates are the consumer's: it adds the transaction to its
    /// batch's delta, merged into the committed totals once the batch is committed.
    pub fn record(&mut self, tx: &Transaction, payload: Payload<'_>) -> Verdict {
        self.observe(tx);
        let verdict = self.detector.observe(tx.clone(), payload);
        self.count_verdict(&verdict);
        verdict
    }

    /// Applies one transaction to the windows and the score, leaving detection to the caller
    /// (detection workers), whose verdict goes to [`Analyzer::count_verdict`].
    pub fn observe(&mut self, tx: &Transaction) {
        self.windows
            .observe(tx.position.partition, tx.time_ms, tx.amount, tx.declined());
        self.score.observe(tx);
        self.shape.observe(tx);
    }

    /// Counts a transaction's verdict: alerts in the score, the totals and the recent list, rule
    /// failures per rule. Verdicts are counted in the order of their transactions; a verdict
    /// may come after later transactions were observed (the score does not depend on that: an
    /// alert names events observed before it).
    pub fn count_verdict(&mut self, verdict: &Verdict) {
        for alert in &verdict.alerts {
            self.score.record(alert);
            self.alerts_total += 1;
            let minute = alert.time_ms.div_euclid(60_000) * 60_000;
            *self.alerts_per_minute.entry(minute).or_default() += 1;
            if self.alerts_per_minute.len() > ALERT_MINUTES {
                self.alerts_per_minute.pop_first();
            }
            if self.recent_alerts.len() == RECENT_ALERTS {
                self.recent_alerts.pop_front();
            }
            self.recent_alerts.push_back(alert.clone());
        }
        for (rule, _) in &verdict.errors {
            *self.rule_errors.entry(rule.clone()).or_default() += 1;
        }
    }

    /// Counts a poison message.
    pub fn poison(&mut self, poison: Poison) {
        self.poison_total += 1;
        if self.poison.len() < POISON_LISTED {
            self.poison.push(poison);
        }
    }

    /// A partition was assigned: the watermark waits for it.
    pub fn assign_partition(&mut self, partition: i32) {
        self.windows.assign(partition);
    }

    /// A partition reached its end: it does not hold the watermark back meanwhile.
    pub fn partition_idle(&mut self, partition: i32) {
        self.windows.idle(partition);
    }

    /// A partition was revoked: it no longer holds the watermark back. Its customers' histories
    /// stay: with the eager protocol every rebalance revokes everything, and the partition most
    /// often comes straight back, mid-burst.
    pub fn forget_partition(&mut self, partition: i32) {
        self.windows.forget_partition(partition);
    }
}
