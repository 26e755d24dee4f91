//! Memory over a long live run: `sim run scripts/darooghe.rhai` at 10,000 events/s into its
//! embedded broker for SECONDS (default 600), its resident set size (VmRSS in /proc) read every
//! second.
//!
//! Reports the peak RSS of the first minute, the peak of the whole run, their ratio, RSS at a few
//! points along the way, sim's final account and how many follow-ups were still scheduled at the
//! end (scenario state: darooghe's fraud patterns schedule payments up to 30 minutes ahead, so
//! memory grows with them until as many fall due as are scheduled; `-- 600 --set fraud_rate=0`
//! measures the stream without them). The backfill is skipped
//! (`EVENT_INIT_MODE=skip`) so the run is the live stream alone; the rate is flat
//! (`PEAK_FACTOR=1`). The embedded broker lives in the same process, so the figure includes the
//! topic's log it keeps in memory: `--set` or `-X` options after `--` are passed on to `sim run`
//! (e.g. `-- 600 -X ...`). It measures; it asserts nothing. Linux only (/proc).
//!
//! ```text
//! cargo run --release --example memory_flat [-- SECONDS [SIM ARGS...]]
//! ```

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::*;

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(600);
    let extra: Vec<String> = args.collect();
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let sim = build_sim(&root)?;
    let mut command = Command::new(&sim);
    command
        .arg("run")
        .arg(root.join("scripts/darooghe.rhai"))
        .args(["--duration", &seconds.to_string()])
        .args(["--set", "rate=600000", "--seed", "1", "--no-reload"])
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
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while child.try_wait()?.is_none() {
        if let Some(kib) = rss_kib(pid) {
            samples.push((started.elapsed().as_secs_f64(), kib));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let stderr = reader.join().expect("reader");
    let account = stderr
        .split(['\n', '\r'])
        .rev()
        .find(|l| l.contains("account: "))
        .unwrap_or("no account")
        .to_string();
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0)
    };
    let first_minute = peak(0.0, 60.0);
    let whole = peak(0.0, f64::MAX);
    println!("load at end: {}\n", uptime());
    println!("sim run at 10,000 events/s for {seconds} s: {account}");
    if let Some(pending) = stderr
        .lines()
        .find(|l| l.contains("follow-ups were still scheduled"))
    {
        // Scheduled follow-ups are scenario state that grows until as many fall due as are
        // scheduled: with darooghe's fraud patterns, for up to 30 minutes.
        println!("at exit: {pending}");
    }
    println!("time s   RSS MiB");
    let mut next = 0.0;
    for &(t, kib) in &samples {
        if t >= next {
            println!("{t:>6.0} {:>9.1}", kib as f64 / 1024.0);
            next += (seconds as f64 / 10.0).max(1.0);
        }
    }
    println!(
        "\npeak RSS, first minute: {:.1} MiB; whole run: {:.1} MiB; whole / first minute: {:.3}",
        first_minute as f64 / 1024.0,
        whole as f64 / 1024.0,
        whole as f64 / first_minute.max(1) as f64
    );
    Ok(())
}
