//! `sim check` on the command line: one line a script for people, or one JSON object for
//! machines, and an exit status for CI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Format;
use crate::check::{check_script, CheckOptions, CheckReport, Problem};
use crate::settings::UserInput;

/// How many distinct problems `sim check` lists a script before summarising the rest.
const PROBLEMS_SHOWN: usize = 20;

fn print_report(report: &CheckReport) {
    if report.passed() {
        let schema = if report.has_schema {
            "schema checked"
        } else {
            "no schema declared"
        };
        say!(
            "ok: {} ({} events, {schema})",
            report.script.display(),
            report.events
        );
        return;
    }
    // Group identical problems: a broken rule usually breaks every event.
    let mut groups: Vec<(&str, &str, i64, usize)> = Vec::new();
    for problem in &report.problems {
        match groups
            .iter_mut()
            .find(|(f, m, ..)| *f == problem.field && *m == problem.message)
        {
            Some(group) => group.3 += 1,
            None => groups.push((&problem.field, &problem.message, problem.seq, 1)),
        }
    }
    say!(
        "FAIL: {} ({} problems in {} events)",
        report.script.display(),
        report.problems.len(),
        report.events
    );
    for (field, message, first, count) in groups.iter().take(PROBLEMS_SHOWN) {
        let what = if field.is_empty() {
            format!("invariant: {message}")
        } else {
            format!("field `{field}` {message}")
        };
        say!("  event {first}: {what} ({count} events)");
    }
    if groups.len() > PROBLEMS_SHOWN {
        say!("  ... and {} more kinds", groups.len() - PROBLEMS_SHOWN);
    }
}

/// One script's entry in the JSON output: its report, or why it could not be checked at all.
#[derive(serde::Serialize)]
struct ScriptSummary {
    script: PathBuf,
    ok: bool,
    #[serde(flatten)]
    outcome: Outcome,
}

/// What checking one script gave, in the JSON output.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Outcome {
    Checked {
        events: u64,
        has_schema: bool,
        problems: Vec<Problem>,
    },
    Failed {
        error: ErrorSummary,
    },
}

/// Why a script could not be checked at all.
#[derive(serde::Serialize)]
struct ErrorSummary {
    code: Option<String>,
    message: String,
}

/// The whole JSON output.
#[derive(serde::Serialize)]
struct CheckSummary {
    ok: bool,
    scripts: Vec<ScriptSummary>,
}

/// Checks one script, telling a person how it went in text format.
fn check_one(
    script: &Path,
    options: &CheckOptions,
    format: Format,
    input: &UserInput,
) -> ScriptSummary {
    let (ok, outcome) = match check_script(script, input, options) {
        Ok(report) => {
            if format == Format::Text {
                print_report(&report);
            }
            let ok = report.passed();
            let CheckReport {
                events,
                has_schema,
                problems,
                ..
            } = report;
            let outcome = Outcome::Checked {
                events,
                has_schema,
                problems,
            };
            (ok, outcome)
        }
        Err(err) => {
            let error = ErrorSummary {
                code: miette::Diagnostic::code(&err).map(|c| c.to_string()),
                message: err.to_string(),
            };
            if format == Format::Text {
                say!("FAIL: {}", script.display());
                say!("{:?}", miette::Report::new(err));
            }
            (false, Outcome::Failed { error })
        }
    };
    ScriptSummary {
        script: script.to_path_buf(),
        ok,
        outcome,
    }
}

/// Checks every script, reporting each as it goes; fails when any failed.
pub(super) fn check(
    scripts: &[PathBuf],
    options: &CheckOptions,
    format: Format,
    input: &UserInput,
) -> ExitCode {
    let summaries: Vec<ScriptSummary> = scripts
        .iter()
        .map(|script| check_one(script, options, format, input))
        .collect();
    let failed = summaries.iter().filter(|s| !s.ok).count();
    if format == Format::Json {
        let summary = CheckSummary {
            ok: failed == 0,
            scripts: summaries,
        };
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else if failed > 0 {
        say!("{failed} of {} scripts failed", scripts.len());
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
