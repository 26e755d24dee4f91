//! The native ceiling: `darooghe.rhai`'s event shape and rules written in plain Rust (same
//! fields and rules, a `Vec` of customers, ChaCha8 draws, `uuid`, `chrono` formatting, serde_json
//! into a reused buffer): what generation plus encoding costs without a script engine. Shared by
//! the benchmark programs (`event_cost`, `ceilings`).
#![allow(dead_code)]

use chrono::DateTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, LogNormal};
use serde::Serialize;

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

/// An endless stream of native darooghe events on the same timeline shape (exponential gaps at
/// the peak rate, fraud bursts of five).
pub struct NativeStream {
    rng: ChaCha8Rng,
    world: World,
    time_ms: f64,
    /// Events of the current burst still to make.
    burst_left: u32,
    customer: usize,
}

/// 2024-01-15T10:00:00Z: inside the peak hours.
const START_S: i64 = 1_705_312_800;

impl NativeStream {
    /// A stream over `customers` customers, seeded.
    pub fn new(seed: u64, customers: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let world = native_setup(&mut rng, customers);
        Self {
            rng,
            world,
            time_ms: START_S as f64 * 1000.0,
            burst_left: 0,
            customer: 0,
        }
    }

    /// Encodes the next event into `key` and `payload`; returns its time (ms since the epoch).
    pub fn next_event(&mut self, key: &mut Vec<u8>, payload: &mut Vec<u8>) -> i64 {
        let per_ms = 250.0 / 60_000.0; // peak rate: 100/min times 2.5
        let (fraud, k) = (0.02, 5.0);
        let p_burst = fraud / (k * (1.0 - fraud) + fraud);
        let rng = &mut self.rng;
        let burst = if self.burst_left > 0 {
            self.burst_left -= 1;
            true
        } else {
            let gap: f64 = Exp1.sample(rng);
            self.time_ms += gap / per_ms;
            self.customer = rng.random_range(0..self.world.customers.len());
            let burst = rng.random_bool(p_burst);
            if burst {
                self.burst_left = 4;
            }
            burst
        };
        let customer = &self.world.customers[self.customer];
        let merchant = &self.world.merchants[rng.random_range(0..self.world.merchants.len())];
        let amount = if burst {
            rng.random_range(1200..=4800) * 1000
        } else {
            let multiplier = match customer.customer_type {
                "business" => 3.0,
                "CIP" => 2.0,
                _ => 1.0,
            };
            let median = median_amount(merchant.category) * multiplier;
            let drawn = LogNormal::new(median.ln(), 0.7).expect("valid").sample(rng);
            ((drawn / 1000.0).round() as i64 * 1000).max(10_000)
        };
        let time_ms = self.time_ms as i64;
        native_transaction(
            rng, time_ms, customer, merchant, amount, burst, key, payload,
        );
        time_ms
    }
}
