//! `sim analyze --metrics`: a seeded backfill on librdkafka's mock cluster is analyzed while the
//! endpoint is scraped. The counters must equal what was produced, alerts and scores appear by
//! rule, the consumer's lag reaches 0, the exposition parses with the Python client's parser, and
//! `/readyz` answers 200 while the consumer consumes. A taken port and an address that is not one
//! are refused with a message naming them.

mod analyze_support;
mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use analyze_support::*;
use common::http::http_get;
use common::prometheus::{parse_exposition, require_prometheus_client};
use common::*;
use serde_json::Value;

/// How long anything here may take before the test fails: generous for a loaded machine.
const BOUND: Duration = Duration::from_secs(120);

/// The samples of `family` in a parsed exposition: `(labels, value)`.
fn samples(exposition: &Value, family: &str) -> Vec<(Value, f64)> {
    exposition[family]["samples"]
        .as_array()
        .map(|samples| {
            samples
                .iter()
                .filter_map(|s| Some((s[1].clone(), s[2].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The one sample of `family` (a family with a single series).
fn single(exposition: &Value, family: &str) -> Option<f64> {
    samples(exposition, family).first().map(|(_, v)| *v)
}

/// `/metrics` of `address`, parsed; `None` while the endpoint does not answer 200.
fn scrape(address: &str) -> Option<(String, Value)> {
    let response = http_get(address, "/metrics").ok()?;
    (response.status == 200).then(|| {
        let parsed = parse_exposition(&response.body);
        (response.body, parsed)
    })
}

/// Scrapes until `done` holds for the parsed exposition, for up to [`BOUND`]; the last one.
fn scrape_until(address: &str, what: &str, done: impl Fn(&Value) -> bool) -> (String, Value) {
    let deadline = Instant::now() + BOUND;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((text, parsed)) = scrape(address) {
            if done(&parsed) {
                return (text, parsed);
            }
            last = Some(text);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: not within {BOUND:?}; the last scrape:\n{last:?}");
}

#[test]
fn scraped_while_analyzing_the_figures_match_what_was_produced() {
    require_prometheus_client();
    let mock = Mock::start();
    let delivered = backfill(&mock.address, "scripts/darooghe.rhai", 3000, 7);
    let address = format!("127.0.0.1:{}", free_port());
    let analyzer =
        Background::start(analyze_cmd(&mock.address, "metrics-test").args(["--metrics", &address]));
    analyzer.wait_for_line("the metrics URL", BOUND, |l| {
        l.contains(&format!("metrics at http://{address}/metrics"))
    });

    // Ready once the member consumes (and holds partitions or reaches the broker).
    let deadline = Instant::now() + BOUND;
    let ready = loop {
        let answer = http_get(&address, "/readyz");
        if answer.as_ref().is_ok_and(|r| r.status == 200) || Instant::now() >= deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let ready = ready.expect("GET /readyz");
    assert_eq!(ready.status, 200, "/readyz: {}", ready.body);

    // Every event consumed, and librdkafka sees no lag left on any partition.
    let (text, exposition) = scrape_until(&address, "all events consumed, lag 0", |e| {
        let lags = samples(e, "sim_kafka_consumer_lag");
        single(e, "sim_analyze_events") == Some(delivered as f64)
            && lags.len() == 3
            && lags.iter().all(|(_, lag)| *lag == 0.0)
    });
    let labels = &samples(&exposition, "sim_analyze_events")[0].0;
    assert_eq!(labels["topic"], TOPIC, "{text}");
    assert_eq!(labels["group"], "metrics-test", "{text}");
    assert_eq!(single(&exposition, "sim_analyze_poison"), Some(0.0));
    assert_eq!(exposition["sim_analyze_events"]["type"], "counter");

    // darooghe injects fraud: the native rules fire, each with its own series.
    let alerts = samples(&exposition, "sim_analyze_alerts");
    let rules: Vec<&str> = alerts
        .iter()
        .filter_map(|(l, _)| l["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"velocity") && rules.contains(&"high_value"),
        "{text}"
    );
    assert!(alerts.iter().map(|(_, n)| n).sum::<f64>() > 0.0, "{text}");

    // The backfill carries the ground truth (fraud_pattern): precision and recall by rule.
    for family in ["sim_analyze_precision", "sim_analyze_recall"] {
        let scores = samples(&exposition, family);
        assert!(!scores.is_empty(), "no {family} in\n{text}");
        assert_eq!(exposition[family]["type"], "gauge");
        for (labels, value) in &scores {
            assert!(labels["rule"].is_string(), "{family} {labels}");
            assert!((0.0..=1.0).contains(value), "{family} {labels} = {value}");
        }
    }
    let open = samples(&exposition, "sim_analyze_windows_open");
    assert_eq!(open.len(), 2, "{text}");
    assert!(exposition["sim_analyze_windows_closed"]["type"] == "counter");

    // Stopped, it waits for one more scrape (it was scraped), and that one has the final figures.
    analyzer.interrupt();
    analyzer.wait_for_line("the wait for a last scrape", BOUND, |l| {
        l.contains("waiting up to")
    });
    let (_, last) = scrape(&address).expect("the last scrape");
    assert_eq!(single(&last, "sim_analyze_events"), Some(delivered as f64));
    let (status, stderr) = analyzer.wait(BOUND);
    assert!(status.success(), "{stderr}");
    assert_no_panic(&stderr);
}

#[test]
fn a_taken_port_is_refused_naming_the_address_and_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = taken.local_addr().unwrap().to_string();
    // Refused before any broker is asked: this one does not exist.
    let out = run(
        sim()
            .args(["analyze", "--brokers", "127.0.0.1:1", "--no-view"])
            .args(["--metrics", &address]),
        BOUND,
    );
    assert!(!out.status.success());
    assert!(
        mentions(&out.stderr, &format!("cannot serve metrics on {address}")),
        "{}",
        out.stderr
    );
    assert!(mentions(&out.stderr, "flag --metrics"), "{}", out.stderr);
    assert_no_panic(&out.stderr);
}

#[test]
fn an_address_that_is_not_one_is_refused_naming_the_value_and_where_it_came_from() {
    let out = run(
        sim()
            .args(["analyze", "--brokers", "127.0.0.1:1", "--no-view"])
            .env("METRICS_ADDR", "nine-four-six-four"),
        BOUND,
    );
    assert!(!out.status.success());
    assert!(
        mentions(&out.stderr, "nine-four-six-four"),
        "{}",
        out.stderr
    );
    assert!(
        mentions(&out.stderr, "environment variable METRICS_ADDR"),
        "{}",
        out.stderr
    );
    assert_no_panic(&out.stderr);
}
