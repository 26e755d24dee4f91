//! Seeded output is reproducible byte for byte, and the darooghe events have the seed's shape,
//! value sets, money rules and proportions; the backfill lies in its window, shaped by the
//! peak-hour curve.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(600);
const NOW: &str = "2024-01-15T10:00:00Z";

const FIELDS: [&str; 17] = [
    "transaction_id",
    "timestamp",
    "customer_id",
    "merchant_id",
    "merchant_category",
    "payment_method",
    "amount",
    "location",
    "device_info",
    "status",
    "commission_type",
    "commission_amount",
    "vat_amount",
    "total_amount",
    "customer_type",
    "risk_level",
    "failure_reason",
];

/// `sim sample scripts/darooghe.rhai -n N --seed SEED --now NOW`, standard output.
fn sample(n: u64, seed: u64, env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = sim();
    cmd.args(["sample", "scripts/darooghe.rhai", "-n", &n.to_string()])
        .args(["--seed", &seed.to_string(), "--now", NOW]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = run(&mut cmd, TIMEOUT);
    assert_no_panic(&out.stderr);
    assert!(out.status.success(), "sim sample failed:\n{}", out.stderr);
    out.stdout
}

fn millis(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

fn int(event: &Value, field: &str) -> i64 {
    event[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer: {event}"))
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {event}"))
}

#[test]
fn the_same_seed_and_clock_give_the_same_bytes_and_another_seed_does_not() {
    let first = sample(2000, 7, &[]);
    let second = sample(2000, 7, &[]);
    assert!(
        first.len() > 100_000,
        "too little output: {} bytes",
        first.len()
    );
    assert!(
        first == second,
        "two runs with --seed 7 --now {NOW} differ (first difference at byte {:?})",
        first.iter().zip(&second).position(|(a, b)| a != b)
    );
    let other = sample(2000, 8, &[]);
    assert_ne!(first, other, "--seed 8 gives the same output as --seed 7");
    assert!(json_lines(&first).len() >= 2000);
}

#[test]
fn events_have_the_seed_shape_rules_and_proportions() {
    let all = json_lines(&sample(20_000, 7, &[]));
    assert!(all.len() >= 20_000, "only {} events", all.len());
    let now = millis(NOW);

    let categories = [
        "retail",
        "food_service",
        "entertainment",
        "transportation",
        "government",
    ];
    let methods = ["online", "pos", "mobile", "nfc"];
    let commissions = ["flat", "progressive", "tiered"];
    let customer_types = ["individual", "CIP", "business"];

    let mut ids = BTreeSet::new();
    let mut merchants = BTreeSet::new();
    let mut customers = BTreeSet::new();
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let (mut declined, mut risky) = (0usize, 0usize);
    let mut last = i64::MIN;
    for event in &all {
        let object = event
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {event}"));
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            FIELDS.iter().copied().collect::<BTreeSet<_>>(),
            "fields differ from the seed's 17: {event}"
        );

        let id = text(event, "transaction_id");
        assert!(
            id.len() == 36 && id.chars().filter(|&c| c == '-').count() == 4,
            "transaction_id is not a UUID: {id}"
        );
        assert!(ids.insert(id.to_string()), "transaction_id {id} repeats");

        let stamp = text(event, "timestamp");
        assert!(stamp.ends_with('Z'), "timestamp not in UTC with Z: {stamp}");
        let t = millis(stamp);
        assert!(t >= now, "timestamp {stamp} is before --now {NOW}");
        assert!(t >= last, "timestamps go backwards at {stamp}");
        last = t;

        customers.insert(text(event, "customer_id").to_string());
        merchants.insert(text(event, "merchant_id").to_string());
        for (field, allowed) in [
            ("merchant_category", &categories[..]),
            ("payment_method", &methods[..]),
            ("commission_type", &commissions[..]),
            ("customer_type", &customer_types[..]),
            ("status", &["approved", "declined"][..]),
        ] {
            let value = text(event, field);
            assert!(
                allowed.contains(&value),
                "{field} {value:?} not in {allowed:?}"
            );
            seen.entry(field).or_default().insert(value.to_string());
        }

        let location = &event["location"];
        assert!(
            location["lat"].is_f64() && location["lng"].is_f64(),
            "location is not {{lat, lng}}: {location}"
        );
        let device = &event["device_info"];
        assert!(
            device["os"].is_string() && device["app_version"].is_string(),
            "device_info is not {{os, app_version}}: {device}"
        );

        let amount = int(event, "amount");
        let commission = int(event, "commission_amount");
        let vat = int(event, "vat_amount");
        assert!(amount > 0, "amount {amount}");
        assert_eq!(
            int(event, "total_amount"),
            amount + commission + vat,
            "total is not amount + commission + VAT: {event}"
        );
        assert_eq!(
            vat * 100,
            amount * 9,
            "VAT is not 9% of the amount: {event}"
        );
        if text(event, "commission_type") == "flat" {
            assert_eq!(
                commission,
                amount * 2 / 100,
                "flat commission not 2%: {event}"
            );
        }

        let risk = int(event, "risk_level");
        assert!((1..=5).contains(&risk), "risk_level {risk}");
        risky += usize::from(risk >= 4);

        let approved = text(event, "status") == "approved";
        declined += usize::from(!approved);
        if approved {
            assert!(
                event["failure_reason"].is_null(),
                "approved with a reason: {event}"
            );
        } else {
            assert!(
                event["failure_reason"].is_string(),
                "declined without a reason: {event}"
            );
        }
    }

    // Every value of every set shows up in 20,000 events.
    for (field, values) in &seen {
        let expected = match *field {
            "merchant_category" => categories.len(),
            "payment_method" => methods.len(),
            "commission_type" => commissions.len(),
            "customer_type" => customer_types.len(),
            _ => 2,
        };
        assert_eq!(values.len(), expected, "{field} takes only {values:?}");
    }

    let n = all.len() as f64;
    let declined_share = declined as f64 / n;
    assert!(
        (declined_share - 0.05).abs() <= 0.01,
        "declined share {declined_share:.4}, expected 0.05 +- 0.01"
    );
    let risky_share = risky as f64 / n;
    assert!(
        (risky_share - 0.02).abs() <= 0.007,
        "risk_level >= 4 share {risky_share:.4}, expected 0.02 +- 0.007"
    );
    assert!(merchants.len() <= 50, "{} merchant ids", merchants.len());
    assert!(customers.len() <= 1000, "{} customer ids", customers.len());
    // And the pools are used, not a handful of entries.
    assert!(
        merchants.len() > 40,
        "only {} merchant ids",
        merchants.len()
    );
    assert!(
        customers.len() > 900,
        "only {} customer ids",
        customers.len()
    );
}

#[test]
fn customer_count_bounds_the_customer_pool() {
    let all = json_lines(&sample(2000, 7, &[("CUSTOMER_COUNT", "10")]));
    let customers: BTreeSet<&str> = all.iter().map(|e| text(e, "customer_id")).collect();
    assert!(
        customers.len() <= 10 && customers.len() > 1,
        "CUSTOMER_COUNT=10 gave {} customer ids: {customers:?}",
        customers.len()
    );
}

#[test]
fn backfill_fills_its_window_busier_in_peak_hours() {
    let backfill = || {
        let out = run(
            sim().args([
                "backfill",
                "scripts/darooghe.rhai",
                "--sink",
                "stdout",
                "--count",
                "5000",
                "--days",
                "7",
                "--seed",
                "1",
                "--now",
                "2024-01-15T00:00:00Z",
            ]),
            TIMEOUT,
        );
        assert_no_panic(&out.stderr);
        assert!(out.status.success(), "sim backfill failed:\n{}", out.stderr);
        let account = final_account(&out.stderr);
        assert_eq!(account.failed, 0);
        out.stdout
    };
    let stdout = backfill();
    assert!(stdout == backfill(), "two seeded backfills differ");
    let all = json_lines(&stdout);
    // An arrival is one event or a fraud burst of several, so at least the count arrives.
    assert!(all.len() >= 5000, "only {} events", all.len());

    let end = millis("2024-01-15T00:00:00Z");
    let start = end - 7 * 24 * 3_600_000;
    let (mut peak, mut off_peak) = (0usize, 0usize);
    for event in &all {
        let t = millis(text(event, "timestamp"));
        assert!(
            (start..end).contains(&t),
            "backfilled event at {} outside [now - 7 days, now)",
            text(event, "timestamp")
        );
        let hour = DateTime::<Utc>::from_timestamp_millis(t).unwrap().hour();
        if (9..18).contains(&hour) {
            peak += 1;
        } else {
            off_peak += 1;
        }
    }
    // 9 peak hours and 15 others a day, over 7 days.
    let ratio = (peak as f64 / 9.0) / (off_peak as f64 / 15.0);
    assert!(
        (2.0..=3.0).contains(&ratio),
        "peak hours are {ratio:.2} times as busy per hour as the rest, expected about 2.5"
    );
}

/// `sim backfill SCRIPT --sink stdout --labels --workers W` over two days, standard output.
fn backfill_with_workers(script: &str, workers: &str, count: u64) -> Vec<u8> {
    let out = run(
        sim()
            .args(["backfill", script, "--sink", "stdout", "--labels"])
            .args(["--count", &count.to_string(), "--days", "2"])
            .args(["--seed", "3", "--now", NOW, "--workers", workers]),
        TIMEOUT,
    );
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "{script} --workers {workers}:\n{}",
        out.stderr
    );
    out.stdout
}

#[test]
fn every_scenario_makes_the_same_bytes_with_one_and_with_two_workers() {
    for script in [
        "scripts/darooghe.rhai",
        "scripts/fraud_ring.rhai",
        "scripts/flash_sale.rhai",
        "scripts/issuer_outage.rhai",
        "scripts/holiday_calendar.rhai",
        "scripts/hello.rhai",
    ] {
        let one = backfill_with_workers(script, "1", 6_000);
        let two = backfill_with_workers(script, "2", 6_000);
        assert!(json_lines(&one).len() >= 6_000, "{script}: too few events");
        assert!(
            one == two,
            "{script}: 1 and 2 workers differ (first difference at byte {:?})",
            one.iter().zip(&two).position(|(a, b)| a != b)
        );
    }
    // The fraud ring's campaigns keep memory (compromised merchants) and schedule follow-ups:
    // the ground truth they write is there, and the same, too.
    let labelled = json_lines(&backfill_with_workers(
        "scripts/fraud_ring.rhai",
        "2",
        6_000,
    ));
    assert!(labelled
        .iter()
        .any(|e| e["_label"]["pattern"] == "compromised_merchant"));
}

#[test]
fn meta_names_the_revision_sequence_and_function_of_each_event_whatever_the_workers() {
    let with_meta = |workers: &str| {
        let out = run(
            sim()
                .args(["backfill", "scripts/issuer_outage.rhai", "--sink", "stdout"])
                .args(["--meta", "--count", "3000", "--days", "2"])
                .args(["--seed", "3", "--now", NOW, "--workers", workers]),
            TIMEOUT,
        );
        assert!(out.status.success(), "{}", out.stderr);
        out.stdout
    };
    let one = with_meta("1");
    assert!(one == with_meta("2"), "1 and 2 workers differ");
    let events = json_lines(&one);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["_meta"]["seq"], i as i64, "{event}");
        assert_eq!(event["_meta"]["revision"], 1);
    }
    // Retries are follow-ups, and say so.
    let functions: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["_meta"]["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["event", "retry"].into());
}
