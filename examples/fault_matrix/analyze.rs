//! The row of `sim analyze --until-idle` with more group members than partitions.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::oracle::*;
use super::{Harness, Row, Stream, ANALYZE_BOUND};

/// Three `sim analyze --until-idle` members of one group on a one-partition topic: when each
/// ended.
pub(super) fn analyze_rows(h: &mut Harness, chosen: &dyn Fn(&str) -> bool, rows: &mut Vec<Row>) {
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
