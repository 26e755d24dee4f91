//! What the simulator takes as the current time.
//!
//! The clock is real time shifted to start at a chosen instant: `--now TIME` pins where simulated
//! time starts, and from there it advances with the wall clock. With no `--now` the start is the
//! real now, so simulated and real time agree. Everything time-related (backfill window, live
//! deadlines, event timestamps) is measured against this one clock.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Simulated time that advances in step with the wall clock from a pinned start.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start: DateTime<Utc>,
    started_at: Instant,
}

impl SimClock {
    /// A clock whose current time is `start` now, advancing in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            started_at: Instant::now(),
        }
    }

    /// The simulated time at which the clock was started.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.start + self.started_at.elapsed()
    }

    /// The wall-clock instant at which simulated time reaches `at` (in the past if already there).
    pub fn instant_of(&self, at: DateTime<Utc>) -> Instant {
        match (at - self.start).to_std() {
            Ok(ahead) => self.started_at + ahead,
            Err(_) => self.started_at,
        }
    }

    /// How long from now until simulated time reaches `at`; zero if it already has.
    pub fn until(&self, at: DateTime<Utc>) -> Duration {
        self.instant_of(at)
            .saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_pinned_time_and_maps_deadlines_to_instants() {
        let start = "2024-01-15T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = SimClock::starting_at(start);
        assert!(clock.now() >= start);
        let later = start + chrono::Duration::seconds(30);
        let gap = clock.instant_of(later) - clock.instant_of(start);
        assert_eq!(gap, Duration::from_secs(30));
        assert_eq!(clock.until(start), Duration::ZERO);
    }
}
