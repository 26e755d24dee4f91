//! Why the pipeline stopped: one family over the stages it joins.

use crate::encode::EncodeError;
use crate::rate::RateError;
use crate::script::ScriptError;
use crate::sink::SinkError;

/// A failure of one stage of the pipeline, which ends the step it happened in.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PipelineError {
    /// The scenario script failed making an event.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// The timeline could not follow the rate curve.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rate(#[from] RateError),
    /// An event could not be encoded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Encode(#[from] EncodeError),
    /// The sink failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
}
