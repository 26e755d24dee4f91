//! Detection on several cores: the rules of each customer run on one worker thread, and the
//! verdicts come back in the order one core would give them.
//!
//! Rules look at one customer's history only, and every event of a customer goes to the same
//! worker (chosen from the customer id), in the order it arrived; so each worker sees, for its
//! customers, exactly what a single detector would, and returns the same verdicts. Each event is
//! numbered as it is handed over, and [`DetectPool::ready`] gives verdicts back by that number,
//! never one before all earlier events are done: alerts come out in the one-core order whatever
//! the number of workers and however their work interleaves.
//!
//! Each worker owns a [`Detector`]: the native rules, its own call state for the same compiled
//! Rhai rules (a Rhai engine and AST are shared, a call's runtime state is not), and the histories
//! of its customers. A reload of the rules is handed to every worker in the same queue as the
//! events, so the events before it are checked by the old rules and those after by the new.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Detector, Payload, Verdict};
use crate::analyze::transaction::Transaction;

/// Events handed to a worker at once: enough that the channel costs little per event, few
/// enough that a worker starts soon. Each commit waits for every verdict, so the workers then
/// wait for their next batch to be gathered: with 256, two workers read 57,400 events/s on
/// average where 64 gave 59,800 (four pairs, `analyze_throughput 300000`, 2026-11-28).
const BATCH: usize = 64;
/// Events handed over and not yet given back, at most: past this, handing over waits for a
/// worker, so a slow rule holds the consumer back instead of filling memory.
const IN_FLIGHT: usize = 16 * BATCH;

/// One event to check.
struct Job {
    seq: u64,
    tx: Transaction,
    payload: Payload<'static>,
}

/// What a worker is asked to do, in order.
enum Work {
    Check(Vec<Job>),
    /// The rules changed: check the events after this with these.
    Rules(Detector),
}

/// A worker's answer to one [`Work::Check`]: the verdicts that say something, by event number.
struct Done {
    worker: usize,
    /// Events the batch held.
    checked: usize,
    verdicts: Vec<(u64, i32, Verdict)>,
}

/// One worker, as the pool sees it.
struct Worker {
    work: Sender<Work>,
    /// Events gathered, not yet sent.
    gathered: Vec<Job>,
    /// The first event number of each batch sent and not yet answered, oldest first.
    sent: VecDeque<u64>,
    thread: Option<JoinHandle<()>>,
}

/// Worker threads checking events by customer, and their verdicts put back in order.
pub struct DetectPool {
    workers: Vec<Worker>,
    done: Receiver<Done>,
    /// The next event's number.
    next_seq: u64,
    /// Events handed over whose batch is not answered yet.
    in_flight: usize,
    /// Verdicts received, waiting for every earlier event to be done.
    received: BTreeMap<u64, (i32, Verdict)>,
}

impl DetectPool {
    /// `workers` threads (at least one), each with the rules of `rules` (its native and Rhai
    /// rules, histories left behind).
    pub fn start(rules: &Detector, workers: usize) -> std::io::Result<Self> {
        let (done_sender, done) = channel();
        let workers = (0..workers.max(1))
            .map(|index| {
                let (work, jobs) = channel();
                let detector = rules.fork();
                let done = done_sender.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("detect-{index}"))
                    .spawn(move || work_on(index, detector, jobs, done))?;
                Ok(Worker {
                    work,
                    gathered: Vec::with_capacity(BATCH),
                    sent: VecDeque::new(),
                    thread: Some(thread),
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self {
            workers,
            done,
            next_seq: 0,
            in_flight: 0,
            received: BTreeMap::new(),
        })
    }

    /// Hands `tx` (whose message value is `payload`) to its customer's worker.
    pub fn submit(&mut self, tx: Transaction, payload: Payload<'_>) {
        let index = worker_of(&tx.customer_id, self.workers.len());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight += 1;
        let worker = &mut self.workers[index];
        worker.gathered.push(Job {
            seq,
            tx,
            payload: payload.into_owned(),
        });
        if worker.gathered.len() >= BATCH {
            send(worker);
        }
        while self.in_flight > IN_FLIGHT {
            self.receive_one();
        }
    }

    /// Every worker checks the events after this with the rules of `rules`.
    pub fn replace_rules(&mut self, rules: &Detector) {
        for worker in &mut self.workers {
            send(worker);
            // A worker that is gone has panicked; `ready` says so.
            let _ = worker.work.send(Work::Rules(rules.fork()));
        }
    }

    /// The verdicts of every event whose turn has come (all earlier events are done), in event
    /// order, with each event's partition. With `all`, waits for every event handed over.
    pub fn ready(&mut self, all: bool) -> Vec<(i32, Verdict)> {
        if all {
            for worker in &mut self.workers {
                send(worker);
            }
            while self.in_flight > 0 {
                self.receive_one();
            }
        }
        while let Ok(done) = self.done.try_recv() {
            self.take(done);
        }
        // Events before the first one still gathered or out with a worker are all done.
        let frontier = self
            .workers
            .iter()
            .filter_map(|w| {
                w.sent
                    .front()
                    .copied()
                    .or(w.gathered.first().map(|j| j.seq))
            })
            .min()
            .unwrap_or(self.next_seq);
        let later = self.received.split_off(&frontier);
        std::mem::replace(&mut self.received, later)
            .into_values()
            .collect()
    }

    /// Waits for one worker's answer.
    fn receive_one(&mut self) {
        loop {
            match self.done.recv_timeout(Duration::from_secs(1)) {
                Ok(done) => return self.take(done),
                // A worker ends only when the pool is dropped, or by a panic (a bug): then the
                // events it holds would never be answered, so stop rather than wait forever.
                Err(_) => {
                    let stopped = self.workers.iter().any(|w| {
                        !w.sent.is_empty() && w.thread.as_ref().is_none_or(|t| t.is_finished())
                    });
                    assert!(!stopped, "a detection worker stopped");
                }
            }
        }
    }

    fn take(&mut self, done: Done) {
        self.workers[done.worker].sent.pop_front();
        self.in_flight -= done.checked;
        for (seq, partition, verdict) in done.verdicts {
            self.received.insert(seq, (partition, verdict));
        }
    }
}

/// Sends what `worker` gathered, if anything.
fn send(worker: &mut Worker) {
    if worker.gathered.is_empty() {
        return;
    }
    // The next batch's room is made at once: grown from empty, a batch of 256 jobs was copied
    // seven times over as it doubled (`memmove` was 4% of a run with two detection threads).
    let jobs = std::mem::replace(&mut worker.gathered, Vec::with_capacity(BATCH));
    worker.sent.push_back(jobs[0].seq);
    // A worker that is gone has panicked; `ready` says so.
    let _ = worker.work.send(Work::Check(jobs));
}

impl Drop for DetectPool {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the queue ends the worker's loop.
            let (closed, _) = channel();
            worker.work = closed;
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The worker a customer's events go to: the same for every event of that customer.
fn worker_of(customer: &str, workers: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    customer.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

/// A worker's loop: checks each batch in order, answers with the verdicts that say something.
fn work_on(index: usize, mut detector: Detector, work: Receiver<Work>, done: Sender<Done>) {
    for item in work {
        match item {
            Work::Check(jobs) => {
                let checked = jobs.len();
                let verdicts = jobs
                    .into_iter()
                    .filter_map(|job| {
                        let partition = job.tx.position.partition;
                        let verdict = detector.observe(job.tx, job.payload);
                        (!verdict.is_empty()).then_some((job.seq, partition, verdict))
                    })
                    .collect();
                let answer = Done {
                    worker: index,
                    checked,
                    verdicts,
                };
                if done.send(answer).is_err() {
                    return;
                }
            }
            Work::Rules(rules) => detector.take_rules(rules),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::detect::script::{sample_events, ScriptRules};
    use crate::analyze::detect::Alert;
    use std::sync::Arc;

    /// Sample events of 17 customers, two a second: the native rules and a shipped Rhai rule fire.
    fn events() -> Vec<(Transaction, Vec<u8>)> {
        sample_events(3000)
            .into_iter()
            .enumerate()
            .map(|(i, (mut tx, payload))| {
                tx.customer_id = format!("cust_{}", i % 17);
                tx.time_ms = 1_705_312_800_000 + i as i64 * 500;
                (tx, payload)
            })
            .collect()
    }

    fn rules() -> Detector {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/detect");
        Detector::new(ScriptRules::load(&dir).unwrap().0)
    }

    fn on_one_thread() -> Vec<Arc<Alert>> {
        let mut detector = rules();
        events()
            .iter()
            .flat_map(|(tx, payload)| detector.observe(tx.clone(), payload[..].into()).alerts)
            .collect()
    }

    fn on_workers(workers: usize) -> Vec<Arc<Alert>> {
        let mut pool = DetectPool::start(&rules(), workers).unwrap();
        let mut alerts = Vec::new();
        for (i, (tx, payload)) in events().into_iter().enumerate() {
            pool.submit(tx, payload[..].into());
            // Take what is ready now and then, as the run loop does after each poll.
            if i % 100 == 0 {
                alerts.extend(pool.ready(false).into_iter().flat_map(|(_, v)| v.alerts));
            }
        }
        alerts.extend(pool.ready(true).into_iter().flat_map(|(_, v)| v.alerts));
        alerts
    }

    #[test]
    fn alerts_on_several_workers_are_those_of_one_thread_in_the_same_order() {
        let one = on_one_thread();
        let rules: std::collections::BTreeSet<&str> = one.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(
            rules.into_iter().collect::<Vec<_>>(),
            vec![
                "card_testing",
                "high_value",
                "impossible_travel",
                "velocity"
            ]
        );
        // The customers are split between the workers, so their alerts interleave: given back
        // worker by worker, or as they finish, the order would differ.
        let customers: std::collections::BTreeSet<usize> =
            one.iter().map(|a| worker_of(&a.customer_id, 2)).collect();
        assert_eq!(customers.len(), 2);
        for workers in [1, 2, 3] {
            assert_eq!(on_workers(workers), one, "{workers} workers");
        }
    }
}
