//! darooghe.rhai's money rules, called through the library (`Scenario::call`), checked against
//! values worked out by hand from the rates the script documents; and `sim check` over every
//! shipped script and over broken fixtures.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use sim::script::Scenario;

use common::*;

fn scenario() -> Scenario {
    Scenario::load(&darooghe()).unwrap_or_else(|e| panic!("darooghe.rhai does not load: {e}"))
}

fn commission(scenario: &mut Scenario, kind: &str, amount: i64) -> i64 {
    let result = scenario
        .call("commission", (kind.to_string(), amount))
        .unwrap_or_else(|e| panic!("commission({kind}, {amount}) failed: {e}"));
    result
        .as_int()
        .unwrap_or_else(|t| panic!("commission({kind}, {amount}) returned a {t}, not rials"))
}

fn vat(scenario: &mut Scenario, amount: i64) -> i64 {
    scenario
        .call("vat", (amount,))
        .unwrap_or_else(|e| panic!("vat({amount}) failed: {e}"))
        .as_int()
        .unwrap_or_else(|t| panic!("vat({amount}) returned a {t}, not rials"))
}

#[test]
fn flat_commission_and_vat_match_the_seed_example() {
    let mut s = scenario();
    // The seed: 150,000 rials + 3,000 commission + 13,500 VAT = 166,500.
    assert_eq!(commission(&mut s, "flat", 150_000), 3_000);
    assert_eq!(vat(&mut s, 150_000), 13_500);
    assert_eq!(
        150_000 + commission(&mut s, "flat", 150_000) + vat(&mut s, 150_000),
        166_500
    );
    // 2% and 9% hold elsewhere too.
    assert_eq!(commission(&mut s, "flat", 1_000_000), 20_000);
    assert_eq!(vat(&mut s, 1_000_000), 90_000);
}

#[test]
fn progressive_commission_grows_with_the_amount_up_to_three_percent() {
    let mut s = scenario();
    let rate =
        |s: &mut Scenario, amount: i64| commission(s, "progressive", amount) as f64 / amount as f64;
    // 1% plus 0.25% per whole million: 1% at 100,000, 2.25% at 5,000,000.
    assert_eq!(commission(&mut s, "progressive", 100_000), 1_000);
    assert_eq!(commission(&mut s, "progressive", 5_000_000), 112_500);
    assert!(
        rate(&mut s, 5_000_000) > rate(&mut s, 100_000),
        "the progressive rate does not grow with the amount"
    );
    // The rate never falls as the amount grows, and stops at 3% (from 8,000,000 on).
    let mut previous = 0.0;
    for millions in 0..=40 {
        let amount = millions * 1_000_000 + 500_000;
        let r = rate(&mut s, amount);
        assert!(
            r >= previous,
            "the rate falls at {amount}: {r} < {previous}"
        );
        assert!(r <= 0.03 + 1e-12, "the rate at {amount} is {r}, above 3%");
        previous = r;
    }
    assert_eq!(commission(&mut s, "progressive", 8_000_000), 240_000);
    assert_eq!(commission(&mut s, "progressive", 20_000_000), 600_000);
    assert_eq!(commission(&mut s, "progressive", 100_000_000), 3_000_000);
}

#[test]
fn tiered_commission_applies_marginal_rates() {
    let mut s = scenario();
    // 2.5% up to 500,000, 1.5% from 500,000 to 2,000,000, 1% above.
    // 400,000: 400,000 x 2.5% = 10,000.
    assert_eq!(commission(&mut s, "tiered", 400_000), 10_000);
    // 1,000,000: 500,000 x 2.5% + 500,000 x 1.5% = 12,500 + 7,500 = 20,000.
    assert_eq!(commission(&mut s, "tiered", 1_000_000), 20_000);
    // 3,000,000: 12,500 + 1,500,000 x 1.5% + 1,000,000 x 1% = 12,500 + 22,500 + 10,000 = 45,000.
    assert_eq!(commission(&mut s, "tiered", 3_000_000), 45_000);
    // Marginal, not a flat rate by bracket: crossing a boundary never lowers the commission.
    assert!(commission(&mut s, "tiered", 500_001) >= commission(&mut s, "tiered", 500_000));
    assert!(commission(&mut s, "tiered", 2_000_001) >= commission(&mut s, "tiered", 2_000_000));
}

#[test]
fn an_unknown_commission_kind_is_an_error() {
    let mut s = scenario();
    let err = s
        .call("commission", ("percentage".to_string(), 150_000_i64))
        .expect_err("commission(\"percentage\", ...) should fail");
    let message = format!("{err}");
    assert!(
        message.contains("commission") && message.contains("percentage"),
        "the error does not name the function and the kind: {message}"
    );
}

/// Every `.rhai` file directly in `dir`.
fn scripts_in(dir: &str) -> Vec<PathBuf> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    scripts
}

#[test]
fn sim_check_passes_every_shipped_script() {
    let scripts = scripts_in("scripts");
    assert!(scripts.iter().any(|p| p.ends_with("darooghe.rhai")));
    let out = run(sim().arg("check").args(&scripts), Duration::from_secs(300));
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "sim check scripts/*.rhai failed ({}):\n{}",
        out.status,
        out.stderr
    );
}

#[test]
fn sim_check_fails_each_broken_fixture() {
    for name in [
        "no_event.rhai",
        "event_not_map.rhai",
        "syntax_error.rhai",
        "runaway.rhai",
    ] {
        let out = run(
            sim().arg("check").arg(fixture(name)),
            Duration::from_secs(120),
        );
        assert_no_panic(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(code) if code != 0),
            "sim check {name} exited with {}:\n{}",
            out.status,
            out.stderr
        );
        assert!(
            mentions(&out.stderr, name),
            "{name} is not named:\n{}",
            out.stderr
        );
    }
    // One broken script among good ones still fails the whole check.
    let out = run(
        sim()
            .arg("check")
            .arg(darooghe())
            .arg(fixture("event_not_map.rhai")),
        Duration::from_secs(300),
    );
    assert!(
        !out.status.success(),
        "a broken script among good ones passed:\n{}",
        out.stderr
    );
}

// ---- The shared modules under scripts/lib, through a probe script that imports them ----------

/// A scenario "in scripts/" (so `lib/...` imports resolve there) exposing module functions.
fn probe() -> Scenario {
    let source = r#"
import "lib/time" as time;
import "lib/fraud" as fraud;
import "lib/money" as money;
fn event(ctx) { #{} }
fn peak_tehran(t) { time::is_peak(t, 9, 18, "Asia/Tehran") }
fn peak_utc(t) { time::is_peak(t, 9, 18) }
fn night(t) { time::is_peak(t, 22, 6) }
fn friday(t) { time::is_weekend(t, [4], "Asia/Tehran") }
fn date_tehran(t) { time::date_of(t, "Asia/Tehran") }
fn date_offset(t) { time::date_of(t, 210) }
fn nowruz(t) { time::is_holiday(t, ["2024-03-20"], "Asia/Tehran") }
fn hour_tehran(t) { time::hour_fraction(t, "Asia/Tehran") }
fn peak_rate(t) { time::peak_rate(t, 100.0, 2.5, 9, 18) }
fn bell(t) { time::bell_rate(t, 100.0, 3.0, 12.5, 2.0) }
fn ramp(t) { time::ramp(t, 1000, 2000, 10, 20) }
fn plan(rate) {
    fraud::plan(rate, [
        fraud::entry("velocity_burst", 2),
        fraud::entry("card_testing", 1, #{ min_probes: 10, max_probes: 10 }),
        fraud::entry("impossible_travel", 1),
    ]).chances
}
fn distance(a_lat, a_lng, b_lat, b_lng) {
    fraud::distance_km(#{ lat: a_lat, lng: a_lng }, #{ lat: b_lat, lng: b_lng })
}
fn amount(category, customer_type) { money::draw_amount(category, customer_type) }
"#;
    Scenario::from_source(&root().join("scripts/lib_probe.rhai"), source)
        .unwrap_or_else(|e| panic!("the probe of scripts/lib does not load: {e}"))
}

fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

fn call_bool(s: &mut Scenario, f: &str, at: &str) -> bool {
    s.call(f, (ms(at),))
        .unwrap_or_else(|e| panic!("{f}({at}) failed: {e}"))
        .as_bool()
        .unwrap_or_else(|t| panic!("{f}({at}) returned a {t}"))
}

fn call_float(s: &mut Scenario, f: &str, t: i64) -> f64 {
    s.call(f, (t,))
        .unwrap_or_else(|e| panic!("{f}({t}) failed: {e}"))
        .as_float()
        .unwrap_or_else(|t| panic!("{f} returned a {t}"))
}

fn call_text(s: &mut Scenario, f: &str, at: &str) -> String {
    s.call(f, (ms(at),))
        .unwrap_or_else(|e| panic!("{f}({at}) failed: {e}"))
        .to_string()
}

#[test]
fn lib_time_follows_the_clock_and_calendar_of_a_zone() {
    let mut s = probe();
    // Tehran is UTC+3:30: its 9:00 is 5:30 UTC.
    assert!(call_bool(&mut s, "peak_tehran", "2024-01-15T05:30:00Z"));
    assert!(!call_bool(&mut s, "peak_tehran", "2024-01-15T05:29:59Z"));
    assert!(!call_bool(&mut s, "peak_utc", "2024-01-15T05:30:00Z"));
    assert!(call_bool(&mut s, "peak_utc", "2024-01-15T09:00:00Z"));
    assert!(!call_bool(&mut s, "peak_utc", "2024-01-15T18:00:00Z"));
    // 22 to 6 wraps past midnight.
    assert!(call_bool(&mut s, "night", "2024-01-15T23:00:00Z"));
    assert!(call_bool(&mut s, "night", "2024-01-15T05:59:00Z"));
    assert!(!call_bool(&mut s, "night", "2024-01-15T12:00:00Z"));
    // Friday 2024-01-19 starts at 20:30 UTC on Thursday in Tehran.
    assert!(!call_bool(&mut s, "friday", "2024-01-18T20:29:00Z"));
    assert!(call_bool(&mut s, "friday", "2024-01-18T20:31:00Z"));
    assert!(call_bool(&mut s, "friday", "2024-01-19T12:00:00Z"));
    // Nowruz 2024-03-20 in Tehran, by zone name and by fixed offset.
    assert_eq!(
        call_text(&mut s, "date_tehran", "2024-03-19T20:31:00Z"),
        "2024-03-20"
    );
    assert_eq!(
        call_text(&mut s, "date_offset", "2024-03-19T20:31:00Z"),
        "2024-03-20"
    );
    assert_eq!(
        call_text(&mut s, "date_tehran", "2024-03-19T20:29:00Z"),
        "2024-03-19"
    );
    assert!(call_bool(&mut s, "nowruz", "2024-03-19T20:31:00Z"));
    assert!(!call_bool(&mut s, "nowruz", "2024-03-19T20:29:00Z"));
    assert_eq!(
        call_float(&mut s, "hour_tehran", ms("2024-01-15T06:45:00Z")),
        10.25
    );
    // Curves.
    assert_eq!(
        call_float(&mut s, "peak_rate", ms("2024-01-15T10:00:00Z")),
        250.0
    );
    assert_eq!(
        call_float(&mut s, "peak_rate", ms("2024-01-15T08:59:00Z")),
        100.0
    );
    assert!((call_float(&mut s, "bell", ms("2024-01-15T12:30:00Z")) - 300.0).abs() < 1e-9);
    assert!((call_float(&mut s, "bell", ms("2024-01-15T00:30:00Z")) - 100.0).abs() < 1e-3);
    assert_eq!(call_float(&mut s, "ramp", 0), 10.0);
    assert_eq!(call_float(&mut s, "ramp", 1500), 15.0);
    assert_eq!(call_float(&mut s, "ramp", 5000), 20.0);
}

#[test]
fn lib_fraud_plan_scales_start_chances_by_pattern_size() {
    let mut s = probe();
    // velocity_burst makes 5 events a start, card_testing 10 probes + 1, impossible_travel 2;
    // weights 2:1:1.
    let sizes = [5.0, 11.0, 2.0];
    let weights = [0.5, 0.25, 0.25];
    for rate in [0.02, 0.08, 0.5, 1.0] {
        let chances: Vec<f64> = s
            .call("plan", (rate,))
            .unwrap_or_else(|e| panic!("plan({rate}) failed: {e}"))
            .into_array()
            .unwrap()
            .into_iter()
            .map(|c| c.as_float().unwrap())
            .collect();
        assert_eq!(chances.len(), 3);
        let fraud: f64 = chances.iter().zip(sizes).map(|(q, k)| q * k).sum();
        let starts: f64 = chances.iter().sum();
        let share = fraud / (1.0 - starts + fraud);
        assert!(
            (share - rate).abs() < 1e-12,
            "plan({rate}): the expected fraud share is {share}"
        );
        for ((q, k), w) in chances.iter().zip(sizes).zip(weights) {
            assert!(
                (q * k / fraud - w).abs() < 1e-12,
                "plan({rate}): a pattern of size {k} makes {} of the fraud, not {w}",
                q * k / fraud
            );
        }
    }
    let none = s.call("plan", (0.0,)).unwrap().into_array().unwrap();
    assert!(none.is_empty(), "plan(0) starts patterns: {none:?}");
}

#[test]
fn lib_fraud_distance_is_the_great_circle() {
    let mut s = probe();
    let (tehran, mashhad): ((f64, f64), (f64, f64)) = ((35.6892, 51.3890), (36.2605, 59.6168));
    let script = s
        .call("distance", (tehran.0, tehran.1, mashhad.0, mashhad.1))
        .unwrap()
        .as_float()
        .unwrap();
    let (lat1, lat2) = (f64::to_radians(tehran.0), f64::to_radians(mashhad.0));
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((mashhad.1 - tehran.1).to_radians() / 2.0).sin().powi(2);
    let expected = 2.0 * 6371.0 * h.sqrt().asin();
    assert!(
        (script - expected).abs() < 1e-6,
        "{script} km, expected {expected}"
    );
    assert!(
        (730.0..750.0).contains(&script),
        "Tehran-Mashhad is {script} km"
    );
}

#[test]
fn lib_money_amounts_center_on_the_category_median_times_the_customer_type() {
    let mut s = probe();
    for (category, customer_type, median) in [
        ("retail", "individual", 450_000.0),
        ("transportation", "individual", 120_000.0),
        ("retail", "business", 1_350_000.0),
        ("government", "CIP", 1_800_000.0),
    ] {
        let mut amounts: Vec<i64> = (0..2001)
            .map(|_| {
                s.call("amount", (category.to_string(), customer_type.to_string()))
                    .unwrap()
                    .as_int()
                    .unwrap()
            })
            .collect();
        assert!(amounts.iter().all(|a| a % 1000 == 0 && *a >= 10_000));
        amounts.sort_unstable();
        let measured = amounts[1000] as f64;
        assert!(
            (measured / median - 1.0).abs() < 0.08,
            "{category}/{customer_type}: median {measured}, expected {median}"
        );
    }
}
