//! What the person running `sim` reads on standard error: notices, the final account, and what
//! hot reload reports. Standard output carries nothing but events.

use std::process::ExitCode;

use chrono::SecondsFormat;

use super::status::clear_status;
use crate::app::{Notice, Outcome};
use crate::broker::history::Deletion;
use crate::pipeline::StreamNotice;
use crate::reload::{ReloadNotice, SchemaChange};
use crate::sink::DeliveryAccount;

pub(super) fn print_notice(notice: Notice) {
    match notice {
        Notice::Seed(seed) => say!("seed {seed} (pass --seed {seed} to reproduce)"),
        Notice::EmbeddedRegistry { url } => say!("schema registry at {url}"),
        Notice::Metrics { url } => say!("metrics at {url} (also /healthz, /readyz)"),
        Notice::LastScrape { wait } => say!(
            "metrics: waiting up to {} s for a last scrape of the final figures",
            wait.as_secs()
        ),
        Notice::SchemaRegistered { subject, id, url } => {
            say!("avro: schema id {id}, subject {subject}, registry {url}")
        }
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
        Notice::HistoryDeleted(d) => print_deletion(&d),
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
        Notice::Stream(notice) => print_stream_notice(notice),
        Notice::AccountAfterError(account) => print_account(&account, None),
        Notice::Failures(failures) => {
            for (reason, count) in failures {
                say!("delivery failed for {count} events: {reason}");
            }
        }
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
            say!("backfilled {arrivals} arrivals, which made {events} events, from {from} to {to}; streaming live from {to}");
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
            say!(
                "{}script error: skipped the event `{function}` (revision {revision}) made for \
                 {at}; the stream goes on (on_error = skip)",
                clear_status()
            );
            say!("{:?}", miette::Report::new(error));
            if skipped == SHOWN_SKIPS {
                say!("  further script errors are counted in the status line and the account, not shown; ON_ERROR=stop stops at the first");
            }
        }
        StreamNotice::Skipped { .. } => {}
        StreamNotice::RolledBack {
            from,
            to,
            health,
            cause: None,
        } => say!(
            "{}rolled back: revision {from} failed {} of its {} events ({} in a row), over its \
             budget (10 in a row, or more than 1% of at least 100); revision {to} runs again. \
             Fix the script and save it to reload",
            clear_status(),
            health.failures,
            health.attempts,
            health.in_a_row
        ),
        StreamNotice::RolledBack {
            from,
            to,
            cause: Some(error),
            ..
        } => {
            say!(
                "{}rolled back: the rate curve of revision {from} failed; revision {to} runs \
                 again. Fix the script and save it to reload",
                clear_status()
            );
            say!("{:?}", miette::Report::new(error));
        }
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

fn print_account(account: &DeliveryAccount, script_errors: Option<u64>) {
    say!(
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

pub(super) fn print_reload(notice: ReloadNotice) {
    match notice {
        ReloadNotice::Ready {
            revision,
            prepared_in,
            schema,
        } => {
            say!(
                "{}reloaded: revision {revision} runs from the next event (prepared in {:.1} ms)",
                clear_status(),
                prepared_in.as_secs_f64() * 1e3
            );
            if let Some(SchemaChange { subject, id }) = schema {
                say!("avro: revision {revision} writes with schema id {id}, subject {subject}");
            }
        }
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
