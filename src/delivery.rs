//! The delivery account: every record handed to a sink ends up delivered or failed, so
//! produced = delivered + failed once the sink is closed. One set of counters holds it; the
//! sinks update it from their threads (librdkafka's delivery callback among them), and the status
//! line, metrics and the final account read it.

use std::sync::atomic::{AtomicU64, Ordering};

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
