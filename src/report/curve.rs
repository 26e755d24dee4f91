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
