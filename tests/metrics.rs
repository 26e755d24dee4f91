//! `--metrics ADDR` against real parts: a real Prometheus server scrapes `sim run` on loopback
//! and its HTTP API is queried; the exposition is read by Python's `prometheus_client` parser;
//! `/readyz` follows a real broker (Tansu) stopped with SIGSTOP and resumed; hot reload moves the
//! reload counters and the revision; a taken port and a malformed address are refused at start.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{http_get, HttpResponse};
use common::prometheus::{parse_exposition, require_prometheus_client, Prometheus, Sample};
use common::{free_port, Background, Tansu};
use serde_json::Value;

/// Bound on every wait; none is expected to take more than a few seconds.
const WAIT: Duration = Duration::from_secs(60);

/// `GET path` from a running sim's endpoint; fails the test if it does not answer.
fn get(address: &str, path: &str) -> HttpResponse {
    http_get(address, path).unwrap_or_else(|e| panic!("GET {path} from {address}: {e}"))
}

/// Polls `path` until `done` holds for the answer, and returns it; fails the test with the last
/// answer after [`WAIT`].
fn poll(address: &str, path: &str, done: impl Fn(&HttpResponse) -> bool) -> HttpResponse {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = http_get(address, path);
        if let Ok(answer) = &answer {
            if done(answer) {
                return answer.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} from {address} never gave the expected answer; last: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the one sample of a query's answer.
fn only_value(samples: &[Sample]) -> f64 {
    assert_eq!(samples.len(), 1, "expected one series, got {samples:?}");
    samples[0].1
}

/// The value of the sample named `name` whose labels include `labels`, in a parsed exposition.
fn sample(exposition: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = exposition[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {exposition}"));
    let found = samples
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v));
    let value = &found.unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:?}"))[2];
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{name} is not a number: {value}"))
}

/// The metric names of docs/observability.md's reference tables.
fn documented_metrics() -> BTreeSet<String> {
    let docs = std::fs::read_to_string(common::root().join("docs/observability.md")).unwrap();
    docs.lines()
        .filter_map(|line| line.strip_prefix("| `sim_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("sim_{name}"))
        .collect()
}

/// The queries of docs/observability.md's PromQL block.
fn documented_queries() -> Vec<String> {
    let docs = std::fs::read_to_string(common::root().join("docs/observability.md")).unwrap();
    let block = docs
        .split("```promql\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a promql block in docs/observability.md");
    block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The metric names `text` mentions (`sim_...`), a histogram's series as the histogram.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("sim_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        names.insert(histogram_of(&name).to_string());
    }
    names
}

fn histogram_of(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// The metric names of a parsed exposition's samples, a histogram's series as the histogram.
fn served_metrics(parsed: &Value) -> BTreeSet<String> {
    let families = parsed.as_object().unwrap();
    families
        .values()
        .flat_map(|family| family["samples"].as_array().unwrap().iter())
        .map(|s| histogram_of(s[0].as_str().unwrap()).to_string())
        .collect()
}

#[test]
fn the_dashboard_and_the_documented_queries_name_only_documented_metrics() {
    let documented = documented_metrics();
    assert!(documented.contains("sim_events_total"), "{documented:?}");
    assert!(
        documented.contains("sim_analyze_alerts_total"),
        "{documented:?}"
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("docs/grafana/sim.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut named = BTreeSet::new();
    for expr in exprs.iter().chain(documented_queries().iter()) {
        named.extend(metric_names(expr));
    }
    let undocumented: Vec<_> = named.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not served by sim: {undocumented:?}"
    );
}

/// Every `expr` string in a Grafana dashboard: its panels' targets and its annotations.
fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}

fn sim_run(script: &Path, metrics: &str) -> Command {
    let mut cmd = common::sim();
    cmd.arg("run")
        .arg(script)
        .args(["--metrics", metrics, "--seed", "7", "--no-reload"]);
    cmd
}

#[test]
fn prometheus_scrapes_a_live_run_and_its_figures_agree_with_the_rate_curve_and_the_account() {
    require_prometheus_client();
    let address = format!("127.0.0.1:{}", free_port());
    let prometheus = Prometheus::start("sim", &[&address]);
    // Peak hours all day: the curve asks for rate × peak_factor = 600/min × 2.5 = 25 events/s.
    let mut cmd = sim_run(&common::darooghe(), &address);
    cmd.args([
        "--set",
        "rate=600",
        "--set",
        "peak_hours=0-24",
        "--set",
        "backfill=100",
    ])
    // A secret in the producer's properties must not reach the endpoint.
    .args([
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=hunter2-secret",
    ]);
    let run = Background::start(&mut cmd);
    run.wait_for_line("the metrics URL", WAIT, |l| {
        l == format!("metrics at http://{address}/metrics (also /healthz, /readyz)")
    });

    // Prometheus sees the events rise.
    let first = only_value(
        &prometheus.wait_for("sim_events_total", WAIT, |s| s.len() == 1 && s[0].1 > 100.0),
    );
    let later = prometheus.wait_for("sim_events_total", WAIT, |s| s.len() == 1 && s[0].1 > first);
    assert_eq!(later[0].0["scenario"], "darooghe");
    assert_eq!(later[0].0["topic"], "darooghe.transactions");
    eprintln!("sim_events_total: {first}, then {later:?}");
    let target = only_value(&prometheus.query("sim_target_rate"));
    eprintln!("sim_target_rate: {target}");
    assert!((target - 25.0).abs() < 1e-9, "sim_target_rate {target}");
    let up = prometheus.wait_for("sim_kafka_broker_up", WAIT, |s| !s.is_empty());
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");

    // The exposition, read directly, parses with a standard parser and holds no secret.
    let scrape = get(&address, "/metrics");
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!scrape.body.contains("hunter2"), "{}", scrape.body);
    let parsed = parse_exposition(&scrape.body);
    assert_eq!(parsed["sim_events"]["type"], "counter");
    assert_eq!(parsed["sim_event_seconds"]["type"], "histogram");
    assert_eq!(parsed["sim_schedule_lag_seconds"]["type"], "histogram");
    assert_eq!(parsed["sim_target_rate"]["type"], "gauge");
    let count = sample(&parsed, "sim_event_seconds", "sim_event_seconds_count", &[]);
    let inf = sample(
        &parsed,
        "sim_event_seconds",
        "sim_event_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(count, inf);
    assert!(count > 0.0);
    let documented = documented_metrics();
    for name in served_metrics(&parsed) {
        assert!(
            documented.contains(&name),
            "{name} is served but not in docs/observability.md"
        );
    }
    // The queries the docs offer are valid PromQL, and the producer's answer.
    for promql in documented_queries() {
        let answer = prometheus.query(&promql);
        eprintln!("{promql} => {answer:?}");
        if promql.contains("sim_achieved_rate / sim_target_rate") {
            assert_eq!(answer.len(), 1, "{promql}: {answer:?}");
        }
    }
    let workers = sample(&parsed, "sim_workers", "sim_workers", &[]);
    assert!(workers >= 1.0, "{workers}");
    assert_eq!(get(&address, "/healthz").status, 200);
    let ready = get(&address, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Stopped, sim waits for a last scrape: the last value Prometheus holds is the account's.
    run.interrupt();
    let (status, stderr) = run.wait(WAIT);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("metrics: waiting up to 10 s for a last scrape"),
        "{stderr}"
    );
    let account = common::final_account(&stderr);
    assert!(account.delivered > 0);
    let last =
        |metric: &str| only_value(&prometheus.query(&format!("last_over_time({metric}[5m])")));
    eprintln!(
        "after the last scrape: sim_delivered_total {}, account {account:?}",
        last("sim_delivered_total")
    );
    assert_eq!(last("sim_delivered_total"), account.delivered as f64);
    assert_eq!(last("sim_events_total"), account.produced as f64);
    assert_eq!(last("sim_in_flight"), 0.0);
}

#[test]
fn readyz_turns_not_ready_while_the_broker_is_stopped_and_ready_once_it_resumes() {
    let tansu = Tansu::start();
    let address = format!("127.0.0.1:{}", free_port());
    let mut cmd = sim_run(&common::darooghe(), &address);
    cmd.args(["--brokers", &tansu.address, "--set", "rate=6000"])
        .env("EVENT_INIT_MODE", "skip");
    let run = Background::start(&mut cmd);
    let ready = poll(&address, "/readyz", |r| r.status == 200);
    assert_eq!(ready.body, "ready\n");

    tansu.signal("STOP");
    let stalled = poll(&address, "/readyz", |r| r.status == 503);
    // Either sign of the outage: requests unanswered, or librdkafka's connection not up (it
    // reconnects, and the handshake goes unanswered).
    let body = &stalled.body;
    assert!(
        body.starts_with("not ready: the broker answered nothing for")
            || body.starts_with("not ready: no broker connection is up"),
        "{body}"
    );
    let parsed = parse_exposition(&get(&address, "/metrics").body);
    let in_flight = sample(&parsed, "sim_in_flight", "sim_in_flight", &[]);
    assert!(
        in_flight > 0.0,
        "sim_in_flight {in_flight} during the outage"
    );
    assert_eq!(get(&address, "/healthz").status, 200);

    tansu.signal("CONT");
    poll(&address, "/readyz", |r| r.status == 200);
    let parsed = parse_exposition(&get(&address, "/metrics").body);
    let delivered = sample(&parsed, "sim_delivered", "sim_delivered_total", &[]);
    assert!(delivered > 0.0);

    run.interrupt();
    let (status, stderr) = run.wait(WAIT);
    assert!(status.success(), "{stderr}\ntansu:\n{}", tansu.log());
}

/// A scenario at 100 events/s into a file, tagged with `version`.
fn tagged(version: &str) -> String {
    format!(
        "fn config() {{ #{{ rate: 6000.0, peak_factor: 1.0, tag: \"{version}\" }} }}\n\
         fn event(ctx) {{ #{{ customer_id: `c${{ctx.seq % 10}}`, v: ctx.settings.tag }} }}\n"
    )
}

#[test]
fn a_reload_and_a_rejected_edit_move_the_reload_counters_and_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tagged.rhai");
    std::fs::write(&script, tagged("v1")).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut cmd = common::sim();
    cmd.arg("run")
        .arg(&script)
        .args(["--metrics", &address, "--sink"])
        .arg(format!("file:{}", dir.path().join("out.jsonl").display()))
        .env("EVENT_INIT_MODE", "skip");
    let run = Background::start(&mut cmd);
    run.wait_for_line("hot reload watching", WAIT, |l| {
        l.starts_with("hot reload: watching")
    });
    let figures = || parse_exposition(&get(&address, "/metrics").body);
    let reloads = |figures: &Value, result: &str| {
        sample(
            figures,
            "sim_reloads",
            "sim_reloads_total",
            &[("result", result)],
        )
    };
    let revision =
        |figures: &Value| sample(figures, "sim_script_revision", "sim_script_revision", &[]);
    let before = figures();
    assert_eq!(reloads(&before, "accepted"), 0.0);
    assert_eq!(reloads(&before, "rejected"), 0.0);
    assert_eq!(revision(&before), 1.0);

    common::replace_atomically(&script, &tagged("v2"));
    poll(&address, "/metrics", |r| {
        r.body.contains("sim_script_revision{scenario=\"tagged\"")
            && revision(&parse_exposition(&r.body)) == 2.0
    });
    let accepted = figures();
    assert_eq!(reloads(&accepted, "accepted"), 1.0);
    assert_eq!(reloads(&accepted, "rejected"), 0.0);

    common::replace_atomically(
        &script,
        "fn config() { #{ rate: 6000.0 } }\nfn event(ctx) { #{ a: }\n",
    );
    poll(&address, "/metrics", |r| {
        reloads(&parse_exposition(&r.body), "rejected") == 1.0
    });
    let rejected = figures();
    assert_eq!(reloads(&rejected, "accepted"), 1.0);
    assert_eq!(
        revision(&rejected),
        2.0,
        "a rejected edit keeps the revision"
    );

    run.interrupt();
    let (status, stderr) = run.wait(WAIT);
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_taken_port_is_refused_at_start_naming_the_address_and_where_it_came_from() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = common::run(
        common::sim()
            .args(["backfill"])
            .arg(common::darooghe())
            .args(["--count", "10", "--sink", "stdout"])
            .env("METRICS_ADDR", &address),
        WAIT,
    );
    assert!(!out.status.success());
    let stderr = out.stderr.clone();
    assert!(
        common::mentions(
            &stderr,
            &format!("cannot serve metrics on {address} (from environment variable METRICS_ADDR)")
        ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no event before the endpoint is up");
}

#[test]
fn an_address_that_does_not_parse_is_refused_with_the_flag_it_came_from() {
    let out = common::run(
        common::sim()
            .args(["backfill"])
            .arg(common::darooghe())
            .args([
                "--count",
                "10",
                "--sink",
                "stdout",
                "--metrics",
                "localhost",
            ]),
        WAIT,
    );
    assert!(!out.status.success());
    let stderr = out.stderr.clone();
    assert!(
        common::mentions(
            &stderr,
            "invalid value `localhost` for setting `metrics` (from flag --metrics): expected an \
             address to listen on, like 127.0.0.1:9464"
        ),
        "{stderr}"
    );
}
