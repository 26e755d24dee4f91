//! Achieved against target rate in real time: `sim run scripts/darooghe.rhai --sink file:PATH
//! --duration D --set rate=R` at 100/min (120 s, or 30 s with `--quick`), 10,000/s and 50,000/s
//! (10 s each), with `EVENT_INIT_MODE=skip` (no backfill), `PEAK_FACTOR=1` (a flat rate) and
//! `FRAUD_RATE=0` (so one arrival is one event).
//!
//! `--now` is set to the real time at spawn, so event timestamps start at a known instant. For
//! each rate it reports: events written, achieved events/s by event time (events / D) and by the
//! wall clock (events / seconds from the file's creation, when the live stream starts, to the
//! process's exit), and the worst 1-second window of event timestamps against the expected
//! count R/60: the largest relative deviation, and the same deviation in Poisson standard
//! deviations (z = (count - expected) / sqrt(expected)), since arrivals are random and a window of
//! 1.7 expected events naturally holds 0 or 5. It measures; it asserts nothing.
//!
//! ```text
//! cargo run --release --example realtime_pacing [-- --quick]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

#[path = "support/mod.rs"]
mod support;

use support::*;

/// One rate to try: events per minute and seconds to run.
struct Case {
    per_minute: f64,
    seconds: u64,
}

/// What one run gave.
struct Pacing {
    case: Case,
    events: u64,
    delivered: u64,
    failed: u64,
    /// Seconds from the live stream's start (the file appears) to the process's exit.
    live_wall: f64,
    /// Events whose timestamps fall outside [start, start + D).
    outside: u64,
    /// Largest |count - expected| / expected over the 1-second windows.
    worst_relative: f64,
    /// The same deviation in Poisson standard deviations.
    worst_z: f64,
    /// Where the worst window was (seconds from start) and what it held.
    worst_window: (u64, u64),
}

fn main() -> Result<(), Failure> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let scratch = std::env::temp_dir().join(format!("sim-pacing-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    let cases = [
        (100.0, if quick { 30 } else { 120 }),
        (600_000.0, 10),
        (3_000_000.0, 10),
    ];
    let mut results = Vec::new();
    for (per_minute, seconds) in cases {
        let case = Case {
            per_minute,
            seconds,
        };
        eprintln!("running {per_minute}/min for {seconds} s ...");
        results.push(run(&sim, &root, &scratch, case)?);
    }
    let _ = std::fs::remove_dir_all(&scratch);

    println!(
        "\n{:>9} {:>4} {:>9} {:>8} {:>11} {:>11} {:>7} {:>10} {:>7} {:>14} {:>7}",
        "target/s",
        "D s",
        "events",
        "expected",
        "ev/s (D)",
        "ev/s (wall)",
        "wall s",
        "worst dev",
        "z",
        "worst window",
        "failed"
    );
    for r in &results {
        let target = r.case.per_minute / 60.0;
        let d = r.case.seconds as f64;
        println!(
            "{:>9.2} {:>4} {:>9} {:>8.0} {:>11.2} {:>11.2} {:>7.2} {:>9.1}% {:>7.2} {:>14} {:>7}",
            target,
            r.case.seconds,
            r.events,
            target * d,
            r.events as f64 / d,
            r.events as f64 / r.live_wall,
            r.live_wall,
            100.0 * r.worst_relative,
            r.worst_z,
            format!("s{}: {}", r.worst_window.0, r.worst_window.1),
            r.failed
        );
    }
    println!();
    for r in &results {
        let expected = r.case.per_minute / 60.0 * r.case.seconds as f64;
        println!(
            "{}/min: {} events, expected {expected:.0} (z = {:+.2}); delivered {}, failed {}; \
             {} timestamps outside the run's window",
            r.case.per_minute,
            r.events,
            (r.events as f64 - expected) / expected.sqrt(),
            r.delivered,
            r.failed,
            r.outside
        );
    }
    println!(
        "worst dev: max over 1-s windows of |count - R/60| / (R/60); z: the same in sqrt(R/60) units\n\
         ev/s (wall): events / (process exit - file creation): below target means the stream fell behind"
    );
    Ok(())
}

fn run(sim: &Path, root: &Path, scratch: &Path, case: Case) -> Result<Pacing, Failure> {
    let file = scratch.join(format!("rate-{}.jsonl", case.per_minute));
    let _ = std::fs::remove_file(&file);
    let now = Utc::now();
    let mut command = Command::new(sim);
    command
        .arg("run")
        .arg(root.join("scripts/darooghe.rhai"))
        .arg("--sink")
        .arg(format!("file:{}", file.display()))
        .args(["--duration", &case.seconds.to_string()])
        .args(["--set", &format!("rate={}", case.per_minute)])
        .args(["--seed", "1"])
        .args(["--now", &now.to_rfc3339_opts(SecondsFormat::Millis, true)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SETTING_VARS {
        command.env_remove(var);
    }
    command
        .env("EVENT_INIT_MODE", "skip")
        .env("PEAK_FACTOR", "1")
        .env("FRAUD_RATE", "0");
    let mut child = command.spawn()?;
    // Read standard error on a thread, so a full pipe never stalls sim.
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut live_started = None;
    while child.try_wait()?.is_none() {
        if live_started.is_none() && file.exists() {
            live_started = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ended = Instant::now();
    let status = child.wait()?;
    let stderr = reader.join().expect("reader");
    let live_wall = live_started.map_or(f64::NAN, |t| (ended - t).as_secs_f64());
    let (delivered, failed) =
        account(&stderr).ok_or_else(|| format!("no account from sim ({status}):\n{stderr}"))?;

    let start_ms = now.timestamp_millis();
    let mut windows = vec![0u64; case.seconds as usize];
    let (mut events, mut outside) = (0, 0);
    for line in std::fs::read_to_string(&file)?.lines() {
        events += 1;
        let window = usize::try_from((timestamp_ms(line)? - start_ms).div_euclid(1000));
        match window.ok().and_then(|w| windows.get_mut(w)) {
            Some(count) => *count += 1,
            None => outside += 1,
        }
    }
    let expected = case.per_minute / 60.0;
    let (worst_at, worst_count) = windows
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| {
            let dev = |c: u64| (c as f64 - expected).abs();
            dev(a.1).total_cmp(&dev(b.1))
        })
        .unwrap_or_default();
    let deviation = (worst_count as f64 - expected).abs();
    Ok(Pacing {
        case,
        events,
        delivered,
        failed,
        live_wall,
        outside,
        worst_relative: deviation / expected,
        worst_z: deviation / expected.sqrt(),
        worst_window: (worst_at as u64, worst_count),
    })
}

/// The event's `timestamp` field, in milliseconds since the epoch.
fn timestamp_ms(line: &str) -> Result<i64, Failure> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        timestamp: &'a str,
    }
    let event: Event = serde_json::from_str(line)?;
    Ok(DateTime::parse_from_rfc3339(event.timestamp)?.timestamp_millis())
}

/// `account: produced P, delivered D, failed F` from sim's standard error.
fn account(stderr: &str) -> Option<(u64, u64)> {
    // The status line redraws with carriage returns: split on those too.
    let line = stderr
        .split(['\n', '\r'])
        .rev()
        .find(|l| l.contains("account: "))?;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    Some((*numbers.get(1)?, *numbers.get(2)?))
}
