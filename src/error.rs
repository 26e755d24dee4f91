//! The producer's error: what stops `sim run`, `sim backfill` or `sim sample`, over the
//! families of the layers those commands join. The binary renders it as a miette diagnostic; the
//! consumer side has its own ([`crate::analyze::AnalyzeError`]), and the command line joins the
//! two ([`crate::cli::CliError`]).

use crate::avro::AvroError;
use crate::exporter::ExporterError;
use crate::group::GroupError;
use crate::pipeline::PipelineError;
use crate::registry::RegistryError;
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
    /// The scenario has no usable Avro schema, or Avro does not fit the options.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Avro(#[from] AvroError),
    /// The schema registry could not be reached, refused the schema, or could not start.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
    /// The sink could not be opened or closed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Metrics(#[from] ExporterError),
    /// The instance could not join its group (`--group`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Group(#[from] GroupError),
}
