//! End to end through the embedded broker (librdkafka's mock cluster inside `sim run`), read by
//! outside clients while it runs: the Python client and kcat.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

#[test]
fn embedded_run_is_read_by_kcat_and_python_with_keys_timestamps_and_headers() {
    require_python_client();
    require_kcat();
    let sim = Background::start(sim().args([
        "run",
        "scripts/darooghe.rhai",
        "--seed",
        "3",
        "--set",
        "backfill=3000",
        "--set",
        "rate=30000",
    ]));
    let (address, topic) = sim.embedded_broker(Duration::from_secs(60));
    assert_eq!(topic, "darooghe.transactions");
    let reader = PythonReader::start(&address, &topic, 3);

    let done = sim.wait_for_line("the end of the backfill", Duration::from_secs(120), |l| {
        l.starts_with("backfilled ")
    });
    let backfilled = backfilled_events(&done).unwrap() as usize;
    assert!(backfilled >= 3000, "backfilled only {backfilled}: {done}");
    // The live stream follows: wait until some of it has been read as well.
    reader.wait_for_count(backfilled + 200, Duration::from_secs(120));

    let from_kcat = kcat_read(&address, &topic, Duration::from_secs(60));
    assert!(
        from_kcat.len() >= backfilled,
        "kcat read {} messages, fewer than the {backfilled} backfilled",
        from_kcat.len()
    );

    sim.interrupt();
    let (status, stderr) = sim.wait(Duration::from_secs(90));
    assert_no_panic(&stderr);
    assert!(status.success(), "sim run exited with {status}:\n{stderr}");
    let account = final_account(&stderr);
    assert_eq!(account.failed, 0, "{stderr}");
    assert_eq!(account.produced, account.delivered, "{stderr}");
    let from_python = reader.finish(Duration::from_secs(60));

    // The Python client saw every message once, each keyed and stamped as the event says.
    assert_offsets_contiguous(&from_python);
    assert_keyed_by_customer(&from_python);
    assert_keyed_by_customer(&from_kcat);
    for m in &from_python {
        let event = m.json();
        assert_eq!(
            m.timestamp,
            event_millis(&event),
            "Kafka timestamp of {}:{} differs from the event's {}",
            m.partition,
            m.offset,
            event["timestamp"]
        );
        assert_eq!(m.timestamp_type, 1, "expected CreateTime timestamps");
        assert!(
            m.headers
                .iter()
                .any(|(k, v)| k == "scenario" && v == "darooghe"),
            "message {}:{} lacks the header scenario=darooghe: {:?}",
            m.partition,
            m.offset,
            m.headers
        );
        // No edit during the run: every message was made by the first revision.
        assert!(
            m.headers
                .iter()
                .any(|(k, v)| k == "scenario_revision" && v == "1"),
            "message {}:{} lacks the header scenario_revision=1: {:?}",
            m.partition,
            m.offset,
            m.headers
        );
    }

    // kcat and the Python client agree on every message kcat read.
    let by_position: BTreeMap<(i32, i64), &Message> = from_python
        .iter()
        .map(|m| ((m.partition, m.offset), m))
        .collect();
    for m in &from_kcat {
        let other = by_position
            .get(&(m.partition, m.offset))
            .unwrap_or_else(|| {
                panic!(
                    "kcat read {}:{} which Python did not",
                    m.partition, m.offset
                )
            });
        assert_eq!(m.key, other.key);
        assert_eq!(m.value, other.value);
        assert_eq!(m.timestamp, other.timestamp);
        assert!(m.headers.contains(&("scenario".into(), "darooghe".into())));
    }

    // Within each partition time runs forward: the backfill first, then the live stream.
    let mut by_partition: BTreeMap<i32, Vec<&Message>> = BTreeMap::new();
    for m in &from_python {
        by_partition.entry(m.partition).or_default().push(m);
    }
    assert_eq!(
        by_partition.len(),
        3,
        "expected messages in all 3 partitions"
    );
    for (partition, mut messages) in by_partition {
        messages.sort_by_key(|m| m.offset);
        for pair in messages.windows(2) {
            assert!(
                pair[0].timestamp <= pair[1].timestamp,
                "partition {partition}: offset {} is stamped after offset {}",
                pair[0].offset,
                pair[1].offset
            );
        }
    }

    // The backfill: the `backfilled` earliest messages lie in the 7 days before the start of the
    // live stream (the `to` of the backfill notice, printed to the second), the rest after it.
    let start_ms = live_start_millis(&done);
    let mut stamps: Vec<i64> = from_python.iter().map(|m| m.timestamp).collect();
    stamps.sort_unstable();
    let (history, live) = stamps.split_at(backfilled);
    assert!(
        history
            .iter()
            .all(|&t| t >= start_ms - 7 * DAY_MS && t < start_ms + 1_000),
        "backfilled timestamps outside the 7 days before {start_ms}: first {:?}, last {:?}",
        history.first(),
        history.last()
    );
    assert!(
        history.first().unwrap() - (start_ms - 7 * DAY_MS) < DAY_MS,
        "the backfill does not reach back towards 7 days"
    );
    assert!(
        live.iter().all(|&t| t >= start_ms),
        "a live message is stamped before the stream started"
    );
    assert!(!live.is_empty());

    // Nothing accepted is lost: every delivered message was read back. The embedded broker goes
    // away with the process, after a grace (broker::DRAIN_GRACE) in which the reader, an
    // ordinary consumer with librdkafka's default fetch wait, takes the last messages.
    assert_eq!(
        from_python.len() as u64,
        account.delivered,
        "read {} messages back, but sim reported {} delivered",
        from_python.len(),
        account.delivered
    );
}

/// The `to` of `backfilled N events from FROM to TO; ...`, in milliseconds.
fn live_start_millis(line: &str) -> i64 {
    let to = line
        .split(" to ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no `to` in {line:?}"));
    chrono::DateTime::parse_from_rfc3339(to.trim())
        .unwrap_or_else(|e| panic!("`{to}` in {line:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

#[test]
fn sigint_mid_run_at_a_high_rate_loses_nothing_accepted() {
    require_python_client();
    // No backfill: straight into a live stream at 10,000 events per second (more than a debug
    // build makes, so the generator runs flat out and the producer has messages in flight).
    let sim = Background::start(
        sim()
            .args(["run", "scripts/darooghe.rhai", "--seed", "11"])
            .args(["--set", "rate=600000"])
            .env("EVENT_INIT_MODE", "skip"),
    );
    let (address, topic) = sim.embedded_broker(Duration::from_secs(60));
    let reader = PythonReader::start(&address, &topic, 3);
    reader.wait_for_count(3000, Duration::from_secs(120));

    sim.interrupt();
    let (status, stderr) = sim.wait(Duration::from_secs(90));
    assert_no_panic(&stderr);
    assert!(status.success(), "sim run exited with {status}:\n{stderr}");
    assert!(
        backfilled_events(&stderr).is_none(),
        "EVENT_INIT_MODE=skip still backfilled:\n{stderr}"
    );
    let account = final_account(&stderr);
    assert_eq!(account.failed, 0, "{stderr}");
    assert_eq!(account.produced, account.delivered, "{stderr}");

    let read = reader.finish(Duration::from_secs(60));
    assert_offsets_contiguous(&read);
    assert_keyed_by_customer(&read);
    assert_eq!(
        read.len() as u64,
        account.delivered,
        "the topic holds {} messages, but sim reported {} delivered",
        read.len(),
        account.delivered
    );
}
