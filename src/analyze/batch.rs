//! The batch: what was read from each source partition since its last commit, and the totals of
//! what was committed.
//!
//! The run loop ([`super::consume`]) adds each message to its partition's batch; the group
//! ([`super::group`]) commits the batches, through [`super::publish`] when there are outputs.
//! A batch counts in the totals only once its offsets are committed, so the totals are what the
//! group has done, whichever member does the next batch.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::aggregate::Totals;
use super::detect::Alert;
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
    pub alerts: Vec<Alert>,
    /// Its poison messages, when a dead-letter topic is set.
    pub dead_letters: Vec<DeadLetter>,
    /// The first offset in the batch.
    pub first_offset: i64,
    /// The offset after the last one in the batch: what is committed.
    pub next_offset: i64,
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
    /// starts.
    pub(super) fn hold(&mut self) {
        let batches = std::mem::take(&mut self.batches);
        self.orphaned.extend(batches);
        self.restart();
    }

    fn restart(&mut self) {
        self.messages = 0;
        self.started = None;
    }
}
