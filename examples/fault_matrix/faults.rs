//! The rows of faults: librdkafka's mock cluster through its fault API, and Tansu paused,
//! killed and restarted; each a trial of `tests/oracle`.

use std::process::ExitStatus;
use std::time::Duration;

use rdkafka::types::RDKafkaRespErr;

use super::oracle::*;
use super::{Harness, Row, Stream, BACKFILL, BOUND, TRIGGER};

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
    if !report.replayed.is_empty() {
        notes.push(format!("{}{}", v, report.replayed_note()));
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

pub(super) fn exit_text(status: ExitStatus) -> String {
    status.code().map_or("signal".into(), |c| c.to_string())
}

fn errors(label: &str, error: RDKafkaRespErr, times: usize) -> MockFault {
    MockFault::ProduceErrors {
        label: label.into(),
        errors: vec![error; times],
    }
}

/// The mock cluster's faults, each mid-backfill and mid-stream.
pub(super) fn mock_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
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
pub(super) fn tansu_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
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
