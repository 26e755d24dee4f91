//! `sim report` and `sim analyze --report` on the command line: the flags, and the page written
//! from a summary. The work is [`crate::report`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::args::user_input;
use super::log::Entry;
use super::CliError;
use crate::analyze::Summary;
use crate::report::{self, curve::rate_curve, ReportInput};

/// Flags of `sim report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A summary saved from `sim analyze --format json`.
    summary: PathBuf,
    /// Where to write the HTML page.
    #[arg(short = 'o', long, value_name = "FILE.html")]
    output: PathBuf,
    #[command(flatten)]
    scenario: ScenarioArgs,
}

/// The scenario whose rate curve is drawn beside the events per minute.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// The scenario script the stream came from: its rate curve (its `rate(t)`, or the
    /// peak-hour curve of its settings) is drawn beside the events per minute.
    #[arg(long, value_name = "SCRIPT")]
    scenario: Option<PathBuf>,
    /// A setting of the scenario, as given to `sim run`: --set rate=120
    /// (repeatable; the environment and --config apply as for `sim run`).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "scenario")]
    set: Vec<String>,
    /// The scenario's TOML config file.
    #[arg(long, value_name = "FILE", requires = "scenario")]
    config: Option<PathBuf>,
}

/// `sim analyze`'s flags for a report at exit.
#[derive(Debug, Args)]
pub struct AnalyzeReportArgs {
    /// At exit, after the summary, write an HTML report of it to FILE: one self-contained page
    /// of charts (see docs/analyze.md, Report).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// The scenario script the stream came from, for the report's rate curve.
    #[arg(long, value_name = "SCRIPT", requires = "report")]
    scenario: Option<PathBuf>,
}

/// Writes the page for `input` to `output`, with the rate curve of `scenario` when one is given.
fn write_page(
    input: &ReportInput,
    output: &Path,
    scenario: Option<PathBuf>,
    set: &[String],
    config: Option<PathBuf>,
) -> Result<(), CliError> {
    let curve = match scenario {
        Some(script) => {
            let options = crate::scenario::Options {
                script,
                input: user_input(config, set, &[], None, None, None)?,
                // The curve does not depend on the seed or on now; fixed, so nothing is reported.
                seed: Some(0),
                now: None,
                sink: crate::sink::SinkSpec::Stdout,
                labels: false,
                meta: false,
                time: crate::clock::TimeSource::real(),
            };
            Some(rate_curve(&options, &input.shape)?)
        }
        None => None,
    };
    report::write(output, input, curve.as_deref())?;
    Entry::info("report", format!("report written to {}", output.display()))
        .field("file", output.display().to_string())
        .emit();
    Ok(())
}

/// Runs `sim report`.
pub fn report(args: ReportArgs) -> Result<ExitCode, CliError> {
    let input = report::read_summary(&args.summary)?;
    let s = args.scenario;
    write_page(&input, &args.output, s.scenario, &s.set, s.config)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `sim analyze`'s report of `summary`, when `--report` asked for one.
pub fn analyze_report(args: AnalyzeReportArgs, summary: &Summary) -> Result<(), CliError> {
    match args.report {
        Some(output) => write_page(&ReportInput::of(summary), &output, args.scenario, &[], None),
        None => Ok(()),
    }
}
