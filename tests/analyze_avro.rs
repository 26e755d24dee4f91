//! `sim analyze` reading Avro in the Confluent wire format: `sim backfill --encoding avro` into
//! librdkafka's mock cluster, registering with an embedded schema registry hosted by this test
//! process, gives the same summary figures as the same seed's JSON events; a topic with both
//! encodings is read whole; an Avro message without a registry is poison and the run goes on; an
//! unreachable registry stops the run naming its URL and where it was set.

mod analyze_support;
mod common;

use std::time::Duration;

use analyze_support::*;
use common::*;
use serde_json::Value;
use sim::registry::EmbeddedRegistry;

const COUNT: u64 = 1500;
const SEED: u64 = 11;

/// A registry on a free local port, for as long as the test holds it.
fn registry() -> EmbeddedRegistry {
    EmbeddedRegistry::start(([127, 0, 0, 1], 0).into()).expect("start the embedded registry")
}

/// `sim backfill` of darooghe into `brokers` with `encoding` (Avro registering at `registry`):
/// the messages delivered.
fn backfill_encoded(brokers: &str, encoding: &str, registry: &str, count: u64, seed: u64) -> u64 {
    let out = run(
        sim()
            .args([
                "backfill",
                "scripts/darooghe.rhai",
                "--brokers",
                brokers,
                "--now",
                NOW,
            ])
            .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
            .args(["--encoding", encoding, "--schema-registry", registry]),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "backfill failed:\n{}", out.stderr);
    let account = final_account(&out.stderr);
    assert_eq!(account.failed, 0, "{}", out.stderr);
    account.delivered
}

/// The figures that must not depend on the encoding. (Windows are left out: which windows a
/// summary keeps and closes follows the watermark, which follows how the partitions' messages
/// interleave as they are read, and that differs from one run to the next whatever the
/// encoding.)
fn figures(summary: &Value) -> Value {
    serde_json::json!({
        "events": summary["events"],
        "merchant_counts": summary["merchant_counts"],
        "category_revenue": summary["category_revenue"],
        "method_revenue": summary["method_revenue"],
        "alerts_total": summary["alerts"]["total"],
        "alerts_by_rule": summary["alerts"]["by_rule"],
        "detection": summary["detection"],
        "poison": summary["poison"]["count"],
    })
}

#[test]
fn avro_gives_the_same_figures_as_the_same_events_in_json() {
    let registry = registry();
    let json_topic = Mock::start();
    let avro_topic = Mock::start();
    let json_count = backfill_encoded(&json_topic.address, "json", &registry.url(), COUNT, SEED);
    let avro_count = backfill_encoded(&avro_topic.address, "avro", &registry.url(), COUNT, SEED);
    assert_eq!(json_count, avro_count);

    let from_json = summary_of(analyze_cmd(&json_topic.address, "json").arg("--until-idle"));
    let from_avro = summary_of(analyze_cmd(&avro_topic.address, "avro").args([
        "--until-idle",
        "--schema-registry",
        &registry.url(),
    ]));
    assert_eq!(from_avro["events"].as_u64(), Some(avro_count));
    assert!(
        from_json["alerts"]["total"].as_u64() > Some(0),
        "{from_json}"
    );
    let (avro_figures, json_figures) = (figures(&from_avro), figures(&from_json));
    for (key, json_figure) in json_figures.as_object().unwrap() {
        assert!(
            &avro_figures[key] == json_figure,
            "{key} differs: avro {} json {json_figure}",
            avro_figures[key]
        );
    }
    assert_eq!(
        from_avro["run"]["encodings"],
        serde_json::json!({"json": 0, "avro": avro_count})
    );
    assert_eq!(
        from_json["run"]["encodings"],
        serde_json::json!({"json": json_count, "avro": 0})
    );
}

#[test]
fn mixed_encodings_are_read_both_ways_and_avro_without_a_registry_is_poison() {
    let registry = registry();
    let mock = Mock::start();
    let avro = backfill_encoded(&mock.address, "avro", &registry.url(), 300, 3);
    let json = backfill_encoded(&mock.address, "json", &registry.url(), 300, 4);
    // An id the registry never gave: poison, with the registry's answer as its reason.
    produce_raw(&mock.address, 0, &[&[0, 0, 0, 0x30, 0x39, 2, 4]]);

    let both = summary_of(analyze_cmd(&mock.address, "both").args([
        "--until-idle",
        "--schema-registry",
        &registry.url(),
    ]));
    assert_eq!(
        both["run"]["encodings"],
        serde_json::json!({"json": json, "avro": avro})
    );
    assert_eq!(both["events"].as_u64(), Some(json + avro));
    assert_eq!(both["poison"]["count"], 1, "{}", both["poison"]);
    let reason = both["poison"]["messages"][0]["reason"].as_str().unwrap();
    assert!(mentions(reason, "schema id 12345"), "{reason}");
    assert!(mentions(reason, "40403"), "{reason}");

    let mut no_registry = analyze_cmd(&mock.address, "no-registry");
    no_registry
        .arg("--until-idle")
        .env_remove("SCHEMA_REGISTRY_URL");
    let json_only = summary_of(&mut no_registry);
    assert_eq!(json_only["events"].as_u64(), Some(json));
    assert_eq!(json_only["poison"]["count"].as_u64(), Some(avro + 1));
    let reason = json_only["poison"]["messages"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(mentions(reason, "no schema registry"), "{reason}");
}

#[test]
fn an_unreachable_registry_stops_the_run_naming_its_url_and_origin() {
    let registry = registry();
    let mock = Mock::start();
    backfill_encoded(&mock.address, "avro", &registry.url(), 50, 5);
    drop(registry);
    // A port that was just free: nothing listens there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{gone}");
    let out = run(
        analyze_cmd(&mock.address, "unreachable")
            .arg("--until-idle")
            .env("SCHEMA_REGISTRY_URL", &url),
        Duration::from_secs(120),
    );
    assert_no_panic(&out.stderr);
    assert!(!out.status.success(), "{}", out.stderr);
    assert!(mentions(&out.stderr, &url), "{}", out.stderr);
    assert!(
        mentions(&out.stderr, "SCHEMA_REGISTRY_URL"),
        "{}",
        out.stderr
    );
    assert!(
        mentions(&out.stderr, "sim::registry::unreachable"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_registry_credentials_are_refused_without_being_printed() {
    // Refused before any broker is asked, so no broker is needed.
    let out = run(
        sim()
            .args(["analyze", "--brokers", "127.0.0.1:1", "--no-view"])
            .args(["--schema-registry", "http://127.0.0.1:1"])
            .env("SCHEMA_REGISTRY_AUTH", "s3cret-without-a-user"),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", out.stderr);
    assert!(
        mentions(&out.stderr, "sim::registry::auth"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}
