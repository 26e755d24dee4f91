//! The command line: argument definitions, the translation into library calls, and everything
//! `sim` prints.
//!
//! The work is done by [`crate::app`], [`crate::check`], [`crate::analyze`] and
//! [`crate::report`], which report
//! through values and notices; only this module writes to the terminal. Notices and the final
//! account go to standard error, so standard output carries nothing but events (for `sample` and
//! `--sink stdout`) or a JSON summary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::check::CheckOptions;
use crate::settings::split_assignment;
use crate::shutdown::Shutdown;
use args::{user_input, CommonArgs, GroupArgs};
use log::{clear_status, Entry};
use produce::{backfill, run, sample, schema, RunShow, SchemaFormat};

/// Prints a plain line on standard error through the logger (an `info` object in JSON mode), for
/// report text that has no event of its own, such as `sim check`'s and `sim bench`'s.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::log::Entry::line(format!($($arg)*)).emit()
    };
}

mod analyze;
mod args;
mod bench;
mod check;
mod dashboard;
mod error;
pub mod log;
mod notices;
mod numbers;
mod produce;
mod progress;
mod report;
mod shell;
mod status;

pub use error::CliError;

/// A scriptable real-time event simulator for Kafka.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about, long_about = None, after_help = shell::SIM)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How lines on standard error are written: text for people, or json, one object a line
    /// with time, level, event, message and fields, for log collectors (no status line then).
    /// Standard output carries events either way.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SIM_LOG_FORMAT",
        default_value_t = log::LogFormat::Text,
        value_name = "FORMAT"
    )]
    log_format: log::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream a scenario live: backfill history (EVENT_INIT_MODE=flush), then real time until
    /// Ctrl-C. Without --brokers or KAFKA_BROKER, runs an embedded broker and prints its address.
    #[command(after_help = shell::RUN)]
    Run {
        /// The scenario script, e.g. scripts/darooghe.rhai.
        script: PathBuf,
        /// Stop after this many seconds of live streaming (as if Ctrl-C were pressed).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Do not reload the script when it (or a module it imports) is saved.
        #[arg(long)]
        no_reload: bool,
        /// A full-screen dashboard on standard error instead of the status line: target and
        /// achieved rate over the last minute, delivery, reloads, follow-ups; q or Ctrl-C stop
        /// as SIGINT does. Only on a terminal with text logs.
        #[arg(long)]
        dashboard: bool,
        #[command(flatten)]
        group: GroupArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Print N events as JSON lines, as the timeline would make them from --now on.
    #[command(after_help = shell::SAMPLE)]
    Sample {
        /// The scenario script.
        script: PathBuf,
        /// How many events.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Produce only the historical part: COUNT arrivals over the DAYS before --now (an arrival
    /// may make several events, or none).
    #[command(after_help = shell::BACKFILL)]
    Backfill {
        /// The scenario script.
        script: PathBuf,
        /// How many arrivals (default: the BACKFILL setting, 20,000); the events they make are
        /// counted at the end.
        #[arg(long)]
        count: Option<u64>,
        /// The window in days (default: the backfill_days setting, 7).
        #[arg(long)]
        days: Option<f64>,
        #[command(flatten)]
        group: GroupArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Validate scripts: compile, set up, generate events with a fixed seed, and check each
    /// against the schema and invariants the script declares; exit non-zero on any problem.
    #[command(after_help = shell::CHECK)]
    Check {
        /// The scenario scripts.
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
        /// Events to generate from each script.
        #[arg(short = 'n', long, default_value_t = 1_000)]
        count: u64,
        /// Seed of the generated events.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output: text on standard error, or one JSON object on standard output.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// TOML config file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Set any setting: --set fraud_rate=0.1 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Fail on warnings too, such as a follow-up the check never reached (for tests and CI).
        #[arg(long)]
        strict: bool,
    },
    /// Time a scenario making events (encoded, sent nowhere) on one core and on every core, and
    /// list the script functions and lines that take the time.
    #[command(after_help = shell::BENCH)]
    Bench(bench::BenchArgs),
    /// Print the schema of the events a scenario produces: the Avro schema that --encoding avro
    /// registers (derived from config().schema, or the script's own config().avro_schema), or
    /// the JSON Schema of its JSON events.
    #[command(after_help = shell::SCHEMA)]
    Schema {
        /// The scenario script.
        script: PathBuf,
        /// The schema language.
        #[arg(long, value_enum, default_value_t = SchemaFormat::Avro)]
        format: SchemaFormat,
        /// Topic the events go to: it names the Avro record (overrides TOPIC).
        #[arg(long)]
        topic: Option<String>,
        /// TOML config file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Consume the transactions topic in a consumer group: aggregates, event-time windows and
    /// fraud detection, scored against the ground truth; a live view, a summary at exit.
    #[command(after_help = shell::ANALYZE)]
    Analyze(analyze::AnalyzeArgs),
    /// Draw a summary saved from `sim analyze --format json` as one self-contained HTML page
    /// of charts (events per minute against the scenario's rate, hours, revenue, amounts,
    /// declines, detection), for a browser, offline.
    #[command(after_help = shell::REPORT)]
    Report(report::ReportArgs),
    /// Print a completion script for a shell: bash, zsh, fish, elvish or powershell.
    #[command(after_help = shell::COMPLETIONS)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page sim(1), or write one page a command into a directory.
    #[command(after_help = shell::MAN)]
    Man {
        /// Write sim.1, sim-run.1, ... into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// A stop signal wired to Ctrl-C and SIGTERM.
fn watch_signals() -> Result<Shutdown, CliError> {
    let shutdown = Shutdown::new();
    shutdown
        .on_signals(say_stopping)
        .map_err(CliError::Signals)?;
    Ok(shutdown)
}

/// Says that `sim` is stopping, after a signal or a dashboard's `q`.
fn say_stopping() {
    // Ends the status line (if drawn) on a line of its own before saying why.
    Entry::info(
        "stopping",
        format!(
            "{}\nstopping: flushing what was accepted (signal again to quit at once)",
            clear_status()
        ),
    )
    .emit()
}

/// Output format of `sim check` and `sim bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people, on standard error.
    Text,
    /// For machines: one JSON object on standard output.
    Json,
}

impl Cli {
    /// Runs the command; errors are returned for the caller to render.
    pub fn execute(self) -> Result<ExitCode, CliError> {
        // First: every line from here on, the fatal error included, is written in this format.
        log::init(self.log_format);
        match self.run_command() {
            Err(err) if err.reader_gone() => Ok(ExitCode::SUCCESS),
            result => result,
        }
    }

    fn run_command(self) -> Result<ExitCode, CliError> {
        match self.command {
            Command::Run {
                script,
                duration,
                no_reload,
                dashboard,
                group,
                common,
            } => {
                let show = RunShow {
                    reload: !no_reload,
                    dashboard,
                };
                run(script, duration, show, common.grouped(group))
            }
            Command::Sample {
                script,
                count,
                common,
            } => sample(script, count, common),
            Command::Backfill {
                script,
                count,
                days,
                group,
                common,
            } => backfill(script, count, days, common.grouped(group)),
            Command::Check {
                scripts,
                count,
                seed,
                format,
                config,
                set,
                strict,
            } => {
                let input = user_input(config, &set, &[], None, None, None)?;
                let options = CheckOptions {
                    count,
                    seed,
                    strict,
                    ..CheckOptions::default()
                };
                Ok(check::check(&scripts, &options, format, &input))
            }
            Command::Bench(args) => bench::bench(args),
            Command::Schema {
                script,
                format,
                topic,
                config,
            } => schema(script, format, topic, config),
            Command::Analyze(args) => analyze::analyze(args),
            Command::Report(args) => report::report(args),
            Command::Completions { shell } => Ok(shell::completions(shell)),
            Command::Man { dir } => shell::man(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_global_and_text_by_default() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.log_format);
        assert_eq!(
            parse(&["sim", "sample", "x.rhai"]).unwrap(),
            log::LogFormat::Text
        );
        // After the subcommand and its script, as people type it, and before it.
        assert_eq!(
            parse(&["sim", "run", "x.rhai", "--log-format", "json"]).unwrap(),
            log::LogFormat::Json
        );
        assert_eq!(
            parse(&["sim", "--log-format", "json", "check", "x.rhai"]).unwrap(),
            log::LogFormat::Json
        );
        let refused = parse(&["sim", "sample", "x.rhai", "--log-format", "yaml"]).unwrap_err();
        assert_eq!(refused.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
