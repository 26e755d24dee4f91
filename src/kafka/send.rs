//! Sending through librdkafka's queue, and counting what becomes of each message.
//!
//! [`send_waiting`] waits for room while the queue is full (back-pressure) and, with a
//! [`GiveUp`], stops waiting once a stop is asked for and the queue no longer drains;
//! [`DeliveryContext`] is the producers' context that counts every delivery report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use super::stats::ClientStats;
use crate::delivery::DeliveryCounters;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// When a send waiting for room in a full queue gives its record up: once `stop` was asked for
/// and no delivery report came for `after`. The broker then takes nothing, so waiting on would
/// only keep the stop waiting (for `message.timeout.ms`, 5 minutes by default, until librdkafka
/// fails what it queued); while the queue drains, the wait goes on.
#[derive(Debug, Clone, Copy)]
pub struct GiveUp<'a> {
    /// The stop signal.
    pub stop: &'a Shutdown,
    /// How long, once stopping, a queue that does not drain is waited for.
    pub after: Duration,
}

/// Why [`send_waiting`] did not hand a record to librdkafka.
#[derive(Debug, thiserror::Error)]
pub enum Unsent {
    /// The producer refused it: too large, an unknown partition.
    #[error(transparent)]
    Refused(KafkaError),
    /// A stop was asked for while the queue was full and did not drain ([`GiveUp`]).
    #[error(
        "not sent: sim was stopped while the producer's queue was full and the broker took nothing"
    )]
    Stopped,
}

/// Sends `record`, waiting `pause` at a time while librdkafka's queue is full (back-pressure:
/// its own thread drains the queue meanwhile, and the caller, the timeline, waits). The queue's
/// bound ([`super::PRODUCER_DEFAULTS`]) is what keeps memory bounded while a broker is away. With
/// `give_up`, a stop ends the wait for a queue that does not drain. The counters show how long
/// a send has been waiting ([`DeliveryCounters::waiting_for`]).
pub fn send_waiting<K, P>(
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, K, P, usize>,
    pause: Duration,
    give_up: Option<GiveUp<'_>>,
) -> Result<(), Unsent>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let counters = producer.context().counters();
    let mut waiting = false;
    // Since when the stopping send saw no delivery report, and how many were settled then.
    let mut stalled: Option<(Instant, u64)> = None;
    let sent = loop {
        match producer.send(record) {
            Ok(()) => break Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if !waiting {
                    counters.waiting(true);
                    waiting = true;
                }
                if let Some(give_up) = give_up.filter(|g| g.stop.is_triggered()) {
                    let settled = counters.account().settled();
                    match stalled {
                        Some((since, seen)) if seen == settled => {
                            if since.elapsed() >= give_up.after {
                                break Err(Unsent::Stopped);
                            }
                        }
                        _ => stalled = Some((Instant::now(), settled)),
                    }
                }
                std::thread::sleep(pause);
            }
            Err((err, _)) => break Err(Unsent::Refused(err)),
        }
    };
    if waiting {
        counters.waiting(false);
    }
    sent
}

/// Failed deliveries: how many for each reason, and the first reason of all.
#[derive(Debug, Default)]
struct Failures {
    by_reason: BTreeMap<String, u64>,
    first: Option<String>,
}

/// Which numbered records are settled (delivered or failed), as a low-water mark: every record
/// below `low` is, and `ahead[i]` says whether record `low + i` is. Deliveries come back in order
/// within a partition but not across partitions, so `ahead` stays about as long as what is in
/// flight, and a settle costs a store and, now and then, a few pops.
#[derive(Debug, Default)]
struct Settled {
    low: u64,
    ahead: VecDeque<bool>,
}

impl Settled {
    fn settle(&mut self, number: u64) {
        let Some(index) = number.checked_sub(self.low) else {
            return;
        };
        let index = index as usize;
        if index >= self.ahead.len() {
            self.ahead.resize(index + 1, false);
        }
        self.ahead[index] = true;
        while self.ahead.front() == Some(&true) {
            self.ahead.pop_front();
            self.low += 1;
        }
    }
}

/// A producer's delivery callback: counts every delivery report in [`DeliveryCounters`] and
/// keeps why failures failed. librdkafka's thread runs it, so it only bumps counters. Records
/// are numbered in the order they are sent (the number is each one's delivery opaque); once
/// asked to ([`DeliveryContext::track_order`]), it also keeps which of them are settled.
pub struct DeliveryContext {
    counters: Arc<DeliveryCounters>,
    failures: Mutex<Failures>,
    stats: Arc<ClientStats>,
    /// The number of the next record sent.
    next: AtomicU64,
    /// Whether `settled` is kept: only for a member of a group, which records positions by it.
    tracking: AtomicBool,
    settled: Mutex<Settled>,
}

impl DeliveryContext {
    /// A context that counts into `counters`.
    pub fn new(counters: Arc<DeliveryCounters>) -> Self {
        Self {
            counters,
            failures: Mutex::new(Failures::default()),
            stats: Arc::default(),
            next: AtomicU64::new(0),
            tracking: AtomicBool::new(false),
            settled: Mutex::new(Settled::default()),
        }
    }

    /// The delivery opaque of a record that is no event (a shard's position committed in a
    /// transaction): neither counted nor numbered.
    pub const NOT_AN_EVENT: usize = usize::MAX;

    /// Numbers a record about to be sent: its delivery opaque.
    pub fn number(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) as usize
    }

    /// Keeps which records are settled from now on (the ones numbered before count as settled).
    pub fn track_order(&self) {
        let mut settled = lock(&self.settled);
        if !self.tracking.swap(true, Ordering::SeqCst) {
            settled.low = self.next.load(Ordering::SeqCst);
        }
    }

    /// A mark: every record sent so far is numbered below it.
    pub fn mark(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Whether every record numbered below `mark` is settled (with [`Self::track_order`]).
    pub fn reached(&self, mark: u64) -> bool {
        lock(&self.settled).low >= mark
    }

    fn settle(&self, number: usize) {
        if self.tracking.load(Ordering::Relaxed) {
            lock(&self.settled).settle(number as u64);
        }
    }

    /// librdkafka's latest statistics of this client (with `statistics.interval.ms` set).
    pub fn stats(&self) -> Arc<ClientStats> {
        self.stats.clone()
    }

    /// The counters it updates.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// Counts a failed delivery, its reason and its kind (a short name, see
    /// [`failure_kind`]).
    pub fn failed(&self, reason: String, kind: &str) {
        self.counters.failed_as(kind);
        let mut failures = lock(&self.failures);
        failures.first.get_or_insert_with(|| reason.clone());
        *failures.by_reason.entry(reason).or_default() += 1;
    }

    /// Counts a record the producer refused outright: accepted and failed at once, so that
    /// produced = delivered + failed still holds.
    pub fn refused(&self, unsent: &Unsent, number: usize) {
        self.settle(number);
        self.counters.produced();
        let kind = match unsent {
            Unsent::Refused(err) => failure_kind(err),
            Unsent::Stopped => "stopped".into(),
        };
        self.failed(unsent.to_string(), &kind);
    }

    /// Why deliveries failed, with a count for each reason.
    pub fn failure_reasons(&self) -> Vec<(String, u64)> {
        let failures = lock(&self.failures);
        failures
            .by_reason
            .iter()
            .map(|(reason, count)| (reason.clone(), *count))
            .collect()
    }

    /// The reason of the first failed delivery, if one failed.
    pub fn first_failure(&self) -> Option<String> {
        lock(&self.failures).first.clone()
    }
}

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.record(&statistics);
    }
}

/// A failure's kind, for a metric's label: librdkafka's error code in snake case
/// (`message_timed_out`, `message_size_too_large`), so that the label takes a handful of values, not
/// one per message text.
pub fn failure_kind(err: &KafkaError) -> String {
    let Some(code) = err.rdkafka_error_code() else {
        return "other".into();
    };
    let name = format!("{code:?}");
    let mut kind = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            kind.push('_');
        }
        kind.push(c.to_ascii_lowercase());
    }
    kind
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, number: usize) {
        if number == Self::NOT_AN_EVENT {
            return;
        }
        // Settled either way: what failed in flight is unaccounted, and counted so.
        self.settle(number);
        match result {
            Ok(_) => self.counters.delivered(),
            // Failed after it was sent (timed out or purged in flight): the broker may have
            // written it. Counted neither delivered nor failed, it stays in the account as
            // unaccounted (and the exit status says so), so `failed` only ever counts messages
            // the topic does not hold.
            Err((_, message)) if possibly_persisted(message) => {}
            Err((err, _)) => self.failed(err.to_string(), &failure_kind(err)),
        }
    }
}

/// Whether librdkafka says the broker may have written `message` although its delivery failed.
fn possibly_persisted(message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    // SAFETY: the pointer is the message of the delivery report being handled, valid for the
    // callback's duration; the call only reads its status.
    let status = unsafe { rdkafka_sys::rd_kafka_message_status(message.ptr()) };
    status == rdkafka_sys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_reason_and_kind_and_the_first_is_kept() {
        let counters = Arc::new(DeliveryCounters::default());
        let context = DeliveryContext::new(counters.clone());
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        context.refused(&Unsent::Refused(too_large.clone()), context.number());
        context.refused(&Unsent::Stopped, context.number());
        context.failed("timed out".into(), "message_timed_out");
        context.failed("timed out".into(), "message_timed_out");
        assert_eq!(counters.account().produced, 2);
        assert_eq!(counters.account().failed, 4);
        assert_eq!(
            context.first_failure().as_deref(),
            Some(too_large.to_string().as_str())
        );
        let reasons = context.failure_reasons();
        assert_eq!(reasons.len(), 3);
        assert!(
            reasons.contains(&("timed out".to_string(), 2)),
            "{reasons:?}"
        );
        assert_eq!(
            counters.failures_by_kind(),
            vec![
                ("message_size_too_large".to_string(), 1),
                ("message_timed_out".to_string(), 2),
                ("stopped".to_string(), 1),
            ]
        );
    }

    #[test]
    fn a_failure_kind_is_the_error_code_in_snake_case() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(failure_kind(&timed_out), "message_timed_out");
        assert_eq!(failure_kind(&KafkaError::Canceled), "other");
    }

    #[test]
    fn the_low_water_mark_passes_only_what_all_records_before_it_reached() {
        let context = DeliveryContext::new(Arc::default());
        context.track_order();
        let numbers: Vec<usize> = (0..4).map(|_| context.number()).collect();
        let mark = context.mark();
        context.settle(numbers[1]);
        context.settle(numbers[3]);
        assert!(!context.reached(mark) && !context.reached(1));
        context.settle(numbers[0]);
        assert!(context.reached(2) && !context.reached(mark));
        context.settle(numbers[2]);
        assert!(context.reached(mark));
    }
}
