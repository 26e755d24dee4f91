//! `--group`: joining a group before the scenario is set up (its seed and time come from the
//! group), and becoming a member once the sink is open (the member waits on the sink before it
//! records positions).

use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::{BackgroundReporter, Notice};
use crate::error::SimError;
use crate::group::{group_now, identity, Change, GroupError, GroupSpec, Identity, Member, Pinned};
use crate::kafka::Cluster;
use crate::metrics::Metrics;
use crate::rng::fresh_seed;
use crate::scenario::{configure, Options};
use crate::settings::InitMode;
use crate::sink::{Sink, SinkSpec, KAFKA_HINTS};

/// How long the brokers may take to answer the first contact.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The command a group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// `sim backfill`: a finite timeline, ending at the group's now.
    Backfill,
    /// `sim run`: the live timeline from the group's start.
    Run,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Backfill => "backfill",
            Command::Run => "run",
        }
    }
}

/// A group joined by identity, not yet as a member.
pub(super) struct Joined {
    spec: GroupSpec,
    identity: Identity,
}

/// With `--group`: settles the group's identity (recording this instance's when it is the
/// first) and returns the options the instance runs with, the group's seed and now in them.
/// Without, the options as they are.
pub(super) fn settle(
    options: &Options,
    command: Command,
) -> Result<(Options, Option<Joined>), SimError> {
    let configured = configure(options)?;
    let settings = &configured.settings;
    let Some(name) = settings.group.clone() else {
        if settings.exactly_once {
            return Err(GroupError::ExactlyOnceAlone.into());
        }
        return Ok((options.clone(), None));
    };
    let needs = |what: &str| GroupError::NeedsKafka {
        group: name.clone(),
        what: what.to_string(),
    };
    if options.sink != SinkSpec::Kafka {
        return Err(needs("the kafka sink, not a file or standard output").into());
    }
    let Some(brokers) = &settings.brokers else {
        return Err(needs(
            "--brokers (or KAFKA_BROKER): an embedded broker belongs to one instance",
        )
        .into());
    };
    if command == Command::Run && settings.init_mode == InitMode::Flush {
        return Err(GroupError::BackfillInRun { group: name }.into());
    }
    let cluster = Cluster::new(
        brokers,
        &settings.brokers_origin,
        &settings.kafka,
        &KAFKA_HINTS,
    );
    // An unreachable broker is reported as itself, before any group work is tried.
    cluster
        .reach(None, CONNECT_TIMEOUT)
        .map_err(crate::sink::SinkError::from)?;
    let wall = Utc::now();
    let proposed = Identity {
        command: command.name().to_string(),
        scenario: configured.scenario.name().to_string(),
        fingerprint: identity::fingerprint(&options.script, &settings.values),
        seed: options.seed.unwrap_or_else(fresh_seed),
        shards: settings.shards,
        now_ms: options.now.unwrap_or(wall).timestamp_millis(),
        started_ms: wall.timestamp_millis(),
        exactly_once: settings.exactly_once,
    };
    let spec = GroupSpec {
        name,
        shards: settings.shards,
        replication: settings.replication,
        client: cluster.config(&[]),
    };
    let pinned = Pinned {
        seed: options.seed.is_some(),
        now: options.now.is_some(),
    };
    let identity = spec.identity(&proposed, pinned)?;
    let mut options = options.clone();
    options.seed = Some(identity.seed);
    options.now = Some(group_now(&identity, Utc::now()));
    Ok((options, Some(Joined { spec, identity })))
}

/// Splits the reporter of background notices in two: one for the broker's watch, one for the
/// group's rebalances, both reaching the same place.
pub(super) fn share_reporter(
    reporter: BackgroundReporter,
) -> (BackgroundReporter, BackgroundReporter) {
    let shared = Arc::new(Mutex::new(reporter));
    let other = shared.clone();
    let report = move |shared: &Arc<Mutex<BackgroundReporter>>, notice| {
        let mut reporter = shared.lock().unwrap_or_else(|e| e.into_inner());
        reporter(notice)
    };
    (
        Box::new(move |notice| report(&shared, notice)),
        Box::new(move |notice| report(&other, notice)),
    )
}

/// Joins the group as a member over the open `sink`, reporting rebalances to `on_group`.
pub(super) fn join(
    joined: Option<Joined>,
    sink: &dyn Sink,
    metrics: &Arc<Metrics>,
    mut on_group: BackgroundReporter,
    notify: &mut dyn FnMut(Notice),
) -> Result<Option<Member>, SimError> {
    let Some(Joined { spec, identity }) = joined else {
        return Ok(None);
    };
    let Some(progress) = sink.progress() else {
        return Err(GroupError::NeedsKafka {
            group: spec.name,
            what: "the kafka sink".into(),
        }
        .into());
    };
    metrics.group.join(&spec.name, identity.shards);
    notify(Notice::GroupJoined {
        group: spec.name.clone(),
        topic: spec.topic(),
        identity: identity.clone(),
    });
    let figures = metrics.clone();
    let member = spec.join(
        &identity,
        progress,
        sink.transactions(),
        Box::new(move |change| {
            match &change {
                Change::Took(shards) => figures.group.rebalanced(shards.len(), 0),
                Change::Gave(shards) => figures.group.rebalanced(0, shards.len()),
                Change::Failed(_) | Change::Paused(_) => {}
            }
            on_group(Notice::Group(change));
        }),
    )?;
    Ok(Some(member))
}
