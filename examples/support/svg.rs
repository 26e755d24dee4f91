//! A small line chart written as SVG, for the benchmark programs' plots (`docs/perf/*.svg`):
//! logarithmic axes, a legend, the points marked and labelled with their value. Two charts of a
//! handful of points do not justify a plotting crate in the build.
#![allow(dead_code)]

use std::fmt::Write;

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

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f",
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

impl Chart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            x_min = x_min.min(x);
            x_max = x_max.max(x);
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        // Whole decades around the data.
        let decade = |v: f64, up: bool| {
            let e = v.log10();
            10f64.powf(if up { e.ceil() } else { e.floor() })
        };
        let (x_lo, x_hi) = (decade(x_min, false), decade(x_max, true).max(x_min * 10.0));
        let (y_lo, y_hi) = (decade(y_min, false), decade(y_max, true).max(y_min * 10.0));
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px =
            |x: f64| LEFT + (x.log10() - x_lo.log10()) / (x_hi.log10() - x_lo.log10()) * plot_w;
        let py = |y: f64| {
            TOP + plot_h - (y.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * plot_h
        };

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="28" font-size="15" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Grid and ticks at 1, 2 and 5 times each decade.
        let ticks = |lo: f64, hi: f64| {
            let mut ticks = Vec::new();
            let mut decade = lo;
            while decade <= hi * 1.0001 {
                for m in [1.0, 2.0, 5.0] {
                    let t = decade * m;
                    if t >= lo * 0.9999 && t <= hi * 1.0001 {
                        ticks.push(t);
                    }
                }
                decade *= 10.0;
            }
            ticks
        };
        for x in ticks(x_lo, x_hi) {
            let _ = writeln!(
                svg,
                r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#e5e5e5"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"##,
                px(x),
                TOP,
                TOP + plot_h,
                TOP + plot_h + 18.0,
                short(x)
            );
        }
        for y in ticks(y_lo, y_hi) {
            let _ = writeln!(
                svg,
                r##"<line x1="{1}" y1="{0:.1}" x2="{2}" y2="{0:.1}" stroke="#e5e5e5"/><text x="{3}" y="{4:.1}" text-anchor="end">{5}</text>"##,
                py(y),
                LEFT,
                LEFT + plot_w,
                LEFT - 6.0,
                py(y) + 4.0,
                short(y)
            );
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 18.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(22,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let dash = if series.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
            if !series.dashed {
                for &(x, y) in &series.points {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{colour}">{}</text>"#,
                        px(x),
                        py(y),
                        px(x) + 5.0,
                        py(y) - 6.0,
                        short(y)
                    );
                }
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = LEFT + plot_w + 16.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Writes the chart to `path`, creating its folder.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_svg())
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
