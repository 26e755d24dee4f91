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
    let output = sim_check(&args);
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
        "field `customer_id` field is not in the schema",
        "field `amount` -5 is below the minimum 0",
        "field `status` `lost` is not one of approved, declined",
        "field `reason` is i64, expected string",
        "field `place.lat` is string, expected float",
        "field `id` required field is missing",
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
