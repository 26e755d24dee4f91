//! `sim check` on the command line: one line a script for people, or one JSON object for
//! machines, and an exit status for CI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Format;
use crate::check::{check_script, CheckOptions, CheckReport, Problem};
use crate::script::FastPathUse;
use crate::settings::UserInput;

/// How many distinct problems `sim check` lists a script before summarising the rest.
const PROBLEMS_SHOWN: usize = 20;

/// `n` with its noun, singular or plural: `1 event`, `2 events`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A problem's kind: its message with the numbers in it blanked, so that "amount 12 is below
/// 13" and "amount 40 is below 41" are one kind, shown once with a count.
fn kind_of(message: &str) -> String {
    let mut kind = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !kind.ends_with('#') {
                kind.push('#');
            }
        } else {
            kind.push(c);
        }
    }
    kind
}

fn print_report(report: &CheckReport) {
    let schema = if report.has_schema {
        "schema checked"
    } else {
        "no schema declared"
    };
    if report.passed() {
        say!(
            "ok: {} ({}, {schema})",
            report.script.display(),
            count(report.events, "event")
        );
    } else {
        say!(
            "FAIL: {} ({} in {})",
            report.script.display(),
            count(report.problems.len() as u64, "problem"),
            count(report.events, "event")
        );
    }
    print_problems(report);
    print_coverage(report);
    if let Some(fast_path) = report.fast_path {
        print_rule_fast_path(fast_path);
    }
    for warning in &report.warnings {
        let level = if report.strict { "error" } else { "warning" };
        say!("  {level}: {warning}");
    }
}

/// Whether a detection rule runs compiled: one on the interpreter costs `sim analyze` about
/// twice as much a call (`examples/rule_speed.rs`).
fn print_rule_fast_path(fast_path: FastPathUse) {
    match fast_path {
        FastPathUse::On { events, given_up: 0 } => {
            say!("  fast path: on, all {events} calls compiled")
        }
        FastPathUse::On { events, given_up } => say!(
            "  fast path: on, {given_up} of {events} calls given up to the interpreter (docs/scripting.md, \"The fast path\")"
        ),
        FastPathUse::TurnedOff { events, given_up } => say!(
            "  fast path: turned off after giving up {given_up} of its first {events} calls; the interpreter runs the rule, about twice as slow (docs/scripting.md, \"The fast path\")"
        ),
        FastPathUse::NotCompiled => say!(
            "  fast path: off, detect(event, history) uses what it does not cover; the interpreter runs the rule, about twice as slow (docs/scripting.md, \"The fast path\")"
        ),
    }
}

/// The problems, grouped by kind: a broken rule usually breaks every event.
fn print_problems(report: &CheckReport) {
    let mut groups: Vec<(&str, String, &Problem, u64)> = Vec::new();
    for problem in &report.problems {
        let kind = kind_of(&problem.message);
        match groups
            .iter_mut()
            .find(|(f, k, ..)| *f == problem.field && *k == kind)
        {
            Some(group) => group.3 += 1,
            None => groups.push((&problem.field, kind, problem, 1)),
        }
    }
    for (field, _, first, n) in groups.iter().take(PROBLEMS_SHOWN) {
        let what = if field.is_empty() {
            format!("invariant: {}", first.message)
        } else {
            format!("`{field}`: {}", first.message)
        };
        say!("  event {}: {what} ({})", first.seq, count(*n, "event"));
    }
    if groups.len() > PROBLEMS_SHOWN {
        say!("  ... and {} more kinds", groups.len() - PROBLEMS_SHOWN);
    }
}

/// Which functions made the events, when follow-ups made some, and how the follow-ups settled.
fn print_coverage(report: &CheckReport) {
    if report.coverage.len() > 1 {
        for f in &report.coverage {
            say!(
                "  {}: {}, {}, {} checked",
                f.function,
                count(f.calls, "call"),
                count(f.events, "event"),
                f.checked
            );
        }
    }
    let Some(growth) = report.follow_ups else {
        return;
    };
    if growth.grows() {
        let most = report
            .coverage
            .iter()
            .max_by_key(|f| f.scheduled)
            .map(|f| format!("; `{}` is scheduled the most", f.function))
            .unwrap_or_default();
        say!(
            "  follow-ups grow without levelling off: {} pending after the sample's arrivals, {} still pending after {} more were made{most}",
            growth.after_arrivals,
            growth.left,
            growth.drained
        );
    } else if growth.after_arrivals > 0 {
        say!(
            "  follow-ups: {} pending after the sample's arrivals, {} made to see every chain through, {} left",
            growth.after_arrivals,
            growth.drained,
            growth.left
        );
    }
}

/// One script's entry in the JSON output: its report, or why it could not be checked at all.
#[derive(serde::Serialize)]
struct ScriptSummary {
    ok: bool,
    #[serde(flatten)]
    outcome: Outcome,
}

/// What checking one script gave, in the JSON output.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Outcome {
    Checked(CheckReport),
    Failed {
        script: PathBuf,
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
    match check_script(script, input, options) {
        Ok(report) => {
            if format == Format::Text {
                print_report(&report);
            }
            ScriptSummary {
                ok: report.passed(),
                outcome: Outcome::Checked(report),
            }
        }
        Err(err) => {
            let error = ErrorSummary {
                code: miette::Diagnostic::code(&err).map(|c| c.to_string()),
                message: err.to_string(),
            };
            if format == Format::Text {
                super::log::Entry::error("check", format!("FAIL: {}", script.display()))
                    .field("file", script.display().to_string())
                    .diagnostic(miette::Report::new(err))
                    .emit();
            }
            ScriptSummary {
                ok: false,
                outcome: Outcome::Failed {
                    script: script.to_path_buf(),
                    error,
                },
            }
        }
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
