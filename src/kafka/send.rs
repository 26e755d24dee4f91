//! Sending through librdkafka's queue, and counting what becomes of each message.
//!
//! [`send_waiting`] waits for room while the queue is full (back-pressure) and, with a
//! [`GiveUp`], stops waiting once a stop is asked for and the queue no longer drains;
//! [`DeliveryContext`] is the producers' context that counts every delivery report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

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
    mut record: BaseRecord<'_, K, P>,
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

/// A producer's delivery callback: counts every delivery report in [`DeliveryCounters`] and
/// keeps why failures failed. librdkafka's thread runs it, so it only bumps counters.
pub struct DeliveryContext {
    counters: Arc<DeliveryCounters>,
    failures: Mutex<Failures>,
}

impl DeliveryContext {
    /// A context that counts into `counters`.
    pub fn new(counters: Arc<DeliveryCounters>) -> Self {
        Self {
            counters,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// The counters it updates.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// Counts a failed delivery and its reason.
    pub fn failed(&self, reason: String) {
        self.counters.failed();
        let mut failures = lock(&self.failures);
        failures.first.get_or_insert_with(|| reason.clone());
        *failures.by_reason.entry(reason).or_default() += 1;
    }

    /// Counts a record the producer refused outright: accepted and failed at once, so that
    /// produced = delivered + failed still holds.
    pub fn refused(&self, reason: String) {
        self.counters.produced();
        self.failed(reason);
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

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.counters.delivered(),
            // Failed after it was sent (timed out or purged in flight): the broker may have
            // written it. Counted neither delivered nor failed, it stays in the account as
            // unaccounted (and the exit status says so), so `failed` only ever counts messages
            // the topic does not hold.
            Err((_, message)) if possibly_persisted(message) => {}
            Err((err, _)) => self.failed(err.to_string()),
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
    fn failures_are_counted_by_reason_and_the_first_is_kept() {
        let counters = Arc::new(DeliveryCounters::default());
        let context = DeliveryContext::new(counters.clone());
        context.refused("too large".into());
        context.failed("timed out".into());
        context.failed("timed out".into());
        assert_eq!(counters.account().produced, 1);
        assert_eq!(counters.account().failed, 3);
        assert_eq!(context.first_failure().as_deref(), Some("too large"));
        assert_eq!(
            context.failure_reasons(),
            vec![("timed out".to_string(), 2), ("too large".to_string(), 1)]
        );
    }
}
