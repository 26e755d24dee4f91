//! End to end into a real broker over TCP: Tansu, a Kafka-compatible broker, started per test on
//! a free port with in-memory storage. Unlike the embedded broker it outlives `sim`, so what was
//! delivered can be read back after `sim` has exited and counted exactly.

mod common;

use std::time::Duration;

use common::*;

const TOPIC: &str = "darooghe.transactions";

/// Reads everything `account` says was delivered, and checks it is all there, once, keyed by
/// customer and stamped as the event says.
fn read_back_all(tansu: &Tansu, delivered: u64) -> Vec<Message> {
    let read = python_read(
        &tansu.address,
        TOPIC,
        3,
        delivered as usize,
        Duration::from_secs(180),
    );
    assert_eq!(
        read.len() as u64,
        delivered,
        "read {} messages back from Tansu, but sim reported {delivered} delivered",
        read.len()
    );
    assert_offsets_contiguous(&read);
    assert_keyed_by_customer(&read);
    for m in &read {
        assert_eq!(
            m.timestamp,
            event_millis(&m.json()),
            "message {}:{}: Kafka timestamp differs from the event's",
            m.partition,
            m.offset
        );
        assert!(
            m.headers
                .iter()
                .any(|(k, v)| k == "scenario" && v == "darooghe"),
            "message {}:{} lacks scenario=darooghe: {:?}",
            m.partition,
            m.offset,
            m.headers
        );
    }
    read
}

/// Checks that `sim` exited 0 without a panic and delivered everything it produced; returns the
/// final account.
fn clean_account(status: std::process::ExitStatus, stderr: &str, tansu: &Tansu) -> Account {
    assert_no_panic(stderr);
    assert!(
        status.success(),
        "sim exited with {status}:\n{stderr}\nTansu's log:\n{}",
        tansu.log()
    );
    let account = final_account(stderr);
    assert_eq!(account.failed, 0, "{stderr}");
    assert_eq!(account.produced, account.delivered, "{stderr}");
    account
}

#[test]
fn a_run_into_tansu_delivers_everything_keyed_by_customer() {
    require_python_client();
    let tansu = Tansu::start();
    let out = run(
        sim()
            .args(["run", "scripts/darooghe.rhai", "--brokers", &tansu.address])
            .args(["--seed", "5", "--set", "backfill=2000", "--duration", "3"]),
        Duration::from_secs(300),
    );
    let account = clean_account(out.status, &out.stderr, &tansu);
    let backfilled = backfilled_events(&out.stderr).expect("a backfill notice");
    assert!(backfilled >= 2000, "{}", out.stderr);
    assert!(
        account.delivered > backfilled,
        "nothing streamed live after the backfill:\n{}",
        out.stderr
    );
    let read = read_back_all(&tansu, account.delivered);
    let partitions: std::collections::BTreeSet<i32> = read.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), 3, "messages in partitions {partitions:?}");
}

#[test]
fn a_backfill_into_tansu_is_read_back_whole() {
    require_python_client();
    let tansu = Tansu::start();
    let out = run(
        sim()
            .args([
                "backfill",
                "scripts/darooghe.rhai",
                "--brokers",
                &tansu.address,
            ])
            .args(["--count", "5000", "--seed", "9"]),
        Duration::from_secs(300),
    );
    let account = clean_account(out.status, &out.stderr, &tansu);
    assert!(account.delivered >= 5000, "{}", out.stderr);
    read_back_all(&tansu, account.delivered);
}

#[test]
fn sigint_mid_run_into_tansu_loses_nothing_accepted() {
    require_python_client();
    let tansu = Tansu::start();
    let sim = Background::start(
        sim()
            .args(["run", "scripts/darooghe.rhai", "--brokers", &tansu.address])
            .args(["--seed", "13", "--set", "rate=600000"])
            .env("EVENT_INIT_MODE", "skip"),
    );
    sim.wait_for_line("the topic ready", Duration::from_secs(120), |l| {
        l.starts_with(&format!("topic {TOPIC}"))
    });
    // Mid-run: stop once messages are flowing into the broker.
    let watcher = PythonReader::start(&tansu.address, TOPIC, 3);
    watcher.wait_for_count(2000, Duration::from_secs(120));
    sim.interrupt();
    let (status, stderr) = sim.wait(Duration::from_secs(120));
    drop(watcher);
    let account = clean_account(status, &stderr, &tansu);
    assert!(account.delivered >= 2000, "{stderr}");
    read_back_all(&tansu, account.delivered);
}
