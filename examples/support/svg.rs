//! A small line chart written as SVG, for the benchmark programs' plots (`docs/perf/*.svg`):
//! logarithmic axes over whole decades, a legend, the points marked and labelled with their
//! value. Drawn by plotters' SVG backend, the crate `sim report` draws its charts with.
#![allow(dead_code)]

use plotters::prelude::*;

/// One line of the chart.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// (x, y) points, in order of x; both axes are logarithmic, so all must be positive.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a reference line, such as y = x) or solid with marked points.
    pub dashed: bool,
}

/// A chart with logarithmic axes.
pub struct Chart {
    /// Title, above the plot.
    pub title: String,
    /// What x is.
    pub x_label: String,
    /// What y is.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

const SIZE: (u32, u32) = (720, 440);
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
];

/// A number for an axis tick or a point label: 1k, 25k, 1.2M.
fn short(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.3}M", value / 1e6)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .replace(".M", "M")
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3).replace(".0k", "k")
    } else {
        format!("{value:.0}")
    }
}

/// Whole decades around `values` (at least one decade wide).
fn decades(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let min = values.clone().fold(f64::MAX, f64::min);
    let max = values.fold(f64::MIN, f64::max);
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf(max.log10().ceil()).max(min * 10.0);
    (lo, hi)
}

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let mut svg = String::new();
        // An error drawing into a string leaves the chart as far as it got; the benchmark's
        // numbers are printed anyway.
        if let Err(err) = self.draw(&mut svg) {
            eprintln!("drawing {}: {err}", self.title);
        }
        svg
    }

    fn draw(&self, svg: &mut String) -> Result<(), Box<dyn std::error::Error + '_>> {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let x = decades(points.clone().map(|p| p.0));
        let y = decades(points.map(|p| p.1));
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 15))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x.0..x.1).log_scale(), (y.0..y.1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(229, 229, 229))
            .draw()?;
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let style = colour.stroke_width(2);
            let points = series.points.iter().copied();
            let anno = if series.dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(points, style))?
            };
            anno.label(series.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
            if !series.dashed {
                chart.draw_series(series.points.iter().map(|&(x, y)| {
                    EmptyElement::at((x, y))
                        + Circle::new((0, 0), 3, colour.filled())
                        + Text::new(
                            short(y),
                            (5, -14),
                            ("sans-serif", 10).into_font().color(&colour),
                        )
                }))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }

    /// Writes the chart to `path`, creating its folder.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_svg())
    }
}
