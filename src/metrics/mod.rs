//! Running figures of a simulation, and the one-line status that shows them.
//!
//! The pipeline, the sink and hot reload update these counters from their threads; the command
//! line reads them to draw its status line (`crate::cli`), and the metrics endpoint
//! (`crate::exporter`) at each scrape. The library never prints.

mod group;
mod histogram;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use group::{GroupFigures, GroupSnapshot};
pub use histogram::{DurationHistogram, HistogramSnapshot, EVENT_SECONDS, LAG_SECONDS};

use crate::kafka::stats::{ClientStats, StatsSnapshot};
use crate::sink::DeliveryCounters;

/// How far a backfill is: arrivals planned and made, while one runs.
#[derive(Debug, Default)]
struct BackfillProgress {
    running: AtomicBool,
    /// The live stream started: no backfill comes after it.
    live: AtomicBool,
    planned: AtomicU64,
    done: AtomicU64,
}

/// How long events take: in the script, and against their deadlines.
#[derive(Debug)]
pub struct Timings {
    /// Time in the script per event made (arrival or follow-up), encoding included: recorded
    /// only while events are timed ([`Timings::time_events`]).
    pub event: DurationHistogram,
    /// How late live events are handed to the sink against their deadlines.
    pub lag: DurationHistogram,
    /// Whether anything reads [`Timings::event`]. Timing an event is two clock reads, which no
    /// one but the metrics endpoint reads: 3.8% of `sim sample scripts/hello.rhai`'s time
    /// (perf), so an event is timed only when the endpoint is up.
    timed: AtomicBool,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            event: DurationHistogram::new(EVENT_SECONDS),
            lag: DurationHistogram::new(LAG_SECONDS),
            timed: AtomicBool::new(false),
        }
    }
}

impl Timings {
    /// Times every event made from now on into [`Timings::event`]: something reads it.
    pub fn time_events(&self) {
        self.timed.store(true, Ordering::Relaxed);
    }

    /// Whether events are timed.
    pub fn events_timed(&self) -> bool {
        self.timed.load(Ordering::Relaxed)
    }
}

/// Figures the pipeline updates and the status line reads.
#[derive(Debug, Default)]
pub struct Metrics {
    events: AtomicU64,
    target_per_second: AtomicU64,
    revision: AtomicU64,
    reloads: AtomicU64,
    rejected: AtomicU64,
    skipped: AtomicU64,
    rollbacks: AtomicU64,
    longest_swap_ns: AtomicU64,
    made_ahead: AtomicU64,
    pending_follow_ups: AtomicU64,
    made_again: AtomicU64,
    deleted_by_broker: AtomicU64,
    workers: AtomicU64,
    streaming: AtomicBool,
    backfill: BackfillProgress,
    client: OnceLock<Arc<ClientStats>>,
    /// The sink's delivery counters.
    pub delivery: Arc<DeliveryCounters>,
    /// How long events take.
    pub timings: Timings,
    /// A member's figures, when this instance is one of a group (`--group`).
    pub group: GroupFigures,
}

impl Metrics {
    /// Counts events made ahead of their turn by the workers, and how many of them had to be
    /// made again in turn (they read memory that an earlier event changed).
    pub fn made_ahead(&self, ahead: u64, again: u64) {
        self.made_ahead.fetch_add(ahead, Ordering::Relaxed);
        self.made_again.fetch_add(again, Ordering::Relaxed);
    }

    /// Events made ahead of their turn, and of those, made again: see [`Metrics::made_ahead`].
    pub fn ahead_and_again(&self) -> (u64, u64) {
        (
            self.made_ahead.load(Ordering::Relaxed),
            self.made_again.load(Ordering::Relaxed),
        )
    }

    /// Sets how many follow-ups are scheduled and not yet made.
    pub fn set_pending_follow_ups(&self, pending: usize) {
        self.pending_follow_ups
            .store(pending as u64, Ordering::Relaxed);
    }

    /// Follow-ups scheduled and not yet made: state the scenario holds (a retry due in 30 s, a
    /// victim charged within 30 minutes), so memory grows with it until as many fall due as are
    /// scheduled.
    pub fn pending_follow_ups(&self) -> u64 {
        self.pending_follow_ups.load(Ordering::Relaxed)
    }

    /// Counts messages the broker deleted from the start of the topic's partitions.
    pub fn deleted_by_broker(&self, messages: u64) {
        self.deleted_by_broker
            .fetch_add(messages, Ordering::Relaxed);
    }

    /// Messages the broker deleted so far, after delivering them: see
    /// [`crate::broker::history`].
    pub fn deleted(&self) -> u64 {
        self.deleted_by_broker.load(Ordering::Relaxed)
    }

    /// Records how many workers make events.
    pub fn set_workers(&self, workers: usize) {
        self.workers.store(workers as u64, Ordering::Relaxed);
    }

    /// Workers making events: 0 until the pipeline starts.
    pub fn workers(&self) -> u64 {
        self.workers.load(Ordering::Relaxed)
    }

    /// Records that the scenario is loaded, set up and its events flow to the sink (or that
    /// they no longer do).
    pub fn set_streaming(&self, streaming: bool) {
        self.streaming.store(streaming, Ordering::Relaxed);
    }

    /// Whether the scenario is loaded and its events flow to the sink.
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed)
    }

    /// Records that a backfill of `planned` arrivals starts.
    pub fn start_backfill(&self, planned: u64) {
        self.backfill.planned.store(planned, Ordering::Relaxed);
        self.backfill.done.store(0, Ordering::Relaxed);
        self.backfill.running.store(true, Ordering::Release);
    }

    /// Counts `arrivals` of the backfill made.
    pub fn backfilled(&self, arrivals: u64) {
        self.backfill.done.fetch_add(arrivals, Ordering::Relaxed);
    }

    /// Records that the backfill ended (done, or stopped).
    pub fn end_backfill(&self) {
        self.backfill.running.store(false, Ordering::Release);
    }

    /// Records that the live stream starts (after the backfill, if there was one).
    pub fn start_live(&self) {
        self.backfill.live.store(true, Ordering::Release);
    }

    /// Whether the live stream started.
    pub fn live(&self) -> bool {
        self.backfill.live.load(Ordering::Acquire)
    }

    /// While a backfill runs: the arrivals made and planned, for a progress bar.
    pub fn backfill_progress(&self) -> Option<(u64, u64)> {
        self.backfill.running.load(Ordering::Acquire).then(|| {
            (
                self.backfill.done.load(Ordering::Relaxed),
                self.backfill.planned.load(Ordering::Relaxed),
            )
        })
    }

    /// Reads librdkafka's statistics of the sink's producer from now on.
    pub fn watch_client(&self, stats: Arc<ClientStats>) {
        let _ = self.client.set(stats);
    }

    /// The producer's latest statistics, when the sink is Kafka and one came.
    pub fn client_stats(&self) -> Option<StatsSnapshot> {
        self.client.get().and_then(|stats| stats.latest())
    }

    /// Counts one event made.
    pub fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Events made so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Records the rate the timeline is aiming for now.
    pub fn set_target_per_second(&self, rate: f64) {
        self.target_per_second
            .store(rate.to_bits(), Ordering::Relaxed);
    }

    /// The rate the timeline is aiming for now, events per second.
    pub fn target_per_second(&self) -> f64 {
        f64::from_bits(self.target_per_second.load(Ordering::Relaxed))
    }

    /// The revision of the script now running: 1, then one more per reload.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed).max(1)
    }

    /// Records a reload swapped in as `revision`, the swap having held the stream for `stall`.
    pub fn reloaded(&self, revision: u64, stall: Duration) {
        self.revision.store(revision, Ordering::Relaxed);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.longest_swap_ns
            .fetch_max(stall.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The longest the stream was held by a swap.
    pub fn longest_swap(&self) -> Duration {
        Duration::from_nanos(self.longest_swap_ns.load(Ordering::Relaxed))
    }

    /// Records an edit that was refused, leaving the running revision in place.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event skipped because its script failed (`on_error = skip`).
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Events skipped so far because their script failed: the `script errors` of the account.
    pub fn script_errors(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Records a reloaded revision rolled back: `revision` runs again.
    pub fn rolled_back(&self, revision: u64) {
        self.revision.store(revision, Ordering::Relaxed);
        self.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Rollbacks so far.
    pub fn rollbacks(&self) -> u64 {
        self.rollbacks.load(Ordering::Relaxed)
    }

    /// Reloads swapped in so far.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Edits refused so far.
    pub fn rejections(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The status line: rate target and achieved, delivered, failed, script revision.
    pub fn status_line(&self, achieved_per_second: f64) -> String {
        let account = self.delivery.account();
        let deleted = match self.deleted() {
            0 => String::new(),
            n => format!(" | deleted by broker {n}"),
        };
        let errors = match self.script_errors() {
            0 => String::new(),
            n => format!(" | script errors {n}"),
        };
        let rollbacks = match self.rollbacks() {
            0 => String::new(),
            n => format!(", {n} rolled back"),
        };
        let waiting = waiting_note(self.delivery.waiting_for());
        let group = match self.group.snapshot() {
            Some(g) => format!(
                " | group {}: {}/{} shards, {:.0}% of {} arrivals",
                g.name,
                g.owned,
                g.shards,
                g.share() * 100.0,
                g.timeline
            ),
            None => String::new(),
        };
        format!(
            "rate {:.1}/s (target {:.1}/s) | events {} | delivered {}{deleted} | failed {}{errors} | in flight {}{waiting} | follow-ups {} | rev {} ({} reloads, {} rejected{rollbacks}){group}",
            achieved_per_second,
            self.target_per_second(),
            self.events(),
            account.delivered,
            account.failed,
            account.in_flight(),
            self.pending_follow_ups(),
            self.revision(),
            self.reloads(),
            self.rejections(),
        )
    }
}

/// What the status line adds while the sink waits for room in a full queue: waits of a moment
/// are back-pressure, longer ones a broker that takes nothing.
fn waiting_note(waited: Option<Duration>) -> String {
    match waited {
        Some(waited) if waited >= Duration::from_secs(1) => {
            format!(
                " (queue full, waiting for the broker {} s)",
                waited.as_secs()
            )
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_shows_rates_account_and_revision() {
        let metrics = Metrics::default();
        metrics.set_target_per_second(10.0);
        metrics.event();
        metrics.delivery.produced();
        metrics.delivery.delivered();
        metrics.reloaded(3, Duration::from_micros(200));
        metrics.rejected();
        let line = metrics.status_line(9.5);
        assert_eq!(
            line,
            "rate 9.5/s (target 10.0/s) | events 1 | delivered 1 | failed 0 | in flight 0 | follow-ups 0 | rev 3 (1 reloads, 1 rejected)"
        );
    }

    #[test]
    fn the_status_line_shows_a_member_s_shards_and_share() {
        let metrics = Metrics::default();
        assert!(!metrics.status_line(0.0).contains("group"));
        metrics.group.join("g", 12);
        metrics.group.rebalanced(4, 0);
        metrics.group.made(30);
        metrics.group.reached(120);
        assert!(
            metrics
                .status_line(0.0)
                .ends_with(" | group g: 4/12 shards, 25% of 120 arrivals"),
            "{}",
            metrics.status_line(0.0)
        );
    }

    #[test]
    fn the_status_line_counts_script_errors_and_rollbacks_once_there_are_some() {
        let metrics = Metrics::default();
        assert!(!metrics.status_line(0.0).contains("script errors"));
        metrics.skipped();
        metrics.skipped();
        metrics.reloaded(2, Duration::ZERO);
        metrics.rolled_back(1);
        let line = metrics.status_line(0.0);
        assert!(line.contains("| failed 0 | script errors 2 |"), "{line}");
        assert!(
            line.contains("rev 1 (1 reloads, 0 rejected, 1 rolled back)"),
            "{line}"
        );
    }

    #[test]
    fn the_status_line_counts_what_the_broker_deleted_once_it_has() {
        let metrics = Metrics::default();
        assert!(!metrics.status_line(0.0).contains("deleted"));
        metrics.deleted_by_broker(970);
        metrics.deleted_by_broker(30);
        assert!(metrics
            .status_line(0.0)
            .contains("| delivered 0 | deleted by broker 1000 | failed 0 |"));
    }

    #[test]
    fn a_long_wait_for_room_is_shown() {
        assert_eq!(waiting_note(None), "");
        assert_eq!(waiting_note(Some(Duration::from_millis(300))), "");
        assert_eq!(
            waiting_note(Some(Duration::from_secs(42))),
            " (queue full, waiting for the broker 42 s)"
        );
    }
}
