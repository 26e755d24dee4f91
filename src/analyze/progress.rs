//! Exactly-once progress: the record each committed batch writes per source partition to
//! `darooghe.analyze_progress`, and reading those records back when partitions are assigned.
//!
//! A broker may acknowledge a transaction's offsets without keeping them (librdkafka's mock
//! cluster does), so the group's committed offset alone cannot say where the last committed batch
//! ended. The progress record can: [`super::publish`] writes it in the batch's transaction, so it
//! is visible to `read_committed` readers exactly when the batch's outputs are, and
//! [`Recovery`] reads it back for [`super::group`], which starts each partition after it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{AnalyzeError, PROGRESS_TOPIC};

/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading the progress records back may take.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// One committed batch of one source partition, as written to `darooghe.analyze_progress`.
///
/// The fields are declared in the order they are written: alphabetical, as they were when the
/// record was built with `json!` (whose map sorts its keys), so the bytes did not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressRecord<'a> {
    /// The batch's first offset.
    pub from_offset: i64,
    /// The consumer group that committed it.
    pub group: &'a str,
    /// The source partition.
    pub source_partition: i32,
    /// The source topic.
    pub source_topic: &'a str,
    /// The batch's last offset: the partition resumes after it.
    pub to_offset: i64,
}

impl ProgressRecord<'_> {
    /// The record's key, [`progress_key`].
    pub fn key(&self) -> String {
        progress_key(self.group, self.source_topic, self.source_partition)
    }

    /// The record's value, JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What resuming reads of a progress record; the key names its group and topic.
#[derive(Deserialize)]
struct ResumePoint {
    source_partition: i64,
    to_offset: i64,
}

/// The key of a progress record: `GROUP/TOPIC/PARTITION`.
pub fn progress_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// What reading the progress records needs: the run's client configuration and its group.
pub struct Recovery {
    config: ClientConfig,
    group: String,
}

impl Recovery {
    /// Reads the progress records of `group` with the run's `config` (brokers and properties).
    pub fn new(config: ClientConfig, group: String) -> Self {
        Self { config, group }
    }

    /// Per partition of `topic` in `partitions`, the highest `to_offset` of this group's
    /// committed progress records.
    pub fn progress(
        &self,
        topic: &str,
        partitions: &BTreeSet<i32>,
    ) -> Result<BTreeMap<i32, i64>, AnalyzeError> {
        let reader = self.reader()?;
        let mut progress = BTreeMap::new();
        let mut waiting = assign_non_empty(&reader)?;
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        while !waiting.is_empty() {
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "partitions {waiting:?} of {PROGRESS_TOPIC} not read to their end within {RECOVERY_TIMEOUT:?}"
                )));
            }
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let key = message.key().unwrap_or_default();
                    let Some((partition, to)) = message.payload().and_then(resume_point) else {
                        continue;
                    };
                    if key == progress_key(&self.group, topic, partition).as_bytes()
                        && partitions.contains(&partition)
                    {
                        let highest = progress.entry(partition).or_insert(to);
                        *highest = (*highest).max(to);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    waiting.remove(&partition);
                }
                // Transient errors are retried by librdkafka; the deadline bounds the wait.
                Some(Err(_)) | None => {}
            }
        }
        Ok(progress)
    }

    /// A consumer of the progress topic, outside the group whose records it reads.
    fn reader(&self) -> Result<BaseConsumer, AnalyzeError> {
        let mut config = self.config.clone();
        config
            .set("group.id", format!("{}.progress-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Only what committed transactions wrote: a fenced member's batch did not happen.
            .set("isolation.level", "read_committed");
        config.create().map_err(|e| failed(e.to_string()))
    }
}

/// Assigns `reader` the partitions of the progress topic that hold records, from their
/// beginning; returns them.
fn assign_non_empty(reader: &BaseConsumer) -> Result<BTreeSet<i32>, AnalyzeError> {
    let metadata = reader
        .fetch_metadata(Some(PROGRESS_TOPIC), REQUEST_TIMEOUT)
        .map_err(|e| failed(e.to_string()))?;
    let mut list = TopicPartitionList::new();
    let mut waiting = BTreeSet::new();
    for part in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == PROGRESS_TOPIC && t.error().is_none())
        .flat_map(|t| t.partitions())
    {
        let (low, high) = reader
            .fetch_watermarks(PROGRESS_TOPIC, part.id(), REQUEST_TIMEOUT)
            .map_err(|e| failed(e.to_string()))?;
        if high > low {
            list.add_partition_offset(PROGRESS_TOPIC, part.id(), Offset::Beginning)
                .map_err(|e| failed(e.to_string()))?;
            waiting.insert(part.id());
        }
    }
    if !waiting.is_empty() {
        reader.assign(&list).map_err(|e| failed(e.to_string()))?;
    }
    Ok(waiting)
}

/// The source partition and last offset a progress record's value names, if it is one.
fn resume_point(value: &[u8]) -> Option<(i32, i64)> {
    let point: ResumePoint = serde_json::from_slice(value).ok()?;
    Some((i32::try_from(point.source_partition).ok()?, point.to_offset))
}

fn failed(reason: String) -> AnalyzeError {
    AnalyzeError::Kafka {
        what: "reading the progress records",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_as_json_did_it() {
        let record = ProgressRecord {
            from_offset: 10,
            group: "g\"1",
            source_partition: 2,
            source_topic: "darooghe.transactions",
            to_offset: 19,
        };
        let built = serde_json::json!({
            "group": "g\"1", "source_topic": "darooghe.transactions", "source_partition": 2,
            "from_offset": 10, "to_offset": 19,
        });
        assert_eq!(record.to_json(), built.to_string());
        assert_eq!(record.key(), "g\"1/darooghe.transactions/2");
        assert_eq!(resume_point(record.to_json().as_bytes()), Some((2, 19)));
    }

    #[test]
    fn values_that_are_not_progress_records_are_skipped() {
        assert_eq!(resume_point(b"not json"), None);
        assert_eq!(resume_point(br#"{"source_partition": 1}"#), None);
        assert_eq!(
            resume_point(br#"{"source_partition": 4294967296, "to_offset": 1}"#),
            None
        );
    }
}
