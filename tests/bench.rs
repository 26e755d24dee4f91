//! `sim bench` as a user runs it: the figures' structure, the script functions it lists, and
//! its errors. It measures; these tests assert what it reports, never how fast anything was.

mod common;

use std::time::Duration;

use common::{run, sim, Output};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

fn sim_bench(args: &[&str]) -> Output {
    run(sim().arg("bench").args(args), TIMEOUT)
}

/// `sim bench --format json` with a small run, parsed.
fn bench_json(script: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        script,
        "-n",
        "1500",
        "--warmup",
        "100",
        "--seed",
        "1",
        "--now",
        "2024-01-15T10:00:00Z",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let output = sim_bench(&args);
    assert!(output.status.success(), "{}", output.stderr);
    serde_json::from_slice(&output.stdout).expect("one JSON object on standard output")
}

/// The function rows, by name.
fn function<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no function {name} in {}", report["functions"]))
}

#[test]
fn darooghe_reports_per_core_speed_and_its_functions_with_modules() {
    let report = bench_json("scripts/darooghe.rhai", &["--workers", "2"]);
    assert_eq!(report["seed"], 1);
    let one = &report["one_core"];
    assert_eq!(one["workers"], 1);
    assert!(one["events"].as_u64().unwrap() >= 1500, "{one}");
    assert!(one["events_per_second"].as_f64().unwrap() > 0.0, "{one}");
    assert!(one["micros_per_event"].as_f64().unwrap() > 0.0, "{one}");
    assert_eq!(report["workers"]["workers"], 2);
    // darooghe runs compiled, every event of the one-worker run (warm-up included).
    let fast = &report["fast_path"];
    assert_eq!(fast["state"], "on", "{fast}");
    assert_eq!(fast["given_up"], 0, "{fast}");
    assert!(fast["events"].as_u64().unwrap() >= 1600, "{fast}");
    let split = &report["split"];
    let share = split["script_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "{split}");

    // Every event is one transaction, made by the module's function.
    let transaction = function(&report, "payments::transaction");
    let per_event = transaction["calls_per_event"].as_f64().unwrap();
    assert!((0.9..=1.1).contains(&per_event), "{transaction}");
    // Arrivals call `event`; follow-ups (fraud) make the rest.
    let event = function(&report, "event");
    let per_event = event["calls_per_event"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&per_event), "{event}");
    assert!(event["total_share"].as_f64().unwrap() > 0.5, "{event}");
    assert_eq!(function(&report, "money::commission")["native"], false);
    function(&report, "fraud::choose");
    // `fraud_payments` maps its specs through a closure.
    assert_eq!(function(&report, "<closure>")["native"], false);
    // Native helpers called by name are listed too: a customer and a merchant each event.
    let pick = function(&report, "pick_zipf");
    assert_eq!(pick["native"], true);
    let per_event = pick["calls_per_event"].as_f64().unwrap();
    assert!((1.8..=2.2).contains(&per_event), "{pick}");

    // Sorted by self share; shares are fractions of the script's time.
    let shares: Vec<f64> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["self_share"].as_f64().unwrap())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
    assert!(shares.iter().sum::<f64>() <= 1.0 + 1e-9, "{shares:?}");
    let lines = report["lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .any(|l| l["file"].as_str().unwrap().ends_with("lib/payments.rhai")),
        "{lines:?}"
    );
}

#[test]
fn the_text_report_names_speeds_functions_and_lines() {
    let output = sim_bench(&[
        "scripts/darooghe.rhai",
        "-n",
        "1000",
        "--warmup",
        "100",
        "--workers",
        "2",
        "--top",
        "5",
    ]);
    assert!(output.status.success(), "{}", output.stderr);
    let said = &output.stderr;
    assert!(said.contains("1 worker:"), "{said}");
    assert!(said.contains("2 workers:"), "{said}");
    assert!(said.contains("µs/event"), "{said}");
    assert!(
        said.contains("fast path: on, 0 of ") && said.contains(" events given up"),
        "{said}"
    );
    assert!(
        said.contains("functions, the most self time first"),
        "{said}"
    );
    assert!(
        said.contains("event\n") || said.contains("  event"),
        "{said}"
    );
    assert!(said.contains("scripts/lib/"), "{said}");
    assert!(output.stdout.is_empty(), "events are sent nowhere");
}

#[test]
fn an_obviously_slow_helper_tops_the_profile() {
    let report = bench_json("tests/fixtures/bench/slow_helper.rhai", &["--workers", "1"]);
    let functions = report["functions"].as_array().unwrap();
    assert_eq!(functions[0]["name"], "slow_sum", "{functions:?}");
    assert!(functions[0]["self_share"].as_f64().unwrap() > 0.5);
    let slow = function(&report, "slow_sum");
    assert_eq!(slow["calls_per_event"].as_f64().unwrap(), 1.0);
    assert!(
        report["workers"].is_null(),
        "one worker asked: no second run"
    );
    let top_line = &report["lines"][0];
    assert!(
        top_line["text"].as_str().unwrap().contains("i * i % 7"),
        "{top_line}"
    );
}

#[test]
fn without_the_profile_only_speeds_are_reported() {
    let report = bench_json(
        "tests/fixtures/bench/slow_helper.rhai",
        &["--no-profile", "--workers", "1"],
    );
    assert!(report["one_core"]["events"].as_u64().unwrap() >= 1500);
    assert!(report["functions"].as_array().unwrap().is_empty());
    assert!(report["split"].is_null());
}

#[test]
fn a_duration_sets_the_count_from_the_warm_up() {
    let output = sim_bench(&[
        "scripts/hello.rhai",
        "--duration",
        "0.2",
        "--warmup",
        "100",
        "--no-profile",
        "--workers",
        "2",
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "{}", output.stderr);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let events = report["one_core"]["events"].as_u64().unwrap();
    assert!(events > 0, "{report}");
    assert_eq!(report["workers"]["events"].as_u64().unwrap(), events);
}

#[test]
fn a_broken_script_gets_the_check_diagnostic() {
    let script = "tests/fixtures/syntax_error.rhai";
    let output = sim_bench(&[script, "-n", "10"]);
    assert!(!output.status.success());
    assert!(
        output
            .stderr
            .contains("syntax error in tests/fixtures/syntax_error.rhai:"),
        "{}",
        output.stderr
    );
    let check = run(sim().args(["check", script]), TIMEOUT);
    let code = |text: &str| {
        text.lines()
            .find(|l| l.contains("sim::"))
            .map(|l| l.trim().to_string())
    };
    assert!(code(&check.stderr).is_some(), "{}", check.stderr);
    assert_eq!(code(&output.stderr), code(&check.stderr));

    let missing = sim_bench(&["tests/fixtures/no_such_script.rhai"]);
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("no_such_script.rhai"),
        "{}",
        missing.stderr
    );
}

#[test]
fn bad_flags_are_refused_clearly() {
    let both = sim_bench(&["scripts/hello.rhai", "-n", "10", "--duration", "1"]);
    assert!(!both.status.success());
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );

    let negative = sim_bench(&["scripts/hello.rhai", "--duration=-2"]);
    assert!(!negative.status.success());
    assert!(
        negative.stderr.contains("--duration"),
        "{}",
        negative.stderr
    );

    let workers = sim_bench(&["scripts/hello.rhai", "--workers", "many"]);
    assert!(!workers.status.success());
    assert!(workers.stderr.contains("workers"), "{}", workers.stderr);
}

#[test]
fn a_script_the_fast_path_does_not_cover_is_reported_as_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("looping.rhai");
    std::fs::write(
        &script,
        "fn event(ctx) { let n = 0; do { n += 1; } while n < 3; #{ customer_id: `c${n}` } }\n",
    )
    .unwrap();
    let report = bench_json(&script.display().to_string(), &["--no-profile"]);
    assert_eq!(report["fast_path"]["state"], "not_compiled");
    let text = sim_bench(&[&script.display().to_string(), "-n", "300", "--no-profile"]);
    assert!(
        text.stderr
            .contains("fast path: off, event(ctx) uses what it does not cover"),
        "{}",
        text.stderr
    );
}

#[test]
fn the_start_up_and_how_setup_ran_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let without = dir.path().join("no_setup.rhai");
    std::fs::write(&without, "fn event(ctx) { #{ customer_id: \"c\" } }\n").unwrap();
    let without = without.display().to_string();
    // The seed port's setup runs compiled; hello's builds a pool, which the fast path leaves
    // to the interpreter.
    for (script, setup) in [
        ("benches/seed_port.rhai", "compiled"),
        ("scripts/hello.rhai", "interpreted"),
        (without.as_str(), "none"),
    ] {
        let report = bench_json(script, &["--no-profile"]);
        assert_eq!(report["setup"], setup, "{script}");
        assert!(
            report["start_up_seconds"].as_f64().unwrap() > 0.0,
            "{script}"
        );
    }
    let text = sim_bench(&["benches/seed_port.rhai", "-n", "300", "--no-profile"]);
    assert!(
        text.stderr
            .contains("(compiling, settings, setup); setup(ctx) runs on the fast path"),
        "{}",
        text.stderr
    );
}
