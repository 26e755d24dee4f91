//! What encoding costs per event, JSON against Avro, on `scripts/darooghe.rhai`'s events.
//!
//! Makes EVENTS events (default 20,000) once, with the scenario's engine, then encodes the same
//! event maps over and over with the JSON encoder and with the Avro one (the schema derived from
//! `config().schema`, in the Confluent wire format with schema id 1): µs per event, the fastest
//! of 5 passes, and the mean bytes a message. Encoding only: no generation, no Kafka.
//!
//! Then end to end: `sim backfill scripts/darooghe.rhai --count ARRIVALS --seed 1` into its
//! embedded broker (with `--encoding avro`, its embedded registry), JSON and Avro in turn for
//! ROUNDS rounds (default 100,000 arrivals, 3 rounds): the median of the events/s `sim` reports
//! (first event to last delivery report), and whether every event was delivered.
//!
//! It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example avro_encode [-- EVENTS [ARRIVALS [ROUNDS]]]
//! ```

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use rhai::Map;
use sim::avro::{AvroWriter, EventSchema};
use sim::encode::{EventEncoder, ValueFormat};
use sim::settings::{resolve, UserInput};

const SEED: u64 = 42;
/// 2024-01-15T10:00:00Z.
const NOW_MS: i64 = 1_705_312_800_000;
/// Timed passes over the events; the fastest is reported.
const PASSES: usize = 5;

use support::{build_sim, parse_report, uptime, Failure};

fn main() -> Result<(), Failure> {
    let arg = |i: usize, default: usize| -> Result<usize, Failure> {
        Ok(std::env::args()
            .nth(i)
            .map(|n| n.replace('_', "").parse())
            .transpose()?
            .unwrap_or(default))
    };
    let count = arg(1, 20_000)?;
    let arrivals = arg(2, 100_000)?;
    let rounds = arg(3, 3)?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/darooghe.rhai");
    let mut scenario = sim::script::Scenario::load(&path)?;
    let defaults = scenario.config()?;
    let settings = resolve(&UserInput::default(), &defaults)?;
    scenario.setup(&settings, SEED, NOW_MS)?;
    let events = make_events(&mut scenario, count)?;

    let schema = EventSchema::for_scenario(
        scenario.name(),
        scenario.schema(),
        scenario.avro_schema(),
        &settings.topic,
    )?;
    let writer = AvroWriter::new(&schema.schema, 1)?;
    let json = EventEncoder::new(&settings.key_field);
    let avro = EventEncoder::with_format(&settings.key_field, ValueFormat::Avro(Arc::new(writer)));

    println!("{count} darooghe events, fastest of {PASSES} passes");
    println!("| encoding | µs/event | bytes/message |");
    println!("| --- | ---: | ---: |");
    for (name, encoder) in [("JSON", json), ("Avro (wire format)", avro)] {
        let (per_event, bytes) = measure(encoder, &events)?;
        println!(
            "| {name} | {:.3} | {:.1} |",
            per_event.as_secs_f64() * 1e6,
            bytes
        );
    }
    end_to_end(arrivals, rounds)
}

/// `sim backfill` into the embedded broker, JSON and Avro in turn: the median events/s of each.
fn end_to_end(arrivals: usize, rounds: usize) -> Result<(), Failure> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(root)?;
    println!();
    println!("end to end, `sim backfill --count {arrivals} --seed 1` into the embedded broker, {rounds} rounds in turn; {}", uptime());
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut all_delivered = [true, true];
    for _ in 0..rounds {
        for (i, encoding) in ["json", "avro"].into_iter().enumerate() {
            let output = Command::new(&sim)
                .arg("backfill")
                .arg(root.join("scripts/darooghe.rhai"))
                .args(["--count", &arrivals.to_string(), "--seed", "1"])
                .args(["--now", "2024-01-15T10:00:00Z", "--encoding", encoding])
                .output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            let ((events, _, rate), (_, delivered, failed)) =
                parse_report(&stderr).ok_or_else(|| {
                    format!("no report from sim backfill --encoding {encoding}: {stderr}")
                })?;
            rates[i].push(rate);
            all_delivered[i] &= output.status.success() && delivered == events && failed == 0;
        }
    }
    println!("| encoding | events/s (median) | every event delivered |");
    println!("| --- | ---: | --- |");
    for (i, name) in ["JSON", "Avro"].into_iter().enumerate() {
        rates[i].sort_by(f64::total_cmp);
        let median = rates[i][rates[i].len() / 2];
        println!(
            "| {name} | {median:.0} | {} |",
            if all_delivered[i] { "yes" } else { "no" }
        );
    }
    println!("load at end: {}", uptime());
    Ok(())
}

/// `count` events as the sink would get them: `_fraud` taken off, as the workers do.
fn make_events(scenario: &mut sim::script::Scenario, count: usize) -> Result<Vec<Map>, Failure> {
    let mut events = Vec::with_capacity(count);
    let mut id = 0u64;
    while events.len() < count {
        let seq = id as i64;
        let made = scenario.arrival(NOW_MS + seq * 600, seq, id)?;
        id += 1;
        let made = if made.is_array() {
            made.cast::<rhai::Array>()
        } else {
            vec![made]
        };
        for event in made {
            if let Some(mut event) = event.try_cast::<Map>() {
                sim::labels::take_fraud_pattern(&mut event, seq)?;
                events.push(event);
            }
        }
    }
    events.truncate(count);
    Ok(events)
}

/// The fastest pass's time per event, and the mean message size.
fn measure(mut encoder: EventEncoder, events: &[Map]) -> Result<(Duration, f64), Failure> {
    let mut best = Duration::MAX;
    let mut bytes = 0usize;
    for _ in 0..PASSES {
        bytes = 0;
        let started = Instant::now();
        for (seq, event) in events.iter().enumerate() {
            encoder.encode(event, seq as i64)?;
            bytes += encoder.payload.len();
        }
        best = best.min(started.elapsed());
    }
    let n = events.len().max(1);
    Ok((best / n as u32, bytes as f64 / n as f64))
}
