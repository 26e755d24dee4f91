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
