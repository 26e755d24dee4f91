//! Hot reload: edit the scenario while `sim run` streams.
//!
//! A reloader thread watches the script and every module it imports. On a save it prepares the
//! new version off the streaming thread: compile, `config()`, settings, `setup`, then a sample of
//! events checked against the schema and invariants. Only a version that passes all of that is
//! handed to the pipeline, which swaps it in between two events; the timeline, the sequence
//! numbers and the counters carry on. A version that fails leaves the running one in place and
//! is reported as a diagnostic. Settings that cannot change while running (topic, partitions,
//! replication, brokers, key field) are refused with a message that says so. With
//! `--encoding avro`, a version that changes the schema of its events is checked against the
//! subject's compatibility level and registered before it is handed over ([`avro`]).

mod avro;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use notify_debouncer_mini::DebouncedEventKind;

pub use avro::{SchemaChange, SchemaEvolution};

use crate::avro::AvroError;
use crate::metrics::Metrics;
use crate::pipeline::Candidate;
use crate::registry::RegistryError;
use crate::scenario::{prepare, sample_checked_with, Options, ScenarioError, CHECK_EVENTS};
use crate::script::imports::script_files;
use crate::script::ScriptError;
use crate::settings::Settings;
use crate::watch::{absolute, ScriptWatcher, DEBOUNCE};

/// What the reloader reports.
#[derive(Debug)]
pub enum ReloadNotice {
    /// A new version passed its checks and will run from the next event.
    Ready {
        /// Its revision.
        revision: u64,
        /// From the change seen to the version ready.
        prepared_in: Duration,
        /// The schema it registered, when it changed the Avro schema.
        schema: Option<SchemaChange>,
    },
    /// A new version was refused; the running one stays.
    Rejected {
        /// The running revision.
        running: u64,
        /// Why.
        error: ReloadError,
    },
    /// These files are watched from now on.
    Watching(Vec<PathBuf>),
    /// Watching could not start: the stream goes on without reloads.
    Unavailable(String),
}

/// Settings a running stream cannot change, and their values.
fn fixed_settings(settings: &Settings) -> [(&'static str, String); 5] {
    [
        ("topic", settings.topic.clone()),
        ("partitions", settings.partitions.to_string()),
        ("replication", settings.replication.to_string()),
        ("brokers", settings.brokers.clone().unwrap_or_default()),
        ("key_field", settings.key_field.clone()),
    ]
}

/// Why a new version of the scenario was refused.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReloadError {
    /// The new version does not compile, configure, set up or make its sample.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Scenario(#[from] ScenarioError),
    /// The edit changes a setting the running stream cannot change.
    #[error("setting `{key}` cannot change while running (it is `{was}`, the edit makes it `{now}`); restart sim to change it")]
    #[diagnostic(
        code(sim::reload::fixed_setting),
        help("topic, partitions, replication, brokers and key_field are fixed for the life of a stream")
    )]
    FixedSetting {
        /// The setting.
        key: &'static str,
        /// Its running value.
        was: String,
        /// The value the edit gives it.
        now: String,
    },
    /// The edit changes the Avro schema in a way the subject's compatibility level forbids.
    #[error("the edit changes the Avro schema of subject {subject} in a way its compatibility level ({level}) forbids: {}", reasons.join("; "))]
    #[diagnostic(
        code(sim::reload::incompatible_schema),
        help("the running revision keeps its schema. A new field needs a default (a nullable one: [\"null\", type] with \"default\": null); a removed field must have had one under FORWARD or FULL; a type may only widen (int to long, float to double). Or change the subject's level: PUT /config/{subject}")
    )]
    IncompatibleSchema {
        /// The subject.
        subject: String,
        /// Its compatibility level.
        level: String,
        /// Each change that breaks it, or the registry's reasons.
        reasons: Vec<String>,
    },
    /// The registry could not check or register the new schema.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Registry(#[from] RegistryError),
    /// The new version has no usable Avro schema.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Avro(#[from] AvroError),
    /// The new version could not be copied for the other workers.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fork(#[from] ScriptError),
}

/// Prepares and checks a new version of the scenario; with Avro, registers its schema when it
/// changed (the change is returned).
fn prepare_candidate(
    options: &Options,
    running: &Settings,
    seed: u64,
    revision: u64,
    avro: Option<&mut SchemaEvolution>,
) -> Result<(Candidate, Option<SchemaChange>), ReloadError> {
    let prepared = prepare(&Options {
        seed: Some(seed),
        now: Some(Utc::now()),
        ..options.clone()
    })?;
    for ((key, was), (_, now)) in fixed_settings(running)
        .into_iter()
        .zip(fixed_settings(&prepared.settings))
    {
        if was != now {
            return Err(ReloadError::FixedSetting { key, was, now });
        }
    }
    // Read before the sample takes the scenario, and written with by the sample; registered only
    // once the sample passes.
    let name = prepared.scenario.name().to_string();
    let (schema, sample_encoder) = match &avro {
        Some(avro) => {
            let schema = SchemaEvolution::schema_of(&prepared)?;
            let encoder = avro.sample_encoder(&name, &schema)?;
            (Some(schema), Some(encoder))
        }
        None => (None, None),
    };
    let sampled = sample_checked_with(prepared, CHECK_EVENTS, sample_encoder)?
        .verdict(&options.script)
        .map_err(ScenarioError::from)?;
    let settings = sampled.settings;
    let mut scenario = sampled.scenario;
    scenario.reseed_events(seed, revision - 1);
    // The running pipeline keeps its number of workers.
    let forks = (1..running.workers)
        .map(|_| scenario.fork())
        .collect::<Result<_, _>>()?;
    let (encoder, change) = match (avro, schema) {
        (Some(avro), Some(schema)) => {
            let (encoder, change) = avro.encoder_for(&name, &settings.topic, schema)?;
            (Some(encoder), change)
        }
        _ => (None, None),
    };
    let candidate = Candidate {
        scenario,
        forks,
        settings,
        revision,
        encoder,
    };
    Ok((candidate, change))
}

/// Starts the reloader thread for the scenario of `options`, running with `settings` and `seed`.
/// Versions that pass go to the returned receiver, for [`Pipeline::accept_reloads`]. With
/// `avro`, the schema of each version is checked and registered, and goes with its encoder.
pub fn spawn(
    options: Options,
    settings: Settings,
    seed: u64,
    metrics: Arc<Metrics>,
    avro: Option<SchemaEvolution>,
    mut notify: impl FnMut(ReloadNotice) + Send + 'static,
) -> Receiver<Candidate> {
    let (ready_tx, ready_rx) = channel();
    // What the running version was loaded from, read before the watch starts.
    let loaded = contents(&script_files(&options.script));
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let mut reloader = Reloader {
                options: &options,
                settings: &settings,
                seed,
                metrics: &metrics,
                ready: &ready_tx,
                avro,
            };
            if let Err(err) = reloader.watch_and_reload(loaded, &mut notify) {
                notify(ReloadNotice::Unavailable(err.to_string()));
            }
        })
        .ok();
    ready_rx
}

/// What the reloader thread works with.
struct Reloader<'a> {
    options: &'a Options,
    settings: &'a Settings,
    seed: u64,
    metrics: &'a Metrics,
    ready: &'a Sender<Candidate>,
    /// The Avro schema of the last version handed over, with `--encoding avro`.
    avro: Option<SchemaEvolution>,
}

impl Reloader<'_> {
    /// Watches until the stream ends, reloading on every change of contents.
    fn watch_and_reload(
        &mut self,
        loaded: Vec<Option<Vec<u8>>>,
        notify: &mut impl FnMut(ReloadNotice),
    ) -> notify::Result<()> {
        let (events_tx, events) = channel();
        let mut watcher = ScriptWatcher::start(events_tx)?;
        let mut files: Vec<PathBuf> = script_files(&self.options.script);
        watcher.watch(&files)?;
        notify(ReloadNotice::Watching(files.clone()));
        let mut revision = 1;
        let mut last_seen = loaded;
        // An edit made before the watch began is caught here rather than missed.
        let mut pending = contents(&files) != last_seen;
        loop {
            if !pending {
                let Ok(batch) = events.recv() else {
                    return Ok(());
                };
                let Ok(batch) = batch else { continue };
                let watched: Vec<PathBuf> = files.iter().map(|f| absolute(f)).collect();
                // `AnyContinuous` reports a file still being written: wait for it to go quiet.
                if !batch.iter().any(|event| {
                    event.kind == DebouncedEventKind::Any
                        && watched.contains(&absolute(&event.path))
                }) {
                    continue;
                }
            }
            pending = false;
            // Reading a file is an event too (and a reload reads them all), and editors touch
            // files without changing them: only a change of contents is an edit. The snapshot is
            // taken before the new version is read, so an edit made while it is prepared is seen
            // on its own event.
            let snapshot = settled_contents(&files);
            if snapshot == last_seen {
                continue;
            }
            last_seen = snapshot;
            if !self.reload(&mut revision, notify) {
                return Ok(()); // the stream has ended
            }
            // An edit may import other modules: watch them too.
            let imported = script_files(&self.options.script);
            if imported != files {
                files = imported;
                watcher.watch(&files)?;
                last_seen = contents(&files);
            }
        }
    }

    /// Prepares the next revision and hands it over, or reports why not. Returns `false` once
    /// the stream is no longer there to take it.
    fn reload(&mut self, revision: &mut u64, notify: &mut impl FnMut(ReloadNotice)) -> bool {
        let started = Instant::now();
        match prepare_candidate(
            self.options,
            self.settings,
            self.seed,
            *revision + 1,
            self.avro.as_mut(),
        ) {
            Ok((candidate, schema)) => {
                *revision += 1;
                // Told before it is handed over: once handed over, the revision's first events
                // (and a rollback of it) may be reported by the stream's thread, and a person
                // reads "reloaded" first. Should the stream end in between, the notice names a
                // revision that made no event; the final account still says what was made.
                notify(ReloadNotice::Ready {
                    revision: *revision,
                    prepared_in: started.elapsed(),
                    schema,
                });
                if self.ready.send(candidate).is_err() {
                    return false;
                }
            }
            Err(error) => {
                self.metrics.rejected();
                notify(ReloadNotice::Rejected {
                    running: *revision,
                    error,
                });
            }
        }
        true
    }
}

/// How long a watched file found empty or missing is given to get its contents back before it
/// is read as it is. A save in place truncates the file and then writes it, and an editor that
/// saves by moving the old file aside leaves no file for a moment; on a loaded machine either
/// half of a save can come as a change of its own, and an empty or missing script would be
/// rejected (a spurious "edit rejected" before the real edit is taken).
const MID_SAVE: Duration = Duration::from_millis(500);

/// The contents of `files` once none is empty or missing, or as they are after [`MID_SAVE`]
/// (an empty module, or a script a person emptied, is read as it is then).
fn settled_contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    let deadline = Instant::now() + MID_SAVE;
    loop {
        let snapshot = contents(files);
        let mid_save = snapshot
            .iter()
            .any(|file| file.as_ref().is_none_or(Vec::is_empty));
        if !mid_save || Instant::now() >= deadline {
            return snapshot;
        }
        std::thread::sleep(DEBOUNCE);
    }
}

/// The contents of `files` (`None` for one that cannot be read, e.g. mid-rename).
fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|file| std::fs::read(file).ok()).collect()
}
