//! What the simulator takes as the current time, and how it waits for a later one.
//!
//! The clock is real time shifted to start at a chosen instant: `--now TIME` pins where simulated
//! time starts, and from there it advances with the wall clock. With no `--now` the start is the
//! real now, so simulated and real time agree. Everything time-related (backfill window, live
//! deadlines, event timestamps) is measured against this one clock.
//!
//! The passing of time is itself injected, as tokio's `time::pause()` does it: a [`TimeSource`]
//! is the wall clock in production, or paused virtual time in tests, which stands still until
//! something sleeps on it (then it jumps to the deadline at once) or a test advances it. The
//! clock owns the sleep ([`SimClock::sleep_until`]) so the live stream never asks the wall clock
//! directly: on real time it sleeps through [`Shutdown::wait`] and still stops at once when
//! asked; on virtual time a ten-minute stream runs in milliseconds, each event at its deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::shutdown::Shutdown;

/// Where instants come from: the wall clock, or virtual time that moves only when slept on or
/// advanced. Clones share one time.
#[derive(Debug, Clone, Default)]
pub struct TimeSource {
    /// `None` for the wall clock.
    paused: Option<Arc<VirtualTime>>,
}

/// Virtual time: a fixed origin and how far time has moved past it.
#[derive(Debug)]
struct VirtualTime {
    origin: Instant,
    /// Nanoseconds past `origin`; only grows.
    elapsed_ns: AtomicU64,
}

impl TimeSource {
    /// The wall clock: production time.
    pub fn real() -> Self {
        Self::default()
    }

    /// Virtual time, standing still at the real now until something sleeps on it or
    /// [`TimeSource::advance`] moves it: the way tests run the live stream without waiting.
    pub fn paused() -> Self {
        Self {
            paused: Some(Arc::new(VirtualTime {
                origin: Instant::now(),
                elapsed_ns: AtomicU64::new(0),
            })),
        }
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        match &self.paused {
            None => Instant::now(),
            Some(time) => {
                time.origin + Duration::from_nanos(time.elapsed_ns.load(Ordering::SeqCst))
            }
        }
    }

    /// Moves virtual time `by` forward. The wall clock cannot be moved: on it this does nothing.
    pub fn advance(&self, by: Duration) {
        if self.paused.is_some() {
            self.move_to(self.now() + by);
        }
    }

    /// Sets virtual time to `instant` unless it is already later: time never goes back.
    fn move_to(&self, instant: Instant) {
        if let Some(time) = &self.paused {
            let ns = instant.saturating_duration_since(time.origin).as_nanos();
            let ns = u64::try_from(ns).unwrap_or(u64::MAX);
            time.elapsed_ns.fetch_max(ns, Ordering::SeqCst);
        }
    }

    /// Sleeps until `deadline`, returning early (with `true`) if `shutdown` is triggered.
    ///
    /// On the wall clock this waits on the stop signal, so a stop ends the sleep at once. On
    /// virtual time nothing waits: unless a stop was asked for, time jumps to `deadline`.
    pub fn sleep_until(&self, deadline: Instant, shutdown: &Shutdown) -> bool {
        if self.paused.is_none() {
            return shutdown.wait(deadline.saturating_duration_since(Instant::now()));
        }
        if shutdown.is_triggered() {
            return true;
        }
        self.move_to(deadline);
        false
    }
}

/// Simulated time that advances in step with a time source (the wall clock unless told
/// otherwise) from a pinned start.
#[derive(Debug, Clone)]
pub struct SimClock {
    start: DateTime<Utc>,
    started_at: Instant,
    time: TimeSource,
}

impl SimClock {
    /// A clock whose current time is `start` now, advancing in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self::on(TimeSource::real(), start)
    }

    /// A clock whose current time is `start` now, advancing with `time` (virtual time in tests).
    pub fn on(time: TimeSource, start: DateTime<Utc>) -> Self {
        Self {
            start,
            started_at: time.now(),
            time,
        }
    }

    /// The simulated time at which the clock was started.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.start + self.time.now().saturating_duration_since(self.started_at)
    }

    /// The instant of the clock's time source at which simulated time reaches `at` (in the past
    /// if already there).
    pub fn instant_of(&self, at: DateTime<Utc>) -> Instant {
        match (at - self.start).to_std() {
            Ok(ahead) => self.started_at + ahead,
            Err(_) => self.started_at,
        }
    }

    /// How long from now until simulated time reaches `at`; zero if it already has.
    pub fn until(&self, at: DateTime<Utc>) -> Duration {
        self.instant_of(at)
            .saturating_duration_since(self.time.now())
    }

    /// Sleeps until simulated time reaches `at`, returning early (with `true`) if `shutdown` is
    /// triggered; see [`TimeSource::sleep_until`].
    pub fn sleep_until(&self, at: DateTime<Utc>, shutdown: &Shutdown) -> bool {
        self.time.sleep_until(self.instant_of(at), shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        "2024-01-15T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn starts_at_the_pinned_time_and_maps_deadlines_to_instants() {
        let clock = SimClock::starting_at(start());
        assert!(clock.now() >= start());
        let later = start() + chrono::Duration::seconds(30);
        let gap = clock.instant_of(later) - clock.instant_of(start());
        assert_eq!(gap, Duration::from_secs(30));
        assert_eq!(clock.until(start()), Duration::ZERO);
    }

    #[test]
    fn paused_time_stands_still_until_advanced() {
        let time = TimeSource::paused();
        let clock = SimClock::on(time.clone(), start());
        assert_eq!(clock.now(), start());
        let later = start() + chrono::Duration::seconds(30);
        assert_eq!(clock.until(later), Duration::from_secs(30));
        time.advance(Duration::from_secs(10));
        assert_eq!(clock.now(), start() + chrono::Duration::seconds(10));
        assert_eq!(clock.until(later), Duration::from_secs(20));
        // The wall clock cannot be moved.
        let real = SimClock::starting_at(start());
        TimeSource::real().advance(Duration::from_secs(3_600));
        assert!(real.now() < start() + chrono::Duration::seconds(3_600));
    }

    #[test]
    fn sleeping_on_paused_time_jumps_to_the_deadline_and_never_back() {
        let clock = SimClock::on(TimeSource::paused(), start());
        let in_ten_minutes = start() + chrono::Duration::minutes(10);
        assert!(!clock.sleep_until(in_ten_minutes, &Shutdown::new()));
        assert_eq!(clock.now(), in_ten_minutes);
        assert!(!clock.sleep_until(start(), &Shutdown::new()));
        assert_eq!(clock.now(), in_ten_minutes);
    }

    #[test]
    fn a_stop_ends_a_sleep_at_once_on_either_time() {
        let stopped = Shutdown::new();
        stopped.trigger();
        let paused = SimClock::on(TimeSource::paused(), start());
        assert!(paused.sleep_until(start() + chrono::Duration::hours(1), &stopped));
        assert_eq!(paused.now(), start(), "a stopped sleep does not move time");
        // On the wall clock: an hour's sleep, ended by a stop from another thread.
        let shutdown = Shutdown::new();
        let sleeper = shutdown.clone();
        let sleeping = std::thread::spawn(move || {
            let clock = SimClock::starting_at(start());
            clock.sleep_until(start() + chrono::Duration::hours(1), &sleeper)
        });
        shutdown.trigger();
        assert!(sleeping.join().unwrap());
    }
}
