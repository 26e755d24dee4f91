//! The exact oracle of a seeded run, and a topic judged against it.
//!
//! With `--seed` and `--now`, `sim` makes the same events whatever the pacing, the number of
//! workers or the sink: each event draws from a random stream named by the seed and its place on
//! the timeline, and a live run's `--duration` is counted in simulated time from `--now`. So the
//! same command with `--sink file:PATH` writes, in order, every event that a run into Kafka
//! should deliver: the oracle ([`Oracle`]). What a broker holds afterwards is read back
//! ([`read_topic`]) and judged event by event ([`judge`]): lost, duplicated, reordered within a
//! key, altered, or not the oracle's at all; and the final account `sim` printed ([`Account`]) is
//! held to what the topic holds.
//!
//! [`trial`] runs `sim` while a fault is injected and healed ([`Fault`]: librdkafka's mock
//! cluster through its fault API, Tansu paused or killed), or stops it with a signal at a chosen
//! moment, and returns what was seen. Shared by `tests/faults.rs` (the quick cases) and
//! `examples/fault_matrix/` (the whole matrix, through `#[path]`), so it knows neither: the
//! caller builds the `sim` command, this module runs, reads and judges.
//!
//! # Layout
//! - this file: the oracle itself, read from JSON lines;
//! - `verdict.rs`: [`judge`], a topic against the oracle;
//! - `account.rs`: the account line `sim` prints last, and what it must agree with;
//! - `topic.rs`: reading a topic back, and watching its high watermarks while `sim` runs;
//! - `faults.rs`: the faults (mock cluster, Tansu as a child process);
//! - `trial.rs`: one run of `sim` under a fault or a signal.

#![allow(dead_code, unused_imports)] // the test and the example each use a subset

mod account;
mod faults;
mod topic;
mod trial;
mod verdict;

use std::collections::HashMap;
use std::path::Path;

pub use account::{account_problems, Account};
pub use faults::{Fault, MockFault, MockFaults, TansuFault, TansuProcess};
pub use topic::{read_topic, Held, TopicWatch};
pub use trial::{
    replayed_retries, run_signalled, run_trial, Pace, Plan, SignalReport, TrialReport, Trigger,
};
pub use verdict::{judge, Verdict};

/// The field that names an event once and for all.
pub const ID_FIELD: &str = "transaction_id";
/// The field `sim` keys messages by (the darooghe scenario's `key_field`).
pub const KEY_FIELD: &str = "customer_id";

/// One event of the oracle: its id, its key, and its JSON exactly as `sim` encoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleEvent {
    /// `transaction_id`.
    pub id: String,
    /// `customer_id`, the message key.
    pub key: String,
    /// The JSON line, byte for byte.
    pub value: String,
    /// The event's `timestamp`, milliseconds since the epoch (to know what is due when).
    pub time_ms: i64,
}

/// Every event a seeded run makes, in the order it makes them.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    events: Vec<OracleEvent>,
    by_id: HashMap<String, usize>,
}

impl Oracle {
    /// The oracle from JSON lines (what `--sink file:PATH` writes). Fails on a line that is not
    /// an event with an id, a key and a timestamp, and on an id seen twice: the oracle is only
    /// exact if ids are unique.
    pub fn from_json_lines(text: &str) -> Result<Self, String> {
        let mut oracle = Oracle::default();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let event = parse_event(line).map_err(|e| format!("oracle line {}: {e}", n + 1))?;
            if let Some(first) = oracle.by_id.insert(event.id.clone(), oracle.events.len()) {
                return Err(format!(
                    "oracle line {}: id {} already on line {}",
                    n + 1,
                    event.id,
                    first + 1
                ));
            }
            oracle.events.push(event);
        }
        Ok(oracle)
    }

    /// The oracle from a JSON-lines file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the oracle {}: {e}", path.display()))?;
        Self::from_json_lines(&text)
    }

    /// The events, in the order `sim` makes them.
    pub fn events(&self) -> &[OracleEvent] {
        &self.events
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Where the event with this id stands.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// How many events are stamped at or before `time_ms`: what a live stream has made by then.
    pub fn due_by(&self, time_ms: i64) -> usize {
        self.events.iter().filter(|e| e.time_ms <= time_ms).count()
    }
}

/// The id, key and time of one JSON event.
fn parse_event(line: &str) -> Result<OracleEvent, String> {
    let json: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let text = |field: &str| {
        json[field]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no string `{field}`"))
    };
    let stamp = text("timestamp")?;
    let time_ms = chrono::DateTime::parse_from_rfc3339(&stamp)
        .map_err(|e| format!("timestamp {stamp:?}: {e}"))?
        .timestamp_millis();
    Ok(OracleEvent {
        id: text(ID_FIELD)?,
        key: text(KEY_FIELD)?,
        value: line.to_string(),
        time_ms,
    })
}

/// The id of a message's JSON value, if it has one.
fn id_of(value: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(value).ok()?;
    json[ID_FIELD].as_str().map(str::to_string)
}
