//! The dashboards on a real terminal: `sim run --dashboard` and `sim analyze` run in a detached
//! tmux session (120 x 40), the screen is read with `tmux capture-pane` until the dashboard shows
//! its panels and figures, `q` is typed, and the process must exit 0 and leave its final account
//! (or summary) in the scrollback, outside the alternate screen. The captured screens are printed
//! so they can be quoted.
//!
//! tmux is installed by `bash dev/install-test-deps.sh`; without it these tests fail, never skip.

mod analyze_support;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use analyze_support::{backfill, Mock};
use common::root;
use common::tmux::{Tmux, WAIT};

/// A shell command line that runs `sim ARGS` from the project's root with a clean environment
/// (as `common::sim()` does), then writes its exit status to `status` and keeps the pane open so
/// that what it printed last can be read.
fn sim_line(args: &str, status: &Path) -> String {
    let mut env = vec!["TERM=xterm-256color".to_string()];
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Ok(value) = std::env::var(var) {
            env.push(format!("{var}='{value}'"));
        }
    }
    format!(
        "cd '{}' && env -i {} '{}' {args}; echo $? > '{}'; sleep 600",
        root().display(),
        env.join(" "),
        env!("CARGO_BIN_EXE_sim"),
        status.display()
    )
}

/// Waits for the exit status `sim_line` writes.
fn exit_status(status: &Path, tmux: &Tmux) -> i32 {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(status) {
            if let Ok(code) = text.trim().parse() {
                return code;
            }
        }
        assert!(
            started.elapsed() < WAIT,
            "sim did not exit after q:\n{}",
            tmux.capture()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The number after `label` on the screen's first line that has it (digits and commas).
fn figure(screen: &str, label: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains(label))?;
    let after = &line[line.find(label)? + label.len()..];
    let digits: String = after
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn run_dashboard_shows_delivery_and_q_stops_with_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let sink = dir.path().join("out.jsonl");
    let args = format!(
        "run scripts/hello.rhai --dashboard --seed 1 --set backfill=20 --set rate=600 --sink 'file:{}'",
        sink.display()
    );
    let tmux = Tmux::start("dashboard-run", &sim_line(&args, &status), 120, 40);
    let screen = tmux.wait_for("the dashboard with events delivered and a rate", |s| {
        ["Rate, last minute", "Delivery", "Reloads", "Notices"]
            .iter()
            .all(|t| s.contains(t))
            && figure(s, "delivered").is_some_and(|n| n > 0)
            // The title names the latest sample once a second has passed.
            && s.contains("/s, achieved")
    });
    eprintln!("sim run --dashboard, running:\n{screen}");
    // A smaller terminal: the dashboard is drawn again to its new size.
    tmux.resize(80, 24);
    let resized = tmux.wait_for("the dashboard at 80 columns", |s| {
        s.lines()
            .find(|l| l.starts_with("┌Rate"))
            .is_some_and(|l| l.chars().count() == 80)
            && s.contains("Delivery")
    });
    eprintln!("sim run --dashboard, resized to 80 x 24:\n{resized}");
    tmux.send_keys("q");
    let code = exit_status(&status, &tmux);
    let after = tmux.capture();
    eprintln!("sim run --dashboard, after q:\n{after}");
    assert_eq!(code, 0, "{after}");
    assert!(after.contains("account: produced"), "{after}");
    // The dashboard is gone: the alternate screen was left.
    assert!(!after.contains("Rate, last minute"), "{after}");
    assert!(
        figure(&after, "delivered").is_some_and(|n| n > 0),
        "{after}"
    );
}

#[test]
fn analyze_dashboard_shows_the_analysis_and_q_stops_with_the_summary() {
    let mock = Mock::start();
    backfill(&mock.address, "scripts/darooghe.rhai", 2000, 7);
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let args = format!(
        "analyze --brokers {} --group dashboard --from-beginning --native-rules-only",
        mock.address
    );
    let tmux = Tmux::start("dashboard-analyze", &sim_line(&args, &status), 120, 40);
    let screen = tmux.wait_for("the dashboard with transactions counted", |s| {
        [
            "Events/s",
            "Top merchants",
            "Approved revenue by category",
            "Windows",
            "Lag per partition",
            "Alerts, newest first",
        ]
        .iter()
        .all(|t| s.contains(t))
            && figure(s, "transactions").is_some_and(|n| n > 0)
    });
    eprintln!("sim analyze, running:\n{screen}");
    tmux.send_keys("q");
    let code = exit_status(&status, &tmux);
    let after = tmux.capture();
    eprintln!("sim analyze, after q:\n{after}");
    assert_eq!(code, 0, "{after}");
    assert!(
        after.contains("transactions from darooghe.transactions"),
        "{after}"
    );
    assert!(!after.contains("Top merchants"), "{after}");
}
