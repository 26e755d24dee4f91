//! The pipeline: the one place that knows the timeline, the script and the sink together.
//!
//! Each arrival time from the timeline becomes a call to `event(ctx)`; each event it returns is
//! encoded and handed to the sink. The same pipeline runs in virtual time (backfill, sample: as
//! fast as the machine allows) and in real time (live: each arrival waits for its deadline on the
//! clock, and all arrivals already due are emitted at once, so a slow moment is caught up instead
//! of drifting).

use std::collections::HashSet;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rhai::ImmutableString;

use crate::clock::SimClock;
use crate::encode::EventEncoder;
use crate::metrics::Metrics;
use crate::rate::{Nanos, PeakHours, RateCurve, RateError, SampledCurve};
use crate::rng::{follow_up_id, stream_rng, Stream};
use crate::schema::Violation;
use crate::script::Scenario;
use crate::settings::{OnError, Settings};
use crate::shutdown::Shutdown;
use crate::sink::{Record, Sink};
use crate::timeline::{Arrivals, Backfill};

mod ahead;
mod coverage;
mod error;
mod failures;
mod follow_ups;
mod packed;
mod share;
pub mod workers;

pub use coverage::{Coverage, FunctionCoverage};
pub use error::PipelineError;
use failures::{is_event_fault, Fallback};
pub use failures::{RevisionHealth, StreamNotice};
use follow_ups::FollowUpQueue;
pub use share::{CatchUp, Ownership, Share};
use workers::{Job, Made, MakeOptions, Worker};

/// The longest the live loop sleeps before looking at the stop signal again.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// The most arrivals made in one batch: large enough that handing shares to the workers costs
/// little, small enough that the stop signal and reloads are seen within milliseconds (2,048
/// darooghe arrivals take 10 to 20 ms). Each batch starts the helper threads and ends with the
/// last chunks committed while the helpers have nothing left to make: at 512, two workers took
/// 1.03 x the time of 2,048 (`sim sample` and `sim backfill` into the embedded broker,
/// `farm-bench`, 8 pairs each, 2026-11-29).
const BATCH: usize = 2048;

/// Nanoseconds since the epoch of `time`.
pub fn nanos(time: DateTime<Utc>) -> Nanos {
    time.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// In a group, a job's sequence number is its identity: the arrival's place on the timeline, a
/// follow-up's id without its top bit. Numbers counted in turn would differ from one instance to
/// another, each making only its share.
fn shared_seq(job: &Job) -> i64 {
    (job.id() & i64::MAX as u64) as i64
}

/// How long a finished member of a group waits between looks at whether the others finished.
const GROUP_WAIT: Duration = Duration::from_millis(200);

/// A scenario wired to a sink.
pub struct Pipeline<'s> {
    /// The running scenario version, once a worker; the first makes what is made in turn.
    workers: Vec<Worker>,
    /// How every worker encodes events (each has a copy with buffers of its own).
    encoder: EventEncoder,
    peak_hours: PeakHours,
    sink: &'s mut dyn Sink,
    metrics: Arc<Metrics>,
    seed: u64,
    next_seq: i64,
    /// The identity of the next arrival: its ordinal on the timeline, backfill and live alike.
    next_arrival: u64,
    /// When checking, every event's schema and invariant violations with its sequence number.
    violations: Option<Vec<(i64, Violation)>>,
    /// When checking, what each function of the script was asked to make.
    coverage: Option<Coverage>,
    /// The revision of the running script.
    revision: u64,
    /// Whether events carry their ground truth as a `_label` field (`--labels`).
    labels: bool,
    /// Whether events carry their provenance as a `_meta` field (`--meta`).
    meta: bool,
    /// New versions of the script, ready to swap in at the next event boundary.
    reloads: Option<Receiver<Candidate>>,
    /// Follow-ups the script scheduled, earliest first.
    follow_ups: FollowUpQueue,
    /// The most follow-ups that may wait at once (setting `max_follow_ups`).
    max_follow_ups: usize,
    /// What a failing event does.
    on_error: OnError,
    /// How the running revision has fared since it was swapped in.
    health: RevisionHealth,
    /// The revision the last reload replaced, to roll back to (`on_error = skip` only).
    fallback: Option<Fallback>,
    /// Rollbacks so far: a batch made ahead by a revision rolled back is made again.
    rollbacks: u64,
    /// Set by a rollback: the rate curve may have changed, the timeline's segment is redrawn.
    curve_changed: bool,
    /// Events skipped so far (`on_error = skip`).
    skipped: u64,
    /// Hears what the pipeline reports as it streams.
    report: Option<&'s mut dyn FnMut(StreamNotice)>,
    /// While streaming live, the clock events' deadlines are measured on.
    deadlines: Option<SimClock>,
    /// This instance's share of a timeline a group makes together (`--group`); `None`: all of it.
    share: Option<Box<dyn Share>>,
    /// The timeline being walked, so a shard taken on behind it can be drawn again.
    walking: Option<Walk>,
}

/// A timeline as it was started, to draw its arrivals again from the first.
#[derive(Debug, Clone, Copy)]
enum Walk {
    /// `count` arrivals between `start` and `end`.
    Backfill {
        start: Nanos,
        end: Nanos,
        count: u64,
    },
    /// The live timeline from `origin` on.
    Live { origin: Nanos },
}

/// The historical part of a stream: `arrivals` arrivals of the timeline over the `days` before
/// its start. An arrival may make several events (a fraud burst) or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackfillSpec {
    /// Arrivals to place in the window.
    pub arrivals: u64,
    /// The window, in days.
    pub days: f64,
}

/// A new version of the scenario, compiled, set up and checked, ready to be swapped in.
pub struct Candidate {
    /// The scenario, its event generator on the stream of its generation.
    pub scenario: Scenario,
    /// Its forks for the other workers (see [`Scenario::fork`]), made off the streaming thread.
    pub forks: Vec<Scenario>,
    /// Its resolved settings.
    pub settings: Settings,
    /// Its revision.
    pub revision: u64,
    /// How it encodes events, when not as the running version does (with Avro: the writer of
    /// its schema, with that schema's id).
    pub encoder: Option<EventEncoder>,
}

/// The built-in peak-hour curve of `settings`: what the timeline follows when the script has no
/// `rate(t)` (and what `sim report` draws beside the events).
pub fn peak_hours(settings: &Settings) -> PeakHours {
    PeakHours {
        base_per_minute: settings.rate_per_minute,
        peak_factor: settings.peak_factor,
        start_hour: settings.peak_hours.0,
        end_hour: settings.peak_hours.1,
        tz: settings.timezone,
    }
}

impl<'s> Pipeline<'s> {
    /// Wires a scenario (already set up) to `sink`, with one worker.
    pub fn new(
        scenario: Scenario,
        settings: &Settings,
        seed: u64,
        sink: &'s mut dyn Sink,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            workers: vec![Worker::new(
                scenario,
                EventEncoder::new(&settings.key_field),
            )],
            encoder: EventEncoder::new(&settings.key_field),
            peak_hours: peak_hours(settings),
            sink,
            metrics,
            seed,
            next_seq: 0,
            next_arrival: 0,
            violations: None,
            coverage: None,
            revision: 1,
            labels: false,
            meta: false,
            reloads: None,
            follow_ups: FollowUpQueue::default(),
            max_follow_ups: settings.max_follow_ups,
            on_error: OnError::Stop,
            health: RevisionHealth::default(),
            fallback: None,
            rollbacks: 0,
            curve_changed: false,
            skipped: 0,
            report: None,
            deadlines: None,
            share: None,
            walking: None,
        }
    }

    /// Makes only this instance's share of the timeline, as one of a group (`--group`): the
    /// arrivals of the shards `share` owns. An arrival's `ctx.seq` is then its place on the
    /// timeline (and a follow-up's its identity), the same whichever instance makes it.
    pub fn share_with(&mut self, share: Box<dyn Share>) {
        self.share = Some(share);
    }

    /// Sets what a failing event does: stop the step with its error (the default), or skip it,
    /// count it, report it and go on, rolling a reloaded revision that fails too often back to
    /// the one it replaced (see [`failures`]).
    pub fn on_error(&mut self, policy: OnError) {
        self.on_error = policy;
    }

    /// Sends what the pipeline reports as it streams (skipped events, rollbacks, the end of
    /// the backfill) to `report`.
    pub fn report_to(&mut self, report: &'s mut dyn FnMut(StreamNotice)) {
        self.report = Some(report);
    }

    /// Events skipped so far under `on_error = skip`.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn tell(&mut self, notice: StreamNotice) {
        if let Some(report) = self.report.as_mut() {
            report(notice);
        }
    }

    /// Makes events with `count` workers (at least one). The events are the same whatever the
    /// count (see [`workers`]); more workers make them faster on more cores.
    pub fn set_workers(&mut self, count: usize) -> Result<(), PipelineError> {
        let count = count.max(1);
        self.workers.truncate(count);
        while self.workers.len() < count {
            let worker = self.workers[0].fork()?;
            self.workers.push(worker);
        }
        self.metrics.set_workers(count);
        Ok(())
    }

    /// Encodes events with `encoder` (its key field and value format) rather than as JSON keyed
    /// by the `key_field` setting; reloaded versions of the scenario encode alike.
    pub fn encode_with(&mut self, encoder: EventEncoder) {
        for worker in &mut self.workers {
            worker.encode_with(encoder.clone());
        }
        self.encoder = encoder;
    }

    /// Adds the ground truth to every event as a `_label` field: `{"fraud": bool, "pattern":
    /// name or null}` (`--labels`). Without it the payload is exactly the scenario's event.
    pub fn label_events(&mut self, on: bool) {
        self.labels = on;
    }

    /// Adds each event's provenance as a `_meta` field: `{"revision", "seq", "function"}`
    /// (`--meta`), so a reader sees which revision and which function made it.
    pub fn describe_events(&mut self, on: bool) {
        self.meta = on;
    }

    /// Swaps in new versions of the scenario as they arrive on `reloads` (live streaming only).
    pub fn accept_reloads(&mut self, reloads: Receiver<Candidate>) {
        self.reloads = Some(reloads);
    }

    /// Swaps in a reloaded scenario if one is waiting. Called between events, so an event is made
    /// wholly by one version; the timeline and the sequence numbers carry on untouched.
    fn swap_if_reloaded(&mut self, arrivals: &mut Arrivals) {
        let Some(candidate) = self.reloads.as_ref().and_then(|rx| rx.try_recv().ok()) else {
            return;
        };
        let started = Instant::now();
        let scenario = candidate.scenario;
        // A new schema's encoder goes in with the version written for it, at the same event.
        let encoder = match candidate.encoder {
            Some(encoder) => std::mem::replace(&mut self.encoder, encoder),
            None => self.encoder.clone(),
        };
        // The forks share the candidate's memory store, so taking over into it reaches them too.
        scenario.take_memory_from(&self.workers[0].scenario);
        let workers = std::iter::once(scenario)
            .chain(candidate.forks)
            .map(|scenario| Worker::new(scenario, self.encoder.clone()))
            .collect();
        let retired = Fallback {
            workers: std::mem::replace(&mut self.workers, workers),
            peak_hours: std::mem::replace(&mut self.peak_hours, peak_hours(&candidate.settings)),
            max_follow_ups: std::mem::replace(
                &mut self.max_follow_ups,
                candidate.settings.max_follow_ups,
            ),
            revision: std::mem::replace(&mut self.revision, candidate.revision),
            encoder,
        };
        self.health = RevisionHealth::default();
        // Kept to roll back to only where failures are skipped; the one it replaces goes.
        let dropped = match self.on_error {
            OnError::Skip => self.fallback.replace(retired),
            OnError::Stop => Some(retired),
        };
        // Freeing a large world (a million customers) takes milliseconds: not on this thread.
        std::thread::spawn(move || drop(dropped));
        // The new version may have a new rate; the arrival already drawn stands.
        arrivals.forget_segment();
        self.metrics.reloaded(candidate.revision, started.elapsed());
    }

    /// Swaps the revision the last reload replaced back in, because the running one failed more
    /// than its budget, or its rate curve failed (`cause`). What the failing revision remembered
    /// is handed back with it.
    fn roll_back(&mut self, cause: Option<PipelineError>) {
        let Some(fallback) = self.fallback.take() else {
            return;
        };
        fallback.workers[0]
            .scenario
            .take_memory_from(&self.workers[0].scenario);
        let failed = std::mem::replace(&mut self.workers, fallback.workers);
        std::thread::spawn(move || drop(failed));
        self.peak_hours = fallback.peak_hours;
        self.max_follow_ups = fallback.max_follow_ups;
        self.encoder = fallback.encoder;
        let from = std::mem::replace(&mut self.revision, fallback.revision);
        let health = std::mem::take(&mut self.health);
        self.rollbacks += 1;
        self.curve_changed = true;
        self.metrics.rolled_back(fallback.revision);
        self.tell(StreamNotice::RolledBack {
            from,
            to: fallback.revision,
            health,
            cause,
        });
    }

    /// Handles an event that failed with `error`: under `on_error = stop` the error ends the
    /// step; under `skip` the event is dropped (its sequence number with it: a rule that fails
    /// on a number must not fail every event after it), counted and reported, and a reloaded revision over its budget is rolled back.
    fn failed(&mut self, error: PipelineError, job: &Job) -> Result<(), PipelineError> {
        if self.on_error == OnError::Stop || !is_event_fault(&error) {
            return Err(error);
        }
        self.skipped += 1;
        self.health.failed();
        self.metrics.skipped();
        let notice = StreamNotice::Skipped {
            error,
            function: job.function().to_string(),
            time_ms: job.time_ms(),
            revision: self.revision,
            skipped: self.skipped,
        };
        self.tell(notice);
        if self.health.over_budget() {
            self.roll_back(None);
        }
        Ok(())
    }

    /// Gives back the scenario (after a check run, for instance).
    pub fn into_scenario(mut self) -> Scenario {
        self.workers.swap_remove(0).scenario
    }

    /// Checks every event against the scenario's schema and invariants from now on (for
    /// `sim check` and reload); the violations are collected, not fatal.
    pub fn validate_events(&mut self) {
        self.violations.get_or_insert_with(Vec::new);
        self.coverage.get_or_insert_with(Coverage::default);
    }

    /// What each function made since [`Pipeline::validate_events`].
    pub fn take_coverage(&mut self) -> Vec<FunctionCoverage> {
        self.coverage
            .take()
            .map(Coverage::functions)
            .unwrap_or_default()
    }

    /// Follow-ups scheduled and not yet made.
    pub fn pending_follow_ups(&self) -> usize {
        self.follow_ups.len()
    }

    /// Makes the follow-ups still pending, in time order, as if time ran on with no more
    /// arrivals, until none is left or `budget` follow-ups were made (those may schedule more).
    /// Returns the events made and the follow-ups made. For checks: a chain of follow-ups
    /// minutes or hours long is exercised to its last link.
    pub fn drain_follow_ups(&mut self, budget: u64) -> Result<(u64, u64), PipelineError> {
        let mut written = HashSet::new();
        let (mut sent, mut calls) = (0, 0);
        while calls < budget && self.follow_ups.len() > 0 {
            sent += self.emit_follow_up(&mut written)?;
            calls += 1;
        }
        Ok((sent, calls))
    }

    /// The violations collected since [`Pipeline::validate_events`], with sequence numbers.
    pub fn take_violations(&mut self) -> Vec<(i64, Violation)> {
        self.violations.take().unwrap_or_default()
    }

    fn make_options(&self) -> MakeOptions {
        MakeOptions {
            labels: self.labels,
            validate: self.violations.is_some(),
            meta: self.meta.then_some(self.revision),
            timed: self.metrics.timings.events_timed(),
        }
    }

    /// Calls `f` with the rate curve in force: the script's `rate(t)` or the peak-hour curve.
    fn with_curve<T>(
        &mut self,
        f: impl FnOnce(&mut dyn RateCurve) -> Result<T, RateError>,
    ) -> Result<T, RateError> {
        let scenario = &mut self.workers[0].scenario;
        if scenario.has_rate() {
            let mut curve =
                SampledCurve::new(|t| scenario.rate(t / 1_000_000).map_err(RateError::from));
            f(&mut curve)
        } else {
            f(&mut self.peak_hours)
        }
    }

    fn next_arrival(&mut self, arrivals: &mut Arrivals) -> Result<Option<Nanos>, PipelineError> {
        let next = match self.with_curve(|curve| arrivals.next_arrival(curve)) {
            Ok(next) => next,
            // A reloaded `rate(t)` that fails (at an hour the sample never reached) is rolled
            // back like a revision whose events fail: the one before it had a working curve.
            Err(error) if self.on_error == OnError::Skip && self.fallback.is_some() => {
                self.roll_back(Some(error.into()));
                arrivals.forget_segment();
                self.curve_changed = false;
                self.with_curve(|curve| arrivals.next_arrival(curve))?
            }
            Err(error) => return Err(error.into()),
        };
        self.metrics
            .set_target_per_second(arrivals.current_per_minute() / 60.0);
        Ok(next)
    }

    /// Makes and sends the events of the arrivals at `times` (in order), and of the follow-ups
    /// that fall due among them, until `limit` events are sent. Returns how many were sent.
    fn emit_arrivals(&mut self, times: &[Nanos], limit: u64) -> Result<u64, PipelineError> {
        let first = self.next_arrival;
        self.next_arrival += times.len() as u64;
        let arrivals: Vec<(u64, Nanos)> = match &self.share {
            None => (first..).zip(times.iter().copied()).collect(),
            Some(share) => {
                let ownership = share.ownership();
                (first..)
                    .zip(times.iter().copied())
                    .filter(|(id, _)| ownership.owns(*id))
                    .collect()
            }
        };
        self.emit_jobs(&arrivals, limit)
    }

    /// Makes and sends the events of `arrivals` (identity and time, in time order), and of the
    /// follow-ups that fall due among them, until `limit` events are sent.
    ///
    /// With several workers, the others make the batch's events ahead of their turn while the
    /// first commits them in turn, and makes some itself whenever the next to commit is not
    /// made yet ([`ahead::Board`]).
    fn emit_jobs(&mut self, arrivals: &[(u64, Nanos)], limit: u64) -> Result<u64, PipelineError> {
        if self.share.is_some() {
            self.metrics.group.made(arrivals.len() as u64);
        }
        let jobs: Vec<Job> = arrivals
            .iter()
            .map(|&(id, t)| Job::Arrival {
                time_ms: t.div_euclid(1_000_000),
                id,
            })
            .collect();
        let times: Vec<Nanos> = arrivals.iter().map(|&(_, t)| t).collect();
        if self.workers.len() < 2 || jobs.len() < workers::MIN_PARALLEL {
            return self.emit_in_turn(&jobs, &times, limit, None);
        }
        // In turn, without follow-ups falling due between them, they get these numbers.
        let seqs: Vec<i64> = match self.share {
            None => (self.next_seq..).take(jobs.len()).collect(),
            Some(_) => jobs.iter().map(shared_seq).collect(),
        };
        // The helpers are lent to their threads for the batch; the first worker stays, to
        // commit, and to be replaced by a rollback.
        let mut helpers = self.workers.split_off(1);
        let rollbacks = self.rollbacks;
        let board = ahead::Board::new(&jobs, &seqs, self.make_options(), helpers.len());
        let sent = std::thread::scope(|scope| {
            for helper in &mut helpers {
                let board = &board;
                scope.spawn(move || board.help(helper));
            }
            // However the batch ends (its limit, an error), the helpers stop claiming.
            let _stop = ahead::StopOnDrop(&board);
            self.emit_in_turn(&jobs, &times, limit, Some(&board))
        });
        if self.rollbacks == rollbacks {
            self.workers.append(&mut helpers);
        } else {
            // The revision they ran was rolled back: the one back came with its own workers.
            std::thread::spawn(move || drop(helpers));
        }
        sent
    }

    /// Commits `jobs` (at `times`) in turn, with the follow-ups that fall due among them, until
    /// `limit` events are sent: each taken from `board` when it was made ahead and making it in
    /// turn could not have given anything else, made in turn by the first worker otherwise.
    fn emit_in_turn(
        &mut self,
        jobs: &[Job],
        times: &[Nanos],
        limit: u64,
        board: Option<&ahead::Board<'_>>,
    ) -> Result<u64, PipelineError> {
        let mut options = self.make_options();
        let mut board = board;
        let mut rollbacks = self.rollbacks;
        // Memory keys committed since the batch began: an event made ahead may not have seen
        // them.
        let mut written = HashSet::new();
        let mut chunk = Vec::new().into_iter();
        let (mut sent, mut ahead, mut again) = (0, 0, 0);
        for (i, (job, &t)) in jobs.iter().zip(times).enumerate() {
            sent += self.emit_follow_ups_due(t, limit - sent, &mut written)?;
            if sent >= limit {
                break;
            }
            if self.rollbacks != rollbacks {
                // Made ahead by the revision rolled back: the rest is made, in turn, by the one
                // back.
                rollbacks = self.rollbacks;
                board.take().inspect(|board| board.stop());
                options = self.make_options();
            }
            let seq = self.take_seq(job);
            let early = board.and_then(|board| {
                if i % ahead::CHUNK == 0 {
                    chunk = board
                        .take(i / ahead::CHUNK, &mut self.workers[0])
                        .into_iter();
                }
                chunk.next()
            });
            ahead += u64::from(early.is_some());
            let made = match early {
                Some(made) if made.holds(seq, &written) => made,
                other => {
                    again += u64::from(other.is_some());
                    self.workers[0].make(job, seq, options)
                }
            };
            sent += self.commit(made, job, &mut written)?;
        }
        self.metrics.made_ahead(ahead, again);
        self.metrics.set_pending_follow_ups(self.follow_ups.len());
        Ok(sent)
    }

    /// The sequence number `job` is made as: the next one, or in a group its own (see
    /// [`shared_seq`]).
    fn take_seq(&mut self, job: &Job) -> i64 {
        if self.share.is_some() {
            return shared_seq(job);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Commits an event in turn: its memory writes, its follow-ups, its events to the sink.
    fn commit(
        &mut self,
        made: Made,
        job: &Job,
        written: &mut HashSet<ImmutableString>,
    ) -> Result<u64, PipelineError> {
        let Made {
            outgoing,
            mut effects,
            seq,
            took,
        } = made;
        if let Some(took) = took {
            self.metrics.timings.event.observe(took);
        }
        let outgoing = match outgoing {
            Ok(outgoing) => outgoing,
            Err(error) => return self.failed(error, job).map(|()| 0),
        };
        self.health.made();
        written.extend(effects.journal.writes.keys().cloned());
        self.workers[0].scenario.commit(&mut effects.journal);
        if let Some(coverage) = &mut self.coverage {
            let checked = self.workers[0].scenario.has_check();
            coverage.called(job.function(), outgoing.len() as u64, checked);
            for scheduled in &effects.scheduled {
                coverage.scheduled(&scheduled.function);
            }
        }
        for (index, mut scheduled) in effects.scheduled.into_iter().enumerate() {
            if self.follow_ups.len() >= self.max_follow_ups {
                return Err(self.follow_up_cap());
            }
            scheduled.id = follow_up_id(job.id(), index as u64);
            self.follow_ups.schedule(scheduled);
        }
        let sent = outgoing.len() as u64;
        for event in outgoing {
            if let Some(violations) = &mut self.violations {
                violations.extend(event.violations.into_iter().map(|v| (seq, v)));
            }
            self.sink.send(Record {
                key: Some(&event.key),
                payload: &event.payload,
                timestamp_ms: job.time_ms(),
                revision: self.revision,
                fraud_pattern: event.pattern.as_deref(),
            })?;
            self.metrics.event();
            if let Some(clock) = &self.deadlines {
                let late = clock.now()
                    - DateTime::from_timestamp_millis(job.time_ms()).unwrap_or_default();
                self.metrics
                    .timings
                    .lag
                    .observe(late.to_std().unwrap_or_default());
            }
        }
        Ok(sent)
    }

    fn follow_up_cap(&self) -> PipelineError {
        let (function, count) = self.follow_ups.most_waiting().unwrap_or(("", 0));
        PipelineError::FollowUpCap {
            cap: self.max_follow_ups,
            function: function.to_string(),
            count,
        }
    }

    /// When the earliest scheduled follow-up is due.
    fn next_follow_up(&self) -> Option<Nanos> {
        self.follow_ups.next_due()
    }

    /// Makes and sends the earliest scheduled follow-up, in turn.
    fn emit_follow_up(
        &mut self,
        written: &mut HashSet<ImmutableString>,
    ) -> Result<u64, PipelineError> {
        let Some(scheduled) = self.follow_ups.pop() else {
            return Ok(0);
        };
        let job = Job::FollowUp(scheduled);
        let seq = self.take_seq(&job);
        let options = self.make_options();
        let made = self.workers[0].make(&job, seq, options);
        let sent = self.commit(made, &job, written);
        self.metrics.set_pending_follow_ups(self.follow_ups.len());
        sent
    }

    /// Emits every follow-up due at or before `upto`, in time order, until `limit` events are
    /// sent.
    fn emit_follow_ups_due(
        &mut self,
        upto: Nanos,
        limit: u64,
        written: &mut HashSet<ImmutableString>,
    ) -> Result<u64, PipelineError> {
        let mut sent = 0;
        while sent < limit && self.next_follow_up().is_some_and(|at| at <= upto) {
            sent += self.emit_follow_up(written)?;
        }
        Ok(sent)
    }
    /// Serves the group, if this instance is one of one: commits and hands over shards (see
    /// [`Share::step`]), then makes what the shards taken on behind the timeline still owe.
    /// Returns the events sent.
    fn serve_share(&mut self) -> Result<u64, PipelineError> {
        let next = self.next_arrival;
        let Some(share) = self.share.as_mut() else {
            return Ok(0);
        };
        let behind = share.step(next)?;
        self.metrics.group.reached(next);
        let mut sent = 0;
        for catch_up in behind {
            sent += self.catch_up(catch_up)?;
        }
        Ok(sent)
    }

    /// Makes the arrivals of a shard taken on behind the timeline, from its position to where
    /// the timeline stands, drawing the timeline again from its first arrival.
    fn catch_up(&mut self, catch_up: CatchUp) -> Result<u64, PipelineError> {
        let (to, shards) = match &self.share {
            Some(share) => (self.next_arrival, share.ownership().shards()),
            None => return Ok(0),
        };
        let wanted =
            |id: u64| id >= catch_up.from && (id % u64::from(shards)) as u32 == catch_up.shard;
        let arrivals = self.redraw(to, wanted)?;
        let mut sent = 0;
        for chunk in arrivals.chunks(BATCH) {
            sent += self.emit_jobs(chunk, u64::MAX)?;
        }
        Ok(sent)
    }

    /// The arrivals before `to` of the timeline being walked, drawn again from the first, that
    /// are `wanted` (by identity); only those are kept, so a catch-up after hours of a live
    /// stream holds one shard's share of the gap, not the whole timeline.
    fn redraw(
        &mut self,
        to: u64,
        wanted: impl Fn(u64) -> bool,
    ) -> Result<Vec<(u64, Nanos)>, PipelineError> {
        match self.walking {
            None => Ok(Vec::new()),
            Some(Walk::Backfill { start, end, count }) => {
                let rng = stream_rng(self.seed, Stream::Backfill);
                let times =
                    self.with_curve(|curve| Backfill::new(curve, start, end, count, rng))?;
                Ok((0..to).zip(times).filter(|&(id, _)| wanted(id)).collect())
            }
            Some(Walk::Live { origin }) => {
                let mut arrivals = Arrivals::after(origin, stream_rng(self.seed, Stream::Timeline));
                let mut kept = Vec::new();
                for id in 0..to {
                    match self.with_curve(|curve| arrivals.next_arrival(curve))? {
                        Some(t) if wanted(id) => kept.push((id, t)),
                        Some(_) => {}
                        None => break,
                    }
                }
                Ok(kept)
            }
        }
    }

    /// After the arrivals of a backfill of `total` (which sent `sent`), in a group: records the
    /// owned shards' positions (what was made is recorded as made, whether the backfill ended,
    /// stopped or failed); at the end, stays (taking over the shards of members that left or died
    /// before the end) until every shard of the group is done, or `shutdown`. Returns the events
    /// sent in all.
    fn finish_shares(
        &mut self,
        sent: Result<u64, PipelineError>,
        total: u64,
        shutdown: &Shutdown,
    ) -> Result<u64, PipelineError> {
        let next = self.next_arrival;
        let Some(share) = self.share.as_mut() else {
            return sent;
        };
        let committed = share.commit(next);
        let mut sent = sent?;
        committed?;
        while !shutdown.is_triggered() {
            sent += self.serve_share()?;
            let next = self.next_arrival;
            let Some(share) = self.share.as_mut() else {
                break;
            };
            share.commit(next)?;
            if share.all_reached(total)? {
                break;
            }
            shutdown.wait(GROUP_WAIT);
        }
        Ok(sent)
    }

    /// Produces the events of `count` historical arrivals over the `days` before `end`, in
    /// virtual time, with the follow-ups that fall due inside the window. Returns the number of
    /// events sent (an arrival may make several, or none).
    pub fn backfill(
        &mut self,
        end: DateTime<Utc>,
        count: u64,
        days: f64,
        shutdown: &Shutdown,
    ) -> Result<u64, PipelineError> {
        let end = nanos(end);
        let start = end - (days * 86_400e9) as Nanos;
        let rng = stream_rng(self.seed, Stream::Backfill);
        let mut times = self.with_curve(|curve| Backfill::new(curve, start, end, count, rng))?;
        self.walking = Some(Walk::Backfill { start, end, count });
        self.metrics.start_backfill(count);
        let sent = self.backfill_arrivals(&mut times, shutdown);
        self.metrics.end_backfill();
        let mut sent = self.finish_shares(sent, count, shutdown)?;
        if shutdown.is_triggered() {
            return Ok(sent);
        }
        // Follow-ups inside the window are history too; later ones wait for the live stream.
        sent += self.emit_follow_ups_due(end - 1, u64::MAX, &mut HashSet::new())?;
        Ok(sent)
    }

    /// Makes and sends the arrivals of a backfill, batch by batch, counting them as it goes,
    /// until they are all made or `shutdown`.
    fn backfill_arrivals(
        &mut self,
        times: &mut Backfill,
        shutdown: &Shutdown,
    ) -> Result<u64, PipelineError> {
        let mut sent = 0;
        let mut batch = Vec::with_capacity(BATCH);
        while !shutdown.is_triggered() {
            sent += self.serve_share()?;
            batch.clear();
            batch.extend(times.by_ref().take(BATCH));
            if batch.is_empty() {
                break;
            }
            sent += self.emit_arrivals(&batch, u64::MAX)?;
            self.metrics.backfilled(batch.len() as u64);
        }
        Ok(sent)
    }

    /// Produces `count` events following the timeline from `start`, without waiting: `sample`.
    pub fn sample(&mut self, start: DateTime<Utc>, count: u64) -> Result<u64, PipelineError> {
        let mut arrivals = Arrivals::after(nanos(start), stream_rng(self.seed, Stream::Timeline));
        let mut sent = 0;
        let mut batch = Vec::new();
        while sent < count {
            // Enough arrivals for what is missing (an arrival makes one event, usually).
            batch.clear();
            let want = ((count - sent) as usize).clamp(1, BATCH);
            while batch.len() < want {
                match self.next_arrival(&mut arrivals)? {
                    Some(t) => batch.push(t),
                    None => break,
                }
            }
            if batch.is_empty() {
                // The curve ended: what is left are follow-ups.
                let before = sent;
                sent += self.emit_follow_ups_due(Nanos::MAX, count - sent, &mut HashSet::new())?;
                if sent == before {
                    break;
                }
                continue;
            }
            sent += self.emit_arrivals(&batch, count - sent)?;
        }
        Ok(sent)
    }

    /// `sim run`'s whole stream on one clock: first, with `backfill`, that many arrivals over
    /// the window before the clock's start (in virtual time, as fast as the machine allows),
    /// reported as [`StreamNotice::BackfillDone`]; then the live stream from the clock's start, as
    /// [`Pipeline::live`]. The clock is started before the backfill, so the arrivals that fell
    /// due while it ran are made at once when it ends, and from then on every live event leaves
    /// when its timestamp says: live time is real time, however long the backfill took.
    pub fn stream(
        &mut self,
        clock: &SimClock,
        backfill: Option<BackfillSpec>,
        shutdown: &Shutdown,
        until: Option<DateTime<Utc>>,
    ) -> Result<u64, PipelineError> {
        let mut events = 0;
        if let Some(spec) = backfill {
            let to = clock.start();
            events += self.backfill(to, spec.arrivals, spec.days, shutdown)?;
            self.tell(StreamNotice::BackfillDone {
                arrivals: spec.arrivals,
                events,
                from: to - chrono::Duration::seconds((spec.days * 86_400.0) as i64),
                to,
            });
        }
        if shutdown.is_triggered() {
            return Ok(events);
        }
        Ok(events + self.live(clock, shutdown, until)?)
    }

    /// Streams in real time from the clock's start until `shutdown` (or, with `until`, until
    /// simulated time reaches it). Returns the number of events sent.
    ///
    /// Every wait goes through the clock, so on a clock on virtual time (tests, see
    /// [`crate::clock::TimeSource`]) the stream never sleeps on the wall clock yet sends each
    /// event at its deadline.
    ///
    /// Every arrival already due is made in one batch (on all workers), so a slow moment is
    /// caught up instead of drifting.
    pub fn live(
        &mut self,
        clock: &SimClock,
        shutdown: &Shutdown,
        until: Option<DateTime<Utc>>,
    ) -> Result<u64, PipelineError> {
        // A group's instances walk one timeline, from where the group started it.
        let origin = match &self.share {
            Some(share) => share.live_origin(),
            None => nanos(clock.start()),
        };
        let mut arrivals = Arrivals::after(origin, stream_rng(self.seed, Stream::Timeline));
        self.walking = Some(Walk::Live { origin });
        let until = until.map(nanos).unwrap_or(Nanos::MAX);
        self.metrics.start_live();
        // Live events have deadlines: how late each leaves is measured against the clock.
        self.deadlines = Some(clock.clone());
        let sent = self.live_on(clock, shutdown, &mut arrivals, until);
        self.deadlines = None;
        let next = self.next_arrival;
        if let Some(share) = self.share.as_mut() {
            // What was made is recorded as made, stopped by a signal or by an error alike.
            let committed = share.commit(next);
            let sent = sent?;
            committed?;
            return Ok(sent);
        }
        sent
    }

    fn live_on(
        &mut self,
        clock: &SimClock,
        shutdown: &Shutdown,
        arrivals: &mut Arrivals,
        until: Nanos,
    ) -> Result<u64, PipelineError> {
        let mut sent = 0;
        let mut next = self.next_arrival(arrivals)?;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            sent += self.serve_share()?;
            let follow_up = self.next_follow_up();
            let due = match (next, follow_up) {
                (None, None) => break,
                (Some(t), None) | (None, Some(t)) => t,
                (Some(a), Some(f)) => a.min(f),
            };
            if due >= until {
                // Wait out the rest of the run, then stop.
                self.sink.idle()?;
                clock.sleep_until(DateTime::from_timestamp_nanos(until), shutdown);
                break;
            }
            let due = DateTime::from_timestamp_nanos(due);
            if !clock.until(due).is_zero() {
                // Nothing is due: what the sink holds goes out before the stream sleeps, so a
                // reader of a file or a pipe sees each event within one sleep of its time.
                self.sink.idle()?;
                if clock.sleep_until(due.min(clock.now() + MAX_SLEEP), shutdown) {
                    break;
                }
                continue;
            }
            if shutdown.is_triggered() {
                break;
            }
            self.swap_if_reloaded(arrivals);
            if next.is_some_and(|t| follow_up.is_none_or(|f| t < f)) {
                // Every arrival due by now (the follow-ups among them come in their turn).
                let now = nanos(clock.now()).min(until - 1);
                batch.clear();
                while let Some(t) = next.filter(|&t| t <= now && batch.len() < BATCH) {
                    batch.push(t);
                    next = self.next_arrival(arrivals)?;
                }
                if batch.is_empty() {
                    continue;
                }
                sent += self.emit_arrivals(&batch, u64::MAX)?;
            } else {
                sent += self.emit_follow_up(&mut HashSet::new())?;
            }
            if std::mem::take(&mut self.curve_changed) {
                // Rolled back: the revision back may have another rate.
                arrivals.forget_segment();
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests;
