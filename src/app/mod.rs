//! The commands as library calls: `run`, `backfill`, `sample` and `check`.
//!
//! Each loads the scenario, resolves settings over its `config()`, sets it up with the seed and
//! the clock, opens the sink (starting the embedded broker when no brokers are configured), runs
//! the pipeline and closes the sink with a final account. What a person should see along the way
//! (the seed, the broker's address) is reported through [`Notice`]s, so the library never writes
//! to the terminal itself. With `--encoding avro`, [`avro`] registers the schema (with the embedded
//! registry when none is configured) before the sink opens.

mod avro;
mod group;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::avro::AvroError;
use crate::broker::history::{
    check_retention, watch_config, Deletion, HistoryWatch, ShortRetention,
};
use crate::broker::{EmbeddedBroker, LogBudget};
use crate::encode::EventEncoder;
use crate::error::SimError;
use crate::exporter::{self, Endpoint, LAST_SCRAPE_WAIT};
use crate::group::{Change, Identity};
use crate::kafka::stats::STATISTICS_INTERVAL_MS;
use crate::metrics::Metrics;
use crate::pipeline::{BackfillSpec, Pipeline, PipelineError, StreamNotice};
use crate::registry::EmbeddedRegistry;
use crate::reload::{self, ReloadNotice, SchemaEvolution};
use crate::scenario::{check_start, check_start_with, prepare, Options, Prepared};
use crate::settings::{InitMode, OnError};
use crate::shutdown::Shutdown;
use crate::sink::{
    ensure_topic, DeliveryAccount, JsonLinesSink, KafkaSink, KafkaSinkConfig, Sink, SinkSpec,
    TopicSpec,
};

/// How long closing waits for outstanding deliveries.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Something worth telling the person running `sim`.
#[derive(Debug)]
pub enum Notice {
    /// The seed in use, so the run can be reproduced.
    Seed(u64),
    /// The embedded broker is up at this address, with this topic.
    EmbeddedBroker {
        /// Bootstrap address.
        address: String,
        /// The topic.
        topic: String,
        /// What it keeps before deleting a partition's oldest messages.
        budget: LogBudget,
    },
    /// The metrics endpoint serves at this URL (`--metrics`).
    Metrics {
        /// `http://ADDRESS/metrics`.
        url: String,
    },
    /// The command ended and waits a moment for one more scrape, so the final figures are read.
    LastScrape {
        /// How long it waits at most.
        wait: Duration,
    },
    /// The embedded schema registry is up at this URL.
    EmbeddedRegistry {
        /// Its URL, `http://127.0.0.1:PORT`.
        url: String,
    },
    /// The Avro schema is registered: every message carries this id.
    SchemaRegistered {
        /// The subject, `<topic>-value`.
        subject: String,
        /// The schema's id.
        id: u32,
        /// The registry's URL, credentials masked.
        url: String,
    },
    /// The broker deleted the oldest messages of a partition (a size cap or retention): they
    /// were delivered, and are gone.
    HistoryDeleted(Deletion),
    /// The topic's retention is shorter than the backfill window: the broker will delete the
    /// oldest backfilled events.
    ShortRetention(ShortRetention),
    /// The topic was (re)created on a real cluster.
    TopicReady {
        /// The topic.
        topic: String,
        /// Whether it was deleted and recreated.
        recreated: bool,
    },
    /// What the pipeline reports as it streams: the end of the backfill, an event skipped
    /// because its script failed, a reloaded revision rolled back.
    Stream(StreamNotice),
    /// Delivery failures by reason.
    Failures(Vec<(String, u64)>),
    /// The run stopped on an error; this is the account of what was accepted before it.
    AccountAfterError(DeliveryAccount),
    /// This instance joined its group (`--group`): the group's identity, as recorded on its
    /// coordination topic.
    GroupJoined {
        /// The group.
        group: String,
        /// Its coordination topic.
        topic: String,
        /// What the group is.
        identity: Identity,
    },
    /// A rebalance of the group moved shards to or from this instance.
    Group(Change),
}

/// What a finished command reports.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Events made.
    pub events: u64,
    /// The sink's final account.
    pub account: DeliveryAccount,
    /// Events skipped because their script failed (`on_error = skip`): arrivals and follow-ups
    /// that were not made.
    pub script_errors: u64,
    /// From the first event to the last delivery report (not counting the embedded broker's
    /// grace for consumers at exit).
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether every arrival and follow-up was made and every event delivered.
    pub fn succeeded(&self) -> bool {
        self.account.failed == 0 && self.account.in_flight() == 0 && self.script_errors == 0
    }
}

/// Receives notices from other threads while a command runs (the broker deleting messages).
pub type BackgroundReporter = Box<dyn FnMut(Notice) + Send>;

/// An open sink and what keeps it alive. Dropped in field order: the watch looks a last time
/// while the broker still serves.
struct OpenSink {
    sink: Box<dyn Sink>,
    _watch: Option<HistoryWatch>,
    // Held for its lifetime: the embedded broker stops when dropped.
    _broker: Option<EmbeddedBroker>,
    // The embedded registry, stopped after the broker (whose drop waits for consumers).
    registry: Option<EmbeddedRegistry>,
}

fn open_sink(
    options: &Options,
    prepared: &Prepared,
    metrics: &Arc<Metrics>,
    recreate_topic: bool,
    notify: &mut dyn FnMut(Notice),
    mut on_background: BackgroundReporter,
) -> Result<OpenSink, SimError> {
    let settings = &prepared.settings;
    let counters = metrics.delivery.clone();
    match &options.sink {
        SinkSpec::Stdout => Ok(OpenSink {
            sink: Box::new(JsonLinesSink::stdout(counters)),
            _watch: None,
            _broker: None,
            registry: None,
        }),
        SinkSpec::File(path) => Ok(OpenSink {
            sink: Box::new(JsonLinesSink::file(path, counters)?),
            _watch: None,
            _broker: None,
            registry: None,
        }),
        SinkSpec::Kafka => {
            let topic = TopicSpec {
                name: settings.topic.clone(),
                partitions: settings.partitions,
                replication: settings.replication,
            };
            let mut config = KafkaSinkConfig {
                brokers: String::new(),
                brokers_origin: settings.brokers_origin.clone(),
                topic: settings.topic.clone(),
                properties: settings.kafka.clone(),
                headers: vec![("scenario".into(), prepared.scenario.name().to_string())],
                transactional_id: crate::group::transactional_id(settings),
            };
            let broker = match &settings.brokers {
                Some(brokers) => {
                    config.brokers = brokers.clone();
                    None
                }
                None => {
                    let budget = LogBudget::new(settings.embedded_max_bytes, topic.partitions);
                    let broker = EmbeddedBroker::with_budget(&topic, budget)?;
                    config.brokers = broker.bootstrap_servers();
                    // It holds batches as produced, in memory: compressed, a backfill takes a
                    // third of the room. `-X compression.type=none` turns it off.
                    config
                        .properties
                        .entry("compression.type".into())
                        .or_insert_with(|| "lz4".into());
                    notify(Notice::EmbeddedBroker {
                        address: config.brokers.clone(),
                        topic: topic.name.clone(),
                        budget,
                    });
                    Some(broker)
                }
            };
            if settings.metrics.is_some() {
                // The endpoint shows librdkafka's view of the brokers, and `/readyz` asks it.
                config
                    .properties
                    .entry("statistics.interval.ms".into())
                    .or_insert_with(|| STATISTICS_INTERVAL_MS.into());
            }
            // Connecting first reports an unreachable broker before any topic work is tried.
            let sink = KafkaSink::connect(&config, counters)?;
            metrics.watch_client(sink.client_stats());
            if broker.is_none() {
                ensure_topic(&config.client_config(), &topic, recreate_topic)?;
                notify(Notice::TopicReady {
                    topic: topic.name.clone(),
                    recreated: recreate_topic,
                });
                // `sim run` backfills only then; `sim backfill` always does (its mode is flush
                // unless set otherwise).
                if settings.init_mode == InitMode::Flush {
                    let window_ms = (settings.backfill_days * 86_400_000.0) as i64;
                    let client = watch_config(&config.brokers, &config.properties);
                    if let Some(short) = check_retention(&client, &topic.name, window_ms) {
                        notify(Notice::ShortRetention(short));
                    }
                }
            }
            let watch = HistoryWatch::start(
                &watch_config(&config.brokers, &config.properties),
                &config.topic,
                broker.as_ref().map(|b| b.budget().per_partition),
                metrics.clone(),
                Box::new(move |deletion| on_background(Notice::HistoryDeleted(deletion))),
            )?;
            Ok(OpenSink {
                sink: Box::new(sink),
                _watch: Some(watch),
                _broker: broker,
                registry: None,
            })
        }
    }
}

fn close(
    mut open: OpenSink,
    events: u64,
    script_errors: u64,
    started: Instant,
    notify: &mut dyn FnMut(Notice),
) -> Result<Outcome, SimError> {
    let account = open.sink.close(CLOSE_TIMEOUT)?;
    let failures = open.sink.failure_reasons();
    if !failures.is_empty() {
        notify(Notice::Failures(failures));
    }
    let elapsed = started.elapsed();
    Ok(Outcome {
        events,
        account,
        script_errors,
        elapsed,
    })
}

/// Runs a whole pipeline step against an open sink, closing the sink (and so flushing what was
/// accepted) whether the step succeeded or not. A failing event does what the `on_error`
/// setting says, `policy` when it says `auto`.
#[allow(clippy::too_many_arguments)]
fn with_pipeline(
    prepared: Prepared,
    options: &Options,
    encoder: Option<EventEncoder>,
    mut open: OpenSink,
    metrics: Arc<Metrics>,
    policy: OnError,
    notify: &mut dyn FnMut(Notice),
    step: impl FnOnce(&mut Pipeline<'_>) -> Result<u64, PipelineError>,
) -> Result<Outcome, SimError> {
    let started = Instant::now();
    let script_errors = metrics.clone();
    let metrics_view = metrics.clone();
    let result = {
        let mut forward = |notice| notify(Notice::Stream(notice));
        let mut pipeline = Pipeline::new(
            prepared.scenario,
            &prepared.settings,
            prepared.seed,
            open.sink.as_mut(),
            metrics,
        );
        if let Some(encoder) = encoder {
            pipeline.encode_with(encoder);
        }
        pipeline.label_events(options.labels);
        pipeline.describe_events(options.meta);
        pipeline.on_error(prepared.settings.on_error.unwrap_or(policy));
        pipeline.report_to(&mut forward);
        let result = pipeline
            .set_workers(prepared.settings.workers)
            .and_then(|()| {
                metrics_view.set_streaming(true);
                step(&mut pipeline)
            });
        metrics_view.set_streaming(false);
        result
    };
    let script_errors = script_errors.script_errors();
    match result {
        Ok(events) => close(open, events, script_errors, started, notify),
        Err(err) => {
            // Deliver what was accepted before reporting the error.
            if let Ok(outcome) = close(open, 0, script_errors, started, notify) {
                if outcome.account.produced > 0 {
                    notify(Notice::AccountAfterError(outcome.account));
                }
            }
            Err(err.into())
        }
    }
}

/// Serves the metrics endpoint when `--metrics` asks for one: before the sink opens, so that a
/// taken port stops the command before the topic is touched.
fn serve_metrics(
    prepared: &Prepared,
    metrics: &Arc<Metrics>,
    notify: &mut dyn FnMut(Notice),
) -> Result<Option<Endpoint>, SimError> {
    let Some(listen) = &prepared.settings.metrics else {
        return Ok(None);
    };
    let endpoint = exporter::serve_producer(
        listen,
        metrics.clone(),
        prepared.scenario.name(),
        &prepared.settings.topic,
    )?;
    notify(Notice::Metrics {
        url: endpoint.url(),
    });
    Ok(Some(endpoint))
}

/// At the end of a command, gives a scraper the chance to read the final figures: when the
/// endpoint was scraped at all, waits up to [`LAST_SCRAPE_WAIT`] for one more scrape.
fn last_scrape(endpoint: Option<Endpoint>, notify: &mut dyn FnMut(Notice)) {
    let Some(endpoint) = endpoint else {
        return;
    };
    let seen = endpoint.scrapes();
    if seen > 0 {
        notify(Notice::LastScrape {
            wait: LAST_SCRAPE_WAIT,
        });
        endpoint.wait_for_scrape_after(seen, LAST_SCRAPE_WAIT);
    }
}

/// The scenario prepared and its start checked, for a command that streams to Kafka: with
/// `--encoding avro`, the sample is also encoded with the Avro schema, before it is registered.
fn prepare_to_stream(options: &Options) -> Result<Prepared, SimError> {
    let prepared = prepare(options)?;
    let trial = avro::trial_encoder(&prepared)?;
    Ok(check_start_with(prepared, &options.script, trial)?)
}

/// The encoder, the embedded registry and the schema's evolution of `--encoding avro`; none
/// for JSON.
fn avro_parts(
    options: &Options,
    prepared: &Prepared,
    notify: &mut dyn FnMut(Notice),
) -> Result<AvroParts, SimError> {
    Ok(match avro::setup(options, prepared, notify)? {
        Some(setup) => (Some(setup.encoder), setup.registry, Some(setup.evolution)),
        None => (None, None, None),
    })
}

/// What [`avro_parts`] gives.
type AvroParts = (
    Option<EventEncoder>,
    Option<EmbeddedRegistry>,
    Option<SchemaEvolution>,
);

/// `sim schema`: the Avro schema (JSON, indented) of the scenario's events as the settings of
/// `options` resolve it (the topic names the record). The scenario is configured, not set up.
pub fn avro_schema(options: &Options) -> Result<String, SimError> {
    let prepared = crate::scenario::configure(options)?;
    Ok(avro::event_schema(&prepared)?.pretty())
}

/// `sim schema --format json-schema`: the JSON Schema of the scenario's JSON events, from its
/// declared schema.
pub fn json_schema(options: &Options) -> Result<String, SimError> {
    let prepared = crate::scenario::configure(options)?;
    let scenario = &prepared.scenario;
    let schema = scenario.schema().ok_or_else(|| AvroError::NoSchema {
        scenario: scenario.name().to_string(),
    })?;
    Ok(serde_json::to_string_pretty(&schema.to_json_schema()).unwrap_or_default())
}

/// Receives what hot reload reports; `None` turns hot reload off.
pub type ReloadReporter = Option<Box<dyn FnMut(ReloadNotice) + Send>>;

/// `sim run`: backfill (when `EVENT_INIT_MODE=flush`), then stream live until `shutdown`, or
/// for `duration` of simulated time when given. With a reporter, edits to the script are
/// reloaded while it streams. `on_background` hears, as it happens, of messages the broker
/// deletes.
pub fn run(
    options: &Options,
    shutdown: &Shutdown,
    duration: Option<Duration>,
    metrics: Arc<Metrics>,
    notify: &mut dyn FnMut(Notice),
    on_reload: ReloadReporter,
    on_background: BackgroundReporter,
) -> Result<Outcome, SimError> {
    let (grouped, group) = group::settle(options, group::Command::Run)?;
    let options = &grouped;
    // Each instance would see an edit at another moment, and the group's identity pins the
    // scenario's files: a group's scenario does not change while it runs.
    let on_reload = if group.is_some() { None } else { on_reload };
    let prepared = prepare_to_stream(options)?;
    notify(Notice::Seed(prepared.seed));
    let endpoint = serve_metrics(&prepared, &metrics, notify)?;
    let flush = prepared.settings.init_mode == InitMode::Flush;
    let (encoder, registry, evolution) = avro_parts(options, &prepared, notify)?;
    let (on_background, on_group) = group::share_reporter(on_background);
    let mut open = open_sink(options, &prepared, &metrics, flush, notify, on_background)?;
    open.registry = registry;
    open.sink.stop_on(shutdown);
    let member = group::join(group, open.sink.as_ref(), &metrics, on_group, notify)?;
    let (count, days) = (prepared.settings.backfill, prepared.settings.backfill_days);
    let now = prepared.now;
    // Started with `now`, before `setup` and the backfill: live time is real time after them.
    let clock = prepared.clock.clone();
    let reloads = on_reload.map(|report| {
        reload::spawn(
            options.clone(),
            prepared.settings.clone(),
            prepared.seed,
            metrics.clone(),
            evolution,
            report,
        )
    });
    let outcome = with_pipeline(
        prepared,
        options,
        encoder,
        open,
        metrics,
        OnError::Skip,
        notify,
        |pipeline| {
            if let Some(reloads) = reloads {
                pipeline.accept_reloads(reloads);
            }
            if let Some(member) = member {
                pipeline.share_with(Box::new(member));
            }
            let backfill = (flush && count > 0).then_some(BackfillSpec {
                arrivals: count,
                days,
            });
            // The live stream starts where the backfill window ends: no gap, no overlap.
            let until = duration.and_then(|d| chrono::Duration::from_std(d).ok().map(|d| now + d));
            pipeline.stream(&clock, backfill, shutdown, until)
        },
    );
    last_scrape(endpoint, notify);
    outcome
}

/// `sim backfill`: only the historical part, `count` events over the `days` before now;
/// `on_background` hears of messages the broker deletes, as it happens.
pub fn backfill(
    options: &Options,
    count: Option<u64>,
    days: Option<f64>,
    shutdown: &Shutdown,
    metrics: Arc<Metrics>,
    notify: &mut dyn FnMut(Notice),
    on_background: BackgroundReporter,
) -> Result<Outcome, SimError> {
    let (grouped, group) = group::settle(options, group::Command::Backfill)?;
    let options = &grouped;
    let mut prepared = prepare_to_stream(options)?;
    if prepared.settings.brokers.is_some() {
        crate::kafka::bulk_load(&mut prepared.settings.kafka);
    }
    notify(Notice::Seed(prepared.seed));
    let endpoint = serve_metrics(&prepared, &metrics, notify)?;
    let count = count.unwrap_or(prepared.settings.backfill);
    let days = days.unwrap_or(prepared.settings.backfill_days);
    let (encoder, registry, _) = avro_parts(options, &prepared, notify)?;
    let (on_background, on_group) = group::share_reporter(on_background);
    let mut open = open_sink(options, &prepared, &metrics, false, notify, on_background)?;
    open.registry = registry;
    open.sink.stop_on(shutdown);
    let member = group::join(group, open.sink.as_ref(), &metrics, on_group, notify)?;
    let now = prepared.now;
    let policy = OnError::Stop;
    let outcome = with_pipeline(
        prepared,
        options,
        encoder,
        open,
        metrics,
        policy,
        notify,
        |pipeline| {
            if let Some(member) = member {
                pipeline.share_with(Box::new(member));
            }
            pipeline.backfill(now, count, days, shutdown)
        },
    );
    last_scrape(endpoint, notify);
    outcome
}

/// `sim sample`: `count` events from now on, as JSON lines on the sink (standard output).
pub fn sample(
    options: &Options,
    count: u64,
    metrics: Arc<Metrics>,
    notify: &mut dyn FnMut(Notice),
) -> Result<Outcome, SimError> {
    let prepared = check_start(prepare(options)?, &options.script)?;
    // JSON lines only: `--encoding avro` is refused here as for any JSON-lines sink.
    let (encoder, _, _) = avro_parts(options, &prepared, notify)?;
    // Standard output or a file: no broker to watch.
    let open = open_sink(
        options,
        &prepared,
        &metrics,
        false,
        notify,
        Box::new(|_| {}),
    )?;
    let now = prepared.now;
    let policy = OnError::Stop;
    with_pipeline(
        prepared,
        options,
        encoder,
        open,
        metrics,
        policy,
        notify,
        |pipeline| pipeline.sample(now, count),
    )
}
