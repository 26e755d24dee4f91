//! What makes instances one group: the same scenario, settings, seed, shards and timeline.
//!
//! The first instance records its [`Identity`] as the first message of the coordination topic;
//! every instance that joins reads it back, takes the seed and the time it did not pin itself
//! from it, and is refused when anything else differs: two scenarios sharing shards would make
//! two half streams, not one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::script::imports::script_files;
use crate::settings::TypedValue;

/// Settings that change how an instance runs, not the events it makes: they may differ within
/// a group.
const PER_INSTANCE: &[&str] = &[
    "brokers",
    "embedded_max_bytes",
    // Compared on its own, by name (see `Identity::differences`).
    "exactly_once",
    "group",
    "metrics",
    "on_error",
    "schema_registry",
    "workers",
];

/// What a group is: recorded once, by the instance that starts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The command the group runs: `backfill` or `run`.
    pub command: String,
    /// The scenario's name.
    pub scenario: String,
    /// SHA-256 of the scenario's files and of the settings that shape its events.
    pub fingerprint: String,
    /// The seed of every random draw.
    pub seed: u64,
    /// Shards the timeline is cut into.
    pub shards: u32,
    /// What the group takes as now, milliseconds since the epoch: the end of a backfill's window,
    /// the start of a live timeline.
    pub now_ms: i64,
    /// The wall clock when the group started, milliseconds since the epoch: an instance that
    /// joins later sets its clock as far past `now_ms` as the wall clock is past this.
    pub started_ms: i64,
    /// Whether the group commits in transactions (`--exactly-once`): one member that does not
    /// would make the group's guarantee at least once.
    #[serde(default)]
    pub exactly_once: bool,
}

/// What an instance pinned on its command line; the rest it takes from the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pinned {
    /// `--seed` was given.
    pub seed: bool,
    /// `--now` was given.
    pub now: bool,
}

/// Where an instance and its group differ, in words: `(what, the group's, this instance's)`.
pub type Difference = (&'static str, String, String);

impl Identity {
    /// The differences between the group's identity (`self`) and what an instance proposed,
    /// ignoring what it did not pin.
    pub fn differences(&self, proposed: &Identity, pinned: Pinned) -> Vec<Difference> {
        let mut differences = Vec::new();
        let mut differ = |what, group: String, ours: String| {
            if group != ours {
                differences.push((what, group, ours));
            }
        };
        differ("command", self.command.clone(), proposed.command.clone());
        differ("scenario", self.scenario.clone(), proposed.scenario.clone());
        differ(
            "scenario files and settings (fingerprint)",
            self.fingerprint.clone(),
            proposed.fingerprint.clone(),
        );
        differ(
            "shards",
            self.shards.to_string(),
            proposed.shards.to_string(),
        );
        differ(
            "exactly once",
            self.exactly_once.to_string(),
            proposed.exactly_once.to_string(),
        );
        if pinned.seed {
            differ("seed", self.seed.to_string(), proposed.seed.to_string());
        }
        if pinned.now {
            differ(
                "now (ms since the epoch)",
                self.now_ms.to_string(),
                proposed.now_ms.to_string(),
            );
        }
        differences
    }

    /// The identity as recorded on the coordination topic.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An identity read back from the coordination topic.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// SHA-256 (hex) of the scenario's files (the script and every module it imports, by name and
/// content) and of its settings as the script sees them, less those that differ per instance.
pub fn fingerprint(script: &Path, settings: &BTreeMap<String, TypedValue>) -> String {
    let mut hash = Sha256::new();
    for file in script_files(script) {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&file).unwrap_or_default());
        hash.update([0]);
    }
    for (key, value) in settings {
        if PER_INSTANCE.contains(&key.as_str()) {
            continue;
        }
        hash.update(format!("{key}={value:?}\n").as_bytes());
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            command: "backfill".into(),
            scenario: "hello".into(),
            fingerprint: "abc".into(),
            seed: 7,
            shards: 64,
            now_ms: 1_000,
            started_ms: 2_000,
            exactly_once: false,
        }
    }

    #[test]
    fn what_an_instance_did_not_pin_is_taken_from_the_group() {
        let group = identity();
        let proposed = Identity {
            seed: 9,
            now_ms: 5,
            started_ms: 6,
            ..identity()
        };
        assert!(group.differences(&proposed, Pinned::default()).is_empty());
        let pinned = Pinned {
            seed: true,
            now: true,
        };
        let named: Vec<_> = group
            .differences(&proposed, pinned)
            .into_iter()
            .map(|(what, _, _)| what)
            .collect();
        assert_eq!(named, ["seed", "now (ms since the epoch)"]);
    }

    #[test]
    fn another_scenario_or_shard_count_always_differs() {
        let group = identity();
        let proposed = Identity {
            fingerprint: "def".into(),
            shards: 32,
            exactly_once: true,
            ..identity()
        };
        let named = group.differences(&proposed, Pinned::default());
        assert_eq!(named.len(), 3);
        assert_eq!(named[1], ("shards", "64".into(), "32".into()));
        assert_eq!(named[2], ("exactly once", "false".into(), "true".into()));
        assert_eq!(Identity::from_json(&group.to_json()), Some(group.clone()));
        // Recorded before `exactly_once` was: read as at least once.
        let older = br#"{"command":"backfill","scenario":"hello","fingerprint":"abc","seed":7,"shards":64,"now_ms":1000,"started_ms":2000}"#;
        assert_eq!(Identity::from_json(older), Some(group));
    }

    #[test]
    fn the_fingerprint_follows_files_and_event_settings_not_workers() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.rhai");
        std::fs::write(&script, "fn event(ctx) { #{} }").unwrap();
        let mut settings = BTreeMap::from([("rate".to_string(), TypedValue::Float(10.0))]);
        let first = fingerprint(&script, &settings);
        settings.insert("workers".into(), TypedValue::Int(4));
        assert_eq!(fingerprint(&script, &settings), first);
        settings.insert("rate".into(), TypedValue::Float(11.0));
        assert_ne!(fingerprint(&script, &settings), first);
        settings.insert("rate".into(), TypedValue::Float(10.0));
        std::fs::write(&script, "fn event(ctx) { #{ a: 1 } }").unwrap();
        assert_ne!(fingerprint(&script, &settings), first);
    }
}
