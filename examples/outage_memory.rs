//! Memory through a broker outage: `sim run scripts/darooghe.rhai` at 20,000 events/s into
//! Tansu (a separate process), which is stopped with SIGSTOP for OUTAGE seconds mid-stream and
//! then continued; `sim`'s resident set size (VmRSS in /proc) read every second.
//!
//! SIGSTOP makes the broker hang rather than vanish: its connections stay open and nothing is
//! answered, so librdkafka's queue fills to its bound (100,000 messages or 256 MiB, `sim`'s
//! defaults; `-X queue.buffering.max.messages=...` after `--` changes it) and `sim` waits for
//! room. Tansu being another process, the RSS is `sim`'s alone. The outage is shorter than
//! `message.timeout.ms` (300 s), so nothing should fail: what was queued is delivered when the
//! broker is back, and the timeline, behind by the outage, catches up at once.
//!
//! Phases: BEFORE seconds of normal streaming, OUTAGE seconds stopped, AFTER seconds continued
//! (the catch-up included), then SIGINT and the final account. With AFTER 0 the SIGINT comes
//! during the outage (the broker is continued once `sim` has exited): how long a stop takes then,
//! and what the account says of what was queued. Reports RSS every few seconds, the
//! peak of each phase, and the account with its failures. Flat rate (`PEAK_FACTOR=1`), no
//! backfill, `fraud_rate=0` so that scenario state (follow-ups, see `memory_flat`) does not mix
//! in; other `sim run` options go after the phases. It measures; it asserts nothing. Linux only.
//!
//! ```text
//! cargo run --release --example outage_memory [-- BEFORE OUTAGE AFTER [SIM ARGS...]]
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::*;

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn signal(child: &Child, name: &str) -> Result<(), Failure> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()?;
    if !status.success() {
        return Err(format!("kill -{name} {} failed", child.id()).into());
    }
    Ok(())
}

/// One reading: seconds since start, phase, sim's RSS in KiB.
struct Sample {
    at: f64,
    phase: &'static str,
    kib: u64,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let mut phase_arg = |default: u64| -> Result<u64, Failure> {
        Ok(args
            .next()
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (before, outage, after) = (phase_arg(30)?, phase_arg(60)?, phase_arg(60)?);
    let extra: Vec<String> = args.collect();
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let tansu = find_tansu().ok_or("tansu is missing: run `bash dev/install-test-deps.sh`")?;
    let scratch = tempfile::tempdir()?;
    let (mut broker, address) = start_tansu(&tansu, scratch.path())?;

    let mut command = Command::new(&sim);
    command
        .arg("run")
        .arg(root.join("scripts/darooghe.rhai"))
        .args(["--brokers", &address, "--topic", "outage.transactions"])
        .args(["--set", "rate=1200000", "--set", "fraud_rate=0"])
        .args(["--seed", "1", "--no-reload"])
        .args(&extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SETTING_VARS {
        command.env_remove(var);
    }
    command
        .env("EVENT_INIT_MODE", "skip")
        .env("PEAK_FACTOR", "1");
    let mut child = command.spawn()?;
    let pid = child.id();
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut phases = vec![("before", before, None), ("outage", outage, Some("STOP"))];
    if after > 0 {
        phases.push(("after", after, Some("CONT")));
    }
    let mut outage_at = 0.0;
    for (phase, seconds, broker_signal) in phases {
        if let Some(name) = broker_signal {
            signal(&broker, name)?;
            println!("{:>6.1} s: tansu {name}", started.elapsed().as_secs_f64());
            if name == "STOP" {
                outage_at = started.elapsed().as_secs_f64();
            }
        }
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end && child.try_wait()?.is_none() {
            if let Some(kib) = status_kib(pid, "VmRSS:") {
                samples.push(Sample {
                    at: started.elapsed().as_secs_f64(),
                    phase,
                    kib,
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let stop_at = started.elapsed().as_secs_f64();
    signal(&child, "INT")?;
    let status = child.wait()?;
    let exited_after = started.elapsed().as_secs_f64() - stop_at;
    if after == 0 {
        signal(&broker, "CONT")?;
    }
    let stderr = reader.join().expect("reader");
    let tansu_rss = status_kib(broker.id(), "VmRSS:").unwrap_or(0);
    let _ = broker.kill();
    let _ = broker.wait();
    println!("load at end: {}\n", uptime());

    let during = if after == 0 {
        " (during the outage)"
    } else {
        ""
    };
    println!(
        "sim run at 20,000 events/s into Tansu; outage (SIGSTOP) from {outage_at:.0} s for \
         {outage} s; SIGINT{during} at {stop_at:.0} s, exited {exited_after:.1} s later with \
         {status}"
    );
    println!("time s  phase    sim RSS MiB");
    let mut next = 0.0;
    for s in &samples {
        if s.at >= next {
            println!("{:>6.0}  {:<7} {:>11.1}", s.at, s.phase, mib(s.kib));
            next += 5.0;
        }
    }
    let peak = |phase: &str| {
        samples
            .iter()
            .filter(|s| s.phase == phase)
            .map(|s| s.kib)
            .max()
            .unwrap_or(0)
    };
    println!(
        "\npeak sim RSS: before {:.1} MiB, during the outage {:.1} MiB, after {:.1} MiB; \
         high-water mark (VmHWM) {:.1} MiB; Tansu's RSS at the end {:.1} MiB",
        mib(peak("before")),
        mib(peak("outage")),
        mib(peak("after")),
        mib(hwm),
        mib(tansu_rss)
    );
    println!("\nsim's report:");
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("delivery failed") || l.starts_with("account: "))
    {
        println!("  {line}");
    }
    // The timeline owes 20,000 events a second of the run (from about its start; setting up the
    // topic takes a fraction of a second): what it made less is how far behind it still was.
    if let Some(produced) = stderr.lines().find_map(|l| {
        l.strip_prefix("account: produced ")?
            .split(',')
            .next()?
            .parse::<f64>()
            .ok()
    }) {
        let owed = 20_000.0 * stop_at;
        println!(
            "made {produced:.0} of about {owed:.0} events due by the SIGINT: {:.0} s behind",
            ((owed - produced) / 20_000.0).max(0.0)
        );
    }
    Ok(())
}
