//! `--log-format json`: every line on standard error is one JSON object with `time`, `level`
//! and `message` (and the notice's fields), standard output still carries events alone, a broken
//! script ends in one `error` object, a rejected hot-reload edit carries its diagnostic, and a
//! format `sim` does not know is refused.

mod common;

use std::time::Duration;

use common::{fixture, run, sim, Background};
use serde_json::Value;

/// A bound against hangs, not a timing assertion (CI is a shared 2 cores).
const WAIT: Duration = Duration::from_secs(120);

/// Parses every stderr line as an object with the fields every line has; fails naming the line.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nstderr:\n{stderr}"));
            let time = value["time"]
                .as_str()
                .unwrap_or_else(|| panic!("no time: {line}"));
            chrono::DateTime::parse_from_rfc3339(time)
                .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
            assert!(
                time.ends_with('Z') && time.len() == 24,
                "UTC with millis: {time}"
            );
            assert!(
                ["info", "warn", "error"].contains(&value["level"].as_str().unwrap_or("")),
                "level: {line}"
            );
            let message = value["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{line}"));
            assert!(!message.contains('\x1b'), "no terminal escapes: {line}");
            value
        })
        .collect()
}

fn of_event<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[test]
fn sample_writes_json_lines_on_stderr_and_only_events_on_stdout() {
    // Fails on every 1000th event: skipped events give warnings with diagnostics, and the
    // account is printed because it is not clean.
    let out = run(
        sim()
            .args(["sample"])
            .arg(fixture("errors/rare_failure.rhai"))
            .args([
                "-n",
                "2500",
                "--seed",
                "1",
                "--set",
                "on_error=skip",
                "--log-format",
                "json",
            ]),
        WAIT,
    );
    let lines = json_lines(&out.stderr);
    let skipped = of_event(&lines, "skipped");
    assert_eq!(skipped.len(), 2, "{}", out.stderr);
    assert_eq!(skipped[0]["level"], "warn");
    assert_eq!(skipped[0]["function"], "event");
    let diagnostic = skipped[0]["diagnostic"].as_str().unwrap();
    assert!(diagnostic.contains("rare_failure.rhai:14"), "{diagnostic}");
    let account = of_event(&lines, "account");
    assert_eq!(account.len(), 1);
    assert_eq!(account[0]["script_errors"], 2);
    assert_eq!(account[0]["level"], "error");
    // Standard output: events, as in text mode.
    let events = common::json_lines(&out.stdout);
    assert_eq!(
        events.len() as u64,
        account[0]["produced"].as_u64().unwrap()
    );
    assert!(events.iter().all(|e| e.get("customer_id").is_some()));
}

#[test]
fn backfill_ends_with_an_account_object_whose_figures_match_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let out = run(
        sim()
            .args(["backfill"])
            .arg(common::root().join("scripts/hello.rhai"))
            .args(["--count", "300", "--days", "1", "--log-format", "json"])
            .arg("--sink")
            .arg(format!("file:{}", file.display())),
        WAIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let lines = json_lines(&out.stderr);
    let seed = of_event(&lines, "seed");
    assert_eq!(seed.len(), 1);
    assert!(seed[0]["seed"].is_u64(), "{}", seed[0]);
    let account = lines.last().unwrap();
    assert_eq!(account["event"], "account", "{}", out.stderr);
    assert_eq!(account["level"], "info");
    let written = std::fs::read_to_string(&file).unwrap().lines().count() as u64;
    assert_eq!(account["produced"], written);
    assert_eq!(account["delivered"], written);
    assert_eq!(account["failed"], 0);
    assert_eq!(account["script_errors"], 0);
    assert_eq!(
        account["message"],
        format!("account: produced {written}, delivered {written}, failed 0, script errors 0")
    );
    let backfilled = of_event(&lines, "backfilled");
    assert_eq!(backfilled[0]["events"], written);
}

#[test]
fn the_environment_chooses_json_too_and_text_stays_the_default() {
    let args = [
        "--count",
        "20",
        "--days",
        "1",
        "--sink",
        "stdout",
        "--seed",
        "7",
        "--now",
        "2026-01-01T00:00:00Z",
    ];
    let script = common::root().join("scripts/hello.rhai");
    let json = run(
        sim()
            .arg("backfill")
            .arg(&script)
            .args(args)
            .env("SIM_LOG_FORMAT", "json"),
        WAIT,
    );
    assert!(json.status.success(), "{}", json.stderr);
    let lines = json_lines(&json.stderr);
    let text = run(sim().arg("backfill").arg(&script).args(args), WAIT);
    assert!(text.status.success(), "{}", text.stderr);
    // The same messages, line for line, as text mode prints them.
    let text_lines: Vec<&str> = text.stderr.lines().collect();
    assert_eq!(text_lines.len(), lines.len(), "{}", text.stderr);
    for (text, json) in text_lines.iter().zip(&lines) {
        if json["event"] == "backfilled" {
            continue; // its speed differs from run to run
        }
        assert_eq!(json["message"], *text);
    }
    assert_eq!(
        json.stdout, text.stdout,
        "standard output does not depend on the log format"
    );
}

#[test]
fn a_broken_script_ends_in_one_error_object_naming_the_file() {
    let out = run(
        sim()
            .args(["sample"])
            .arg(fixture("syntax_error.rhai"))
            .args(["--log-format", "json"]),
        WAIT,
    );
    assert!(!out.status.success());
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let error = &lines[0];
    assert_eq!(error["level"], "error");
    assert_eq!(error["code"], "sim::script::syntax");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("syntax_error.rhai:4"),
        "{error}"
    );
    assert!(error["diagnostic"]
        .as_str()
        .unwrap()
        .contains("let y = (x + ;"));
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = run(
        sim()
            .args(["sample"])
            .arg(common::root().join("scripts/hello.rhai"))
            .args(["--log-format", "yaml"]),
        WAIT,
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("invalid value 'yaml'"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--log-format"), "{}", out.stderr);
    assert!(out.stderr.contains("text, json"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

fn scenario(tag: &str) -> String {
    format!(
        "fn config() {{ #{{ rate: 2000.0, peak_factor: 1.0, tag: \"{tag}\" }} }}\n\
         fn event(ctx) {{ #{{ customer_id: `c${{ctx.seq % 10}}`, v: ctx.settings.tag }} }}\n"
    )
}

#[test]
fn a_rejected_reload_is_an_object_with_its_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let running = Background::start(
        sim()
            .args(["run", "s.rhai", "--seed", "1", "--log-format", "json"])
            .arg("--sink")
            .arg(format!("file:{}", dir.path().join("out.jsonl").display()))
            .current_dir(dir.path())
            .env("EVENT_INIT_MODE", "skip"),
    );
    running.wait_for_line("hot reload watching", WAIT, |l| {
        l.contains(r#""result":"watching""#)
    });
    // As tests/reload.rs does: a pause so the edit is seen as one after the start.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&script, "fn event(ctx) { #{ customer_id: \"c\" \n").unwrap();
    let line = running.wait_for_line("a rejected reload", WAIT, |l| {
        l.contains(r#""result":"rejected""#)
    });
    let rejected: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(rejected["event"], "reload");
    assert_eq!(rejected["level"], "warn");
    assert_eq!(rejected["revision"], 1);
    assert_eq!(
        rejected["message"],
        "edit rejected; revision 1 keeps running"
    );
    let diagnostic = rejected["diagnostic"].as_str().unwrap();
    assert!(diagnostic.contains("s.rhai"), "{diagnostic}");
    running.interrupt();
    let (status, stderr) = running.wait(WAIT);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stderr);
    assert_eq!(lines.last().unwrap()["event"], "account", "{stderr}");
}
