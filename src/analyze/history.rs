//! What the topic no longer holds: checked before `sim analyze --from-beginning` reads it.
//!
//! Reading "from the beginning" reads from each partition's first offset, which is not 0 once the
//! broker deleted the oldest messages (a size cap, retention). Those messages were delivered and
//! are gone, so figures computed from the topic leave them out. This check finds such partitions
//! (with the count of messages before the first offset) and, by reading each partition's first
//! message, partitions whose history starts well after the others' (the topic's history claims
//! more than they hold), so the run can warn instead of reporting partial figures as whole.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::broker::history::{partition_offsets, PartitionOffsets};

use super::summary::iso;

/// A partition whose first event is this much later than the topic's earliest is reported even
/// when its first offset is 0: with keyed traffic spread over the partitions, their histories
/// start within minutes of each other.
pub const LATE_START: Duration = Duration::from_secs(3600);

/// How long reading the partitions' first messages may take.
const FIRST_MESSAGES_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition that does not hold its whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionGap {
    /// The partition.
    pub partition: i32,
    /// Its first offset: the messages before it were deleted (0: none by offset).
    pub first_offset: i64,
    /// Its end offset.
    pub end_offset: i64,
    /// The event time of its first message, milliseconds since the epoch (when it was read).
    pub first_event_ms: Option<i64>,
    /// How much later than the topic's earliest first event that is, milliseconds.
    pub starts_later_ms: Option<i64>,
}

impl PartitionGap {
    /// Messages this partition no longer holds (the offsets before its first one; an upper
    /// bound when transactions wrote markers there). 0 when only its late start shows a gap.
    pub fn unseen(&self) -> u64 {
        self.first_offset.max(0) as u64
    }
}

/// The topic's partitions that do not hold their whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingHistory {
    /// The topic.
    pub topic: String,
    /// The topic's earliest first event, milliseconds since the epoch.
    pub earliest_event_ms: Option<i64>,
    /// The partitions with a gap, in partition order.
    pub partitions: Vec<PartitionGap>,
}

impl MissingHistory {
    /// Messages no longer in the topic, all partitions (counted by offset).
    pub fn unseen(&self) -> u64 {
        self.partitions.iter().map(PartitionGap::unseen).sum()
    }
}

impl fmt::Display for MissingHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} no longer holds {} of its oldest messages; the figures leave them out:",
            self.topic,
            self.unseen()
        )?;
        for gap in &self.partitions {
            write!(f, "\n  partition {}: ", gap.partition)?;
            if gap.first_offset > 0 {
                write!(
                    f,
                    "starts at offset {} (its first {} messages were deleted)",
                    gap.first_offset,
                    gap.unseen()
                )?;
            } else {
                write!(f, "starts at offset 0")?;
            }
            if let (Some(first), Some(0)) = (gap.first_event_ms, gap.starts_later_ms) {
                write!(
                    f,
                    "; its oldest event, {}, is the topic's oldest",
                    iso(first)
                )?;
            } else if let (Some(first), Some(later)) = (gap.first_event_ms, gap.starts_later_ms) {
                write!(
                    f,
                    "; its oldest event, {}, is {} after the topic's oldest{}",
                    iso(first),
                    human(later),
                    if gap.first_offset > 0 {
                        ""
                    } else {
                        " (older events may be missing; how many is unknown)"
                    }
                )?;
            }
        }
        Ok(())
    }
}

fn human(ms: i64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        m if m < 1 => format!("{:.0} s", ms as f64 / 1000.0),
        m if m < 120 => format!("{m} min"),
        m => format!("{:.1} h", m as f64 / 60.0),
    }
}

/// Checks `topic` through a client made from `config` (bootstrap servers and connection
/// settings): `None` when every partition holds its whole history as far as can be told.
pub fn missing_history(
    config: &ClientConfig,
    topic: &str,
) -> Result<Option<MissingHistory>, KafkaError> {
    // Assigned, never subscribed: the group id is librdkafka's requirement, no group is joined
    // and nothing is committed.
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "sim-history-check")
        .set("enable.auto.commit", "false")
        .create()?;
    let offsets = partition_offsets(consumer.client(), topic)?;
    let first_events = first_event_times(&consumer, topic, &offsets)?;
    Ok(gaps(topic, &offsets, &first_events))
}

/// The event time (Kafka timestamp) of each non-empty partition's first message.
fn first_event_times(
    consumer: &BaseConsumer,
    topic: &str,
    offsets: &[PartitionOffsets],
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let mut assignment = TopicPartitionList::new();
    for p in offsets.iter().filter(|p| p.end > p.first) {
        assignment.add_partition_offset(topic, p.partition, Offset::Offset(p.first))?;
    }
    let wanted = assignment.count();
    consumer.assign(&assignment)?;
    let mut times = BTreeMap::new();
    let deadline = Instant::now() + FIRST_MESSAGES_TIMEOUT;
    while times.len() < wanted && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(ms) = message.timestamp().to_millis() {
            times.entry(message.partition()).or_insert(ms);
        }
    }
    Ok(times)
}

/// The partitions that start after offset 0, or much later than the topic's earliest event.
fn gaps(
    topic: &str,
    offsets: &[PartitionOffsets],
    first_events: &BTreeMap<i32, i64>,
) -> Option<MissingHistory> {
    let earliest = first_events.values().min().copied();
    let partitions: Vec<PartitionGap> = offsets
        .iter()
        .map(|p| {
            let first_event_ms = first_events.get(&p.partition).copied();
            let starts_later_ms = first_event_ms.zip(earliest).map(|(f, e)| f - e);
            PartitionGap {
                partition: p.partition,
                first_offset: p.first,
                end_offset: p.end,
                first_event_ms,
                starts_later_ms,
            }
        })
        .filter(|gap| {
            gap.first_offset > 0
                || gap
                    .starts_later_ms
                    .is_some_and(|later| later > LATE_START.as_millis() as i64)
        })
        .collect();
    (!partitions.is_empty()).then(|| MissingHistory {
        topic: topic.to_string(),
        earliest_event_ms: earliest,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn offsets(first: &[i64]) -> Vec<PartitionOffsets> {
        PartitionOffsets::numbered(first, 10_000)
    }

    #[test]
    fn partitions_past_offset_0_or_starting_hours_late_are_reported() {
        let first_events = BTreeMap::from([(0, 0), (1, 3 * HOUR), (2, 2 * HOUR)]);
        let missing = gaps("t", &offsets(&[10, 1683, 0]), &first_events).unwrap();
        let got: Vec<(i32, u64, Option<i64>)> = missing
            .partitions
            .iter()
            .map(|g| (g.partition, g.unseen(), g.starts_later_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 10, Some(0)),
                (1, 1683, Some(3 * HOUR)),
                (2, 0, Some(2 * HOUR))
            ]
        );
        assert_eq!(missing.unseen(), 1693);
        let text = missing.to_string();
        assert!(
            text.contains("no longer holds 1693 of its oldest messages"),
            "{text}"
        );
        assert!(text.contains("is the topic's oldest"), "{text}");
        assert!(
            text.contains("partition 1: starts at offset 1683"),
            "{text}"
        );
        assert!(text.contains("how many is unknown"), "{text}");
    }

    #[test]
    fn a_whole_topic_is_not_reported() {
        let first_events = BTreeMap::from([(0, 0), (1, 60_000), (2, 30_000)]);
        assert_eq!(gaps("t", &offsets(&[0, 0, 0]), &first_events), None);
    }
}
