//! The producer's error: what stops `sim run`, `sim backfill` or `sim sample`, over the
//! families of the layers those commands join. The binary renders it as a miette diagnostic; the
//! consumer side has its own ([`crate::analyze::AnalyzeError`]), and the command line joins the
//! two ([`crate::cli::CliError`]).

use crate::pipeline::PipelineError;
use crate::scenario::ScenarioError;
use crate::sink::SinkError;

/// Anything that stops a simulation.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SimError {
    /// The scenario could not be loaded, configured or set up.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Scenario(#[from] ScenarioError),
    /// Making or sending events failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pipeline(#[from] PipelineError),
    /// The sink could not be opened or closed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
}
