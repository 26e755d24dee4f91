//! `sim check`: every shipped script passes; each kind of schema and invariant violation, a
//! syntax error and a runaway script fail with their place; `--format json` for machines; and
//! the same check as a library call.

use std::path::Path;
use std::process::{Command, Output};

fn sim_check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("check")
        .args(args)
        .output()
        .expect("sim runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_shipped_script_passes() {
    let scripts: Vec<String> = std::fs::read_dir("scripts")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rhai"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(!scripts.is_empty());
    let args: Vec<&str> = scripts.iter().map(String::as_str).collect();
    let output = sim_check(&[&["--strict"], &args[..]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    for script in &scripts {
        assert!(
            stderr(&output).contains(&format!("ok: {script}")),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn each_kind_of_schema_violation_is_reported_with_its_field() {
    let output = sim_check(&["tests/fixtures/check/schema_violations.rhai", "-n", "20"]);
    assert!(!output.status.success());
    let said = stderr(&output);
    for expected in [
        "`customer_id`: field is not in the schema",
        "`amount`: -5 is below the minimum 0",
        "`status`: `lost` is not one of approved, declined",
        "`reason`: is i64, expected string",
        "`place.lat`: is string, expected float",
        "`id`: required field is missing",
    ] {
        assert!(said.contains(expected), "missing `{expected}` in:\n{said}");
    }
    assert!(said.contains("(20 events)"), "{said}");
}

#[test]
fn a_broken_invariant_is_reported() {
    let output = sim_check(&["tests/fixtures/check/broken_invariant.rhai", "-n", "50"]);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.contains("invariant: total is not amount + fee (50 events)"),
        "{said}"
    );
}

#[test]
fn a_syntax_error_and_a_runaway_script_fail_with_their_place() {
    let output = sim_check(&[
        "tests/fixtures/syntax_error.rhai",
        "tests/fixtures/runaway.rhai",
        "scripts/darooghe.rhai",
    ]);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.contains("FAIL: tests/fixtures/syntax_error.rhai"),
        "{said}"
    );
    assert!(
        said.contains("syntax error in tests/fixtures/syntax_error.rhai:"),
        "{said}"
    );
    assert!(said.contains("FAIL: tests/fixtures/runaway.rhai"), "{said}");
    assert!(said.contains("Too many operations"), "{said}");
    assert!(said.contains("ok: scripts/darooghe.rhai"), "{said}");
    assert!(said.contains("2 of 3 scripts failed"), "{said}");
}

#[test]
fn json_output_lists_every_script_and_problem() {
    let output = sim_check(&[
        "--format",
        "json",
        "-n",
        "5",
        "scripts/darooghe.rhai",
        "tests/fixtures/check/broken_invariant.rhai",
        "tests/fixtures/syntax_error.rhai",
    ]);
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let scripts = report["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 3);
    assert_eq!(scripts[0]["ok"], true);
    assert_eq!(scripts[0]["has_schema"], true);
    assert_eq!(scripts[1]["problems"].as_array().unwrap().len(), 5);
    assert_eq!(
        scripts[1]["problems"][0]["message"],
        "total is not amount + fee"
    );
    assert_eq!(scripts[2]["error"]["code"], "sim::script::syntax");
}

#[test]
fn the_check_is_a_library_call() {
    let options = sim::check::CheckOptions {
        count: 100,
        ..Default::default()
    };
    let input = sim::settings::UserInput::default();
    let good =
        sim::check::check_script(Path::new("scripts/darooghe.rhai"), &input, &options).unwrap();
    assert!(good.passed(), "{:?}", good.problems);
    assert!(good.has_schema);
    let bad = sim::check::check_script(
        Path::new("tests/fixtures/check/broken_invariant.rhai"),
        &input,
        &options,
    )
    .unwrap();
    assert_eq!(bad.problems.len(), 100);
}

#[test]
fn detection_rules_are_checked_by_their_contract() {
    let output = sim_check(&[
        "scripts/detect/card_testing.rhai",
        "scripts/detect/impossible_travel.rhai",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ok: scripts/detect/card_testing.rhai"),
        "{}",
        stderr(&output)
    );
    let dir = tempfile::tempdir().unwrap();
    let failing = dir.path().join("failing.rhai");
    std::fs::write(
        &failing,
        "fn detect(event, history) { event.amount.no_such_helper() }\n",
    )
    .unwrap();
    let output = sim_check(&[failing.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Function not found: no_such_helper"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_says_whether_a_rule_runs_compiled() {
    let output = sim_check(&["scripts/detect/impossible_travel.rhai", "-n", "200"]);
    let said = stderr(&output);
    assert!(
        said.contains("fast path: on, all 200 calls compiled"),
        "{said}"
    );
    let dir = tempfile::tempdir().unwrap();
    let looping = dir.path().join("looping.rhai");
    std::fs::write(
        &looping,
        "fn detect(event, history) { let n = 0; do { n += 1; } while n < 2; event.amount > 2000000 }\n",
    )
    .unwrap();
    let output = sim_check(&[looping.to_str().unwrap(), "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["scripts"][0]["fast_path"]["state"], "not_compiled",
        "{report}"
    );
}

/// The ride-hailing fixture with `edit` applied (`from` replaced by `to`), in a folder of its
/// own; its path.
fn ride_variant(dir: &Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string("tests/fixtures/check/ride.rhai").unwrap();
    assert!(text.contains(from), "the fixture has no `{from}`");
    let path = dir.join("ride.rhai");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path.display().to_string()
}

#[test]
fn a_follow_up_chain_is_checked_to_its_last_link_with_coverage_per_function() {
    let output = sim_check(&[
        "tests/fixtures/check/ride.rhai",
        "--strict",
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let script = &report["scripts"][0];
    let coverage = script["coverage"].as_array().unwrap();
    let names: Vec<&str> = coverage
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["event", "trip_cancelled", "trip_completed", "trip_started"]
    );
    for f in coverage {
        assert!(f["calls"].as_u64().unwrap() > 0, "{f}");
        assert_eq!(f["checked"], f["events"], "{f}");
    }
    assert_eq!(script["follow_ups"]["left"], 0);
}

#[test]
fn a_rule_broken_only_in_the_last_link_of_the_chain_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The commission goes wrong only in trip_completed, an hour after the request at most.
    let script = ride_variant(
        dir.path(),
        "let commission = (trip.fare * ctx.settings.commission_rate).to_int();",
        "let commission = (trip.fare * 0.25).to_int();",
    );
    let output = sim_check(&[&script, "--strict"]);
    assert!(!output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("invariant: commission is not fare * commission_rate"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_reads_a_setting_given_with_set() {
    // The invariant reads commission_rate from its settings: a --set that the script's own
    // computation ignores is caught.
    let dir = tempfile::tempdir().unwrap();
    let script = ride_variant(
        dir.path(),
        "let commission = (trip.fare * ctx.settings.commission_rate).to_int();",
        "let commission = (trip.fare * 0.2).to_int();",
    );
    assert!(sim_check(&[&script]).status.success());
    let output = sim_check(&[&script, "--set", "commission_rate=0.3"]);
    assert!(!output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_misspelled_follow_up_name_fails_at_load_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = ride_variant(
        dir.path(),
        "\"trip_completed\", #{",
        "\"trip_complete\", #{",
    );
    let output = sim_check(&[&script]);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(said.contains("ride.rhai:35:"), "{said}");
    assert!(said.contains("did you mean `trip_completed`"), "{said}");
}

#[test]
fn a_self_multiplying_follow_up_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = ride_variant(
        dir.path(),
        "fn trip_cancelled(ctx, trip) {\n",
        "fn trip_cancelled(ctx, trip) {\n    ctx.follow_up(1000, \"trip_cancelled\", trip);\n    ctx.follow_up(2000, \"trip_cancelled\", trip);\n",
    );
    let output = sim_check(&[&script]);
    assert!(!output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    assert!(
        said.contains("follow-ups grow without levelling off"),
        "{said}"
    );
    assert!(
        said.contains("`trip_cancelled` is scheduled the most"),
        "{said}"
    );
}

#[test]
fn a_follow_up_the_check_never_reaches_is_a_warning_and_fails_strict() {
    let dir = tempfile::tempdir().unwrap();
    // Requests are never started: trip_started, and so trip_completed, are never called.
    let script = ride_variant(dir.path(), "if chance(0.8) {", "if false {");
    let output = sim_check(&[&script]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: `trip_started` is scheduled by the script"),
        "{}",
        stderr(&output)
    );
    assert!(!sim_check(&[&script, "--strict"]).status.success());
}
