//! The pipeline: the one place that knows the timeline, the script and the sink together.
//!
//! Each arrival time from the timeline becomes a call to `event(ctx)`; each event it returns is
//! encoded and handed to the sink. The same pipeline runs in virtual time (backfill, sample: as
//! fast as the machine allows) and in real time (live: each arrival waits for its deadline on the
//! clock, and all arrivals already due are emitted at once, so a slow moment is caught up instead
//! of drifting).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rhai::{Array, Map};

use crate::clock::SimClock;
use crate::encode::EventEncoder;
use crate::error::SimError;
use crate::metrics::Metrics;
use crate::rate::{Nanos, PeakHours, RateCurve, SampledCurve};
use crate::rng::{stream_rng, Stream};
use crate::script::Scenario;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::sink::{Record, Sink};
use crate::timeline::{Arrivals, Backfill};

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
            peak_hours: PeakHours {
                base_per_minute: settings.rate_per_minute,
                peak_factor: settings.peak_factor,
                start_hour: settings.peak_hours.0,
                end_hour: settings.peak_hours.1,
                tz: settings.timezone,
            },
            encoder: EventEncoder::new(&settings.key_field),
            sink,
            metrics,
            seed,
            next_seq: 0,
        }
    }

    /// Arrivals made so far (the next sequence number).
    pub fn arrivals_made(&self) -> i64 {
        self.next_seq
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
        if made.is_map() {
            let event = made.cast::<Map>();
            self.send(&event, time_ms, seq)?;
            Ok(1)
        } else if made.is_array() {
            let events = made.cast::<Array>();
            for event in &events {
                if let Some(event) = event.read_lock::<Map>() {
                    self.send(&event, time_ms, seq)?;
                }
            }
            Ok(events.len() as u64)
        } else {
            Ok(0)
        }
    }

    fn send(&mut self, event: &Map, time_ms: i64, seq: i64) -> Result<(), SimError> {
        self.encoder.encode(event, seq)?;
        self.sink.send(Record {
            key: Some(&self.encoder.key),
            payload: &self.encoder.payload,
            timestamp_ms: time_ms,
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
                break;
            }
            sent += self.emit(t)?;
        }
        Ok(sent)
    }

    /// Produces `count` events following the timeline from `start`, without waiting: `sample`.
    pub fn sample(&mut self, start: DateTime<Utc>, count: u64) -> Result<u64, SimError> {
        let mut arrivals = Arrivals::after(nanos(start), stream_rng(self.seed, Stream::Timeline));
        let mut sent = 0;
        while sent < count {
            let Some(t) = self.next_arrival(&mut arrivals)? else {
                break;
            };
            sent += self.emit(t)?;
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
        while let Some(t) = next {
            if t >= until {
                // Wait out the rest of the run, then stop.
                shutdown.wait(clock.until(DateTime::from_timestamp_nanos(until)));
                break;
            }
            let wait = clock.until(DateTime::from_timestamp_nanos(t));
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
            sent += self.emit(t)?;
            next = self.next_arrival(&mut arrivals)?;
        }
        Ok(sent)
    }

    /// The sink, for closing and accounting.
    pub fn sink(&mut self) -> &mut dyn Sink {
        self.sink
    }

    /// The scenario, e.g. to call its functions.
    pub fn scenario(&mut self) -> &mut Scenario {
        &mut self.scenario
    }
}
