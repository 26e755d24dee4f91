//! The batch: what was read from each source partition since its last commit, and the totals of
//! what was committed.
//!
//! The run loop ([`super::consume`]) adds each message to its partition's batch; the group
//! ([`super::group`]) commits the batches, through [`super::publish`] when there are outputs.
//! A batch counts in the totals only once its offsets are committed, so the totals are what the
//! group has done, whichever member does the next batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::aggregate::Totals;
use super::detect::pool::DetectPool;
use super::detect::{Alert, Verdict};
use super::transaction::{Poison, Position};
use super::AnalyzeError;

/// A poison message kept for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value, as read.
    pub payload: Option<Vec<u8>>,
    /// Where it was and why it was refused.
    pub poison: Poison,
}

/// What was read from one partition since its last commit.
#[derive(Debug, Default)]
pub struct PartitionBatch {
    /// Aggregates of its transactions.
    pub delta: Totals,
    /// Alerts they raised.
    pub alerts: Vec<Arc<Alert>>,
    /// Its poison messages, when a dead-letter topic is set.
    pub dead_letters: Vec<DeadLetter>,
    /// The first offset in the batch.
    pub first_offset: i64,
    /// The offset after the last one in the batch: what is committed.
    pub next_offset: i64,
}

impl PartitionBatch {
    /// Takes in `later`, the batch read after this one from the same partition.
    fn absorb(&mut self, later: PartitionBatch) {
        self.delta.merge(&later.delta);
        self.alerts.extend(later.alerts);
        self.dead_letters.extend(later.dead_letters);
        self.next_offset = later.next_offset;
    }
}

/// The uncommitted batches and the committed totals, shared by the run loop and the rebalance
/// callbacks (which commit on revoke).
#[derive(Default)]
pub(super) struct Pending {
    /// Per source partition, what was read since its last commit.
    pub(super) batches: BTreeMap<i32, PartitionBatch>,
    /// Messages in `batches`.
    pub(super) messages: u64,
    /// When the first of them was read.
    pub(super) started: Option<Instant>,
    /// What the committed batches add up to.
    pub(super) totals: Totals,
    /// Commits made.
    pub(super) commits: u64,
    /// An error from a commit made inside the rebalance callback, raised by the loop.
    pub(super) failure: Option<AnalyzeError>,
    /// Warnings from the callbacks, shown by the loop.
    pub(super) warnings: Vec<String>,
    /// Batches whose commit failed when their partitions were revoked (a broker may refuse
    /// commits while the group rebalances, as librdkafka's mock cluster does): committed at the
    /// next assignment if the partition comes back, else left for its new owner to process
    /// again. Until committed they are in no totals.
    pub(super) orphaned: BTreeMap<i32, PartitionBatch>,
    /// Detection on worker threads, when there are several: the batches' events whose rules
    /// have not answered yet. Their alerts belong to the batch, so every commit waits for them
    /// first ([`Pending::collect_verdicts`]), the one inside a rebalance callback too.
    pub(super) detection: Option<DetectPool>,
    /// Verdicts whose alerts are in their batch, in event order, for the run loop to count in
    /// the analyzer (the rebalance callback that collects some cannot reach it).
    pub(super) verdicts: Vec<Verdict>,
}

impl Pending {
    /// The batch of the message at `position`, which now ends with it.
    pub(super) fn batch_for(&mut self, position: Position) -> &mut PartitionBatch {
        self.messages += 1;
        self.started.get_or_insert_with(Instant::now);
        let batch = self
            .batches
            .entry(position.partition)
            .or_insert_with(|| PartitionBatch {
                first_offset: position.offset,
                ..PartitionBatch::default()
            });
        batch.next_offset = position.offset + 1;
        batch
    }

    /// Puts the verdicts of the detection workers whose turn has come (every one, with `all`)
    /// into their batches' alerts and [`Pending::verdicts`], in event order.
    pub(super) fn collect_verdicts(&mut self, all: bool) {
        let Some(pool) = &mut self.detection else {
            return;
        };
        for (partition, verdict) in pool.ready(all) {
            // The event's batch is there: it is committed only after its verdicts are in.
            if let Some(batch) = self.batches.get_mut(&partition) {
                batch.alerts.extend(verdict.alerts.iter().cloned());
            }
            self.verdicts.push(verdict);
        }
    }

    /// Whether `every` messages were read, or the first of them `interval` ago.
    pub(super) fn due(&self, every: u64, interval: Duration) -> bool {
        self.messages >= every || self.started.is_some_and(|t| t.elapsed() >= interval)
    }

    /// The batches are committed: into the totals with them, and a new batch starts.
    pub(super) fn settle(&mut self) {
        for batch in std::mem::take(&mut self.batches).values() {
            self.totals.merge(&batch.delta);
        }
        self.restart();
        self.commits += 1;
    }

    /// The batches' offsets were not committed: they are held (see `orphaned`), and a new batch
    /// starts. A partition already holding a batch kept its assignment meanwhile (an assignment
    /// would have adopted it), so the new batch follows the held one: they are held as one, and
    /// the one commit that covers both offsets counts both.
    pub(super) fn hold(&mut self) {
        for (partition, batch) in std::mem::take(&mut self.batches) {
            match self.orphaned.get_mut(&partition) {
                Some(held) => held.absorb(batch),
                None => {
                    self.orphaned.insert(partition, batch);
                }
            }
        }
        self.restart();
    }

    fn restart(&mut self) {
        self.messages = 0;
        self.started = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pending: &mut Pending, partition: i32, offsets: std::ops::Range<i64>) {
        for offset in offsets {
            let batch = pending.batch_for(Position { partition, offset });
            batch.delta.transactions += 1;
        }
    }

    #[test]
    fn a_second_held_batch_of_a_partition_is_held_with_the_first_not_instead_of_it() {
        let mut pending = Pending::default();
        read(&mut pending, 0, 0..10);
        read(&mut pending, 1, 0..4);
        pending.hold();
        read(&mut pending, 0, 10..25);
        pending.hold();
        let held = &pending.orphaned[&0];
        assert_eq!((held.first_offset, held.next_offset), (0, 25));
        assert_eq!(held.delta.transactions, 25);
        assert_eq!(pending.orphaned[&1].delta.transactions, 4);
    }
}
