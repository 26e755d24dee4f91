//! The arrival rate over time: lambda(t) in events per minute.
//!
//! A curve is read in *segments*: spans of time over which the rate is constant. The timeline asks
//! for one segment at a time, so a script's `rate(t)` is called once a minute of simulated time,
//! not once an event, and the built-in peak-hour curve is exact (its rate only changes on local
//! hour boundaries, which always fall on a 15-minute UTC grid, whatever the time zone's offset).

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::script::ScriptError;

/// Nanoseconds since the Unix epoch: the timeline's unit of time.
pub type Nanos = i64;

/// Nanoseconds in one minute.
pub const MINUTE: Nanos = 60_000_000_000;

/// A span of simulated time over which the rate is constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// The segment's start (inclusive).
    pub start: Nanos,
    /// The segment's end (exclusive).
    pub end: Nanos,
    /// Events per minute throughout the segment.
    pub per_minute: f64,
}

impl Segment {
    /// Expected number of events in the segment.
    pub fn mass(&self) -> f64 {
        self.per_minute * (self.end - self.start) as f64 / MINUTE as f64
    }
}

/// Why the timeline cannot follow the rate curve.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RateError {
    /// The script's `rate(t)` failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// `rate(t)` returned a value that is not a rate.
    #[error("rate(t) returned {value} at {at}: a rate must be a finite number of events per minute, at least 0")]
    #[diagnostic(code(sim::rate::invalid))]
    InvalidRate {
        /// The time asked about.
        at: DateTime<Utc>,
        /// What came back.
        value: f64,
    },
    /// The rate is zero over the whole backfill window, so no event can be placed in it.
    #[error(
        "the rate is zero over the whole backfill window, so no historical event can be placed"
    )]
    #[diagnostic(code(sim::rate::empty_window))]
    EmptyBackfillWindow,
}

/// A rate function lambda(t), read segment by segment.
pub trait RateCurve {
    /// The segment that contains `t`.
    fn segment_at(&mut self, t: Nanos) -> Result<Segment, RateError>;
}

/// The seed's curve: `base` events per minute, times `peak_factor` inside the peak hours of the
/// time zone `tz`.
#[derive(Debug, Clone)]
pub struct PeakHours {
    /// Events per minute outside the peak hours.
    pub base_per_minute: f64,
    /// Multiplier inside the peak hours.
    pub peak_factor: f64,
    /// First peak hour (inclusive), 0-23.
    pub start_hour: u32,
    /// Hour the peak ends (exclusive), 1-24; smaller than `start_hour` for a peak across midnight.
    pub end_hour: u32,
    /// The zone whose local hours define the peak.
    pub tz: Tz,
}

/// The grid on which every time zone's hour boundaries fall (offsets are multiples of 15 min).
const QUARTER_HOUR: Nanos = 15 * MINUTE;

impl PeakHours {
    /// Whether local time at `t` is inside the peak hours.
    pub fn is_peak(&self, t: Nanos) -> bool {
        let hour = DateTime::<Utc>::from_timestamp_nanos(t)
            .with_timezone(&self.tz)
            .hour();
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }

    /// Events per minute at `t`.
    pub fn per_minute_at(&self, t: Nanos) -> f64 {
        if self.is_peak(t) {
            self.base_per_minute * self.peak_factor
        } else {
            self.base_per_minute
        }
    }
}

impl RateCurve for PeakHours {
    fn segment_at(&mut self, t: Nanos) -> Result<Segment, RateError> {
        let start = t.div_euclid(QUARTER_HOUR) * QUARTER_HOUR;
        Ok(Segment {
            start,
            end: start + QUARTER_HOUR,
            per_minute: self.per_minute_at(start),
        })
    }
}

/// A curve given by a function of time, sampled once a minute (the script's `rate(t)`).
pub struct SampledCurve<F> {
    rate_at: F,
}

impl<F> SampledCurve<F>
where
    F: FnMut(Nanos) -> Result<f64, RateError>,
{
    /// Samples `rate_at` (events per minute at a time) at the start of every minute.
    pub fn new(rate_at: F) -> Self {
        Self { rate_at }
    }
}

impl<F> RateCurve for SampledCurve<F>
where
    F: FnMut(Nanos) -> Result<f64, RateError>,
{
    fn segment_at(&mut self, t: Nanos) -> Result<Segment, RateError> {
        let start = t.div_euclid(MINUTE) * MINUTE;
        let per_minute = (self.rate_at)(start)?;
        if !per_minute.is_finite() || per_minute < 0.0 {
            return Err(RateError::InvalidRate {
                at: DateTime::<Utc>::from_timestamp_nanos(start),
                value: per_minute,
            });
        }
        Ok(Segment {
            start,
            end: start + MINUTE,
            per_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Nanos {
        s.parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn seed_curve(tz: Tz) -> PeakHours {
        PeakHours {
            base_per_minute: 100.0,
            peak_factor: 2.5,
            start_hour: 9,
            end_hour: 18,
            tz,
        }
    }

    #[test]
    fn peak_hours_in_utc_multiply_the_base_rate() {
        let curve = seed_curve(Tz::UTC);
        assert_eq!(curve.per_minute_at(at("2024-01-15T08:59:59Z")), 100.0);
        assert_eq!(curve.per_minute_at(at("2024-01-15T09:00:00Z")), 250.0);
        assert_eq!(curve.per_minute_at(at("2024-01-15T17:59:59Z")), 250.0);
        assert_eq!(curve.per_minute_at(at("2024-01-15T18:00:00Z")), 100.0);
    }

    #[test]
    fn peak_hours_follow_the_time_zone_offset() {
        // Tehran is UTC+3:30: 9:00 local is 5:30 UTC.
        let mut curve = seed_curve(chrono_tz::Asia::Tehran);
        assert_eq!(curve.per_minute_at(at("2024-01-15T05:29:00Z")), 100.0);
        assert_eq!(curve.per_minute_at(at("2024-01-15T05:30:00Z")), 250.0);
        let segment = curve.segment_at(at("2024-01-15T05:20:00Z")).unwrap();
        assert_eq!(segment.end, at("2024-01-15T05:30:00Z"));
        assert_eq!(segment.per_minute, 100.0);
    }

    #[test]
    fn a_peak_across_midnight_wraps() {
        let curve = PeakHours {
            start_hour: 22,
            end_hour: 6,
            ..seed_curve(Tz::UTC)
        };
        assert!(curve.is_peak(at("2024-01-15T23:00:00Z")));
        assert!(curve.is_peak(at("2024-01-15T05:00:00Z")));
        assert!(!curve.is_peak(at("2024-01-15T12:00:00Z")));
    }

    #[test]
    fn a_sampled_curve_rejects_negative_rates() {
        let mut curve = SampledCurve::new(|_| Ok(-1.0));
        assert!(matches!(
            curve.segment_at(0),
            Err(RateError::InvalidRate { .. })
        ));
    }
}
