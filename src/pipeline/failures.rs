//! Failing events under the error policy (`on_error`): what the pipeline reports as it streams,
//! how it judges a reloaded revision's failures, and what it keeps to roll back to.
//!
//! With `on_error = skip` an event whose script fails (a runtime error in `event` or a follow-up,
//! a value JSON cannot hold) is skipped: nothing of it is sent, its memory writes and the
//! follow-ups it scheduled are dropped, and so is its sequence number (a gap in the numbers marks
//! it; given to the next event, a rule that fails on a number would fail every event after it).
//! The stream goes on. After a reload the revision it replaced is kept; if the new one fails more than its
//! budget ([`RevisionHealth::over_budget`]), the pipeline swaps the old one back in.

use chrono::{DateTime, Utc};

use super::workers::Worker;
use super::PipelineError;
use crate::encode::EventEncoder;
use crate::rate::PeakHours;

/// A new revision's failures are over budget when this many of its events fail in a row...
pub const IN_A_ROW: u64 = 10;
/// ...or when more than this share of them failed,
pub const SHARE: f64 = 0.01;
/// ...once it has made at least this many (so one early failure is not 100%).
pub const MIN_ATTEMPTS: u64 = 100;

/// Something the pipeline tells the person running it, as it happens.
#[derive(Debug)]
pub enum StreamNotice {
    /// The backfill finished; the live stream starts at `to`.
    BackfillDone {
        /// Arrivals placed in the window.
        arrivals: u64,
        /// Events they made, with the follow-ups due inside the window.
        events: u64,
        /// Start of the window.
        from: DateTime<Utc>,
        /// End of the window.
        to: DateTime<Utc>,
    },
    /// An event failed and was skipped (`on_error = skip`).
    Skipped {
        /// Why.
        error: PipelineError,
        /// The function that failed: `event` or a follow-up's.
        function: String,
        /// The event's time, milliseconds since the epoch.
        time_ms: i64,
        /// The revision that made it.
        revision: u64,
        /// Events skipped so far in the run, this one included.
        skipped: u64,
    },
    /// A reloaded revision failed more than its budget, or its rate curve failed, and the one
    /// it replaced runs again.
    RolledBack {
        /// The revision that failed.
        from: u64,
        /// The revision running again.
        to: u64,
        /// Its failures, and the events it tried to make.
        health: RevisionHealth,
        /// The failure of its rate curve, when that was the cause.
        cause: Option<PipelineError>,
    },
}

/// How a revision has fared since it was swapped in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevisionHealth {
    /// Events it tried to make.
    pub attempts: u64,
    /// Of those, how many failed.
    pub failures: u64,
    /// Failures since its last success.
    pub in_a_row: u64,
}

impl RevisionHealth {
    /// Counts an event made.
    pub fn made(&mut self) {
        self.attempts += 1;
        self.in_a_row = 0;
    }

    /// Counts an event that failed.
    pub fn failed(&mut self) {
        self.attempts += 1;
        self.failures += 1;
        self.in_a_row += 1;
    }

    /// Whether the revision fails too often to keep: [`IN_A_ROW`] failures in a row, or more
    /// than [`SHARE`] of at least [`MIN_ATTEMPTS`] events.
    pub fn over_budget(&self) -> bool {
        self.in_a_row >= IN_A_ROW
            || (self.attempts >= MIN_ATTEMPTS
                && self.failures as f64 > SHARE * self.attempts as f64)
    }
}

/// The revision a reload replaced, kept while its successor runs so it can be swapped back.
pub struct Fallback {
    /// Its workers.
    pub workers: Vec<Worker>,
    /// Its peak-hour curve.
    pub peak_hours: PeakHours,
    /// Its cap on waiting follow-ups.
    pub max_follow_ups: usize,
    /// Its revision.
    pub revision: u64,
    /// Its encoder (with Avro, the writer of its schema).
    pub encoder: EventEncoder,
}

/// Whether the error is the event's own (the script failed making it, or it cannot be encoded),
/// which `on_error = skip` skips; anything else (the sink, the rate curve, the follow-up cap)
/// stops the stream whatever the policy.
pub fn is_event_fault(error: &PipelineError) -> bool {
    matches!(error, PipelineError::Script(_) | PipelineError::Encode(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_row_are_over_budget_and_a_success_resets_the_run() {
        let mut health = RevisionHealth::default();
        for _ in 0..IN_A_ROW - 1 {
            health.failed();
        }
        assert!(!health.over_budget());
        health.made();
        health.failed();
        assert!(!health.over_budget(), "{health:?}");
        for _ in 0..IN_A_ROW - 1 {
            health.failed();
        }
        assert!(health.over_budget(), "{health:?}");
    }

    #[test]
    fn more_than_one_percent_is_over_budget_once_there_are_enough_events() {
        let mut health = RevisionHealth::default();
        health.failed();
        health.failed();
        for _ in 0..50 {
            health.made();
        }
        // 2 of 52: 4%, but too few events to judge.
        assert!(!health.over_budget());
        for _ in 0..148 {
            health.made();
        }
        // 2 of 200: 1%, not more.
        assert!(!health.over_budget(), "{health:?}");
        health.failed();
        assert!(health.over_budget(), "{health:?}");
    }
}
