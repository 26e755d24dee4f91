//! `sim bench` on the command line: the flags, and the figures for people (standard error) or
//! as one JSON object (standard output).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::args::{parse_time, user_input};
use super::{CliError, Format};
use crate::bench::{bench as run_bench, BenchReport, BenchSpec, Measure, Speed, PROFILE_EVENTS};
use crate::scenario::Options;
use crate::script::{FastPathUse, SetupRun};
use crate::sink::SinkSpec;

/// The flags of `sim bench`.
#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// The scenario script.
    script: PathBuf,
    /// Events in each measured run.
    #[arg(
        short = 'n',
        long,
        default_value_t = 100_000,
        conflicts_with = "duration"
    )]
    count: u64,
    /// Measure for about this many seconds on one core instead of a number of events (the
    /// count comes from the warm-up's speed; the other runs make as many).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Events made before each measured run, not counted.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    warmup: u64,
    /// Workers of the many-core run (default: one a core; SIM_WORKERS). The first run always
    /// has one.
    #[arg(long, value_name = "N")]
    workers: Option<String>,
    /// Seed for every random draw.
    #[arg(long)]
    seed: Option<u64>,
    /// What the simulator takes as the current time (RFC 3339, e.g. 2024-01-15T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set any setting: --set fraud_rate=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Functions and lines listed, the most time first.
    #[arg(long, value_name = "N", default_value_t = 15)]
    top: usize,
    /// Only the speeds: no profiled run, so no functions or lines.
    #[arg(long)]
    no_profile: bool,
    /// Output: text on standard error, or one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl BenchArgs {
    fn spec(&self) -> Result<BenchSpec, CliError> {
        let measure = match self.duration {
            Some(seconds) => Measure::Time(
                Duration::try_from_secs_f64(seconds).map_err(|_| CliError::Duration(seconds))?,
            ),
            None => Measure::Events(self.count.max(1)),
        };
        Ok(BenchSpec {
            measure,
            warmup: self.warmup,
            profile: !self.no_profile,
        })
    }

    fn options(&self) -> Result<Options, CliError> {
        let input = user_input(
            self.config.clone(),
            &self.set,
            &[],
            None,
            None,
            self.workers.as_ref(),
        )?;
        Ok(Options {
            script: self.script.clone(),
            input,
            seed: self.seed,
            now: self.now,
            sink: SinkSpec::Stdout,
            labels: false,
            meta: false,
            time: crate::clock::TimeSource::real(),
        })
    }
}

/// Runs `sim bench` and prints what it found.
pub(super) fn bench(args: BenchArgs) -> Result<ExitCode, CliError> {
    let spec = args.spec()?;
    let report = run_bench(&args.options()?, &spec)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        Format::Text => print_report(&report, args.top),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_speed(speed: &Speed, one_core: &Speed) {
    let workers = if speed.workers == 1 {
        "1 worker: ".to_string()
    } else {
        format!("{} workers:", speed.workers)
    };
    let gain = if speed.workers == 1 {
        String::new()
    } else {
        format!(
            " ({:.2}x one worker)",
            speed.events_per_second / one_core.events_per_second.max(1e-9)
        )
    };
    say!(
        "  {workers} {:>10.0} events/s  {:>7.2} µs/event{gain}",
        speed.events_per_second,
        speed.micros_per_event,
    );
}

/// Whether the script ran compiled (docs/scripting.md, "The fast path"), and how often it gave
/// an event up to the interpreter: a scenario made mostly by the interpreter is several times
/// slower, and the profile below shows what it runs.
fn print_fast_path(fast_path: FastPathUse) {
    match fast_path {
        FastPathUse::On { events, given_up } => say!(
            "  fast path: on, {} of {events} events given up to the interpreter ({})",
            given_up,
            percent(given_up as f64 / events.max(1) as f64)
        ),
        FastPathUse::TurnedOff { events, given_up } => say!(
            "  fast path: turned off after giving up {given_up} of its first {events} events; the interpreter makes them"
        ),
        FastPathUse::NotCompiled => say!(
            "  fast path: off, event(ctx) uses what it does not cover (docs/scripting.md, \"The fast path\"); the interpreter makes every event"
        ),
    }
}

/// The start-up's time, and how `setup(ctx)` ran: a slow start is most often a `setup` left to
/// the interpreter.
fn print_start_up(seconds: f64, setup: SetupRun) {
    let how = match setup {
        SetupRun::None => "no setup(ctx)",
        SetupRun::Compiled => "setup(ctx) runs on the fast path",
        SetupRun::Interpreted => {
            "setup(ctx) runs on the interpreter (docs/scripting.md, \"The fast path\")"
        }
    };
    say!("  start-up: {seconds:.3} s (compiling, settings, setup); {how}");
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn print_report(report: &BenchReport, top: usize) {
    say!(
        "{}: seed {}, {} events a run, encoded to JSON, sent nowhere",
        report.script.display(),
        report.seed,
        report.one_core.events
    );
    print_speed(&report.one_core, &report.one_core);
    if let Some(many) = &report.workers {
        print_speed(many, &report.one_core);
    }
    print_start_up(report.start_up_seconds, report.setup);
    print_fast_path(report.fast_path);
    if let Some(split) = &report.split {
        say!(
            "  one core's time: script {:.2} µs/event ({}), engine (timeline, JSON, scheduling) {:.2} µs/event",
            split.script_micros,
            percent(split.script_share),
            split.engine_micros
        );
    }
    if report.functions.is_empty() {
        return;
    }
    say!(
        "\nfunctions, the most self time first (a profiled run of {} events, at most {}: {:.2} µs/event, the\nprofiler's cost included; shares of the script's time, net of that cost, {:.0} ns a step):",
        report.profiled_events,
        PROFILE_EVENTS,
        report.profiled_micros_per_event,
        report.profiler_nanos_per_step
    );
    say!(
        "  {:>11}  {:>6}  {:>6}  function",
        "calls/event",
        "self",
        "total"
    );
    for function in report.functions.iter().take(top) {
        let native = if function.native { "  (native)" } else { "" };
        say!(
            "  {:>11.2}  {:>6}  {:>6}  {}{native}",
            function.calls_per_event,
            percent(function.self_share),
            percent(function.total_share),
            function.name
        );
    }
    say!("\nlines, the most time first (a native helper's time is its caller's line):");
    for line in report.lines.iter().take(top) {
        say!(
            "  {:>6}  {}:{}  {}",
            percent(line.self_share),
            line.file.display(),
            line.line,
            line.text
        );
    }
}
