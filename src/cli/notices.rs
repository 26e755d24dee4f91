//! What the person running `sim` reads on standard error: notices, the final account, and what
//! hot reload reports. Standard output carries nothing but events.

use std::process::ExitCode;

use chrono::SecondsFormat;

use super::log::{Entry, Level};
use crate::app::{Notice, Outcome};
use crate::broker::history::Deletion;
use crate::group::Change;
use crate::pipeline::StreamNotice;
use crate::reload::{ReloadNotice, SchemaChange};
use crate::sink::DeliveryAccount;

pub(super) fn print_notice(notice: Notice) {
    match notice {
        Notice::Seed(seed) => Entry::info(
            "seed",
            format!("seed {seed} (pass --seed {seed} to reproduce)"),
        )
        .field("seed", seed)
        .emit(),
        Notice::Metrics { url } => Entry::info(
            "metrics",
            format!("metrics at {url} (also /healthz, /readyz)"),
        )
        .field("url", url)
        .emit(),
        Notice::LastScrape { wait } => Entry::info(
            "last_scrape",
            format!(
                "metrics: waiting up to {} s for a last scrape of the final figures",
                wait.as_secs()
            ),
        )
        .field("wait_seconds", wait.as_secs())
        .emit(),
        Notice::EmbeddedRegistry { url } => {
            Entry::info("embedded_registry", format!("schema registry at {url}"))
                .field("url", url)
                .emit()
        }
        Notice::SchemaRegistered { subject, id, url } => Entry::info(
            "schema_registered",
            format!("avro: schema id {id}, subject {subject}, registry {url}"),
        )
        .field("subject", subject)
        .field("id", id)
        .field("url", url)
        .emit(),
        Notice::EmbeddedBroker {
            address,
            topic,
            budget,
        } => {
            let of = if budget.from_available_memory {
                " (half the memory available; set embedded_max_bytes to change)"
            } else {
                " (embedded_max_bytes)"
            };
            // One entry of three lines: in JSON, one object says where the broker is.
            let message = format!(
                "embedded broker at {address}, topic {topic}\n  in memory: keeps up to {} a \
                 partition, {} in all{of}; beyond that it deletes the oldest messages and sim \
                 says so\n  consume with: kcat -C -b {address} -t {topic}",
                bytes(budget.per_partition),
                bytes(budget.total())
            );
            Entry::info("embedded_broker", message)
                .field("address", address)
                .field("topic", topic)
                .field("partition_bytes", budget.per_partition)
                .field("total_bytes", budget.total())
                .emit();
        }
        Notice::HistoryDeleted(d) => print_deletion(&d),
        Notice::ShortRetention(r) => Entry::warn(
            "short_retention",
            format!(
                "warning: topic {} keeps messages for {:.1} days (retention.ms {}), not more than \
                 the {:.1}-day backfill window: the broker deletes the oldest backfilled events \
                 once they are older than that",
                r.topic,
                r.retention_ms as f64 / 86_400_000.0,
                r.retention_ms,
                r.window_ms as f64 / 86_400_000.0
            ),
        )
        .field("topic", r.topic)
        .field("retention_ms", r.retention_ms)
        .field("window_ms", r.window_ms)
        .emit(),
        Notice::TopicReady { topic, recreated } => {
            let how = if recreated { "recreated" } else { "ready" };
            Entry::info("topic_ready", format!("topic {topic} {how}"))
                .field("topic", topic)
                .field("recreated", recreated)
                .emit();
        }
        Notice::Stream(notice) => print_stream_notice(notice),
        Notice::GroupJoined {
            group,
            topic,
            identity,
        } => Entry::info(
            "group_joined",
            format!(
                "group {group}: joined ({} shards on {topic}, seed {}, scenario {}); waiting for shards",
                identity.shards, identity.seed, identity.scenario
            ),
        )
        .field("group", group)
        .field("topic", topic)
        .field("shards", identity.shards)
        .field("seed", identity.seed)
        .emit(),
        Notice::Group(change) => print_group_change(change),
        Notice::AccountAfterError(account) => print_account(&account, None),
        Notice::Failures(failures) => {
            for (reason, count) in failures {
                Entry::error(
                    "delivery_failed",
                    format!("delivery failed for {count} events: {reason}"),
                )
                .field("count", count)
                .field("reason", reason)
                .emit();
            }
        }
    }
}

fn print_group_change(change: Change) {
    let list = |shards: Vec<u32>| {
        shards
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match change {
        Change::Took(took) => {
            let count = took.len();
            // Shards taken on together usually start at one position: said once.
            let from = match took.first() {
                Some(&(_, first)) if took.iter().all(|&(_, p)| p == first) => format!(
                    "{}, from arrival {first}",
                    list(took.iter().map(|(s, _)| *s).collect())
                ),
                _ => {
                    let each: Vec<String> = took
                        .iter()
                        .map(|(shard, position)| format!("{shard}@{position}"))
                        .collect();
                    format!("shard@position: {}", each.join(" "))
                }
            };
            Entry::info(
                "rebalance",
                format!("rebalance: took on {count} shards ({from})"),
            )
            .field("took", list(took.iter().map(|(s, _)| *s).collect()))
            .field("count", count)
            .emit()
        }
        Change::Gave(gave) => {
            let count = gave.len();
            let unrecorded = gave.iter().filter(|(_, p)| p.is_none()).count();
            let note = if unrecorded > 0 {
                format!("; {unrecorded} without a new position recorded: their next owner makes again what was made since the last record")
            } else {
                String::new()
            };
            Entry::info(
                "rebalance",
                format!(
                    "rebalance: gave up {count} shards ({}){note}",
                    list(gave.iter().map(|(s, _)| *s).collect())
                ),
            )
            .field("gave", list(gave.iter().map(|(s, _)| *s).collect()))
            .field("count", count)
            .field("unrecorded", unrecorded)
            .emit()
        }
        Change::Failed(reason) => Entry::warn("rebalance", format!("rebalance: {reason}"))
            .field("reason", reason)
            .emit(),
        Change::Paused(after) => Entry::warn(
            "group",
            format!(
                "paused after {after} transactions ({}), until killed",
                crate::group::PAUSE_HOOK
            ),
        )
        .emit(),
    }
}

/// Skipped events shown with their whole diagnostic; after these, the status line and the final
/// account count them (a rare error at thousands of events a second would drown the terminal).
const SHOWN_SKIPS: u64 = 3;

fn print_stream_notice(notice: StreamNotice) {
    match notice {
        StreamNotice::BackfillDone {
            arrivals,
            events,
            from,
            to,
        } => {
            let (from, to) = (
                from.to_rfc3339_opts(SecondsFormat::Secs, true),
                to.to_rfc3339_opts(SecondsFormat::Secs, true),
            );
            Entry::info(
                "backfill_done",
                format!("backfilled {arrivals} arrivals, which made {events} events, from {from} to {to}; streaming live from {to}"),
            )
            .field("arrivals", arrivals)
            .field("events", events)
            .field("from", from)
            .field("to", to)
            .emit();
        }
        StreamNotice::Skipped {
            error,
            function,
            time_ms,
            revision,
            skipped,
        } if skipped <= SHOWN_SKIPS => {
            let at = chrono::DateTime::from_timestamp_millis(time_ms)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_else(|| time_ms.to_string());
            Entry::warn(
                "skipped",
                format!(
                    "script error: skipped the event `{function}` (revision {revision}) made for \
                     {at}; the stream goes on (on_error = skip)"
                ),
            )
            .field("function", function)
            .field("revision", revision)
            .field("event_time", at)
            .field("skipped", skipped)
            .diagnostic(miette::Report::new(error))
            .over_status()
            .emit();
            if skipped == SHOWN_SKIPS {
                Entry::info("skips_hidden", "  further script errors are counted in the status line and the account, not shown; ON_ERROR=stop stops at the first")
                    .emit();
            }
        }
        StreamNotice::Skipped { .. } => {}
        StreamNotice::RolledBack {
            from,
            to,
            health,
            cause: None,
        } => Entry::warn(
            "rolled_back",
            format!(
                "rolled back: revision {from} failed {} of its {} events ({} in a row), over its \
                 budget (10 in a row, or more than 1% of at least 100); revision {to} runs again. \
                 Fix the script and save it to reload",
                health.failures, health.attempts, health.in_a_row
            ),
        )
        .field("from", from)
        .field("to", to)
        .field("failures", health.failures)
        .field("attempts", health.attempts)
        .field("in_a_row", health.in_a_row)
        .over_status()
        .emit(),
        StreamNotice::RolledBack {
            from,
            to,
            cause: Some(error),
            ..
        } => Entry::warn(
            "rolled_back",
            format!(
                "rolled back: the rate curve of revision {from} failed; revision {to} runs \
                 again. Fix the script and save it to reload"
            ),
        )
        .field("from", from)
        .field("to", to)
        .diagnostic(miette::Report::new(error))
        .over_status()
        .emit(),
    }
}

/// What the broker deleted from the start of the topic, as it happens.
fn print_deletion(d: &Deletion) {
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
    let mut message = format!(
        "warning: the broker deleted {} of the oldest messages of {}: {}; {} deleted \
         since sim started, delivered and gone",
        d.deleted(),
        d.topic,
        partitions.join(", "),
        d.deleted_in_run
    );
    if d.first {
        message.push_str(&format!(
            "\n  because {why}; the status line counts what it deletes, reported here every 30 s"
        ));
    }
    Entry::warn("history_deleted", message)
        .field("topic", d.topic.clone())
        .field("deleted", d.deleted())
        .field("deleted_in_run", d.deleted_in_run)
        .over_status()
        .emit();
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

/// The account line; in JSON, its figures as fields, at `error` when something was not delivered.
fn print_account(account: &DeliveryAccount, script_errors: Option<u64>) {
    let message = format!(
        "account: produced {}, delivered {}, failed {}{}{}",
        account.produced,
        account.delivered,
        account.failed,
        match account.in_flight() {
            0 => String::new(),
            n => format!(", unaccounted {n}"),
        },
        match script_errors {
            Some(n) => format!(", script errors {n}"),
            None => String::new(),
        }
    );
    let clean = account.failed == 0 && account.in_flight() == 0 && script_errors.unwrap_or(0) == 0;
    let level = if clean { Level::Info } else { Level::Error };
    let mut entry = Entry::new(level, "account", message)
        .field("produced", account.produced)
        .field("delivered", account.delivered)
        .field("failed", account.failed)
        .field("unaccounted", account.in_flight());
    if let Some(n) = script_errors {
        entry = entry.field("script_errors", n);
    }
    entry.emit();
}

/// Prints the final account; the exit status is non-zero unless every arrival was made and
/// every event delivered.
pub(super) fn report(outcome: &Outcome) -> ExitCode {
    print_account(&outcome.account, Some(outcome.script_errors));
    if outcome.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line of what hot reload reported, for the dashboard's reload list (the whole notice,
/// diagnostic included, is still written by [`print_reload`] and read after the dashboard).
pub(super) fn reload_summary(notice: &ReloadNotice) -> String {
    match notice {
        ReloadNotice::Ready { revision, .. } => format!("reloaded: revision {revision} runs"),
        ReloadNotice::Rejected { running, error } => {
            let first = error.to_string();
            let first = first.lines().next().unwrap_or_default().to_string();
            format!("edit rejected, revision {running} keeps running: {first}")
        }
        ReloadNotice::Watching(files) => {
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!("watching {}", files.join(", "))
        }
        ReloadNotice::Unavailable(reason) => format!("hot reload unavailable: {reason}"),
    }
}

/// What hot reload reports: `event: "reload"` with a `result` in JSON.
pub(super) fn print_reload(notice: ReloadNotice) {
    match notice {
        ReloadNotice::Ready {
            revision,
            prepared_in,
            schema,
        } => {
            let prepared_ms = prepared_in.as_secs_f64() * 1e3;
            let mut message = format!(
                "reloaded: revision {revision} runs from the next event (prepared in {prepared_ms:.1} ms)"
            );
            let mut schema_fields = None;
            if let Some(SchemaChange { subject, id }) = schema {
                message.push_str(&format!(
                    "\navro: revision {revision} writes with schema id {id}, subject {subject}"
                ));
                schema_fields = Some((subject, id));
            }
            let mut entry = Entry::info("reload", message)
                .field("result", "accepted")
                .field("revision", revision)
                .field("prepared_ms", prepared_ms);
            if let Some((subject, id)) = schema_fields {
                entry = entry.field("subject", subject).field("schema_id", id);
            }
            entry.over_status().emit();
        }
        ReloadNotice::Rejected { running, error } => Entry::warn(
            "reload",
            format!("edit rejected; revision {running} keeps running"),
        )
        .field("result", "rejected")
        .field("revision", running)
        .diagnostic(miette::Report::new(error))
        .over_status()
        .emit(),
        ReloadNotice::Watching(files) => {
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            Entry::info(
                "reload",
                format!("hot reload: watching {}", files.join(", ")),
            )
            .field("result", "watching")
            .field("files", files)
            .emit();
        }
        ReloadNotice::Unavailable(reason) => Entry::warn(
            "reload",
            format!("hot reload unavailable ({reason}); streaming without it"),
        )
        .field("result", "unavailable")
        .field("reason", reason)
        .emit(),
    }
}
