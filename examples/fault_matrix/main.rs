//! The fault matrix: `sim` (release build) writing into a broker that fails in every way the
//! test harness can make it fail, each run judged against the exact oracle of the same seeded
//! command (`--sink file:PATH`; see `tests/oracle/mod.rs`), and a table of what came of it.
//!
//! ```text
//! cargo run --release --example fault_matrix                       # all of it, 15 minutes or so
//! cargo run --release --example fault_matrix -- mock               # rows whose name has `mock`
//! cargo run --release --example fault_matrix -- "SIGSTOP 15" signals --signals 10
//! ```
//!
//! Words after `--` choose rows: a row runs when its name contains any of them (`mock`,
//! `tansu`, `backfill`, `stream`, `SIGSTOP`, `killed`, `signals`, `analyze`, ...); with none,
//! every row runs. `--signals N` sets how many signalled runs each signal row makes (50).
//!
//! The rows:
//! - librdkafka's mock cluster in this process, three brokers, the topic replicated three times
//!   and partition `p` led by broker `p + 1`, each fault once mid-backfill (`sim backfill`,
//!   injected once 2,000 messages are in the topic) and once mid-stream (`sim run`, live,
//!   injected once 1,500 are): broker 1 down for 5 s; the leader of partition 0 moved to broker
//!   2; Produce requests failing (request timed out, not leader for partition, throttling quota
//!   exceeded, five of each; three dropped connections); 1 s more on every round trip to broker
//!   1 for 5 s.
//! - Tansu over TCP (memory storage, the only engine its test install has): paused with SIGSTOP
//!   for 15 s and for 60 s mid-stream and mid-backfill; killed and started again on its port
//!   mid-stream, with and without the topic made again.
//! - Signals: `sim backfill` (mock cluster) and `sim run` (Tansu, `EVENT_INIT_MODE=flush`: the
//!   topic recreated, 3,000 arrivals backfilled, then live) each sent SIGINT or SIGTERM at a
//!   random moment of their run (uniform up to the shortest of three unsignalled runs, which
//!   are judged too), N times. Each run must leave exactly the oracle's first
//!   `produced` events, the account's `delivered` of them, and exit 0 only when all were
//!   delivered.
//! - `sim analyze --until-idle`, three members of one group on a one-partition topic: when each
//!   ended.
//!
//! Columns: `events` the oracle's count (what the run should deliver); `held` what the topic
//! holds afterwards; `lost`, `dup` (extra copies), `reord` (events behind a later event of their
//! key in its partition), `alt` (same id, other bytes), per the verdict of `tests/oracle`;
//! `failed` and `exit` from `sim`'s account and status. Recovery, both measured from the moment
//! the fault was healed (SIGCONT sent, broker back up, round trip restored; for faults that heal
//! themselves, a moved leader or pushed errors, from when they were injected), by asking for the
//! topic's high watermarks every 50 ms (with a new client whenever one stops answering):
//! - `next`: the first growth of the partitions the fault stopped (all of them for errors and
//!   Tansu), i.e. the next delivery; the resolution is the 50 ms between looks.
//! - `caught up`: for a live stream, when the topic held every event the oracle stamps at least
//!   one second before the stream's clock (its schedule); for a backfill, which has no schedule,
//!   its last delivery (the topic's last growth), so it includes the rest of the backfill's own
//!   work. `-`: not reached, or not measured (after a restart that lost the log, counts say
//!   nothing).
//!
//! Tansu's high watermark trails each partition's last batch (its log holds more than the
//! watermark says, and serves it), so counts are never compared with it exactly; the topic is
//! read back to its end for the verdict.
//!
//! It reports; it asserts nothing. The quick cases of the same harness are `tests/faults.rs`.
//!
//! # Layout
//! This file: the command line, what a row runs ([`Stream`]), making oracles ([`Harness`]) and
//! the table; `faults.rs` the mock cluster's and Tansu's rows; `signals.rs` the signalled runs;
//! `analyze.rs` the group with more members than partitions. The harness itself is
//! `tests/oracle/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../support/mod.rs"]
mod support;

#[path = "../../tests/oracle/mod.rs"]
mod oracle;

mod analyze;
mod faults;
mod signals;

use oracle::*;
use support::{build_sim, find_tansu, uptime, Failure};

/// The pinned clock of every run.
const NOW: &str = "2024-01-15T10:00:00Z";
/// The seed of every run: one oracle serves every row of a kind.
const SEED: &str = "31";
/// Arrivals per minute of the live runs: about 500 events a second with darooghe's peak hours
/// and follow-ups, so a 20 s stream stays well under the mock cluster's 5 MiB a partition (it
/// deletes beyond that, which would read as loss).
const LIVE_RATE: &str = "rate=12000";
/// Arrivals of the backfills: about 15,000 events, 2.5 MiB a partition.
const BACKFILL_COUNT: u32 = 15_000;
/// Messages in the topic when a fault is injected.
const TRIGGER: i64 = 2_000;
/// How long one run may take before it counts as hung.
const BOUND: Duration = Duration::from_secs(300);
/// Unsignalled runs before the signalled ones of a row: their shortest length is the span.
const BASELINES: usize = 3;
/// How long the members of the analyze row may take.
const ANALYZE_BOUND: Duration = Duration::from_secs(240);

/// What a row runs: a backfill of so many arrivals, or a live stream of so many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Backfill { count: u32 },
    Live { seconds: u32 },
}

/// The backfill most rows run.
const BACKFILL: Stream = Stream::Backfill {
    count: BACKFILL_COUNT,
};

impl Stream {
    /// `sim SUBCOMMAND SCRIPT ...`: the arguments up to the broker's.
    fn args(self) -> Vec<String> {
        let (subcommand, rest) = match self {
            Stream::Backfill { count } => ("backfill", vec!["--count".into(), count.to_string()]),
            Stream::Live { seconds } => (
                "run",
                vec![
                    "--set".into(),
                    LIVE_RATE.into(),
                    "--duration".into(),
                    seconds.to_string(),
                ],
            ),
        };
        let mut args: Vec<String> = [subcommand, "scripts/darooghe.rhai"]
            .into_iter()
            .chain(["--seed", SEED, "--now", NOW])
            .map(String::from)
            .collect();
        args.extend(rest);
        args
    }

    fn pace(self) -> Pace {
        match self {
            Stream::Backfill { .. } => Pace::Backfill,
            Stream::Live { .. } => Pace::Live {
                now_ms: chrono::DateTime::parse_from_rfc3339(NOW)
                    .expect("NOW is RFC 3339")
                    .timestamp_millis(),
            },
        }
    }

    fn label(self) -> &'static str {
        match self {
            Stream::Backfill { .. } => "backfill",
            Stream::Live { .. } => "stream",
        }
    }
}

/// One line of the table.
#[derive(Debug, Default)]
struct Row {
    name: String,
    events: String,
    held: String,
    lost: usize,
    duplicated: usize,
    reordered: usize,
    altered: usize,
    failed: String,
    exit: String,
    next: Option<Duration>,
    caught_up: Option<Duration>,
    /// Said under the table: what went wrong, and what sim said about it.
    notes: Vec<String>,
}

impl Row {
    /// A row with nothing measured, only notes.
    fn unmeasured(name: String, notes: Vec<String>) -> Self {
        let dash = || "-".to_string();
        Row {
            name,
            events: dash(),
            held: dash(),
            failed: dash(),
            exit: dash(),
            notes,
            ..Row::default()
        }
    }
}

/// Runs `sim` and makes the oracles.
struct Harness {
    sim: PathBuf,
    root: PathBuf,
    scratch: tempfile::TempDir,
    tansu: Option<PathBuf>,
    /// Oracles on their way, made in the background: a live one takes its duration.
    coming: BTreeMap<(Stream, &'static str), mpsc::Receiver<Result<Oracle, String>>>,
    /// Oracles made.
    oracles: BTreeMap<(Stream, &'static str), Oracle>,
}

impl Harness {
    /// The `sim` binary from the project's root, with none of this machine's settings.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.sim);
        cmd.env_clear().current_dir(&self.root);
        for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd
    }

    /// `stream`'s command with `extra` arguments and `EVENT_INIT_MODE=init_mode`.
    fn sim(&self, stream: Stream, extra: &[&str], init_mode: &str) -> Command {
        let mut cmd = self.command();
        cmd.args(stream.args())
            .args(extra)
            .env("EVENT_INIT_MODE", init_mode);
        cmd
    }

    /// Starts making the oracle of `stream` with `extra` and `init_mode`, unless it is made or
    /// on its way.
    fn prepare_oracle(&mut self, stream: Stream, extra: &[&str], init_mode: &'static str) {
        let key = (stream, init_mode);
        if self.coming.contains_key(&key) || self.oracles.contains_key(&key) {
            return;
        }
        let path = self.scratch.path().join(format!(
            "oracle-{}.jsonl",
            self.coming.len() + self.oracles.len()
        ));
        let mut cmd = self.sim(stream, extra, init_mode);
        cmd.arg("--sink").arg(format!("file:{}", path.display()));
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let made = cmd.output().map_err(|e| e.to_string()).and_then(|out| {
                if out.status.success() {
                    Oracle::read(&path)
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            });
            let _ = send.send(made);
        });
        self.coming.insert(key, receive);
    }

    /// Waits for the oracle of `stream` (with `init_mode`), which must have been prepared.
    fn oracle(&mut self, stream: Stream, init_mode: &'static str) -> Result<&Oracle, String> {
        let key = (stream, init_mode);
        if let Some(receive) = self.coming.remove(&key) {
            let oracle = receive.recv().map_err(|e| e.to_string())??;
            self.oracles.insert(key, oracle);
        }
        self.oracles
            .get(&key)
            .ok_or_else(|| format!("no oracle of {stream:?} was prepared"))
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// The table (Markdown), then each row's notes.
fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    let columns = [
        "events",
        "held",
        "lost",
        "dup",
        "reord",
        "alt",
        "failed",
        "exit",
        "next",
        "caught up",
    ];
    let widths = [7, 7, 5, 4, 5, 4, 6, 9, 8, 9];
    let line = |first: &str, cells: &[String]| {
        let cells: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        println!("| {first:width$} | {} |", cells.join(" | "));
    };
    println!();
    line("fault", &columns.map(String::from));
    let rules: Vec<String> = widths
        .iter()
        .map(|w| format!("{}:", "-".repeat(w + 1)))
        .collect();
    println!("|{}|{}|", "-".repeat(width + 2), rules.join("|"));
    for r in rows {
        let cells = [
            r.events.clone(),
            r.held.clone(),
            r.lost.to_string(),
            r.duplicated.to_string(),
            r.reordered.to_string(),
            r.altered.to_string(),
            r.failed.clone(),
            r.exit.clone(),
            seconds(r.next),
            seconds(r.caught_up),
        ];
        line(&r.name, &cells);
    }
    println!();
    for r in rows.iter().filter(|r| !r.notes.is_empty()) {
        println!("{}:", r.name);
        for note in &r.notes {
            println!("    {note}");
        }
    }
}

fn main() -> Result<(), Failure> {
    let mut words = Vec::new();
    let mut runs = 50;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--signals" => runs = args.next().ok_or("--signals takes a number")?.parse()?,
            "-h" | "--help" => {
                println!("cargo run --release --example fault_matrix -- [WORD...] [--signals N]");
                return Ok(());
            }
            _ => words.push(arg.to_lowercase()),
        }
    }
    let chosen = move |name: &str| {
        let name = name.to_lowercase();
        words.is_empty() || words.iter().any(|w| name.contains(w.as_str()))
    };
    println!("load at start: {}", uptime());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut harness = Harness {
        sim: build_sim(&root)?,
        root,
        scratch: tempfile::tempdir()?,
        tansu: find_tansu(),
        coming: BTreeMap::new(),
        oracles: BTreeMap::new(),
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    faults::mock_rows(&mut harness, &chosen, &mut rows);
    faults::tansu_rows(&mut harness, &chosen, &mut rows);
    signals::signal_rows(&mut harness, runs, &chosen, &mut rows);
    analyze::analyze_rows(&mut harness, &chosen, &mut rows);
    print_table(&rows);
    println!(
        "\n{} rows in {:.0} s; load at end: {}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        uptime()
    );
    Ok(())
}
