//! Progress bars on long work, as a person sees them in a real terminal (tmux): `sim backfill`'s
//! bar halfway and gone at the end, `sim run`'s bar over its backfill and then its status line,
//! `sim analyze --until-idle`'s bar over a backlog; and nothing of them when standard error is
//! piped.

mod analyze_support;
mod common;

use std::path::Path;

use common::tmux::{Tmux, WAIT};

/// A scenario that makes events fast, so a debug build backfills hundreds of thousands a minute.
const QUICK: &str = "fn config() { #{ rate: 600.0, peak_factor: 1.0 } }\n\
                     fn event(ctx) { #{ customer_id: `c${ctx.seq % 7}`, n: ctx.seq } }\n";

/// Runs `args` (sim's, after the binary) from the project's root in a 140×30 terminal, with a
/// clean environment; `EXIT=<status>` is printed when it ends, and the pane stays.
fn start(name: &str, args: &[&str]) -> Tmux {
    common::require_tmux();
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let line = format!(
        "cd '{}' && env -i PATH=\"$PATH\" HOME=\"$HOME\" TERM=xterm-256color '{}' {}; \
         echo EXIT=$?; sleep 600",
        common::root().display(),
        env!("CARGO_BIN_EXE_sim"),
        quoted.join(" ")
    );
    Tmux::start(&format!("progress-{name}"), &line, 140, 30)
}

/// The done and total of a bar's `DONE/TOTAL unit` in `pane`, if it shows one.
fn bar_position(pane: &str, unit: &str) -> Option<(u64, u64)> {
    let line = pane.lines().find(|l| l.contains(&format!(" {unit} · ")))?;
    let before = line.split(&format!(" {unit} · ")).next()?;
    let fraction = before.rsplit(' ').next()?;
    let (done, total) = fraction.split_once('/')?;
    let number = |text: &str| text.replace(',', "").parse::<u64>().ok();
    Some((number(done)?, number(total)?))
}

fn quick_script(dir: &Path) -> String {
    let script = dir.join("quick.rhai");
    std::fs::write(&script, QUICK).unwrap();
    script.display().to_string()
}

#[test]
fn a_backfill_shows_its_bar_halfway_and_clears_it_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let script = quick_script(dir.path());
    let out = format!("file:{}", dir.path().join("out.jsonl").display());
    let tmux = start(
        "backfill",
        &["backfill", &script, "--count", "400000", "--sink", &out],
    );
    let halfway = tmux.wait_for("a bar between a quarter and three quarters done", |pane| {
        bar_position(pane, "arrivals")
            .is_some_and(|(done, total)| total == 400_000 && (100_000..=300_000).contains(&done))
    });
    eprintln!("halfway:\n{halfway}");
    let bar = halfway
        .lines()
        .find(|l| l.contains(" arrivals · "))
        .unwrap();
    assert!(bar.starts_with("backfill ["), "{bar}");
    assert!(bar.contains("/400,000 arrivals · "), "{bar}");
    assert!(
        bar.contains(" events/s · ") && bar.ends_with(" left"),
        "{bar}"
    );

    let end = tmux.wait_for("the end", |pane| pane.contains("EXIT="));
    eprintln!("at the end:\n{end}");
    assert!(end.contains("EXIT=0"), "{end}");
    assert!(end.contains("backfilled 400000 events in"), "{end}");
    assert!(!end.contains(" arrivals · "), "the bar is cleared:\n{end}");
}

#[test]
fn sim_run_shows_its_backfill_bar_then_the_status_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = quick_script(dir.path());
    let out = format!("file:{}", dir.path().join("out.jsonl").display());
    let tmux = start(
        "run",
        &[
            "run",
            &script,
            "--set",
            "backfill=300000",
            "--no-reload",
            "--sink",
            &out,
        ],
    );
    let backfilling = tmux.wait_for("the backfill's bar", |pane| {
        bar_position(pane, "arrivals").is_some_and(|(done, total)| total == 300_000 && done > 0)
    });
    eprintln!("backfilling:\n{backfilling}");
    let live = tmux.wait_for("the status line", |pane| {
        pane.lines()
            .any(|l| l.starts_with("rate ") && l.contains("(target 10.0/s)"))
    });
    eprintln!("live:\n{live}");
    assert!(
        !live.contains(" arrivals · "),
        "the bar is cleared:\n{live}"
    );
    // Ctrl-C, as a person stops it: flushed, the account, exit 0.
    tmux.send_keys("C-c");
    let end = tmux.wait_for("the end", |pane| pane.contains("EXIT="));
    assert!(end.contains("EXIT=0"), "{end}");
}

#[test]
fn analyze_until_idle_shows_how_much_of_the_backlog_is_read() {
    // A backlog the analyzer takes a few seconds to read, even in a debug build on a fast
    // machine, so the bar is on the screen for many of the captures: 8 partitions hold 60,000
    // events where 3 would keep 28,000 of them.
    let mock = analyze_support::Mock::with_partitions(8);
    let delivered = analyze_support::backfill(&mock.address, "scripts/darooghe.rhai", 60_000, 3);
    let tmux = start(
        "analyze",
        &[
            "analyze",
            "--brokers",
            &mock.address,
            "--group",
            "progress",
            "--from-beginning",
            "--until-idle",
            "--native-rules-only",
        ],
    );
    let reading = tmux.wait_for("the analyzer's bar", |pane| {
        bar_position(pane, "events").is_some_and(|(done, total)| done > 0 && total > done)
    });
    eprintln!("reading:\n{reading}");
    let bar = reading.lines().find(|l| l.contains(" events · ")).unwrap();
    assert!(bar.starts_with("analyze ["), "{bar}");
    let (_, total) = bar_position(&reading, "events").unwrap();
    // The backlog is at most what was delivered (the mock cluster may have deleted the oldest).
    // A report may come as a poll hands over a message the loop has not counted yet: one
    // message per partition too many at most, never the events read since the report.
    assert!(total <= delivered + 8, "{total} of {delivered}: {bar}");
    let end = tmux.wait_for("the end", |pane| pane.contains("EXIT="));
    eprintln!("at the end:\n{end}");
    assert!(end.contains("EXIT=0"), "{end}");
    assert!(!end.contains(" events · "), "the bar is cleared:\n{end}");
}

#[test]
fn piped_output_carries_no_bar_and_no_carriage_return() {
    let dir = tempfile::tempdir().unwrap();
    let script = quick_script(dir.path());
    let out = common::run(
        common::sim()
            .args(["backfill", &script, "--count", "20000", "--sink"])
            .arg(format!("file:{}", dir.path().join("out.jsonl").display())),
        WAIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);
    assert!(!out.stderr.contains("arrivals ·"), "{}", out.stderr);
}
