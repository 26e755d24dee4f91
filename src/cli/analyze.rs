//! `sim analyze` on the command line: its flags, and how its notices, live view and summary are
//! shown. The work is [`crate::analyze::run`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use serde_json::json;

use super::dashboard::{self, analyze::State as DashboardState, Dashboard};
use super::log::Entry;
use super::progress::show_consumed;
use super::report::{analyze_report, AnalyzeReportArgs};
use super::{split_assignment, watch_signals, CliError, Format};
use crate::analyze::detect::script::RuleChange;
use crate::analyze::figures::AnalyzeFigures;
use crate::analyze::window::WindowSpec;
use crate::analyze::{AnalyzeError, AnalyzeNotice, AnalyzeOptions};
use crate::error::SimError;
use crate::exporter::{self, Endpoint, LAST_SCRAPE_WAIT};
use crate::registry::{Credentials, AUTH_ENV};
use crate::settings::{
    env_name, kafka_target, kafka_target_env, parse_listen_address, ListenAddress, Origin,
    SettingsError, UserInput,
};
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// Poison messages listed one by one on standard error; the rest are only counted.
const POISON_SHOWN: u64 = 20;

/// The topic read when neither --topic nor TOPIC names one: the one `sim run` writes.
const DEFAULT_TOPIC: &str = "darooghe.transactions";

/// The rules folder used when `--rules` is not given and the folder exists.
const DEFAULT_RULES: &str = "scripts/detect";

/// Flags of `sim analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Kafka bootstrap servers (overrides KAFKA_BROKER).
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// The topic to analyze (overrides TOPIC).
    #[arg(long)]
    topic: Option<String>,
    /// The schema registry Avro messages' schemas are fetched from (overrides
    /// SCHEMA_REGISTRY_URL; basic auth from SCHEMA_REGISTRY_AUTH=user:password). Without one,
    /// Avro messages are counted as poison.
    #[arg(long, value_name = "URL")]
    schema_registry: Option<String>,
    /// Consumer group; members of one group split the partitions.
    #[arg(long, default_value = "transaction-analyzer")]
    group: String,
    /// Start from the beginning of each partition when the group has no committed offset
    /// (otherwise from the end, as kafka-console-consumer does).
    #[arg(long)]
    from_beginning: bool,
    /// Stop once every assigned partition is caught up (for tests and batch use); on a terminal,
    /// a progress bar (consumed against what is left) instead of the live view.
    #[arg(long)]
    until_idle: bool,
    /// Commit outputs and consumed offsets in one Kafka transaction (effects counted once).
    #[arg(long)]
    exactly_once: bool,
    /// Publish aggregates to darooghe.merchant_counts and darooghe.category_revenue and alerts
    /// to darooghe.alerts (see docs/analyze.md for the formats).
    #[arg(long)]
    output_topics: bool,
    /// Forward messages that are not transactions to this topic (with the reason in a header).
    #[arg(long, value_name = "TOPIC")]
    dead_letter_topic: Option<String>,
    /// Folder of Rhai detection rules, `fn detect(event, history)` (default: scripts/detect
    /// when it exists).
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Run only the native rules (velocity, high_value).
    #[arg(long, conflicts_with = "rules")]
    native_rules_only: bool,
    /// Do not reload detection rules when their files change.
    #[arg(long)]
    no_reload: bool,
    /// Threads the detection rules run on, customers split between them; 1 runs them on the
    /// consumer's thread. Alerts are the same, in the same order, for any number (default: the
    /// number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    detect_workers: Option<u16>,
    /// The summary at exit: text, or one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Window length in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    window: u32,
    /// Distance between sliding windows' starts, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    slide: u32,
    /// How far the watermark trails the latest event time, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    watermark_delay: u32,
    /// How long after the watermark passes a window's end late events still count, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    allowed_lateness: u32,
    /// Commit after this many messages (or --commit-interval-ms, whichever comes first).
    #[arg(long, value_name = "N", default_value_t = 5_000)]
    commit_every: u64,
    /// Commit at least this often while messages arrive, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1_000)]
    commit_interval_ms: u64,
    /// Names this member in exactly-once mode (its transactional.id is
    /// sim-analyze.GROUP.INSTANCE): give each concurrent member its own, and a restarted member
    /// the one it had.
    #[arg(long, default_value = "0")]
    instance: String,
    /// No live dashboard on standard error (it is drawn only when standard error is a terminal
    /// and logs are text; q or Ctrl-C stop as SIGINT does).
    #[arg(long)]
    no_view: bool,
    /// Any librdkafka property: -X security.protocol=SSL (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz (overrides
    /// METRICS_ADDR), e.g. 127.0.0.1:9464 or :9464 for every interface. Events, poison, alerts
    /// and precision/recall by rule, windows, and the consumer's lag per partition.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    #[command(flatten)]
    report: AnalyzeReportArgs,
}

/// What `sim analyze` is asked to do, as the command line resolved it.
struct Request {
    options: AnalyzeOptions,
    format: Format,
    /// Where the metrics endpoint listens; `None`: no endpoint.
    metrics: Option<ListenAddress>,
    /// The report at exit.
    report: AnalyzeReportArgs,
}

/// The metrics endpoint's address: `--metrics`, or `METRICS_ADDR` when the flag is absent. A
/// value that is not an address is an error naming it and where it came from.
fn metrics_address(flag: Option<String>) -> Result<Option<ListenAddress>, SettingsError> {
    let (text, origin) = match flag {
        Some(text) => (text, Origin::Flag("--metrics".into())),
        None => {
            let var = env_name("metrics");
            match std::env::var(&var) {
                Ok(text) => (text, Origin::Env(var)),
                Err(_) => return Ok(None),
            }
        }
    };
    match parse_listen_address(&text) {
        Some(address) => Ok(Some(ListenAddress { address, origin })),
        None => Err(SettingsError::Invalid {
            key: "metrics".into(),
            value: text,
            origin,
            expected: "an address to listen on, like 127.0.0.1:9464 or :9464".into(),
        }),
    }
}

impl AnalyzeArgs {
    fn request(self) -> Result<Request, CliError> {
        let metrics = metrics_address(self.metrics)?;
        // Through the settings, so flags > environment > config file hold as for `sim run`.
        let flags = [
            ("brokers", self.brokers, "--brokers"),
            ("topic", self.topic, "--topic"),
            ("schema_registry", self.schema_registry, "--schema-registry"),
        ]
        .into_iter()
        .filter_map(|(key, value, flag)| Some((key.to_string(), value?, flag.to_string())))
        .collect();
        let input = UserInput {
            flags,
            env: kafka_target_env(),
            ..UserInput::default()
        };
        let target = kafka_target(&input, DEFAULT_TOPIC)?;
        let (brokers, brokers_origin) = target.brokers.ok_or(AnalyzeError::NoBrokers)?;
        let (topic, _) = target.topic;
        // Read only with a registry to use, as the producer does with --encoding avro.
        let registry_credentials = std::env::var(AUTH_ENV)
            .ok()
            .filter(|_| target.schema_registry.is_some())
            .map(|text| Credentials::parse(&text))
            .transpose()
            .map_err(AnalyzeError::from)?;
        let rules_dir = match (self.rules, self.native_rules_only) {
            (_, true) => None,
            (Some(dir), _) => Some(dir),
            (None, _) => Some(PathBuf::from(DEFAULT_RULES)).filter(|d| d.is_dir()),
        };
        let mut properties = std::collections::BTreeMap::new();
        for text in &self.kafka {
            let (key, value) = split_assignment(text, "-X")?;
            properties.insert(key, value);
        }
        let seconds = |s: u32| i64::from(s) * 1000;
        if self.window == 0 || self.slide == 0 || self.window % self.slide != 0 {
            return Err(CliError::Window {
                window: self.window,
                slide: self.slide,
            });
        }
        let options = AnalyzeOptions {
            brokers,
            brokers_origin,
            topic,
            group: self.group,
            from_beginning: self.from_beginning,
            until_idle: self.until_idle,
            exactly_once: self.exactly_once,
            output_topics: self.output_topics,
            dead_letter_topic: self.dead_letter_topic,
            rules_dir,
            reload_rules: !self.no_reload,
            detect_workers: self.detect_workers.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            ),
            windows: WindowSpec {
                size_ms: seconds(self.window),
                slide_ms: seconds(self.slide),
                watermark_delay_ms: seconds(self.watermark_delay),
                allowed_lateness_ms: seconds(self.allowed_lateness),
            },
            commit_every: self.commit_every.max(1),
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            instance: self.instance,
            properties,
            // A dashboard is terminal drawing: pipes and JSON logs go without it. A run that
            // reads a backlog and ends (`--until-idle`) shows a progress bar instead.
            live_view: !self.no_view && !self.until_idle && dashboard::available(),
            schema_registry: target.schema_registry,
            registry_credentials,
            ..AnalyzeOptions::new("")
        };
        Ok(Request {
            options,
            format: self.format,
            metrics,
            report: self.report,
        })
    }
}

/// Shows notices on standard error, and hands the live view's frames to the dashboard.
#[derive(Default)]
struct Screen {
    /// What the dashboard draws; frames are dropped when there is none.
    dashboard: Option<Arc<Mutex<DashboardState>>>,
    poison: u64,
}

impl Screen {
    fn show(&mut self, notice: AnalyzeNotice) {
        if let AnalyzeNotice::Frame(frame) = notice {
            if let Some(state) = &self.dashboard {
                lock(state).update(*frame);
            }
            return;
        }
        let entry = match notice {
            AnalyzeNotice::Assigned(p) => {
                Entry::info("assigned", format!("assigned partitions {p:?}"))
                    .field("partitions", json!(p))
            }
            AnalyzeNotice::Revoked(p) => Entry::info(
                "revoked",
                format!("revoked partitions {p:?} (committed first)"),
            )
            .field("partitions", json!(p)),
            AnalyzeNotice::Poison(poison) => {
                self.poison += 1;
                match self.poison {
                    n if n <= POISON_SHOWN => Entry::warn(
                        "poison",
                        format!(
                            "skipped poison message at partition {} offset {}: {}",
                            poison.partition, poison.offset, poison.reason
                        ),
                    )
                    .field("partition", poison.partition)
                    .field("offset", poison.offset)
                    .field("reason", poison.reason.to_string()),
                    n if n == POISON_SHOWN + 1 => Entry::warn(
                        "poison",
                        "more poison messages: counted in the summary, not listed",
                    ),
                    _ => return,
                }
            }
            AnalyzeNotice::Rule(RuleChange::Loaded(path)) => {
                Entry::info("rule", format!("detection rule loaded: {}", path.display()))
                    .field("result", "loaded")
                    .field("file", path.display().to_string())
            }
            AnalyzeNotice::Rule(RuleChange::Removed(path)) => Entry::info(
                "rule",
                format!("detection rule removed: {}", path.display()),
            )
            .field("result", "removed")
            .field("file", path.display().to_string()),
            AnalyzeNotice::Rule(RuleChange::Rejected(error)) => Entry::warn(
                "rule",
                "detection rule edit rejected; its previous version keeps running",
            )
            .field("result", "rejected")
            .diagnostic(miette::Report::new(error)),
            AnalyzeNotice::RuleFailed(error) => Entry::error(
                "rule_failed",
                "detection rule failed (further failures counted)",
            )
            .diagnostic(miette::Report::new(error)),
            AnalyzeNotice::Warning(text) => Entry::warn("warning", format!("warning: {text}")),
            AnalyzeNotice::MissingHistory(missing) => {
                Entry::warn("missing_history", format!("warning: {missing}"))
            }
            AnalyzeNotice::Frame(_) => return,
        };
        entry.emit();
    }
}

/// Serves the analyzer's metrics when `--metrics` asks for it: before the consumer connects, so
/// that a taken port stops the command before the group is joined.
fn serve_metrics(
    listen: Option<&ListenAddress>,
    options: &AnalyzeOptions,
) -> Result<Option<(Endpoint, Arc<AnalyzeFigures>)>, CliError> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let figures = Arc::new(AnalyzeFigures::default());
    let endpoint =
        exporter::serve_analyzer(listen, figures.clone(), &options.topic, &options.group)
            .map_err(SimError::from)?;
    let url = endpoint.url();
    Entry::info(
        "metrics",
        format!("metrics at {url} (also /healthz, /readyz)"),
    )
    .field("url", url)
    .emit();
    Ok(Some((endpoint, figures)))
}

/// At exit, gives a scraper the chance to read the final figures: when the endpoint was scraped
/// at all, waits up to [`LAST_SCRAPE_WAIT`] for one more scrape (as `sim run` does).
fn last_scrape(endpoint: Endpoint) {
    let seen = endpoint.scrapes();
    if seen == 0 {
        return;
    }
    Entry::info(
        "last_scrape",
        format!(
            "metrics: waiting up to {} s for a last scrape of the final figures",
            LAST_SCRAPE_WAIT.as_secs()
        ),
    )
    .field("wait_seconds", LAST_SCRAPE_WAIT.as_secs())
    .emit();
    endpoint.wait_for_scrape_after(seen, LAST_SCRAPE_WAIT);
}

/// Runs `sim analyze`.
pub fn analyze(args: AnalyzeArgs) -> Result<ExitCode, CliError> {
    let Request {
        options,
        format,
        metrics,
        report,
    } = args.request()?;
    let served = serve_metrics(metrics.as_ref(), &options)?;
    let shutdown = watch_signals()?;
    let mut screen = Screen::default();
    let dashboard = options
        .live_view
        .then(|| {
            let state = Arc::new(Mutex::new(DashboardState::default()));
            screen.dashboard = Some(state.clone());
            Dashboard::start(shutdown.clone(), move |frame| {
                dashboard::analyze::render(frame, frame.area(), &lock(&state))
            })
        })
        .flatten();
    // `--until-idle` reads a backlog and ends: without the dashboard, a bar shows how far.
    let bar_wanted = options.until_idle && !options.live_view && dashboard::available();
    let figures = match &served {
        Some((_, figures)) => Some(figures.clone()),
        None => bar_wanted.then(Arc::default),
    };
    let bar = figures.clone().filter(|_| bar_wanted).map(|figures| {
        let stop = Shutdown::new();
        let signal = stop.clone();
        let thread = std::thread::spawn(move || show_consumed(&figures, &signal));
        (thread, stop)
    });
    let result =
        crate::analyze::run_observed(&options, &shutdown, figures, &mut |n| screen.show(n));
    if let Some((thread, stop)) = bar {
        stop.trigger();
        let _ = thread.join();
    }
    // Leaves the alternate screen first: what follows is read in the scrollback.
    drop(dashboard);
    // A failed run is scraped once more too: the figures show how far it got.
    if let Some((endpoint, _)) = served {
        last_scrape(endpoint);
    }
    let summary = result?;
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(&summary).unwrap_or_default()
        ),
        Format::Text => write!(out, "{}", summary.text()),
    };
    drop(out);
    analyze_report(report, &summary)?;
    Ok(ExitCode::SUCCESS)
}
