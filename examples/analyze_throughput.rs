//! Events per second of `sim analyze` on a seeded topic, and how well its detection does there.
//!
//! Starts librdkafka's mock cluster in this process, fills `darooghe.transactions` with `COUNT`
//! events of `SCRIPT` (a seeded backfill, as `sim backfill --seed 1 --now
//! 2026-01-01T00:00:00Z` makes them), then analyzes the whole topic twice, each time in a fresh
//! consumer group with `--from-beginning --until-idle`: once with the native rules only, then with
//! the Rhai rules of `scripts/detect/` as well, on one thread (`--detect-workers 1`) and on two
//! (`--detect-workers 2`, customers split between two detection threads). It prints the rate from
//! the group's assignment to caught up (the group join, about 3 s on the mock cluster, is left
//! out; the idle grace of 0.5 s at the end is in), the rate while reading (from the first message
//! to the last, the summary's `run.reading_s`: neither the wait for the first fetch nor the idle
//! grace), and, when the events carry the ground truth, precision and recall per rule and recall
//! and detection delay per fraud pattern. It measures; it asserts nothing.
//!
//! The mock cluster keeps at most 5 MB (or 100,000 messages) per partition and drops older
//! batches beyond that, so the topic gets 32 partitions and the fill is lz4-compressed; the
//! analyzer's consumed count is printed beside the delivered one, so a topic the broker trimmed
//! shows. The fill gathers its batches for 100 ms (see [`FILL_LINGER_MS`]).
//!
//! Under each rate it prints the CPU time the analysis took by part, read from
//! `/proc/self/task`: the analyzer's loop (the consumer, reading each transaction, the windows,
//! and the rules when detection runs on that thread), the detection threads, librdkafka's client
//! threads, and the mock cluster, which stands in for the broker and runs in this process. The
//! parts that are `sim analyze`'s own give its cost an event on one core. `PHASES=bench-rhai-2`
//! (a comma-separated list of `bench-native`, `bench-rhai-1`, `bench-rhai-2`) runs only those.
//!
//! ```text
//! cargo run --release --example analyze_throughput -- 500000
//! cargo run --release --example analyze_throughput -- 100000 scripts/fraud_ring.rhai
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use sim::analyze::{AnalyzeNotice, AnalyzeOptions, Summary};
use sim::metrics::Metrics;
use sim::scenario::Options;
use sim::settings::UserInput;
use sim::shutdown::Shutdown;
use sim::sink::SinkSpec;

#[path = "support/threads.rs"]
mod threads;

type Failure = Box<dyn std::error::Error>;

/// The allocator `sim` itself runs on (see `src/main.rs`), so the rates are `sim analyze`'s: on
/// glibc's, allocation took about a sixth of the analyzer's own thread (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOPIC: &str = "darooghe.transactions";
/// Enough partitions that 500,000 compressed events stay under the mock's 5 MB a partition.
const PARTITIONS: i32 = 32;
/// How long the fill's producer gathers a batch (`linger.ms`; the `FILL_LINGER_MS` variable
/// sets another). The mock cluster answers a fetch with one batch of a partition, found by
/// walking the partition's batches from its first: with librdkafka's 5 ms, the fill's batches
/// held about four events each (32 partitions), and the mock's walk took a fifth of the CPU of
/// an analysis, and more than the analyzer's own loop with the native rules (2026-11-28: 0.91 s
/// of 4.16 s; with 100 ms, 0.05 s). A broker indexes its log and answers with many batches, so
/// that cost is the test bench's, not `sim analyze`'s.
const FILL_LINGER_MS: &str = "100";

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let count: u64 = match args.next() {
        Some(n) => n.replace('_', "").parse()?,
        None => 500_000,
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join(
        args.next()
            .unwrap_or_else(|| "scripts/darooghe.rhai".into()),
    );
    let clock = threads::ThreadClock::start();
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1)?;
    cluster.create_topic(TOPIC, PARTITIONS, 1)?;
    let brokers = cluster.bootstrap_servers();

    let mut input = UserInput::default();
    input
        .flags
        .push(("brokers".into(), brokers.clone(), "--brokers".into()));
    input
        .kafka_flags
        .push(("compression.type".into(), "lz4".into()));
    let linger = std::env::var("FILL_LINGER_MS").unwrap_or_else(|_| FILL_LINGER_MS.into());
    input.kafka_flags.push(("linger.ms".into(), linger));
    let fill = Options {
        script: script.clone(),
        input,
        seed: Some(1),
        now: Some("2026-01-01T00:00:00Z".parse()?),
        sink: SinkSpec::Kafka,
        labels: false,
        meta: false,
        time: sim::clock::TimeSource::real(),
    };
    let started = Instant::now();
    let outcome = sim::app::backfill(
        &fill,
        Some(count),
        None,
        &Shutdown::new(),
        Arc::new(Metrics::default()),
        &mut |_| {},
        Box::new(|notice| eprintln!("{notice:?}")),
    )?;
    println!(
        "filled {TOPIC} with {} events of {} in {:.1} s ({} delivered)",
        outcome.events,
        script.display(),
        started.elapsed().as_secs_f64(),
        outcome.account.delivered
    );
    println!("load: {}", load());

    let detect = root.join("scripts/detect");
    let phases = std::env::var("PHASES").unwrap_or_default();
    for (group, rules, workers) in [
        ("bench-native", None, 1),
        ("bench-rhai-1", Some(detect.clone()), 1),
        ("bench-rhai-2", Some(detect.clone()), 2),
    ] {
        if !phases.is_empty() && !phases.split(',').any(|p| p == group) {
            continue;
        }
        let mut options = AnalyzeOptions::new(&brokers);
        options.group = group.into();
        options.from_beginning = true;
        options.until_idle = true;
        options.rules_dir = rules.clone();
        options.detect_workers = workers;
        let mut assigned = None;
        let started = Instant::now();
        let cpu_before = clock.now();
        let summary = sim::analyze::run(&options, &Shutdown::new(), &mut |notice| {
            if let AnalyzeNotice::Assigned(_) = notice {
                assigned.get_or_insert_with(Instant::now);
            }
        })?;
        let working = assigned.map_or(started.elapsed(), |t| t.elapsed());
        let label = if rules.is_some() {
            format!("native + Rhai rules, {workers} detection thread(s)")
        } else {
            "native rules only".to_string()
        };
        println!(
            "\nsim analyze ({label}): {} messages (of {} delivered) in {:.2} s from assignment: {:.0} events/s ({:.2} s with the group join)",
            summary.run.consumed,
            outcome.account.delivered,
            working.as_secs_f64(),
            summary.run.consumed as f64 / working.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        if let Some(rate) = summary.run.reading_rate() {
            println!(
                "  reading (first message to last): {:.2} s, {rate:.0} events/s",
                summary.run.reading_s
            );
        }
        print_cpu(
            &threads::spent(&cpu_before, &clock.now(), thread_group),
            summary.run.consumed,
        );
        print_detection(&summary);
    }
    Ok(())
}

/// The part of the run a thread belongs to, from its name.
fn thread_group(name: &str) -> String {
    match name {
        "rdk:mock" => "mock cluster (the broker)".into(),
        n if n.starts_with("rdk:") => "librdkafka client threads".into(),
        n if n.starts_with("detect-") => "detection threads".into(),
        "cpu-sampler" => "this program's CPU sampler".into(),
        _ => "analyzer loop (consume, parse, windows; the rules when detection is on one thread)"
            .into(),
    }
}

/// CPU seconds by part of the run, and the events a second one core would give each part.
fn print_cpu(spent: &[(String, f64)], events: u64) {
    let total: f64 = spent.iter().map(|(_, s)| s).sum();
    println!(
        "  CPU {total:.2} s in all ({:.1} µs an event):",
        total * 1e6 / events.max(1) as f64
    );
    for (group, seconds) in spent {
        println!(
            "    {seconds:>6.2} s  {:>6.1} µs an event  {group}",
            seconds * 1e6 / events.max(1) as f64
        );
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn print_detection(summary: &Summary) {
    let d = &summary.detection;
    if !d.labelled {
        println!("  (no fraud_pattern headers: detection not scored)");
        return;
    }
    println!(
        "  {} events, {} fraud, {} flagged by some rule",
        d.events, d.fraud_events, d.flagged
    );
    println!(
        "  {:<18} {:>7} {:>8} {:>10} {:>8}",
        "rule", "alerts", "flagged", "precision", "recall"
    );
    for (rule, s) in &d.rules {
        println!(
            "  {rule:<18} {:>7} {:>8} {:>10} {:>8}",
            s.alerts,
            s.flagged,
            percent(s.precision),
            percent(s.recall)
        );
    }
    println!(
        "  {:<22} {:>7} {:>8} {:>8} {:>14}",
        "pattern", "events", "recall", "cases", "median delay"
    );
    for (pattern, p) in &d.patterns {
        let delay = p
            .delay
            .as_ref()
            .map_or("-".into(), |d| format!("{:.0} s", d.median_s));
        println!(
            "  {pattern:<22} {:>7} {:>8} {:>4}/{:<3} {:>14}",
            p.events,
            percent(p.recall),
            p.cases_detected,
            p.cases,
            delay
        );
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}
