//! Fraud ground truth of darooghe.rhai and fraud_ring.rhai, read back through `sim sample
//! --labels` and `sim backfill --sink stdout --labels`: the labelled share matches FRAUD_RATE (and
//! each pattern its weight), every pattern's signature holds in the events it labelled, merchant
//! popularity follows the Zipf skew, labels appear only when asked for, seeded output repeats, and
//! customers keep their attributes whatever the pool size or the rate.
//!
//! Statistical but seeded: every run is reproducible, and the tolerances are several standard
//! deviations wide (a wrong scaling of a pattern's chance moves a share by a factor of its size).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::DateTime;
use serde_json::Value;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(900);
const NOW: &str = "2024-01-15T10:00:00Z";
const MINUTE: i64 = 60_000;

const PATTERNS: [&str; 6] = [
    "velocity_burst",
    "high_value_streak",
    "card_testing",
    "impossible_travel",
    "account_takeover",
    "compromised_merchant",
];

/// One event as the tests read it.
#[derive(Debug, Clone)]
struct Event {
    raw: Value,
    t: i64,
    customer: String,
    merchant: String,
    amount: i64,
    at: (f64, f64),
    method: String,
    device: Value,
    customer_type: String,
    risk: i64,
    /// The `_label` pattern: `None` for a legitimate event.
    pattern: Option<String>,
}

impl Event {
    fn parse(raw: Value) -> Self {
        let text = |field: &str| {
            raw[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} is not a string: {raw}"))
                .to_string()
        };
        let int = |field: &str| {
            raw[field]
                .as_i64()
                .unwrap_or_else(|| panic!("{field} is not an integer: {raw}"))
        };
        let label = raw
            .get("_label")
            .unwrap_or_else(|| panic!("no _label with --labels: {raw}"));
        let fraud = label["fraud"]
            .as_bool()
            .unwrap_or_else(|| panic!("_label.fraud is not a bool: {raw}"));
        let pattern = label["pattern"].as_str().map(str::to_string);
        assert_eq!(
            fraud,
            pattern.is_some(),
            "_label.fraud and _label.pattern disagree: {raw}"
        );
        let t = DateTime::parse_from_rfc3339(&text("timestamp"))
            .unwrap_or_else(|e| panic!("bad timestamp ({e}): {raw}"))
            .timestamp_millis();
        let at = (
            raw["location"]["lat"].as_f64().expect("location.lat"),
            raw["location"]["lng"].as_f64().expect("location.lng"),
        );
        Event {
            t,
            customer: text("customer_id"),
            merchant: text("merchant_id"),
            amount: int("amount"),
            at,
            method: text("payment_method"),
            device: raw["device_info"].clone(),
            customer_type: text("customer_type"),
            risk: int("risk_level"),
            pattern,
            raw,
        }
    }

    fn is(&self, pattern: &str) -> bool {
        self.pattern.as_deref() == Some(pattern)
    }

    /// A remote payment (online, mobile) happens near the payer's home.
    fn remote(&self) -> bool {
        self.method == "online" || self.method == "mobile"
    }
}

/// Runs `sim` with `args` and `env`; its standard output.
fn sim_stdout(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = sim();
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = run(&mut cmd, TIMEOUT);
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "sim {args:?} with {env:?} failed:\n{}",
        out.stderr
    );
    out.stdout
}

/// `sim sample SCRIPT -n N --seed SEED --now NOW [--labels]`.
fn sample(script: &str, n: u64, seed: u64, env: &[(&str, &str)], labels: bool) -> Vec<u8> {
    let (n, seed) = (n.to_string(), seed.to_string());
    let mut args = vec!["sample", script, "-n", &n, "--seed", &seed, "--now", NOW];
    if labels {
        args.push("--labels");
    }
    sim_stdout(&args, env)
}

fn labelled(stdout: &[u8]) -> Vec<Event> {
    json_lines(stdout).into_iter().map(Event::parse).collect()
}

/// fraud_ring.rhai, 80,000 events from 10:00 with labels (shared by several tests).
fn ring() -> &'static [Event] {
    static RING: OnceLock<Vec<Event>> = OnceLock::new();
    RING.get_or_init(|| labelled(&sample("scripts/fraud_ring.rhai", 80_000, 11, &[], true)))
}

/// darooghe.rhai, 60,000 events from 10:00 with labels (shared by several tests).
fn darooghe_run() -> &'static [Event] {
    static RUN: OnceLock<Vec<Event>> = OnceLock::new();
    RUN.get_or_init(|| labelled(&sample("scripts/darooghe.rhai", 60_000, 5, &[], true)))
}

/// Great-circle distance in km (haversine, radius 6,371 km).
fn km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlng = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn fraud_share(events: &[Event]) -> f64 {
    events.iter().filter(|e| e.pattern.is_some()).count() as f64 / events.len() as f64
}

/// Asserts the labelled share is `rate` within `relative` of it.
fn assert_share(events: &[Event], rate: f64, relative: f64, what: &str) {
    let share = fraud_share(events);
    eprintln!(
        "{what}: labelled fraud share {share:.4} of {} events (FRAUD_RATE {rate})",
        events.len()
    );
    assert!(
        (share - rate).abs() <= rate * relative,
        "{what}: labelled fraud share {share:.4}, expected {rate} +- {:.4}",
        rate * relative
    );
}

/// A pattern's labelled events of each customer, in time order.
fn by_customer<'a>(events: &'a [Event], pattern: &str) -> BTreeMap<&'a str, Vec<&'a Event>> {
    let mut out: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.is(pattern)) {
        out.entry(e.customer.as_str()).or_default().push(e);
    }
    out
}

/// Splits a customer's events into runs, a new run where `starts_new(first_of_run, previous,
/// event)` says so.
fn runs<'a>(
    events: &[&'a Event],
    starts_new: impl Fn(&Event, &Event, &Event) -> bool,
) -> Vec<Vec<&'a Event>> {
    let mut out: Vec<Vec<&Event>> = Vec::new();
    for &e in events {
        match out.last_mut() {
            Some(run) if !starts_new(run[0], run[run.len() - 1], e) => run.push(e),
            _ => out.push(vec![e]),
        }
    }
    out
}

#[test]
fn labelled_fraud_share_matches_fraud_rate_for_darooghe() {
    assert_share(darooghe_run(), 0.02, 0.15, "darooghe, FRAUD_RATE default");
    // Another rate, through backfill (a week's window, so no pattern is cut short at the end).
    let stdout = sim_stdout(
        &[
            "backfill",
            "scripts/darooghe.rhai",
            "--sink",
            "stdout",
            "--count",
            "30000",
            "--days",
            "7",
            "--seed",
            "3",
            "--now",
            "2024-01-15T00:00:00Z",
            "--labels",
        ],
        &[("FRAUD_RATE", "0.1")],
    );
    let events = labelled(&stdout);
    assert_share(&events, 0.1, 0.1, "darooghe backfill, FRAUD_RATE=0.1");
    // Fraud events are the risky ones, and only they.
    for e in darooghe_run().iter().chain(&events) {
        assert_eq!(
            e.pattern.is_some(),
            e.risk >= 4,
            "risk_level {} for pattern {:?}: {}",
            e.risk,
            e.pattern,
            e.raw
        );
    }
}

#[test]
fn labelled_fraud_share_matches_fraud_rate_for_fraud_ring() {
    assert_share(ring(), 0.08, 0.1, "fraud_ring, FRAUD_RATE default");
    let events = labelled(&sample(
        "scripts/fraud_ring.rhai",
        40_000,
        12,
        &[("FRAUD_RATE", "0.03")],
        true,
    ));
    assert_share(&events, 0.03, 0.15, "fraud_ring, FRAUD_RATE=0.03");
    // No fraud at all when the rate is 0.
    let none = labelled(&sample(
        "scripts/fraud_ring.rhai",
        5_000,
        12,
        &[("FRAUD_RATE", "0")],
        true,
    ));
    assert_eq!(fraud_share(&none), 0.0, "FRAUD_RATE=0 still labels fraud");
}

#[test]
fn each_pattern_makes_its_weight_of_the_fraud_in_fraud_ring() {
    // All six weights are 1: each pattern a sixth of the fraud events, although their sizes run
    // from 2 (impossible_travel) to 13 on average (card_testing): starts are scaled by size.
    let fraud: Vec<&Event> = ring().iter().filter(|e| e.pattern.is_some()).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &fraud {
        *counts.entry(e.pattern.as_deref().unwrap()).or_default() += 1;
    }
    eprintln!("fraud_ring pattern counts: {counts:?} of {}", fraud.len());
    assert_eq!(
        counts.keys().copied().collect::<BTreeSet<_>>(),
        PATTERNS.into_iter().collect::<BTreeSet<_>>(),
        "the patterns labelled are not the six"
    );
    for (pattern, count) in &counts {
        let share = *count as f64 / fraud.len() as f64;
        assert!(
            (share - 1.0 / 6.0).abs() <= 0.05,
            "{pattern} makes {share:.3} of the fraud events, expected 1/6 +- 0.05"
        );
    }
    // Switching one campaign off takes its label away and keeps the rate.
    let events = labelled(&sample(
        "scripts/fraud_ring.rhai",
        30_000,
        13,
        &[("CARD_TESTING_WEIGHT", "0")],
        true,
    ));
    assert!(!events.iter().any(|e| e.is("card_testing")));
    assert_share(&events, 0.08, 0.15, "fraud_ring, CARD_TESTING_WEIGHT=0");
}

/// Checks every pattern's signature in the labelled events of one run.
fn assert_signatures(events: &[Event], what: &str) {
    let end = events.iter().map(|e| e.t).max().expect("events");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();

    // velocity_burst: >= 5 payments of one customer within 60 s.
    for (customer, list) in by_customer(events, "velocity_burst") {
        for run in runs(&list, |first, _, e| e.t - first.t > MINUTE) {
            if run[0].t > end - MINUTE {
                continue; // cut short by the end of the sample
            }
            assert!(
                run.len() >= 5,
                "{what}: velocity_burst of {customer} at {} has {} payments within 60 s",
                run[0].raw["timestamp"],
                run.len()
            );
            *seen.entry("velocity_burst").or_default() += 1;
        }
    }

    // high_value_streak: every payment above 1,000,000, in runs of >= 4.
    for (customer, list) in by_customer(events, "high_value_streak") {
        for e in &list {
            assert!(
                e.amount > 1_000_000,
                "{what}: high_value_streak of {}",
                e.raw
            );
        }
        for run in runs(&list, |_, previous, e| e.t - previous.t > 6 * MINUTE) {
            if run[0].t > end - 20 * MINUTE {
                continue;
            }
            assert!(
                run.len() >= 4,
                "{what}: high_value_streak of {customer} at {} has {} payments",
                run[0].raw["timestamp"],
                run.len()
            );
            *seen.entry("high_value_streak").or_default() += 1;
        }
    }

    // card_testing: >= 8 small payments (< 50,000) at one merchant, a few seconds apart, then
    // within two minutes a large one (>= 2,000,000). Runs of probes are told apart by merchant
    // and by gaps, so two campaigns of one customer at the same time are still two.
    for (customer, list) in by_customer(events, "card_testing") {
        let mut probe_runs: Vec<Vec<&Event>> = Vec::new();
        let mut cashouts: Vec<&Event> = Vec::new();
        let mut by_merchant: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for e in list {
            if e.amount < 50_000 {
                by_merchant.entry(e.merchant.as_str()).or_default().push(e);
            } else {
                assert!(
                    e.amount >= 2_000_000,
                    "{what}: card_testing payment neither small nor large: {}",
                    e.raw
                );
                cashouts.push(e);
            }
        }
        for probes in by_merchant.values() {
            probe_runs.extend(runs(probes, |_, previous, e| e.t - previous.t > 20_000));
        }
        probe_runs.sort_by_key(|run| run[run.len() - 1].t);
        // Two campaigns on one customer at one merchant at once interleave their probes into one
        // run: a run of 8k probes may then be cashed out k times.
        let mut cashed = vec![0usize; probe_runs.len()];
        for cashout in cashouts {
            let run = (0..probe_runs.len()).find(|&i| {
                let last = probe_runs[i][probe_runs[i].len() - 1].t;
                probe_runs[i].len() >= 8 * (cashed[i] + 1)
                    && last < cashout.t
                    && cashout.t - last <= 125_000
            });
            let Some(i) = run else {
                panic!(
                    "{what}: card_testing cash-out of {customer} without 8 probes just before: {}",
                    cashout.raw
                );
            };
            cashed[i] += 1;
            *seen.entry("card_testing").or_default() += 1;
        }
        for (run, cashed) in probe_runs.iter().zip(cashed) {
            assert!(
                cashed > 0 || run[run.len() - 1].t > end - 3 * MINUTE,
                "{what}: card_testing probes of {customer} from {} never cashed out",
                run[0].raw["timestamp"]
            );
        }
    }

    // impossible_travel: pairs of payments >= 300 km apart, implied speed above 900 km/h.
    let mut fastest_needed = f64::INFINITY;
    for (customer, list) in by_customer(events, "impossible_travel") {
        let mut matched = vec![false; list.len()];
        for i in 0..list.len() {
            if matched[i] {
                continue;
            }
            let partner = (i + 1..list.len()).find(|&j| {
                let (a, b) = (list[i], list[j]);
                let hours = (b.t - a.t) as f64 / 3_600_000.0;
                !matched[j] && km(a.at, b.at) >= 300.0 && km(a.at, b.at) / hours > 900.0
            });
            match partner {
                Some(j) => {
                    matched[i] = true;
                    matched[j] = true;
                    let hours = (list[j].t - list[i].t) as f64 / 3_600_000.0;
                    fastest_needed = fastest_needed.min(km(list[i].at, list[j].at) / hours);
                    *seen.entry("impossible_travel").or_default() += 1;
                }
                None => assert!(
                    list[i].t > end - 45 * MINUTE,
                    "{what}: impossible_travel payment of {customer} without a partner too far \
                     too soon: {}",
                    list[i].raw
                ),
            }
        }
    }
    eprintln!("{what}: slowest impossible travel {fastest_needed:.0} km/h");

    // account_takeover: another device, >= 290 km from where the customer pays from home, large.
    let usual = customers_seen(events);
    let mut compared = 0;
    for e in events.iter().filter(|e| e.is("account_takeover")) {
        assert!(
            e.amount > 1_000_000,
            "{what}: account_takeover of {}",
            e.raw
        );
        let Some(Seen {
            device,
            remote: homes,
            ..
        }) = usual.get(e.customer.as_str())
        else {
            continue;
        };
        assert_ne!(
            *device, &e.device,
            "{what}: account_takeover from the customer's own device: {}",
            e.raw
        );
        for home in homes {
            assert!(
                km(*home, e.at) >= 290.0,
                "{what}: account_takeover {:.0} km from where {} pays from home: {}",
                km(*home, e.at),
                e.customer,
                e.raw
            );
        }
        compared += usize::from(!homes.is_empty());
        *seen.entry("account_takeover").or_default() += 1;
    }
    assert!(
        compared >= 20,
        "{what}: only {compared} takeovers compared with home"
    );

    // compromised_merchant: each victim paid at the merchant (legitimately) within 30 minutes
    // before the charge; the charges gather on few merchants.
    let mut visits: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for v in events.iter().filter(|v| v.pattern.is_none()) {
        visits
            .entry((v.customer.as_str(), v.merchant.as_str()))
            .or_default()
            .push(v.t);
    }
    let mut victims: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut charges = 0;
    for e in events.iter().filter(|e| e.is("compromised_merchant")) {
        let visited = visits
            .get(&(e.customer.as_str(), e.merchant.as_str()))
            .is_some_and(|times| times.iter().any(|t| (e.t - 30 * MINUTE..e.t).contains(t)));
        assert!(
            visited,
            "{what}: compromised_merchant charge without a visit to the merchant before: {}",
            e.raw
        );
        victims
            .entry(e.merchant.as_str())
            .or_default()
            .insert(e.customer.as_str());
        charges += 1;
    }
    let per_merchant = charges as f64 / victims.len().max(1) as f64;
    eprintln!(
        "{what}: {charges} compromised_merchant charges at {} merchants",
        victims.len()
    );
    assert!(
        per_merchant >= 4.0,
        "{what}: {charges} compromised_merchant charges spread over {} merchants",
        victims.len()
    );
    seen.insert("compromised_merchant", victims.len());

    eprintln!("{what}: signatures checked: {seen:?}");
    for pattern in PATTERNS {
        assert!(
            seen.get(pattern).copied().unwrap_or(0) >= 5,
            "{what}: too few {pattern} campaigns to check: {seen:?}"
        );
    }
}

#[test]
fn every_pattern_signature_holds_in_fraud_ring() {
    assert_signatures(ring(), "fraud_ring");
}

#[test]
fn every_pattern_signature_holds_in_darooghe() {
    assert_signatures(darooghe_run(), "darooghe");
}

/// Legitimate payments per merchant id.
fn merchant_counts(events: &[Event]) -> BTreeMap<&str, usize> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.pattern.is_none()) {
        *counts.entry(e.merchant.as_str()).or_default() += 1;
    }
    counts
}

/// The first merchant is the most popular, and its share over the tenth's is about 10^skew.
fn assert_zipf(events: &[Event], skew: f64, relative: f64) {
    let counts = merchant_counts(events);
    let (top, _) = counts.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_eq!(*top, "merch_1", "the most popular merchant: {counts:?}");
    let ratio = counts["merch_1"] as f64 / counts["merch_10"] as f64;
    let expected = 10f64.powf(skew);
    eprintln!("merchant_skew {skew}: merch_1 / merch_10 = {ratio:.2}, Zipf says {expected:.2}");
    assert!(
        (ratio - expected).abs() <= expected * relative,
        "merchant_skew {skew}: merch_1 is {ratio:.2} times as popular as merch_10, expected \
         {expected:.2} +- {:.0}%",
        relative * 100.0
    );
}

#[test]
fn merchant_popularity_follows_the_configured_skew() {
    assert_zipf(darooghe_run(), 1.0, 0.1);
    let half = labelled(&sample(
        "scripts/darooghe.rhai",
        30_000,
        6,
        &[("MERCHANT_SKEW", "0.5")],
        true,
    ));
    assert_zipf(&half, 0.5, 0.15);
    // Customers are skewed too, mildly (exponent 0.5 over 1,000): the first pays about 10 times
    // as often as the hundredth.
    let mut customers: BTreeMap<&str, usize> = BTreeMap::new();
    for e in darooghe_run().iter().filter(|e| e.pattern.is_none()) {
        *customers.entry(e.customer.as_str()).or_default() += 1;
    }
    let ratio = customers["cust_1"] as f64 / customers["cust_100"] as f64;
    eprintln!("customer_skew 0.5: cust_1 / cust_100 = {ratio:.2}");
    assert!(
        (6.0..=15.0).contains(&ratio),
        "cust_1 pays {ratio:.2} times as often as cust_100, expected about 10"
    );
}

#[test]
fn labels_only_with_the_flag_and_the_payload_is_the_same() {
    for script in ["scripts/darooghe.rhai", "scripts/fraud_ring.rhai"] {
        let plain = json_lines(&sample(script, 5_000, 2, &[], false));
        let with = json_lines(&sample(script, 5_000, 2, &[], true));
        assert_eq!(
            plain.len(),
            with.len(),
            "{script}: --labels changes the count"
        );
        let mut fraud = 0;
        for (p, l) in plain.iter().zip(&with) {
            let object = p.as_object().unwrap();
            assert!(
                !object.contains_key("_label") && !object.contains_key("_fraud"),
                "{script}: ground truth without --labels: {p}"
            );
            let mut stripped = l.as_object().unwrap().clone();
            let label = stripped.remove("_label").expect("_label with --labels");
            fraud += usize::from(label["fraud"] == true);
            assert!(
                !stripped.contains_key("_fraud"),
                "{script}: _fraud left in {l}"
            );
            assert_eq!(
                &Value::Object(stripped),
                p,
                "{script}: --labels changes the payload"
            );
        }
        assert!(fraud > 0, "{script}: no fraud labelled in 5,000 events");
    }
}

#[test]
fn the_same_seed_gives_the_same_fraud() {
    let first = sample("scripts/fraud_ring.rhai", 5_000, 21, &[], true);
    let second = sample("scripts/fraud_ring.rhai", 5_000, 21, &[], true);
    assert!(
        first == second,
        "two runs with --seed 21 differ (first difference at byte {:?})",
        first.iter().zip(&second).position(|(a, b)| a != b)
    );
    let other = sample("scripts/fraud_ring.rhai", 5_000, 22, &[], true);
    assert_ne!(first, other, "--seed 22 gives the same output as --seed 21");
}

/// What the legitimate payments show of a customer.
struct Seen<'a> {
    customer_type: &'a str,
    device: &'a Value,
    /// Where the customer paid online or by mobile: within 3 km of home.
    remote: Vec<(f64, f64)>,
}

fn customers_seen(events: &[Event]) -> BTreeMap<&str, Seen<'_>> {
    let mut out: BTreeMap<&str, Seen> = BTreeMap::new();
    for e in events.iter().filter(|e| e.pattern.is_none()) {
        let seen = out.entry(e.customer.as_str()).or_insert(Seen {
            customer_type: &e.customer_type,
            device: &e.device,
            remote: Vec::new(),
        });
        assert_eq!(
            seen.customer_type, e.customer_type,
            "{}'s type varies",
            e.customer
        );
        assert_eq!(seen.device, &e.device, "{}'s device varies", e.customer);
        if e.remote() {
            seen.remote.push(e.at);
        }
    }
    out
}

#[test]
fn customers_keep_their_attributes_whatever_the_pool_size_and_rate() {
    let small = labelled(&sample("scripts/darooghe.rhai", 20_000, 9, &[], true));
    let large = labelled(&sample(
        "scripts/darooghe.rhai",
        20_000,
        9,
        &[("CUSTOMER_COUNT", "3000"), ("EVENT_RATE", "400")],
        true,
    ));
    let (a, b) = (customers_seen(&small), customers_seen(&large));
    let ids: BTreeSet<&str> = large.iter().map(|e| e.customer.as_str()).collect();
    assert!(
        ids.iter()
            .any(|id| id.trim_start_matches("cust_").parse::<u32>().unwrap() > 1000),
        "CUSTOMER_COUNT=3000 did not reach past cust_1000"
    );
    let mut compared = 0;
    let mut homes = 0;
    for (id, x) in &a {
        let Some(y) = b.get(id) else { continue };
        compared += 1;
        assert_eq!(
            x.customer_type, y.customer_type,
            "{id}'s customer_type changed"
        );
        assert_eq!(x.device, y.device, "{id}'s device_info changed");
        // Remote payments are within 3 km of home: in both runs, within 6 km of each other.
        for p in &x.remote {
            for q in &y.remote {
                assert!(
                    km(*p, *q) <= 6.05,
                    "{id} pays from home {:.1} km apart in the two runs: home moved",
                    km(*p, *q)
                );
                homes += 1;
            }
        }
    }
    eprintln!("{compared} customers compared, {homes} pairs of home locations");
    assert!(
        compared >= 300,
        "only {compared} customers seen in both runs"
    );
    assert!(
        homes >= 1000,
        "only {homes} pairs of home locations compared"
    );
}
