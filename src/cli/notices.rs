//! What the person running `sim` reads on standard error: notices, the final account, and what
//! hot reload reports. Standard output carries nothing but events.

use std::process::ExitCode;

use chrono::SecondsFormat;

use super::status::clear_status;
use crate::app::{Notice, Outcome};
use crate::reload::ReloadNotice;
use crate::sink::DeliveryAccount;

pub(super) fn print_notice(notice: Notice) {
    match notice {
        Notice::Seed(seed) => say!("seed {seed} (pass --seed {seed} to reproduce)"),
        Notice::EmbeddedBroker { address, topic } => {
            say!("embedded broker at {address}, topic {topic}");
            say!("  consume with: kcat -C -b {address} -t {topic}");
        }
        Notice::TopicReady { topic, recreated } => {
            let how = if recreated { "recreated" } else { "ready" };
            say!("topic {topic} {how}");
        }
        Notice::BackfillDone {
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
        Notice::AccountAfterError(account) => print_account(&account),
        Notice::Failures(failures) => {
            for (reason, count) in failures {
                say!("delivery failed for {count} events: {reason}");
            }
        }
    }
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

pub(super) fn report(outcome: &Outcome) -> ExitCode {
    print_account(&outcome.account);
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
