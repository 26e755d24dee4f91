//! A broker that goes away mid-stream: Tansu stopped with SIGSTOP (it keeps its connections and
//! answers nothing, as a hung broker does). librdkafka's queue fills to its bound (made tiny
//! here with `-X queue.buffering.max.messages=1000`) and `sim` waits for room rather than grow
//! or drop. A stop during the outage ends that wait within seconds, and every event made is in
//! the final account: delivered, or failed with a reason. No timing is asserted: the waits are
//! bounds against hangs.

mod common;

use std::time::Duration;

use common::*;

const TOPIC: &str = "outage.transactions";

/// `sim run` at 1,000 events/s into `tansu`, with librdkafka's queue bounded to 1,000 messages
/// and `extra` properties, in the background; returns once messages reach the topic.
fn stream_into(tansu: &Tansu, extra: &[&str]) -> (Background, PythonReader) {
    let sim = Background::start(
        sim()
            .args(["run", "scripts/darooghe.rhai", "--brokers", &tansu.address])
            .args(["--topic", TOPIC, "--seed", "17", "--set", "rate=60000"])
            .args(["--no-reload", "-X", "queue.buffering.max.messages=1000"])
            .args(extra)
            .env("EVENT_INIT_MODE", "skip")
            .env("PEAK_FACTOR", "1"),
    );
    sim.wait_for_line("the topic ready", Duration::from_secs(120), |l| {
        l.starts_with(&format!("topic {TOPIC}"))
    });
    let reader = PythonReader::start(&tansu.address, TOPIC, 3);
    reader.wait_for_count(500, Duration::from_secs(120));
    (sim, reader)
}

/// The `delivery failed for N events: REASON` lines of `stderr`.
fn failure_reasons(stderr: &str) -> Vec<(u64, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("delivery failed for ")?;
            let (count, reason) = rest.split_once(" events: ")?;
            Some((count.parse().ok()?, reason.to_string()))
        })
        .collect()
}

/// The account adds up, each failure has its reason, and everything reported delivered is in
/// the topic once the broker is back.
/// The `unaccounted N` of the account line (0 when absent): messages purged after they were
/// sent, which the broker may or may not have written.
fn unaccounted(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("account: "))
        .unwrap_or_else(|| panic!("no account:\n{stderr}"));
    line.split(", ")
        .find_map(|part| part.strip_prefix("unaccounted "))
        .map_or(0, |n| n.parse().unwrap())
}

fn assert_accounted(tansu: &Tansu, stderr: &str) -> (Account, Vec<(u64, String)>) {
    assert_no_panic(stderr);
    let unaccounted = unaccounted(stderr);
    // produced = delivered + failed + unaccounted, each line of the account read.
    let account = final_account(&stderr.replace(&format!(", unaccounted {unaccounted}"), ""));
    assert_eq!(
        account.produced,
        account.delivered + account.failed + unaccounted,
        "{stderr}"
    );
    let reasons = failure_reasons(stderr);
    let explained: u64 = reasons.iter().map(|(n, _)| n).sum();
    assert_eq!(
        explained, account.failed,
        "a failure without its reason:\n{stderr}"
    );
    let read = python_read(
        &tansu.address,
        TOPIC,
        3,
        account.delivered as usize,
        Duration::from_secs(120),
    );
    // The topic holds every delivered message, and of the unaccounted ones, some or none.
    assert!(
        (account.delivered..=account.delivered + unaccounted).contains(&(read.len() as u64)),
        "{} delivered, {unaccounted} unaccounted, {} read back:\n{stderr}",
        account.delivered,
        read.len()
    );
    (account, reasons)
}

#[test]
fn a_stop_during_an_outage_ends_the_wait_and_accounts_for_every_event() {
    require_python_client();
    let tansu = Tansu::start();
    let (sim, reader) = stream_into(&tansu, &[]);
    drop(reader);
    tansu.signal("STOP");
    // The queue fills in about a second; then sending waits for room.
    std::thread::sleep(Duration::from_secs(4));
    sim.interrupt();
    // Without the stop ending the wait, it lasts librdkafka's message.timeout.ms (300 s).
    let (status, stderr) = sim.wait(Duration::from_secs(90));
    tansu.signal("CONT");
    assert!(
        !status.success(),
        "events failed, yet sim exited 0:\n{stderr}"
    );
    let (account, reasons) = assert_accounted(&tansu, &stderr);
    assert!(account.failed > 0, "{stderr}");
    // What was queued is purged into failures, rather than waited for.
    assert!(
        reasons.iter().any(|(_, r)| r.contains("Purged")),
        "{stderr}"
    );
}

#[test]
fn events_that_time_out_in_an_outage_are_counted_failed_and_the_stream_goes_on() {
    require_python_client();
    let tansu = Tansu::start();
    // Without idempotence: after a timeout the idempotent producer bumps its epoch, and Tansu
    // 0.6 answers every later message with ProducerFenced (seen here), which is Tansu's, not
    // what this test is about.
    let (sim, reader) = stream_into(
        &tansu,
        &[
            "-X",
            "message.timeout.ms=2000",
            "-X",
            "enable.idempotence=false",
        ],
    );
    let before = reader.count();
    tansu.signal("STOP");
    // Longer than message.timeout.ms: the queued messages time out.
    std::thread::sleep(Duration::from_secs(8));
    tansu.signal("CONT");
    // The stream goes on once the broker is back.
    reader.wait_for_count(before + 5000, Duration::from_secs(180));
    sim.interrupt();
    let (_, stderr) = sim.wait(Duration::from_secs(90));
    drop(reader);
    let (account, reasons) = assert_accounted(&tansu, &stderr);
    let timed_out: u64 = reasons
        .iter()
        .filter(|(_, r)| r.contains("Message timed out"))
        .map(|(n, _)| n)
        .sum();
    assert!(timed_out > 0, "no message timed out:\n{stderr}");
    assert!(account.delivered > before as u64, "{stderr}");
}
