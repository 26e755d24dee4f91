//! The error policy (`on_error`) and one validation at every entry point, as a user meets them
//! through the `sim` binary: a rare script error is skipped, counted and shown by `sim run`, and
//! stops `sim backfill`; a script whose events break its own schema is refused by every command
//! before anything is written.

mod common;

use std::time::Duration;

use common::*;

const RARE: &str = "tests/fixtures/errors/rare_failure.rhai";
const UNDECLARED: &str = "tests/fixtures/errors/undeclared_field.rhai";
const WAIT: Duration = Duration::from_secs(60);

/// The JSON lines of the file at `path`.
fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_live_stream_skips_a_rare_failing_event_counts_it_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = format!("file:{}", out.display());
    let output = run(
        sim()
            .args(["run", RARE, "--seed", "3", "--duration", "1", "--no-reload"])
            .args(["--sink", &sink]),
        WAIT,
    );
    let stderr = &output.stderr;
    assert_no_panic(stderr);
    // Not every arrival was made: the exit status says so.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let events = lines(&out);
    let account = final_account(stderr);
    let errors = account.script_errors;
    // A backfill of 3,000 and a second at 10,000 a second, one in 1,000 failing.
    assert!(events.len() > 5_000, "{} events\n{stderr}", events.len());
    assert!(errors >= 5, "{errors}\n{stderr}");
    let n = events.len() as u64;
    assert_eq!(
        (account.produced, account.delivered, account.failed),
        (n, n, 0)
    );
    // The first few are shown with their diagnostic, then only counted.
    assert_eq!(
        stderr.matches("script error: skipped").count(),
        3,
        "{stderr}"
    );
    assert!(mentions(stderr, "no merchant for event 999"), "{stderr}");
    assert!(
        mentions(stderr, "further script errors are counted"),
        "{stderr}"
    );
    // A skipped event's number went with it: the gaps are the errors.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.iter().all(|s| s % 1000 != 999));
    assert_eq!(seqs.len() as u64 + errors, *seqs.last().unwrap() as u64 + 1);
}

#[test]
fn on_error_stop_ends_the_live_stream_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = format!("file:{}", out.display());
    let output = run(
        sim()
            .args(["run", RARE, "--seed", "3", "--duration", "1", "--no-reload"])
            .args(["--sink", &sink])
            .env("ON_ERROR", "stop"),
        WAIT,
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr);
    assert!(
        mentions(&output.stderr, "no merchant for event 999"),
        "{}",
        output.stderr
    );
    // What was made before it is kept.
    assert_eq!(lines(&out).len(), 999);
}

#[test]
fn backfill_stops_at_the_first_failure_unless_told_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = format!("file:{}", out.display());
    let stopped = run(
        sim().args(["backfill", RARE, "--seed", "3", "--sink", &sink]),
        WAIT,
    );
    assert_eq!(stopped.status.code(), Some(1), "{}", stopped.stderr);
    assert!(
        mentions(&stopped.stderr, "no merchant for event 999"),
        "{}",
        stopped.stderr
    );
    assert_eq!(lines(&out).len(), 999);

    let skipped = run(
        sim()
            .args(["backfill", RARE, "--seed", "3", "--sink", &sink])
            .args(["--set", "on_error=skip"]),
        WAIT,
    );
    assert_eq!(skipped.status.code(), Some(1), "{}", skipped.stderr);
    assert_eq!(
        final_account(&skipped.stderr).script_errors,
        3,
        "{}",
        skipped.stderr
    );
    assert_eq!(lines(&out).len(), 2_997);
}

#[test]
fn every_command_refuses_a_script_whose_events_break_its_schema_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = format!("file:{}", out.display());
    for command in [
        vec![
            "run",
            UNDECLARED,
            "--duration",
            "1",
            "--no-reload",
            "--sink",
            &sink,
        ],
        vec!["backfill", UNDECLARED, "--sink", &sink],
        vec!["sample", UNDECLARED],
    ] {
        let output = run(sim().args(&command), WAIT);
        let stderr = &output.stderr;
        assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(
            mentions(stderr, "sim::scenario::sample_broken"),
            "{command:?}: {stderr}"
        );
        assert!(
            mentions(stderr, "`coupon`: field is not in the schema"),
            "{command:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{command:?} wrote events");
        assert!(!out.exists(), "{command:?} wrote events");
    }
    // `sim check` says the same.
    let check = run(sim().args(["check", UNDECLARED]), WAIT);
    assert!(
        mentions(&check.stderr, "`coupon`: field is not in the schema"),
        "{}",
        check.stderr
    );
}
