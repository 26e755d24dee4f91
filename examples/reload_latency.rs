//! Hot-reload latency: from the save of an edit to the first event made by the new version, and
//! how long a swap holds the stream.
//!
//! Streams a small scenario in real time (10,000 events/s by default) into an in-process sink
//! that notes when each event left the pipeline and which revision made it, while another thread
//! edits the script EDITS times (default 100, alternating in-place writes and atomic renames,
//! 50-150 ms apart). For each edit it takes the time from the save to the first event of the new
//! revision; it prints the median, 99th percentile and maximum, the longest swap as timed inside
//! the pipeline, and the largest gap between consecutive events across a swap next to the
//! largest gap anywhere (the stream's own jitter). Also runs with `scripts/darooghe.rhai`-sized
//! worlds: `--customers N` adds a pool of N customers to the scenario.
//!
//! It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example reload_latency [-- EDITS] [--rate PER_SECOND] [--customers N]
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::{Rng, SeedableRng};
use sim::clock::SimClock;
use sim::metrics::Metrics;
use sim::pipeline::Pipeline;
use sim::scenario::{prepare, Options};
use sim::settings::UserInput;
use sim::shutdown::Shutdown;
use sim::sink::{DeliveryAccount, Record, Sink, SinkError, SinkSpec};

/// Notes when each event left the pipeline and which edit's version made it.
struct Timing {
    emitted: Vec<(Instant, u64)>,
    newest: Arc<AtomicU64>,
}

impl Sink for Timing {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        // The edit that made the event, from its `"v":"vN"` field: robust even if some edit were
        // to be reloaded twice (revision numbers would then run ahead of edit numbers).
        let version = version_of(record.payload);
        self.emitted.push((Instant::now(), version));
        self.newest.fetch_max(version, Ordering::Relaxed);
        Ok(())
    }
    fn close(&mut self, _: Duration) -> Result<DeliveryAccount, SinkError> {
        let n = self.emitted.len() as u64;
        Ok(DeliveryAccount {
            produced: n,
            delivered: n,
            failed: 0,
        })
    }
}

fn version_of(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).unwrap_or("");
    text.split("\"v\":\"v")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn scenario(version: u64, per_minute: f64, customers: u64) -> String {
    format!(
        "fn config() {{ #{{ rate: {per_minute:.1}, peak_factor: 1.0, tag: \"v{version}\" }} }}\n\
         fn setup(ctx) {{ #{{ customers: pool({customers}, |i| #{{ id: `cust_${{i}}`, home: jitter(35.7, 51.4, 10) }}) }} }}\n\
         fn event(ctx) {{\n\
             let c = ctx.state.customers.pick();\n\
             #{{ customer_id: c.id, home: c.home, v: ctx.settings.tag, amount: rand_int(1000, 2000000), id: uuid() }}\n\
         }}\n"
    )
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn edit(script: &Path, text: &str, atomic: bool) {
    if atomic {
        let temp = script.with_extension("rhai.tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, script).unwrap();
    } else {
        std::fs::write(script, text).unwrap();
    }
}

fn main() {
    let edits: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let per_second: f64 = arg("--rate")
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000.0);
    let customers: u64 = arg("--customers")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir().unwrap();
    let script: PathBuf = dir.path().join("bench.rhai");
    std::fs::write(&script, scenario(1, per_second * 60.0, customers)).unwrap();

    let options = Options {
        script: script.clone(),
        input: UserInput::default(),
        seed: Some(1),
        now: Some(Utc::now()),
        sink: SinkSpec::Stdout,
        labels: false,
        meta: false,
        time: sim::clock::TimeSource::real(),
    };
    let prepared = prepare(&options).unwrap();
    let metrics = Arc::new(Metrics::default());
    let saves: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let newest = Arc::new(AtomicU64::new(1));
    let shutdown = Shutdown::new();
    let reloads = sim::reload::spawn(
        options.clone(),
        prepared.settings.clone(),
        1,
        metrics.clone(),
        None,
        |_| {},
    );

    // The editor: waits until each edit's revision is streaming before the next.
    let editor = {
        let (script, saves, newest, shutdown) = (
            script.clone(),
            saves.clone(),
            newest.clone(),
            shutdown.clone(),
        );
        std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            std::thread::sleep(Duration::from_millis(500));
            for revision in 2..=edits + 1 {
                let text = scenario(revision, per_second * 60.0, customers);
                saves.lock().unwrap().push(Instant::now());
                edit(&script, &text, revision % 2 == 1);
                let deadline = Instant::now() + Duration::from_secs(10);
                while newest.load(Ordering::Relaxed) < revision && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::thread::sleep(Duration::from_millis(rng.random_range(50..150)));
            }
            shutdown.trigger();
        })
    };

    let mut sink = Timing {
        emitted: Vec::with_capacity(4_000_000),
        newest,
    };
    let now = prepared.now;
    let mut pipeline = Pipeline::new(
        prepared.scenario,
        &prepared.settings,
        prepared.seed,
        &mut sink,
        metrics.clone(),
    );
    // As `sim run` does: the workers the settings ask for (the reloader forks each new version
    // as many times).
    pipeline
        .set_workers(prepared.settings.workers)
        .expect("forking the scenario compiles what already compiled");
    pipeline.accept_reloads(reloads);
    pipeline
        .live(&SimClock::starting_at(now), &shutdown, None)
        .unwrap();
    editor.join().unwrap();

    let saves = saves.lock().unwrap().clone();
    let emitted = &sink.emitted;
    let mut latencies = Vec::new();
    let mut swap_gaps = Vec::new();
    for (i, saved) in saves.iter().enumerate() {
        let version = i as u64 + 2;
        if let Some(first) = emitted.iter().position(|(_, v)| *v == version) {
            latencies.push(emitted[first].0.duration_since(*saved));
            if first > 0 {
                swap_gaps.push(emitted[first].0.duration_since(emitted[first - 1].0));
            }
        }
    }
    let mut gaps: Vec<Duration> = emitted
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect();
    latencies.sort();
    gaps.sort();
    swap_gaps.sort();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "reload latency: {edits} edits at {per_second} events/s, {customers} customers (load {})",
        load.trim()
    );
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| events | {} |", emitted.len());
    println!(
        "| reloads swapped in | {} of {} edits |",
        latencies.len(),
        saves.len()
    );
    if !latencies.is_empty() {
        println!(
            "| save to first new event, median | {} |",
            ms(percentile(&latencies, 0.5))
        );
        println!(
            "| save to first new event, p99 | {} |",
            ms(percentile(&latencies, 0.99))
        );
        println!(
            "| save to first new event, max | {} |",
            ms(*latencies.last().unwrap())
        );
    }
    println!(
        "| revisions swapped in (one per edit expected) | {} |",
        metrics.reloads()
    );
    println!(
        "| longest swap (inside the pipeline) | {} |",
        ms(metrics.longest_swap())
    );
    if let Some(max) = swap_gaps.last() {
        println!(
            "| largest gap between events across a swap | {} |",
            ms(*max)
        );
    }
    if !gaps.is_empty() {
        println!(
            "| gap between events, p99 / max (all) | {} / {} |",
            ms(percentile(&gaps, 0.99)),
            ms(*gaps.last().unwrap())
        );
    }
}
