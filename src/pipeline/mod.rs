//! The pipeline: the one place that knows the timeline, the script and the sink together.
//!
//! Each arrival time from the timeline becomes a call to `event(ctx)`; each event it returns is
//! encoded and handed to the sink. The same pipeline runs in virtual time (backfill, sample: as
//! fast as the machine allows) and in real time (live: each arrival waits for its deadline on the
//! clock, and all arrivals already due are emitted at once, so a slow moment is caught up instead
//! of drifting).

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Map};

use crate::clock::SimClock;
use crate::encode::EventEncoder;
use crate::error::SimError;
use crate::labels;
use crate::metrics::Metrics;
use crate::rate::{Nanos, PeakHours, RateCurve, SampledCurve};
use crate::rng::{stream_rng, Stream};
use crate::schema::Violation;
use crate::script::Scenario;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::sink::{Record, Sink};
use crate::timeline::{Arrivals, Backfill};

mod follow_ups;

use follow_ups::FollowUpQueue;

/// The longest the live loop sleeps before looking at the stop signal again.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// How many events pass between checks of the stop signal in virtual time.
const STOP_CHECK_EVERY: u64 = 256;

/// Nanoseconds since the epoch of `time`.
pub fn nanos(time: DateTime<Utc>) -> Nanos {
    time.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A scenario wired to a sink.
pub struct Pipeline<'s> {
    scenario: Scenario,
    peak_hours: PeakHours,
    encoder: EventEncoder,
    sink: &'s mut dyn Sink,
    metrics: Arc<Metrics>,
    seed: u64,
    next_seq: i64,
    /// When checking, every event's schema and invariant violations with its sequence number.
    violations: Option<Vec<(i64, Violation)>>,
    /// The revision of the running script.
    revision: u64,
    /// Whether events carry their ground truth as a `_label` field (`--labels`).
    labels: bool,
    /// New versions of the script, ready to swap in at the next event boundary.
    reloads: Option<Receiver<Candidate>>,
    /// Follow-ups the script scheduled, earliest first.
    follow_ups: FollowUpQueue,
}

/// A new version of the scenario, compiled, set up and checked, ready to be swapped in.
pub struct Candidate {
    /// The scenario, its event generator on the stream of its generation.
    pub scenario: Scenario,
    /// Its resolved settings.
    pub settings: Settings,
    /// Its revision.
    pub revision: u64,
}

fn peak_hours(settings: &Settings) -> PeakHours {
    PeakHours {
        base_per_minute: settings.rate_per_minute,
        peak_factor: settings.peak_factor,
        start_hour: settings.peak_hours.0,
        end_hour: settings.peak_hours.1,
        tz: settings.timezone,
    }
}

impl<'s> Pipeline<'s> {
    /// Wires a scenario (already set up) to `sink`.
    pub fn new(
        scenario: Scenario,
        settings: &Settings,
        seed: u64,
        sink: &'s mut dyn Sink,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            scenario,
            peak_hours: peak_hours(settings),
            encoder: EventEncoder::new(&settings.key_field),
            sink,
            metrics,
            seed,
            next_seq: 0,
            violations: None,
            revision: 1,
            labels: false,
            reloads: None,
            follow_ups: FollowUpQueue::default(),
        }
    }

    /// Adds the ground truth to every event as a `_label` field: `{"fraud": bool, "pattern":
    /// name or null}` (`--labels`). Without it the payload is exactly the scenario's event.
    pub fn label_events(&mut self, on: bool) {
        self.labels = on;
    }

    /// Swaps in new versions of the scenario as they arrive on `reloads` (live streaming only).
    pub fn accept_reloads(&mut self, reloads: Receiver<Candidate>) {
        self.reloads = Some(reloads);
    }

    /// Swaps in a reloaded scenario if one is waiting. Called between events, so an event is made
    /// wholly by one version; the timeline and the sequence numbers carry on untouched.
    fn swap_if_reloaded(&mut self, arrivals: &mut Arrivals) {
        let Some(candidate) = self.reloads.as_ref().and_then(|rx| rx.try_recv().ok()) else {
            return;
        };
        let started = Instant::now();
        let mut scenario = candidate.scenario;
        scenario.take_memory_from(&self.scenario);
        let retired = std::mem::replace(&mut self.scenario, scenario);
        // Freeing a large world (a million customers) takes milliseconds: not on this thread.
        std::thread::spawn(move || drop(retired));
        self.peak_hours = peak_hours(&candidate.settings);
        self.revision = candidate.revision;
        // The new version may have a new rate; the arrival already drawn stands.
        arrivals.forget_segment();
        self.metrics.reloaded(candidate.revision, started.elapsed());
    }

    /// Gives back the scenario (after a check run, for instance).
    pub fn into_scenario(self) -> Scenario {
        self.scenario
    }

    /// Checks every event against the scenario's schema and invariants from now on (for
    /// `sim check` and reload); the violations are collected, not fatal.
    pub fn validate_events(&mut self) {
        self.violations.get_or_insert_with(Vec::new);
    }

    /// The violations collected since [`Pipeline::validate_events`], with sequence numbers.
    pub fn take_violations(&mut self) -> Vec<(i64, Violation)> {
        self.violations.take().unwrap_or_default()
    }

    /// Calls `f` with the rate curve in force: the script's `rate(t)` or the peak-hour curve.
    fn with_curve<T>(
        &mut self,
        f: impl FnOnce(&mut dyn RateCurve) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        if self.scenario.has_rate() {
            let scenario = &mut self.scenario;
            let mut curve =
                SampledCurve::new(|t| scenario.rate(t / 1_000_000).map_err(SimError::from));
            f(&mut curve)
        } else {
            f(&mut self.peak_hours)
        }
    }

    fn next_arrival(&mut self, arrivals: &mut Arrivals) -> Result<Option<Nanos>, SimError> {
        let next = self.with_curve(|curve| arrivals.next_arrival(curve))?;
        self.metrics
            .set_target_per_second(arrivals.current_per_minute() / 60.0);
        Ok(next)
    }

    /// Makes and sends the events of the arrival at `t`; returns how many were sent.
    fn emit(&mut self, t: Nanos) -> Result<u64, SimError> {
        let time_ms = t.div_euclid(1_000_000);
        let seq = self.next_seq;
        self.next_seq += 1;
        let made = self.scenario.event(time_ms, seq)?;
        self.collect_scheduled();
        self.send_all(made, time_ms, seq)
    }

    /// Moves the calls the script just scheduled into the timeline's queue.
    fn collect_scheduled(&mut self) {
        for scheduled in self.scenario.take_scheduled() {
            self.follow_ups.schedule(scheduled);
        }
    }

    /// When the earliest scheduled follow-up is due.
    fn next_follow_up(&self) -> Option<Nanos> {
        self.follow_ups.next_due()
    }

    /// Makes and sends the earliest scheduled follow-up.
    fn emit_follow_up(&mut self) -> Result<u64, SimError> {
        let Some(scheduled) = self.follow_ups.pop() else {
            return Ok(0);
        };
        let time_ms = scheduled.at_ms;
        let seq = self.next_seq;
        self.next_seq += 1;
        let made = self.scenario.follow_up(scheduled, seq)?;
        self.collect_scheduled();
        self.send_all(made, time_ms, seq)
    }

    /// Emits every follow-up due at or before `upto`, in time order.
    fn emit_follow_ups_due(&mut self, upto: Nanos) -> Result<u64, SimError> {
        let mut sent = 0;
        while self.next_follow_up().is_some_and(|at| at <= upto) {
            sent += self.emit_follow_up()?;
        }
        Ok(sent)
    }

    /// Sends what a script function returned (a map, an array of maps, or `()`).
    fn send_all(&mut self, made: Dynamic, time_ms: i64, seq: i64) -> Result<u64, SimError> {
        if made.is_map() {
            self.send(made.cast::<Map>(), time_ms, seq)?;
            Ok(1)
        } else if made.is_array() {
            let mut sent = 0;
            for event in made.cast::<Array>() {
                if let Some(event) = event.try_cast::<Map>() {
                    self.send(event, time_ms, seq)?;
                    sent += 1;
                }
            }
            Ok(sent)
        } else {
            Ok(0)
        }
    }

    fn send(&mut self, mut event: Map, time_ms: i64, seq: i64) -> Result<(), SimError> {
        let pattern = labels::take_fraud_pattern(&mut event, seq)?;
        if let Some(violations) = &mut self.violations {
            let mut found = Vec::new();
            self.scenario.check_event(&event, &mut found)?;
            violations.extend(found.into_iter().map(|v| (seq, v)));
        }
        if self.labels {
            labels::add_label(&mut event, pattern.as_deref());
        }
        self.encoder.encode(&event, seq)?;
        self.sink.send(Record {
            key: Some(&self.encoder.key),
            payload: &self.encoder.payload,
            timestamp_ms: time_ms,
            revision: self.revision,
            fraud_pattern: pattern.as_deref(),
        })?;
        self.metrics.event();
        Ok(())
    }

    /// Produces `count` historical events over the `days` before `end`, in virtual time.
    /// Returns the number of events sent (an arrival may make several, or none).
    pub fn backfill(
        &mut self,
        end: DateTime<Utc>,
        count: u64,
        days: f64,
        shutdown: &Shutdown,
    ) -> Result<u64, SimError> {
        let end = nanos(end);
        let start = end - (days * 86_400e9) as Nanos;
        let rng = stream_rng(self.seed, Stream::Backfill);
        let times = self.with_curve(|curve| Backfill::new(curve, start, end, count, rng))?;
        let mut sent = 0;
        for (i, t) in times.enumerate() {
            if i as u64 % STOP_CHECK_EVERY == 0 && shutdown.is_triggered() {
                return Ok(sent);
            }
            sent += self.emit_follow_ups_due(t)?;
            sent += self.emit(t)?;
        }
        // Follow-ups inside the window are history too; later ones wait for the live stream.
        sent += self.emit_follow_ups_due(end - 1)?;
        Ok(sent)
    }

    /// Produces `count` events following the timeline from `start`, without waiting: `sample`.
    pub fn sample(&mut self, start: DateTime<Utc>, count: u64) -> Result<u64, SimError> {
        let mut arrivals = Arrivals::after(nanos(start), stream_rng(self.seed, Stream::Timeline));
        let mut sent = 0;
        while sent < count {
            let arrival = self.next_arrival(&mut arrivals)?;
            // Follow-ups due before the arrival come first, one at a time (each may schedule more).
            while sent < count
                && self
                    .next_follow_up()
                    .is_some_and(|f| arrival.is_none_or(|t| f <= t))
            {
                sent += self.emit_follow_up()?;
            }
            match arrival {
                Some(t) if sent < count => sent += self.emit(t)?,
                Some(_) => {}
                None if self.next_follow_up().is_none() => break,
                None => {}
            }
        }
        Ok(sent)
    }

    /// Streams in real time from the clock's start until `shutdown` (or, with `until`, until
    /// simulated time reaches it). Returns the number of events sent.
    pub fn live(
        &mut self,
        clock: &SimClock,
        shutdown: &Shutdown,
        until: Option<DateTime<Utc>>,
    ) -> Result<u64, SimError> {
        let mut arrivals = Arrivals::after(
            nanos(clock.start()),
            stream_rng(self.seed, Stream::Timeline),
        );
        let until = until.map(nanos).unwrap_or(Nanos::MAX);
        let mut sent = 0;
        let mut next = self.next_arrival(&mut arrivals)?;
        let mut since_check = 0;
        loop {
            let follow_up = self.next_follow_up();
            let due = match (next, follow_up) {
                (None, None) => break,
                (Some(t), None) | (None, Some(t)) => t,
                (Some(a), Some(f)) => a.min(f),
            };
            if due >= until {
                // Wait out the rest of the run, then stop.
                shutdown.wait(clock.until(DateTime::from_timestamp_nanos(until)));
                break;
            }
            let wait = clock.until(DateTime::from_timestamp_nanos(due));
            if !wait.is_zero() {
                if shutdown.wait(wait.min(MAX_SLEEP)) {
                    break;
                }
                since_check = 0;
                continue;
            }
            since_check += 1;
            if since_check % STOP_CHECK_EVERY == 0 && shutdown.is_triggered() {
                break;
            }
            self.swap_if_reloaded(&mut arrivals);
            match next {
                Some(t) if follow_up.is_none_or(|f| t < f) => {
                    sent += self.emit(t)?;
                    next = self.next_arrival(&mut arrivals)?;
                }
                _ => sent += self.emit_follow_up()?,
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests;
