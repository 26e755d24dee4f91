//! The producer's commands on the command line: `sim run` (with its status line, progress bar
//! or dashboard), `sim sample`, `sim backfill` and `sim schema`, each a call into
//! [`crate::app`] with what it prints around it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{user_input, CommonArgs};
use super::dashboard;
use super::log::Entry;
use super::notices::{print_notice, print_reload, reload_summary, report};
use super::status::{spawn_backfill_bar, spawn_status_line};
use super::{watch_signals, CliError};
use crate::app;
use crate::metrics::Metrics;

/// How `sim run` is asked to show itself and to react to edits.
pub(super) struct RunShow {
    /// Reload the script when it is saved.
    pub(super) reload: bool,
    /// Draw the dashboard rather than the status line.
    pub(super) dashboard: bool,
}

pub(super) fn run(
    script: PathBuf,
    duration: Option<f64>,
    show: RunShow,
    common: CommonArgs,
) -> Result<ExitCode, CliError> {
    let options = common.options(script, "kafka")?;
    let duration = duration
        .map(|s| Duration::try_from_secs_f64(s).map_err(|_| CliError::Duration(s)))
        .transpose()?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = watch_signals()?;
    let events_on_screen = matches!(options.sink, crate::sink::SinkSpec::Stdout)
        && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let dashboard = dashboard::run::start(show.dashboard, events_on_screen, &metrics, &shutdown);
    let status_line = match dashboard {
        Some(_) => None,
        None => spawn_status_line(metrics.clone(), shutdown.clone()),
    };
    let on_reload: app::ReloadReporter = match (show.reload, &dashboard) {
        (false, _) => None,
        (true, None) => Some(Box::new(print_reload)),
        (true, Some((_, reloads))) => {
            let reloads = reloads.clone();
            Some(Box::new(move |notice| {
                reloads.push(reload_summary(&notice));
                print_reload(notice)
            }))
        }
    };
    let outcome = app::run(
        &options,
        &shutdown,
        duration,
        metrics.clone(),
        &mut print_notice,
        on_reload,
        Box::new(print_notice),
    );
    // Ends the status line (or leaves the dashboard's screen) before the account is printed.
    shutdown.trigger();
    if let Some(status_line) = status_line {
        let _ = status_line.join();
    }
    drop(dashboard);
    let outcome = outcome?;
    // Before the account, which stays the last line.
    let pending = metrics.pending_follow_ups();
    if pending > 0 {
        Entry::warn(
            "follow_ups_pending",
            format!("{pending} follow-ups were still scheduled for later and were not made"),
        )
        .field("pending", pending)
        .emit();
    }
    Ok(report(&outcome))
}

pub(super) fn sample(
    script: PathBuf,
    count: u64,
    common: CommonArgs,
) -> Result<ExitCode, CliError> {
    let options = common.options(script, "stdout")?;
    let metrics = Arc::new(Metrics::default());
    let outcome = app::sample(&options, count, metrics, &mut print_notice)?;
    // Standard output carries the events; the account is only worth printing when it is bad.
    Ok(if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        report(&outcome)
    })
}

pub(super) fn backfill(
    script: PathBuf,
    count: Option<u64>,
    days: Option<f64>,
    common: CommonArgs,
) -> Result<ExitCode, CliError> {
    let options = common.options(script, "kafka")?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = watch_signals()?;
    let bar = spawn_backfill_bar(metrics.clone());
    let outcome = app::backfill(
        &options,
        count,
        days,
        &shutdown,
        metrics.clone(),
        &mut print_notice,
        Box::new(print_notice),
    );
    // The bar is cleared before anything else is printed.
    if let Some((thread, stop)) = bar {
        stop.trigger();
        let _ = thread.join();
    }
    let outcome = outcome?;
    let seconds = outcome.elapsed.as_secs_f64();
    let rate = outcome.events as f64 / seconds.max(1e-9);
    Entry::info(
        "backfilled",
        format!(
            "backfilled {} events in {seconds:.2} s ({rate:.0} events/s, delivery included)",
            outcome.events
        ),
    )
    .field("events", outcome.events)
    .field("seconds", seconds)
    .field("events_per_second", rate)
    .emit();
    let (ahead, again) = metrics.ahead_and_again();
    if ahead > 0 {
        Entry::info(
            "workers",
            format!(
                "workers: {ahead} arrivals made in parallel, {again} of them made again in turn ({:.2}%)",
                again as f64 * 100.0 / ahead as f64
            ),
        )
        .field("ahead", ahead)
        .field("again", again)
        .emit();
    }
    Ok(report(&outcome))
}

/// The schema language of `sim schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum SchemaFormat {
    /// Avro, as registered with --encoding avro.
    Avro,
    /// JSON Schema (draft 2020-12) of the JSON events, from config().schema.
    JsonSchema,
}

pub(super) fn schema(
    script: PathBuf,
    format: SchemaFormat,
    topic: Option<String>,
    config: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let input = user_input(config, &[], &[], topic.as_ref(), None, None)?;
    let options = crate::scenario::Options {
        script,
        input,
        seed: Some(0),
        now: None,
        sink: crate::sink::SinkSpec::Stdout,
        labels: false,
        meta: false,
        time: crate::clock::TimeSource::real(),
    };
    let text = match format {
        SchemaFormat::Avro => app::avro_schema(&options)?,
        SchemaFormat::JsonSchema => app::json_schema(&options)?,
    };
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
    Ok(ExitCode::SUCCESS)
}
