//! How the report's charts are drawn: the SVG canvas, the shared shapes (lines over event time,
//! bars over names), the legend and the axis labels. What each chart shows is in
//! [`super::charts`].

use chrono::DateTime;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordu32};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{ReportError, ReportInput};

/// A chart drawn: its id (the page's `chart-ID` figure), its caption and its SVG.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Short name, unique in the page: `events`, `hours`...
    pub id: &'static str,
    /// What the chart shows, for the figure's caption.
    pub caption: String,
    /// The SVG document, as plotters wrote it.
    pub svg: String,
}

/// Each chart's size: nine of them and the header fit a 1280 by 4000 screenshot.
const SIZE: (u32, u32) = (960, 330);
/// The font family of every label: the browser's own sans-serif (nothing is embedded).
pub(super) const FONT: &str = "sans-serif";
/// Bars and the events counted.
pub(super) const BAR: RGBColor = RGBColor(31, 119, 180);
/// The second bar of a pair (recall beside precision).
const SECOND_BAR: RGBColor = RGBColor(255, 127, 14);
/// The scenario's curve and the decline share.
pub(super) const CURVE: RGBColor = RGBColor(214, 39, 40);

/// The canvas a chart draws on: an SVG document in a string.
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// What drawing a chart gives: plotters' errors, boxed (they only name the chart).
pub(super) type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws one chart into a string; plotters' errors become [`ReportError::Chart`].
pub(super) fn draw(
    id: &'static str,
    caption: String,
    f: impl FnOnce(&Area<'_>) -> Drawn,
) -> Result<Chart, ReportError> {
    let mut svg = String::new();
    let fail = |reason: String| ReportError::Chart { chart: id, reason };
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        f(&root).map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(Chart { id, caption, svg })
}

/// A number for an axis: 950, 1.2k, 3.4M, 5.6B.
pub fn short(value: f64) -> String {
    let a = value.abs();
    let (v, unit) = match a {
        _ if a >= 1e9 => (value / 1e9, "B"),
        _ if a >= 1e6 => (value / 1e6, "M"),
        _ if a >= 1e3 => (value / 1e3, "k"),
        _ => return format!("{}", (value * 100.0).round() / 100.0),
    };
    format!("{v:.1}{unit}").replace(".0", "")
}

/// Event time (ms) as an axis label.
pub(super) fn clock(ms: f64) -> String {
    DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// One line over event time.
pub(super) struct TimeLine {
    /// Its name in the legend.
    pub name: String,
    /// Its colour.
    pub colour: RGBColor,
    /// (event time in ms, value) points, in order.
    pub points: Vec<(f64, f64)>,
}

/// A line drawn against its own axis on the right: its top and what the axis measures.
pub(super) struct RightAxis<'l> {
    /// The line.
    pub line: &'l TimeLine,
    /// The axis's top.
    pub top: f64,
    /// What the axis measures.
    pub desc: &'l str,
}

/// Draws one line on `chart`'s primary or secondary coordinates, with its legend entry.
macro_rules! draw_line {
    ($chart:expr, $draw:ident, $line:expr) => {{
        let colour = $line.colour;
        $chart
            .$draw(LineSeries::new(
                $line.points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label($line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }};
}

/// Lines over event time, from the first bucket to the end of the last; `right`, when given,
/// is drawn against an axis of its own on the right.
pub(super) fn time_lines(
    root: &Area<'_>,
    title: &str,
    y_desc: &str,
    span: (f64, f64),
    y_top: f64,
    lines: &[TimeLine],
    right: Option<RightAxis<'_>>,
) -> Drawn {
    let right_top = right.as_ref().map_or(1.0, |r| r.top);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(if right.is_some() { 70 } else { 0 })
        .build_cartesian_2d(span.0..span.1, 0f64..y_top)?
        .set_secondary_coord(span.0..span.1, 0f64..right_top);
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| clock(*x))
        .y_label_formatter(&|y| short(*y))
        .y_desc(y_desc)
        .draw()?;
    for line in lines {
        draw_line!(chart, draw_series, line);
    }
    if let Some(right) = &right {
        chart
            .configure_secondary_axes()
            .y_label_formatter(&|y| short(*y))
            .y_desc(right.desc)
            .draw()?;
        draw_line!(chart, draw_secondary_series, right.line);
    }
    legend(&mut chart, !lines.is_empty())?;
    Ok(())
}

/// The span of the summary's buckets in ms (a minute at the epoch when there are none).
pub(super) fn span(input: &ReportInput) -> (f64, f64) {
    let shape = &input.shape;
    let width = (shape.bucket_s.max(60) * 1000) as f64;
    match (shape.buckets.first(), shape.buckets.last()) {
        (Some(first), Some(last)) => (first.start_ms as f64, last.start_ms as f64 + width),
        _ => (0.0, width),
    }
}

/// The largest value, with headroom; 1 for none (a zero-height axis cannot be drawn).
pub(super) fn top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0, f64::max);
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

/// A chart over named segments, as [`segmented`] builds it.
pub(super) type Segmented<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordu32>, RangedCoordf64>>;

/// A chart with one segment per name, the names under their segments and values from 0 to
/// `y_top` on the left, its mesh drawn; with `x_desc`, the x axis is described and its grid
/// drawn (a line over the segments), without it not (bars stand on their own).
pub(super) fn segmented<'a, 'b>(
    root: &'a Area<'b>,
    title: &str,
    names: &[String],
    y_top: f64,
    y_desc: &str,
    x_desc: Option<&str>,
) -> Result<Segmented<'a, 'b>, Box<dyn std::error::Error>> {
    let n = names.len().max(1) as u32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..y_top)?;
    let name_of = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let value_of = |y: &f64| short(*y);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(n as usize + 1)
        .x_label_formatter(&name_of)
        .y_label_formatter(&value_of)
        .y_desc(y_desc);
    match x_desc {
        Some(x_desc) => mesh.x_desc(x_desc),
        None => mesh.disable_x_mesh(),
    };
    mesh.draw()?;
    Ok(chart)
}

/// Bars over names, with one or two values each (the second drawn beside the first).
pub(super) fn bars(
    root: &Area<'_>,
    title: &str,
    y_desc: &str,
    names: &[String],
    values: &[(&str, Vec<f64>)],
    y_top: f64,
) -> Drawn {
    let mut chart = segmented(root, title, names, y_top, y_desc, None)?;
    let halves = values.len() > 1;
    for (k, (label, series)) in values.iter().enumerate() {
        let colour = if k == 0 { BAR } else { SECOND_BAR };
        let rects = series.iter().enumerate().map(|(i, &v)| {
            let i = i as u32;
            let (from, to): (SegmentValue<u32>, SegmentValue<u32>) = match (halves, k) {
                (false, _) => (SegmentValue::Exact(i), SegmentValue::Exact(i + 1)),
                (true, 0) => (SegmentValue::Exact(i), SegmentValue::CenterOf(i)),
                (true, _) => (SegmentValue::CenterOf(i), SegmentValue::Exact(i + 1)),
            };
            let mut bar = Rectangle::new([(from, 0.0), (to, v)], colour.mix(0.85).filled());
            bar.set_margin(0, 0, 6, 6);
            bar
        });
        chart
            .draw_series(rects)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
    }
    legend(&mut chart, halves)?;
    Ok(())
}

/// Draws the legend of `chart`'s labelled series, when it has any.
pub(super) fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    any: bool,
) -> Drawn {
    if any {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_read_at_a_glance() {
        assert_eq!(short(950.0), "950");
        assert_eq!(short(1_200.0), "1.2k");
        assert_eq!(short(3_000_000.0), "3M");
        assert_eq!(short(5_600_000_000.0), "5.6B");
        assert_eq!(short(0.25), "0.25");
    }
}
