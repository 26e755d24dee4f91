//! The stream's shape: what `sim analyze --report` and `sim report` draw, kept in bounded memory.
//!
//! A report needs more than totals: events and declines over time, the hour-of-day profile, the
//! amount distribution per category, and how long detection took. Keeping raw events would grow
//! with the stream, so each figure is a fixed set of counters: time buckets that widen (two
//! merged into one) when there would be more than [`MAX_BUCKETS`], 24 hours, log-scale amount
//! bins with fixed edges, and detection delays binned at summary time from the score's cases.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use chrono::Timelike;
use serde::{Deserialize, Serialize};

use super::transaction::Transaction;

/// Time buckets kept at most: two days of minutes; a longer stream gets wider buckets.
pub const MAX_BUCKETS: usize = 2_880;
/// Amount bins per power of ten.
pub const AMOUNT_BINS_PER_DECADE: u32 = 4;
/// Powers of ten the amount bins cover: 1 rial up to 10^12 rials (larger amounts fall in the
/// last bin, amounts under 1 rial in the first).
pub const AMOUNT_DECADES: u32 = 12;
/// Lower edges of the detection delay bins, in seconds (the last bin is open-ended).
pub const DELAY_EDGES_S: [f64; 12] = [
    0.0, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0,
];

const MINUTE_MS: i64 = 60_000;

/// Transactions and declines in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeBucket {
    /// The bucket's start, milliseconds since the epoch (event time).
    pub start_ms: i64,
    /// Transactions whose event time falls in it.
    pub events: u64,
    /// Of them, declined.
    pub declined: u64,
}

/// The shape as the summary carries it (`shape` in the JSON), and as `sim report` reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShapeSummary {
    /// The earliest event time seen, milliseconds since the epoch.
    pub first_ms: Option<i64>,
    /// The latest event time seen.
    pub last_ms: Option<i64>,
    /// Width of a time bucket in seconds: 60, or a multiple of it for a long stream.
    pub bucket_s: u64,
    /// Time buckets that hold events, in order.
    pub buckets: Vec<TimeBucket>,
    /// Transactions per hour of the day (UTC), 24 counts.
    pub hour_of_day: Vec<u64>,
    /// Edges of the amount bins in rials: bin `i` holds amounts from `edges[i]` up to
    /// `edges[i + 1]`.
    pub amount_edges: Vec<f64>,
    /// Per merchant category, transactions per amount bin.
    pub amounts: BTreeMap<String, Vec<u64>>,
    /// Lower edges of the detection delay bins, in seconds.
    pub delay_edges_s: Vec<f64>,
    /// Per fraud pattern, detected cases per delay bin.
    pub delays: BTreeMap<String, Vec<u64>>,
}

/// The running shape of the stream (see the module doc).
#[derive(Debug, Clone)]
pub struct Shape {
    bucket_ms: i64,
    buckets: BTreeMap<i64, (u64, u64)>,
    hours: [u64; 24],
    amounts: HashMap<String, Vec<u64>>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            bucket_ms: MINUTE_MS,
            buckets: BTreeMap::new(),
            hours: [0; 24],
            amounts: HashMap::new(),
            first_ms: None,
            last_ms: None,
        }
    }
}

/// Number of amount bins.
fn amount_bins() -> usize {
    (AMOUNT_BINS_PER_DECADE * AMOUNT_DECADES) as usize
}

/// The amount bin of `amount` rials.
fn amount_bin(amount: i64) -> usize {
    if amount < 1 {
        return 0;
    }
    let bin = ((amount as f64).log10() * f64::from(AMOUNT_BINS_PER_DECADE)).floor() as usize;
    bin.min(amount_bins() - 1)
}

/// The delay bin of `seconds`.
fn delay_bin(seconds: f64) -> usize {
    DELAY_EDGES_S
        .iter()
        .rposition(|&edge| seconds >= edge)
        .unwrap_or(0)
}

impl Shape {
    /// Counts one transaction.
    pub fn observe(&mut self, tx: &Transaction) {
        let t = tx.time_ms;
        self.first_ms = Some(self.first_ms.map_or(t, |f| f.min(t)));
        self.last_ms = Some(self.last_ms.map_or(t, |l| l.max(t)));
        let bucket = self
            .buckets
            .entry(t.div_euclid(self.bucket_ms) * self.bucket_ms)
            .or_default();
        bucket.0 += 1;
        bucket.1 += u64::from(tx.declined());
        if self.buckets.len() > MAX_BUCKETS {
            self.widen();
        }
        if let Some(time) = chrono::DateTime::from_timestamp_millis(t) {
            self.hours[time.hour() as usize] += 1;
        }
        let bins = match self.amounts.get_mut(&tx.category) {
            Some(bins) => bins,
            None => self
                .amounts
                .entry(tx.category.clone())
                .or_insert_with(|| vec![0; amount_bins()]),
        };
        bins[amount_bin(tx.amount)] += 1;
    }

    /// Doubles the bucket width, merging neighbours: the number of buckets halves, so memory
    /// stays bounded however long the stream runs.
    fn widen(&mut self) {
        self.bucket_ms *= 2;
        let mut wider: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for (start, (events, declined)) in std::mem::take(&mut self.buckets) {
            let bucket = wider
                .entry(start.div_euclid(self.bucket_ms) * self.bucket_ms)
                .or_default();
            bucket.0 += events;
            bucket.1 += declined;
        }
        self.buckets = wider;
    }

    /// The shape as the summary carries it, with `delays` (seconds of each detected case, per
    /// pattern: the score's) binned.
    pub fn summary(&self, delays: &BTreeMap<String, Vec<f64>>) -> ShapeSummary {
        let per_decade = f64::from(AMOUNT_BINS_PER_DECADE);
        ShapeSummary {
            first_ms: self.first_ms,
            last_ms: self.last_ms,
            bucket_s: (self.bucket_ms / 1000) as u64,
            buckets: self
                .buckets
                .iter()
                .map(|(&start_ms, &(events, declined))| TimeBucket {
                    start_ms,
                    events,
                    declined,
                })
                .collect(),
            hour_of_day: self.hours.to_vec(),
            amount_edges: (0..=amount_bins())
                .map(|i| 10f64.powf(i as f64 / per_decade))
                .collect(),
            amounts: self
                .amounts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            delay_edges_s: DELAY_EDGES_S.to_vec(),
            delays: delays
                .iter()
                .map(|(pattern, seconds)| {
                    let mut bins = vec![0; DELAY_EDGES_S.len()];
                    seconds.iter().for_each(|&s| bins[delay_bin(s)] += 1);
                    (pattern.clone(), bins)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::transaction::tests::tx;

    #[test]
    fn buckets_hours_and_amounts_count_each_transaction_once() {
        let mut shape = Shape::default();
        let mut declined = tx("c", 1_000, 30, 1);
        declined.status = "declined".into();
        shape.observe(&tx("c", 1_000, 0, 0));
        shape.observe(&declined);
        shape.observe(&tx("c", 5, 3_600, 2));
        let s = shape.summary(&BTreeMap::new());
        assert_eq!(s.bucket_s, 60);
        assert_eq!(
            s.buckets
                .iter()
                .map(|b| (b.events, b.declined))
                .collect::<Vec<_>>(),
            vec![(2, 1), (1, 0)]
        );
        assert_eq!(s.hour_of_day.iter().sum::<u64>(), 3);
        let bins = &s.amounts["retail"];
        // 1,000 rials is 10^3: bin 12 of 4 a decade; 5 rials is bin 2 (10^0.5 <= 5 < 10^0.75).
        assert_eq!((bins[12], bins[2]), (2, 1));
        assert_eq!(s.amount_edges.len(), bins.len() + 1);
    }

    #[test]
    fn a_long_stream_widens_its_buckets_instead_of_growing() {
        let mut shape = Shape::default();
        for minute in 0..(MAX_BUCKETS as i64 * 3) {
            shape.observe(&tx("c", 10, minute * 60, minute));
        }
        let s = shape.summary(&BTreeMap::new());
        assert!(s.buckets.len() <= MAX_BUCKETS, "{}", s.buckets.len());
        assert_eq!(s.bucket_s, 240);
        assert_eq!(
            s.buckets.iter().map(|b| b.events).sum::<u64>(),
            MAX_BUCKETS as u64 * 3
        );
    }

    #[test]
    fn delays_fall_in_their_bins() {
        let delays = BTreeMap::from([("burst".to_string(), vec![0.5, 30.0, 100_000.0])]);
        let s = Shape::default().summary(&delays);
        let bins = &s.delays["burst"];
        assert_eq!((bins[0], bins[4], bins[11]), (1, 1, 1));
    }
}
