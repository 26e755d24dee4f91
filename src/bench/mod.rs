//! `sim bench`: how fast a scenario makes events, and which of its script functions and lines
//! take the time.
//!
//! The scenario is prepared and its start checked as `sim sample` does it, then it makes events
//! into a sink that discards them: encoded to JSON, as `sim run` makes them, but sent nowhere.
//! Three runs, each after a warm-up:
//!
//! 1. one worker: the speed of one core;
//! 2. the `workers` setting's count (one a core by default): what `sim run` can make;
//! 3. one worker again, with a [`Profiler`] attached to its engine (see
//!    [`crate::script::Profiler`]): calls and time per script function and per line. Its
//!    engine's share (time outside any script step: timeline, encoding, scheduling) gives the
//!    split of the first run's time between script and engine.
//!
//! It measures and reports; it judges nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::SimError;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::scenario::{check_start, prepare, Options};
use crate::script::{Profile, Scenario};
use crate::settings::Settings;
use crate::sink::DiscardSink;

mod report;

pub use report::{BenchReport, FunctionRow, LineRow, ScriptShare, Speed};

/// Events the profiled run makes at most: enough for the shares to settle, few enough that the
/// slower profiled run stays short.
pub const PROFILE_EVENTS: u64 = 20_000;

/// How long `sim bench` measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// This many events.
    Events(u64),
    /// About this long on one core: the event count comes from the warm-up's speed.
    Time(Duration),
}

/// What `sim bench` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchSpec {
    /// The measured runs' length.
    pub measure: Measure,
    /// Events made before each measured run, not counted.
    pub warmup: u64,
    /// Whether to run the profiled run (calls and time per function and line).
    pub profile: bool,
}

/// Runs `sim bench` on the scenario of `options`: see the module doc.
pub fn bench(options: &Options, spec: &BenchSpec) -> Result<BenchReport, SimError> {
    let started = Instant::now();
    let prepared = check_start(prepare(options)?, &options.script)?;
    let start_up = (started.elapsed(), prepared.scenario.setup_run());
    let settings = prepared.settings;
    let (seed, now) = (prepared.seed, prepared.now);
    let mut sink = DiscardSink::default();
    let runner = Runner {
        settings: &settings,
        seed,
        now,
        options,
    };
    let (one_core, scenario) = runner.timed(prepared.scenario, &mut sink, 1, spec)?;
    // Read before the profiled run, which goes through the interpreter.
    let fast_path = scenario.fast_path();
    let count = one_core.events;
    let spec = BenchSpec {
        measure: Measure::Events(count),
        ..*spec
    };
    let workers = settings.workers.max(1);
    let (scenario, many) = if workers > 1 {
        let (speed, scenario) = runner.timed(scenario, &mut sink, workers, &spec)?;
        (scenario, Some(speed))
    } else {
        (scenario, None)
    };
    let profiled = if spec.profile {
        Some(runner.profiled(scenario, &mut sink, count.min(PROFILE_EVENTS), spec.warmup)?)
    } else {
        None
    };
    Ok(BenchReport::new(
        options.script.clone(),
        seed,
        one_core,
        many,
        start_up,
        fast_path,
        profiled,
    ))
}

/// What a profiled run gave: the profile, the events it made and how long they took.
#[derive(Debug, Clone)]
pub struct Profiled {
    /// Functions and lines.
    pub profile: Profile,
    /// Events made.
    pub events: u64,
    /// Wall time of the run, script and engine.
    pub elapsed: Duration,
}

/// Makes the runs of one bench over one scenario's settings.
struct Runner<'a> {
    settings: &'a Settings,
    seed: u64,
    now: chrono::DateTime<chrono::Utc>,
    options: &'a Options,
}

impl Runner<'_> {
    fn pipeline<'s>(&self, scenario: Scenario, sink: &'s mut DiscardSink) -> Pipeline<'s> {
        let mut pipeline = Pipeline::new(
            scenario,
            self.settings,
            self.seed,
            sink,
            Arc::new(Metrics::default()),
        );
        pipeline.label_events(self.options.labels);
        pipeline.describe_events(self.options.meta);
        pipeline
    }

    /// A warm-up, then the measured run, with `workers` workers; gives back the first worker's
    /// scenario for the next run.
    fn timed(
        &self,
        scenario: Scenario,
        sink: &mut DiscardSink,
        workers: usize,
        spec: &BenchSpec,
    ) -> Result<(Speed, Scenario), SimError> {
        let mut pipeline = self.pipeline(scenario, sink);
        pipeline.set_workers(workers)?;
        let started = Instant::now();
        let warmed = pipeline.sample(self.now, spec.warmup)?;
        let warmup_time = started.elapsed();
        let count = match spec.measure {
            Measure::Events(count) => count,
            Measure::Time(wanted) => {
                let per_second = warmed as f64 / warmup_time.as_secs_f64().max(1e-9);
                ((per_second * wanted.as_secs_f64()) as u64).max(1)
            }
        };
        let started = Instant::now();
        let events = pipeline.sample(self.now, count)?;
        let speed = Speed::new(workers, events, started.elapsed());
        Ok((speed, pipeline.into_scenario()))
    }

    /// A warm-up, then `count` events with the profiler attached, on one worker.
    fn profiled(
        &self,
        mut scenario: Scenario,
        sink: &mut DiscardSink,
        count: u64,
        warmup: u64,
    ) -> Result<Profiled, SimError> {
        let profiler = scenario.attach_profiler();
        let mut pipeline = self.pipeline(scenario, sink);
        pipeline.sample(self.now, warmup.min(count))?;
        profiler.reset();
        let started = Instant::now();
        let events = pipeline.sample(self.now, count)?;
        let elapsed = started.elapsed();
        Ok(Profiled {
            profile: profiler.take(),
            events,
            elapsed,
        })
    }
}
