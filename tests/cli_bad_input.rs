//! Bad input on the command line: each case ends with a non-zero exit and a message that names
//! the problem and where it came from, never with a panic or a hang.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Bound on each run: these all fail at once; the bound only keeps a regression from hanging.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs sim with `args` (and `env`), asserts a clean failure, and returns standard error.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = sim();
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = run(&mut cmd, TIMEOUT);
    assert_no_panic(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(code) if code != 0),
        "expected a non-zero exit (not a signal) from sim {args:?}, got {}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    out.stderr
}

fn assert_mentions(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            mentions(stderr, needle),
            "the message does not mention {needle:?}:\n{stderr}"
        );
    }
}

/// 1-based line of the first line of `path` that contains `needle`.
fn line_of(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{} has no {needle:?}", path.display()))
        + 1
}

#[test]
fn a_missing_script_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_scenario.rhai");
    let path = missing.to_str().unwrap();
    for command in ["sample", "run", "backfill", "check"] {
        let stderr = fails(&[command, path], &[]);
        assert_mentions(&stderr, &[path]);
        assert!(
            stderr.contains("cannot read") || stderr.contains("No such file"),
            "`sim {command}` does not say the script cannot be read:\n{stderr}"
        );
    }
}

#[test]
fn a_script_without_event_is_refused() {
    let script = fixture("no_event.rhai");
    for command in ["sample", "check"] {
        let stderr = fails(&[command, script.to_str().unwrap()], &[]);
        assert_mentions(&stderr, &["no_event.rhai", "event(ctx)"]);
    }
}

#[test]
fn a_detection_rule_given_as_a_scenario_is_sent_where_it_belongs() {
    let rule = "scripts/detect/card_testing.rhai";
    for command in ["sample", "run", "bench"] {
        let stderr = fails(&[command, rule], &[]);
        assert_mentions(
            &stderr,
            &["card_testing.rhai", "detection rule", "sim analyze --rules"],
        );
    }
}

#[test]
fn an_event_that_is_not_a_map_names_event_and_its_line() {
    let script = fixture("event_not_map.rhai");
    let line = line_of(&script, "fn event(");
    let stderr = fails(&["sample", script.to_str().unwrap(), "-n", "1"], &[]);
    assert_mentions(
        &stderr,
        &["event()", &format!("event_not_map.rhai:{line}"), "map"],
    );
    // It reports what came back instead of a map.
    assert!(
        stderr.contains("i64") || stderr.contains("integer") || stderr.contains("42"),
        "the message does not say what event() returned:\n{stderr}"
    );
}

#[test]
fn a_syntax_error_points_at_file_line_and_column() {
    let script = fixture("syntax_error.rhai");
    let text = std::fs::read_to_string(&script).unwrap();
    let line = line_of(&script, "(x + ;");
    let column = text.lines().nth(line - 1).unwrap().find(';').unwrap() + 1;
    let location = format!("syntax_error.rhai:{line}:{column}");
    for command in ["sample", "check"] {
        let stderr = fails(&[command, script.to_str().unwrap()], &[]);
        assert_mentions(&stderr, &[&location]);
        assert!(
            stderr.contains("(x + ;"),
            "the message does not show the offending source line:\n{stderr}"
        );
    }
}

#[test]
fn a_rate_that_is_not_a_number_names_the_variable_and_the_value() {
    let stderr = fails(
        &["sample", "scripts/darooghe.rhai", "-n", "1"],
        &[("EVENT_RATE", "abc")],
    );
    assert_mentions(&stderr, &["EVENT_RATE", "`abc`"]);
}

#[test]
fn a_negative_peak_factor_names_the_variable_and_the_value() {
    let stderr = fails(
        &["sample", "scripts/darooghe.rhai", "-n", "1"],
        &[("PEAK_FACTOR", "-1")],
    );
    assert_mentions(&stderr, &["PEAK_FACTOR", "`-1`"]);
}

#[test]
fn an_unknown_sink_is_named() {
    for command in ["sample", "backfill"] {
        let stderr = fails(
            &[command, "scripts/darooghe.rhai", "--sink", "nowhere"],
            &[],
        );
        assert_mentions(&stderr, &["nowhere", "--sink"]);
    }
}

#[test]
fn an_unreachable_broker_is_reported_with_the_flag_that_named_it() {
    // Port 1 on the loopback: nothing listens there, connections are refused.
    for command in ["run", "backfill"] {
        let mut cmd = sim();
        cmd.args([command, "scripts/darooghe.rhai", "--brokers", "127.0.0.1:1"]);
        let extra: &[&str] = if command == "run" {
            &["--set", "backfill=10"]
        } else {
            &["--count", "10"]
        };
        cmd.args(extra);
        let out = run(&mut cmd, Duration::from_secs(30));
        assert_no_panic(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(code) if code != 0),
            "sim {command} against an unreachable broker exited with {}:\n{}",
            out.status,
            out.stderr
        );
        assert_mentions(
            &out.stderr,
            &["cannot reach Kafka", "127.0.0.1:1", "--brokers"],
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let path = missing.to_str().unwrap();
    let stderr = fails(&["sample", "scripts/darooghe.rhai", "--config", path], &[]);
    assert_mentions(&stderr, &[path, "config"]);
}

#[test]
fn a_runaway_script_is_stopped_by_the_operation_limit() {
    let script = fixture("runaway.rhai");
    for command in ["sample", "check"] {
        let stderr = fails(&[command, script.to_str().unwrap(), "-n", "1"], &[]);
        assert_mentions(&stderr, &["event()", "runaway.rhai", "operation limit"]);
    }
}

#[test]
fn a_bad_worker_count_names_the_flag_or_variable_and_the_value() {
    let stderr = fails(&["sample", "scripts/hello.rhai", "--workers=-3"], &[]);
    assert_mentions(&stderr, &["--workers", "`-3`", "workers"]);
    let stderr = fails(
        &["sample", "scripts/hello.rhai"],
        &[("SIM_WORKERS", "many")],
    );
    assert_mentions(&stderr, &["SIM_WORKERS", "`many`"]);
}
