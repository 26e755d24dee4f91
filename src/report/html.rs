//! The page around the charts: a title naming the topic and the time span, a few headline
//! figures, and one `<figure id="chart-ID">` a chart with its caption.
//!
//! Everything is inline (styles, SVG), with no script and no outside address: the file is the
//! whole report, and opens the same offline, in a mail client, or years later.

use std::fmt::Write as _;

use super::axes::short;
use super::charts::Chart;
use super::ReportInput;
use crate::analyze::summary::iso;

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}\
h1{font-size:1.6em;margin-bottom:.2em}.span{color:#555;margin-top:0}\
dl{display:flex;flex-wrap:wrap;gap:1.5em}dt{color:#555;font-size:.85em}dd{margin:0;font-size:1.3em}\
figure{margin:2em 0;border:1px solid #ddd;padding:.5em}figure svg{max-width:100%;height:auto;display:block}\
figcaption{color:#444;font-size:.9em;margin-top:.4em}";

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// plotters' SVG as an inline element: without the XML namespace attribute, which HTML does not
/// need and which would be the page's only outside address.
fn inline_svg(svg: &str) -> String {
    svg.replace(r#" xmlns="http://www.w3.org/2000/svg""#, "")
        .replace(r#" xmlns:xlink="http://www.w3.org/1999/xlink""#, "")
}

/// The time span the summary covers, as the title says it.
pub fn time_span(input: &ReportInput) -> String {
    match (input.shape.first_ms, input.shape.last_ms) {
        (Some(first), Some(last)) => format!("{} to {}", iso(first), iso(last)),
        _ => "no events".to_string(),
    }
}

/// The whole page.
pub fn page(input: &ReportInput, charts: &[Chart]) -> String {
    let topic = if input.run.topic.is_empty() {
        "transactions"
    } else {
        input.run.topic.as_str()
    };
    let span = time_span(input);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sim report: {} ({})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(topic),
        escape(&span)
    );
    let _ = writeln!(out, "<h1>sim report: {}</h1>", escape(topic));
    let _ = writeln!(out, "<p class=\"span\">Event time {}</p>", escape(&span));
    let d = &input.detection;
    let revenue: i64 = input.category_revenue.values().sum();
    let figures = [
        ("transactions", short(input.events as f64)),
        ("approved revenue (rials)", short(revenue as f64)),
        ("fraud events", short(d.fraud_events as f64)),
        ("flagged events", short(d.flagged as f64)),
    ];
    out.push_str("<dl>");
    for (name, value) in figures {
        let _ = write!(
            out,
            "<div><dt>{name}</dt><dd>{}</dd></div>",
            escape(value.as_str())
        );
    }
    out.push_str("</dl>\n");
    for chart in charts {
        let _ = writeln!(
            out,
            "<figure id=\"chart-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            chart.id,
            inline_svg(&chart.svg),
            escape(&chart.caption)
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::charts::{all, CHART_IDS};
    use super::*;

    #[test]
    fn the_page_refers_to_nothing_outside_itself() {
        let mut input = ReportInput::default();
        input.run.topic = "darooghe.transactions".into();
        input.category_revenue.insert("food".into(), 1_000);
        let page = page(&input, &all(&input, None).unwrap());
        assert!(!page.contains("http://"), "the page names an http address");
        assert!(
            !page.contains("https://"),
            "the page names an https address"
        );
        assert!(!page.contains("<script"), "the page needs no script");
        assert!(page.contains("<title>sim report: darooghe.transactions (no events)</title>"));
        for id in CHART_IDS {
            assert!(
                page.contains(&format!("<figure id=\"chart-{id}\">")),
                "{id}"
            );
        }
        assert_eq!(page.matches("<figcaption>").count(), CHART_IDS.len());
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
