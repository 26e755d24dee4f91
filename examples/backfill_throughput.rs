//! Events per second of `sim backfill scripts/darooghe.rhai --count N`, delivery included, into
//! (a) the embedded broker (librdkafka's mock cluster, in process), (b) Tansu over TCP, when
//! `tansu` is on PATH or in ~/.cargo/bin (started here on a free port with in-memory storage and
//! stopped afterwards), and (c) a JSON-lines file, as a reference without Kafka.
//!
//! It builds and spawns the release binary, parses what `sim` prints on standard error
//! (`backfilled N events in S s (R events/s, delivery included)` and
//! `account: produced P, delivered D, failed F`) and prints a table, with whether every message
//! was delivered. `sim`'s own time includes loading and setting up the script; the wall column is
//! the whole process (broker start and shutdown included). It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example backfill_throughput -- 200000
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "support/mod.rs"]
mod support;

use support::*;

/// What one `sim backfill` run reported.
struct Run {
    sink: String,
    events: u64,
    sim_seconds: f64,
    sim_rate: f64,
    wall_seconds: f64,
    produced: u64,
    delivered: u64,
    failed: u64,
    exit_ok: bool,
    /// Lines in the output file, for the file sink.
    lines: Option<u64>,
}

impl Run {
    fn all_delivered(&self) -> bool {
        self.exit_ok
            && self.failed == 0
            && self.produced == self.events
            && self.delivered == self.events
            && self.lines.is_none_or(|lines| lines == self.events)
    }
}

fn main() -> Result<(), Failure> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.replace('_', "").parse()?,
        None => 200_000,
    };
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let script = root.join("scripts/darooghe.rhai");
    let scratch = std::env::temp_dir().join(format!("sim-backfill-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!("count {count}, script {}\n", script.display());

    let mut runs = Vec::new();
    runs.push(backfill(&sim, &script, count, "embedded broker", &[])?);

    match find_tansu() {
        Some(tansu) => {
            let (mut broker, address) = start_tansu(&tansu, &scratch)?;
            let run = backfill(
                &sim,
                &script,
                count,
                "Tansu (TCP)",
                &["--brokers", &address],
            );
            let _ = broker.kill();
            let _ = broker.wait();
            runs.push(run?);
        }
        None => println!("tansu not found on PATH or in ~/.cargo/bin: skipping the Tansu run"),
    }

    let file = scratch.join("events.jsonl");
    let sink = format!("file:{}", file.display());
    let mut run = backfill(&sim, &script, count, "JSON-lines file", &["--sink", &sink])?;
    run.lines = Some(count_lines(&file)?);
    runs.push(run);
    let _ = std::fs::remove_dir_all(&scratch);

    println!(
        "{:<16} {:>8} {:>7} {:>10} {:>7} {:>9} {:>9} {:>6} {:>13}",
        "sink",
        "events",
        "sim s",
        "events/s",
        "wall s",
        "produced",
        "delivered",
        "failed",
        "all delivered"
    );
    for r in &runs {
        println!(
            "{:<16} {:>8} {:>7.2} {:>10.0} {:>7.2} {:>9} {:>9} {:>6} {:>13}",
            r.sink,
            r.events,
            r.sim_seconds,
            r.sim_rate,
            r.wall_seconds,
            r.produced,
            r.delivered,
            r.failed,
            if r.all_delivered() { "yes" } else { "NO" }
        );
    }
    println!("\n--count counts arrivals: a fraud burst is one arrival of 5 events.");
    if let Some(lines) = runs.last().and_then(|r| r.lines) {
        println!("JSON-lines file: {lines} lines");
    }
    Ok(())
}

/// Runs `sim backfill` and parses its report.
fn backfill(
    sim: &Path,
    script: &Path,
    count: u64,
    label: &str,
    extra: &[&str],
) -> Result<Run, Failure> {
    let mut command = Command::new(sim);
    command
        .arg("backfill")
        .arg(script)
        .args(["--count", &count.to_string(), "--seed", "1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SETTING_VARS {
        command.env_remove(var);
    }
    let started = Instant::now();
    let output = command.output()?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let parsed = parse_report(&stderr);
    let Some(((events, sim_seconds, sim_rate), (produced, delivered, failed))) = parsed else {
        return Err(format!("{label}: could not read sim's report:\n{stderr}").into());
    };
    Ok(Run {
        sink: label.into(),
        events,
        sim_seconds,
        sim_rate,
        wall_seconds,
        produced,
        delivered,
        failed,
        exit_ok: output.status.success(),
        lines: None,
    })
}

fn count_lines(path: &Path) -> Result<u64, Failure> {
    let bytes = std::fs::read(path)?;
    Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
}
