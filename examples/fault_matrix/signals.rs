//! The rows of signals: `sim` stopped by SIGINT or SIGTERM at random moments, each run judged
//! against the oracle's first `produced` events.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};

use super::faults::exit_text;
use super::oracle::*;
use super::{Harness, Row, Stream, BACKFILL, BASELINES, BOUND};

/// Two rows of `runs` runs each, stopped by SIGINT or SIGTERM at a random moment.
pub(super) fn signal_rows(
    h: &mut Harness,
    runs: usize,
    chosen: &dyn Fn(&str) -> bool,
    rows: &mut Vec<Row>,
) {
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
