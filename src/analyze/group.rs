//! The consumer group: rebalance callbacks, and committing the batches (see [`super::batch`]).
//!
//! A batch is committed every `commit_every` messages or `commit_interval`, at exit, and before
//! partitions are revoked in a rebalance:
//!
//! - at least once (default): the batch's outputs are published and acknowledged, and only then
//!   are the offsets committed; a crash in between publishes the batch again on restart;
//! - exactly once (`--exactly-once`): outputs, progress records and offsets go in one producer
//!   transaction (`send_offsets_to_transaction`), so a batch's effects are visible to
//!   `read_committed` readers once or never.
//!
//! When partitions are assigned (at start and in every rebalance), an exactly-once member reads
//! the progress records ([`super::progress`]) and starts each partition after the highest
//! committed `to_offset`, unless the group's committed offset is already there.
//!
//! Committing on revoke (inside librdkafka's rebalance callback, still on the run loop's thread
//! during `poll`) means a partition changes hands exactly at a commit: nothing the old owner
//! processed is redone by the new one, and nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::batch::{PartitionBatch, Pending};
use super::figures::AnalyzeFigures;
use super::progress::Recovery;
use super::publish::Publisher;
use super::{AnalyzeError, PROGRESS_TOPIC};
use crate::sync::lock;

/// How long a request for the group's committed offsets may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions assigned, and the changes the run loop has not looked at yet.
#[derive(Default)]
pub(super) struct Membership {
    /// Partitions of the input topic this member owns.
    pub(super) assigned: BTreeSet<i32>,
    /// Since when this member holds the assignment of the group's current generation; `None`
    /// before the first and between a revoke and the next assignment. An assignment may be
    /// empty (more members than partitions): the member is settled all the same.
    pub(super) settled_since: Option<Instant>,
    /// Partitions taken away since the loop last looked.
    pub(super) revoked: Vec<i32>,
    /// Partitions given since the loop last looked.
    pub(super) added: Vec<i32>,
}

/// The consumer's context: rebalance and statistics callbacks, and what they need to commit.
pub struct GroupContext {
    topic: String,
    publisher: Option<Publisher>,
    pub(super) pending: Mutex<Pending>,
    pub(super) membership: Mutex<Membership>,
    /// Consumer lag per assigned partition, from librdkafka's statistics.
    pub(super) lag: Mutex<BTreeMap<i32, i64>>,
    /// Exactly once: how to read the progress records back.
    recovery: Option<Recovery>,
    /// Where librdkafka's statistics reports are recorded, for the metrics endpoint (lag per
    /// partition, whether a broker is up) and the progress bar (what is left to read).
    figures: Arc<AnalyzeFigures>,
}

impl GroupContext {
    /// The context of a member reading `topic`, publishing with `publisher` when there are
    /// outputs, resuming with `recovery` in exactly-once mode, and recording librdkafka's
    /// statistics in `figures`.
    pub fn new(
        topic: &str,
        publisher: Option<Publisher>,
        recovery: Option<Recovery>,
        figures: Arc<AnalyzeFigures>,
    ) -> Self {
        Self {
            topic: topic.to_string(),
            publisher,
            pending: Mutex::new(Pending::default()),
            membership: Mutex::new(Membership::default()),
            lag: Mutex::new(BTreeMap::new()),
            recovery,
            figures,
        }
    }

    /// Flushes the publisher's outputs (at exit).
    pub fn close(&self) {
        if let Some(publisher) = &self.publisher {
            publisher.close();
        }
    }

    /// Exactly once: moves the start of each partition in `list` after the last batch the
    /// progress records show committed, when the group's committed offset is not already there.
    fn recover(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        recovery: &Recovery,
        list: &TopicPartitionList,
        pending: &mut Pending,
    ) -> Result<(), AnalyzeError> {
        let partitions: BTreeSet<i32> = list
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let progress = recovery.progress(&self.topic, &partitions)?;
        if progress.is_empty() {
            return Ok(());
        }
        let stored = self.committed_offsets(consumer, progress.keys(), pending);
        for mut element in list.elements_for_topic(&self.topic) {
            let partition = element.partition();
            let Some(to) = progress.get(&partition) else {
                continue;
            };
            let resume = to + 1;
            if stored.get(&partition).is_none_or(|&offset| offset < resume) {
                element
                    .set_offset(Offset::Offset(resume))
                    .map_err(|e| AnalyzeError::Kafka {
                        what: "setting the resume offset",
                        reason: e.to_string(),
                    })?;
                pending.warnings.push(format!(
                    "partition {partition}: resuming at offset {resume}, after the last committed \
                     batch in {PROGRESS_TOPIC} (the group's committed offset is {})",
                    stored
                        .get(&partition)
                        .map_or("missing".to_string(), |o| format!("behind, {o}"))
                ));
            }
        }
        Ok(())
    }

    /// The group's committed offsets of `partitions`; none (with a warning) when the broker
    /// does not answer, so that the progress records alone decide.
    fn committed_offsets<'p>(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        partitions: impl Iterator<Item = &'p i32>,
        pending: &mut Pending,
    ) -> BTreeMap<i32, i64> {
        let mut query = TopicPartitionList::new();
        for &partition in partitions {
            query.add_partition(&self.topic, partition);
        }
        match consumer.committed_offsets(query, REQUEST_TIMEOUT) {
            Ok(stored) => stored
                .elements_for_topic(&self.topic)
                .iter()
                .filter_map(|e| Some((e.partition(), e.offset().to_raw().filter(|o| *o >= 0)?)))
                .collect(),
            Err(err) => {
                pending.warnings.push(format!(
                    "reading the group's committed offsets failed ({err}); resuming from the \
                     progress records alone"
                ));
                BTreeMap::new()
            }
        }
    }

    /// Commits the orphaned batches of partitions assigned to this member again (their outputs are
    /// already published), now that the group has a new generation; drops the others, whose new
    /// owner will process their events again.
    fn adopt_orphans(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        assigned: &TopicPartitionList,
        pending: &mut Pending,
    ) {
        if pending.orphaned.is_empty() {
            return;
        }
        let ours: BTreeSet<i32> = assigned
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let orphaned = std::mem::take(&mut pending.orphaned);
        let (back, gone): (Vec<_>, Vec<_>) =
            orphaned.into_iter().partition(|(p, _)| ours.contains(p));
        if !gone.is_empty() {
            pending.warnings.push(format!(
                "partitions {:?} moved to another member with a batch uncommitted: its events \
                 will be processed again there (at least once)",
                gone.iter().map(|(p, _)| *p).collect::<Vec<_>>()
            ));
        }
        if back.is_empty() {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, batch) in &back {
            let _ = offsets.add_partition_offset(
                &self.topic,
                *partition,
                Offset::Offset(batch.next_offset),
            );
        }
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => {
                for (_, batch) in back {
                    pending.totals.merge(&batch.delta);
                }
                pending.commits += 1;
            }
            Err(err) => pending.warnings.push(format!(
                "committing a held batch failed ({err}); its events will be processed again"
            )),
        }
    }

    /// Publishes and commits the pending batch (see the module doc for the two guarantees).
    fn commit(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        pending: &mut Pending,
    ) -> Result<(), AnalyzeError> {
        // The alerts of every event read are part of the batch.
        pending.collect_verdicts(true);
        if pending.batches.is_empty() {
            return Ok(());
        }
        let offsets = self.offsets_after(&pending.batches)?;
        match &self.publisher {
            Some(publisher) if publisher.transactional() => {
                let group = consumer
                    .group_metadata()
                    .ok_or_else(|| AnalyzeError::Kafka {
                        what: "reading the group's metadata",
                        reason: "the consumer is not in a group".into(),
                    })?;
                publisher.publish_in_transaction(
                    &self.topic,
                    &pending.batches,
                    &offsets,
                    &group,
                )?;
            }
            publisher => {
                if let Some(publisher) = publisher {
                    publisher.publish(&self.topic, &pending.batches)?;
                }
                // The outputs are acknowledged: now the offsets may move past these events.
                if let Err(err) = consumer.commit(&offsets, CommitMode::Sync) {
                    // Not committed: whoever owns these partitions next reads the events again,
                    // so they are in no totals yet (see `orphaned`).
                    pending.warnings.push(format!(
                        "committing offsets failed ({err}); the batch is held until the next \
                         assignment, and processed again by its next owner otherwise"
                    ));
                    pending.hold();
                    return Ok(());
                }
            }
        }
        pending.settle();
        Ok(())
    }

    /// The offsets that commit `batches`: each partition's next offset.
    fn offsets_after(
        &self,
        batches: &BTreeMap<i32, PartitionBatch>,
    ) -> Result<TopicPartitionList, AnalyzeError> {
        let mut offsets = TopicPartitionList::new();
        for (&partition, batch) in batches {
            offsets
                .add_partition_offset(&self.topic, partition, Offset::Offset(batch.next_offset))
                .map_err(|e| AnalyzeError::Kafka {
                    what: "listing offsets",
                    reason: e.to_string(),
                })?;
        }
        Ok(offsets)
    }
}

/// Commits the pending batch (outside a rebalance).
pub fn commit(consumer: &BaseConsumer<GroupContext>) -> Result<(), AnalyzeError> {
    let context = consumer.context();
    let mut pending = lock(&context.pending);
    context.commit(consumer, &mut pending)
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        // Only called when statistics.interval.ms is set: by the live view, --metrics or the
        // progress bar.
        self.figures.record_stats(&statistics);
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let assigned = lock(&self.membership).assigned.clone();
        let lag = topic
            .partitions
            .iter()
            .filter(|(p, _)| assigned.contains(p))
            .map(|(p, part)| (*p, part.consumer_lag))
            .collect();
        *lock(&self.lag) = lag;
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // Before the assignment applies (and fetching starts at the committed offsets).
            let mut pending = lock(&self.pending);
            self.adopt_orphans(consumer, list, &mut pending);
        }
        if let (Rebalance::Assign(list), Some(recovery)) = (rebalance, &self.recovery) {
            // The list is assigned right after this returns: its offsets are where fetching starts.
            let mut pending = lock(&self.pending);
            if let Err(err) = self.recover(consumer, recovery, list, &mut pending) {
                pending.failure.get_or_insert(err);
            }
        }
        if let Rebalance::Revoke(list) = rebalance {
            // Still the owner: commit what was done, so the next owner starts right after it.
            let mut pending = lock(&self.pending);
            if let Err(err) = self.commit(consumer, &mut pending) {
                pending.failure.get_or_insert(err);
            }
            let mut membership = lock(&self.membership);
            membership.settled_since = None;
            for element in list.elements_for_topic(&self.topic) {
                membership.assigned.remove(&element.partition());
                membership.revoked.push(element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut membership = lock(&self.membership);
            membership.settled_since = Some(Instant::now());
            for element in list.elements_for_topic(&self.topic) {
                membership.assigned.insert(element.partition());
                membership.added.push(element.partition());
            }
        }
    }
}
