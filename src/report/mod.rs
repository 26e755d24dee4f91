//! `sim analyze --report` and `sim report`: the analyzer's summary drawn as one HTML page.
//!
//! The page is self-contained: charts drawn by plotters' SVG backend into strings and inlined,
//! styles inline, no script and no outside address, so it opens offline and can be mailed.
//!
//! # Layout
//!
//! - [`ReportInput`] (here): what the page reads of a summary, from the analyzer's
//!   [`Summary`] or from a saved `--format json` summary ([`read_summary`]).
//! - [`curve`]: the scenario's rate curve over the summary's time buckets, for the first chart.
//! - [`charts`]: one function a chart, each an SVG string; `axes`: how they are drawn.
//! - [`html`]: the page around them.

mod axes;
pub mod charts;
pub mod curve;
pub mod html;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use miette::{Diagnostic, NamedSource, SourceOffset, SourceSpan};
use serde::Deserialize;

use crate::analyze::score::Detection;
use crate::analyze::shape::ShapeSummary;
use crate::analyze::Summary;

pub use curve::RatePoint;

/// The part of a summary the report draws. Every field has a default, so a summary written
/// before a field existed (or cut down by hand) still makes a page, with empty charts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReportInput {
    /// Transactions counted.
    pub events: u64,
    /// Approved revenue per merchant category, rials.
    pub category_revenue: BTreeMap<String, i64>,
    /// Approved revenue per payment method, rials.
    pub method_revenue: BTreeMap<String, i64>,
    /// Detection scored against the ground truth.
    pub detection: Detection,
    /// The run: the topic names the page.
    pub run: RunNames,
    /// Events over time, hours, amounts and delays.
    pub shape: ShapeSummary,
}

/// What the page names the run by.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunNames {
    /// The input topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
}

impl ReportInput {
    /// The input of the analyzer's own summary, through its JSON form: the same path a saved
    /// summary takes, so both pages are drawn from the same figures.
    pub fn of(summary: &Summary) -> Self {
        serde_json::to_value(summary)
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }
}

/// A summary file that is not a `sim analyze --format json` summary, with where it breaks.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{} is not a sim analyze JSON summary: {reason}", path.display())]
#[diagnostic(
    code(sim::report::malformed),
    help("the file should hold the one JSON object `sim analyze --format json` prints")
)]
pub struct MalformedSummary {
    /// The file.
    pub path: PathBuf,
    /// What the JSON reader said.
    pub reason: String,
    /// The file's text, for the span.
    #[source_code]
    pub source_code: NamedSource<String>,
    /// Where the reader stopped.
    #[label("here")]
    pub at: SourceSpan,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReportError {
    /// The summary file cannot be read.
    #[error("cannot read the summary {}: {source}", path.display())]
    #[diagnostic(
        code(sim::report::read),
        help("save one with `sim analyze --format json ... > summary.json`")
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The summary file is not a `sim analyze --format json` summary (boxed: it carries the
    /// file's text).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Malformed(Box<MalformedSummary>),
    /// The page cannot be written.
    #[error("cannot write the report {}: {source}", path.display())]
    #[diagnostic(
        code(sim::report::write),
        help("check that the folder exists and is writable")
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The scenario whose rate curve was asked for does not load.
    #[error("cannot load the scenario {} for its rate curve", path.display())]
    #[diagnostic(
        code(sim::report::scenario),
        help("run `sim check` on it, or leave out --scenario to draw events per minute alone")
    )]
    Scenario {
        /// The script.
        path: PathBuf,
        /// Why: a [`crate::scenario::ScenarioError`], boxed (every report error would otherwise be its size).
        #[diagnostic_source]
        cause: Box<dyn Diagnostic + Send + Sync>,
    },
    /// The scenario's `rate(t)` failed over the summary's time span.
    #[error("the scenario {} cannot give its rate over the summary's time span", path.display())]
    #[diagnostic(code(sim::report::rate))]
    Rate {
        /// The script.
        path: PathBuf,
        /// Why: a [`crate::rate::RateError`], boxed.
        #[diagnostic_source]
        cause: Box<dyn Diagnostic + Send + Sync>,
    },
    /// plotters failed to draw a chart (into a string: not expected to happen).
    #[error("cannot draw the chart {chart}: {reason}")]
    #[diagnostic(code(sim::report::chart))]
    Chart {
        /// The chart's name.
        chart: &'static str,
        /// plotters' error.
        reason: String,
    },
}

/// Reads a saved `sim analyze --format json` summary.
pub fn read_summary(path: &Path) -> Result<ReportInput, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // An object at the top is what makes it a summary: a number or a list would deserialize
    // into the defaults and draw an empty page without a word.
    let parsed = serde_json::from_str::<serde_json::Value>(&text).and_then(|value| {
        if value.is_object() {
            serde_json::from_value::<ReportInput>(value)
        } else {
            Err(serde::de::Error::custom("expected a JSON object"))
        }
    });
    parsed.map_err(|err| {
        let offset = SourceOffset::from_location(&text, err.line().max(1), err.column().max(1));
        ReportError::Malformed(Box::new(MalformedSummary {
            path: path.to_path_buf(),
            reason: err.to_string(),
            source_code: NamedSource::new(path.display().to_string(), text.clone()),
            at: SourceSpan::new(offset, 0),
        }))
    })
}

/// The page for `input`, with the scenario's rate curve when one is given.
pub fn render(input: &ReportInput, curve: Option<&[RatePoint]>) -> Result<String, ReportError> {
    let charts = charts::all(input, curve)?;
    Ok(html::page(input, &charts))
}

/// Writes the page for `input` to `path`.
pub fn write(
    path: &Path,
    input: &ReportInput,
    curve: Option<&[RatePoint]>,
) -> Result<(), ReportError> {
    let page = render(input, curve)?;
    std::fs::write(path, page).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_summary_is_named_with_where_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, "{\"events\": 3,\n \"shape\": [}").unwrap();
        let err = read_summary(&path).unwrap_err();
        assert!(matches!(err, ReportError::Malformed(_)), "{err:?}");
        assert!(err.to_string().contains("summary.json"), "{err}");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(
            read_summary(&path),
            Err(ReportError::Malformed(_))
        ));
    }

    #[test]
    fn a_missing_summary_and_an_unwritable_page_name_their_files() {
        let missing = Path::new("/nonexistent/summary.json");
        let err = read_summary(missing).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/summary.json"),
            "{err}"
        );
        let out = Path::new("/nonexistent/folder/report.html");
        let err = write(out, &ReportInput::default(), None).unwrap_err();
        assert!(matches!(err, ReportError::Write { .. }));
        assert!(err.to_string().contains("report.html"), "{err}");
    }

    #[test]
    fn a_partial_summary_reads_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        std::fs::write(&path, r#"{"events": 5, "category_revenue": {"food": 10}}"#).unwrap();
        let input = read_summary(&path).unwrap();
        assert_eq!(input.events, 5);
        assert_eq!(input.category_revenue["food"], 10);
        assert!(input.shape.buckets.is_empty());
    }
}
