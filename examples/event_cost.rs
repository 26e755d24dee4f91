//! Per-event cost of `scripts/darooghe.rhai`: generation (timeline + `event(ctx)`) and JSON
//! encoding into a `DiscardSink`, no Kafka, with 1,000, 10,000 and 1,000,000 customers.
//!
//! For each pool size it reports the setup time (load, `config()`, `setup(ctx)` building the
//! pools), then events/s and ns per event over EVENTS events (default 200,000, after a 1,000-event
//! warm-up; a run stops early after 90 s), the fastest of 3 runs, and the ratio of each pool's
//! ns/event to the 1,000-customer one. A configuration whose setup fails is reported with its
//! error and how long it took to fail. The "native ceiling" rows build the same event shape in
//! plain Rust (same fields and rules, a `Vec` of customers, ChaCha8 draws, `uuid`, `chrono`
//! formatting, serde_json into a reused buffer): generation plus encoding without a script engine.
//!
//! It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example event_cost [-- EVENTS]
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, LogNormal};
use serde::Serialize;
use sim::app::{self, Options};
use sim::metrics::Metrics;
use sim::pipeline::Pipeline;
use sim::settings::UserInput;
use sim::sink::{DeliveryAccount, DiscardSink, Record, Sink, SinkError, SinkSpec};

const POOLS: [u64; 3] = [1_000, 10_000, 1_000_000];
const WARM_UP: u64 = 1_000;
/// Events per `sample` call, between looks at the clock.
const CHUNK: u64 = 1_000;
/// Timed runs per configuration; the fastest is reported.
const REPEATS: usize = 3;
/// The most time one timed run may take.
const BUDGET: Duration = Duration::from_secs(90);
const SEED: u64 = 42;
/// 2024-01-15T10:00:00Z: inside the peak hours, like any fixed clock would do.
const NOW_S: i64 = 1_705_312_800;

type Failure = Box<dyn std::error::Error>;

/// One configuration: its setup time and either (events, elapsed) or why setup failed.
struct Figures {
    label: &'static str,
    customers: u64,
    setup: Duration,
    run: Result<(u64, Duration), String>,
}

impl Figures {
    fn ns_per_event(&self) -> Option<f64> {
        let (events, elapsed) = self.run.as_ref().ok()?;
        Some(elapsed.as_nanos() as f64 / *events as f64)
    }
}

fn main() -> Result<(), Failure> {
    let events: u64 = match std::env::args().nth(1) {
        Some(n) => n.replace('_', "").parse()?,
        None => 200_000,
    };
    println!("load at start: {}", uptime());
    println!(
        "events per run: {events} after {WARM_UP} warm-up (or as many as fit in {} s); \
         fastest of {REPEATS} runs\n",
        BUDGET.as_secs()
    );

    let mut rows = Vec::new();
    for customers in POOLS {
        rows.push(scripted(customers, events));
        print_row(rows.last().expect("pushed")); // progress, the table follows
    }
    let mut native_bytes = 0.0;
    for customers in POOLS {
        let (figures, bytes) = native(customers, events);
        rows.push(figures);
        if customers == POOLS[0] {
            native_bytes = bytes;
        }
    }

    println!(
        "\n{:<14} {:>10} {:>9} {:>10} {:>12} {:>11}",
        "configuration", "customers", "setup s", "events", "events/s", "ns/event"
    );
    for row in &rows {
        print_row(row);
    }
    println!();
    for row in &rows {
        let base = rows
            .iter()
            .find(|r| r.label == row.label && r.customers == POOLS[0])
            .and_then(Figures::ns_per_event);
        if row.customers == POOLS[0] {
            continue;
        }
        let ratio = match (row.ns_per_event(), base) {
            (Some(ns), Some(base)) => format!("{:.2}", ns / base),
            _ => "n/a (setup failed)".into(),
        };
        println!(
            "{:<14} ns/event {:>9} / {} customers = {ratio}",
            row.label, row.customers, POOLS[0]
        );
    }
    for customers in POOLS {
        let ns = |label: &str| {
            rows.iter()
                .find(|r| r.label == label && r.customers == customers)
                .and_then(Figures::ns_per_event)
        };
        if let (Some(script), Some(native)) = (ns("darooghe.rhai"), ns("native Rust")) {
            println!(
                "script / native ceiling at {customers:>9} customers = {:.0}x",
                script / native
            );
        }
    }
    println!(
        "JSON payload per event (1,000 customers): script {:.0} bytes, native {:.0} bytes",
        script_payload_bytes()?,
        native_bytes
    );
    Ok(())
}

fn print_row(row: &Figures) {
    let setup = row.setup.as_secs_f64();
    match &row.run {
        Ok((events, elapsed)) => println!(
            "{:<14} {:>10} {:>9.3} {:>10} {:>12.0} {:>11.0}",
            row.label,
            row.customers,
            setup,
            events,
            *events as f64 / elapsed.as_secs_f64(),
            row.ns_per_event().unwrap_or(f64::NAN)
        ),
        Err(error) => println!(
            "{:<14} {:>10} {:>9.3}  setup failed: {error}",
            row.label, row.customers, setup
        ),
    }
}

/// The script through the library: `app::prepare` then `Pipeline::sample` into a `DiscardSink`.
fn scripted(customers: u64, events: u64) -> Figures {
    let started = Instant::now();
    let prepared = app::prepare(&options(customers));
    let setup = started.elapsed();
    let run = match prepared {
        Ok(prepared) => timed_run(prepared, events).map_err(|e| format!("run failed: {e}")),
        Err(error) => Err(one_line(&error.to_string())),
    };
    Figures {
        label: "darooghe.rhai",
        customers,
        setup,
        run,
    }
}

fn timed_run(prepared: app::Prepared, events: u64) -> Result<(u64, Duration), Failure> {
    let now = prepared.now;
    let mut sink = DiscardSink::default();
    let mut pipeline = Pipeline::new(
        prepared.scenario,
        &prepared.settings,
        prepared.seed,
        &mut sink,
        Arc::new(Metrics::default()),
    );
    pipeline.sample(now, WARM_UP)?;
    fastest(|| {
        let started = Instant::now();
        let mut made = 0;
        while made < events && started.elapsed() < BUDGET {
            made += pipeline.sample(now, CHUNK.min(events - made))?;
        }
        Ok((made, started.elapsed()))
    })
}

/// The fastest of `REPEATS` timed runs (by time per event): the one least disturbed by whatever
/// else the machine was doing.
fn fastest(
    mut timed: impl FnMut() -> Result<(u64, Duration), Failure>,
) -> Result<(u64, Duration), Failure> {
    let mut best: Option<(u64, Duration)> = None;
    for _ in 0..REPEATS {
        let (made, elapsed) = timed()?;
        let per_event = |(m, e): (u64, Duration)| e.as_secs_f64() / m as f64;
        if best.is_none_or(|b| per_event((made, elapsed)) < per_event(b)) {
            best = Some((made, elapsed));
        }
    }
    best.ok_or_else(|| "no runs".into())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn options(customers: u64) -> Options {
    Options {
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/darooghe.rhai"),
        input: UserInput {
            flags: vec![(
                "customer_count".into(),
                customers.to_string(),
                "--set".into(),
            )],
            ..UserInput::default()
        },
        seed: Some(SEED),
        now: DateTime::from_timestamp(NOW_S, 0),
        sink: SinkSpec::Stdout, // not opened: the pipeline gets its own sink
        labels: false,
    }
}

/// Mean JSON payload size of the script's events (1,000 customers), to compare with native.
fn script_payload_bytes() -> Result<f64, Failure> {
    let prepared = app::prepare(&options(1_000))?;
    let mut sink = ByteCounter::default();
    Pipeline::new(
        prepared.scenario,
        &prepared.settings,
        prepared.seed,
        &mut sink,
        Arc::new(Metrics::default()),
    )
    .sample(prepared.now, WARM_UP)?;
    Ok(sink.bytes as f64 / sink.events as f64)
}

/// A sink that counts payload bytes.
#[derive(Default)]
struct ByteCounter {
    events: u64,
    bytes: u64,
}

impl Sink for ByteCounter {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        self.events += 1;
        self.bytes += record.payload.len() as u64;
        Ok(())
    }
    fn close(&mut self, _timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        Ok(self.account())
    }
    fn account(&self) -> DeliveryAccount {
        DeliveryAccount {
            produced: self.events,
            delivered: self.events,
            failed: 0,
        }
    }
}

// ---- The native ceiling: darooghe.rhai's rules in plain Rust ---------------------------------

#[derive(Serialize, Clone, Copy)]
struct Point {
    lat: f64,
    lng: f64,
}

#[derive(Serialize)]
struct Device {
    app_version: &'static str,
    os: &'static str,
}

struct Merchant {
    id: String,
    category: &'static str,
    location: Point,
    commission_type: &'static str,
}

struct Customer {
    id: String,
    customer_type: &'static str,
    home: Point,
    device: Device,
}

/// The event, fields in the order Rhai's (sorted) map gives them, so the JSON is alike.
#[derive(Serialize)]
struct Transaction<'a> {
    amount: i64,
    commission_amount: i64,
    commission_type: &'static str,
    customer_id: &'a str,
    customer_type: &'static str,
    device_info: &'a Device,
    failure_reason: Option<&'static str>,
    location: Point,
    merchant_category: &'static str,
    merchant_id: &'a str,
    payment_method: &'static str,
    risk_level: i64,
    status: &'static str,
    timestamp: String,
    total_amount: i64,
    transaction_id: String,
    vat_amount: i64,
}

const CITIES: [(f64, f64, u32); 6] = [
    (35.6892, 51.3890, 45),
    (36.2605, 59.6168, 15),
    (32.6546, 51.6680, 12),
    (29.5918, 52.5837, 10),
    (38.0800, 46.2919, 10),
    (35.8400, 50.9391, 8),
];

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut target = rng.random_range(0.0..total as f64);
    for &(item, weight) in items {
        if target < weight as f64 {
            return item;
        }
        target -= weight as f64;
    }
    items[items.len() - 1].0
}

fn jitter(rng: &mut ChaCha8Rng, at: Point, km: f64) -> Point {
    let distance = km * rng.random::<f64>().sqrt();
    let bearing = rng.random_range(0.0..std::f64::consts::TAU);
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    Point {
        lat: round(at.lat + distance / 111.32 * bearing.cos()),
        lng: round(at.lng + distance / (111.32 * at.lat.to_radians().cos()) * bearing.sin()),
    }
}

fn city(rng: &mut ChaCha8Rng) -> Point {
    let (lat, lng, _) = weighted(rng, &CITIES.map(|c| (c, c.2)));
    Point { lat, lng }
}

fn commission(kind: &str, amount: i64) -> i64 {
    match kind {
        "flat" => amount * 2 / 100,
        "progressive" => amount * (100 + 25 * (amount / 1_000_000)).min(300) / 10_000,
        _ => {
            let first = amount.min(500_000);
            let second = (amount.min(2_000_000) - 500_000).max(0);
            let rest = (amount - 2_000_000).max(0);
            first * 25 / 1000 + second * 15 / 1000 + rest / 100
        }
    }
}

fn median_amount(category: &str) -> f64 {
    match category {
        "retail" => 450_000.0,
        "food_service" => 220_000.0,
        "entertainment" => 380_000.0,
        "transportation" => 120_000.0,
        _ => 900_000.0,
    }
}

fn payment_method(rng: &mut ChaCha8Rng, category: &str) -> &'static str {
    match category {
        "government" => weighted(rng, &[("online", 60), ("mobile", 30), ("pos", 10)]),
        "transportation" => weighted(rng, &[("nfc", 45), ("mobile", 35), ("pos", 20)]),
        "food_service" => weighted(
            rng,
            &[("pos", 45), ("nfc", 30), ("mobile", 20), ("online", 5)],
        ),
        "entertainment" => weighted(rng, &[("online", 45), ("mobile", 30), ("pos", 25)]),
        _ => weighted(
            rng,
            &[("pos", 40), ("online", 25), ("mobile", 20), ("nfc", 15)],
        ),
    }
}

struct World {
    merchants: Vec<Merchant>,
    customers: Vec<Customer>,
}

fn native_setup(rng: &mut ChaCha8Rng, customers: u64) -> World {
    let merchants = (1..=50)
        .map(|i| {
            let at = city(rng);
            Merchant {
                id: format!("merch_{i}"),
                category: weighted(
                    rng,
                    &[
                        ("retail", 35),
                        ("food_service", 30),
                        ("transportation", 15),
                        ("entertainment", 12),
                        ("government", 8),
                    ],
                ),
                location: jitter(rng, at, 15.0),
                commission_type: weighted(
                    rng,
                    &[("flat", 50), ("progressive", 25), ("tiered", 25)],
                ),
            }
        })
        .collect();
    let customers = (1..=customers)
        .map(|i| {
            let at = city(rng);
            let os = weighted(rng, &[("Android", 70), ("iOS", 30)]);
            let versions: &[&'static str] = if os == "iOS" {
                &["3.1.0", "3.0.2", "2.9.5"]
            } else {
                &["2.4.1", "2.4.0", "2.3.8", "2.2.0"]
            };
            Customer {
                id: format!("cust_{i}"),
                customer_type: weighted(rng, &[("individual", 85), ("business", 10), ("CIP", 5)]),
                home: jitter(rng, at, 10.0),
                device: Device {
                    os,
                    app_version: versions[rng.random_range(0..versions.len())],
                },
            }
        })
        .collect();
    World {
        merchants,
        customers,
    }
}

/// One transaction, encoded into `key` and `payload` (cleared first).
#[allow(clippy::too_many_arguments)]
fn native_transaction(
    rng: &mut ChaCha8Rng,
    time_ms: i64,
    customer: &Customer,
    merchant: &Merchant,
    amount: i64,
    risky: bool,
    key: &mut Vec<u8>,
    payload: &mut Vec<u8>,
) {
    let method = payment_method(rng, merchant.category);
    let location = if method == "pos" || method == "nfc" {
        jitter(rng, merchant.location, 0.3)
    } else {
        jitter(rng, customer.home, 3.0)
    };
    let declined = rng.random_bool(0.05);
    let fee = commission(merchant.commission_type, amount);
    let tax = amount * 9 / 100;
    let risk_level = if risky {
        rng.random_range(4..=5)
    } else {
        weighted(rng, &[(1, 60), (2, 30), (3, 10)])
    };
    let failure_reason = declined.then(|| {
        if risky {
            weighted(
                rng,
                &[
                    ("suspected_fraud", 60),
                    ("limit_exceeded", 25),
                    ("incorrect_pin", 15),
                ],
            )
        } else {
            weighted(
                rng,
                &[
                    ("insufficient_funds", 40),
                    ("incorrect_pin", 20),
                    ("card_expired", 12),
                    ("limit_exceeded", 10),
                    ("issuer_unavailable", 10),
                    ("suspected_fraud", 8),
                ],
            )
        }
    });
    let event = Transaction {
        transaction_id: uuid::Builder::from_random_bytes(rng.random())
            .into_uuid()
            .hyphenated()
            .to_string(),
        timestamp: DateTime::from_timestamp_millis(time_ms)
            .expect("in range")
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        customer_id: &customer.id,
        merchant_id: &merchant.id,
        merchant_category: merchant.category,
        payment_method: method,
        amount,
        location,
        device_info: &customer.device,
        status: if declined { "declined" } else { "approved" },
        commission_type: merchant.commission_type,
        commission_amount: fee,
        vat_amount: tax,
        total_amount: amount + fee + tax,
        customer_type: customer.customer_type,
        risk_level,
        failure_reason,
    };
    key.clear();
    key.extend_from_slice(customer.id.as_bytes());
    payload.clear();
    serde_json::to_writer(&mut *payload, &event).expect("encodable");
}

/// The native ceiling: same timeline shape (exponential gaps), same rules, same encoding.
/// Also returns the mean payload size of the warm-up events.
fn native(customers: u64, events: u64) -> (Figures, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let started = Instant::now();
    let world = native_setup(&mut rng, customers);
    let setup = started.elapsed();

    let (mut key, mut payload) = (Vec::with_capacity(64), Vec::with_capacity(1024));
    let per_ms = 250.0 / 60_000.0; // peak rate: 100/min times 2.5
    let (fraud, k) = (0.02, 5.0);
    let p_burst = fraud / (k * (1.0 - fraud) + fraud);
    let mut time_ms = NOW_S as f64 * 1000.0;
    let mut run = |count: u64| {
        let (mut made, mut bytes) = (0u64, 0u64);
        while made < count {
            let gap: f64 = Exp1.sample(&mut rng);
            time_ms += gap / per_ms;
            let customer = &world.customers[rng.random_range(0..world.customers.len())];
            let burst = rng.random_bool(p_burst);
            for _ in 0..if burst { 5 } else { 1 } {
                let merchant = &world.merchants[rng.random_range(0..world.merchants.len())];
                let amount = if burst {
                    rng.random_range(1200..=4800) * 1000
                } else {
                    let multiplier = match customer.customer_type {
                        "business" => 3.0,
                        "CIP" => 2.0,
                        _ => 1.0,
                    };
                    let median = median_amount(merchant.category) * multiplier;
                    let drawn = LogNormal::new(median.ln(), 0.7)
                        .expect("valid")
                        .sample(&mut rng);
                    ((drawn / 1000.0).round() as i64 * 1000).max(10_000)
                };
                native_transaction(
                    &mut rng,
                    time_ms as i64,
                    customer,
                    merchant,
                    amount,
                    burst,
                    &mut key,
                    &mut payload,
                );
                black_box((&key, &payload));
                made += 1;
                bytes += payload.len() as u64;
            }
        }
        (made, bytes)
    };
    let (warm, warm_bytes) = run(WARM_UP);
    let best = fastest(|| {
        let started = Instant::now();
        let (made, _) = run(events);
        Ok((made, started.elapsed()))
    });
    let figures = Figures {
        label: "native Rust",
        customers,
        setup,
        run: best.map_err(|e| e.to_string()),
    };
    (figures, warm_bytes as f64 / warm as f64)
}

/// The load average, as `uptime` prints it.
fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
