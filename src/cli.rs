//! The command line: argument definitions and the translation into library calls.
//!
//! Parsing only; the work is done by [`crate::app`]. Notices and the final account go to standard
//! error, so standard output carries nothing but events (for `sample` and `--sink stdout`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand};

use crate::app::{self, Notice, Options, Outcome};
use crate::check::{check_script, CheckOptions, CheckReport};
use crate::error::SimError;
use crate::metrics::{spawn_status_line, Metrics};
use crate::reload::ReloadNotice;
use crate::settings::{split_assignment, UserInput};
use crate::shutdown::Shutdown;
use crate::sink::{DeliveryAccount, SinkSpec};

/// Prints a line on standard error, ignoring failure: a closed stderr (its reader gone) must not
/// turn into a panic that stops `sim` from flushing what it accepted.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod analyze;

/// A scriptable real-time event simulator for Kafka.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stream a scenario live: backfill history (EVENT_INIT_MODE=flush), then real time until
    /// Ctrl-C. Without --brokers or KAFKA_BROKER, runs an embedded broker and prints its address.
    Run {
        /// The scenario script, e.g. scripts/darooghe.rhai.
        script: PathBuf,
        /// Stop after this many seconds of live streaming (as if Ctrl-C were pressed).
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Do not reload the script when it (or a module it imports) is saved.
        #[arg(long)]
        no_reload: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Print N events as JSON lines, as the timeline would make them from --now on.
    Sample {
        /// The scenario script.
        script: PathBuf,
        /// How many events.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Produce only the historical part: COUNT events over the DAYS before --now.
    Backfill {
        /// The scenario script.
        script: PathBuf,
        /// How many events (default: the BACKFILL setting, 20,000).
        #[arg(long)]
        count: Option<u64>,
        /// The window in days (default: the backfill_days setting, 7).
        #[arg(long)]
        days: Option<f64>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Validate scripts: compile, set up, generate events with a fixed seed, and check each
    /// against the schema and invariants the script declares; exit non-zero on any problem.
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
    },
    /// Consume the transactions topic in a consumer group: aggregates, event-time windows and
    /// fraud detection, scored against the ground truth; a live view, a summary at exit.
    Analyze(analyze::AnalyzeArgs),
}

/// Flags every producing command takes.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Kafka bootstrap servers (overrides KAFKA_BROKER). Without either, an embedded broker runs.
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// Topic to produce to (overrides TOPIC).
    #[arg(long)]
    topic: Option<String>,
    /// Seed for every random draw; with --now, output is byte-identical across runs.
    #[arg(long)]
    seed: Option<u64>,
    /// What the simulator takes as the current time (RFC 3339, e.g. 2024-01-15T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// Where events go: kafka, stdout or file:PATH (JSON lines).
    #[arg(long, value_name = "SINK")]
    sink: Option<String>,
    /// TOML config file: settings, and librdkafka properties in a [kafka] table.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any librdkafka property: -X linger.ms=10 (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// Set any setting: --set fraud_rate=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Add the ground truth to each event as `_label` = {"fraud": bool, "pattern": name or null}.
    #[arg(long)]
    labels: bool,
    /// Script workers making events (default: one a core; SIM_WORKERS). The events are the same
    /// for any number: workers change the speed, not the output.
    #[arg(long, value_name = "N")]
    workers: Option<String>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()))
        .map_err(|_| format!("`{text}` is not a time like 2024-01-15T10:00:00Z"))
}

fn user_input(
    config: Option<PathBuf>,
    set: &[String],
    kafka: &[String],
    topic: Option<&String>,
    brokers: Option<&String>,
    workers: Option<&String>,
) -> Result<UserInput, SimError> {
    let mut input = UserInput::from_process_env();
    input.config_file = config;
    for text in set {
        let (key, value) = split_assignment(text, "--set")?;
        input.flags.push((key, value, format!("--set {text}")));
    }
    for text in kafka {
        input.kafka_flags.push(split_assignment(text, "-X")?);
    }
    if let Some(topic) = topic {
        input
            .flags
            .push(("topic".into(), topic.clone(), "--topic".into()));
    }
    if let Some(brokers) = brokers {
        input
            .flags
            .push(("brokers".into(), brokers.clone(), "--brokers".into()));
    }
    if let Some(workers) = workers {
        input
            .flags
            .push(("workers".into(), workers.clone(), "--workers".into()));
    }
    Ok(input)
}

impl CommonArgs {
    fn options(self, script: PathBuf, default_sink: &str) -> Result<Options, SimError> {
        let input = user_input(
            self.config,
            &self.set,
            &self.kafka,
            self.topic.as_ref(),
            self.brokers.as_ref(),
            self.workers.as_ref(),
        )?;
        let sink = SinkSpec::parse(self.sink.as_deref().unwrap_or(default_sink))?;
        Ok(Options {
            script,
            input,
            seed: self.seed,
            now: self.now,
            sink,
            labels: self.labels,
        })
    }
}

fn print_notice(notice: Notice) {
    match notice {
        Notice::Seed(seed) => say!("seed {seed} (pass --seed {seed} to reproduce)"),
        Notice::EmbeddedBroker {
            address,
            topic,
            budget,
        } => {
            say!("embedded broker at {address}, topic {topic}");
            let of = if budget.from_available_memory {
                " (half the memory available; set embedded_max_bytes to change)"
            } else {
                " (embedded_max_bytes)"
            };
            say!(
                "  in memory: keeps up to {} a partition, {} in all{of}; beyond that it deletes \
                 the oldest messages and sim says so",
                bytes(budget.per_partition),
                bytes(budget.total())
            );
            say!("  consume with: kcat -C -b {address} -t {topic}");
        }
        Notice::HistoryDeleted(d) => {
            let why = match d.log_limit {
                Some(limit) => format!(
                    "the embedded broker keeps {} a partition (embedded_max_bytes)",
                    bytes(limit)
                ),
                None => "the topic's retention (retention.ms, retention.bytes)".into(),
            };
            let partitions: Vec<String> = d
                .partitions
                .iter()
                .map(|p| {
                    format!(
                        "partition {}: {} (first offset now {})",
                        p.partition, p.deleted, p.first_offset
                    )
                })
                .collect();
            say!(
                "{}warning: the broker deleted {} of the oldest messages of {}: {}; {} deleted \
                 since sim started, delivered and gone",
                clear_status(),
                d.deleted(),
                d.topic,
                partitions.join(", "),
                d.deleted_in_run
            );
            if d.first {
                say!("  because {why}; the status line counts what it deletes, reported here every 30 s");
            }
        }
        Notice::ShortRetention(r) => say!(
            "warning: topic {} keeps messages for {:.1} days (retention.ms {}), not more than the \
             {:.1}-day backfill window: the broker deletes the oldest backfilled events once \
             they are older than that",
            r.topic,
            r.retention_ms as f64 / 86_400_000.0,
            r.retention_ms,
            r.window_ms as f64 / 86_400_000.0
        ),
        Notice::TopicReady { topic, recreated } => {
            let how = if recreated { "recreated" } else { "ready" };
            say!("topic {topic} {how}");
        }
        Notice::BackfillDone { events, from, to } => {
            let (from, to) = (
                from.to_rfc3339_opts(SecondsFormat::Secs, true),
                to.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            say!("backfilled {events} events from {from} to {to}; streaming live from {to}");
        }
        Notice::AccountAfterError(account) => print_account(&account),
        Notice::Failures(failures) => {
            for (reason, count) in failures {
                say!("delivery failed for {count} events: {reason}");
            }
        }
    }
}

/// Bytes for people: `5.0 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn print_account(account: &DeliveryAccount) {
    say!(
        "account: produced {}, delivered {}, failed {}{}",
        account.produced,
        account.delivered,
        account.failed,
        match account.in_flight() {
            0 => String::new(),
            n => format!(", unaccounted {n}"),
        }
    );
}

fn report(outcome: &Outcome) -> ExitCode {
    print_account(&outcome.account);
    if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A stop signal wired to Ctrl-C and SIGTERM.
fn watch_signals() -> Result<Shutdown, SimError> {
    let shutdown = Shutdown::new();
    shutdown
        .on_signals()
        .map_err(|e| SimError::Input(format!("cannot watch for signals: {e}")))?;
    Ok(shutdown)
}

/// On a terminal, what clears the status line so a notice starts on a clean line; nothing when
/// standard error is piped (the status line is not drawn then).
fn clear_status() -> &'static str {
    if std::io::stderr().is_terminal() {
        "\r\x1b[2K"
    } else {
        ""
    }
}

fn print_reload(notice: ReloadNotice) {
    match notice {
        ReloadNotice::Ready {
            revision,
            prepared_in,
        } => say!(
            "{}reloaded: revision {revision} runs from the next event (prepared in {:.1} ms)",
            clear_status(),
            prepared_in.as_secs_f64() * 1e3
        ),
        ReloadNotice::Rejected { running, error } => {
            say!(
                "{}edit rejected; revision {running} keeps running",
                clear_status()
            );
            say!("{:?}", miette::Report::new(error));
        }
        ReloadNotice::Watching(files) => {
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            say!("hot reload: watching {}", files.join(", "));
        }
        ReloadNotice::Unavailable(reason) => {
            say!("hot reload unavailable ({reason}); streaming without it")
        }
    }
}

fn run(
    script: PathBuf,
    duration: Option<f64>,
    reload: bool,
    common: CommonArgs,
) -> Result<ExitCode, SimError> {
    let options = common.options(script, "kafka")?;
    let duration = duration
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                SimError::Input(format!("--duration {s}: expected seconds, at least 0"))
            })
        })
        .transpose()?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = watch_signals()?;
    let status_line = spawn_status_line(metrics.clone(), shutdown.clone());
    let on_reload: app::ReloadReporter = if reload {
        Some(Box::new(print_reload))
    } else {
        None
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
    // Ends the status line before the account is printed.
    shutdown.trigger();
    if let Some(status_line) = status_line {
        let _ = status_line.join();
    }
    let outcome = outcome?;
    // Before the account, which stays the last line.
    let pending = metrics.pending_follow_ups();
    if pending > 0 {
        say!("{pending} follow-ups were still scheduled for later and were not made");
    }
    Ok(report(&outcome))
}

fn sample(script: PathBuf, count: u64, common: CommonArgs) -> Result<ExitCode, SimError> {
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

fn backfill(
    script: PathBuf,
    count: Option<u64>,
    days: Option<f64>,
    common: CommonArgs,
) -> Result<ExitCode, SimError> {
    let options = common.options(script, "kafka")?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = watch_signals()?;
    let outcome = app::backfill(
        &options,
        count,
        days,
        &shutdown,
        metrics.clone(),
        &mut print_notice,
        Box::new(print_notice),
    )?;
    let seconds = outcome.elapsed.as_secs_f64();
    say!(
        "backfilled {} events in {:.2} s ({:.0} events/s, delivery included)",
        outcome.events,
        seconds,
        outcome.events as f64 / seconds.max(1e-9)
    );
    let (ahead, again) = metrics.ahead_and_again();
    if ahead > 0 {
        say!(
            "workers: {ahead} arrivals made in parallel, {again} of them made again in turn ({:.2}%)",
            again as f64 * 100.0 / ahead as f64
        );
    }
    Ok(report(&outcome))
}

/// Output format of `sim check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people: one line a script, each problem with its place.
    Text,
    /// For machines: one JSON object on standard output.
    Json,
}

/// How many distinct problems `sim check` lists a script before summarising the rest.
const PROBLEMS_SHOWN: usize = 20;

fn print_report(report: &CheckReport) {
    if report.passed() {
        let schema = if report.has_schema {
            "schema checked"
        } else {
            "no schema declared"
        };
        say!(
            "ok: {} ({} events, {schema})",
            report.script.display(),
            report.events
        );
        return;
    }
    // Group identical problems: a broken rule usually breaks every event.
    let mut groups: Vec<(&str, &str, i64, usize)> = Vec::new();
    for problem in &report.problems {
        match groups
            .iter_mut()
            .find(|(f, m, ..)| *f == problem.field && *m == problem.message)
        {
            Some(group) => group.3 += 1,
            None => groups.push((&problem.field, &problem.message, problem.seq, 1)),
        }
    }
    say!(
        "FAIL: {} ({} problems in {} events)",
        report.script.display(),
        report.problems.len(),
        report.events
    );
    for (field, message, first, count) in groups.iter().take(PROBLEMS_SHOWN) {
        let what = if field.is_empty() {
            format!("invariant: {message}")
        } else {
            format!("field `{field}` {message}")
        };
        say!("  event {first}: {what} ({count} events)");
    }
    if groups.len() > PROBLEMS_SHOWN {
        say!("  ... and {} more kinds", groups.len() - PROBLEMS_SHOWN);
    }
}

fn check(
    scripts: &[PathBuf],
    options: &CheckOptions,
    format: Format,
    input: &UserInput,
) -> Result<ExitCode, SimError> {
    let mut summaries = Vec::new();
    let mut failed = 0;
    for script in scripts {
        let summary = match check_script(script, input, options) {
            Ok(report) => {
                if !report.passed() {
                    failed += 1;
                }
                if format == Format::Text {
                    print_report(&report);
                }
                serde_json::json!({
                    "script": script,
                    "ok": report.passed(),
                    "events": report.events,
                    "has_schema": report.has_schema,
                    "problems": report.problems,
                })
            }
            Err(err) => {
                failed += 1;
                let summary = serde_json::json!({
                    "script": script,
                    "ok": false,
                    "error": {
                        "code": miette::Diagnostic::code(&err).map(|c| c.to_string()),
                        "message": err.to_string(),
                    },
                });
                if format == Format::Text {
                    say!("FAIL: {}", script.display());
                    say!("{:?}", miette::Report::new(err));
                }
                summary
            }
        };
        summaries.push(summary);
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({ "ok": failed == 0, "scripts": summaries })
        );
    } else if failed > 0 {
        say!("{failed} of {} scripts failed", scripts.len());
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Cli {
    /// Runs the command; errors are returned for the caller to render.
    pub fn execute(self) -> Result<ExitCode, SimError> {
        match self.command {
            Command::Run {
                script,
                duration,
                no_reload,
                common,
            } => run(script, duration, !no_reload, common),
            Command::Sample {
                script,
                count,
                common,
            } => sample(script, count, common),
            Command::Backfill {
                script,
                count,
                days,
                common,
            } => backfill(script, count, days, common),
            Command::Check {
                scripts,
                count,
                seed,
                format,
                config,
                set,
            } => {
                let input = user_input(config, &set, &[], None, None, None)?;
                let options = CheckOptions {
                    count,
                    seed,
                    ..CheckOptions::default()
                };
                check(&scripts, &options, format, &input)
            }
            Command::Analyze(args) => analyze::analyze(args),
        }
    }
}
