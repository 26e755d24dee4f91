//! A topic judged against the oracle: what is missing, twice, out of order, changed or foreign.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{id_of, Held, Oracle};

/// How many ids of each kind of problem the summary names.
const SHOWN: usize = 3;

/// What a topic holds, against the events it should hold. Each list names events by id (or,
/// for a foreign message, by partition and offset), once for each time the problem shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Oracle events the topic should hold: the first `expected` of the oracle.
    pub expected: usize,
    /// Messages read from the topic.
    pub held: usize,
    /// Expected, and not in the topic.
    pub lost: Vec<String>,
    /// In the topic more than once: one entry for each extra copy.
    pub duplicated: Vec<String>,
    /// Behind a later event of the same key in its partition (each counted once, at the copy
    /// that is out of place).
    pub reordered: Vec<String>,
    /// The oracle's id, but other bytes.
    pub altered: Vec<String>,
    /// The oracle's, but past the first `expected`: made after the run should have stopped.
    pub beyond: Vec<String>,
    /// Not the oracle's at all: no id, or an id it does not have (`partition:offset`).
    pub foreign: Vec<String>,
    /// Keyed otherwise than by the event's key.
    pub miskeyed: Vec<String>,
    /// Keys found in more than one partition (then there is no order to keep).
    pub split_keys: Vec<String>,
}

impl Verdict {
    /// Whether the topic holds exactly the expected events, each once, unchanged, in order.
    pub fn is_clean(&self) -> bool {
        self.problems().iter().all(|(_, ids)| ids.is_empty())
    }

    /// Each kind of problem with its ids, in a fixed order.
    fn problems(&self) -> [(&'static str, &Vec<String>); 8] {
        [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("reordered", &self.reordered),
            ("altered", &self.altered),
            ("beyond", &self.beyond),
            ("foreign", &self.foreign),
            ("miskeyed", &self.miskeyed),
            ("split keys", &self.split_keys),
        ]
    }
}

impl fmt::Display for Verdict {
    /// `expected N, held M: clean`, or the count of each problem with its first ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, held {}:", self.expected, self.held)?;
        if self.is_clean() {
            return write!(f, " clean");
        }
        for (name, ids) in self.problems() {
            if ids.is_empty() {
                continue;
            }
            let first: Vec<&str> = ids.iter().take(SHOWN).map(String::as_str).collect();
            let more = if ids.len() > SHOWN { ", ..." } else { "" };
            write!(f, " {name} {} ({}{more});", ids.len(), first.join(", "))?;
        }
        Ok(())
    }
}

/// Judges what a topic holds against the first `expected` events of `oracle`: the whole oracle
/// for a run that should deliver everything, or the prefix a run stopped early had produced
/// (events are handed to the sink in oracle order, so what was produced is a prefix).
///
/// Order is judged per key, within a partition, by offset: the events of one key must come in
/// the oracle's order. Events of different keys may interleave in any way.
pub fn judge(oracle: &Oracle, expected: usize, held: &[Held]) -> Verdict {
    let expected = expected.min(oracle.len());
    let mut verdict = Verdict {
        expected,
        held: held.len(),
        ..Verdict::default()
    };
    let mut by_position: Vec<&Held> = held.iter().collect();
    by_position.sort_by_key(|m| (m.partition, m.offset));

    let mut seen = vec![false; oracle.len()];
    // Per (partition, key): the furthest oracle position read so far.
    let mut furthest: BTreeMap<(i32, &str), usize> = BTreeMap::new();
    let mut partitions_of: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for message in by_position {
        let Some(position) = id_of(&message.value).and_then(|id| oracle.position(&id)) else {
            verdict
                .foreign
                .push(format!("{}:{}", message.partition, message.offset));
            continue;
        };
        let event = &oracle.events()[position];
        if std::mem::replace(&mut seen[position], true) {
            verdict.duplicated.push(event.id.clone());
            continue;
        }
        if message.value != event.value {
            verdict.altered.push(event.id.clone());
        }
        if message.key.as_deref() != Some(event.key.as_str()) {
            verdict.miskeyed.push(event.id.clone());
        }
        if position >= expected {
            verdict.beyond.push(event.id.clone());
        }
        partitions_of
            .entry(event.key.as_str())
            .or_default()
            .insert(message.partition);
        let furthest = furthest
            .entry((message.partition, event.key.as_str()))
            .or_insert(position);
        if position < *furthest {
            verdict.reordered.push(event.id.clone());
        } else {
            *furthest = position;
        }
    }
    verdict.lost = oracle.events()[..expected]
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(event, _)| event.id.clone())
        .collect();
    verdict.split_keys = partitions_of
        .into_iter()
        .filter(|(_, partitions)| partitions.len() > 1)
        .map(|(key, _)| key.to_string())
        .collect();
    verdict
}
