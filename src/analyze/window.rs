//! Event-time windows: tumbling and sliding, with a watermark and an allowed lateness.
//!
//! Every transaction falls in one tumbling window (`[k*size, (k+1)*size)`) and in `size / slide`
//! sliding windows. The watermark says how far event time has surely progressed: the smallest,
//! over the assigned partitions, of the latest event time seen in that partition, minus a bounded
//! out-of-orderness delay. Taking the minimum over partitions matters: a consumer reads
//! partitions in bulk, one ahead of another, and the maximum would call every event of the slower
//! partition late. So the watermark waits until every assigned partition has shown an event,
//! except partitions at their end (idle), which would otherwise hold it back forever. A partition
//! is ordered by event time (the producer's timeline is), so only genuinely out-of-order events
//! fall behind it.
//!
//! An event behind the watermark is *late*. It still counts while its window is within the
//! allowed lateness (window end + lateness > watermark), and is marked as a late arrival in that
//! window; after that the window is closed and the event is counted as dropped, never silently
//! lost.

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::Serialize;

/// How windows are cut and when they close, all in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowSpec {
    /// Window length (5 minutes by default).
    pub size_ms: i64,
    /// Distance between the starts of sliding windows (1 minute by default).
    pub slide_ms: i64,
    /// How far behind the latest event time the watermark trails (bounded out-of-orderness).
    pub watermark_delay_ms: i64,
    /// How long after the watermark passes a window's end late events are still counted in it.
    pub allowed_lateness_ms: i64,
}

impl Default for WindowSpec {
    fn default() -> Self {
        Self {
            size_ms: 300_000,
            slide_ms: 60_000,
            watermark_delay_ms: 10_000,
            allowed_lateness_ms: 60_000,
        }
    }
}

/// The figures of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowStats {
    /// Start, milliseconds since the epoch (inclusive).
    pub start_ms: i64,
    /// End (exclusive).
    pub end_ms: i64,
    /// Transactions.
    pub count: u64,
    /// Sum of their amounts, rials.
    pub amount_sum: i64,
    /// Declined ones among them.
    pub declined: u64,
    /// Events that arrived behind the watermark and were still counted here.
    pub late: u64,
}

impl WindowStats {
    fn new(start_ms: i64, size_ms: i64) -> Self {
        Self {
            start_ms,
            end_ms: start_ms + size_ms,
            count: 0,
            amount_sum: 0,
            declined: 0,
            late: 0,
        }
    }

    /// Average amount, rials (0 for an empty window).
    pub fn average_amount(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.amount_sum as f64 / self.count as f64
        }
    }

    /// Share of declined transactions, 0 to 1.
    pub fn decline_share(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.declined as f64 / self.count as f64
        }
    }
}

/// Counters of late events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lateness {
    /// Events behind the watermark whose tumbling window was still open: counted.
    pub accepted: u64,
    /// Events whose tumbling window had closed: not in any tumbling window, counted here.
    pub dropped: u64,
    /// (event, sliding window) pairs refused because that sliding window had closed.
    pub sliding_dropped: u64,
}

/// One kind of window (tumbling or sliding): those still open, and the closed ones kept.
#[derive(Debug, Clone, Default)]
struct Series {
    open: BTreeMap<i64, WindowStats>,
    closed: VecDeque<WindowStats>,
    closed_total: u64,
}

impl Series {
    /// Adds an event to the window starting at `start`; false if that window has closed.
    fn add(
        &mut self,
        start: i64,
        size: i64,
        amount: i64,
        declined: bool,
        late: bool,
        closed_before: i64,
    ) -> bool {
        if start + size <= closed_before {
            return false;
        }
        let w = self
            .open
            .entry(start)
            .or_insert_with(|| WindowStats::new(start, size));
        w.count += 1;
        w.amount_sum += amount;
        w.declined += u64::from(declined);
        w.late += u64::from(late);
        true
    }

    /// Closes every open window that ends at or before `horizon`.
    fn close_until(&mut self, horizon: i64, keep: usize) {
        while let Some(entry) = self.open.first_entry() {
            if entry.get().end_ms > horizon {
                break;
            }
            let w = entry.remove();
            self.closed.push_back(w);
            self.closed_total += 1;
            if self.closed.len() > keep {
                self.closed.pop_front();
            }
        }
    }
}

/// Tumbling and sliding windows over the transactions read.
#[derive(Debug, Clone)]
pub struct Windows {
    spec: WindowSpec,
    tumbling: Series,
    sliding: Series,
    /// Latest event time per partition (`None`: assigned, nothing seen yet).
    latest_by_partition: HashMap<i32, Option<i64>>,
    idle: HashSet<i32>,
    watermark: Option<i64>,
    lateness: Lateness,
    /// Closed windows kept for the summary, per kind (a week of 5-minute windows).
    keep: usize,
}

/// Closed windows kept per kind by default: a week of 5-minute tumbling windows.
pub const KEEP_CLOSED: usize = 2016;

impl Windows {
    /// Empty windows cut by `spec`.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            tumbling: Series::default(),
            sliding: Series::default(),
            latest_by_partition: HashMap::new(),
            idle: HashSet::new(),
            watermark: None,
            lateness: Lateness::default(),
            keep: KEEP_CLOSED,
        }
    }

    /// The spec.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Counts one transaction of `partition` at event time `time_ms`.
    pub fn observe(&mut self, partition: i32, time_ms: i64, amount: i64, declined: bool) {
        let late = self.watermark.is_some_and(|w| time_ms < w);
        // Windows ending at or before this are closed: the watermark passed end + lateness.
        let closed_before = self.watermark.map_or(i64::MIN, |w| {
            w.saturating_sub(self.spec.allowed_lateness_ms)
        });
        let size = self.spec.size_ms;
        let start = time_ms.div_euclid(size) * size;
        if self
            .tumbling
            .add(start, size, amount, declined, late, closed_before)
        {
            self.lateness.accepted += u64::from(late);
        } else {
            self.lateness.dropped += 1;
        }
        let slide = self.spec.slide_ms;
        let mut start = time_ms.div_euclid(slide) * slide;
        while start > time_ms - size {
            if !self
                .sliding
                .add(start, size, amount, declined, late, closed_before)
            {
                self.lateness.sliding_dropped += 1;
            }
            start -= slide;
        }
        let latest = self.latest_by_partition.entry(partition).or_default();
        *latest = Some(latest.map_or(time_ms, |l| l.max(time_ms)));
        self.idle.remove(&partition);
        self.advance();
    }

    /// A partition was assigned: the watermark waits for its first event (or its end).
    pub fn assign(&mut self, partition: i32) {
        self.latest_by_partition.entry(partition).or_default();
    }

    /// A partition reached its end: it holds the watermark back no more, until its next event.
    pub fn idle(&mut self, partition: i32) {
        if self.latest_by_partition.contains_key(&partition) {
            self.idle.insert(partition);
            self.advance();
        }
    }

    /// Forgets a partition (revoked from this consumer), so it no longer holds the watermark.
    pub fn forget_partition(&mut self, partition: i32) {
        self.latest_by_partition.remove(&partition);
        self.idle.remove(&partition);
        self.advance();
    }

    fn advance(&mut self) {
        let mut active = self
            .latest_by_partition
            .iter()
            .filter(|(p, _)| !self.idle.contains(p))
            .map(|(_, latest)| *latest)
            .peekable();
        if active.peek().is_none() {
            return;
        }
        // A partition with nothing seen yet may hold the oldest events: wait for it.
        let Some(min) = active.try_fold(i64::MAX, |min, latest| latest.map(|l| min.min(l))) else {
            return;
        };
        let candidate = min - self.spec.watermark_delay_ms;
        // The watermark never goes back, even when a partition is added or forgotten.
        if self.watermark.is_none_or(|w| candidate > w) {
            self.watermark = Some(candidate);
            let horizon = candidate - self.spec.allowed_lateness_ms;
            self.tumbling.close_until(horizon, self.keep);
            self.sliding.close_until(horizon, self.keep);
        }
    }

    /// End of input: windows the watermark has passed are final, since no late event can reach
    /// them any more in this run, so they close without waiting out the allowed lateness. Windows
    /// that end after the watermark are partial (the input stopped inside them, or events of a
    /// slower partition may still be on their way) and stay open, so a summary never presents a
    /// partial window's figures as final.
    pub fn end_of_input(&mut self) {
        if let Some(watermark) = self.watermark {
            self.tumbling.close_until(watermark, self.keep);
            self.sliding.close_until(watermark, self.keep);
        }
    }

    /// The watermark, milliseconds since the epoch (none before the first event).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Late-event counters.
    pub fn lateness(&self) -> Lateness {
        self.lateness
    }

    /// The latest tumbling window that has events: the one an operator watches.
    pub fn current(&self) -> Option<WindowStats> {
        self.tumbling
            .open
            .values()
            .next_back()
            .or(self.tumbling.closed.back())
            .copied()
    }

    /// Closed tumbling windows kept (the latest), then open ones.
    pub fn tumbling(&self) -> impl Iterator<Item = (&WindowStats, bool)> {
        series(&self.tumbling)
    }

    /// Closed sliding windows kept (the latest), then open ones.
    pub fn sliding(&self) -> impl Iterator<Item = (&WindowStats, bool)> {
        series(&self.sliding)
    }

    /// How many (tumbling, sliding) windows are open now.
    pub fn open_counts(&self) -> (u64, u64) {
        (
            self.tumbling.open.len() as u64,
            self.sliding.open.len() as u64,
        )
    }

    /// How many (tumbling, sliding) windows have closed in all.
    pub fn closed_totals(&self) -> (u64, u64) {
        (self.tumbling.closed_total, self.sliding.closed_total)
    }
}

/// Each window with whether it is closed (final).
fn series(s: &Series) -> impl Iterator<Item = (&WindowStats, bool)> {
    s.closed
        .iter()
        .map(|w| (w, true))
        .chain(s.open.values().map(|w| (w, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn spec() -> WindowSpec {
        WindowSpec {
            size_ms: 5 * MIN,
            slide_ms: MIN,
            watermark_delay_ms: 0,
            allowed_lateness_ms: MIN,
        }
    }

    #[test]
    fn tumbling_windows_count_sum_average_and_decline_share() {
        let mut w = Windows::new(spec());
        w.observe(0, 0, 100, false);
        w.observe(0, 4 * MIN, 300, true);
        w.observe(0, 5 * MIN, 1000, false);
        let tumbling: Vec<_> = w.tumbling().map(|(s, _)| *s).collect();
        assert_eq!(tumbling.len(), 2);
        assert_eq!((tumbling[0].count, tumbling[0].amount_sum), (2, 400));
        assert_eq!(tumbling[0].average_amount(), 200.0);
        assert_eq!(tumbling[0].decline_share(), 0.5);
        assert_eq!(tumbling[1].start_ms, 5 * MIN);
    }

    #[test]
    fn open_windows_are_counted_until_the_watermark_closes_them() {
        let mut w = Windows::new(spec());
        w.observe(0, 7 * MIN + 5, 1, false);
        // One tumbling window [5, 10) and the five sliding ones that hold 7 min.
        assert_eq!(w.open_counts(), (1, 5));
        // Watermark 20 min: every window ending by 19 closed; [20, 25) and its sliding ones open.
        w.observe(0, 20 * MIN, 1, false);
        assert_eq!(w.open_counts(), (1, 5));
        assert_eq!(w.closed_totals(), (1, 5));
    }

    #[test]
    fn each_event_is_in_size_over_slide_sliding_windows() {
        let mut w = Windows::new(spec());
        w.observe(0, 7 * MIN + 5, 1, false);
        let starts: Vec<i64> = w.sliding().map(|(s, _)| s.start_ms / MIN).collect();
        assert_eq!(starts, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn late_events_count_within_lateness_and_are_dropped_after() {
        let mut w = Windows::new(spec());
        // Watermark 10.5 min: window [5, 10) stays open until the watermark reaches 10 + 1.
        w.observe(0, 10 * MIN + 30_000, 1, false);
        w.observe(0, 9 * MIN, 1, false); // late, but within the allowed lateness: counted
        assert_eq!(w.lateness().accepted, 1);
        w.observe(0, 12 * MIN, 1, false); // watermark 12: [5, 10) closes (10 <= 12 - 1)
        w.observe(0, 8 * MIN, 1, false); // too late
        let l = w.lateness();
        assert_eq!((l.accepted, l.dropped), (1, 1));
        let closed: Vec<_> = w.tumbling().filter(|(_, c)| *c).map(|(s, _)| *s).collect();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].start_ms, closed[0].count, closed[0].late),
            (5 * MIN, 1, 1)
        );
        // Every event is in a tumbling window or counted as dropped.
        let counted: u64 = w.tumbling().map(|(s, _)| s.count).sum();
        assert_eq!(counted + l.dropped, 4);
    }

    #[test]
    fn the_watermark_is_the_slowest_partition_minus_the_delay() {
        let mut w = Windows::new(WindowSpec {
            watermark_delay_ms: 1000,
            ..spec()
        });
        w.assign(0);
        w.assign(1);
        // Partition 0 is read far ahead; the watermark waits for partition 1.
        w.observe(0, 100 * MIN, 1, false);
        assert_eq!(w.watermark(), None);
        w.observe(1, 10 * MIN, 1, false);
        assert_eq!(w.watermark(), Some(10 * MIN - 1000));
        w.observe(1, 20 * MIN, 1, false);
        assert_eq!(w.lateness().accepted + w.lateness().dropped, 0);
        w.observe(1, 200 * MIN, 1, false);
        assert_eq!(w.watermark(), Some(100 * MIN - 1000));
        // Partition 0 at its end holds nothing back; the watermark never goes back.
        w.idle(0);
        assert_eq!(w.watermark(), Some(200 * MIN - 1000));
        w.observe(0, 150 * MIN, 1, false);
        assert_eq!(w.watermark(), Some(200 * MIN - 1000));
        w.forget_partition(0);
        w.observe(1, 201 * MIN, 1, false);
        assert_eq!(w.watermark(), Some(201 * MIN - 1000));
    }

    #[test]
    fn at_the_end_of_input_only_windows_the_watermark_passed_are_closed() {
        let mut w = Windows::new(spec());
        w.observe(0, 0, 1, false);
        // Watermark 5.5 min: [0, 5) is complete but waits out the allowed lateness (until 6);
        // [5, 10) is partial.
        w.observe(0, 5 * MIN + 30_000, 1, false);
        assert!(w.tumbling().all(|(_, closed)| !closed));
        w.end_of_input();
        let tumbling: Vec<(i64, bool)> = w.tumbling().map(|(s, c)| (s.start_ms / MIN, c)).collect();
        assert_eq!(tumbling, vec![(0, true), (5, false)]);
        // Sliding: the five holding minute 0 end by minute 5 and close; the five holding minute
        // 5.5 ([1, 6) .. [5, 10)) stay open.
        assert_eq!(w.closed_totals(), (1, 5));
        assert_eq!(w.sliding().filter(|(_, closed)| !closed).count(), 5);
        assert_eq!(
            w.current().map(|c| (c.start_ms, c.count)),
            Some((5 * MIN, 1))
        );
    }

    #[test]
    fn without_a_watermark_nothing_closes_at_the_end_of_input() {
        let mut w = Windows::new(spec());
        w.assign(0);
        w.assign(1);
        w.observe(0, 0, 1, false);
        w.end_of_input();
        assert_eq!(w.closed_totals(), (0, 0));
    }
}
