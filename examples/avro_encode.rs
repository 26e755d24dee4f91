//! What encoding costs per event, JSON against Avro, on `scripts/darooghe.rhai`'s events.
//!
//! Makes EVENTS events (default 20,000) once, with the scenario's engine, then encodes the same
//! event maps over and over with the JSON encoder and with the Avro one (the schema derived from
//! `config().schema`, in the Confluent wire format with schema id 1): µs per event, the fastest
//! of 5 passes, and the mean bytes a message. Encoding only: no generation, no Kafka.
//!
//! It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example avro_encode [-- EVENTS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::Map;
use sim::avro::{AvroWriter, EventSchema};
use sim::encode::{EventEncoder, ValueFormat};
use sim::settings::{resolve, UserInput};

const SEED: u64 = 42;
/// 2024-01-15T10:00:00Z.
const NOW_MS: i64 = 1_705_312_800_000;
/// Timed passes over the events; the fastest is reported.
const PASSES: usize = 5;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
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
