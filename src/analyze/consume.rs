//! The consumer group, its batches and offsets, and the run loop of `sim analyze`.
//!
//! Messages are processed one by one into the [`Analyzer`] and into a *batch*: per source
//! partition, the aggregate delta, the alerts and the dead letters of the messages read since the
//! last commit. A batch is committed every `commit_every` messages or `commit_interval`, at
//! exit, and before partitions are revoked in a rebalance:
//!
//! - at least once (default): the batch's outputs are published and acknowledged, and only then
//!   are the offsets committed; a crash in between publishes the batch again on restart;
//! - exactly once (`--exactly-once`): outputs and offsets go in one producer transaction
//!   (`send_offsets_to_transaction`), so a batch's effects are visible to `read_committed`
//!   readers once or never.
//!
//! In exactly-once mode every batch also writes, per source partition, a progress record
//! (`darooghe.analyze_progress`, see [`super::publish`]) in its transaction. When partitions are
//! assigned (at start and in every rebalance) the member reads those records with
//! `read_committed` and starts each partition after the highest committed `to_offset`, unless
//! the group's committed offset is already there: the outputs themselves say where the last
//! committed batch ended, even on a broker that acknowledges a transaction's offsets without
//! keeping them (librdkafka's mock cluster).
//!
//! Committing on revoke (inside librdkafka's rebalance callback, still on this thread during
//! `poll`) means a partition changes hands exactly at a commit: nothing the old owner processed
//! is redone by the new one, and nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::aggregate::Totals;
use super::analyzer::Analyzer;
use super::detect::script::{RuleChange, ScriptRules};
use super::detect::{Alert, Detector};
use super::publish::{progress_key, Publisher};
use super::summary::{RunInfo, Summary};
use super::transaction::{parse, Incoming, Poison, Position};
use super::view::{self, Progress};
use super::{AnalyzeError, AnalyzeNotice, AnalyzeOptions, PROGRESS_TOPIC};
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// How long to wait for the brokers' first answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the live view is redrawn.
const VIEW_INTERVAL: Duration = Duration::from_secs(1);
/// The header that carries the ground truth.
const PATTERN_HEADER: &str = "fraud_pattern";
/// How long reading the progress records back may take.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Test hook: after this many commits the analyzer stops working (between two transactions,
/// none open) and sleeps until it is killed. The kill/restart test uses it because the mock
/// cluster never aborts a dead member's open transaction (see `tests/analyze.rs`).
const PAUSE_HOOK: &str = "SIM_ANALYZE_PAUSE_AFTER_COMMITS";

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

/// How long `--until-idle` keeps polling, once caught up, for a batch whose commit a rebalance
/// refused to be committed at the next assignment.
const ORPHAN_WAIT: Duration = Duration::from_secs(30);

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

/// The uncommitted batch and the committed totals.
#[derive(Default)]
struct Pending {
    batches: BTreeMap<i32, PartitionBatch>,
    messages: u64,
    started: Option<Instant>,
    totals: Totals,
    commits: u64,
    /// An error from a commit made inside the rebalance callback, raised by the loop.
    failure: Option<AnalyzeError>,
    warnings: Vec<String>,
    /// Batches whose commit failed when their partitions were revoked (a broker may refuse
    /// commits while the group rebalances, as librdkafka's mock cluster does): committed at the
    /// next assignment if the partition comes back, else left for its new owner to process
    /// again. Until committed they are in no totals.
    orphaned: BTreeMap<i32, PartitionBatch>,
}

/// Partitions assigned, and the changes the loop has not looked at yet.
#[derive(Default)]
struct Membership {
    assigned: BTreeSet<i32>,
    revoked: Vec<i32>,
    added: Vec<i32>,
}

/// The consumer's context: rebalance and statistics callbacks, and what they need to commit.
pub struct GroupContext {
    topic: String,
    publisher: Option<Publisher>,
    pending: Mutex<Pending>,
    membership: Mutex<Membership>,
    lag: Mutex<BTreeMap<i32, i64>>,
    /// Exactly once: how to read the progress records back.
    recovery: Option<Recovery>,
}

/// What reading the progress records needs.
struct Recovery {
    config: ClientConfig,
    group: String,
}

impl Recovery {
    /// Per partition of `topic` in `partitions`, the highest `to_offset` of this group's
    /// committed progress records.
    fn progress(
        &self,
        topic: &str,
        partitions: &BTreeSet<i32>,
    ) -> Result<BTreeMap<i32, i64>, AnalyzeError> {
        let failed = |reason: String| AnalyzeError::Kafka {
            what: "reading the progress records",
            reason,
        };
        let mut config = self.config.clone();
        config
            .set("group.id", format!("{}.progress-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Only what committed transactions wrote: a fenced member's batch did not happen.
            .set("isolation.level", "read_committed");
        let reader: BaseConsumer = config.create().map_err(|e| failed(e.to_string()))?;
        let metadata = reader
            .fetch_metadata(Some(PROGRESS_TOPIC), CONNECT_TIMEOUT)
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
                .fetch_watermarks(PROGRESS_TOPIC, part.id(), CONNECT_TIMEOUT)
                .map_err(|e| failed(e.to_string()))?;
            if high > low {
                list.add_partition_offset(PROGRESS_TOPIC, part.id(), Offset::Beginning)
                    .map_err(|e| failed(e.to_string()))?;
                waiting.insert(part.id());
            }
        }
        let mut progress = BTreeMap::new();
        if waiting.is_empty() {
            return Ok(progress);
        }
        reader.assign(&list).map_err(|e| failed(e.to_string()))?;
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
                    let Some(value) = message
                        .payload()
                        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                    else {
                        continue;
                    };
                    let (Some(partition), Some(to)) = (
                        value["source_partition"].as_i64(),
                        value["to_offset"].as_i64(),
                    ) else {
                        continue;
                    };
                    let Ok(partition) = i32::try_from(partition) else {
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
}

impl GroupContext {
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
        let mut query = TopicPartitionList::new();
        for &partition in progress.keys() {
            query.add_partition(&self.topic, partition);
        }
        let stored: BTreeMap<i32, i64> = match consumer.committed_offsets(query, CONNECT_TIMEOUT) {
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
        };
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
        if pending.batches.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (&partition, batch) in &pending.batches {
            offsets
                .add_partition_offset(&self.topic, partition, Offset::Offset(batch.next_offset))
                .map_err(|e| AnalyzeError::Kafka {
                    what: "listing offsets",
                    reason: e.to_string(),
                })?;
        }
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
                    let batches = std::mem::take(&mut pending.batches);
                    pending.orphaned.extend(batches);
                    pending.messages = 0;
                    pending.started = None;
                    return Ok(());
                }
            }
        }
        for batch in std::mem::take(&mut pending.batches).values() {
            pending.totals.merge(&batch.delta);
        }
        pending.messages = 0;
        pending.started = None;
        pending.commits += 1;
        Ok(())
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
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
            for element in list.elements_for_topic(&self.topic) {
                membership.assigned.remove(&element.partition());
                membership.revoked.push(element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut membership = lock(&self.membership);
            for element in list.elements_for_topic(&self.topic) {
                membership.assigned.insert(element.partition());
                membership.added.push(element.partition());
            }
        }
    }
}

/// The client configuration every client of the run shares: brokers and the user's properties.
fn base_config(options: &AnalyzeOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &options.brokers);
    for (key, value) in &options.properties {
        config.set(key, value);
    }
    config
}

fn consumer_config(options: &AnalyzeOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group)
        // Offsets are committed by hand, after the effects are recorded (see the module doc).
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "auto.offset.reset",
            if options.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    if options.exactly_once {
        // Read only committed input: an aborted producer's messages are not transactions.
        config.set("isolation.level", "read_committed");
    }
    if options.live_view {
        config.set("statistics.interval.ms", "1000");
    }
    for (key, value) in &options.properties {
        config.set(key, value);
    }
    config
}

/// The input topic's partitions and replication factor; an error when it does not exist.
fn topic_shape(
    consumer: &BaseConsumer<GroupContext>,
    options: &AnalyzeOptions,
) -> Result<(i32, i32), AnalyzeError> {
    let metadata = consumer
        .fetch_metadata(Some(&options.topic), CONNECT_TIMEOUT)
        .map_err(|e| AnalyzeError::Unreachable {
            brokers: options.brokers.clone(),
            origin: options.brokers_origin.clone(),
            reason: e.to_string(),
        })?;
    let topic = metadata.topics().iter().find(|t| t.name() == options.topic);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            let replication = t.partitions()[0].replicas().len().max(1) as i32;
            Ok((t.partitions().len() as i32, replication))
        }
        _ => Err(AnalyzeError::NoTopic {
            topic: options.topic.clone(),
            brokers: options.brokers.clone(),
        }),
    }
}

fn load_rules(
    options: &AnalyzeOptions,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<ScriptRules, AnalyzeError> {
    let Some(dir) = &options.rules_dir else {
        return Ok(ScriptRules::none());
    };
    let (rules, changes) = ScriptRules::load(dir).map_err(|source| AnalyzeError::Rules {
        path: dir.clone(),
        source,
    })?;
    for change in changes {
        match change {
            // A rule that does not compile at start is an error, as a broken scenario is.
            RuleChange::Rejected(err) => return Err(err.into()),
            other => notify(AnalyzeNotice::Rule(other)),
        }
    }
    Ok(rules)
}

/// Watches the rules folder, when hot reload is on.
struct RuleWatch {
    events: std::sync::mpsc::Receiver<notify_debouncer_mini::DebounceEventResult>,
    _watcher: crate::watch::ScriptWatcher,
}

fn watch_rules(
    options: &AnalyzeOptions,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Option<RuleWatch> {
    let dir = options
        .rules_dir
        .as_ref()
        .filter(|_| options.reload_rules)?;
    let (sender, events) = std::sync::mpsc::channel();
    let started = crate::watch::ScriptWatcher::start(sender).and_then(|mut watcher| {
        // Watching a file inside the folder watches the folder itself.
        watcher.watch(&[dir.join("rules.rhai")])?;
        Ok(watcher)
    });
    match started {
        Ok(watcher) => Some(RuleWatch {
            events,
            _watcher: watcher,
        }),
        Err(err) => {
            notify(AnalyzeNotice::Warning(format!(
                "hot reload of detection rules unavailable: {err}"
            )));
            None
        }
    }
}

/// The run loop's state.
struct Run<'a> {
    options: &'a AnalyzeOptions,
    analyzer: Analyzer,
    rules: Option<RuleWatch>,
    at_eof: BTreeSet<i32>,
    last_message: Instant,
    consumed: u64,
    failing_rules: BTreeSet<String>,
    last_frame: Instant,
    consumed_at_frame: u64,
    /// The test hook's commit count ([`PAUSE_HOOK`]).
    pause_after: Option<u64>,
}

/// Runs `sim analyze` until `shutdown` (or, with `until_idle`, until caught up), then commits
/// what was processed and returns the summary.
pub fn run(
    options: &AnalyzeOptions,
    shutdown: &Shutdown,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<Summary, AnalyzeError> {
    let started = Instant::now();
    if options.brokers.trim().is_empty() {
        return Err(AnalyzeError::NoBrokers);
    }
    let rules = load_rules(options, notify)?;
    // A consumer without the publisher first, to learn the topic's shape for the output topics.
    let probe: BaseConsumer<GroupContext> = consumer_config(options)
        .create_with_context(context(options, None, None))
        .map_err(|e| AnalyzeError::Config(e.to_string()))?;
    let (partitions, replication) = topic_shape(&probe, options)?;
    if options.from_beginning {
        let config = base_config(options);
        if let Ok(Some(missing)) = super::history::missing_history(&config, &options.topic) {
            notify(AnalyzeNotice::MissingHistory(missing));
        }
    }
    drop(probe);
    let publisher =
        if options.output_topics || options.dead_letter_topic.is_some() || options.exactly_once {
            Some(Publisher::connect(
                options,
                &base_config(options),
                partitions,
                replication,
            )?)
        } else {
            None
        };
    let recovery = options.exactly_once.then(|| Recovery {
        config: base_config(options),
        group: options.group.clone(),
    });
    let consumer: BaseConsumer<GroupContext> = consumer_config(options)
        .create_with_context(context(options, publisher, recovery))
        .map_err(|e| AnalyzeError::Config(e.to_string()))?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|e| AnalyzeError::Kafka {
            what: "subscribing",
            reason: e.to_string(),
        })?;
    let mut run = Run {
        options,
        analyzer: Analyzer::new(options.windows, Detector::new(rules)),
        rules: watch_rules(options, notify),
        at_eof: BTreeSet::new(),
        last_message: Instant::now(),
        consumed: 0,
        failing_rules: BTreeSet::new(),
        last_frame: Instant::now(),
        consumed_at_frame: 0,
        pause_after: std::env::var(PAUSE_HOOK).ok().and_then(|n| n.parse().ok()),
    };
    let result = run.go(&consumer, shutdown, notify);
    let context = consumer.context();
    if let Some(publisher) = &context.publisher {
        publisher.close();
    }
    result?;
    run.analyzer.windows.end_of_input();
    let mut pending = lock(&context.pending);
    for warning in pending.warnings.drain(..) {
        notify(AnalyzeNotice::Warning(warning));
    }
    if !pending.orphaned.is_empty() {
        notify(AnalyzeNotice::Warning(format!(
            "partitions {:?} end with a batch uncommitted (not in the totals): the next member \
             processes its events again",
            pending.orphaned.keys().collect::<Vec<_>>()
        )));
    }
    let info = RunInfo {
        topic: options.topic.clone(),
        group: options.group.clone(),
        exactly_once: options.exactly_once,
        consumed: run.consumed,
        commits: pending.commits,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    Ok(Summary::new(&run.analyzer, &pending.totals, info))
}

/// Commits the pending batch (outside a rebalance).
fn commit(consumer: &BaseConsumer<GroupContext>) -> Result<(), AnalyzeError> {
    let context = consumer.context();
    let mut pending = lock(&context.pending);
    context.commit(consumer, &mut pending)
}

fn context(
    options: &AnalyzeOptions,
    publisher: Option<Publisher>,
    recovery: Option<Recovery>,
) -> GroupContext {
    GroupContext {
        topic: options.topic.clone(),
        publisher,
        pending: Mutex::new(Pending::default()),
        membership: Mutex::new(Membership::default()),
        lag: Mutex::new(BTreeMap::new()),
        recovery,
    }
}

impl Run<'_> {
    fn go(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        shutdown: &Shutdown,
        notify: &mut dyn FnMut(AnalyzeNotice),
    ) -> Result<(), AnalyzeError> {
        let mut idle_since: Option<Instant> = None;
        while !shutdown.is_triggered() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => self.process(consumer.context(), &message, notify),
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.at_eof.insert(partition);
                    self.analyzer.partition_idle(partition);
                }
                Some(Err(err)) => notify(AnalyzeNotice::Warning(format!("consumer: {err}"))),
                None => {}
            }
            self.after_poll(consumer.context(), notify)?;
            if self.commit_due(consumer.context()) {
                commit(consumer)?;
                self.pause_if_hooked(consumer.context(), notify);
            }
            self.reload_rules(notify);
            self.draw(consumer.context(), notify);
            if self.options.until_idle && self.caught_up(consumer.context()) {
                commit(consumer)?;
                // A commit refused during a rebalance (another member leaving) is held until
                // this member's next assignment: keep polling until then, or a while at most.
                let held = !lock(&consumer.context().pending).orphaned.is_empty();
                let waited = *idle_since.get_or_insert_with(Instant::now);
                if !held || waited.elapsed() >= ORPHAN_WAIT {
                    break;
                }
            } else {
                idle_since = None;
            }
        }
        commit(consumer)
    }

    fn process(
        &mut self,
        context: &GroupContext,
        message: &BorrowedMessage<'_>,
        notify: &mut dyn FnMut(AnalyzeNotice),
    ) {
        let position = Position {
            partition: message.partition(),
            offset: message.offset(),
        };
        self.at_eof.remove(&position.partition);
        self.last_message = Instant::now();
        self.consumed += 1;
        let pattern = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == PATTERN_HEADER)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        });
        let timestamp_ms = match message.timestamp() {
            Timestamp::CreateTime(ms) => Some(ms),
            _ => None,
        };
        let incoming = Incoming {
            payload: message.payload(),
            timestamp_ms,
            pattern,
            position,
        };
        let mut pending = lock(&context.pending);
        pending.messages += 1;
        pending.started.get_or_insert_with(Instant::now);
        let batch = pending
            .batches
            .entry(position.partition)
            .or_insert_with(|| PartitionBatch {
                first_offset: position.offset,
                ..PartitionBatch::default()
            });
        batch.next_offset = position.offset + 1;
        match parse(incoming) {
            Ok(tx) => {
                let verdict = self
                    .analyzer
                    .record(&tx, message.payload().unwrap_or_default());
                batch.delta.add(&tx);
                batch.alerts.extend(verdict.alerts);
                for (rule, error) in verdict.errors {
                    if self.failing_rules.insert(rule) {
                        notify(AnalyzeNotice::RuleFailed(error));
                    }
                }
            }
            Err(poison) => {
                if self.options.dead_letter_topic.is_some() {
                    batch.dead_letters.push(DeadLetter {
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                        poison: poison.clone(),
                    });
                }
                self.analyzer.poison(poison.clone());
                drop(pending);
                notify(AnalyzeNotice::Poison(poison));
            }
        }
    }

    /// Takes in what the rebalance callbacks did during the poll.
    fn after_poll(
        &mut self,
        context: &GroupContext,
        notify: &mut dyn FnMut(AnalyzeNotice),
    ) -> Result<(), AnalyzeError> {
        let (revoked, added) = {
            let mut membership = lock(&context.membership);
            (
                std::mem::take(&mut membership.revoked),
                std::mem::take(&mut membership.added),
            )
        };
        for partition in &revoked {
            self.at_eof.remove(partition);
            self.analyzer.forget_partition(*partition);
        }
        if !revoked.is_empty() {
            notify(AnalyzeNotice::Revoked(revoked));
        }
        for partition in &added {
            self.analyzer.assign_partition(*partition);
        }
        if !added.is_empty() {
            notify(AnalyzeNotice::Assigned(added));
        }
        let mut pending = lock(&context.pending);
        for warning in pending.warnings.drain(..) {
            notify(AnalyzeNotice::Warning(warning));
        }
        match pending.failure.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The test hook: once [`PAUSE_HOOK`] commits are done, sleep until killed.
    fn pause_if_hooked(&self, context: &GroupContext, notify: &mut dyn FnMut(AnalyzeNotice)) {
        let Some(after) = self.pause_after else {
            return;
        };
        if lock(&context.pending).commits < after {
            return;
        }
        notify(AnalyzeNotice::Warning(format!(
            "paused after {after} commits ({PAUSE_HOOK}), until killed"
        )));
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn commit_due(&self, context: &GroupContext) -> bool {
        let pending = lock(&context.pending);
        pending.messages >= self.options.commit_every
            || pending
                .started
                .is_some_and(|t| t.elapsed() >= self.options.commit_interval)
    }

    /// Every assigned partition is at its end, and has been for the idle grace.
    fn caught_up(&self, context: &GroupContext) -> bool {
        let membership = lock(&context.membership);
        !membership.assigned.is_empty()
            && membership.assigned.iter().all(|p| self.at_eof.contains(p))
            && self.last_message.elapsed() >= self.options.idle_grace
    }

    fn reload_rules(&mut self, notify: &mut dyn FnMut(AnalyzeNotice)) {
        let Some(watch) = &self.rules else {
            return;
        };
        let mut changed = false;
        while let Ok(batch) = watch.events.try_recv() {
            changed |= batch.is_ok_and(|events| {
                events
                    .iter()
                    .any(|e| e.path.extension().is_some_and(|x| x == "rhai"))
            });
        }
        if !changed {
            return;
        }
        match self.analyzer.detector.scripts_mut().reload() {
            Ok(changes) => {
                for change in changes {
                    if let RuleChange::Loaded(path) | RuleChange::Removed(path) = &change {
                        // A new version gets its own first failure reported.
                        if let Some(stem) = path.file_stem() {
                            self.failing_rules.remove(&*stem.to_string_lossy());
                        }
                    }
                    notify(AnalyzeNotice::Rule(change));
                }
            }
            Err(err) => notify(AnalyzeNotice::Warning(format!(
                "reading the rules folder: {err}"
            ))),
        }
    }

    fn draw(&mut self, context: &GroupContext, notify: &mut dyn FnMut(AnalyzeNotice)) {
        if !self.options.live_view || self.last_frame.elapsed() < VIEW_INTERVAL {
            return;
        }
        let elapsed = self.last_frame.elapsed().as_secs_f64();
        let progress = Progress {
            consumed: self.consumed,
            rate: (self.consumed - self.consumed_at_frame) as f64 / elapsed,
            lag: lock(&context.lag).clone(),
        };
        let frame = view::render(&self.analyzer, &lock(&context.pending).totals, &progress);
        self.last_frame = Instant::now();
        self.consumed_at_frame = self.consumed;
        notify(AnalyzeNotice::Frame(frame));
    }
}
