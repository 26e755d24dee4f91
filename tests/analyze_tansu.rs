//! `sim analyze` against a real broker over TCP: Tansu, a Kafka-compatible broker, started per
//! test on a free port with in-memory storage (it does not create topics on demand, so the
//! analyzer creates its output topics itself).

mod analyze_support;
mod common;

use std::time::Duration;

use analyze_support::*;
use common::*;

#[test]
fn on_tansu_the_summary_and_the_published_totals_equal_an_independent_count() {
    let tansu = Tansu::start();
    let delivered = backfill(&tansu.address, "scripts/darooghe.rhai", 3000, 5);
    // Read with the outside Python client: Tansu's high watermark can lag, so read to a count.
    let input: Vec<Read> = python_read(
        &tansu.address,
        TOPIC,
        3,
        delivered as usize,
        Duration::from_secs(120),
    )
    .into_iter()
    .map(|m| Read {
        partition: m.partition,
        offset: m.offset,
        key: m.key,
        value: m.value.into_bytes(),
        headers: m.headers.into_iter().collect(),
    })
    .collect();
    assert_eq!(input.len() as u64, delivered);
    let truth = count(&input);
    let summary =
        summary_of(analyze_cmd(&tansu.address, "tansu").args(["--until-idle", "--output-topics"]));
    assert_eq!(
        summary_totals(&summary),
        truth,
        "Tansu's log:\n{}",
        tansu.log()
    );
    assert_eq!(published_totals(&tansu.address, false), truth);
}

#[test]
fn exactly_once_on_a_broker_without_transactions_stops_with_a_clear_error() {
    let tansu = Tansu::start();
    backfill(&tansu.address, "scripts/darooghe.rhai", 500, 6);
    let out = run(
        analyze_cmd(&tansu.address, "tansu-eos").args([
            "--until-idle",
            "--output-topics",
            "--exactly-once",
        ]),
        Duration::from_secs(120),
    );
    assert_no_panic(&out.stderr);
    assert!(!out.status.success(), "{}", out.stderr);
    assert!(
        mentions(&out.stderr, "transaction failed"),
        "{}",
        out.stderr
    );
    assert!(
        mentions(&out.stderr, "run again with the same --group"),
        "{}",
        out.stderr
    );
    // Nothing was committed: a later run starts from the beginning.
    assert_eq!(committed(&tansu.address, "tansu-eos"), 0);
}
