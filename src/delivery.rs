//! The delivery account: every record handed to a sink ends up delivered or failed, so
//! produced = delivered + failed once the sink is closed. One set of counters holds it; the
//! sinks update it from their threads (librdkafka's delivery callback among them), and the status
//! line, metrics and the final account read it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
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
    }
    /// Counts a record delivered.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a record that failed.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
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
}
