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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rdkafka::types::RDKafkaRespErr;

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/oracle/mod.rs"]
mod oracle;

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

/// A fault's row from its trial.
fn row_of(name: String, report: Result<TrialReport, String>) -> Row {
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            let first: Vec<&str> = e.lines().take(15).collect();
            return Row::unmeasured(name, vec![first.join("\n    ")]);
        }
    };
    let v = &report.verdict;
    let mut notes = report.problems.clone();
    if !v.is_clean() {
        notes.push(v.to_string());
    }
    // What sim itself said went wrong.
    notes.extend(
        report
            .stderr
            .lines()
            .filter(|l| {
                ["delivery failed", "warning", "error", "Error", "  x "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_string),
    );
    Row {
        name,
        events: v.expected.to_string(),
        held: v.held.to_string(),
        lost: v.lost.len(),
        duplicated: v.duplicated.len(),
        reordered: v.reordered.len(),
        altered: v.altered.len(),
        failed: report.account.map_or("-".into(), |a| a.failed.to_string()),
        exit: exit_text(report.status),
        next: report.next_delivery,
        caught_up: report.caught_up,
        notes,
    }
}

fn exit_text(status: ExitStatus) -> String {
    status.code().map_or("signal".into(), |c| c.to_string())
}

fn errors(label: &str, error: RDKafkaRespErr, times: usize) -> MockFault {
    MockFault::ProduceErrors {
        label: label.into(),
        errors: vec![error; times],
    }
}

/// The mock cluster's faults, each mid-backfill and mid-stream.
fn mock_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
    use RDKafkaRespErr::*;
    let five = Duration::from_secs(5);
    let faults: Vec<(MockFault, Duration)> = vec![
        (MockFault::BrokerDown(1), five),
        (
            MockFault::LeaderMoved {
                partition: 0,
                to: 2,
            },
            Duration::ZERO,
        ),
        (
            errors(
                "request timed out x5",
                RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                5,
            ),
            Duration::ZERO,
        ),
        (
            errors(
                "not leader for partition x5",
                RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                5,
            ),
            Duration::ZERO,
        ),
        (
            errors(
                "throttling quota exceeded x5",
                RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
                5,
            ),
            Duration::ZERO,
        ),
        (
            errors("connection dropped x3", RD_KAFKA_RESP_ERR__TRANSPORT, 3),
            Duration::ZERO,
        ),
        (
            MockFault::SlowRoundTrip {
                broker: 1,
                delay: Duration::from_secs(1),
            },
            five,
        ),
    ];
    let mock = match MockFaults::start() {
        Ok(mock) => mock,
        Err(e) => return println!("no mock cluster: {e}"),
    };
    for stream in [BACKFILL, Stream::Live { seconds: 20 }] {
        for (n, (fault, hold)) in faults.iter().enumerate() {
            let topic = format!("{}-{n}", stream.label());
            let mut fault = mock.fault(&topic, fault.clone());
            let name = format!("{}, mid-{}", fault.name(), stream.label());
            if !chosen(&name) {
                continue;
            }
            println!("{name} ...");
            h.prepare_oracle(stream, &[], "skip");
            let report = mock.create_topic(&topic, 3).and_then(|()| {
                h.oracle(stream, "skip")?;
                let oracle = &h.oracles[&(stream, "skip")];
                let brokers = ["--brokers", mock.address(), "--topic", &topic];
                run_trial(
                    &mut h.sim(stream, &brokers, "skip"),
                    mock.address(),
                    &topic,
                    oracle,
                    stream.pace(),
                    &mut fault,
                    &Plan {
                        trigger: Trigger::Held(TRIGGER),
                        hold: *hold,
                        bound: BOUND,
                    },
                )
            });
            rows.push(row_of(name, report));
        }
    }
}

/// Tansu paused, killed and restarted.
fn tansu_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
    let Some(binary) = h.tansu.clone() else {
        return println!("tansu not found on PATH or in ~/.cargo/bin: no Tansu rows");
    };
    // (stream, seconds paused or None for a kill, what)
    let cases = [
        (Stream::Live { seconds: 30 }, Some(15), "SIGSTOP 15 s"),
        (Stream::Live { seconds: 75 }, Some(60), "SIGSTOP 60 s"),
        (BACKFILL, Some(15), "SIGSTOP 15 s"),
        (BACKFILL, Some(60), "SIGSTOP 60 s"),
        (Stream::Live { seconds: 25 }, None, "killed, restarted"),
        (
            Stream::Live { seconds: 25 },
            None,
            "killed, restarted, topic made again",
        ),
    ];
    let chosen_cases: Vec<_> = cases
        .into_iter()
        .map(|(stream, pause, what)| {
            (
                stream,
                pause,
                format!("tansu: {what}, mid-{}", stream.label()),
            )
        })
        .filter(|(_, _, name)| chosen(name))
        .collect();
    // Live oracles take their duration: all of them start now, beside the first trials.
    for (stream, _, _) in &chosen_cases {
        h.prepare_oracle(*stream, &[], "skip");
    }
    for (stream, pause, name) in chosen_cases {
        println!("{name} ...");
        let dir = h.scratch.path().join(format!("tansu-{}", rows.len()));
        let report = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| TansuProcess::start(&binary, &dir))
            .and_then(|mut tansu| {
                let topic = "darooghe.transactions";
                tansu.create_topic(topic)?;
                let address = tansu.address().to_string();
                h.oracle(stream, "skip")?;
                let oracle = &h.oracles[&(stream, "skip")];
                let (fault, hold, pace) = match pause {
                    Some(seconds) => (TansuFault::Paused, seconds, stream.pace()),
                    None => {
                        let recreate = name.contains("made again").then(|| topic.to_string());
                        (TansuFault::Restarted { recreate }, 2, Pace::Untracked)
                    }
                };
                let report = run_trial(
                    &mut h.sim(stream, &["--brokers", address.as_str()], "skip"),
                    &address,
                    topic,
                    oracle,
                    pace,
                    &mut tansu.fault(fault),
                    &Plan {
                        trigger: Trigger::Held(TRIGGER),
                        hold: Duration::from_secs(hold),
                        bound: BOUND,
                    },
                );
                report.map_err(|e| format!("{e}\ntansu's log:\n{}", tansu.log()))
            });
        rows.push(row_of(name, report));
    }
}

/// Two rows of `runs` runs each, stopped by SIGINT or SIGTERM at a random moment.
fn signal_rows(h: &mut Harness, runs: usize, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let name = format!("signals x{runs}: sim backfill (mock)");
    if chosen(&name) {
        println!("{name}, moments drawn from seed {seed} ...");
        let row = match MockFaults::start() {
            Ok(mock) => {
                let target = |n: usize| {
                    let topic = format!("signal-{n}");
                    mock.create_topic(&topic, 3)
                        .map(|()| (mock.address().to_string(), topic))
                };
                let plan = Signalled {
                    stream: BACKFILL,
                    init_mode: "skip",
                    extra: &[],
                    runs,
                };
                signalled(h, &plan, &mut rng, target, name)
            }
            Err(e) => Row::unmeasured(name, vec![e]),
        };
        rows.push(row);
    }
    let name = format!("signals x{runs}: sim run, flush: backfill then live (tansu)");
    if chosen(&name) {
        println!("{name}, moments drawn from seed {seed} ...");
        let Some(binary) = h.tansu.clone() else {
            return println!("tansu not found: no signalled sim run");
        };
        let dir = h.scratch.path().join("tansu-signals");
        let row = match std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| TansuProcess::start(&binary, &dir))
        {
            Ok(tansu) => {
                // Each run recreates a topic of its own (flush), so none sees another's events.
                let target = |n: usize| Ok((tansu.address().to_string(), format!("signal-{n}")));
                let plan = Signalled {
                    stream: Stream::Live { seconds: 6 },
                    init_mode: "flush",
                    extra: &["--set", "backfill=3000"],
                    runs,
                };
                signalled(h, &plan, &mut rng, target, name)
            }
            Err(e) => Row::unmeasured(name, vec![e]),
        };
        rows.push(row);
    }
}

/// A row of signalled runs.
struct Signalled {
    stream: Stream,
    init_mode: &'static str,
    /// Arguments beside the broker's, in the oracle's command as in every run.
    extra: &'static [&'static str],
    runs: usize,
}

/// Tallies of a row of signalled runs.
#[derive(Default)]
struct Tally {
    clean: usize,
    events: usize,
    held: usize,
    failed: u64,
    exits: BTreeMap<String, usize>,
    /// Runs that ended before their signal was due (then none was sent).
    ended_first: usize,
}

/// `plan.runs` signalled runs, after three unsignalled runs (each judged too) whose shortest
/// length is the span the moments are drawn from, uniformly: the first run of a row is slower
/// (cold caches), and a span taken from it alone put a third of the signals after the run's end.
/// `target(n)` gives run n's brokers and topic.
fn signalled(
    h: &mut Harness,
    plan: &Signalled,
    rng: &mut rand::rngs::StdRng,
    target: impl Fn(usize) -> Result<(String, String), String>,
    name: String,
) -> Row {
    let mut row = Row::unmeasured(name, Vec::new());
    h.prepare_oracle(plan.stream, plan.extra, plan.init_mode);
    let oracle = match h.oracle(plan.stream, plan.init_mode) {
        Ok(oracle) => oracle.clone(),
        Err(e) => {
            row.notes.push(format!("oracle: {e}"));
            return row;
        }
    };
    let mut tally = Tally::default();
    let mut span = BOUND;
    for n in 0..BASELINES + plan.runs {
        let (brokers, topic) = match target(n) {
            Ok(target) => target,
            Err(e) => {
                row.notes.push(e);
                break;
            }
        };
        let mut args = vec!["--brokers", brokers.as_str(), "--topic", topic.as_str()];
        args.extend(plan.extra);
        let mut cmd = h.sim(plan.stream, &args, plan.init_mode);
        // The baselines: a signal due after their end is never sent.
        let (signal, at) = if n < BASELINES {
            ("INT", BOUND)
        } else {
            let signal = if rng.random_bool(0.5) { "INT" } else { "TERM" };
            (signal, span.mul_f64(rng.random_range(0.0..1.0)))
        };
        let report = match run_signalled(&mut cmd, &brokers, &topic, &oracle, signal, at, BOUND) {
            Ok(report) => report,
            Err(e) => {
                row.notes.push(format!("run {n}: {e}"));
                continue;
            }
        };
        if n < BASELINES {
            span = span.min(report.ran);
            if !report.is_clean() || report.verdict.expected != oracle.len() {
                row.notes
                    .push(format!("unsignalled run {n}: {}", report.explain()));
            }
            continue;
        }
        let n = n + 1 - BASELINES;
        tally.ended_first += usize::from(report.ended_first);
        let v = &report.verdict;
        println!(
            "  {n:>3}: SIG{signal} at {:>6.3} s{}: {v} exit {}",
            at.as_secs_f64(),
            if report.ended_first {
                " (ended first)"
            } else {
                ""
            },
            exit_text(report.status)
        );
        row.lost += v.lost.len();
        row.duplicated += v.duplicated.len();
        row.reordered += v.reordered.len();
        row.altered += v.altered.len();
        tally.events += v.expected;
        tally.held += v.held;
        tally.failed += report.account.map_or(0, |a| a.failed);
        *tally.exits.entry(exit_text(report.status)).or_default() += 1;
        if report.is_clean() {
            tally.clean += 1;
        } else {
            let explained = report.explain();
            let first: Vec<&str> = explained.lines().take(6).collect();
            row.notes.push(format!("run {n}: {}", first.join(" | ")));
        }
    }
    row.events = tally.events.to_string();
    row.held = tally.held.to_string();
    row.failed = tally.failed.to_string();
    let exits: Vec<String> = tally
        .exits
        .iter()
        .map(|(c, n)| format!("{c}:{n}"))
        .collect();
    row.exit = exits.join(" ");
    row.notes.insert(
        0,
        format!(
            "{} of {} runs clean; moments drawn from 0 to {:.2} s (the shortest of {BASELINES} \
             unsignalled runs); {} runs ended before their signal; events and held are summed",
            tally.clean,
            plan.runs,
            span.as_secs_f64(),
            tally.ended_first
        ),
    );
    row
}

/// Three `sim analyze --until-idle` members of one group on a one-partition topic: when each
/// ended.
fn analyze_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
    let name = "analyze: 3 members, --until-idle, 1 partition".to_string();
    if !chosen(&name) {
        return;
    }
    println!("{name} ...");
    let notes = members_ending(h).unwrap_or_else(|e| vec![e]);
    rows.push(Row::unmeasured(name, notes));
}

fn members_ending(h: &Harness) -> Result<Vec<String>, String> {
    let mock = MockFaults::start()?;
    mock.create_topic("lonely", 1)?;
    let brokers = ["--brokers", mock.address(), "--topic", "lonely"];
    let fill = h
        .sim(Stream::Backfill { count: 500 }, &brokers, "skip")
        .output();
    let fill = fill.map_err(|e| e.to_string())?;
    if !fill.status.success() {
        return Err(String::from_utf8_lossy(&fill.stderr).into_owned());
    }
    let started = Instant::now();
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut cmd = h.command();
        cmd.args([
            "analyze",
            "--group",
            "crowd",
            "--from-beginning",
            "--until-idle",
        ])
        .args(brokers)
        .args(["--no-view", "--native-rules-only", "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        members.push(cmd.spawn().map_err(|e| e.to_string())?);
    }
    let mut ended = vec![None; members.len()];
    while ended.iter().any(Option::is_none) && started.elapsed() < ANALYZE_BOUND {
        for (member, end) in members.iter_mut().zip(&mut ended) {
            if let (None, Ok(Some(status))) = (&end, member.try_wait()) {
                *end = Some((started.elapsed(), status));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for member in &mut members {
        let _ = member.kill();
        let _ = member.wait();
    }
    Ok(ended
        .iter()
        .enumerate()
        .map(|(n, end)| match end {
            Some((at, status)) => {
                format!(
                    "member {n} ended after {:.1} s ({status})",
                    at.as_secs_f64()
                )
            }
            None => format!("member {n} still running after {ANALYZE_BOUND:?}; killed"),
        })
        .collect())
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
    mock_rows(&mut harness, &chosen, &mut rows);
    tansu_rows(&mut harness, &chosen, &mut rows);
    signal_rows(&mut harness, runs, &chosen, &mut rows);
    analyze_rows(&mut harness, &chosen, &mut rows);
    print_table(&rows);
    println!(
        "\n{} rows in {:.0} s; load at end: {}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        uptime()
    );
    Ok(())
}
