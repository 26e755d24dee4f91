//! The embedded broker keeps what it was given, and when a broker does delete history, `sim run`
//! and `sim analyze` say so with the right counts.
//!
//! librdkafka's mock cluster, left as shipped, keeps only the newest 5 MiB of each partition
//! (about 9,000 darooghe events): these tests write several times that.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The mock cluster's own limit a partition, which `sim` raises.
const OLD_CAP_BYTES: usize = 5 * 1024 * 1024;

/// First and end offset of each partition, read with the Python client.
fn watermarks(brokers: &str, topic: &str, partitions: i32) -> BTreeMap<i32, (i64, i64)> {
    require_python_client();
    let script = format!(
        "from confluent_kafka import Consumer, TopicPartition\n\
         c = Consumer({{'bootstrap.servers': '{brokers}', 'group.id': 'sim-watermarks'}})\n\
         for p in range({partitions}):\n\
         \x20   low, high = c.get_watermark_offsets(TopicPartition('{topic}', p), timeout=10)\n\
         \x20   print(p, low, high)\n\
         c.close()\n"
    );
    let output = run(
        Command::new("python3").args(["-c", &script]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "watermarks: {}", output.stderr);
    output
        .stdout_text()
        .lines()
        .map(|line| {
            let n: Vec<i64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            (n[0] as i32, (n[1], n[2]))
        })
        .collect()
}

/// Waits (bounded) until the topic's partitions hold `n` messages in all.
fn wait_for_end_offsets(brokers: &str, topic: &str, n: i64, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let total: i64 = watermarks(brokers, topic, 3)
            .values()
            .map(|(_, end)| end)
            .sum();
        if total >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the topic holds {total} messages after {timeout:?}, expected {n}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_first_readme_command_keeps_every_event_past_the_mock_clusters_old_cap() {
    // The README's first command with its default settings, at a higher rate to pass the old cap
    // (5 MiB a partition, about 27,000 events on three partitions) quickly.
    let sim = Background::start(
        sim()
            .args(["run", "scripts/darooghe.rhai", "--seed", "18"])
            .env("EVENT_RATE", "300000"),
    );
    let (address, topic) = sim.embedded_broker(Duration::from_secs(60));
    sim.wait_for_line("the end of the backfill", Duration::from_secs(300), |l| {
        l.starts_with("backfilled ")
    });
    // Only once the topic holds twice the old cap does a reader start from the beginning: with
    // the cap, offset 0 would be long gone by then.
    wait_for_end_offsets(&address, &topic, 60_000, Duration::from_secs(300));
    let reader = PythonReader::start(&address, &topic, 3);
    reader.wait_for_count(80_000, Duration::from_secs(300));

    sim.interrupt();
    let (status, stderr) = sim.wait(Duration::from_secs(120));
    assert_no_panic(&stderr);
    assert!(status.success(), "sim run exited with {status}:\n{stderr}");
    let account = final_account(&stderr);
    let read = reader.finish(Duration::from_secs(60));

    println!(
        "produced {}, delivered {}, read back from offset 0: {}",
        account.produced,
        account.delivered,
        read.len()
    );
    assert!(!stderr.contains("deleted"), "{stderr}");
    assert_eq!(account.failed, 0, "{stderr}");
    assert_eq!(account.produced, account.delivered, "{stderr}");
    // Every delivered event, read back from offset 0 of each partition, each once.
    assert_eq!(read.len() as u64, account.delivered, "{stderr}");
    assert_offsets_contiguous(&read);
    let mut bytes_by_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for m in &read {
        *bytes_by_partition.entry(m.partition).or_default() += m.value.len();
    }
    assert_eq!(bytes_by_partition.len(), 3);
    for (partition, bytes) in bytes_by_partition {
        assert!(
            bytes > OLD_CAP_BYTES,
            "partition {partition} holds {bytes} bytes, not past the old cap: the test proves nothing"
        );
    }
}

/// The number before `what` in `line`, e.g. `deleted 970 of` -> 970 for `"deleted "`.
fn number_after(line: &str, what: &str) -> Option<u64> {
    let rest = &line[line.find(what)? + what.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_capped_embedded_broker_is_reported_by_run_and_by_analyze_with_the_counts() {
    // 1 MB for three partitions: the default 20,000-event backfill (about 12 MB, 3 MB as lz4
    // batches) overflows it.
    // Then almost no live events (0.0001 a minute), so the topic holds still while it is checked.
    let run_sim = Background::start(sim().args([
        "run",
        "scripts/fraud_ring.rhai",
        "--seed",
        "11",
        "--set",
        "embedded_max_bytes=1000000",
        "--set",
        "rate=0.0001",
    ]));
    let (address, topic) = run_sim.embedded_broker(Duration::from_secs(60));
    run_sim.wait_for_line("the budget", Duration::from_secs(10), |l| {
        l.contains("keeps up to 325.5 KiB a partition, 976.6 KiB in all (embedded_max_bytes)")
    });
    // Told when it happens, during the backfill.
    run_sim.wait_for_line("the first deletion", Duration::from_secs(300), |l| {
        l.starts_with("warning: the broker deleted ")
    });
    run_sim.wait_for_line("the end of the backfill", Duration::from_secs(300), |l| {
        l.starts_with("backfilled ")
    });
    let offsets = watermarks(&address, &topic, 3);
    let deleted: i64 = offsets.values().map(|(first, _)| first).sum();
    let held: i64 = offsets.values().map(|(first, end)| end - first).sum();
    assert!(deleted > 0, "{offsets:?}");

    let analyze = run(
        sim()
            .args(["analyze", "--brokers", &address, "--topic", &topic])
            .args([
                "--from-beginning",
                "--until-idle",
                "--format",
                "json",
                "--no-view",
                "--native-rules-only",
                "--group",
                "history-check",
            ]),
        Duration::from_secs(300),
    );
    assert!(analyze.status.success(), "{}", analyze.stderr);
    let warning = analyze
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("no longer holds"))
        .unwrap_or_else(|| panic!("no history warning:\n{}", analyze.stderr));
    assert_eq!(
        number_after(warning, "no longer holds "),
        Some(deleted as u64),
        "{}",
        analyze.stderr
    );
    for (partition, (first, _)) in &offsets {
        if *first > 0 {
            let line = format!("partition {partition}: starts at offset {first} (its first {first} messages were deleted)");
            assert!(analyze.stderr.contains(&line), "{line}\n{}", analyze.stderr);
        }
    }
    let summary: serde_json::Value = serde_json::from_slice(&analyze.stdout).unwrap();
    assert_eq!(summary["events"].as_i64(), Some(held), "{}", analyze.stderr);

    run_sim.interrupt();
    let (status, stderr) = run_sim.wait(Duration::from_secs(120));
    assert!(status.success(), "{stderr}");
    let account = final_account(&stderr);
    // What the broker deleted plus what it holds is what was delivered; the last report's run
    // total is what the analyzer could not see.
    assert_eq!((deleted + held) as u64, account.delivered, "{stderr}");
    let last_report = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("warning: the broker deleted "))
        .unwrap();
    assert_eq!(
        number_after(last_report, "; "),
        Some(deleted as u64),
        "{last_report}"
    );
    assert!(
        stderr.contains("because the embedded broker keeps 325.5 KiB a partition"),
        "{stderr}"
    );
}
