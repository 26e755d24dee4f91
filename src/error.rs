//! The library's top-level error: one enum over the families of each module, each rendered as a
//! miette diagnostic by the binary.

use chrono::{DateTime, Utc};

use crate::script::ScriptError;
use crate::settings::SettingsError;
use crate::sink::SinkError;

/// Anything that stops a simulation.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SimError {
    /// The scenario script failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// A setting is wrong.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(#[from] SettingsError),
    /// An event could not be encoded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Encode(#[from] crate::encode::EncodeError),
    /// The sink failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
    /// `rate(t)` returned a value that is not a rate.
    #[error("rate(t) returned {value} at {at}: a rate must be a finite number of events per minute, at least 0")]
    #[diagnostic(code(sim::rate::invalid))]
    InvalidRate {
        /// The time asked about.
        at: DateTime<Utc>,
        /// What came back.
        value: f64,
    },
    /// The rate is zero over the whole backfill window, so no event can be placed in it.
    #[error(
        "the rate is zero over the whole backfill window, so no historical event can be placed"
    )]
    #[diagnostic(code(sim::rate::empty_window))]
    EmptyBackfillWindow,
    /// `sim analyze` failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Analyze(#[from] crate::analyze::AnalyzeError),
    /// An error the user asked for by bad input outside settings (e.g. `--now`).
    #[error("{0}")]
    #[diagnostic(code(sim::input))]
    Input(String),
}
