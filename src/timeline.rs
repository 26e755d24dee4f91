//! When events happen: a non-homogeneous Poisson process over a [`RateCurve`].
//!
//! Two views of the same process:
//! - [`Arrivals`] walks forward from a start time, one arrival at a time, each a fixed point in
//!   simulated time (an absolute deadline). The live stream waits for each deadline on the clock;
//!   `sample` and tests read them without waiting. Arrival times come from the time change of a
//!   unit-rate process: an Exp(1) "mass" is spent across the curve's segments, so the gaps are
//!   exponential wherever the rate is constant, and a rate change mid-gap is honoured exactly.
//! - [`Backfill`] places a fixed number of events in a past window. Given their count, the arrival
//!   times of a Poisson process are independent draws from the density lambda(t) / Lambda, so the
//!   backfill draws them in ascending order (sequential order statistics, O(1) memory) and maps
//!   each through the inverse of the cumulative rate. Peak hours come out busier by the peak factor.

use rand::Rng;
use rand_distr::{Distribution, Exp1};

use crate::rate::{Nanos, RateCurve, RateError, Segment, MINUTE};
use crate::rng::SimRng;

/// How far [`Arrivals`] looks ahead through zero-rate time before it concludes there are no more
/// arrivals (a curve that stays at zero would otherwise be searched forever).
const MAX_IDLE: Nanos = 366 * 24 * 60 * MINUTE;

/// The arrivals of the process after a start time, in order.
pub struct Arrivals {
    now: Nanos,
    segment: Option<Segment>,
    rng: SimRng,
}

impl Arrivals {
    /// Arrivals strictly after `start`, drawn from `rng`.
    pub fn after(start: Nanos, rng: SimRng) -> Self {
        Self {
            now: start,
            segment: None,
            rng,
        }
    }

    /// Forgets the cached segment, so the next arrival reads the (possibly new) curve afresh.
    pub fn forget_segment(&mut self) {
        self.segment = None;
    }

    /// Events per minute at the current position, once an arrival has been drawn.
    pub fn current_per_minute(&self) -> f64 {
        self.segment.map_or(0.0, |segment| segment.per_minute)
    }

    /// The time of the next arrival, or `None` when the rate stays at zero for over a year.
    pub fn next_arrival(&mut self, curve: &mut dyn RateCurve) -> Result<Option<Nanos>, RateError> {
        let mut mass: f64 = Exp1.sample(&mut self.rng);
        let idle_limit = self.now.saturating_add(MAX_IDLE);
        loop {
            let segment = match self.segment {
                Some(segment) if self.now < segment.end => segment,
                _ => {
                    let segment = curve.segment_at(self.now)?;
                    self.segment = Some(segment);
                    segment
                }
            };
            let per_ns = segment.per_minute / MINUTE as f64;
            let left_in_segment = per_ns * (segment.end - self.now) as f64;
            if per_ns > 0.0 && mass < left_in_segment {
                // At least one nanosecond apart, so arrivals are strictly increasing.
                let gap = ((mass / per_ns) as Nanos).max(1);
                self.now += gap;
                return Ok(Some(self.now));
            }
            mass -= left_in_segment;
            self.now = segment.end;
            if self.now > idle_limit {
                return Ok(None);
            }
        }
    }
}

/// A fixed number of arrival times spread over a window by the rate curve, in ascending order.
pub struct Backfill {
    segments: Vec<Segment>,
    /// Cumulative mass at the start of each segment.
    cumulative: Vec<f64>,
    total: f64,
    remaining: u64,
    /// The last order statistic drawn, in (0, 1).
    position: f64,
    cursor: usize,
    rng: SimRng,
}

impl Backfill {
    /// `count` arrival times in `[start, end)`, shaped by `curve`.
    pub fn new(
        curve: &mut dyn RateCurve,
        start: Nanos,
        end: Nanos,
        count: u64,
        rng: SimRng,
    ) -> Result<Self, RateError> {
        let mut segments = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0.0;
        let mut t = start;
        while t < end {
            let mut segment = curve.segment_at(t)?;
            segment.start = t;
            segment.end = segment.end.min(end);
            cumulative.push(total);
            total += segment.mass();
            segments.push(segment);
            t = segment.end;
        }
        if count > 0 && total <= 0.0 {
            return Err(RateError::EmptyBackfillWindow);
        }
        Ok(Self {
            segments,
            cumulative,
            total,
            remaining: count,
            position: 0.0,
            cursor: 0,
            rng,
        })
    }
}

impl Iterator for Backfill {
    type Item = Nanos;

    fn next(&mut self) -> Option<Nanos> {
        if self.remaining == 0 {
            return None;
        }
        // The smallest of k uniforms on (p, 1) is p + (1 - p)(1 - U^(1/k)).
        let u: f64 = self.rng.random();
        let k = self.remaining as f64;
        self.position += (1.0 - self.position) * (1.0 - u.powf(1.0 / k));
        self.remaining -= 1;
        let target = self.position * self.total;
        while self.cursor + 1 < self.segments.len() && self.cumulative[self.cursor + 1] <= target {
            self.cursor += 1;
        }
        let segment = self.segments[self.cursor];
        let into = target - self.cumulative[self.cursor];
        let per_ns = segment.per_minute / MINUTE as f64;
        let offset = if per_ns > 0.0 {
            (into / per_ns) as Nanos
        } else {
            0
        };
        Some((segment.start + offset).min(segment.end - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::PeakHours;
    use crate::rng::{stream_rng, Stream};
    use chrono_tz::Tz;

    fn constant(per_minute: f64) -> PeakHours {
        PeakHours {
            base_per_minute: per_minute,
            peak_factor: 1.0,
            start_hour: 9,
            end_hour: 18,
            tz: Tz::UTC,
        }
    }

    /// Kolmogorov-Smirnov statistic of `samples` against Exp(rate).
    fn ks_exponential(samples: &mut [f64], rate: f64) -> f64 {
        samples.sort_by(f64::total_cmp);
        let n = samples.len() as f64;
        samples
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let cdf = 1.0 - (-rate * x).exp();
                let above = (i + 1) as f64 / n - cdf;
                let below = cdf - i as f64 / n;
                above.max(below)
            })
            .fold(0.0, f64::max)
    }

    fn gaps_in_seconds(curve: &mut dyn RateCurve, count: usize, seed: u64) -> Vec<f64> {
        let mut arrivals = Arrivals::after(0, stream_rng(seed, Stream::Timeline));
        let mut last = 0;
        (0..count)
            .map(|_| {
                let t = arrivals.next_arrival(curve).unwrap().unwrap();
                let gap = (t - last) as f64 / 1e9;
                last = t;
                gap
            })
            .collect()
    }

    #[test]
    fn inter_arrival_times_pass_a_kolmogorov_smirnov_test_for_the_exponential() {
        // 6,000 per minute = 100 per second; 20,000 gaps cross many 15-minute segments.
        let n = 20_000;
        let mut gaps = gaps_in_seconds(&mut constant(6_000.0), n, 42);
        let d = ks_exponential(&mut gaps, 100.0);
        // Critical value at alpha = 0.001 is 1.95 / sqrt(n).
        let critical = 1.95 / (n as f64).sqrt();
        assert!(d < critical, "KS statistic {d} >= {critical}");
    }

    #[test]
    fn the_kolmogorov_smirnov_check_rejects_evenly_spaced_arrivals() {
        // Guards the test above: a deterministic 10 ms spacing is not exponential.
        let mut gaps = vec![0.01; 20_000];
        let d = ks_exponential(&mut gaps, 100.0);
        assert!(d > 1.95 / (20_000f64).sqrt());
    }

    #[test]
    fn arrivals_are_strictly_increasing_and_follow_the_rate() {
        let mut curve = constant(60.0);
        let mut arrivals = Arrivals::after(0, stream_rng(1, Stream::Timeline));
        let mut last = 0;
        let mut count = 0;
        while let Some(t) = arrivals.next_arrival(&mut curve).unwrap() {
            assert!(t > last);
            last = t;
            if t > 1_000 * MINUTE {
                break;
            }
            count += 1;
        }
        // 60 per minute over 1,000 minutes: 60,000 expected, sd about 245.
        assert!((58_500..61_500).contains(&count), "{count}");
    }

    #[test]
    fn a_curve_that_stays_at_zero_ends_the_arrivals() {
        let mut curve = constant(0.0);
        let mut arrivals = Arrivals::after(0, stream_rng(1, Stream::Timeline));
        assert_eq!(arrivals.next_arrival(&mut curve).unwrap(), None);
    }

    #[test]
    fn backfill_gives_the_count_in_order_inside_the_window() {
        let mut curve = constant(100.0);
        let (start, end) = (1_000 * MINUTE, 2_000 * MINUTE);
        let times: Vec<Nanos> = Backfill::new(
            &mut curve,
            start,
            end,
            5_000,
            stream_rng(3, Stream::Timeline),
        )
        .unwrap()
        .collect();
        assert_eq!(times.len(), 5_000);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|&t| (start..end).contains(&t)));
        // Uniform rate: each half of the window holds about half the events.
        let first_half = times.iter().filter(|&&t| t < 1_500 * MINUTE).count();
        assert!((2_300..2_700).contains(&first_half), "{first_half}");
    }

    #[test]
    fn a_seven_day_backfill_is_busier_in_peak_hours_by_the_peak_factor() {
        let mut curve = PeakHours {
            peak_factor: 2.5,
            ..constant(100.0)
        };
        let end = 20_000 * 24 * 60 * MINUTE; // a day boundary
        let start = end - 7 * 24 * 60 * MINUTE;
        let mut per_hour = [0u32; 24];
        for t in Backfill::new(
            &mut curve,
            start,
            end,
            20_000,
            stream_rng(9, Stream::Timeline),
        )
        .unwrap()
        {
            per_hour[((t / (60 * MINUTE)) % 24) as usize] += 1;
        }
        let peak: f64 = per_hour[9..18].iter().map(|&c| c as f64).sum::<f64>() / 9.0;
        let off: f64 = (per_hour[..9].iter().chain(&per_hour[18..]))
            .map(|&c| c as f64)
            .sum::<f64>()
            / 15.0;
        let ratio = peak / off;
        assert!((2.3..2.7).contains(&ratio), "peak/off-peak ratio {ratio}");
    }

    #[test]
    fn backfill_over_zero_rate_is_an_error() {
        let result = Backfill::new(
            &mut constant(0.0),
            0,
            MINUTE,
            10,
            stream_rng(3, Stream::Timeline),
        );
        assert!(matches!(result, Err(RateError::EmptyBackfillWindow)));
    }
}
