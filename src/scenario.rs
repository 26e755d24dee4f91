//! How a script becomes runnable: load it, resolve its settings, set it up, and check a sample of
//! its events.
//!
//! Every command starts here. [`prepare`] loads the script, resolves settings over its
//! `config()`, picks the seed and the clock's start, and runs `setup`. [`sample_checked`] then
//! runs the prepared scenario over a sample of events, into a discarding sink, with every event
//! checked against the schema and the script's invariants: `sim check` reports what it finds, and
//! hot reload refuses a new version that breaks anything.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError};
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
}

/// Loads, configures and sets up the scenario of `options`.
pub fn prepare(options: &Options) -> Result<Prepared, ScenarioError> {
    let mut scenario = Scenario::load(&options.script)?;
    let defaults = scenario.config()?;
    let settings = resolve(&options.input, &defaults)?;
    let seed = options.seed.unwrap_or_else(fresh_seed);
    let now = options.now.unwrap_or_else(Utc::now);
    scenario.setup(&settings, seed, now.timestamp_millis())?;
    Ok(Prepared {
        scenario,
        settings,
        seed,
        now,
    })
}

/// A prepared scenario after its sample, and what the sample showed.
pub struct Sampled {
    /// The scenario, as the sample left it.
    pub scenario: Scenario,
    /// Its resolved settings.
    pub settings: Settings,
    /// Events made.
    pub events: u64,
    /// Every schema or invariant violation, with the sequence number of the event.
    pub violations: Vec<(i64, Violation)>,
}

/// Makes `count` events of `prepared` from its `now` on, without waiting, into a sink that
/// discards them, checking each against the schema and the script's invariants. An error means
/// the script failed making an event; violations are collected, not fatal.
pub fn sample_checked(prepared: Prepared, count: u64) -> Result<Sampled, ScenarioError> {
    let mut sink = DiscardSink::default();
    let mut pipeline = Pipeline::new(
        prepared.scenario,
        &prepared.settings,
        prepared.seed,
        &mut sink,
        Arc::new(Metrics::default()),
    );
    pipeline.validate_events();
    let events = pipeline.sample(prepared.now, count)?;
    let violations = pipeline.take_violations();
    Ok(Sampled {
        scenario: pipeline.into_scenario(),
        settings: prepared.settings,
        events,
        violations,
    })
}
