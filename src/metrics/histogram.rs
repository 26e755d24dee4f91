//! A histogram of durations that any thread records into with a few relaxed atomic adds, and a
//! scrape reads: the count in each bucket, the count and the sum (the exposition adds the
//! buckets up into Prometheus's cumulative `le` series).
//!
//! Recording sits on the hot path (once per event), so it takes no lock and allocates nothing:
//! fixed bounds, one counter a bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bounds, in seconds, of the time a script takes to make one event: from a microsecond (a
/// native-speed script) to a tenth of a second (a runaway loop).
pub const EVENT_SECONDS: &[f64] = &[
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1,
];

/// Bounds, in seconds, of how late an event leaves against its deadline: a millisecond of
/// scheduling to a minute behind (a broker that takes nothing).
pub const LAG_SECONDS: &[f64] = &[
    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Durations counted into buckets with fixed upper bounds.
#[derive(Debug)]
pub struct DurationHistogram {
    bounds: &'static [f64],
    /// Observations in each bucket (not cumulative), one more than the bounds: above the last.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// A histogram as a scrape reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Each bucket's upper bound in seconds with the observations in it (above the bound
    /// before), the last bound `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl DurationHistogram {
    /// An empty histogram with these upper bounds, in seconds, ascending.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The counts so far. Read while others record, the count is the sum of the buckets read,
    /// so the cumulative `+Inf` bucket always equals it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
                (bound, count.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets_with_count_and_sum() {
        static BOUNDS: &[f64] = &[0.001, 0.01];
        let histogram = DurationHistogram::new(BOUNDS);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(2));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum - 2.0065).abs() < 1e-9, "{}", snapshot.sum);
        assert_eq!(
            snapshot.buckets,
            vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]
        );
    }

    #[test]
    fn the_bounds_ascend() {
        for bounds in [EVENT_SECONDS, LAG_SECONDS] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
