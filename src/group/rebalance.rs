//! The consumer context of a group's member: where Kafka's rebalances become shards given up
//! and taken on.
//!
//! librdkafka calls it from the member's `poll`, which the pipeline makes between batches, so a
//! rebalance always falls between two batches: every owned arrival before the timeline's next one
//! was handed to the sink. A shard given up is recorded at that position, once the sink has
//! delivered what it holds (at least once: without a delivery, the position stays where it was
//! last recorded and the next owner makes the difference again). A shard taken on starts at its
//! recorded position; when that is behind the timeline, the pipeline makes the difference.
//!
//! A hand-over is recorded twice: as the group's committed offset, and as a message on the
//! shard's partition of the coordination topic. Apache Kafka takes the commit of a member that
//! gives shards up during a rebalance; librdkafka's mock cluster refuses it
//! (`REBALANCE_IN_PROGRESS`), and so may other brokers. The message needs no group state, and the
//! next owner starts from the later of the two.
//!
//! With `--exactly-once` the sink writes in transactions, and the hand-over is a commit of the
//! open transaction: the events made so far, every owned shard's position message, and the
//! group's offsets, visible to `read_committed` readers together or not at all.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::pipeline::{CatchUp, Ownership};
use crate::sink::{Extra, Progress, Transactions};

/// How long a rebalance waits for the sink to deliver what it holds before recording positions.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request for recorded positions may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a rebalance did, for the person running `sim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Shards taken on, each with the position it starts from.
    Took(Vec<(u32, u64)>),
    /// Shards given up, each with the position recorded for the next owner (`None`: the sink
    /// did not deliver in time, the last recorded position stands).
    Gave(Vec<(u32, Option<u64>)>),
    /// The group protocol failed.
    Failed(String),
    /// The test hook stopped the member after this many transactions (see
    /// `super::PAUSE_HOOK`).
    Paused(u64),
}

/// A hand-over, as a message on the shard's partition of the coordination topic.
#[derive(Debug, Serialize, Deserialize)]
struct HandOver {
    /// The shard's next arrival to make.
    position: u64,
}

/// The member's view of the group, shared with librdkafka's callbacks.
pub struct Members {
    topic: String,
    progress: Arc<dyn Progress>,
    /// The sink's transactions, with `--exactly-once`.
    transactions: Option<Arc<dyn Transactions>>,
    /// Writes hand-overs.
    producer: BaseProducer,
    /// Reads the last hand-over of a shard taken on (assigned partitions, no group).
    reader: BaseConsumer,
    state: Mutex<State>,
}

/// What the callbacks change.
pub struct State {
    /// The shards owned, and from where.
    pub ownership: Ownership,
    /// The timeline's next arrival at the last step.
    pub next: u64,
    /// Shards taken on behind `next`, for the pipeline to catch up.
    pub behind: Vec<CatchUp>,
    /// Rebalances since the last look.
    pub changes: Vec<Change>,
}

impl Members {
    /// A member of the group behind coordination topic `topic`, with `shards` shards, whose sink
    /// delivers as `progress` says, in `transactions` when it has them; `producer` and `reader`
    /// write and read hand-overs (the reader reads only what committed transactions wrote).
    pub fn new(
        topic: &str,
        shards: u32,
        progress: Arc<dyn Progress>,
        transactions: Option<Arc<dyn Transactions>>,
        producer: BaseProducer,
        reader: BaseConsumer,
    ) -> Self {
        Self {
            topic: topic.to_string(),
            progress,
            transactions,
            producer,
            reader,
            state: Mutex::new(State {
                ownership: Ownership::none(shards),
                next: 0,
                behind: Vec::new(),
                changes: Vec::new(),
            }),
        }
    }

    /// The shared state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The coordination topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How far the sink's deliveries have come.
    pub fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }

    /// Waits for the sink to deliver what it holds; `true` when it did.
    pub fn settle(&self) -> bool {
        self.progress.settle(SETTLE_TIMEOUT)
    }

    /// Whether the sink writes in transactions (`--exactly-once`).
    pub fn transactional(&self) -> bool {
        self.transactions.is_some()
    }

    /// With `--exactly-once`: commits the open transaction with `positions` (every owned shard's,
    /// since the transaction holds every event made since the last commit) as position messages
    /// and as the group's offsets, then records the offsets outside it too (a broker may not keep
    /// a transaction's offsets, as librdkafka's mock cluster does not). Without, nothing.
    pub fn commit_transaction(
        &self,
        consumer: &BaseConsumer<Self>,
        positions: &[(u32, u64)],
        mode: CommitMode,
    ) -> Result<(), String> {
        let Some(transactions) = &self.transactions else {
            return Ok(());
        };
        let payloads: Vec<(i32, Vec<u8>)> = positions
            .iter()
            .map(|&(shard, position)| {
                let payload = serde_json::to_vec(&HandOver { position }).unwrap_or_default();
                (shard as i32, payload)
            })
            .collect();
        let extra: Vec<Extra<'_>> = payloads
            .iter()
            .map(|(partition, payload)| Extra {
                topic: &self.topic,
                partition: *partition,
                payload,
            })
            .collect();
        let offsets = self.positions(positions);
        transactions.commit(&extra, &offsets, consumer.group_metadata().as_ref())?;
        if offsets.count() > 0 {
            // Refused during a rebalance by some brokers: the position messages stand for it.
            let _ = consumer.commit(&offsets, mode);
        }
        Ok(())
    }

    /// Positions of `shards` as a list of the coordination topic's partitions.
    pub fn positions(&self, shards: &[(u32, u64)]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for &(shard, position) in shards {
            // A partition of the list: cannot fail for an offset this size.
            let _ = list.add_partition_offset(
                &self.topic,
                shard as i32,
                Offset::Offset(position as i64),
            );
        }
        list
    }

    fn give_up(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let shards: Vec<u32> = partitions
            .elements_for_topic(&self.topic)
            .iter()
            .map(|p| p.partition() as u32)
            .collect();
        if shards.is_empty() {
            return;
        }
        // Every owned shard's position, the ones given up among them.
        let owned: Vec<(u32, u64)> = {
            let mut state = self.state();
            let next = state.next;
            let owned = state
                .ownership
                .owned()
                .into_iter()
                .filter_map(|s| state.ownership.position(s, next).map(|p| (s, p)))
                .collect();
            for &shard in &shards {
                state.ownership.give_up(shard);
            }
            owned
        };
        let positions: Vec<(u32, u64)> = owned
            .iter()
            .filter(|(s, _)| shards.contains(s))
            .copied()
            .collect();
        let recorded = if self.transactional() {
            // The transaction holds the events of the shards kept too: their positions go with it.
            match self.commit_transaction(consumer, &owned, CommitMode::Sync) {
                Ok(()) => true,
                Err(err) => {
                    self.state().changes.push(Change::Failed(format!(
                        "the transaction handing shards over failed ({err}): their next owner makes again what was made since the last commit"
                    )));
                    false
                }
            }
        } else if positions.is_empty() {
            false
        } else if !self.settle() {
            self.state().changes.push(Change::Failed(
                "the sink did not deliver in time: positions of the shards given up not recorded"
                    .into(),
            ));
            false
        } else {
            // Refused during a rebalance by some brokers: the hand-over message stands for it.
            let _ = consumer.commit(&self.positions(&positions), CommitMode::Sync);
            match self.write_hand_overs(&positions) {
                Ok(()) => true,
                Err(err) => {
                    self.state().changes.push(Change::Failed(format!(
                        "the positions of the shards given up were not recorded: {err}"
                    )));
                    false
                }
            }
        };
        let gave = shards
            .iter()
            .map(|&s| {
                let position = positions.iter().find(|(shard, _)| *shard == s);
                (s, position.filter(|_| recorded).map(|&(_, p)| p))
            })
            .collect();
        self.state().changes.push(Change::Gave(gave));
    }

    /// Writes each shard's position as a message on its partition, and waits for them.
    fn write_hand_overs(&self, positions: &[(u32, u64)]) -> Result<(), String> {
        for &(shard, position) in positions {
            let payload = serde_json::to_vec(&HandOver { position }).unwrap_or_default();
            self.producer
                .send(
                    BaseRecord::<(), _>::to(&self.topic)
                        .partition(shard as i32)
                        .payload(&payload),
                )
                .map_err(|(err, _)| err.to_string())?;
        }
        self.producer
            .flush(FETCH_TIMEOUT)
            .map_err(|err| err.to_string())
    }

    /// The furthest position in the hand-over messages of `shard` that committed (or were
    /// written outside transactions), if any: the last few messages are read first, then more.
    fn last_hand_over(&self, shard: u32) -> Option<u64> {
        let (low, high) = self
            .reader
            .fetch_watermarks(&self.topic, shard as i32, FETCH_TIMEOUT)
            .ok()?;
        // Transaction markers and aborted messages take offsets too.
        let mut window = 16;
        loop {
            let from = high.saturating_sub(window).max(low);
            if from >= high {
                return None;
            }
            if let Some(position) = self.read_hand_overs(shard, from) {
                return Some(position);
            }
            if from == low {
                return None;
            }
            window = window.saturating_mul(8);
        }
    }

    /// The furthest position in the hand-over messages of `shard` from offset `from` to the
    /// partition's end (its last stable offset).
    fn read_hand_overs(&self, shard: u32, from: i64) -> Option<u64> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic, shard as i32, Offset::Offset(from))
            .ok()?;
        self.reader.assign(&list).ok()?;
        let mut furthest = None;
        let deadline = std::time::Instant::now() + FETCH_TIMEOUT;
        while std::time::Instant::now() < deadline {
            match self.reader.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    // Partition 0 starts with the group's identity, which is no hand-over.
                    let handed = message
                        .payload()
                        .and_then(|p| serde_json::from_slice::<HandOver>(p).ok());
                    if let Some(handed) = handed {
                        furthest = furthest.max(Some(handed.position));
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(_)) | None => {}
            }
        }
        furthest
    }

    fn take_on(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        // Nothing is read from the coordination topic: its partitions only carry positions.
        let _ = consumer.pause(partitions);
        let committed = consumer.committed_offsets(partitions.clone(), FETCH_TIMEOUT);
        let mut took = Vec::new();
        for element in partitions.elements_for_topic(&self.topic) {
            let shard = element.partition() as u32;
            let recorded = committed
                .as_ref()
                .ok()
                .and_then(|list| list.find_partition(&self.topic, element.partition()))
                .map(|p| p.offset());
            let committed = match recorded {
                Some(Offset::Offset(position)) if position >= 0 => position as u64,
                // Never recorded: the shard starts at the timeline's first arrival.
                _ => 0,
            };
            let handed = self.last_hand_over(shard).unwrap_or(0);
            took.push((shard, committed.max(handed)));
        }
        let mut state = self.state();
        for &(shard, position) in &took {
            state.ownership.take(shard, position);
            if position < state.next {
                state.behind.push(CatchUp {
                    shard,
                    from: position,
                });
            }
        }
        if let Err(err) = committed {
            state.changes.push(Change::Failed(format!(
                "could not read the positions of the shards taken on ({err}); they start at the first arrival"
            )));
        }
        state.changes.push(Change::Took(took));
    }
}

impl ClientContext for Members {}

impl ConsumerContext for Members {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => self.give_up(consumer, partitions),
            Rebalance::Assign(_) => {}
            Rebalance::Error(err) => self.state().changes.push(Change::Failed(err.to_string())),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if partitions.count() > 0 {
                self.take_on(consumer, partitions);
            }
        }
    }
}
