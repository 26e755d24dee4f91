//! The scenario's rate curve over the summary's time buckets: what the first chart draws beside
//! the events counted, so a reader sees whether the stream followed its scenario.
//!
//! The curve is the one the timeline follows (see [`crate::rate`]): the script's `rate(t)` when
//! it defines one, else the peak-hour curve of its settings. It is sampled at minutes inside each
//! bucket and averaged, since a long stream's buckets are wider than a minute.

use crate::analyze::shape::ShapeSummary;
use crate::pipeline::peak_hours;
use crate::rate::{RateError, MINUTE};
use crate::scenario::{prepare, Options};

use super::ReportError;

/// Samples of the rate taken in one bucket at most: enough to follow an hourly curve in a
/// bucket of a few hours, and a bounded number of script calls however wide the buckets.
const SAMPLES_PER_BUCKET: i64 = 16;

/// The rate in force over one time bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    /// The bucket's start, milliseconds since the epoch.
    pub start_ms: i64,
    /// Events per minute, averaged over the bucket.
    pub per_minute: f64,
}

/// The rate of the scenario of `options` over every bucket of `shape`.
pub fn rate_curve(options: &Options, shape: &ShapeSummary) -> Result<Vec<RatePoint>, ReportError> {
    let path = options.script.clone();
    let mut prepared = prepare(options).map_err(|source| ReportError::Scenario {
        path: path.clone(),
        cause: Box::new(source),
    })?;
    let curve = peak_hours(&prepared.settings);
    let scenario = &mut prepared.scenario;
    let has_rate = scenario.has_rate();
    let mut rate_at = |ms: i64| -> Result<f64, RateError> {
        if has_rate {
            Ok(scenario.rate(ms)?)
        } else {
            Ok(curve.per_minute_at(ms.saturating_mul(1_000_000)))
        }
    };
    let bucket_ms = (shape.bucket_s.max(60) * 1000) as i64;
    let minutes = (bucket_ms * 1_000_000 / MINUTE).max(1);
    let samples = minutes.min(SAMPLES_PER_BUCKET);
    let step_ms = bucket_ms / samples;
    let mut points = Vec::with_capacity(shape.buckets.len());
    for bucket in &shape.buckets {
        let mut sum = 0.0;
        for i in 0..samples {
            sum += rate_at(bucket.start_ms + i * step_ms).map_err(|source| ReportError::Rate {
                path: path.clone(),
                cause: Box::new(source),
            })?;
        }
        points.push(RatePoint {
            start_ms: bucket.start_ms,
            per_minute: sum / samples as f64,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::shape::TimeBucket;
    use crate::settings::UserInput;

    fn options(script: &str) -> Options {
        Options {
            script: script.into(),
            input: UserInput::default(),
            seed: Some(0),
            now: None,
            sink: crate::sink::SinkSpec::Stdout,
            labels: false,
            meta: false,
            time: crate::clock::TimeSource::real(),
        }
    }

    fn shape_at(hours_utc: &[i64]) -> ShapeSummary {
        let day = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        ShapeSummary {
            bucket_s: 60,
            buckets: hours_utc
                .iter()
                .map(|h| TimeBucket {
                    start_ms: day + h * 3_600_000,
                    events: 1,
                    declined: 0,
                })
                .collect(),
            ..ShapeSummary::default()
        }
    }

    #[test]
    fn the_peak_hour_curve_is_higher_inside_the_peak() {
        // 01:00 UTC is night in UTC and in Tehran; 12:00 UTC is inside 9-18 in both.
        let curve = rate_curve(&options("scripts/darooghe.rhai"), &shape_at(&[1, 12])).unwrap();
        assert_eq!(curve.len(), 2);
        assert!(curve[0].per_minute > 0.0);
        assert!(curve[1].per_minute > curve[0].per_minute, "{curve:?}");
    }

    #[test]
    fn a_scenario_that_does_not_load_is_named() {
        let err = rate_curve(
            &options("tests/fixtures/syntax_error.rhai"),
            &shape_at(&[1]),
        )
        .unwrap_err();
        assert!(matches!(err, ReportError::Scenario { .. }));
        assert!(err.to_string().contains("syntax_error.rhai"), "{err}");
    }
}
