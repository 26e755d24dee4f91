//! The alternative scenarios (`flash_sale`, `issuer_outage`, `holiday_calendar`, `hello`): each
//! passes `sim check`, streams through the embedded broker, and shows its defining property in
//! seeded output: the flash sale's peak and where its payments go, the outage's decline spike and
//! the retries that follow it, the holiday calendar's week and Nowruz, hello's own invariants.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Timelike};
use chrono_tz::{Asia::Tehran, Tz};
use serde_json::Value;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(600);

const SCENARIOS: [&str; 4] = [
    "scripts/flash_sale.rhai",
    "scripts/issuer_outage.rhai",
    "scripts/holiday_calendar.rhai",
    "scripts/hello.rhai",
];

// ---- Helpers --------------------------------------------------------------------------------------

/// `sim backfill SCRIPT --sink stdout --count N --days D --seed 1 --now NOW ARGS...`: its events,
/// after checking that every one was delivered.
fn backfill(script: &str, count: u64, days: u64, now: &str, args: &[&str]) -> Vec<Value> {
    let out = run(
        sim()
            .args(["backfill", script, "--sink", "stdout"])
            .args(["--count", &count.to_string(), "--days", &days.to_string()])
            .args(["--seed", "1", "--now", now])
            .args(args),
        TIMEOUT,
    );
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "sim backfill {script} failed:\n{}",
        out.stderr
    );
    let account = final_account(&out.stderr);
    assert_eq!(account.failed, 0, "{}", out.stderr);
    let all = json_lines(&out.stdout);
    assert_eq!(all.len() as u64, account.delivered);
    all
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {event}"))
}

fn int(event: &Value, field: &str) -> i64 {
    event[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer: {event}"))
}

/// The event's time in Tehran.
fn tehran(event: &Value) -> DateTime<Tz> {
    let stamp = text(event, "timestamp");
    DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("{stamp:?} is not RFC 3339: {e}"))
        .with_timezone(&Tehran)
}

/// Minute of the day in Tehran, 0-1439.
fn tehran_minute(event: &Value) -> u32 {
    let t = tehran(event);
    t.hour() * 60 + t.minute()
}

fn share(part: usize, whole: usize) -> f64 {
    assert!(whole > 0, "nothing to take a share of");
    part as f64 / whole as f64
}

// ---- Every scenario checks and streams -----------------------------------------------------------

#[test]
fn every_new_scenario_passes_sim_check() {
    let out = run(
        sim()
            .arg("check")
            .args(SCENARIOS)
            .args(["-n", "5000", "--seed", "3"]),
        TIMEOUT,
    );
    assert_no_panic(&out.stderr);
    assert!(out.status.success(), "sim check failed:\n{}", out.stderr);
    for script in SCENARIOS {
        // 5,000 sampled events, and the follow-ups they left waiting, made to the end.
        let events = out
            .stderr
            .lines()
            .find_map(|line| line.strip_prefix(&format!("ok: {script} (")))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            events.is_some_and(|n| n >= 5000),
            "no `ok: {script}` with 5000 events or more in:\n{}",
            out.stderr
        );
    }
}

/// `sim run SCRIPT --duration 2` on the embedded broker, with a small backfill so the short run
/// always has events to deliver.
fn streams_through_the_embedded_broker(script: &str) {
    let out = run(
        sim()
            .args(["run", script, "--duration", "2", "--set", "backfill=500"])
            .args(["--seed", "5"]),
        TIMEOUT,
    );
    assert_no_panic(&out.stderr);
    assert!(
        out.status.success(),
        "sim run {script} failed:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("embedded broker at "), "{}", out.stderr);
    let account = final_account(&out.stderr);
    assert_eq!(account.failed, 0, "{}", out.stderr);
    assert!(
        account.delivered >= 500 && account.delivered == account.produced,
        "{script}: {account:?}"
    );
}

#[test]
fn flash_sale_streams_through_the_embedded_broker() {
    streams_through_the_embedded_broker("scripts/flash_sale.rhai");
}

#[test]
fn issuer_outage_streams_through_the_embedded_broker() {
    streams_through_the_embedded_broker("scripts/issuer_outage.rhai");
}

#[test]
fn holiday_calendar_streams_through_the_embedded_broker() {
    streams_through_the_embedded_broker("scripts/holiday_calendar.rhai");
}

#[test]
fn hello_streams_through_the_embedded_broker() {
    streams_through_the_embedded_broker("scripts/hello.rhai");
}

// ---- Flash sale -----------------------------------------------------------------------------------

/// The sale: 12:00-12:30 Tehran time, ten times the rate, 80% of its payments to merch_1..3.
const SALE: std::ops::Range<u32> = 12 * 60..12 * 60 + 30;
const SALE_MERCHANTS: [&str; 3] = ["merch_1", "merch_2", "merch_3"];

#[test]
fn a_flash_sale_is_a_sharp_peak_on_three_merchants() {
    // One Tehran day: 2024-01-15 00:00 to 24:00 local.
    let all = backfill(
        "scripts/flash_sale.rhai",
        20_000,
        1,
        "2024-01-15T20:30:00Z",
        &[],
    );
    assert_eq!(all.len(), 20_000);
    let (mut sale, mut peak, mut off_peak) = (Vec::new(), Vec::new(), Vec::new());
    for event in &all {
        let day = tehran(event).date_naive();
        assert_eq!(
            day,
            NaiveDate::from_ymd_opt(2024, 1, 15).unwrap(),
            "{event}"
        );
        let minute = tehran_minute(event);
        if SALE.contains(&minute) {
            sale.push(event);
        } else if (9 * 60..18 * 60).contains(&minute) {
            peak.push(event);
        } else {
            off_peak.push(event);
        }
    }
    // Events per minute: the sale against the rest of the peak hours, and those against the night.
    let sale_rate = sale.len() as f64 / 30.0;
    let peak_rate = peak.len() as f64 / (9.0 * 60.0 - 30.0);
    let off_rate = off_peak.len() as f64 / (15.0 * 60.0);
    let jump = sale_rate / peak_rate;
    assert!(
        (8.5..=11.5).contains(&jump),
        "the sale has {sale_rate:.1} events a minute, the peak hours around it {peak_rate:.1}: \
         {jump:.2} times, expected 10"
    );
    let daily = peak_rate / off_rate;
    assert!(
        (1.7..=2.3).contains(&daily),
        "peak hours are {daily:.2} times as busy as the rest, expected 2"
    );

    let at_sale_merchants = |events: &[&Value]| {
        events
            .iter()
            .filter(|e| SALE_MERCHANTS.contains(&text(e, "merchant_id")))
            .count()
    };
    // 80% by the sale, and the rest spread over all 50 merchants: 0.8 + 0.2 * 3/50.
    let inside = share(at_sale_merchants(&sale), sale.len());
    assert!(
        (0.77..=0.86).contains(&inside),
        "{inside:.3} of the sale's payments go to the sale merchants, expected 0.81"
    );
    let outside: Vec<&Value> = peak.iter().chain(&off_peak).copied().collect();
    let usual = share(at_sale_merchants(&outside), outside.len());
    assert!(
        usual < 0.1,
        "{usual:.3} of the payments outside the sale go to the sale merchants, expected 0.06"
    );

    // The campaign marks exactly the sale's discounted payments at the sale merchants.
    for event in &all {
        if event["campaign"].is_null() {
            assert_eq!(int(event, "discount_amount"), 0, "{event}");
        } else {
            assert_eq!(text(event, "campaign"), "flash_sale");
            assert!(SALE.contains(&tehran_minute(event)), "{event}");
            assert!(
                SALE_MERCHANTS.contains(&text(event, "merchant_id")),
                "{event}"
            );
            assert!(int(event, "discount_amount") > 0, "{event}");
        }
    }
    let campaign = sale.iter().filter(|e| !e["campaign"].is_null()).count();
    assert!(
        (0.77..=0.83).contains(&share(campaign, sale.len())),
        "{campaign} of {} sale-window payments carry the campaign, expected 80%",
        sale.len()
    );
}

#[test]
fn sale_settings_reach_both_the_curve_and_the_events() {
    // The sale moved to 15:00, four times the rate, 40% of its payments at the sale merchants.
    let all = backfill(
        "scripts/flash_sale.rhai",
        10_000,
        1,
        "2024-01-15T20:30:00Z",
        &[
            "--set",
            "sale_start_hour=15",
            "--set",
            "sale_factor=4",
            "--set",
            "sale_share=0.4",
        ],
    );
    let moved = 15 * 60..15 * 60 + 30;
    let sale: Vec<&Value> = all
        .iter()
        .filter(|e| moved.contains(&tehran_minute(e)))
        .collect();
    let peak = all
        .iter()
        .filter(|e| (9 * 60..18 * 60).contains(&tehran_minute(e)))
        .count()
        - sale.len();
    let jump = (sale.len() as f64 / 30.0) / (peak as f64 / (9.0 * 60.0 - 30.0));
    assert!(
        (3.4..=4.6).contains(&jump),
        "with sale_factor=4 the sale is {jump:.2} times as busy as the peak hours"
    );
    let campaign = sale.iter().filter(|e| !e["campaign"].is_null()).count();
    let observed = share(campaign, sale.len());
    assert!(
        (0.34..=0.46).contains(&observed),
        "with sale_share=0.4, {observed:.3} of the sale's payments are sale payments"
    );
    assert!(
        all.iter()
            .filter(|e| !e["campaign"].is_null())
            .all(|e| moved.contains(&tehran_minute(e))),
        "sale payments outside 15:00-15:30"
    );

    // EVENT_RATE reaches rate(t, settings): at 3:00 Tehran (off-peak), 600 events take about a
    // minute at 600 a minute, and about twenty at the default 30.
    let span_minutes = |rate: Option<&str>| {
        let mut cmd = sim();
        cmd.args([
            "sample",
            "scripts/flash_sale.rhai",
            "-n",
            "600",
            "--seed",
            "4",
        ])
        .args(["--now", "2024-01-14T23:30:00Z"]);
        if let Some(rate) = rate {
            cmd.env("EVENT_RATE", rate);
        }
        let out = run(&mut cmd, TIMEOUT);
        assert!(out.status.success(), "{}", out.stderr);
        let times: Vec<i64> = json_lines(&out.stdout)
            .iter()
            .map(|e| tehran(e).timestamp_millis())
            .collect();
        (times[times.len() - 1] - times[0]) as f64 / 60_000.0
    };
    let (fast, usual) = (span_minutes(Some("600")), span_minutes(None));
    assert!(
        (0.7..=1.3).contains(&fast) && (15.0..=25.0).contains(&usual),
        "600 events span {fast:.2} minutes with EVENT_RATE=600 and {usual:.2} by default"
    );
}

// ---- Issuer outage --------------------------------------------------------------------------------

/// The outage: Mellat's cards, 14:00-14:45 Tehran time, every day.
const OUTAGE: std::ops::Range<u32> = 14 * 60..14 * 60 + 45;
const OUTAGE_BANK: &str = "Mellat";
const MAX_RETRIES: i64 = 3;

fn declined(event: &Value) -> bool {
    text(event, "status") == "declined"
}

fn decline_share(events: &[&Value]) -> f64 {
    share(events.iter().filter(|e| declined(e)).count(), events.len())
}

/// Two Tehran days, 2024-01-15 and 16, backfilled once for the tests that read them.
fn outage_days() -> &'static [Value] {
    static DAYS: OnceLock<Vec<Value>> = OnceLock::new();
    DAYS.get_or_init(|| {
        backfill(
            "scripts/issuer_outage.rhai",
            60_000,
            2,
            "2024-01-16T20:30:00Z",
            &[],
        )
    })
}

#[test]
fn the_outage_spikes_declines_of_its_issuer_inside_its_window_only() {
    let all = outage_days();
    let first: Vec<&Value> = all.iter().filter(|e| int(e, "attempt") == 1).collect();
    assert_eq!(first.len(), 60_000, "every arrival is one first attempt");
    let pick = |bank_is_out: bool, in_window: bool| -> Vec<&Value> {
        first
            .iter()
            .filter(|e| (text(e, "issuer_bank") == OUTAGE_BANK) == bank_is_out)
            .filter(|e| OUTAGE.contains(&tehran_minute(e)) == in_window)
            .copied()
            .collect()
    };
    let (hit, bank_outside, others_inside) =
        (pick(true, true), pick(true, false), pick(false, true));
    assert!(
        hit.len() > 400,
        "only {} Mellat payments in the windows",
        hit.len()
    );
    let spike = decline_share(&hit);
    assert!(
        (0.85..=0.95).contains(&spike),
        "{spike:.3} of Mellat's first attempts in the outage are declined, expected 0.9"
    );
    for (what, events) in [
        ("Mellat outside the outage", &bank_outside),
        ("other banks during the outage", &others_inside),
    ] {
        let usual = decline_share(events);
        assert!(
            usual < 0.07,
            "{usual:.3} of the first attempts of {what} are declined, expected 0.04"
        );
    }
    assert!(hit
        .iter()
        .filter(|e| declined(e))
        .all(|e| text(e, "failure_reason") == "issuer_unavailable"));
}

#[test]
fn declined_customers_retry_within_the_delay_and_succeed_after_the_outage() {
    let all = outage_days();
    let by_id: BTreeMap<&str, &Value> =
        all.iter().map(|e| (text(e, "transaction_id"), e)).collect();
    assert_eq!(by_id.len(), all.len(), "transaction ids repeat");
    let millis = |e: &Value| tehran(e).timestamp_millis();

    let mut retried = BTreeSet::new();
    let mut deepest = 1;
    for event in all.iter().filter(|e| int(e, "attempt") > 1) {
        let of = text(event, "retry_of");
        let previous = by_id
            .get(of)
            .unwrap_or_else(|| panic!("retry_of {of} is no earlier payment: {event}"));
        assert!(retried.insert(of), "{of} is retried twice");
        for field in [
            "customer_id",
            "merchant_id",
            "amount",
            "payment_method",
            "issuer_bank",
        ] {
            assert_eq!(
                event[field], previous[field],
                "a retry changed {field}: {event}"
            );
        }
        assert!(
            declined(previous),
            "a retry follows an approved payment: {event}"
        );
        assert_ne!(text(previous, "failure_reason"), "card_expired");
        assert_eq!(
            int(event, "attempt"),
            int(previous, "attempt") + 1,
            "{event}"
        );
        let delay = millis(event) - millis(previous);
        assert!(
            (30_000..=120_000).contains(&delay),
            "a retry {delay} ms after the payment it repeats, expected 30-120 s: {event}"
        );
        deepest = deepest.max(int(event, "attempt"));
    }
    // The chain ends: at most max_retries retries, and some customers retry that often.
    assert_eq!(
        deepest,
        MAX_RETRIES + 1,
        "the longest chain has {deepest} attempts, expected max_retries + 1"
    );
    let chains_of_three = all.iter().filter(|e| int(e, "attempt") >= 3).count();
    assert!(
        chains_of_three > 50,
        "only {chains_of_three} third attempts"
    );

    // A declined payment is retried with retry_chance 0.7, unless its card expired or it was the
    // last try. Counted where the retry would still fall inside the backfill (before 23:58).
    let retriable: Vec<&Value> = all
        .iter()
        .filter(|e| declined(e) && text(e, "failure_reason") != "card_expired")
        .filter(|e| int(e, "attempt") <= MAX_RETRIES && tehran_minute(e) < 23 * 60 + 58)
        .collect();
    let chance = share(
        retriable
            .iter()
            .filter(|e| retried.contains(text(e, "transaction_id")))
            .count(),
        retriable.len(),
    );
    assert!(
        (0.65..=0.75).contains(&chance),
        "{chance:.3} of the retriable declines are retried, expected 0.7"
    );

    // Retries of Mellat's cards fail in the outage and go through once it is over.
    let retries_of_bank = |minutes: std::ops::Range<u32>| -> Vec<&Value> {
        all.iter()
            .filter(|e| int(e, "attempt") > 1 && text(e, "issuer_bank") == OUTAGE_BANK)
            .filter(|e| minutes.contains(&tehran_minute(e)))
            .collect()
    };
    let during = retries_of_bank(OUTAGE);
    let after = retries_of_bank(OUTAGE.end..OUTAGE.end + 10);
    assert!(
        after.len() >= 20,
        "only {} retries right after",
        after.len()
    );
    let (failed_during, failed_after) = (decline_share(&during), decline_share(&after));
    assert!(
        failed_during > 0.8,
        "{failed_during:.3} of Mellat's retries in the outage are declined, expected 0.9"
    );
    assert!(
        failed_after < 0.15,
        "{failed_after:.3} of Mellat's retries after the outage are declined, expected 0.04"
    );
}

#[test]
fn seeded_retries_are_reproducible() {
    let sample = || {
        let out = run(
            sim().args([
                "sample",
                "scripts/issuer_outage.rhai",
                "-n",
                "3000",
                "--seed",
                "9",
                "--now",
                "2024-01-15T10:20:00Z", // 13:50 Tehran: the outage begins ten minutes in
            ]),
            TIMEOUT,
        );
        assert!(out.status.success(), "{}", out.stderr);
        out.stdout
    };
    let first = sample();
    assert!(first == sample(), "two seeded samples with retries differ");
    let retries = json_lines(&first)
        .iter()
        .filter(|e| int(e, "attempt") > 1)
        .count();
    assert!(retries > 50, "only {retries} retries around the outage");
}

// ---- Holiday calendar -----------------------------------------------------------------------------

/// The kind of a Tehran date in the default calendar (Nowruz 2024: March 20 to April 2).
fn day_kind(day: NaiveDate) -> &'static str {
    use chrono::Datelike;
    let date = |m, d| NaiveDate::from_ymd_opt(2024, m, d).unwrap();
    if (date(3, 20)..=date(4, 2)).contains(&day) {
        "nowruz"
    } else if (date(3, 10)..date(3, 20)).contains(&day) {
        "pre_nowruz"
    } else {
        match day.weekday() {
            chrono::Weekday::Fri => "friday",
            chrono::Weekday::Thu => "thursday",
            _ => "workday",
        }
    }
}

#[test]
fn the_holiday_calendar_follows_the_iranian_week_and_nowruz() {
    // Nine weeks of Tehran days, 2024-02-07 to 2024-04-09: ordinary weeks, the rush before
    // Nowruz, Nowruz itself, and a week after.
    let all = backfill(
        "scripts/holiday_calendar.rhai",
        40_000,
        63,
        "2024-04-09T20:30:00Z",
        &[],
    );
    let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let mut hours = [0usize; 24];
    let mut categories: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut travel_cities: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for event in &all {
        let t = tehran(event);
        let kind = day_kind(t.date_naive());
        *per_day.entry(t.date_naive()).or_default() += 1;
        if kind == "workday" {
            hours[t.hour() as usize] += 1;
        }
        *categories
            .entry(kind)
            .or_default()
            .entry(text(event, "merchant_category"))
            .or_default() += 1;
        let city = text(event, "city");
        if city == "Kish" || city == "Ramsar" {
            travel_cities.entry(kind).or_default().insert(city);
        }
    }
    assert_eq!(per_day.len(), 63, "days: {:?}", per_day.keys());
    // Mean events a day by kind, Saturday to Wednesday apart for the pre-Nowruz days.
    let mean = |wanted: &dyn Fn(NaiveDate) -> bool| {
        let days: Vec<usize> = per_day
            .iter()
            .filter(|(day, _)| wanted(**day))
            .map(|(_, n)| *n)
            .collect();
        assert!(!days.is_empty());
        days.iter().sum::<usize>() as f64 / days.len() as f64
    };
    let workday = mean(&|d| day_kind(d) == "workday");
    let ratio = |kind: &'static str| mean(&|d| day_kind(d) == kind) / workday;
    let pre_workdays = mean(&|d| {
        use chrono::Datelike;
        day_kind(d) == "pre_nowruz"
            && !matches!(d.weekday(), chrono::Weekday::Thu | chrono::Weekday::Fri)
    }) / workday;
    for (what, measured, expected) in [
        ("a Nowruz day", ratio("nowruz"), 0.35),
        ("a Friday", ratio("friday"), 0.5),
        ("a Thursday", ratio("thursday"), 0.8),
        ("a workday before Nowruz", pre_workdays, 1.5),
    ] {
        assert!(
            (measured / expected - 1.0).abs() <= 0.1,
            "{what} has {measured:.3} of an ordinary workday's payments, expected {expected}"
        );
    }
    // The day: quiet nights (0:00-6:00), against the busy hours 9:00-13:00.
    let per_hour = |range: std::ops::Range<usize>| {
        let len = range.len() as f64;
        hours[range].iter().sum::<usize>() as f64 / len
    };
    let night = per_hour(0..6) / per_hour(9..13);
    assert!(
        (0.07..=0.13).contains(&night),
        "a night hour has {night:.3} of a busy hour's payments, expected 0.1"
    );
    // What people buy: travel at Nowruz, shopping before it; far destinations only at Nowruz.
    let category_share = |kind: &str, category: &str| {
        let counts = &categories[kind];
        share(
            counts.get(category).copied().unwrap_or(0),
            counts.values().sum(),
        )
    };
    let (travel, travel_usual) = (
        category_share("nowruz", "transportation"),
        category_share("workday", "transportation"),
    );
    assert!(
        travel > 0.24 && travel_usual < 0.19,
        "transportation is {travel:.3} of Nowruz payments and {travel_usual:.3} of a workday's"
    );
    let (shopping, shopping_usual) = (
        category_share("pre_nowruz", "retail"),
        category_share("workday", "retail"),
    );
    assert!(
        shopping > 0.5 && shopping_usual < 0.4,
        "retail is {shopping:.3} of pre-Nowruz payments and {shopping_usual:.3} of a workday's"
    );
    assert_eq!(
        travel_cities.keys().copied().collect::<Vec<_>>(),
        ["nowruz"],
        "Kish and Ramsar payments on days other than Nowruz: {travel_cities:?}"
    );
}

#[test]
fn the_start_of_nowruz_is_a_setting_of_the_curve() {
    // 2024-03-19 to 21 in Tehran: by default the 19th is in the rush before Nowruz and the 20th
    // is its first day; with nowruz_start=3-21 the 20th is still a rush day.
    let per_day = |args: &[&str]| -> BTreeMap<NaiveDate, usize> {
        let mut days = BTreeMap::new();
        let all = backfill(
            "scripts/holiday_calendar.rhai",
            3000,
            3,
            "2024-03-21T20:30:00Z",
            args,
        );
        for event in &all {
            *days.entry(tehran(event).date_naive()).or_default() += 1;
        }
        days
    };
    let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    let ratio = |days: &BTreeMap<NaiveDate, usize>, d| days[&day(d)] as f64 / days[&day(19)] as f64;
    let usual = per_day(&[]);
    let later = per_day(&["--set", "nowruz_start=3-21"]);
    // Nowruz against a pre-Nowruz workday: 0.35 / 1.5.
    assert!(
        (0.18..=0.3).contains(&ratio(&usual, 20)),
        "March 20 has {:.3} of March 19's payments by default, expected 0.23",
        ratio(&usual, 20)
    );
    assert!(
        (0.85..=1.15).contains(&ratio(&later, 20)) && (0.18..=0.3).contains(&ratio(&later, 21)),
        "with nowruz_start=3-21, March 20 and 21 have {:.3} and {:.3} of March 19's payments, \
         expected 1 and 0.23",
        ratio(&later, 20),
        ratio(&later, 21)
    );
}

// ---- Hello ----------------------------------------------------------------------------------------

fn price(drink: &str) -> i64 {
    match drink {
        "espresso" => 120_000,
        "latte" => 180_000,
        "tea" => 60_000,
        "hot chocolate" => 150_000,
        other => panic!("unknown drink {other}"),
    }
}

#[test]
fn hello_events_hold_its_invariants() {
    let out = run(
        sim().args([
            "sample",
            "scripts/hello.rhai",
            "-n",
            "3000",
            "--seed",
            "2",
            "--now",
            "2024-01-15T06:00:00Z",
        ]),
        TIMEOUT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let all = json_lines(&out.stdout);
    assert_eq!(all.len(), 3000);
    let mut customers = BTreeSet::new();
    for event in &all {
        let (amount, fee) = (int(event, "amount"), int(event, "fee"));
        assert_eq!(fee, amount / 100, "{event}");
        assert_eq!(int(event, "total"), amount + fee, "{event}");
        let cups = amount / price(text(event, "drink"));
        assert!(
            (1..=3).contains(&cups) && amount % price(text(event, "drink")) == 0,
            "{event}"
        );
        assert!(["Tajrish", "Vanak", "Enghelab"].contains(&text(event, "shop")));
        customers.insert(text(event, "customer_id").to_string());
    }
    assert!(
        (150..=200).contains(&customers.len()),
        "{} customers of 200",
        customers.len()
    );

    // The invariants are live: a copy whose fee is off by a rial fails `sim check` with them.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("hello_broken.rhai");
    let source = std::fs::read_to_string(root().join("scripts/hello.rhai")).unwrap();
    let edited = source.replace("let fee = amount / 100;", "let fee = amount / 100 + 1;");
    assert_ne!(
        source, edited,
        "hello.rhai no longer computes its fee as expected"
    );
    std::fs::write(&broken, edited).unwrap();
    let out = run(sim().arg("check").arg(&broken).args(["-n", "100"]), TIMEOUT);
    assert!(
        !out.status.success(),
        "the broken copy passed:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("invariant: fee is not 1% of amount (100 events)"),
        "{}",
        out.stderr
    );
}
