//! What `--metrics` costs the hot path: events per second of
//! `sim backfill scripts/darooghe.rhai --count N` into the embedded broker (darooghe's highest
//! rate: no deadlines, every core), in three variants:
//!
//! - without `--metrics`;
//! - with `--metrics`, scraped every SCRAPE_MS (default 1,000: a Prometheus with a 1 s scrape
//!   interval, fifteen times its default) while it runs;
//! - the same with `-X statistics.interval.ms=0`: no librdkafka statistics, which tells the cost
//!   of librdkafka's own bookkeeping (it times every message once statistics are on) from the
//!   endpoint's.
//!
//! The variants take turns, round after round, each round in another order, so a machine whose
//! speed drifts moves them alike; the figure compared is each variant's median. It builds and
//! spawns the release binary and reads `backfilled N events in S s (R events/s, delivery
//! included)` from standard error. It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example metrics_overhead -- 200000 9 1000
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

use support::*;

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args
        .next()
        .map_or(Ok(200_000), |n| n.replace('_', "").parse())?;
    let rounds: usize = args.next().map_or(Ok(9), |n| n.parse())?;
    let every = Duration::from_millis(args.next().map_or(Ok(1_000), |n| n.parse())?);
    println!("load at start: {}", uptime());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let script = root.join("scripts/darooghe.rhai");
    let variants = [
        ("without --metrics", None),
        ("--metrics, scraped", Some(&[][..])),
        (
            "--metrics, no librdkafka statistics",
            Some(&["-X", "statistics.interval.ms=0"][..]),
        ),
    ];
    let mut rates = vec![Vec::new(); variants.len()];
    let mut scrapes = 0;
    for round in 0..rounds {
        let mut line = format!("round {}:", round + 1);
        // A new order each round: none always runs first, on a cooler or a warmer machine.
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            let (name, extra) = variants[v];
            let rate = match extra {
                None => backfill(&sim, &script, count, None, &[])?,
                Some(extra) => {
                    let (rate, n) = scraped_backfill(&sim, &script, count, extra, every)?;
                    scrapes += n;
                    rate
                }
            };
            line += &format!(" | {name} {rate:.0}");
            rates[v].push(rate);
        }
        println!("{line}");
    }
    let base = median(&mut rates[0]);
    println!(
        "median of {rounds} rounds of {count} events, events/s ({scrapes} scrapes in all, one \
         every {} ms):",
        every.as_millis()
    );
    for (v, (name, _)) in variants.iter().enumerate() {
        let rate = median(&mut rates[v]);
        println!(
            "  {name:<36} {rate:>8.0}  {:+.2}%",
            (rate / base - 1.0) * 100.0
        );
    }
    println!("load at end: {}", uptime());
    Ok(())
}

/// Runs the backfill, with the endpoint on `metrics` when given; its events per second.
fn backfill(
    sim: &Path,
    script: &Path,
    count: u64,
    metrics: Option<&str>,
    extra: &[&str],
) -> Result<f64, Failure> {
    let mut cmd = Command::new(sim);
    cmd.arg("backfill")
        .arg(script)
        .args(["--count", &count.to_string(), "--seed", "1"])
        .args(["--now", "2024-01-15T10:00:00Z"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SETTING_VARS
        .iter()
        .chain(["METRICS_ADDR", "SIM_WORKERS"].iter())
    {
        cmd.env_remove(var);
    }
    if let Some(address) = metrics {
        cmd.args(["--metrics", address]);
    }
    cmd.args(extra);
    let output = cmd.output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let ((events, _, rate), (_, delivered, _)) =
        parse_report(&stderr).ok_or_else(|| format!("no report in:\n{stderr}"))?;
    if !output.status.success() || delivered != events || events == 0 {
        return Err(format!("the backfill did not deliver everything:\n{stderr}").into());
    }
    Ok(rate)
}

/// The backfill with `--metrics` (and `extra` flags), scraped `every` so often while it runs;
/// its events per second and the scrapes answered.
fn scraped_backfill(
    sim: &Path,
    script: &Path,
    count: u64,
    extra: &[&str],
    every: Duration,
) -> Result<(f64, u64), Failure> {
    let address = TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let scraper = {
        let (address, done, answered) = (address.clone(), done.clone(), answered.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if scrape(&address) {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(every);
            }
        })
    };
    let rate = backfill(sim, script, count, Some(&address), extra);
    done.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    Ok((rate?, answered.load(Ordering::Relaxed)))
}

/// One `GET /metrics`; whether it answered 200 with a body.
fn scrape(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
