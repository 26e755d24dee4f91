//! `sim analyze` end to end on librdkafka's mock cluster (in this process, real wire protocol):
//! a seeded backfill is analyzed and the figures compared with an independent count of the topic;
//! several members of one group; an analyzer killed mid-stream and restarted (at least once);
//! exactly-once transactions, and an exactly-once analyzer killed and restarted; poison messages.

mod analyze_support;
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use analyze_support::*;
use common::*;

#[test]
fn the_summary_equals_an_independent_count_and_poison_is_reported_and_skipped() {
    let mock = Mock::start();
    let delivered = backfill(&mock.address, "scripts/darooghe.rhai", 4000, 7);
    // Poison between the transactions of partition 1: not JSON, and JSON lacking fields.
    produce_raw(
        &mock.address,
        1,
        &[b"not json at all", br#"{"transaction_id":"t-1"}"#],
    );
    backfill(&mock.address, "scripts/darooghe.rhai", 1000, 8);
    let input = read_topic(&mock.address, TOPIC, false, Duration::ZERO);
    let truth = count(&input);
    assert!(truth.transactions >= delivered + 1000);

    let summary = summary_of(analyze_cmd(&mock.address, "summary-test").args([
        "--until-idle",
        "--output-topics",
        "--dead-letter-topic",
        "darooghe.dead_letters",
    ]));
    assert_eq!(
        summary_totals(&summary),
        truth,
        "the summary differs from the topic's own count"
    );
    assert_eq!(summary["events"].as_u64(), Some(truth.transactions));
    // The time spent reading is within the run, which also waited for the group and, once
    // caught up, for the idle grace.
    let (reading, elapsed) = (
        summary["run"]["reading_s"].as_f64().unwrap(),
        summary["run"]["elapsed_s"].as_f64().unwrap(),
    );
    assert!(reading > 0.0 && reading < elapsed, "{}", summary["run"]);
    assert_eq!(
        published_totals(&mock.address, false),
        truth,
        "the published deltas do not add up to the topic's count"
    );

    // The poison is named by partition and offset, and forwarded with its reason.
    let poison_at: Vec<i64> = input
        .iter()
        .filter(|m| m.key.as_deref() == Some("cust_x"))
        .map(|m| m.offset)
        .collect();
    assert_eq!(summary["poison"]["count"], 2, "{}", summary["poison"]);
    let listed: Vec<(i64, i64, String)> = summary["poison"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["offset"].as_i64().unwrap(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
        vec![(1, poison_at[0]), (1, poison_at[1])]
    );
    assert!(listed[0].2.starts_with("not JSON"), "{listed:?}");
    assert!(listed[1].2.contains("missing field"), "{listed:?}");
    let dead = read_topic(
        &mock.address,
        "darooghe.dead_letters",
        false,
        Duration::ZERO,
    );
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].value, b"not json at all");
    assert_eq!(dead[0].headers["source_offset"], poison_at[0].to_string());
    assert!(dead[1].headers["dead_letter_reason"].contains("missing field"));

    // Every transaction is in exactly one tumbling window, or counted as dropped late.
    let windows = &summary["windows"];
    let in_windows: u64 = windows["tumbling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        in_windows + windows["late"]["dropped"].as_u64().unwrap(),
        truth.transactions
    );
    // darooghe injects fraud: the native rules fire, and the alerts are published.
    let alerts = summary["alerts"]["total"].as_u64().unwrap();
    assert!(alerts > 0, "{}", summary["alerts"]);
    let published = read_topic(&mock.address, "darooghe.alerts", false, Duration::ZERO);
    assert_eq!(published.len() as u64, alerts);
    for alert in &published {
        let a = alert.json();
        assert_eq!(alert.key.as_deref(), a["customer_id"].as_str());
        assert!(!a["events"].as_array().unwrap().is_empty());
    }
}

/// Per merchant, the sum of two summaries.
fn add(a: &analyze_support::Truth, b: &analyze_support::Truth) -> BTreeMap<String, u64> {
    let mut sum = a.merchant_counts.clone();
    for (k, v) in &b.merchant_counts {
        *sum.entry(k.clone()).or_default() += v;
    }
    sum
}

#[test]
fn two_analyzers_in_one_group_split_the_partitions_and_add_up_to_one() {
    let mock = Mock::start_with_join_delay(Duration::from_secs(10));
    backfill(&mock.address, "scripts/darooghe.rhai", 6000, 11);
    let truth = count(&read_topic(&mock.address, TOPIC, false, Duration::ZERO));
    let members: Vec<_> = (0..2)
        .map(|_| {
            let address = mock.address.clone();
            std::thread::spawn(move || {
                summary_of(analyze_cmd(&address, "pair").args(["--until-idle", "--output-topics"]))
            })
        })
        .collect();
    let summaries: Vec<_> = members.into_iter().map(|m| m.join().unwrap()).collect();
    let (a, b) = (summary_totals(&summaries[0]), summary_totals(&summaries[1]));
    assert!(
        a.transactions > 0 && b.transactions > 0,
        "one member did all the work ({} and {}): the partitions were not split",
        a.transactions,
        b.transactions
    );
    assert_eq!(add(&a, &b), truth.merchant_counts);
    assert_eq!(published_totals(&mock.address, false), truth);
}

#[test]
fn members_without_a_partition_stop_when_idle_too() {
    // One partition, held by a member that runs until stopped; two more join with --until-idle
    // and are given nothing (the sticky assignor leaves the partition where it is): they must
    // still stop once idle, not wait for a partition that never comes.
    let mock = Mock::start();
    let topic = "darooghe.one_partition";
    mock.cluster.create_topic(topic, 1, 1).unwrap();
    let out = run(
        sim()
            .args([
                "backfill",
                "scripts/darooghe.rhai",
                "--brokers",
                &mock.address,
            ])
            .args([
                "--topic", topic, "--count", "500", "--seed", "3", "--now", NOW,
            ]),
        Duration::from_secs(300),
    );
    assert!(
        final_account(&out.stderr).delivered >= 500,
        "{}",
        out.stderr
    );
    let member = |mock: &Mock| {
        let mut cmd = analyze_cmd(&mock.address, "crowd");
        cmd.args(["--topic", topic])
            .args(["-X", "partition.assignment.strategy=cooperative-sticky"])
            // Seen here: the newcomers' first (empty) assignment took the whole session
            // timeout on the mock cluster, 45 s by default; a short one keeps the test short.
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ]);
        cmd
    };
    let holder = Background::start(&mut member(&mock));
    holder.wait_for_line("the partition assigned", Duration::from_secs(120), |l| {
        l.contains("assigned partitions [0]")
    });
    let idle: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = member(&mock);
            cmd.arg("--until-idle");
            // A bound against the hang this test is about, not a timing assertion.
            std::thread::spawn(move || run(&mut cmd, Duration::from_secs(120)))
        })
        .collect();
    for member in idle {
        let out = member.join().unwrap();
        assert_no_panic(&out.stderr);
        assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["events"], 0, "{}", out.stderr);
    }
    holder.interrupt();
    let (status, stderr) = holder.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
}

/// Starts an analyzer, kills it (SIGKILL) once it has committed part of the topic, restarts it,
/// and returns what the outputs add up to, with the truth.
fn kill_and_restart() -> (analyze_support::Truth, analyze_support::Truth) {
    let mock = Mock::start();
    let total = backfill(&mock.address, "scripts/darooghe.rhai", 20_000, 21) as i64;
    let truth = count(&read_topic(&mock.address, TOPIC, false, Duration::ZERO));
    let group = "crash";
    let first = Background::start(analyze_cmd(&mock.address, group).args([
        "--output-topics",
        "--commit-every",
        "100",
    ]));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut done = 0;
    while done == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        done = committed(&mock.address, group);
    }
    let kill = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (_, stderr) = first.wait(Duration::from_secs(30));
    assert!(
        done > 0 && done < total,
        "the analyzer was not killed mid-stream ({done} of {total} committed):\n{stderr}"
    );
    let second =
        summary_of(analyze_cmd(&mock.address, group).args(["--until-idle", "--output-topics"]));
    // The restart resumed from the last commit, not from the beginning.
    assert!(second["events"].as_u64().unwrap() < truth.transactions);
    (published_totals(&mock.address, false), truth)
}

#[test]
fn an_analyzer_killed_mid_stream_loses_no_effect_at_least_once() {
    let (published, truth) = kill_and_restart();
    for (merchant, n) in &truth.merchant_counts {
        let got = published
            .merchant_counts
            .get(merchant)
            .copied()
            .unwrap_or(0);
        assert!(
            got >= *n,
            "merchant {merchant}: published {got}, but the topic has {n}"
        );
    }
    for (category, revenue) in &truth.category_revenue {
        assert!(
            published.category_revenue[category] >= *revenue,
            "category {category}"
        );
    }
}

/// librdkafka's mock cluster runs transactions (InitProducerId, AddOffsetsToTxn, EndTxn) but does
/// not store the offsets a transaction commits (its TxnOffsetCommit handler only answers), and
/// Tansu 0.6 does not support EndTxn at all. The restart is shown below, resuming from the
/// progress records; here, the transactional path itself: every batch published and committed in
/// a transaction, and read_committed outputs equal to the topic.
#[test]
fn exactly_once_publishes_in_transactions_that_add_up_to_the_topic() {
    let mock = Mock::start();
    backfill(&mock.address, "scripts/darooghe.rhai", 5000, 31);
    let truth = count(&read_topic(&mock.address, TOPIC, false, Duration::ZERO));
    let summary = summary_of(analyze_cmd(&mock.address, "eos").args([
        "--until-idle",
        "--output-topics",
        "--exactly-once",
        "--commit-every",
        "500",
    ]));
    assert_eq!(summary["run"]["exactly_once"], true);
    assert!(
        summary["run"]["commits"].as_u64().unwrap() >= 10,
        "{}",
        summary["run"]
    );
    assert_eq!(summary_totals(&summary), truth);
    assert_eq!(published_totals(&mock.address, true), truth);
}

/// The exactly-once restart. The mock cluster keeps no offsets from a transaction, so the
/// restarted member can only resume right by reading the committed progress records (without
/// them it starts again from the beginning and every merchant is counted twice). The first run
/// is killed with SIGKILL while paused between two transactions (`SIM_ANALYZE_PAUSE_AFTER_COMMITS`):
/// the mock never aborts a dead producer's open transaction, as a real broker does when the
/// restarted member registers the same `transactional.id`, so a kill inside one would leave
/// its messages visible to `read_committed` readers on the mock whatever the analyzer does.
#[test]
fn an_analyzer_killed_mid_stream_counts_nothing_twice_exactly_once() {
    let mock = Mock::start();
    backfill(&mock.address, "scripts/darooghe.rhai", 6000, 41);
    let input = read_topic(&mock.address, TOPIC, false, Duration::ZERO);
    let truth = count(&input);
    let group = "eos-crash";
    let args = [
        "--output-topics",
        "--exactly-once",
        "--commit-every",
        "200",
        "--instance",
        "a",
        // The restarted member waits for the killed one's session to end: keep that short.
        "-X",
        "session.timeout.ms=6000",
    ];
    let first = Background::start(
        analyze_cmd(&mock.address, group)
            .args(args)
            .env("SIM_ANALYZE_PAUSE_AFTER_COMMITS", "8"),
    );
    first.wait_for_line("the pause after 8 commits", Duration::from_secs(120), |l| {
        l.contains("paused after 8 commits")
    });
    let kill = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (_, stderr) = first.wait(Duration::from_secs(30));
    assert_no_panic(&stderr);
    let before = published_totals(&mock.address, true);
    assert!(
        before.transactions > 0 && before.transactions < truth.transactions,
        "the analyzer was not killed mid-stream ({} of {} published):\n{stderr}",
        before.transactions,
        truth.transactions
    );

    let second = summary_of(
        analyze_cmd(&mock.address, group)
            .args(args)
            .arg("--until-idle"),
    );
    // The restart resumed after the committed batches, not from the beginning.
    assert_eq!(
        second["events"].as_u64().unwrap() + before.transactions,
        truth.transactions,
        "the restart did not resume where the committed outputs end"
    );
    assert_eq!(
        published_totals(&mock.address, true),
        truth,
        "the published deltas of both runs do not add up to the topic's count"
    );

    // The committed batches tile every partition: each offset in exactly one batch.
    let mut ranges: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for record in read_topic(
        &mock.address,
        "darooghe.analyze_progress",
        true,
        Duration::from_millis(500),
    ) {
        let v = record.json();
        assert_eq!(v["group"], group);
        ranges
            .entry(v["source_partition"].as_i64().unwrap())
            .or_default()
            .push((
                v["from_offset"].as_i64().unwrap(),
                v["to_offset"].as_i64().unwrap(),
            ));
    }
    let mut ends: BTreeMap<i64, i64> = BTreeMap::new();
    for m in &input {
        let end = ends.entry(m.partition.into()).or_default();
        *end = (*end).max(m.offset + 1);
    }
    assert_eq!(
        ranges.keys().collect::<Vec<_>>(),
        ends.keys().collect::<Vec<_>>()
    );
    let batches_of = ranges.clone();
    for (partition, mut batches) in ranges {
        batches.sort();
        let mut next = 0;
        for (from, to) in &batches {
            assert_eq!(
                *from, next,
                "partition {partition}: batch {from}..={to} does not start where the previous \
                 ended ({next}): offsets covered twice or skipped"
            );
            next = to + 1;
        }
        assert_eq!(next, ends[&partition], "partition {partition} not covered");
    }
    // Every output record belongs to one of those batches, so no output covers offsets twice.
    for topic in ["darooghe.merchant_counts", "darooghe.category_revenue"] {
        for record in read_topic(&mock.address, topic, true, Duration::ZERO) {
            let v = record.json();
            let batch = (
                v["from_offset"].as_i64().unwrap(),
                v["to_offset"].as_i64().unwrap(),
            );
            assert!(
                batches_of[&v["source_partition"].as_i64().unwrap()].contains(&batch),
                "{topic}: {v} is not one committed batch"
            );
        }
    }
}

#[test]
fn bad_input_is_reported_with_its_place_and_no_panic() {
    let no_brokers = run(
        sim().args(["analyze", "--until-idle"]),
        Duration::from_secs(60),
    );
    assert!(!no_brokers.status.success());
    assert!(
        mentions(
            &no_brokers.stderr,
            "pass --brokers HOST:PORT or set KAFKA_BROKER"
        ),
        "{}",
        no_brokers.stderr
    );

    let mock = Mock::start();
    let no_topic = run(
        analyze_cmd(&mock.address, "g").args(["--topic", "nowhere", "--until-idle"]),
        Duration::from_secs(60),
    );
    assert!(!no_topic.status.success());
    assert!(
        mentions(&no_topic.stderr, "topic nowhere does not exist"),
        "{}",
        no_topic.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rhai"),
        "fn detect(event, history) {\n    event.amount >\n}\n",
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let broken = run(
        analyze_cmd(&mock.address, "g").args(["--rules", rules, "--until-idle"]),
        Duration::from_secs(60),
    );
    assert!(!broken.status.success());
    assert!(
        mentions(&broken.stderr, "broken.rhai:3"),
        "{}",
        broken.stderr
    );

    let missing = run(
        analyze_cmd(&mock.address, "g").args(["--rules", "no/such/dir", "--until-idle"]),
        Duration::from_secs(60),
    );
    assert!(!missing.status.success());
    assert!(
        mentions(
            &missing.stderr,
            "cannot read detection rules in no/such/dir"
        ),
        "{}",
        missing.stderr
    );
    for out in [&no_brokers, &no_topic, &broken, &missing] {
        assert_no_panic(&out.stderr);
    }
}

#[test]
fn detection_rules_are_reloaded_while_the_analyzer_runs() {
    let mock = Mock::start();
    backfill(&mock.address, "scripts/darooghe.rhai", 200, 3);
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("big.rhai");
    std::fs::write(
        &rule,
        "fn detect(event, history) { event.amount > 5000000 }\n",
    )
    .unwrap();
    let analyzer = Background::start(
        analyze_cmd(&mock.address, "reload").args(["--rules", dir.path().to_str().unwrap()]),
    );
    analyzer.wait_for_line("the rule loaded", Duration::from_secs(60), |l| {
        l.starts_with("detection rule loaded") && l.contains("big.rhai")
    });
    analyzer.wait_for_line("the assignment", Duration::from_secs(60), |l| {
        l.starts_with("assigned partitions")
    });
    // A broken edit is refused with its place; the running version stays.
    std::fs::write(&rule, "fn detect(event, history) { event.amount > }\n").unwrap();
    analyzer.wait_for_line("the rejection", Duration::from_secs(60), |l| {
        l.contains("edit rejected")
    });
    analyzer.wait_for_line("the error's place", Duration::from_secs(10), |l| {
        l.contains("big.rhai:1")
    });
    // A new file is picked up.
    std::fs::write(
        dir.path().join("small.rhai"),
        "fn detect(event, history) { event.amount < 100 }\n",
    )
    .unwrap();
    analyzer.wait_for_line("the new rule", Duration::from_secs(60), |l| {
        l.starts_with("detection rule loaded") && l.contains("small.rhai")
    });
    analyzer.interrupt();
    let (status, stderr) = analyzer.wait(Duration::from_secs(60));
    assert!(status.success(), "{stderr}");
}
