//! Reading a topic back whole, and watching its high watermarks while `sim` writes to it.
//!
//! Both use librdkafka in this process (the client `sim` itself uses), assigned to every
//! partition without a consumer group, so reading never waits for a group to form and never
//! commits anything.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// How long the watch keeps a client that failed to answer before it makes a new one.
const RENEW_AFTER: Duration = Duration::from_millis(500);
/// How long reading waits for more once every partition is at its end and the expected count
/// was read: long enough for a duplicate to show, short enough to read often.
const QUIET_AT_EXPECTED: Duration = Duration::from_millis(500);
/// The same while fewer than expected were read: the rest may still be on its way.
const QUIET_SHORT_OF_EXPECTED: Duration = Duration::from_secs(3);
/// How often the watch asks for the watermarks.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);
/// How long one watermark request may take: a partition whose leader is down answers nothing,
/// and the watch must not stall on it.
const WATERMARK_TIMEOUT: Duration = Duration::from_millis(400);

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its value, as text.
    pub value: String,
}

/// A client with no group of its own: reading and watching only.
fn reader(brokers: &str) -> Result<BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sim-oracle-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| format!("creating a reader for {brokers}: {e}"))
}

/// A client for watermarks only: no group, so dropping it never waits to leave one.
fn watcher(brokers: &str) -> Result<BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("creating a watcher for {brokers}: {e}"))
}

/// The partitions of `topic`, asked of the brokers; none when there is no such topic.
fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    Ok(partitions)
}

/// Reads every message of `topic` from each partition's first offset, until it has at least
/// `expect` and every partition has reported its end with nothing new for a short while (or,
/// short of `expect`, for a longer while). The end is not taken from the high watermark alone:
/// Tansu's can trail its last offset by a few messages, and the messages past it are still
/// served. Fails when that takes longer than `timeout`.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expect: usize,
    timeout: Duration,
) -> Result<Vec<Held>, String> {
    let consumer = reader(brokers)?;
    let deadline = Instant::now() + timeout;
    let mut list = TopicPartitionList::new();
    let partitions = partitions(&consumer, topic)?;
    if partitions.is_empty() {
        // No topic: `sim` stopped before it made one. Whether that is right is for the count
        // expected to tell.
        return Ok(Vec::new());
    }
    for partition in &partitions {
        list.add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&list).map_err(|e| e.to_string())?;
    let mut at_end = BTreeSet::new();
    let mut last = Instant::now();
    let mut held = Vec::new();
    loop {
        let quiet = if held.len() >= expect {
            QUIET_AT_EXPECTED
        } else {
            QUIET_SHORT_OF_EXPECTED
        };
        if at_end.len() == partitions.len() && last.elapsed() >= quiet {
            return Ok(held);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "reading {topic} did not come to an end within {timeout:?} ({} messages read, \
                 {expect} expected; partitions at their end: {at_end:?})",
                held.len()
            ));
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => message,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                continue;
            }
            None => continue,
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
        };
        last = Instant::now();
        at_end.remove(&message.partition());
        held.push(Held {
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
        });
    }
}

/// One look at the topic: when, and each partition's high watermark (`None` where the broker
/// did not answer in time).
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    highs: Vec<Option<i64>>,
}

impl Sample {
    /// Brings `known` watermarks up to this look, where it has them.
    fn update(&self, known: &mut [i64]) {
        for (known, high) in known.iter_mut().zip(&self.highs) {
            if let Some(high) = high {
                *known = *high;
            }
        }
    }
}

/// Asks for the topic's high watermarks every 50 ms in the background, so a trial can tell when
/// deliveries resumed after a fault healed, and when the topic caught up.
pub struct TopicWatch {
    partitions: Vec<i32>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TopicWatch {
    /// Starts watching `topic` on `brokers`.
    pub fn start(brokers: &str, topic: &str) -> Result<Self, String> {
        let partitions = partitions(&watcher(brokers)?, topic)?;
        if partitions.is_empty() {
            return Err(format!("no topic {topic} to watch on {brokers}"));
        }
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            let (brokers, topic) = (brokers.to_string(), topic.to_string());
            let partitions = partitions.clone();
            std::thread::spawn(move || {
                let mut client = watcher(&brokers).ok();
                let mut renewed = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let highs: Vec<Option<i64>> = partitions
                        .iter()
                        .map(|p| {
                            let client = client.as_ref()?;
                            let watermarks = client.fetch_watermarks(&topic, *p, WATERMARK_TIMEOUT);
                            watermarks.ok().map(|(_, high)| high)
                        })
                        .collect();
                    // A client whose requests timed out stays stuck well after the broker is
                    // back (seen: over 10 s after a paused Tansu continued, while a new client
                    // was answered at once), which would read as a late recovery: start afresh.
                    if highs.iter().any(Option::is_none) && renewed.elapsed() >= RENEW_AFTER {
                        // Dropped aside: closing a client whose broker is gone may take a while.
                        let stale = client.take();
                        std::thread::spawn(move || drop(stale));
                        client = watcher(&brokers).ok();
                        renewed = Instant::now();
                    }
                    samples.lock().unwrap().push(Sample { at, highs });
                    std::thread::sleep(WATCH_INTERVAL);
                }
            })
        };
        Ok(Self {
            partitions,
            samples,
            stop,
            thread: Some(thread),
        })
    }

    /// Messages in the topic at the last look, each partition at its last known watermark.
    pub fn total(&self) -> i64 {
        let samples = self.samples.lock().unwrap();
        let mut highs = vec![0; self.partitions.len()];
        for sample in samples.iter() {
            sample.update(&mut highs);
        }
        highs.iter().sum()
    }

    /// The first look, taken after `since`, at which `partitions` (all when `None`) held more
    /// than at the look before: the next delivery after that moment.
    pub fn first_growth_after(
        &self,
        since: Instant,
        partitions: Option<&[i32]>,
    ) -> Option<Instant> {
        let chosen = |highs: &[i64]| -> i64 {
            self.partitions
                .iter()
                .zip(highs)
                .filter(|(p, _)| partitions.is_none_or(|ps| ps.contains(p)))
                .map(|(_, h)| *h)
                .sum()
        };
        // Look against look, not against the baseline: a broker that restarted empty counts
        // from 0 again, and its first message is a delivery all the same.
        let mut previous: Option<i64> = None;
        self.find_after(since, |highs, _| {
            let now = chosen(highs);
            let grew = previous.is_some_and(|before| now > before);
            previous = Some(now);
            grew
        })
    }

    /// The last look, taken after `since`, at which the whole topic held more than at the look
    /// before: when the last delivery was seen. Unlike a count, it does not depend on the high
    /// watermark being exact (Tansu's trails the last batch of each partition).
    pub fn last_growth_after(&self, since: Instant) -> Option<Instant> {
        let mut previous: Option<i64> = None;
        let mut last = None;
        self.find_after(since, |highs, at| {
            let now: i64 = highs.iter().sum();
            if previous.is_some_and(|before| now > before) {
                last = Some(at);
            }
            previous = Some(now);
            false
        });
        last
    }

    /// The first look, taken after `since`, at which the whole topic held at least
    /// `target(look's time)` messages.
    pub fn first_reaching_after(
        &self,
        since: Instant,
        target: impl Fn(Instant) -> i64,
    ) -> Option<Instant> {
        self.find_after(since, |highs, at| highs.iter().sum::<i64>() >= target(at))
    }

    /// The time of the first look after `since` whose known watermarks satisfy `pred`. `pred`
    /// is first called once with the watermarks as known at `since` (and its answer ignored),
    /// so it can take them as its baseline.
    fn find_after(
        &self,
        since: Instant,
        mut pred: impl FnMut(&[i64], Instant) -> bool,
    ) -> Option<Instant> {
        let samples = self.samples.lock().unwrap();
        let mut highs = vec![0; self.partitions.len()];
        let mut baseline_taken = false;
        for sample in samples.iter() {
            if sample.at > since && !baseline_taken {
                pred(&highs, since);
                baseline_taken = true;
            }
            sample.update(&mut highs);
            if baseline_taken && pred(&highs, sample.at) {
                return Some(sample.at);
            }
        }
        None
    }

    /// Stops watching.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TopicWatch {
    fn drop(&mut self) {
        self.halt();
    }
}
