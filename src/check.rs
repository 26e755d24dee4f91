//! `sim check`: validate scenario scripts (and detection rules), for people and for CI.
//!
//! Each script is compiled, configured, set up and sampled with a fixed seed and clock
//! ([`crate::scenario::sample_checked`], the same sample hot reload runs before it swaps a new
//! version in); every event is encoded (so a missing key field fails) and checked against the
//! schema declared in `config()` and the script's own `check(event)` invariants. A detection
//! rule (`fn detect(event, history)`) is compiled and run over sample transactions instead. The
//! same function serves `sim check` and a user's `cargo test`:
//!
//! ```no_run
//! let report = sim::check::check_script(
//!     std::path::Path::new("scripts/darooghe.rhai"),
//!     &sim::settings::UserInput::default(),
//!     &sim::check::CheckOptions::default(),
//! )
//! .expect("the script compiles, sets up and runs");
//! assert!(report.problems.is_empty(), "{:?}", report.problems);
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::analyze::detect::script::{check_rule, is_detection_rule};
use crate::pipeline::FunctionCoverage;
use crate::scenario::{prepare, sample_checked, FollowUpGrowth, Options, ScenarioError};
use crate::script::FastPathUse;
use crate::settings::UserInput;
use crate::sink::SinkSpec;

/// How a script is exercised.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Events to generate.
    pub count: u64,
    /// The seed.
    pub seed: u64,
    /// The simulated now.
    pub now: DateTime<Utc>,
    /// Whether a warning (a follow-up the check never reached) fails the check, as it should
    /// in a test suite.
    pub strict: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            count: 1_000,
            seed: 0,
            strict: false,
            now: DateTime::from_timestamp(1_705_312_800, 0).unwrap_or_default(), // 2024-01-15T10:00:00Z
        }
    }
}

/// One event that broke the schema or an invariant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Sequence number of the arrival that made the event.
    pub seq: i64,
    /// The field (dotted when nested), empty for an invariant of the whole event.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What the check of one script found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The script.
    pub script: PathBuf,
    /// Events generated and checked.
    pub events: u64,
    /// Whether the script declares a schema.
    pub has_schema: bool,
    /// Every violation found.
    pub problems: Vec<Problem>,
    /// What each function of the script made, and how much of it reached `check`.
    pub coverage: Vec<FunctionCoverage>,
    /// How the follow-ups left by the sample settled (`None` for a detection rule).
    pub follow_ups: Option<FollowUpGrowth>,
    /// What the check could not vouch for, such as a follow-up it never reached.
    pub warnings: Vec<String>,
    /// For a detection rule, how its calls ran: compiled (docs/scripting.md, "The fast path")
    /// or on the interpreter, about twice as slow; `None` for a scenario (`sim bench` says it).
    pub fast_path: Option<FastPathUse>,
    /// Whether warnings fail the check (`--strict`).
    #[serde(skip)]
    pub strict: bool,
}

impl CheckReport {
    /// Whether the script passed: no problem, follow-ups that level off, and with `--strict`
    /// no warning.
    pub fn passed(&self) -> bool {
        let warnings_pass = !self.strict || self.warnings.is_empty();
        self.problems.is_empty() && !self.follow_ups.is_some_and(|f| f.grows()) && warnings_pass
    }
}

/// What a check of `coverage` cannot vouch for: a function the script names as a follow-up that
/// was never called, or one whose calls made no event for `check` to see.
fn coverage_warnings(
    coverage: &[FunctionCoverage],
    named: &BTreeSet<String>,
    has_check: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let called = |name: &str| coverage.iter().any(|f| f.function == name && f.calls > 0);
    for name in named.iter().filter(|name| !called(name)) {
        warnings.push(format!(
            "`{name}` is scheduled by the script, but this check never called it: its events are unchecked (try more events with -n)"
        ));
    }
    for f in coverage
        .iter()
        .filter(|f| has_check && f.calls > 0 && f.events == 0)
    {
        warnings.push(format!(
            "`{}` was called {} times but made no event, so check() never ran on its events",
            f.function, f.calls
        ));
    }
    warnings
}

/// Checks a detection rule (`fn detect(event, history)`, see [`crate::analyze::detect::script`]):
/// compiled, then run over sample transactions; a problem is an event it failed on.
fn check_detection_rule(
    script: &Path,
    options: &CheckOptions,
) -> Result<CheckReport, ScenarioError> {
    let check = check_rule(script, options.count)?;
    Ok(CheckReport {
        script: script.to_path_buf(),
        events: check.events,
        has_schema: false,
        coverage: Vec::new(),
        follow_ups: None,
        warnings: Vec::new(),
        fast_path: Some(check.fast_path),
        strict: options.strict,
        problems: check
            .failures
            .into_iter()
            .map(|(seq, message)| Problem {
                seq,
                field: String::new(),
                message,
            })
            .collect(),
    })
}

/// Checks one script (a scenario, or a detection rule); an error means it did not compile, set
/// up or run, problems mean its events broke the schema or its invariants.
pub fn check_script(
    script: &Path,
    input: &UserInput,
    options: &CheckOptions,
) -> Result<CheckReport, ScenarioError> {
    if is_detection_rule(script) {
        return check_detection_rule(script, options);
    }
    let prepared = prepare(&Options {
        script: script.to_path_buf(),
        input: input.clone(),
        seed: Some(options.seed),
        now: Some(options.now),
        sink: SinkSpec::Stdout, // not opened: events go to a discarding sink
        labels: false,
        meta: false,
        time: crate::clock::TimeSource::real(),
    })?;
    let has_schema = prepared.scenario.schema().is_some();
    let has_check = prepared.scenario.has_check();
    let named = prepared.scenario.named_follow_ups();
    let sampled = sample_checked(prepared, options.count)?;
    let warnings = coverage_warnings(&sampled.coverage, &named, has_check);
    let problems = sampled
        .violations
        .into_iter()
        .map(|(seq, v)| Problem {
            seq,
            field: v.field,
            message: v.message,
        })
        .collect();
    Ok(CheckReport {
        script: script.to_path_buf(),
        events: sampled.events,
        has_schema,
        problems,
        coverage: sampled.coverage,
        follow_ups: Some(sampled.follow_ups),
        warnings,
        fast_path: None,
        strict: options.strict,
    })
}
