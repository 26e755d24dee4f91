//! Achieved against target rate in real time: `scripts/darooghe.rhai` streamed live into the
//! embedded broker at 1,000, 10,000, 50,000 and 100,000 events/s, with 1 and with 2 workers,
//! delivery included.
//!
//! It runs sim's own pipeline in process (as `sim run` does, with `EVENT_INIT_MODE=skip`,
//! `PEAK_FACTOR=1` for a flat rate and `FRAUD_RATE=0` so one arrival is one event) behind a sink
//! that notes the wall-clock instant each event reaches the producer, then passes it on to sim's
//! Kafka sink. The schedule is the events' own timestamps (the Poisson timeline), so the measure
//! is not Poisson noise but keeping up: for each 1-second window of the run, the events sent in
//! that window of wall-clock time against the events the schedule put in it; the worst relative
//! difference is reported, with the achieved rate (events / run length), how late events were
//! sent against their scheduled instant (p99, max), and the delivery account.
//!
//! Writes `docs/perf/pacing.svg` (achieved against target rate). It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example realtime_pacing [-- SECONDS]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sim::broker::EmbeddedBroker;
use sim::clock::SimClock;
use sim::metrics::Metrics;
use sim::pipeline::Pipeline;
use sim::scenario::{self, Options};
use sim::settings::{Origin, UserInput};
use sim::shutdown::Shutdown;
use sim::sink::{
    DeliveryAccount, DeliveryCounters, KafkaSink, KafkaSinkConfig, Record, Sink, SinkError,
    SinkSpec, TopicSpec,
};

#[path = "support/mod.rs"]
mod support;
#[path = "support/svg.rs"]
mod svg;

use support::*;

const RATES: [f64; 4] = [1_000.0, 10_000.0, 50_000.0, 100_000.0];
const WORKERS: [usize; 2] = [1, 2];
const TOPIC: &str = "darooghe.transactions";

/// Notes when each event reached the producer, then produces it.
struct Timed {
    inner: KafkaSink,
    sent: Vec<(Instant, i64)>,
}

impl Sink for Timed {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        self.sent.push((Instant::now(), record.timestamp_ms));
        self.inner.send(record)
    }
    fn close(&mut self, timeout: Duration) -> Result<DeliveryAccount, SinkError> {
        self.inner.close(timeout)
    }
}

/// What one run gave.
struct Pacing {
    target: f64,
    workers: usize,
    seconds: u64,
    events: u64,
    /// Seconds from the start to the last send (the run's length, or longer when it fell behind).
    wall: f64,
    worst_relative: f64,
    worst_window: (usize, u64, u64),
    p99_late_ms: f64,
    max_late_ms: f64,
    account: DeliveryAccount,
}

impl Pacing {
    /// Events per second of wall-clock time: the events over the run's length, or over the time
    /// to the last send when the stream fell behind and finished late.
    fn achieved(&self) -> f64 {
        self.events as f64 / self.wall.max(self.seconds as f64)
    }
}

fn main() -> Result<(), Failure> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut results = Vec::new();
    for workers in WORKERS {
        for target in RATES {
            eprintln!("{target}/s with {workers} worker(s) for {seconds} s ...");
            results.push(run(&root, target, workers, seconds)?);
        }
    }
    println!("load at end: {}\n", uptime());
    println!(
        "{:>9} {:>7} {:>9} {:>11} {:>9} {:>22} {:>13} {:>12} {:>10}",
        "target/s",
        "workers",
        "events",
        "achieved/s",
        "worst dev",
        "worst window (sent/sch)",
        "p99 late ms",
        "max late ms",
        "delivered"
    );
    for r in &results {
        println!(
            "{:>9.0} {:>7} {:>9} {:>11.0} {:>8.2}% {:>22} {:>13.1} {:>12.1} {:>10}",
            r.target,
            r.workers,
            r.events,
            r.achieved(),
            100.0 * r.worst_relative,
            format!(
                "s{}: {}/{}",
                r.worst_window.0, r.worst_window.1, r.worst_window.2
            ),
            r.p99_late_ms,
            r.max_late_ms,
            format!("{}/{}", r.account.delivered, r.account.produced),
        );
    }
    println!(
        "\nworst dev: max over the 1-s windows of |sent - scheduled| / scheduled, where sent counts \
         events reaching the producer in that second of wall-clock time and scheduled counts the \
         events whose timestamps fall in it. late: send instant - scheduled instant."
    );
    let chart = svg::Chart {
        title: "Real time: achieved against target (darooghe, embedded broker)".into(),
        x_label: "target events/s".into(),
        y_label: "achieved events/s".into(),
        series: std::iter::once(svg::Series {
            name: "target".into(),
            points: RATES.iter().map(|&r| (r, r)).collect(),
            dashed: true,
        })
        .chain(WORKERS.iter().map(|&w| {
            svg::Series {
                name: format!("{w} worker{}", if w > 1 { "s" } else { "" }),
                points: results
                    .iter()
                    .filter(|r| r.workers == w)
                    .map(|r| (r.target, r.achieved()))
                    .collect(),
                dashed: false,
            }
        }))
        .collect(),
    };
    let path = root.join("docs/perf/pacing.svg");
    chart.write(&path)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn run(
    root: &std::path::Path,
    target: f64,
    workers: usize,
    seconds: u64,
) -> Result<Pacing, Failure> {
    let mut input = UserInput::default();
    for (key, value) in [
        ("rate", (target * 60.0).to_string()),
        ("peak_factor", "1".into()),
        ("fraud_rate", "0".into()),
        ("init_mode", "skip".into()),
        ("workers", workers.to_string()),
    ] {
        input
            .flags
            .push((key.into(), value, format!("--set {key}")));
    }
    let now = Utc::now();
    let options = Options {
        script: root.join("scripts/darooghe.rhai"),
        input,
        seed: Some(1),
        now: Some(now),
        sink: SinkSpec::Kafka,
        labels: false,
        meta: false,
        time: sim::clock::TimeSource::real(),
    };
    let prepared = scenario::prepare(&options)?;
    let broker = EmbeddedBroker::start(&TopicSpec {
        name: TOPIC.into(),
        partitions: prepared.settings.partitions,
        replication: 1,
    })?;
    let config = KafkaSinkConfig {
        brokers: broker.bootstrap_servers(),
        brokers_origin: Origin::Default,
        topic: TOPIC.into(),
        properties: Default::default(),
        headers: vec![("scenario".into(), "darooghe".into())],
        transactional_id: None,
    };
    let mut sink = Timed {
        inner: KafkaSink::connect(&config, Arc::new(DeliveryCounters::default()))?,
        sent: Vec::with_capacity((target * seconds as f64 * 1.2) as usize),
    };
    let metrics = Arc::new(Metrics::default());
    let mut pipeline = Pipeline::new(prepared.scenario, &prepared.settings, 1, &mut sink, metrics);
    pipeline.set_workers(workers)?;
    // The run starts now: the live stream's first arrival is scheduled from this instant.
    let start = Utc::now();
    let clock = SimClock::starting_at(start);
    let until = start + chrono::Duration::seconds(seconds as i64);
    pipeline.live(&clock, &Shutdown::new(), Some(until))?;
    drop(pipeline);
    let account = sink.close(Duration::from_secs(30))?;

    let start_ms = start.timestamp_millis();
    let mut scheduled = vec![0u64; seconds as usize];
    let mut sent = vec![0u64; seconds as usize];
    let mut late: Vec<f64> = Vec::with_capacity(sink.sent.len());
    for &(at, ts) in &sink.sent {
        let due = clock.instant_of(DateTime::from_timestamp_millis(ts).expect("in range"));
        late.push(at.saturating_duration_since(due).as_secs_f64() * 1e3);
        if let Some(w) = usize::try_from((ts - start_ms).div_euclid(1000))
            .ok()
            .and_then(|w| scheduled.get_mut(w))
        {
            *w += 1;
        }
        let wall = (at - clock.instant_of(start)).as_secs() as usize;
        if let Some(w) = sent.get_mut(wall) {
            *w += 1;
        }
    }
    late.sort_by(f64::total_cmp);
    let (worst_at, worst_relative) = scheduled
        .iter()
        .zip(&sent)
        .map(|(&s, &n)| (n as f64 - s as f64).abs() / (s as f64).max(1.0))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    Ok(Pacing {
        target,
        workers,
        seconds,
        events: sink.sent.len() as u64,
        wall: sink
            .sent
            .last()
            .map_or(0.0, |&(at, _)| (at - clock.instant_of(start)).as_secs_f64()),
        worst_relative,
        worst_window: (worst_at, sent[worst_at], scheduled[worst_at]),
        p99_late_ms: late
            .get(late.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0.0),
        max_late_ms: late.last().copied().unwrap_or(0.0),
        account,
    })
}
