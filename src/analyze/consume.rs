//! The run loop of `sim analyze`: poll, process each message into the [`Analyzer`] and its
//! partition's batch, commit when due, reload rules, draw the live view; at the end, commit what
//! was processed and make the summary.
//!
//! The loop is the only thread that touches the consumer. librdkafka runs the rebalance
//! callbacks ([`super::group`]) inside `poll`, on this thread too, so a commit on revoke never
//! races the loop; what they did (partitions given or taken, warnings, a failed commit) is
//! handed over through the [`GroupContext`] and taken in after each poll. How batches are
//! committed, at least once or exactly once, is described in [`super::group`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};

use super::analyzer::Analyzer;
use super::avro::{is_avro, AvroReader, Decoded, Encodings};
use super::batch::DeadLetter;
use super::detect::pool::DetectPool;
use super::detect::watch::{load_rules, RuleWatch};
use super::detect::{Detector, Payload};
use super::figures::{AnalyzeFigures, ConsumerState, FiguresSnapshot};
use super::group::{commit, GroupContext};
use super::progress::Recovery;
use super::publish::Publisher;
use super::summary::{RunInfo, Summary};
use super::transaction::{parse_with_fields, Incoming, Poison, Position, Transaction};
use super::view::{self, Progress};
use super::{AnalyzeError, AnalyzeNotice, AnalyzeOptions};
use crate::kafka::stats::STATISTICS_INTERVAL_MS;
use crate::registry::RegistryClient;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// How long to wait for the brokers' first answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the live view is redrawn.
const VIEW_INTERVAL: Duration = Duration::from_secs(1);
/// The header that carries the ground truth.
const PATTERN_HEADER: &str = "fraud_pattern";
/// Test hook: after this many commits the analyzer stops working (between two transactions,
/// none open) and sleeps until it is killed. The kill/restart test uses it because the mock
/// cluster never aborts a dead member's open transaction (see `tests/analyze.rs`).
const PAUSE_HOOK: &str = "SIM_ANALYZE_PAUSE_AFTER_COMMITS";
/// How long `--until-idle` keeps polling, once caught up, for a batch whose commit a rebalance
/// refused to be committed at the next assignment.
const ORPHAN_WAIT: Duration = Duration::from_secs(30);

/// How often the run loop publishes the figures a metrics scrape reads: often enough that a
/// scrape is at most this stale, seldom enough that scoring the rules costs the loop nothing.
const FIGURES_INTERVAL: Duration = Duration::from_millis(250);

/// How often librdkafka reports on a consumer reading a backlog to its end (`--until-idle`)
/// while it is observed: five times a second, so the bar's total (what is left to read) comes
/// within a fifth of a second of the partitions' assignment. A report of a few partitions costs
/// the client a few microseconds.
const BACKLOG_STATISTICS_INTERVAL_MS: &str = "200";

/// How long librdkafka waits before fetching a partition again once its local queue is full
/// (`fetch.queue.backoff.ms`, 1000 by default). Catching up a backlog, the analyzer empties that
/// queue in well under a second and then waited out the rest of it: with the default, the native
/// rules read 110,000 events/s on the mock cluster, the loop half idle; with 10 ms,
/// 145,000-195,000 (`analyze_throughput`, 2026-11-28; librdkafka's issue #2879 tells the same of
/// other consumers). At 0 the client threads spin, at three times their CPU; 10 ms costs them
/// nothing measurable. Against Tansu the rate is the same either way: its fetches are the limit.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The group member's configuration: offsets committed by hand, after the effects are recorded
/// (see [`super::group`]); a full fetch queue refetched soon ([`FETCH_QUEUE_BACKOFF_MS`]); the
/// user's properties over all of it. `observed`: a metrics endpoint reads librdkafka's
/// statistics (lag, broker states), so they are asked for unless the user set their interval.
fn consumer_config(options: &AnalyzeOptions, observed: bool) -> ClientConfig {
    let mut defaults = vec![
        ("group.id", options.group.as_str()),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "true"),
        ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS),
        (
            "auto.offset.reset",
            if options.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        ),
    ];
    if options.exactly_once {
        // Read only committed input: an aborted producer's messages are not transactions.
        defaults.push(("isolation.level", "read_committed"));
    }
    if options.until_idle && observed {
        // A backlog read to its end may take a second or two: its progress bar is drawn from
        // these reports, and at one a second it would show late or not at all.
        defaults.push(("statistics.interval.ms", BACKLOG_STATISTICS_INTERVAL_MS));
    } else if options.live_view || observed {
        defaults.push(("statistics.interval.ms", STATISTICS_INTERVAL_MS));
    }
    options.cluster().config(&defaults)
}

/// The input topic's partitions and replication factor; an error when it does not exist.
fn topic_shape(options: &AnalyzeOptions) -> Result<(i32, i32), AnalyzeError> {
    let metadata = options
        .cluster()
        .reach(Some(&options.topic), CONNECT_TIMEOUT)?;
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

/// A message read: a transaction and the JSON event the rules see, or poison.
type Read<'m> = Result<(Transaction, Payload<'m>), Poison>;

/// The run loop's state.
struct Run<'a> {
    options: &'a AnalyzeOptions,
    analyzer: Analyzer,
    rules: Option<RuleWatch>,
    at_eof: BTreeSet<i32>,
    /// When the first message was read, if one was.
    first_message: Option<Instant>,
    last_message: Instant,
    consumed: u64,
    encodings: Encodings,
    avro: AvroReader,
    failing_rules: BTreeSet<String>,
    last_frame: Instant,
    consumed_at_frame: u64,
    /// The test hook's commit count ([`PAUSE_HOOK`]).
    pause_after: Option<u64>,
    /// What a metrics scrape reads (a private one when no endpoint is served).
    figures: Arc<AnalyzeFigures>,
    last_figures: Instant,
}

/// Runs `sim analyze` until `shutdown` (or, with `until_idle`, until caught up), then commits
/// what was processed and returns the summary.
pub fn run(
    options: &AnalyzeOptions,
    shutdown: &Shutdown,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<Summary, AnalyzeError> {
    run_observed(options, shutdown, None, notify)
}

/// [`run`], keeping `figures` up to date for a metrics endpoint when one is given (and asking
/// librdkafka for its statistics then). The figures end in [`ConsumerState::Stopped`] whether
/// the run succeeds or fails.
pub fn run_observed(
    options: &AnalyzeOptions,
    shutdown: &Shutdown,
    figures: Option<Arc<AnalyzeFigures>>,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<Summary, AnalyzeError> {
    let observed = figures.is_some();
    let figures = figures.unwrap_or_default();
    let result = run_with(options, shutdown, observed, &figures, notify);
    figures.set_state(ConsumerState::Stopped);
    result
}

fn run_with(
    options: &AnalyzeOptions,
    shutdown: &Shutdown,
    observed: bool,
    figures: &Arc<AnalyzeFigures>,
    notify: &mut dyn FnMut(AnalyzeNotice),
) -> Result<Summary, AnalyzeError> {
    let started = Instant::now();
    if options.brokers.trim().is_empty() {
        return Err(AnalyzeError::NoBrokers);
    }
    let rules = load_rules(options.rules_dir.as_deref(), notify)?;
    let cluster = options.cluster();
    // The topic's shape first: the output topics are made like it.
    let (partitions, replication) = topic_shape(options)?;
    if options.from_beginning {
        let config = cluster.config(&[]);
        if let Ok(Some(missing)) = super::history::missing_history(&config, &options.topic) {
            notify(AnalyzeNotice::MissingHistory(missing));
        }
    }
    let publisher =
        if options.output_topics || options.dead_letter_topic.is_some() || options.exactly_once {
            Some(Publisher::connect(options, partitions, replication)?)
        } else {
            None
        };
    let recovery = options
        .exactly_once
        .then(|| Recovery::new(cluster.config(&[]), options.group.clone()));
    let consumer: BaseConsumer<GroupContext> = cluster.create(
        &consumer_config(options, observed),
        GroupContext::new(&options.topic, publisher, recovery, figures.clone()),
    )?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|e| AnalyzeError::Kafka {
            what: "subscribing",
            reason: e.to_string(),
        })?;
    let mut run = Run {
        options,
        analyzer: Analyzer::new(options.windows, Detector::new(rules)),
        rules: options
            .rules_dir
            .as_deref()
            .filter(|_| options.reload_rules)
            .and_then(|dir| RuleWatch::start(dir, notify)),
        at_eof: BTreeSet::new(),
        first_message: None,
        last_message: Instant::now(),
        consumed: 0,
        encodings: Encodings::default(),
        avro: AvroReader::new(options.schema_registry.as_ref().map(|(url, origin)| {
            RegistryClient::new(url, origin.clone(), options.registry_credentials.clone())
        })),
        failing_rules: BTreeSet::new(),
        last_frame: Instant::now(),
        consumed_at_frame: 0,
        pause_after: std::env::var(PAUSE_HOOK).ok().and_then(|n| n.parse().ok()),
        figures: figures.clone(),
        last_figures: Instant::now(),
    };
    run.publish_figures(consumer.context(), ConsumerState::Consuming);
    if options.detect_workers > 1 {
        match DetectPool::start(&run.analyzer.detector, options.detect_workers) {
            Ok(pool) => lock(&consumer.context().pending).detection = Some(pool),
            Err(err) => notify(AnalyzeNotice::Warning(format!(
                "detection runs on one thread: starting its workers failed ({err})"
            ))),
        }
    }
    let result = run.go(&consumer, shutdown, notify);
    let context = consumer.context();
    context.close();
    result?;
    run.count_verdicts(context, notify);
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
    run.figures.publish(FiguresSnapshot::of(
        &run.analyzer,
        ConsumerState::Stopped,
        None,
        pending.commits,
    ));
    let info = RunInfo {
        topic: options.topic.clone(),
        group: options.group.clone(),
        exactly_once: options.exactly_once,
        consumed: run.consumed,
        encodings: run.encodings,
        commits: pending.commits,
        elapsed_s: started.elapsed().as_secs_f64(),
        reading_s: run.first_message.map_or(0.0, |first| {
            run.last_message.duration_since(first).as_secs_f64()
        }),
    };
    Ok(Summary::new(&run.analyzer, &pending.totals, info))
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
            let mut read = false;
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    read = true;
                    self.process(consumer.context(), &message, notify)?;
                }
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
            if let Some(watch) = &self.rules {
                let rules = self.analyzer.detector.scripts_mut();
                if watch.reload(rules, &mut self.failing_rules, notify) {
                    let mut pending = lock(&consumer.context().pending);
                    if let Some(pool) = &mut pending.detection {
                        pool.replace_rules(&self.analyzer.detector);
                    }
                }
            }
            self.draw(consumer.context(), notify);
            if self.last_figures.elapsed() >= FIGURES_INTERVAL {
                self.publish_figures(consumer.context(), ConsumerState::Consuming);
            }
            // A message just read is not an idle grace over: the look (a lock, two clock
            // reads) is spared on each of a backlog's messages.
            if self.options.until_idle && !read && self.caught_up(consumer.context()) {
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
    ) -> Result<(), AnalyzeError> {
        let position = Position {
            partition: message.partition(),
            offset: message.offset(),
        };
        self.at_eof.remove(&position.partition);
        let now = Instant::now();
        self.first_message.get_or_insert(now);
        self.last_message = now;
        self.consumed += 1;
        let read = self.read(message, position)?;
        let mut pending = lock(&context.pending);
        let batch = pending.batch_for(position);
        match read {
            Ok((tx, event)) => {
                self.figures.event();
                batch.delta.add(&tx);
                self.analyzer.observe(&tx);
                let pending = &mut *pending;
                if let Some(pool) = &mut pending.detection {
                    pool.submit(tx, event);
                } else {
                    let verdict = self.analyzer.detector.observe(tx, event);
                    if let Some(batch) = pending.batches.get_mut(&position.partition) {
                        batch.alerts.extend(verdict.alerts.iter().cloned());
                    }
                    pending.verdicts.push(verdict);
                }
            }
            Err(poison) => {
                self.figures.poison();
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
        Ok(())
    }

    /// `message` as a transaction and the JSON event the rules read (the value itself, or the
    /// Avro value decoded), or poison. Only a registry that cannot be asked is an error.
    fn read<'m>(
        &mut self,
        message: &'m BorrowedMessage<'_>,
        position: Position,
    ) -> Result<Read<'m>, AnalyzeError> {
        let payload = message.payload();
        let avro = payload.is_some_and(is_avro);
        let event = match payload {
            Some(value) if avro => match self.avro.decode(value)? {
                Decoded::Event(json) => Some(Cow::Owned(json)),
                Decoded::Poison(reason) => {
                    return Ok(Err(Poison {
                        partition: position.partition,
                        offset: position.offset,
                        reason,
                    }))
                }
            },
            other => other.map(Cow::Borrowed),
        };
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
            payload: event.as_deref(),
            timestamp_ms,
            pattern,
            position,
        };
        let (tx, fields) = match parse_with_fields(incoming) {
            Ok(read) => read,
            Err(poison) => return Ok(Err(poison)),
        };
        if avro {
            self.encodings.avro += 1;
        } else {
            self.encodings.json += 1;
        }
        let text = event.unwrap_or_default();
        Ok(Ok((tx, Payload { text, fields })))
    }

    /// Counts the verdicts whose alerts are in their batches (the detection workers' whose turn
    /// has come, and those collected by a commit), in event order.
    fn count_verdicts(&mut self, context: &GroupContext, notify: &mut dyn FnMut(AnalyzeNotice)) {
        let verdicts = {
            let mut pending = lock(&context.pending);
            pending.collect_verdicts(false);
            std::mem::take(&mut pending.verdicts)
        };
        for verdict in verdicts {
            self.analyzer.count_verdict(&verdict);
            for (rule, error) in verdict.errors {
                if self.failing_rules.insert(rule) {
                    notify(AnalyzeNotice::RuleFailed(error));
                }
            }
        }
    }

    /// Takes in what the rebalance callbacks did during the poll.
    fn after_poll(
        &mut self,
        context: &GroupContext,
        notify: &mut dyn FnMut(AnalyzeNotice),
    ) -> Result<(), AnalyzeError> {
        self.count_verdicts(context, notify);
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
        lock(&context.pending).due(self.options.commit_every, self.options.commit_interval)
    }

    /// The member holds its assignment, every assigned partition is at its end, and both have
    /// been so for the idle grace. A member given no partition (more members than partitions)
    /// is caught up once its empty assignment has held for the grace: it waits for nothing.
    fn caught_up(&self, context: &GroupContext) -> bool {
        let membership = lock(&context.membership);
        let grace = self.options.idle_grace;
        membership
            .settled_since
            .is_some_and(|since| since.elapsed() >= grace)
            && membership.assigned.iter().all(|p| self.at_eof.contains(p))
            && self.last_message.elapsed() >= grace
    }

    /// Publishes the figures a metrics scrape reads (see [`super::figures`]).
    fn publish_figures(&mut self, context: &GroupContext, state: ConsumerState) {
        let assigned = {
            let membership = lock(&context.membership);
            membership
                .settled_since
                .map(|_| membership.assigned.iter().copied().collect())
        };
        let commits = lock(&context.pending).commits;
        self.figures.publish(FiguresSnapshot::of(
            &self.analyzer,
            state,
            assigned,
            commits,
        ));
        self.last_figures = Instant::now();
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
        let frame = view::Frame::of(&self.analyzer, &lock(&context.pending).totals, progress);
        self.last_frame = Instant::now();
        self.consumed_at_frame = self.consumed;
        notify(AnalyzeNotice::Frame(Box::new(frame)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_fetch_queue_is_refetched_soon_unless_the_user_says_otherwise() {
        let mut options = AnalyzeOptions::new("localhost:9092");
        let config = consumer_config(&options, false);
        assert_eq!(
            config.get("fetch.queue.backoff.ms"),
            Some(FETCH_QUEUE_BACKOFF_MS)
        );
        options
            .properties
            .insert("fetch.queue.backoff.ms".into(), "1000".into());
        let config = consumer_config(&options, false);
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("1000"));
    }
}
