//! How a script becomes runnable: load it, resolve its settings, set it up, and check a sample of
//! its events.
//!
//! Every command starts here. [`prepare`] loads the script, resolves settings over its
//! `config()`, picks the seed and the clock's start, and runs `setup`. [`sample_checked`] then
//! runs the prepared scenario over a sample of events, into a discarding sink, with every event
//! checked against the schema and the script's invariants: `sim check` reports what it finds;
//! `sim run`, `sample` and `backfill` ([`check_start`]) and hot reload refuse a version that
//! breaks anything, with the same diagnostic ([`SampleError`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::avro::{AvroError, EventSchema};
use crate::clock::{SimClock, TimeSource};
use crate::encode::EventEncoder;
use crate::metrics::Metrics;
use crate::pipeline::{FunctionCoverage, Pipeline, PipelineError};
use crate::rng::fresh_seed;
use crate::schema::Violation;
use crate::script::{Scenario, ScriptError};
use crate::settings::{resolve, Settings, SettingsError, UserInput};
use crate::sink::{DiscardSink, SinkSpec};

/// What every command takes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario script.
    pub script: PathBuf,
    /// Flags, environment and config file.
    pub input: UserInput,
    /// `--seed`; a fresh seed (reported) when absent.
    pub seed: Option<u64>,
    /// `--now`; the real now when absent.
    pub now: Option<DateTime<Utc>>,
    /// `--sink`.
    pub sink: SinkSpec,
    /// `--labels`: add the ground truth to each event as a `_label` field.
    pub labels: bool,
    /// `--meta`: add each event's provenance (revision, sequence number, function) as `_meta`.
    pub meta: bool,
    /// How time passes for the live stream: the wall clock, or paused virtual time in tests.
    pub time: TimeSource,
}

/// A scenario loaded, configured and set up.
pub struct Prepared {
    /// The scenario.
    pub scenario: Scenario,
    /// Its resolved settings.
    pub settings: Settings,
    /// The seed.
    pub seed: u64,
    /// What the simulator takes as now.
    pub now: DateTime<Utc>,
    /// The clock of the live stream: `now`, taken at the same instant, advancing from there
    /// (so the time `setup` and a backfill take passes on it too).
    pub clock: SimClock,
}

impl Prepared {
    /// The scenario's Avro schema: its own (`config().avro_schema`), or derived from its declared
    /// schema, named after the topic.
    pub fn avro_schema(&self) -> Result<EventSchema, AvroError> {
        EventSchema::for_scenario(
            self.scenario.name(),
            self.scenario.schema(),
            self.scenario.avro_schema(),
            &self.settings.topic,
        )
    }
}

/// Why a scenario could not be made runnable.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ScenarioError {
    /// The script failed to compile, configure or set up.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// A setting is wrong.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(#[from] SettingsError),
    /// Making the sample failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pipeline(#[from] PipelineError),
    /// The sample broke a rule.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sample(#[from] SampleError),
}

/// Why a checked sample refuses a scenario, before a stream starts or a reload swaps it in.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SampleError {
    /// A sample event broke the scenario's schema or its `check(event)` invariants.
    #[error("{}: sample event {seq} breaks the scenario's schema or invariants: {violation}", script.display())]
    #[diagnostic(
        code(sim::scenario::sample_broken),
        help("run `sim check` on the script to see every event that breaks a rule")
    )]
    Broken {
        /// The script.
        script: PathBuf,
        /// Sequence number of the first event that broke a rule.
        seq: i64,
        /// What it broke.
        violation: Violation,
    },
    /// The follow-ups grow without levelling off: left running, they would take the machine's
    /// memory.
    #[error("{}: follow-ups grow without levelling off ({} pending after the sample's arrivals, {} still pending after {} more were made)", script.display(), growth.after_arrivals, growth.left, growth.drained)]
    #[diagnostic(
        code(sim::scenario::follow_ups_grow),
        help("a follow-up that schedules more than one of itself multiplies; run `sim check` on the script to see which function schedules the most")
    )]
    FollowUpsGrow {
        /// The script.
        script: PathBuf,
        /// How the follow-ups grew over the sample.
        growth: FollowUpGrowth,
    },
}

/// Events of the sample checked before a stream starts or a reload swaps a version in.
pub const CHECK_EVENTS: u64 = 200;

/// Loads, configures and sets up the scenario of `options`.
pub fn prepare(options: &Options) -> Result<Prepared, ScenarioError> {
    let mut prepared = configure(options)?;
    let now_ms = prepared.now.timestamp_millis();
    prepared
        .scenario
        .setup(&prepared.settings, prepared.seed, now_ms)?;
    Ok(prepared)
}

/// Loads and configures the scenario of `options` without setting it up: enough to know its
/// settings and schemas (`sim schema`), not to make events.
pub fn configure(options: &Options) -> Result<Prepared, ScenarioError> {
    let mut scenario = Scenario::load(&options.script)?;
    let defaults = scenario.config()?;
    let settings = resolve(&options.input, &defaults)?;
    let seed = options.seed.unwrap_or_else(fresh_seed);
    let now = options.now.unwrap_or_else(Utc::now);
    let clock = SimClock::on(options.time.clone(), now);
    Ok(Prepared {
        scenario,
        settings,
        seed,
        now,
        clock,
    })
}

/// A prepared scenario after its sample, and what the sample showed.
pub struct Sampled {
    /// The scenario, as the sample left it.
    pub scenario: Scenario,
    /// Its resolved settings.
    pub settings: Settings,
    /// Events made, by arrivals and follow-ups.
    pub events: u64,
    /// Every schema or invariant violation, with the sequence number of the event.
    pub violations: Vec<(i64, Violation)>,
    /// What each function of the script made, and how much of it was checked.
    pub coverage: Vec<FunctionCoverage>,
    /// How the follow-ups pending after the sample's arrivals settled.
    pub follow_ups: FollowUpGrowth,
}

/// Follow-ups pending over a checked sample: after its arrivals, and after draining them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FollowUpGrowth {
    /// Pending when the last arrival of the sample was made.
    pub after_arrivals: usize,
    /// Follow-ups made while draining them.
    pub drained: u64,
    /// Still pending when the drain stopped: 0 once every chain has ended.
    pub left: usize,
}

impl FollowUpGrowth {
    /// Whether the follow-ups grew without levelling off: the drain ran out of budget with more
    /// pending than it started with (a follow-up that schedules two of itself, say). Left
    /// running, such a scenario takes the machine's memory.
    pub fn grows(&self) -> bool {
        self.left > self.after_arrivals.max(1)
    }
}

/// The follow-ups a check drains after its arrivals, for `count` arrivals: enough for chains of
/// many links, bounded so a self-multiplying follow-up is caught rather than run forever.
fn drain_budget(count: u64) -> u64 {
    count.saturating_mul(20).max(10_000)
}

impl Sampled {
    /// Refuses the scenario of `script` if an event of the sample broke a rule or its
    /// follow-ups grow; gives back the sampled scenario and settings otherwise.
    pub fn verdict(self, script: &Path) -> Result<Self, SampleError> {
        if let Some((seq, violation)) = self.violations.first().cloned() {
            return Err(SampleError::Broken {
                script: script.to_path_buf(),
                seq,
                violation,
            });
        }
        if self.follow_ups.grows() {
            return Err(SampleError::FollowUpsGrow {
                script: script.to_path_buf(),
                growth: self.follow_ups,
            });
        }
        Ok(self)
    }
}

/// Checks a sample of [`CHECK_EVENTS`] events of `prepared` (the script at `script`) before
/// its stream starts, exactly as a reload checks a new version, on a copy that remembers
/// nothing into the stream: the events that follow are those an unchecked start makes.
pub fn check_start(prepared: Prepared, script: &Path) -> Result<Prepared, ScenarioError> {
    check_start_with(prepared, script, None)
}

/// [`check_start`], with each sample event also encoded by `encoder`: with Avro, an event the
/// schema does not fit stops the start, before the schema is registered.
pub fn check_start_with(
    prepared: Prepared,
    script: &Path,
    encoder: Option<EventEncoder>,
) -> Result<Prepared, ScenarioError> {
    let trial = Prepared {
        scenario: prepared.scenario.trial_copy()?,
        settings: prepared.settings.clone(),
        seed: prepared.seed,
        now: prepared.now,
        clock: prepared.clock.clone(),
    };
    sample_checked_with(trial, CHECK_EVENTS, encoder)?.verdict(script)?;
    Ok(prepared)
}

/// Makes `count` events of `prepared` from its `now` on, without waiting, then every follow-up
/// they left pending (as if time ran on with no more arrivals, within a budget), into a sink
/// that discards them, checking each event against the schema and the script's invariants. So a
/// chain of follow-ups an hour long is checked to its last link. An error means the script
/// failed making an event; violations are collected, not fatal.
pub fn sample_checked(prepared: Prepared, count: u64) -> Result<Sampled, ScenarioError> {
    sample_checked_with(prepared, count, None)
}

/// [`sample_checked`], with each event also encoded by `encoder` (with Avro, so an event its
/// schema does not fit fails the sample as it would fail in the stream).
pub fn sample_checked_with(
    prepared: Prepared,
    count: u64,
    encoder: Option<EventEncoder>,
) -> Result<Sampled, ScenarioError> {
    let mut sink = DiscardSink::default();
    let mut pipeline = Pipeline::new(
        prepared.scenario,
        &prepared.settings,
        prepared.seed,
        &mut sink,
        Arc::new(Metrics::default()),
    );
    pipeline.validate_events();
    if let Some(encoder) = encoder {
        pipeline.encode_with(encoder);
    }
    let events = pipeline.sample(prepared.now, count)?;
    let after_arrivals = pipeline.pending_follow_ups();
    let (drained_events, drained) = pipeline.drain_follow_ups(drain_budget(count))?;
    let follow_ups = FollowUpGrowth {
        after_arrivals,
        drained,
        left: pipeline.pending_follow_ups(),
    };
    let events = events + drained_events;
    let violations = pipeline.take_violations();
    let coverage = pipeline.take_coverage();
    Ok(Sampled {
        scenario: pipeline.into_scenario(),
        settings: prepared.settings,
        events,
        violations,
        coverage,
        follow_ups,
    })
}
