//! One run of `sim` under a fault, or stopped by a signal, and what came of it: the topic judged
//! against the oracle, the account held to the topic and the exit status, and how soon
//! deliveries resumed after the fault healed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::faults::send_signal;
use super::{
    account_problems, id_of, judge, read_topic, Account, Fault, Held, Oracle, TopicWatch, Verdict,
};

/// How long reading the topic back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How far behind its schedule a live stream may be and still count as caught up: it starts its
/// clock a little before it prints its first line, where the trial starts counting, and Tansu's
/// high watermark trails each partition's last batch (a few messages at a live rate).
const LIVE_SLACK_MS: i64 = 1_000;

/// When a trial injects its fault.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Once the topic holds this many messages.
    Held(i64),
    /// Once `sim` prints a line that starts so (e.g. `backfilled `: the live stream began).
    Line(String),
}

/// How a trial goes: when the fault comes, how long it lasts, and how long the whole run may
/// take before it counts as hung.
#[derive(Debug, Clone)]
pub struct Plan {
    /// When the fault is injected.
    pub trigger: Trigger,
    /// From injecting to healing.
    pub hold: Duration,
    /// The bound on `sim`'s whole run.
    pub bound: Duration,
}

/// When the stream should have delivered what, to tell when it caught up after the fault.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// A backfill, as fast as it can: caught up at its last delivery (when the topic stops
    /// growing), since there is no schedule to be behind.
    Backfill,
    /// A live stream whose clock reads `now_ms` (the `--now` given) when `sim` starts, and runs
    /// in real time: caught up once the topic holds every event due a second ago.
    Live {
        /// `--now`, milliseconds since the epoch.
        now_ms: i64,
    },
    /// Not measured (the broker forgot what it held, so counts say nothing).
    Untracked,
}

/// What a trial saw.
#[derive(Debug)]
pub struct TrialReport {
    /// The fault's name.
    pub fault: String,
    /// `sim`'s exit status.
    pub status: ExitStatus,
    /// All `sim` printed on standard error.
    pub stderr: String,
    /// Its final account, if it printed one.
    pub account: Option<Account>,
    /// The topic against the whole oracle, without the copies in [`Self::replayed`].
    pub verdict: Verdict,
    /// Extra copies of events (by id, one entry each) that the broker appended again when
    /// librdkafka retried a batch it had appended already, after a fault where the broker cannot
    /// tell (see [`Fault::replays_retries`]). Taken out of the verdict's duplicates only when all
    /// of them are such: `sim` handed every event of the oracle to the producer exactly once (its
    /// account says so), each copy is byte for byte the event, in its first copy's partition,
    /// and that partition is one the fault stopped. Otherwise empty, and the verdict keeps them.
    pub replayed: Vec<String>,
    /// What the account, the exit status and the topic disagree on, and faults that failed.
    pub problems: Vec<String>,
    /// From the fault healed to the next delivery seen on the partitions it stopped.
    pub next_delivery: Option<Duration>,
    /// From the fault healed to the topic holding everything due (see [`Pace`]).
    pub caught_up: Option<Duration>,
}

impl TrialReport {
    /// Nothing lost, duplicated (but for [`Self::replayed`]), reordered or altered, and the
    /// account agrees with all.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.verdict.is_clean()
    }

    /// A summary for a failure message: the verdict, the problems, and `sim`'s standard error.
    pub fn explain(&self) -> String {
        format!(
            "{}: {}{} (exit {}; account {:?})\n{}\nsim's stderr:\n{}",
            self.fault,
            self.verdict,
            self.replayed_note(),
            self.status,
            self.account,
            self.problems.join("\n"),
            self.stderr
        )
    }

    /// ` (and N copies of retried batches the broker appended again)`, or nothing.
    pub fn replayed_note(&self) -> String {
        match self.replayed.len() {
            0 => String::new(),
            n => format!(" (and {n} copies of retried batches the broker appended again)"),
        }
    }
}

/// Standard error of a child, each line with when it came.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(Instant, String)>>>);

impl Lines {
    fn collect(child: &mut Child) -> (Self, JoinHandle<()>) {
        let lines = Lines::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = lines.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push((Instant::now(), line));
            }
        });
        (lines, thread)
    }

    /// When the first line starting with `prefix` came.
    fn seen(&self, prefix: &str) -> Option<Instant> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(at, _)| *at)
    }

    fn first_at(&self) -> Option<Instant> {
        self.0.lock().unwrap().first().map(|(at, _)| *at)
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap();
        let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        text.join("\n")
    }
}

/// `cmd` started with standard error piped and collected.
fn spawn(cmd: &mut Command) -> Result<(Child, Lines, JoinHandle<()>), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    let (lines, thread) = Lines::collect(&mut child);
    Ok((child, lines, thread))
}

/// Waits for `child` up to `bound`; kills it and fails if it runs longer.
fn finish(
    mut child: Child,
    lines: &Lines,
    thread: JoinHandle<()>,
    bound: Duration,
    started: Instant,
) -> Result<ExitStatus, String> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let _ = thread.join();
            return Ok(status);
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            let _ = thread.join();
            return Err(format!(
                "sim did not end within {bound:?}; killed.\nstderr:\n{}",
                lines.text()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `trigger`, within `bound` of `started`.
fn wait_for(
    trigger: &Trigger,
    watch: &TopicWatch,
    lines: &Lines,
    child: &mut Child,
    started: Instant,
    bound: Duration,
) -> Result<(), String> {
    loop {
        let fired = match trigger {
            Trigger::Held(n) => watch.total() >= *n,
            Trigger::Line(prefix) => lines.seen(prefix).is_some(),
        };
        if fired {
            return Ok(());
        }
        let ended = child.try_wait().map_err(|e| e.to_string())?;
        if ended.is_some() || started.elapsed() > bound {
            return Err(format!(
                "the fault's trigger {trigger:?} never came ({}; the topic held {}).\nstderr:\n{}",
                match ended {
                    Some(status) => format!("sim ended first with {status}"),
                    None => format!("not within {bound:?}"),
                },
                watch.total(),
                lines.text()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` (a `sim` command writing to `topic` on `brokers`, which must exist already) with
/// `fault` injected and healed as `plan` says, then reads the topic back and judges it against
/// the whole `oracle`: after a fault that heals, everything must be there, once, in order, and
/// nothing may fail.
pub fn run_trial(
    cmd: &mut Command,
    brokers: &str,
    topic: &str,
    oracle: &Oracle,
    pace: Pace,
    fault: &mut dyn Fault,
    plan: &Plan,
) -> Result<TrialReport, String> {
    let watch = TopicWatch::start(brokers, topic)?;
    let started = Instant::now();
    let (mut child, lines, thread) = spawn(cmd)?;
    let triggered = wait_for(
        &plan.trigger,
        &watch,
        &lines,
        &mut child,
        started,
        plan.bound,
    );
    if let Err(e) = triggered {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let mut problems = Vec::new();
    if let Err(e) = fault.inject() {
        problems.push(e);
    }
    std::thread::sleep(plan.hold);
    if let Err(e) = fault.heal() {
        problems.push(e);
    }
    let healed = Instant::now();
    let status = finish(child, &lines, thread, plan.bound, started)?;
    // The last deliveries reach the watch a look or two after sim ends.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = lines.text();
    let account = Account::parse(&stderr);
    let next_delivery = watch
        .first_growth_after(healed, fault.partitions().as_deref())
        .map(|at| at - healed);
    let clock_start = lines.first_at().unwrap_or(started);
    let caught_up = match pace {
        Pace::Backfill => watch.last_growth_after(healed),
        Pace::Live { now_ms } => watch.first_reaching_after(healed, |at| {
            let elapsed = at.saturating_duration_since(clock_start).as_millis() as i64;
            oracle.due_by(now_ms + elapsed - LIVE_SLACK_MS) as i64
        }),
        Pace::Untracked => None,
    }
    .map(|at| at.saturating_duration_since(healed));
    watch.stop();
    let delivered = account.map_or(oracle.len(), |a| a.delivered as usize);
    let held = read_topic(brokers, topic, delivered, READ_TIMEOUT)?;
    let mut verdict = judge(oracle, oracle.len(), &held);
    let replayed = match &account {
        Some(account) if fault.replays_retries() => replayed_retries(
            &mut verdict,
            &held,
            oracle,
            account,
            fault.partitions().as_deref(),
        ),
        _ => Vec::new(),
    };
    match &account {
        Some(account) => problems.extend(account_problems(
            account,
            status,
            held.len() - replayed.len(),
            true,
        )),
        None => problems.push(format!("no account line; exit {status}")),
    }
    Ok(TrialReport {
        fault: fault.name(),
        status,
        stderr,
        account,
        verdict,
        replayed,
        problems,
        next_delivery,
        caught_up,
    })
}

/// Takes the verdict's duplicates out of it, and returns them, when every one is a batch the
/// broker appended twice because librdkafka retried it (see [`TrialReport::replayed`]): `sim`
/// handed each event once (`produced` is the oracle's length; an event handed twice would make
/// it more), and every copy of a duplicated event is the event, byte for byte, in one partition
/// that the fault stopped (`stopped`; `None`: any). Otherwise leaves the verdict as it is and
/// returns nothing.
pub fn replayed_retries(
    verdict: &mut Verdict,
    held: &[Held],
    oracle: &Oracle,
    account: &Account,
    stopped: Option<&[i32]>,
) -> Vec<String> {
    if verdict.duplicated.is_empty() || account.produced != oracle.len() as u64 {
        return Vec::new();
    }
    let mut partition_of = std::collections::HashMap::new();
    for message in held {
        let Some(id) = id_of(&message.value) else {
            continue;
        };
        if !verdict.duplicated.contains(&id) {
            continue;
        }
        let Some(event) = oracle.position(&id).map(|p| &oracle.events()[p]) else {
            return Vec::new();
        };
        let intact =
            message.value == event.value && message.key.as_deref() == Some(event.key.as_str());
        let in_stopped = stopped.is_none_or(|p| p.contains(&message.partition));
        let first = *partition_of.entry(id).or_insert(message.partition);
        if !intact || !in_stopped || first != message.partition {
            return Vec::new();
        }
    }
    std::mem::take(&mut verdict.duplicated)
}

/// What a run stopped by a signal left.
#[derive(Debug)]
pub struct SignalReport {
    /// The signal sent (`INT`, `TERM`).
    pub signal: String,
    /// When, after starting `sim`.
    pub at: Duration,
    /// Whether `sim` had already ended when the signal was due (then none was sent).
    pub ended_first: bool,
    /// From starting `sim` to its end.
    pub ran: Duration,
    /// `sim`'s exit status.
    pub status: ExitStatus,
    /// All `sim` printed on standard error.
    pub stderr: String,
    /// Its final account, if it printed one.
    pub account: Option<Account>,
    /// The topic against the events the account says were produced.
    pub verdict: Verdict,
    /// What the account, the exit status and the topic disagree on.
    pub problems: Vec<String>,
}

impl SignalReport {
    /// The topic holds exactly what the account says was delivered, each event the oracle's,
    /// and the exit status follows the account.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.verdict.is_clean()
    }

    /// A summary for a failure message.
    pub fn explain(&self) -> String {
        format!(
            "SIG{} at {:?}: {} (exit {}; account {:?})\n{}\nsim's stderr:\n{}",
            self.signal,
            self.at,
            self.verdict,
            self.status,
            self.account,
            self.problems.join("\n"),
            self.stderr
        )
    }
}

/// Runs `cmd` and sends it `signal` `at` after starting it, then judges the topic against the
/// oracle's first `produced` events (what it had handed to the producer when it stopped). A
/// signal that comes before `sim` installs its handler ends it at once, by the signal, before
/// it produced anything: then the topic must be empty.
pub fn run_signalled(
    cmd: &mut Command,
    brokers: &str,
    topic: &str,
    oracle: &Oracle,
    signal: &str,
    at: Duration,
    bound: Duration,
) -> Result<SignalReport, String> {
    let started = Instant::now();
    let (mut child, lines, thread) = spawn(cmd)?;
    let mut ended_first = false;
    while started.elapsed() < at && !ended_first {
        std::thread::sleep(Duration::from_millis(5).min(at.saturating_sub(started.elapsed())));
        ended_first = child.try_wait().map_err(|e| e.to_string())?.is_some();
    }
    if !ended_first {
        send_signal(child.id(), signal)?;
    }
    let status = finish(child, &lines, thread, bound, started)?;
    let ran = started.elapsed();
    let stderr = lines.text();
    let account = Account::parse(&stderr);
    let delivered = account.map_or(0, |a| a.delivered as usize);
    let held = read_topic(brokers, topic, delivered, READ_TIMEOUT)?;
    let mut problems = Vec::new();
    let expected = match &account {
        Some(account) => {
            problems.extend(account_problems(account, status, held.len(), true));
            account.produced as usize
        }
        None if status.signal().is_some() => 0,
        None => {
            problems.push(format!("no account line; exit {status}"));
            0
        }
    };
    Ok(SignalReport {
        signal: signal.to_string(),
        at,
        ended_first,
        ran,
        status,
        stderr,
        account,
        verdict: judge(oracle, expected, &held),
        problems,
    })
}
