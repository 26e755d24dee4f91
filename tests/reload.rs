//! Hot reload while `sim run` streams at 1,000 events/s or more into a JSON-lines file: edits in
//! place and by atomic rename change the next events and only those, a broken edit keeps the
//! running version and names its place, an imported module's edit reloads, a fixed setting is
//! refused, and a hundred reloads in a row lose and duplicate nothing.
//!
//! Each test waits for the reload it caused (the `reloaded: revision N` line on standard error)
//! before the next edit, so no test depends on how fast the machine is.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// How long to wait for a line before calling the test failed (generous: CI is a shared 2 cores).
const WAIT: Duration = Duration::from_secs(60);

struct Run {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    out: PathBuf,
}

fn scenario(version: &str) -> String {
    format!(
        "fn config() {{ #{{ rate: 90000.0, peak_factor: 1.0, tag: \"{version}\" }} }}\n\
         fn event(ctx) {{ #{{ customer_id: `c${{ctx.seq % 10}}`, seq: ctx.seq, v: ctx.settings.tag }} }}\n"
    )
}

impl Run {
    fn start(dir: &Path, script: &str) -> Run {
        let out = dir.join("out.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(["run", script, "--seed", "1", "--sink"])
            .arg(format!("file:{}", out.display()))
            .current_dir(dir)
            .env("EVENT_INIT_MODE", "skip")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sim starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = Run {
            child,
            lines,
            seen: Vec::new(),
            out,
        };
        run.wait_for("hot reload: watching");
        run
    }

    /// Waits for a stderr line containing `needle`; returns the lines read up to it.
    fn wait_for(&mut self, needle: &str) -> Vec<String> {
        let mut read = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let found = line.contains(needle);
                    read.push(line);
                    if found {
                        return read;
                    }
                }
                Err(_) => panic!(
                    "no line containing `{needle}` on sim's stderr; it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Stops sim with SIGINT and returns the events it wrote, in order; sim must exit with
    /// success.
    fn stop(&mut self) -> Vec<serde_json::Value> {
        let (status, events) = self.stop_with_status();
        assert!(
            status.success(),
            "sim exited with {status}: {:?}",
            self.seen
        );
        events
    }

    /// Stops sim with SIGINT and returns its exit status and the events it wrote, in order.
    fn stop_with_status(&mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        self.wait_for("account:");
        let status = self.child.wait().unwrap();
        (status, self.events())
    }

    /// The events written so far, in order.
    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for Run {
    /// A failed test must not leave sim running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts sequence numbers 0..n with no gap and no repeat, and returns the versions in the
/// order they took over, each with the sequence number where it started.
fn takeovers(events: &[serde_json::Value]) -> Vec<(String, i64)> {
    let mut versions: Vec<(String, i64)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as i64, "sequence broken at event {i}");
        let v = event["v"].as_str().unwrap().to_string();
        if versions.last().map(|(last, _)| last != &v).unwrap_or(true) {
            assert!(
                !versions.iter().any(|(seen, _)| seen == &v),
                "version {v} came back after another took over"
            );
            versions.push((v, i as i64));
        }
    }
    versions
}

#[test]
fn edits_in_place_and_by_rename_change_the_next_events_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&script, scenario("v2")).unwrap();
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(300));
    common::replace_atomically(&script, &scenario("v3"));
    run.wait_for("reloaded: revision 3");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1", "v2", "v3"]);
}

#[test]
fn a_broken_edit_keeps_the_running_version_and_names_its_place_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    // Line 2 loses its closing brace.
    let broken = scenario("broken").replacen("} }\n", "}\n", 1);
    let broken = broken
        .trim_end_matches('\n')
        .trim_end_matches('}')
        .to_string()
        + "\n";
    std::fs::write(&script, broken).unwrap();
    let said = run.wait_for("keeps running");
    let said = [said, run.wait_for("s.rhai:")].concat().join("\n");
    assert!(said.contains("revision 1 keeps running"), "{said}");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&script, scenario("v2")).unwrap();
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1", "v2"]);
}

#[test]
fn an_edit_to_an_imported_module_reloads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    let module = dir.path().join("lib/tag.rhai");
    std::fs::write(&module, "fn tag() { \"m1\" }\n").unwrap();
    std::fs::write(
        dir.path().join("s.rhai"),
        "import \"lib/tag\" as t;\n\
         fn config() { #{ rate: 90000.0, peak_factor: 1.0 } }\n\
         fn event(ctx) { #{ customer_id: \"c\", seq: ctx.seq, v: t::tag() } }\n",
    )
    .unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&module, "fn tag() { \"m2\" }\n").unwrap();
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["m1", "m2"]);
}

#[test]
fn a_setting_that_cannot_change_live_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    let moved = scenario("v2").replace("rate:", "topic: \"elsewhere\", rate:");
    std::fs::write(&script, moved).unwrap();
    let said = run.wait_for("cannot change while running").join("\n");
    assert!(said.contains("`topic`"), "{said}");
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1"]);
}

#[test]
fn a_hundred_reloads_under_load_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    for revision in 2..=101 {
        let text = scenario(&format!("v{revision}"));
        if revision % 2 == 0 {
            std::fs::write(&script, text).unwrap();
        } else {
            common::replace_atomically(&script, &text);
        }
        run.wait_for(&format!("reloaded: revision {revision} "));
    }
    std::thread::sleep(Duration::from_millis(200));
    let events = run.stop();
    // takeovers() checks every sequence number appears once, in order; versions only move on.
    let versions = takeovers(&events);
    assert!(events.len() > 1_000, "only {} events", events.len());
    assert_eq!(versions.first().unwrap().0, "v1");
    assert_eq!(versions.last().unwrap().0, "v101");
    // Versions swap in at most once each and in the order they were saved.
    let numbers: Vec<u32> = versions
        .iter()
        .map(|(v, _)| v[1..].parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

fn stateful_scenario(version: &str) -> String {
    format!(
        "fn config() {{ #{{ rate: 90000.0, peak_factor: 1.0, tag: \"{version}\" }} }}\n\
         fn setup(ctx) {{ #{{ customers: pool(50, |i| #{{ id: `c${{i}}`, risk: rand_int(0, 1000000) }}) }} }}\n\
         fn event(ctx) {{\n\
             let c = ctx.state.customers.pick();\n\
             let n = recall(c.id);\n\
             let n = if n == () {{ 1 }} else {{ n + 1 }};\n\
             remember(c.id, n);\n\
             #{{ customer_id: c.id, seq: ctx.seq, v: ctx.settings.tag, risk: c.risk, n: n }}\n\
         }}\n"
    )
}

#[test]
fn a_reload_keeps_unchanged_pools_and_the_engines_per_entity_memory() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, stateful_scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&script, stateful_scenario("v2")).unwrap();
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1", "v2"]);
    let mut risk = std::collections::HashMap::new();
    let mut count = std::collections::HashMap::new();
    for event in &events {
        let id = event["customer_id"].as_str().unwrap().to_string();
        // The pool was drawn from the same seed: a customer keeps its attributes.
        let r = risk.entry(id.clone()).or_insert(event["risk"].clone());
        assert_eq!(*r, event["risk"], "{id} changed across the reload");
        // The per-customer count runs on across the reload instead of starting over.
        let n = count.entry(id.clone()).or_insert(0);
        *n += 1;
        assert_eq!(event["n"], *n, "{id}'s remembered count broke");
    }
}

#[test]
fn a_runaway_edit_is_stopped_and_the_stream_keeps_the_running_version() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    let runaway = scenario("v2").replace("fn event(ctx) {", "fn event(ctx) { loop { }");
    std::fs::write(&script, runaway).unwrap();
    let said = [
        run.wait_for("keeps running"),
        run.wait_for("Too many operations"),
    ]
    .concat()
    .join("\n");
    assert!(said.contains("s.rhai:2"), "{said}");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1"]);
}

#[test]
fn a_burst_of_saves_is_one_reload() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    for i in 2..=20 {
        std::fs::write(&script, scenario(&format!("v{i}"))).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(500));
    let events = run.stop();
    let reloads = run
        .seen
        .iter()
        .filter(|line| line.contains("reloaded:"))
        .count();
    assert_eq!(reloads, 1, "{:?}", run.seen);
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1", "v20"]);
}

/// A save seen half-done: the file emptied (a save in place truncates first) or gone (an editor
/// moving the old file aside), its new text written a moment later, longer than the watch's
/// quiet period. Each is one reload, with no edit rejected in between.
#[test]
fn a_save_seen_half_done_is_one_reload_and_no_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    let file = std::fs::File::create(&script).unwrap(); // truncated, as a save in place begins
    drop(file);
    std::thread::sleep(Duration::from_millis(150));
    std::fs::write(&script, scenario("v2")).unwrap();
    run.wait_for("reloaded: revision 2");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&script).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    std::fs::write(&script, scenario("v3")).unwrap();
    run.wait_for("reloaded: revision 3");
    std::thread::sleep(Duration::from_millis(300));
    let events = run.stop();
    let rejected: Vec<&String> = run
        .seen
        .iter()
        .filter(|line| line.contains("rejected") || line.contains("keeps running"))
        .collect();
    assert!(rejected.is_empty(), "{:?}", run.seen);
    let versions: Vec<String> = takeovers(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, ["v1", "v2", "v3"]);
}

/// The ride-hailing fixture (a chain of follow-ups up to an hour long) with `from` replaced by
/// `to`.
fn ride(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check/ride.rhai"),
    )
    .unwrap();
    assert!(text.contains(from), "the fixture has no `{from}`");
    text.replace(from, to)
}

#[test]
fn an_edit_broken_only_in_the_last_follow_up_or_multiplying_them_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ride.rhai");
    std::fs::write(&script, ride("", "")).unwrap();
    let mut run = Run::start(dir.path(), "ride.rhai");
    // The commission goes wrong only in trip_completed, which falls due up to 70 minutes after
    // its request: the reload's check makes the chains to their last link before swapping.
    std::fs::write(
        &script,
        ride(
            "let commission = (trip.fare * ctx.settings.commission_rate).to_int();",
            "let commission = (trip.fare * 0.25).to_int();",
        ),
    )
    .unwrap();
    let said = run
        .wait_for("commission is not fare * commission_rate")
        .join("\n");
    assert!(said.contains("revision 1 keeps running"), "{said}");
    // A cancellation that schedules two more of itself.
    std::fs::write(
        &script,
        ride(
            "fn trip_cancelled(ctx, trip) {\n",
            "fn trip_cancelled(ctx, trip) {\n    ctx.follow_up(1000, \"trip_cancelled\", trip);\n    ctx.follow_up(2000, \"trip_cancelled\", trip);\n",
        ),
    )
    .unwrap();
    let said = run
        .wait_for("follow-ups grow without levelling off")
        .join("\n");
    assert!(said.contains("revision 1 keeps running"), "{said}");
    let events = run.stop();
    assert!(!events.is_empty(), "the stream went on");
}

#[test]
fn a_revision_that_fails_after_its_sample_is_rolled_back_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.rhai");
    std::fs::write(&script, scenario("v1")).unwrap();
    let mut run = Run::start(dir.path(), "s.rhai");
    std::thread::sleep(Duration::from_millis(300));
    // Passes its 200-event sample (numbered from 0), fails every event of the live stream
    // (numbered in the hundreds by now): a rule broken on a path the check never took.
    let failing = scenario("v2").replace(
        "fn event(ctx) {",
        "fn event(ctx) { if ctx.seq >= 200 { throw \"broken later\"; }",
    );
    std::fs::write(&script, failing).unwrap();
    // The reload is told before the stream takes it, so its notice comes before the errors
    // and the rollback, though they are printed from other threads.
    let said = run.wait_for("reloaded: revision 2");
    assert!(!said.iter().any(|l| l.contains("broken later")), "{said:?}");
    let said = run.wait_for("rolled back: revision 2");
    assert!(
        said.iter().any(|l| l.contains("script error: skipped")),
        "{said:?}"
    );
    assert!(
        said.last().unwrap().contains("revision 1 runs again"),
        "{said:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    // Revision 1 streams on; a fixed edit is taken as revision 3.
    std::fs::write(&script, scenario("v3")).unwrap();
    run.wait_for("reloaded: revision 3");
    std::thread::sleep(Duration::from_millis(300));
    let (status, events) = run.stop_with_status();
    // Events were skipped, so not every arrival was made: the exit status says so.
    assert_eq!(status.code(), Some(1), "{:?}", run.seen);
    let account = run.seen.last().unwrap().clone();
    assert!(account.contains(", script errors 10"), "{account}");
    let versions: Vec<&str> = events.iter().map(|e| e["v"].as_str().unwrap()).collect();
    let mut order: Vec<&str> = versions.clone();
    order.dedup();
    assert_eq!(
        order,
        ["v1", "v3"],
        "v2 made no event; v1 ran again, then v3"
    );
    // Every number once, in order; the ten skipped events are the gap.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*seqs.last().unwrap() + 1, events.len() as i64 + 10);
}
