//! The command line's error: the producer's and the analyzer's joined, with the few mistakes
//! only the command line can make. The binary renders it with miette.

use crate::analyze::AnalyzeError;
use crate::error::SimError;
use crate::report::ReportError;
use crate::settings::SettingsError;
use crate::sink::SinkError;

impl CliError {
    /// Whether the command stopped because the reader of its output went away
    /// (`sim sample ... | head -1`): Unix tools end quietly then, and so does `sim`.
    pub fn reader_gone(&self) -> bool {
        use crate::pipeline::PipelineError;
        match self {
            CliError::Sim(SimError::Sink(err))
            | CliError::Sim(SimError::Pipeline(PipelineError::Sink(err))) => err.reader_gone(),
            _ => false,
        }
    }
}

impl From<ReportError> for CliError {
    fn from(err: ReportError) -> Self {
        CliError::Report(Box::new(err))
    }
}

/// Anything that stops a `sim` command.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
    /// A producing command (`run`, `backfill`, `sample`) failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sim(#[from] SimError),
    /// `sim analyze` failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Analyze(#[from] AnalyzeError),
    /// `sim report` or `sim analyze --report` failed (boxed: it carries the summary's text for
    /// its span, and every command returns this error).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Report(Box<ReportError>),
    /// A `--set` or `-X` assignment is malformed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(#[from] SettingsError),
    /// `--sink` names no sink.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
    /// `--duration` is not a number of seconds.
    #[error("--duration {0}: expected seconds, at least 0")]
    #[diagnostic(code(sim::cli::duration), help("e.g. --duration 60 or --duration 0.5"))]
    Duration(f64),
    /// `--window` and `--slide` do not tile.
    #[error("--window {window} --slide {slide}: both must be positive and the window a multiple of the slide")]
    #[diagnostic(code(sim::cli::window), help("e.g. --window 300 --slide 60"))]
    Window {
        /// `--window`, seconds.
        window: u32,
        /// `--slide`, seconds.
        slide: u32,
    },
    /// Ctrl-C and SIGTERM cannot be caught, so a stop could not flush.
    #[error("cannot watch for signals: {0}")]
    #[diagnostic(code(sim::cli::signals))]
    Signals(std::io::Error),
    /// A file `sim` was asked to write could not be written (`sim man --dir`).
    #[error("cannot write {path}: {source}", path = .0.display(), source = .1)]
    #[diagnostic(code(sim::cli::write))]
    Write(std::path::PathBuf, std::io::Error),
}
