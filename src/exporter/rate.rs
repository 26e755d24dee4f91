//! The rate of a counter over the last seconds, from the values read at each scrape: the
//! achieved events per second a dashboard puts beside the target.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// The window a rate is taken over, at least: long enough to smooth a Poisson process's bursts,
/// short enough to show a stall within a scrape or two.
const WINDOW: Duration = Duration::from_secs(10);

/// A counter's readings, and its rate over the last [`WINDOW`] (or since the first reading).
#[derive(Debug)]
pub struct RateWindow {
    readings: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateWindow {
    /// A window whose first reading is `value` now.
    pub fn starting_at(value: u64) -> Self {
        Self::starting(Instant::now(), value)
    }

    fn starting(at: Instant, value: u64) -> Self {
        Self {
            readings: Mutex::new(VecDeque::from([(at, value)])),
        }
    }

    /// Records `value` now and returns the rate per second since the newest reading at least a
    /// window old (the first reading, until one is).
    pub fn rate(&self, value: u64) -> f64 {
        self.rate_at(Instant::now(), value)
    }

    fn rate_at(&self, now: Instant, value: u64) -> f64 {
        let mut readings = lock(&self.readings);
        // Drop readings older than needed: keep the newest one that is a window old.
        while readings
            .get(1)
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= WINDOW)
        {
            readings.pop_front();
        }
        let (since, base) = readings.front().copied().unwrap_or((now, value));
        readings.push_back((now, value));
        let seconds = now.saturating_duration_since(since).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        value.saturating_sub(base) as f64 / seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_taken_over_the_last_window_once_there_is_one() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let window = RateWindow::starting(start, 0);
        // Since the first reading: 50 events in 5 s.
        assert_eq!(window.rate_at(at(5), 50), 10.0);
        // 12 s in, the first reading is the only one a window old: 240 in 12 s.
        assert_eq!(window.rate_at(at(12), 240), 20.0);
        // 20 s in, the reading at 5 s is the newest a window old (15 s): 30 a second since.
        assert_eq!(window.rate_at(at(20), 500), 30.0);
        // Nothing more made in the 12 s since the reading at 20 s: the rate falls to 0.
        assert_eq!(window.rate_at(at(32), 500), 0.0);
    }
}
