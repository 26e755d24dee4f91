//! Instances that make one stream together (`--group NAME`), coordinated by Kafka's own consumer
//! group protocol, as Kafka Connect and Kafka Streams share work.
//!
//! The timeline is cut into shards (see [`crate::pipeline::Share`]). The group has a
//! coordination topic, `sim.<group>.shards`, with one partition a shard, created by the first
//! instance, whose first message records the group's [`Identity`]. Each instance joins the
//! consumer group `sim.<group>` on that topic with the cooperative-sticky assignor: the
//! partitions it is assigned are the shards it makes, so joins, leaves and crashes move shards
//! with Kafka's machinery. A shard's position (the next arrival of it to make) is the group's
//! committed offset of its partition. Every second the member marks its positions, and records
//! them once every record sent before the mark is delivered (the producer numbers records, see
//! [`crate::sink::Progress`]), so the stream never waits for the producer to drain; at a
//! hand-over it waits, then records. At least once: an instance that dies costs what it made
//! since its last record, which the next owner makes again.
//!
//! With `--exactly-once` the sink writes in Kafka transactions, and every second (and at each
//! hand-over) the member commits the open transaction with its shards' positions in it, as
//! messages on their partitions and as the group's offsets. What a dead instance made after its
//! last commit is in a transaction the broker aborts, invisible to `read_committed` readers;
//! the next owner makes it again from the committed positions: exactly once.

pub mod identity;
mod rebalance;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

pub use identity::{Identity, Pinned};
pub use rebalance::Change;
use rebalance::{Members, FETCH_TIMEOUT};

use crate::pipeline::{CatchUp, Ownership, PipelineError, Share};
use crate::rate::Nanos;
use crate::sink::{ensure_topic, Progress, TopicSpec, Transactions};

/// How often a member records its shards' positions.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a member may be silent before the group gives its shards to others: librdkafka's
/// `session.timeout.ms`, lower than its default (45 s) so a crashed instance's shards move
/// within seconds. `-X session.timeout.ms=...` overrides it.
pub const SESSION_TIMEOUT_MS: &str = "10000";

/// How long a member that joins waits for its first shards before it starts walking the
/// timeline anyway (the group may have more members than shards).
const FIRST_SHARDS_WAIT: Duration = Duration::from_secs(30);

/// How long reading or writing the group's identity may take.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(15);

/// Test hook: after this many transactions (`--exactly-once`) the member stops working, between
/// two transactions, and sleeps until it is killed. librdkafka's mock cluster never aborts a dead
/// producer's open transaction (a real broker does, after `transaction.timeout.ms`), so the crash
/// test kills a member with none open (see `tests/group.rs`).
pub const PAUSE_HOOK: &str = "SIM_GROUP_PAUSE_AFTER_COMMITS";

/// The `transactional.id` of an instance's producer with `--exactly-once` (`None` without, or
/// outside a group): unique to the instance, since a member the group replaced is fenced by the
/// group's generation (the offsets each transaction commits), not by its id.
pub fn transactional_id(settings: &crate::settings::Settings) -> Option<String> {
    let group = settings.group.as_ref().filter(|_| settings.exactly_once)?;
    Some(format!(
        "sim.{group}.{}",
        uuid::Builder::from_random_bytes(rand::random()).into_uuid()
    ))
}

/// Why an instance could not join its group.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GroupError {
    /// The instance differs from the group it asked to join.
    #[error("this instance does not match group `{group}`: {differences}")]
    #[diagnostic(
        code(sim::group::differs),
        help("every instance of a group runs the same scenario, settings, seed and shard count (the first instance recorded them on topic {topic}); to run another, choose another group name")
    )]
    Differs {
        /// The group.
        group: String,
        /// Its coordination topic.
        topic: String,
        /// What differs, with both values.
        differences: String,
    },
    /// Groups need Kafka, and a broker every instance reaches.
    #[error("--group `{group}` needs {what}")]
    #[diagnostic(
        code(sim::group::needs_kafka),
        help("the instances of a group share one Kafka cluster: give each the same --brokers (the embedded broker of `sim broker` will do on one machine)")
    )]
    NeedsKafka {
        /// The group.
        group: String,
        /// What is missing.
        what: String,
    },
    /// `sim run --group` streams live only.
    #[error("--group `{group}` runs the live stream only, and this `sim run` would backfill first (init_mode = flush)")]
    #[diagnostic(
        code(sim::group::backfill_in_run),
        help("backfill a group with `sim backfill --group NAME`, then stream with `sim run --group OTHER --set init_mode=skip`")
    )]
    BackfillInRun {
        /// The group.
        group: String,
    },
    /// `--exactly-once` outside a group.
    #[error(
        "--exactly-once makes a group's hand-overs exactly once, and this instance is in no group"
    )]
    #[diagnostic(
        code(sim::group::exactly_once_alone),
        help("add --group NAME and --brokers; one instance alone hands nothing over, and its events are written once unless the broker fails")
    )]
    ExactlyOnceAlone,
    /// The coordination topic could not be set up or read.
    #[error("group `{group}`: {reason}")]
    #[diagnostic(code(sim::group::coordination))]
    Coordination {
        /// The group.
        group: String,
        /// What failed.
        reason: String,
    },
}

/// The group an instance joins, and how to reach its brokers.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The group's name.
    pub name: String,
    /// Shards of its timeline.
    pub shards: u32,
    /// Replication of the coordination topic (the events topic's).
    pub replication: i32,
    /// The client configuration: brokers and the user's properties.
    pub client: ClientConfig,
}

impl GroupSpec {
    /// The coordination topic: one partition a shard.
    pub fn topic(&self) -> String {
        format!("sim.{}.shards", self.name)
    }

    fn coordination(&self, reason: impl ToString) -> GroupError {
        GroupError::Coordination {
            group: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Joins the group's identity: creates the coordination topic if it is not there, records
    /// `proposed` as the identity if none is, and returns the group's, once checked against what
    /// this instance pinned.
    pub fn identity(&self, proposed: &Identity, pinned: Pinned) -> Result<Identity, GroupError> {
        let topic = self.topic();
        let spec = TopicSpec {
            name: topic.clone(),
            partitions: self.shards as i32,
            replication: self.replication,
        };
        ensure_topic(&self.client, &spec, false).map_err(|e| self.coordination(e))?;
        let group = match self.read_identity()? {
            Some(group) => group,
            None => {
                self.write_identity(proposed)?;
                // Two instances may have written at once: the first message is the identity.
                self.read_identity()?
                    .ok_or_else(|| self.coordination("the identity written cannot be read back"))?
            }
        };
        let partitions = self.partitions()?;
        let mut differences = group.differences(proposed, pinned);
        if partitions != group.shards {
            differences.push((
                "partitions of the coordination topic",
                group.shards.to_string(),
                partitions.to_string(),
            ));
        }
        if differences.is_empty() {
            return Ok(group);
        }
        Err(GroupError::Differs {
            group: self.name.clone(),
            topic,
            differences: differences
                .iter()
                .map(|(what, theirs, ours)| {
                    format!("{what}: the group's is {theirs}, this instance's {ours}")
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    fn partitions(&self) -> Result<u32, GroupError> {
        let consumer: BaseConsumer = self.client.create().map_err(|e| self.coordination(e))?;
        let topic = self.topic();
        let metadata = consumer
            .fetch_metadata(Some(&topic), IDENTITY_TIMEOUT)
            .map_err(|e| self.coordination(e))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len() as u32))
    }

    /// The first message of the coordination topic's first partition, if any.
    fn read_identity(&self) -> Result<Option<Identity>, GroupError> {
        let topic = self.topic();
        let mut config = self.client.clone();
        config.set("enable.auto.commit", "false");
        config.set("group.id", format!("sim.{}.identity-reader", self.name));
        let consumer: BaseConsumer = config.create().map_err(|e| self.coordination(e))?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, 0, IDENTITY_TIMEOUT)
            .map_err(|e| self.coordination(format!("cannot read topic {topic}: {e}")))?;
        if high <= low {
            return Ok(None);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&topic, 0, Offset::Offset(low))
            .map_err(|e| self.coordination(e))?;
        consumer.assign(&list).map_err(|e| self.coordination(e))?;
        let deadline = Instant::now() + IDENTITY_TIMEOUT;
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    let payload = message.payload().unwrap_or_default();
                    return Identity::from_json(payload).map(Some).ok_or_else(|| {
                        self.coordination(format!(
                            "the first message of {topic} is not a group's identity: is the topic another program's?"
                        ))
                    });
                }
                Some(Err(err)) => return Err(self.coordination(err)),
                None => {}
            }
        }
        Err(self.coordination(format!(
            "the identity on {topic} could not be read within {} s",
            IDENTITY_TIMEOUT.as_secs()
        )))
    }

    fn write_identity(&self, identity: &Identity) -> Result<(), GroupError> {
        let topic = self.topic();
        let producer: BaseProducer = self.client.create().map_err(|e| self.coordination(e))?;
        let payload = identity.to_json();
        producer
            .send(
                BaseRecord::<(), _>::to(&topic)
                    .partition(0)
                    .payload(&payload),
            )
            .map_err(|(e, _)| self.coordination(e))?;
        producer
            .flush(IDENTITY_TIMEOUT)
            .map_err(|e| self.coordination(format!("cannot record the identity: {e}")))
    }

    /// Joins the consumer group as a member whose sink delivers as `progress` says, in
    /// `transactions` with `--exactly-once`; shards arrive with the first rebalance, at the
    /// pipeline's first step. `report` hears of every rebalance.
    pub fn join(
        &self,
        identity: &Identity,
        progress: Arc<dyn Progress>,
        transactions: Option<Arc<dyn Transactions>>,
        report: Box<dyn FnMut(Change) + Send>,
    ) -> Result<Member, GroupError> {
        let topic = self.topic();
        let mut config = self.client.clone();
        config.set("group.id", format!("sim.{}", self.name));
        if config.get("partition.assignment.strategy").is_none() {
            config.set("partition.assignment.strategy", "cooperative-sticky");
        }
        config.set("enable.auto.commit", "false");
        config.set("auto.offset.reset", "earliest");
        if config.get("session.timeout.ms").is_none() {
            config.set("session.timeout.ms", SESSION_TIMEOUT_MS);
        }
        let producer: BaseProducer = self
            .client
            .clone()
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| self.coordination(e))?;
        let mut reader = self.client.clone();
        reader.set("enable.auto.commit", "false");
        reader.set("group.id", format!("sim.{}.hand-over-reader", self.name));
        reader.set("enable.partition.eof", "true");
        // Positions an aborted transaction wrote were never reached.
        reader.set("isolation.level", "read_committed");
        let reader: BaseConsumer = reader.create().map_err(|e| self.coordination(e))?;
        let members = Members::new(
            &topic,
            identity.shards,
            progress,
            transactions,
            producer,
            reader,
        );
        let consumer: BaseConsumer<Members> = config
            .create_with_context(members)
            .map_err(|e| self.coordination(e))?;
        consumer
            .subscribe(&[&topic])
            .map_err(|e| self.coordination(e))?;
        let mut member = Member {
            name: self.name.clone(),
            consumer,
            ownership: Ownership::none(identity.shards),
            origin: identity.now_ms.saturating_mul(1_000_000),
            last_mark: Instant::now(),
            pending: VecDeque::new(),
            report,
            transactions: 0,
            pause_after: std::env::var(PAUSE_HOOK).ok().and_then(|n| n.parse().ok()),
        };
        // Walking the timeline while owning nothing would leave every shard to catch up.
        let deadline = Instant::now() + FIRST_SHARDS_WAIT;
        while member.ownership.owned().is_empty() && Instant::now() < deadline {
            member.serve(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(member)
    }
}

/// The time an instance of `group` takes as now: a backfill's end is the group's; a live
/// stream's clock runs as far past the group's start as the wall clock has since it started.
pub fn group_now(group: &Identity, wall: DateTime<Utc>) -> DateTime<Utc> {
    let now = DateTime::from_timestamp_millis(group.now_ms).unwrap_or(wall);
    if group.command == "backfill" {
        return now;
    }
    now + (wall - DateTime::from_timestamp_millis(group.started_ms).unwrap_or(wall))
}

/// An instance's membership in its group: the [`Share`] its pipeline makes.
pub struct Member {
    name: String,
    consumer: BaseConsumer<Members>,
    /// The shards owned, as of the last step.
    ownership: Ownership,
    /// The live timeline's start, nanoseconds.
    origin: Nanos,
    /// When the last positions were marked to be recorded.
    last_mark: Instant,
    /// Positions to record once every record sent before their mark is delivered, oldest
    /// first: the stream goes on meanwhile, and nothing waits for the producer to drain.
    pending: VecDeque<(u64, Vec<(u32, u64)>)>,
    /// Hears of every rebalance.
    report: Box<dyn FnMut(Change) + Send>,
    /// Transactions committed between batches (`--exactly-once`).
    transactions: u64,
    /// The test hook's count of transactions ([`PAUSE_HOOK`]).
    pause_after: Option<u64>,
}

impl Member {
    fn failed(&self, message: impl ToString) -> PipelineError {
        PipelineError::Group {
            group: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// Serves librdkafka's queue (rebalances run here) and copies what they changed; the shards
    /// taken on behind `next`, and whether shards moved.
    fn serve(&mut self, next: u64) -> (Vec<CatchUp>, bool) {
        self.consumer.context().state().next = next;
        let _ = self.consumer.poll(Duration::ZERO);
        let (changes, behind) = {
            let mut state = self.consumer.context().state();
            self.ownership.clone_from(&state.ownership);
            (
                std::mem::take(&mut state.changes),
                std::mem::take(&mut state.behind),
            )
        };
        let moved = !changes.is_empty();
        for change in changes {
            (self.report)(change);
        }
        (behind, moved)
    }

    /// Each owned shard's position when the timeline's next arrival is `next`.
    fn positions(&self, next: u64) -> Vec<(u32, u64)> {
        self.ownership
            .owned()
            .into_iter()
            .filter_map(|s| self.ownership.position(s, next).map(|p| (s, p)))
            .collect()
    }

    /// Records the newest pending positions whose records are all delivered.
    fn record_delivered(&mut self) -> Result<(), PipelineError> {
        let progress = self.consumer.context().progress();
        let mut ready = None;
        while self
            .pending
            .front()
            .is_some_and(|(mark, _)| progress.reached(*mark))
        {
            ready = self.pending.pop_front();
        }
        match ready {
            Some((_, positions)) => self.record(&positions, CommitMode::Async),
            None => Ok(()),
        }
    }

    /// With `--exactly-once`: commits the open transaction with every owned shard's position
    /// when the timeline's next arrival is `next`.
    fn commit_transaction(&mut self, next: u64, mode: CommitMode) -> Result<(), PipelineError> {
        let positions = self.positions(next);
        self.consumer
            .context()
            .commit_transaction(&self.consumer, &positions, mode)
            .map_err(|err| {
                self.failed(format!(
                    "a transaction failed ({err}): what this instance made since its last commit is invisible to read_committed readers, and the next owners of its shards make it again"
                ))
            })?;
        self.transactions += 1;
        Ok(())
    }

    /// The test hook: once [`PAUSE_HOOK`] transactions are committed, sleep until killed.
    fn pause_if_hooked(&mut self) {
        let Some(after) = self.pause_after.filter(|&after| self.transactions >= after) else {
            return;
        };
        (self.report)(Change::Paused(after));
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Commits `positions` as the group's offsets of their shards' partitions.
    fn record(&self, positions: &[(u32, u64)], mode: CommitMode) -> Result<(), PipelineError> {
        let list = self.consumer.context().positions(positions);
        match self.consumer.commit(&list, mode) {
            Ok(()) => Ok(()),
            // A rebalance under way: the hand-over records the positions itself.
            Err(err)
                if err.rdkafka_error_code().is_some_and(|code| {
                    matches!(
                        code,
                        rdkafka::types::RDKafkaErrorCode::RebalanceInProgress
                            | rdkafka::types::RDKafkaErrorCode::IllegalGeneration
                            | rdkafka::types::RDKafkaErrorCode::UnknownMemberId
                    )
                }) =>
            {
                Ok(())
            }
            Err(err) => Err(self.failed(format!("cannot record the shards' positions: {err}"))),
        }
    }
}

impl Share for Member {
    fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    fn step(&mut self, next: u64) -> Result<Vec<CatchUp>, PipelineError> {
        let (behind, moved) = self.serve(next);
        if moved {
            // Positions marked before shards moved may be behind a hand-over: never recorded.
            self.pending.clear();
        }
        if self.consumer.context().transactional() {
            if self.last_mark.elapsed() >= COMMIT_INTERVAL {
                self.last_mark = Instant::now();
                self.commit_transaction(next, CommitMode::Async)?;
                self.pause_if_hooked();
            }
            return Ok(behind);
        }
        if self.last_mark.elapsed() >= COMMIT_INTERVAL {
            self.last_mark = Instant::now();
            let positions = self.positions(next);
            if !positions.is_empty() {
                let mark = self.consumer.context().progress().mark();
                self.pending.push_back((mark, positions));
            }
        }
        self.record_delivered()?;
        Ok(behind)
    }

    fn commit(&mut self, next: u64) -> Result<(), PipelineError> {
        self.pending.clear();
        self.last_mark = Instant::now();
        if self.consumer.context().transactional() {
            return self.commit_transaction(next, CommitMode::Sync);
        }
        let positions = self.positions(next);
        if positions.is_empty() || !self.consumer.context().settle() {
            // Nothing owned, or not delivered in time: the last record stands.
            return Ok(());
        }
        self.record(&positions, CommitMode::Sync)
    }

    fn all_reached(&mut self, total: u64) -> Result<bool, PipelineError> {
        let topic = self.consumer.context().topic().to_string();
        let mut list = TopicPartitionList::new();
        for shard in 0..self.ownership.shards() {
            list.add_partition(&topic, shard as i32);
        }
        let committed = self
            .consumer
            .committed_offsets(list, FETCH_TIMEOUT)
            .map_err(|e| self.failed(format!("cannot read the shards' positions: {e}")))?;
        Ok(committed.elements().iter().all(|p| match p.offset() {
            Offset::Offset(position) => position >= total as i64,
            _ => false,
        }))
    }

    fn live_origin(&self) -> Nanos {
        self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(command: &str) -> Identity {
        Identity {
            command: command.into(),
            scenario: "hello".into(),
            fingerprint: String::new(),
            seed: 1,
            shards: 8,
            now_ms: 1_000_000,
            started_ms: 5_000_000,
            exactly_once: false,
        }
    }

    #[test]
    fn a_backfill_ends_where_the_group_s_does_and_a_live_clock_runs_on_from_its_start() {
        let wall = DateTime::from_timestamp_millis(5_060_000).unwrap();
        assert_eq!(
            group_now(&group("backfill"), wall).timestamp_millis(),
            1_000_000
        );
        // A minute after the group started, a late instance's clock is a minute past its now.
        assert_eq!(group_now(&group("run"), wall).timestamp_millis(), 1_060_000);
    }
}
