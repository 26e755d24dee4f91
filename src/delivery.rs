//! The delivery account: every record handed to a sink ends up delivered or failed, so
//! produced = delivered + failed once the sink is closed. One set of counters holds it; the
//! sinks update it from their threads (librdkafka's delivery callback among them), and the status
//! line, metrics and the final account read it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::sync::lock;
use std::time::{Duration, Instant};

/// The final (or running) account of a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryAccount {
    /// Records accepted for delivery.
    pub produced: u64,
    /// Records confirmed delivered.
    pub delivered: u64,
    /// Records that failed.
    pub failed: u64,
}

impl DeliveryAccount {
    /// Records settled: delivered or failed.
    pub fn settled(&self) -> u64 {
        self.delivered + self.failed
    }

    /// Records neither delivered nor failed yet.
    pub fn in_flight(&self) -> u64 {
        self.produced
            .saturating_sub(self.delivered)
            .saturating_sub(self.failed)
    }
}

/// Counters a sink updates as it goes and a status line reads from another thread.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    produced: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    /// When the sink began waiting for room in a full queue ([`since_start`]), 0 when it is
    /// not waiting.
    waiting_since: AtomicU64,
    /// When the first record accepted since the last delivery report was accepted
    /// ([`since_start`]), 0 when none was: how long the broker has left the producer unanswered.
    unanswered_since: AtomicU64,
    /// Failures by kind (a short name, for a metric's label).
    kinds: Mutex<BTreeMap<String, u64>>,
}

/// Milliseconds since the first call, plus one: a time an atomic can hold, never 0.
fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl DeliveryCounters {
    /// Counts a record accepted for delivery.
    pub fn produced(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
        if self.unanswered_since.load(Ordering::Relaxed) == 0 {
            self.unanswered_since
                .store(since_start(), Ordering::Relaxed);
        }
    }
    /// Counts a record accepted and delivered at once, by a sink that writes as it accepts
    /// (standard output, a file): no wait for an answer begins, so no clock is read (a read
    /// a record, 0.4% of `sim sample`'s time on darooghe).
    pub fn written(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a record delivered.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.unanswered_since.store(0, Ordering::Relaxed);
    }
    /// Counts a record that failed.
    pub fn failed(&self) {
        self.failed_as("other");
    }
    /// Counts a record that failed, of `kind` (a short name such as `message_timed_out`).
    pub fn failed_as(&self, kind: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.unanswered_since.store(0, Ordering::Relaxed);
        let mut kinds = lock(&self.kinds);
        match kinds.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                kinds.insert(kind.to_string(), 1);
            }
        }
    }

    /// Failures so far by kind, in the order of their names.
    pub fn failures_by_kind(&self) -> Vec<(String, u64)> {
        let kinds = lock(&self.kinds);
        kinds.iter().map(|(k, n)| (k.clone(), *n)).collect()
    }

    /// How long records have waited with no delivery report at all: since the first record
    /// accepted after the last report. `None` when every record accepted was answered. A broker
    /// that is up answers within milliseconds; a growing wait is one that takes nothing.
    pub fn unanswered_for(&self) -> Option<Duration> {
        match self.unanswered_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(since_start().saturating_sub(since))),
        }
    }
    /// Records that the sink waits for room in a full queue (`true`) or no longer does: the
    /// broker takes nothing, or less than is made.
    pub fn waiting(&self, waiting: bool) {
        let since = if waiting { since_start() } else { 0 };
        self.waiting_since.store(since, Ordering::Relaxed);
    }

    /// How long the sink has been waiting for room in a full queue, if it is.
    pub fn waiting_for(&self) -> Option<Duration> {
        match self.waiting_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(since_start().saturating_sub(since))),
        }
    }

    /// A snapshot. Delivered and failed are read before produced, so the snapshot never shows
    /// more settled than produced.
    pub fn account(&self) -> DeliveryAccount {
        let delivered = self.delivered.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        DeliveryAccount {
            produced: self.produced.load(Ordering::Acquire),
            delivered,
            failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_room_is_shown_until_it_ends() {
        let counters = DeliveryCounters::default();
        assert_eq!(counters.waiting_for(), None);
        counters.waiting(true);
        std::thread::sleep(Duration::from_millis(5));
        assert!(counters.waiting_for().is_some_and(|d| d > Duration::ZERO));
        counters.waiting(false);
        assert_eq!(counters.waiting_for(), None);
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let counters = DeliveryCounters::default();
        counters.failed();
        counters.failed_as("message_timed_out");
        counters.failed_as("message_timed_out");
        counters.delivered();
        assert_eq!(counters.account().failed, 3);
        assert_eq!(
            counters.failures_by_kind(),
            vec![("message_timed_out".into(), 2), ("other".into(), 1)]
        );
    }

    #[test]
    fn a_record_written_at_once_is_produced_and_delivered_and_leaves_nothing_unanswered() {
        let counters = DeliveryCounters::default();
        counters.written();
        counters.written();
        let account = counters.account();
        assert_eq!(
            (account.produced, account.delivered, account.failed),
            (2, 2, 0)
        );
        assert_eq!(counters.unanswered_for(), None);
    }

    #[test]
    fn records_are_unanswered_from_the_first_sent_after_a_report_until_the_next() {
        let counters = DeliveryCounters::default();
        assert_eq!(counters.unanswered_for(), None);
        counters.produced();
        std::thread::sleep(Duration::from_millis(5));
        counters.produced();
        // Timed from the first of the two.
        assert!(counters
            .unanswered_for()
            .is_some_and(|d| d >= Duration::from_millis(5)));
        counters.delivered();
        assert_eq!(counters.unanswered_for(), None);
        counters.produced();
        counters.failed();
        assert_eq!(counters.unanswered_for(), None);
    }
}
