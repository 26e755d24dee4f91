//! The report's charts: one function a chart, each drawn by plotters' SVG backend into a string.
//!
//! Every chart draws for any input, an empty summary included (empty axes, never a panic), so a
//! report of a quiet topic still opens. How they are drawn (canvas, shared shapes, legend) is
//! [`super::axes`].

use plotters::prelude::*;

pub use super::axes::Chart;
use super::axes::{
    bars, draw, legend, segmented, short, span, time_lines, top, RightAxis, TimeLine, BAR, CURVE,
    FONT,
};
use super::curve::RatePoint;
use super::{ReportError, ReportInput};

/// The ids of every chart, in page order.
pub const CHART_IDS: [&str; 9] = [
    "events",
    "hours",
    "category-revenue",
    "method-revenue",
    "amounts",
    "declines",
    "rules",
    "patterns",
    "delay",
];

/// Every chart of the page, in order; `curve` is the scenario's rate, when one was given.
pub fn all(input: &ReportInput, curve: Option<&[RatePoint]>) -> Result<Vec<Chart>, ReportError> {
    Ok(vec![
        events(input, curve)?,
        hours(input)?,
        revenue(
            "category-revenue",
            "Approved revenue by category",
            &input.category_revenue,
        )?,
        revenue(
            "method-revenue",
            "Approved revenue by payment method",
            &input.method_revenue,
        )?,
        amounts(input)?,
        declines(input)?,
        rules(input)?,
        patterns(input)?,
        delay(input)?,
    ])
}

/// Events per minute, and the scenario's rate. The curve shares the events' axis when the two
/// are of a size (a live stream follows its rate); otherwise (a backfill spreads its `--count`
/// arrivals along the curve's shape, at whatever rate that takes) it gets an axis of its own.
fn events(input: &ReportInput, curve: Option<&[RatePoint]>) -> Result<Chart, ReportError> {
    let shape = &input.shape;
    let minutes = shape.bucket_s.max(60) as f64 / 60.0;
    let counted = TimeLine {
        name: "events per minute".into(),
        colour: BAR,
        points: shape
            .buckets
            .iter()
            .map(|b| (b.start_ms as f64, b.events as f64 / minutes))
            .collect(),
    };
    let rate = curve.map(|curve| TimeLine {
        name: "scenario rate".into(),
        colour: CURVE,
        points: curve
            .iter()
            .map(|p| (p.start_ms as f64, p.per_minute))
            .collect(),
    });
    let mean = |line: &TimeLine| {
        line.points.iter().map(|p| p.1).sum::<f64>() / line.points.len().max(1) as f64
    };
    let own_axis = rate.as_ref().is_some_and(|rate| {
        let ratio = mean(rate) / mean(&counted).max(1e-9);
        !(1.0 / 3.0..=3.0).contains(&ratio)
    });
    let bucket = match shape.bucket_s {
        0 | 60 => "Events per minute of event time".to_string(),
        s => format!("Events per minute, averaged over {s} s buckets"),
    };
    let caption = match (&rate, own_axis) {
        (None, _) => bucket,
        (Some(_), false) => format!("{bucket}, and the scenario's rate curve"),
        (Some(_), true) => format!(
            "{bucket}, and the scenario's rate curve on the right-hand axis: the stream is not \
             at the scenario's rate (a backfill spreads its arrivals along the curve's shape)"
        ),
    };
    let (mut lines, mut right) = (vec![counted], None);
    match rate {
        Some(rate) if own_axis => right = Some(rate),
        Some(rate) => lines.push(rate),
        None => {}
    }
    let y_top = top(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let right_axis = right.as_ref().map(|line| RightAxis {
        line,
        top: top(line.points.iter().map(|p| p.1)),
        desc: "scenario rate (events / minute)",
    });
    draw("events", caption, |root| {
        time_lines(
            root,
            "Events per minute",
            "events / minute",
            span(input),
            y_top,
            &lines,
            right_axis,
        )
    })
}

/// Points of the decline share chart at most: per-minute shares of a slow stream are mostly 0
/// or 1, so neighbouring buckets are pooled until the line shows a trend.
const DECLINE_POINTS: usize = 120;

fn declines(input: &ReportInput) -> Result<Chart, ReportError> {
    let buckets = &input.shape.buckets;
    let group = buckets.len().div_ceil(DECLINE_POINTS).max(1);
    let points: Vec<(f64, f64)> = buckets
        .chunks(group)
        .filter_map(|chunk| {
            let events: u64 = chunk.iter().map(|b| b.events).sum();
            let declined: u64 = chunk.iter().map(|b| b.declined).sum();
            (events > 0).then(|| (chunk[0].start_ms as f64, declined as f64 / events as f64))
        })
        .collect();
    let y_top = top(points.iter().map(|p| p.1)).min(1.0);
    let line = TimeLine {
        name: "declined share".into(),
        colour: CURVE,
        points,
    };
    let caption = match group {
        1 => "Share of transactions declined, per time bucket".to_string(),
        n => format!("Share of transactions declined, {n} time buckets pooled a point"),
    };
    draw("declines", caption, |root| {
        time_lines(
            root,
            "Decline share over time",
            "declined / all",
            span(input),
            y_top,
            &[line],
            None,
        )
    })
}

fn hours(input: &ReportInput) -> Result<Chart, ReportError> {
    let counts: Vec<f64> = (0..24)
        .map(|h| input.shape.hour_of_day.get(h).copied().unwrap_or(0) as f64)
        .collect();
    let names: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    let y_top = top(counts.iter().copied());
    let caption = "Transactions by hour of the day (UTC), over the whole span".to_string();
    draw("hours", caption, |root| {
        bars(
            root,
            "Hour-of-day profile",
            "transactions",
            &names,
            &[("transactions", counts)],
            y_top,
        )
    })
}

fn revenue(
    id: &'static str,
    title: &str,
    by: &std::collections::BTreeMap<String, i64>,
) -> Result<Chart, ReportError> {
    let names: Vec<String> = by.keys().cloned().collect();
    let values: Vec<f64> = by.values().map(|&v| v as f64).collect();
    let y_top = top(values.iter().copied());
    let caption = format!("{title}, in rials (approved transactions only)");
    draw(id, caption, |root| {
        bars(root, title, "rials", &names, &[("revenue", values)], y_top)
    })
}

fn rules(input: &ReportInput) -> Result<Chart, ReportError> {
    let rules = &input.detection.rules;
    let names: Vec<String> = rules.keys().cloned().collect();
    let precision = rules.values().map(|s| s.precision.unwrap_or(0.0)).collect();
    let recall = rules.values().map(|s| s.recall.unwrap_or(0.0)).collect();
    let caption = if input.detection.labelled {
        "Precision and recall of each detection rule against the ground truth (an undefined score is drawn as 0)".to_string()
    } else {
        "Precision and recall per rule: the stream carried no ground truth, so nothing is scored"
            .to_string()
    };
    draw("rules", caption, |root| {
        bars(
            root,
            "Detection by rule",
            "share",
            &names,
            &[("precision", precision), ("recall", recall)],
            1.05,
        )
    })
}

fn patterns(input: &ReportInput) -> Result<Chart, ReportError> {
    let patterns = &input.detection.patterns;
    let names: Vec<String> = patterns.keys().cloned().collect();
    let recall = patterns.values().map(|p| p.recall.unwrap_or(0.0)).collect();
    let caption =
        "Recall per fraud pattern: the share of its fraud events flagged by any rule".to_string();
    draw("patterns", caption, |root| {
        bars(
            root,
            "Recall by fraud pattern",
            "recall",
            &names,
            &[("recall", recall)],
            1.05,
        )
    })
}

/// A delay bin's lower edge as a label: 0 s, 30 s, 2 min, 1 h.
fn seconds_label(s: f64) -> String {
    match s {
        _ if s >= 3600.0 => format!("{} h", s / 3600.0),
        _ if s >= 60.0 => format!("{} min", s / 60.0),
        _ => format!("{s} s"),
    }
}

fn delay(input: &ReportInput) -> Result<Chart, ReportError> {
    let shape = &input.shape;
    let names: Vec<String> = shape
        .delay_edges_s
        .iter()
        .map(|&s| seconds_label(s))
        .collect();
    let series: Vec<(&str, Vec<f64>)> = shape
        .delays
        .iter()
        .map(|(p, bins)| (p.as_str(), bins.iter().map(|&c| c as f64).collect()))
        .collect();
    let y_top = top(series.iter().flat_map(|s| s.1.iter().copied()));
    let caption = "Detection delay: detected cases (customer and pattern) by the event time from their first fraud event to the first alert, per pattern; each bin starts at its label".to_string();
    draw("delay", caption, |root| {
        let mut chart = segmented(
            root,
            "Detection delay",
            &names,
            y_top,
            "cases",
            Some("delay"),
        )?;
        for (k, (pattern, counts)) in series.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let points: Vec<(SegmentValue<u32>, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| (SegmentValue::CenterOf(i as u32), c))
                .collect();
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(p.clone(), 4, colour.filled())),
            )?;
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(*pattern)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, !series.is_empty())?;
        Ok(())
    })
}

fn amounts(input: &ReportInput) -> Result<Chart, ReportError> {
    let shape = &input.shape;
    let edges = &shape.amount_edges;
    // Shares, not counts: a small category's shape is as visible as a large one's.
    let series: Vec<(&str, Vec<(f64, f64)>)> = shape
        .amounts
        .iter()
        .map(|(category, bins)| {
            let total = bins.iter().sum::<u64>().max(1) as f64;
            let first = bins.iter().position(|&c| c > 0).unwrap_or(0);
            let last = bins.iter().rposition(|&c| c > 0).unwrap_or(0);
            let points = (first..=last.min(edges.len().saturating_sub(2)))
                .filter(|_| edges.len() > 1)
                .map(|i| ((edges[i] * edges[i + 1]).sqrt(), bins[i] as f64 / total))
                .collect();
            (category.as_str(), points)
        })
        .collect();
    let y_top = top(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)));
    // Whole powers of ten around the amounts seen, so the curves fill the width.
    let xs = || series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let x_min = 10f64.powf(xs().fold(f64::MAX, f64::min).log10().floor());
    let x_max = 10f64.powf(xs().fold(0.0, f64::max).log10().ceil());
    let (x_min, x_max) = if x_max > x_min {
        (x_min, x_max)
    } else {
        (1.0, 1e12)
    };
    let caption = "Amount distribution per category: the share of each category's transactions in each amount bin, on a log scale of rials".to_string();
    draw("amounts", caption, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Amounts by category", (FONT, 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..y_top)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .x_desc("amount (rials, log scale)")
            .y_desc("share of the category")
            .draw()?;
        for (k, (category, points)) in series.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(*category)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, !series.is_empty())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(per_minute: u64) -> ReportInput {
        let mut input = ReportInput::default();
        input.shape.bucket_s = 60;
        input.shape.buckets = (0..10)
            .map(|m| crate::analyze::shape::TimeBucket {
                start_ms: m * 60_000,
                events: per_minute,
                declined: 0,
            })
            .collect();
        input
    }

    fn rate(per_minute: f64) -> Vec<RatePoint> {
        (0..10)
            .map(|m| RatePoint {
                start_ms: m * 60_000,
                per_minute,
            })
            .collect()
    }

    #[test]
    fn the_rate_curve_shares_the_axis_only_with_a_stream_at_its_rate() {
        let live = events(&steady(100), Some(&rate(120.0))).unwrap();
        assert!(
            !live.caption.contains("right-hand axis"),
            "{}",
            live.caption
        );
        let backfill = events(&steady(2), Some(&rate(120.0))).unwrap();
        assert!(
            backfill.caption.contains("right-hand axis"),
            "{}",
            backfill.caption
        );
        assert!(backfill.svg.contains("scenario rate (events / minute)"));
    }

    #[test]
    fn every_chart_draws_for_an_empty_summary() {
        let charts = all(&ReportInput::default(), None).unwrap();
        let ids: Vec<&str> = charts.iter().map(|c| c.id).collect();
        assert_eq!(ids, CHART_IDS);
        for chart in &charts {
            assert!(chart.svg.contains("<svg"), "{}", chart.id);
            assert!(!chart.caption.is_empty(), "{}", chart.id);
        }
    }
}
